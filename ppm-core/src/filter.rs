//! The [`Filter`] trait: code that runs on requests at fixed phases.
//!
//! A filter is built once per config revision by a registered
//! [`FilterFactory`] from a typed config, shared by every request through an
//! `Arc`, and keeps per-request state in the engine-owned [`RequestCtx`].
//!
//! # Phases
//!
//! The phases are named after Pingora's (`docs/user_guide/phase.md` in
//! Pingora), and run in this order:
//!
//! 1. [`early_request_filter`](Filter::early_request_filter): global filters
//!    only, before the host is routed. ACME challenges answer here.
//! 2. [`request_filter`](Filter::request_filter): after routing, in priority
//!    order. Force-HTTPS, redirects, access lists and rate limits answer here.
//! 3. [`upstream_request_filter`](Filter::upstream_request_filter): may change
//!    the request sent to the upstream.
//! 4. [`response_filter`](Filter::response_filter): may change the response
//!    header sent to the client (including responses from filters).
//! 5. [`error_response`](Filter::error_response): may replace an error the
//!    engine itself generates (404 for unknown hosts, 502, 504, 413...).
//! 6. [`logging`](Filter::logging): always, once the request is done.
//!
//! A filter declares which phases it implements with
//! [`phases`](Filter::phases); the engine builds per-phase lists once per
//! revision, so a phase a filter does not implement costs nothing.
//!
//! # Example
//!
//! ```
//! use ppm_core::filter::{Filter, FilterAction, FilterResponse, Phases, RequestCtx};
//! use ppm_core::http::RequestHeader;
//!
//! /// Refuses requests without `X-Api-Key: secret`.
//! struct ApiKey;
//!
//! #[ppm_core::async_trait]
//! impl Filter for ApiKey {
//!     fn name(&self) -> &str { "api_key" }
//!     fn phases(&self) -> Phases { Phases::REQUEST }
//!     async fn request_filter(
//!         &self,
//!         req: &RequestHeader,
//!         _ctx: &mut RequestCtx,
//!     ) -> ppm_core::Result<FilterAction> {
//!         match req.headers.get("x-api-key") {
//!             Some(v) if v.as_bytes() == b"secret" => Ok(FilterAction::Continue),
//!             _ => Ok(FilterAction::Respond(FilterResponse::text(401, "missing API key\n"))),
//!         }
//!     }
//! }
//! ```

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};
use pingora_http::{RequestHeader, ResponseHeader};
use serde::de::DeserializeOwned;

use crate::config::{Config, HeaderRule, Id, Scheme};

/// Pingora's result type, used on the request path.
pub type Result<T> = pingora_error::Result<T>;

/// Documented priority bands of the built-in filters. Higher runs first;
/// user filters default to [`USER`](priority::USER).
pub mod priority {
    /// ACME HTTP-01 challenge answers.
    pub const ACME_CHALLENGE: i32 = 1000;
    /// Exploit-probe blocking.
    pub const BLOCK_EXPLOITS: i32 = 950;
    /// Force-HTTPS redirects and HSTS.
    pub const FORCE_HTTPS: i32 = 900;
    /// Redirection hosts and redirect rules.
    pub const REDIRECT: i32 = 800;
    /// Access lists (IP rules and Basic Auth).
    pub const ACCESS_LIST: i32 = 700;
    /// Rate limits.
    pub const RATE_LIMIT: i32 = 600;
    /// Header rules.
    pub const HEADERS: i32 = 100;
    /// Error pages.
    pub const ERROR_PAGES: i32 = 50;
    /// The default for user filters.
    pub const USER: i32 = 0;
}

/// Registered kind names of the built-in filters, which the compiler attaches
/// for model fields (`ssl_forced`, `access_list_id`, redirection hosts...).
pub mod kinds {
    /// ACME HTTP-01 challenge answers.
    pub const ACME_CHALLENGE: &str = "acme_challenge";
    /// Access lists; config `{"access_list_id": N}`.
    pub const ACCESS_LIST: &str = "access_list";
    /// Redirects; config built from a redirection host.
    pub const REDIRECT: &str = "redirect";
    /// Force HTTPS and HSTS; config
    /// `{"force_https": bool, "hsts": bool, "hsts_subdomains": bool}` (the
    /// filter also takes `hsts_max_age` and `hsts_preload`).
    pub const FORCE_HTTPS: &str = "force_https";
    /// Header rules; config `{"request": [..], "response": [..]}`.
    pub const HEADERS: &str = "headers";
    /// Exploit-probe blocking; config `{}`.
    pub const BLOCK_EXPLOITS: &str = "block_exploits";
    /// Rate limits.
    pub const RATE_LIMIT: &str = "rate_limit";
    /// Error pages.
    pub const ERROR_PAGES: &str = "error_pages";
}

/// A built-in filter the compiler attaches from model fields
/// (`request_headers`, `ssl_forced`, `access_list_id`, ...), in typed form.
///
/// [`FilterFactory::build_model`] receives it, so a factory for one of these
/// kinds can build straight from the model instead of from a JSON config;
/// the default implementation converts it with [`ModelFilter::to_json`] and
/// calls [`FilterFactory::build`], so a factory that only knows JSON works
/// the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ModelFilter<'a> {
    /// [`kinds::HEADERS`]: a host's or location's header rules.
    Headers {
        /// Changes to the request sent upstream, in order.
        request: &'a [HeaderRule],
        /// Changes to the response sent to the client, in order.
        response: &'a [HeaderRule],
    },
    /// [`kinds::FORCE_HTTPS`]: `ssl_forced` and the HSTS fields.
    ForceHttps {
        /// Redirect plain HTTP to HTTPS.
        force_https: bool,
        /// Send `Strict-Transport-Security` on HTTPS responses.
        hsts: bool,
        /// Add `includeSubDomains` to it.
        hsts_subdomains: bool,
    },
    /// [`kinds::BLOCK_EXPLOITS`]: `block_exploits`.
    BlockExploits,
    /// [`kinds::ACCESS_LIST`]: `access_list_id`.
    AccessList {
        /// The access list's id.
        access_list_id: Id,
    },
    /// [`kinds::REDIRECT`]: a redirection host.
    Redirect {
        /// 301, 302, 307 or 308.
        status: u16,
        /// The scheme to redirect to; `None` keeps the request's.
        scheme: Option<Scheme>,
        /// The target `host[:port]`, normalised.
        domain: &'a str,
        /// Keep the request's path and query.
        preserve_path: bool,
    },
}

impl ModelFilter<'_> {
    /// The kind it is built as (one of [`kinds`]).
    pub fn kind(&self) -> &'static str {
        match self {
            ModelFilter::Headers { .. } => kinds::HEADERS,
            ModelFilter::ForceHttps { .. } => kinds::FORCE_HTTPS,
            ModelFilter::BlockExploits => kinds::BLOCK_EXPLOITS,
            ModelFilter::AccessList { .. } => kinds::ACCESS_LIST,
            ModelFilter::Redirect { .. } => kinds::REDIRECT,
        }
    }

    /// The same filter as its kind's JSON config.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        match *self {
            ModelFilter::Headers { request, response } => {
                json!({ "request": request, "response": response })
            }
            ModelFilter::ForceHttps {
                force_https,
                hsts,
                hsts_subdomains,
            } => json!({
                "force_https": force_https,
                "hsts": hsts,
                "hsts_subdomains": hsts_subdomains,
            }),
            ModelFilter::BlockExploits => json!({}),
            ModelFilter::AccessList { access_list_id } => {
                json!({ "access_list_id": access_list_id })
            }
            ModelFilter::Redirect {
                status,
                scheme,
                domain,
                preserve_path,
            } => json!({
                "status": status,
                "scheme": scheme.map(Scheme::as_str),
                "domain": domain,
                "preserve_path": preserve_path,
            }),
        }
    }
}

/// The phases a filter implements, as a small bit set.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Phases(u8);

impl Phases {
    /// No phase.
    pub const NONE: Phases = Phases(0);
    /// [`Filter::early_request_filter`].
    pub const EARLY_REQUEST: Phases = Phases(1);
    /// [`Filter::request_filter`].
    pub const REQUEST: Phases = Phases(1 << 1);
    /// [`Filter::upstream_request_filter`].
    pub const UPSTREAM_REQUEST: Phases = Phases(1 << 2);
    /// [`Filter::response_filter`].
    pub const RESPONSE: Phases = Phases(1 << 3);
    /// [`Filter::error_response`].
    pub const ERROR_RESPONSE: Phases = Phases(1 << 4);
    /// [`Filter::logging`].
    pub const LOGGING: Phases = Phases(1 << 5);
    /// Every phase.
    pub const ALL: Phases = Phases(0b11_1111);

    /// Whether every phase of `other` is in `self`.
    pub const fn contains(self, other: Phases) -> bool {
        self.0 & other.0 == other.0
    }

    /// The union of both sets.
    pub const fn union(self, other: Phases) -> Phases {
        Phases(self.0 | other.0)
    }
}

impl std::ops::BitOr for Phases {
    type Output = Phases;
    fn bitor(self, rhs: Phases) -> Phases {
        self.union(rhs)
    }
}

impl fmt::Debug for Phases {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (Phases::EARLY_REQUEST, "early_request"),
            (Phases::REQUEST, "request"),
            (Phases::UPSTREAM_REQUEST, "upstream_request"),
            (Phases::RESPONSE, "response"),
            (Phases::ERROR_RESPONSE, "error_response"),
            (Phases::LOGGING, "logging"),
        ];
        let mut set = f.debug_set();
        for (p, n) in names {
            if self.contains(p) {
                set.entry(&n);
            }
        }
        set.finish()
    }
}

/// What a request phase decided.
#[must_use]
#[derive(Debug)]
#[non_exhaustive]
pub enum FilterAction {
    /// Go on to the next filter, then to the upstream.
    Continue,
    /// Stop here and send this response to the client.
    Respond(FilterResponse),
}

/// A complete response produced by a filter (or by the engine itself).
#[derive(Debug, Clone)]
pub struct FilterResponse {
    /// The status code.
    pub status: StatusCode,
    /// Headers, in order. `Content-Length` is added by the engine.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The body.
    pub body: Bytes,
}

impl FilterResponse {
    /// An empty response with `status`. An invalid status becomes 500.
    pub fn new(status: u16) -> Self {
        FilterResponse {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    /// A `text/plain` response.
    pub fn text(status: u16, body: impl Into<Bytes>) -> Self {
        FilterResponse::new(status)
            .header(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            )
            .body(body)
    }

    /// A `text/html` response.
    pub fn html(status: u16, body: impl Into<Bytes>) -> Self {
        FilterResponse::new(status)
            .header(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            )
            .body(body)
    }

    /// A redirect to `location` with `status` (301, 302, 307 or 308).
    /// A `location` that is not a valid header value gives a 500.
    pub fn redirect(status: u16, location: &str) -> Self {
        match HeaderValue::from_str(location) {
            Ok(v) => FilterResponse::new(status).header(http::header::LOCATION, v),
            Err(_) => FilterResponse::text(500, "invalid redirect target\n"),
        }
    }

    /// Appends a header.
    #[must_use]
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// Sets the body.
    #[must_use]
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// Builds the Pingora response header, with `Content-Length`.
    pub fn to_response_header(&self) -> Result<ResponseHeader> {
        let mut resp = ResponseHeader::build(self.status, Some(self.headers.len() + 1))?;
        for (n, v) in &self.headers {
            resp.append_header(n.clone(), v.clone())?;
        }
        resp.insert_header(http::header::CONTENT_LENGTH, self.body.len())?;
        Ok(resp)
    }
}

/// Which kind of host a request was routed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RouteKind {
    /// A proxy host.
    Proxy,
    /// A redirection host.
    Redirection,
    /// A 404 host.
    Dead,
    /// No host matched; the default site applies.
    Default,
}

/// Where a request was routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// Host kind.
    pub kind: RouteKind,
    /// Store id of the host (0 for the default site).
    pub host_id: Id,
    /// Index of the matched location in the host's `locations`, if any.
    pub location: Option<usize>,
}

/// A type map for per-request state of custom filters.
///
/// Each type is stored at most once; use a newtype per filter.
#[derive(Default)]
pub struct Extensions {
    map: Option<HashMap<TypeId, Box<dyn Any + Send + Sync>>>,
}

impl Extensions {
    /// An empty map (does not allocate).
    pub fn new() -> Self {
        Extensions { map: None }
    }

    /// Stores `value`, returning the previous value of its type.
    pub fn insert<T: Send + Sync + 'static>(&mut self, value: T) -> Option<T> {
        self.map
            .get_or_insert_with(HashMap::new)
            .insert(TypeId::of::<T>(), Box::new(value))
            .and_then(|old| old.downcast::<T>().ok().map(|b| *b))
    }

    /// A reference to the value of type `T`.
    pub fn get<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.map
            .as_ref()?
            .get(&TypeId::of::<T>())?
            .downcast_ref::<T>()
    }

    /// A mutable reference to the value of type `T`.
    pub fn get_mut<T: Send + Sync + 'static>(&mut self) -> Option<&mut T> {
        self.map
            .as_mut()?
            .get_mut(&TypeId::of::<T>())?
            .downcast_mut::<T>()
    }

    /// Removes and returns the value of type `T`.
    pub fn remove<T: Send + Sync + 'static>(&mut self) -> Option<T> {
        self.map
            .as_mut()?
            .remove(&TypeId::of::<T>())
            .and_then(|b| b.downcast::<T>().ok().map(|b| *b))
    }
}

impl fmt::Debug for Extensions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Extensions")
            .field("len", &self.map.as_ref().map_or(0, HashMap::len))
            .finish()
    }
}

/// Per-request state owned by the engine and shown to every filter.
#[derive(Debug)]
#[non_exhaustive]
pub struct RequestCtx {
    /// The client's IP: the TCP peer, or the rightmost untrusted address of
    /// `X-Forwarded-For` when the peer is a trusted proxy. IPv4-mapped IPv6
    /// is given as IPv4.
    pub client_ip: Option<IpAddr>,
    /// The TCP peer's IP.
    pub peer_ip: Option<IpAddr>,
    /// The TCP peer's port.
    pub peer_port: u16,
    /// Whether the client connected over TLS.
    pub tls: bool,
    /// The request host, lower case, without port.
    pub host: String,
    /// The port the client addressed (from `Host`, else the scheme default).
    pub port: u16,
    /// Where the request was routed; `None` before routing.
    pub route: Option<Route>,
    /// When the engine first saw the request.
    pub started: Instant,
    /// The kind of the filter that answered the request, if one did.
    pub responded_by: Option<String>,
    /// The upstream address the request was sent to, if any.
    pub upstream: Option<std::net::SocketAddr>,
    /// State of custom filters.
    pub extensions: Extensions,
}

impl RequestCtx {
    /// A context for a request from `client_ip` over plain HTTP.
    pub fn new(client_ip: Option<IpAddr>) -> Self {
        RequestCtx {
            client_ip,
            peer_ip: client_ip,
            peer_port: 0,
            tls: false,
            host: String::new(),
            port: 80,
            route: None,
            started: Instant::now(),
            responded_by: None,
            upstream: None,
            extensions: Extensions::new(),
        }
    }

    /// `"https"` over TLS, else `"http"`.
    pub fn scheme(&self) -> &'static str {
        if self.tls {
            "https"
        } else {
            "http"
        }
    }
}

impl Default for RequestCtx {
    fn default() -> Self {
        RequestCtx::new(None)
    }
}

/// Code that runs on requests at fixed phases. See the [module docs](self).
///
/// Every method has a no-op default, so new phases can be added without
/// breaking implementations. Implement [`phases`](Filter::phases) to tell the
/// engine which methods you override.
#[async_trait]
pub trait Filter: Send + Sync + 'static {
    /// A short name for logs and for [`RequestCtx::responded_by`]; the
    /// registered kind for built-ins.
    fn name(&self) -> &str;

    /// The phases this filter implements. The engine calls only these.
    /// Defaults to every phase.
    fn phases(&self) -> Phases {
        Phases::ALL
    }

    /// Runs for global filters only, before the request is routed to a host.
    /// The default continues.
    ///
    /// `Respond` sends the response at once; no later filter runs, except the
    /// response and logging phases.
    async fn early_request_filter(
        &self,
        _req: &RequestHeader,
        _ctx: &mut RequestCtx,
    ) -> Result<FilterAction> {
        Ok(FilterAction::Continue)
    }

    /// Runs after routing, in priority order. The default continues.
    ///
    /// `Respond` sends the response; `Err` answers 500 and is logged with
    /// this filter's name.
    async fn request_filter(
        &self,
        _req: &RequestHeader,
        _ctx: &mut RequestCtx,
    ) -> Result<FilterAction> {
        Ok(FilterAction::Continue)
    }

    /// Runs just before the request goes to the upstream, after the engine
    /// has set the forwarding headers; may change the upstream request. The
    /// default does nothing.
    async fn upstream_request_filter(
        &self,
        _upstream_req: &mut RequestHeader,
        _ctx: &mut RequestCtx,
    ) -> Result<()> {
        Ok(())
    }

    /// Runs before the response header goes to the client, for upstream
    /// responses and for responses from filters and the engine. The default
    /// does nothing.
    async fn response_filter(
        &self,
        _resp: &mut ResponseHeader,
        _ctx: &mut RequestCtx,
    ) -> Result<()> {
        Ok(())
    }

    /// Runs when the engine itself answers with an error `status` (404 for an
    /// unknown or dead host, 413, 502, 503, 504...). Returning a response
    /// replaces the engine's plain one; the first filter that returns one
    /// wins. The default returns `None`.
    fn error_response(&self, _status: u16, _ctx: &RequestCtx) -> Option<FilterResponse> {
        None
    }

    /// Runs once the request is done, whatever happened: `status` is what
    /// the client got (0 if nothing was sent). The default does nothing.
    fn logging(&self, _status: u16, _ctx: &mut RequestCtx) {}
}

/// What a factory sees when it builds a filter: the whole config being
/// compiled, so it can look up referenced entities (an access list by id).
#[derive(Debug, Clone, Copy)]
pub struct BuildContext<'a> {
    /// The config being compiled.
    pub config: &'a Config,
}

/// Builds filters of one kind from their JSON config.
///
/// Most factories are made with [`FilterRegistry::register_fn`], which
/// deserialises a typed config first.
pub trait FilterFactory: Send + Sync + 'static {
    /// The stable kind name used in config (`"rate_limit"`).
    fn kind(&self) -> &str;

    /// The priority filters of this kind get unless the config overrides it.
    fn default_priority(&self) -> i32 {
        priority::USER
    }

    /// Validates `config` and builds a filter. The error is a message for
    /// people; the compiler adds the field path.
    fn build(
        &self,
        config: &serde_json::Value,
        ctx: &BuildContext<'_>,
    ) -> std::result::Result<Arc<dyn Filter>, String>;

    /// Builds the filter the compiler attaches from model fields. The
    /// default builds from [`ModelFilter::to_json`]; factories of the
    /// built-in kinds override it to skip the JSON round trip.
    fn build_model(
        &self,
        spec: &ModelFilter<'_>,
        ctx: &BuildContext<'_>,
    ) -> std::result::Result<Arc<dyn Filter>, String> {
        self.build(&spec.to_json(), ctx)
    }
}

/// A typed builder for the model form of a kind: `None` when the spec is
/// not one it builds (the JSON path is used then).
type ModelFn = dyn Fn(&ModelFilter<'_>, &BuildContext<'_>) -> Option<std::result::Result<Arc<dyn Filter>, String>>
    + Send
    + Sync;

struct FnFactory<C, F> {
    kind: String,
    priority: i32,
    build: F,
    model: Option<Box<ModelFn>>,
    _config: std::marker::PhantomData<fn() -> C>,
}

impl<C, F> FnFactory<C, F> {
    fn new(kind: &str, priority: i32, build: F, model: Option<Box<ModelFn>>) -> Self {
        FnFactory {
            kind: kind.to_string(),
            priority,
            build,
            model,
            _config: std::marker::PhantomData,
        }
    }
}

impl<C, F> FilterFactory for FnFactory<C, F>
where
    C: DeserializeOwned + 'static,
    F: Fn(C, &BuildContext<'_>) -> std::result::Result<Arc<dyn Filter>, String>
        + Send
        + Sync
        + 'static,
{
    fn kind(&self) -> &str {
        &self.kind
    }

    fn default_priority(&self) -> i32 {
        self.priority
    }

    fn build(
        &self,
        config: &serde_json::Value,
        ctx: &BuildContext<'_>,
    ) -> std::result::Result<Arc<dyn Filter>, String> {
        let config = if config.is_null() {
            serde_json::Value::Object(serde_json::Map::new())
        } else {
            config.clone()
        };
        let typed: C = serde_json::from_value(config).map_err(|e| e.to_string())?;
        (self.build)(typed, ctx)
    }

    fn build_model(
        &self,
        spec: &ModelFilter<'_>,
        ctx: &BuildContext<'_>,
    ) -> std::result::Result<Arc<dyn Filter>, String> {
        match self.model.as_ref().and_then(|m| m(spec, ctx)) {
            Some(built) => built,
            None => self.build(&spec.to_json(), ctx),
        }
    }
}

/// The filter kinds a config may use, by name.
#[derive(Clone, Default)]
pub struct FilterRegistry {
    factories: HashMap<String, Arc<dyn FilterFactory>>,
}

impl FilterRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        FilterRegistry::default()
    }

    /// Registers a factory under its kind, replacing any earlier one.
    pub fn register(&mut self, factory: impl FilterFactory) -> &mut Self {
        self.factories
            .insert(factory.kind().to_string(), Arc::new(factory));
        self
    }

    /// Registers a kind built by `build` from a typed config `C` (use
    /// `#[serde(deny_unknown_fields)]` on it so typos are errors).
    pub fn register_fn<C, F>(&mut self, kind: &str, priority: i32, build: F) -> &mut Self
    where
        C: DeserializeOwned + 'static,
        F: Fn(C, &BuildContext<'_>) -> std::result::Result<Arc<dyn Filter>, String>
            + Send
            + Sync
            + 'static,
    {
        self.register(FnFactory::new(kind, priority, build, None))
    }

    /// Like [`register_fn`](Self::register_fn), with `model` building the
    /// [`ModelFilter`] form of the kind directly (no JSON round trip). It
    /// answers `None` for a spec it does not build, which then goes the
    /// JSON way.
    pub fn register_fn_with_model<C, F, M>(
        &mut self,
        kind: &str,
        priority: i32,
        build: F,
        model: M,
    ) -> &mut Self
    where
        C: DeserializeOwned + 'static,
        F: Fn(C, &BuildContext<'_>) -> std::result::Result<Arc<dyn Filter>, String>
            + Send
            + Sync
            + 'static,
        M: Fn(
                &ModelFilter<'_>,
                &BuildContext<'_>,
            ) -> Option<std::result::Result<Arc<dyn Filter>, String>>
            + Send
            + Sync
            + 'static,
    {
        self.register(FnFactory::new(kind, priority, build, Some(Box::new(model))))
    }

    /// The factory for `kind`.
    pub fn get(&self, kind: &str) -> Option<&Arc<dyn FilterFactory>> {
        self.factories.get(kind)
    }

    /// Whether `kind` is registered.
    pub fn contains(&self, kind: &str) -> bool {
        self.factories.contains_key(kind)
    }

    /// The registered kinds, sorted.
    pub fn kinds(&self) -> Vec<&str> {
        let mut k: Vec<&str> = self.factories.keys().map(String::as_str).collect();
        k.sort_unstable();
        k
    }
}

impl fmt::Debug for FilterRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FilterRegistry")
            .field("kinds", &self.kinds())
            .finish()
    }
}

/// A built filter with its effective priority.
#[derive(Clone)]
pub struct FilterEntry {
    /// Higher runs first.
    pub priority: i32,
    /// The filter.
    pub filter: Arc<dyn Filter>,
}

impl fmt::Debug for FilterEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FilterEntry")
            .field("name", &self.filter.name())
            .field("priority", &self.priority)
            .finish()
    }
}

/// Filters split by phase, each list in priority order. Built once per
/// config revision; cloning shares it (one reference count), so hosts and
/// locations without filters of their own share one chain.
#[derive(Clone, Default)]
pub struct FilterChain(Option<Arc<ChainSlots>>);

/// The chain's filters in one allocation: every filter in priority order,
/// then each phase's filters in priority order; `ends[k]` is where segment
/// `k` ends (see the `SEG_*` indices).
struct ChainSlots {
    filters: Box<[Arc<dyn Filter>]>,
    ends: [usize; SEGMENTS],
}

const SEG_ALL: usize = 0;
const SEG_EARLY: usize = 1;
const SEG_REQUEST: usize = 2;
const SEG_UPSTREAM_REQUEST: usize = 3;
const SEG_RESPONSE: usize = 4;
const SEG_ERROR_RESPONSE: usize = 5;
const SEG_LOGGING: usize = 6;
const SEGMENTS: usize = 7;

impl FilterChain {
    /// Sorts `entries` by priority (stable: equal priorities keep their
    /// order) and splits them by phase.
    pub fn new(mut entries: Vec<FilterEntry>) -> Self {
        if entries.is_empty() {
            return FilterChain(None);
        }
        entries.sort_by_key(|e| std::cmp::Reverse(e.priority));
        let segment_phase = [
            Phases::EARLY_REQUEST,
            Phases::REQUEST,
            Phases::UPSTREAM_REQUEST,
            Phases::RESPONSE,
            Phases::ERROR_RESPONSE,
            Phases::LOGGING,
        ];
        let total = entries.len()
            + segment_phase
                .iter()
                .map(|ph| {
                    entries
                        .iter()
                        .filter(|e| e.filter.phases().contains(*ph))
                        .count()
                })
                .sum::<usize>();
        let mut filters: Vec<Arc<dyn Filter>> = Vec::with_capacity(total);
        let mut ends = [0; SEGMENTS];
        filters.extend(entries.iter().map(|e| e.filter.clone()));
        ends[SEG_ALL] = filters.len();
        for (k, ph) in segment_phase.iter().enumerate() {
            for e in &entries {
                if e.filter.phases().contains(*ph) {
                    filters.push(e.filter.clone());
                }
            }
            ends[k + 1] = filters.len();
        }
        FilterChain(Some(Arc::new(ChainSlots {
            filters: filters.into_boxed_slice(),
            ends,
        })))
    }

    /// Segment `k` of the chain: `SEG_ALL` or one phase's filters.
    #[inline]
    fn segment(&self, k: usize) -> &[Arc<dyn Filter>] {
        match &self.0 {
            None => &[],
            Some(s) => {
                let start = if k == 0 { 0 } else { s.ends[k - 1] };
                s.filters.get(start..s.ends[k]).unwrap_or(&[])
            }
        }
    }

    /// Every filter, in priority order.
    pub fn filters(&self) -> &[Arc<dyn Filter>] {
        self.segment(SEG_ALL)
    }

    /// Whether the chain holds no filter.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// Runs the early-request phase; stops at the first `Respond`.
    pub async fn run_early_request(
        &self,
        req: &RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<FilterAction> {
        for f in self.segment(SEG_EARLY) {
            if let FilterAction::Respond(r) = f.early_request_filter(req, ctx).await? {
                ctx.responded_by = Some(f.name().to_string());
                return Ok(FilterAction::Respond(r));
            }
        }
        Ok(FilterAction::Continue)
    }

    /// Runs the request phase; stops at the first `Respond`.
    pub async fn run_request(
        &self,
        req: &RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<FilterAction> {
        for f in self.segment(SEG_REQUEST) {
            if let FilterAction::Respond(r) = f.request_filter(req, ctx).await? {
                ctx.responded_by = Some(f.name().to_string());
                return Ok(FilterAction::Respond(r));
            }
        }
        Ok(FilterAction::Continue)
    }

    /// Runs the upstream-request phase.
    pub async fn run_upstream_request(
        &self,
        req: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        for f in self.segment(SEG_UPSTREAM_REQUEST) {
            f.upstream_request_filter(req, ctx).await?;
        }
        Ok(())
    }

    /// Runs the response phase.
    pub async fn run_response(
        &self,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        for f in self.segment(SEG_RESPONSE) {
            f.response_filter(resp, ctx).await?;
        }
        Ok(())
    }

    /// The first error page offered for `status`.
    pub fn error_response(&self, status: u16, ctx: &RequestCtx) -> Option<FilterResponse> {
        self.segment(SEG_ERROR_RESPONSE)
            .iter()
            .find_map(|f| f.error_response(status, ctx))
    }

    /// Runs the logging phase.
    pub fn run_logging(&self, status: u16, ctx: &mut RequestCtx) {
        for f in self.segment(SEG_LOGGING) {
            f.logging(status, ctx);
        }
    }
}

impl fmt::Debug for FilterChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.filters().iter().map(|f| f.name()))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Named(&'static str, Phases);

    #[async_trait]
    impl Filter for Named {
        fn name(&self) -> &str {
            self.0
        }
        fn phases(&self) -> Phases {
            self.1
        }
        async fn request_filter(
            &self,
            _req: &RequestHeader,
            ctx: &mut RequestCtx,
        ) -> Result<FilterAction> {
            let seen = ctx.extensions.get_mut::<Vec<&'static str>>();
            match seen {
                Some(v) => v.push(self.0),
                None => {
                    ctx.extensions.insert(vec![self.0]);
                }
            }
            if self.0 == "stop" {
                return Ok(FilterAction::Respond(FilterResponse::text(403, "no")));
            }
            Ok(FilterAction::Continue)
        }
    }

    fn entry(name: &'static str, priority: i32, phases: Phases) -> FilterEntry {
        FilterEntry {
            priority,
            filter: Arc::new(Named(name, phases)),
        }
    }

    #[tokio::test]
    async fn chain_runs_by_priority_and_phase() {
        let chain = FilterChain::new(vec![
            entry("low", -5, Phases::REQUEST),
            entry("high", 10, Phases::REQUEST),
            entry("logging_only", 100, Phases::LOGGING),
            entry("mid", 0, Phases::REQUEST),
        ]);
        let req = RequestHeader::build("GET", b"/", None).unwrap();
        let mut ctx = RequestCtx::default();
        assert!(matches!(
            chain.run_request(&req, &mut ctx).await.unwrap(),
            FilterAction::Continue
        ));
        assert_eq!(
            ctx.extensions.get::<Vec<&str>>().unwrap(),
            &vec!["high", "mid", "low"]
        );
    }

    #[tokio::test]
    async fn respond_stops_the_chain() {
        let chain = FilterChain::new(vec![
            entry("stop", 10, Phases::REQUEST),
            entry("after", 0, Phases::REQUEST),
        ]);
        let req = RequestHeader::build("GET", b"/", None).unwrap();
        let mut ctx = RequestCtx::default();
        match chain.run_request(&req, &mut ctx).await.unwrap() {
            FilterAction::Respond(r) => assert_eq!(r.status, 403),
            FilterAction::Continue => panic!("expected a response"),
        }
        assert_eq!(ctx.responded_by.as_deref(), Some("stop"));
        assert_eq!(ctx.extensions.get::<Vec<&str>>().unwrap(), &vec!["stop"]);
    }

    #[test]
    fn registry_builds_typed_configs() {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Cfg {
            name: String,
        }
        let mut reg = FilterRegistry::new();
        reg.register_fn("named", 5, |c: Cfg, _| {
            let name: &'static str = if c.name == "a" { "a" } else { "other" };
            Ok(Arc::new(Named(name, Phases::REQUEST)) as Arc<dyn Filter>)
        });
        let cfg = Config::default();
        let ctx = BuildContext { config: &cfg };
        let f = reg.get("named").unwrap();
        assert_eq!(f.default_priority(), 5);
        assert_eq!(
            f.build(&serde_json::json!({"name": "a"}), &ctx)
                .unwrap()
                .name(),
            "a"
        );
        let err = f
            .build(&serde_json::json!({"nmae": "a"}), &ctx)
            .err()
            .unwrap();
        assert!(err.contains("nmae"), "{err}");
    }
}
