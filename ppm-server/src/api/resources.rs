//! CRUD for the config entities: proxy hosts, redirection hosts, 404 hosts,
//! streams, access lists and certificates.
//!
//! Every write is checked by compiling the config it would produce (so the
//! engine can never be handed a change it rejects), committed in one store
//! transaction, applied by the engine, and audited, before the API answers.

use std::net::IpAddr;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use ppm_core::config::{
    AccessList, AccessUser, Certificate, Config, DeadHost, Id, IpRule, ProxyHost, RedirectionHost,
    RuleAction, Satisfy, Stream, Upstream,
};
use ppm_store::accounts::AuditEntry;
use ppm_store::{ConfigWriter, Entity, EntityKind, WriteContext};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{Access, ApiError, ApiResult, AppState, Auth, ClientIp, JsonBody, PathParam};

/// A config entity served under `/api/<PATH>`.
pub trait Resource: Serialize + Clone + Send + Sync + 'static {
    /// What clients send on create and update.
    type Input: DeserializeOwned + Send;
    /// Store kind.
    const KIND: EntityKind;
    /// Path segment and scope name.
    const PATH: &'static str;
    /// Field of [`Config`] holding the list (error path prefix).
    const FIELD: &'static str;

    /// Store id.
    fn id(&self) -> Id;
    /// Turns input into an entity, given the stored one on update.
    fn from_input(input: Self::Input, id: Id, existing: Option<&Self>) -> ApiResult<Self>;
    /// Wraps as a store entity.
    fn into_entity(self) -> Entity;
    /// Unwraps a store entity.
    fn from_entity(e: Entity) -> Option<Self>;
    /// The list in a config.
    fn list(c: &Config) -> &Vec<Self>;
    /// The list in a config, mutable.
    fn list_mut(c: &mut Config) -> &mut Vec<Self>;
    /// Blanks secrets before the entity is sent to a client.
    fn redact(&mut self) {}
    /// Checks the API-level rules (own ports...) beyond what the compiler
    /// checks. Paths are relative to the entity.
    fn check(&self, _state: &AppState) -> ApiResult<()> {
        Ok(())
    }
}

fn check_upstreams_not_self(ups: &[Upstream], prefix: &str, state: &AppState) -> ApiResult<()> {
    for (i, u) in ups.iter().enumerate() {
        let host = u.host.trim_start_matches('[').trim_end_matches(']');
        let local = host.eq_ignore_ascii_case("localhost")
            || host
                .parse::<IpAddr>()
                .is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified());
        if local && state.own_ports.contains(&u.port) {
            return Err(ApiError::field(
                format!("{prefix}upstreams[{i}].port"),
                format!(
                    "{} is a listener of ppm-server itself; the request would loop",
                    u.port
                ),
            ));
        }
    }
    Ok(())
}

macro_rules! plain_resource {
    ($ty:ty, $variant:ident, $path:literal, $field:ident) => {
        impl Resource for $ty {
            type Input = $ty;
            const KIND: EntityKind = EntityKind::$variant;
            const PATH: &'static str = $path;
            const FIELD: &'static str = stringify!($field);

            fn id(&self) -> Id {
                self.id
            }
            fn from_input(mut input: $ty, id: Id, _existing: Option<&Self>) -> ApiResult<Self> {
                input.id = id;
                Ok(input)
            }
            fn into_entity(self) -> Entity {
                Entity::$variant(self)
            }
            fn from_entity(e: Entity) -> Option<Self> {
                match e {
                    Entity::$variant(v) => Some(v),
                    _ => None,
                }
            }
            fn list(c: &Config) -> &Vec<Self> {
                &c.$field
            }
            fn list_mut(c: &mut Config) -> &mut Vec<Self> {
                &mut c.$field
            }
            fn check(&self, state: &AppState) -> ApiResult<()> {
                check_entity(self, state)
            }
        }
    };
}

trait EntityCheck {
    fn check_entity(&self, _state: &AppState) -> ApiResult<()> {
        Ok(())
    }
}

fn check_entity<T: EntityCheck>(t: &T, state: &AppState) -> ApiResult<()> {
    t.check_entity(state)
}

impl EntityCheck for ProxyHost {
    fn check_entity(&self, state: &AppState) -> ApiResult<()> {
        check_upstreams_not_self(&self.upstreams, "", state)?;
        for (j, l) in self.locations.iter().enumerate() {
            check_upstreams_not_self(&l.upstreams, &format!("locations[{j}]."), state)?;
        }
        Ok(())
    }
}
impl EntityCheck for RedirectionHost {}
impl EntityCheck for DeadHost {}
impl EntityCheck for Stream {
    fn check_entity(&self, state: &AppState) -> ApiResult<()> {
        if state.own_ports.contains(&self.incoming_port) {
            return Err(ApiError::field(
                "incoming_port",
                format!("{} is a listener of ppm-server itself", self.incoming_port),
            ));
        }
        check_upstreams_not_self(&self.upstreams, "", state)
    }
}

plain_resource!(ProxyHost, ProxyHost, "proxy-hosts", proxy_hosts);
plain_resource!(
    RedirectionHost,
    RedirectionHost,
    "redirection-hosts",
    redirection_hosts
);
plain_resource!(DeadHost, DeadHost, "dead-hosts", dead_hosts);
plain_resource!(Stream, Stream, "streams", streams);

/// An access-list user as clients send it: a password, not a hash.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessUserInput {
    /// User name (no `:`).
    #[schemars(length(min = 1, max = 255), regex(pattern = r"^[^:]+$"))]
    pub username: String,
    /// New password; omit to keep the stored one on update.
    #[serde(default)]
    pub password: Option<String>,
    /// A ready hash (argon2id PHC string or bcrypt), for imported lists.
    /// Empty (as the API shows hashes) keeps the stored one.
    #[serde(default)]
    pub password_hash: Option<String>,
}

/// An access list as clients send it.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessListInput {
    /// Ignored (the path names the list); accepted so a fetched list can be
    /// sent back as it is.
    #[serde(default)]
    #[allow(dead_code)]
    pub id: Option<Id>,
    /// A name for people.
    #[schemars(length(min = 1, max = 255))]
    pub name: String,
    /// IP rules, first match wins.
    #[serde(default)]
    pub rules: Vec<IpRule>,
    /// When no rule matches.
    #[serde(default)]
    pub default_action: RuleAction,
    /// Basic-Auth users.
    #[serde(default)]
    pub users: Vec<AccessUserInput>,
    /// How rules and passwords combine.
    #[serde(default)]
    pub satisfy: Satisfy,
    /// Forward Authorization upstream.
    #[serde(default)]
    pub pass_auth: bool,
}

impl Resource for AccessList {
    type Input = AccessListInput;
    const KIND: EntityKind = EntityKind::AccessList;
    const PATH: &'static str = "access-lists";
    const FIELD: &'static str = "access_lists";

    fn id(&self) -> Id {
        self.id
    }

    fn from_input(input: AccessListInput, id: Id, existing: Option<&Self>) -> ApiResult<Self> {
        if input.name.trim().is_empty() || input.name.len() > 255 {
            return Err(ApiError::field("name", "must be 1 to 255 characters"));
        }
        let mut users = Vec::with_capacity(input.users.len());
        for (i, u) in input.users.into_iter().enumerate() {
            let given_hash = u.password_hash.filter(|h| !h.is_empty());
            let hash = match (u.password, given_hash) {
                (Some(_), Some(_)) => {
                    return Err(ApiError::field(
                        format!("users[{i}]"),
                        "give either password or password_hash, not both",
                    ))
                }
                (None, Some(h)) => {
                    if !(h.starts_with("$argon2") || h.starts_with("$2")) || h.len() > 512 {
                        return Err(ApiError::field(
                            format!("users[{i}].password_hash"),
                            "must be an argon2 PHC string or a bcrypt hash",
                        ));
                    }
                    h
                }
                (Some(p), None) => {
                    if p.is_empty() || p.len() > crate::auth::MAX_PASSWORD_LEN {
                        return Err(ApiError::field(
                            format!("users[{i}].password"),
                            "must be 1 to 1024 bytes",
                        ));
                    }
                    crate::auth::hash_password(&p).map_err(ApiError::internal)?
                }
                (None, None) => existing
                    .and_then(|e| e.users.iter().find(|o| o.username == u.username))
                    .map(|o| o.password_hash.clone())
                    .ok_or_else(|| {
                        ApiError::field(
                            format!("users[{i}].password"),
                            "is required for a new user",
                        )
                    })?,
            };
            users.push(AccessUser {
                username: u.username,
                password_hash: hash,
            });
        }
        Ok(AccessList {
            id,
            name: input.name,
            rules: input.rules,
            default_action: input.default_action,
            users,
            satisfy: input.satisfy,
            pass_auth: input.pass_auth,
        })
    }
    fn into_entity(self) -> Entity {
        Entity::AccessList(self)
    }
    fn from_entity(e: Entity) -> Option<Self> {
        match e {
            Entity::AccessList(v) => Some(v),
            _ => None,
        }
    }
    fn list(c: &Config) -> &Vec<Self> {
        &c.access_lists
    }
    fn list_mut(c: &mut Config) -> &mut Vec<Self> {
        &mut c.access_lists
    }
    fn redact(&mut self) {
        for u in &mut self.users {
            u.password_hash.clear();
        }
    }
}

impl Resource for Certificate {
    type Input = Certificate;
    const KIND: EntityKind = EntityKind::Certificate;
    const PATH: &'static str = "certificates";
    const FIELD: &'static str = "certificates";

    fn id(&self) -> Id {
        self.id
    }
    fn from_input(mut input: Certificate, id: Id, existing: Option<&Self>) -> ApiResult<Self> {
        input.id = id;
        if input.private_key_pem.is_empty() {
            if let Some(e) = existing {
                input.private_key_pem = e.private_key_pem.clone();
            }
        }
        if input.name.len() > 255 {
            return Err(ApiError::field("name", "must be at most 255 characters"));
        }
        if !input
            .certificate_pem
            .contains("-----BEGIN CERTIFICATE-----")
        {
            return Err(ApiError::field(
                "certificate_pem",
                "must hold a PEM certificate (-----BEGIN CERTIFICATE-----)",
            ));
        }
        if !input.private_key_pem.contains("PRIVATE KEY-----") {
            return Err(ApiError::field(
                "private_key_pem",
                "must hold a PEM private key",
            ));
        }
        Ok(input)
    }
    fn into_entity(self) -> Entity {
        Entity::Certificate(self)
    }
    fn from_entity(e: Entity) -> Option<Self> {
        match e {
            Entity::Certificate(v) => Some(v),
            _ => None,
        }
    }
    fn list(c: &Config) -> &Vec<Self> {
        &c.certificates
    }
    fn list_mut(c: &mut Config) -> &mut Vec<Self> {
        &mut c.certificates
    }
    fn redact(&mut self) {
        self.private_key_pem.clear();
    }
}

fn redacted<R: Resource>(mut r: R) -> R {
    r.redact();
    r
}

fn find<R: Resource>(config: &Config, id: Id) -> ApiResult<R> {
    R::list(config)
        .iter()
        .find(|e| e.id() == id)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("{} {id} does not exist", R::KIND)))
}

/// `GET /api/<resource>`
pub async fn list<R: Resource>(
    State(state): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<Vec<R>>> {
    auth.require(R::PATH, Access::Read)?;
    let snap = state.engine_store_config().await?;
    Ok(Json(R::list(&snap).iter().cloned().map(redacted).collect()))
}

/// `GET /api/<resource>/{id}`
pub async fn get<R: Resource>(
    State(state): State<AppState>,
    auth: Auth,
    PathParam(id): PathParam<Id>,
) -> ApiResult<Json<R>> {
    auth.require(R::PATH, Access::Read)?;
    let config = state.engine_store_config().await?;
    Ok(Json(redacted(find::<R>(&config, id)?)))
}

/// `POST /api/<resource>`: 201 with the stored entity.
pub async fn create<R: Resource>(
    State(state): State<AppState>,
    auth: Auth,
    ClientIp(ip): ClientIp,
    JsonBody(input): JsonBody<R::Input>,
) -> ApiResult<impl IntoResponse> {
    auth.require(R::PATH, Access::Write)?;
    let entity = tokio::task::spawn_blocking(move || R::from_input(input, 0, None))
        .await
        .map_err(ApiError::internal)??;
    let stored = write::<R>(&state, &auth, ip, Write::Create(entity)).await?;
    Ok((StatusCode::CREATED, Json(redacted(stored))))
}

/// `PUT /api/<resource>/{id}`
pub async fn update<R: Resource>(
    State(state): State<AppState>,
    auth: Auth,
    ClientIp(ip): ClientIp,
    PathParam(id): PathParam<Id>,
    JsonBody(input): JsonBody<R::Input>,
) -> ApiResult<Json<R>> {
    auth.require(R::PATH, Access::Write)?;
    let config = state.engine_store_config().await?;
    let existing = find::<R>(&config, id)?;
    let entity = tokio::task::spawn_blocking(move || R::from_input(input, id, Some(&existing)))
        .await
        .map_err(ApiError::internal)??;
    let stored = write::<R>(&state, &auth, ip, Write::Update(entity)).await?;
    Ok(Json(redacted(stored)))
}

/// `DELETE /api/<resource>/{id}`: 204.
pub async fn delete<R: Resource>(
    State(state): State<AppState>,
    auth: Auth,
    ClientIp(ip): ClientIp,
    PathParam(id): PathParam<Id>,
) -> ApiResult<StatusCode> {
    auth.require(R::PATH, Access::Write)?;
    write::<R>(&state, &auth, ip, Write::Delete(id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) enum Write<R> {
    Create(R),
    Update(R),
    Delete(Id),
}

pub(super) async fn write<R: Resource>(
    state: &AppState,
    auth: &Auth,
    ip: IpAddr,
    change: Write<R>,
) -> ApiResult<R> {
    let _guard = state.write_lock.lock().await;
    let mut candidate = state.engine_store_config().await?;
    let (action, before, index) = match &change {
        Write::Create(e) => {
            e.check(state)?;
            let list = R::list_mut(&mut candidate);
            // A placeholder id no stored entity has, for the check only.
            let next = list.iter().map(|x| x.id()).max().unwrap_or(0) + 1;
            let placeholder =
                R::from_entity(with_id(e.clone().into_entity(), next)).unwrap_or_else(|| e.clone());
            list.push(placeholder);
            ("create", None, Some(list.len() - 1))
        }
        Write::Update(e) => {
            e.check(state)?;
            let list = R::list_mut(&mut candidate);
            let i = list.iter().position(|x| x.id() == e.id()).ok_or_else(|| {
                ApiError::not_found(format!("{} {} does not exist", R::KIND, e.id()))
            })?;
            let before = std::mem::replace(&mut list[i], e.clone());
            ("update", Some(before), Some(i))
        }
        Write::Delete(id) => {
            let list = R::list_mut(&mut candidate);
            let i = list
                .iter()
                .position(|x| x.id() == *id)
                .ok_or_else(|| ApiError::not_found(format!("{} {id} does not exist", R::KIND)))?;
            let before = list.remove(i);
            ("delete", Some(before), None)
        }
    };
    let streams = super::streams::streams_of(&candidate);
    if let Err(e) = state.engine.check(candidate).await {
        let err = ApiError::from(e);
        return Err(match index {
            Some(i) => err.relative_to(&format!("{}[{i}]", R::FIELD)),
            // Deleting something the rest of the config needs is a conflict,
            // not a bad request: say what depends on it.
            None => {
                let mut c = ApiError::conflict(format!("{} is in use: {}", R::KIND, err.message));
                c.fields = err.fields;
                c
            }
        });
    }
    // New listeners are bound before the commit: a port that cannot be
    // bound refuses the change with nothing stored.
    let reservation = super::streams::reserve(state, &streams).map_err(|e| match index {
        Some(i) => e.relative_to(&format!("{}[{i}]", R::FIELD)),
        None => e,
    })?;
    let ctx = WriteContext::new(auth.actor()).client_ip(ip.to_string());
    let committed = match change {
        Write::Create(e) => state.store.create(&ctx, e.into_entity()).await?,
        Write::Update(e) => state.store.update(&ctx, e.into_entity()).await?,
        Write::Delete(id) => state.store.delete(&ctx, R::KIND, id).await?,
    };
    state.apply(committed.revision).await?;
    drop(reservation);
    let stored = R::from_entity(committed.value)
        .ok_or_else(|| ApiError::internal("the store returned another entity kind"))?;
    let mut audit = AuditEntry::new(auth.actor(), action, R::PATH);
    audit.user_id = Some(auth.user.id);
    audit.client_ip = Some(ip.to_string());
    audit.entity_id = Some(stored.id());
    audit.before = before
        .map(redacted)
        .and_then(|b| serde_json::to_value(b).ok());
    audit.after = if action == "delete" {
        None
    } else {
        serde_json::to_value(redacted(stored.clone())).ok()
    };
    if let Err(e) = state.store.append_audit(audit).await {
        tracing::error!(error = %e, "writing the audit log failed");
    }
    Ok(stored)
}

fn with_id(e: Entity, id: Id) -> Entity {
    match e {
        Entity::ProxyHost(mut v) => {
            v.id = id;
            Entity::ProxyHost(v)
        }
        Entity::RedirectionHost(mut v) => {
            v.id = id;
            Entity::RedirectionHost(v)
        }
        Entity::DeadHost(mut v) => {
            v.id = id;
            Entity::DeadHost(v)
        }
        Entity::Stream(mut v) => {
            v.id = id;
            Entity::Stream(v)
        }
        Entity::AccessList(mut v) => {
            v.id = id;
            Entity::AccessList(v)
        }
        Entity::Certificate(mut v) => {
            v.id = id;
            Entity::Certificate(v)
        }
        other => other,
    }
}

impl super::State {
    /// The stored config (what the engine serves once applied).
    pub async fn engine_store_config(&self) -> ApiResult<Config> {
        use ppm_core::store::ConfigStore;
        Ok(self.store.load().await?.config)
    }

    /// Applies a committed revision to the engine, so the next request
    /// through the proxy sees it.
    pub async fn apply(&self, revision: u64) -> ApiResult<()> {
        match self.engine.reload().await {
            Ok(applied) if applied >= revision => {
                crate::cluster::note_committed(revision);
                Ok(())
            }
            Ok(applied) => Err(ApiError::internal(format!(
                "engine applied revision {applied}, expected {revision}"
            ))),
            Err(e) => Err(ApiError::internal(super::error::display_chain(&e))),
        }
    }
}
