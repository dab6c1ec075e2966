//! Helpers for testing filters and engines (feature `testing`).
//!
//! - [`run_request_phase`] runs filters on a request without a server.
//! - [`spawn_engine`] runs a [`ProxyEngine`] in a Pingora server on a free
//!   `127.0.0.1` port, stopped when the returned [`TestProxy`] drops.
//! - [`EchoUpstream`] is a real HTTP/1.1 upstream on `127.0.0.1:0` that
//!   answers with what it received, and [`send`] a minimal HTTP client.
//!
//! ```
//! use std::sync::Arc;
//! use ppm_core::filter::{FilterAction, FilterEntry, FilterResponse, Filter, Phases, RequestCtx};
//! use ppm_core::testing::{request, run_request_phase};
//!
//! struct Teapot;
//! #[ppm_core::async_trait]
//! impl Filter for Teapot {
//!     fn name(&self) -> &str { "teapot" }
//!     fn phases(&self) -> Phases { Phases::REQUEST }
//!     async fn request_filter(&self, _: &ppm_core::http::RequestHeader, _: &mut RequestCtx)
//!         -> ppm_core::Result<FilterAction> {
//!         Ok(FilterAction::Respond(FilterResponse::text(418, "teapot")))
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let req = request("GET", "/", &[("host", "a.test")]).unwrap();
//! let mut ctx = RequestCtx::new(Some("192.0.2.1".parse().unwrap()));
//! let action = run_request_phase(&[Arc::new(Teapot)], &req, &mut ctx).await.unwrap();
//! assert!(matches!(action, FilterAction::Respond(r) if r.status == 418));
//! # });
//! ```

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pingora_core::server::configuration::ServerConf;
use pingora_core::server::{RunArgs, Server, ShutdownSignal, ShutdownSignalWatch};
use pingora_http::RequestHeader;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::engine::{EngineHandle, ProxyEngine};
use crate::filter::{Filter, FilterAction, FilterChain, FilterEntry, RequestCtx};

/// Builds a request header.
pub fn request(method: &str, path: &str, headers: &[(&str, &str)]) -> crate::Result<RequestHeader> {
    let mut req = RequestHeader::build(method, path.as_bytes(), None)?;
    for (n, v) in headers {
        req.append_header(n.to_string(), *v)?;
    }
    Ok(req)
}

/// Runs the request phase of `filters` (sorted by their position: first
/// runs first) on `req`.
pub async fn run_request_phase(
    filters: &[Arc<dyn Filter>],
    req: &RequestHeader,
    ctx: &mut RequestCtx,
) -> crate::Result<FilterAction> {
    let n = filters.len() as i32;
    let chain = FilterChain::new(
        filters
            .iter()
            .enumerate()
            .map(|(i, f)| FilterEntry {
                priority: n - i as i32,
                filter: f.clone(),
            })
            .collect(),
    );
    chain.run_request(req, ctx).await
}

/// A self-signed certificate for `name` (EC P-256, SHA-256, valid for two
/// days, `name` as CN and SAN), as `(certificate_pem, private_key_pem)`.
pub fn self_signed_cert(name: &str) -> Result<(String, String), crate::tls::CertError> {
    crate::tls::self_signed(&[name], 2)
}

/// A free TCP port on 127.0.0.1 (bound, read, released).
pub fn free_port() -> io::Result<u16> {
    Ok(StdListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A running engine in a Pingora server on 127.0.0.1; stopped on drop.
pub struct TestProxy {
    /// The proxy's HTTP listener.
    pub addr: SocketAddr,
    /// The proxy's HTTPS listener, when started by [`spawn_engine_tls`].
    pub tls_addr: Option<SocketAddr>,
    /// The engine's handle.
    pub handle: EngineHandle,
    stop: Option<tokio::sync::watch::Sender<bool>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for TestProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestProxy")
            .field("addr", &self.addr)
            .finish()
    }
}

struct StopSignal(tokio::sync::watch::Receiver<bool>);

#[async_trait::async_trait]
impl ShutdownSignalWatch for StopSignal {
    async fn recv(&self) -> ShutdownSignal {
        let mut rx = self.0.clone();
        let _ = rx.wait_for(|v| *v).await;
        ShutdownSignal::FastShutdown
    }
}

/// Runs `engine` (proxy and background services) in a Pingora server on a
/// free 127.0.0.1 port, and waits until it accepts connections.
pub async fn spawn_engine(engine: &ProxyEngine) -> io::Result<TestProxy> {
    spawn(engine, None).await
}

/// Like [`spawn_engine`], plus an HTTPS listener on another free port with
/// the engine's [`tls_settings`](crate::tls::tls_settings) (certificates
/// by SNI, `fallback` when none matches).
pub async fn spawn_engine_tls(
    engine: &ProxyEngine,
    fallback: Option<crate::tls::ParsedCertificate>,
) -> io::Result<TestProxy> {
    spawn(engine, Some(fallback)).await
}

async fn spawn(
    engine: &ProxyEngine,
    tls: Option<Option<crate::tls::ParsedCertificate>>,
) -> io::Result<TestProxy> {
    let port = free_port()?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let conf = ServerConf {
        threads: 2,
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = engine.http_service(&server.configuration);
    proxy.add_tcp(&addr.to_string());
    let tls_addr = match tls {
        Some(fallback) => {
            let tls_addr: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
            let settings = crate::tls::tls_settings(engine.handle(), fallback)
                .map_err(|e| io::Error::other(e.to_string()))?;
            proxy.add_tls_with_settings(&tls_addr.to_string(), None, settings);
            Some(tls_addr)
        }
        None => None,
    };
    server.add_service(proxy);
    server.add_service(engine.background_service());
    let (tx, rx) = tokio::sync::watch::channel(false);
    let thread = std::thread::Builder::new()
        .name(format!("ppm-test-proxy-{port}"))
        .spawn(move || {
            server.run(RunArgs {
                shutdown_signal: Box::new(StopSignal(rx)),
            })
        })?;
    let proxy = TestProxy {
        addr,
        tls_addr,
        handle: engine.handle(),
        stop: Some(tx),
        thread: Some(thread),
    };
    wait_for_listener(addr, Duration::from_secs(10)).await?;
    if let Some(a) = tls_addr {
        wait_for_listener(a, Duration::from_secs(10)).await?;
    }
    Ok(proxy)
}

impl TestProxy {
    /// Sends `method path` with `Host: host` and extra headers to the proxy.
    pub async fn get(&self, host: &str, path: &str) -> io::Result<TestResponse> {
        send(self.addr, "GET", path, &[("host", host)], b"").await
    }
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(true);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Waits until `addr` accepts a TCP connection, or `timeout` passes.
pub async fn wait_for_listener(addr: SocketAddr, timeout: Duration) -> io::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        match TcpStream::connect(addr).await {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// Polls `cond` every 20 ms until it holds or `timeout` passes; returns
/// whether it held.
pub async fn wait_until<F, Fut>(timeout: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if cond().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A parsed HTTP response.
#[derive(Debug, Clone)]
pub struct TestResponse {
    /// Status code.
    pub status: u16,
    /// Headers with lower-case names, in order.
    pub headers: Vec<(String, String)>,
    /// The decoded body.
    pub body: Vec<u8>,
}

impl TestResponse {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as UTF-8 (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// Sends one HTTP/1.1 request with `Connection: close` and reads the whole
/// response.
pub async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<TestResponse> {
    let mut stream = TcpStream::connect(addr).await?;
    send_on(&mut stream, method, path, headers, body).await
}

/// What a TLS client saw in a handshake.
#[derive(Debug, Clone)]
pub struct TlsPeer {
    /// DNS names of the leaf certificate the server sent.
    pub names: Vec<String>,
    /// SHA-256 fingerprint of that leaf, lower-case hex.
    pub fingerprint: String,
    /// Certificates the server sent, leaf included.
    pub chain_len: usize,
    /// The protocol chosen by ALPN, e.g. `h2`.
    pub alpn: Option<String>,
    /// The TLS version, e.g. `TLSv1.3`.
    pub version: String,
}

/// Opens a TLS connection to `addr` without verifying the server (tests
/// check what was sent instead), with `server_name` as SNI (none when
/// `None`), offering `alpn` (e.g. `["h2", "http/1.1"]`) and at most
/// `max_version` (e.g. `Some(SslVersion::TLS1_2)`).
pub async fn tls_connect(
    addr: SocketAddr,
    server_name: Option<&str>,
    alpn: &[&str],
    max_version: Option<openssl::ssl::SslVersion>,
) -> io::Result<(TlsPeer, tokio_openssl::SslStream<TcpStream>)> {
    use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
    let err = |e: openssl::error::ErrorStack| io::Error::other(e.to_string());
    let mut b = SslConnector::builder(SslMethod::tls()).map_err(err)?;
    b.set_verify(SslVerifyMode::NONE);
    b.set_max_proto_version(max_version).map_err(err)?;
    if !alpn.is_empty() {
        let mut wire = Vec::new();
        for p in alpn {
            wire.push(p.len() as u8);
            wire.extend_from_slice(p.as_bytes());
        }
        b.set_alpn_protos(&wire).map_err(err)?;
    }
    let mut cfg = b.build().configure().map_err(err)?;
    cfg.set_use_server_name_indication(server_name.is_some());
    cfg.set_verify_hostname(false);
    let ssl = cfg.into_ssl(server_name.unwrap_or("")).map_err(err)?;
    let tcp = TcpStream::connect(addr).await?;
    let mut stream = tokio_openssl::SslStream::new(ssl, tcp).map_err(err)?;
    std::pin::Pin::new(&mut stream)
        .connect()
        .await
        .map_err(|e| io::Error::other(format!("TLS handshake failed: {e}")))?;
    let ssl = stream.ssl();
    let leaf = ssl
        .peer_certificate()
        .ok_or_else(|| io::Error::other("server sent no certificate"))?;
    let names = leaf
        .subject_alt_names()
        .map(|s| {
            s.iter()
                .filter_map(|n| n.dnsname().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let fingerprint = leaf
        .digest(openssl::hash::MessageDigest::sha256())
        .map_err(err)?
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let peer = TlsPeer {
        names,
        fingerprint,
        chain_len: ssl.peer_cert_chain().map_or(1, |c| c.len()),
        alpn: ssl
            .selected_alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned()),
        version: ssl.version_str().to_string(),
    };
    Ok((peer, stream))
}

/// Like [`send`], on an open stream (plain or TLS).
pub async fn send_on<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<TestResponse> {
    let mut head = format!("{method} {path} HTTP/1.1\r\n");
    let mut has_len = false;
    for (n, v) in headers {
        if n.eq_ignore_ascii_case("content-length") {
            has_len = true;
        }
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    if !body.is_empty() && !has_len {
        head.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    head.push_str("connection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    stream.flush().await?;
    let read = read_response(stream, method == "HEAD");
    match tokio::time::timeout(Duration::from_secs(30), read).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "no complete response in 30 s",
        )),
    }
}

/// Reads one response: the head, then a body framed by `content-length`,
/// chunked encoding, or the end of the stream.
pub async fn read_response<S: AsyncRead + Unpin>(
    stream: &mut S,
    head_only: bool,
) -> io::Result<TestResponse> {
    let mut raw = Vec::new();
    let mut tmp = [0u8; 8192];
    loop {
        if let Some(end) = find(&raw, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            let body = &raw[end + 4..];
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            let chunked = head
                .lines()
                .any(|l| l.starts_with("transfer-encoding:") && l.contains("chunked"));
            let no_body = head_only
                || head.starts_with("http/1.1 1")
                || head.starts_with("http/1.1 204")
                || head.starts_with("http/1.1 304");
            let complete = no_body
                || match (len, chunked) {
                    (Some(l), _) => body.len() >= l,
                    (None, true) => body.ends_with(b"0\r\n\r\n"),
                    (None, false) => false,
                };
            if complete {
                return parse_response(&raw, no_body);
            }
        }
        let n = stream.read(&mut tmp).await?;
        if n == 0 {
            return parse_response(&raw, head_only);
        }
        raw.extend_from_slice(&tmp[..n]);
    }
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

/// Parses a complete HTTP/1.1 response.
pub fn parse_response(raw: &[u8], head_only: bool) -> io::Result<TestResponse> {
    let end = find(raw, b"\r\n\r\n").ok_or_else(|| invalid("incomplete response head"))?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| invalid("non-UTF-8 head"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid("bad status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let rest = &raw[end + 4..];
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let body = if head_only {
        Vec::new()
    } else if chunked {
        dechunk(rest)?
    } else if let Some(len) = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
    {
        rest.get(..len)
            .ok_or_else(|| invalid("short body"))?
            .to_vec()
    } else {
        rest.to_vec()
    };
    Ok(TestResponse {
        status,
        headers,
        body,
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn dechunk(mut raw: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = find(raw, b"\r\n").ok_or_else(|| invalid("bad chunk"))?;
        let size_str = std::str::from_utf8(&raw[..line_end]).map_err(|_| invalid("bad chunk"))?;
        let size = usize::from_str_radix(size_str.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| invalid("bad chunk size"))?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(raw.get(..size).ok_or_else(|| invalid("short chunk"))?);
        raw = raw.get(size + 2..).unwrap_or(&[]);
    }
}

/// A request as an [`EchoUpstream`] received it.
#[derive(Debug, Clone)]
pub struct ReceivedRequest {
    /// Method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Headers with lower-case names.
    pub headers: Vec<(String, String)>,
    /// Body length.
    pub body_len: usize,
}

/// A real HTTP/1.1 upstream on 127.0.0.1 that answers every request with
/// `200` and a JSON echo of it: `{"upstream", "method", "path", "headers",
/// "body_len"}`.
///
/// Special paths: `/sleep/<ms>` answers after a delay; `/status/<code>`
/// answers with that status. A request with `Upgrade` gets `101` and then
/// every byte sent is echoed back.
pub struct EchoUpstream {
    /// The listening address.
    pub addr: SocketAddr,
    /// The name it reports in its answers.
    pub name: String,
    hits: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for EchoUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EchoUpstream")
            .field("addr", &self.addr)
            .field("name", &self.name)
            .finish()
    }
}

impl EchoUpstream {
    /// Starts one on a free port.
    pub async fn start(name: &str) -> io::Result<EchoUpstream> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        Self::start_on(listener, name)
    }

    /// Starts one on `listener`.
    pub fn start_on(listener: TcpListener, name: &str) -> io::Result<EchoUpstream> {
        let addr = listener.local_addr()?;
        let hits = Arc::new(AtomicU64::new(0));
        let h = hits.clone();
        let n = name.to_string();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let h = h.clone();
                let n = n.clone();
                tokio::spawn(async move {
                    let _ = serve_echo(stream, &n, &h).await;
                });
            }
        });
        Ok(EchoUpstream {
            addr,
            name: name.to_string(),
            hits,
            task,
        })
    }

    /// Requests answered so far.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Stops listening and closes the port.
    pub fn stop(self) {
        self.task.abort();
    }
}

impl Drop for EchoUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one request head and body from `stream` (which may be TLS).
pub async fn read_request<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
) -> io::Result<Option<(ReceivedRequest, Vec<u8>)>> {
    let end = loop {
        if let Some(e) = find(buf, b"\r\n\r\n") {
            break e;
        }
        let mut tmp = [0u8; 4096];
        let n = stream.read(&mut tmp).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&tmp[..n]);
        if buf.len() > 1 << 20 {
            return Err(invalid("request head too large"));
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    buf.drain(..end + 4);
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let method = first.next().unwrap_or("").to_string();
    let path = first.next().unwrap_or("").to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let get = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if get("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        loop {
            if let Some(pos) = find(buf, b"0\r\n\r\n") {
                let raw: Vec<u8> = buf.drain(..pos + 5).collect();
                body = dechunk(&raw)?;
                break;
            }
            let mut tmp = [0u8; 8192];
            let n = stream.read(&mut tmp).await?;
            if n == 0 {
                return Err(invalid("eof in chunked body"));
            }
            buf.extend_from_slice(&tmp[..n]);
        }
    } else if let Some(len) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
        while buf.len() < len {
            let mut tmp = [0u8; 8192];
            let n = stream.read(&mut tmp).await?;
            if n == 0 {
                return Err(invalid("eof in body"));
            }
            buf.extend_from_slice(&tmp[..n]);
        }
        body = buf.drain(..len).collect();
    }
    Ok(Some((
        ReceivedRequest {
            method,
            path,
            headers,
            body_len: body.len(),
        },
        body,
    )))
}

/// Serves echo responses on one connection (keep-alive), as [`EchoUpstream`]
/// does. Public so tests can serve it over TLS.
pub async fn serve_echo<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    name: &str,
    hits: &AtomicU64,
) -> io::Result<()> {
    let mut buf = Vec::new();
    loop {
        let Some((req, _body)) = read_request(&mut stream, &mut buf).await? else {
            return Ok(());
        };
        hits.fetch_add(1, Ordering::Relaxed);
        let upgrade = req.headers.iter().any(|(n, _)| n == "upgrade");
        if upgrade {
            stream
                .write_all(
                    b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n",
                )
                .await?;
            stream.write_all(&buf).await?;
            let mut tmp = [0u8; 8192];
            loop {
                let n = stream.read(&mut tmp).await?;
                if n == 0 {
                    return Ok(());
                }
                stream.write_all(&tmp[..n]).await?;
            }
        }
        let mut status = 200u16;
        if let Some(ms) = req
            .path
            .strip_prefix("/sleep/")
            .and_then(|s| s.parse().ok())
        {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if let Some(code) = req
            .path
            .strip_prefix("/status/")
            .and_then(|s| s.parse().ok())
        {
            status = code;
        }
        let headers: HashMap<&str, Vec<&str>> =
            req.headers.iter().fold(HashMap::new(), |mut m, (n, v)| {
                m.entry(n.as_str()).or_default().push(v.as_str());
                m
            });
        let body = serde_json::json!({
            "upstream": name,
            "method": req.method,
            "path": req.path,
            "headers": headers,
            "body_len": req.body_len,
        })
        .to_string();
        let close = req
            .headers
            .iter()
            .any(|(n, v)| n == "connection" && v.eq_ignore_ascii_case("close"));
        let resp = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nx-upstream: {name}\r\n{}\r\n{body}",
            body.len(),
            if close { "connection: close\r\n" } else { "" },
        );
        stream.write_all(resp.as_bytes()).await?;
        if close {
            return Ok(());
        }
    }
}
