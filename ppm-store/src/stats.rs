//! Traffic time series: the engine's counters rolled up per minute and per
//! hour, and totals that survive restarts.
//!
//! Like [`accounts`](crate::accounts), these are control-plane records, not
//! config. [`StatsStore`] is the whole interface the server uses; both
//! backends implement it with the same SQL (SQLite migrations `0004` and
//! `0005`, PostgreSQL migration `0004`).
//!
//! Statistics are recorded per node: several nodes (ppm-server processes)
//! share one database, and each adds its own rows, keyed by its node id, so
//! nodes never write the same row. The reads sum across nodes
//! ([`series`](StatsStore::series), [`totals`](StatsStore::totals)) or give
//! each node's share ([`series_by_node`](StatsStore::series_by_node),
//! [`totals_by_node`](StatsStore::totals_by_node)), or both at once
//! ([`totals_summary`](StatsStore::totals_summary)).
//!
//! A rollup adds one node's counter deltas to the minute row, the hour row
//! and the total row of each series in one transaction; rows are keyed by
//! scope (`host`, `upstream`, `stream`), key, start time (unix seconds) and
//! node, so rolling up twice in a minute adds to the same row.

use std::collections::BTreeMap;

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

/// One node's points of a series.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeSeries {
    /// The node that recorded them (empty for rows recorded before
    /// statistics were kept per node).
    pub node_id: String,
    /// One point per bucket, as [`StatsStore::series`] returns them.
    pub points: Vec<SeriesPoint>,
}

/// One node's totals.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeTotals {
    /// The node that recorded them (empty for rows recorded before
    /// statistics were kept per node).
    pub node_id: String,
    /// The node's last rollup that added to any of them, unix seconds.
    pub last_rollup: i64,
    /// Its totals per series, by scope and key.
    pub rows: Vec<StatsRow>,
}

/// One node's totals of one scope, summed over the scope's series.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeScopeTotals {
    /// The node that recorded them (empty for rows recorded before
    /// statistics were kept per node).
    pub node_id: String,
    /// `host`, `upstream` or `stream`.
    pub scope: String,
    /// The node's last rollup that added to the scope, unix seconds.
    pub last_rollup: i64,
    /// The counters.
    pub counts: Counts,
}

/// The totals as a summary needs them, read at one point in time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TotalsSummary {
    /// Every series' totals summed across nodes, by scope and key.
    pub series: Vec<StatsRow>,
    /// Each node's totals per scope, by node id and scope; for each scope
    /// they add up to the sum of that scope's `series`.
    pub nodes: Vec<NodeScopeTotals>,
}

/// Storage of the traffic time series, recorded per node.
#[async_trait]
pub trait StatsStore: Send + Sync {
    /// Adds node `node_id`'s counter deltas to the minute containing `ts`
    /// (unix seconds), its hour, and the node's totals, in one transaction.
    /// Rows whose counters are all zero are skipped; rows of the same scope
    /// and key are added up.
    async fn add_rollup(&self, node_id: &str, ts: i64, rows: &[StatsRow])
        -> Result<(), WriteError>;

    /// Each node's points of the series `scope`/`key` from `from`
    /// (inclusive) to `to` (exclusive), unix seconds, in buckets of `step`
    /// seconds starting at `from` rounded down to a multiple of `step`;
    /// buckets without rows are zero. Nodes without rows in the range are
    /// left out; the nodes are ordered by id.
    async fn series_by_node(
        &self,
        scope: &str,
        key: &str,
        resolution: Resolution,
        from: i64,
        to: i64,
        step: i64,
    ) -> Result<Vec<NodeSeries>, WriteError>;

    /// The series as [`series_by_node`](Self::series_by_node) reads it,
    /// summed across nodes: one point per bucket.
    async fn series(
        &self,
        scope: &str,
        key: &str,
        resolution: Resolution,
        from: i64,
        to: i64,
        step: i64,
    ) -> Result<Vec<SeriesPoint>, WriteError> {
        let nodes = self
            .series_by_node(scope, key, resolution, from, to, step)
            .await?;
        Ok(sum_series(&nodes, from, to, step))
    }

    /// Each node's totals since the database was created, by node id.
    async fn totals_by_node(&self) -> Result<Vec<NodeTotals>, WriteError>;

    /// Every series' totals summed across nodes, and each node's totals
    /// per scope, from one snapshot of the database. Reads as many rows as
    /// there are series plus nodes times scopes, where
    /// [`totals_by_node`](Self::totals_by_node) reads every node's row of
    /// every series.
    async fn totals_summary(&self) -> Result<TotalsSummary, WriteError>;

    /// Totals of every series since the database was created, summed
    /// across nodes, by scope and key.
    async fn totals(&self) -> Result<Vec<StatsRow>, WriteError> {
        Ok(self.totals_summary().await?.series)
    }

    /// Deletes every node's minute and hour rows older than `retention`
    /// allows at `now` (unix seconds); totals stay. Returns the number of
    /// rows deleted.
    async fn prune(&self, now: i64, retention: Retention) -> Result<u64, WriteError>;
}

/// The buckets of a series from `from` to `to` in steps of `step`: the
/// start times [`StatsStore::series`] answers with.
fn buckets(from: i64, to: i64, step: i64) -> impl Iterator<Item = i64> {
    let step = step.max(1);
    let start = from - from.rem_euclid(step);
    (0..)
        .map(move |i: i64| start.saturating_add(i.saturating_mul(step)))
        .take_while(move |t| *t < to)
}

/// Sums each node's points bucket by bucket; the buckets are those of a
/// series from `from` to `to` in steps of `step`.
pub fn sum_series(nodes: &[NodeSeries], from: i64, to: i64, step: i64) -> Vec<SeriesPoint> {
    let mut out: Vec<SeriesPoint> = buckets(from, to, step)
        .map(|t| SeriesPoint {
            t,
            counts: Counts::default(),
        })
        .collect();
    for n in nodes {
        for (sum, p) in out.iter_mut().zip(&n.points) {
            sum.counts = sum.counts.plus(&p.counts);
        }
    }
    out
}

/// Sums each node's totals per scope and key, ordered by scope and key.
pub fn sum_totals(nodes: &[NodeTotals]) -> Vec<StatsRow> {
    let mut sums: BTreeMap<(&str, &str), Counts> = BTreeMap::new();
    for n in nodes {
        for r in &n.rows {
            let e = sums.entry((&r.scope, &r.key)).or_default();
            *e = e.plus(&r.counts);
        }
    }
    sums.into_iter()
        .map(|((scope, key), counts)| StatsRow::new(scope, key, counts))
        .collect()
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

/// The SQL of the stats tables, the same text for SQLite and PostgreSQL:
/// `$n` placeholders (sqlx binds them by number on SQLite too), `ON
/// CONFLICT ... DO UPDATE` with `excluded`, and `CAST(SUM(..) AS BIGINT)`,
/// which is an integer on both (PostgreSQL's `SUM` of a `BIGINT` is
/// `NUMERIC` otherwise).
mod sql {
    use super::{Resolution, COLUMNS};

    /// The table of a resolution.
    pub(super) fn table(resolution: Resolution) -> &'static str {
        match resolution {
            Resolution::Minute => "stats_minute",
            Resolution::Hour => "stats_hour",
        }
    }

    /// `INSERT ... ON CONFLICT DO UPDATE` adding `rows` rows of one node to
    /// `table`: `$1` node, `$2` ts, then per row scope, key and the
    /// counters. The rows must differ in scope or key (PostgreSQL refuses
    /// to update a row twice in one statement). Totals (`with_ts_key`
    /// false) keep one row per node, scope and key, and their ts becomes the
    /// latest rollup's.
    pub(super) fn upsert(table: &str, with_ts_key: bool, rows: usize) -> String {
        let cols = COLUMNS.join(", ");
        let values: Vec<String> = (0..rows)
            .map(|r| {
                let first = 3 + r * (2 + COLUMNS.len());
                let params: Vec<String> = (first..first + 2 + COLUMNS.len())
                    .map(|i| format!("${i}"))
                    .collect();
                format!("($1, $2, {})", params.join(", "))
            })
            .collect();
        let sets: Vec<String> = COLUMNS
            .iter()
            .map(|c| format!("{c} = {table}.{c} + excluded.{c}"))
            .collect();
        let (conflict, ts_update) = if with_ts_key {
            ("scope, key, ts, node_id", "")
        } else {
            ("scope, key, node_id", "ts = excluded.ts, ")
        };
        format!(
            "INSERT INTO {table} (node_id, ts, scope, key, {cols}) VALUES {} \
             ON CONFLICT ({conflict}) DO UPDATE SET {ts_update}{}",
            values.join(", "),
            sets.join(", ")
        )
    }

    /// Each node's sums per bucket: `$1` scope, `$2` key, `$3` first bucket,
    /// `$4` end, `$5` step. Columns: node, bucket start, the counters.
    pub(super) fn series_by_node(resolution: Resolution) -> String {
        let sums: Vec<String> = COLUMNS
            .iter()
            .map(|c| format!("CAST(SUM({c}) AS BIGINT)"))
            .collect();
        format!(
            "SELECT node_id, $3 + ((ts - $3) / $5) * $5 AS b, {} FROM {} \
             WHERE scope = $1 AND key = $2 AND ts >= $3 AND ts < $4 \
             GROUP BY node_id, b ORDER BY node_id, b",
            sums.join(", "),
            table(resolution)
        )
    }

    /// Every node's totals. Columns: node, scope, key, ts, the counters.
    pub(super) fn totals_by_node() -> String {
        format!(
            "SELECT node_id, scope, key, ts, {} FROM stats_total ORDER BY node_id, scope, key",
            COLUMNS.join(", ")
        )
    }

    /// The totals summed per series, then per node and scope, in one
    /// statement (so from one snapshot). Columns: part (0: per series, 1:
    /// per node and scope), node, scope, key, ts, the counters.
    pub(super) fn totals_summary() -> String {
        let sums: Vec<String> = COLUMNS
            .iter()
            .map(|c| format!("CAST(SUM({c}) AS BIGINT)"))
            .collect();
        let sums = sums.join(", ");
        format!(
            "SELECT CAST(0 AS BIGINT), CAST(NULL AS TEXT), scope, key, CAST(MAX(ts) AS BIGINT), \
             {sums} FROM stats_total GROUP BY scope, key \
             UNION ALL \
             SELECT CAST(1 AS BIGINT), node_id, scope, CAST(NULL AS TEXT), CAST(MAX(ts) AS BIGINT), \
             {sums} FROM stats_total GROUP BY node_id, scope \
             ORDER BY 1, 2, 3, 4"
        )
    }

    /// Deletes the rows of `table` before `$1`.
    pub(super) fn prune(table: &str) -> String {
        format!("DELETE FROM {table} WHERE ts < $1")
    }
}

/// Reads the 15 counters starting at column `first`.
fn row_counts<R>(row: &R, first: usize) -> Result<Counts, sqlx::Error>
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    Option<i64>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let mut v = [0i64; 15];
    for (i, x) in v.iter_mut().enumerate() {
        *x = row.try_get::<Option<i64>, _>(first + i)?.unwrap_or(0);
    }
    Ok(counts_from(&v))
}

/// Groups `(node, bucket, counts)` rows ordered by node into each node's
/// zero-filled series.
fn group_series(
    rows: Vec<(String, i64, Counts)>,
    from: i64,
    to: i64,
    step: i64,
) -> Vec<NodeSeries> {
    let mut out: Vec<NodeSeries> = Vec::new();
    let mut found: BTreeMap<i64, Counts> = BTreeMap::new();
    let mut node: Option<String> = None;
    let mut flush = |node: Option<String>, found: &mut BTreeMap<i64, Counts>| {
        if let Some(node_id) = node {
            out.push(NodeSeries {
                node_id,
                points: buckets(from, to, step)
                    .map(|t| SeriesPoint {
                        t,
                        counts: found.remove(&t).unwrap_or_default(),
                    })
                    .collect(),
            });
        }
        found.clear();
    };
    for (n, b, c) in rows {
        if node.as_deref() != Some(n.as_str()) {
            flush(node.take(), &mut found);
            node = Some(n);
        }
        found.insert(b, c);
    }
    flush(node, &mut found);
    out
}

/// Groups `(node, row, ts)` rows ordered by node into each node's totals.
fn group_totals(rows: Vec<(String, StatsRow, i64)>) -> Vec<NodeTotals> {
    let mut out: Vec<NodeTotals> = Vec::new();
    for (node_id, row, ts) in rows {
        match out.last_mut() {
            Some(n) if n.node_id == node_id => {
                n.last_rollup = n.last_rollup.max(ts);
                n.rows.push(row);
            }
            _ => out.push(NodeTotals {
                node_id,
                last_rollup: ts,
                rows: vec![row],
            }),
        }
    }
    out
}

/// Rows per statement of a rollup (17 parameters each). Batching saves
/// round trips to PostgreSQL: a rollup of 1,000 series took 0.6–1.1 s row
/// by row and about 0.17 s in statements of 32 rows on a local server. Much
/// longer statements made SQLite slower (about 2 s at 256 rows), so the
/// batches stay short.
const ROWS_PER_STATEMENT: usize = 32;

/// `rows` without zero counters, with the counters of rows of the same
/// scope and key added up, in scope and key order.
fn merged(rows: &[StatsRow]) -> Vec<StatsRow> {
    let mut out: BTreeMap<(&str, &str), Counts> = BTreeMap::new();
    for r in rows.iter().filter(|r| !r.counts.is_zero()) {
        let e = out.entry((&r.scope, &r.key)).or_default();
        *e = e.plus(&r.counts);
    }
    out.into_iter()
        .map(|((scope, key), counts)| StatsRow::new(scope, key, counts))
        .collect()
}

/// [`StatsStore`] on a backend: the same SQL on both, with the backend's
/// read pool, write pool and the statement that begins a write transaction.
macro_rules! stats_store {
    ($store:ty, $read:ident, $write:ident, $begin:literal) => {
        #[async_trait]
        impl StatsStore for $store {
            async fn add_rollup(
                &self,
                node_id: &str,
                ts: i64,
                rows: &[StatsRow],
            ) -> Result<(), WriteError> {
                let rows = merged(rows);
                if rows.is_empty() {
                    return Ok(());
                }
                let minute = ts - ts.rem_euclid(60);
                let hour = ts - ts.rem_euclid(3600);
                let mut tx = self.$write().begin_with($begin).await?;
                for chunk in rows.chunks(ROWS_PER_STATEMENT) {
                    for (table, with_ts_key, t) in [
                        ("stats_minute", true, minute),
                        ("stats_hour", true, hour),
                        ("stats_total", false, ts),
                    ] {
                        let sql = sql::upsert(table, with_ts_key, chunk.len());
                        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(node_id).bind(t);
                        for row in chunk {
                            q = q.bind(&row.scope).bind(&row.key);
                            for x in values(&row.counts) {
                                q = q.bind(x);
                            }
                        }
                        q.execute(&mut *tx).await?;
                    }
                }
                tx.commit().await?;
                Ok(())
            }

            async fn series_by_node(
                &self,
                scope: &str,
                key: &str,
                resolution: Resolution,
                from: i64,
                to: i64,
                step: i64,
            ) -> Result<Vec<NodeSeries>, WriteError> {
                use sqlx::Row;
                let step = step.max(1);
                let start = from - from.rem_euclid(step);
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql::series_by_node(resolution)))
                    .bind(scope)
                    .bind(key)
                    .bind(start)
                    .bind(to)
                    .bind(step)
                    .fetch_all(self.$read())
                    .await?;
                let mut found = Vec::with_capacity(rows.len());
                for r in rows {
                    found.push((r.try_get(0)?, r.try_get(1)?, row_counts(&r, 2)?));
                }
                Ok(group_series(found, from, to, step))
            }

            async fn totals_by_node(&self) -> Result<Vec<NodeTotals>, WriteError> {
                use sqlx::Row;
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql::totals_by_node()))
                    .fetch_all(self.$read())
                    .await?;
                let mut found = Vec::with_capacity(rows.len());
                for r in rows {
                    let row = StatsRow {
                        scope: r.try_get(1)?,
                        key: r.try_get(2)?,
                        counts: row_counts(&r, 4)?,
                    };
                    found.push((r.try_get(0)?, row, r.try_get(3)?));
                }
                Ok(group_totals(found))
            }

            async fn totals_summary(&self) -> Result<TotalsSummary, WriteError> {
                use sqlx::Row;
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql::totals_summary()))
                    .fetch_all(self.$read())
                    .await?;
                let mut out = TotalsSummary::default();
                for r in rows {
                    let part: i64 = r.try_get(0)?;
                    let scope: String = r.try_get(2)?;
                    let counts = row_counts(&r, 5)?;
                    if part == 0 {
                        let key: Option<String> = r.try_get(3)?;
                        out.series
                            .push(StatsRow::new(scope, key.unwrap_or_default(), counts));
                    } else {
                        let node_id: Option<String> = r.try_get(1)?;
                        out.nodes.push(NodeScopeTotals {
                            node_id: node_id.unwrap_or_default(),
                            scope,
                            last_rollup: r.try_get::<Option<i64>, _>(4)?.unwrap_or(0),
                            counts,
                        });
                    }
                }
                Ok(out)
            }

            async fn prune(&self, now: i64, retention: Retention) -> Result<u64, WriteError> {
                let mut deleted = 0;
                for (table, keep) in [
                    ("stats_minute", retention.minute_secs),
                    ("stats_hour", retention.hour_secs),
                ] {
                    deleted += sqlx::query(sqlx::AssertSqlSafe(sql::prune(table)))
                        .bind(now - keep)
                        .execute(self.$write())
                        .await?
                        .rows_affected();
                }
                Ok(deleted)
            }
        }
    };
}

stats_store!(SqliteStore, read_pool, write_pool, "BEGIN IMMEDIATE");
#[cfg(feature = "postgres")]
stats_store!(crate::postgres::PostgresStore, pool, pool, "BEGIN");

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
        s.add_rollup(
            "a",
            t0 + 5,
            &[StatsRow::new("host", "proxy:1", counts(2, 10))],
        )
        .await?;
        s.add_rollup(
            "a",
            t0 + 50,
            &[StatsRow::new("host", "proxy:1", counts(3, 5))],
        )
        .await?;
        s.add_rollup(
            "a",
            t0 + 65,
            &[StatsRow::new("host", "proxy:1", counts(1, 1))],
        )
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
