//! The config store's write side ([`ConfigWriter`]): each write in one
//! transaction that bumps the revision and records the history entry;
//! history and snapshots read on one snapshot of the database. (The read
//! side, `ConfigStore`, is each backend's own: how it loads best differs.)
//!
//! Compiled once per backend (see `shared/mod.rs`). The backend's store
//! gives `begin_write` (a transaction that holds the write lock),
//! `begin_read` and `read_pool`; its `dialect` says what a connection
//! failure means.

use async_trait::async_trait;
use ppm_core::config::{Config, Id, Settings};
use ppm_core::store::Snapshot;
use sqlx::Transaction;

use super::dialect::{self, Conn, Db, Store};
use super::read::{self, Scope};
use super::write::{self, Mode};
use crate::codec::{self, narrow};
use crate::error::WriteError;
use crate::model::{
    Change, Committed, Entity, EntityKind, RevisionChanges, RevisionInfo, WriteContext,
};
use crate::sqlite::timestamp;
use crate::writer::ConfigWriter;

impl Store {
    /// Bumps the revision and records the history entry, inside `tx`.
    async fn finish_write(
        &self,
        conn: &mut Conn,
        ctx: &WriteContext,
        summary: &str,
        changes: &[Change],
    ) -> Result<u64, WriteError> {
        let revision: i64 = sqlx::query_scalar(
            "UPDATE meta SET revision = revision + 1 WHERE id = 1 RETURNING revision",
        )
        .fetch_one(&mut *conn)
        .await?;
        let revision: u64 = narrow(revision, "revision")?;
        let replaced = changes.iter().any(|c| matches!(c, Change::ReplaceAll));
        let changes = codec::to_json(changes)?;
        let checkpoints = &self.inner.checkpoints;
        let snapshot = if replaced || checkpoints.due(changes.len()) {
            let config = read::load_config(conn, Scope::All).await?;
            Some(codec::to_json(&config)?)
        } else {
            None
        };
        checkpoints.record(changes.len(), snapshot.as_ref().map(String::len));
        sqlx::query(
            "INSERT INTO config_history (revision, at, actor, client_ip, summary, changes, snapshot)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(revision as i64)
        .bind(timestamp())
        .bind(&ctx.actor)
        .bind(&ctx.client_ip)
        .bind(summary)
        .bind(changes)
        .bind(snapshot)
        .execute(&mut *conn)
        .await?;
        Ok(revision)
    }

    /// Commits and announces the revision.
    async fn commit(&self, tx: Transaction<'static, Db>, revision: u64) -> Result<(), WriteError> {
        tx.commit().await?;
        self.inner.announce(revision);
        Ok(())
    }

    async fn get_in(conn: &mut Conn, kind: EntityKind, id: Id) -> Result<Entity, WriteError> {
        let mut config = read::load_config(conn, Scope::One(kind, id)).await?;
        let found = match kind {
            EntityKind::ProxyHost => config.proxy_hosts.pop().map(Entity::ProxyHost),
            EntityKind::RedirectionHost => {
                config.redirection_hosts.pop().map(Entity::RedirectionHost)
            }
            EntityKind::DeadHost => config.dead_hosts.pop().map(Entity::DeadHost),
            EntityKind::Stream => config.streams.pop().map(Entity::Stream),
            EntityKind::AccessList => config.access_lists.pop().map(Entity::AccessList),
            EntityKind::Certificate => config.certificates.pop().map(Entity::Certificate),
            EntityKind::User | EntityKind::ApiToken => None,
        };
        found.ok_or(WriteError::NotFound { kind, id })
    }
}

#[async_trait]
impl ConfigWriter for Store {
    async fn create(
        &self,
        ctx: &WriteContext,
        mut entity: Entity,
    ) -> Result<Committed<Entity>, WriteError> {
        entity.set_id(0);
        let mut tx = self.begin_write().await?;
        write::check_entity(&mut tx, &entity).await?;
        write::write_entity(&mut tx, &mut entity, Mode::Create).await?;
        let summary = format!("create {}", entity.label());
        let changes = [Change::Create {
            after: entity.clone(),
        }];
        let revision = self.finish_write(&mut tx, ctx, &summary, &changes).await?;
        self.commit(tx, revision).await?;
        Ok(Committed::new(revision, entity))
    }

    async fn update(
        &self,
        ctx: &WriteContext,
        mut entity: Entity,
    ) -> Result<Committed<Entity>, WriteError> {
        let mut tx = self.begin_write().await?;
        let before = Self::get_in(&mut tx, entity.kind(), entity.id()).await?;
        write::check_entity(&mut tx, &entity).await?;
        write::write_entity(&mut tx, &mut entity, Mode::Update).await?;
        let summary = format!("update {}", entity.label());
        let changes = [Change::Update {
            before,
            after: entity.clone(),
        }];
        let revision = self.finish_write(&mut tx, ctx, &summary, &changes).await?;
        self.commit(tx, revision).await?;
        Ok(Committed::new(revision, entity))
    }

    async fn delete(
        &self,
        ctx: &WriteContext,
        kind: EntityKind,
        id: Id,
    ) -> Result<Committed<Entity>, WriteError> {
        let mut tx = self.begin_write().await?;
        let before = Self::get_in(&mut tx, kind, id).await?;
        write::check_unused(&mut tx, kind, id).await?;
        write::delete_entity(&mut tx, kind, id).await?;
        let summary = format!("delete {}", before.label());
        let changes = [Change::Delete {
            before: before.clone(),
        }];
        let revision = self.finish_write(&mut tx, ctx, &summary, &changes).await?;
        self.commit(tx, revision).await?;
        Ok(Committed::new(revision, before))
    }

    async fn get(&self, kind: EntityKind, id: Id) -> Result<Entity, WriteError> {
        let mut tx = self
            .begin_read()
            .await
            .map_err(dialect::write_unavailable)?;
        let found = Self::get_in(&mut tx, kind, id).await;
        tx.rollback().await?;
        found
    }

    async fn update_settings(
        &self,
        ctx: &WriteContext,
        settings: Settings,
    ) -> Result<Committed<Settings>, WriteError> {
        let mut tx = self.begin_write().await?;
        write::check_settings(&mut tx, &settings).await?;
        let before = read::load_settings(&mut tx).await?;
        write::write_settings(&mut tx, &settings).await?;
        let changes = [Change::Settings {
            before: Box::new(before),
            after: Box::new(settings.clone()),
        }];
        let revision = self
            .finish_write(&mut tx, ctx, "update settings", &changes)
            .await?;
        self.commit(tx, revision).await?;
        Ok(Committed::new(revision, settings))
    }

    async fn replace_all(
        &self,
        ctx: &WriteContext,
        config: Config,
        summary: &str,
    ) -> Result<Committed<Config>, WriteError> {
        write::check_config(&config)?;
        let mut tx = self.begin_write().await?;
        write::clear_config(&mut tx).await?;
        write::insert_config(&mut tx, &config).await?;
        let stored = read::load_config(&mut tx, Scope::All).await?;
        let revision = self
            .finish_write(&mut tx, ctx, summary, &[Change::ReplaceAll])
            .await?;
        self.commit(tx, revision).await?;
        Ok(Committed::new(revision, stored))
    }

    async fn history(
        &self,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<RevisionInfo>, WriteError> {
        let before = before.map_or(i64::MAX, |b| i64::try_from(b).unwrap_or(i64::MAX));
        let rows: Vec<(i64, i64, String, Option<String>, String)> = sqlx::query_as(
            "SELECT revision, at, actor, client_ip, summary FROM config_history
             WHERE revision < $1 ORDER BY revision DESC LIMIT $2",
        )
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(self.read_pool())
        .await?;
        rows.into_iter()
            .map(|(revision, at, actor, client_ip, summary)| {
                Ok(RevisionInfo {
                    revision: narrow(revision, "revision")?,
                    at,
                    actor,
                    client_ip,
                    summary,
                })
            })
            .collect()
    }

    async fn revision_changes(&self, revision: u64) -> Result<RevisionChanges, WriteError> {
        let rev = i64::try_from(revision).map_err(|_| WriteError::UnknownRevision(revision))?;
        let row: Option<(i64, String, Option<String>, String, String)> = sqlx::query_as(
            "SELECT at, actor, client_ip, summary, changes FROM config_history WHERE revision = $1",
        )
        .bind(rev)
        .fetch_optional(self.read_pool())
        .await?;
        let (at, actor, client_ip, summary, changes) =
            row.ok_or(WriteError::UnknownRevision(revision))?;
        Ok(RevisionChanges {
            info: RevisionInfo {
                revision,
                at,
                actor,
                client_ip,
                summary,
            },
            changes: codec::from_json(&changes, "history changes")?,
        })
    }

    async fn snapshot_at(&self, revision: u64) -> Result<Snapshot, WriteError> {
        if revision == 0 {
            return Ok(Snapshot {
                revision,
                config: Config::new(),
            });
        }
        let rev = i64::try_from(revision).map_err(|_| WriteError::UnknownRevision(revision))?;
        let mut tx = self
            .begin_read()
            .await
            .map_err(dialect::write_unavailable)?;
        let known: Option<i64> =
            sqlx::query_scalar("SELECT revision FROM config_history WHERE revision = $1")
                .bind(rev)
                .fetch_optional(&mut *tx)
                .await?;
        if known.is_none() {
            return Err(WriteError::UnknownRevision(revision));
        }
        let checkpoint: Option<(i64, String)> = sqlx::query_as(
            "SELECT revision, snapshot FROM config_history
             WHERE revision <= $1 AND snapshot IS NOT NULL
             ORDER BY revision DESC LIMIT 1",
        )
        .bind(rev)
        .fetch_optional(&mut *tx)
        .await?;
        let (from, mut config) = match checkpoint {
            Some((r, json)) => (r, codec::from_json::<Config>(&json, "history snapshot")?),
            None => (0, Config::new()),
        };
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT revision, changes FROM config_history
             WHERE revision > $1 AND revision <= $2 ORDER BY revision",
        )
        .bind(from)
        .bind(rev)
        .fetch_all(&mut *tx)
        .await?;
        tx.rollback().await?;
        for (r, json) in rows {
            let changes: Vec<Change> = codec::from_json(&json, "history changes")?;
            for change in &changes {
                if matches!(change, Change::ReplaceAll) {
                    return Err(WriteError::Corrupt(format!(
                        "revision {r} replaced the config but has no snapshot"
                    )));
                }
                change.apply(&mut config);
            }
        }
        Ok(Snapshot { revision, config })
    }
}
