//! The [`ProxyEngine`]: a Pingora [`ProxyHttp`] driven by a hot-swapped
//! [`CompiledConfig`], its reload service and its [`EngineHandle`].
//!
//! ```no_run
//! use std::sync::Arc;
//! use ppm_core::config::{Config, ProxyHost, Upstream};
//! use ppm_core::engine::ProxyEngine;
//! use ppm_core::pingora_core::server::Server;
//! use ppm_core::store::MemoryStore;
//!
//! # async fn build() -> Result<(), Box<dyn std::error::Error>> {
//! let mut config = Config::new();
//! config.proxy_hosts.push(ProxyHost::new(["app.test"], vec![Upstream::new("127.0.0.1", 3000)]));
//! let engine = ProxyEngine::builder()
//!     .store(Arc::new(MemoryStore::new(config)))
//!     .build()
//!     .await?;
//!
//! let mut server = Server::new(None)?;
//! server.bootstrap();
//! let mut proxy = engine.http_service(&server.configuration);
//! proxy.add_tcp("0.0.0.0:8080");
//! server.add_service(proxy);
//! server.add_service(engine.background_service());
//! // server.run_forever();
//! # Ok(()) }
//! ```

use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::Bytes;
use http::header;
use pingora_core::server::configuration::ServerConf;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::{
    background_service, BackgroundService, GenBackgroundService,
};
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, ErrorSource, ErrorType};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::{FailToProxy, HttpProxy, ProxyHttp, Session};

use crate::compile::{
    compile_owned, CompileOptions, CompiledConfig, HostEntry, Rewrite, Upstreaming,
};
use crate::config::{Config, HashKey, Scheme};
use crate::error::{BuildError, ConfigError, ReloadError};
use crate::filter::{
    Filter, FilterAction, FilterChain, FilterEntry, FilterRegistry, FilterResponse, RequestCtx,
    Route, RouteKind,
};
use crate::forwarded::HOP_BY_HOP;
use crate::stats::{AccessLog, AccessRecord, HostKey, HttpCounters, Stats};
use crate::store::{ConfigStore, Snapshot};
use crate::upstream::{MemberHealth, UpstreamGroup};

/// Default interval at which the reload service polls a store that has no
/// change signal (and re-checks one that has).
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How often the background service looks for due health checks.
const HEALTH_TICK: Duration = Duration::from_millis(100);

/// Builds a [`ProxyEngine`].
#[must_use]
pub struct ProxyEngineBuilder {
    store: Option<Arc<dyn ConfigStore>>,
    registry: FilterRegistry,
    global_filters: Vec<FilterEntry>,
    poll_interval: Duration,
    access_log: Option<AccessLog>,
    #[cfg(feature = "streams")]
    stream_options: crate::stream::StreamOptions,
}

impl ProxyEngineBuilder {
    /// The store the engine loads its config from (required).
    pub fn store(mut self, store: Arc<dyn ConfigStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// The filter kinds config may name. Defaults to an empty registry.
    pub fn registry(mut self, registry: FilterRegistry) -> Self {
        self.registry = registry;
        self
    }

    /// Adds a filter instance that runs on every request, with `priority`.
    pub fn global_filter(mut self, priority: i32, filter: Arc<dyn Filter>) -> Self {
        self.global_filters.push(FilterEntry { priority, filter });
        self
    }

    /// How often to poll the store's revision (default 1 s).
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// Sends one [`AccessRecord`] per request to `log` (off the request
    /// path: a full channel drops the record and counts it).
    pub fn access_log(mut self, log: AccessLog) -> Self {
        self.access_log = Some(log);
        self
    }

    /// Tuning of the layer-4 stream runtime (grace period, UDP session
    /// bound, the runtime stream tasks run on).
    #[cfg(feature = "streams")]
    pub fn stream_options(mut self, options: crate::stream::StreamOptions) -> Self {
        self.stream_options = options;
        self
    }

    /// Loads, validates and compiles the first config, and starts its
    /// streams. A stream that cannot bind its port does not fail the build:
    /// it is logged and reported by
    /// [`StreamManager::status`](crate::stream::StreamManager::status).
    pub async fn build(self) -> Result<ProxyEngine, BuildError> {
        let store = self.store.ok_or(BuildError::NoStore)?;
        #[cfg(feature = "streams")]
        let streams =
            crate::stream::StreamManager::new(self.stream_options).map_err(BuildError::Streams)?;
        let snapshot = store.load().await?;
        let inner = Arc::new(Inner {
            current: ArcSwap::from_pointee(CompiledConfig::empty()),
            store,
            registry: self.registry,
            global_filters: self.global_filters,
            reload_lock: tokio::sync::Mutex::new(()),
            last_error: Mutex::new(None),
            poll_interval: self.poll_interval,
            stats: Arc::new(Stats::new(self.access_log)),
            #[cfg(feature = "streams")]
            streams,
        });
        let mut compiled = inner.compile_blocking(snapshot, true).await?;
        compiled.stats = inner.stats.bind(&compiled);
        let compiled = Arc::new(compiled);
        inner.current.store(compiled.clone());
        #[cfg(feature = "streams")]
        inner.streams.apply(&compiled).await;
        Ok(ProxyEngine {
            handle: EngineHandle { inner },
        })
    }
}

struct Inner {
    current: ArcSwap<CompiledConfig>,
    store: Arc<dyn ConfigStore>,
    registry: FilterRegistry,
    global_filters: Vec<FilterEntry>,
    reload_lock: tokio::sync::Mutex<()>,
    last_error: Mutex<Option<(u64, ConfigError)>>,
    poll_interval: Duration,
    stats: Arc<Stats>,
    #[cfg(feature = "streams")]
    streams: crate::stream::StreamManager,
}

impl Inner {
    /// Compiles off the async threads: compiling may resolve host names.
    async fn compile_blocking(
        self: &Arc<Self>,
        snapshot: Snapshot,
        first: bool,
    ) -> Result<CompiledConfig, ConfigError> {
        let inner = self.clone();
        let job = tokio::task::spawn_blocking(move || {
            let previous = if first {
                None
            } else {
                Some(inner.current.load_full())
            };
            compile_owned(
                snapshot,
                CompileOptions {
                    registry: &inner.registry,
                    global_filters: &inner.global_filters,
                    previous: previous.as_deref(),
                },
            )
        });
        match job.await {
            Ok(r) => r,
            Err(_) => Err(ConfigError::single("", "the compiler task failed")),
        }
    }
}

/// The engine: hands out the proxy service, the background service and
/// handles.
pub struct ProxyEngine {
    handle: EngineHandle,
}

impl ProxyEngine {
    /// Starts building an engine.
    pub fn builder() -> ProxyEngineBuilder {
        ProxyEngineBuilder {
            store: None,
            registry: FilterRegistry::new(),
            global_filters: Vec::new(),
            poll_interval: DEFAULT_POLL_INTERVAL,
            access_log: None,
            #[cfg(feature = "streams")]
            stream_options: crate::stream::StreamOptions::default(),
        }
    }

    /// A clonable handle for the control plane.
    pub fn handle(&self) -> EngineHandle {
        self.handle.clone()
    }

    /// The [`ProxyHttp`] implementation, for callers that build their own
    /// Pingora service.
    pub fn proxy(&self) -> EngineProxy {
        EngineProxy {
            handle: self.handle.clone(),
        }
    }

    /// A Pingora HTTP proxy service; add listeners to it, then add it to
    /// your `Server`.
    pub fn http_service(
        &self,
        conf: &Arc<ServerConf>,
    ) -> pingora_core::services::listening::Service<HttpProxy<EngineProxy>> {
        pingora_proxy::http_proxy_service_with_name(conf, self.proxy(), "ppm proxy")
    }

    /// The background service that reloads config when the store changes
    /// and runs health checks. Add it to the same `Server`.
    pub fn background_service(&self) -> GenBackgroundService<EngineBackground> {
        background_service(
            "ppm engine",
            EngineBackground {
                handle: self.handle.clone(),
            },
        )
    }
}

/// A clonable handle on a running engine.
#[derive(Clone)]
pub struct EngineHandle {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for EngineHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineHandle")
            .field("revision", &self.revision())
            .finish()
    }
}

/// The health of one upstream group, for the control plane.
#[derive(Debug, Clone, serde::Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[non_exhaustive]
pub struct GroupHealth {
    /// Ids of the proxy hosts using this group (as host or location group).
    pub host_ids: Vec<crate::config::Id>,
    /// `http` or `https`.
    pub scheme: Scheme,
    /// Whether active health checks run.
    pub active_checks: bool,
    /// Each upstream.
    pub upstreams: Vec<MemberHealth>,
}

impl EngineHandle {
    /// The config serving now (one atomic load).
    pub fn current(&self) -> Arc<CompiledConfig> {
        self.inner.current.load_full()
    }

    /// The revision serving now.
    pub fn revision(&self) -> u64 {
        self.inner.current.load().revision()
    }

    /// Loads the store and applies its config if its revision is newer.
    ///
    /// Reloads are serialised; callers that arrive while one runs wait and
    /// then find their revision applied, so bursts coalesce. On failure the
    /// previous config keeps serving and the error says why, with field
    /// paths. Returns the revision serving afterwards.
    pub async fn reload(&self) -> Result<u64, ReloadError> {
        self.reload_inner(false).await
    }

    /// Like [`reload`](Self::reload), but recompiles even when the revision
    /// is unchanged (to re-resolve upstream host names).
    pub async fn force_reload(&self) -> Result<u64, ReloadError> {
        self.reload_inner(true).await
    }

    async fn reload_inner(&self, force: bool) -> Result<u64, ReloadError> {
        let _guard = self.inner.reload_lock.lock().await;
        let snapshot = self.inner.store.load().await?;
        let current = self.inner.current.load().revision();
        if !force && snapshot.revision == current {
            return Ok(current);
        }
        let revision = snapshot.revision;
        match self.inner.compile_blocking(snapshot, false).await {
            Ok(mut compiled) => {
                compiled.stats = self.inner.stats.bind(&compiled);
                let compiled = Arc::new(compiled);
                let old = self.inner.current.swap(compiled.clone());
                // Streams follow before the reload returns, so a caller
                // that waits on the reload finds the listeners bound.
                #[cfg(feature = "streams")]
                self.inner.streams.apply(&compiled).await;
                drop(compiled);
                // Freeing a large config takes a while: not on this task.
                drop_off_thread(old);
                if let Ok(mut e) = self.inner.last_error.lock() {
                    *e = None;
                }
                tracing::info!(revision, "config applied");
                Ok(revision)
            }
            Err(err) => {
                tracing::warn!(revision, error = %err, "config rejected; the previous one keeps serving");
                if let Ok(mut e) = self.inner.last_error.lock() {
                    *e = Some((revision, err.clone()));
                }
                Err(ReloadError::Config(err))
            }
        }
    }

    /// Compiles `config` without applying it: what a reload would say.
    /// Control planes call this before storing a change, so an invalid
    /// change is refused and never stored.
    pub async fn check(&self, config: Config) -> Result<(), ConfigError> {
        let snapshot = Snapshot {
            revision: self.revision(),
            config,
        };
        let compiled = self.inner.compile_blocking(snapshot, false).await?;
        drop_off_thread(compiled);
        Ok(())
    }

    /// The layer-4 stream manager: status, counters, and
    /// [`reserve`](crate::stream::StreamManager::reserve) for control planes
    /// that bind new listeners before committing a change.
    #[cfg(feature = "streams")]
    pub fn streams(&self) -> crate::stream::StreamManager {
        self.inner.streams.clone()
    }

    /// Counters of every running stream (lock-free); see
    /// [`StreamManager::stats`](crate::stream::StreamManager::stats).
    #[cfg(feature = "streams")]
    pub fn stream_stats(&self) -> Vec<crate::stream::StreamStats> {
        self.inner.streams.stats()
    }

    /// The traffic counters of hosts and upstreams (lock-free on the
    /// request path), and the access log's counters.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.inner.stats
    }

    /// The last rejected revision and why, if the latest reload failed.
    pub fn last_error(&self) -> Option<(u64, ConfigError)> {
        self.inner.last_error.lock().ok().and_then(|e| e.clone())
    }

    /// Health of every upstream group in use.
    pub fn upstream_health(&self) -> Vec<GroupHealth> {
        let cfg = self.current();
        let mut out: Vec<(Arc<UpstreamGroup>, Vec<crate::config::Id>)> = Vec::new();
        let mut note =
            |g: &Arc<UpstreamGroup>, id| match out.iter_mut().find(|(x, _)| Arc::ptr_eq(x, g)) {
                Some((_, ids)) => {
                    if !ids.contains(&id) {
                        ids.push(id)
                    }
                }
                None => out.push((g.clone(), vec![id])),
            };
        for e in &cfg.entries {
            if let Some(p) = &e.proxy {
                note(&p.upstream.group, e.id);
                for l in &p.location_routes {
                    note(&l.upstream.group, e.id);
                }
            }
        }
        out.into_iter()
            .map(|(g, host_ids)| GroupHealth {
                host_ids,
                scheme: g.spec().scheme,
                active_checks: g.has_health_check(),
                upstreams: g.health(),
            })
            .collect()
    }

    /// Runs the reload and health-check loop until `shutdown` completes.
    /// [`ProxyEngine::background_service`] runs this inside Pingora; call it
    /// yourself when you drive the engine another way.
    pub async fn run_background(&self, shutdown: impl Future<Output = ()>) {
        let mut signal = self.inner.store.watch();
        let mut poll = tokio::time::interval(self.inner.poll_interval);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut health = tokio::time::interval(HEALTH_TICK);
        health.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failed_revision: Option<u64> = None;
        tokio::pin!(shutdown);
        loop {
            let changed = async {
                match signal.as_mut() {
                    Some(s) => s.changed().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = &mut shutdown => break,
                rev = changed => {
                    if rev.is_none() {
                        // The store dropped its notifier: fall back to polling.
                        signal = None;
                        continue;
                    }
                    self.background_reload(&mut failed_revision).await;
                }
                _ = poll.tick() => {
                    match self.inner.store.revision().await {
                        Ok(rev) if rev != self.revision() && Some(rev) != failed_revision => {
                            self.background_reload(&mut failed_revision).await;
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "polling the config store failed"),
                    }
                }
                _ = health.tick() => {
                    let cfg = self.current();
                    for g in cfg.groups() {
                        if g.has_health_check() {
                            let g = g.clone();
                            tokio::spawn(async move { g.run_health_check_if_due().await });
                        }
                    }
                }
            }
        }
    }

    async fn background_reload(&self, failed: &mut Option<u64>) {
        match self.reload().await {
            Ok(_) => *failed = None,
            Err(ReloadError::Config(_)) => *failed = self.last_error().map(|(r, _)| r),
            Err(e) => tracing::warn!(error = %e, "config reload failed"),
        }
    }
}

/// Drops `value` on the blocking pool (or here, outside a runtime).
fn drop_off_thread<T: Send + 'static>(value: T) {
    match tokio::runtime::Handle::try_current() {
        Ok(h) => {
            h.spawn_blocking(move || drop(value));
        }
        Err(_) => drop(value),
    }
}

/// The engine's Pingora background service (reloads and health checks).
pub struct EngineBackground {
    handle: EngineHandle,
}

#[async_trait]
impl BackgroundService for EngineBackground {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        self.handle
            .run_background(async move {
                let _ = shutdown.changed().await;
            })
            .await;
    }
}

/// The engine's [`ProxyHttp`] implementation.
pub struct EngineProxy {
    handle: EngineHandle,
}

impl EngineProxy {
    /// Counts a finished request and hands it to the access log.
    fn count(&self, session: &Session, e: Option<&Error>, ctx: &mut EngineCtx, status: u16) {
        let stats = &self.handle.inner.stats;
        let bytes_in = session.body_bytes_read() as u64;
        let bytes_out = session.body_bytes_sent() as u64;
        let elapsed = ctx.req.started.elapsed();
        // The record and the upstream's counters come first and the host's
        // `finish` last: whoever sees the request no longer active sees all
        // of its accounting.
        if let Some(log) = stats.access_log().filter(|l| l.logs(&ctx.req.host)) {
            let req = session.req_header();
            log.send(AccessRecord {
                time: SystemTime::now(),
                client_ip: ctx.req.client_ip,
                host: ctx.req.host.clone(),
                route: ctx.req.route.map(|r| HostKey::of(r.kind, r.host_id)),
                method: req.method.as_str().to_string(),
                path: req
                    .uri
                    .path_and_query()
                    .map_or_else(|| req.uri.path().to_string(), |p| p.as_str().to_string()),
                status,
                bytes_in,
                bytes_out,
                duration: elapsed,
                upstream_time: ctx.upstream_time,
                upstream: ctx.req.upstream,
                filter: ctx.req.responded_by.clone(),
                error: e.map(|e| e.to_string()),
            });
        }
        let upstream_failed = e.is_some_and(|e| *e.esource() == ErrorSource::Upstream);
        if let Some(u) = ctx.upstream_counters.take() {
            if upstream_failed && !ctx.connect_failed {
                u.upstream_error();
            }
            if ctx.upstream_time.is_some() {
                u.response(status, bytes_in, bytes_out, elapsed);
            }
        }
        match ctx.host_counters() {
            Some(h) => {
                if upstream_failed && !ctx.connect_failed {
                    h.upstream_error();
                }
                h.finish(status, bytes_in, bytes_out, elapsed);
            }
            None => {
                stats.unrouted().begin();
                stats
                    .unrouted()
                    .finish(status, bytes_in, bytes_out, elapsed);
            }
        }
    }
}

/// Pingora's per-request context for [`EngineProxy`].
pub struct EngineCtx {
    /// The filters' view of the request.
    pub req: RequestCtx,
    config: Option<Arc<CompiledConfig>>,
    /// Index of the routed host entry; `NOT_ROUTED` before routing, so
    /// early responses run only the global chain.
    entry: usize,
    location: Option<usize>,
    prefix_len: usize,
    member: Option<(Arc<UpstreamGroup>, usize)>,
    tried: u64,
    attempts: u32,
    body_bytes: u64,
    upgrade: bool,
    /// Whether the routed host's counters counted this request.
    host_counted: bool,
    /// Counters of the upstream of the latest attempt.
    upstream_counters: Option<Arc<HttpCounters>>,
    upstream_started: Option<Instant>,
    upstream_time: Option<Duration>,
    /// The latest attempt failed to connect (and was counted as such).
    connect_failed: bool,
}

impl EngineCtx {
    fn entry(&self) -> Option<&HostEntry> {
        self.config.as_ref()?.entries.get(self.entry)
    }

    fn chain(&self) -> Option<&FilterChain> {
        chain_in(self.config.as_deref()?, self.entry, self.location)
    }

    fn upstreaming(&self) -> Option<&Upstreaming> {
        let p = self.entry()?.proxy.as_ref()?;
        match self.location.and_then(|l| p.location_routes.get(l)) {
            Some(lr) => Some(&lr.upstream),
            None => Some(&p.upstream),
        }
    }

    fn host_counters(&self) -> Option<&HttpCounters> {
        if !self.host_counted {
            return None;
        }
        self.config
            .as_ref()?
            .stats
            .hosts
            .get(self.entry)
            .map(|c| &**c)
    }

    fn release_member(&mut self) {
        if let Some((g, i)) = self.member.take() {
            g.end(i);
        }
    }
}

fn chain_in(cfg: &CompiledConfig, entry: usize, location: Option<usize>) -> Option<&FilterChain> {
    let e = cfg.entries.get(entry)?;
    if let (Some(l), Some(p)) = (location, e.proxy.as_ref()) {
        if let Some(lr) = p.location_routes.get(l) {
            return Some(&lr.chain);
        }
    }
    Some(&e.chain)
}

/// `EngineCtx::entry` before routing.
const NOT_ROUTED: usize = usize::MAX;

/// Sends a complete response, running the response-phase filters on it.
async fn send(
    session: &mut Session,
    ctx: &mut EngineCtx,
    resp: FilterResponse,
) -> pingora_error::Result<()> {
    let mut header = resp.to_response_header()?;
    let config = ctx.config.clone();
    if let Some(cfg) = &config {
        let chain = chain_in(cfg, ctx.entry, ctx.location).unwrap_or(&cfg.global);
        chain.run_response(&mut header, &mut ctx.req).await?;
    }
    let head = session.req_header().method == http::Method::HEAD;
    let empty = resp.body.is_empty() || head;
    session
        .write_response_header(Box::new(header), empty)
        .await?;
    if !empty {
        session.write_response_body(Some(resp.body), true).await?;
    }
    Ok(())
}

/// The engine's own error response, or a filter's error page for it.
fn error_page(ctx: &EngineCtx, status: u16) -> FilterResponse {
    if let Some(r) = ctx.chain().and_then(|c| c.error_response(status, &ctx.req)) {
        return r;
    }
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    FilterResponse::html(
        status,
        format!(
            "<!DOCTYPE html>\n<html><head><title>{status} {reason}</title></head>\
             <body><h1>{status} {reason}</h1></body></html>\n"
        ),
    )
}

fn header_str<'a>(req: &'a RequestHeader, name: &str) -> Option<&'a str> {
    req.headers.get(name).and_then(|v| v.to_str().ok())
}

fn cookie<'a>(req: &'a RequestHeader, name: &str) -> Option<&'a str> {
    for v in req.headers.get_all(header::COOKIE) {
        let Ok(v) = v.to_str() else { continue };
        for pair in v.split(';') {
            if let Some((k, val)) = pair.trim().split_once('=') {
                if k == name {
                    return Some(val);
                }
            }
        }
    }
    None
}

fn ip_key(ip: Option<IpAddr>) -> [u8; 16] {
    match ip {
        Some(IpAddr::V4(v4)) => v4.to_ipv6_mapped().octets(),
        Some(IpAddr::V6(v6)) => v6.octets(),
        None => [0; 16],
    }
}

fn request_host(req: &RequestHeader) -> &str {
    if let Some(h) = header_str(req, "host") {
        return h;
    }
    req.uri.authority().map(|a| a.as_str()).unwrap_or("")
}

#[async_trait]
impl ProxyHttp for EngineProxy {
    type CTX = EngineCtx;

    fn new_ctx(&self) -> EngineCtx {
        EngineCtx {
            req: RequestCtx::default(),
            config: None,
            entry: NOT_ROUTED,
            location: None,
            prefix_len: 0,
            member: None,
            tried: 0,
            attempts: 0,
            body_bytes: 0,
            upgrade: false,
            host_counted: false,
            upstream_counters: None,
            upstream_started: None,
            upstream_time: None,
            connect_failed: false,
        }
    }

    async fn request_filter(
        &self,
        session: &mut Session,
        ctx: &mut EngineCtx,
    ) -> pingora_error::Result<bool> {
        let cfg = self.handle.current();
        ctx.config = Some(cfg.clone());

        // Who is asking.
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| (a.ip(), a.port()));
        ctx.req.tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
        if let Some((ip, port)) = peer {
            let ip = crate::validate::canonical_ip(ip);
            ctx.req.peer_ip = Some(ip);
            ctx.req.peer_port = port;
            let xff = session
                .req_header()
                .headers
                .get_all("x-forwarded-for")
                .iter()
                .map(|v| v.as_bytes());
            ctx.req.client_ip = Some(cfg.trusted.client_ip(ip, xff));
        }
        let raw_host = request_host(session.req_header());
        ctx.req.port =
            crate::router::host_port(raw_host).unwrap_or(if ctx.req.tls { 443 } else { 80 });
        let host = crate::router::strip_port(raw_host);
        let host = host.strip_suffix('.').unwrap_or(host);
        ctx.req.host.clear();
        ctx.req.host.push_str(host);
        ctx.req.host.make_ascii_lowercase();
        // An HTTP/1.1 request must name its host (RFC 9112 §3.2); HTTP/1.0
        // ones may not and get the default site.
        if ctx.req.host.is_empty() {
            let req = session.req_header();
            if req.version == http::Version::HTTP_11
                && !req.headers.contains_key(header::HOST)
                && req.uri.authority().is_none()
            {
                send(session, ctx, error_page(ctx, 400)).await?;
                return Ok(true);
            }
        }

        // Global filters before routing (ACME challenges).
        if let FilterAction::Respond(r) = cfg
            .global
            .run_early_request(session.req_header(), &mut ctx.req)
            .await?
        {
            send(session, ctx, r).await?;
            return Ok(true);
        }

        // Route.
        let matched = cfg.hosts.lookup(&ctx.req.host);
        let entry_idx = match matched {
            Some(i) => i as usize,
            None => cfg.default_entry,
        };
        ctx.entry = entry_idx;
        if let Some(c) = cfg.stats.hosts.get(entry_idx) {
            c.begin();
            ctx.host_counted = true;
        }
        let Some(entry) = cfg.entries.get(entry_idx) else {
            send(session, ctx, error_page(ctx, 404)).await?;
            return Ok(true);
        };
        let kind = if matched.is_none() {
            RouteKind::Default
        } else {
            entry.kind
        };
        if let Some(p) = &entry.proxy {
            if !p.locations.is_empty() {
                if let Some(m) = p.locations.find(session.req_header().uri.path()) {
                    ctx.location = Some(m.index);
                    ctx.prefix_len = m.prefix_len;
                }
            }
        }
        ctx.req.route = Some(Route {
            kind,
            host_id: entry.id,
            location: ctx.location,
        });

        // Host and location filters.
        let chain = chain_in(&cfg, ctx.entry, ctx.location).unwrap_or(&cfg.global);
        if let FilterAction::Respond(r) = chain
            .run_request(session.req_header(), &mut ctx.req)
            .await?
        {
            send(session, ctx, r).await?;
            return Ok(true);
        }

        let Some(proxy) = &entry.proxy else {
            // Redirection hosts answer through their filter; dead hosts and
            // the default site answer here.
            let resp = match &entry.fallback {
                Some(r) => r.clone(),
                None => error_page(ctx, 404),
            };
            send(session, ctx, resp).await?;
            return Ok(true);
        };

        if let Some(max) = proxy.max_body_size {
            let len = header_str(session.req_header(), "content-length")
                .and_then(|v| v.trim().parse::<u64>().ok());
            if len.is_some_and(|l| l > max) {
                send(session, ctx, error_page(ctx, 413)).await?;
                return Ok(true);
            }
        }
        ctx.upgrade = proxy.websocket && session.is_upgrade_req();
        Ok(false)
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut EngineCtx,
    ) -> pingora_error::Result<()> {
        if let Some(b) = body {
            ctx.body_bytes += b.len() as u64;
            let max = ctx
                .entry()
                .and_then(|e| e.proxy.as_ref())
                .and_then(|p| p.max_body_size);
            if max.is_some_and(|m| ctx.body_bytes > m) {
                return Err(Error::explain(
                    ErrorType::HTTPStatus(413),
                    "request body larger than max_body_size",
                ));
            }
        }
        Ok(())
    }

    async fn upstream_peer(
        &self,
        session: &mut Session,
        ctx: &mut EngineCtx,
    ) -> pingora_error::Result<Box<HttpPeer>> {
        ctx.release_member();
        if ctx.upstream_counters.is_some() {
            if let Some(h) = ctx.host_counters() {
                h.retry();
            }
        }
        ctx.connect_failed = false;
        ctx.upstream_time = None;
        let Some(up) = ctx.upstreaming() else {
            return Err(Error::explain(
                ErrorType::HTTPStatus(502),
                "no upstream for route",
            ));
        };
        let group = up.group.clone();
        let timeouts = up.timeouts;
        let ipk;
        let key: &[u8] = match &up.hash_key {
            HashKey::Header(name) => match header_str(session.req_header(), name) {
                Some(v) => v.as_bytes(),
                None => {
                    ipk = ip_key(ctx.req.client_ip);
                    &ipk
                }
            },
            HashKey::Cookie(name) => match cookie(session.req_header(), name) {
                Some(v) => v.as_bytes(),
                None => {
                    ipk = ip_key(ctx.req.client_ip);
                    &ipk
                }
            },
            _ => {
                ipk = ip_key(ctx.req.client_ip);
                &ipk
            }
        };
        let Some(i) = group.select(key, ctx.tried) else {
            return Err(Error::explain(
                ErrorType::ConnectNoRoute,
                "every upstream of the group was tried",
            )
            .into_up());
        };
        ctx.tried |= 1u64 << i;
        group.begin(i);
        let member = &group.members()[i];
        let spec = group.spec();
        let tls = spec.scheme == Scheme::Https;
        let sni = if !tls {
            String::new()
        } else if spec.sni.is_empty() {
            member.host.clone()
        } else {
            spec.sni.clone()
        };
        let mut peer = HttpPeer::new(member.addr, tls, sni);
        peer.options.connection_timeout = Some(timeouts.connect);
        peer.options.total_connection_timeout = Some(timeouts.connect);
        peer.options.read_timeout = Some(timeouts.read);
        peer.options.write_timeout = Some(timeouts.write);
        peer.options.verify_cert = spec.verify_tls;
        peer.options.verify_hostname = spec.verify_tls;
        ctx.req.upstream = Some(member.addr);
        let counters = ctx
            .config
            .as_ref()
            .and_then(|c| c.stats.upstream(&group, i))
            .cloned();
        if let Some(c) = &counters {
            c.attempt();
        }
        ctx.upstream_counters = counters;
        ctx.upstream_started = Some(Instant::now());
        ctx.member = Some((group, i));
        Ok(Box::new(peer))
    }

    fn fail_to_connect(
        &self,
        session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut EngineCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        if let Some((g, i)) = &ctx.member {
            g.report_failure(*i);
        }
        if let Some(c) = &ctx.upstream_counters {
            c.upstream_error();
        }
        if let Some(h) = ctx.host_counters() {
            h.upstream_error();
        }
        ctx.connect_failed = true;
        ctx.attempts += 1;
        let retries = ctx
            .entry()
            .and_then(|e| e.proxy.as_ref())
            .map_or(0, |p| p.retries);
        let idempotent = session.req_header().method.is_idempotent();
        e.set_retry(idempotent && ctx.attempts <= retries);
        e
    }

    async fn connected_to_upstream(
        &self,
        _session: &mut Session,
        _reused: bool,
        _peer: &HttpPeer,
        #[cfg(unix)] _fd: std::os::unix::io::RawFd,
        #[cfg(windows)] _sock: std::os::windows::io::RawSocket,
        _digest: Option<&pingora_core::protocols::Digest>,
        ctx: &mut EngineCtx,
    ) -> pingora_error::Result<()> {
        if let Some((g, i)) = &ctx.member {
            g.report_success(*i);
        }
        Ok(())
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut EngineCtx,
    ) -> pingora_error::Result<()> {
        // Hop-by-hop headers, including any the client listed in Connection.
        let listed: Vec<String> = upstream
            .headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|t| t.trim().to_ascii_lowercase())
            .filter(|t| !t.is_empty() && t != "upgrade" && t != "keep-alive" && t != "close")
            .collect();
        for name in listed {
            upstream.remove_header(name.as_str());
        }
        for name in HOP_BY_HOP {
            upstream.remove_header(*name);
        }
        if !ctx.upgrade {
            upstream.remove_header(&header::UPGRADE);
            upstream.remove_header(&header::CONNECTION);
        }

        // Forwarding headers.
        let cfg = ctx.config.clone();
        let peer_trusted = match (&cfg, ctx.req.peer_ip) {
            (Some(c), Some(ip)) => c.trusted.contains(ip),
            _ => false,
        };
        if let Some(peer) = ctx.req.peer_ip {
            let prior = if peer_trusted {
                let parts: Vec<&str> = upstream
                    .headers
                    .get_all("x-forwarded-for")
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .collect();
                parts.join(", ")
            } else {
                String::new()
            };
            let xff = if prior.is_empty() {
                peer.to_string()
            } else {
                format!("{prior}, {peer}")
            };
            upstream.insert_header("x-forwarded-for", xff)?;
        }
        if let Some(ip) = ctx.req.client_ip {
            upstream.insert_header("x-real-ip", ip.to_string())?;
        }
        if !(peer_trusted && upstream.headers.contains_key("x-forwarded-proto")) {
            upstream.insert_header("x-forwarded-proto", ctx.req.scheme())?;
        }
        if !(peer_trusted && upstream.headers.contains_key("x-forwarded-host")) {
            // A header value clone shares the bytes; no copy of the host.
            let host = match session.req_header().headers.get(header::HOST) {
                Some(v) => v.clone(),
                None => http::HeaderValue::from_str(request_host(session.req_header()))
                    .unwrap_or_else(|_| http::HeaderValue::from_static("")),
            };
            upstream.insert_header("x-forwarded-host", host)?;
        }
        if !(peer_trusted && upstream.headers.contains_key("x-forwarded-port")) {
            upstream.insert_header("x-forwarded-port", ctx.req.port.to_string())?;
        }

        // Location rewrite.
        if let Some(rewrite) = ctx.entry().and_then(|e| e.proxy.as_ref()).and_then(|p| {
            ctx.location
                .and_then(|l| p.location_routes.get(l))
                .and_then(|lr| lr.rewrite.clone())
        }) {
            let path = upstream.uri.path().to_string();
            let query = upstream.uri.query().map(|q| q.to_string());
            let new_path = match rewrite {
                Rewrite::Prefix(to) => {
                    let rest = path.get(ctx.prefix_len..).unwrap_or("");
                    let mut p = String::with_capacity(to.len() + rest.len() + 1);
                    p.push_str(&to);
                    if !rest.is_empty() && !rest.starts_with('/') && !to.ends_with('/') {
                        p.push('/');
                    }
                    if to.ends_with('/') && rest.starts_with('/') {
                        p.push_str(&rest[1..]);
                    } else {
                        p.push_str(rest);
                    }
                    if !p.starts_with('/') {
                        p.insert(0, '/');
                    }
                    p
                }
                Rewrite::Regex(re, to) => {
                    let p = re.replace(&path, to.as_str()).into_owned();
                    if p.starts_with('/') {
                        p
                    } else {
                        format!("/{p}")
                    }
                }
            };
            let pq = match query {
                Some(q) => format!("{new_path}?{q}"),
                None => new_path,
            };
            match pq.parse::<http::Uri>() {
                Ok(uri) => upstream.set_uri(uri),
                Err(_) => {
                    return Err(Error::explain(
                        ErrorType::HTTPStatus(400),
                        "rewritten path is not a valid URI",
                    ))
                }
            }
        }

        if let Some(cfg) = ctx.config.clone() {
            {
                let chain = chain_in(&cfg, ctx.entry, ctx.location).unwrap_or(&cfg.global);
                chain.run_upstream_request(upstream, &mut ctx.req).await?;
            }
        }
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        _upstream_response: &mut ResponseHeader,
        ctx: &mut EngineCtx,
    ) -> pingora_error::Result<()> {
        if let Some(t) = ctx.upstream_started {
            let d = t.elapsed();
            ctx.upstream_time = Some(d);
            if let Some(c) = &ctx.upstream_counters {
                c.upstream_time(d);
            }
            if let Some(h) = ctx.host_counters() {
                h.upstream_time(d);
            }
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut EngineCtx,
    ) -> pingora_error::Result<()> {
        let switching = resp.status == http::StatusCode::SWITCHING_PROTOCOLS;
        for name in HOP_BY_HOP {
            resp.remove_header(*name);
        }
        if !switching {
            resp.remove_header(&header::UPGRADE);
        }
        if let Some(cfg) = ctx.config.clone() {
            {
                let chain = chain_in(&cfg, ctx.entry, ctx.location).unwrap_or(&cfg.global);
                chain.run_response(resp, &mut ctx.req).await?;
            }
        }
        Ok(())
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut EngineCtx,
    ) -> FailToProxy {
        let code = match e.etype() {
            ErrorType::HTTPStatus(code) => *code,
            ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout
                if *e.esource() == ErrorSource::Upstream =>
            {
                504
            }
            _ => match e.esource() {
                ErrorSource::Upstream => 502,
                ErrorSource::Downstream => match e.etype() {
                    ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => 0,
                    _ => 400,
                },
                ErrorSource::Internal | ErrorSource::Unset => 500,
            },
        };
        if code > 0 && session.response_written().is_none() {
            let page = error_page(ctx, code);
            if let Err(err) = send(session, ctx, page).await {
                tracing::debug!(error = %err, "could not send the error response");
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut EngineCtx) {
        ctx.release_member();
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        self.count(session, e, ctx, status);
        if let Some(cfg) = ctx.config.clone() {
            {
                let chain = chain_in(&cfg, ctx.entry, ctx.location).unwrap_or(&cfg.global);
                chain.run_logging(status, &mut ctx.req);
            }
        }
    }
}
