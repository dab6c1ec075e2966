//! UDP streams: one session per client address, each with its own
//! connected socket towards the upstream chosen when the session started.
//!
//! Each datagram is forwarded as one datagram (buffers hold the largest
//! possible payload, so nothing is truncated, merged or split). Sessions end
//! after `idle_timeout_ms` without traffic either way. The session table is
//! bounded: when it is full, the session idle the longest is evicted to make
//! room, so a flood of source addresses cannot grow memory without bound.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinSet};

use super::stats::{add, bump, drop_one};
use super::{CompiledStream, Shared};
use crate::upstream::now_ms;

/// Large enough for any UDP payload (65,507 bytes over IPv4, 65,527 over
/// IPv6 without jumbograms).
const DATAGRAM_BUF: usize = 65_536;

struct Session {
    upstream: Arc<UdpSocket>,
    last: Arc<AtomicU64>,
    task: AbortHandle,
    spec: Arc<CompiledStream>,
    member: usize,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.task.abort();
        self.spec.group.end(self.member);
    }
}

thread_local! {
    // One receive buffer per worker thread for the upstream side: sessions
    // waiting for a reply hold no buffer.
    static REPLY_BUF: RefCell<Vec<u8>> = RefCell::new(vec![0u8; DATAGRAM_BUF]);
}

type Table = HashMap<SocketAddr, Session, foldhash::fast::RandomState>;

/// Serves a UDP listener until `stop` is set (or its sender is gone). All
/// sessions end with it.
pub(crate) async fn serve(
    socket: UdpSocket,
    shared: Arc<Shared>,
    max_sessions: usize,
    mut stop: watch::Receiver<bool>,
) {
    let socket = Arc::new(socket);
    let mut sessions = Table::default();
    let mut tasks: JoinSet<()> = JoinSet::new();
    let mut buf = vec![0u8; DATAGRAM_BUF];
    let mut sweep = tokio::time::interval(sweep_period(&shared.spec.load()));
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let counters = shared.counters.clone();
    loop {
        tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            _ = sweep.tick() => {
                let spec = shared.spec.load();
                let idle = millis(spec.idle_timeout);
                let now = now_ms();
                let before = sessions.len();
                sessions.retain(|_, s| now.saturating_sub(s.last.load(Ordering::Relaxed)) < idle);
                for _ in sessions.len()..before {
                    drop_one(&counters.active);
                }
                let period = sweep_period(&spec);
                if period != sweep.period() {
                    sweep = tokio::time::interval(period);
                    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                }
            }
            r = socket.recv_from(&mut buf) => {
                let (n, client) = match r {
                    Ok(r) => r,
                    Err(e) => {
                        // An ICMP error for an earlier reply and the like.
                        tracing::debug!(error = %e, "receiving on a UDP stream failed");
                        continue;
                    }
                };
                let data = &buf[..n];
                if let Some(s) = sessions.get(&client) {
                    s.last.store(now_ms(), Ordering::Relaxed);
                    forward(&s.upstream, data, &shared);
                    continue;
                }
                let spec = shared.spec.load_full();
                if let Some(acl) = &spec.acl {
                    if !acl.allows(client.ip()) {
                        bump(&counters.denied);
                        continue;
                    }
                }
                if sessions.len() >= max_sessions.max(1) {
                    evict_oldest(&mut sessions, &shared);
                }
                let session = match open(&spec, client, &socket, &shared, &mut tasks) {
                    Ok(s) => s,
                    Err(e) => {
                        bump(&counters.errors);
                        tracing::debug!(stream = spec.id, client = %client, error = %e, "opening a UDP session failed");
                        continue;
                    }
                };
                bump(&counters.connections);
                bump(&counters.active);
                forward(&session.upstream, data, &shared);
                sessions.insert(client, session);
            }
        }
    }
    for _ in 0..sessions.len() {
        drop_one(&counters.active);
    }
    drop(sessions);
    // Wait for the reply tasks, which hold the listening socket, so the port
    // is free once this returns.
    tasks.shutdown().await;
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// How often idle sessions are looked for: a quarter of the idle timeout,
/// between 10 ms and 1 s.
fn sweep_period(spec: &CompiledStream) -> Duration {
    (spec.idle_timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(1))
}

fn forward(upstream: &UdpSocket, data: &[u8], shared: &Shared) {
    // Never wait: a full send buffer drops the datagram, as the network
    // would. The send goes straight to the socket: tokio's `try_send` would
    // refuse a socket the reactor has not yet seen writable (a new session).
    match socket2::SockRef::from(upstream).send(data) {
        Ok(_) => add(&shared.counters.bytes_in, data.len() as u64),
        Err(e) => {
            bump(&shared.counters.errors);
            tracing::debug!(error = %e, "forwarding a UDP datagram failed");
        }
    }
}

fn evict_oldest(sessions: &mut Table, shared: &Shared) {
    let oldest = sessions
        .iter()
        .min_by_key(|(_, s)| s.last.load(Ordering::Relaxed))
        .map(|(a, _)| *a);
    if let Some(addr) = oldest {
        sessions.remove(&addr);
        drop_one(&shared.counters.active);
        bump(&shared.counters.udp_evicted);
    }
}

fn open(
    spec: &Arc<CompiledStream>,
    client: SocketAddr,
    listener: &Arc<UdpSocket>,
    shared: &Arc<Shared>,
    tasks: &mut JoinSet<()>,
) -> io::Result<Session> {
    let key = super::ip_key(client.ip());
    let member = spec
        .group
        .select(&key, 0)
        .ok_or_else(|| io::Error::other("no upstream"))?;
    let addr = spec.group.members()[member].addr;
    let local: SocketAddr = match addr.ip() {
        IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let std_socket = std::net::UdpSocket::bind(local)?;
    std_socket.connect(addr)?;
    std_socket.set_nonblocking(true)?;
    let upstream = Arc::new(UdpSocket::from_std(std_socket)?);
    let last = Arc::new(AtomicU64::new(now_ms()));
    spec.group.begin(member);
    let task = tasks.spawn(replies(
        upstream.clone(),
        listener.clone(),
        client,
        last.clone(),
        shared.clone(),
    ));
    Ok(Session {
        upstream,
        last,
        task,
        spec: spec.clone(),
        member,
    })
}

/// Sends the upstream's datagrams back to the client, from the listening
/// socket, until the session is dropped (which aborts this task).
async fn replies(
    upstream: Arc<UdpSocket>,
    listener: Arc<UdpSocket>,
    client: SocketAddr,
    last: Arc<AtomicU64>,
    shared: Arc<Shared>,
) {
    loop {
        if let Err(e) = upstream.readable().await {
            tracing::debug!(error = %e, "waiting on a UDP upstream failed");
            return;
        }
        REPLY_BUF.with(|b| {
            let mut b = b.borrow_mut();
            match upstream.try_recv(&mut b[..]) {
                Ok(n) => {
                    last.store(now_ms(), Ordering::Relaxed);
                    match socket2::SockRef::from(&*listener).send_to(&b[..n], &client.into()) {
                        Ok(_) => add(&shared.counters.bytes_out, n as u64),
                        Err(_) => bump(&shared.counters.errors),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The upstream refused (ICMP port unreachable): the session
                // stays, the next datagram may find it up.
                Err(_) => bump(&shared.counters.errors),
            }
        });
    }
}
