//! The stream manager: diffs applied configs against the running streams
//! and starts, reconfigures or stops their listeners.

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::stats::{StreamCounters, StreamStats};
use super::{bind_addr, tcp, udp, CompiledStream, Shared, StreamOptions, Transport, TCP_BACKLOG};
use crate::compile::CompiledConfig;
use crate::config::{Config, Id, Stream};

/// How long stopping a listener may take before the manager moves on.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a listener could not be bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum BindErrorKind {
    /// Another socket holds the port.
    AddressInUse,
    /// The port is privileged (below 1024) and the process may not bind it.
    PermissionDenied,
    /// The bind address is not an address of this machine.
    AddressNotAvailable,
    /// Anything else the OS refused.
    Other,
}

/// A listener a stream needs but could not bind.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[non_exhaustive]
pub struct BindFailure {
    /// The stream's id (as given in the config checked).
    pub stream_id: Id,
    /// The stream's index in the config's `streams` list.
    pub index: usize,
    /// The address that could not be bound.
    pub address: SocketAddr,
    /// TCP or UDP.
    pub transport: Transport,
    /// Why.
    pub kind: BindErrorKind,
    /// A message for people, naming the port and the reason.
    pub message: String,
}

impl BindFailure {
    /// The stream field the failure is about: `bind_address` when the
    /// address is not local, else `incoming_port`.
    pub fn field(&self) -> &'static str {
        match self.kind {
            BindErrorKind::AddressNotAvailable => "bind_address",
            _ => "incoming_port",
        }
    }

    fn new(stream: &Stream, index: usize, key: ListenKey, e: &io::Error) -> Self {
        let port = key.addr.port();
        let t = key.transport;
        let (kind, message) = match e.kind() {
            io::ErrorKind::AddrInUse => (
                BindErrorKind::AddressInUse,
                format!("port {port}/{t} is already in use on {}", key.addr.ip()),
            ),
            io::ErrorKind::PermissionDenied if port < 1024 => (
                BindErrorKind::PermissionDenied,
                format!(
                    "port {port}/{t} is privileged: binding it needs root or CAP_NET_BIND_SERVICE"
                ),
            ),
            io::ErrorKind::PermissionDenied => (
                BindErrorKind::PermissionDenied,
                format!("binding port {port}/{t} was refused: {e}"),
            ),
            io::ErrorKind::AddrNotAvailable => (
                BindErrorKind::AddressNotAvailable,
                format!("{} is not an address of this machine", key.addr.ip()),
            ),
            _ => (
                BindErrorKind::Other,
                format!("cannot listen on {}/{t}: {e}", key.addr),
            ),
        };
        BindFailure {
            stream_id: stream.id,
            index,
            address: key.addr,
            transport: t,
            kind,
            message,
        }
    }
}

impl std::fmt::Display for BindFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "stream {}: {}", self.stream_id, self.message)
    }
}

impl std::error::Error for BindFailure {}

/// The state of one listener of a stream.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[non_exhaustive]
pub struct ListenerStatus {
    /// TCP or UDP.
    pub transport: Transport,
    /// The address.
    pub address: SocketAddr,
    /// Whether it accepts traffic now.
    pub listening: bool,
    /// Why it does not, when binding failed.
    pub error: Option<String>,
}

/// The runtime state of one stream of the applied config.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[non_exhaustive]
pub struct StreamStatus {
    /// The stream's id.
    pub id: Id,
    /// Whether the stream is enabled (a disabled stream has no listeners).
    pub enabled: bool,
    /// One per transport the stream uses.
    pub listeners: Vec<ListenerStatus>,
    /// TLS termination, for a TCP stream with a certificate.
    pub tls: Option<TlsStatus>,
    /// Its counters.
    pub stats: StreamStats,
}

/// The certificate a TLS stream serves to new connections.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[non_exhaustive]
pub struct TlsStatus {
    /// The certificate's id.
    pub certificate_id: Id,
    /// Whether it is issued; until then handshakes are refused.
    pub issued: bool,
    /// SHA-256 fingerprint of the leaf served, lower-case hex.
    pub fingerprint: Option<String>,
    /// End of its validity, unix seconds.
    pub not_after: Option<i64>,
}

impl TlsStatus {
    fn of(t: &super::StreamTls) -> Self {
        let cert = t.certificate();
        TlsStatus {
            certificate_id: t.certificate_id(),
            issued: cert.is_some(),
            fingerprint: cert.map(|c| c.fingerprint().to_string()),
            not_after: cert.map(|c| c.not_after()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct ListenKey {
    addr: SocketAddr,
    transport: Transport,
}

enum Bound {
    Tcp(std::net::TcpListener),
    Udp(std::net::UdpSocket),
}

fn bind(key: ListenKey) -> io::Result<Bound> {
    use socket2::{Domain, Protocol, Socket, Type};
    let domain = Domain::for_address(key.addr);
    match key.transport {
        Transport::Tcp => {
            let s = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
            // Rebinding a port with connections in TIME_WAIT must work.
            s.set_reuse_address(true)?;
            s.bind(&key.addr.into())?;
            s.listen(TCP_BACKLOG)?;
            s.set_nonblocking(true)?;
            Ok(Bound::Tcp(s.into()))
        }
        Transport::Udp => {
            // No SO_REUSEADDR: on UDP it would let two sockets share a port.
            let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
            s.bind(&key.addr.into())?;
            s.set_nonblocking(true)?;
            Ok(Bound::Udp(s.into()))
        }
    }
}

enum Slot {
    Empty,
    Listening {
        key: ListenKey,
        stop: watch::Sender<bool>,
        task: JoinHandle<()>,
    },
    Failed {
        key: ListenKey,
        error: String,
    },
}

struct Running {
    id: Id,
    shared: Arc<Shared>,
    tcp: Slot,
    udp: Slot,
}

impl Running {
    fn slot_mut(&mut self, t: Transport) -> &mut Slot {
        match t {
            Transport::Tcp => &mut self.tcp,
            Transport::Udp => &mut self.udp,
        }
    }

    fn listening_keys(&self) -> impl Iterator<Item = ListenKey> + '_ {
        [&self.tcp, &self.udp].into_iter().filter_map(|s| match s {
            Slot::Listening { key, .. } => Some(*key),
            _ => None,
        })
    }
}

#[derive(Default)]
struct State {
    streams: HashMap<Id, Running>,
    /// The config applied last, for status and for [`StreamManager::reserve`].
    applied: Option<Arc<Config>>,
}

struct Inner {
    rt: tokio::runtime::Handle,
    opts: StreamOptions,
    state: Mutex<State>,
    /// Serialises [`StreamManager::apply`].
    apply_lock: tokio::sync::Mutex<()>,
    /// Sockets bound by reservations, waiting for the config that uses them.
    pool: Mutex<HashMap<ListenKey, (u64, Bound)>>,
    next_token: AtomicU64,
    /// Counters of the running streams, for lock-free reads.
    counters: ArcSwap<Vec<(Id, Arc<StreamCounters>)>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The engine is gone: stop every listener and close every connection.
        if let Ok(st) = self.state.get_mut() {
            for r in st.streams.values() {
                r.shared.closing.send_replace(true);
                for s in [&r.tcp, &r.udp] {
                    if let Slot::Listening { stop, .. } = s {
                        stop.send_replace(true);
                    }
                }
            }
        }
    }
}

/// Runs the streams of the applied config. Cheap to clone; reach it through
/// [`EngineHandle::streams`](crate::engine::EngineHandle::streams).
#[derive(Clone)]
pub struct StreamManager {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for StreamManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamManager")
            .field("options", &self.inner.opts)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded state stays consistent at every await-free step, so a
    // panic elsewhere does not make it unusable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Listeners bound ahead of a config change by [`StreamManager::reserve`].
///
/// Keep it until the engine has applied the config (then the manager has
/// taken the sockets); dropping it earlier, or when the change is abandoned,
/// closes the sockets it still holds.
#[must_use = "dropping a reservation releases its sockets"]
pub struct Reservation {
    inner: Arc<Inner>,
    token: u64,
    keys: Vec<ListenKey>,
}

impl Reservation {
    /// How many listeners were bound.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether nothing had to be bound.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

impl std::fmt::Debug for Reservation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reservation")
            .field("keys", &self.keys)
            .finish()
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut pool = lock(&self.inner.pool);
        for k in &self.keys {
            if pool.get(k).is_some_and(|(t, _)| *t == self.token) {
                pool.remove(k);
            }
        }
    }
}

impl StreamManager {
    /// A manager with no streams. Tasks run on `opts.runtime`, else on the
    /// current runtime.
    ///
    /// # Errors
    /// Fails outside a tokio runtime when `opts.runtime` is not set.
    pub fn new(opts: StreamOptions) -> io::Result<Self> {
        let rt = match &opts.runtime {
            Some(h) => h.clone(),
            None => tokio::runtime::Handle::try_current()
                .map_err(|e| io::Error::other(format!("streams need a tokio runtime: {e}")))?,
        };
        Ok(StreamManager {
            inner: Arc::new(Inner {
                rt,
                opts,
                state: Mutex::new(State::default()),
                apply_lock: tokio::sync::Mutex::new(()),
                pool: Mutex::new(HashMap::new()),
                next_token: AtomicU64::new(1),
                counters: ArcSwap::from_pointee(Vec::new()),
            }),
        })
    }

    /// The options it runs with.
    pub fn options(&self) -> &StreamOptions {
        &self.inner.opts
    }

    /// Binds, now, the listeners that applying `config` would start: those
    /// of enabled streams that are new or changed compared with the config
    /// applied last and not listening already. A stream identical to the
    /// applied one is left to [`apply`](Self::apply), which retries a failed
    /// bind, so one broken stream does not block changes to the others.
    ///
    /// On success the sockets wait in the manager until a config using them
    /// is applied. On failure nothing stays bound and every listener that
    /// could not be bound is reported with its stream's index in `config`.
    pub fn reserve(&self, config: &Config) -> Result<Reservation, Vec<BindFailure>> {
        let token = self.inner.next_token.fetch_add(1, Ordering::Relaxed);
        let mut reservation = Reservation {
            inner: self.inner.clone(),
            token,
            keys: Vec::new(),
        };
        let mut failures = Vec::new();
        let st = lock(&self.inner.state);
        let running: HashSet<ListenKey> = st
            .streams
            .values()
            .flat_map(|r| r.listening_keys())
            .collect();
        let applied: HashMap<Id, &Stream> = st
            .applied
            .as_deref()
            .map(|c| c.streams.iter().map(|s| (s.id, s)).collect())
            .unwrap_or_default();
        let wanted: HashSet<ListenKey> = config
            .streams
            .iter()
            .filter(|s| s.enabled)
            .filter_map(|s| {
                let addr = bind_addr(s)?;
                Some(
                    Transport::of(s.protocol)
                        .iter()
                        .map(move |&transport| ListenKey { addr, transport }),
                )
            })
            .flatten()
            .collect();
        for (index, s) in config.streams.iter().enumerate() {
            if !s.enabled || applied.get(&s.id).is_some_and(|a| *a == s) {
                continue;
            }
            let Some(addr) = bind_addr(s) else {
                continue;
            };
            for &transport in Transport::of(s.protocol) {
                let key = ListenKey { addr, transport };
                if running.contains(&key) || lock(&self.inner.pool).contains_key(&key) {
                    continue;
                }
                match bind(key) {
                    Ok(b) => {
                        lock(&self.inner.pool).insert(key, (token, b));
                        reservation.keys.push(key);
                    }
                    // The port is ours, held by a listener this change
                    // removes: it is bound when the old one has stopped.
                    Err(e)
                        if e.kind() == io::ErrorKind::AddrInUse
                            && running.iter().any(|r| {
                                r.transport == transport
                                    && r.addr.port() == addr.port()
                                    && !wanted.contains(r)
                            }) => {}
                    Err(e) => failures.push(BindFailure::new(s, index, key, &e)),
                }
            }
        }
        drop(st);
        if failures.is_empty() {
            Ok(reservation)
        } else {
            drop(reservation);
            Err(failures)
        }
    }

    /// Makes the running streams match `config`. The engine calls this on
    /// every config it applies, under its reload lock.
    pub(crate) async fn apply(&self, config: &CompiledConfig) {
        let _serial = self.inner.apply_lock.lock().await;
        let desired: &[Arc<CompiledStream>] = &config.streams;
        let mut stopping: Vec<(watch::Sender<bool>, JoinHandle<()>)> = Vec::new();
        let mut removed: Vec<Arc<Shared>> = Vec::new();
        {
            let mut st = lock(&self.inner.state);
            let ids: HashSet<Id> = desired.iter().map(|d| d.id).collect();
            let gone: Vec<Id> = st
                .streams
                .keys()
                .filter(|id| !ids.contains(id))
                .copied()
                .collect();
            for id in gone {
                if let Some(mut r) = st.streams.remove(&id) {
                    for t in [Transport::Tcp, Transport::Udp] {
                        if let Slot::Listening { stop, task, .. } =
                            std::mem::replace(r.slot_mut(t), Slot::Empty)
                        {
                            stopping.push((stop, task));
                        }
                    }
                    tracing::info!(stream = id, "stream stopped");
                    removed.push(r.shared);
                }
            }
            for d in desired {
                let Some(r) = st.streams.get_mut(&d.id) else {
                    continue;
                };
                r.shared.spec.store(d.clone());
                for t in [Transport::Tcp, Transport::Udp] {
                    let want = d.transports().contains(&t).then_some(ListenKey {
                        addr: d.bind,
                        transport: t,
                    });
                    let slot = r.slot_mut(t);
                    let keep = matches!(slot, Slot::Listening { key, .. } if Some(*key) == want);
                    if !keep {
                        if let Slot::Listening { stop, task, .. } =
                            std::mem::replace(slot, Slot::Empty)
                        {
                            stopping.push((stop, task));
                        }
                    }
                }
            }
        }

        // Stop replaced and removed listeners, and wait until their sockets
        // are closed, so the ports are free for what starts next.
        for (stop, _) in &stopping {
            stop.send_replace(true);
        }
        for (_, task) in stopping {
            if tokio::time::timeout(STOP_TIMEOUT, task).await.is_err() {
                tracing::warn!("a stream listener took too long to stop");
            }
        }
        let grace = self.inner.opts.grace_period;
        for shared in removed {
            self.inner.rt.spawn(async move {
                tokio::time::sleep(grace).await;
                shared.closing.send_replace(true);
            });
        }

        let mut st = lock(&self.inner.state);
        for d in desired {
            let connect_timeout = self.inner.opts.connect_timeout;
            let r = st.streams.entry(d.id).or_insert_with(|| {
                tracing::info!(stream = d.id, address = %d.bind, "stream started");
                Running {
                    id: d.id,
                    shared: Arc::new(Shared {
                        spec: ArcSwap::new(d.clone()),
                        counters: Arc::new(StreamCounters::default()),
                        closing: watch::channel(false).0,
                        connect_timeout,
                    }),
                    tcp: Slot::Empty,
                    udp: Slot::Empty,
                }
            });
            for &t in d.transports() {
                let key = ListenKey {
                    addr: d.bind,
                    transport: t,
                };
                let shared = r.shared.clone();
                let id = r.id;
                let slot = r.slot_mut(t);
                if matches!(slot, Slot::Listening { .. }) {
                    continue;
                }
                *slot = self.start(id, key, shared);
            }
        }
        st.applied = Some(config.source().clone());
        let counters: Vec<(Id, Arc<StreamCounters>)> = st
            .streams
            .values()
            .map(|r| (r.id, r.shared.counters.clone()))
            .collect();
        drop(st);
        self.inner.counters.store(Arc::new(counters));
    }

    fn start(&self, id: Id, key: ListenKey, shared: Arc<Shared>) -> Slot {
        let pooled = lock(&self.inner.pool).remove(&key).map(|(_, b)| b);
        let bound = match pooled {
            Some(b) => Ok(b),
            None => bind(key),
        };
        let bound = match bound {
            Ok(b) => b,
            Err(e) => {
                let f = BindFailure::new(&shared.spec.load().model_stub(), 0, key, &e);
                tracing::error!(
                    stream = id,
                    address = %key.addr,
                    transport = %key.transport,
                    error = %f.message,
                    "a stream cannot listen; the other streams and hosts keep serving"
                );
                return Slot::Failed {
                    key,
                    error: f.message,
                };
            }
        };
        let (stop, stop_rx) = watch::channel(false);
        let _rt = self.inner.rt.enter();
        let task = match bound {
            Bound::Tcp(l) => match tokio::net::TcpListener::from_std(l) {
                Ok(l) => self.inner.rt.spawn(tcp::accept_loop(l, shared, stop_rx)),
                Err(e) => {
                    return Slot::Failed {
                        key,
                        error: format!("cannot listen on {}/tcp: {e}", key.addr),
                    }
                }
            },
            Bound::Udp(s) => match tokio::net::UdpSocket::from_std(s) {
                Ok(s) => self.inner.rt.spawn(udp::serve(
                    s,
                    shared,
                    self.inner.opts.max_udp_sessions,
                    stop_rx,
                )),
                Err(e) => {
                    return Slot::Failed {
                        key,
                        error: format!("cannot listen on {}/udp: {e}", key.addr),
                    }
                }
            },
        };
        Slot::Listening { key, stop, task }
    }

    /// Counters of every running stream, lock-free.
    pub fn stats(&self) -> Vec<StreamStats> {
        self.inner
            .counters
            .load()
            .iter()
            .map(|(id, c)| c.snapshot(*id))
            .collect()
    }

    /// The live counters of stream `id`, to read repeatedly without a
    /// lookup. They stay valid (but stop moving) once the stream is removed.
    pub fn counters(&self, id: Id) -> Option<Arc<StreamCounters>> {
        self.inner
            .counters
            .load()
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, c)| c.clone())
    }

    /// The state of every stream of the applied config, in config order:
    /// whether each listener is up, why not, and the counters.
    pub fn status(&self) -> Vec<StreamStatus> {
        let st = lock(&self.inner.state);
        let Some(applied) = st.applied.clone() else {
            return Vec::new();
        };
        applied
            .streams
            .iter()
            .map(|s| {
                let running = st.streams.get(&s.id).filter(|_| s.enabled);
                let listeners = match running {
                    None => Vec::new(),
                    Some(r) => Transport::of(s.protocol)
                        .iter()
                        .filter_map(|&t| {
                            let slot = match t {
                                Transport::Tcp => &r.tcp,
                                Transport::Udp => &r.udp,
                            };
                            match slot {
                                Slot::Empty => None,
                                Slot::Listening { key, .. } => Some(ListenerStatus {
                                    transport: t,
                                    address: key.addr,
                                    listening: true,
                                    error: None,
                                }),
                                Slot::Failed { key, error } => Some(ListenerStatus {
                                    transport: t,
                                    address: key.addr,
                                    listening: false,
                                    error: Some(error.clone()),
                                }),
                            }
                        })
                        .collect(),
                };
                StreamStatus {
                    id: s.id,
                    enabled: s.enabled,
                    listeners,
                    tls: running.and_then(|r| r.shared.spec.load().tls.as_ref().map(TlsStatus::of)),
                    stats: running.map(|r| r.shared.counters.snapshot(s.id)).unwrap_or(
                        StreamStats {
                            stream_id: s.id,
                            ..StreamStats::default()
                        },
                    ),
                }
            })
            .collect()
    }
}

impl CompiledStream {
    /// Enough of the model to name a bind failure.
    fn model_stub(&self) -> Stream {
        Stream {
            id: self.id,
            ..Stream::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(port: u16, kind: io::ErrorKind) -> BindFailure {
        let stream = Stream {
            id: 7,
            ..Stream::default()
        };
        let key = ListenKey {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            transport: Transport::Tcp,
        };
        BindFailure::new(&stream, 2, key, &io::Error::from(kind))
    }

    #[test]
    fn bind_failures_name_the_reason_and_the_field() {
        let f = failure(80, io::ErrorKind::PermissionDenied);
        assert_eq!(f.kind, BindErrorKind::PermissionDenied);
        assert_eq!(f.field(), "incoming_port");
        assert!(
            f.message.contains("port 80/tcp is privileged")
                && f.message.contains("CAP_NET_BIND_SERVICE"),
            "{}",
            f.message
        );
        assert_eq!((f.stream_id, f.index), (7, 2));

        let f = failure(8080, io::ErrorKind::PermissionDenied);
        assert_eq!(f.kind, BindErrorKind::PermissionDenied);
        assert!(!f.message.contains("privileged"), "{}", f.message);

        let f = failure(5432, io::ErrorKind::AddrInUse);
        assert_eq!(f.kind, BindErrorKind::AddressInUse);
        assert_eq!(f.field(), "incoming_port");
        assert!(
            f.message.contains("5432/tcp is already in use"),
            "{}",
            f.message
        );

        let f = failure(5432, io::ErrorKind::AddrNotAvailable);
        assert_eq!(f.kind, BindErrorKind::AddressNotAvailable);
        assert_eq!(f.field(), "bind_address");
    }
}
