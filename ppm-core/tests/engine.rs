//! The engine end to end: a real Pingora server on 127.0.0.1 in front of real
//! upstream servers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ppm_core::config::{
    Balancing, Config, DefaultSite, HashKey, HealthCheck, HealthCheckKind, Location, MatchKind,
    ProxyHost, Scheme, Upstream,
};
use ppm_core::engine::ProxyEngine;
use ppm_core::error::ReloadError;
use ppm_core::store::MemoryStore;
use ppm_core::testing::{send, spawn_engine, wait_until, EchoUpstream, TestProxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn up(u: &EchoUpstream) -> Upstream {
    Upstream::new("127.0.0.1", u.port())
}

fn host(id: i64, names: &[&str], ups: Vec<Upstream>) -> ProxyHost {
    let mut h = ProxyHost::new(names.iter().copied(), ups);
    h.id = id;
    h
}

async fn start(config: Config) -> (Arc<MemoryStore>, TestProxy) {
    let store = Arc::new(MemoryStore::new(config));
    let engine = ProxyEngine::builder()
        .store(store.clone())
        .poll_interval(Duration::from_millis(50))
        .build()
        .await
        .expect("engine builds");
    let proxy = spawn_engine(&engine).await.expect("proxy starts");
    (store, proxy)
}

fn upstream_of(resp: &ppm_core::testing::TestResponse) -> String {
    resp.header("x-upstream").unwrap_or("").to_string()
}

/// A port with nothing listening.
fn dead_port() -> u16 {
    ppm_core::testing::free_port().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_exact_wildcard_default_and_locations() {
    let a = EchoUpstream::start("a").await.unwrap();
    let w = EchoUpstream::start("wild").await.unwrap();
    let api = EchoUpstream::start("api").await.unwrap();
    let exact = EchoUpstream::start("exact").await.unwrap();
    let re = EchoUpstream::start("regex").await.unwrap();

    let mut c = Config::new();
    let mut ha = host(1, &["a.test", "www.a.test"], vec![up(&a)]);
    ha.locations = vec![
        Location {
            path: "/api".into(),
            upstreams: vec![up(&api)],
            ..Location::default()
        },
        Location {
            path: "/api/exact".into(),
            match_kind: MatchKind::Exact,
            upstreams: vec![up(&exact)],
            ..Location::default()
        },
        Location {
            path: r"\.php$".into(),
            match_kind: MatchKind::Regex,
            upstreams: vec![up(&re)],
            ..Location::default()
        },
        Location {
            path: "/strip".into(),
            rewrite: Some(String::new()),
            ..Location::default()
        },
        Location {
            path: "/old".into(),
            rewrite: Some("/new".into()),
            ..Location::default()
        },
    ];
    c.proxy_hosts.push(ha);
    c.proxy_hosts.push(host(2, &["*.wild.test"], vec![up(&w)]));
    let (_store, proxy) = start(c).await;

    let r = proxy.get("a.test", "/").await.unwrap();
    assert_eq!((r.status, upstream_of(&r).as_str()), (200, "a"));
    // Case-insensitive, port ignored.
    let r = proxy.get("WWW.A.Test:8080", "/x").await.unwrap();
    assert_eq!(upstream_of(&r), "a");
    // Wildcards match any depth but not the apex.
    assert_eq!(
        upstream_of(&proxy.get("x.wild.test", "/").await.unwrap()),
        "wild"
    );
    assert_eq!(
        upstream_of(&proxy.get("x.y.wild.test", "/").await.unwrap()),
        "wild"
    );
    let apex = proxy.get("wild.test", "/").await.unwrap();
    assert_eq!(apex.status, 404);
    // Unknown host: the default site (404), never the first host.
    let r = proxy.get("unknown.test", "/").await.unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(a.hits() + w.hits(), 4);

    // Locations: segment boundary, exact, regex.
    assert_eq!(
        upstream_of(&proxy.get("a.test", "/api").await.unwrap()),
        "api"
    );
    assert_eq!(
        upstream_of(&proxy.get("a.test", "/api/users").await.unwrap()),
        "api"
    );
    assert_eq!(
        upstream_of(&proxy.get("a.test", "/apix").await.unwrap()),
        "a"
    );
    assert_eq!(
        upstream_of(&proxy.get("a.test", "/api/exact").await.unwrap()),
        "exact"
    );
    assert_eq!(
        upstream_of(&proxy.get("a.test", "/api/exact/x").await.unwrap()),
        "api"
    );
    assert_eq!(
        upstream_of(&proxy.get("a.test", "/index.php").await.unwrap()),
        "regex"
    );
    // Rewrites.
    let r = proxy.get("a.test", "/strip/x/y?q=1").await.unwrap();
    assert_eq!(r.json()["path"], "/x/y?q=1");
    let r = proxy.get("a.test", "/strip").await.unwrap();
    assert_eq!(r.json()["path"], "/");
    let r = proxy.get("a.test", "/old/page").await.unwrap();
    assert_eq!(r.json()["path"], "/new/page");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_site_redirect_and_host() {
    let a = EchoUpstream::start("a").await.unwrap();
    let mut c = Config::new();
    c.proxy_hosts.push(host(7, &["a.test"], vec![up(&a)]));
    c.settings.default_site = DefaultSite::Redirect {
        url: "https://example.com/".into(),
    };
    let (store, proxy) = start(c).await;
    let r = proxy.get("nope.test", "/x").await.unwrap();
    assert_eq!(r.status, 302);
    assert_eq!(r.header("location"), Some("https://example.com/"));

    let rev = store.update(|c| c.settings.default_site = DefaultSite::Host { host_id: 7 });
    assert_eq!(proxy.handle.reload().await.unwrap(), rev);
    let r = proxy.get("nope.test", "/x").await.unwrap();
    assert_eq!(upstream_of(&r), "a");

    // Without a Host: HTTP/1.0 gets the default site, HTTP/1.1 a 400.
    let raw = |request: &'static [u8]| async move {
        let mut s = TcpStream::connect(proxy.addr).await.unwrap();
        s.write_all(request).await.unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
            .await
            .unwrap()
            .unwrap();
        String::from_utf8_lossy(&out).to_string()
    };
    let r = raw(b"GET /x HTTP/1.0\r\n\r\n").await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(r.to_ascii_lowercase().contains("x-upstream: a\r\n"), "{r}");
    let r = raw(b"GET /x HTTP/1.1\r\nconnection: close\r\n\r\n").await;
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn balancing_algorithms_distribute() {
    let u1 = EchoUpstream::start("u1").await.unwrap();
    let u2 = EchoUpstream::start("u2").await.unwrap();
    let mut c = Config::new();
    c.proxy_hosts
        .push(host(1, &["rr.test"], vec![up(&u1), up(&u2).weight(3)]));
    let mut random = host(2, &["random.test"], vec![up(&u1), up(&u2)]);
    random.balancing = Balancing::Random;
    c.proxy_hosts.push(random);
    let mut hashed = host(3, &["hash.test"], vec![up(&u1), up(&u2)]);
    hashed.balancing = Balancing::ConsistentHash {
        key: HashKey::Header("x-user".into()),
    };
    c.proxy_hosts.push(hashed);
    let mut least = host(4, &["least.test"], vec![up(&u1), up(&u2)]);
    least.balancing = Balancing::LeastConnections;
    c.proxy_hosts.push(least);
    let (_store, proxy) = start(c).await;

    // Weighted round robin: exactly 1:3 over sequential requests.
    let mut counts: HashMap<String, u32> = HashMap::new();
    for _ in 0..80 {
        let r = proxy.get("rr.test", "/").await.unwrap();
        *counts.entry(upstream_of(&r)).or_default() += 1;
    }
    assert_eq!((counts["u1"], counts["u2"]), (20, 60), "{counts:?}");

    // Random: both used.
    let mut counts: HashMap<String, u32> = HashMap::new();
    for _ in 0..100 {
        let r = proxy.get("random.test", "/").await.unwrap();
        *counts.entry(upstream_of(&r)).or_default() += 1;
    }
    assert!(counts.get("u1").copied().unwrap_or(0) >= 20, "{counts:?}");
    assert!(counts.get("u2").copied().unwrap_or(0) >= 20, "{counts:?}");

    // Consistent hash: one key, one upstream; many keys spread.
    let mut per_key = HashMap::new();
    let mut seen = std::collections::HashSet::new();
    for round in 0..3 {
        for k in 0..20 {
            let key = format!("user-{k}");
            let r = send(
                proxy.addr,
                "GET",
                "/",
                &[("host", "hash.test"), ("x-user", &key)],
                b"",
            )
            .await
            .unwrap();
            let got = upstream_of(&r);
            seen.insert(got.clone());
            if round == 0 {
                per_key.insert(key, got);
            } else {
                assert_eq!(per_key[&key], got, "key {key} moved");
            }
        }
    }
    assert_eq!(seen.len(), 2, "keys should spread over both upstreams");

    // Least connections: while one upstream holds a slow request, every
    // new request goes to the other.
    let (h1, h2) = (u1.hits(), u2.hits());
    let slow_addr = proxy.addr;
    let slow = tokio::spawn(async move {
        send(
            slow_addr,
            "GET",
            "/sleep/1500",
            &[("host", "least.test")],
            b"",
        )
        .await
    });
    assert!(
        wait_until(Duration::from_secs(5), || async {
            u1.hits() + u2.hits() > h1 + h2
        })
        .await
    );
    let busy = if u1.hits() > h1 { "u1" } else { "u2" };
    for _ in 0..10 {
        let r = proxy.get("least.test", "/").await.unwrap();
        assert_ne!(
            upstream_of(&r),
            busy,
            "least-connections chose the busy upstream"
        );
    }
    assert_eq!(slow.await.unwrap().unwrap().status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_with_health_checks_and_retries() {
    let good = EchoUpstream::start("good").await.unwrap();
    let doomed = EchoUpstream::start("doomed").await.unwrap();
    let doomed_port = doomed.port();
    let mut c = Config::new();
    let mut h = host(
        1,
        &["f.test"],
        vec![up(&good), Upstream::new("127.0.0.1", doomed_port)],
    );
    h.health_check = Some(HealthCheck {
        kind: HealthCheckKind::Http {
            path: "/health".into(),
            host: None,
            expected_status: 200,
        },
        interval_ms: 100,
        timeout_ms: 200,
        ..HealthCheck::default()
    });
    h.retries = 1;
    c.proxy_hosts.push(h);
    let (_store, proxy) = start(c).await;

    // Both serve while healthy.
    let mut seen = std::collections::HashSet::new();
    for _ in 0..10 {
        seen.insert(upstream_of(&proxy.get("f.test", "/").await.unwrap()));
    }
    assert_eq!(seen.len(), 2);

    doomed.stop();
    // The health check notices within its window...
    let handle = proxy.handle.clone();
    assert!(
        wait_until(Duration::from_secs(5), || {
            let handle = handle.clone();
            async move {
                handle.upstream_health().iter().any(|g| {
                    g.upstreams
                        .iter()
                        .any(|u| u.addr.port() == doomed_port && !u.healthy)
                })
            }
        })
        .await,
        "health check never marked the dead upstream down"
    );
    // ...after which no client sees an error.
    for _ in 0..50 {
        let r = proxy.get("f.test", "/").await.unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(upstream_of(&r), "good");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_failure_retries_on_another_upstream() {
    let good = EchoUpstream::start("good").await.unwrap();
    let mut c = Config::new();
    // No active checks: only retries and passive marking protect clients.
    let mut h = host(
        1,
        &["r.test"],
        vec![Upstream::new("127.0.0.1", dead_port()), up(&good)],
    );
    h.retries = 1;
    c.proxy_hosts.push(h);
    let mut no_retry = host(
        2,
        &["n.test"],
        vec![Upstream::new("127.0.0.1", dead_port())],
    );
    no_retry.retries = 0;
    c.proxy_hosts.push(no_retry);
    let (_store, proxy) = start(c).await;
    for _ in 0..20 {
        let r = proxy.get("r.test", "/").await.unwrap();
        assert_eq!(r.status, 200);
    }
    // POST is not retried on a group whose only upstream is down: 502.
    let r = send(proxy.addr, "POST", "/", &[("host", "n.test")], b"x")
        .await
        .unwrap();
    assert_eq!(r.status, 502);
    assert!(
        !r.text().contains("127.0.0.1"),
        "error page leaks internals"
    );
    let health = proxy.handle.upstream_health();
    assert!(health
        .iter()
        .flat_map(|g| g.upstreams.iter())
        .any(|u| u.passive_down));
}

/// Reads an HTTP head, up to and including the blank line; `None` if the
/// connection ends first.
async fn read_head(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut b).await.ok()?;
        head.push(b[0]);
    }
    Some(head)
}

/// Sends a WebSocket upgrade for `ws.test` through `proxy`; returns the
/// connection and the response head.
async fn ws_open(proxy: SocketAddr) -> (TcpStream, String) {
    let mut s = TcpStream::connect(proxy).await.unwrap();
    s.write_all(
        b"GET /chat HTTP/1.1\r\nhost: ws.test\r\nupgrade: websocket\r\nconnection: upgrade\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n",
    )
    .await
    .unwrap();
    let head = read_head(&mut s).await.unwrap();
    (s, String::from_utf8_lossy(&head).to_string())
}

/// A WebSocket upstream that answers an upgrade at once, then echoes every
/// byte.
///
/// An upstream this fast once exposed a Pingora 0.9 race: the tunnel was torn
/// down when the `101` was read before the end of the upgrade request's empty
/// body was forwarded (cloudflare/pingora#946, patched in
/// `vendor/pingora-proxy`).
async fn ws_upstream() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                if read_head(&mut s).await.is_none() {
                    return;
                }
                let _ = s
                    .write_all(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n")
                    .await;
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrade_passes_through() {
    let u = EchoUpstream::start("ws").await.unwrap();
    let ws_port = ws_upstream().await;
    let mut c = Config::new();
    c.proxy_hosts.push(host(
        1,
        &["ws.test"],
        vec![Upstream::new("127.0.0.1", ws_port)],
    ));
    let mut off = host(2, &["nows.test"], vec![up(&u)]);
    off.allow_websocket_upgrade = false;
    c.proxy_hosts.push(off);
    let (_store, proxy) = start(c).await;

    let (mut s, head) = ws_open(proxy.addr).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    for i in 0..20 {
        let msg = format!("frame-{i}");
        s.write_all(msg.as_bytes()).await.unwrap();
        let mut got = vec![0u8; msg.len()];
        tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut got))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, msg.as_bytes());
    }

    // With upgrades off the upstream never sees the Upgrade header.
    let r = send(
        proxy.addr,
        "GET",
        "/",
        &[
            ("host", "nows.test"),
            ("upgrade", "websocket"),
            ("connection", "upgrade"),
        ],
        b"",
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200);
    assert!(r.json()["headers"].get("upgrade").is_none(), "{}", r.text());
}

async fn tls_upstream() -> (SocketAddr, Arc<AtomicU64>) {
    use openssl::ssl::{SslAcceptor, SslMethod};
    let (cert, key) = ppm_core::testing::self_signed_cert("upstream.test").unwrap();
    let cert = openssl::x509::X509::from_pem(cert.as_bytes()).unwrap();
    let key = openssl::pkey::PKey::private_key_from_pem(key.as_bytes()).unwrap();
    let mut acc = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).unwrap();
    acc.set_certificate(&cert).unwrap();
    acc.set_private_key(&key).unwrap();
    let acc = Arc::new(acc.build());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicU64::new(0));
    let h = hits.clone();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let acc = acc.clone();
            let h = h.clone();
            tokio::spawn(async move {
                let ssl = openssl::ssl::Ssl::new(acc.context()).unwrap();
                let mut s = tokio_openssl::SslStream::new(ssl, tcp).unwrap();
                if std::pin::Pin::new(&mut s).accept().await.is_ok() {
                    let _ = ppm_core::testing::serve_echo(s, "tls", &h).await;
                }
            });
        }
    });
    (addr, hits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_upstream() {
    let (addr, hits) = tls_upstream().await;
    let mut c = Config::new();
    let mut h = host(
        1,
        &["s.test"],
        vec![Upstream::new("127.0.0.1", addr.port())],
    );
    h.forward_scheme = Scheme::Https;
    h.upstream_sni = Some("upstream.test".into());
    h.upstream_verify_tls = false;
    c.proxy_hosts.push(h);
    // Same upstream with verification on: the self-signed certificate fails.
    let mut v = host(
        2,
        &["v.test"],
        vec![Upstream::new("127.0.0.1", addr.port())],
    );
    v.forward_scheme = Scheme::Https;
    v.upstream_sni = Some("upstream.test".into());
    v.retries = 0;
    c.proxy_hosts.push(v);
    let (_store, proxy) = start(c).await;
    let r = proxy.get("s.test", "/secure").await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(upstream_of(&r), "tls");
    assert_eq!(r.json()["path"], "/secure");
    assert_eq!(hits.load(Ordering::Relaxed), 1);
    let r = proxy.get("v.test", "/").await.unwrap();
    assert_eq!(r.status, 502);
    assert_eq!(hits.load(Ordering::Relaxed), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_and_body_limit() {
    let u = EchoUpstream::start("u").await.unwrap();
    let mut c = Config::new();
    let mut h = host(1, &["t.test"], vec![up(&u)]);
    h.timeouts.read_ms = Some(300);
    h.max_body_size = Some(1024);
    h.retries = 0;
    c.proxy_hosts.push(h);
    let (_store, proxy) = start(c).await;

    assert_eq!(proxy.get("t.test", "/sleep/50").await.unwrap().status, 200);
    let r = proxy.get("t.test", "/sleep/2000").await.unwrap();
    assert_eq!(r.status, 504);

    let small = vec![b'a'; 1024];
    let r = send(proxy.addr, "POST", "/", &[("host", "t.test")], &small)
        .await
        .unwrap();
    assert_eq!((r.status, r.json()["body_len"].as_u64()), (200, Some(1024)));
    let big = vec![b'a'; 1025];
    let before = u.hits();
    let r = send(proxy.addr, "POST", "/", &[("host", "t.test")], &big)
        .await
        .unwrap();
    assert_eq!(r.status, 413);
    assert_eq!(
        u.hits(),
        before,
        "an oversized body must not reach the upstream"
    );
    // Chunked bodies are counted as they stream.
    let mut chunked = Vec::new();
    for _ in 0..4 {
        chunked.extend_from_slice(b"200\r\n");
        chunked.extend_from_slice(&[b'b'; 512]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let r = send(
        proxy.addr,
        "POST",
        "/",
        &[("host", "t.test"), ("transfer-encoding", "chunked")],
        &chunked,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 413, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_headers_and_spoofing() {
    let u = EchoUpstream::start("u").await.unwrap();
    let mut c = Config::new();
    c.proxy_hosts.push(host(1, &["h.test"], vec![up(&u)]));
    let (store, proxy) = start(c).await;

    // Untrusted peer: a spoofed X-Forwarded-For changes nothing.
    let r = send(
        proxy.addr,
        "GET",
        "/",
        &[
            ("host", "h.test:8080"),
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-proto", "https"),
            ("connection", "x-secret, keep-alive"),
            ("x-secret", "hop"),
            ("keep-alive", "timeout=5"),
            ("proxy-authorization", "Basic Zm9vOmJhcg=="),
        ],
        b"",
    )
    .await
    .unwrap();
    let hdrs = &r.json()["headers"];
    assert_eq!(hdrs["x-real-ip"][0], "127.0.0.1");
    assert_eq!(hdrs["x-forwarded-for"][0], "127.0.0.1");
    assert_eq!(hdrs["x-forwarded-proto"][0], "http");
    assert_eq!(hdrs["x-forwarded-host"][0], "h.test:8080");
    assert_eq!(hdrs["x-forwarded-port"][0], "8080");
    assert_eq!(hdrs["host"][0], "h.test:8080");
    for hop in ["x-secret", "keep-alive", "proxy-authorization"] {
        assert!(hdrs.get(hop).is_none(), "{hop} crossed the proxy: {hdrs}");
    }

    // Trusted peer: the rightmost untrusted address is the client.
    store.update(|c| c.settings.trusted_proxies = vec!["127.0.0.0/8".into()]);
    proxy.handle.reload().await.unwrap();
    let r = send(
        proxy.addr,
        "GET",
        "/",
        &[
            ("host", "h.test"),
            ("x-forwarded-for", "6.6.6.6, 203.0.113.7, 127.0.0.5"),
        ],
        b"",
    )
    .await
    .unwrap();
    let hdrs = &r.json()["headers"];
    assert_eq!(hdrs["x-real-ip"][0], "203.0.113.7");
    assert_eq!(
        hdrs["x-forwarded-for"][0],
        "6.6.6.6, 203.0.113.7, 127.0.0.5, 127.0.0.1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_config_is_rejected_and_old_keeps_serving() {
    let u = EchoUpstream::start("u").await.unwrap();
    let mut c = Config::new();
    c.proxy_hosts.push(host(1, &["ok.test"], vec![up(&u)]));
    let (store, proxy) = start(c).await;
    let good_rev = proxy.handle.revision();

    let bad_rev = store.update(|c| {
        c.proxy_hosts[0].upstreams[0].port = 0;
        c.proxy_hosts.push(host(2, &["bad..test"], vec![]));
    });
    let err = proxy.handle.reload().await.unwrap_err();
    let paths: Vec<String> = err.field_errors().iter().map(|e| e.path.clone()).collect();
    assert!(matches!(err, ReloadError::Config(_)));
    assert!(
        paths.contains(&"proxy_hosts[0].upstreams[0].port".to_string()),
        "{paths:?}"
    );
    assert!(
        paths.contains(&"proxy_hosts[1].domain_names[0]".to_string()),
        "{paths:?}"
    );
    assert!(
        paths.contains(&"proxy_hosts[1].upstreams".to_string()),
        "{paths:?}"
    );
    assert_eq!(proxy.handle.revision(), good_rev);
    assert_eq!(proxy.handle.last_error().unwrap().0, bad_rev);
    assert_eq!(proxy.get("ok.test", "/").await.unwrap().status, 200);
    // check() refuses the same config without touching anything.
    assert!(proxy.handle.check(store.snapshot().config).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_failed_requests_across_200_reloads_under_load() {
    let u1 = EchoUpstream::start("u1").await.unwrap();
    let u2 = EchoUpstream::start("u2").await.unwrap();
    let mut c = Config::new();
    c.proxy_hosts.push(host(1, &["load.test"], vec![up(&u1)]));
    let (store, proxy) = start(c).await;

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (stop, ok, failed, addr) = (stop.clone(), ok.clone(), failed.clone(), proxy.addr);
        clients.push(tokio::spawn(async move {
            // Bounded: stops when told or after 20,000 requests.
            for _ in 0..20_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                match send(addr, "GET", "/", &[("host", "load.test")], b"").await {
                    Ok(r) if r.status == 200 => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    let (p1, p2) = (u1.port(), u2.port());
    for i in 0..200u32 {
        store.update(|c| {
            let h = &mut c.proxy_hosts[0];
            h.upstreams = vec![Upstream::new("127.0.0.1", if i % 2 == 0 { p2 } else { p1 })];
            h.response_headers.clear();
            h.timeouts.read_ms = Some(10_000 + u64::from(i));
        });
        proxy.handle.reload().await.unwrap();
        // Let requests run against every revision before the next swap.
        let seen = ok.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed);
        let progressed = wait_until(Duration::from_secs(5), || {
            let (ok, failed) = (ok.clone(), failed.clone());
            async move { ok.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed) >= seen + 4 }
        })
        .await;
        assert!(progressed, "requests stalled after reload {i}");
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    println!("200 reloads: {ok} requests ok, {failed} failed");
    assert!(ok >= 800, "too little load to mean anything: {ok}");
    assert_eq!(failed, 0);
    assert!(u1.hits() > 0 && u2.hits() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_changes_apply_without_explicit_reload() {
    let u = EchoUpstream::start("u").await.unwrap();
    let (store, proxy) = start(Config::new()).await;
    assert_eq!(proxy.get("late.test", "/").await.unwrap().status, 404);
    let rev = store.update(|c| c.proxy_hosts.push(host(1, &["late.test"], vec![up(&u)])));
    let handle = proxy.handle.clone();
    assert!(
        wait_until(Duration::from_secs(5), || {
            let h = handle.clone();
            async move { h.revision() == rev }
        })
        .await
    );
    assert_eq!(proxy.get("late.test", "/").await.unwrap().status, 200);
}

/// A CA and a leaf it signed for `names`: `(leaf + CA chain PEM, key PEM)`.
fn ca_signed(names: &[&str]) -> (String, String) {
    use openssl::asn1::Asn1Time;
    use openssl::bn::BigNum;
    use openssl::ec::{EcGroup, EcKey};
    use openssl::hash::MessageDigest;
    use openssl::nid::Nid;
    use openssl::pkey::PKey;
    use openssl::x509::extension::{BasicConstraints, SubjectAlternativeName};
    use openssl::x509::{X509Builder, X509NameBuilder};
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    let ca_key = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
    let mut n = X509NameBuilder::new().unwrap();
    n.append_entry_by_text("CN", "ppm test CA").unwrap();
    let ca_name = n.build();
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(&BigNum::from_u32(7).unwrap().to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(&ca_name).unwrap();
    b.set_issuer_name(&ca_name).unwrap();
    b.set_pubkey(&ca_key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(10).unwrap())
        .unwrap();
    b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
        .unwrap();
    b.sign(&ca_key, MessageDigest::sha256()).unwrap();
    let ca = b.build();

    let key = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
    let mut n = X509NameBuilder::new().unwrap();
    n.append_entry_by_text("CN", names[0]).unwrap();
    let name = n.build();
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(&BigNum::from_u32(8).unwrap().to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&ca_name).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(5).unwrap())
        .unwrap();
    let mut san = SubjectAlternativeName::new();
    for n in names {
        san.dns(n);
    }
    let san = san.build(&b.x509v3_context(Some(&ca), None)).unwrap();
    b.append_extension(san).unwrap();
    b.sign(&ca_key, MessageDigest::sha256()).unwrap();
    let leaf = b.build();
    let pem = format!(
        "{}{}",
        String::from_utf8(leaf.to_pem().unwrap()).unwrap(),
        String::from_utf8(ca.to_pem().unwrap()).unwrap()
    );
    let key = String::from_utf8(key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    (pem, key)
}

fn certificate(id: i64, pem: (String, String)) -> ppm_core::config::Certificate {
    ppm_core::config::Certificate {
        id,
        name: format!("cert {id}"),
        certificate_pem: pem.0,
        private_key_pem: pem.1,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_termination_selects_certificates_by_sni() {
    use ppm_core::testing::{send_on, spawn_engine_tls, tls_connect};
    use ppm_core::tls::{self_signed, ParsedCertificate};
    let u = EchoUpstream::start("tls-up").await.unwrap();
    let mut c = Config::new();
    c.certificates = vec![
        certificate(1, ca_signed(&["a.test"])),
        certificate(2, self_signed(&["b.test"], 5).unwrap()),
        certificate(3, self_signed(&["c.test"], 5).unwrap()),
        certificate(4, self_signed(&["*.w.test"], 5).unwrap()),
    ];
    let mut a = host(1, &["a.test"], vec![up(&u)]);
    a.certificate_id = Some(1);
    let mut b = host(2, &["b.test"], vec![up(&u)]);
    b.certificate_id = Some(2);
    b.http2_support = false;
    let mut cc = host(3, &["c.test"], vec![up(&u)]);
    cc.certificate_id = Some(3);
    let mut w = host(4, &["*.w.test"], vec![up(&u)]);
    w.certificate_id = Some(4);
    c.proxy_hosts = vec![a, b, cc, w];
    let store = Arc::new(MemoryStore::new(c));
    let engine = ProxyEngine::builder()
        .store(store.clone())
        .poll_interval(Duration::from_millis(50))
        .build()
        .await
        .unwrap();
    let (fpem, fkey) = self_signed(&["fallback.invalid"], 5).unwrap();
    let fallback = ParsedCertificate::from_pem(0, &fpem, &fkey).unwrap();
    let fallback_fp = fallback.fingerprint().to_string();
    let proxy = spawn_engine_tls(&engine, Some(fallback)).await.unwrap();
    let addr = proxy.tls_addr.unwrap();
    let h2 = ["h2", "http/1.1"];

    let (peer, stream) = tls_connect(addr, Some("a.test"), &h2, None).await.unwrap();
    assert_eq!(peer.names, ["a.test"]);
    assert_eq!(peer.chain_len, 2, "the full chain is sent");
    assert_eq!(peer.alpn.as_deref(), Some("h2"));
    assert_eq!(peer.version, "TLSv1.3");
    drop(stream);
    for (sni, want) in [
        ("b.test", "b.test"),
        ("C.TEST", "c.test"),
        ("x.w.test", "*.w.test"),
    ] {
        let (peer, _) = tls_connect(addr, Some(sni), &h2, None).await.unwrap();
        assert_eq!(peer.names, [want], "{sni}");
        assert_eq!(peer.chain_len, 1);
    }
    // A host with HTTP/2 off negotiates HTTP/1.1.
    let (peer, _) = tls_connect(addr, Some("b.test"), &h2, None).await.unwrap();
    assert_eq!(peer.alpn.as_deref(), Some("http/1.1"));
    // Unknown names and no SNI get the fallback, never a tenant's certificate.
    for sni in [Some("unknown.test"), Some("y.x.w.test"), None] {
        let (peer, _) = tls_connect(addr, sni, &h2, None).await.unwrap();
        assert_eq!(peer.fingerprint, fallback_fp, "{sni:?}");
    }
    // TLS 1.2 is accepted, 1.1 refused.
    let (peer, _) = tls_connect(
        addr,
        Some("a.test"),
        &[],
        Some(openssl::ssl::SslVersion::TLS1_2),
    )
    .await
    .unwrap();
    assert_eq!(peer.version, "TLSv1.2");
    assert!(tls_connect(
        addr,
        Some("a.test"),
        &[],
        Some(openssl::ssl::SslVersion::TLS1_1)
    )
    .await
    .is_err());

    // Requests over TLS reach the upstream.
    let (_, mut stream) = tls_connect(addr, Some("c.test"), &["http/1.1"], None)
        .await
        .unwrap();
    let r = send_on(&mut stream, "GET", "/x", &[("host", "c.test")], b"")
        .await
        .unwrap();
    assert_eq!((r.status, upstream_of(&r).as_str()), (200, "tls-up"));

    // A replaced certificate is served from the next handshake, while a
    // connection opened before the change keeps working.
    let (old, mut kept) = tls_connect(addr, Some("b.test"), &["http/1.1"], None)
        .await
        .unwrap();
    let renewed = self_signed(&["b.test"], 9).unwrap();
    let target = store.update(|c| {
        c.certificates[1].certificate_pem = renewed.0.clone();
        c.certificates[1].private_key_pem = renewed.1.clone();
    });
    let handle = proxy.handle.clone();
    let fp_now = || async {
        tls_connect(addr, Some("b.test"), &[], None)
            .await
            .unwrap()
            .0
            .fingerprint
    };
    assert!(
        wait_until(Duration::from_secs(5), || async {
            handle.revision() >= target
        })
        .await
    );
    let new_fp = fp_now().await;
    assert_ne!(new_fp, old.fingerprint);
    let expected = ppm_core::tls::ParsedCertificate::from_pem(2, &renewed.0, &renewed.1).unwrap();
    assert_eq!(new_fp, expected.fingerprint());
    let r = send_on(&mut kept, "GET", "/", &[("host", "b.test")], b"")
        .await
        .unwrap();
    assert_eq!(r.status, 200);

    // The configured default replaces the fallback for unknown names.
    store.update(|c| c.settings.default_certificate_id = Some(3));
    assert!(
        wait_until(Duration::from_secs(5), || async {
            handle.revision() >= target
        })
        .await
    );
    let (peer, _) = tls_connect(addr, None, &[], None).await.unwrap();
    assert_eq!(peer.names, ["c.test"]);

    // A bad certificate is refused with its field; the old one keeps serving.
    store.update(|c| c.certificates[0].private_key_pem = renewed.1.clone());
    let err = handle.reload().await.unwrap_err();
    let paths: Vec<_> = err.field_errors().iter().map(|e| e.path.clone()).collect();
    assert_eq!(paths, ["certificates[0].private_key_pem"]);
    let (peer, _) = tls_connect(addr, Some("a.test"), &[], None).await.unwrap();
    assert_eq!(peer.names, ["a.test"]);
}

async fn start_with_log(
    config: Config,
    log: ppm_core::stats::AccessLog,
) -> (Arc<MemoryStore>, TestProxy) {
    let store = Arc::new(MemoryStore::new(config));
    let engine = ProxyEngine::builder()
        .store(store.clone())
        .poll_interval(Duration::from_millis(50))
        .access_log(log)
        .build()
        .await
        .expect("engine builds");
    let proxy = spawn_engine(&engine).await.expect("proxy starts");
    (store, proxy)
}

fn host_stats(p: &TestProxy, kind: &str, id: i64) -> ppm_core::stats::HttpSnapshot {
    p.handle
        .stats()
        .hosts()
        .into_iter()
        .find(|h| h.key.kind == kind && h.key.id == id)
        .map(|h| h.stats)
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_counters_match_a_bounded_load_exactly() {
    let a = EchoUpstream::start("a").await.unwrap();
    let mut config = Config::new();
    config.proxy_hosts.push(host(1, &["a.test"], vec![up(&a)]));
    let mut dead = host(
        2,
        &["dead.test"],
        vec![Upstream::new("127.0.0.1", dead_port())],
    );
    dead.retries = 0;
    config.proxy_hosts.push(dead);
    let (_store, p) = start(config).await;

    let mut received_a = 0u64;
    let mut sent_body = 0u64;
    for i in 0..40 {
        let path = match i % 4 {
            0 | 1 => "/ok".to_string(),
            2 => "/status/404".to_string(),
            _ => "/status/503".to_string(),
        };
        let r = p.get("a.test", &path).await.unwrap();
        received_a += r.body.len() as u64;
    }
    for _ in 0..5 {
        let body = [b'x'; 100];
        let r = send(
            p.addr,
            "POST",
            "/upload",
            &[("host", "a.test"), ("content-length", "100")],
            &body,
        )
        .await
        .unwrap();
        assert_eq!(r.status, 200);
        received_a += r.body.len() as u64;
        sent_body += 100;
    }
    let mut received_dead = 0u64;
    for _ in 0..3 {
        let r = p.get("dead.test", "/").await.unwrap();
        assert_eq!(r.status, 502);
        received_dead += r.body.len() as u64;
    }
    for _ in 0..2 {
        let r = p.get("unknown.test", "/").await.unwrap();
        assert_eq!(r.status, 404);
    }

    // Counting happens after the response is sent: wait for the last ones.
    let counted = wait_until(Duration::from_secs(10), || async {
        host_stats(&p, "proxy", 1).counts.requests == 45
            && host_stats(&p, "proxy", 1).active == 0
            && host_stats(&p, "proxy", 2).counts.requests == 3
            && host_stats(&p, "default", 0).counts.requests == 2
            && host_stats(&p, "proxy", 2).active == 0
            && host_stats(&p, "default", 0).active == 0
    })
    .await;
    assert!(counted, "{:?}", p.handle.stats().hosts());
    let s = host_stats(&p, "proxy", 1);
    assert_eq!(s.counts.status_2xx, 25);
    assert_eq!(s.counts.status_4xx, 10);
    assert_eq!(s.counts.status_5xx, 10);
    assert_eq!(s.counts.no_response, 0);
    assert_eq!(s.counts.bytes_out, received_a);
    assert_eq!(s.counts.bytes_in, sent_body);
    assert_eq!(s.counts.duration_count, 45);
    assert_eq!(s.counts.upstream_count, 45);
    assert_eq!(s.latency.count(), 45);
    let code = |c: u16| {
        let i = ppm_core::stats::COMMON_CODES
            .iter()
            .position(|&x| x == c)
            .unwrap();
        s.codes[i]
    };
    assert_eq!((code(200), code(404), code(503)), (25, 10, 10));

    let d = host_stats(&p, "proxy", 2);
    assert_eq!(d.counts.status_5xx, 3);
    assert_eq!(d.counts.upstream_errors, 3);
    assert_eq!(d.counts.bytes_out, received_dead);
    assert_eq!(host_stats(&p, "default", 0).counts.status_4xx, 2);

    let ups = p.handle.stats().upstreams();
    let ua = ups
        .iter()
        .find(|u| u.upstream == format!("127.0.0.1:{}", a.port()))
        .unwrap();
    assert_eq!(ua.stats.counts.requests, 45);
    assert_eq!(ua.stats.counts.status_2xx, 25);
    assert_eq!(ua.stats.counts.bytes_out, received_a);
    assert_eq!(ua.stats.upstream_latency.count(), 45);
    let ud = ups.iter().find(|u| u.upstream != ua.upstream).unwrap();
    assert_eq!(ud.stats.counts.upstream_errors, 3);
    assert_eq!(ud.stats.counts.requests, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_access_log_drops_records_and_never_blocks() {
    let a = EchoUpstream::start("a").await.unwrap();
    let mut config = Config::new();
    config
        .proxy_hosts
        .push(host(1, &["a.test", "quiet.test"], vec![up(&a)]));
    // Four slots and nobody reading: the fifth record on is dropped.
    let (log, mut rx) = ppm_core::stats::AccessLog::channel(4, ["quiet.test".to_string()]);
    let (_store, p) = start_with_log(config, log).await;
    for i in 0..30 {
        let r = p.get("a.test", &format!("/n/{i}?q=1")).await.unwrap();
        assert_eq!(r.status, 200);
    }
    for _ in 0..5 {
        assert_eq!(p.get("quiet.test", "/").await.unwrap().status, 200);
    }
    let stats = p.handle.stats().clone();
    let all_counted = wait_until(Duration::from_secs(10), || async {
        host_stats(&p, "proxy", 1).counts.requests == 35 && host_stats(&p, "proxy", 1).active == 0
    })
    .await;
    assert!(all_counted);
    let log = stats.access_log().unwrap();
    assert_eq!((log.queued(), log.dropped()), (4, 26));

    let first = rx.recv().await.unwrap();
    assert_eq!(first.host, "a.test");
    assert_eq!(first.method, "GET");
    assert_eq!(first.path, "/n/0?q=1");
    assert_eq!(first.status, 200);
    assert_eq!(first.client_ip, Some("127.0.0.1".parse().unwrap()));
    assert_eq!(
        first.upstream,
        Some(format!("127.0.0.1:{}", a.port()).parse().unwrap())
    );
    assert!(first.bytes_out > 0);
    assert!(first.upstream_time.is_some());
    assert!(first.duration >= first.upstream_time.unwrap());
    assert_eq!(
        first.route,
        Some(ppm_core::stats::HostKey {
            kind: "proxy",
            id: 1
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrades_to_a_fast_upstream_all_hold() {
    let port = ws_upstream().await;
    let mut c = Config::new();
    c.proxy_hosts.push(host(
        1,
        &["ws.test"],
        vec![Upstream::new("127.0.0.1", port)],
    ));
    let (_store, proxy) = start(c).await;
    // Unpatched Pingora 0.9.1 lost about one tunnel in a hundred here.
    let mut lost = Vec::new();
    for i in 0..300 {
        let (mut s, head) = ws_open(proxy.addr).await;
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        let msg = format!("ping-{i}");
        s.write_all(msg.as_bytes()).await.unwrap();
        let mut got = vec![0u8; msg.len()];
        match tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut got)).await {
            Ok(Ok(_)) if got == msg.as_bytes() => {}
            other => lost.push((i, format!("{other:?}"))),
        }
    }
    assert!(lost.is_empty(), "tunnels lost: {lost:?}");
}
