//! [`ConfigWriter`]: the write side of a config store, shared by backends.

use async_trait::async_trait;
use ppm_core::config::{
    AccessList, Certificate, Config, DeadHost, Id, ProxyHost, RedirectionHost, Settings, Stream,
};
use ppm_core::store::{ConfigStore, Snapshot};

use crate::error::WriteError;
use crate::model::{
    Committed, Entity, EntityKind, ExportDocument, RevisionChanges, RevisionInfo, WriteContext,
};

/// Writes to a config store: typed entity changes, whole-config replacement,
/// history and rollback.
///
/// Every method that changes the config runs in one transaction that also
/// increments the revision and records the change in the history, and the
/// store's [`watch`](ConfigStore::watch) signal fires after it commits. A
/// refused write changes nothing. [`ConfigWriterExt`] adds one typed method
/// per entity kind (`create_proxy_host`, `delete_stream`...).
#[async_trait]
pub trait ConfigWriter: ConfigStore {
    /// Stores a new entity. Its `id` is ignored; the returned entity carries
    /// the assigned one.
    ///
    /// Fails with [`WriteError::Invalid`] naming the field when a domain name
    /// or stream port is taken or a referenced entity does not exist.
    async fn create(
        &self,
        ctx: &WriteContext,
        entity: Entity,
    ) -> Result<Committed<Entity>, WriteError>;

    /// Replaces the stored entity with the same kind and id, children
    /// included. Fails with [`WriteError::NotFound`] when there is none, and
    /// like [`create`](Self::create) otherwise.
    async fn update(
        &self,
        ctx: &WriteContext,
        entity: Entity,
    ) -> Result<Committed<Entity>, WriteError>;

    /// Deletes an entity and returns what was deleted. Fails with
    /// [`WriteError::InUse`] while a host or stream refers to it, and with
    /// [`WriteError::NotFound`] when there is none.
    async fn delete(
        &self,
        ctx: &WriteContext,
        kind: EntityKind,
        id: Id,
    ) -> Result<Committed<Entity>, WriteError>;

    /// Reads one entity, or fails with [`WriteError::NotFound`].
    async fn get(&self, kind: EntityKind, id: Id) -> Result<Entity, WriteError>;

    /// Replaces the settings.
    async fn update_settings(
        &self,
        ctx: &WriteContext,
        settings: Settings,
    ) -> Result<Committed<Settings>, WriteError>;

    /// Replaces the whole config (import, rollback), keeping the ids it
    /// holds; entities with id 0 get new ids. `summary` is recorded in the
    /// history. Returns the config as stored.
    ///
    /// Errors name fields from the config root (`proxy_hosts[2].domain_names[0]`).
    async fn replace_all(
        &self,
        ctx: &WriteContext,
        config: Config,
        summary: &str,
    ) -> Result<Committed<Config>, WriteError>;

    /// History entries, newest first: at most `limit`, older than `before`
    /// when given (for paging).
    async fn history(
        &self,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<RevisionInfo>, WriteError>;

    /// What one revision changed, or [`WriteError::UnknownRevision`].
    async fn revision_changes(&self, revision: u64) -> Result<RevisionChanges, WriteError>;

    /// The whole config as it was at `revision` (0 is the empty config), or
    /// [`WriteError::UnknownRevision`].
    async fn snapshot_at(&self, revision: u64) -> Result<Snapshot, WriteError>;

    /// Writes the config of an earlier revision as a new revision.
    ///
    /// The default reads [`snapshot_at`](Self::snapshot_at) and
    /// [`replace_all`](Self::replace_all)s it.
    async fn rollback(
        &self,
        ctx: &WriteContext,
        revision: u64,
    ) -> Result<Committed<Config>, WriteError> {
        let snapshot = self.snapshot_at(revision).await?;
        self.replace_all(
            ctx,
            snapshot.config,
            &format!("rollback to revision {revision}"),
        )
        .await
    }

    /// The current config as an export document. Private keys and password
    /// hashes are blank unless `include_secrets`.
    async fn export(&self, include_secrets: bool) -> Result<ExportDocument, WriteError> {
        let snapshot = self.load().await?;
        let mut doc = ExportDocument::new(snapshot.revision, snapshot.config);
        if !include_secrets {
            doc.strip_secrets();
        }
        Ok(doc)
    }

    /// Replaces the config with an export document's, in one transaction.
    ///
    /// A blank secret (an export made without secrets) keeps the value the
    /// store holds for the same certificate id, or the same access list id
    /// and user name, so an export can be re-imported without losing keys.
    async fn import(
        &self,
        ctx: &WriteContext,
        doc: ExportDocument,
    ) -> Result<Committed<Config>, WriteError> {
        let current = self.load().await?.config;
        let mut config = doc.config;
        keep_secrets(&mut config, &current);
        self.replace_all(
            ctx,
            config,
            &format!("import (exported at revision {})", doc.revision),
        )
        .await
    }
}

/// Fills blank secrets of `config` from `current` (see
/// [`ConfigWriter::import`]).
pub fn keep_secrets(config: &mut Config, current: &Config) {
    for c in &mut config.certificates {
        if c.private_key_pem.is_empty() {
            if let Some(old) = current.certificates.iter().find(|o| o.id == c.id) {
                c.private_key_pem = old.private_key_pem.clone();
            }
        }
    }
    for a in &mut config.access_lists {
        let Some(old) = current.access_lists.iter().find(|o| o.id == a.id) else {
            continue;
        };
        for u in &mut a.users {
            if u.password_hash.is_empty() {
                if let Some(o) = old.users.iter().find(|o| o.username == u.username) {
                    u.password_hash = o.password_hash.clone();
                }
            }
        }
    }
}

fn mismatch(kind: EntityKind, got: &Entity) -> WriteError {
    WriteError::Corrupt(format!(
        "expected a {kind}, the store returned a {}",
        got.kind()
    ))
}

macro_rules! typed_writer {
    ($( $variant:ident, $ty:ty, $name:literal, $create:ident, $update:ident, $delete:ident, $get:ident; )*) => {
        /// Typed shorthands for [`ConfigWriter`], one set per entity kind.
        /// Implemented for every writer.
        #[async_trait]
        pub trait ConfigWriterExt: ConfigWriter {
            $(
                #[doc = concat!("Stores a new ", $name, "; see [`ConfigWriter::create`].")]
                async fn $create(
                    &self,
                    ctx: &WriteContext,
                    value: $ty,
                ) -> Result<Committed<$ty>, WriteError> {
                    let c = self.create(ctx, Entity::$variant(value)).await?;
                    match c.value {
                        Entity::$variant(v) => Ok(Committed::new(c.revision, v)),
                        other => Err(mismatch(EntityKind::$variant, &other)),
                    }
                }

                #[doc = concat!("Replaces a ", $name, "; see [`ConfigWriter::update`].")]
                async fn $update(
                    &self,
                    ctx: &WriteContext,
                    value: $ty,
                ) -> Result<Committed<$ty>, WriteError> {
                    let c = self.update(ctx, Entity::$variant(value)).await?;
                    match c.value {
                        Entity::$variant(v) => Ok(Committed::new(c.revision, v)),
                        other => Err(mismatch(EntityKind::$variant, &other)),
                    }
                }

                #[doc = concat!("Deletes a ", $name, "; see [`ConfigWriter::delete`].")]
                async fn $delete(
                    &self,
                    ctx: &WriteContext,
                    id: Id,
                ) -> Result<Committed<$ty>, WriteError> {
                    let c = self.delete(ctx, EntityKind::$variant, id).await?;
                    match c.value {
                        Entity::$variant(v) => Ok(Committed::new(c.revision, v)),
                        other => Err(mismatch(EntityKind::$variant, &other)),
                    }
                }

                #[doc = concat!("Reads a ", $name, "; see [`ConfigWriter::get`].")]
                async fn $get(&self, id: Id) -> Result<$ty, WriteError> {
                    match self.get(EntityKind::$variant, id).await? {
                        Entity::$variant(v) => Ok(v),
                        other => Err(mismatch(EntityKind::$variant, &other)),
                    }
                }
            )*
        }

        impl<W: ConfigWriter + ?Sized> ConfigWriterExt for W {}
    };
}

typed_writer! {
    ProxyHost, ProxyHost, "proxy host",
        create_proxy_host, update_proxy_host, delete_proxy_host, get_proxy_host;
    RedirectionHost, RedirectionHost, "redirection host",
        create_redirection_host, update_redirection_host, delete_redirection_host,
        get_redirection_host;
    DeadHost, DeadHost, "404 host",
        create_dead_host, update_dead_host, delete_dead_host, get_dead_host;
    Stream, Stream, "stream",
        create_stream, update_stream, delete_stream, get_stream;
    AccessList, AccessList, "access list",
        create_access_list, update_access_list, delete_access_list, get_access_list;
    Certificate, Certificate, "certificate",
        create_certificate, update_certificate, delete_certificate, get_certificate;
}
