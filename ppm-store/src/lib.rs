//! Persistent configuration stores for the ppm proxy engine.
//!
//! [`SqliteStore`] is the embedded default: one SQLite file holding the
//! whole configuration in a normalised schema, versioned by a monotonic
//! revision. It implements
//!
//! - [`ConfigStore`](ppm_core::store::ConfigStore), the read side the engine
//!   uses: `load()` returns the config at one revision, `revision()` is one
//!   cheap query, and `watch()` fires after every committed write, including
//!   writes made by another process on the same file (noticed by polling);
//! - [`ConfigWriter`], the typed write side the API uses: create, update and
//!   delete per entity (with [`ConfigWriterExt`] shorthands), settings,
//!   whole-config replacement, export/import, history and rollback. A write
//!   the database must refuse (a domain name already served by another host,
//!   a stream port already taken, a reference to a missing access list)
//!   fails with [`WriteError::Invalid`], whose errors name the field;
//! - control-plane records for the server: [`accounts`] (users, API tokens,
//!   audit log), [`acme`] (ACME accounts, orders, DNS providers) and
//!   [`stats`] (traffic series, recorded per node and summed across nodes),
//!   which do not change the config revision.
//!
//! With the `postgres` feature, `PostgresStore` implements the same traits
//! with the same semantics on PostgreSQL, for several nodes sharing one
//! config (writes serialised on the revision row, revisions announced by
//! `LISTEN`/`NOTIFY`), and [`AnyStore`] opens the backend a database URL
//! names.
//!
//! ```
//! use ppm_core::config::{ProxyHost, Upstream};
//! use ppm_core::store::ConfigStore;
//! use ppm_store::{ConfigWriter, ConfigWriterExt, SqliteStore, WriteContext};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = std::env::temp_dir().join(format!("ppm-store-doc-{}", std::process::id()));
//! let store = SqliteStore::open_dir(&dir).await?;
//! let ctx = WriteContext::new("admin@example.com");
//!
//! let host = ProxyHost::new(["app.example.com"], vec![Upstream::new("127.0.0.1", 3000)]);
//! let created = store.create_proxy_host(&ctx, host).await?;
//! assert!(created.value.id > 0);
//!
//! let snapshot = store.load().await?;
//! assert_eq!(snapshot.revision, created.revision);
//! assert_eq!(snapshot.config.proxy_hosts, vec![created.value.clone()]);
//!
//! // Every write is in the history and can be undone.
//! store.rollback(&ctx, created.revision - 1).await?;
//! assert!(store.load().await?.config.proxy_hosts.is_empty());
//! # store.close().await;
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(())
//! # }
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
//! #     .block_on(demo()).unwrap();
//! ```
//!
//! # Revisions and history
//!
//! Every config write runs in one transaction that increments the revision
//! and appends a history entry (who, when, a summary and the entity-level
//! changes with their before and after values). Every few revisions, and on
//! every whole-config replacement, the entry also holds a full snapshot, so
//! [`ConfigWriter::snapshot_at`] rebuilds any revision from the nearest
//! snapshot plus a few changes, and [`ConfigWriter::rollback`] writes it
//! back as a new revision.
//!
//! # Export and import
//!
//! [`ConfigWriter::export`] produces an [`ExportDocument`]
//! (`{"format": "ppm-config", "version": 1, "revision": N, "config": {...}}`)
//! with private keys and password hashes blanked unless asked for;
//! [`ConfigWriter::import`] replaces the config with one in a single
//! transaction, keeping stored secrets where the document's are blank.

#![deny(missing_docs)]

pub mod accounts;
pub mod acme;
mod any;
mod checkpoint;
mod codec;
mod error;
mod model;
#[cfg(feature = "postgres")]
pub mod nodes;
#[cfg(feature = "postgres")]
mod postgres;
mod rules;
mod shared;
mod sqlite;
pub mod stats;
mod writer;

pub use accounts::AccountStore;
pub use any::{AnyStore, DatabaseUrl};
pub use error::{OpenError, WriteError};
pub use model::{
    remove_from, strip_secrets, Change, Committed, Entity, EntityKind, ExportDocument,
    RevisionChanges, RevisionInfo, WriteContext, EXPORT_FORMAT, EXPORT_VERSION,
};
#[cfg(feature = "postgres")]
pub use postgres::{PostgresOptions, PostgresStore};
pub use sqlite::{Durability, SqliteOptions, SqliteStore, DB_FILE_NAME};
pub use stats::StatsStore;
pub use writer::{keep_secrets, ConfigWriter, ConfigWriterExt};
