//! Layer-4 streams end to end on loopback: real TCP and UDP upstreams, an
//! engine on a MemoryStore, config changes applied by reloads.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ppm_core::config::{
    AccessList, Balancing, Config, IpRule, RuleAction, Stream, StreamProtocol, Upstream,
};
use ppm_core::engine::{EngineHandle, ProxyEngine};
use ppm_core::store::MemoryStore;
use ppm_core::stream::{BindErrorKind, StreamOptions, StreamStats};
use ppm_core::testing::{free_port, wait_until};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

const WAIT: Duration = Duration::from_secs(10);

/// A TCP upstream on 127.0.0.1. With a tag, it first sends `tag\n`; then it
/// echoes until the client's EOF and closes its side.
struct TcpUpstream {
    addr: SocketAddr,
    accepted: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl TcpUpstream {
    async fn start(tag: Option<&'static str>) -> TcpUpstream {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let accepted = Arc::new(AtomicU64::new(0));
        let n = accepted.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = l.accept().await else {
                    return;
                };
                n.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    if let Some(t) = tag {
                        if s.write_all(format!("{t}\n").as_bytes()).await.is_err() {
                            return;
                        }
                    }
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                    let _ = w.shutdown().await;
                });
            }
        });
        TcpUpstream {
            addr,
            accepted,
            task,
        }
    }

    fn port(&self) -> u16 {
        self.addr.port()
    }

    fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for TcpUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A UDP upstream answering each datagram with the same bytes.
async fn udp_echo() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = s.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 65_536];
        while let Ok((n, from)) = s.recv_from(&mut buf).await {
            let _ = s.send_to(&buf[..n], from).await;
        }
    });
    (addr, task)
}

fn stream(id: i64, port: u16, protocol: StreamProtocol, upstreams: &[u16]) -> Stream {
    Stream {
        id,
        incoming_port: port,
        bind_address: "127.0.0.1".into(),
        protocol,
        upstreams: upstreams
            .iter()
            .map(|p| Upstream::new("127.0.0.1", *p))
            .collect(),
        ..Stream::default()
    }
}

async fn engine_with(config: Config, opts: StreamOptions) -> (Arc<MemoryStore>, EngineHandle) {
    let store = Arc::new(MemoryStore::new(config));
    let engine = ProxyEngine::builder()
        .store(store.clone())
        .stream_options(opts)
        .build()
        .await
        .unwrap();
    (store, engine.handle())
}

async fn engine(streams: Vec<Stream>) -> (Arc<MemoryStore>, EngineHandle) {
    let mut c = Config::new();
    c.streams = streams;
    engine_with(c, StreamOptions::new()).await
}

fn stats(h: &EngineHandle, id: i64) -> StreamStats {
    h.stream_stats()
        .into_iter()
        .find(|s| s.stream_id == id)
        .unwrap_or_default()
}

async fn connect(port: u16) -> TcpStream {
    TcpStream::connect(("127.0.0.1", port)).await.unwrap()
}

async fn read_line(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut b = [0u8; 1];
    loop {
        let n = tokio::time::timeout(WAIT, s.read(&mut b))
            .await
            .unwrap()
            .unwrap();
        if n == 0 || b[0] == b'\n' {
            return String::from_utf8(out).unwrap();
        }
        out.push(b[0]);
    }
}

/// Reads until EOF (or an error such as a reset), with a deadline.
async fn read_to_end(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut out))
        .await
        .expect("the connection was not closed in time");
    out
}

/// Whether the peer closed `s`: a read sees EOF or an error.
async fn closed(s: &mut TcpStream, within: Duration) -> bool {
    let mut b = [0u8; 64];
    matches!(
        tokio::time::timeout(within, s.read(&mut b)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

async fn round_trip(s: &mut TcpStream, data: &[u8]) {
    s.write_all(data).await.unwrap();
    let mut back = vec![0u8; data.len()];
    tokio::time::timeout(WAIT, s.read_exact(&mut back))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back, data);
}

/// Deterministic pseudo-random bytes.
fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_thousand_round_trips_are_byte_exact() {
    let up = TcpUpstream::start(None).await;
    let port = free_port().unwrap();
    let (_store, h) = engine(vec![stream(1, port, StreamProtocol::Tcp, &[up.port()])]).await;
    let mut c = connect(port).await;
    let mut total = 0u64;
    for i in 0..1000u64 {
        let len = 1 + (i as usize * 7919) % 16_384;
        let data = bytes(i, len);
        round_trip(&mut c, &data).await;
        total += len as u64;
    }
    drop(c);
    assert!(
        wait_until(WAIT, || async { stats(&h, 1).active == 0 }).await,
        "{:?}",
        stats(&h, 1)
    );
    let s = stats(&h, 1);
    assert_eq!(s.connections, 1);
    assert_eq!(s.bytes_in, total);
    assert_eq!(s.bytes_out, total);
    assert_eq!(s.errors, 0);
    assert_eq!(up.accepted(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_half_close_both_ways() {
    // Upstream 1 reads to EOF, then answers and closes: the client's
    // shutdown must reach it while the way back stays open.
    let l1 = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let p1 = l1.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut s, _) = l1.accept().await.unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.unwrap();
        s.write_all(format!("got {} bytes", got.len()).as_bytes())
            .await
            .unwrap();
        s.shutdown().await.unwrap();
    });
    // Upstream 2 speaks first and closes its side, then keeps reading: the
    // client must still be able to send after seeing EOF.
    let l2 = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let p2 = l2.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut s, _) = l2.accept().await.unwrap();
        s.write_all(b"banner").await.unwrap();
        s.shutdown().await.unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.unwrap();
        let _ = tx.send(got);
    });
    let (port1, port2) = (free_port().unwrap(), free_port().unwrap());
    let (_store, _h) = engine(vec![
        stream(1, port1, StreamProtocol::Tcp, &[p1]),
        stream(2, port2, StreamProtocol::Tcp, &[p2]),
    ])
    .await;

    let mut c = connect(port1).await;
    c.write_all(&bytes(1, 100_000)).await.unwrap();
    c.shutdown().await.unwrap();
    assert_eq!(read_to_end(&mut c).await, b"got 100000 bytes");

    let mut c = connect(port2).await;
    assert_eq!(read_to_end(&mut c).await, b"banner");
    c.write_all(b"after the upstream's EOF").await.unwrap();
    c.shutdown().await.unwrap();
    let got = tokio::time::timeout(WAIT, rx).await.unwrap().unwrap();
    assert_eq!(got, b"after the upstream's EOF");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_idle_timeout_closes_idle_connections_only() {
    let up = TcpUpstream::start(None).await;
    let port = free_port().unwrap();
    let mut s = stream(1, port, StreamProtocol::Tcp, &[up.port()]);
    s.idle_timeout_ms = 400;
    let (_store, h) = engine(vec![s]).await;

    // Busy for three idle periods: not closed (no lifetime cap).
    let mut busy = connect(port).await;
    let start = Instant::now();
    let mut i = 0;
    while start.elapsed() < Duration::from_millis(1200) && i < 100 {
        round_trip(&mut busy, b"ping").await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        i += 1;
    }
    round_trip(&mut busy, b"still open").await;

    // Idle: closed after about the idle timeout, not before.
    let mut idle = connect(port).await;
    round_trip(&mut idle, b"hello").await;
    let t = Instant::now();
    assert!(closed(&mut idle, Duration::from_secs(5)).await);
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(350),
        "closed too early: {waited:?}"
    );
    assert!(wait_until(WAIT, || async { stats(&h, 1).active == 0 }).await);
    assert_eq!(stats(&h, 1).errors, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_fails_over_when_the_first_upstream_is_down() {
    let dead = free_port().unwrap();
    let up = TcpUpstream::start(Some("live")).await;
    let port = free_port().unwrap();
    let (_store, h) = engine(vec![stream(
        1,
        port,
        StreamProtocol::Tcp,
        &[dead, up.port()],
    )])
    .await;
    for _ in 0..6 {
        let mut c = connect(port).await;
        assert_eq!(read_line(&mut c).await, "live");
        round_trip(&mut c, b"x").await;
    }
    let s = stats(&h, 1);
    assert_eq!(s.connections, 6);
    assert_eq!(s.errors, 0);
    // The dead upstream was tried, then skipped while marked down.
    assert!(s.upstream_connect_failures >= 1, "{s:?}");
    assert_eq!(up.accepted(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_access_list_denies_by_cidr() {
    let up = TcpUpstream::start(None).await;
    let port = free_port().unwrap();
    let mut c = Config::new();
    c.access_lists.push(AccessList {
        id: 7,
        name: "no loopback".into(),
        rules: vec![
            IpRule {
                action: RuleAction::Deny,
                address: "127.0.0.0/8".into(),
            },
            IpRule {
                action: RuleAction::Allow,
                address: "all".into(),
            },
        ],
        ..AccessList::default()
    });
    let mut s = stream(1, port, StreamProtocol::Tcp, &[up.port()]);
    s.access_list_id = Some(7);
    c.streams.push(s);
    let (store, h) = engine_with(c, StreamOptions::new()).await;

    let mut denied = connect(port).await;
    assert!(closed(&mut denied, WAIT).await);
    assert_eq!(up.accepted(), 0);
    assert_eq!(stats(&h, 1).denied, 1);
    assert_eq!(stats(&h, 1).connections, 0);

    // Allowing loopback takes effect for the next connection.
    store.update(|c| c.access_lists[0].rules[0].address = "10.0.0.0/8".into());
    h.reload().await.unwrap();
    let mut ok = connect(port).await;
    round_trip(&mut ok, b"allowed now").await;
    assert_eq!(up.accepted(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_balancing_weights_least_connections_and_client_hash() {
    let a = TcpUpstream::start(Some("a")).await;
    let b = TcpUpstream::start(Some("b")).await;
    let port = free_port().unwrap();
    let mut s = stream(1, port, StreamProtocol::Tcp, &[a.port(), b.port()]);
    s.upstreams[1].weight = 3;
    let (store, h) = engine(vec![s]).await;
    let mut counts = [0; 2];
    for _ in 0..40 {
        let mut c = connect(port).await;
        match read_line(&mut c).await.as_str() {
            "a" => counts[0] += 1,
            "b" => counts[1] += 1,
            other => panic!("unexpected tag {other}"),
        }
    }
    assert_eq!(counts, [10, 30]);

    // Least connections: while one connection is held open on an
    // upstream, the next goes to the other one.
    store.update(|c| {
        c.streams[0].upstreams[1].weight = 1;
        c.streams[0].balancing = Balancing::LeastConnections;
    });
    h.reload().await.unwrap();
    for _ in 0..5 {
        let mut held = connect(port).await;
        let first = read_line(&mut held).await;
        let mut next = connect(port).await;
        let second = read_line(&mut next).await;
        assert_ne!(first, second);
        drop((held, next));
        assert!(wait_until(WAIT, || async { stats(&h, 1).active == 0 }).await);
    }

    // Hash on the client IP: every connection from 127.0.0.1 lands on the
    // same upstream.
    store.update(|c| {
        c.streams[0].balancing = Balancing::ConsistentHash {
            key: Default::default(),
        }
    });
    h.reload().await.unwrap();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..10 {
        let mut c = connect(port).await;
        seen.insert(read_line(&mut c).await);
    }
    assert_eq!(seen.len(), 1, "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_health_checks_take_a_dead_upstream_out() {
    let a = TcpUpstream::start(Some("a")).await;
    let b_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let b_port = b_listener.local_addr().unwrap().port();
    drop(b_listener);
    let port = free_port().unwrap();
    let (_store, h) = engine(vec![stream(
        1,
        port,
        StreamProtocol::Tcp,
        &[a.port(), b_port],
    )])
    .await;
    let bg = h.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        bg.run_background(async move {
            let _ = stopped.await;
        })
        .await
    });
    let group = h.current().streams()[0].group().clone();
    assert!(
        wait_until(WAIT, || async {
            let health = group.health();
            health[0].healthy && !health[1].healthy
        })
        .await,
        "{:?}",
        group.health()
    );
    // With b known down, no connection tries it.
    for _ in 0..8 {
        let mut c = connect(port).await;
        assert_eq!(read_line(&mut c).await, "a");
    }
    assert_eq!(stats(&h, 1).upstream_connect_failures, 0);
    let _ = stop.send(());
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_proxy_protocol_v1_and_v2_headers() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = l.local_addr().unwrap().port();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                let _ = s.read_to_end(&mut got).await;
                let _ = tx.send(got).await;
            });
        }
    });
    let port = free_port().unwrap();
    let mut s = stream(1, port, StreamProtocol::Tcp, &[up]);
    s.proxy_protocol = Some(1);
    let (store, h) = engine(vec![s]).await;

    let mut c = connect(port).await;
    let client = c.local_addr().unwrap();
    c.write_all(b"payload").await.unwrap();
    c.shutdown().await.unwrap();
    let got = tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap()
        .unwrap();
    let want = format!(
        "PROXY TCP4 127.0.0.1 127.0.0.1 {} {port}\r\npayload",
        client.port()
    );
    assert_eq!(String::from_utf8_lossy(&got), want);

    store.update(|c| c.streams[0].proxy_protocol = Some(2));
    h.reload().await.unwrap();
    let mut c = connect(port).await;
    let client = c.local_addr().unwrap();
    c.write_all(b"payload").await.unwrap();
    c.shutdown().await.unwrap();
    let got = tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap()
        .unwrap();
    let mut want = ppm_core::stream::proxy_protocol::V2_SIGNATURE.to_vec();
    want.extend_from_slice(&[0x21, 0x11, 0, 12, 127, 0, 0, 1, 127, 0, 0, 1]);
    want.extend_from_slice(&client.port().to_be_bytes());
    want.extend_from_slice(&port.to_be_bytes());
    want.extend_from_slice(b"payload");
    assert_eq!(got, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_request_response_with_several_clients() {
    let (up, _task) = udp_echo().await;
    let port = free_port().unwrap();
    let (_store, h) = engine(vec![stream(1, port, StreamProtocol::Udp, &[up.port()])]).await;
    let target: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut clients = Vec::new();
    for k in 0..6u64 {
        clients.push(tokio::spawn(async move {
            let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            c.connect(target).await.unwrap();
            let mut buf = vec![0u8; 65_536];
            // Sizes from 1 byte to near the largest datagram, each answered
            // by exactly one datagram of the same bytes.
            for (i, len) in [1usize, 2, 100, 1400, 1500, 9000, 30_000, 60_000]
                .into_iter()
                .enumerate()
            {
                let data = bytes(k * 100 + i as u64, len);
                let mut answered = false;
                // Loopback UDP can drop under load: resend a few times.
                for _ in 0..5 {
                    c.send(&data).await.unwrap();
                    if let Ok(Ok(n)) =
                        tokio::time::timeout(Duration::from_secs(1), c.recv(&mut buf)).await
                    {
                        assert_eq!(n, len, "a datagram was merged or split");
                        assert_eq!(&buf[..n], &data[..]);
                        answered = true;
                        break;
                    }
                }
                assert!(answered, "no answer for {len} bytes");
            }
        }));
    }
    for c in clients {
        c.await.unwrap();
    }
    // A reply is counted just after it is sent, so the client may have it
    // before the counter moves: wait for the counts to meet. A datagram
    // resent after a loss is counted in again, so `in` may stay ahead.
    wait_until(WAIT, || async {
        let s = stats(&h, 1);
        s.bytes_in == s.bytes_out
    })
    .await;
    let s = stats(&h, 1);
    assert_eq!(s.connections, 6, "one session per client: {s:?}");
    assert_eq!(s.active, 6);
    assert!(
        s.bytes_out >= 6 * 102_003 && s.bytes_in >= s.bytes_out,
        "{s:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_sessions_expire_when_idle() {
    let (up, _task) = udp_echo().await;
    let port = free_port().unwrap();
    let mut s = stream(1, port, StreamProtocol::Udp, &[up.port()]);
    s.idle_timeout_ms = 300;
    let (_store, h) = engine(vec![s]).await;
    let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    c.connect(("127.0.0.1", port)).await.unwrap();
    let mut buf = [0u8; 16];
    c.send(b"one").await.unwrap();
    let n = tokio::time::timeout(WAIT, c.recv(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..n], b"one");
    assert_eq!(stats(&h, 1).active, 1);
    let t = Instant::now();
    assert!(wait_until(WAIT, || async { stats(&h, 1).active == 0 }).await);
    assert!(
        t.elapsed() >= Duration::from_millis(200),
        "{:?}",
        t.elapsed()
    );
    // The same client starts a new session.
    c.send(b"two").await.unwrap();
    let n = tokio::time::timeout(WAIT, c.recv(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..n], b"two");
    assert_eq!(stats(&h, 1).connections, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_session_table_stays_bounded_under_ten_thousand_sources() {
    const BOUND: u64 = 64;
    const SOURCES: usize = 10_000;
    let (up, _task) = udp_echo().await;
    let port = free_port().unwrap();
    let mut c = Config::new();
    c.streams
        .push(stream(1, port, StreamProtocol::Udp, &[up.port()]));
    let (_store, h) = engine_with(c, StreamOptions::new().max_udp_sessions(BOUND as usize)).await;
    let target: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut ports = std::collections::HashSet::new();
    let started = Instant::now();
    let mut sent = 0u64;
    let mut max_active = 0;
    // Bounded in attempts and time; each socket is a new source port.
    for _ in 0..SOURCES * 4 {
        if ports.len() >= SOURCES || started.elapsed() > Duration::from_secs(90) {
            break;
        }
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        if !ports.insert(s.local_addr().unwrap().port()) {
            continue;
        }
        s.send_to(b"hi", target).unwrap();
        sent += 1;
        if sent % 200 == 0 {
            // Let the stream catch up so the kernel buffer does not drop
            // most of the flood, and watch the bound.
            wait_until(Duration::from_secs(5), || async {
                stats(&h, 1).connections >= sent * 9 / 10
            })
            .await;
            max_active = max_active.max(stats(&h, 1).active);
        }
    }
    assert_eq!(ports.len(), SOURCES, "not enough distinct source ports");
    wait_until(Duration::from_secs(5), || async {
        stats(&h, 1).connections >= sent * 9 / 10
    })
    .await;
    let s = stats(&h, 1);
    max_active = max_active.max(s.active);
    assert!(max_active <= BOUND, "{max_active} sessions > {BOUND}");
    assert!(s.connections >= 9_000, "{s:?}");
    assert_eq!(s.udp_sessions_evicted, s.connections - s.active, "{s:?}");

    // A new client still gets through.
    let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    c.connect(target).await.unwrap();
    let mut buf = [0u8; 16];
    let mut answered = false;
    'send: for _ in 0..5 {
        c.send(b"after").await.unwrap();
        // The kernel may hand this socket a port that one of the flood's
        // sockets had: a late echo of that source's "hi" can still arrive
        // here. Only the echo of "after" counts.
        while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(1), c.recv(&mut buf)).await {
            match &buf[..n] {
                b"after" => {
                    answered = true;
                    break 'send;
                }
                b"hi" => continue,
                other => panic!("unexpected datagram {other:?}"),
            }
        }
    }
    assert!(answered);
    assert!(stats(&h, 1).active <= BOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_change_keeps_old_connections_and_delete_closes_after_grace() {
    let a = TcpUpstream::start(Some("a")).await;
    let b = TcpUpstream::start(Some("b")).await;
    let port = free_port().unwrap();
    let mut c = Config::new();
    c.streams
        .push(stream(1, port, StreamProtocol::Tcp, &[a.port()]));
    let (store, h) = engine_with(
        c,
        StreamOptions::new().grace_period(Duration::from_millis(500)),
    )
    .await;

    let mut old = connect(port).await;
    assert_eq!(read_line(&mut old).await, "a");

    // Change the upstream: new connections go to b, the old one stays on a.
    store.update(|c| c.streams[0].upstreams = vec![Upstream::new("127.0.0.1", b.port())]);
    h.reload().await.unwrap();
    let mut new = connect(port).await;
    assert_eq!(read_line(&mut new).await, "b");
    round_trip(&mut old, b"old still works").await;
    round_trip(&mut new, b"new works").await;
    assert_eq!(a.accepted(), 1);
    assert_eq!(stats(&h, 1).connections, 2, "counters survive a change");

    // Move the port: the old port is free at once, the new one listens, the
    // open connections keep going.
    let port2 = free_port().unwrap();
    store.update(|c| c.streams[0].incoming_port = port2);
    h.reload().await.unwrap();
    assert!(TcpStream::connect(("127.0.0.1", port)).await.is_err());
    let mut moved = connect(port2).await;
    assert_eq!(read_line(&mut moved).await, "b");
    round_trip(&mut old, b"old after the move").await;

    // Delete: the listener is gone when the reload returns; open
    // connections end after the grace period.
    store.update(|c| c.streams.clear());
    let t = Instant::now();
    h.reload().await.unwrap();
    assert!(TcpStream::connect(("127.0.0.1", port2)).await.is_err());
    round_trip(&mut old, b"within the grace period").await;
    assert!(closed(&mut old, WAIT).await);
    assert!(closed(&mut new, WAIT).await);
    assert!(
        t.elapsed() >= Duration::from_millis(400),
        "{:?}",
        t.elapsed()
    );
    assert!(h.stream_stats().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_streams_do_not_listen() {
    let up = TcpUpstream::start(None).await;
    let port = free_port().unwrap();
    let mut s = stream(1, port, StreamProtocol::Both, &[up.port()]);
    s.enabled = false;
    let (store, h) = engine(vec![s]).await;
    assert!(TcpStream::connect(("127.0.0.1", port)).await.is_err());
    let st = h.streams().status();
    assert_eq!(st.len(), 1);
    assert!(!st[0].enabled && st[0].listeners.is_empty());
    store.update(|c| c.streams[0].enabled = true);
    h.reload().await.unwrap();
    let st = h.streams().status();
    assert_eq!(st[0].listeners.len(), 2);
    assert!(st[0].listeners.iter().all(|l| l.listening));
    let mut c = connect(port).await;
    round_trip(&mut c, b"on").await;

    // `both` forwards UDP too, to the same upstream port number.
    let echo = UdpSocket::bind(("127.0.0.1", up.port())).await.unwrap();
    let _task = tokio::spawn(async move {
        let mut buf = vec![0u8; 2048];
        while let Ok((n, from)) = echo.recv_from(&mut buf).await {
            let _ = echo.send_to(&buf[..n], from).await;
        }
    });
    let u = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    u.connect(("127.0.0.1", port)).await.unwrap();
    let mut buf = [0u8; 64];
    let mut answered = false;
    for _ in 0..5 {
        u.send(b"udp on both").await.unwrap();
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(1), u.recv(&mut buf)).await {
            assert_eq!(&buf[..n], b"udp on both");
            answered = true;
            break;
        }
    }
    assert!(answered, "no UDP answer through a `both` stream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserve_reports_conflicts_and_binds_nothing_on_failure() {
    let up = TcpUpstream::start(None).await;
    let (_store, h) = engine(vec![]).await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_port = taken.local_addr().unwrap().port();
    let free = free_port().unwrap();
    let mut c = Config::new();
    c.streams
        .push(stream(1, free, StreamProtocol::Tcp, &[up.port()]));
    c.streams
        .push(stream(2, taken_port, StreamProtocol::Tcp, &[up.port()]));
    let failures = h.streams().reserve(&c).unwrap_err();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].index, 1);
    assert_eq!(failures[0].kind, BindErrorKind::AddressInUse);
    assert_eq!(failures[0].field(), "incoming_port");
    assert!(
        failures[0].message.contains(&taken_port.to_string()),
        "{}",
        failures[0].message
    );
    // Nothing half-applied: the free port was released again.
    drop(std::net::TcpListener::bind(("127.0.0.1", free)).unwrap());

    // A successful reservation holds the port until applied.
    c.streams.pop();
    let r = h.streams().reserve(&c).unwrap();
    assert_eq!(r.len(), 1);
    assert!(std::net::TcpListener::bind(("127.0.0.1", free)).is_err());
    drop(r);
    drop(std::net::TcpListener::bind(("127.0.0.1", free)).unwrap());

    // A bind address that is not local names bind_address.
    c.streams[0].bind_address = "192.0.2.1".into();
    let failures = h.streams().reserve(&c).unwrap_err();
    assert_eq!(failures[0].kind, BindErrorKind::AddressNotAvailable);
    assert_eq!(failures[0].field(), "bind_address");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_in_use_at_startup_is_reported_and_retried() {
    let up = TcpUpstream::start(None).await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_port = taken.local_addr().unwrap().port();
    let ok_port = free_port().unwrap();
    let (_store, h) = engine(vec![
        stream(1, taken_port, StreamProtocol::Tcp, &[up.port()]),
        stream(2, ok_port, StreamProtocol::Tcp, &[up.port()]),
    ])
    .await;
    let st = h.streams().status();
    assert!(!st[0].listeners[0].listening);
    let err = st[0].listeners[0].error.clone().unwrap();
    assert!(err.contains("already in use"), "{err}");
    assert!(st[1].listeners[0].listening);
    let mut c = connect(ok_port).await;
    round_trip(&mut c, b"the others keep serving").await;

    drop(taken);
    h.force_reload().await.unwrap();
    assert!(h.streams().status()[0].listeners[0].listening);
    let mut c = connect(taken_port).await;
    round_trip(&mut c, b"bound on retry").await;
}

fn certificate(id: i64, name: &str) -> ppm_core::config::Certificate {
    let (certificate_pem, private_key_pem) = ppm_core::testing::self_signed_cert(name).unwrap();
    ppm_core::config::Certificate {
        id,
        name: name.into(),
        domain_names: vec![name.into()],
        certificate_pem,
        private_key_pem,
        ..Default::default()
    }
}

fn fingerprint_of(c: &ppm_core::config::Certificate) -> String {
    ppm_core::tls::ParsedCertificate::from_pem(c.id, &c.certificate_pem, &c.private_key_pem)
        .unwrap()
        .fingerprint()
        .to_string()
}

type TlsClient = tokio_openssl::SslStream<TcpStream>;

async fn tls_client(port: u16) -> (ppm_core::testing::TlsPeer, TlsClient) {
    ppm_core::testing::tls_connect(
        ([127, 0, 0, 1], port).into(),
        Some("stream.test"),
        &[],
        None,
    )
    .await
    .unwrap()
}

/// Sends `data` while reading the echo (so large payloads cannot fill every
/// buffer on the way and stall), and checks it came back unchanged.
async fn tls_round_trip(s: &mut TlsClient, data: &[u8]) {
    let (mut r, mut w) = tokio::io::split(s);
    let mut back = vec![0u8; data.len()];
    let (sent, got) = tokio::time::timeout(WAIT, async {
        tokio::join!(w.write_all(data), r.read_exact(&mut back))
    })
    .await
    .unwrap();
    sent.unwrap();
    got.unwrap();
    assert!(back == data, "{} bytes came back changed", data.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_tls_termination_is_byte_exact_and_serves_renewals() {
    let up = TcpUpstream::start(None).await;
    let port = free_port().unwrap();
    let mut c = Config::new();
    c.certificates.push(certificate(5, "stream.test"));
    let first_fp = fingerprint_of(&c.certificates[0]);
    let mut s = stream(1, port, StreamProtocol::Tcp, &[up.port()]);
    s.certificate_id = Some(5);
    c.streams.push(s);
    let (store, h) = engine_with(c, StreamOptions::new()).await;
    let tls = h.streams().status()[0].tls.clone().unwrap();
    assert_eq!(
        (tls.certificate_id, tls.issued, tls.fingerprint.as_deref()),
        (5, true, Some(first_fp.as_str()))
    );

    // TLS client -> stream -> plain upstream: the stream's certificate, and
    // every byte back as sent.
    let (peer, mut old) = tls_client(port).await;
    assert_eq!(peer.fingerprint, first_fp);
    assert_eq!(peer.names, ["stream.test"]);
    assert_eq!(peer.alpn, None);
    let mut total = 0u64;
    for i in 0..300u64 {
        let len = 1 + (i as usize * 7919) % 40_000;
        tls_round_trip(&mut old, &bytes(i, len)).await;
        total += len as u64;
    }
    let big = bytes(99, 1 << 20);
    tls_round_trip(&mut old, &big).await;
    total += big.len() as u64;
    assert_eq!(up.accepted(), 1);
    // The counters count plaintext.
    assert_eq!(stats(&h, 1).bytes_in, total);
    assert_eq!(stats(&h, 1).bytes_out, total);

    // Half-close over TLS: the client's close_notify reaches the upstream
    // as EOF, and the answer still comes back.
    let (_, c) = tls_client(port).await;
    let (mut r, mut w) = tokio::io::split(c);
    let data = bytes(7, 200_000);
    let mut back = Vec::new();
    let (sent, got) = tokio::time::timeout(WAIT, async {
        tokio::join!(
            async {
                w.write_all(&data).await?;
                w.shutdown().await
            },
            r.read_to_end(&mut back)
        )
    })
    .await
    .unwrap();
    sent.unwrap();
    got.unwrap();
    assert!(back == data, "half-closed TLS echo differs");

    // A renewal (new PEMs, new revision) is served from the next handshake;
    // the open connection keeps its session.
    let renewed = certificate(5, "stream.test");
    let renewed_fp = fingerprint_of(&renewed);
    assert_ne!(renewed_fp, first_fp);
    store.update(|c| c.certificates[0] = renewed);
    h.reload().await.unwrap();
    let (peer, mut new) = tls_client(port).await;
    assert_eq!(peer.fingerprint, renewed_fp);
    tls_round_trip(&mut new, b"with the renewed certificate").await;
    tls_round_trip(&mut old, b"the old session keeps working").await;
    assert_eq!(
        h.streams().status()[0].tls.clone().unwrap().fingerprint,
        Some(renewed_fp.clone())
    );

    // An unrelated change does not rebuild the acceptor: the same
    // certificate keeps being served.
    store.update(|c| c.streams[0].idle_timeout_ms = 300_000);
    h.reload().await.unwrap();
    let (peer, mut c) = tls_client(port).await;
    assert_eq!(peer.fingerprint, renewed_fp);
    // Once an echo came back, its upstream connection is counted.
    tls_round_trip(&mut c, b"unchanged").await;

    // A client that does not speak TLS never reaches the upstream.
    let accepted = up.accepted();
    let mut plain = connect(port).await;
    plain
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(closed(&mut plain, WAIT).await);
    assert!(wait_until(WAIT, || async { stats(&h, 1).tls_handshake_failures == 1 }).await);
    assert_eq!(up.accepted(), accepted);
    assert!(stats(&h, 1).errors >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_tls_waits_for_a_pending_certificate_and_times_out_silent_clients() {
    let up = TcpUpstream::start(Some("tls-up")).await;
    let port = free_port().unwrap();
    let mut c = Config::new();
    // An ACME order not issued yet: no PEM.
    c.certificates.push(ppm_core::config::Certificate {
        id: 3,
        name: "pending".into(),
        domain_names: vec!["stream.test".into()],
        ..Default::default()
    });
    let mut s = stream(1, port, StreamProtocol::Tcp, &[up.port()]);
    s.certificate_id = Some(3);
    s.idle_timeout_ms = 500;
    c.streams.push(s);
    let (store, h) = engine_with(c, StreamOptions::new()).await;
    let st = h.streams().status();
    assert!(st[0].listeners[0].listening);
    let tls = st[0].tls.clone().unwrap();
    assert!(!tls.issued && tls.fingerprint.is_none(), "{tls:?}");

    // Refused, not served in plain text or with another certificate.
    let r = ppm_core::testing::tls_connect(
        ([127, 0, 0, 1], port).into(),
        Some("stream.test"),
        &[],
        None,
    )
    .await;
    assert!(r.is_err());
    assert!(wait_until(WAIT, || async { stats(&h, 1).tls_handshake_failures == 1 }).await);
    assert_eq!(up.accepted(), 0);

    // Issued: the next handshake gets it.
    let issued = certificate(3, "stream.test");
    let fp = fingerprint_of(&issued);
    store.update(|c| c.certificates[0] = issued);
    h.reload().await.unwrap();
    let (peer, mut c) = tls_client(port).await;
    assert_eq!(peer.fingerprint, fp);
    let mut tag = [0u8; 7];
    tokio::time::timeout(WAIT, c.read_exact(&mut tag))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&tag, b"tls-up\n");

    // A client that connects and never starts the handshake is closed
    // after the idle timeout (shorter than the handshake limit here).
    let mut silent = connect(port).await;
    let t = Instant::now();
    assert!(closed(&mut silent, WAIT).await);
    assert!(
        t.elapsed() >= Duration::from_millis(400),
        "{:?}",
        t.elapsed()
    );
    assert!(wait_until(WAIT, || async { stats(&h, 1).tls_handshake_failures == 2 }).await);
    assert_eq!(up.accepted(), 1);
}

#[test]
fn tls_streams_need_tcp_and_an_existing_certificate() {
    let paths = |c: &Config| -> Vec<(String, String)> {
        ppm_core::compile::validate(c)
            .err()
            .map(|e| e.errors.into_iter().map(|f| (f.path, f.message)).collect())
            .unwrap_or_default()
    };
    let mut c = Config::new();
    c.certificates.push(certificate(5, "stream.test"));
    c.streams.push(stream(1, 4000, StreamProtocol::Tcp, &[9]));
    c.streams[0].certificate_id = Some(5);
    assert_eq!(paths(&c), []);

    for (protocol, word) in [(StreamProtocol::Udp, "udp"), (StreamProtocol::Both, "both")] {
        c.streams[0].protocol = protocol;
        let errs = paths(&c);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].0, "streams[0].certificate_id");
        assert!(
            errs[0].1.contains("TCP streams only") && errs[0].1.contains(word),
            "{errs:?}"
        );
    }
    c.streams[0].protocol = StreamProtocol::Tcp;
    c.streams
        .insert(0, stream(2, 4001, StreamProtocol::Tcp, &[9]));
    c.streams[1].certificate_id = Some(99);
    let errs = paths(&c);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].0, "streams[1].certificate_id");
    assert!(
        errs[0].1.contains("certificate 99 does not exist"),
        "{errs:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_certificate_id_is_refused_and_the_stream_keeps_serving() {
    let up = TcpUpstream::start(None).await;
    let port = free_port().unwrap();
    let (store, h) = engine(vec![stream(1, port, StreamProtocol::Tcp, &[up.port()])]).await;
    let mut c = connect(port).await;
    round_trip(&mut c, b"plain").await;

    store.update(|c| c.streams[0].certificate_id = Some(42));
    let err = h.reload().await.unwrap_err();
    let paths: Vec<_> = err.field_errors().iter().map(|e| e.path.clone()).collect();
    assert_eq!(paths, ["streams[0].certificate_id"]);
    store.update(|c| {
        c.certificates.push(certificate(42, "stream.test"));
        c.streams[0].protocol = StreamProtocol::Both;
    });
    let err = h.reload().await.unwrap_err();
    let paths: Vec<_> = err.field_errors().iter().map(|e| e.path.clone()).collect();
    assert_eq!(paths, ["streams[0].certificate_id"]);

    // Nothing was applied: still plain TCP, open and new connections.
    assert!(h.streams().status()[0].tls.is_none());
    round_trip(&mut c, b"still plain").await;
    let mut c2 = connect(port).await;
    round_trip(&mut c2, b"new plain").await;

    // Fixed: TLS from the next connection on.
    store.update(|c| c.streams[0].protocol = StreamProtocol::Tcp);
    h.reload().await.unwrap();
    let (_, mut t) = tls_client(port).await;
    tls_round_trip(&mut t, b"now over TLS").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_tls_with_proxy_protocol_sends_the_header_then_plaintext() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = l.local_addr().unwrap().port();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(1);
    tokio::spawn(async move {
        if let Ok((mut s, _)) = l.accept().await {
            let mut got = Vec::new();
            let _ = s.read_to_end(&mut got).await;
            let _ = tx.send(got).await;
        }
    });
    let port = free_port().unwrap();
    let mut c = Config::new();
    c.certificates.push(certificate(1, "stream.test"));
    let mut s = stream(1, port, StreamProtocol::Tcp, &[up]);
    s.certificate_id = Some(1);
    s.proxy_protocol = Some(1);
    c.streams.push(s);
    let (_store, _h) = engine_with(c, StreamOptions::new()).await;

    let (_, mut t) = tls_client(port).await;
    let client = t.get_ref().local_addr().unwrap();
    t.write_all(b"secret payload").await.unwrap();
    t.shutdown().await.unwrap();
    let got = tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap()
        .unwrap();
    let want = format!(
        "PROXY TCP4 127.0.0.1 127.0.0.1 {} {port}\r\nsecret payload",
        client.port()
    );
    assert_eq!(String::from_utf8_lossy(&got), want);
}
