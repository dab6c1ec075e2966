//! [`PostgresStore`]: the config in PostgreSQL, shared by many nodes.

mod dialect;
// The code both backends share, compiled here against `dialect` (see
// `shared/mod.rs`).
#[allow(clippy::duplicate_mod)]
#[path = "../shared/accounts.rs"]
mod accounts;
#[allow(clippy::duplicate_mod)]
#[path = "../shared/read.rs"]
mod read;
#[allow(clippy::duplicate_mod)]
#[path = "../shared/store.rs"]
mod store;
#[allow(clippy::duplicate_mod)]
#[path = "../shared/write.rs"]
mod write;

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use ppm_core::error::StoreError;
use ppm_core::store::{ChangeNotifier, ChangeSignal, ConfigStore, Snapshot};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgListener, PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};
use tokio::task::JoinHandle;

use self::dialect::{unavailable, write_unavailable};
use self::read::Scope;
use crate::checkpoint::Checkpoints;
use crate::error::{backend, OpenError, WriteError};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations-postgres");

/// While the notification connection is up, the revision is still polled
/// every this many poll intervals, in case a notification was lost with a
/// connection that has not noticed yet that it is dead.
const SAFETY_POLL_EVERY: u32 = 10;

/// How a [`PostgresStore`] connects.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PostgresOptions {
    /// The schema holding the tables (created if missing); `None` uses the
    /// server's default search path (normally `public`). Several
    /// independent configs can share one database in different schemas.
    pub schema: Option<String>,
    /// How often the revision is polled while the `LISTEN` connection is
    /// down (and how often reconnecting is tried). Default 500 ms.
    pub poll_interval: Duration,
    /// Connections for reads and writes. Default 8.
    pub max_connections: u32,
    /// How long a read or write waits for a connection before failing, so
    /// writes fail fast while the database is unreachable. Default 3 s.
    pub acquire_timeout: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            schema: None,
            poll_interval: Duration::from_millis(500),
            max_connections: 8,
            acquire_timeout: Duration::from_secs(3),
        }
    }
}

impl PostgresOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the schema (`None`: the server's default search path).
    #[must_use]
    pub fn schema(mut self, schema: Option<String>) -> Self {
        self.schema = schema;
        self
    }

    /// Sets the fallback poll interval.
    #[must_use]
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// Sets the number of pooled connections (at least 1).
    #[must_use]
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// Sets how long an operation waits for a connection.
    #[must_use]
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }
}

/// A [`ConfigStore`] and [`ConfigWriter`] in a PostgreSQL database, for
/// several ppm nodes sharing one config.
///
/// The semantics are the SQLite backend's: every config write runs in one
/// transaction that bumps the revision and records the history. Writers
/// lock the revision row first, so writes from every node are serialised
/// and their checks (unique names and ports, references) see the latest
/// committed state. Reads run in a repeatable-read transaction, so a
/// snapshot is consistent.
///
/// A trigger announces every new revision with `NOTIFY`; the store listens
/// and fires [`watch`](ConfigStore::watch), whichever node wrote. While the
/// listening connection is down the store polls the revision instead, and
/// after reconnecting it reads the revision once, so revisions committed in
/// between are announced too.
///
/// Cloning is cheap; clones share the pool and the signal. The background
/// tasks stop when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The URL without its password, for messages.
    target: String,
    schema: Option<String>,
    pool: PgPool,
    notifier: ChangeNotifier,
    announced: AtomicU64,
    /// Whether the `LISTEN` connection is up.
    listening: AtomicBool,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// When the history stores a full snapshot (as in the SQLite backend).
    checkpoints: Checkpoints,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let tasks = match self.tasks.get_mut() {
            Ok(t) => std::mem::take(t),
            Err(poisoned) => std::mem::take(poisoned.into_inner()),
        };
        for t in tasks {
            t.abort();
        }
    }
}

impl Inner {
    fn announce(&self, revision: u64) {
        if self.announced.fetch_max(revision, Ordering::AcqRel) < revision {
            self.notifier.notify(revision);
        }
    }

    /// Reads the revision and announces it when it is new.
    async fn poll_once(&self) -> Result<(), StoreError> {
        let revision = read_revision(&self.pool).await?;
        self.announce(revision);
        Ok(())
    }
}

/// `url` without the password, for messages.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

/// Whether `name` is a plain identifier usable as a schema name.
fn valid_schema(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit())
}

/// The sizes [`Checkpoints`] starts from: the last snapshot's and the
/// changes' after it.
async fn history_sizes(pool: &PgPool) -> Result<Checkpoints, sqlx::Error> {
    let (last, since): (i64, i64) = sqlx::query_as(
        "WITH c AS (SELECT revision, octet_length(snapshot) AS size FROM config_history
                    WHERE snapshot IS NOT NULL ORDER BY revision DESC LIMIT 1)
         SELECT COALESCE((SELECT size FROM c), 0)::BIGINT,
                COALESCE((SELECT SUM(octet_length(changes)) FROM config_history
                          WHERE revision > COALESCE((SELECT revision FROM c), 0)), 0)::BIGINT",
    )
    .fetch_one(pool)
    .await?;
    Ok(Checkpoints::new(
        u64::try_from(last).unwrap_or(0),
        u64::try_from(since).unwrap_or(0),
    ))
}

async fn read_revision(pool: &PgPool) -> Result<u64, StoreError> {
    let mut conn = pool.acquire().await.map_err(unavailable)?;
    read::revision(&mut conn).await
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:password@host:port/database`)
    /// with default options.
    pub async fn open(url: &str) -> Result<Self, OpenError> {
        Self::open_with(url, PostgresOptions::default()).await
    }

    /// Connects to `url`, creates the schema if asked for one, applies the
    /// embedded migrations and starts listening for revisions.
    ///
    /// Fails with [`OpenError::NewerSchema`] when the database was migrated
    /// by a newer build. Must be called within a Tokio runtime.
    pub async fn open_with(url: &str, options: PostgresOptions) -> Result<Self, OpenError> {
        let mut target = redact(url);
        if let Some(schema) = &options.schema {
            target = format!("{target} (schema {schema})");
        }
        let path = PathBuf::from(&target);
        let open_err = |e: sqlx::Error| OpenError::Open {
            path: path.clone(),
            source: Box::new(e),
        };
        let mut connect = PgConnectOptions::from_str(url)
            .map_err(open_err)?
            .application_name("ppm");
        if let Some(schema) = &options.schema {
            if !valid_schema(schema) {
                return Err(OpenError::Open {
                    path,
                    source: format!(
                        "schema name {schema:?} must be lower-case letters, digits and _"
                    )
                    .into(),
                });
            }
            let mut conn = <PgConnection as sqlx::Connection>::connect_with(&connect)
                .await
                .map_err(open_err)?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "CREATE SCHEMA IF NOT EXISTS \"{schema}\""
            )))
            .execute(&mut conn)
            .await
            .map_err(open_err)?;
            drop(conn);
            connect = connect.options([("search_path", schema.as_str())]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect.clone())
            .await
            .map_err(open_err)?;

        check_schema_version(&pool, &path).await?;
        MIGRATOR.run(&pool).await.map_err(|e| OpenError::Migrate {
            path: path.clone(),
            source: Box::new(e),
        })?;
        let revision = read_revision(&pool).await.map_err(|e| OpenError::Open {
            path: path.clone(),
            source: Box::new(e),
        })?;
        let checkpoints = history_sizes(&pool).await.map_err(|e| OpenError::Open {
            path: path.clone(),
            source: Box::new(e),
        })?;

        // Named for the schema, so an operator (or a test) can tell the
        // listening connections apart in `pg_stat_activity`.
        let listen_name: String = match &options.schema {
            Some(s) => format!("ppm listen {s}"),
            None => "ppm listen".to_owned(),
        }
        .chars()
        .take(63)
        .collect();
        let listen_connect = connect.clone().application_name(&listen_name);
        let listen_pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(options.poll_interval.max(Duration::from_millis(100)))
            .max_lifetime(None)
            .idle_timeout(None)
            .connect_lazy_with(listen_connect);
        let inner = Arc::new(Inner {
            target,
            schema: options.schema.clone(),
            pool,
            notifier: ChangeNotifier::new(revision),
            announced: AtomicU64::new(revision),
            listening: AtomicBool::new(false),
            tasks: Mutex::new(Vec::new()),
            checkpoints,
        });
        let channel = format!(
            "ppm_revision.{}",
            match &options.schema {
                Some(s) => s.clone(),
                None => current_schema(&inner.pool).await.map_err(open_err)?,
            }
        );
        let listen = tokio::spawn(listen(
            Arc::downgrade(&inner),
            listen_pool,
            channel,
            options.poll_interval,
        ));
        let poll = tokio::spawn(poll(Arc::downgrade(&inner), options.poll_interval));
        match inner.tasks.lock() {
            Ok(mut t) => t.extend([listen, poll]),
            Err(poisoned) => poisoned.into_inner().extend([listen, poll]),
        }
        Ok(PostgresStore { inner })
    }

    /// The database URL without its password, and the schema when one was
    /// chosen: for messages.
    pub fn target(&self) -> &str {
        &self.inner.target
    }

    /// The schema given in the options, if any.
    pub fn schema(&self) -> Option<&str> {
        self.inner.schema.as_deref()
    }

    /// Whether the store currently receives revision notifications (when
    /// not, it polls).
    pub fn is_listening(&self) -> bool {
        self.inner.listening.load(Ordering::Acquire)
    }

    /// The newest schema version this build knows (the last embedded
    /// migration).
    pub fn supported_schema_version() -> i64 {
        MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
    }

    /// The schema version of the database (its newest applied migration).
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        let v: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
                .fetch_one(&self.inner.pool)
                .await
                .map_err(unavailable)?;
        Ok(v.unwrap_or(0))
    }

    /// The connection pool, for tables of the server's own (cluster nodes,
    /// leases) kept in the same database.
    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    /// Stops the background tasks and waits for the pool to close.
    pub async fn close(&self) {
        let tasks = match self.inner.tasks.lock() {
            Ok(mut t) => std::mem::take(&mut *t),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        for t in tasks {
            t.abort();
        }
        self.inner.pool.close().await;
    }

    /// Starts a config write: a transaction holding the revision row's lock,
    /// so writes from every node run one at a time.
    async fn begin_write(&self) -> Result<Transaction<'static, Postgres>, WriteError> {
        let mut tx = self.inner.pool.begin().await.map_err(write_unavailable)?;
        sqlx::query("SELECT revision FROM meta WHERE id = 1 FOR UPDATE")
            .execute(&mut *tx)
            .await?;
        // A newer node may have migrated the schema while this one ran:
        // writing with an older idea of the tables could lose data.
        let found: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
                .fetch_one(&mut *tx)
                .await?;
        let supported = Self::supported_schema_version();
        if let Some(found) = found.filter(|f| *f > supported) {
            return Err(WriteError::NewerSchema { found, supported });
        }
        Ok(tx)
    }

    /// A read-only transaction on one snapshot of the database.
    async fn begin_read(&self) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        self.inner
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
    }

    /// The pool reads use (every connection: there is one pool).
    pub(crate) fn read_pool(&self) -> &PgPool {
        &self.inner.pool
    }

    /// The pool writes use (every connection: there is one pool).
    pub(crate) fn write_pool(&self) -> &PgPool {
        &self.inner.pool
    }
}

async fn current_schema(pool: &PgPool) -> Result<String, sqlx::Error> {
    sqlx::query_scalar("SELECT current_schema()")
        .fetch_one(pool)
        .await
}

/// Refuses a database migrated by a newer build, before the migrator sees it.
async fn check_schema_version(pool: &PgPool, path: &std::path::Path) -> Result<(), OpenError> {
    let open_err = |e: sqlx::Error| OpenError::Open {
        path: path.to_path_buf(),
        source: Box::new(e),
    };
    let has_table: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(pool)
        .await
        .map_err(open_err)?;
    if !has_table {
        return Ok(());
    }
    let found: Option<i64> =
        sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(pool)
            .await
            .map_err(open_err)?;
    let supported = PostgresStore::supported_schema_version();
    match found {
        Some(found) if found > supported => Err(OpenError::NewerSchema {
            path: path.to_path_buf(),
            found,
            supported,
        }),
        _ => Ok(()),
    }
}

/// Listens for revision notifications; after every (re)connection reads
/// the revision once, so revisions committed while it was down are
/// announced.
async fn listen(inner: Weak<Inner>, pool: PgPool, channel: String, retry: Duration) {
    let mut warned = false;
    loop {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(mut l) => {
                l.eager_reconnect(false);
                match l.listen(&channel).await {
                    Ok(()) => l,
                    Err(e) => {
                        if !warned {
                            tracing::warn!(error = %e, "listening for config revisions failed; polling");
                            warned = true;
                        }
                        tokio::time::sleep(retry).await;
                        continue;
                    }
                }
            }
            Err(e) => {
                if !warned {
                    tracing::warn!(error = %e, "connecting to listen for config revisions failed; polling");
                    warned = true;
                }
                tokio::time::sleep(retry).await;
                continue;
            }
        };
        {
            let Some(inner) = inner.upgrade() else {
                return;
            };
            inner.listening.store(true, Ordering::Release);
            if warned {
                tracing::info!(target = %inner.target, "listening for config revisions again");
            }
            if let Err(e) = inner.poll_once().await {
                tracing::warn!(error = %e, "reading the config revision failed");
            }
        }
        loop {
            let got = listener.try_recv().await;
            let Some(inner) = inner.upgrade() else {
                return;
            };
            match got {
                Ok(Some(n)) => match n.payload().parse::<u64>() {
                    Ok(revision) => inner.announce(revision),
                    Err(_) => tracing::warn!(payload = n.payload(), "unexpected revision notice"),
                },
                Ok(None) | Err(_) => {
                    inner.listening.store(false, Ordering::Release);
                    tracing::warn!(target = %inner.target, "lost the revision notification connection; polling");
                    warned = true;
                    break;
                }
            }
        }
        drop(listener);
        tokio::time::sleep(retry).await;
    }
}

/// Polls the revision: every interval while not listening, and now and
/// then while listening.
async fn poll(inner: Weak<Inner>, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticks: u32 = 0;
    loop {
        ticker.tick().await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        ticks = ticks.wrapping_add(1);
        if inner.listening.load(Ordering::Acquire) && !ticks.is_multiple_of(SAFETY_POLL_EVERY) {
            continue;
        }
        if let Err(e) = inner.poll_once().await {
            tracing::debug!(error = %e, target = %inner.target, "polling the config revision failed");
        }
    }
}

#[async_trait]
impl ConfigStore for PostgresStore {
    async fn load(&self) -> Result<Snapshot, StoreError> {
        let mut tx = self.begin_read().await.map_err(unavailable)?;
        let revision = read::revision(&mut tx).await?;
        let config = read::load_config(&mut tx, Scope::All).await?;
        tx.rollback().await.map_err(backend)?;
        Ok(Snapshot { revision, config })
    }

    async fn revision(&self) -> Result<u64, StoreError> {
        read_revision(&self.inner.pool).await
    }

    fn watch(&self) -> Option<ChangeSignal> {
        Some(self.inner.notifier.subscribe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_drops_the_password() {
        assert_eq!(
            redact("postgres://ppm:secret@db:5432/ppm"),
            "postgres://ppm@db:5432/ppm"
        );
        assert_eq!(
            redact("postgres://ppm@db/ppm?sslmode=require"),
            "postgres://ppm@db/ppm?sslmode=require"
        );
        assert_eq!(redact("postgres://db/ppm"), "postgres://db/ppm");
    }

    #[test]
    fn schema_names_are_plain_identifiers() {
        assert!(valid_schema("ppm_test_1"));
        assert!(!valid_schema("Ppm"));
        assert!(!valid_schema("a\"; DROP"));
        assert!(!valid_schema("1abc"));
        assert!(!valid_schema(""));
    }
}
