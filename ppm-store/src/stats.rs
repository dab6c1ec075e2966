//! Traffic time series: the engine's counters rolled up per minute and per
//! hour, and totals that survive restarts.
//!
//! Like [`accounts`](crate::accounts), these are control-plane records, not
//! config. [`StatsStore`] is the whole interface the server uses, so another
//! backend implements only it; [`SqliteStore`] implements it (migration
//! `0004_stats.sql`), the PostgreSQL store does not yet
//! ([`AnyStore::stats`](crate::AnyStore::stats) answers `None` there).
//!
//! A rollup adds counter deltas to the minute row, the hour row and the
//! total row of each series in one transaction; rows are keyed by scope
//! (`host`, `upstream`, `stream`), key and start time (unix seconds), so
//! rolling up twice in a minute adds to the same row.

use async_trait::async_trait;
use ppm_core::stats::Counts;
use serde::Serialize;

use crate::error::WriteError;
use crate::sqlite::SqliteStore;

/// Scope of host series; keys are `<kind>:<id>` (`proxy:3`, `default:0`).
pub const SCOPE_HOST: &str = "host";
/// Scope of upstream series; keys are `host:port`.
pub const SCOPE_UPSTREAM: &str = "upstream";
/// Scope of stream series; keys are stream ids.
pub const SCOPE_STREAM: &str = "stream";

/// One series' counters.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StatsRow {
    /// `host`, `upstream` or `stream`.
    pub scope: String,
    /// The series within the scope.
    pub key: String,
    /// The counters.
    pub counts: Counts,
}

impl StatsRow {
    /// A row.
    pub fn new(scope: impl Into<String>, key: impl Into<String>, counts: Counts) -> Self {
        StatsRow {
            scope: scope.into(),
            key: key.into(),
            counts,
        }
    }
}

/// One point of a series: the counters of the bucket starting at `t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[non_exhaustive]
pub struct SeriesPoint {
    /// Start of the bucket, unix seconds.
    pub t: i64,
    /// Counters added during the bucket.
    #[serde(flatten)]
    pub counts: Counts,
}

/// Which rows a series reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Resolution {
    /// Minute rows.
    Minute,
    /// Hour rows.
    Hour,
}

/// How long rows are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Seconds of minute rows (default 48 hours).
    pub minute_secs: i64,
    /// Seconds of hour rows (default 90 days).
    pub hour_secs: i64,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            minute_secs: 48 * 3600,
            hour_secs: 90 * 86_400,
        }
    }
}

/// Storage of the traffic time series.
#[async_trait]
pub trait StatsStore: Send + Sync {
    /// Adds counter deltas to the minute containing `ts` (unix seconds),
    /// its hour, and the totals, in one transaction. Rows whose counters
    /// are all zero are skipped.
    async fn add_rollup(&self, ts: i64, rows: &[StatsRow]) -> Result<(), WriteError>;

    /// The series `scope`/`key` from `from` (inclusive) to `to` (exclusive),
    /// unix seconds, in buckets of `step` seconds starting at `from`
    /// rounded down to a multiple of `step`; buckets without rows are zero.
    async fn series(
        &self,
        scope: &str,
        key: &str,
        resolution: Resolution,
        from: i64,
        to: i64,
        step: i64,
    ) -> Result<Vec<SeriesPoint>, WriteError>;

    /// Totals of every series since the database was created.
    async fn totals(&self) -> Result<Vec<StatsRow>, WriteError>;

    /// Deletes minute and hour rows older than `retention` allows at `now`
    /// (unix seconds). Returns the number of rows deleted.
    async fn prune(&self, now: i64, retention: Retention) -> Result<u64, WriteError>;
}

/// The counter columns; the SQL built from them names only constants.
const COLUMNS: [&str; 15] = [
    "requests",
    "no_response",
    "status_1xx",
    "status_2xx",
    "status_3xx",
    "status_4xx",
    "status_5xx",
    "bytes_in",
    "bytes_out",
    "upstream_errors",
    "retries",
    "duration_us_sum",
    "duration_count",
    "upstream_us_sum",
    "upstream_count",
];

fn values(c: &Counts) -> [i64; 15] {
    let v = [
        c.requests,
        c.no_response,
        c.status_1xx,
        c.status_2xx,
        c.status_3xx,
        c.status_4xx,
        c.status_5xx,
        c.bytes_in,
        c.bytes_out,
        c.upstream_errors,
        c.retries,
        c.duration_us_sum,
        c.duration_count,
        c.upstream_us_sum,
        c.upstream_count,
    ];
    v.map(|x| i64::try_from(x).unwrap_or(i64::MAX))
}

fn counts_from(v: &[i64]) -> Counts {
    let g = |i: usize| v.get(i).map_or(0, |&x| u64::try_from(x).unwrap_or(0));
    let mut c = Counts::default();
    c.requests = g(0);
    c.no_response = g(1);
    c.status_1xx = g(2);
    c.status_2xx = g(3);
    c.status_3xx = g(4);
    c.status_4xx = g(5);
    c.status_5xx = g(6);
    c.bytes_in = g(7);
    c.bytes_out = g(8);
    c.upstream_errors = g(9);
    c.retries = g(10);
    c.duration_us_sum = g(11);
    c.duration_count = g(12);
    c.upstream_us_sum = g(13);
    c.upstream_count = g(14);
    c
}

/// `INSERT ... ON CONFLICT DO UPDATE` adding to `table` (plain SQL that
/// SQLite and PostgreSQL both take).
fn upsert_sql(table: &str, with_ts_key: bool) -> String {
    let cols = COLUMNS.join(", ");
    let params: Vec<String> = (4..4 + COLUMNS.len()).map(|i| format!("?{i}")).collect();
    let sets: Vec<String> = COLUMNS
        .iter()
        .map(|c| format!("{c} = {table}.{c} + excluded.{c}"))
        .collect();
    let conflict = if with_ts_key {
        "scope, key, ts"
    } else {
        "scope, key"
    };
    let ts_update = if with_ts_key {
        ""
    } else {
        "ts = excluded.ts, "
    };
    format!(
        "INSERT INTO {table} (scope, key, ts, {cols}) VALUES (?1, ?2, ?3, {}) \
         ON CONFLICT ({conflict}) DO UPDATE SET {ts_update}{}",
        params.join(", "),
        sets.join(", ")
    )
}

#[async_trait]
impl StatsStore for SqliteStore {
    async fn add_rollup(&self, ts: i64, rows: &[StatsRow]) -> Result<(), WriteError> {
        let minute = ts - ts.rem_euclid(60);
        let hour = ts - ts.rem_euclid(3600);
        let sqls = [
            (upsert_sql("stats_minute", true), minute),
            (upsert_sql("stats_hour", true), hour),
            (upsert_sql("stats_total", false), ts),
        ];
        let mut tx = self.write_pool().begin_with("BEGIN IMMEDIATE").await?;
        for row in rows.iter().filter(|r| !r.counts.is_zero()) {
            let v = values(&row.counts);
            for (sql, t) in &sqls {
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                    .bind(&row.scope)
                    .bind(&row.key)
                    .bind(*t);
                for x in v {
                    q = q.bind(x);
                }
                q.execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn series(
        &self,
        scope: &str,
        key: &str,
        resolution: Resolution,
        from: i64,
        to: i64,
        step: i64,
    ) -> Result<Vec<SeriesPoint>, WriteError> {
        let step = step.max(1);
        let start = from - from.rem_euclid(step);
        let table = match resolution {
            Resolution::Minute => "stats_minute",
            Resolution::Hour => "stats_hour",
        };
        let sums: Vec<String> = COLUMNS.iter().map(|c| format!("SUM({c})")).collect();
        let sql = format!(
            "SELECT ((ts - ?3) / ?5) * ?5 + ?3 AS b, {} FROM {table} \
             WHERE scope = ?1 AND key = ?2 AND ts >= ?3 AND ts < ?4 GROUP BY b ORDER BY b",
            sums.join(", ")
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(scope)
            .bind(key)
            .bind(start)
            .bind(to)
            .bind(step)
            .fetch_all(self.read_pool())
            .await?;
        let mut found = std::collections::HashMap::new();
        for r in rows {
            use sqlx::Row;
            let b: i64 = r.try_get(0)?;
            let mut v = [0i64; 15];
            for (i, x) in v.iter_mut().enumerate() {
                *x = r.try_get::<Option<i64>, _>(i + 1)?.unwrap_or(0);
            }
            found.insert(b, counts_from(&v));
        }
        let mut out = Vec::new();
        let mut t = start;
        while t < to {
            out.push(SeriesPoint {
                t,
                counts: found.remove(&t).unwrap_or_default(),
            });
            t += step;
        }
        Ok(out)
    }

    async fn totals(&self) -> Result<Vec<StatsRow>, WriteError> {
        let sql = format!(
            "SELECT scope, key, {} FROM stats_total ORDER BY scope, key",
            COLUMNS.join(", ")
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(self.read_pool())
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            use sqlx::Row;
            let mut v = [0i64; 15];
            for (i, x) in v.iter_mut().enumerate() {
                *x = r.try_get(i + 2)?;
            }
            out.push(StatsRow {
                scope: r.try_get(0)?,
                key: r.try_get(1)?,
                counts: counts_from(&v),
            });
        }
        Ok(out)
    }

    async fn prune(&self, now: i64, retention: Retention) -> Result<u64, WriteError> {
        let a = sqlx::query("DELETE FROM stats_minute WHERE ts < ?1")
            .bind(now - retention.minute_secs)
            .execute(self.write_pool())
            .await?
            .rows_affected();
        let b = sqlx::query("DELETE FROM stats_hour WHERE ts < ?1")
            .bind(now - retention.hour_secs)
            .execute(self.write_pool())
            .await?
            .rows_affected();
        Ok(a + b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| unreachable!("{e}"));
        let s = SqliteStore::open_dir(dir.path())
            .await
            .unwrap_or_else(|e| unreachable!("{e}"));
        (dir, s)
    }

    fn counts(requests: u64, bytes_out: u64) -> Counts {
        let mut c = Counts::default();
        c.requests = requests;
        c.status_2xx = requests;
        c.bytes_out = bytes_out;
        c
    }

    #[tokio::test]
    async fn rollups_add_up_in_minutes_hours_and_totals() -> Result<(), WriteError> {
        let (_d, s) = store().await;
        let t0 = 1_700_000_000 - 1_700_000_000 % 3600;
        s.add_rollup(t0 + 5, &[StatsRow::new("host", "proxy:1", counts(2, 10))])
            .await?;
        s.add_rollup(t0 + 50, &[StatsRow::new("host", "proxy:1", counts(3, 5))])
            .await?;
        s.add_rollup(t0 + 65, &[StatsRow::new("host", "proxy:1", counts(1, 1))])
            .await?;
        let m = s
            .series("host", "proxy:1", Resolution::Minute, t0, t0 + 180, 60)
            .await?;
        let reqs: Vec<u64> = m.iter().map(|p| p.counts.requests).collect();
        assert_eq!(reqs, vec![5, 1, 0]);
        let h = s
            .series("host", "proxy:1", Resolution::Hour, t0, t0 + 3600, 3600)
            .await?;
        assert_eq!(h[0].counts.requests, 6);
        assert_eq!(h[0].counts.bytes_out, 16);
        let t = s.totals().await?;
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].counts.requests, 6);

        // Minute rows go after 2 minutes, hour rows stay.
        let pruned = s
            .prune(
                t0 + 240,
                Retention {
                    minute_secs: 120,
                    hour_secs: 86_400,
                },
            )
            .await?;
        assert_eq!(pruned, 2);
        let m = s
            .series("host", "proxy:1", Resolution::Minute, t0, t0 + 180, 60)
            .await?;
        assert!(m.iter().all(|p| p.counts.requests == 0));
        assert_eq!(s.totals().await?[0].counts.requests, 6);
        Ok(())
    }
}
