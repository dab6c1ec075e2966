//! TCP streams: accept, check the access list, terminate TLS when the stream
//! has a certificate, connect an upstream (with failover), optionally send a
//! PROXY header, then copy both ways with
//! half-close until both sides are done, the connection goes idle, or the
//! stream is removed and its grace period ends.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::stats::{add, bump, drop_one, StreamCounters};
use super::{proxy_protocol, CompiledStream, Shared};
use crate::upstream::{now_ms, UpstreamGroup};

/// Size of each direction's copy buffer.
const COPY_BUF: usize = 64 * 1024;

/// Accepts connections until `stop` is set (or its sender is gone).
pub(crate) async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => break,
            a = listener.accept() => a,
        };
        let (client, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of
                // spinning, keep the listener.
                tracing::warn!(error = %e, "accepting a stream connection failed");
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => break,
                    _ = tokio::time::sleep(Duration::from_millis(50)) => continue,
                }
            }
        };
        let spec = shared.spec.load_full();
        if let Some(acl) = &spec.acl {
            if !acl.allows(peer.ip()) {
                bump(&shared.counters.denied);
                tracing::debug!(stream = spec.id, client = %peer, "connection denied by the access list");
                continue;
            }
        }
        let shared = shared.clone();
        tokio::spawn(async move {
            let counters = shared.counters.clone();
            let mut closing = shared.closing.subscribe();
            // Closed already (a deleted stream whose grace period is over).
            if *closing.borrow() {
                return;
            }
            bump(&counters.connections);
            bump(&counters.active);
            let _active = Active(&counters);
            let r = handle(client, peer, &spec, &shared, &mut closing).await;
            if let Err(e) = r {
                bump(&counters.errors);
                tracing::debug!(stream = spec.id, client = %peer, error = %e, "stream connection failed");
            }
        });
    }
}

struct Active<'a>(&'a StreamCounters);

impl Drop for Active<'_> {
    fn drop(&mut self) {
        drop_one(&self.0.active);
    }
}

/// Keeps a least-connections count on an upstream while a connection uses it.
struct InUse<'a>(&'a UpstreamGroup, usize);

impl Drop for InUse<'_> {
    fn drop(&mut self) {
        self.0.end(self.1);
    }
}

async fn handle(
    client: TcpStream,
    peer: SocketAddr,
    spec: &CompiledStream,
    shared: &Shared,
    closing: &mut watch::Receiver<bool>,
) -> io::Result<()> {
    let _ = client.set_nodelay(true);
    let local = client.local_addr()?;
    match &spec.tls {
        None => forward(client, peer, local, spec, shared, closing).await,
        Some(tls) => {
            // The handshake comes first: no upstream connection is made for
            // a client that cannot complete it.
            let timeout = spec.idle_timeout.min(super::HANDSHAKE_TIMEOUT);
            let client = match tls.accept(client, timeout, closing).await {
                Ok(c) => c,
                Err(e) => {
                    bump(&shared.counters.tls_failures);
                    return Err(e);
                }
            };
            forward(client, peer, local, spec, shared, closing).await
        }
    }
}

/// Connects the upstream, sends the PROXY header and relays `client`
/// (plain TCP, or the plaintext side of a TLS session).
async fn forward<C: AsyncRead + AsyncWrite + Unpin>(
    client: C,
    peer: SocketAddr,
    local: SocketAddr,
    spec: &CompiledStream,
    shared: &Shared,
    closing: &mut watch::Receiver<bool>,
) -> io::Result<()> {
    let (mut upstream, member) =
        connect_upstream(spec, peer.ip(), shared.connect_timeout, &shared.counters).await?;
    let _in_use = InUse(&spec.group, member);
    if let Some(v) = spec.proxy_protocol {
        let mut header = Vec::with_capacity(proxy_protocol::MAX_HEADER_LEN);
        proxy_protocol::encode(v, peer, local, &mut header);
        upstream.write_all(&header).await?;
    }
    relay(
        client,
        upstream,
        spec.idle_timeout,
        &shared.counters,
        closing,
    )
    .await
}

/// Connects to an upstream chosen by the stream's balancing, trying the
/// next one when a connect fails or times out, until every upstream was
/// tried once.
pub(crate) async fn connect_upstream(
    spec: &CompiledStream,
    client: IpAddr,
    timeout: Duration,
    counters: &StreamCounters,
) -> io::Result<(TcpStream, usize)> {
    let group = &spec.group;
    let key = super::ip_key(client);
    let mut tried = 0u64;
    let mut last_err = None;
    for _ in 0..group.members().len() {
        let Some(i) = group.select(&key, tried) else {
            break;
        };
        tried |= 1u64 << i;
        let addr = group.members()[i].addr;
        group.begin(i);
        let r = tokio::time::timeout(timeout, TcpStream::connect(addr)).await;
        match r {
            Ok(Ok(s)) => {
                group.report_success(i);
                let _ = s.set_nodelay(true);
                return Ok((s, i));
            }
            Ok(Err(e)) => {
                tracing::debug!(stream = spec.id, upstream = %addr, error = %e, "stream upstream connect failed");
                last_err = Some(e);
            }
            Err(_) => {
                tracing::debug!(stream = spec.id, upstream = %addr, "stream upstream connect timed out");
                last_err = Some(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("connecting to {addr} timed out"),
                ));
            }
        }
        group.end(i);
        group.report_failure(i);
        bump(&counters.connect_failures);
    }
    Err(last_err.unwrap_or_else(|| io::Error::other("no upstream to connect to")))
}

/// A stream that counts the bytes read from it and notes the time of any
/// progress, for the idle timeout.
struct Tracked<'a, S> {
    inner: S,
    read_bytes: &'a AtomicU64,
    last: &'a AtomicU64,
}

impl<S> Tracked<'_, S> {
    #[inline]
    fn touch(&self) {
        self.last.store(now_ms(), Ordering::Relaxed);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<'_, S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            add(self.read_bytes, n as u64);
            self.touch();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<'_, S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &r {
            if *n > 0 {
                self.touch();
            }
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Copies both ways until both directions reached EOF (each EOF is passed
/// on as a write shutdown, so half-closed connections work), nothing moved
/// for `idle`, or the stream is closed.
pub(crate) async fn relay<C, U>(
    client: C,
    upstream: U,
    idle: Duration,
    counters: &StreamCounters,
    closing: &mut watch::Receiver<bool>,
) -> io::Result<()>
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let last = AtomicU64::new(now_ms());
    let mut a = Tracked {
        inner: client,
        read_bytes: &counters.bytes_in,
        last: &last,
    };
    let mut b = Tracked {
        inner: upstream,
        read_bytes: &counters.bytes_out,
        last: &last,
    };
    let copy = tokio::io::copy_bidirectional_with_sizes(&mut a, &mut b, COPY_BUF, COPY_BUF);
    tokio::pin!(copy);
    let idle_ms = u64::try_from(idle.as_millis()).unwrap_or(u64::MAX);
    let mut wait = idle;
    loop {
        tokio::select! {
            r = &mut copy => return r.map(|_| ()),
            _ = tokio::time::sleep(wait) => {
                let quiet = now_ms().saturating_sub(last.load(Ordering::Relaxed));
                if quiet >= idle_ms {
                    // Not an error: the idle timeout is the expected end of
                    // a forgotten connection.
                    return Ok(());
                }
                wait = Duration::from_millis(idle_ms - quiet);
            }
            _ = closing.wait_for(|c| *c) => return Ok(()),
        }
    }
}
