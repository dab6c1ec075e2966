//! Writing entities: checks that name the field, then row inserts.
//!
//! Every function here runs inside the caller's write transaction.
//! Compiled once per backend (see `shared/mod.rs`); the backend's
//! `dialect` gives the id of an inserted entity and what an import must do
//! after its rows are in.

use std::collections::HashMap;

use ppm_core::config::{
    AccessList, Certificate, Config, DeadHost, DefaultSite, FilterSpec, HeaderRule, Id, Location,
    ProxyHost, RedirectionHost, Settings, Stream, Upstream,
};
use ppm_core::error::{ConfigError, FieldError};

use super::dialect::{self, Conn};
use crate::codec::{domain_key, enum_to_str, to_json, widen};
use crate::error::WriteError;
use crate::model::{Entity, EntityKind};
pub(crate) use crate::rules::{check_config, Mode};
use crate::rules::{
    domain_names_of, finish, not_found, prefixed, references, row_id, transports, Owner,
};

/// Checks an entity against the database before a create or update:
/// unique names and ports, existing references.
pub(crate) async fn check_entity(conn: &mut Conn, entity: &Entity) -> Result<(), WriteError> {
    let mut errors = Vec::new();
    let me = (entity.kind(), entity.id());

    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, name) in domain_names_of(entity).iter().enumerate() {
        let key = domain_key(name);
        if let Some(first) = seen.get(&key) {
            errors.push(FieldError::new(
                format!("domain_names[{i}]"),
                format!("\"{name}\" is already listed at domain_names[{first}]"),
            ));
            continue;
        }
        seen.insert(key.clone(), i);
        let owner: Option<(Option<i64>, Option<i64>, Option<i64>)> = sqlx::query_as(
            "SELECT proxy_host_id, redirection_host_id, dead_host_id
             FROM domain_names WHERE name_key = $1",
        )
        .bind(&key)
        .fetch_optional(&mut *conn)
        .await?;
        let owner = match owner {
            Some((Some(id), _, _)) => Some((EntityKind::ProxyHost, id)),
            Some((_, Some(id), _)) => Some((EntityKind::RedirectionHost, id)),
            Some((_, _, Some(id))) => Some((EntityKind::DeadHost, id)),
            _ => None,
        };
        if let Some(owner) = owner {
            if owner != me {
                errors.push(FieldError::new(
                    format!("domain_names[{i}]"),
                    format!("\"{name}\" is already used by {} {}", owner.0, owner.1),
                ));
            }
        }
    }

    for (field, kind, id) in references(entity) {
        if !exists(conn, kind, id).await? {
            errors.push(FieldError::new(
                field,
                format!("{kind} {id} does not exist"),
            ));
        }
    }

    if let Entity::Stream(s) = entity {
        let holders: Vec<(i64, String)> = sqlx::query_as(
            "SELECT stream_id, transport FROM stream_ports WHERE port = $1 AND stream_id != $2",
        )
        .bind(i64::from(s.incoming_port))
        .bind(s.id)
        .fetch_all(&mut *conn)
        .await?;
        for (other, transport) in holders {
            if transports(s.protocol).contains(&transport.as_str()) {
                errors.push(FieldError::new(
                    "incoming_port",
                    format!(
                        "{transport} port {} is already used by stream {other}",
                        s.incoming_port
                    ),
                ));
                break;
            }
        }
    }
    finish(errors)
}

/// Checks settings against the database: the default site's host exists.
pub(crate) async fn check_settings(conn: &mut Conn, settings: &Settings) -> Result<(), WriteError> {
    if let DefaultSite::Host { host_id } = settings.default_site {
        if !exists(conn, EntityKind::ProxyHost, host_id).await? {
            return Err(WriteError::field(
                "default_site.host_id",
                format!("proxy host {host_id} does not exist"),
            ));
        }
    }
    Ok(())
}

/// Whether `kind` `id` is stored.
pub(crate) async fn exists(conn: &mut Conn, kind: EntityKind, id: Id) -> Result<bool, WriteError> {
    let sql = match kind {
        EntityKind::ProxyHost => "SELECT id FROM proxy_hosts WHERE id = $1",
        EntityKind::RedirectionHost => "SELECT id FROM redirection_hosts WHERE id = $1",
        EntityKind::DeadHost => "SELECT id FROM dead_hosts WHERE id = $1",
        EntityKind::Stream => "SELECT id FROM streams WHERE id = $1",
        EntityKind::AccessList => "SELECT id FROM access_lists WHERE id = $1",
        EntityKind::Certificate => "SELECT id FROM certificates WHERE id = $1",
        EntityKind::User => "SELECT id FROM users WHERE id = $1",
        EntityKind::ApiToken => "SELECT id FROM api_tokens WHERE id = $1",
    };
    let found: Option<i64> = sqlx::query_scalar(sql)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(found.is_some())
}

/// Refuses to delete an entity something still refers to.
pub(crate) async fn check_unused(
    conn: &mut Conn,
    kind: EntityKind,
    id: Id,
) -> Result<(), WriteError> {
    let users: &[(&'static str, EntityKind)] = match kind {
        EntityKind::AccessList => &[
            (
                "SELECT id FROM proxy_hosts WHERE access_list_id = $1 ORDER BY id LIMIT 1",
                EntityKind::ProxyHost,
            ),
            (
                "SELECT id FROM streams WHERE access_list_id = $1 ORDER BY id LIMIT 1",
                EntityKind::Stream,
            ),
        ],
        EntityKind::Certificate => &[
            (
                "SELECT id FROM proxy_hosts WHERE certificate_id = $1 ORDER BY id LIMIT 1",
                EntityKind::ProxyHost,
            ),
            (
                "SELECT id FROM redirection_hosts WHERE certificate_id = $1 ORDER BY id LIMIT 1",
                EntityKind::RedirectionHost,
            ),
            (
                "SELECT id FROM dead_hosts WHERE certificate_id = $1 ORDER BY id LIMIT 1",
                EntityKind::DeadHost,
            ),
            (
                "SELECT id FROM streams WHERE certificate_id = $1 ORDER BY id LIMIT 1",
                EntityKind::Stream,
            ),
        ],
        _ => &[],
    };
    for (sql, user_kind) in users {
        let user: Option<i64> = sqlx::query_scalar(*sql)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
        if let Some(user) = user {
            return Err(WriteError::InUse {
                kind,
                id,
                used_by: format!("{user_kind} {user}"),
            });
        }
    }
    if kind == EntityKind::ProxyHost {
        let settings = super::read::load_settings(conn).await?;
        if settings.default_site == (DefaultSite::Host { host_id: id }) {
            return Err(WriteError::InUse {
                kind,
                id,
                used_by: "settings.default_site".into(),
            });
        }
    }
    Ok(())
}

/// Writes an entity and its children; sets its id on create.
pub(crate) async fn write_entity(
    conn: &mut Conn,
    entity: &mut Entity,
    mode: Mode,
) -> Result<(), WriteError> {
    if mode == Mode::Create {
        entity.set_id(0);
    }
    let id = match entity {
        Entity::ProxyHost(h) => write_proxy_host(conn, h, mode).await?,
        Entity::RedirectionHost(h) => write_redirection_host(conn, h, mode).await?,
        Entity::DeadHost(h) => write_dead_host(conn, h, mode).await?,
        Entity::Stream(s) => write_stream(conn, s, mode).await?,
        Entity::AccessList(a) => write_access_list(conn, a, mode).await?,
        Entity::Certificate(c) => write_certificate(conn, c, mode).await?,
    };
    entity.set_id(id);
    Ok(())
}

async fn write_proxy_host(conn: &mut Conn, h: &ProxyHost, mode: Mode) -> Result<Id, WriteError> {
    let mut errors = Vec::new();
    let connect = h
        .timeouts
        .connect_ms
        .map(|v| widen(v, "timeouts.connect_ms", &mut errors));
    let read = h
        .timeouts
        .read_ms
        .map(|v| widen(v, "timeouts.read_ms", &mut errors));
    let write = h
        .timeouts
        .write_ms
        .map(|v| widen(v, "timeouts.write_ms", &mut errors));
    let max_body = h
        .max_body_size
        .map(|v| widen(v, "max_body_size", &mut errors));
    let fail_timeout = widen(
        h.passive_health.fail_timeout_ms,
        "passive_health.fail_timeout_ms",
        &mut errors,
    );
    finish(errors)?;
    let health = h.health_check.as_ref().map(to_json).transpose()?;
    let sql = if mode == Mode::Update {
        "UPDATE proxy_hosts SET balancing = $2, forward_scheme = $3, upstream_sni = $4,
            upstream_verify_tls = $5, health_check = $6, passive_max_fails = $7,
            passive_fail_timeout_ms = $8, retries = $9, connect_timeout_ms = $10,
            read_timeout_ms = $11, write_timeout_ms = $12, max_body_size = $13,
            allow_websocket_upgrade = $14, access_list_id = $15, certificate_id = $16,
            ssl_forced = $17, hsts_enabled = $18, hsts_subdomains = $19, http2_support = $20,
            block_exploits = $21, enabled = $22
         WHERE id = $1 RETURNING id"
    } else {
        concat!(
            "INSERT INTO proxy_hosts (id, balancing, forward_scheme, upstream_sni,
            upstream_verify_tls, health_check, passive_max_fails, passive_fail_timeout_ms,
            retries, connect_timeout_ms, read_timeout_ms, write_timeout_ms, max_body_size,
            allow_websocket_upgrade, access_list_id, certificate_id, ssl_forced, hsts_enabled,
            hsts_subdomains, http2_support, block_exploits, enabled)
         VALUES (",
            dialect::new_id!("proxy_hosts"),
            ", $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
            $18, $19, $20, $21, $22)
         RETURNING id"
        )
    };
    let id: Option<Id> = sqlx::query_scalar(sql)
        .bind(row_id(h.id, mode))
        .bind(to_json(&h.balancing)?)
        .bind(enum_to_str(&h.forward_scheme)?)
        .bind(&h.upstream_sni)
        .bind(h.upstream_verify_tls)
        .bind(health)
        .bind(i64::from(h.passive_health.max_fails))
        .bind(fail_timeout)
        .bind(i64::from(h.retries))
        .bind(connect)
        .bind(read)
        .bind(write)
        .bind(max_body)
        .bind(h.allow_websocket_upgrade)
        .bind(h.access_list_id)
        .bind(h.certificate_id)
        .bind(h.ssl_forced)
        .bind(h.hsts_enabled)
        .bind(h.hsts_subdomains)
        .bind(h.http2_support)
        .bind(h.block_exploits)
        .bind(h.enabled)
        .fetch_optional(&mut *conn)
        .await?;
    let id = id.ok_or_else(|| not_found(EntityKind::ProxyHost, h.id))?;
    clear_children(
        conn,
        mode,
        id,
        &[
            "DELETE FROM domain_names WHERE proxy_host_id = $1",
            "DELETE FROM upstreams WHERE proxy_host_id = $1",
            "DELETE FROM header_rules WHERE proxy_host_id = $1",
            "DELETE FROM filters WHERE proxy_host_id = $1",
            "DELETE FROM locations WHERE proxy_host_id = $1",
        ],
    )
    .await?;
    let owner = Owner::ProxyHost(id);
    insert_domains(conn, owner, &h.domain_names).await?;
    insert_upstreams(conn, owner, &h.upstreams).await?;
    insert_headers(conn, owner, "request", &h.request_headers).await?;
    insert_headers(conn, owner, "response", &h.response_headers).await?;
    insert_filters(conn, owner, &h.filters).await?;
    for (i, l) in h.locations.iter().enumerate() {
        insert_location(conn, id, i, l).await?;
    }
    Ok(id)
}

async fn insert_location(
    conn: &mut Conn,
    host: Id,
    position: usize,
    l: &Location,
) -> Result<(), WriteError> {
    let mut errors = Vec::new();
    let p = format!("locations[{position}]");
    let connect = l
        .timeouts
        .connect_ms
        .map(|v| widen(v, &prefixed(&p, "timeouts.connect_ms"), &mut errors));
    let read = l
        .timeouts
        .read_ms
        .map(|v| widen(v, &prefixed(&p, "timeouts.read_ms"), &mut errors));
    let write = l
        .timeouts
        .write_ms
        .map(|v| widen(v, &prefixed(&p, "timeouts.write_ms"), &mut errors));
    finish(errors)?;
    let id: Id = sqlx::query_scalar(
        "INSERT INTO locations (proxy_host_id, position, path, match_kind, balancing,
            forward_scheme, rewrite, connect_timeout_ms, read_timeout_ms, write_timeout_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         RETURNING id",
    )
    .bind(host)
    .bind(position as i64)
    .bind(&l.path)
    .bind(enum_to_str(&l.match_kind)?)
    .bind(l.balancing.as_ref().map(to_json).transpose()?)
    .bind(l.forward_scheme.as_ref().map(enum_to_str).transpose()?)
    .bind(&l.rewrite)
    .bind(connect)
    .bind(read)
    .bind(write)
    .fetch_one(&mut *conn)
    .await?;
    let owner = Owner::Location(id);
    insert_upstreams(conn, owner, &l.upstreams).await?;
    insert_headers(conn, owner, "request", &l.request_headers).await?;
    insert_headers(conn, owner, "response", &l.response_headers).await?;
    insert_filters(conn, owner, &l.filters).await?;
    Ok(())
}

async fn write_redirection_host(
    conn: &mut Conn,
    h: &RedirectionHost,
    mode: Mode,
) -> Result<Id, WriteError> {
    let sql = if mode == Mode::Update {
        "UPDATE redirection_hosts SET status = $2, forward_scheme = $3, forward_domain = $4,
            preserve_path = $5, certificate_id = $6, ssl_forced = $7, hsts_enabled = $8,
            hsts_subdomains = $9, block_exploits = $10, enabled = $11
         WHERE id = $1 RETURNING id"
    } else {
        concat!(
            "INSERT INTO redirection_hosts (id, status, forward_scheme, forward_domain,
            preserve_path, certificate_id, ssl_forced, hsts_enabled, hsts_subdomains,
            block_exploits, enabled)
         VALUES (",
            dialect::new_id!("redirection_hosts"),
            ", $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         RETURNING id"
        )
    };
    let id: Option<Id> = sqlx::query_scalar(sql)
        .bind(row_id(h.id, mode))
        .bind(i64::from(h.status))
        .bind(h.forward_scheme.as_ref().map(enum_to_str).transpose()?)
        .bind(&h.forward_domain)
        .bind(h.preserve_path)
        .bind(h.certificate_id)
        .bind(h.ssl_forced)
        .bind(h.hsts_enabled)
        .bind(h.hsts_subdomains)
        .bind(h.block_exploits)
        .bind(h.enabled)
        .fetch_optional(&mut *conn)
        .await?;
    let id = id.ok_or_else(|| not_found(EntityKind::RedirectionHost, h.id))?;
    clear_children(
        conn,
        mode,
        id,
        &[
            "DELETE FROM domain_names WHERE redirection_host_id = $1",
            "DELETE FROM filters WHERE redirection_host_id = $1",
        ],
    )
    .await?;
    let owner = Owner::RedirectionHost(id);
    insert_domains(conn, owner, &h.domain_names).await?;
    insert_filters(conn, owner, &h.filters).await?;
    Ok(id)
}

async fn write_dead_host(conn: &mut Conn, h: &DeadHost, mode: Mode) -> Result<Id, WriteError> {
    let sql = if mode == Mode::Update {
        "UPDATE dead_hosts SET certificate_id = $2, ssl_forced = $3, hsts_enabled = $4,
            hsts_subdomains = $5, enabled = $6
         WHERE id = $1 RETURNING id"
    } else {
        concat!(
            "INSERT INTO dead_hosts (id, certificate_id, ssl_forced, hsts_enabled, hsts_subdomains,
            enabled)
         VALUES (",
            dialect::new_id!("dead_hosts"),
            ", $2, $3, $4, $5, $6)
         RETURNING id"
        )
    };
    let id: Option<Id> = sqlx::query_scalar(sql)
        .bind(row_id(h.id, mode))
        .bind(h.certificate_id)
        .bind(h.ssl_forced)
        .bind(h.hsts_enabled)
        .bind(h.hsts_subdomains)
        .bind(h.enabled)
        .fetch_optional(&mut *conn)
        .await?;
    let id = id.ok_or_else(|| not_found(EntityKind::DeadHost, h.id))?;
    clear_children(
        conn,
        mode,
        id,
        &[
            "DELETE FROM domain_names WHERE dead_host_id = $1",
            "DELETE FROM filters WHERE dead_host_id = $1",
        ],
    )
    .await?;
    let owner = Owner::DeadHost(id);
    insert_domains(conn, owner, &h.domain_names).await?;
    insert_filters(conn, owner, &h.filters).await?;
    Ok(id)
}

async fn write_stream(conn: &mut Conn, s: &Stream, mode: Mode) -> Result<Id, WriteError> {
    let mut errors = Vec::new();
    let idle = widen(s.idle_timeout_ms, "idle_timeout_ms", &mut errors);
    finish(errors)?;
    let sql = if mode == Mode::Update {
        "UPDATE streams SET incoming_port = $2, bind_address = $3, protocol = $4,
            balancing = $5, access_list_id = $6, certificate_id = $7, proxy_protocol = $8,
            idle_timeout_ms = $9, enabled = $10
         WHERE id = $1 RETURNING id"
    } else {
        concat!(
            "INSERT INTO streams (id, incoming_port, bind_address, protocol, balancing,
            access_list_id, certificate_id, proxy_protocol, idle_timeout_ms, enabled)
         VALUES (",
            dialect::new_id!("streams"),
            ", $2, $3, $4, $5, $6, $7, $8, $9, $10)
         RETURNING id"
        )
    };
    let id: Option<Id> = sqlx::query_scalar(sql)
        .bind(row_id(s.id, mode))
        .bind(i64::from(s.incoming_port))
        .bind(&s.bind_address)
        .bind(enum_to_str(&s.protocol)?)
        .bind(to_json(&s.balancing)?)
        .bind(s.access_list_id)
        .bind(s.certificate_id)
        .bind(s.proxy_protocol.map(i64::from))
        .bind(idle)
        .bind(s.enabled)
        .fetch_optional(&mut *conn)
        .await?;
    let id = id.ok_or_else(|| not_found(EntityKind::Stream, s.id))?;
    clear_children(
        conn,
        mode,
        id,
        &[
            "DELETE FROM stream_ports WHERE stream_id = $1",
            "DELETE FROM upstreams WHERE stream_id = $1",
        ],
    )
    .await?;
    for t in transports(s.protocol) {
        sqlx::query("INSERT INTO stream_ports (port, transport, stream_id) VALUES ($1, $2, $3)")
            .bind(i64::from(s.incoming_port))
            .bind(*t)
            .bind(id)
            .execute(&mut *conn)
            .await?;
    }
    insert_upstreams(conn, Owner::Stream(id), &s.upstreams).await?;
    Ok(id)
}

async fn write_access_list(conn: &mut Conn, a: &AccessList, mode: Mode) -> Result<Id, WriteError> {
    let mut errors = Vec::new();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, u) in a.users.iter().enumerate() {
        if let Some(first) = seen.insert(u.username.as_str(), i) {
            errors.push(FieldError::new(
                format!("users[{i}].username"),
                format!("\"{}\" is already listed at users[{first}]", u.username),
            ));
        }
    }
    finish(errors)?;
    let sql = if mode == Mode::Update {
        "UPDATE access_lists SET name = $2, default_action = $3, satisfy = $4, pass_auth = $5
         WHERE id = $1 RETURNING id"
    } else {
        concat!(
            "INSERT INTO access_lists (id, name, default_action, satisfy, pass_auth)
         VALUES (",
            dialect::new_id!("access_lists"),
            ", $2, $3, $4, $5)
         RETURNING id"
        )
    };
    let id: Option<Id> = sqlx::query_scalar(sql)
        .bind(row_id(a.id, mode))
        .bind(&a.name)
        .bind(enum_to_str(&a.default_action)?)
        .bind(enum_to_str(&a.satisfy)?)
        .bind(a.pass_auth)
        .fetch_optional(&mut *conn)
        .await?;
    let id = id.ok_or_else(|| not_found(EntityKind::AccessList, a.id))?;
    clear_children(
        conn,
        mode,
        id,
        &[
            "DELETE FROM access_list_rules WHERE access_list_id = $1",
            "DELETE FROM access_list_users WHERE access_list_id = $1",
        ],
    )
    .await?;
    for (i, r) in a.rules.iter().enumerate() {
        sqlx::query(
            "INSERT INTO access_list_rules (access_list_id, position, action, address)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(id)
        .bind(i as i64)
        .bind(enum_to_str(&r.action)?)
        .bind(&r.address)
        .execute(&mut *conn)
        .await?;
    }
    for (i, u) in a.users.iter().enumerate() {
        sqlx::query(
            "INSERT INTO access_list_users (access_list_id, position, username, password_hash)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(id)
        .bind(i as i64)
        .bind(&u.username)
        .bind(&u.password_hash)
        .execute(&mut *conn)
        .await?;
    }
    Ok(id)
}

async fn write_certificate(conn: &mut Conn, c: &Certificate, mode: Mode) -> Result<Id, WriteError> {
    let sql = if mode == Mode::Update {
        "UPDATE certificates SET name = $2, source = $3, certificate_pem = $4,
            private_key_pem = $5
         WHERE id = $1 RETURNING id"
    } else {
        concat!(
            "INSERT INTO certificates (id, name, source, certificate_pem, private_key_pem)
         VALUES (",
            dialect::new_id!("certificates"),
            ", $2, $3, $4, $5)
         RETURNING id"
        )
    };
    let id: Option<Id> = sqlx::query_scalar(sql)
        .bind(row_id(c.id, mode))
        .bind(&c.name)
        .bind(enum_to_str(&c.source)?)
        .bind(&c.certificate_pem)
        .bind(&c.private_key_pem)
        .fetch_optional(&mut *conn)
        .await?;
    let id = id.ok_or_else(|| not_found(EntityKind::Certificate, c.id))?;
    clear_children(
        conn,
        mode,
        id,
        &["DELETE FROM certificate_domains WHERE certificate_id = $1"],
    )
    .await?;
    for (i, name) in c.domain_names.iter().enumerate() {
        sqlx::query(
            "INSERT INTO certificate_domains (certificate_id, position, name) VALUES ($1, $2, $3)",
        )
        .bind(id)
        .bind(i as i64)
        .bind(name)
        .execute(&mut *conn)
        .await?;
    }
    Ok(id)
}

/// On an update, deletes the entity's child rows with `deletes` (`$1`
/// bound to its id), before they are written again.
async fn clear_children(
    conn: &mut Conn,
    mode: Mode,
    id: Id,
    deletes: &[&'static str],
) -> Result<(), WriteError> {
    if mode == Mode::Update {
        for sql in deletes {
            sqlx::query(*sql).bind(id).execute(&mut *conn).await?;
        }
    }
    Ok(())
}

async fn insert_domains(conn: &mut Conn, owner: Owner, names: &[String]) -> Result<(), WriteError> {
    for (i, name) in names.iter().enumerate() {
        sqlx::query(
            "INSERT INTO domain_names (name_key, name, position, proxy_host_id,
                redirection_host_id, dead_host_id)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(domain_key(name))
        .bind(name)
        .bind(i as i64)
        .bind(owner.proxy_host())
        .bind(owner.redirection_host())
        .bind(owner.dead_host())
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

async fn insert_upstreams(
    conn: &mut Conn,
    owner: Owner,
    upstreams: &[Upstream],
) -> Result<(), WriteError> {
    for (i, u) in upstreams.iter().enumerate() {
        sqlx::query(
            "INSERT INTO upstreams (proxy_host_id, location_id, stream_id, position, host, port,
                weight)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(owner.proxy_host())
        .bind(owner.location())
        .bind(owner.stream())
        .bind(i as i64)
        .bind(&u.host)
        .bind(i64::from(u.port))
        .bind(i64::from(u.weight))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

async fn insert_headers(
    conn: &mut Conn,
    owner: Owner,
    direction: &'static str,
    rules: &[HeaderRule],
) -> Result<(), WriteError> {
    for (i, r) in rules.iter().enumerate() {
        sqlx::query(
            "INSERT INTO header_rules (proxy_host_id, location_id, direction, position, name,
                value, action)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(owner.proxy_host())
        .bind(owner.location())
        .bind(direction)
        .bind(i as i64)
        .bind(&r.name)
        .bind(&r.value)
        .bind(enum_to_str(&r.action)?)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

async fn insert_filters(
    conn: &mut Conn,
    owner: Owner,
    filters: &[FilterSpec],
) -> Result<(), WriteError> {
    for (i, f) in filters.iter().enumerate() {
        sqlx::query(
            "INSERT INTO filters (proxy_host_id, location_id, redirection_host_id, dead_host_id,
                position, kind, config, priority)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(owner.proxy_host())
        .bind(owner.location())
        .bind(owner.redirection_host())
        .bind(owner.dead_host())
        .bind(i as i64)
        .bind(&f.kind)
        .bind(to_json(&f.config)?)
        .bind(f.priority)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Deletes an entity (children cascade).
pub(crate) async fn delete_entity(
    conn: &mut Conn,
    kind: EntityKind,
    id: Id,
) -> Result<(), WriteError> {
    let sql = match kind {
        EntityKind::ProxyHost => "DELETE FROM proxy_hosts WHERE id = $1",
        EntityKind::RedirectionHost => "DELETE FROM redirection_hosts WHERE id = $1",
        EntityKind::DeadHost => "DELETE FROM dead_hosts WHERE id = $1",
        EntityKind::Stream => "DELETE FROM streams WHERE id = $1",
        EntityKind::AccessList => "DELETE FROM access_lists WHERE id = $1",
        EntityKind::Certificate => "DELETE FROM certificates WHERE id = $1",
        EntityKind::User | EntityKind::ApiToken => return Err(not_found(kind, id)),
    };
    let done = sqlx::query(sql).bind(id).execute(&mut *conn).await?;
    if done.rows_affected() == 0 {
        return Err(not_found(kind, id));
    }
    Ok(())
}

/// Replaces the settings rows.
pub(crate) async fn write_settings(conn: &mut Conn, settings: &Settings) -> Result<(), WriteError> {
    let value = serde_json::to_value(settings).map_err(|e| WriteError::Corrupt(e.to_string()))?;
    sqlx::query("DELETE FROM settings")
        .execute(&mut *conn)
        .await?;
    if let serde_json::Value::Object(map) = value {
        for (key, value) in map {
            sqlx::query("INSERT INTO settings (key, value) VALUES ($1, $2)")
                .bind(key)
                .bind(to_json(&value)?)
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(())
}

/// Deletes every config row (not users, tokens, audit or history), children
/// first so references never dangle mid-way.
pub(crate) async fn clear_config(conn: &mut Conn) -> Result<(), WriteError> {
    for sql in [
        "DELETE FROM proxy_hosts",
        "DELETE FROM redirection_hosts",
        "DELETE FROM dead_hosts",
        "DELETE FROM streams",
        "DELETE FROM access_lists",
        "DELETE FROM certificates",
        "DELETE FROM settings",
    ] {
        sqlx::query(sql).execute(&mut *conn).await?;
    }
    Ok(())
}

/// Writes a whole config into empty tables, keeping its ids.
pub(crate) async fn insert_config(conn: &mut Conn, config: &Config) -> Result<(), WriteError> {
    let mut entities: Vec<Entity> = Vec::new();
    entities.extend(config.access_lists.iter().cloned().map(Entity::AccessList));
    entities.extend(config.certificates.iter().cloned().map(Entity::Certificate));
    entities.extend(config.proxy_hosts.iter().cloned().map(Entity::ProxyHost));
    entities.extend(
        config
            .redirection_hosts
            .iter()
            .cloned()
            .map(Entity::RedirectionHost),
    );
    entities.extend(config.dead_hosts.iter().cloned().map(Entity::DeadHost));
    entities.extend(config.streams.iter().cloned().map(Entity::Stream));
    for mut e in entities {
        let kind = e.kind();
        let id = e.id();
        write_entity(conn, &mut e, Mode::Import)
            .await
            .map_err(|err| match err {
                // Entity-relative paths get the config path in front.
                WriteError::Invalid(c) => WriteError::Invalid(ConfigError::new(
                    c.errors
                        .into_iter()
                        .map(|f| FieldError::new(format!("{kind} {id}: {}", f.path), f.message))
                        .collect(),
                )),
                other => other,
            })?;
    }
    write_settings(conn, &config.settings).await?;
    dialect::after_import(conn).await
}
