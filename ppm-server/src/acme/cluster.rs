//! ACME across nodes sharing one PostgreSQL database: a lease in the
//! database elects the one node that talks to the CA ([`DbLease`]), and
//! HTTP-01 answers are published through the database so that whichever
//! node the CA reaches answers the challenge ([`DbTokens`]).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ppm_core::async_trait;
use ppm_filters::AcmeTokens;
use ppm_store::PostgresStore;

use super::{Http01Tokens, OrderLease};

/// The lease's name in `cluster_leases`.
pub const LEASE: &str = "acme";

/// How long a publisher waits for the other live nodes to load a token
/// before asking the CA to validate anyway.
const TOKEN_WAIT: Duration = Duration::from_secs(5);

/// The ACME leader lease: a row in the database naming the node that may
/// run orders until it expires. The holder renews it every third of its
/// lifetime; when the holder dies, another node takes it within a lifetime
/// and a third.
pub struct DbLease {
    store: PostgresStore,
    node: String,
    ttl: Duration,
    held: AtomicBool,
    /// Set when the manager stopped: the lease is not taken again.
    stopped: AtomicBool,
}

impl std::fmt::Debug for DbLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbLease")
            .field("node", &self.node)
            .field("held", &self.held.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl DbLease {
    /// The lease for node `node`, lasting `ttl` per renewal.
    pub fn new(store: PostgresStore, node: String, ttl: Duration) -> Self {
        DbLease {
            store,
            node,
            ttl,
            held: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
        }
    }

    fn ttl_ms(&self) -> i64 {
        i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX / 4)
    }

    /// Takes or renews the lease once; returns whether this node holds it.
    async fn try_hold(&self) -> bool {
        if self.stopped.load(Ordering::Acquire) {
            return false;
        }
        let held = match self
            .store
            .acquire_lease(LEASE, &self.node, self.ttl_ms())
            .await
        {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(error = %e, "ACME: renewing the leader lease failed");
                false
            }
        };
        let was = self.held.swap(held, Ordering::AcqRel);
        if held && !was {
            tracing::info!(node = %self.node, "ACME: this node now runs orders and renewals (leader lease taken)");
        } else if was && !held {
            tracing::warn!(node = %self.node, "ACME: lost the leader lease; another node runs orders");
        }
        held
    }

    /// Renews (or tries to take) the lease every third of its lifetime
    /// until the task is aborted.
    pub fn start(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                self.try_hold().await;
                tokio::time::sleep(self.ttl / 3).await;
            }
        })
    }
}

#[async_trait]
impl OrderLease for DbLease {
    async fn may_run_orders(&self) -> bool {
        self.held.load(Ordering::Acquire) || self.try_hold().await
    }

    fn retry_after(&self) -> Duration {
        self.ttl / 3
    }

    /// Orders taken by other nodes' APIs start within a third of the lease.
    fn poll_every(&self) -> Option<Duration> {
        Some(self.ttl / 3)
    }

    async fn release(&self) {
        self.stopped.store(true, Ordering::Release);
        if self.held.swap(false, Ordering::AcqRel) {
            if let Err(e) = self.store.release_lease(LEASE, &self.node).await {
                tracing::warn!(error = %e, "ACME: releasing the leader lease failed");
            }
        }
    }
}

/// HTTP-01 answers shared through the database: the node running an order
/// publishes there, every node loads them into its in-memory [`AcmeTokens`]
/// (which the challenge filter reads without touching the database), and
/// the publisher waits until every live node has loaded the answer before
/// the CA is asked to validate.
pub struct DbTokens {
    store: PostgresStore,
    local: AcmeTokens,
    node: String,
    live: Duration,
}

impl std::fmt::Debug for DbTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbTokens")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl DbTokens {
    /// Publishes for node `node` to `store`, serving from `local`; nodes
    /// seen within `live` are waited for. Starts the task that keeps
    /// `local` equal to the database's tokens.
    pub fn start(
        store: PostgresStore,
        local: AcmeTokens,
        node: String,
        live: Duration,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let loaded: Mutex<HashSet<String>> = Mutex::new(HashSet::new());
        let sink = local.clone();
        let task = store.sync_http01_tokens(node.clone(), Duration::from_secs(5), move |tokens| {
            let mut loaded = loaded.lock().unwrap_or_else(|e| e.into_inner());
            let now: HashSet<String> = tokens.iter().map(|t| t.token.clone()).collect();
            for gone in loaded.difference(&now) {
                sink.remove(gone);
            }
            for t in tokens {
                if let Err(e) = sink.insert(t.token.as_str(), t.key_authorization.as_str()) {
                    tracing::warn!(error = %e, "ACME: a stored challenge token was refused");
                }
            }
            *loaded = now;
        });
        (
            DbTokens {
                store,
                local,
                node,
                live,
            },
            task,
        )
    }
}

#[async_trait]
impl Http01Tokens for DbTokens {
    async fn publish(&self, token: &str, key_authorization: &str) -> Result<(), String> {
        self.local
            .insert(token, key_authorization)
            .map_err(|e| format!("publishing the HTTP-01 token: {e}"))?;
        let serial = match self
            .store
            .publish_http01_token(token, key_authorization)
            .await
        {
            Ok(serial) => serial,
            Err(e) => {
                self.local.remove(token);
                return Err(format!("publishing the HTTP-01 token to the cluster: {e}"));
            }
        };
        let live_ms = i64::try_from(self.live.as_millis()).unwrap_or(i64::MAX / 4);
        let deadline = tokio::time::Instant::now() + TOKEN_WAIT;
        loop {
            match self
                .store
                .http01_tokens_lagging(&self.node, serial, live_ms)
                .await
            {
                Ok(0) => return Ok(()),
                Ok(n) if tokio::time::Instant::now() >= deadline => {
                    tracing::warn!(
                        nodes = n,
                        "ACME: not every node loaded the HTTP-01 token in time; validating anyway"
                    );
                    return Ok(());
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "ACME: checking the nodes' HTTP-01 tokens failed");
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn withdraw(&self, token: &str) {
        if let Err(e) = self.store.withdraw_http01_token(token).await {
            tracing::warn!(error = %e, "ACME: withdrawing the HTTP-01 token failed");
        }
        self.local.remove(token);
    }
}
