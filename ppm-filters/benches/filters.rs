//! Hot paths of the default filters: an access-list match with 1,000 CIDR
//! rules, Basic Auth with a cached valid credential, and a full default
//! chain per request.
//!
//! Run with: `cargo bench -p ppm-filters --bench filters`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use ppm_core::config::{AccessList, AccessUser, HeaderRule, IpRule, RuleAction};
use ppm_core::filter::{priority, FilterAction, FilterChain, FilterEntry, RequestCtx};
use ppm_core::http::{RequestHeader, ResponseHeader};
use ppm_filters::access::{hash_password, BasicAuth, Verdict};
use ppm_filters::{
    AccessControl, BlockExploits, ForceHttps, ForceHttpsConfig, Headers, HeadersConfig, IpAcl,
    RateLimit, RateLimitConfig,
};

fn thousand_rules() -> Vec<IpRule> {
    (0..1000u32)
        .map(|i| IpRule {
            action: if i % 2 == 0 {
                RuleAction::Allow
            } else {
                RuleAction::Deny
            },
            address: format!(
                "{}/{}",
                Ipv4Addr::from(i.wrapping_mul(2_654_435_761)),
                16 + i % 17
            ),
        })
        .collect()
}

fn acl(c: &mut Criterion) {
    let acl = IpAcl::new(&thousand_rules(), RuleAction::Deny).unwrap();
    let probes: Vec<IpAddr> = (0..1024u32)
        .map(|i| IpAddr::V4(Ipv4Addr::from(i.wrapping_mul(40_503).rotate_left(7))))
        .collect();
    let mut i = 0;
    c.bench_function("acl_match_1000_cidr_rules", |b| {
        b.iter(|| {
            i = (i + 1) & 1023;
            black_box(acl.check(black_box(probes[i])))
        })
    });
}

fn basic_auth(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let auth = BasicAuth::new(&[AccessUser {
        username: "ali".into(),
        password_hash: hash_password("letmein").unwrap(),
    }])
    .unwrap();
    let header = b"Basic YWxpOmxldG1laW4=";
    assert_eq!(rt.block_on(auth.verify(Some(header))), Verdict::Valid);
    c.bench_function("basic_auth_cached_valid", |b| {
        b.iter(|| rt.block_on(auth.verify(Some(black_box(header)))))
    });
}

fn chain(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let list = AccessList {
        rules: thousand_rules(),
        default_action: RuleAction::Allow,
        ..AccessList::default()
    };
    let chain = FilterChain::new(vec![
        FilterEntry {
            priority: priority::BLOCK_EXPLOITS,
            filter: Arc::new(BlockExploits::new().unwrap()),
        },
        FilterEntry {
            priority: priority::FORCE_HTTPS,
            filter: Arc::new(ForceHttps::new(ForceHttpsConfig::redirect().hsts(true)).unwrap()),
        },
        FilterEntry {
            priority: priority::ACCESS_LIST,
            filter: Arc::new(AccessControl::new(&list).unwrap()),
        },
        FilterEntry {
            priority: priority::RATE_LIMIT,
            filter: Arc::new(RateLimit::new(RateLimitConfig::per_ip(1_000_000_000, 1)).unwrap()),
        },
        FilterEntry {
            priority: priority::HEADERS,
            filter: Arc::new(
                Headers::new(HeadersConfig::new(
                    vec![HeaderRule::set("X-Real-IP", "$client_ip")],
                    vec![HeaderRule::set("X-Frame-Options", "DENY")],
                ))
                .unwrap(),
            ),
        },
    ]);
    let mut req = RequestHeader::build("GET", b"/api/v1/items?page=2&sort=name", None).unwrap();
    req.insert_header("host", "app.test").unwrap();
    req.insert_header(
        "user-agent",
        "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0",
    )
    .unwrap();
    req.insert_header("accept", "application/json").unwrap();
    c.bench_function("default_chain_per_request", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut ctx = RequestCtx::new(Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7))));
                ctx.tls = true;
                ctx.host.push_str("app.test");
                let action = chain.run_request(&req, &mut ctx).await.unwrap();
                assert!(matches!(action, FilterAction::Continue));
                let mut up = req.clone();
                chain.run_upstream_request(&mut up, &mut ctx).await.unwrap();
                let mut resp = ResponseHeader::build(200, Some(4)).unwrap();
                chain.run_response(&mut resp, &mut ctx).await.unwrap();
                chain.run_logging(200, &mut ctx);
                black_box(resp)
            })
        })
    });
}

criterion_group!(benches, acl, basic_auth, chain);
criterion_main!(benches);
