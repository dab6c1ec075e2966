//! Loading the whole config: one query per table, assembled in memory.
//!
//! Compiled once per backend (see `shared/mod.rs`): the statements and
//! the assembly of rows into a [`Config`] are written once here; how a
//! table's rows come back from the database is the backend's
//! [`select`](super::dialect::select). The row types derive both
//! [`Deserialize`] (SQLite returns a table as one JSON array of arrays, and
//! stores booleans as 0 or 1) and, with the `postgres` feature,
//! [`sqlx::FromRow`] (PostgreSQL decodes driver rows by column name).

use std::collections::HashMap;

use ppm_core::config::{
    AccessList, AccessUser, Certificate, Config, DeadHost, FilterSpec, HeaderRule, Id, IpRule,
    Location, PassiveHealth, ProxyHost, RedirectionHost, Settings, Stream, Timeouts, Upstream,
};
use ppm_core::error::StoreError;
use serde::{Deserialize, Deserializer};

use super::dialect::{self, Conn};
use crate::codec::{enum_from_str, from_json, narrow};
use crate::error::backend;
use crate::model::EntityKind;

#[derive(Deserialize)]
#[cfg_attr(feature = "postgres", derive(sqlx::FromRow))]
struct ProxyHostRow {
    id: i64,
    balancing: String,
    forward_scheme: String,
    upstream_sni: Option<String>,
    #[serde(deserialize_with = "int_bool")]
    upstream_verify_tls: bool,
    health_check: Option<String>,
    passive_max_fails: i64,
    passive_fail_timeout_ms: i64,
    retries: i64,
    connect_timeout_ms: Option<i64>,
    read_timeout_ms: Option<i64>,
    write_timeout_ms: Option<i64>,
    max_body_size: Option<i64>,
    #[serde(deserialize_with = "int_bool")]
    allow_websocket_upgrade: bool,
    access_list_id: Option<i64>,
    certificate_id: Option<i64>,
    #[serde(deserialize_with = "int_bool")]
    ssl_forced: bool,
    #[serde(deserialize_with = "int_bool")]
    hsts_enabled: bool,
    #[serde(deserialize_with = "int_bool")]
    hsts_subdomains: bool,
    #[serde(deserialize_with = "int_bool")]
    http2_support: bool,
    #[serde(deserialize_with = "int_bool")]
    block_exploits: bool,
    #[serde(deserialize_with = "int_bool")]
    enabled: bool,
}

#[derive(Deserialize)]
#[cfg_attr(feature = "postgres", derive(sqlx::FromRow))]
struct LocationRow {
    id: i64,
    proxy_host_id: i64,
    path: String,
    match_kind: String,
    balancing: Option<String>,
    forward_scheme: Option<String>,
    rewrite: Option<String>,
    connect_timeout_ms: Option<i64>,
    read_timeout_ms: Option<i64>,
    write_timeout_ms: Option<i64>,
}

#[derive(Deserialize)]
#[cfg_attr(feature = "postgres", derive(sqlx::FromRow))]
struct RedirectionHostRow {
    id: i64,
    status: i64,
    forward_scheme: Option<String>,
    forward_domain: String,
    #[serde(deserialize_with = "int_bool")]
    preserve_path: bool,
    certificate_id: Option<i64>,
    #[serde(deserialize_with = "int_bool")]
    ssl_forced: bool,
    #[serde(deserialize_with = "int_bool")]
    hsts_enabled: bool,
    #[serde(deserialize_with = "int_bool")]
    hsts_subdomains: bool,
    #[serde(deserialize_with = "int_bool")]
    block_exploits: bool,
    #[serde(deserialize_with = "int_bool")]
    enabled: bool,
}

#[derive(Deserialize)]
#[cfg_attr(feature = "postgres", derive(sqlx::FromRow))]
struct DeadHostRow {
    id: i64,
    certificate_id: Option<i64>,
    #[serde(deserialize_with = "int_bool")]
    ssl_forced: bool,
    #[serde(deserialize_with = "int_bool")]
    hsts_enabled: bool,
    #[serde(deserialize_with = "int_bool")]
    hsts_subdomains: bool,
    #[serde(deserialize_with = "int_bool")]
    enabled: bool,
}

#[derive(Deserialize)]
#[cfg_attr(feature = "postgres", derive(sqlx::FromRow))]
struct StreamRow {
    id: i64,
    incoming_port: i64,
    bind_address: String,
    protocol: String,
    balancing: String,
    access_list_id: Option<i64>,
    certificate_id: Option<i64>,
    proxy_protocol: Option<i64>,
    idle_timeout_ms: i64,
    #[serde(deserialize_with = "int_bool")]
    enabled: bool,
}

#[derive(Deserialize)]
#[cfg_attr(feature = "postgres", derive(sqlx::FromRow))]
struct AccessListRow {
    id: i64,
    name: String,
    default_action: String,
    satisfy: String,
    #[serde(deserialize_with = "int_bool")]
    pass_auth: bool,
}

#[derive(Deserialize)]
#[cfg_attr(feature = "postgres", derive(sqlx::FromRow))]
struct UpstreamRow {
    proxy_host_id: Option<i64>,
    location_id: Option<i64>,
    stream_id: Option<i64>,
    host: String,
    port: i64,
    weight: i64,
}

#[derive(Deserialize)]
#[cfg_attr(feature = "postgres", derive(sqlx::FromRow))]
struct HeaderRow {
    proxy_host_id: Option<i64>,
    location_id: Option<i64>,
    direction: String,
    name: String,
    value: String,
    action: String,
}

#[derive(Deserialize)]
#[cfg_attr(feature = "postgres", derive(sqlx::FromRow))]
struct FilterRow {
    proxy_host_id: Option<i64>,
    location_id: Option<i64>,
    redirection_host_id: Option<i64>,
    dead_host_id: Option<i64>,
    kind: String,
    config: String,
    priority: Option<i64>,
}

#[derive(Deserialize)]
#[cfg_attr(feature = "postgres", derive(sqlx::FromRow))]
struct DomainRow {
    name: String,
    proxy_host_id: Option<i64>,
    redirection_host_id: Option<i64>,
    dead_host_id: Option<i64>,
}

type Multi<T> = HashMap<Id, Vec<T>>;

/// What to load: everything, or one entity with its children.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scope {
    /// The whole config.
    All,
    /// One entity: its rows and its children only.
    One(EntityKind, Id),
}

/// The rows of `table`, as `cols` in `order`: all of them for
/// [`Scope::All`]; for [`Scope::One`], those the `WHERE` clause that `one`
/// gives for the entity's kind selects (with `$1` bound to its id), or none
/// when that table holds nothing of the kind.
///
/// `R` names the columns in order (see the module docs).
async fn fetch<R: dialect::Row>(
    conn: &mut Conn,
    scope: Scope,
    table: &'static str,
    cols: &'static str,
    order: &'static str,
    one: impl Fn(EntityKind) -> Option<&'static str>,
) -> Result<Vec<R>, StoreError> {
    let filter = match scope {
        Scope::All => None,
        Scope::One(kind, id) => match one(kind) {
            Some(filter) => Some((filter, id)),
            None => return Ok(Vec::new()),
        },
    };
    dialect::select(conn, table, cols, order, filter).await
}

/// A column holding 0 or 1 as a `bool`, as SQLite stores booleans.
fn int_bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(i64::deserialize(d)? != 0)
}

fn take<T>(map: &mut Multi<T>, id: Id) -> Vec<T> {
    map.remove(&id).unwrap_or_default()
}

fn timeouts(c: Option<i64>, r: Option<i64>, w: Option<i64>) -> Result<Timeouts, StoreError> {
    Ok(Timeouts {
        connect_ms: c.map(|v| narrow(v, "connect_timeout_ms")).transpose()?,
        read_ms: r.map(|v| narrow(v, "read_timeout_ms")).transpose()?,
        write_ms: w.map(|v| narrow(v, "write_timeout_ms")).transpose()?,
    })
}

/// Children shared by hosts and locations, grouped by owner.
#[derive(Default)]
pub(crate) struct Children {
    upstreams_ph: Multi<Upstream>,
    upstreams_loc: Multi<Upstream>,
    upstreams_stream: Multi<Upstream>,
    req_headers_ph: Multi<HeaderRule>,
    resp_headers_ph: Multi<HeaderRule>,
    req_headers_loc: Multi<HeaderRule>,
    resp_headers_loc: Multi<HeaderRule>,
    filters_ph: Multi<FilterSpec>,
    filters_loc: Multi<FilterSpec>,
    filters_rh: Multi<FilterSpec>,
    filters_dh: Multi<FilterSpec>,
    domains_ph: Multi<String>,
    domains_rh: Multi<String>,
    domains_dh: Multi<String>,
}

pub(crate) async fn children(conn: &mut Conn, scope: Scope) -> Result<Children, StoreError> {
    let mut c = Children::default();

    let rows: Vec<UpstreamRow> = fetch(
        conn,
        scope,
        "upstreams",
        "proxy_host_id, location_id, stream_id, host, port, weight",
        "position",
        |kind| match kind {
            EntityKind::ProxyHost => Some(
                "WHERE proxy_host_id = $1 OR location_id IN (SELECT id FROM locations WHERE proxy_host_id = $1)",
            ),
            EntityKind::Stream => Some(
                "WHERE stream_id = $1",
            ),
            _ => None,
        })
    .await?;
    for r in rows {
        let mut u = Upstream::new(r.host, narrow(r.port, "upstream port")?);
        u.weight = narrow(r.weight, "upstream weight")?;
        let (map, id) = match (r.proxy_host_id, r.location_id, r.stream_id) {
            (Some(id), _, _) => (&mut c.upstreams_ph, id),
            (_, Some(id), _) => (&mut c.upstreams_loc, id),
            (_, _, Some(id)) => (&mut c.upstreams_stream, id),
            _ => return Err(StoreError::Corrupt("an upstream has no owner".into())),
        };
        map.entry(id).or_default().push(u);
    }

    let rows: Vec<HeaderRow> = fetch(
        conn,
        scope,
        "header_rules",
        "proxy_host_id, location_id, direction, name, value, action",
        "position",
        |kind| match kind {
            EntityKind::ProxyHost => Some(
                "WHERE proxy_host_id = $1 OR location_id IN (SELECT id FROM locations WHERE proxy_host_id = $1)",
            ),
            _ => None,
        })
    .await?;
    for r in rows {
        let mut rule = HeaderRule::set(r.name, r.value);
        rule.action = enum_from_str(&r.action, "header action")?;
        let request = r.direction == "request";
        let (map, id) = match (r.proxy_host_id, r.location_id, request) {
            (Some(id), _, true) => (&mut c.req_headers_ph, id),
            (Some(id), _, false) => (&mut c.resp_headers_ph, id),
            (_, Some(id), true) => (&mut c.req_headers_loc, id),
            (_, Some(id), false) => (&mut c.resp_headers_loc, id),
            _ => return Err(StoreError::Corrupt("a header rule has no owner".into())),
        };
        map.entry(id).or_default().push(rule);
    }

    let rows: Vec<FilterRow> = fetch(
        conn,
        scope,
        "filters",
        "proxy_host_id, location_id, redirection_host_id, dead_host_id, kind, config, priority",
        "position",
        |kind| match kind {
            EntityKind::ProxyHost => Some(
                "WHERE proxy_host_id = $1 OR location_id IN (SELECT id FROM locations WHERE proxy_host_id = $1)",
            ),
            EntityKind::RedirectionHost => Some(
                "WHERE redirection_host_id = $1",
            ),
            EntityKind::DeadHost => Some(
                "WHERE dead_host_id = $1",
            ),
            _ => None,
        })
    .await?;
    for r in rows {
        let mut spec = FilterSpec::new(r.kind, from_json(&r.config, "filter config")?);
        spec.priority = r
            .priority
            .map(|p| narrow(p, "filter priority"))
            .transpose()?;
        let (map, id) = match (
            r.proxy_host_id,
            r.location_id,
            r.redirection_host_id,
            r.dead_host_id,
        ) {
            (Some(id), ..) => (&mut c.filters_ph, id),
            (_, Some(id), ..) => (&mut c.filters_loc, id),
            (_, _, Some(id), _) => (&mut c.filters_rh, id),
            (.., Some(id)) => (&mut c.filters_dh, id),
            _ => return Err(StoreError::Corrupt("a filter has no owner".into())),
        };
        map.entry(id).or_default().push(spec);
    }

    let rows: Vec<DomainRow> = fetch(
        conn,
        scope,
        "domain_names",
        "name, proxy_host_id, redirection_host_id, dead_host_id",
        "position",
        |kind| match kind {
            EntityKind::ProxyHost => Some("WHERE proxy_host_id = $1"),
            EntityKind::RedirectionHost => Some("WHERE redirection_host_id = $1"),
            EntityKind::DeadHost => Some("WHERE dead_host_id = $1"),
            _ => None,
        },
    )
    .await?;
    for r in rows {
        let (map, id) = match (r.proxy_host_id, r.redirection_host_id, r.dead_host_id) {
            (Some(id), ..) => (&mut c.domains_ph, id),
            (_, Some(id), _) => (&mut c.domains_rh, id),
            (.., Some(id)) => (&mut c.domains_dh, id),
            _ => return Err(StoreError::Corrupt("a domain name has no host".into())),
        };
        map.entry(id).or_default().push(r.name);
    }
    Ok(c)
}

/// The stored revision.
pub(crate) async fn revision(conn: &mut Conn) -> Result<u64, StoreError> {
    let rev: i64 = sqlx::query_scalar("SELECT revision FROM meta WHERE id = 1")
        .fetch_one(&mut *conn)
        .await
        .map_err(backend)?;
    narrow(rev, "revision")
}

/// Loads the whole config, or one entity of it. Run it inside a
/// transaction for a consistent snapshot.
pub(crate) async fn load_config(conn: &mut Conn, scope: Scope) -> Result<Config, StoreError> {
    let ch = children(conn, scope).await?;
    let m = main_rows(conn, scope).await?;
    assemble(m, ch)
}

/// The rows of the tables other than the children's, as loaded.
pub(crate) struct MainRows {
    acl_rules: Vec<(i64, String, String)>,
    acl_users: Vec<(i64, String, String)>,
    acls: Vec<AccessListRow>,
    cert_domains: Vec<(i64, String)>,
    certs: Vec<(i64, String, String, String, String)>,
    locations: Vec<LocationRow>,
    proxy_hosts: Vec<ProxyHostRow>,
    redirection_hosts: Vec<RedirectionHostRow>,
    dead_hosts: Vec<DeadHostRow>,
    streams: Vec<StreamRow>,
    settings: Option<Settings>,
}

pub(crate) async fn main_rows(conn: &mut Conn, scope: Scope) -> Result<MainRows, StoreError> {
    Ok(MainRows {
        acl_rules: fetch(
            conn,
            scope,
            "access_list_rules",
            "access_list_id, action, address",
            "access_list_id, position",
            |kind| (kind == EntityKind::AccessList).then_some("WHERE access_list_id = $1"),
        )
        .await?,
        acl_users: fetch(
            conn,
            scope,
            "access_list_users",
            "access_list_id, username, password_hash",
            "access_list_id, position",
            |kind| (kind == EntityKind::AccessList).then_some("WHERE access_list_id = $1"),
        )
        .await?,
        acls: fetch(
            conn,
            scope,
            "access_lists",
            "id, name, default_action, satisfy, pass_auth",
            "id",
            |kind| (kind == EntityKind::AccessList).then_some("WHERE id = $1"),
        )
        .await?,
        cert_domains: fetch(
            conn,
            scope,
            "certificate_domains",
            "certificate_id, name",
            "certificate_id, position",
            |kind| (kind == EntityKind::Certificate).then_some("WHERE certificate_id = $1"),
        )
        .await?,
        certs: fetch(
            conn,
            scope,
            "certificates",
            "id, name, source, certificate_pem, private_key_pem",
            "id",
            |kind| (kind == EntityKind::Certificate).then_some("WHERE id = $1"),
        )
        .await?,
        locations: fetch(
            conn,
            scope,
            "locations",
            "id, proxy_host_id, path, match_kind, balancing, forward_scheme, rewrite, connect_timeout_ms, read_timeout_ms, write_timeout_ms",
            "proxy_host_id, position",
            |kind| (kind == EntityKind::ProxyHost).then_some("WHERE proxy_host_id = $1"),
        )
        .await?,
        proxy_hosts: fetch(
            conn,
            scope,
            "proxy_hosts",
            "id, balancing, forward_scheme, upstream_sni, upstream_verify_tls, health_check, passive_max_fails, passive_fail_timeout_ms, retries, connect_timeout_ms, read_timeout_ms, write_timeout_ms, max_body_size, allow_websocket_upgrade, access_list_id, certificate_id, ssl_forced, hsts_enabled, hsts_subdomains, http2_support, block_exploits, enabled",
            "id",
            |kind| (kind == EntityKind::ProxyHost).then_some("WHERE id = $1"),
        )
        .await?,
        redirection_hosts: fetch(
            conn,
            scope,
            "redirection_hosts",
            "id, status, forward_scheme, forward_domain, preserve_path, certificate_id, ssl_forced, hsts_enabled, hsts_subdomains, block_exploits, enabled",
            "id",
            |kind| (kind == EntityKind::RedirectionHost).then_some("WHERE id = $1"),
        )
        .await?,
        dead_hosts: fetch(
            conn,
            scope,
            "dead_hosts",
            "id, certificate_id, ssl_forced, hsts_enabled, hsts_subdomains, enabled",
            "id",
            |kind| (kind == EntityKind::DeadHost).then_some("WHERE id = $1"),
        )
        .await?,
        streams: fetch(
            conn,
            scope,
            "streams",
            "id, incoming_port, bind_address, protocol, balancing, access_list_id, certificate_id, proxy_protocol, idle_timeout_ms, enabled",
            "id",
            |kind| (kind == EntityKind::Stream).then_some("WHERE id = $1"),
        )
        .await?,
        settings: match scope {
            Scope::All => Some(load_settings(conn).await?),
            Scope::One(..) => None,
        },
    })
}

/// Builds the config from its rows.
pub(crate) fn assemble(m: MainRows, mut ch: Children) -> Result<Config, StoreError> {
    let mut config = Config::new();

    // Access lists.
    let mut rules: Multi<IpRule> = HashMap::new();
    let rows = m.acl_rules;
    for (id, action, address) in rows {
        rules.entry(id).or_default().push(IpRule {
            action: enum_from_str(&action, "access rule action")?,
            address,
        });
    }
    let mut users: Multi<AccessUser> = HashMap::new();
    let rows = m.acl_users;
    for (id, username, password_hash) in rows {
        users.entry(id).or_default().push(AccessUser {
            username,
            password_hash,
        });
    }
    let rows = m.acls;
    for r in rows {
        config.access_lists.push(AccessList {
            id: r.id,
            name: r.name,
            rules: take(&mut rules, r.id),
            default_action: enum_from_str(&r.default_action, "access list default_action")?,
            users: take(&mut users, r.id),
            satisfy: enum_from_str(&r.satisfy, "access list satisfy")?,
            pass_auth: r.pass_auth,
        });
    }

    // Certificates.
    let mut cert_names: Multi<String> = HashMap::new();
    let rows = m.cert_domains;
    for (id, name) in rows {
        cert_names.entry(id).or_default().push(name);
    }
    let rows = m.certs;
    for (id, name, source, certificate_pem, private_key_pem) in rows {
        config.certificates.push(Certificate {
            id,
            name,
            source: enum_from_str(&source, "certificate source")?,
            domain_names: take(&mut cert_names, id),
            certificate_pem,
            private_key_pem,
        });
    }

    // Locations, grouped by proxy host.
    let rows = m.locations;
    let mut locations: Multi<Location> = HashMap::new();
    for r in rows {
        let l = Location {
            path: r.path,
            match_kind: enum_from_str(&r.match_kind, "location match_kind")?,
            upstreams: take(&mut ch.upstreams_loc, r.id),
            balancing: r
                .balancing
                .map(|b| from_json(&b, "location balancing"))
                .transpose()?,
            forward_scheme: r
                .forward_scheme
                .map(|s| enum_from_str(&s, "location forward_scheme"))
                .transpose()?,
            rewrite: r.rewrite,
            request_headers: take(&mut ch.req_headers_loc, r.id),
            response_headers: take(&mut ch.resp_headers_loc, r.id),
            timeouts: timeouts(r.connect_timeout_ms, r.read_timeout_ms, r.write_timeout_ms)?,
            filters: take(&mut ch.filters_loc, r.id),
        };
        locations.entry(r.proxy_host_id).or_default().push(l);
    }

    // Proxy hosts.
    let rows = m.proxy_hosts;
    config.proxy_hosts.reserve(rows.len());
    for r in rows {
        let passive = PassiveHealth {
            max_fails: narrow(r.passive_max_fails, "passive max_fails")?,
            fail_timeout_ms: narrow(r.passive_fail_timeout_ms, "passive fail_timeout_ms")?,
        };
        let h = ProxyHost {
            id: r.id,
            domain_names: take(&mut ch.domains_ph, r.id),
            upstreams: take(&mut ch.upstreams_ph, r.id),
            balancing: from_json(&r.balancing, "proxy host balancing")?,
            forward_scheme: enum_from_str(&r.forward_scheme, "proxy host forward_scheme")?,
            upstream_sni: r.upstream_sni,
            upstream_verify_tls: r.upstream_verify_tls,
            health_check: r
                .health_check
                .map(|s| from_json(&s, "proxy host health_check"))
                .transpose()?,
            passive_health: passive,
            retries: narrow(r.retries, "proxy host retries")?,
            timeouts: timeouts(r.connect_timeout_ms, r.read_timeout_ms, r.write_timeout_ms)?,
            max_body_size: r
                .max_body_size
                .map(|v| narrow(v, "proxy host max_body_size"))
                .transpose()?,
            allow_websocket_upgrade: r.allow_websocket_upgrade,
            request_headers: take(&mut ch.req_headers_ph, r.id),
            response_headers: take(&mut ch.resp_headers_ph, r.id),
            locations: take(&mut locations, r.id),
            access_list_id: r.access_list_id,
            certificate_id: r.certificate_id,
            ssl_forced: r.ssl_forced,
            hsts_enabled: r.hsts_enabled,
            hsts_subdomains: r.hsts_subdomains,
            http2_support: r.http2_support,
            block_exploits: r.block_exploits,
            filters: take(&mut ch.filters_ph, r.id),
            enabled: r.enabled,
        };
        config.proxy_hosts.push(h);
    }

    // Redirection hosts.
    let rows = m.redirection_hosts;
    for r in rows {
        config.redirection_hosts.push(RedirectionHost {
            id: r.id,
            domain_names: take(&mut ch.domains_rh, r.id),
            status: narrow(r.status, "redirection status")?,
            forward_scheme: r
                .forward_scheme
                .map(|s| enum_from_str(&s, "redirection forward_scheme"))
                .transpose()?,
            forward_domain: r.forward_domain,
            preserve_path: r.preserve_path,
            certificate_id: r.certificate_id,
            ssl_forced: r.ssl_forced,
            hsts_enabled: r.hsts_enabled,
            hsts_subdomains: r.hsts_subdomains,
            block_exploits: r.block_exploits,
            filters: take(&mut ch.filters_rh, r.id),
            enabled: r.enabled,
        });
    }

    // 404 hosts.
    let rows = m.dead_hosts;
    for r in rows {
        config.dead_hosts.push(DeadHost {
            id: r.id,
            domain_names: take(&mut ch.domains_dh, r.id),
            certificate_id: r.certificate_id,
            ssl_forced: r.ssl_forced,
            hsts_enabled: r.hsts_enabled,
            hsts_subdomains: r.hsts_subdomains,
            filters: take(&mut ch.filters_dh, r.id),
            enabled: r.enabled,
        });
    }

    // Streams.
    let rows = m.streams;
    for r in rows {
        config.streams.push(Stream {
            id: r.id,
            incoming_port: narrow(r.incoming_port, "stream incoming_port")?,
            bind_address: r.bind_address,
            protocol: enum_from_str(&r.protocol, "stream protocol")?,
            upstreams: take(&mut ch.upstreams_stream, r.id),
            balancing: from_json(&r.balancing, "stream balancing")?,
            access_list_id: r.access_list_id,
            certificate_id: r.certificate_id,
            proxy_protocol: r
                .proxy_protocol
                .map(|v| narrow(v, "stream proxy_protocol"))
                .transpose()?,
            idle_timeout_ms: narrow(r.idle_timeout_ms, "stream idle_timeout_ms")?,
            enabled: r.enabled,
        });
    }

    if let Some(settings) = m.settings {
        config.settings = settings;
    }
    Ok(config)
}

/// Loads the settings rows into [`Settings`]; missing keys take defaults.
pub(crate) async fn load_settings(conn: &mut Conn) -> Result<Settings, StoreError> {
    let rows: Vec<(String, String)> = sqlx::query_as("SELECT key, value FROM settings")
        .fetch_all(&mut *conn)
        .await
        .map_err(backend)?;
    let mut map = serde_json::Map::new();
    for (key, value) in rows {
        let v: serde_json::Value = from_json(&value, "settings")?;
        map.insert(key, v);
    }
    serde_json::from_value(serde_json::Value::Object(map))
        .map_err(|e| StoreError::Corrupt(format!("settings: {e}")))
}
