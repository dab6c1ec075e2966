//! The default filters through a real engine: a Pingora server on 127.0.0.1
//! in front of echo upstreams, configured by the model fields the compiler
//! turns into filters.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use ppm_core::config::{
    AccessList, AccessUser, Config, DeadHost, FilterSpec, IpRule, ProxyHost, RedirectionHost,
    RuleAction, Satisfy, Scheme, Upstream,
};
use ppm_core::engine::ProxyEngine;
use ppm_core::filter::{kinds, priority};
use ppm_core::store::MemoryStore;
use ppm_core::testing::{send, spawn_engine, EchoUpstream, TestProxy, TestResponse};
use ppm_filters::{AcmeChallenge, AcmeTokens};

fn up(u: &EchoUpstream) -> Upstream {
    Upstream::new("127.0.0.1", u.port())
}

fn host(id: i64, names: &[&str], u: &EchoUpstream) -> ProxyHost {
    let mut h = ProxyHost::new(names.iter().copied(), vec![up(u)]);
    h.id = id;
    h
}

/// An engine with every default kind, and the ACME filter as a global
/// instance sharing `tokens`, as the server sets it up.
async fn engine(config: Config, tokens: &AcmeTokens) -> ProxyEngine {
    ProxyEngine::builder()
        .store(Arc::new(MemoryStore::new(config)))
        .registry(ppm_filters::registry_with(tokens.clone()))
        .global_filter(
            priority::ACME_CHALLENGE,
            Arc::new(AcmeChallenge::new(tokens.clone())),
        )
        .poll_interval(Duration::from_millis(50))
        .build()
        .await
        .expect("engine builds")
}

async fn start(config: Config) -> (TestProxy, AcmeTokens) {
    let tokens = AcmeTokens::new();
    let e = engine(config, &tokens).await;
    (spawn_engine(&e).await.expect("proxy starts"), tokens)
}

async fn get(proxy: &TestProxy, host: &str, path: &str, extra: &[(&str, &str)]) -> TestResponse {
    let mut headers = vec![("host", host)];
    headers.extend_from_slice(extra);
    send(proxy.addr, "GET", path, &headers, b"").await.unwrap()
}

fn password_hash() -> &'static str {
    static H: OnceLock<String> = OnceLock::new();
    H.get_or_init(|| ppm_filters::access::hash_password("letmein").unwrap())
}

/// `ali:letmein` and `ali:wrong`.
const GOOD: &str = "Basic YWxpOmxldG1laW4=";
const BAD: &str = "Basic YWxpOndyb25n";

fn access_list(id: i64, rules: &[(&str, RuleAction)], users: bool, satisfy: Satisfy) -> AccessList {
    AccessList {
        id,
        name: format!("list {id}"),
        rules: rules
            .iter()
            .map(|(a, action)| IpRule {
                action: *action,
                address: a.to_string(),
            })
            .collect(),
        default_action: RuleAction::Deny,
        users: if users {
            vec![AccessUser {
                username: "ali".into(),
                password_hash: password_hash().to_string(),
            }]
        } else {
            vec![]
        },
        satisfy,
        pass_auth: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acme_tokens_pass_force_https_and_access_lists() {
    let u = EchoUpstream::start("u").await.unwrap();
    let mut c = Config::new();
    let mut forced = host(1, &["forced.test"], &u);
    forced.ssl_forced = true;
    c.proxy_hosts.push(forced);
    let mut guarded = host(2, &["guarded.test"], &u);
    guarded.access_list_id = Some(9);
    c.proxy_hosts.push(guarded);
    c.access_lists.push(access_list(
        9,
        &[("192.0.2.0/24", RuleAction::Allow)],
        false,
        Satisfy::Any,
    ));
    let (proxy, tokens) = start(c).await;
    tokens.insert("tok-EN_1", "tok-EN_1.thumbprint").unwrap();

    for h in ["forced.test", "guarded.test", "unknown.test"] {
        let r = get(&proxy, h, "/.well-known/acme-challenge/tok-EN_1", &[]).await;
        assert_eq!(r.status, 200, "{h}");
        assert_eq!(r.text(), "tok-EN_1.thumbprint");
    }
    // Everything else keeps its host's behaviour.
    let r = get(&proxy, "forced.test", "/x", &[]).await;
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("https://forced.test/x"));
    assert_eq!(get(&proxy, "guarded.test", "/", &[]).await.status, 403);
    // Unknown and malformed tokens are 404s, not the upstream or a file.
    for path in [
        "/.well-known/acme-challenge/other",
        "/.well-known/acme-challenge/..%2f..%2fetc%2fpasswd",
        "/.well-known/acme-challenge/a.b",
    ] {
        assert_eq!(
            get(&proxy, "forced.test", path, &[]).await.status,
            404,
            "{path}"
        );
    }
    assert_eq!(u.hits(), 0);
    tokens.remove("tok-EN_1");
    let r = get(
        &proxy,
        "guarded.test",
        "/.well-known/acme-challenge/tok-EN_1",
        &[],
    )
    .await;
    assert_eq!(r.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cidr_rules_for_v4_and_v6_and_spoofing() {
    let u = EchoUpstream::start("u").await.unwrap();
    let mut c = Config::new();
    let mut loopback = host(1, &["v4.test"], &u);
    loopback.access_list_id = Some(1);
    c.proxy_hosts.push(loopback);
    let mut denied = host(2, &["deny.test"], &u);
    denied.access_list_id = Some(2);
    c.proxy_hosts.push(denied);
    c.access_lists.push(access_list(
        1,
        &[("127.0.0.0/8", RuleAction::Allow)],
        false,
        Satisfy::Any,
    ));
    c.access_lists.push(access_list(
        2,
        &[
            ("127.0.0.1", RuleAction::Deny),
            ("10.0.0.0/8", RuleAction::Allow),
            ("all", RuleAction::Allow),
        ],
        false,
        Satisfy::Any,
    ));
    let mut v6 = host(3, &["v6.test"], &u);
    v6.access_list_id = Some(3);
    c.proxy_hosts.push(v6);
    c.access_lists.push(access_list(
        3,
        &[
            ("2001:db8:bad::/48", RuleAction::Deny),
            ("2001:db8::/32", RuleAction::Allow),
        ],
        false,
        Satisfy::Any,
    ));
    let (proxy, _) = start(c.clone()).await;

    assert_eq!(get(&proxy, "v4.test", "/", &[]).await.status, 200);
    assert_eq!(get(&proxy, "deny.test", "/", &[]).await.status, 403);
    // The peer is not a trusted proxy: a spoofed X-Forwarded-For from an
    // allowed network does not pass the rule.
    let r = get(&proxy, "deny.test", "/", &[("x-forwarded-for", "10.1.2.3")]).await;
    assert_eq!(r.status, 403);
    let r = get(
        &proxy,
        "v6.test",
        "/",
        &[("x-forwarded-for", "2001:db8::5")],
    )
    .await;
    assert_eq!(r.status, 403);
    drop(proxy);

    // Behind a trusted proxy the forwarded client is the one checked, v4 and v6.
    c.settings.trusted_proxies = vec!["127.0.0.0/8".into()];
    let (proxy, _) = start(c).await;
    let r = get(&proxy, "deny.test", "/", &[("x-forwarded-for", "10.1.2.3")]).await;
    assert_eq!(r.status, 200);
    let r = get(
        &proxy,
        "v6.test",
        "/",
        &[("x-forwarded-for", "2001:db8:1::5")],
    )
    .await;
    assert_eq!(r.status, 200);
    let r = get(
        &proxy,
        "v6.test",
        "/",
        &[("x-forwarded-for", "2001:db8:bad::5")],
    )
    .await;
    assert_eq!(r.status, 403);
    let r = get(
        &proxy,
        "v6.test",
        "/",
        &[("x-forwarded-for", "2001:db9::5")],
    )
    .await;
    assert_eq!(r.status, 403);
    let r = get(
        &proxy,
        "v4.test",
        "/",
        &[("x-forwarded-for", "::ffff:127.0.0.9")],
    )
    .await;
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn satisfy_any_and_all_with_basic_auth() {
    let u = EchoUpstream::start("u").await.unwrap();
    let mut c = Config::new();
    // The test client is 127.0.0.1: "in" lists allow it, "out" lists do not.
    let lists = [
        (1, "any-in.test", "127.0.0.0/8", Satisfy::Any),
        (2, "any-out.test", "10.0.0.0/8", Satisfy::Any),
        (3, "all-in.test", "127.0.0.0/8", Satisfy::All),
        (4, "all-out.test", "10.0.0.0/8", Satisfy::All),
    ];
    for (id, name, net, satisfy) in lists {
        let mut h = host(id, &[name], &u);
        h.access_list_id = Some(id);
        c.proxy_hosts.push(h);
        c.access_lists
            .push(access_list(id, &[(net, RuleAction::Allow)], true, satisfy));
    }
    let (proxy, _) = start(c).await;
    let cases = [
        ("any-in.test", None, 200),
        ("any-out.test", None, 401),
        ("any-out.test", Some(BAD), 401),
        ("any-out.test", Some(GOOD), 200),
        ("all-in.test", None, 401),
        ("all-in.test", Some(GOOD), 200),
        ("all-out.test", Some(GOOD), 403),
    ];
    for (h, auth, want) in cases {
        let extra: Vec<(&str, &str)> = auth.map(|a| ("authorization", a)).into_iter().collect();
        let r = get(&proxy, h, "/", &extra).await;
        assert_eq!(r.status, want, "{h} {auth:?}");
        if want == 401 {
            let id = lists.iter().find(|l| l.1 == h).unwrap().0;
            let expected = format!("Basic realm=\"list {id}\", charset=\"UTF-8\"");
            assert_eq!(r.header("www-authenticate"), Some(expected.as_str()));
        }
        if want == 200 && auth.is_some() {
            // pass_auth is off: the credentials stay at the proxy.
            assert!(
                r.json()["headers"].get("authorization").is_none(),
                "{}",
                r.text()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_keep_path_as_configured_and_ignore_the_host_header() {
    let mut c = Config::new();
    c.redirection_hosts.push(RedirectionHost {
        id: 1,
        domain_names: vec!["old.test".into()],
        status: 308,
        forward_scheme: Some(Scheme::Https),
        forward_domain: "new.test:8443".into(),
        preserve_path: true,
        ..RedirectionHost::default()
    });
    c.redirection_hosts.push(RedirectionHost {
        id: 2,
        domain_names: vec!["flat.test".into()],
        status: 302,
        forward_scheme: None,
        forward_domain: "home.test".into(),
        preserve_path: false,
        ..RedirectionHost::default()
    });
    let (proxy, _) = start(c).await;
    let r = get(
        &proxy,
        "old.test",
        "/a/b?c=d&e=f",
        &[("x-forwarded-host", "evil.test")],
    )
    .await;
    assert_eq!(r.status, 308);
    assert_eq!(
        r.header("location"),
        Some("https://new.test:8443/a/b?c=d&e=f")
    );
    // An absolute-form target naming another authority never reaches the
    // Location: the engine refuses it (400) or the configured target is used.
    let r = send(
        proxy.addr,
        "GET",
        "http://evil.test/p?q",
        &[("host", "old.test")],
        b"",
    )
    .await
    .unwrap();
    assert!(r.status == 400 || r.status == 308, "{}", r.status);
    if let Some(l) = r.header("location") {
        assert_eq!(l, "https://new.test:8443/p?q");
    }
    let r = get(&proxy, "flat.test", "/deep/path?x=1", &[]).await;
    assert_eq!(r.status, 302);
    assert_eq!(r.header("location"), Some("http://home.test/"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_answers_429_then_recovers() {
    let u = EchoUpstream::start("u").await.unwrap();
    let mut c = Config::new();
    let mut h = host(1, &["rl.test"], &u);
    h.filters.push(FilterSpec::new(
        kinds::RATE_LIMIT,
        serde_json::json!({"requests": 3, "window_secs": 1}),
    ));
    c.proxy_hosts.push(h);
    c.proxy_hosts.push(host(2, &["free.test"], &u));
    let (proxy, _) = start(c).await;

    // Several windows may pass while we send; stop at the first 429.
    let mut limited = None;
    for _ in 0..20 {
        let r = get(&proxy, "rl.test", "/", &[]).await;
        if r.status == 429 {
            limited = Some(r);
            break;
        }
        assert_eq!(r.status, 200);
    }
    let r = limited.expect("a 429 within 20 requests");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert_eq!(retry, 1);
    // Other hosts are not limited.
    assert_eq!(get(&proxy, "free.test", "/", &[]).await.status, 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(get(&proxy, "rl.test", "/", &[]).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_pages_per_host_with_global_fallback() {
    let u = EchoUpstream::start("u").await.unwrap();
    let mut c = Config::new();
    c.settings.filters.push(FilterSpec {
        kind: kinds::ERROR_PAGES.into(),
        config: serde_json::json!({
            "pages": {"404": "<h1>global 404</h1>", "502": "<h1>global 502</h1>"},
            "default_site": "<h1>nothing at this address</h1>"
        }),
        priority: Some(priority::ERROR_PAGES - 10),
    });
    c.dead_hosts.push(DeadHost {
        id: 1,
        domain_names: vec!["dead.test".into()],
        filters: vec![FilterSpec::new(
            kinds::ERROR_PAGES,
            serde_json::json!({"pages": {"404": "<h1>dead host</h1>"}}),
        )],
        ..DeadHost::default()
    });
    c.dead_hosts.push(DeadHost {
        id: 2,
        domain_names: vec!["dead2.test".into()],
        ..DeadHost::default()
    });
    let mut broken = ProxyHost::new(
        ["broken.test"],
        vec![Upstream::new(
            "127.0.0.1",
            ppm_core::testing::free_port().unwrap(),
        )],
    );
    broken.id = 3;
    broken.retries = 0;
    broken.filters.push(FilterSpec::new(
        kinds::ERROR_PAGES,
        serde_json::json!({"pages": {"502": "<h1>broken is down</h1>"}}),
    ));
    c.proxy_hosts.push(broken);
    c.proxy_hosts.push(host(4, &["ok.test"], &u));
    let (proxy, _) = start(c).await;

    let r = get(&proxy, "dead.test", "/", &[]).await;
    assert_eq!((r.status, r.text().as_str()), (404, "<h1>dead host</h1>"));
    let r = get(&proxy, "dead2.test", "/", &[]).await;
    assert_eq!((r.status, r.text().as_str()), (404, "<h1>global 404</h1>"));
    let r = get(&proxy, "broken.test", "/", &[]).await;
    assert_eq!(r.status, 502);
    assert_eq!(r.text(), "<h1>broken is down</h1>");
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let r = get(&proxy, "nowhere.test", "/", &[]).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (404, "<h1>nothing at this address</h1>")
    );
    // Upstream responses are not replaced.
    let r = get(&proxy, "ok.test", "/status/404", &[]).await;
    assert_eq!(r.status, 404);
    assert!(!r.text().contains("global"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_rules_and_exploit_blocking() {
    let u = EchoUpstream::start("u").await.unwrap();
    let mut c = Config::new();
    let mut h = host(1, &["h.test"], &u);
    h.block_exploits = true;
    h.request_headers = vec![ppm_core::config::HeaderRule::set(
        "X-Client",
        "$client_ip via $scheme",
    )];
    h.response_headers = vec![ppm_core::config::HeaderRule::set("X-Frame-Options", "DENY")];
    c.proxy_hosts.push(h);
    let (proxy, _) = start(c).await;
    let r = get(&proxy, "h.test", "/page?q=1", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["headers"]["x-client"][0], "127.0.0.1 via http");
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    for path in [
        "/.git/config",
        "/x?id=1+union+select+1",
        "/%2e%2e/%2e%2e/etc/passwd",
    ] {
        let r = get(&proxy, "h.test", path, &[]).await;
        assert_eq!(r.status, 403, "{path}");
        // Responses from filters get the response rules too.
        assert_eq!(r.header("x-frame-options"), Some("DENY"));
    }
    assert_eq!(u.hits(), 1);
}

/// Runs the engine with a plain listener and a TLS one whose fallback
/// certificate (self-signed) serves every name.
async fn start_tls(config: Config) -> ppm_core::testing::TestProxy {
    let (cert, key) = ppm_core::testing::self_signed_cert("secure.test").unwrap();
    let fallback = ppm_core::tls::ParsedCertificate::from_pem(0, &cert, &key).unwrap();
    let e = engine(config, &AcmeTokens::new()).await;
    ppm_core::testing::spawn_engine_tls(&e, Some(fallback))
        .await
        .unwrap()
}

async fn get_tls(addr: SocketAddr, host: &str, path: &str) -> TestResponse {
    let (_, mut s) = ppm_core::testing::tls_connect(addr, Some(host), &[], None)
        .await
        .unwrap();
    ppm_core::testing::send_on(&mut s, "GET", path, &[("host", host)], b"")
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hsts_only_over_tls() {
    let u = EchoUpstream::start("u").await.unwrap();
    let mut c = Config::new();
    let mut h = host(1, &["secure.test"], &u);
    h.ssl_forced = true;
    h.hsts_enabled = true;
    h.hsts_subdomains = true;
    c.proxy_hosts.push(h);
    let mut hsts_only = host(2, &["hsts.test"], &u);
    hsts_only.hsts_enabled = true;
    c.proxy_hosts.push(hsts_only);
    let p = start_tls(c).await;

    let r = send(
        p.addr,
        "POST",
        "/form?a=1",
        &[("host", "secure.test")],
        b"x=1",
    )
    .await
    .unwrap();
    assert_eq!(r.status, 308);
    assert_eq!(r.header("location"), Some("https://secure.test/form?a=1"));
    assert_eq!(r.header("strict-transport-security"), None);
    let r = send(p.addr, "GET", "/", &[("host", "hsts.test")], b"")
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("strict-transport-security"), None);

    let r = get_tls(p.tls_addr.unwrap(), "secure.test", "/").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("strict-transport-security"),
        Some("max-age=63072000; includeSubDomains")
    );
    let r = get_tls(p.tls_addr.unwrap(), "hsts.test", "/").await;
    assert_eq!(
        r.header("strict-transport-security"),
        Some("max-age=63072000")
    );
}
