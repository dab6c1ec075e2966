//! Route table and the handlers that are not plain entity CRUD.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use ppm_core::config::{
    AccessList, Config, DeadHost, Id, ProxyHost, RedirectionHost, Settings, Stream,
};
use ppm_store::accounts::{ApiToken, AuditEntry, NewUser, User};
use ppm_store::{ConfigWriter, ExportDocument, WriteContext};
use serde::{Deserialize, Serialize};

use super::access::validate_scope;
use super::resources::{self, Resource};
use super::{
    Access, ApiError, ApiResult, AppState, Auth, ClientIp, JsonBody, PathParam, QueryParams, Role,
};
use crate::acme::api as acme;
use crate::auth::{self, now_unix, Claims};

macro_rules! crud {
    ($router:expr, $ty:ty) => {
        $router
            .route(
                &format!("/api/{}", <$ty as Resource>::PATH),
                get(resources::list::<$ty>).post(resources::create::<$ty>),
            )
            .route(
                &format!("/api/{}/{{id}}", <$ty as Resource>::PATH),
                get(resources::get::<$ty>)
                    .put(resources::update::<$ty>)
                    .delete(resources::delete::<$ty>),
            )
    };
}

pub(super) fn router() -> Router<AppState> {
    let r = Router::new()
        .route("/api/health", get(health))
        .route("/api/openapi.json", get(super::openapi::serve))
        .route("/api/auth/login", post(login))
        .route("/api/auth/me", get(me))
        .route("/api/auth/password", post(change_password))
        .route("/api/users", get(list_users).post(create_user))
        .route(
            "/api/users/{id}",
            get(get_user).put(update_user).delete(delete_user),
        )
        .route("/api/tokens", get(list_tokens).post(create_token))
        .route("/api/tokens/{id}", get(get_token).delete(revoke_token))
        .route("/api/settings", get(get_settings).put(put_settings))
        .route("/api/upstreams/health", get(upstream_health))
        .route("/api/cluster/nodes", get(cluster_nodes))
        .route("/api/streams/status", get(super::streams::status))
        .route("/api/stats/summary", get(super::stats::summary))
        .route("/api/stats/hosts/{id}", get(super::stats::host_series))
        .route(
            "/api/stats/upstreams/{upstream}",
            get(super::stats::upstream_series),
        )
        .route("/api/stats/streams/{id}", get(super::stats::stream_series))
        .route("/api/stats/rollup", post(super::stats::rollup))
        .route("/api/logs/access", get(super::stats::access_log))
        .route("/api/logs/errors", get(super::stats::error_log))
        .route("/metrics", get(super::stats::metrics))
        .route("/api/audit-log", get(audit_log))
        .route("/api/config/export", get(export))
        .route("/api/config/import", post(import))
        .route("/api/config/history", get(history))
        .route("/api/config/history/{revision}", get(history_entry))
        .route("/api/config/rollback/{revision}", post(rollback));
    let r = crud!(r, ProxyHost);
    let r = crud!(r, RedirectionHost);
    let r = crud!(r, DeadHost);
    let r = crud!(r, Stream);
    let r = crud!(r, AccessList);
    let r = r
        .route(
            "/api/certificates",
            get(super::certificates::list).post(super::certificates::create),
        )
        .route(
            "/api/certificates/{id}",
            get(super::certificates::get)
                .put(super::certificates::update)
                .delete(super::certificates::delete),
        )
        .route("/api/certificates/{id}/renew", post(acme::renew))
        .route(
            "/api/dns-providers",
            get(acme::list_providers).post(acme::create_provider),
        )
        .route(
            "/api/dns-providers/{id}",
            get(acme::get_provider)
                .put(acme::update_provider)
                .delete(acme::delete_provider),
        )
        .route(
            "/api/settings/acme",
            get(acme::get_settings).put(acme::put_settings),
        );
    // Last: it applies to the routes registered before it.
    r.fallback(fallback)
        .method_not_allowed_fallback(method_not_allowed)
}

/// A known API path with a method it does not take: a JSON 405 (axum keeps
/// the `Allow` header).
async fn method_not_allowed(method: axum::http::Method) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on this endpoint"),
    )
}

/// Unknown paths under `/api` are JSON 404s; every other path is the
/// dashboard's.
async fn fallback(req: axum::extract::Request) -> axum::response::Response {
    let path = req.uri().path();
    if path == "/api" || path.starts_with("/api/") {
        return not_found().await.into_response();
    }
    crate::dashboard::serve(req.method(), path, req.headers())
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such API endpoint")
}

#[derive(Serialize, schemars::JsonSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: &'static str,
    /// Server version.
    pub version: &'static str,
    /// Config revision serving.
    pub revision: u64,
}

/// `GET /api/health`: liveness, no auth.
async fn health(State(state): State<AppState>) -> Json<Health> {
    Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
        revision: state.engine.revision(),
    })
}

/// `POST /api/auth/login` body.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Account email.
    pub email: String,
    /// Password.
    pub password: String,
}

/// A session.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct LoginResponse {
    /// Bearer token for `Authorization`.
    pub token: String,
    /// Expiry, Unix seconds.
    pub expires_at: i64,
    /// The user.
    pub user: UserView,
}

/// A user as the API shows it (no hash).
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct UserView {
    /// Id.
    pub id: Id,
    /// Email (login name).
    pub email: String,
    /// Display name.
    pub name: String,
    /// `admin`, `operator` or `viewer`.
    pub role: String,
    /// Whether the user may log in.
    pub disabled: bool,
    /// Creation time, Unix milliseconds.
    pub created_at: i64,
    /// Last change, Unix milliseconds.
    pub updated_at: i64,
    /// The user must choose a new password before anything else works
    /// (`POST /api/auth/password`); other calls answer 403
    /// `password_change_required`.
    pub must_change_password: bool,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        let must_change_password = u.must_change_password();
        UserView {
            id: u.id,
            email: u.email,
            name: u.name,
            role: u.role,
            disabled: u.disabled,
            must_change_password,
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    JsonBody(req): JsonBody<LoginRequest>,
) -> ApiResult<Json<LoginResponse>> {
    let email = req.email.trim().to_ascii_lowercase();
    let keys = [format!("ip:{ip}"), format!("user:{email}")];
    if let Some(wait) = state.throttle.check(&keys) {
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "throttled",
            format!("too many failed logins; try again in {wait} s"),
        );
        e.retry_after = Some(wait);
        return Err(e);
    }
    let user = state.store.find_user_by_email(&email).await?;
    let hash = user
        .as_ref()
        .map(|u| u.password_hash.clone())
        .unwrap_or_else(|| auth::dummy_hash().to_string());
    let password = req.password;
    let ok = tokio::task::spawn_blocking(move || auth::verify_password(&password, &hash))
        .await
        .map_err(ApiError::internal)?;
    let user = match user {
        Some(u) if ok && !u.disabled => u,
        _ => {
            state.throttle.failure(&keys);
            let mut a = AuditEntry::new(email.clone(), "login_failed", "auth");
            a.client_ip = Some(ip.to_string());
            let _ = state.store.append_audit(a).await;
            return Err(ApiError::unauthorized("wrong email or password"));
        }
    };
    state.throttle.success(&keys);
    let now = now_unix();
    let claims = Claims {
        sub: user.id,
        iat: now,
        exp: now + state.session_ttl,
        pwv: user.password_changed_at.unwrap_or(0),
    };
    let mut a = AuditEntry::new(user.email.clone(), "login", "auth");
    a.user_id = Some(user.id);
    a.client_ip = Some(ip.to_string());
    let _ = state.store.append_audit(a).await;
    Ok(Json(LoginResponse {
        token: state.jwt.sign(&claims),
        expires_at: claims.exp,
        user: user.into(),
    }))
}

async fn me(auth: Auth) -> Json<UserView> {
    Json(auth.user.into())
}

/// `POST /api/auth/password` body.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    /// The current password.
    pub current_password: String,
    /// The new password (at least 12 characters).
    #[schemars(length(min = 12, max = 1024))]
    pub new_password: String,
}

async fn change_password(
    State(state): State<AppState>,
    auth: Auth,
    ClientIp(ip): ClientIp,
    JsonBody(req): JsonBody<PasswordChange>,
) -> ApiResult<StatusCode> {
    if auth.token_id.is_some() {
        return Err(ApiError::forbidden("API tokens cannot change passwords"));
    }
    auth::validate_password(&req.new_password).map_err(|m| ApiError::field("new_password", m))?;
    let hash = auth.user.password_hash.clone();
    let (cur, new) = (req.current_password, req.new_password);
    let new_hash = tokio::task::spawn_blocking(move || {
        if auth::verify_password(&cur, &hash) {
            auth::hash_password(&new).map(Some)
        } else {
            Ok(None)
        }
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)?
    .ok_or_else(|| ApiError::field("current_password", "is wrong"))?;
    state
        .store
        .set_user_password(auth.user.id, &new_hash)
        .await?;
    audit(
        &state,
        &auth,
        ip,
        "password_change",
        "users",
        Some(auth.user.id),
        None,
        None,
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

#[allow(clippy::too_many_arguments)]
async fn audit(
    state: &AppState,
    auth: &Auth,
    ip: std::net::IpAddr,
    action: &str,
    entity: &str,
    id: Option<Id>,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
) {
    let mut a = AuditEntry::new(auth.actor(), action, entity);
    a.user_id = Some(auth.user.id);
    a.client_ip = Some(ip.to_string());
    a.entity_id = id;
    a.before = before;
    a.after = after;
    if let Err(e) = state.store.append_audit(a).await {
        tracing::error!(error = %e, "writing the audit log failed");
    }
}

/// A user as clients send it.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserInput {
    /// Email (login name).
    #[schemars(length(min = 3, max = 254))]
    pub email: String,
    /// Display name.
    #[serde(default)]
    #[schemars(length(max = 255))]
    pub name: String,
    /// `admin`, `operator` or `viewer`.
    pub role: Role,
    /// Password; required on create, optional on update.
    #[serde(default)]
    #[schemars(length(min = 12, max = 1024))]
    pub password: Option<String>,
    /// Whether the user may log in.
    #[serde(default)]
    pub disabled: bool,
    /// With `password`: whether the user must choose a new password at
    /// their next login. Default: no on create; yes when an admin sets
    /// another user's password on update.
    #[serde(default)]
    pub must_change_password: Option<bool>,
}

async fn list_users(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<Vec<UserView>>> {
    auth.require("users", Access::Read)?;
    Ok(Json(
        state
            .store
            .list_users()
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}

async fn get_user(
    State(state): State<AppState>,
    auth: Auth,
    PathParam(id): PathParam<Id>,
) -> ApiResult<Json<UserView>> {
    auth.require("users", Access::Read)?;
    Ok(Json(state.store.get_user(id).await?.into()))
}

fn check_user_input(u: &UserInput) -> ApiResult<()> {
    auth::validate_email(u.email.trim()).map_err(|m| ApiError::field("email", m))?;
    if u.name.len() > 255 {
        return Err(ApiError::field("name", "must be at most 255 characters"));
    }
    if let Some(p) = &u.password {
        auth::validate_password(p).map_err(|m| ApiError::field("password", m))?;
    }
    Ok(())
}

async fn hash_blocking(p: String) -> ApiResult<String> {
    tokio::task::spawn_blocking(move || auth::hash_password(&p))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)
}

async fn create_user(
    State(state): State<AppState>,
    auth: Auth,
    ClientIp(ip): ClientIp,
    JsonBody(u): JsonBody<UserInput>,
) -> ApiResult<impl IntoResponse> {
    auth.require("users", Access::Write)?;
    check_user_input(&u)?;
    let email = u.email.trim().to_ascii_lowercase();
    if state.store.find_user_by_email(&email).await?.is_some() {
        return Err(ApiError::field("email", "is already used by another user"));
    }
    let password = u
        .password
        .ok_or_else(|| ApiError::field("password", "is required for a new user"))?;
    let hash = hash_blocking(password).await?;
    let created = state
        .store
        .create_user(
            NewUser::new(email, u.name, hash, u.role.as_str())
                .must_change_password(u.must_change_password.unwrap_or(false)),
        )
        .await?;
    let view: UserView = created.into();
    audit(
        &state,
        &auth,
        ip,
        "create",
        "users",
        Some(view.id),
        None,
        serde_json::to_value(&view).ok(),
    )
    .await;
    Ok((StatusCode::CREATED, Json(view)))
}

async fn update_user(
    State(state): State<AppState>,
    auth: Auth,
    ClientIp(ip): ClientIp,
    PathParam(id): PathParam<Id>,
    JsonBody(u): JsonBody<UserInput>,
) -> ApiResult<Json<UserView>> {
    auth.require("users", Access::Write)?;
    check_user_input(&u)?;
    let mut user = state.store.get_user(id).await?;
    let before = serde_json::to_value(UserView::from(user.clone())).ok();
    let email = u.email.trim().to_ascii_lowercase();
    if let Some(other) = state.store.find_user_by_email(&email).await? {
        if other.id != id {
            return Err(ApiError::field("email", "is already used by another user"));
        }
    }
    if id == auth.user.id && (u.role != Role::Admin || u.disabled) {
        return Err(ApiError::field(
            "role",
            "you cannot demote or disable yourself; ask another admin",
        ));
    }
    user.email = email;
    user.name = u.name;
    user.role = u.role.as_str().to_string();
    user.disabled = u.disabled;
    let mut updated = state.store.update_user(&user).await?;
    if let Some(p) = u.password {
        let hash = hash_blocking(p).await?;
        if u.must_change_password.unwrap_or(id != auth.user.id) {
            state.store.reset_user_password(id, &hash).await?;
        } else {
            state.store.set_user_password(id, &hash).await?;
        }
        updated = state.store.get_user(id).await?;
    }
    let view: UserView = updated.into();
    audit(
        &state,
        &auth,
        ip,
        "update",
        "users",
        Some(id),
        before,
        serde_json::to_value(&view).ok(),
    )
    .await;
    Ok(Json(view))
}

async fn delete_user(
    State(state): State<AppState>,
    auth: Auth,
    ClientIp(ip): ClientIp,
    PathParam(id): PathParam<Id>,
) -> ApiResult<StatusCode> {
    auth.require("users", Access::Write)?;
    if id == auth.user.id {
        return Err(ApiError::conflict("you cannot delete yourself"));
    }
    let user = state.store.get_user(id).await?;
    state.store.delete_user(id).await?;
    audit(
        &state,
        &auth,
        ip,
        "delete",
        "users",
        Some(id),
        serde_json::to_value(UserView::from(user)).ok(),
        None,
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// An API token as the API shows it (never the secret, except once on
/// create).
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct TokenView {
    /// Id.
    pub id: Id,
    /// Owner.
    pub user_id: Id,
    /// Name.
    pub name: String,
    /// Scopes.
    pub scopes: Vec<String>,
    /// Creation, Unix milliseconds.
    pub created_at: i64,
    /// Last use, Unix milliseconds.
    pub last_used_at: Option<i64>,
    /// Revocation, Unix milliseconds.
    pub revoked_at: Option<i64>,
    /// The token itself: only in the answer to its creation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

impl From<ApiToken> for TokenView {
    fn from(t: ApiToken) -> Self {
        TokenView {
            id: t.id,
            user_id: t.user_id,
            name: t.name,
            scopes: t.scopes,
            created_at: t.created_at,
            last_used_at: t.last_used_at,
            revoked_at: t.revoked_at,
            token: None,
        }
    }
}

/// `POST /api/tokens` body.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenInput {
    /// A name for people.
    #[schemars(length(min = 1, max = 255))]
    pub name: String,
    /// `read`, `write`, or `<resource>:read|write`.
    #[schemars(
        length(min = 1),
        inner(regex(
            pattern = r"^(read|write|(proxy-hosts|redirection-hosts|dead-hosts|streams|access-lists|certificates|dns-providers|settings|config|upstreams|audit-log|users|tokens):(read|write))$"
        ))
    )]
    pub scopes: Vec<String>,
}

async fn tokens_visible(state: &AppState, auth: &Auth) -> ApiResult<Vec<ApiToken>> {
    if auth.role == Role::Admin {
        let mut all = Vec::new();
        for u in state.store.list_users().await? {
            all.extend(state.store.list_api_tokens(u.id).await?);
        }
        Ok(all)
    } else {
        Ok(state.store.list_api_tokens(auth.user.id).await?)
    }
}

async fn list_tokens(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<Vec<TokenView>>> {
    auth.require("tokens", Access::Read)?;
    Ok(Json(
        tokens_visible(&state, &auth)
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}

async fn get_token(
    State(state): State<AppState>,
    auth: Auth,
    PathParam(id): PathParam<Id>,
) -> ApiResult<Json<TokenView>> {
    auth.require("tokens", Access::Read)?;
    tokens_visible(&state, &auth)
        .await?
        .into_iter()
        .find(|t| t.id == id)
        .map(|t| Json(t.into()))
        .ok_or_else(|| ApiError::not_found(format!("API token {id} does not exist")))
}

async fn create_token(
    State(state): State<AppState>,
    auth: Auth,
    ClientIp(ip): ClientIp,
    JsonBody(t): JsonBody<TokenInput>,
) -> ApiResult<impl IntoResponse> {
    auth.require("tokens", Access::Write)?;
    if t.name.trim().is_empty() || t.name.len() > 255 {
        return Err(ApiError::field("name", "must be 1 to 255 characters"));
    }
    if t.scopes.is_empty() {
        return Err(ApiError::field("scopes", "needs at least one scope"));
    }
    for (i, s) in t.scopes.iter().enumerate() {
        validate_scope(s).map_err(|m| ApiError::field(format!("scopes[{i}]"), m))?;
    }
    if let Some(own) = &auth.scopes {
        // A token cannot mint a token with more than it has.
        if !t
            .scopes
            .iter()
            .all(|s| own.contains(s) || own.iter().any(|o| o == "write"))
        {
            return Err(ApiError::forbidden("a token cannot grant scopes it lacks"));
        }
    }
    let (secret, hash) = auth::new_api_token();
    let stored = state
        .store
        .create_api_token(auth.user.id, &t.name, &hash, &t.scopes)
        .await?;
    let mut view: TokenView = stored.into();
    audit(
        &state,
        &auth,
        ip,
        "create",
        "tokens",
        Some(view.id),
        None,
        serde_json::to_value(&view).ok(),
    )
    .await;
    view.token = Some(secret);
    Ok((StatusCode::CREATED, Json(view)))
}

async fn revoke_token(
    State(state): State<AppState>,
    auth: Auth,
    ClientIp(ip): ClientIp,
    PathParam(id): PathParam<Id>,
) -> ApiResult<StatusCode> {
    auth.require("tokens", Access::Write)?;
    if !tokens_visible(&state, &auth)
        .await?
        .iter()
        .any(|t| t.id == id)
    {
        return Err(ApiError::not_found(format!(
            "API token {id} does not exist"
        )));
    }
    state.store.revoke_api_token(id).await?;
    audit(&state, &auth, ip, "revoke", "tokens", Some(id), None, None).await;
    Ok(StatusCode::NO_CONTENT)
}

async fn get_settings(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<Settings>> {
    auth.require("settings", Access::Read)?;
    Ok(Json(state.engine_store_config().await?.settings))
}

async fn put_settings(
    State(state): State<AppState>,
    auth: Auth,
    ClientIp(ip): ClientIp,
    JsonBody(settings): JsonBody<Settings>,
) -> ApiResult<Json<Settings>> {
    auth.require("settings", Access::Write)?;
    let _guard = state.write_lock.lock().await;
    let mut candidate = state.engine_store_config().await?;
    let before = serde_json::to_value(&candidate.settings).ok();
    candidate.settings = settings.clone();
    state
        .engine
        .check(candidate)
        .await
        .map_err(|e| ApiError::from(e).relative_to("settings"))?;
    let ctx = WriteContext::new(auth.actor()).client_ip(ip.to_string());
    let committed = state.store.update_settings(&ctx, settings).await?;
    state.apply(committed.revision).await?;
    audit(
        &state,
        &auth,
        ip,
        "update",
        "settings",
        None,
        before,
        serde_json::to_value(&committed.value).ok(),
    )
    .await;
    Ok(Json(committed.value))
}

async fn upstream_health(
    State(state): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<Vec<ppm_core::engine::GroupHealth>>> {
    auth.require("upstreams", Access::Read)?;
    Ok(Json(state.engine.upstream_health()))
}

/// `GET /api/cluster/nodes`: every node sharing the config database and
/// whether it serves the latest revision (on SQLite, this node).
async fn cluster_nodes(
    State(state): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<crate::cluster::NodesView>> {
    auth.require("cluster", Access::Read)?;
    Ok(Json(state.cluster.nodes().await?))
}

/// Paging for lists.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Page {
    /// Only entries older than this id (audit) or revision (history).
    #[serde(default)]
    pub before: Option<i64>,
    /// At most this many, 1..=500 (default 100).
    #[schemars(range(min = 1, max = 500))]
    #[serde(default)]
    pub limit: Option<u32>,
}

impl Page {
    fn limit(&self) -> ApiResult<u32> {
        match self.limit {
            None => Ok(100),
            Some(l) if (1..=500).contains(&l) => Ok(l),
            Some(_) => Err(ApiError::field("limit", "must be 1..=500")),
        }
    }
}

async fn audit_log(
    State(state): State<AppState>,
    auth: Auth,
    QueryParams(page): QueryParams<Page>,
) -> ApiResult<Json<Vec<AuditEntry>>> {
    auth.require("audit-log", Access::Read)?;
    Ok(Json(
        state.store.list_audit(page.before, page.limit()?).await?,
    ))
}

/// `GET /api/config/export` query.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    /// Include private keys and password hashes (admins only).
    #[serde(default)]
    pub secrets: bool,
}

async fn export(
    State(state): State<AppState>,
    auth: Auth,
    QueryParams(q): QueryParams<ExportQuery>,
) -> ApiResult<Json<ExportDocument>> {
    auth.require("config", Access::Read)?;
    if q.secrets && auth.role != Role::Admin {
        return Err(ApiError::forbidden("only admins may export secrets"));
    }
    Ok(Json(state.store.export(q.secrets).await?))
}

/// `POST /api/config/import` query.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportQuery {
    /// Check the document and report what it would do, changing nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// What an import did (or would do).
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ImportResult {
    /// Whether nothing was changed.
    pub dry_run: bool,
    /// The revision now serving (unchanged on a dry run).
    pub revision: u64,
    /// Counts of what the document holds.
    pub counts: Counts,
}

/// Entity counts of a config.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Counts {
    /// Proxy hosts.
    pub proxy_hosts: usize,
    /// Redirection hosts.
    pub redirection_hosts: usize,
    /// 404 hosts.
    pub dead_hosts: usize,
    /// Streams.
    pub streams: usize,
    /// Access lists.
    pub access_lists: usize,
    /// Certificates.
    pub certificates: usize,
}

impl From<&Config> for Counts {
    fn from(c: &Config) -> Self {
        Counts {
            proxy_hosts: c.proxy_hosts.len(),
            redirection_hosts: c.redirection_hosts.len(),
            dead_hosts: c.dead_hosts.len(),
            streams: c.streams.len(),
            access_lists: c.access_lists.len(),
            certificates: c.certificates.len(),
        }
    }
}

async fn import(
    State(state): State<AppState>,
    auth: Auth,
    ClientIp(ip): ClientIp,
    QueryParams(q): QueryParams<ImportQuery>,
    JsonBody(doc): JsonBody<ExportDocument>,
) -> ApiResult<Json<ImportResult>> {
    auth.require("config", Access::Write)?;
    if doc.format != ppm_store::EXPORT_FORMAT {
        return Err(ApiError::field(
            "format",
            format!("must be `{}`", ppm_store::EXPORT_FORMAT),
        ));
    }
    if doc.version > ppm_store::EXPORT_VERSION {
        return Err(ApiError::field(
            "version",
            format!(
                "version {} is newer than this server reads ({})",
                doc.version,
                ppm_store::EXPORT_VERSION
            ),
        ));
    }
    let _guard = state.write_lock.lock().await;
    let current = state.engine_store_config().await?;
    let mut candidate = doc.config.clone();
    ppm_store::keep_secrets(&mut candidate, &current);
    for (i, s) in candidate.streams.iter().enumerate() {
        if state.own_ports.contains(&s.incoming_port) {
            return Err(ApiError::field(
                format!("config.streams[{i}].incoming_port"),
                "is a listener of ppm-server itself",
            ));
        }
    }
    let counts = Counts::from(&candidate);
    let streams = super::streams::streams_of(&candidate);
    let prefixed = |mut e: ApiError| {
        for f in &mut e.fields {
            f.path = format!("config.{}", f.path);
        }
        e
    };
    state
        .engine
        .check(candidate)
        .await
        .map_err(|e| prefixed(ApiError::from(e)))?;
    let reservation = super::streams::reserve(&state, &streams).map_err(prefixed)?;
    if q.dry_run {
        return Ok(Json(ImportResult {
            dry_run: true,
            revision: state.engine.revision(),
            counts,
        }));
    }
    let ctx = WriteContext::new(auth.actor()).client_ip(ip.to_string());
    let committed = state.store.import(&ctx, doc).await?;
    state.apply(committed.revision).await?;
    drop(reservation);
    audit(&state, &auth, ip, "import", "config", None, None, None).await;
    Ok(Json(ImportResult {
        dry_run: false,
        revision: committed.revision,
        counts,
    }))
}

async fn history(
    State(state): State<AppState>,
    auth: Auth,
    QueryParams(page): QueryParams<Page>,
) -> ApiResult<Json<Vec<ppm_store::RevisionInfo>>> {
    auth.require("config", Access::Read)?;
    let before = page.before.and_then(|b| u64::try_from(b).ok());
    Ok(Json(state.store.history(before, page.limit()?).await?))
}

async fn history_entry(
    State(state): State<AppState>,
    auth: Auth,
    PathParam(revision): PathParam<u64>,
) -> ApiResult<Json<serde_json::Value>> {
    auth.require("config", Access::Read)?;
    let changes = state.store.revision_changes(revision).await?;
    let mut value = serde_json::to_value(changes).map_err(ApiError::internal)?;
    redact_secrets(&mut value);
    Ok(Json(value))
}

/// Blanks private keys and password hashes anywhere in a JSON value: history
/// records hold whole entities, secrets included.
pub fn redact_secrets(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                if (k == "private_key_pem" || k == "password_hash") && val.is_string() {
                    *val = serde_json::Value::String(String::new());
                } else {
                    redact_secrets(val);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact_secrets),
        _ => {}
    }
}

/// What a rollback did.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct RollbackResult {
    /// The revision restored.
    pub restored: u64,
    /// The new revision holding it.
    pub revision: u64,
}

async fn rollback(
    State(state): State<AppState>,
    auth: Auth,
    ClientIp(ip): ClientIp,
    PathParam(revision): PathParam<u64>,
) -> ApiResult<Json<RollbackResult>> {
    auth.require("config", Access::Write)?;
    let _guard = state.write_lock.lock().await;
    let old = state.store.snapshot_at(revision).await?;
    let streams = super::streams::streams_of(&old.config);
    state.engine.check(old.config).await?;
    let reservation = super::streams::reserve(&state, &streams)?;
    let ctx = WriteContext::new(auth.actor()).client_ip(ip.to_string());
    let committed = state.store.rollback(&ctx, revision).await?;
    state.apply(committed.revision).await?;
    drop(reservation);
    audit(
        &state,
        &auth,
        ip,
        "rollback",
        "config",
        None,
        None,
        Some(serde_json::json!({"restored": revision})),
    )
    .await;
    Ok(Json(RollbackResult {
        restored: revision,
        revision: committed.revision,
    }))
}
