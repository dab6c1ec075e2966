//! Benchmarks of ppm-core's hot paths, in one binary to keep build times low.
//!
//! Groups:
//! - `route_lookup/{host_table,route_host}/{exact,wildcard,miss}/{10,1000,100000}`:
//!   one `Host` lookup in a table of N names, 10% of them wildcards. Each
//!   iteration looks up the next of 4096 pre-built hosts spread over the
//!   table, so large tables pay their cache misses. `route_lookup/cycle_overhead`
//!   is that loop without a lookup.
//! - `compile/10k_hosts/{cold,with_previous,compile_and_swap}`: compiling a
//!   10,000-host config (1-2 IP-literal upstreams per host, a quarter of the
//!   hosts with locations, 250 regex locations), without and with the
//!   previous config's upstream groups, and compile plus `ArcSwap::store`
//!   (which drops the old config).
//! - `compile_parts/10k_hosts/*`: the parts of a cold compile measured
//!   alone (validation, config clone, upstream groups, regexes, drop), to
//!   show where its time goes.
//! - `filter_chain/run_request/{0,1,5}`: `FilterChain::run_request` over
//!   trivial filters on a prebuilt request; the future is polled once with a
//!   no-op waker, so no runtime cost is included.
//! - `filter_chain/stats/{host,host_and_upstream,access_log_record_dropped}`:
//!   the traffic counters a request bumps (host only; host and upstream,
//!   as a proxied request does) and an access-log record built and dropped
//!   on a full buffer. Single-threaded: uncontended atomics.
//! - `location_match/{exact,regex,prefix_deep,miss}`: `LocationMatcher::find`
//!   over 20 locations (3 exact, 2 regex, 15 prefix).
//!
//! Run: `cargo bench -p ppm-benches -- --warm-up-time 1 --measurement-time 3`
//! (add a filter such as `route_lookup` to run one group).

// Benchmarks are not tests for clippy, but a failed setup should stop the run
// loudly: unwrap/expect are fine here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use arc_swap::ArcSwap;
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, SamplingMode};
use ppm_core::compile::{compile, compile_owned, CompileOptions, CompiledConfig};
use ppm_core::config::{Config, Location, MatchKind, ProxyHost, Upstream};
use ppm_core::filter::{
    Filter, FilterAction, FilterChain, FilterEntry, FilterRegistry, Phases, RequestCtx,
};
use ppm_core::http::RequestHeader;
use ppm_core::router::{HostTable, LocationMatcher, PathPattern};
use ppm_core::stats::{AccessLog, AccessRecord, HttpCounters};
use ppm_core::store::Snapshot;
use ppm_core::upstream::{GroupSpec, UpstreamGroup};

/// Table sizes for the lookup benches.
const SIZES: [usize; 3] = [10, 1_000, 100_000];
/// Distinct hosts each lookup bench cycles through.
const QUERIES: usize = 4096;

// ---------------------------------------------------------------------------
// Host names

/// Whether name `i` of a table is a wildcard: one in ten.
fn is_wildcard(i: usize) -> bool {
    i % 10 == 9
}

/// Name `i`: `app-{i}.site-{i/7}.example.com` or `*.tenant-{i}.example.org`.
fn name(i: usize) -> String {
    if is_wildcard(i) {
        format!("*.tenant-{i}.example.org")
    } else {
        format!("app-{i}.site-{}.example.com", i / 7)
    }
}

/// A small deterministic generator (SplitMix64) so runs are repeatable.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z % n as u64) as usize
    }
}

/// Which kind of `Host` a lookup bench sends.
#[derive(Clone, Copy)]
enum Query {
    /// An exact name in the table.
    Exact,
    /// A name under a wildcard in the table (one or two labels deep).
    Wildcard,
    /// A name that matches nothing (walks every suffix).
    Miss,
}

impl Query {
    const ALL: [Query; 3] = [Query::Exact, Query::Wildcard, Query::Miss];

    fn label(self) -> &'static str {
        match self {
            Query::Exact => "exact",
            Query::Wildcard => "wildcard",
            Query::Miss => "miss",
        }
    }

    /// `QUERIES` hosts of this kind for a table of `n` names, spread over it.
    fn hosts(self, n: usize) -> Vec<String> {
        let mut rng = Rng(n as u64 ^ 0x5eed);
        (0..QUERIES)
            .map(|q| match self {
                Query::Exact => loop {
                    let i = rng.below(n);
                    if !is_wildcard(i) {
                        break name(i);
                    }
                },
                Query::Wildcard => {
                    let i = (rng.below(n.div_ceil(10)) * 10 + 9).min(n - 1);
                    debug_assert!(is_wildcard(i));
                    if q % 2 == 0 {
                        format!("www.tenant-{i}.example.org")
                    } else {
                        format!("a.b.tenant-{i}.example.org")
                    }
                }
                Query::Miss => format!("app-{}.unknown.example.net", rng.below(n)),
            })
            .collect()
    }
}

/// Calls `f` on the next host of `hosts` at each iteration.
fn cycle<'a, T>(hosts: &'a [String], mut f: impl FnMut(&str) -> T + 'a) -> impl FnMut() -> T + 'a {
    let mut i = 0;
    move || {
        i = (i + 1) % hosts.len();
        f(black_box(hosts[i].as_str()))
    }
}

// ---------------------------------------------------------------------------
// Configs

/// An IP-literal upstream, distinct for each `k` below 2^24.
fn upstream(k: usize) -> Upstream {
    Upstream::new(
        format!("10.{}.{}.{}", (k >> 16) & 0xff, (k >> 8) & 0xff, k & 0xff),
        8080,
    )
}

/// A config of `n` proxy hosts, one name each (see [`name`]).
///
/// With `distinct_upstreams`, host `i` has its own 1-2 upstreams (so one
/// group per host), every fourth host has two prefix locations (one with its
/// own upstream) and every fortieth a regex location as well; otherwise hosts
/// share 100 upstream groups and have no locations.
fn config(n: usize, distinct_upstreams: bool) -> Snapshot {
    let mut c = Config::new();
    for i in 0..n {
        let ups = if distinct_upstreams {
            if i % 2 == 0 {
                vec![upstream(2 * i)]
            } else {
                vec![upstream(2 * i), upstream(2 * i + 1)]
            }
        } else {
            vec![upstream(i % 100)]
        };
        let mut h = ProxyHost::new([name(i)], ups);
        h.id = i as i64 + 1;
        if distinct_upstreams && i % 4 == 0 {
            h.locations = vec![
                Location {
                    path: "/api".into(),
                    upstreams: vec![upstream(2 * n + i)],
                    rewrite: Some(String::new()),
                    ..Location::default()
                },
                Location {
                    path: "/static/".into(),
                    ..Location::default()
                },
            ];
            if i % 40 == 0 {
                h.locations.push(Location {
                    path: r"\.php$".into(),
                    match_kind: MatchKind::Regex,
                    ..Location::default()
                });
            }
        }
        c.proxy_hosts.push(h);
    }
    Snapshot {
        revision: 1,
        config: c,
    }
}

fn opts<'a>(
    registry: &'a FilterRegistry,
    previous: Option<&'a CompiledConfig>,
) -> CompileOptions<'a> {
    CompileOptions {
        registry,
        global_filters: &[],
        previous,
    }
}

// ---------------------------------------------------------------------------
// Benches

fn route_lookup(c: &mut Criterion) {
    let registry = FilterRegistry::new();
    let mut g = c.benchmark_group("route_lookup");
    // The harness's own cost per iteration (next host, black_box), to
    // subtract from the lookups below.
    let hosts = Query::Exact.hosts(1000);
    g.bench_function("cycle_overhead", |b| b.iter(cycle(&hosts, str::len)));
    for n in SIZES {
        let mut table = HostTable::new();
        for i in 0..n {
            table.insert(&name(i), i as u32).unwrap();
        }
        let compiled = compile(&config(n, false), opts(&registry, None)).unwrap();
        assert_eq!(compiled.host_names(), n);
        for q in Query::ALL {
            let hosts = q.hosts(n);
            // Check the queries do what their label says.
            for h in &hosts {
                assert_eq!(table.lookup(h).is_some(), !matches!(q, Query::Miss), "{h}");
            }
            g.bench_with_input(
                BenchmarkId::new(format!("host_table/{}", q.label()), n),
                &hosts,
                |b, hosts| b.iter(cycle(hosts, |h| table.lookup(h))),
            );
            g.bench_with_input(
                BenchmarkId::new(format!("route_host/{}", q.label()), n),
                &hosts,
                |b, hosts| b.iter(cycle(hosts, |h| compiled.route_host(h))),
            );
        }
    }
    g.finish();
}

fn compile_10k(c: &mut Criterion) {
    let registry = FilterRegistry::new();
    let snap = config(10_000, true);
    let first = compile(&snap, opts(&registry, None)).unwrap();
    assert_eq!(first.host_names(), 10_000);
    // 10k host groups + 2.5k location groups.
    assert_eq!(first.groups().count(), 12_500);

    // The engine compiles an owned snapshot (no config clone) and frees the
    // old config on the blocking pool, so both stay outside the timing here.
    let mut g = c.benchmark_group("compile/10k_hosts");
    g.sample_size(10);
    g.bench_function("cold", |b| {
        b.iter_batched(
            || snap.clone(),
            |s| compile_owned(s, opts(&registry, None)).unwrap(),
            BatchSize::PerIteration,
        )
    });
    g.bench_function("with_previous", |b| {
        b.iter_batched(
            || snap.clone(),
            |s| compile_owned(s, opts(&registry, Some(&first))).unwrap(),
            BatchSize::PerIteration,
        )
    });
    // What a reload costs the reload task: compile against the serving
    // config and publish it; the old config goes back to be freed elsewhere.
    let store = ArcSwap::from_pointee(compile(&snap, opts(&registry, None)).unwrap());
    g.bench_function("compile_and_swap", |b| {
        b.iter_batched(
            || snap.clone(),
            |s| {
                let current = store.load_full();
                let next = compile_owned(s, opts(&registry, Some(&current))).unwrap();
                (current, store.swap(Arc::new(next)))
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();

    // Where the cold compile's time goes, part by part.
    let mut g = c.benchmark_group("compile_parts/10k_hosts");
    g.sample_size(10);
    g.bench_function("validate", |b| {
        b.iter(|| ppm_core::compile::validate(black_box(&snap.config)).unwrap())
    });
    g.bench_function("config_clone", |b| b.iter(|| snap.config.clone()));
    g.bench_function("cold_excluding_drop", |b| {
        b.iter_with_large_drop(|| compile(black_box(&snap), opts(&registry, None)).unwrap())
    });
    let specs: Vec<GroupSpec> = first.groups().map(|g| g.spec().clone()).collect();
    g.bench_function("upstream_groups_12500", |b| {
        b.iter(|| {
            for s in &specs {
                black_box(UpstreamGroup::new(s.clone()).unwrap());
            }
        })
    });
    g.bench_function("regex_250", |b| {
        b.iter(|| {
            for _ in 0..250 {
                black_box(
                    regex::RegexBuilder::new(black_box(r"\.php$"))
                        .size_limit(1 << 20)
                        .build()
                        .unwrap(),
                );
            }
        })
    });
    // Dropping a compiled config (the old one, after a swap).
    g.sampling_mode(SamplingMode::Flat);
    g.bench_function("drop", |b| {
        b.iter_batched(
            || compile(&snap, opts(&registry, None)).unwrap(),
            drop,
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

/// A filter that continues: the cost of the chain itself.
struct Nop(&'static str);

#[ppm_core::async_trait]
impl Filter for Nop {
    fn name(&self) -> &str {
        self.0
    }
    fn phases(&self) -> Phases {
        Phases::REQUEST
    }
    async fn request_filter(
        &self,
        _req: &RequestHeader,
        ctx: &mut RequestCtx,
    ) -> ppm_core::Result<FilterAction> {
        black_box(&ctx.host);
        Ok(FilterAction::Continue)
    }
}

/// Polls a future that never waits to completion, with no runtime.
fn now<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

fn filter_chain(c: &mut Criterion) {
    const NAMES: [&str; 5] = ["f0", "f1", "f2", "f3", "f4"];
    let req = ppm_core::testing::request(
        "GET",
        "/api/v1/users?page=2",
        &[
            ("host", "app-1.site-0.example.com"),
            ("user-agent", "bench"),
        ],
    )
    .unwrap();
    let mut ctx = RequestCtx::new(Some([192, 0, 2, 1].into()));
    ctx.host = "app-1.site-0.example.com".into();

    let mut g = c.benchmark_group("filter_chain/run_request");
    for n in [0, 1, 5] {
        let chain = FilterChain::new(
            NAMES[..n]
                .iter()
                .enumerate()
                .map(|(i, name)| FilterEntry {
                    priority: i as i32,
                    filter: Arc::new(Nop(name)) as Arc<dyn Filter>,
                })
                .collect(),
        );
        g.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| {
                let action = now(chain.run_request(black_box(&req), &mut ctx)).unwrap();
                matches!(action, FilterAction::Continue)
            })
        });
    }
    g.finish();

    // What the engine adds per request for traffic statistics: the host's
    // counters (request, in-flight gauge, status class and code, bytes,
    // latency histogram), then those plus the upstream's, then the access
    // log record when the log's buffer is full (built and dropped).
    let mut g = c.benchmark_group("filter_chain/stats");
    let host = HttpCounters::default();
    let upstream = HttpCounters::default();
    let elapsed = Duration::from_micros(1800);
    g.bench_function("host", |b| {
        b.iter(|| {
            host.begin();
            host.finish(black_box(200), 0, black_box(5120), elapsed);
        })
    });
    g.bench_function("host_and_upstream", |b| {
        b.iter(|| {
            host.begin();
            upstream.attempt();
            host.upstream_time(elapsed);
            upstream.upstream_time(elapsed);
            host.finish(black_box(200), 0, black_box(5120), elapsed);
            upstream.response(black_box(200), 0, black_box(5120), elapsed);
        })
    });
    let (log, _rx) = AccessLog::channel(1, Vec::new());
    let record = || AccessRecord {
        time: std::time::SystemTime::now(),
        client_ip: Some([192, 0, 2, 1].into()),
        host: "app-1.site-0.example.com".into(),
        route: None,
        method: "GET".into(),
        path: "/api/v1/users?page=2".into(),
        status: 200,
        bytes_in: 0,
        bytes_out: 5120,
        duration: elapsed,
        upstream_time: Some(elapsed),
        upstream: Some("192.0.2.10:8080".parse().unwrap()),
        filter: None,
        error: None,
    };
    log.send(record());
    g.bench_function("access_log_record_dropped", |b| {
        b.iter(|| {
            if log.logs(black_box("app-1.site-0.example.com")) {
                log.send(record());
            }
        })
    });
    g.finish();
}

fn location_match(c: &mut Criterion) {
    let mut patterns = vec![
        PathPattern::Exact("/".into()),
        PathPattern::Exact("/favicon.ico".into()),
        PathPattern::Exact("/healthz".into()),
        PathPattern::Regex(regex::Regex::new(r"\.(php|asp)$").unwrap()),
        PathPattern::Regex(regex::Regex::new(r"^/users/[0-9]+/avatar$").unwrap()),
    ];
    for p in [
        "/api",
        "/api/v1",
        "/api/v2",
        "/api/v2/admin",
        "/static/",
        "/assets",
        "/images",
        "/docs",
        "/blog",
        "/shop",
        "/shop/cart",
        "/login",
        "/logout",
        "/ws",
        "/metrics",
    ] {
        patterns.push(PathPattern::Prefix(p.into()));
    }
    assert_eq!(patterns.len(), 20);
    let m = LocationMatcher::new(patterns.into_iter().zip(0..).collect());

    let mut g = c.benchmark_group("location_match");
    for (label, path, want) in [
        ("exact", "/healthz", Some(2)),
        ("regex", "/users/12345/avatar", Some(4)),
        ("prefix_deep", "/api/v2/admin/users/42", Some(8)),
        ("miss", "/nothing/here/at/all", None),
    ] {
        assert_eq!(m.find(path).map(|l| l.index), want, "{path}");
        g.bench_function(label, |b| b.iter(|| m.find(black_box(path))));
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = route_lookup, compile_10k, filter_chain, location_match
}
criterion_main!(benches);
