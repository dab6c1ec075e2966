//! The config compiler: validates a stored [`Config`] and builds the runtime
//! [`CompiledConfig`] the proxy reads.
//!
//! Compilation never panics and reports every problem it finds with a field
//! path (`proxy_hosts[3].upstreams[0].port: must be 1..=65535`). Filters named
//! in the config are built through a [`FilterRegistry`]; model fields such as
//! `ssl_forced` or `access_list_id` attach the built-in kinds listed in
//! [`filter::kinds`](crate::filter::kinds).

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use regex::{Regex, RegexBuilder};

use crate::config::{
    Balancing, Config, DefaultSite, FilterSpec, HashKey, HeaderRule, HealthCheck, HealthCheckKind,
    Id, Location, MatchKind, ProxyHost, Scheme, Timeouts, Upstream,
};
use crate::error::{ConfigError, FieldError};
use crate::filter::{
    BuildContext, FilterChain, FilterEntry, FilterRegistry, FilterResponse, ModelFilter, RouteKind,
};
use crate::forwarded::TrustedProxies;
use crate::router::{HostTable, LocationMatcher, PathPattern};
use crate::store::Snapshot;
use crate::tls::CertificateTable;
use crate::upstream::{GroupMap, GroupSpec, HashedSpec, MemberSpec, UpstreamGroup};
use crate::validate;

/// Default upstream connect timeout.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default upstream read timeout.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Default upstream write timeout.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest timeout a config may set, in milliseconds (one hour).
pub const MAX_TIMEOUT_MS: u64 = 3_600_000;
/// Most retries a host may set.
pub const MAX_RETRIES: u32 = 10;
/// Largest weight an upstream may have.
pub const MAX_WEIGHT: u32 = 1000;
/// Shortest idle timeout of a stream, in milliseconds.
pub const MIN_STREAM_IDLE_MS: u64 = 100;
/// Longest idle timeout of a stream, in milliseconds (one day).
pub const MAX_STREAM_IDLE_MS: u64 = 86_400_000;
/// Size limit of a compiled location regex, in bytes.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Resolved upstream timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResolvedTimeouts {
    /// Connect timeout.
    pub connect: Duration,
    /// Read timeout.
    pub read: Duration,
    /// Write timeout.
    pub write: Duration,
}

impl ResolvedTimeouts {
    fn from(t: &Timeouts, base: &ResolvedTimeouts) -> Self {
        ResolvedTimeouts {
            connect: t.connect_ms.map_or(base.connect, Duration::from_millis),
            read: t.read_ms.map_or(base.read, Duration::from_millis),
            write: t.write_ms.map_or(base.write, Duration::from_millis),
        }
    }
}

impl Default for ResolvedTimeouts {
    fn default() -> Self {
        ResolvedTimeouts {
            connect: DEFAULT_CONNECT_TIMEOUT,
            read: DEFAULT_READ_TIMEOUT,
            write: DEFAULT_WRITE_TIMEOUT,
        }
    }
}

/// How a matched location rewrites the path.
#[derive(Debug, Clone)]
pub(crate) enum Rewrite {
    /// Replace the matched prefix with this.
    Prefix(String),
    /// Regex replacement with `$1` groups.
    Regex(Regex, String),
}

/// Where a proxied request goes and how.
#[derive(Debug, Clone)]
pub(crate) struct Upstreaming {
    pub group: Arc<UpstreamGroup>,
    pub timeouts: ResolvedTimeouts,
    pub hash_key: HashKey,
}

/// A compiled location.
#[derive(Debug, Clone)]
pub(crate) struct LocationRoute {
    pub upstream: Upstreaming,
    pub rewrite: Option<Rewrite>,
    pub chain: FilterChain,
}

/// A compiled host (any kind) or the default site.
#[derive(Debug, Clone)]
pub(crate) struct HostEntry {
    pub kind: RouteKind,
    pub id: Id,
    /// Global and host filters, by priority.
    pub chain: FilterChain,
    /// Present for proxy hosts.
    pub proxy: Option<ProxyRoute>,
    /// Redirect answered when no filter did (default site redirects).
    pub fallback: Option<FilterResponse>,
}

#[derive(Debug, Clone)]
pub(crate) struct ProxyRoute {
    pub upstream: Upstreaming,
    pub max_body_size: Option<u64>,
    pub websocket: bool,
    pub retries: u32,
    pub locations: LocationMatcher,
    pub location_routes: Vec<LocationRoute>,
}

/// The runtime form of a config: everything a request needs, reachable from
/// one `Arc`.
#[derive(Debug)]
pub struct CompiledConfig {
    revision: u64,
    source: Arc<Config>,
    pub(crate) hosts: HostTable,
    pub(crate) entries: Vec<HostEntry>,
    /// Index into `entries` of the default site.
    pub(crate) default_entry: usize,
    pub(crate) global: FilterChain,
    pub(crate) trusted: TrustedProxies,
    pub(crate) groups: GroupMap,
    pub(crate) certs: CertificateTable,
    /// Enabled streams, in config order.
    #[cfg(feature = "streams")]
    pub(crate) streams: Vec<Arc<crate::stream::CompiledStream>>,
    /// The traffic counters of its hosts and upstreams, bound when the
    /// engine applies it.
    pub(crate) stats: crate::stats::Binding,
}

impl CompiledConfig {
    /// The revision this config was compiled from.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// The stored config this was compiled from.
    pub fn source(&self) -> &Arc<Config> {
        &self.source
    }

    /// The certificates served on the HTTPS listener, by server name.
    pub fn certificates(&self) -> &CertificateTable {
        &self.certs
    }

    /// Number of host names routed.
    pub fn host_names(&self) -> usize {
        self.hosts.len()
    }

    /// The trusted proxies.
    pub fn trusted_proxies(&self) -> &TrustedProxies {
        &self.trusted
    }

    /// Looks up a `Host` value: the kind and id of the host it routes to,
    /// or `None` when the default site applies.
    pub fn route_host(&self, host: &str) -> Option<(RouteKind, Id)> {
        let i = self.hosts.lookup(host)? as usize;
        self.entries.get(i).map(|e| (e.kind, e.id))
    }

    /// Every upstream group in use, each once.
    pub fn groups(&self) -> impl Iterator<Item = &Arc<UpstreamGroup>> {
        self.groups.values()
    }

    /// An empty config: every request gets the default 404.
    pub fn empty() -> Self {
        CompiledConfig {
            revision: 0,
            source: Arc::new(Config::default()),
            hosts: HostTable::new(),
            entries: vec![HostEntry {
                kind: RouteKind::Default,
                id: 0,
                chain: FilterChain::default(),
                proxy: None,
                fallback: None,
            }],
            default_entry: 0,
            global: FilterChain::default(),
            trusted: TrustedProxies::default(),
            groups: GroupMap::default(),
            certs: CertificateTable::default(),
            #[cfg(feature = "streams")]
            streams: Vec::new(),
            stats: crate::stats::Binding::default(),
        }
    }

    /// The enabled streams, in config order.
    #[cfg(feature = "streams")]
    pub fn streams(&self) -> &[Arc<crate::stream::CompiledStream>] {
        &self.streams
    }
}

/// Options for [`compile`].
#[derive(Debug, Clone, Copy)]
pub struct CompileOptions<'a> {
    /// The filter kinds config may use.
    pub registry: &'a FilterRegistry,
    /// Global filter instances added by the embedder (not in the config).
    pub global_filters: &'a [FilterEntry],
    /// The config serving now, whose upstream groups are reused when their
    /// spec is unchanged (keeping health state and counters).
    pub previous: Option<&'a CompiledConfig>,
}

/// Checks a config without building filters or resolving host names: the
/// checks every entry point (API, import) should run before storing.
pub fn validate(config: &Config) -> Result<(), ConfigError> {
    let mut errs = Errors::default();
    let _ = check_model(config, true, &mut errs);
    errs.finish()
}

/// Validates `snapshot` and compiles it. Clones the config; use
/// [`compile_owned`] to hand it over instead.
pub fn compile(
    snapshot: &Snapshot,
    opts: CompileOptions<'_>,
) -> Result<CompiledConfig, ConfigError> {
    compile_owned(snapshot.clone(), opts)
}

/// Validates `snapshot` and compiles it, keeping its config as the
/// compiled config's [`source`](CompiledConfig::source).
pub fn compile_owned(
    snapshot: Snapshot,
    opts: CompileOptions<'_>,
) -> Result<CompiledConfig, ConfigError> {
    let revision = snapshot.revision;
    let config = Arc::new(snapshot.config);
    let mut errs = Errors::default();
    let names = check_model(&config, false, &mut errs);
    if !errs.0.is_empty() {
        // The compiler will not run, so check the regexes here too (the
        // slow path only: a valid config builds each regex once).
        let mut all = Errors::default();
        check_model(&config, true, &mut all);
        return Err(ConfigError::new(all.0));
    }
    let mut c = Compiler {
        config: &config,
        opts,
        errs,
        groups: GroupMap::default(),
        previous_regexes: None,
    };
    let out = c.run(revision, config.clone(), &names);
    c.errs.finish()?;
    out.ok_or_else(|| ConfigError::single("", "compilation failed"))
}

#[derive(Default)]
struct Errors(Vec<FieldError>);

/// `list[index]`, formatted only when an error needs it.
#[derive(Debug, Clone, Copy)]
struct Idx(&'static str, usize);

impl fmt::Display for Idx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]", self.0, self.1)
    }
}

impl Errors {
    fn push(&mut self, path: impl Into<String>, msg: impl Into<String>) {
        self.0.push(FieldError::new(path, msg));
    }
    fn finish(self) -> Result<(), ConfigError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::new(self.0))
        }
    }
}

type NameOwners<'a> =
    std::collections::HashMap<std::borrow::Cow<'a, str>, Idx, foldhash::fast::RandomState>;

/// The host at `idx` as people know it: `proxy host 7 (proxy_hosts[2])`.
fn host_named(config: &Config, idx: Idx) -> String {
    let (kind, id) = match idx.0 {
        "proxy_hosts" => ("proxy host", config.proxy_hosts.get(idx.1).map(|h| h.id)),
        "redirection_hosts" => (
            "redirection host",
            config.redirection_hosts.get(idx.1).map(|h| h.id),
        ),
        "dead_hosts" => ("404 host", config.dead_hosts.get(idx.1).map(|h| h.id)),
        _ => return idx.to_string(),
    };
    match id {
        Some(id) => format!("{kind} {id} ({idx})"),
        None => idx.to_string(),
    }
}

fn check_names<'a>(
    config: &Config,
    names: &mut NameOwners<'a>,
    domains: &'a [String],
    owner: Idx,
    enabled: bool,
    errs: &mut Errors,
) {
    if domains.is_empty() {
        errs.push(
            format!("{owner}.domain_names"),
            "needs at least one domain name",
        );
    }
    for (j, d) in domains.iter().enumerate() {
        match validate::domain_name_cow(d) {
            Err(m) => errs.push(format!("{owner}.domain_names[{j}]"), m),
            Ok(n) if enabled => {
                if let Some(prev) = names.get(&n) {
                    errs.push(
                        format!("{owner}.domain_names[{j}]"),
                        format!("`{n}` is already used by {}", host_named(config, *prev)),
                    );
                } else {
                    names.insert(n, owner);
                }
            }
            Ok(_) => {}
        }
    }
}

/// Checks the model; returns the enabled hosts' names, normalised, with
/// the host owning each.
fn check_model<'a>(config: &'a Config, check_regex: bool, errs: &mut Errors) -> NameOwners<'a> {
    let allow_ll = config.settings.allow_link_local_upstreams;
    let cert_ids: HashSet<Id> = config.certificates.iter().map(|c| c.id).collect();
    let acl_ids: HashSet<Id> = config.access_lists.iter().map(|a| a.id).collect();
    let mut names: NameOwners<'_> = std::collections::HashMap::with_capacity_and_hasher(
        config.proxy_hosts.len() * 2,
        Default::default(),
    );
    let check_cert = |id: Option<Id>, path: &dyn fmt::Display, errs: &mut Errors| {
        if let Some(id) = id {
            if !cert_ids.contains(&id) {
                errs.push(
                    format!("{path}.certificate_id"),
                    format!("certificate {id} does not exist"),
                );
            }
        }
    };
    for (i, h) in config.proxy_hosts.iter().enumerate() {
        let p = Idx("proxy_hosts", i);
        check_names(config, &mut names, &h.domain_names, p, h.enabled, errs);
        check_cert(h.certificate_id, &p, errs);
        if let Some(id) = h.access_list_id {
            if !acl_ids.contains(&id) {
                errs.push(
                    format!("{p}.access_list_id"),
                    format!("access list {id} does not exist"),
                );
            }
        }
        if h.upstreams.is_empty() {
            errs.push(format!("{p}.upstreams"), "needs at least one upstream");
        }
        check_upstreams(&h.upstreams, &p, allow_ll, errs);
        check_balancing(&h.balancing, &format_args!("{p}.balancing"), errs);
        if let Some(sni) = &h.upstream_sni {
            if let Err(m) = validate::upstream_host(sni, true) {
                errs.push(format!("{p}.upstream_sni"), m);
            }
        }
        if let Some(hc) = &h.health_check {
            check_health(hc, &format_args!("{p}.health_check"), errs);
        }
        if !(1..=100).contains(&h.passive_health.max_fails) {
            errs.push(format!("{p}.passive_health.max_fails"), "must be 1..=100");
        }
        if !(100..=MAX_TIMEOUT_MS).contains(&h.passive_health.fail_timeout_ms) {
            errs.push(
                format!("{p}.passive_health.fail_timeout_ms"),
                format!("must be 100..={MAX_TIMEOUT_MS}"),
            );
        }
        if h.retries > MAX_RETRIES {
            errs.push(format!("{p}.retries"), format!("must be 0..={MAX_RETRIES}"));
        }
        check_timeouts(&h.timeouts, &format_args!("{p}.timeouts"), errs);
        check_headers(
            &h.request_headers,
            &format_args!("{p}.request_headers"),
            errs,
        );
        check_headers(
            &h.response_headers,
            &format_args!("{p}.response_headers"),
            errs,
        );
        check_filters(&h.filters, &format_args!("{p}.filters"), errs);
        for (j, l) in h.locations.iter().enumerate() {
            check_location(
                l,
                &format_args!("{p}.locations[{j}]"),
                allow_ll,
                check_regex,
                errs,
            );
        }
    }
    for (i, h) in config.redirection_hosts.iter().enumerate() {
        let p = Idx("redirection_hosts", i);
        check_names(config, &mut names, &h.domain_names, p, h.enabled, errs);
        check_cert(h.certificate_id, &p, errs);
        if ![301, 302, 307, 308].contains(&h.status) {
            errs.push(format!("{p}.status"), "must be 301, 302, 307 or 308");
        }
        if let Err(m) = validate::host_port(&h.forward_domain) {
            errs.push(format!("{p}.forward_domain"), m);
        }
        check_filters(&h.filters, &format_args!("{p}.filters"), errs);
    }
    for (i, h) in config.dead_hosts.iter().enumerate() {
        let p = Idx("dead_hosts", i);
        check_names(config, &mut names, &h.domain_names, p, h.enabled, errs);
        check_cert(h.certificate_id, &p, errs);
        check_filters(&h.filters, &format_args!("{p}.filters"), errs);
    }
    for (i, a) in config.access_lists.iter().enumerate() {
        let p = Idx("access_lists", i);
        for (j, r) in a.rules.iter().enumerate() {
            if r.address != "all" {
                if let Err(m) = validate::cidr(&r.address) {
                    errs.push(format!("{p}.rules[{j}].address"), m);
                }
            }
        }
        for (j, u) in a.users.iter().enumerate() {
            if u.username.is_empty() || u.username.contains(':') || u.username.len() > 255 {
                errs.push(
                    format!("{p}.users[{j}].username"),
                    "must be 1 to 255 characters without `:`",
                );
            }
        }
    }
    let mut ports: std::collections::HashMap<(u16, bool), usize> = Default::default();
    for (i, s) in config.streams.iter().enumerate() {
        let p = Idx("streams", i);
        if s.incoming_port == 0 {
            errs.push(format!("{p}.incoming_port"), "must be 1..=65535");
        }
        if s.bind_address.parse::<IpAddr>().is_err() {
            errs.push(format!("{p}.bind_address"), "must be an IP address");
        }
        if s.upstreams.is_empty() {
            errs.push(format!("{p}.upstreams"), "needs at least one upstream");
        }
        check_upstreams(&s.upstreams, &p, allow_ll, errs);
        if let Some(id) = s.access_list_id {
            if !acl_ids.contains(&id) {
                errs.push(
                    format!("{p}.access_list_id"),
                    format!("access list {id} does not exist"),
                );
            }
        }
        check_cert(s.certificate_id, &p, errs);
        if let Some(v) = s.proxy_protocol {
            if v != 1 && v != 2 {
                errs.push(format!("{p}.proxy_protocol"), "must be 1 or 2");
            } else if s.protocol == crate::config::StreamProtocol::Udp {
                errs.push(
                    format!("{p}.proxy_protocol"),
                    "applies to TCP only; this stream is UDP",
                );
            }
        }
        if s.certificate_id.is_some() && s.protocol != crate::config::StreamProtocol::Tcp {
            // Refused rather than forwarding UDP datagrams in plain text
            // next to a TLS port: there is no TLS for UDP streams (DTLS).
            errs.push(
                format!("{p}.certificate_id"),
                format!(
                    "TLS termination applies to TCP streams only; this stream's protocol is `{}`: set protocol to `tcp` or leave certificate_id unset",
                    match s.protocol {
                        crate::config::StreamProtocol::Udp => "udp",
                        _ => "both",
                    }
                ),
            );
        }
        if !(MIN_STREAM_IDLE_MS..=MAX_STREAM_IDLE_MS).contains(&s.idle_timeout_ms) {
            errs.push(
                format!("{p}.idle_timeout_ms"),
                format!("must be {MIN_STREAM_IDLE_MS}..={MAX_STREAM_IDLE_MS}"),
            );
        }
        match &s.balancing {
            Balancing::ConsistentHash {
                key: HashKey::ClientIp,
            } => {}
            Balancing::ConsistentHash { .. } => errs.push(
                format!("{p}.balancing.key"),
                "streams hash on the client IP only",
            ),
            _ => {}
        }
        if s.enabled {
            use crate::config::StreamProtocol as P;
            let (tcp, udp) = match s.protocol {
                P::Tcp => (true, false),
                P::Udp => (false, true),
                P::Both => (true, true),
            };
            for (proto, on) in [(false, tcp), (true, udp)] {
                if on {
                    if let Some(prev) = ports.insert((s.incoming_port, proto), i) {
                        errs.push(
                            format!("{p}.incoming_port"),
                            format!(
                                "{} port {} is already used by stream {} (streams[{prev}])",
                                if proto { "udp" } else { "tcp" },
                                s.incoming_port,
                                config.streams.get(prev).map_or(0, |o| o.id)
                            ),
                        );
                    }
                }
            }
        }
    }
    for (i, t) in config.settings.trusted_proxies.iter().enumerate() {
        if let Err(m) = validate::cidr(t) {
            errs.push(format!("settings.trusted_proxies[{i}]"), m);
        }
    }
    check_filters(&config.settings.filters, &"settings.filters", errs);
    match &config.settings.default_site {
        DefaultSite::Redirect { url } => {
            if let Err(m) = validate::http_url(url) {
                errs.push("settings.default_site.url", m);
            }
        }
        DefaultSite::Host { host_id }
            if !config
                .proxy_hosts
                .iter()
                .any(|h| h.id == *host_id && h.enabled) =>
        {
            errs.push(
                "settings.default_site.host_id",
                format!("enabled proxy host {host_id} does not exist"),
            );
        }
        _ => {}
    }
    names
}

fn check_upstreams(ups: &[Upstream], p: &dyn fmt::Display, allow_ll: bool, errs: &mut Errors) {
    if ups.len() > 64 {
        errs.push(format!("{p}.upstreams"), "may have at most 64 upstreams");
    }
    for (j, u) in ups.iter().enumerate() {
        if let Err(m) = validate::check_upstream_host(&u.host, allow_ll) {
            errs.push(format!("{p}.upstreams[{j}].host"), m);
        }
        if u.port == 0 {
            errs.push(format!("{p}.upstreams[{j}].port"), "must be 1..=65535");
        }
        if u.weight == 0 || u.weight > MAX_WEIGHT {
            errs.push(
                format!("{p}.upstreams[{j}].weight"),
                format!("must be 1..={MAX_WEIGHT}"),
            );
        }
        if ups[..j]
            .iter()
            .any(|o| o.host.eq_ignore_ascii_case(&u.host) && o.port == u.port)
        {
            errs.push(
                format!("{p}.upstreams[{j}]"),
                "duplicates an earlier upstream",
            );
        }
    }
}

fn check_balancing(b: &Balancing, p: &dyn fmt::Display, errs: &mut Errors) {
    if let Balancing::ConsistentHash { key } = b {
        match key {
            HashKey::Header(n) => {
                if let Err(m) = validate::header_name(n) {
                    errs.push(format!("{p}.key.name"), m);
                }
            }
            HashKey::Cookie(n)
                if n.is_empty()
                    || n.len() > 256
                    || !n
                        .bytes()
                        .all(|b| b.is_ascii_graphic() && b != b'=' && b != b';') =>
            {
                errs.push(format!("{p}.key.name"), "must be a cookie name");
            }
            _ => {}
        }
    }
}

fn check_health(hc: &HealthCheck, p: &dyn fmt::Display, errs: &mut Errors) {
    if !(100..=MAX_TIMEOUT_MS).contains(&hc.interval_ms) {
        errs.push(
            format!("{p}.interval_ms"),
            format!("must be 100..={MAX_TIMEOUT_MS}"),
        );
    }
    if !(10..=60_000).contains(&hc.timeout_ms) {
        errs.push(format!("{p}.timeout_ms"), "must be 10..=60000");
    }
    if !(1..=100).contains(&hc.healthy_threshold) {
        errs.push(format!("{p}.healthy_threshold"), "must be 1..=100");
    }
    if !(1..=100).contains(&hc.unhealthy_threshold) {
        errs.push(format!("{p}.unhealthy_threshold"), "must be 1..=100");
    }
    if let HealthCheckKind::Http {
        path,
        host,
        expected_status,
    } = &hc.kind
    {
        if !path.starts_with('/') || path.parse::<http::Uri>().is_err() {
            errs.push(format!("{p}.kind.path"), "must be a path starting with /");
        }
        if let Some(h) = host {
            if let Err(m) = validate::host_port(h) {
                errs.push(format!("{p}.kind.host"), m);
            }
        }
        if !(100..=599).contains(expected_status) {
            errs.push(format!("{p}.kind.expected_status"), "must be 100..=599");
        }
    }
}

fn check_timeouts(t: &Timeouts, p: &dyn fmt::Display, errs: &mut Errors) {
    for (name, v) in [
        ("connect_ms", t.connect_ms),
        ("read_ms", t.read_ms),
        ("write_ms", t.write_ms),
    ] {
        if let Some(v) = v {
            if !(1..=MAX_TIMEOUT_MS).contains(&v) {
                errs.push(
                    format!("{p}.{name}"),
                    format!("must be 1..={MAX_TIMEOUT_MS}"),
                );
            }
        }
    }
}

fn check_headers(rules: &[HeaderRule], p: &dyn fmt::Display, errs: &mut Errors) {
    for (i, r) in rules.iter().enumerate() {
        if let Err(m) = validate::header_name(&r.name) {
            errs.push(format!("{p}[{i}].name"), m);
        }
        if let Err(m) = validate::header_value(&r.value) {
            errs.push(format!("{p}[{i}].value"), m);
        }
    }
}

fn check_filters(specs: &[FilterSpec], p: &dyn fmt::Display, errs: &mut Errors) {
    for (i, s) in specs.iter().enumerate() {
        if s.kind.is_empty() || s.kind.len() > 64 {
            errs.push(format!("{p}[{i}].kind"), "must be 1 to 64 characters");
        }
    }
}

fn check_location(
    l: &Location,
    p: &dyn fmt::Display,
    allow_ll: bool,
    check_regex: bool,
    errs: &mut Errors,
) {
    match l.match_kind {
        MatchKind::Regex => {
            // The compiler builds each regex once and reports errors itself.
            if check_regex {
                if let Err(e) = build_regex(&l.path) {
                    errs.push(format!("{p}.path"), e);
                }
            }
        }
        _ => {
            if !l.path.starts_with('/') {
                errs.push(format!("{p}.path"), "must start with /");
            } else if l
                .path
                .bytes()
                .any(|b| b.is_ascii_control() || b == b' ' || b == b'?' || b == b'#')
            {
                errs.push(
                    format!("{p}.path"),
                    "must not contain spaces, control characters, ? or #",
                );
            }
        }
    }
    if let Some(r) = &l.rewrite {
        if !(r.is_empty() || r.starts_with('/'))
            || r.bytes().any(|b| b.is_ascii_control() || b == b' ')
        {
            errs.push(
                format!("{p}.rewrite"),
                "must be empty or a path starting with /",
            );
        }
    }
    check_upstreams(&l.upstreams, p, allow_ll, errs);
    if let Some(b) = &l.balancing {
        check_balancing(b, &format_args!("{p}.balancing"), errs);
    }
    check_timeouts(&l.timeouts, &format_args!("{p}.timeouts"), errs);
    check_headers(
        &l.request_headers,
        &format_args!("{p}.request_headers"),
        errs,
    );
    check_headers(
        &l.response_headers,
        &format_args!("{p}.response_headers"),
        errs,
    );
    check_filters(&l.filters, &format_args!("{p}.filters"), errs);
}

fn build_regex(pattern: &str) -> Result<Regex, String> {
    if pattern.is_empty() {
        return Err("must not be empty".into());
    }
    RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| format!("is not a valid regex: {e}"))
}

struct Compiler<'a> {
    config: &'a Config,
    opts: CompileOptions<'a>,
    errs: Errors,
    groups: GroupMap,
    /// The previous config's location regexes by pattern, gathered when
    /// the first regex location is compiled.
    previous_regexes:
        Option<std::collections::HashMap<&'a str, Regex, foldhash::fast::RandomState>>,
}

/// `parent.field` or `parent.field[index]` (just `parent` when `field` is
/// empty): a field path formatted only when an error needs it.
#[derive(Clone, Copy)]
struct Sub<'a> {
    parent: &'a dyn fmt::Display,
    field: &'static str,
    index: Option<usize>,
}

impl<'a> Sub<'a> {
    fn field(parent: &'a dyn fmt::Display, field: &'static str) -> Self {
        Sub {
            parent,
            field,
            index: None,
        }
    }

    fn item(parent: &'a dyn fmt::Display, field: &'static str, index: usize) -> Self {
        Sub {
            parent,
            field,
            index: Some(index),
        }
    }
}

impl fmt::Display for Sub<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.parent.fmt(f)?;
        if !self.field.is_empty() {
            write!(f, ".{}", self.field)?;
        }
        if let Some(i) = self.index {
            write!(f, "[{i}]")?;
        }
        Ok(())
    }
}

/// The model filters of one host or location, each with the field it comes
/// from (empty for the host itself). A proxy host has at most four
/// (`block_exploits`, `ssl_forced`, `access_list_id`, headers).
#[derive(Clone, Copy, Default)]
struct Implicit<'a> {
    items: [Option<(ModelFilter<'a>, &'static str)>; 4],
}

impl<'a> Implicit<'a> {
    fn push(&mut self, filter: ModelFilter<'a>, field: &'static str) {
        if let Some(slot) = self.items.iter_mut().find(|s| s.is_none()) {
            *slot = Some((filter, field));
        } else {
            debug_assert!(false, "more model filters than Implicit holds");
        }
    }

    fn iter(&self) -> impl Iterator<Item = &(ModelFilter<'a>, &'static str)> {
        self.items.iter().flatten()
    }

    fn is_empty(&self) -> bool {
        self.items[0].is_none()
    }
}

/// Marks a host without an entry (disabled, or failed to compile).
const NO_ENTRY: u32 = u32::MAX;

impl Compiler<'_> {
    fn run(
        &mut self,
        revision: u64,
        source: Arc<Config>,
        names: &NameOwners<'_>,
    ) -> Option<CompiledConfig> {
        let config = self.config;
        let trusted = TrustedProxies::new(
            config
                .settings
                .trusted_proxies
                .iter()
                .filter_map(|t| validate::cidr(t).ok()),
        );
        let mut global_entries: Vec<FilterEntry> = self.opts.global_filters.to_vec();
        for (i, spec) in config.settings.filters.iter().enumerate() {
            if let Some(e) = self.build_filter(spec, &format_args!("settings.filters[{i}]")) {
                global_entries.push(e);
            }
        }
        let global = FilterChain::new(global_entries.clone());

        let mut entries: Vec<HostEntry> = Vec::with_capacity(
            config.proxy_hosts.len() + config.redirection_hosts.len() + config.dead_hosts.len() + 1,
        );
        // The entry of each host, by kind and position.
        let mut proxy_entry = vec![NO_ENTRY; config.proxy_hosts.len()];
        let mut redirection_entry = vec![NO_ENTRY; config.redirection_hosts.len()];
        let mut dead_entry = vec![NO_ENTRY; config.dead_hosts.len()];

        for (i, h) in config.proxy_hosts.iter().enumerate() {
            if !h.enabled {
                continue;
            }
            if let Some(entry) = self.proxy_host(h, &Idx("proxy_hosts", i), &global_entries) {
                proxy_entry[i] = entries.len() as u32;
                entries.push(entry);
            }
        }
        for (i, h) in config.redirection_hosts.iter().enumerate() {
            if !h.enabled {
                continue;
            }
            let p = Idx("redirection_hosts", i);
            let domain = validate::host_port(&h.forward_domain).unwrap_or_default();
            let mut implicit = tls_specs(
                h.block_exploits,
                h.ssl_forced,
                h.hsts_enabled,
                h.hsts_subdomains,
            );
            implicit.push(
                ModelFilter::Redirect {
                    status: h.status,
                    scheme: h.forward_scheme,
                    domain: &domain,
                    preserve_path: h.preserve_path,
                },
                "",
            );
            let chain = self.chain(&global_entries, &implicit, &h.filters, &p);
            redirection_entry[i] = entries.len() as u32;
            entries.push(HostEntry {
                kind: RouteKind::Redirection,
                id: h.id,
                chain,
                proxy: None,
                fallback: None,
            });
        }
        for (i, h) in config.dead_hosts.iter().enumerate() {
            if !h.enabled {
                continue;
            }
            let p = Idx("dead_hosts", i);
            let implicit = tls_specs(false, h.ssl_forced, h.hsts_enabled, h.hsts_subdomains);
            let chain = self.chain(&global_entries, &implicit, &h.filters, &p);
            dead_entry[i] = entries.len() as u32;
            entries.push(HostEntry {
                kind: RouteKind::Dead,
                id: h.id,
                chain,
                proxy: None,
                fallback: None,
            });
        }

        // Every enabled host's names, normalised once by the model check.
        let mut hosts = HostTable::new();
        for (name, owner) in names {
            let table = match owner.0 {
                "proxy_hosts" => &proxy_entry,
                "redirection_hosts" => &redirection_entry,
                _ => &dead_entry,
            };
            match table.get(owner.1) {
                Some(&idx) if idx != NO_ENTRY => {
                    // Uniqueness was checked with the names.
                    let _ = hosts.insert(name, idx);
                }
                _ => {}
            }
        }

        let default_entry = match &config.settings.default_site {
            DefaultSite::Host { host_id } => match config
                .proxy_hosts
                .iter()
                .position(|h| h.id == *host_id)
                .and_then(|i| proxy_entry.get(i))
            {
                Some(&i) if i != NO_ENTRY => i as usize,
                _ => {
                    self.errs.push(
                        "settings.default_site.host_id",
                        format!("enabled proxy host {host_id} does not exist"),
                    );
                    return None;
                }
            },
            DefaultSite::Redirect { url } => {
                entries.push(HostEntry {
                    kind: RouteKind::Default,
                    id: 0,
                    chain: global.clone(),
                    proxy: None,
                    fallback: Some(FilterResponse::redirect(302, url)),
                });
                entries.len() - 1
            }
            _ => {
                entries.push(HostEntry {
                    kind: RouteKind::Default,
                    id: 0,
                    chain: global.clone(),
                    proxy: None,
                    fallback: None,
                });
                entries.len() - 1
            }
        };

        let served = names.iter().filter_map(|(name, owner)| {
            let (h2, cert) = match owner.0 {
                "proxy_hosts" => config
                    .proxy_hosts
                    .get(owner.1)
                    .map(|h| (h.http2_support, h.certificate_id))?,
                "redirection_hosts" => {
                    (true, config.redirection_hosts.get(owner.1)?.certificate_id)
                }
                _ => (true, config.dead_hosts.get(owner.1)?.certificate_id),
            };
            Some((name.as_ref(), h2, cert))
        });
        let certs = match CertificateTable::build_served(
            config,
            self.opts.previous.map(|p| &p.certs),
            served,
        ) {
            Ok(t) => t,
            Err(errs) => {
                self.errs.0.extend(errs);
                CertificateTable::default()
            }
        };

        #[cfg(feature = "streams")]
        let streams = self.streams(&certs);

        Some(CompiledConfig {
            revision,
            source,
            hosts,
            entries,
            default_entry,
            global,
            trusted,
            groups: std::mem::take(&mut self.groups),
            certs,
            #[cfg(feature = "streams")]
            streams,
            stats: crate::stats::Binding::default(),
        })
    }

    fn proxy_host(
        &mut self,
        h: &ProxyHost,
        p: &dyn fmt::Display,
        global: &[FilterEntry],
    ) -> Option<HostEntry> {
        let base_timeouts = ResolvedTimeouts::from(&h.timeouts, &ResolvedTimeouts::default());
        let group = self.group(
            &h.upstreams,
            &h.balancing,
            h.forward_scheme,
            h,
            &Sub::field(p, "upstreams"),
        )?;
        let hash_key = hash_key_of(&h.balancing);
        let mut implicit = tls_specs(
            h.block_exploits,
            h.ssl_forced,
            h.hsts_enabled,
            h.hsts_subdomains,
        );
        if let Some(access_list_id) = h.access_list_id {
            implicit.push(ModelFilter::AccessList { access_list_id }, "access_list_id");
        }
        if !h.request_headers.is_empty() || !h.response_headers.is_empty() {
            implicit.push(
                ModelFilter::Headers {
                    request: &h.request_headers,
                    response: &h.response_headers,
                },
                "request_headers",
            );
        }
        let host_entries = self.entries(global, &implicit, &h.filters, p);
        // Locations with filters of their own extend the host's entries;
        // the others share the host's chain.
        let own_filters = |l: &Location| {
            !l.filters.is_empty() || !l.request_headers.is_empty() || !l.response_headers.is_empty()
        };
        let (chain, host_entries) = if h.locations.iter().any(own_filters) {
            (FilterChain::new(host_entries.clone()), host_entries)
        } else {
            (FilterChain::new(host_entries), Vec::new())
        };

        let mut patterns = Vec::with_capacity(h.locations.len());
        let mut location_routes = Vec::with_capacity(h.locations.len());
        let locations = Sub::field(p, "locations");
        for (j, l) in h.locations.iter().enumerate() {
            let lp = Sub {
                index: Some(j),
                ..locations
            };
            let pattern = match l.match_kind {
                MatchKind::Exact => PathPattern::Exact(l.path.clone()),
                MatchKind::Prefix => PathPattern::Prefix(l.path.clone()),
                MatchKind::Regex => match self.regex(&l.path) {
                    Ok(r) => PathPattern::Regex(r),
                    Err(m) => {
                        self.errs.push(format!("{lp}.path"), m);
                        continue;
                    }
                },
            };
            let upstream = if l.upstreams.is_empty() {
                Upstreaming {
                    group: group.clone(),
                    timeouts: ResolvedTimeouts::from(&l.timeouts, &base_timeouts),
                    hash_key: hash_key.clone(),
                }
            } else {
                let balancing = l.balancing.as_ref().unwrap_or(&h.balancing);
                let scheme = l.forward_scheme.unwrap_or(h.forward_scheme);
                let Some(g) = self.group(
                    &l.upstreams,
                    balancing,
                    scheme,
                    h,
                    &Sub::field(&lp, "upstreams"),
                ) else {
                    continue;
                };
                Upstreaming {
                    group: g,
                    timeouts: ResolvedTimeouts::from(&l.timeouts, &base_timeouts),
                    hash_key: hash_key_of(balancing),
                }
            };
            let rewrite = match (&l.rewrite, l.match_kind) {
                (None, _) => None,
                (Some(r), MatchKind::Regex) => match &pattern {
                    PathPattern::Regex(re) => Some(Rewrite::Regex(re.clone(), r.clone())),
                    _ => None,
                },
                (Some(r), _) => Some(Rewrite::Prefix(r.clone())),
            };
            let loc_chain = if own_filters(l) {
                let mut implicit = Implicit::default();
                if !l.request_headers.is_empty() || !l.response_headers.is_empty() {
                    implicit.push(
                        ModelFilter::Headers {
                            request: &l.request_headers,
                            response: &l.response_headers,
                        },
                        "request_headers",
                    );
                }
                self.chain(&host_entries, &implicit, &l.filters, &lp)
            } else {
                chain.clone()
            };
            patterns.push((pattern, location_routes.len()));
            location_routes.push(LocationRoute {
                upstream,
                rewrite,
                chain: loc_chain,
            });
        }

        Some(HostEntry {
            kind: RouteKind::Proxy,
            id: h.id,
            chain,
            proxy: Some(ProxyRoute {
                upstream: Upstreaming {
                    group,
                    timeouts: base_timeouts,
                    hash_key,
                },
                max_body_size: h.max_body_size,
                websocket: h.allow_websocket_upgrade,
                retries: h.retries,
                locations: LocationMatcher::new(patterns),
                location_routes,
            }),
            fallback: None,
        })
    }

    /// The regex for a location `pattern`: the previous config's when it
    /// had the same pattern (building one costs far more than the rest of
    /// a location), else a new one.
    fn regex(&mut self, pattern: &str) -> Result<Regex, String> {
        let previous = self.opts.previous;
        let reusable = self.previous_regexes.get_or_insert_with(|| {
            let mut m = std::collections::HashMap::default();
            for e in previous.iter().flat_map(|p| &p.entries) {
                for r in e.proxy.iter().flat_map(|p| p.locations.regexes()) {
                    m.insert(r.as_str(), r.clone());
                }
            }
            m
        });
        match reusable.get(pattern) {
            Some(r) => Ok(r.clone()),
            None => build_regex(pattern),
        }
    }

    fn group(
        &mut self,
        ups: &[Upstream],
        balancing: &Balancing,
        scheme: Scheme,
        h: &ProxyHost,
        p: &dyn fmt::Display,
    ) -> Option<Arc<UpstreamGroup>> {
        let members = self.members(ups, p)?;
        self.group_for(
            GroupSpec {
                members,
                balancing: balancing.clone(),
                scheme,
                sni: h.upstream_sni.clone().unwrap_or_default(),
                verify_tls: h.upstream_verify_tls,
                health_check: h.health_check.clone(),
                passive: h.passive_health.clone(),
            },
            p,
        )
    }

    /// Resolves a group's upstreams; errors are reported at `{p}[j].host`.
    fn members(&mut self, ups: &[Upstream], p: &dyn fmt::Display) -> Option<Vec<MemberSpec>> {
        let mut members = Vec::with_capacity(ups.len());
        let mut ok = true;
        for (j, u) in ups.iter().enumerate() {
            match resolve(u, self.config.settings.allow_link_local_upstreams) {
                Ok(addr) => members.push(MemberSpec {
                    addr,
                    host: match ip_literal(&u.host) {
                        Some(_) => u
                            .host
                            .trim_start_matches('[')
                            .trim_end_matches(']')
                            .to_string(),
                        None => validate::upstream_host(&u.host, true)
                            .unwrap_or_else(|_| u.host.clone()),
                    },
                    weight: u.weight,
                }),
                Err(m) => {
                    self.errs.push(format!("{p}[{j}].host"), m);
                    ok = false;
                }
            }
        }
        ok.then_some(members)
    }

    /// The group for `spec`: shared with an equal spec of this config or
    /// reused from the previous one (keeping its health state), else new.
    fn group_for(&mut self, spec: GroupSpec, p: &dyn fmt::Display) -> Option<Arc<UpstreamGroup>> {
        let spec = HashedSpec::new(spec);
        if let Some(g) = self.groups.get(&spec) {
            return Some(g.clone());
        }
        if let Some(g) = self.opts.previous.and_then(|prev| prev.groups.get(&spec)) {
            self.groups.insert(spec, g.clone());
            return Some(g.clone());
        }
        match UpstreamGroup::new(spec.spec().clone()) {
            Ok(g) => {
                let g = Arc::new(g);
                self.groups.insert(spec, g.clone());
                Some(g)
            }
            Err(m) => {
                self.errs.push(p.to_string(), m);
                None
            }
        }
    }

    /// Builds the enabled streams.
    #[cfg(feature = "streams")]
    fn streams(&mut self, certs: &CertificateTable) -> Vec<Arc<crate::stream::CompiledStream>> {
        use crate::config::StreamProtocol;
        use crate::stream::{proxy_protocol, CidrRules, CompiledStream};

        let config = self.config;
        let mut out = Vec::with_capacity(config.streams.len());
        for (i, s) in config.streams.iter().enumerate() {
            if !s.enabled {
                continue;
            }
            let p = Idx("streams", i);
            let Some(bind) = crate::stream::bind_addr(s) else {
                // The model check reported it.
                continue;
            };
            let Some(members) = self.members(&s.upstreams, &Sub::field(&p, "upstreams")) else {
                continue;
            };
            // TCP streams with a choice of upstreams check them with TCP
            // connects; UDP upstreams may not accept TCP at all.
            let health_check =
                (s.protocol != StreamProtocol::Udp && members.len() > 1).then(HealthCheck::default);
            let spec = GroupSpec {
                members,
                balancing: s.balancing.clone(),
                scheme: Scheme::Http,
                sni: String::new(),
                verify_tls: false,
                health_check,
                passive: crate::config::PassiveHealth::default(),
            };
            let Some(group) = self.group_for(spec, &Sub::field(&p, "upstreams")) else {
                continue;
            };
            let acl = match s.access_list_id {
                None => None,
                Some(id) => match config.access_lists.iter().find(|a| a.id == id) {
                    Some(list) => match CidrRules::new(list) {
                        Ok(r) => Some(r),
                        Err(m) => {
                            self.errs.push(format!("{p}.access_list_id"), m);
                            continue;
                        }
                    },
                    None => {
                        self.errs.push(
                            format!("{p}.access_list_id"),
                            format!("access list {id} does not exist"),
                        );
                        continue;
                    }
                },
            };
            let tls = match s.certificate_id {
                None => None,
                Some(id) => match self.stream_tls(s.id, id, certs) {
                    Ok(t) => Some(t),
                    Err(m) => {
                        self.errs.push(format!("{p}.certificate_id"), m);
                        continue;
                    }
                },
            };
            out.push(Arc::new(CompiledStream {
                id: s.id,
                bind,
                protocol: s.protocol,
                group,
                acl,
                tls,
                proxy_protocol: s
                    .proxy_protocol
                    .and_then(proxy_protocol::Version::from_number),
                idle_timeout: Duration::from_millis(s.idle_timeout_ms),
            }));
        }
        out
    }

    /// TLS termination for stream `stream_id` with certificate `cert_id`:
    /// the previous revision's acceptor when the certificate did not change
    /// (keeping its session cache), else a new one. A certificate whose ACME
    /// order is still pending compiles to "no certificate yet".
    #[cfg(feature = "streams")]
    fn stream_tls(
        &self,
        stream_id: Id,
        cert_id: Id,
        certs: &CertificateTable,
    ) -> Result<crate::stream::StreamTls, String> {
        use crate::stream::StreamTls;
        let Some(cert) = certs.get(cert_id) else {
            return if self.config.certificates.iter().any(|c| c.id == cert_id) {
                Ok(StreamTls::pending(cert_id))
            } else {
                Err(format!("certificate {cert_id} does not exist"))
            };
        };
        let reused = self
            .opts
            .previous
            .and_then(|prev| prev.streams.iter().find(|p| p.id == stream_id))
            .and_then(|p| p.tls.as_ref())
            .and_then(|t| t.reuse_for(cert));
        if let Some(t) = reused {
            return Ok(t);
        }
        let acceptor = cert
            .acceptor()
            .map_err(|e| format!("certificate {cert_id} cannot be served: {e}"))?;
        Ok(StreamTls::new(cert.clone(), acceptor))
    }

    fn build_filter(&mut self, spec: &FilterSpec, path: &dyn fmt::Display) -> Option<FilterEntry> {
        let Some(factory) = self.opts.registry.get(&spec.kind) else {
            self.errs.push(
                path.to_string(),
                format!("filter kind `{}` is not registered", spec.kind),
            );
            return None;
        };
        let ctx = BuildContext {
            config: self.config,
        };
        match factory.build(&spec.config, &ctx) {
            Ok(filter) => Some(FilterEntry {
                priority: spec.priority.unwrap_or_else(|| factory.default_priority()),
                filter,
            }),
            Err(m) => {
                self.errs.push(path.to_string(), m);
                None
            }
        }
    }

    fn build_model(
        &mut self,
        spec: &ModelFilter<'_>,
        path: &dyn fmt::Display,
    ) -> Option<FilterEntry> {
        let Some(factory) = self.opts.registry.get(spec.kind()) else {
            self.errs.push(
                path.to_string(),
                format!("filter kind `{}` is not registered", spec.kind()),
            );
            return None;
        };
        let ctx = BuildContext {
            config: self.config,
        };
        match factory.build_model(spec, &ctx) {
            Ok(filter) => Some(FilterEntry {
                priority: factory.default_priority(),
                filter,
            }),
            Err(m) => {
                self.errs.push(path.to_string(), m);
                None
            }
        }
    }

    /// The entries of a host or location at `p`: its model filters, its
    /// `filters`, then `base` (the enclosing level's).
    fn entries(
        &mut self,
        base: &[FilterEntry],
        implicit: &Implicit<'_>,
        explicit: &[FilterSpec],
        p: &dyn fmt::Display,
    ) -> Vec<FilterEntry> {
        if implicit.is_empty() && explicit.is_empty() {
            return base.to_vec();
        }
        // The more specific filters come first, so on equal priority a
        // host's filter runs before a global one (the chain sort is stable).
        let mut out = Vec::with_capacity(base.len() + 4 + explicit.len());
        for (spec, field) in implicit.iter() {
            if let Some(e) = self.build_model(spec, &Sub::field(p, field)) {
                out.push(e);
            }
        }
        for (i, spec) in explicit.iter().enumerate() {
            if let Some(e) = self.build_filter(spec, &Sub::item(p, "filters", i)) {
                out.push(e);
            }
        }
        out.extend_from_slice(base);
        out
    }

    fn chain(
        &mut self,
        base: &[FilterEntry],
        implicit: &Implicit<'_>,
        explicit: &[FilterSpec],
        p: &dyn fmt::Display,
    ) -> FilterChain {
        FilterChain::new(self.entries(base, implicit, explicit, p))
    }
}

/// The model filters every host kind gets from its `block_exploits`,
/// `ssl_forced` and HSTS fields, with the field each comes from.
fn tls_specs<'a>(block_exploits: bool, force: bool, hsts: bool, subdomains: bool) -> Implicit<'a> {
    let mut specs = Implicit::default();
    if block_exploits {
        specs.push(ModelFilter::BlockExploits, "block_exploits");
    }
    if force || hsts {
        specs.push(
            ModelFilter::ForceHttps {
                force_https: force,
                hsts,
                hsts_subdomains: subdomains,
            },
            "ssl_forced",
        );
    }
    specs
}

fn hash_key_of(b: &Balancing) -> HashKey {
    match b {
        Balancing::ConsistentHash { key } => key.clone(),
        _ => HashKey::ClientIp,
    }
}

/// Resolves an upstream to one socket address. IP literals are parsed;
/// names are resolved with the system resolver (blocking).
/// `host` as an IP address, with or without IPv6 brackets.
fn ip_literal(host: &str) -> Option<IpAddr> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse().ok()
}

fn resolve(u: &Upstream, allow_ll: bool) -> Result<SocketAddr, String> {
    // IP literals (the common case) skip the string work below; the model
    // check has already refused link-local ones.
    if let Some(ip) = ip_literal(&u.host) {
        return Ok(SocketAddr::new(ip, u.port));
    }
    let host = validate::upstream_host(&u.host, allow_ll)?;
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, u.port));
    }
    let addrs = (host.as_str(), u.port)
        .to_socket_addrs()
        .map_err(|e| format!("`{host}` cannot be resolved: {e}"))?;
    let mut first = None;
    for a in addrs {
        if !allow_ll && validate::is_link_local(a.ip()) {
            return Err(format!(
                "`{host}` resolves to a link-local or metadata address; enable allow_link_local_upstreams to use it"
            ));
        }
        if first.is_none() {
            first = Some(a);
        }
    }
    first.ok_or_else(|| format!("`{host}` resolves to no address"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ProxyHost, RedirectionHost};
    use crate::filter::kinds;

    fn snap(c: Config) -> Snapshot {
        Snapshot {
            revision: 1,
            config: c,
        }
    }

    fn opts(reg: &FilterRegistry) -> CompileOptions<'_> {
        CompileOptions {
            registry: reg,
            global_filters: &[],
            previous: None,
        }
    }

    /// A filter that only carries the JSON config it was built from.
    struct Recorded(String);

    #[async_trait::async_trait]
    impl crate::filter::Filter for Recorded {
        fn name(&self) -> &str {
            &self.0
        }
    }

    #[test]
    fn model_filters_go_through_json_for_json_only_factories_and_errors_name_their_field() {
        use crate::config::HeaderRule;
        // Factories registered with register_fn know only JSON: the model
        // form reaches them as the kind's documented config.
        let mut reg = FilterRegistry::new();
        reg.register_fn(kinds::HEADERS, 0, |v: serde_json::Value, _| {
            let ok = v["request"][0]["name"] == "X-Req" && v["response"][0]["name"] == "X-Resp";
            if ok {
                Ok(Arc::new(Recorded(v.to_string())) as Arc<dyn crate::filter::Filter>)
            } else {
                Err(format!("unexpected config {v}"))
            }
        });
        reg.register_fn(kinds::FORCE_HTTPS, 0, |v: serde_json::Value, _| {
            Err::<Arc<dyn crate::filter::Filter>, _>(format!("refused {v}"))
        });
        reg.register_fn(kinds::REDIRECT, 0, |v: serde_json::Value, _| {
            Err::<Arc<dyn crate::filter::Filter>, _>(format!("refused {v}"))
        });
        let mut c = Config::new();
        let mut h = ProxyHost::new(["a.test"], vec![Upstream::new("127.0.0.1", 80)]);
        h.request_headers = vec![HeaderRule::set("X-Req", "1")];
        h.response_headers = vec![HeaderRule::set("X-Resp", "2")];
        h.locations.push(Location {
            path: "/l".into(),
            request_headers: vec![HeaderRule::set("X-Other", "3")],
            ..Location::default()
        });
        c.proxy_hosts.push(h);
        c.redirection_hosts.push(RedirectionHost {
            domain_names: vec!["r.test".into()],
            forward_domain: "example.com".into(),
            ssl_forced: true,
            ..RedirectionHost::default()
        });
        let err = compile(&snap(c.clone()), opts(&reg)).unwrap_err();
        let by_path = |p: &str| {
            err.errors
                .iter()
                .find(|e| e.path == p)
                .map(|e| e.message.clone())
        };
        assert_eq!(by_path("proxy_hosts[0].request_headers"), None, "{err}");
        let loc = by_path("proxy_hosts[0].locations[0].request_headers").unwrap();
        assert!(loc.contains("X-Other"), "{loc}");
        let forced = by_path("redirection_hosts[0].ssl_forced").unwrap();
        assert!(forced.contains(r#""force_https":true"#), "{forced}");
        let redirect = by_path("redirection_hosts[0]").unwrap();
        assert!(redirect.contains(r#""domain":"example.com""#), "{redirect}");
        assert_eq!(err.errors.len(), 3, "{err}");

        // Without the failing parts it compiles, the host's chain holding
        // the headers filter built from the JSON form.
        c.proxy_hosts[0].locations.clear();
        c.redirection_hosts.clear();
        let compiled = compile(&snap(c), opts(&reg)).unwrap();
        let names: Vec<&str> = compiled.entries[0]
            .chain
            .filters()
            .iter()
            .map(|f| f.name())
            .collect();
        assert_eq!(names.len(), 1);
        assert!(names[0].contains(r#""value":"1""#), "{names:?}");
    }

    #[test]
    fn errors_carry_field_paths() {
        let mut c = Config::new();
        let mut ok = ProxyHost::new(["ok.test"], vec![Upstream::new("127.0.0.1", 80)]);
        ok.id = 7;
        c.proxy_hosts.push(ok);
        let mut bad = ProxyHost::new(["bad host", "ok.test"], vec![Upstream::new("127.0.0.1", 0)]);
        bad.upstreams
            .push(Upstream::new("169.254.169.254", 80).weight(0));
        bad.locations.push(Location {
            path: "(".into(),
            match_kind: MatchKind::Regex,
            ..Location::default()
        });
        c.proxy_hosts.push(bad);
        c.settings.trusted_proxies.push("10.0.0.0/99".into());
        let reg = FilterRegistry::new();
        let err = compile(&snap(c), opts(&reg)).unwrap_err();
        let paths: Vec<&str> = err.errors.iter().map(|e| e.path.as_str()).collect();
        for want in [
            "proxy_hosts[1].domain_names[0]",
            "proxy_hosts[1].domain_names[1]",
            "proxy_hosts[1].upstreams[0].port",
            "proxy_hosts[1].upstreams[1].host",
            "proxy_hosts[1].upstreams[1].weight",
            "proxy_hosts[1].locations[0].path",
            "settings.trusted_proxies[0]",
        ] {
            assert!(paths.contains(&want), "missing {want} in {paths:?}");
        }
        let dup = err
            .errors
            .iter()
            .find(|e| e.path == "proxy_hosts[1].domain_names[1]")
            .unwrap();
        assert_eq!(
            dup.message,
            "`ok.test` is already used by proxy host 7 (proxy_hosts[0])"
        );
    }

    #[test]
    fn a_taken_stream_port_names_the_transport_and_the_owner() {
        use crate::config::{Stream, StreamProtocol};
        let mut c = Config::new();
        for (id, protocol) in [(3, StreamProtocol::Tcp), (4, StreamProtocol::Both)] {
            c.streams.push(Stream {
                id,
                incoming_port: 9000,
                protocol,
                upstreams: vec![Upstream::new("127.0.0.1", 80)],
                ..Stream::default()
            });
        }
        let reg = FilterRegistry::new();
        let err = compile(&snap(c), opts(&reg)).unwrap_err();
        let messages: Vec<String> = err.errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            messages,
            ["streams[1].incoming_port: tcp port 9000 is already used by stream 3 (streams[0])"]
        );
    }

    #[test]
    fn unregistered_implicit_filter_is_reported() {
        let mut c = Config::new();
        let mut h = ProxyHost::new(["a.test"], vec![Upstream::new("127.0.0.1", 80)]);
        h.ssl_forced = true;
        c.proxy_hosts.push(h);
        c.redirection_hosts.push(RedirectionHost {
            domain_names: vec!["r.test".into()],
            forward_domain: "example.com".into(),
            ..RedirectionHost::default()
        });
        let reg = FilterRegistry::new();
        let err = compile(&snap(c), opts(&reg)).unwrap_err();
        let paths: Vec<&str> = err.errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            vec!["proxy_hosts[0].ssl_forced", "redirection_hosts[0]"]
        );
    }

    #[test]
    fn groups_are_shared_and_reused() {
        let mut c = Config::new();
        c.proxy_hosts.push(ProxyHost::new(
            ["a.test"],
            vec![Upstream::new("127.0.0.1", 81)],
        ));
        c.proxy_hosts.push(ProxyHost::new(
            ["b.test"],
            vec![Upstream::new("127.0.0.1", 81)],
        ));
        let reg = FilterRegistry::new();
        let first = compile(&snap(c.clone()), opts(&reg)).unwrap();
        assert_eq!(first.groups().count(), 1);
        let second = compile(
            &snap(c),
            CompileOptions {
                previous: Some(&first),
                ..opts(&reg)
            },
        )
        .unwrap();
        let a = first.groups().next().unwrap();
        let b = second.groups().next().unwrap();
        assert!(Arc::ptr_eq(a, b));
        assert_eq!(
            second.route_host("B.TEST:8080"),
            Some((RouteKind::Proxy, 0))
        );
        assert_eq!(second.route_host("c.test"), None);
    }

    #[test]
    fn disabled_hosts_do_not_route_or_conflict() {
        let mut c = Config::new();
        let mut off = ProxyHost::new(["a.test"], vec![Upstream::new("127.0.0.1", 80)]);
        off.enabled = false;
        off.id = 1;
        let mut on = ProxyHost::new(["a.test"], vec![Upstream::new("127.0.0.1", 80)]);
        on.id = 2;
        c.proxy_hosts.push(off);
        c.proxy_hosts.push(on);
        let reg = FilterRegistry::new();
        let cc = compile(&snap(c), opts(&reg)).unwrap();
        assert_eq!(cc.route_host("a.test"), Some((RouteKind::Proxy, 2)));
    }
}
