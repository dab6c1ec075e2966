//! Cluster nodes: this node's id, its reports to a shared PostgreSQL
//! database (version, the revision it serves, listeners, a heartbeat), and
//! what the API says about every node (`GET /api/cluster/nodes`, the
//! `x-ppm-nodes-applied` header on config writes).
//!
//! On SQLite there is one node, this one, and nothing is written.

use std::cell::Cell;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context};
use ppm_core::engine::EngineHandle;
use ppm_core::store::ConfigStore;
use ppm_store::AnyStore;
use serde::Serialize;

use crate::api::ApiError;

/// The file in the data directory that keeps a generated node id.
pub const NODE_ID_FILE: &str = "node-id";

/// The response header of config writes saying how many live nodes serve
/// the written revision: `applied/live`.
pub const NODES_APPLIED_HEADER: &str = "x-ppm-nodes-applied";

/// A node is live while it reported within this many heartbeats.
const LIVE_HEARTBEATS: u32 = 3;

/// How often the heartbeat task looks whether the engine applied a new
/// revision (an atomic load), so the revision a node reports follows its
/// reloads closely.
const REVISION_CHECK: Duration = Duration::from_millis(20);

/// Nodes not seen for this long are forgotten.
const FORGET_AFTER_MS: i64 = 7 * 86_400_000;

tokio::task_local! {
    /// The newest revision an API request committed and applied, read by
    /// the middleware that reports how many nodes serve it.
    static COMMITTED: Cell<Option<u64>>;
}

/// Notes that the current API request committed and applied `revision`.
/// Outside a request (the ACME manager's own writes) it does nothing.
pub fn note_committed(revision: u64) {
    let _ = COMMITTED.try_with(|c| c.set(Some(c.get().map_or(revision, |r| r.max(revision)))));
}

/// Runs `request`, returning what it returned and the newest revision it
/// noted with [`note_committed`].
pub async fn track_committed<F: std::future::Future>(request: F) -> (F::Output, Option<u64>) {
    COMMITTED
        .scope(Cell::new(None), async move {
            let out = request.await;
            (out, COMMITTED.with(Cell::get))
        })
        .await
}

/// Checks a node id: 1 to 64 of `A-Z a-z 0-9 . _ -`.
pub fn validate_node_id(id: &str) -> Result<(), String> {
    if id.is_empty()
        || id.len() > 64
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err("must be 1 to 64 characters of A-Z a-z 0-9 . _ -".into());
    }
    Ok(())
}

/// This node's id: `given` (`--node-id`), else the one kept in
/// `data_dir/node-id`, generated and written there on first start.
pub fn node_id(given: Option<&str>, data_dir: &Path) -> anyhow::Result<String> {
    if let Some(id) = given {
        validate_node_id(id).map_err(|m| anyhow!("--node-id: {m}"))?;
        return Ok(id.to_owned());
    }
    let path = data_dir.join(NODE_ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(s) => {
            let id = s.trim();
            validate_node_id(id).map_err(|m| anyhow!("{}: the node id {m}", path.display()))?;
            Ok(id.to_owned())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let bytes = crate::auth::random_bytes::<6>();
            let id: String = std::iter::once("node-".to_owned())
                .chain(bytes.iter().map(|b| format!("{b:02x}")))
                .collect();
            std::fs::write(&path, format!("{id}\n"))
                .with_context(|| format!("{}: cannot keep the node id", path.display()))?;
            Ok(id)
        }
        Err(e) => Err(anyhow!("{}: cannot read the node id: {e}", path.display())),
    }
}

/// One node as `GET /api/cluster/nodes` shows it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct NodeView {
    /// The node's id (`--node-id`, or generated and kept in its data
    /// directory).
    pub id: String,
    /// Whether this is the node that answered.
    pub this_node: bool,
    /// The ppm version it runs.
    pub version: String,
    /// The newest schema version its build knows.
    pub schema_version: i64,
    /// The config revision it serves.
    pub revision: u64,
    /// Whether it serves the latest committed revision.
    pub applied_latest: bool,
    /// Whether it reported within the last three heartbeats; a node that
    /// stopped or lost the database is listed, not live.
    pub live: bool,
    /// Its listeners (`api 0.0.0.0:81`, `http ...`, `https ...`).
    pub listeners: Vec<String>,
    /// When it started, unix ms (database clock).
    pub started_at: i64,
    /// When it last reported, unix ms (database clock).
    pub last_seen: i64,
}

/// `GET /api/cluster/nodes`.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct NodesView {
    /// `sqlite` (one node) or `postgres`.
    pub backend: &'static str,
    /// The latest committed config revision.
    pub revision: u64,
    /// Live nodes serving `revision`.
    pub applied: usize,
    /// Live nodes.
    pub live: usize,
    /// The node that runs ACME orders and renewals now (holds the leader
    /// lease); on SQLite this node; `null` while no node holds the lease.
    pub acme_leader: Option<String>,
    /// Every node that reported in the last seven days, by id.
    pub nodes: Vec<NodeView>,
}

/// This node in the cluster: its identity and heartbeat.
pub struct Cluster {
    id: String,
    listeners: Vec<String>,
    store: Arc<AnyStore>,
    engine: EngineHandle,
    heartbeat: Duration,
    started_at: i64,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Cluster {
    /// Node `id` with these listeners, reporting every `heartbeat`.
    pub fn new(
        id: String,
        listeners: Vec<String>,
        store: Arc<AnyStore>,
        engine: EngineHandle,
        heartbeat: Duration,
    ) -> Self {
        Cluster {
            id,
            listeners,
            store,
            engine,
            heartbeat,
            started_at: now_ms(),
        }
    }

    /// This node's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn live_ms(&self) -> i64 {
        i64::try_from((self.heartbeat * LIVE_HEARTBEATS).as_millis()).unwrap_or(i64::MAX)
    }

    #[cfg(feature = "postgres")]
    fn record(&self, revision: u64) -> ppm_store::nodes::NodeRecord {
        ppm_store::nodes::NodeRecord::new(
            self.id.clone(),
            env!("CARGO_PKG_VERSION"),
            revision,
            self.listeners.clone(),
        )
    }

    /// Every node, as the API shows them.
    pub async fn nodes(&self) -> Result<NodesView, ApiError> {
        let serving = self.engine.revision();
        #[cfg(feature = "postgres")]
        if let Some(pg) = self.store.as_postgres() {
            let list = pg.nodes().await?;
            let live_ms = self.live_ms();
            let mut nodes: Vec<NodeView> = list
                .nodes
                .into_iter()
                .map(|n| {
                    let this_node = n.id == self.id;
                    // This node's own state is known without its report.
                    let revision = if this_node {
                        serving.max(n.revision)
                    } else {
                        n.revision
                    };
                    NodeView {
                        this_node,
                        live: this_node || list.now - n.last_seen <= live_ms,
                        applied_latest: revision >= list.revision,
                        revision,
                        id: n.id,
                        version: n.version,
                        schema_version: n.schema_version,
                        listeners: n.listeners,
                        started_at: n.started_at,
                        last_seen: n.last_seen,
                    }
                })
                .collect();
            if !nodes.iter().any(|n| n.this_node) {
                let mut me = self.local_view(serving, list.revision);
                me.last_seen = list.now;
                nodes.push(me);
                nodes.sort_by(|a, b| a.id.cmp(&b.id));
            }
            let leader = pg.lease_holder(crate::acme::cluster::LEASE).await?;
            return Ok(NodesView::new("postgres", list.revision, nodes, leader));
        }
        let latest = self.store.revision().await?;
        Ok(NodesView::new(
            self.store.backend(),
            latest,
            vec![self.local_view(serving, latest)],
            Some(self.id.clone()),
        ))
    }

    fn local_view(&self, serving: u64, latest: u64) -> NodeView {
        NodeView {
            id: self.id.clone(),
            this_node: true,
            version: env!("CARGO_PKG_VERSION").into(),
            schema_version: match self.store.as_sqlite() {
                Some(_) => ppm_store::SqliteStore::supported_schema_version(),
                #[cfg(feature = "postgres")]
                None => ppm_store::PostgresStore::supported_schema_version(),
                #[cfg(not(feature = "postgres"))]
                None => 0,
            },
            revision: serving,
            applied_latest: serving >= latest,
            live: true,
            listeners: self.listeners.clone(),
            started_at: self.started_at,
            last_seen: now_ms(),
        }
    }

    /// How many live nodes serve `revision` (or newer), and how many live
    /// nodes there are; `None` when the database cannot tell now.
    pub async fn applied(&self, revision: u64) -> Option<(usize, usize)> {
        #[cfg(feature = "postgres")]
        if let Some(pg) = self.store.as_postgres() {
            let list = pg.nodes().await.ok()?;
            let live_ms = self.live_ms();
            let mut live = 0;
            let mut applied = 0;
            let mut me = false;
            for n in &list.nodes {
                let this_node = n.id == self.id;
                me |= this_node;
                if this_node || list.now - n.last_seen <= live_ms {
                    live += 1;
                    if this_node || n.revision >= revision {
                        applied += 1;
                    }
                }
            }
            if !me {
                live += 1;
                applied += 1;
            }
            return Some((applied, live));
        }
        let _ = revision;
        Some((1, 1))
    }

    /// Reports this node to the database (PostgreSQL only) when it starts,
    /// after every revision the engine applies and every heartbeat, until
    /// `stop` completes.
    pub async fn run(self: Arc<Self>, stop: impl std::future::Future<Output = ()>) {
        #[cfg(feature = "postgres")]
        if let Some(pg) = self.store.as_postgres().cloned() {
            tokio::pin!(stop);
            let mut reported: Option<u64> = None;
            let mut next_beat = tokio::time::Instant::now();
            let mut beats: u64 = 0;
            let mut failing = false;
            loop {
                let serving = self.engine.revision();
                let now = tokio::time::Instant::now();
                if reported != Some(serving) || now >= next_beat {
                    // The first report of this process stamps started_at.
                    let restarted = reported.is_none();
                    match pg.report_node(&self.record(serving), restarted).await {
                        Ok(()) => {
                            if failing {
                                tracing::info!(node = %self.id, "reporting to the cluster again");
                            }
                            failing = false;
                            reported = Some(serving);
                        }
                        Err(e) => {
                            if !failing {
                                tracing::warn!(node = %self.id, error = %e, "reporting this node to the cluster failed; retrying");
                            }
                            failing = true;
                        }
                    }
                    next_beat = now + self.heartbeat;
                    beats += 1;
                    if beats % 720 == 1 {
                        if let Err(e) = pg.forget_nodes(FORGET_AFTER_MS).await {
                            tracing::debug!(error = %e, "forgetting old nodes failed");
                        }
                    }
                }
                tokio::select! {
                    _ = &mut stop => break,
                    _ = tokio::time::sleep(REVISION_CHECK) => {}
                }
            }
            return;
        }
        stop.await;
    }
}

impl NodesView {
    fn new(
        backend: &'static str,
        revision: u64,
        nodes: Vec<NodeView>,
        acme_leader: Option<String>,
    ) -> Self {
        let live = nodes.iter().filter(|n| n.live).count();
        let applied = nodes.iter().filter(|n| n.live && n.applied_latest).count();
        NodesView {
            backend,
            revision,
            applied,
            live,
            acme_leader,
            nodes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_are_kept_in_the_data_dir() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let a = node_id(None, dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert!(a.starts_with("node-") && a.len() == 17, "{a}");
        assert_eq!(node_id(None, dir.path()).ok(), Some(a.clone()));
        assert_eq!(
            node_id(Some("edge-1"), dir.path()).ok(),
            Some("edge-1".into())
        );
        assert!(node_id(Some("no spaces"), dir.path()).is_err());
        assert!(validate_node_id(&"x".repeat(65)).is_err());
    }
}
