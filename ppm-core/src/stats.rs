//! Traffic counters: relaxed atomics bumped on the request path, read as
//! snapshots by the control plane (API, time-series rollups, `/metrics`).
//!
//! The engine keeps one [`HttpCounters`] per routed host (any kind, plus the
//! default site and the requests answered before routing) and one per
//! upstream (`host:port` as configured). Each compiled config carries a
//! binding from its host entries and upstream groups to those counters, made
//! when the config is applied, so a request finds its counters by index: no
//! lock, no hash of a string, no allocation. Counters survive reloads (same
//! host kind and id, same upstream) and leave with their host or upstream.
//!
//! Per-stream counters live with the streams
//! ([`StreamStats`](crate::stream::StreamStats)).
//!
//! The optional [`AccessLog`] carries one [`AccessRecord`] per request to a
//! writer task through a bounded channel; when the channel is full the
//! record is dropped and counted, and the request never waits.
//!
//! ```
//! use std::time::Duration;
//! use ppm_core::stats::HttpCounters;
//!
//! let c = HttpCounters::default();
//! c.begin();
//! c.finish(200, 10, 512, Duration::from_millis(3));
//! let s = c.snapshot();
//! assert_eq!((s.counts.requests, s.counts.status_2xx, s.counts.bytes_out), (1, 1, 512));
//! assert_eq!(s.active, 0);
//! ```

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::compile::CompiledConfig;
use crate::config::Id;
use crate::filter::RouteKind;

/// Upper bounds of the latency histogram buckets, in milliseconds. A last,
/// unbounded bucket (`+Inf`) follows.
pub const LATENCY_BUCKETS_MS: [u64; 12] =
    [1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000];
/// Number of histogram buckets, including `+Inf`.
pub const BUCKETS: usize = LATENCY_BUCKETS_MS.len() + 1;
/// Status codes counted one by one (every status is also counted by class).
pub const COMMON_CODES: [u16; 15] = [
    200, 201, 204, 301, 302, 304, 400, 401, 403, 404, 429, 500, 502, 503, 504,
];

#[inline]
fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

#[inline]
fn add(c: &AtomicU64, n: u64) {
    if n > 0 {
        c.fetch_add(n, Ordering::Relaxed);
    }
}

#[inline]
fn read(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// A latency histogram with the fixed buckets of [`LATENCY_BUCKETS_MS`].
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS],
    sum_us: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    #[inline]
    pub fn observe(&self, d: Duration) {
        let us = d.as_micros();
        let i = LATENCY_BUCKETS_MS
            .iter()
            .position(|&b| us <= u128::from(b) * 1000)
            .unwrap_or(LATENCY_BUCKETS_MS.len());
        if let Some(b) = self.buckets.get(i) {
            bump(b);
        }
        add(
            &self.sum_us,
            u64::try_from(d.as_micros()).unwrap_or(u64::MAX),
        );
    }

    /// The counts so far.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut buckets = [0u64; BUCKETS];
        for (o, b) in buckets.iter_mut().zip(&self.buckets) {
            *o = read(b);
        }
        HistogramSnapshot {
            buckets,
            sum_us: read(&self.sum_us),
        }
    }
}

/// A histogram's counts at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// Observations per bucket (not cumulative), the last one `+Inf`.
    pub buckets: [u64; BUCKETS],
    /// Sum of all observations, in microseconds.
    pub sum_us: u64,
}

impl HistogramSnapshot {
    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }
}

/// The counters of one host or upstream.
#[derive(Debug, Default)]
pub struct HttpCounters {
    requests: AtomicU64,
    active: AtomicU64,
    /// Index 0: no response (the client went away, or the proxy failed
    /// before answering); 1..=5: the status classes.
    classes: [AtomicU64; 6],
    codes: [AtomicU64; COMMON_CODES.len()],
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    upstream_errors: AtomicU64,
    retries: AtomicU64,
    latency: Histogram,
    upstream_latency: Histogram,
}

impl HttpCounters {
    /// A request starts: counts it and makes it active.
    #[inline]
    pub fn begin(&self) {
        bump(&self.requests);
        bump(&self.active);
    }

    /// A request that [`begin`](Self::begin) counted ends with `status` (0
    /// when no response was sent), having read `bytes_in` request-body bytes
    /// and sent `bytes_out` response-body bytes, `elapsed` after it began.
    #[inline]
    pub fn finish(&self, status: u16, bytes_in: u64, bytes_out: u64, elapsed: Duration) {
        self.response(status, bytes_in, bytes_out, elapsed);
        // Last, and released: a snapshot that no longer sees the request
        // active sees its response counted.
        let _ = self
            .active
            .fetch_update(Ordering::Release, Ordering::Relaxed, |v| v.checked_sub(1));
    }

    /// Counts a response (or none, with `status` 0) without the request
    /// bookkeeping of [`begin`](Self::begin)/[`finish`](Self::finish): for
    /// upstreams, whose requests are counted per attempt.
    #[inline]
    pub fn response(&self, status: u16, bytes_in: u64, bytes_out: u64, elapsed: Duration) {
        let class = usize::from(status / 100);
        let class = if (1..=5).contains(&class) { class } else { 0 };
        if let Some(c) = self.classes.get(class) {
            bump(c);
        }
        if let Some(i) = COMMON_CODES.iter().position(|&c| c == status) {
            if let Some(c) = self.codes.get(i) {
                bump(c);
            }
        }
        add(&self.bytes_in, bytes_in);
        add(&self.bytes_out, bytes_out);
        self.latency.observe(elapsed);
    }

    /// Counts one request sent to an upstream (each attempt counts).
    #[inline]
    pub fn attempt(&self) {
        bump(&self.requests);
    }

    /// Time from choosing the upstream to its response header.
    #[inline]
    pub fn upstream_time(&self, d: Duration) {
        self.upstream_latency.observe(d);
    }

    /// An upstream failed (connect, TLS, read, write, timeout).
    #[inline]
    pub fn upstream_error(&self) {
        bump(&self.upstream_errors);
    }

    /// A request was retried on another upstream.
    #[inline]
    pub fn retry(&self) {
        bump(&self.retries);
    }

    /// Every counter now. Each is read atomically; the set is not one
    /// instant.
    pub fn snapshot(&self) -> HttpSnapshot {
        // Read first (see `finish`).
        let active = self.active.load(Ordering::Acquire);
        let mut codes = [0u64; COMMON_CODES.len()];
        for (o, c) in codes.iter_mut().zip(&self.codes) {
            *o = read(c);
        }
        let latency = self.latency.snapshot();
        let upstream_latency = self.upstream_latency.snapshot();
        let class = |i: usize| self.classes.get(i).map_or(0, read);
        HttpSnapshot {
            counts: Counts {
                requests: read(&self.requests),
                no_response: class(0),
                status_1xx: class(1),
                status_2xx: class(2),
                status_3xx: class(3),
                status_4xx: class(4),
                status_5xx: class(5),
                bytes_in: read(&self.bytes_in),
                bytes_out: read(&self.bytes_out),
                upstream_errors: read(&self.upstream_errors),
                retries: read(&self.retries),
                duration_us_sum: latency.sum_us,
                duration_count: latency.count(),
                upstream_us_sum: upstream_latency.sum_us,
                upstream_count: upstream_latency.count(),
            },
            active,
            codes,
            latency,
            upstream_latency,
        }
    }
}

/// The additive counters of a host, upstream or stream: what the time
/// series store and what the API sums.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[non_exhaustive]
pub struct Counts {
    /// Requests (for streams: connections and UDP sessions).
    pub requests: u64,
    /// Requests that got no response (client gone, proxy failure).
    pub no_response: u64,
    /// Informational responses.
    pub status_1xx: u64,
    /// Successful responses.
    pub status_2xx: u64,
    /// Redirects and 304s.
    pub status_3xx: u64,
    /// Client errors.
    pub status_4xx: u64,
    /// Server errors (including the proxy's own 502/504).
    pub status_5xx: u64,
    /// Request body bytes read from clients (streams: client to upstream).
    pub bytes_in: u64,
    /// Response body bytes sent to clients (streams: upstream to client).
    pub bytes_out: u64,
    /// Upstream failures: connect, TLS, read, write, timeouts (streams:
    /// failed connects and connection errors).
    pub upstream_errors: u64,
    /// Retries on another upstream.
    pub retries: u64,
    /// Sum of request durations, in microseconds.
    pub duration_us_sum: u64,
    /// Requests whose duration is in `duration_us_sum`.
    pub duration_count: u64,
    /// Sum of upstream times (choosing the upstream to its response
    /// header), in microseconds.
    pub upstream_us_sum: u64,
    /// Responses whose upstream time is in `upstream_us_sum`.
    pub upstream_count: u64,
}

impl Counts {
    /// `self + other`, field by field (saturating).
    pub fn plus(&self, o: &Counts) -> Counts {
        self.zip(o, u64::saturating_add)
    }

    /// `self - earlier`, field by field; a counter that went down (a host
    /// removed and added again) counts from zero.
    pub fn since(&self, earlier: &Counts) -> Counts {
        self.zip(earlier, |a, b| if a >= b { a - b } else { a })
    }

    /// Whether every counter is zero.
    pub fn is_zero(&self) -> bool {
        *self == Counts::default()
    }

    /// Failed requests: no response or a 5xx.
    pub fn errors(&self) -> u64 {
        self.no_response.saturating_add(self.status_5xx)
    }

    fn zip(&self, o: &Counts, f: impl Fn(u64, u64) -> u64) -> Counts {
        Counts {
            requests: f(self.requests, o.requests),
            no_response: f(self.no_response, o.no_response),
            status_1xx: f(self.status_1xx, o.status_1xx),
            status_2xx: f(self.status_2xx, o.status_2xx),
            status_3xx: f(self.status_3xx, o.status_3xx),
            status_4xx: f(self.status_4xx, o.status_4xx),
            status_5xx: f(self.status_5xx, o.status_5xx),
            bytes_in: f(self.bytes_in, o.bytes_in),
            bytes_out: f(self.bytes_out, o.bytes_out),
            upstream_errors: f(self.upstream_errors, o.upstream_errors),
            retries: f(self.retries, o.retries),
            duration_us_sum: f(self.duration_us_sum, o.duration_us_sum),
            duration_count: f(self.duration_count, o.duration_count),
            upstream_us_sum: f(self.upstream_us_sum, o.upstream_us_sum),
            upstream_count: f(self.upstream_count, o.upstream_count),
        }
    }
}

#[cfg(feature = "streams")]
impl From<&crate::stream::StreamStats> for Counts {
    fn from(s: &crate::stream::StreamStats) -> Self {
        Counts {
            requests: s.connections,
            bytes_in: s.bytes_in,
            bytes_out: s.bytes_out,
            upstream_errors: s.errors.saturating_add(s.upstream_connect_failures),
            ..Counts::default()
        }
    }
}

/// Every counter of a host or upstream at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpSnapshot {
    /// The additive counters.
    pub counts: Counts,
    /// Requests in flight.
    pub active: u64,
    /// Responses per code of [`COMMON_CODES`], in that order.
    pub codes: [u64; COMMON_CODES.len()],
    /// Total request time.
    pub latency: HistogramSnapshot,
    /// Upstream time (choosing the upstream to its response header).
    pub upstream_latency: HistogramSnapshot,
}

/// Which host a counter belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostKey {
    /// `proxy`, `redirection`, `dead`, `default` (the default site) or
    /// `unrouted` (answered before routing, such as ACME challenges).
    pub kind: &'static str,
    /// Store id (0 for `default` and `unrouted`).
    pub id: Id,
}

impl HostKey {
    /// The key of requests answered before routing.
    pub const UNROUTED: HostKey = HostKey {
        kind: "unrouted",
        id: 0,
    };

    /// The key of a routed host.
    pub fn of(kind: RouteKind, id: Id) -> HostKey {
        let kind = match kind {
            RouteKind::Proxy => "proxy",
            RouteKind::Redirection => "redirection",
            RouteKind::Dead => "dead",
            _ => "default",
        };
        HostKey { kind, id }
    }
}

/// Counters of one host, with its name for people.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HostStats {
    /// Which host.
    pub key: HostKey,
    /// Its first domain name (empty for the default site).
    pub name: String,
    /// The counters.
    pub stats: HttpSnapshot,
}

/// Counters of one upstream.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct UpstreamStats {
    /// `host:port` as configured.
    pub upstream: String,
    /// The counters.
    pub stats: HttpSnapshot,
}

/// A compiled config's view of the counters, made when it is applied.
#[derive(Debug, Default)]
pub(crate) struct Binding {
    /// Per host entry, by index.
    pub hosts: Vec<Arc<HttpCounters>>,
    /// Per upstream group (by address of the group), per member.
    pub groups: HashMap<usize, Box<[Arc<HttpCounters>]>, foldhash::fast::RandomState>,
}

impl Binding {
    #[inline]
    pub(crate) fn upstream(
        &self,
        group: &Arc<crate::upstream::UpstreamGroup>,
        i: usize,
    ) -> Option<&Arc<HttpCounters>> {
        self.groups
            .get(&(Arc::as_ptr(group) as usize))
            .and_then(|m| m.get(i))
    }
}

/// The engine's counters, one set per process.
#[derive(Debug)]
pub struct Stats {
    hosts: Mutex<HashMap<HostKey, (String, Arc<HttpCounters>)>>,
    upstreams: Mutex<HashMap<String, Arc<HttpCounters>>>,
    unrouted: Arc<HttpCounters>,
    started: Instant,
    access_log: Option<AccessLog>,
}

impl Stats {
    pub(crate) fn new(access_log: Option<AccessLog>) -> Self {
        Stats {
            hosts: Mutex::new(HashMap::new()),
            upstreams: Mutex::new(HashMap::new()),
            unrouted: Arc::new(HttpCounters::default()),
            started: Instant::now(),
            access_log,
        }
    }

    /// When the engine was built.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// The access log the engine writes to, if any.
    pub fn access_log(&self) -> Option<&AccessLog> {
        self.access_log.as_ref()
    }

    pub(crate) fn unrouted(&self) -> &HttpCounters {
        &self.unrouted
    }

    /// Makes the binding of `cfg`: finds or creates the counters of each
    /// of its hosts and upstreams, and forgets those it no longer has.
    pub(crate) fn bind(&self, cfg: &CompiledConfig) -> Binding {
        let mut binding = Binding::default();
        let source = cfg.source().clone();
        let name_of = |key: &HostKey| -> String {
            let names = match key.kind {
                "proxy" => source
                    .proxy_hosts
                    .iter()
                    .find(|h| h.id == key.id)
                    .map(|h| &h.domain_names),
                "redirection" => source
                    .redirection_hosts
                    .iter()
                    .find(|h| h.id == key.id)
                    .map(|h| &h.domain_names),
                "dead" => source
                    .dead_hosts
                    .iter()
                    .find(|h| h.id == key.id)
                    .map(|h| &h.domain_names),
                _ => None,
            };
            names.and_then(|n| n.first().cloned()).unwrap_or_default()
        };
        if let Ok(mut hosts) = self.hosts.lock() {
            let mut keep = HashSet::new();
            for e in &cfg.entries {
                let key = HostKey::of(e.kind, e.id);
                keep.insert(key);
                let name = name_of(&key);
                let slot = hosts
                    .entry(key)
                    .or_insert_with(|| (String::new(), Arc::new(HttpCounters::default())));
                slot.0 = name;
                binding.hosts.push(slot.1.clone());
            }
            hosts.retain(|k, _| keep.contains(k));
        }
        if let Ok(mut ups) = self.upstreams.lock() {
            let mut keep = HashSet::new();
            for g in cfg.groups() {
                let members: Box<[Arc<HttpCounters>]> = g
                    .members()
                    .iter()
                    .map(|m| {
                        let label = upstream_label(&m.host, m.addr);
                        keep.insert(label.clone());
                        ups.entry(label)
                            .or_insert_with(|| Arc::new(HttpCounters::default()))
                            .clone()
                    })
                    .collect();
                binding.groups.insert(Arc::as_ptr(g) as usize, members);
            }
            ups.retain(|k, _| keep.contains(k));
        }
        binding
    }

    /// Counters of every host, plus requests answered before routing.
    pub fn hosts(&self) -> Vec<HostStats> {
        let mut out: Vec<HostStats> = match self.hosts.lock() {
            Ok(h) => h
                .iter()
                .map(|(k, (name, c))| HostStats {
                    key: *k,
                    name: name.clone(),
                    stats: c.snapshot(),
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        out.push(HostStats {
            key: HostKey::UNROUTED,
            name: String::new(),
            stats: self.unrouted.snapshot(),
        });
        out.sort_by_key(|a| a.key);
        out
    }

    /// Counters of every upstream in use.
    pub fn upstreams(&self) -> Vec<UpstreamStats> {
        let mut out: Vec<UpstreamStats> = match self.upstreams.lock() {
            Ok(u) => u
                .iter()
                .map(|(k, c)| UpstreamStats {
                    upstream: k.clone(),
                    stats: c.snapshot(),
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        out.sort_by(|a, b| a.upstream.cmp(&b.upstream));
        out
    }
}

/// The `upstream` label of a member: its configured host and its port.
pub fn upstream_label(host: &str, addr: SocketAddr) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{}", addr.port())
    } else {
        format!("{host}:{}", addr.port())
    }
}

/// One request, as the access log writes it.
#[derive(Debug, Clone)]
pub struct AccessRecord {
    /// When the response ended.
    pub time: SystemTime,
    /// The client's IP (see [`RequestCtx::client_ip`](crate::filter::RequestCtx::client_ip)).
    pub client_ip: Option<IpAddr>,
    /// The request host, lower case, without port.
    pub host: String,
    /// The routed host, if routing happened.
    pub route: Option<HostKey>,
    /// The request method.
    pub method: String,
    /// Path and query as the client sent them.
    pub path: String,
    /// The response status; 0 when none was sent.
    pub status: u16,
    /// Request body bytes read.
    pub bytes_in: u64,
    /// Response body bytes sent.
    pub bytes_out: u64,
    /// From the request head to the end of the response.
    pub duration: Duration,
    /// From choosing the upstream to its response header, if proxied.
    pub upstream_time: Option<Duration>,
    /// The upstream address the request was last sent to.
    pub upstream: Option<SocketAddr>,
    /// The filter that answered the request, if one did.
    pub filter: Option<String>,
    /// Why the request failed, if it did.
    pub error: Option<String>,
}

/// The sending side of an access log: a bounded channel to a writer task,
/// with the hosts whose requests are not logged.
#[derive(Debug)]
pub struct AccessLog {
    tx: tokio::sync::mpsc::Sender<AccessRecord>,
    disabled: HashSet<String>,
    queued: AtomicU64,
    dropped: AtomicU64,
}

impl AccessLog {
    /// An access log whose channel holds `capacity` records (at least 1),
    /// not logging requests for the host names in `disabled_hosts`. The
    /// receiver goes to the task that writes the records.
    pub fn channel(
        capacity: usize,
        disabled_hosts: impl IntoIterator<Item = String>,
    ) -> (AccessLog, tokio::sync::mpsc::Receiver<AccessRecord>) {
        let (tx, rx) = tokio::sync::mpsc::channel(capacity.max(1));
        let disabled = disabled_hosts
            .into_iter()
            .map(|h| h.trim().trim_end_matches('.').to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect();
        (
            AccessLog {
                tx,
                disabled,
                queued: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
            },
            rx,
        )
    }

    /// Whether requests for `host` (lower case, no port) are logged.
    #[inline]
    pub fn logs(&self, host: &str) -> bool {
        self.disabled.is_empty() || !self.disabled.contains(host)
    }

    /// Queues a record; when the channel is full or closed, drops it and
    /// counts the drop. Never waits.
    pub fn send(&self, record: AccessRecord) {
        match self.tx.try_send(record) {
            Ok(()) => bump(&self.queued),
            Err(_) => bump(&self.dropped),
        }
    }

    /// Records handed to the writer.
    pub fn queued(&self) -> u64 {
        read(&self.queued)
    }

    /// Records dropped because the channel was full (or the writer gone).
    pub fn dropped(&self) -> u64 {
        read(&self.dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_upper_inclusive() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_millis(1));
        h.observe(Duration::from_micros(1001));
        h.observe(Duration::from_secs(60));
        let s = h.snapshot();
        assert_eq!(s.buckets[0], 2);
        assert_eq!(s.buckets[1], 1);
        assert_eq!(s.buckets[BUCKETS - 1], 1);
        assert_eq!(s.count(), 4);
    }

    #[test]
    fn classes_and_codes() {
        let c = HttpCounters::default();
        for status in [0u16, 101, 200, 204, 302, 404, 418, 500, 503, 999] {
            c.begin();
            c.finish(status, 1, 2, Duration::ZERO);
        }
        let s = c.snapshot();
        assert_eq!(s.counts.requests, 10);
        assert_eq!(s.counts.no_response, 2);
        assert_eq!(s.counts.status_1xx, 1);
        assert_eq!(s.counts.status_2xx, 2);
        assert_eq!(s.counts.status_3xx, 1);
        assert_eq!(s.counts.status_4xx, 2);
        assert_eq!(s.counts.status_5xx, 2);
        assert_eq!(s.counts.bytes_out, 20);
        assert_eq!(
            s.codes[COMMON_CODES.iter().position(|&c| c == 404).unwrap_or(0)],
            1
        );
        assert_eq!(s.active, 0);
    }

    #[test]
    fn since_treats_a_reset_as_zero_base() {
        let a = Counts {
            requests: 5,
            ..Counts::default()
        };
        let b = Counts {
            requests: 3,
            ..Counts::default()
        };
        assert_eq!(a.since(&b).requests, 2);
        assert_eq!(b.since(&a).requests, 3);
    }

    #[test]
    fn a_full_access_log_drops_and_counts() {
        let (log, _rx) = AccessLog::channel(1, ["Quiet.test".to_string()]);
        assert!(!log.logs("quiet.test"));
        assert!(log.logs("loud.test"));
        for _ in 0..3 {
            log.send(AccessRecord {
                time: SystemTime::now(),
                client_ip: None,
                host: String::new(),
                route: None,
                method: "GET".into(),
                path: "/".into(),
                status: 200,
                bytes_in: 0,
                bytes_out: 0,
                duration: Duration::ZERO,
                upstream_time: None,
                upstream: None,
                filter: None,
                error: None,
            });
        }
        assert_eq!((log.queued(), log.dropped()), (1, 2));
    }
}
