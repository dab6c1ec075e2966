//! Per-stream counters: relaxed atomics bumped on the data path, read as a
//! [`StreamStats`] snapshot by the control plane.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::config::Id;

/// The live counters of one stream. They survive reconfiguration of the
/// stream (same id) and go away with it.
#[derive(Debug, Default)]
pub struct StreamCounters {
    pub(crate) connections: AtomicU64,
    pub(crate) active: AtomicU64,
    pub(crate) bytes_in: AtomicU64,
    pub(crate) bytes_out: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) denied: AtomicU64,
    pub(crate) connect_failures: AtomicU64,
    pub(crate) udp_evicted: AtomicU64,
    pub(crate) tls_failures: AtomicU64,
}

#[inline]
pub(crate) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

#[inline]
pub(crate) fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

#[inline]
pub(crate) fn drop_one(c: &AtomicU64) {
    let _ = c.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1));
}

impl StreamCounters {
    /// A snapshot of every counter for stream `id`. Each counter is read
    /// atomically; the set is not one instant.
    pub fn snapshot(&self, id: Id) -> StreamStats {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StreamStats {
            stream_id: id,
            connections: r(&self.connections),
            active: r(&self.active),
            bytes_in: r(&self.bytes_in),
            bytes_out: r(&self.bytes_out),
            errors: r(&self.errors),
            denied: r(&self.denied),
            upstream_connect_failures: r(&self.connect_failures),
            udp_sessions_evicted: r(&self.udp_evicted),
            tls_handshake_failures: r(&self.tls_failures),
        }
    }
}

/// Counters of one stream at one moment. Totals count since the stream
/// started in this process (a changed stream keeps its totals).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[non_exhaustive]
pub struct StreamStats {
    /// The stream's id.
    pub stream_id: Id,
    /// TCP connections accepted plus UDP sessions created (denied ones excluded).
    pub connections: u64,
    /// TCP connections and UDP sessions open now.
    pub active: u64,
    /// Bytes received from clients and sent on to upstreams.
    pub bytes_in: u64,
    /// Bytes received from upstreams and sent on to clients.
    pub bytes_out: u64,
    /// Connections that ended in an error (no upstream reachable, TLS
    /// handshake failure, I/O error) and UDP datagrams dropped on an error.
    pub errors: u64,
    /// Connections and UDP sessions refused by the access list.
    pub denied: u64,
    /// Failed connects to upstreams (each failover attempt counts).
    pub upstream_connect_failures: u64,
    /// UDP sessions evicted because the session table was full.
    pub udp_sessions_evicted: u64,
    /// TLS handshakes with clients that failed, timed out, or were refused
    /// because the certificate is not issued yet (each also counts in
    /// `errors`).
    pub tls_handshake_failures: u64,
}
