//! The stored configuration model.
//!
//! These are plain serde types: what a [`ConfigStore`](crate::store::ConfigStore)
//! loads and saves, what the REST API speaks and what an export file holds.
//! They carry no runtime state. [`compile`](crate::compile::compile) validates a
//! [`Config`] and turns it into the runtime form the proxy reads.
//!
//! Every struct rejects unknown fields, so a typo in a config file or an API
//! body is an error rather than a silently ignored setting. Fields that have a
//! sensible default may be omitted.

use serde::{Deserialize, Serialize};

/// Identifier of a stored entity (a row id for database stores).
pub type Id = i64;

/// A whole configuration: everything the engine serves.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// Hosts proxied to upstream servers.
    pub proxy_hosts: Vec<ProxyHost>,
    /// Hosts that answer every request with a redirect.
    pub redirection_hosts: Vec<RedirectionHost>,
    /// Hosts that answer every request with 404.
    pub dead_hosts: Vec<DeadHost>,
    /// Layer-4 (TCP/UDP) port forwards.
    pub streams: Vec<Stream>,
    /// Access lists referenced by hosts and streams.
    pub access_lists: Vec<AccessList>,
    /// TLS certificates referenced by hosts and streams.
    pub certificates: Vec<Certificate>,
    /// Global settings.
    pub settings: Settings,
}

impl Config {
    /// An empty configuration: no hosts, default settings.
    pub fn new() -> Self {
        Self::default()
    }
}

/// `http` or `https`: how the proxy talks to an upstream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// Plain HTTP.
    #[default]
    Http,
    /// HTTP over TLS.
    Https,
}

impl Scheme {
    /// `"http"` or `"https"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// One upstream server of a group.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    /// An IP address or a hostname (resolved when the config is compiled).
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = 253)))]
    pub host: String,
    /// TCP port, 1..=65535.
    #[cfg_attr(feature = "schema", schemars(range(min = 1, max = 65535)))]
    pub port: u16,
    /// Relative share of the traffic, 1..=1000. Defaults to 1.
    #[serde(default = "default_weight")]
    #[cfg_attr(feature = "schema", schemars(range(min = 1, max = 1000)))]
    pub weight: u32,
}

impl Upstream {
    /// An upstream with weight 1.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Upstream {
            host: host.into(),
            port,
            weight: 1,
        }
    }

    /// Sets the weight.
    #[must_use]
    pub fn weight(mut self, weight: u32) -> Self {
        self.weight = weight;
        self
    }
}

fn default_weight() -> u32 {
    1
}

/// How a request picks one upstream of a group.
///
/// Every algorithm honours the upstreams' weights.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "algorithm", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum Balancing {
    /// Weighted round robin (the default).
    #[default]
    #[serde(alias = "weighted")]
    RoundRobin,
    /// Weighted random choice.
    Random,
    /// The upstream with the fewest in-flight requests relative to its weight.
    LeastConnections,
    /// Consistent hashing (ketama) on a request key, so one key keeps reaching
    /// the same upstream while the group is unchanged.
    ConsistentHash {
        /// What the hash is computed from.
        #[serde(default)]
        key: HashKey,
    },
}

/// The request property a consistent hash is computed from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "source", content = "name", rename_all = "snake_case")]
#[non_exhaustive]
pub enum HashKey {
    /// The client IP (trusted-proxy aware).
    #[default]
    ClientIp,
    /// A request header; requests without it hash on the client IP.
    Header(String),
    /// A cookie; requests without it hash on the client IP.
    Cookie(String),
}

/// Active health checking of a group's upstreams.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    /// TCP connect or HTTP request.
    #[serde(default)]
    pub kind: HealthCheckKind,
    /// Milliseconds between two checks of the group, 100..=3_600_000.
    #[serde(default = "default_hc_interval")]
    pub interval_ms: u64,
    /// Milliseconds a single check may take, 10..=60_000.
    #[serde(default = "default_hc_timeout")]
    pub timeout_ms: u64,
    /// Consecutive successes that bring a down upstream back, 1..=100.
    #[serde(default = "default_one")]
    pub healthy_threshold: u32,
    /// Consecutive failures that take an upstream down, 1..=100.
    #[serde(default = "default_one")]
    pub unhealthy_threshold: u32,
}

impl Default for HealthCheck {
    fn default() -> Self {
        HealthCheck {
            kind: HealthCheckKind::default(),
            interval_ms: default_hc_interval(),
            timeout_ms: default_hc_timeout(),
            healthy_threshold: 1,
            unhealthy_threshold: 1,
        }
    }
}

fn default_hc_interval() -> u64 {
    5_000
}
fn default_hc_timeout() -> u64 {
    1_000
}
fn default_one() -> u32 {
    1
}

/// What an active health check does.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum HealthCheckKind {
    /// A TCP connect (and TLS handshake for https groups) must succeed.
    #[default]
    Tcp,
    /// An HTTP `GET` must answer with the expected status.
    Http {
        /// Request path, starting with `/`.
        #[serde(default = "default_hc_path")]
        path: String,
        /// `Host` header to send; defaults to the upstream address.
        #[serde(default)]
        host: Option<String>,
        /// The status that counts as healthy.
        #[serde(default = "default_hc_status")]
        expected_status: u16,
    },
}

fn default_hc_path() -> String {
    "/".to_string()
}
fn default_hc_status() -> u16 {
    200
}

/// Passive failure marking: an upstream that fails to connect `max_fails`
/// times in a row is skipped for `fail_timeout_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct PassiveHealth {
    /// Consecutive connect failures before the upstream is skipped, 1..=100.
    #[serde(default = "default_max_fails")]
    pub max_fails: u32,
    /// How long a failed upstream is skipped, in milliseconds, 100..=3_600_000.
    #[serde(default = "default_fail_timeout")]
    pub fail_timeout_ms: u64,
}

impl Default for PassiveHealth {
    fn default() -> Self {
        PassiveHealth {
            max_fails: default_max_fails(),
            fail_timeout_ms: default_fail_timeout(),
        }
    }
}

fn default_max_fails() -> u32 {
    1
}
fn default_fail_timeout() -> u64 {
    10_000
}

/// Timeouts towards the upstream, in milliseconds. `None` keeps the default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct Timeouts {
    /// TCP (and TLS) connect timeout. Default 10 s.
    pub connect_ms: Option<u64>,
    /// Longest wait for the upstream to send the next bytes. Default 60 s.
    pub read_ms: Option<u64>,
    /// Longest wait for the upstream to accept the next bytes. Default 60 s.
    pub write_ms: Option<u64>,
}

/// What a header rule does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum HeaderAction {
    /// Replace any existing value (the default).
    #[default]
    Set,
    /// Append a value, keeping existing ones.
    Add,
    /// Remove the header; `value` is ignored.
    Remove,
}

/// A request or response header change.
///
/// Values may use variables: `$client_ip`, `$host`, `$scheme`, `$request_uri`,
/// `$remote_port` (see the headers filter).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct HeaderRule {
    /// Header name (an RFC 9110 token).
    #[cfg_attr(
        feature = "schema",
        schemars(
            length(min = 1, max = 256),
            regex(pattern = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
        )
    )]
    pub name: String,
    /// Header value (visible ASCII and spaces).
    #[serde(default)]
    #[cfg_attr(
        feature = "schema",
        schemars(length(max = 8192), regex(pattern = r"^[\t\x20-\x7e]*$"))
    )]
    pub value: String,
    /// Set, add or remove.
    #[serde(default)]
    pub action: HeaderAction,
}

impl HeaderRule {
    /// A `set` rule.
    pub fn set(name: impl Into<String>, value: impl Into<String>) -> Self {
        HeaderRule {
            name: name.into(),
            value: value.into(),
            action: HeaderAction::Set,
        }
    }
}

/// A filter attached by configuration: a registered kind and its typed config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct FilterSpec {
    /// The registered kind, e.g. `"rate_limit"`.
    pub kind: String,
    /// The kind's config; validated by the kind's factory.
    #[serde(default)]
    pub config: serde_json::Value,
    /// Overrides the kind's default priority (higher runs first).
    #[serde(default)]
    pub priority: Option<i32>,
}

impl FilterSpec {
    /// A spec for `kind` with config `config`.
    pub fn new(kind: impl Into<String>, config: serde_json::Value) -> Self {
        FilterSpec {
            kind: kind.into(),
            config,
            priority: None,
        }
    }
}

/// How a location's path is matched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum MatchKind {
    /// The path starts with `path` at a segment boundary: `/api` matches
    /// `/api`, `/api/` and `/api/x` but not `/apix`. The longest prefix wins.
    #[default]
    Prefix,
    /// The path equals `path` exactly. Exact matches win over everything.
    Exact,
    /// `path` is a regular expression; regex locations are tried in declared
    /// order after exact matches, before prefixes.
    Regex,
}

/// A path-based override within a proxy host.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct Location {
    /// The path (or pattern, for regex locations).
    pub path: String,
    /// How `path` is matched.
    pub match_kind: MatchKind,
    /// Upstreams for this location; empty inherits the host's group.
    pub upstreams: Vec<Upstream>,
    /// Balancing for this location's own upstreams.
    pub balancing: Option<Balancing>,
    /// Scheme for this location's own upstreams; defaults to the host's.
    pub forward_scheme: Option<Scheme>,
    /// Replaces the matched prefix (prefix locations) before forwarding;
    /// `Some("")` strips it. Regex locations may use `$1`-style groups.
    pub rewrite: Option<String>,
    /// Extra request headers, applied after the host's.
    pub request_headers: Vec<HeaderRule>,
    /// Extra response headers, applied after the host's.
    pub response_headers: Vec<HeaderRule>,
    /// Timeouts overriding the host's, field by field.
    pub timeouts: Timeouts,
    /// Filters for this location, after the host's.
    pub filters: Vec<FilterSpec>,
}

/// A host proxied to an upstream group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct ProxyHost {
    /// Store id; 0 before the entity is stored.
    pub id: Id,
    /// Names served, exact (`example.com`) or wildcard (`*.example.com`).
    #[cfg_attr(
        feature = "schema",
        schemars(
            length(min = 1, max = 100),
            inner(length(min = 1, max = 253), regex(pattern = r"^(\*\.)?[^*\s]+$"))
        )
    )]
    pub domain_names: Vec<String>,
    /// The upstream group.
    pub upstreams: Vec<Upstream>,
    /// How an upstream is chosen.
    pub balancing: Balancing,
    /// `http` or `https` towards the upstreams.
    pub forward_scheme: Scheme,
    /// SNI sent to https upstreams; defaults to the upstream's host.
    pub upstream_sni: Option<String>,
    /// Verify the https upstream's certificate (default true).
    pub upstream_verify_tls: bool,
    /// Active health checks; `None` disables them.
    pub health_check: Option<HealthCheck>,
    /// Passive failure marking.
    pub passive_health: PassiveHealth,
    /// Retries on another upstream when connecting fails (idempotent requests), 0..=10.
    #[cfg_attr(feature = "schema", schemars(range(max = 10)))]
    pub retries: u32,
    /// Upstream timeouts.
    pub timeouts: Timeouts,
    /// Largest request body accepted, in bytes; larger gets 413. `None` is unlimited.
    pub max_body_size: Option<u64>,
    /// Allow `Upgrade: websocket` requests.
    pub allow_websocket_upgrade: bool,
    /// Header changes towards the upstream.
    pub request_headers: Vec<HeaderRule>,
    /// Header changes towards the client.
    pub response_headers: Vec<HeaderRule>,
    /// Path-based overrides.
    pub locations: Vec<Location>,
    /// Access list applied to every request of this host.
    pub access_list_id: Option<Id>,
    /// Certificate served for this host's names over TLS.
    pub certificate_id: Option<Id>,
    /// Redirect plain HTTP to HTTPS.
    pub ssl_forced: bool,
    /// Send `Strict-Transport-Security` over TLS.
    pub hsts_enabled: bool,
    /// Add `includeSubDomains` to HSTS.
    pub hsts_subdomains: bool,
    /// Offer HTTP/2 to clients over TLS.
    pub http2_support: bool,
    /// Reject common exploit probes.
    pub block_exploits: bool,
    /// Filters for every request of this host.
    pub filters: Vec<FilterSpec>,
    /// A disabled host is not served (its names fall to the default site).
    pub enabled: bool,
}

impl Default for ProxyHost {
    fn default() -> Self {
        ProxyHost {
            id: 0,
            domain_names: Vec::new(),
            upstreams: Vec::new(),
            balancing: Balancing::default(),
            forward_scheme: Scheme::Http,
            upstream_sni: None,
            upstream_verify_tls: true,
            health_check: None,
            passive_health: PassiveHealth::default(),
            retries: 1,
            timeouts: Timeouts::default(),
            max_body_size: None,
            allow_websocket_upgrade: true,
            request_headers: Vec::new(),
            response_headers: Vec::new(),
            locations: Vec::new(),
            access_list_id: None,
            certificate_id: None,
            ssl_forced: false,
            hsts_enabled: false,
            hsts_subdomains: false,
            http2_support: true,
            block_exploits: false,
            filters: Vec::new(),
            enabled: true,
        }
    }
}

impl ProxyHost {
    /// An enabled host for `domains` proxied to `upstreams`, with defaults
    /// for everything else.
    pub fn new<D, S>(domains: D, upstreams: Vec<Upstream>) -> Self
    where
        D: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ProxyHost {
            domain_names: domains.into_iter().map(Into::into).collect(),
            upstreams,
            ..ProxyHost::default()
        }
    }
}

/// A host that redirects every request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct RedirectionHost {
    /// Store id.
    pub id: Id,
    /// Names served.
    #[cfg_attr(
        feature = "schema",
        schemars(
            length(min = 1, max = 100),
            inner(length(min = 1, max = 253), regex(pattern = r"^(\*\.)?[^*\s]+$"))
        )
    )]
    pub domain_names: Vec<String>,
    /// 301, 302, 307 or 308.
    #[cfg_attr(feature = "schema", schemars(range(min = 301, max = 308)))]
    pub status: u16,
    /// Scheme of the target; `None` keeps the request's.
    pub forward_scheme: Option<Scheme>,
    /// Target host (and optional port), e.g. `example.com` or `example.com:8443`.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = 259)))]
    pub forward_domain: String,
    /// Keep the request's path and query on the target.
    pub preserve_path: bool,
    /// Certificate served for this host's names over TLS.
    pub certificate_id: Option<Id>,
    /// Redirect plain HTTP to HTTPS first.
    pub ssl_forced: bool,
    /// Send HSTS over TLS.
    pub hsts_enabled: bool,
    /// Add `includeSubDomains` to HSTS.
    pub hsts_subdomains: bool,
    /// Reject common exploit probes.
    pub block_exploits: bool,
    /// Extra filters.
    pub filters: Vec<FilterSpec>,
    /// A disabled host is not served.
    pub enabled: bool,
}

impl Default for RedirectionHost {
    fn default() -> Self {
        RedirectionHost {
            id: 0,
            domain_names: Vec::new(),
            status: 301,
            forward_scheme: None,
            forward_domain: String::new(),
            preserve_path: true,
            certificate_id: None,
            ssl_forced: false,
            hsts_enabled: false,
            hsts_subdomains: false,
            block_exploits: false,
            filters: Vec::new(),
            enabled: true,
        }
    }
}

/// A host that answers every request with 404 (or its error page).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct DeadHost {
    /// Store id.
    pub id: Id,
    /// Names served.
    #[cfg_attr(
        feature = "schema",
        schemars(
            length(min = 1, max = 100),
            inner(length(min = 1, max = 253), regex(pattern = r"^(\*\.)?[^*\s]+$"))
        )
    )]
    pub domain_names: Vec<String>,
    /// Certificate served for this host's names over TLS.
    pub certificate_id: Option<Id>,
    /// Redirect plain HTTP to HTTPS first.
    pub ssl_forced: bool,
    /// Send HSTS over TLS.
    pub hsts_enabled: bool,
    /// Add `includeSubDomains` to HSTS.
    pub hsts_subdomains: bool,
    /// Extra filters (e.g. error pages).
    pub filters: Vec<FilterSpec>,
    /// A disabled host is not served.
    pub enabled: bool,
}

impl Default for DeadHost {
    fn default() -> Self {
        DeadHost {
            id: 0,
            domain_names: Vec::new(),
            certificate_id: None,
            ssl_forced: false,
            hsts_enabled: false,
            hsts_subdomains: false,
            filters: Vec::new(),
            enabled: true,
        }
    }
}

/// `tcp`, `udp` or `both`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum StreamProtocol {
    /// TCP only.
    #[default]
    Tcp,
    /// UDP only.
    Udp,
    /// TCP and UDP on the same port.
    Both,
}

/// A layer-4 port forward.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct Stream {
    /// Store id.
    pub id: Id,
    /// Port the stream listens on, 1..=65535.
    #[cfg_attr(feature = "schema", schemars(range(min = 1, max = 65535)))]
    pub incoming_port: u16,
    /// Address the stream binds, default `0.0.0.0`.
    pub bind_address: String,
    /// TCP, UDP or both.
    pub protocol: StreamProtocol,
    /// Upstream servers.
    pub upstreams: Vec<Upstream>,
    /// Round robin, least connections or consistent hash on the client IP.
    pub balancing: Balancing,
    /// Access list (its CIDR rules only).
    pub access_list_id: Option<Id>,
    /// Terminate TLS with this certificate from the certificate store:
    /// clients handshake with the stream and the upstreams get plaintext.
    /// TCP streams only (`protocol: tcp`); a renewed or replaced
    /// certificate is served from the next handshake on.
    pub certificate_id: Option<Id>,
    /// Send a PROXY protocol header to TCP upstreams: `None`, 1 or 2.
    #[cfg_attr(feature = "schema", schemars(range(min = 1, max = 2)))]
    pub proxy_protocol: Option<u8>,
    /// Close a connection (or UDP session) after this many milliseconds
    /// without traffic either way, 100..=86_400_000 (not a lifetime cap).
    #[cfg_attr(feature = "schema", schemars(range(min = 100, max = 86_400_000)))]
    pub idle_timeout_ms: u64,
    /// A disabled stream does not listen.
    pub enabled: bool,
}

impl Default for Stream {
    fn default() -> Self {
        Stream {
            id: 0,
            incoming_port: 0,
            bind_address: "0.0.0.0".to_string(),
            protocol: StreamProtocol::Tcp,
            upstreams: Vec::new(),
            balancing: Balancing::default(),
            access_list_id: None,
            certificate_id: None,
            proxy_protocol: None,
            idle_timeout_ms: 600_000,
            enabled: true,
        }
    }
}

/// Allow or deny.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum RuleAction {
    /// Let the request through.
    #[default]
    Allow,
    /// Refuse the request with 403.
    Deny,
}

/// One IP rule of an access list.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct IpRule {
    /// Allow or deny.
    pub action: RuleAction,
    /// An address or CIDR (`10.0.0.0/8`, `2001:db8::/32`), or `all`.
    pub address: String,
}

/// A Basic-Auth user of an access list.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct AccessUser {
    /// User name (no `:`).
    #[cfg_attr(
        feature = "schema",
        schemars(length(min = 1, max = 255), regex(pattern = r"^[^:]+$"))
    )]
    pub username: String,
    /// PHC-format argon2id hash, or a bcrypt hash for imported lists.
    /// Exports leave it out unless secrets are requested.
    #[serde(default)]
    pub password_hash: String,
}

/// `any`: the IP rules **or** a password let a request in; `all`: both must.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Satisfy {
    /// Either the IP rules or Basic Auth is enough.
    #[default]
    Any,
    /// Both the IP rules and Basic Auth must pass.
    All,
}

/// IP rules and Basic-Auth users, attached to hosts and streams by id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct AccessList {
    /// Store id.
    pub id: Id,
    /// A name for people.
    pub name: String,
    /// IP rules, evaluated in order; the first match decides.
    pub rules: Vec<IpRule>,
    /// What happens when no rule matches.
    pub default_action: RuleAction,
    /// Basic-Auth users; empty means no password is asked.
    pub users: Vec<AccessUser>,
    /// How IP rules and passwords combine.
    pub satisfy: Satisfy,
    /// Forward the client's `Authorization` header to the upstream.
    pub pass_auth: bool,
}

impl Default for AccessList {
    fn default() -> Self {
        AccessList {
            id: 0,
            name: String::new(),
            rules: Vec::new(),
            default_action: RuleAction::Allow,
            users: Vec::new(),
            satisfy: Satisfy::Any,
            pass_auth: false,
        }
    }
}

/// Where a certificate came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum CertificateSource {
    /// Uploaded by an operator.
    #[default]
    Upload,
    /// Issued by the ACME manager.
    Acme,
}

/// A TLS certificate with its chain and key, in PEM.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct Certificate {
    /// Store id.
    pub id: Id,
    /// A name for people.
    pub name: String,
    /// Upload or ACME.
    pub source: CertificateSource,
    /// Names the certificate is for (from its SANs).
    pub domain_names: Vec<String>,
    /// Leaf certificate followed by its chain, PEM. Empty while an ACME
    /// order is pending.
    pub certificate_pem: String,
    /// The private key, PEM. Exports leave it out unless secrets are requested.
    pub private_key_pem: String,
}

/// What to do with a request whose host matches nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "behaviour", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum DefaultSite {
    /// Answer 404 (the default).
    #[default]
    NotFound,
    /// Redirect to a URL.
    Redirect {
        /// An absolute `http(s)://` URL.
        url: String,
    },
    /// Serve the request as the proxy host with this id.
    Host {
        /// A proxy host id.
        host_id: Id,
    },
}

/// Global settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Behaviour for unknown hosts.
    pub default_site: DefaultSite,
    /// Peers (CIDRs) whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<String>,
    /// Filters applied to every host.
    pub filters: Vec<FilterSpec>,
    /// Let upstreams resolve to link-local or cloud metadata addresses
    /// (169.254.0.0/16, fe80::/10). Off by default.
    pub allow_link_local_upstreams: bool,
    /// Certificate served on the HTTPS listener to clients whose server
    /// name (SNI) selects no certificate, or who send none. Unset: ppm's
    /// self-signed fallback, which names no tenant.
    pub default_certificate_id: Option<Id>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            default_site: DefaultSite::NotFound,
            trusted_proxies: Vec::new(),
            filters: Vec::new(),
            allow_link_local_upstreams: false,
            default_certificate_id: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_host_deserializes_with_defaults() {
        let h: ProxyHost = serde_json::from_str(
            r#"{"domain_names":["a.test"],"upstreams":[{"host":"127.0.0.1","port":80}]}"#,
        )
        .unwrap();
        assert!(h.enabled);
        assert!(h.upstream_verify_tls);
        assert_eq!(h.upstreams[0].weight, 1);
        assert_eq!(h.balancing, Balancing::RoundRobin);
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let err = serde_json::from_str::<ProxyHost>(r#"{"domain_name":["a.test"]}"#).unwrap_err();
        assert!(err.to_string().contains("domain_name"), "{err}");
    }

    #[test]
    fn balancing_forms() {
        let b: Balancing = serde_json::from_str(
            r#"{"algorithm":"consistent_hash","key":{"source":"header","name":"X-User"}}"#,
        )
        .unwrap();
        assert_eq!(
            b,
            Balancing::ConsistentHash {
                key: HashKey::Header("X-User".into())
            }
        );
        let b: Balancing = serde_json::from_str(r#"{"algorithm":"weighted"}"#).unwrap();
        assert_eq!(b, Balancing::RoundRobin);
    }

    #[test]
    fn config_round_trips() {
        let mut c = Config::new();
        c.proxy_hosts.push(ProxyHost::new(
            ["a.test"],
            vec![Upstream::new("127.0.0.1", 80)],
        ));
        c.settings.default_site = DefaultSite::Redirect {
            url: "https://example.com/".into(),
        };
        let s = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<Config>(&s).unwrap(), c);
    }
}
