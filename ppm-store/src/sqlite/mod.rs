//! [`SqliteStore`]: the embedded default store.

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

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use ppm_core::error::StoreError;
use ppm_core::store::{ChangeNotifier, ChangeSignal, ConfigStore, Snapshot};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};
use tokio::task::JoinHandle;

use self::read::Scope;
use crate::checkpoint::Checkpoints;
use crate::error::{backend, OpenError, WriteError};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The file name [`SqliteStore::open_dir`] uses inside a data directory.
pub const DB_FILE_NAME: &str = "ppm.db";

/// How a [`SqliteStore`] opens its database.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SqliteOptions {
    /// How often the store polls the revision to notice writes made by
    /// another process on the same file; `None` disables polling. Default 500 ms.
    pub poll_interval: Option<Duration>,
    /// How long a statement waits for another connection's lock. Default 5 s.
    pub busy_timeout: Duration,
    /// Connections for reads (`load`, history). Default 4.
    pub max_readers: u32,
    /// How far a commit is on disk before a write returns. Default
    /// [`Durability::Full`].
    pub durability: Durability,
}

/// How far a commit is on disk when a write returns (SQLite's
/// `synchronous` setting; the database runs in WAL mode either way, so it
/// stays consistent and uncorrupted after any crash).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// `synchronous=FULL`: each commit is synced to the disk before the
    /// write returns, so a committed write survives a power loss or an OS
    /// crash. Costs one sync of the log per write.
    #[default]
    Full,
    /// `synchronous=NORMAL`: a committed write survives a crash or kill of
    /// the process, but the last writes before a power loss or an OS crash
    /// may be lost (the database then holds an earlier revision, whole).
    /// The log is synced at checkpoints only, which makes single writes
    /// several times faster.
    Normal,
}

impl Durability {
    fn synchronous(self) -> SqliteSynchronous {
        match self {
            Durability::Full => SqliteSynchronous::Full,
            Durability::Normal => SqliteSynchronous::Normal,
        }
    }
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            poll_interval: Some(Duration::from_millis(500)),
            busy_timeout: Duration::from_secs(5),
            max_readers: 4,
            durability: Durability::Full,
        }
    }
}

impl SqliteOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the revision poll interval (`None`: no polling).
    #[must_use]
    pub fn poll_interval(mut self, interval: Option<Duration>) -> Self {
        self.poll_interval = interval;
        self
    }

    /// Sets the busy timeout.
    #[must_use]
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// Sets how far a commit is on disk before a write returns.
    #[must_use]
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Sets the number of read connections (at least 1).
    #[must_use]
    pub fn max_readers(mut self, readers: u32) -> Self {
        self.max_readers = readers.max(1);
        self
    }
}

/// A [`ConfigStore`] and [`ConfigWriter`] on one SQLite file.
///
/// The database runs in WAL mode with foreign keys on, so reads never wait
/// for the writer. Writes go through a single connection (one writer at a
/// time in this process) and take SQLite's write lock up front
/// (`BEGIN IMMEDIATE`), so writers in other processes queue behind the busy
/// timeout instead of failing half-way. Each write bumps the revision and
/// fires [`watch`](ConfigStore::watch) after commit; a background poll of the
/// revision fires it for writes made by other processes on the same file.
///
/// Cloning is cheap; clones share the pools and the signal. The poll task
/// stops when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    read: SqlitePool,
    write: SqlitePool,
    notifier: ChangeNotifier,
    /// The highest revision announced, so polls and commits announce each
    /// revision once, in order.
    announced: AtomicU64,
    poller: Mutex<Option<JoinHandle<()>>>,
    /// When the history stores a full snapshot.
    checkpoints: Checkpoints,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let handle = match self.poller.get_mut() {
            Ok(h) => h.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(h) = handle {
            h.abort();
        }
    }
}

impl Inner {
    fn announce(&self, revision: u64) {
        if self.announced.fetch_max(revision, Ordering::AcqRel) < revision {
            self.notifier.notify(revision);
        }
    }
}

/// The sizes [`Checkpoints`] starts from: the last snapshot's and the
/// changes' after it.
async fn history_sizes(conn: &mut SqliteConnection) -> Result<Checkpoints, sqlx::Error> {
    let (last, since): (i64, i64) = sqlx::query_as(
        "WITH c AS (SELECT revision, length(CAST(snapshot AS BLOB)) AS size FROM config_history
                    WHERE snapshot IS NOT NULL ORDER BY revision DESC LIMIT 1)
         SELECT COALESCE((SELECT size FROM c), 0),
                COALESCE((SELECT SUM(length(CAST(changes AS BLOB))) FROM config_history
                          WHERE revision > COALESCE((SELECT revision FROM c), 0)), 0)",
    )
    .fetch_one(conn)
    .await?;
    Ok(Checkpoints::new(
        u64::try_from(last).unwrap_or(0),
        u64::try_from(since).unwrap_or(0),
    ))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The current time in unix milliseconds, as the store records it.
pub(crate) fn timestamp() -> i64 {
    now_ms()
}

impl SqliteStore {
    /// Opens (or creates) the database `ppm.db` in `dir`, creating the
    /// directory if needed, with default options.
    pub async fn open_dir(dir: impl AsRef<Path>) -> Result<Self, OpenError> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| OpenError::Open {
            path: dir.to_path_buf(),
            source: Box::new(e),
        })?;
        Self::open_with(dir.join(DB_FILE_NAME), SqliteOptions::default()).await
    }

    /// Opens (or creates) the database file at `path` with default options.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, OpenError> {
        Self::open_with(path, SqliteOptions::default()).await
    }

    /// Opens (or creates) the database file at `path`, applies the embedded
    /// migrations and starts the revision poll.
    ///
    /// Fails with [`OpenError::NewerSchema`] when the file was migrated by a
    /// newer build. Must be called within a Tokio runtime.
    pub async fn open_with(
        path: impl AsRef<Path>,
        options: SqliteOptions,
    ) -> Result<Self, OpenError> {
        let path = path.as_ref().to_path_buf();
        let open_err = |e: sqlx::Error| OpenError::Open {
            path: path.clone(),
            source: Box::new(e),
        };
        let connect = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(options.durability.synchronous())
            .foreign_keys(true)
            .busy_timeout(options.busy_timeout);
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .connect_with(connect.clone())
            .await
            .map_err(open_err)?;

        check_schema_version(&write, &path).await?;
        MIGRATOR.run(&write).await.map_err(|e| OpenError::Migrate {
            path: path.clone(),
            source: Box::new(e),
        })?;

        // Two readers stay open so a load can read on both at once.
        let read = SqlitePoolOptions::new()
            .max_connections(options.max_readers.max(1))
            .min_connections(options.max_readers.clamp(1, 2))
            .connect_with(connect)
            .await
            .map_err(open_err)?;

        let mut conn = read.acquire().await.map_err(open_err)?;
        let revision = read::revision(&mut conn)
            .await
            .map_err(|e| OpenError::Open {
                path: path.clone(),
                source: Box::new(e),
            })?;
        let checkpoints = history_sizes(&mut conn).await.map_err(open_err)?;
        drop(conn);

        let inner = Arc::new(Inner {
            path,
            read,
            write,
            notifier: ChangeNotifier::new(revision),
            announced: AtomicU64::new(revision),
            poller: Mutex::new(None),
            checkpoints,
        });
        if let Some(interval) = options.poll_interval {
            let handle = tokio::spawn(poll(Arc::downgrade(&inner), interval));
            match inner.poller.lock() {
                Ok(mut slot) => *slot = Some(handle),
                Err(poisoned) => *poisoned.into_inner() = Some(handle),
            }
        }
        Ok(SqliteStore { inner })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Writes a consistent copy of the database to `target` while the store
    /// keeps serving (`VACUUM INTO`). `target` must not exist.
    pub async fn backup_to(&self, target: impl AsRef<Path>) -> Result<(), StoreError> {
        let target = target.as_ref();
        let target = target.to_str().ok_or_else(|| {
            StoreError::Unavailable(format!("backup path {} is not UTF-8", target.display()))
        })?;
        sqlx::query("VACUUM INTO ?1")
            .bind(target)
            .execute(&self.inner.read)
            .await
            .map_err(backend)?;
        Ok(())
    }

    /// Runs `PRAGMA integrity_check` and returns its report: `"ok"` when the
    /// file is sound, otherwise one problem per line.
    pub async fn integrity_check(&self) -> Result<String, StoreError> {
        let rows: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_all(&self.inner.read)
            .await
            .map_err(backend)?;
        Ok(rows.join("\n"))
    }

    /// The newest schema version this build knows (the last embedded
    /// migration).
    pub fn supported_schema_version() -> i64 {
        MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
    }

    /// Waits for the pools to close. Dropping the store also closes them,
    /// without waiting.
    pub async fn close(&self) {
        self.inner.write.close().await;
        self.inner.read.close().await;
    }

    pub(crate) fn read_pool(&self) -> &SqlitePool {
        &self.inner.read
    }

    pub(crate) fn write_pool(&self) -> &SqlitePool {
        &self.inner.write
    }

    /// A read transaction: one snapshot of the database.
    async fn begin_read(&self) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
        self.inner.read.begin().await
    }

    /// Starts a write: the writer connection with SQLite's write lock.
    async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>, WriteError> {
        Ok(self.inner.write.begin_with("BEGIN IMMEDIATE").await?)
    }
}

/// Refuses a database migrated by a newer build, before the migrator sees it.
async fn check_schema_version(pool: &SqlitePool, path: &Path) -> Result<(), OpenError> {
    let open_err = |e: sqlx::Error| OpenError::Open {
        path: path.to_path_buf(),
        source: Box::new(e),
    };
    let has_table: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
    )
    .fetch_optional(pool)
    .await
    .map_err(open_err)?;
    if has_table.is_none() {
        return Ok(());
    }
    let found: Option<i64> =
        sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(pool)
            .await
            .map_err(open_err)?;
    let supported = SqliteStore::supported_schema_version();
    match found {
        Some(found) if found > supported => Err(OpenError::NewerSchema {
            path: path.to_path_buf(),
            found,
            supported,
        }),
        _ => Ok(()),
    }
}

/// Announces revisions committed by other processes.
async fn poll(inner: Weak<Inner>, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let result = match inner.read.acquire().await {
            Ok(mut conn) => read::revision(&mut conn).await,
            Err(e) => Err(backend(e)),
        };
        match result {
            Ok(revision) => inner.announce(revision),
            Err(e) => {
                tracing::warn!(error = %e, path = %inner.path.display(), "polling the config revision failed")
            }
        }
    }
}

#[async_trait]
impl ConfigStore for SqliteStore {
    async fn load(&self) -> Result<Snapshot, StoreError> {
        let mut tx = self.inner.read.begin().await.map_err(backend)?;
        let revision = read::revision(&mut tx).await?;
        // With a second reader idle, the children tables are read and
        // parsed on it by another task while this one reads the rest, each
        // in its own snapshot; when a write committed between the two
        // snapshots' first reads, their revisions differ and the children
        // are read here instead.
        let other = self.inner.read.try_acquire().map(|mut conn| {
            tokio::spawn(async move {
                let mut other = sqlx::Acquire::begin(&mut conn).await.map_err(backend)?;
                if read::revision(&mut other).await? != revision {
                    return Ok(None);
                }
                let children = read::children(&mut other, Scope::All).await?;
                other.rollback().await.map_err(backend)?;
                Ok::<_, StoreError>(Some(children))
            })
        });
        let main = read::main_rows(&mut tx, Scope::All).await?;
        let children = match other {
            Some(task) => task
                .await
                .map_err(|e| StoreError::backend(format!("loading the children tables: {e}")))??,
            None => None,
        };
        let children = match children {
            Some(c) => c,
            None => read::children(&mut tx, Scope::All).await?,
        };
        tx.rollback().await.map_err(backend)?;
        let config = read::assemble(main, children)?;
        Ok(Snapshot { revision, config })
    }

    async fn revision(&self) -> Result<u64, StoreError> {
        let mut conn = self.inner.read.acquire().await.map_err(backend)?;
        read::revision(&mut conn).await
    }

    fn watch(&self) -> Option<ChangeSignal> {
        Some(self.inner.notifier.subscribe())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn durability_sets_synchronous_on_every_connection() {
        // SQLite's codes: 1 is NORMAL, 2 is FULL.
        for (durability, want) in [(Durability::Full, 2i64), (Durability::Normal, 1)] {
            let dir = tempfile::tempdir().unwrap();
            let options = SqliteOptions::new()
                .poll_interval(None)
                .durability(durability);
            let store = SqliteStore::open_with(dir.path().join("d.db"), options)
                .await
                .unwrap();
            for pool in [store.read_pool(), store.write_pool()] {
                let got: i64 = sqlx::query_scalar("PRAGMA synchronous")
                    .fetch_one(pool)
                    .await
                    .unwrap();
                assert_eq!(got, want, "{durability:?}");
            }
            store.close().await;
        }
    }
}
