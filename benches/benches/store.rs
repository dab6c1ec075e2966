//! SQLite store benchmarks: `load()` + compile of 10k hosts, and one host
//! write with its revision bump, on a real database file.
//!
//! `cargo bench -p ppm-benches --bench store`
// Benchmarks are programs, not library code: a failed setup should stop them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use ppm_core::compile::{compile_owned, CompileOptions};
use ppm_core::config::{Config, HeaderRule, Location, ProxyHost, Upstream};
use ppm_core::store::ConfigStore;
use ppm_store::{ConfigWriter, ConfigWriterExt, SqliteStore, WriteContext};

/// 10k hosts, each with 2 names, 2 upstreams, 1 header rule and 1 location.
fn config(n: usize) -> Config {
    let mut c = Config::new();
    for i in 0..n {
        let mut h = ProxyHost::new(
            [format!("h{i}.example.com"), format!("www.h{i}.example.com")],
            vec![
                Upstream::new("10.0.0.1", 1000 + (i % 50_000) as u16),
                Upstream::new("10.0.0.2", 1000 + (i % 50_000) as u16),
            ],
        );
        h.request_headers = vec![HeaderRule::set("X-Host", format!("h{i}"))];
        h.locations = vec![Location {
            path: "/api".into(),
            ..Location::default()
        }];
        c.proxy_hosts.push(h);
    }
    c
}

fn store_benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = rt.block_on(SqliteStore::open_dir(dir.path())).unwrap();
    let ctx = WriteContext::new("bench");
    rt.block_on(store.replace_all(&ctx, config(10_000), "bench setup"))
        .unwrap();
    // The default filters, as ppm-server compiles with (the header rules
    // build `headers` filters).
    let registry = ppm_filters::default_registry();
    let opts = CompileOptions {
        registry: &registry,
        global_filters: &[],
        previous: None,
    };

    let mut g = c.benchmark_group("store/10k_hosts");
    g.sample_size(10);
    g.bench_function("load", |b| {
        b.iter(|| black_box(rt.block_on(store.load()).unwrap()))
    });
    g.bench_function("load_and_compile", |b| {
        b.iter(|| {
            let snap = rt.block_on(store.load()).unwrap();
            black_box(compile_owned(snap, opts).unwrap())
        })
    });
    g.finish();

    let mut host = rt.block_on(store.get_proxy_host(1)).unwrap();
    let mut g = c.benchmark_group("store/write");
    g.bench_function("update_one_host", |b| {
        b.iter(|| {
            host.retries = (host.retries + 1) % 5;
            let committed = rt
                .block_on(store.update_proxy_host(&ctx, host.clone()))
                .unwrap();
            black_box(committed.revision)
        })
    });
    g.finish();
}

criterion_group!(benches, store_benches);
criterion_main!(benches);
