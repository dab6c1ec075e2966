//! Who is calling and what they may do: roles, token scopes and the
//! [`Auth`] extractor.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use ppm_store::accounts::User;
use serde::{Deserialize, Serialize};

use super::{ApiError, AppState};
use crate::auth::{hash_api_token, now_unix, API_TOKEN_PREFIX};

/// A user's role.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads config.
    Viewer,
    /// Reads and changes config; reads the audit log.
    Operator,
    /// Everything, including users.
    Admin,
}

impl Role {
    /// Parses a stored role.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

/// Read or write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// GET.
    Read,
    /// Anything that changes state.
    Write,
}

/// Resource kinds, as they appear in paths and token scopes.
pub const RESOURCES: &[&str] = &[
    "proxy-hosts",
    "redirection-hosts",
    "dead-hosts",
    "streams",
    "access-lists",
    "certificates",
    "dns-providers",
    "settings",
    "config",
    "upstreams",
    "cluster",
    "audit-log",
    "users",
    "tokens",
    "stats",
    "logs",
    "metrics",
];

/// Checks a scope string: `read`, `write`, `<resource>:read` or
/// `<resource>:write`.
pub fn validate_scope(s: &str) -> Result<(), String> {
    let ok = match s.split_once(':') {
        None => s == "read" || s == "write",
        Some((res, acc)) => RESOURCES.contains(&res) && (acc == "read" || acc == "write"),
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{s}` is not a scope; use read, write, or <resource>:read|write with a resource of {}",
            RESOURCES.join(", ")
        ))
    }
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Auth {
    /// The user.
    pub user: User,
    /// Their role.
    pub role: Role,
    /// The scopes of the API token used, or `None` for a session.
    pub scopes: Option<Vec<String>>,
    /// The API token's id, when one was used.
    pub token_id: Option<i64>,
}

impl Auth {
    /// Refuses with 403 unless the caller's role and token scopes allow
    /// `access` to `resource`.
    pub fn require(&self, resource: &str, access: Access) -> Result<(), ApiError> {
        let role_ok = match (resource, access) {
            ("users", _) => self.role == Role::Admin,
            ("tokens", _) => true,
            ("audit-log", _) => self.role >= Role::Operator,
            // Client IPs and paths: like the audit log.
            ("logs", _) => self.role >= Role::Operator,
            (_, Access::Read) => true,
            (_, Access::Write) => self.role >= Role::Operator,
        };
        if !role_ok {
            return Err(ApiError::forbidden(format!(
                "the {} role may not {} {resource}",
                self.role.as_str(),
                if access == Access::Read {
                    "read"
                } else {
                    "change"
                }
            )));
        }
        if let Some(scopes) = &self.scopes {
            let want = if access == Access::Read {
                "read"
            } else {
                "write"
            };
            let ok = scopes.iter().any(|s| {
                let (res, acc) = match s.split_once(':') {
                    Some((r, a)) => (Some(r), a),
                    None => (None, s.as_str()),
                };
                let acc_ok = acc == want || (acc == "write" && want == "read");
                acc_ok && res.is_none_or(|r| r == resource)
            });
            if !ok {
                return Err(ApiError::forbidden(format!(
                    "this API token has no {want} scope for {resource}"
                )));
            }
        }
        Ok(())
    }

    /// The name recorded in history and the audit log.
    pub fn actor(&self) -> String {
        match self.token_id {
            Some(id) => format!("{} (token {id})", self.user.email),
            None => self.user.email.clone(),
        }
    }
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ApiError::unauthorized("log in first: no Authorization header"))?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(|| ApiError::unauthorized("use Authorization: Bearer <token>"))?
            .trim();
        if token.starts_with(API_TOKEN_PREFIX) {
            let hash = hash_api_token(token);
            let t = state
                .store
                .find_api_token(&hash)
                .await?
                .filter(|t| t.revoked_at.is_none())
                .ok_or_else(|| ApiError::unauthorized("unknown or revoked API token"))?;
            let user = state
                .store
                .get_user(t.user_id)
                .await
                .map_err(|e| user_lookup_error(e, "the token's user no longer exists"))?;
            let role = active_role(&user)?;
            require_current_password(&user, parts)?;
            let _ = state.store.touch_api_token(t.id).await;
            return Ok(Auth {
                user,
                role,
                scopes: Some(t.scopes),
                token_id: Some(t.id),
            });
        }
        let claims = state
            .jwt
            .verify(token, now_unix())
            .map_err(|e| ApiError::unauthorized(format!("invalid session token ({e:?})")))?;
        let user = state
            .store
            .get_user(claims.sub)
            .await
            .map_err(|e| user_lookup_error(e, "the session's user no longer exists"))?;
        if claims.pwv != user.password_changed_at.unwrap_or(0) {
            return Err(ApiError::unauthorized(
                "the password changed since this session began; log in again",
            ));
        }
        let role = active_role(&user)?;
        require_current_password(&user, parts)?;
        Ok(Auth {
            user,
            role,
            scopes: None,
            token_id: None,
        })
    }
}

/// A user whose password was generated or set by someone else may only
/// read their own account and choose a new password.
fn require_current_password(user: &User, parts: &Parts) -> Result<(), ApiError> {
    let path = parts.uri.path();
    if user.must_change_password() && path != "/api/auth/me" && path != "/api/auth/password" {
        return Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "password_change_required",
            "choose a new password first: POST /api/auth/password",
        ));
    }
    Ok(())
}

fn active_role(user: &User) -> Result<Role, ApiError> {
    if user.disabled {
        return Err(ApiError::unauthorized("this user is disabled"));
    }
    Role::parse(&user.role).ok_or_else(|| ApiError::unauthorized("this user has no valid role"))
}

/// A failed user lookup while authenticating: 401 when the user is gone,
/// the store's own error (503 while the database is unreachable) otherwise.
fn user_lookup_error(e: ppm_store::WriteError, gone: &'static str) -> ApiError {
    match e {
        ppm_store::WriteError::NotFound { .. } => ApiError::unauthorized(gone),
        other => ApiError::from(other),
    }
}
