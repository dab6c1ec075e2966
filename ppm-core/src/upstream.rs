//! Upstream groups: load balancing on pingora-load-balancing, active health
//! checks, passive failure marking and least-connections.
//!
//! A group is built once per distinct [`GroupSpec`] and reused across config
//! revisions while its spec is unchanged, so health state and in-flight
//! counts survive reloads.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use pingora_core::protocols::l4::socket::SocketAddr as PingoraAddr;
use pingora_load_balancing::discovery::Static;
use pingora_load_balancing::health_check::{HttpHealthCheck, TcpHealthCheck};
use pingora_load_balancing::selection::{Consistent, Random, RoundRobin};
use pingora_load_balancing::{Backend, Backends, LoadBalancer};

use crate::config::{Balancing, HealthCheck, HealthCheckKind, PassiveHealth, Scheme};

/// Milliseconds since the first call, from a monotonic clock.
pub(crate) fn now_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// Everything that defines a group. Two hosts with equal specs share one
/// group; a reload that keeps the spec keeps the group.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GroupSpec {
    /// Resolved addresses with weights, in declared order.
    pub members: Vec<MemberSpec>,
    /// The balancing algorithm.
    pub balancing: Balancing,
    /// `http` or `https`.
    pub scheme: Scheme,
    /// SNI for https upstreams; empty uses each member's configured host.
    pub sni: String,
    /// Verify https upstreams' certificates.
    pub verify_tls: bool,
    /// Active health checks.
    pub health_check: Option<HealthCheck>,
    /// Passive failure marking.
    pub passive: PassiveHealth,
}

/// One upstream of a [`GroupSpec`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MemberSpec {
    /// The resolved address.
    pub addr: SocketAddr,
    /// The configured host (name or IP), used as default SNI.
    pub host: String,
    /// Weight, at least 1.
    pub weight: u32,
}

#[derive(Debug, Clone, Copy)]
struct MemberIdx(usize);

/// Runtime state of one upstream.
#[derive(Debug)]
pub struct Member {
    /// The address.
    pub addr: SocketAddr,
    /// The configured host name or IP.
    pub host: String,
    /// The weight.
    pub weight: u32,
    active: AtomicUsize,
    consecutive_fails: AtomicU32,
    down_until_ms: AtomicU64,
}

impl Member {
    /// Requests in flight to this upstream.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    fn passive_down(&self, now: u64) -> bool {
        self.down_until_ms.load(Ordering::Relaxed) > now
    }
}

enum Selector {
    RoundRobin(LoadBalancer<RoundRobin>),
    Random(LoadBalancer<Random>),
    Hash(LoadBalancer<Consistent>),
    LeastConn(LoadBalancer<RoundRobin>),
}

impl Selector {
    fn backends(&self) -> &Backends {
        match self {
            Selector::RoundRobin(lb) | Selector::LeastConn(lb) => lb.backends(),
            Selector::Random(lb) => lb.backends(),
            Selector::Hash(lb) => lb.backends(),
        }
    }
}

/// The pingora-load-balancing side of a group, built on first use: a config
/// with thousands of hosts compiles without paying for balancers of hosts
/// that never see a request.
struct Built {
    selector: Selector,
    /// `backends[i]` is member `i`.
    backends: Box<[Backend]>,
}

/// A balanced set of upstreams.
pub struct UpstreamGroup {
    spec: GroupSpec,
    built: OnceLock<Option<Built>>,
    members: Box<[Member]>,
    rotate: AtomicUsize,
    next_check_ms: AtomicU64,
    checking: AtomicBool,
}

impl std::fmt::Debug for UpstreamGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamGroup")
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

/// A selection could not be made because every upstream was excluded.
const MAX_MEMBERS: usize = 64;

/// The health of one upstream, for the engine handle.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[non_exhaustive]
pub struct MemberHealth {
    /// The resolved address.
    pub addr: SocketAddr,
    /// The configured host.
    pub host: String,
    /// The weight.
    pub weight: u32,
    /// Passed the last active check (true when checks are off).
    pub healthy: bool,
    /// Skipped for now after connect failures.
    pub passive_down: bool,
    /// Requests in flight.
    pub active_requests: usize,
}

impl UpstreamGroup {
    /// Builds a group. Fails when the spec has no members, more than 64, or
    /// the same address twice.
    pub fn new(spec: GroupSpec) -> Result<Self, String> {
        if spec.members.is_empty() {
            return Err("needs at least one upstream".into());
        }
        if spec.members.len() > MAX_MEMBERS {
            return Err(format!("may have at most {MAX_MEMBERS} upstreams"));
        }
        let mut members: Vec<Member> = Vec::with_capacity(spec.members.len());
        for m in &spec.members {
            if members.iter().any(|x| x.addr == m.addr) {
                return Err(format!("upstream {} is listed twice", m.addr));
            }
            members.push(Member {
                addr: m.addr,
                host: m.host.clone(),
                weight: m.weight.max(1),
                active: AtomicUsize::new(0),
                consecutive_fails: AtomicU32::new(0),
                down_until_ms: AtomicU64::new(0),
            });
        }
        Ok(UpstreamGroup {
            spec,
            built: OnceLock::new(),
            members: members.into_boxed_slice(),
            rotate: AtomicUsize::new(0),
            next_check_ms: AtomicU64::new(0),
            checking: AtomicBool::new(false),
        })
    }

    /// The spec this group was built from.
    pub fn spec(&self) -> &GroupSpec {
        &self.spec
    }

    fn built(&self) -> Option<&Built> {
        self.built
            .get_or_init(|| match build(&self.spec) {
                Ok(b) => Some(b),
                Err(e) => {
                    tracing::error!(error = %e, "building an upstream group failed");
                    None
                }
            })
            .as_ref()
    }

    /// The upstreams.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// Picks an upstream for a request, skipping members in `exclude` (a bit
    /// per member index, for retries), unhealthy members and members marked
    /// down by passive checks. When every remaining member is down it picks
    /// one anyway rather than fail without trying.
    pub fn select(&self, key: &[u8], exclude: u64) -> Option<usize> {
        let now = now_ms();
        let usable = |i: usize, healthy: bool| {
            exclude & (1u64 << i) == 0 && healthy && !self.members[i].passive_down(now)
        };
        let picked = self.select_with(key, &usable);
        picked.or_else(|| self.select_with(key, &|i, _| exclude & (1u64 << i) == 0))
    }

    fn select_with(&self, key: &[u8], accept: &dyn Fn(usize, bool) -> bool) -> Option<usize> {
        let max = self.members.len() * 2 + 16;
        let f = |b: &Backend, healthy: bool| {
            b.ext
                .get::<MemberIdx>()
                .is_some_and(|MemberIdx(i)| accept(*i, healthy))
        };
        let built = self.built()?;
        let picked = match &built.selector {
            Selector::RoundRobin(lb) => lb.select_with(key, max, f),
            Selector::Random(lb) => lb.select_with(key, max, f),
            Selector::Hash(lb) => lb.select_with(key, 256, f),
            Selector::LeastConn(lb) => return self.least_conn(built, lb.backends(), accept),
        };
        picked.and_then(|b| b.ext.get::<MemberIdx>().map(|m| m.0))
    }

    fn least_conn(
        &self,
        built: &Built,
        backends: &Backends,
        accept: &dyn Fn(usize, bool) -> bool,
    ) -> Option<usize> {
        let n = self.members.len();
        let start = self.rotate.fetch_add(1, Ordering::Relaxed) % n;
        let mut best: Option<(usize, usize, u32)> = None;
        for k in 0..n {
            let i = (start + k) % n;
            let m = &self.members[i];
            let ready = built.backends.get(i).is_some_and(|b| backends.ready(b));
            if !accept(i, ready) {
                continue;
            }
            let active = m.active();
            // Compare active/weight without division.
            let better = match best {
                None => true,
                Some((_, ba, bw)) => {
                    (active as u128) * (bw as u128) < (ba as u128) * (m.weight as u128)
                }
            };
            if better {
                best = Some((i, active, m.weight));
            }
        }
        best.map(|(i, _, _)| i)
    }

    /// Counts a request starting on member `i`.
    pub fn begin(&self, i: usize) {
        if let Some(m) = self.members.get(i) {
            m.active.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a request on member `i` as done.
    pub fn end(&self, i: usize) {
        if let Some(m) = self.members.get(i) {
            // Saturating: never wrap below zero.
            let _ = m
                .active
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1));
        }
    }

    /// Records a connect failure on member `i`; after `max_fails` in a row
    /// the member is skipped for `fail_timeout_ms`.
    pub fn report_failure(&self, i: usize) {
        if let Some(m) = self.members.get(i) {
            let fails = m.consecutive_fails.fetch_add(1, Ordering::Relaxed) + 1;
            if fails >= self.spec.passive.max_fails.max(1) {
                m.down_until_ms.store(
                    now_ms() + self.spec.passive.fail_timeout_ms,
                    Ordering::Relaxed,
                );
                m.consecutive_fails.store(0, Ordering::Relaxed);
            }
        }
    }

    /// Records a successful connection to member `i`.
    pub fn report_success(&self, i: usize) {
        if let Some(m) = self.members.get(i) {
            if m.consecutive_fails.load(Ordering::Relaxed) != 0 {
                m.consecutive_fails.store(0, Ordering::Relaxed);
            }
        }
    }

    /// Health of every member.
    pub fn health(&self) -> Vec<MemberHealth> {
        let now = now_ms();
        let built = self.built();
        self.members
            .iter()
            .enumerate()
            .map(|(i, m)| MemberHealth {
                addr: m.addr,
                host: m.host.clone(),
                weight: m.weight,
                healthy: built.is_none_or(|b| {
                    b.backends
                        .get(i)
                        .is_none_or(|be| b.selector.backends().ready(be))
                }),
                passive_down: m.passive_down(now),
                active_requests: m.active(),
            })
            .collect()
    }

    /// Runs the active health check if one is configured and due. Returns
    /// at once when another check of this group is running.
    pub async fn run_health_check_if_due(&self) {
        let Some(hc) = &self.spec.health_check else {
            return;
        };
        let now = now_ms();
        if self.next_check_ms.load(Ordering::Relaxed) > now {
            return;
        }
        if self.checking.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Some(b) = self.built() {
            b.selector.backends().run_health_check(true).await;
        }
        self.next_check_ms
            .store(now_ms() + hc.interval_ms.max(100), Ordering::Relaxed);
        self.checking.store(false, Ordering::Release);
    }

    /// Whether this group has active health checks.
    pub fn has_health_check(&self) -> bool {
        self.spec.health_check.is_some()
    }
}

fn build(spec: &GroupSpec) -> Result<Built, String> {
    let mut set = BTreeSet::new();
    let mut backends = Vec::with_capacity(spec.members.len());
    for (i, m) in spec.members.iter().enumerate() {
        let mut ext = pingora_load_balancing::Extensions::new();
        ext.insert(MemberIdx(i));
        let backend = Backend {
            addr: PingoraAddr::Inet(m.addr),
            weight: m.weight.max(1) as usize,
            ext,
        };
        set.insert(backend.clone());
        backends.push(backend);
    }
    let hc = spec.health_check.as_ref().map(|hc| health_check(spec, hc));
    let selector = match &spec.balancing {
        Balancing::Random => Selector::Random(build_lb(set, hc)?),
        Balancing::ConsistentHash { .. } => Selector::Hash(build_lb(set, hc)?),
        Balancing::LeastConnections => Selector::LeastConn(build_lb(set, hc)?),
        _ => Selector::RoundRobin(build_lb(set, hc)?),
    };
    Ok(Built {
        selector,
        backends: backends.into_boxed_slice(),
    })
}

fn build_lb<S>(
    set: BTreeSet<Backend>,
    hc: Option<Box<dyn pingora_load_balancing::health_check::HealthCheck + Send + Sync>>,
) -> Result<LoadBalancer<S>, String>
where
    S: pingora_load_balancing::selection::BackendSelection + 'static,
    S::Iter: pingora_load_balancing::selection::BackendIter,
{
    use futures_lite_now::NowOrNever;
    let mut backends = Backends::new(Static::new(set));
    if let Some(hc) = hc {
        backends.set_health_check(hc);
    }
    let lb = LoadBalancer::<S>::from_backends(backends);
    match lb.update().now_or_never() {
        Some(Ok(())) => Ok(lb),
        Some(Err(e)) => Err(format!("could not build the upstream group: {e}")),
        None => Err("could not build the upstream group".into()),
    }
}

fn health_check(
    spec: &GroupSpec,
    hc: &HealthCheck,
) -> Box<dyn pingora_load_balancing::health_check::HealthCheck + Send + Sync> {
    let tls = spec.scheme == Scheme::Https;
    let sni = if spec.sni.is_empty() {
        spec.members
            .first()
            .map(|m| m.host.clone())
            .unwrap_or_default()
    } else {
        spec.sni.clone()
    };
    let timeout = Duration::from_millis(hc.timeout_ms.max(10));
    match &hc.kind {
        HealthCheckKind::Http {
            path,
            host,
            expected_status,
        } => {
            let host_header = host.clone().unwrap_or_else(|| sni.clone());
            let mut check = HttpHealthCheck::new(&host_header, tls);
            check.consecutive_success = hc.healthy_threshold.max(1) as usize;
            check.consecutive_failure = hc.unhealthy_threshold.max(1) as usize;
            check.peer_template.options.connection_timeout = Some(timeout);
            check.peer_template.options.read_timeout = Some(timeout);
            check.peer_template.options.total_connection_timeout = Some(timeout);
            check.peer_template.options.verify_cert = spec.verify_tls;
            check.peer_template.options.verify_hostname = spec.verify_tls;
            if tls {
                check.peer_template.sni = sni;
            }
            if let Ok(uri) = path.parse::<http::Uri>() {
                check.req.set_uri(uri);
            }
            let expected = *expected_status;
            check.validator = Some(Box::new(move |resp| {
                if resp.status.as_u16() == expected {
                    Ok(())
                } else {
                    pingora_error::Error::e_explain(
                        pingora_error::ErrorType::Custom("health check status"),
                        format!("status {} != {expected}", resp.status.as_u16()),
                    )
                }
            }));
            Box::new(check)
        }
        _ => {
            let mut check = if tls {
                TcpHealthCheck::new_tls(&sni)
            } else {
                TcpHealthCheck::new()
            };
            check.consecutive_success = hc.healthy_threshold.max(1) as usize;
            check.consecutive_failure = hc.unhealthy_threshold.max(1) as usize;
            check.peer_template.options.connection_timeout = Some(timeout);
            check.peer_template.options.total_connection_timeout = Some(timeout);
            check.peer_template.options.verify_cert = spec.verify_tls;
            check.peer_template.options.verify_hostname = spec.verify_tls;
            check
        }
    }
}

/// A tiny `now_or_never` so the crate does not need `futures` for it.
mod futures_lite_now {
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    pub trait NowOrNever: Future + Sized {
        fn now_or_never(self) -> Option<Self::Output> {
            let mut fut = pin!(self);
            let mut cx = Context::from_waker(Waker::noop());
            match fut.as_mut().poll(&mut cx) {
                Poll::Ready(v) => Some(v),
                Poll::Pending => None,
            }
        }
    }

    impl<F: Future> NowOrNever for F {}
}

/// Shared groups keyed by spec, for reuse across revisions.
pub(crate) type GroupMap = std::collections::HashMap<
    HashedSpec,
    Arc<UpstreamGroup>,
    std::hash::BuildHasherDefault<PassThrough>,
>;

/// A spec with its hash, computed once: a compile looks each spec up in
/// its own map and the previous config's, then inserts it.
#[derive(Debug, Clone)]
pub(crate) struct HashedSpec {
    hash: u64,
    spec: GroupSpec,
}

impl HashedSpec {
    pub(crate) fn new(spec: GroupSpec) -> Self {
        use std::hash::BuildHasher;
        // A fixed seed: keys of one revision's map are looked up in the
        // next one's. Specs come from the config, not from clients.
        let hash = foldhash::fast::FixedState::default().hash_one(&spec);
        HashedSpec { hash, spec }
    }

    pub(crate) fn spec(&self) -> &GroupSpec {
        &self.spec
    }
}

impl PartialEq for HashedSpec {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && self.spec == other.spec
    }
}

impl Eq for HashedSpec {}

impl std::hash::Hash for HashedSpec {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// The hasher of [`GroupMap`]: its keys are hashes already.
#[derive(Default)]
pub(crate) struct PassThrough(u64);

impl std::hash::Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used; fold anything else in all the same.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(balancing: Balancing, weights: &[u32]) -> GroupSpec {
        GroupSpec {
            members: weights
                .iter()
                .enumerate()
                .map(|(i, w)| MemberSpec {
                    addr: format!("127.0.0.1:{}", 10000 + i).parse().unwrap(),
                    host: "127.0.0.1".into(),
                    weight: *w,
                })
                .collect(),
            balancing,
            scheme: Scheme::Http,
            sni: String::new(),
            verify_tls: true,
            health_check: None,
            passive: PassiveHealth::default(),
        }
    }

    #[test]
    fn weighted_round_robin_follows_weights() {
        let g = UpstreamGroup::new(spec(Balancing::RoundRobin, &[1, 3])).unwrap();
        let mut counts = [0; 2];
        for _ in 0..400 {
            counts[g.select(b"", 0).unwrap()] += 1;
        }
        assert_eq!(counts, [100, 300]);
    }

    #[test]
    fn exclude_and_passive_down() {
        let g = UpstreamGroup::new(spec(Balancing::RoundRobin, &[1, 1])).unwrap();
        for _ in 0..10 {
            assert_eq!(g.select(b"", 0b01), Some(1));
        }
        g.report_failure(1);
        for _ in 0..10 {
            assert_eq!(g.select(b"", 0), Some(0));
        }
        // Everything excluded: nothing.
        assert_eq!(g.select(b"", 0b11), None);
    }

    #[test]
    fn least_connections_prefers_idle() {
        let g = UpstreamGroup::new(spec(Balancing::LeastConnections, &[1, 1, 1])).unwrap();
        g.begin(0);
        g.begin(0);
        g.begin(1);
        assert_eq!(g.select(b"", 0), Some(2));
        g.begin(2);
        g.begin(2);
        assert_eq!(g.select(b"", 0), Some(1));
        g.end(0);
        g.end(0);
        assert_eq!(g.select(b"", 0), Some(0));
        g.end(0);
        assert_eq!(g.members()[0].active(), 0);
    }

    #[test]
    fn consistent_hash_is_sticky() {
        let g = UpstreamGroup::new(spec(
            Balancing::ConsistentHash {
                key: crate::config::HashKey::ClientIp,
            },
            &[1, 1, 1, 1],
        ))
        .unwrap();
        let mut seen = std::collections::HashSet::new();
        for k in 0..64u32 {
            let key = k.to_be_bytes();
            let a = g.select(&key, 0).unwrap();
            assert_eq!(g.select(&key, 0).unwrap(), a);
            seen.insert(a);
        }
        assert!(seen.len() >= 3, "hash spread too narrow: {seen:?}");
    }

    #[test]
    fn duplicates_are_rejected() {
        let mut s = spec(Balancing::RoundRobin, &[1, 1]);
        s.members[1].addr = s.members[0].addr;
        assert!(UpstreamGroup::new(s).is_err());
    }
}
