//! What the backends' write paths share that does not touch the database:
//! the checks of a whole config, which name the field, and small helpers
//! for the row writers. The SQL stays with each backend.

use std::collections::HashMap;

use ppm_core::config::{Config, DefaultSite, Id, StreamProtocol};
use ppm_core::error::{ConfigError, FieldError};

use crate::codec::domain_key;
use crate::error::WriteError;
use crate::model::{Entity, EntityKind};

/// The owner of a child row; each maps to one nullable column.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Owner {
    ProxyHost(Id),
    Location(Id),
    RedirectionHost(Id),
    DeadHost(Id),
    Stream(Id),
}

impl Owner {
    pub(crate) fn proxy_host(self) -> Option<Id> {
        match self {
            Owner::ProxyHost(id) => Some(id),
            _ => None,
        }
    }
    pub(crate) fn location(self) -> Option<Id> {
        match self {
            Owner::Location(id) => Some(id),
            _ => None,
        }
    }
    pub(crate) fn redirection_host(self) -> Option<Id> {
        match self {
            Owner::RedirectionHost(id) => Some(id),
            _ => None,
        }
    }
    pub(crate) fn dead_host(self) -> Option<Id> {
        match self {
            Owner::DeadHost(id) => Some(id),
            _ => None,
        }
    }
    pub(crate) fn stream(self) -> Option<Id> {
        match self {
            Owner::Stream(id) => Some(id),
            _ => None,
        }
    }
}

pub(crate) fn prefixed(prefix: &str, field: impl std::fmt::Display) -> String {
    if prefix.is_empty() {
        field.to_string()
    } else {
        format!("{prefix}.{field}")
    }
}

pub(crate) fn finish(errors: Vec<FieldError>) -> Result<(), WriteError> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(WriteError::Invalid(ConfigError::new(errors)))
    }
}

/// The transports a stream protocol occupies.
pub(crate) fn transports(p: StreamProtocol) -> &'static [&'static str] {
    match p {
        StreamProtocol::Tcp => &["tcp"],
        StreamProtocol::Udp => &["udp"],
        StreamProtocol::Both => &["tcp", "udp"],
    }
}

pub(crate) fn domain_names_of(e: &Entity) -> &[String] {
    match e {
        Entity::ProxyHost(h) => &h.domain_names,
        Entity::RedirectionHost(h) => &h.domain_names,
        Entity::DeadHost(h) => &h.domain_names,
        _ => &[],
    }
}

/// References an entity makes: (field, kind, id).
pub(crate) fn references(e: &Entity) -> Vec<(&'static str, EntityKind, Id)> {
    let mut refs = Vec::new();
    let (acl, cert) = match e {
        Entity::ProxyHost(h) => (h.access_list_id, h.certificate_id),
        Entity::RedirectionHost(h) => (None, h.certificate_id),
        Entity::DeadHost(h) => (None, h.certificate_id),
        Entity::Stream(s) => (s.access_list_id, s.certificate_id),
        _ => (None, None),
    };
    if let Some(id) = acl {
        refs.push(("access_list_id", EntityKind::AccessList, id));
    }
    if let Some(id) = cert {
        refs.push(("certificate_id", EntityKind::Certificate, id));
    }
    refs
}

/// Checks a whole config in memory before it replaces the stored one: the
/// same rules as [`check_entity`], with paths from the config root.
pub(crate) fn check_config(config: &Config) -> Result<(), WriteError> {
    let mut errors = Vec::new();

    fn ids<T>(
        list: &[T],
        field: &str,
        id: impl Fn(&T) -> Id,
        errors: &mut Vec<FieldError>,
    ) -> HashMap<Id, usize> {
        let mut seen = HashMap::new();
        for (i, item) in list.iter().enumerate() {
            let id = id(item);
            if id < 0 {
                errors.push(FieldError::new(
                    format!("{field}[{i}].id"),
                    "must not be negative",
                ));
            } else if id != 0 {
                if let Some(first) = seen.insert(id, i) {
                    errors.push(FieldError::new(
                        format!("{field}[{i}].id"),
                        format!("id {id} is already used by {field}[{first}]"),
                    ));
                }
            }
        }
        seen
    }
    let acls = ids(&config.access_lists, "access_lists", |x| x.id, &mut errors);
    let certs = ids(&config.certificates, "certificates", |x| x.id, &mut errors);
    let hosts = ids(&config.proxy_hosts, "proxy_hosts", |x| x.id, &mut errors);
    ids(
        &config.redirection_hosts,
        "redirection_hosts",
        |x| x.id,
        &mut errors,
    );
    ids(&config.dead_hosts, "dead_hosts", |x| x.id, &mut errors);
    ids(&config.streams, "streams", |x| x.id, &mut errors);

    let mut names: HashMap<String, String> = HashMap::new();
    let mut check_names = |field: &str, i: usize, list: &[String], errors: &mut Vec<FieldError>| {
        for (j, name) in list.iter().enumerate() {
            let path = format!("{field}[{i}].domain_names[{j}]");
            match names.get(&domain_key(name)) {
                Some(first) => errors.push(FieldError::new(
                    path,
                    format!("\"{name}\" is already used by {first}"),
                )),
                None => {
                    names.insert(domain_key(name), path);
                }
            }
        }
    };
    for (i, h) in config.proxy_hosts.iter().enumerate() {
        check_names("proxy_hosts", i, &h.domain_names, &mut errors);
    }
    for (i, h) in config.redirection_hosts.iter().enumerate() {
        check_names("redirection_hosts", i, &h.domain_names, &mut errors);
    }
    for (i, h) in config.dead_hosts.iter().enumerate() {
        check_names("dead_hosts", i, &h.domain_names, &mut errors);
    }

    let mut reference = |path: String, kind: EntityKind, id: Option<Id>| {
        let known = match kind {
            EntityKind::AccessList => &acls,
            EntityKind::Certificate => &certs,
            _ => &hosts,
        };
        if let Some(id) = id {
            if id == 0 || !known.contains_key(&id) {
                errors.push(FieldError::new(path, format!("{kind} {id} does not exist")));
            }
        }
    };
    for (i, h) in config.proxy_hosts.iter().enumerate() {
        reference(
            format!("proxy_hosts[{i}].access_list_id"),
            EntityKind::AccessList,
            h.access_list_id,
        );
        reference(
            format!("proxy_hosts[{i}].certificate_id"),
            EntityKind::Certificate,
            h.certificate_id,
        );
    }
    for (i, h) in config.redirection_hosts.iter().enumerate() {
        reference(
            format!("redirection_hosts[{i}].certificate_id"),
            EntityKind::Certificate,
            h.certificate_id,
        );
    }
    for (i, h) in config.dead_hosts.iter().enumerate() {
        reference(
            format!("dead_hosts[{i}].certificate_id"),
            EntityKind::Certificate,
            h.certificate_id,
        );
    }
    for (i, s) in config.streams.iter().enumerate() {
        reference(
            format!("streams[{i}].access_list_id"),
            EntityKind::AccessList,
            s.access_list_id,
        );
        reference(
            format!("streams[{i}].certificate_id"),
            EntityKind::Certificate,
            s.certificate_id,
        );
    }
    if let DefaultSite::Host { host_id } = config.settings.default_site {
        reference(
            "settings.default_site.host_id".into(),
            EntityKind::ProxyHost,
            Some(host_id),
        );
    }

    let mut ports: HashMap<(u16, &str), usize> = HashMap::new();
    for (i, s) in config.streams.iter().enumerate() {
        for t in transports(s.protocol) {
            if let Some(first) = ports.insert((s.incoming_port, t), i) {
                errors.push(FieldError::new(
                    format!("streams[{i}].incoming_port"),
                    format!(
                        "{t} port {} is already used by streams[{first}]",
                        s.incoming_port
                    ),
                ));
                break;
            }
        }
    }
    finish(errors)
}

/// How a row is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// A new row; the database assigns the id.
    Create,
    /// An existing row, replaced with its children.
    Update,
    /// A row with the id it has in an imported config (0: a new id).
    Import,
}

/// The `$1` of an entity's row write: its id for an update; for an insert,
/// the id it has in an imported config, or NULL to let the database pick
/// one.
pub(crate) fn row_id(id: Id, mode: Mode) -> Option<Id> {
    match mode {
        Mode::Update => Some(id),
        Mode::Import if id != 0 => Some(id),
        Mode::Create | Mode::Import => None,
    }
}

pub(crate) fn not_found(kind: EntityKind, id: Id) -> WriteError {
    WriteError::NotFound { kind, id }
}
