//! Users, API tokens, the audit log and server secrets: the inherent
//! methods behind [`AccountStore`](crate::AccountStore), whose records and
//! rules [`crate::accounts`] describes.
//!
//! Compiled once per backend (see `shared/mod.rs`): the `SqliteStore`
//! methods document both backends' behaviour.

use ppm_core::config::Id;

use super::dialect::{self, Store};
use crate::accounts::{
    audit_from_row, is_unique_violation, token_from_row, ApiToken, AuditEntry, AuditRow, NewUser,
    TokenRow, User,
};
use crate::error::WriteError;
use crate::model::EntityKind;
use crate::sqlite::timestamp;

impl Store {
    /// Creates a user. Fails with a field error on `email` when it is taken.
    pub async fn create_user(&self, user: NewUser) -> Result<User, WriteError> {
        let now = timestamp();
        sqlx::query_as(
            "INSERT INTO users (email, name, password_hash, role, disabled, password_changed_at,
                created_at, updated_at)
             VALUES ($1, $2, $3, $4, FALSE, $6, $5, $5)
             RETURNING id, email, name, password_hash, role, disabled, password_changed_at,
                created_at, updated_at",
        )
        .bind(&user.email)
        .bind(&user.name)
        .bind(&user.password_hash)
        .bind(&user.role)
        .bind(now)
        .bind((!user.must_change_password).then_some(now))
        .fetch_one(self.write_pool())
        .await
        .map_err(|e| email_taken(e, &user.email))
    }

    /// Reads a user.
    pub async fn get_user(&self, id: Id) -> Result<User, WriteError> {
        sqlx::query_as(
            "SELECT id, email, name, password_hash, role, disabled, password_changed_at,
                created_at, updated_at FROM users WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.read_pool())
        .await?
        .ok_or(WriteError::NotFound {
            kind: EntityKind::User,
            id,
        })
    }

    /// Finds a user by email (case-insensitively).
    pub async fn find_user_by_email(&self, email: &str) -> Result<Option<User>, WriteError> {
        Ok(sqlx::query_as(concat!(
            "SELECT id, email, name, password_hash, role, disabled, password_changed_at,
                created_at, updated_at FROM users WHERE ",
            dialect::email_matches!("$1"),
        ))
        .bind(email)
        .fetch_optional(self.read_pool())
        .await?)
    }

    /// Every user, by id.
    pub async fn list_users(&self) -> Result<Vec<User>, WriteError> {
        Ok(sqlx::query_as(
            "SELECT id, email, name, password_hash, role, disabled, password_changed_at,
                created_at, updated_at FROM users ORDER BY id",
        )
        .fetch_all(self.read_pool())
        .await?)
    }

    /// Saves a user's email, name, role and disabled flag (not the password:
    /// see [`set_user_password`](Self::set_user_password)).
    pub async fn update_user(&self, user: &User) -> Result<User, WriteError> {
        sqlx::query_as(
            "UPDATE users SET email = $2, name = $3, role = $4, disabled = $5, updated_at = $6
             WHERE id = $1
             RETURNING id, email, name, password_hash, role, disabled, password_changed_at,
                created_at, updated_at",
        )
        .bind(user.id)
        .bind(&user.email)
        .bind(&user.name)
        .bind(&user.role)
        .bind(user.disabled)
        .bind(timestamp())
        .fetch_optional(self.write_pool())
        .await
        .map_err(|e| email_taken(e, &user.email))?
        .ok_or(WriteError::NotFound {
            kind: EntityKind::User,
            id: user.id,
        })
    }

    /// Sets a user's password hash and `password_changed_at`.
    pub async fn set_user_password(&self, id: Id, password_hash: &str) -> Result<(), WriteError> {
        self.write_password(id, password_hash, Some(timestamp()))
            .await
    }

    /// Sets a password someone else chose (an admin's reset): the user must
    /// change it at their next login.
    pub async fn reset_user_password(&self, id: Id, password_hash: &str) -> Result<(), WriteError> {
        self.write_password(id, password_hash, None).await
    }

    async fn write_password(
        &self,
        id: Id,
        password_hash: &str,
        changed_at: Option<i64>,
    ) -> Result<(), WriteError> {
        let now = timestamp();
        let done = sqlx::query(
            "UPDATE users SET password_hash = $2, password_changed_at = $4, updated_at = $3
             WHERE id = $1",
        )
        .bind(id)
        .bind(password_hash)
        .bind(now)
        .bind(changed_at)
        .execute(self.write_pool())
        .await?;
        changed_a_row(done.rows_affected(), EntityKind::User, id)
    }

    /// Deletes a user and their tokens; their audit entries keep the actor name.
    pub async fn delete_user(&self, id: Id) -> Result<(), WriteError> {
        let done = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(id)
            .execute(self.write_pool())
            .await?;
        changed_a_row(done.rows_affected(), EntityKind::User, id)
    }

    /// Stores a new token for `user_id`. Fails with a field error on
    /// `user_id` when the user does not exist.
    pub async fn create_api_token(
        &self,
        user_id: Id,
        name: &str,
        token_hash: &str,
        scopes: &[String],
    ) -> Result<ApiToken, WriteError> {
        let scopes =
            serde_json::to_string(scopes).map_err(|e| WriteError::Corrupt(e.to_string()))?;
        let row: TokenRow = sqlx::query_as(
            "INSERT INTO api_tokens (user_id, name, token_hash, scopes, created_at)
             VALUES ($1, $2, $3, $4, $5)
             RETURNING id, user_id, name, token_hash, scopes, created_at, last_used_at,
                revoked_at",
        )
        .bind(user_id)
        .bind(name)
        .bind(token_hash)
        .bind(scopes)
        .bind(timestamp())
        .fetch_one(self.write_pool())
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(d) if d.is_foreign_key_violation() => {
                WriteError::field("user_id", format!("user {user_id} does not exist"))
            }
            _ if is_unique_violation(&e) => {
                WriteError::field("token_hash", "this token is already stored")
            }
            _ => e.into(),
        })?;
        token_from_row(row)
    }

    /// Finds a token by its hash (revoked tokens included: check
    /// `revoked_at`).
    pub async fn find_api_token(&self, token_hash: &str) -> Result<Option<ApiToken>, WriteError> {
        let row: Option<TokenRow> = sqlx::query_as(
            "SELECT id, user_id, name, token_hash, scopes, created_at, last_used_at, revoked_at
             FROM api_tokens WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(self.read_pool())
        .await?;
        row.map(token_from_row).transpose()
    }

    /// A user's tokens, by id.
    pub async fn list_api_tokens(&self, user_id: Id) -> Result<Vec<ApiToken>, WriteError> {
        let rows: Vec<TokenRow> = sqlx::query_as(
            "SELECT id, user_id, name, token_hash, scopes, created_at, last_used_at, revoked_at
             FROM api_tokens WHERE user_id = $1 ORDER BY id",
        )
        .bind(user_id)
        .fetch_all(self.read_pool())
        .await?;
        rows.into_iter().map(token_from_row).collect()
    }

    /// Records that a token was used now.
    pub async fn touch_api_token(&self, id: Id) -> Result<(), WriteError> {
        self.token_stamp("UPDATE api_tokens SET last_used_at = $2 WHERE id = $1", id)
            .await
    }

    /// Revokes a token (kept for the audit trail).
    pub async fn revoke_api_token(&self, id: Id) -> Result<(), WriteError> {
        self.token_stamp(
            "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1",
            id,
        )
        .await
    }

    async fn token_stamp(&self, sql: &'static str, id: Id) -> Result<(), WriteError> {
        let done = sqlx::query(sql)
            .bind(id)
            .bind(timestamp())
            .execute(self.write_pool())
            .await?;
        changed_a_row(done.rows_affected(), EntityKind::ApiToken, id)
    }

    /// Appends an audit entry and returns it with its id.
    pub async fn append_audit(&self, entry: AuditEntry) -> Result<AuditEntry, WriteError> {
        let json = |v: &Option<serde_json::Value>| v.as_ref().map(|v| v.to_string());
        let id: Id = sqlx::query_scalar(
            "INSERT INTO audit_log (at, user_id, actor, client_ip, action, entity, entity_id,
                before, after)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             RETURNING id",
        )
        .bind(entry.at)
        .bind(entry.user_id)
        .bind(&entry.actor)
        .bind(&entry.client_ip)
        .bind(&entry.action)
        .bind(&entry.entity)
        .bind(entry.entity_id)
        .bind(json(&entry.before))
        .bind(json(&entry.after))
        .fetch_one(self.write_pool())
        .await?;
        Ok(AuditEntry { id, ..entry })
    }

    /// Audit entries, newest first: at most `limit`, with ids below
    /// `before_id` when given (for paging).
    pub async fn list_audit(
        &self,
        before_id: Option<Id>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, WriteError> {
        let rows: Vec<AuditRow> = sqlx::query_as(
            "SELECT id, at, user_id, actor, client_ip, action, entity, entity_id, before, after
             FROM audit_log WHERE id < $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(before_id.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(self.read_pool())
        .await?;
        rows.into_iter().map(audit_from_row).collect()
    }

    /// A server-wide secret by name, created from `init` on first use.
    ///
    /// The first caller's `init` wins, so every process sharing the database
    /// ends up with the same value (used for the session-signing key).
    pub async fn server_secret(&self, name: &str, init: &str) -> Result<String, WriteError> {
        sqlx::query(
            "INSERT INTO server_secrets (name, value) VALUES ($1, $2)
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(init)
        .execute(self.write_pool())
        .await?;
        let value: String = sqlx::query_scalar("SELECT value FROM server_secrets WHERE name = $1")
            .bind(name)
            .fetch_one(self.write_pool())
            .await?;
        Ok(value)
    }
}

/// `Ok` when a statement changed a row, else `NotFound` for `kind` `id`.
fn changed_a_row(rows: u64, kind: EntityKind, id: Id) -> Result<(), WriteError> {
    if rows == 0 {
        return Err(WriteError::NotFound { kind, id });
    }
    Ok(())
}

/// A unique violation on a user row is a taken email; anything else is a
/// database error.
fn email_taken(e: sqlx::Error, email: &str) -> WriteError {
    if is_unique_violation(&e) {
        WriteError::field("email", format!("\"{email}\" is already used"))
    } else {
        e.into()
    }
}
