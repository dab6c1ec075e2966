//! [`AnyStore`]: the backend chosen at run time from a database URL.

use std::path::Path;

use async_trait::async_trait;
use ppm_core::config::{Config, Id, Settings};
use ppm_core::error::StoreError;
use ppm_core::store::{ChangeSignal, ConfigStore, Snapshot};

use crate::accounts::{AccountStore, ApiToken, AuditEntry, NewUser, User};
use crate::acme::{AcmeAccount, AcmeOrder, DnsProviderDeletion, DnsProviderRecord};
use crate::error::{OpenError, WriteError};
use crate::model::{
    Committed, Entity, EntityKind, ExportDocument, RevisionChanges, RevisionInfo, WriteContext,
};
#[cfg(feature = "postgres")]
use crate::postgres::PostgresStore;
use crate::sqlite::SqliteStore;
use crate::writer::ConfigWriter;

/// A config and account store on whichever backend a database URL names:
/// the embedded [`SqliteStore`] or, with the `postgres` feature,
/// [`PostgresStore`]. It implements [`ConfigStore`], [`ConfigWriter`] and
/// [`AccountStore`] (and has the account methods inherently, as the
/// backends do) by calling the backend.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum AnyStore {
    /// One SQLite file.
    Sqlite(SqliteStore),
    /// A PostgreSQL database, possibly shared by several nodes.
    #[cfg(feature = "postgres")]
    Postgres(PostgresStore),
}

/// What a database URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DatabaseUrl {
    /// A SQLite file at this path.
    Sqlite(std::path::PathBuf),
    /// A PostgreSQL URL, passed on as written.
    Postgres(String),
}

impl DatabaseUrl {
    /// Parses `sqlite://PATH`, `sqlite:PATH`, `postgres://…` or
    /// `postgresql://…`. The error says what is accepted.
    pub fn parse(url: &str) -> Result<Self, String> {
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            let path = path.split('?').next().unwrap_or(path);
            if path.is_empty() {
                return Err(
                    "a sqlite:// URL needs a file path (sqlite:///var/lib/ppm/ppm.db)".into(),
                );
            }
            return Ok(DatabaseUrl::Sqlite(path.into()));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(DatabaseUrl::Postgres(url.to_owned()));
        }
        Err("must start with sqlite:// or postgres://".into())
    }
}

/// Calls the same method on whichever backend `self` holds.
macro_rules! on_backend {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            AnyStore::Sqlite($s) => $call,
            #[cfg(feature = "postgres")]
            AnyStore::Postgres($s) => $call,
        }
    };
}

impl AnyStore {
    /// Opens the store `url` names, or with `None` the SQLite file
    /// `ppm.db` in `data_dir`.
    ///
    /// A `postgres://` URL without the `postgres` feature fails with
    /// [`OpenError::Open`] saying so.
    pub async fn open(url: Option<&str>, data_dir: &Path) -> Result<Self, OpenError> {
        let Some(url) = url else {
            return Ok(AnyStore::Sqlite(SqliteStore::open_dir(data_dir).await?));
        };
        let parsed = DatabaseUrl::parse(url).map_err(|m| OpenError::Open {
            path: url.into(),
            source: m.into(),
        })?;
        match parsed {
            DatabaseUrl::Sqlite(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| OpenError::Open {
                        path: path.clone(),
                        source: Box::new(e),
                    })?;
                }
                Ok(AnyStore::Sqlite(SqliteStore::open(path).await?))
            }
            #[cfg(feature = "postgres")]
            DatabaseUrl::Postgres(url) => Ok(AnyStore::Postgres(PostgresStore::open(&url).await?)),
            #[cfg(not(feature = "postgres"))]
            DatabaseUrl::Postgres(_) => Err(OpenError::Open {
                path: "postgres://".into(),
                source: "this build has no PostgreSQL support (the `postgres` feature)".into(),
            }),
        }
    }

    /// The SQLite store, when that is the backend.
    pub fn as_sqlite(&self) -> Option<&SqliteStore> {
        match self {
            AnyStore::Sqlite(s) => Some(s),
            #[cfg(feature = "postgres")]
            AnyStore::Postgres(_) => None,
        }
    }

    /// The PostgreSQL store, when that is the backend.
    #[cfg(feature = "postgres")]
    pub fn as_postgres(&self) -> Option<&PostgresStore> {
        match self {
            AnyStore::Postgres(s) => Some(s),
            AnyStore::Sqlite(_) => None,
        }
    }

    /// The traffic time-series store (every backend keeps the series, per
    /// node).
    pub fn stats(&self) -> &dyn crate::stats::StatsStore {
        on_backend!(self, s => s)
    }

    /// The backend's name: `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match self {
            AnyStore::Sqlite(_) => "sqlite",
            #[cfg(feature = "postgres")]
            AnyStore::Postgres(_) => "postgres",
        }
    }

    /// Waits for the backend's connections to close.
    pub async fn close(&self) {
        match self {
            AnyStore::Sqlite(s) => s.close().await,
            #[cfg(feature = "postgres")]
            AnyStore::Postgres(s) => s.close().await,
        }
    }
}

#[async_trait]
impl ConfigStore for AnyStore {
    async fn load(&self) -> Result<Snapshot, StoreError> {
        on_backend!(self, s => s.load().await)
    }

    async fn revision(&self) -> Result<u64, StoreError> {
        on_backend!(self, s => s.revision().await)
    }

    fn watch(&self) -> Option<ChangeSignal> {
        on_backend!(self, s => s.watch())
    }
}

#[async_trait]
impl ConfigWriter for AnyStore {
    async fn create(
        &self,
        ctx: &WriteContext,
        entity: Entity,
    ) -> Result<Committed<Entity>, WriteError> {
        on_backend!(self, s => s.create(ctx, entity).await)
    }

    async fn update(
        &self,
        ctx: &WriteContext,
        entity: Entity,
    ) -> Result<Committed<Entity>, WriteError> {
        on_backend!(self, s => s.update(ctx, entity).await)
    }

    async fn delete(
        &self,
        ctx: &WriteContext,
        kind: EntityKind,
        id: Id,
    ) -> Result<Committed<Entity>, WriteError> {
        on_backend!(self, s => s.delete(ctx, kind, id).await)
    }

    async fn get(&self, kind: EntityKind, id: Id) -> Result<Entity, WriteError> {
        on_backend!(self, s => s.get(kind, id).await)
    }

    async fn update_settings(
        &self,
        ctx: &WriteContext,
        settings: Settings,
    ) -> Result<Committed<Settings>, WriteError> {
        on_backend!(self, s => s.update_settings(ctx, settings).await)
    }

    async fn replace_all(
        &self,
        ctx: &WriteContext,
        config: Config,
        summary: &str,
    ) -> Result<Committed<Config>, WriteError> {
        on_backend!(self, s => s.replace_all(ctx, config, summary).await)
    }

    async fn history(
        &self,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<RevisionInfo>, WriteError> {
        on_backend!(self, s => s.history(before, limit).await)
    }

    async fn revision_changes(&self, revision: u64) -> Result<RevisionChanges, WriteError> {
        on_backend!(self, s => s.revision_changes(revision).await)
    }

    async fn snapshot_at(&self, revision: u64) -> Result<Snapshot, WriteError> {
        on_backend!(self, s => s.snapshot_at(revision).await)
    }

    async fn rollback(
        &self,
        ctx: &WriteContext,
        revision: u64,
    ) -> Result<Committed<Config>, WriteError> {
        on_backend!(self, s => s.rollback(ctx, revision).await)
    }

    async fn export(&self, include_secrets: bool) -> Result<ExportDocument, WriteError> {
        on_backend!(self, s => s.export(include_secrets).await)
    }

    async fn import(
        &self,
        ctx: &WriteContext,
        doc: ExportDocument,
    ) -> Result<Committed<Config>, WriteError> {
        on_backend!(self, s => s.import(ctx, doc).await)
    }
}

/// The account methods, inherent (as on the backends) and as
/// [`AccountStore`].
macro_rules! accounts {
    ($( $(#[$doc:meta])* fn $name:ident(&self $(, $arg:ident: $ty:ty)*) -> $ret:ty; )*) => {
        impl AnyStore {
            $(
                $(#[$doc])*
                pub async fn $name(&self $(, $arg: $ty)*) -> Result<$ret, WriteError> {
                    on_backend!(self, s => s.$name($($arg),*).await)
                }
            )*
        }

        #[async_trait]
        impl AccountStore for AnyStore {
            $(
                async fn $name(&self $(, $arg: $ty)*) -> Result<$ret, WriteError> {
                    AnyStore::$name(self $(, $arg)*).await
                }
            )*
        }
    };
}

accounts! {
    /// Creates a user; a field error on `email` when it is taken.
    fn create_user(&self, user: NewUser) -> User;
    /// Reads a user.
    fn get_user(&self, id: Id) -> User;
    /// Finds a user by email (case-insensitively).
    fn find_user_by_email(&self, email: &str) -> Option<User>;
    /// Every user, by id.
    fn list_users(&self) -> Vec<User>;
    /// Saves a user's email, name, role and disabled flag.
    fn update_user(&self, user: &User) -> User;
    /// Sets a user's password hash and `password_changed_at`.
    fn set_user_password(&self, id: Id, password_hash: &str) -> ();
    /// Sets a password someone else chose; the user must change it.
    fn reset_user_password(&self, id: Id, password_hash: &str) -> ();
    /// Deletes a user and their tokens.
    fn delete_user(&self, id: Id) -> ();
    /// Stores a new token for `user_id`.
    fn create_api_token(&self, user_id: Id, name: &str, token_hash: &str, scopes: &[String]) -> ApiToken;
    /// Finds a token by its hash (revoked tokens included).
    fn find_api_token(&self, token_hash: &str) -> Option<ApiToken>;
    /// A user's tokens, by id.
    fn list_api_tokens(&self, user_id: Id) -> Vec<ApiToken>;
    /// Records that a token was used now.
    fn touch_api_token(&self, id: Id) -> ();
    /// Revokes a token.
    fn revoke_api_token(&self, id: Id) -> ();
    /// Appends an audit entry and returns it with its id.
    fn append_audit(&self, entry: AuditEntry) -> AuditEntry;
    /// Audit entries, newest first, with ids below `before_id` when given.
    fn list_audit(&self, before_id: Option<Id>, limit: u32) -> Vec<AuditEntry>;
    /// A server-wide secret by name, created from `init` on first use.
    fn server_secret(&self, name: &str, init: &str) -> String;
}

/// Methods both backends have with the same signature, inherent on
/// [`AnyStore`] too.
macro_rules! inherent {
    ($( $(#[$doc:meta])* fn $name:ident(&self $(, $arg:ident: $ty:ty)*) -> $ret:ty; )*) => {
        impl AnyStore {
            $(
                $(#[$doc])*
                pub async fn $name(&self $(, $arg: $ty)*) -> Result<$ret, WriteError> {
                    on_backend!(self, s => s.$name($($arg),*).await)
                }
            )*
        }
    };
}

inherent! {
    /// The ACME account for a directory, contact email and EAB key id.
    fn acme_account(&self, directory_url: &str, email: &str, eab_key_id: &str) -> Option<AcmeAccount>;
    /// Stores an ACME account unless one exists; returns the stored one.
    fn save_acme_account(&self, directory_url: &str, email: &str, eab_key_id: &str, credentials: &str) -> AcmeAccount;
    /// Creates or replaces an order record.
    fn save_acme_order(&self, order: &AcmeOrder) -> AcmeOrder;
    /// The order record of a certificate.
    fn acme_order(&self, certificate_id: Id) -> Option<AcmeOrder>;
    /// Every order record, by certificate id.
    fn list_acme_orders(&self) -> Vec<AcmeOrder>;
    /// Deletes the order record of a certificate.
    fn delete_acme_order(&self, certificate_id: Id) -> bool;
    /// Stores a new DNS provider.
    fn create_dns_provider(&self, p: &DnsProviderRecord) -> DnsProviderRecord;
    /// Replaces a DNS provider.
    fn update_dns_provider(&self, p: &DnsProviderRecord) -> Option<DnsProviderRecord>;
    /// One DNS provider.
    fn dns_provider(&self, id: Id) -> Option<DnsProviderRecord>;
    /// Every DNS provider, by id.
    fn list_dns_providers(&self) -> Vec<DnsProviderRecord>;
    /// Deletes a DNS provider unless an order uses it.
    fn delete_dns_provider(&self, id: Id) -> DnsProviderDeletion;
    /// ACME settings set at run time.
    fn acme_settings(&self) -> Vec<(String, String)>;
    /// Replaces the run-time ACME settings.
    fn replace_acme_settings(&self, values: &[(String, String)]) -> ();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_the_backend() {
        assert_eq!(
            DatabaseUrl::parse("sqlite:///var/lib/ppm/ppm.db"),
            Ok(DatabaseUrl::Sqlite("/var/lib/ppm/ppm.db".into()))
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite:ppm.db?mode=rwc"),
            Ok(DatabaseUrl::Sqlite("ppm.db".into()))
        );
        assert_eq!(
            DatabaseUrl::parse("postgres://ppm@db/ppm"),
            Ok(DatabaseUrl::Postgres("postgres://ppm@db/ppm".into()))
        );
        assert!(DatabaseUrl::parse("postgresql://db/ppm").is_ok());
        assert!(DatabaseUrl::parse("sqlite://").is_err());
        assert!(DatabaseUrl::parse("mysql://db").is_err());
        assert!(DatabaseUrl::parse("/var/lib/ppm.db").is_err());
    }
}
