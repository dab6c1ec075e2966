//! Control-plane records: dashboard users, API tokens and the audit log.
//!
//! These live in the same database as the config but are not config: they
//! do not change the revision, are not in the history and are not exported.
//! Timestamps are unix milliseconds. Passwords and tokens are stored only as
//! hashes computed by the caller.

use async_trait::async_trait;
use ppm_core::config::Id;
use serde::{Deserialize, Serialize};

use crate::error::WriteError;
use crate::sqlite::{timestamp, SqliteStore};

/// A dashboard / API user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
#[non_exhaustive]
pub struct User {
    /// Store id.
    pub id: Id,
    /// Login, unique (case-insensitively).
    pub email: String,
    /// A name for people.
    pub name: String,
    /// The password hash (PHC string).
    pub password_hash: String,
    /// A role name, e.g. `admin` or `viewer`; its meaning is the server's.
    pub role: String,
    /// A disabled user cannot log in.
    pub disabled: bool,
    /// When the password was last set.
    pub password_changed_at: Option<i64>,
    /// When the user was created.
    pub created_at: i64,
    /// When the user was last changed.
    pub updated_at: i64,
}

impl User {
    /// Whether the user must choose a new password before doing anything
    /// else: their password was generated or set by someone else.
    pub fn must_change_password(&self) -> bool {
        self.password_changed_at.is_none()
    }
}

/// The fields of a new user.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NewUser {
    /// Login, unique (case-insensitively).
    pub email: String,
    /// A name for people.
    pub name: String,
    /// The password hash (PHC string).
    pub password_hash: String,
    /// A role name.
    pub role: String,
    /// Whether the user must choose a new password before doing anything
    /// else (a generated or admin-chosen password): the user is stored with
    /// no `password_changed_at`.
    #[serde(default)]
    pub must_change_password: bool,
}

impl NewUser {
    /// A new user.
    pub fn new(
        email: impl Into<String>,
        name: impl Into<String>,
        password_hash: impl Into<String>,
        role: impl Into<String>,
    ) -> Self {
        NewUser {
            email: email.into(),
            name: name.into(),
            password_hash: password_hash.into(),
            role: role.into(),
            must_change_password: false,
        }
    }

    /// Requires the user to choose a new password at first login.
    pub fn must_change_password(mut self, yes: bool) -> Self {
        self.must_change_password = yes;
        self
    }
}

/// An API token. Only its hash is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ApiToken {
    /// Store id.
    pub id: Id,
    /// The user the token acts as.
    pub user_id: Id,
    /// A name for people.
    pub name: String,
    /// The token's hash, unique.
    pub token_hash: String,
    /// What the token may do; the meaning is the server's.
    pub scopes: Vec<String>,
    /// When the token was created.
    pub created_at: i64,
    /// When the token was last used.
    pub last_used_at: Option<i64>,
    /// When the token was revoked; a revoked token must be refused.
    pub revoked_at: Option<i64>,
}

/// One audit log entry: an action someone took through the control plane.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[non_exhaustive]
pub struct AuditEntry {
    /// Store id (0 before it is stored).
    pub id: Id,
    /// When.
    pub at: i64,
    /// The acting user, when it was one (and still exists).
    pub user_id: Option<Id>,
    /// Who, for people (kept when the user is deleted).
    pub actor: String,
    /// The client address.
    pub client_ip: Option<String>,
    /// What was done: `create`, `update`, `login`...
    pub action: String,
    /// What it was done to: `proxy_host`, `user`...
    pub entity: String,
    /// The id of what it was done to.
    pub entity_id: Option<Id>,
    /// The entity before, when relevant.
    pub before: Option<serde_json::Value>,
    /// The entity after, when relevant.
    pub after: Option<serde_json::Value>,
}

impl AuditEntry {
    /// An entry for `actor` doing `action` on `entity`, now.
    pub fn new(
        actor: impl Into<String>,
        action: impl Into<String>,
        entity: impl Into<String>,
    ) -> Self {
        AuditEntry {
            id: 0,
            at: timestamp(),
            user_id: None,
            actor: actor.into(),
            client_ip: None,
            action: action.into(),
            entity: entity.into(),
            entity_id: None,
            before: None,
            after: None,
        }
    }
}

pub(crate) type TokenRow = (
    i64,
    i64,
    String,
    String,
    String,
    i64,
    Option<i64>,
    Option<i64>,
);

pub(crate) fn token_from_row(r: TokenRow) -> Result<ApiToken, WriteError> {
    Ok(ApiToken {
        id: r.0,
        user_id: r.1,
        name: r.2,
        token_hash: r.3,
        scopes: serde_json::from_str(&r.4)
            .map_err(|e| WriteError::Corrupt(format!("token scopes: {e}")))?,
        created_at: r.5,
        last_used_at: r.6,
        revoked_at: r.7,
    })
}

pub(crate) type AuditRow = (
    i64,
    i64,
    Option<i64>,
    String,
    Option<String>,
    String,
    String,
    Option<i64>,
    Option<String>,
    Option<String>,
);

pub(crate) fn audit_from_row(r: AuditRow) -> Result<AuditEntry, WriteError> {
    let json = |s: Option<String>| -> Result<Option<serde_json::Value>, WriteError> {
        s.map(|s| serde_json::from_str(&s))
            .transpose()
            .map_err(|e| WriteError::Corrupt(format!("audit entry: {e}")))
    };
    Ok(AuditEntry {
        id: r.0,
        at: r.1,
        user_id: r.2,
        actor: r.3,
        client_ip: r.4,
        action: r.5,
        entity: r.6,
        entity_id: r.7,
        before: json(r.8)?,
        after: json(r.9)?,
    })
}

pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// Users, API tokens, the audit log and server secrets, as every backend
/// stores them. The methods behave as [`SqliteStore`]'s inherent methods of
/// the same names, which document them.
#[async_trait]
pub trait AccountStore: Send + Sync {
    /// Creates a user; a field error on `email` when it is taken.
    async fn create_user(&self, user: NewUser) -> Result<User, WriteError>;
    /// Reads a user.
    async fn get_user(&self, id: Id) -> Result<User, WriteError>;
    /// Finds a user by email (case-insensitively).
    async fn find_user_by_email(&self, email: &str) -> Result<Option<User>, WriteError>;
    /// Every user, by id.
    async fn list_users(&self) -> Result<Vec<User>, WriteError>;
    /// Saves a user's email, name, role and disabled flag.
    async fn update_user(&self, user: &User) -> Result<User, WriteError>;
    /// Sets a user's password hash and `password_changed_at`.
    async fn set_user_password(&self, id: Id, password_hash: &str) -> Result<(), WriteError>;
    /// Sets a password someone else chose: the user must change it at their
    /// next login (`password_changed_at` becomes empty).
    async fn reset_user_password(&self, id: Id, password_hash: &str) -> Result<(), WriteError>;
    /// Deletes a user and their tokens.
    async fn delete_user(&self, id: Id) -> Result<(), WriteError>;
    /// Stores a new token for `user_id`.
    async fn create_api_token(
        &self,
        user_id: Id,
        name: &str,
        token_hash: &str,
        scopes: &[String],
    ) -> Result<ApiToken, WriteError>;
    /// Finds a token by its hash (revoked tokens included).
    async fn find_api_token(&self, token_hash: &str) -> Result<Option<ApiToken>, WriteError>;
    /// A user's tokens, by id.
    async fn list_api_tokens(&self, user_id: Id) -> Result<Vec<ApiToken>, WriteError>;
    /// Records that a token was used now.
    async fn touch_api_token(&self, id: Id) -> Result<(), WriteError>;
    /// Revokes a token.
    async fn revoke_api_token(&self, id: Id) -> Result<(), WriteError>;
    /// Appends an audit entry and returns it with its id.
    async fn append_audit(&self, entry: AuditEntry) -> Result<AuditEntry, WriteError>;
    /// Audit entries, newest first, with ids below `before_id` when given.
    async fn list_audit(
        &self,
        before_id: Option<Id>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, WriteError>;
    /// A server-wide secret by name, created from `init` on first use.
    async fn server_secret(&self, name: &str, init: &str) -> Result<String, WriteError>;
}

/// Implements [`AccountStore`] by calling a store's inherent methods.
macro_rules! delegate_accounts {
    ($store:ty) => {
        #[async_trait]
        impl AccountStore for $store {
            async fn create_user(&self, user: NewUser) -> Result<User, WriteError> {
                <$store>::create_user(self, user).await
            }
            async fn get_user(&self, id: Id) -> Result<User, WriteError> {
                <$store>::get_user(self, id).await
            }
            async fn find_user_by_email(&self, email: &str) -> Result<Option<User>, WriteError> {
                <$store>::find_user_by_email(self, email).await
            }
            async fn list_users(&self) -> Result<Vec<User>, WriteError> {
                <$store>::list_users(self).await
            }
            async fn update_user(&self, user: &User) -> Result<User, WriteError> {
                <$store>::update_user(self, user).await
            }
            async fn set_user_password(
                &self,
                id: Id,
                password_hash: &str,
            ) -> Result<(), WriteError> {
                <$store>::set_user_password(self, id, password_hash).await
            }
            async fn reset_user_password(
                &self,
                id: Id,
                password_hash: &str,
            ) -> Result<(), WriteError> {
                <$store>::reset_user_password(self, id, password_hash).await
            }
            async fn delete_user(&self, id: Id) -> Result<(), WriteError> {
                <$store>::delete_user(self, id).await
            }
            async fn create_api_token(
                &self,
                user_id: Id,
                name: &str,
                token_hash: &str,
                scopes: &[String],
            ) -> Result<ApiToken, WriteError> {
                <$store>::create_api_token(self, user_id, name, token_hash, scopes).await
            }
            async fn find_api_token(
                &self,
                token_hash: &str,
            ) -> Result<Option<ApiToken>, WriteError> {
                <$store>::find_api_token(self, token_hash).await
            }
            async fn list_api_tokens(&self, user_id: Id) -> Result<Vec<ApiToken>, WriteError> {
                <$store>::list_api_tokens(self, user_id).await
            }
            async fn touch_api_token(&self, id: Id) -> Result<(), WriteError> {
                <$store>::touch_api_token(self, id).await
            }
            async fn revoke_api_token(&self, id: Id) -> Result<(), WriteError> {
                <$store>::revoke_api_token(self, id).await
            }
            async fn append_audit(&self, entry: AuditEntry) -> Result<AuditEntry, WriteError> {
                <$store>::append_audit(self, entry).await
            }
            async fn list_audit(
                &self,
                before_id: Option<Id>,
                limit: u32,
            ) -> Result<Vec<AuditEntry>, WriteError> {
                <$store>::list_audit(self, before_id, limit).await
            }
            async fn server_secret(&self, name: &str, init: &str) -> Result<String, WriteError> {
                <$store>::server_secret(self, name, init).await
            }
        }
    };
}

delegate_accounts!(SqliteStore);
#[cfg(feature = "postgres")]
delegate_accounts!(crate::postgres::PostgresStore);
