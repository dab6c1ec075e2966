//! The types of the write API: who writes, what was written, what changed.

use std::fmt;

use ppm_core::config::{
    AccessList, Certificate, Config, DeadHost, Id, ProxyHost, RedirectionHost, Settings, Stream,
};
use serde::{Deserialize, Serialize};

/// Who makes a write, recorded in the config history.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[non_exhaustive]
pub struct WriteContext {
    /// A user's email, a token name, `"acme"`, `"import"`...
    pub actor: String,
    /// The client address of the API request, when there is one.
    pub client_ip: Option<String>,
}

impl WriteContext {
    /// A context for `actor` without a client address.
    pub fn new(actor: impl Into<String>) -> Self {
        WriteContext {
            actor: actor.into(),
            client_ip: None,
        }
    }

    /// Sets the client address.
    #[must_use]
    pub fn client_ip(mut self, ip: impl Into<String>) -> Self {
        self.client_ip = Some(ip.into());
        self
    }
}

/// A committed write: the stored value and the revision it created.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Committed<T> {
    /// The revision the write created. Wait for the engine to reach it to
    /// know the outcome of the reload.
    pub revision: u64,
    /// What is stored now (with its id), or what was deleted.
    pub value: T,
}

impl<T> Committed<T> {
    /// A committed value.
    pub fn new(revision: u64, value: T) -> Self {
        Committed { revision, value }
    }

    /// Changes the value, keeping the revision.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Committed<U> {
        Committed {
            revision: self.revision,
            value: f(self.value),
        }
    }
}

/// The kinds of stored entities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EntityKind {
    /// [`ProxyHost`].
    ProxyHost,
    /// [`RedirectionHost`].
    RedirectionHost,
    /// [`DeadHost`].
    DeadHost,
    /// [`Stream`].
    Stream,
    /// [`AccessList`].
    AccessList,
    /// [`Certificate`].
    Certificate,
    /// A control-plane [`User`](crate::accounts::User).
    User,
    /// An [`ApiToken`](crate::accounts::ApiToken).
    ApiToken,
}

impl EntityKind {
    /// The name people read: `proxy host`, `access list`...
    pub fn as_str(self) -> &'static str {
        match self {
            EntityKind::ProxyHost => "proxy host",
            EntityKind::RedirectionHost => "redirection host",
            EntityKind::DeadHost => "404 host",
            EntityKind::Stream => "stream",
            EntityKind::AccessList => "access list",
            EntityKind::Certificate => "certificate",
            EntityKind::User => "user",
            EntityKind::ApiToken => "API token",
        }
    }
}

impl fmt::Display for EntityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One config entity of any kind.
// Entities are moved a few times per write, never stored in bulk: boxing the
// large variants would only make matching on them clumsier.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Entity {
    /// A proxy host.
    ProxyHost(ProxyHost),
    /// A redirection host.
    RedirectionHost(RedirectionHost),
    /// A 404 host.
    DeadHost(DeadHost),
    /// A stream.
    Stream(Stream),
    /// An access list.
    AccessList(AccessList),
    /// A certificate.
    Certificate(Certificate),
}

impl Entity {
    /// The entity's kind.
    pub fn kind(&self) -> EntityKind {
        match self {
            Entity::ProxyHost(_) => EntityKind::ProxyHost,
            Entity::RedirectionHost(_) => EntityKind::RedirectionHost,
            Entity::DeadHost(_) => EntityKind::DeadHost,
            Entity::Stream(_) => EntityKind::Stream,
            Entity::AccessList(_) => EntityKind::AccessList,
            Entity::Certificate(_) => EntityKind::Certificate,
        }
    }

    /// The entity's id (0 before it is stored).
    pub fn id(&self) -> Id {
        match self {
            Entity::ProxyHost(e) => e.id,
            Entity::RedirectionHost(e) => e.id,
            Entity::DeadHost(e) => e.id,
            Entity::Stream(e) => e.id,
            Entity::AccessList(e) => e.id,
            Entity::Certificate(e) => e.id,
        }
    }

    pub(crate) fn set_id(&mut self, id: Id) {
        match self {
            Entity::ProxyHost(e) => e.id = id,
            Entity::RedirectionHost(e) => e.id = id,
            Entity::DeadHost(e) => e.id = id,
            Entity::Stream(e) => e.id = id,
            Entity::AccessList(e) => e.id = id,
            Entity::Certificate(e) => e.id = id,
        }
    }

    /// A short label for history summaries: `proxy host 3 (a.test, b.test)`.
    pub fn label(&self) -> String {
        let names = match self {
            Entity::ProxyHost(e) => e.domain_names.join(", "),
            Entity::RedirectionHost(e) => e.domain_names.join(", "),
            Entity::DeadHost(e) => e.domain_names.join(", "),
            Entity::Stream(e) => format!("port {}", e.incoming_port),
            Entity::AccessList(e) => e.name.clone(),
            Entity::Certificate(e) => e.name.clone(),
        };
        format!("{} {} ({})", self.kind(), self.id(), names)
    }

    /// Inserts or replaces the entity in `config`, keeping each list sorted
    /// by id as [`load`](ppm_core::store::ConfigStore::load) returns it.
    pub fn put_into(self, config: &mut Config) {
        match self {
            Entity::ProxyHost(e) => put(&mut config.proxy_hosts, e, |x| x.id),
            Entity::RedirectionHost(e) => put(&mut config.redirection_hosts, e, |x| x.id),
            Entity::DeadHost(e) => put(&mut config.dead_hosts, e, |x| x.id),
            Entity::Stream(e) => put(&mut config.streams, e, |x| x.id),
            Entity::AccessList(e) => put(&mut config.access_lists, e, |x| x.id),
            Entity::Certificate(e) => put(&mut config.certificates, e, |x| x.id),
        }
    }
}

fn put<T>(list: &mut Vec<T>, item: T, id: impl Fn(&T) -> Id) {
    let key = id(&item);
    match list.binary_search_by_key(&key, &id) {
        Ok(i) => list[i] = item,
        Err(i) => list.insert(i, item),
    }
}

fn remove<T>(list: &mut Vec<T>, key: Id, id: impl Fn(&T) -> Id) {
    list.retain(|x| id(x) != key);
}

/// Removes the entity `kind`/`id` from `config`, if present.
pub fn remove_from(config: &mut Config, kind: EntityKind, id: Id) {
    match kind {
        EntityKind::ProxyHost => remove(&mut config.proxy_hosts, id, |x| x.id),
        EntityKind::RedirectionHost => remove(&mut config.redirection_hosts, id, |x| x.id),
        EntityKind::DeadHost => remove(&mut config.dead_hosts, id, |x| x.id),
        EntityKind::Stream => remove(&mut config.streams, id, |x| x.id),
        EntityKind::AccessList => remove(&mut config.access_lists, id, |x| x.id),
        EntityKind::Certificate => remove(&mut config.certificates, id, |x| x.id),
        EntityKind::User | EntityKind::ApiToken => {}
    }
}

/// One change of a revision, as recorded in the history.
///
/// `before`/`after` hold whole entities, so a later diff view needs nothing
/// else. They include secrets, as the database does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "op", rename_all = "snake_case")]
#[non_exhaustive]
#[allow(clippy::large_enum_variant)] // See `Entity`.
pub enum Change {
    /// An entity was created.
    Create {
        /// The stored entity.
        after: Entity,
    },
    /// An entity was replaced.
    Update {
        /// The entity before the write.
        before: Entity,
        /// The entity after the write.
        after: Entity,
    },
    /// An entity was deleted.
    Delete {
        /// The deleted entity.
        before: Entity,
    },
    /// The settings were replaced.
    Settings {
        /// Settings before the write.
        before: Box<Settings>,
        /// Settings after the write.
        after: Box<Settings>,
    },
    /// The whole config was replaced (import, rollback); the revision's
    /// snapshot holds the result.
    ReplaceAll,
}

impl Change {
    /// Applies the change to `config`. `ReplaceAll` cannot be replayed from
    /// the change alone and leaves `config` untouched.
    pub fn apply(&self, config: &mut Config) {
        match self {
            Change::Create { after } | Change::Update { after, .. } => {
                after.clone().put_into(config)
            }
            Change::Delete { before } => remove_from(config, before.kind(), before.id()),
            Change::Settings { after, .. } => config.settings = (**after).clone(),
            Change::ReplaceAll => {}
        }
    }
}

/// One entry of the config history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[non_exhaustive]
pub struct RevisionInfo {
    /// The revision the write created.
    pub revision: u64,
    /// When, in unix milliseconds.
    pub at: i64,
    /// Who (see [`WriteContext`]).
    pub actor: String,
    /// The client address, when known.
    pub client_ip: Option<String>,
    /// What, for people: `update proxy host 3 (a.test)`.
    pub summary: String,
}

/// The entity-level changes of one revision, for a diff view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[non_exhaustive]
pub struct RevisionChanges {
    /// Who, when and what.
    pub info: RevisionInfo,
    /// The changes, in the order they were made.
    pub changes: Vec<Change>,
}

/// The `format` of an export document.
pub const EXPORT_FORMAT: &str = "ppm-config";
/// The newest export `version` this build writes and reads.
pub const EXPORT_VERSION: u32 = 1;

/// A whole configuration as one versioned JSON document:
/// `{"format": "ppm-config", "version": 1, "revision": N, "config": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ExportDocument {
    /// Always [`EXPORT_FORMAT`].
    pub format: String,
    /// The document version, [`EXPORT_VERSION`].
    pub version: u32,
    /// The revision the config was exported at.
    pub revision: u64,
    /// The configuration.
    pub config: Config,
}

impl ExportDocument {
    /// A document for `config` at `revision`.
    pub fn new(revision: u64, config: Config) -> Self {
        ExportDocument {
            format: EXPORT_FORMAT.to_string(),
            version: EXPORT_VERSION,
            revision,
            config,
        }
    }

    /// Parses and checks a document.
    pub fn from_json(json: &str) -> Result<Self, crate::WriteError> {
        let value: serde_json::Value = serde_json::from_str(json)
            .map_err(|e| crate::WriteError::Format(format!("not JSON: {e}")))?;
        let format = value.get("format").and_then(|f| f.as_str());
        if format != Some(EXPORT_FORMAT) {
            return Err(crate::WriteError::Format(format!(
                "`format` must be \"{EXPORT_FORMAT}\""
            )));
        }
        match value.get("version").and_then(|v| v.as_u64()) {
            Some(v) if v == u64::from(EXPORT_VERSION) => {}
            Some(v) => {
                return Err(crate::WriteError::Format(format!(
                    "version {v} is not supported (this build reads version {EXPORT_VERSION})"
                )))
            }
            None => return Err(crate::WriteError::Format("`version` is missing".into())),
        }
        serde_json::from_value(value).map_err(|e| crate::WriteError::Format(e.to_string()))
    }

    /// The document as pretty-printed JSON.
    pub fn to_json(&self) -> Result<String, crate::WriteError> {
        serde_json::to_string_pretty(self).map_err(|e| crate::WriteError::Corrupt(e.to_string()))
    }

    /// Blanks private keys and password hashes.
    pub fn strip_secrets(&mut self) {
        strip_secrets(&mut self.config);
    }
}

/// Blanks the secrets of `config`: certificates' private keys and access
/// list users' password hashes.
pub fn strip_secrets(config: &mut Config) {
    for c in &mut config.certificates {
        c.private_key_pem.clear();
    }
    for a in &mut config.access_lists {
        for u in &mut a.users {
            u.password_hash.clear();
        }
    }
}
