//! Layer-4 streams: TCP and UDP port forwards, started, changed and stopped
//! at runtime from the compiled config.
//!
//! Pingora serves HTTP and cannot add listeners after it starts, so streams
//! run on tokio next to it. The engine owns a [`StreamManager`]: every
//! config it applies (at build and on each reload) is diffed against the
//! running streams by id, and the manager
//!
//! - starts listeners for new streams (and for streams that were enabled),
//! - reconfigures changed streams in place: new connections use the new
//!   upstreams, access list, PROXY protocol and timeouts, while connections
//!   already open keep their upstream until they end; a listener is only
//!   replaced when the stream's address, port or protocol changed,
//! - stops the listeners of removed (or disabled) streams at once and closes
//!   their open TCP connections after a grace period
//!   ([`StreamOptions::grace_period`]); UDP sessions end with their listener.
//!
//! A control plane that must answer "bound or not" before committing a
//! change calls [`StreamManager::reserve`] with the config it is about to
//! store: the listeners it adds are bound right away (a port in use or a
//! privileged port is reported with the stream's index, nothing changes),
//! and the bound sockets are handed to the manager when the engine applies
//! the config.
//!
//! TCP connections are copied both ways with half-close, end after
//! `idle_timeout_ms` without traffic (not after a fixed lifetime), fail over
//! to the next upstream when a connect fails, and may start with a PROXY
//! protocol header ([`proxy_protocol`]). A TCP stream with a certificate
//! terminates TLS ([`StreamTls`]): the client's handshake uses the
//! certificate from the certificate store (a renewal is served from the next
//! handshake on) and the plaintext goes to the upstream. UDP streams keep one session per
//! client address in a bounded table ([`StreamOptions::max_udp_sessions`]).
//! Upstreams are balanced like HTTP upstream groups (weighted round robin,
//! random, least connections, or a consistent hash of the client IP); a TCP
//! stream with more than one upstream health-checks them with TCP connects
//! every 5 s. Each stream's counters ([`StreamStats`]) are atomics bumped
//! on the data path and read with [`StreamManager::stats`].
//!
//! ```
//! use std::sync::Arc;
//! use ppm_core::config::{Config, Stream, StreamProtocol, Upstream};
//! use ppm_core::engine::ProxyEngine;
//! use ppm_core::store::MemoryStore;
//!
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! # let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
//! let mut config = Config::new();
//! config.streams.push(Stream {
//!     id: 1,
//!     incoming_port: port,
//!     bind_address: "127.0.0.1".into(),
//!     protocol: StreamProtocol::Tcp,
//!     upstreams: vec![Upstream::new("127.0.0.1", 5432)],
//!     ..Stream::default()
//! });
//! let engine = ProxyEngine::builder()
//!     .store(Arc::new(MemoryStore::new(config)))
//!     .build()
//!     .await
//!     .unwrap();
//! let streams = engine.handle().streams();
//! assert!(streams.status()[0].listeners[0].listening);
//! assert_eq!(streams.stats()[0].connections, 0);
//! # });
//! ```

mod acl;
mod manager;
pub mod proxy_protocol;
mod stats;
mod tcp;
mod tls;
mod udp;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

pub use acl::CidrRules;
pub use manager::{
    BindErrorKind, BindFailure, ListenerStatus, Reservation, StreamManager, StreamStatus, TlsStatus,
};
pub use stats::{StreamCounters, StreamStats};
pub use tls::{StreamTls, HANDSHAKE_TIMEOUT};

use crate::config::{Id, Stream, StreamProtocol};
use crate::upstream::UpstreamGroup;

/// Default grace period for the connections of a removed stream.
pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(30);
/// Default bound on the UDP session table of one listener.
pub const DEFAULT_MAX_UDP_SESSIONS: usize = 1024;
/// Default upstream connect timeout of TCP streams.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Listen backlog of TCP stream listeners.
pub const TCP_BACKLOG: i32 = 1024;

/// TCP or UDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Transport {
    /// `"tcp"` or `"udp"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        }
    }

    /// The transports a stream protocol listens on.
    pub fn of(p: StreamProtocol) -> &'static [Transport] {
        match p {
            StreamProtocol::Tcp => &[Transport::Tcp],
            StreamProtocol::Udp => &[Transport::Udp],
            StreamProtocol::Both => &[Transport::Tcp, Transport::Udp],
        }
    }
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Tuning of the stream runtime, set on the engine builder
/// ([`ProxyEngineBuilder::stream_options`](crate::engine::ProxyEngineBuilder::stream_options)).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StreamOptions {
    /// The runtime stream tasks run on; defaults to the runtime that builds
    /// the engine.
    pub runtime: Option<tokio::runtime::Handle>,
    /// How long the open TCP connections of a removed or disabled stream
    /// may continue before they are closed.
    pub grace_period: Duration,
    /// Most UDP sessions one listener keeps; when full, the session idle
    /// the longest is evicted. Each session holds one socket.
    pub max_udp_sessions: usize,
    /// Connect timeout towards TCP upstreams (per attempt).
    pub connect_timeout: Duration,
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions {
            runtime: None,
            grace_period: DEFAULT_GRACE_PERIOD,
            max_udp_sessions: DEFAULT_MAX_UDP_SESSIONS,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }
}

impl StreamOptions {
    /// Default options.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs stream tasks on `runtime`.
    #[must_use]
    pub fn runtime(mut self, runtime: tokio::runtime::Handle) -> Self {
        self.runtime = Some(runtime);
        self
    }

    /// Sets the grace period of removed streams' connections.
    #[must_use]
    pub fn grace_period(mut self, d: Duration) -> Self {
        self.grace_period = d;
        self
    }

    /// Sets the bound on each UDP listener's session table (at least 1).
    #[must_use]
    pub fn max_udp_sessions(mut self, n: usize) -> Self {
        self.max_udp_sessions = n.max(1);
        self
    }

    /// Sets the upstream connect timeout.
    #[must_use]
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }
}

/// The runtime form of one enabled stream, built by the compiler.
#[derive(Debug)]
pub struct CompiledStream {
    pub(crate) id: Id,
    pub(crate) bind: SocketAddr,
    pub(crate) protocol: StreamProtocol,
    pub(crate) group: Arc<UpstreamGroup>,
    pub(crate) acl: Option<CidrRules>,
    pub(crate) proxy_protocol: Option<proxy_protocol::Version>,
    pub(crate) idle_timeout: Duration,
    /// TLS termination (TCP streams with a certificate only).
    pub(crate) tls: Option<StreamTls>,
}

impl CompiledStream {
    /// The stream's id.
    pub fn id(&self) -> Id {
        self.id
    }

    /// The address it listens on.
    pub fn bind(&self) -> SocketAddr {
        self.bind
    }

    /// The upstream group.
    pub fn group(&self) -> &Arc<UpstreamGroup> {
        &self.group
    }

    /// TLS termination, when the stream has a certificate.
    pub fn tls(&self) -> Option<&StreamTls> {
        self.tls.as_ref()
    }

    fn transports(&self) -> &'static [Transport] {
        Transport::of(self.protocol)
    }
}

/// The address a stream listens on, if its model is well formed.
pub(crate) fn bind_addr(s: &Stream) -> Option<SocketAddr> {
    let ip: IpAddr = s.bind_address.trim().parse().ok()?;
    (s.incoming_port != 0).then(|| SocketAddr::new(ip, s.incoming_port))
}

/// State shared by a stream's listeners and connections, kept across
/// reconfiguration.
pub(crate) struct Shared {
    /// The current spec; each new connection or session loads it once.
    pub(crate) spec: ArcSwap<CompiledStream>,
    pub(crate) counters: Arc<StreamCounters>,
    /// Set when the stream's connections must end (grace period over).
    pub(crate) closing: tokio::sync::watch::Sender<bool>,
    pub(crate) connect_timeout: Duration,
}

/// The hash key of a client address (IPv4 as mapped IPv6, so both forms of
/// one client hash alike).
pub(crate) fn ip_key(ip: IpAddr) -> [u8; 16] {
    match crate::validate::canonical_ip(ip) {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}
