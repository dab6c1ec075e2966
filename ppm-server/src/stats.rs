//! Traffic statistics: rolls the engine's counters up into the time-series
//! store, keeps the totals since the database was created, and samples
//! rates for the summary.
//!
//! Each rollup reads every counter (hosts, upstreams, streams), subtracts
//! what the previous rollup stored, and adds the difference to the minute,
//! hour and total rows in one transaction, then prunes rows past their
//! retention. Rollups run every `--stats-interval` seconds, on
//! `POST /api/stats/rollup`, and once more at shutdown, so the totals
//! survive a restart.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ppm_core::engine::EngineHandle;
use ppm_core::stats::Counts;
use ppm_store::stats::{Retention, StatsRow, StatsStore, SCOPE_HOST, SCOPE_STREAM, SCOPE_UPSTREAM};
use ppm_store::AnyStore;

/// How often the rates of the summary are sampled.
const SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// Samples kept: the rate window is about a minute.
const SAMPLES: usize = 13;

/// `(scope, key)` of a series.
pub type SeriesKey = (&'static str, String);

/// The statistics service shared by the API, `/metrics` and the rollup task.
pub struct StatsService {
    engine: EngineHandle,
    store: Arc<AnyStore>,
    /// Counters as the last successful rollup stored them.
    stored: Mutex<HashMap<SeriesKey, Counts>>,
    /// Totals in the database when this process started.
    base: Mutex<HashMap<SeriesKey, Counts>>,
    samples: Mutex<VecDeque<(Instant, Counts)>>,
    rollup_lock: tokio::sync::Mutex<()>,
    interval: Duration,
    retention: Retention,
    rollups: std::sync::atomic::AtomicU64,
}

/// What one rollup did.
#[derive(Debug, Clone, Copy, serde::Serialize, schemars::JsonSchema)]
pub struct RollupResult {
    /// The time rows were added at, unix seconds.
    pub ts: i64,
    /// Series that changed since the previous rollup.
    pub series: usize,
    /// Rows deleted by retention.
    pub pruned: u64,
}

/// Unix seconds now.
pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl StatsService {
    /// Loads the stored totals (when the backend keeps series).
    pub async fn new(
        engine: EngineHandle,
        store: Arc<AnyStore>,
        interval: Duration,
        retention: Retention,
    ) -> anyhow::Result<Arc<Self>> {
        let mut base = HashMap::new();
        if let Some(s) = store.stats() {
            let rows = s
                .totals()
                .await
                .map_err(|e| anyhow::anyhow!("reading the traffic totals: {e}"))?;
            for r in rows {
                if let Some(scope) = scope_name(&r.scope) {
                    base.insert((scope, r.key), r.counts);
                }
            }
        }
        Ok(Arc::new(StatsService {
            engine,
            store,
            stored: Mutex::new(HashMap::new()),
            base: Mutex::new(base),
            samples: Mutex::new(VecDeque::new()),
            rollup_lock: tokio::sync::Mutex::new(()),
            interval,
            retention,
            rollups: std::sync::atomic::AtomicU64::new(0),
        }))
    }

    /// The engine.
    pub fn engine(&self) -> &EngineHandle {
        &self.engine
    }

    /// The time-series store, `None` on a backend without one.
    pub fn series_store(&self) -> Option<&dyn StatsStore> {
        self.store.stats()
    }

    /// How long minute rows are kept.
    pub fn retention(&self) -> Retention {
        self.retention
    }

    /// Every series' counters since this process started.
    pub fn current(&self) -> HashMap<SeriesKey, Counts> {
        let mut out = HashMap::new();
        let stats = self.engine.stats();
        for h in stats.hosts() {
            out.insert(
                (SCOPE_HOST, format!("{}:{}", h.key.kind, h.key.id)),
                h.stats.counts,
            );
        }
        for u in stats.upstreams() {
            out.insert((SCOPE_UPSTREAM, u.upstream), u.stats.counts);
        }
        for s in self.engine.stream_stats() {
            out.insert((SCOPE_STREAM, s.stream_id.to_string()), Counts::from(&s));
        }
        out
    }

    /// Totals since the database was created: stored totals at startup
    /// plus this process' counters.
    pub fn totals(&self) -> HashMap<SeriesKey, Counts> {
        let mut out = self.base.lock().map(|b| b.clone()).unwrap_or_default();
        for (k, c) in self.current() {
            let e = out.entry(k).or_default();
            *e = e.plus(&c);
        }
        out
    }

    /// The sum of the host counters of `series`.
    pub fn host_sum(series: &HashMap<SeriesKey, Counts>) -> Counts {
        series
            .iter()
            .filter(|((s, _), _)| *s == SCOPE_HOST)
            .fold(Counts::default(), |a, (_, c)| a.plus(c))
    }

    /// Rolls up now. Serialised with the periodic rollups.
    pub async fn rollup(&self) -> Result<RollupResult, ppm_store::WriteError> {
        let _guard = self.rollup_lock.lock().await;
        let Some(store) = self.store.stats() else {
            return Err(ppm_store::WriteError::Unavailable(
                "traffic series are kept only with SQLite".into(),
            ));
        };
        let now = self.current();
        let previous = self.stored.lock().map(|s| s.clone()).unwrap_or_default();
        let rows: Vec<StatsRow> = now
            .iter()
            .map(|((scope, key), c)| {
                let delta = match previous.get(&(*scope, key.clone())) {
                    Some(p) => c.since(p),
                    None => *c,
                };
                StatsRow::new(*scope, key.clone(), delta)
            })
            .filter(|r| !r.counts.is_zero())
            .collect();
        let ts = now_secs();
        store.add_rollup(ts, &rows).await?;
        if let Ok(mut s) = self.stored.lock() {
            *s = now;
        }
        let pruned = store.prune(ts, self.retention).await?;
        self.rollups
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(RollupResult {
            ts,
            series: rows.len(),
            pruned,
        })
    }

    /// Rates over the last minute or so: `(window seconds, delta)`.
    pub fn rates(&self) -> (f64, Counts) {
        let now = Self::host_sum(&self.current());
        let samples = match self.samples.lock() {
            Ok(s) => s,
            Err(_) => return (0.0, Counts::default()),
        };
        match samples.front() {
            Some((t, c)) => {
                let dt = t.elapsed().as_secs_f64();
                if dt <= 0.0 {
                    (0.0, Counts::default())
                } else {
                    (dt, now.since(c))
                }
            }
            None => (0.0, Counts::default()),
        }
    }

    fn sample(&self) {
        let c = Self::host_sum(&self.current());
        if let Ok(mut s) = self.samples.lock() {
            s.push_back((Instant::now(), c));
            while s.len() > SAMPLES {
                s.pop_front();
            }
        }
    }

    /// Runs the sampler and the periodic rollups until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        self.sample();
        let mut sample = tokio::time::interval(SAMPLE_EVERY);
        sample.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut rollup = tokio::time::interval(self.interval);
        rollup.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        rollup.tick().await;
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = sample.tick() => self.sample(),
                _ = rollup.tick() => {
                    if self.store.stats().is_some() {
                        if let Err(e) = self.rollup().await {
                            tracing::warn!(error = %e, "rolling up the traffic counters failed");
                        }
                    }
                }
            }
        }
    }
}

fn scope_name(s: &str) -> Option<&'static str> {
    match s {
        SCOPE_HOST => Some(SCOPE_HOST),
        SCOPE_UPSTREAM => Some(SCOPE_UPSTREAM),
        SCOPE_STREAM => Some(SCOPE_STREAM),
        _ => None,
    }
}
