//! The [`ConfigStore`] trait, through which the engine reads configuration,
//! and [`MemoryStore`], an in-memory implementation for tests and embedding.

use std::sync::Mutex;

use async_trait::async_trait;
use tokio::sync::watch;

use crate::config::Config;
use crate::error::StoreError;

/// A whole configuration at one revision.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// Monotonic revision; every committed write increments it.
    pub revision: u64,
    /// The configuration at that revision.
    pub config: Config,
}

/// Where the engine reads its configuration from.
///
/// The trait is read-only on purpose: writing is a concern of the control
/// plane (see `ppm-store`), so read-only sources such as a file or
/// [`MemoryStore`] implement only this.
#[async_trait]
pub trait ConfigStore: Send + Sync + 'static {
    /// Loads the whole configuration with the revision it was read at.
    ///
    /// Called by the engine at build time and on every reload. The snapshot
    /// must be consistent: all of it at one revision.
    async fn load(&self) -> Result<Snapshot, StoreError>;

    /// The current revision, without loading the config.
    ///
    /// Called by the engine's poller when [`watch`](Self::watch) returns
    /// `None`, or as a fallback. The default loads the whole snapshot; stores
    /// where that is expensive should override it with a cheap query.
    async fn revision(&self) -> Result<u64, StoreError> {
        Ok(self.load().await?.revision)
    }

    /// A signal that fires after a write commits.
    ///
    /// Called once when the engine starts its reload service. The default,
    /// `None`, makes the engine poll [`revision`](Self::revision) instead.
    fn watch(&self) -> Option<ChangeSignal> {
        None
    }
}

#[async_trait]
impl<S: ConfigStore + ?Sized> ConfigStore for std::sync::Arc<S> {
    async fn load(&self) -> Result<Snapshot, StoreError> {
        (**self).load().await
    }
    async fn revision(&self) -> Result<u64, StoreError> {
        (**self).revision().await
    }
    fn watch(&self) -> Option<ChangeSignal> {
        (**self).watch()
    }
}

/// Receives "a new revision was committed" notices from a store.
///
/// Notices coalesce: a receiver that is slow sees only the latest revision.
#[derive(Debug, Clone)]
pub struct ChangeSignal {
    rx: watch::Receiver<u64>,
}

impl ChangeSignal {
    /// Waits for the next notice and returns the revision it announced, or
    /// `None` when the store has gone away.
    pub async fn changed(&mut self) -> Option<u64> {
        self.rx.changed().await.ok()?;
        Some(*self.rx.borrow_and_update())
    }
}

/// The sending side of a [`ChangeSignal`], for store implementations.
#[derive(Debug)]
pub struct ChangeNotifier {
    tx: watch::Sender<u64>,
}

impl ChangeNotifier {
    /// A notifier starting at `revision`.
    pub fn new(revision: u64) -> Self {
        let (tx, _) = watch::channel(revision);
        ChangeNotifier { tx }
    }

    /// Announces a committed revision to every subscriber.
    pub fn notify(&self, revision: u64) {
        self.tx.send_replace(revision);
    }

    /// A new receiver.
    pub fn subscribe(&self) -> ChangeSignal {
        ChangeSignal {
            rx: self.tx.subscribe(),
        }
    }
}

impl Default for ChangeNotifier {
    fn default() -> Self {
        ChangeNotifier::new(0)
    }
}

/// A [`ConfigStore`] held in memory.
///
/// Every [`set`](Self::set) or [`update`](Self::update) bumps the revision
/// and notifies the engine.
///
/// ```
/// use ppm_core::{config::Config, store::{ConfigStore, MemoryStore}};
/// # tokio_test_block_on(async {
/// let store = MemoryStore::new(Config::new());
/// let rev = store.update(|c| c.settings.trusted_proxies.push("10.0.0.0/8".into()));
/// assert_eq!(store.load().await.unwrap().revision, rev);
/// # });
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Debug)]
pub struct MemoryStore {
    snapshot: Mutex<Snapshot>,
    notifier: ChangeNotifier,
}

impl MemoryStore {
    /// A store holding `config` at revision 1.
    pub fn new(config: Config) -> Self {
        MemoryStore {
            snapshot: Mutex::new(Snapshot {
                revision: 1,
                config,
            }),
            notifier: ChangeNotifier::new(1),
        }
    }

    /// Replaces the whole config and returns the new revision.
    pub fn set(&self, config: Config) -> u64 {
        self.update(|c| *c = config)
    }

    /// Changes the config in place and returns the new revision.
    pub fn update(&self, change: impl FnOnce(&mut Config)) -> u64 {
        let revision = {
            let mut guard = match self.snapshot.lock() {
                Ok(g) => g,
                Err(poisoned) => poisoned.into_inner(),
            };
            change(&mut guard.config);
            guard.revision += 1;
            guard.revision
        };
        self.notifier.notify(revision);
        revision
    }

    /// A copy of the current snapshot.
    pub fn snapshot(&self) -> Snapshot {
        match self.snapshot.lock() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new(Config::default())
    }
}

#[async_trait]
impl ConfigStore for MemoryStore {
    async fn load(&self) -> Result<Snapshot, StoreError> {
        Ok(self.snapshot())
    }

    async fn revision(&self) -> Result<u64, StoreError> {
        Ok(self.snapshot().revision)
    }

    fn watch(&self) -> Option<ChangeSignal> {
        Some(self.notifier.subscribe())
    }
}
