//! Cluster nodes: the row each ppm-server node sharing a PostgreSQL
//! database keeps current (its id, version, the revision it serves, its
//! listeners and when it was last seen), so any node can tell which nodes
//! exist and which have applied a revision.
//!
//! These are control-plane records, not config: they do not change the
//! revision, are not in the history and are not exported. Times are unix
//! milliseconds by the database's clock, so clock skew between nodes does
//! not make a node look dead or alive.

use serde::{Deserialize, Serialize};

use crate::error::WriteError;
use crate::postgres::PostgresStore;

/// The database's clock in unix milliseconds, in SQL.
macro_rules! db_now_ms {
    () => {
        "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT"
    };
}

/// What one node last reported about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NodeRecord {
    /// The node's id (unique per node).
    pub id: String,
    /// The ppm version it runs.
    pub version: String,
    /// The newest schema version its build knows.
    pub schema_version: i64,
    /// The config revision it serves.
    pub revision: u64,
    /// Its listeners, for people (`api 0.0.0.0:81`).
    pub listeners: Vec<String>,
    /// When it first reported since it started (unix ms, database clock).
    pub started_at: i64,
    /// When it last reported (unix ms, database clock).
    pub last_seen: i64,
}

impl NodeRecord {
    /// A report from node `id`; the times are set by the database.
    pub fn new(
        id: impl Into<String>,
        version: impl Into<String>,
        revision: u64,
        listeners: Vec<String>,
    ) -> Self {
        NodeRecord {
            id: id.into(),
            version: version.into(),
            schema_version: PostgresStore::supported_schema_version(),
            revision,
            listeners,
            started_at: 0,
            last_seen: 0,
        }
    }
}

/// Every node's last report, with the database's view of now.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeList {
    /// The database's clock when the list was read (unix ms).
    pub now: i64,
    /// The latest committed config revision.
    pub revision: u64,
    /// The nodes, by id.
    pub nodes: Vec<NodeRecord>,
}

#[derive(sqlx::FromRow)]
struct NodeRow {
    id: String,
    version: String,
    schema_version: i64,
    revision: i64,
    listeners: String,
    started_at: i64,
    last_seen: i64,
}

impl TryFrom<NodeRow> for NodeRecord {
    type Error = WriteError;

    fn try_from(r: NodeRow) -> Result<Self, WriteError> {
        Ok(NodeRecord {
            listeners: serde_json::from_str(&r.listeners)
                .map_err(|e| WriteError::Corrupt(format!("cluster_nodes.listeners: {e}")))?,
            revision: u64::try_from(r.revision)
                .map_err(|_| WriteError::Corrupt("cluster_nodes.revision < 0".into()))?,
            id: r.id,
            version: r.version,
            schema_version: r.schema_version,
            started_at: r.started_at,
            last_seen: r.last_seen,
        })
    }
}

impl PostgresStore {
    /// Records `node`'s report, stamping `last_seen` with the database's
    /// clock. With `restarted`, `started_at` is stamped too (the first
    /// report of a process).
    pub async fn report_node(&self, node: &NodeRecord, restarted: bool) -> Result<(), WriteError> {
        let listeners = serde_json::to_string(&node.listeners)
            .map_err(|e| WriteError::Corrupt(e.to_string()))?;
        let revision = i64::try_from(node.revision).unwrap_or(i64::MAX);
        sqlx::query(concat!(
            "INSERT INTO cluster_nodes
                (id, version, schema_version, revision, listeners, started_at, last_seen)
             VALUES ($1, $2, $3, $4, $5, ",
            db_now_ms!(),
            ", ",
            db_now_ms!(),
            ")
             ON CONFLICT (id) DO UPDATE SET
                version = excluded.version, schema_version = excluded.schema_version,
                revision = excluded.revision, listeners = excluded.listeners,
                started_at = CASE WHEN $6 THEN excluded.started_at
                                  ELSE cluster_nodes.started_at END,
                last_seen = excluded.last_seen"
        ))
        .bind(&node.id)
        .bind(&node.version)
        .bind(node.schema_version)
        .bind(revision)
        .bind(listeners)
        .bind(restarted)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Every node's last report and the latest revision, read in one
    /// snapshot.
    pub async fn nodes(&self) -> Result<NodeList, WriteError> {
        let mut tx = self
            .pool()
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await?;
        let (now, revision): (i64, i64) = sqlx::query_as(concat!(
            "SELECT ",
            db_now_ms!(),
            ", revision FROM meta WHERE id = 1"
        ))
        .fetch_one(&mut *tx)
        .await?;
        let rows: Vec<NodeRow> = sqlx::query_as(
            "SELECT id, version, schema_version, revision, listeners, started_at, last_seen
             FROM cluster_nodes ORDER BY id",
        )
        .fetch_all(&mut *tx)
        .await?;
        tx.rollback().await?;
        Ok(NodeList {
            now,
            revision: u64::try_from(revision)
                .map_err(|_| WriteError::Corrupt("meta.revision < 0".into()))?,
            nodes: rows
                .into_iter()
                .map(NodeRecord::try_from)
                .collect::<Result<_, _>>()?,
        })
    }

    /// Forgets nodes not seen for `unseen_ms` milliseconds; returns how
    /// many.
    pub async fn forget_nodes(&self, unseen_ms: i64) -> Result<u64, WriteError> {
        let done = sqlx::query(concat!(
            "DELETE FROM cluster_nodes WHERE last_seen < ",
            db_now_ms!(),
            " - $1"
        ))
        .bind(unseen_ms)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }
}
