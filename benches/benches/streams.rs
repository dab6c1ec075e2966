//! TCP stream throughput on loopback: the same transfer through a ppm
//! stream, through a TLS-terminating stream, and over a direct connection
//! to the same upstream, in one run, so the ratio is measured on the same
//! (possibly busy) machine at the same time.
//!
//! Each run sends `PPM_BENCH_BYTES` (default 1 GiB) one way: the client
//! writes 256 KiB chunks, then half-closes; the upstream reads to EOF,
//! discarding, and answers with the byte count it saw, which the client
//! checks. The time runs from connect to that answer (connection setup and
//! the TLS handshake included; they are noise next to 1 GiB). Modes are
//! interleaved over `PPM_BENCH_ROUNDS` rounds (default 3); the report gives
//! the best and the median of each in MB/s (10^6 bytes per second) and each
//! mode's best against the direct connection's best.
//!
//! Not a criterion bench: one sample is a gigabyte, so it is a plain binary
//! (`harness = false`). Under `cargo test --benches` (no `--bench` flag)
//! it moves 4 MiB per mode once, to show it still works.
//!
//! Run: `cargo bench -p ppm-benches --bench streams`
//! (`PPM_BENCH_BYTES=268435456` for a quicker 256 MiB run).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ppm_core::config::{Config, Stream, StreamProtocol, Upstream};
use ppm_core::engine::ProxyEngine;
use ppm_core::store::MemoryStore;
use ppm_core::testing::{free_port, self_signed_cert, tls_connect};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const CHUNK: usize = 256 * 1024;
const GIB: u64 = 1 << 30;

/// Reads each connection to EOF and answers with the byte count.
async fn sink_upstream() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let _ = s.set_nodelay(true);
                let mut buf = vec![0u8; CHUNK];
                let mut n = 0u64;
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) => break,
                        Ok(k) => n += k as u64,
                        Err(_) => return,
                    }
                }
                let _ = s.write_all(&n.to_be_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    });
    addr
}

/// Sends `total` bytes on `s`, half-closes, and checks the upstream's count.
async fn transfer<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, total: u64) {
    let chunk = vec![0x5au8; CHUNK];
    let mut left = total;
    while left > 0 {
        let k = left.min(CHUNK as u64) as usize;
        s.write_all(&chunk[..k]).await.unwrap();
        left -= k as u64;
    }
    s.shutdown().await.unwrap();
    let mut count = [0u8; 8];
    s.read_exact(&mut count).await.unwrap();
    assert_eq!(u64::from_be_bytes(count), total, "bytes were lost");
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Direct,
    Stream,
    StreamTls,
}

impl Mode {
    const ALL: [Mode; 3] = [Mode::Direct, Mode::Stream, Mode::StreamTls];

    fn name(self) -> &'static str {
        match self {
            Mode::Direct => "direct connection",
            Mode::Stream => "ppm TCP stream",
            Mode::StreamTls => "ppm TCP stream, TLS terminated",
        }
    }
}

struct Setup {
    upstream: SocketAddr,
    stream: SocketAddr,
    tls_stream: SocketAddr,
}

async fn run_one(setup: &Setup, mode: Mode, total: u64) -> Duration {
    let start = Instant::now();
    match mode {
        Mode::Direct => {
            let s = TcpStream::connect(setup.upstream).await.unwrap();
            s.set_nodelay(true).unwrap();
            transfer(s, total).await;
        }
        Mode::Stream => {
            let s = TcpStream::connect(setup.stream).await.unwrap();
            s.set_nodelay(true).unwrap();
            transfer(s, total).await;
        }
        Mode::StreamTls => {
            let (_, s) = tls_connect(setup.tls_stream, Some("bench.test"), &[], None)
                .await
                .unwrap();
            transfer(s, total).await;
        }
    }
    start.elapsed()
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn mbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e6
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let (total, rounds) = if benching {
        (
            env_u64("PPM_BENCH_BYTES", GIB).max(1),
            env_u64("PPM_BENCH_ROUNDS", 3).clamp(1, 20),
        )
    } else {
        (4 << 20, 1)
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let upstream = sink_upstream().await;
        let (cert_pem, key_pem) = self_signed_cert("bench.test").unwrap();
        let mut config = Config::new();
        config.certificates.push(ppm_core::config::Certificate {
            id: 1,
            name: "bench".into(),
            domain_names: vec!["bench.test".into()],
            certificate_pem: cert_pem,
            private_key_pem: key_pem,
            ..Default::default()
        });
        let (p1, p2) = (free_port().unwrap(), free_port().unwrap());
        for (id, port, cert) in [(1, p1, None), (2, p2, Some(1))] {
            config.streams.push(Stream {
                id,
                incoming_port: port,
                bind_address: "127.0.0.1".into(),
                protocol: StreamProtocol::Tcp,
                upstreams: vec![Upstream::new("127.0.0.1", upstream.port())],
                certificate_id: cert,
                ..Stream::default()
            });
        }
        let engine = ProxyEngine::builder()
            .store(Arc::new(MemoryStore::new(config)))
            .build()
            .await
            .unwrap();
        let setup = Setup {
            upstream,
            stream: ([127, 0, 0, 1], p1).into(),
            tls_stream: ([127, 0, 0, 1], p2).into(),
        };

        let mut times: Vec<(Mode, Vec<Duration>)> =
            Mode::ALL.iter().map(|m| (*m, Vec::new())).collect();
        for _ in 0..rounds {
            for (mode, t) in &mut times {
                t.push(run_one(&setup, *mode, total).await);
            }
        }

        let stats = engine.handle().stream_stats();
        let moved: u64 = stats.iter().map(|s| s.bytes_in).sum();
        assert_eq!(moved, 2 * rounds * total, "stream counters: {stats:?}");

        println!(
            "TCP stream throughput on loopback: {} MiB per transfer, {rounds} round(s), {} CPU(s)",
            total >> 20,
            std::thread::available_parallelism().map_or(0, |n| n.get()),
        );
        let best = |t: &[Duration]| *t.iter().min().unwrap();
        let direct_best = mbps(total, best(&times[0].1));
        println!(
            "{:<32} {:>10} {:>10} {:>10}",
            "mode", "best MB/s", "median", "vs direct"
        );
        for (mode, t) in &mut times {
            t.sort();
            let b = mbps(total, best(t));
            let median = mbps(total, t[t.len() / 2]);
            println!(
                "{:<32} {:>10.0} {:>10.0} {:>9.2}x",
                mode.name(),
                b,
                median,
                b / direct_best
            );
        }
    });
}
