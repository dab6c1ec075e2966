//! Errors of opening a store and of writing to it.

use std::path::PathBuf;

use ppm_core::config::Id;
use ppm_core::error::{BoxError, ConfigError, StoreError};

use crate::model::EntityKind;

/// Opening a database failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The database was written by a newer ppm: its schema has migrations
    /// this build does not know, so this build must not touch it.
    #[error(
        "database {path} has schema version {found}, newer than the newest this build knows ({supported}); \
         upgrade ppm or restore a backup"
    )]
    NewerSchema {
        /// The database file, or for PostgreSQL the URL without its
        /// password (and the schema).
        path: PathBuf,
        /// The newest migration applied to the file.
        found: i64,
        /// The newest migration embedded in this build.
        supported: i64,
    },
    /// The file could not be opened or created.
    #[error("opening the database {path} failed")]
    Open {
        /// The database file, or for PostgreSQL the URL without its
        /// password (and the schema).
        path: PathBuf,
        /// The driver's error.
        #[source]
        source: BoxError,
    },
    /// Applying the embedded migrations failed.
    #[error("migrating the database {path} failed")]
    Migrate {
        /// The database file, or for PostgreSQL the URL without its
        /// password (and the schema).
        path: PathBuf,
        /// The migrator's error.
        #[source]
        source: BoxError,
    },
}

/// A write was refused or failed. Nothing was written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The entity breaks a rule the store guarantees (a duplicate domain name
    /// or stream port, a reference to a missing entity...). Each error names
    /// the field, relative to the written entity (`domain_names[1]`) or, for
    /// whole-config writes, to the config (`proxy_hosts[2].domain_names[1]`).
    #[error(transparent)]
    Invalid(ConfigError),
    /// No entity of this kind has this id.
    #[error("{kind} {id} does not exist")]
    NotFound {
        /// The kind looked for.
        kind: EntityKind,
        /// The id looked for.
        id: Id,
    },
    /// The entity cannot be deleted while something refers to it.
    #[error("{kind} {id} is in use by {used_by}")]
    InUse {
        /// The kind of the entity to delete.
        kind: EntityKind,
        /// Its id.
        id: Id,
        /// What refers to it, for people (`proxy host 3`).
        used_by: String,
    },
    /// The history holds no such revision.
    #[error("revision {0} is not in the history")]
    UnknownRevision(u64),
    /// An import document has the wrong format or an unsupported version.
    #[error("unsupported import document: {0}")]
    Format(String),
    /// The backend is unreachable for now (a database server down or out of
    /// connections); nothing was written and the write can be retried.
    #[error("config store is unavailable: {0}")]
    Unavailable(String),
    /// The database was migrated by a newer ppm after this store opened
    /// it (another node was upgraded): this build must not write to it.
    #[error(
        "the database has schema version {found}, newer than the newest this build knows \
         ({supported}): a newer ppm migrated it; upgrade this node"
    )]
    NewerSchema {
        /// The newest migration applied to the database.
        found: i64,
        /// The newest migration embedded in this build.
        supported: i64,
    },
    /// The backend failed (I/O, database).
    #[error("config store backend failed")]
    Backend(#[source] BoxError),
    /// Stored data could not be read back.
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
}

impl WriteError {
    /// A single field error.
    pub fn field(path: impl Into<String>, message: impl Into<String>) -> Self {
        WriteError::Invalid(ConfigError::single(path, message))
    }

    /// The field errors, when the write was invalid.
    pub fn field_errors(&self) -> &[ppm_core::error::FieldError] {
        match self {
            WriteError::Invalid(c) => &c.errors,
            _ => &[],
        }
    }
}

impl From<sqlx::Error> for WriteError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                WriteError::Unavailable(format!("the database is unreachable: {e}"))
            }
            e => WriteError::Backend(Box::new(e)),
        }
    }
}

impl From<StoreError> for WriteError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Corrupt(m) => WriteError::Corrupt(m),
            StoreError::Unavailable(m) => WriteError::Unavailable(m),
            other => WriteError::Backend(Box::new(other)),
        }
    }
}

/// Wraps a driver error as a [`StoreError`].
pub(crate) fn backend(e: sqlx::Error) -> StoreError {
    StoreError::backend(e)
}
