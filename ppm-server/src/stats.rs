//! Traffic statistics: rolls the engine's counters up into the time-series
//! store, reads the totals since the database was created across every
//! node, and samples rates for the summary.
//!
//! Each rollup reads every counter (hosts, upstreams, streams), subtracts
//! what the previous rollup stored, and adds the difference to this node's
//! minute, hour and total rows in one transaction, then prunes rows past
//! their retention. Rollups run every `--stats-interval` seconds, on
//! `POST /api/stats/rollup`, and once more at shutdown, so the totals
//! survive a restart. Every node sharing the database records its own rows
//! (keyed by its node id); the reads sum them.

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
    /// This node's id: the rows its rollups add are keyed by it.
    node_id: String,
    /// Counters as the last successful rollup stored them.
    stored: Mutex<HashMap<SeriesKey, Counts>>,
    samples: Mutex<VecDeque<(Instant, Counts)>>,
    rollup_lock: tokio::sync::Mutex<()>,
    interval: Duration,
    retention: Retention,
    rollups: std::sync::atomic::AtomicU64,
}

/// What one rollup did.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct RollupResult {
    /// The node that rolled up (the one that answered); its rows are keyed
    /// by this id.
    pub node_id: String,
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

/// One node's share of the totals.
#[derive(Debug, Clone)]
pub struct NodeShare {
    /// The node's id (empty for rows recorded before statistics were kept
    /// per node).
    pub node_id: String,
    /// Whether it is this node.
    pub this_node: bool,
    /// Its last rollup, unix seconds; `None` for this node before its
    /// first rollup.
    pub last_rollup: Option<i64>,
    /// Its HTTP totals, summed over every host.
    pub http: Counts,
    /// Its stream totals, summed over every stream.
    pub streams: Counts,
}

/// Totals since the statistics began, over every node: what the database
/// holds, and for this node its counters up to now.
#[derive(Debug, Clone)]
pub struct ClusterTotals {
    /// Every series summed across nodes.
    pub series: HashMap<SeriesKey, Counts>,
    /// Every node that recorded statistics, and this node, by id.
    pub nodes: Vec<NodeShare>,
}

impl StatsService {
    /// The service of node `node_id`; checks that the stored totals can
    /// be read.
    pub async fn new(
        engine: EngineHandle,
        store: Arc<AnyStore>,
        node_id: String,
        interval: Duration,
        retention: Retention,
    ) -> anyhow::Result<Arc<Self>> {
        store
            .stats()
            .totals_by_node()
            .await
            .map_err(|e| anyhow::anyhow!("reading the traffic totals: {e}"))?;
        Ok(Arc::new(StatsService {
            engine,
            store,
            node_id,
            stored: Mutex::new(HashMap::new()),
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

    /// The time-series store.
    pub fn series_store(&self) -> &dyn StatsStore {
        self.store.stats()
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.node_id
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

    /// Totals since the statistics began, per node: every node's totals
    /// in the database, and for this node what it has not rolled up yet
    /// too, so the sum is exact for this node and as of their last rollup
    /// for the others.
    pub async fn cluster_totals(&self) -> Result<ClusterTotals, ppm_store::WriteError> {
        // No rollup may commit between reading the database and reading
        // what was rolled up, or its counts would be missed or doubled.
        let _guard = self.rollup_lock.lock().await;
        let stored = self.store.stats().totals_summary().await?;
        let pending = self.pending();
        let mut nodes: Vec<NodeShare> = Vec::new();
        for t in stored.nodes {
            if nodes.last().is_none_or(|n| n.node_id != t.node_id) {
                nodes.push(NodeShare {
                    this_node: t.node_id == self.node_id,
                    node_id: t.node_id.clone(),
                    last_rollup: None,
                    http: Counts::default(),
                    streams: Counts::default(),
                });
            }
            let Some(share) = nodes.last_mut() else {
                continue;
            };
            share.last_rollup = share.last_rollup.max(Some(t.last_rollup));
            match t.scope.as_str() {
                SCOPE_HOST => share.http = share.http.plus(&t.counts),
                SCOPE_STREAM => share.streams = share.streams.plus(&t.counts),
                _ => {}
            }
        }
        if !nodes.iter().any(|n| n.this_node) {
            nodes.push(NodeShare {
                node_id: self.node_id.clone(),
                this_node: true,
                last_rollup: None,
                http: Counts::default(),
                streams: Counts::default(),
            });
            nodes.sort_by(|a, b| a.node_id.cmp(&b.node_id));
        }
        if let Some(me) = nodes.iter_mut().find(|n| n.this_node) {
            for ((scope, _), c) in &pending {
                match *scope {
                    SCOPE_HOST => me.http = me.http.plus(c),
                    SCOPE_STREAM => me.streams = me.streams.plus(c),
                    _ => {}
                }
            }
        }
        let mut series: HashMap<SeriesKey, Counts> = stored
            .series
            .into_iter()
            .filter_map(|r| Some(((scope_name(&r.scope)?, r.key), r.counts)))
            .collect();
        for (k, c) in pending {
            let e = series.entry(k).or_default();
            *e = e.plus(&c);
        }
        Ok(ClusterTotals { series, nodes })
    }

    /// This process' counters that no rollup has stored yet.
    fn pending(&self) -> HashMap<SeriesKey, Counts> {
        let previous = self.stored.lock().map(|s| s.clone()).unwrap_or_default();
        self.current()
            .into_iter()
            .map(|(k, c)| {
                let delta = match previous.get(&k) {
                    Some(p) => c.since(p),
                    None => c,
                };
                (k, delta)
            })
            .filter(|(_, c)| !c.is_zero())
            .collect()
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
        let store = self.store.stats();
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
        store.add_rollup(&self.node_id, ts, &rows).await?;
        if let Ok(mut s) = self.stored.lock() {
            *s = now;
        }
        let pruned = store.prune(ts, self.retention).await?;
        self.rollups
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(RollupResult {
            node_id: self.node_id.clone(),
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
                    if let Err(e) = self.rollup().await {
                        tracing::warn!(error = %e, "rolling up the traffic counters failed");
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
