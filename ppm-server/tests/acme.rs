//! The ACME manager against a real ACME server: Debian's `pebble` and
//! `pebble-challtestsrv`, with the real ppm-server binary, all on
//! 127.0.0.1 with test-chosen ports. Skipped (with a printed reason) only
//! when pebble is not installed; CI installs it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::X509;
use ppm_core::testing::{send, wait_until, EchoUpstream, TestResponse};
use serde_json::{json, Value};

const ADMIN: &str = "admin@example.test";
const ADMIN_PW: &str = "a-long-admin-password";
/// pebble's example EAB key.
const EAB_KID: &str = "kid-1";
const EAB_HMAC: &str = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W";

fn have_pebble() -> bool {
    let found = ["pebble", "pebble-challtestsrv"].iter().all(|p| {
        Command::new("sh")
            .args(["-c", &format!("command -v {p}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if !found {
        eprintln!("SKIPPED: pebble / pebble-challtestsrv not installed (apt-get install pebble)");
    }
    found
}

/// Distinct free TCP ports (held together while picking).
fn tcp_ports(n: usize) -> Vec<u16> {
    let held: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    held.iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

fn udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills the child processes it holds when dropped.
struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A CA and a certificate for 127.0.0.1/localhost signed by it, for
/// pebble's own HTTPS listener (the Debian package ships none).
fn test_ca(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name
        .push(DnType::CommonName, "ppm test CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let (ca_path, cert, key) = (
        dir.join("ca.pem"),
        dir.join("pebble.pem"),
        dir.join("pebble.key"),
    );
    std::fs::write(&ca_path, ca_cert.pem()).unwrap();
    std::fs::write(&cert, leaf.pem()).unwrap();
    std::fs::write(&key, leaf_key.serialize_pem()).unwrap();
    (ca_path, cert, key)
}

/// pebble plus pebble-challtestsrv as its DNS.
struct Pebble {
    dir: PathBuf,
    ca: PathBuf,
    acme: u16,
    mgmt: u16,
    challtest: u16,
    _procs: Procs,
}

impl Pebble {
    /// `http_port` is where pebble sends HTTP-01 validation requests.
    async fn start(dir: &Path, http_port: u16, eab: bool) -> Pebble {
        std::fs::create_dir_all(dir).unwrap();
        let (ca, cert, key) = test_ca(dir);
        let ports = tcp_ports(4);
        let (acme, mgmt, challtest, tls) = (ports[0], ports[1], ports[2], ports[3]);
        let dns = udp_port();
        let mut conf = json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{acme}"),
            "managementListenAddress": format!("127.0.0.1:{mgmt}"),
            "certificate": cert, "privateKey": key,
            "httpPort": http_port, "tlsPort": tls,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": eab,
        }});
        if eab {
            conf["pebble"]["externalAccountMACKeys"] = json!({EAB_KID: EAB_HMAC});
        }
        let conf_path = dir.join("pebble.json");
        std::fs::write(&conf_path, conf.to_string()).unwrap();
        let log = |n: &str| std::fs::File::create(dir.join(n)).unwrap();
        let chall = Command::new("pebble-challtestsrv")
            .args(["-dns01", &format!("127.0.0.1:{dns}")])
            .args(["-management", &format!("127.0.0.1:{challtest}")])
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .stdout(log("challtestsrv.log"))
            .stderr(log("challtestsrv.err"))
            .spawn()
            .unwrap();
        let mut procs = Procs(vec![chall]);
        let pebble = Command::new("pebble")
            .arg("-config")
            .arg(&conf_path)
            .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdout(log("pebble.log"))
            .stderr(log("pebble.err"))
            .spawn()
            .unwrap();
        procs.0.push(pebble);
        let up = wait_until(Duration::from_secs(20), || async {
            TcpStream::connect(("127.0.0.1", acme)).is_ok()
                && TcpStream::connect(("127.0.0.1", mgmt)).is_ok()
                && TcpStream::connect(("127.0.0.1", challtest)).is_ok()
        })
        .await;
        assert!(
            up,
            "pebble did not start: {}",
            std::fs::read_to_string(dir.join("pebble.err")).unwrap_or_default()
        );
        Pebble {
            dir: dir.to_path_buf(),
            ca,
            acme,
            mgmt,
            challtest,
            _procs: procs,
        }
    }

    fn directory(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.acme)
    }

    /// The root pebble issues under (changes every start).
    fn root(&self) -> X509 {
        let (status, body) = https_get(self.mgmt, "/roots/0", &self.ca);
        assert_eq!(status, 200);
        X509::from_pem(&body).unwrap()
    }
}

/// A blocking HTTPS GET to 127.0.0.1:`port`, trusting only `ca`.
fn https_get(port: u16, path: &str, ca: &Path) -> (u16, Vec<u8>) {
    let mut b = SslConnector::builder(SslMethod::tls_client()).unwrap();
    b.set_ca_file(ca).unwrap();
    let c = b.build();
    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut s = c.connect("localhost", tcp).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = match out.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) => out[i + 4..].to_vec(),
        None => Vec::new(),
    };
    (status, body)
}

/// The leaf certificate served for `sni` on `port`, verified against
/// `root`; `None` when nothing listens there.
fn served_cert(port: u16, sni: &str, root: &X509) -> Option<X509> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).ok()?;
    let mut store = X509StoreBuilder::new().unwrap();
    store.add_cert(root.clone()).unwrap();
    let mut b = SslConnector::builder(SslMethod::tls_client()).unwrap();
    b.set_verify_cert_store(store.build()).unwrap();
    b.set_verify(SslVerifyMode::PEER);
    let s = b
        .build()
        .connect(sni, tcp)
        .unwrap_or_else(|e| panic!("TLS handshake for {sni}: {e}"));
    s.ssl().peer_certificate()
}

struct Ppm {
    child: Option<Child>,
    api: SocketAddr,
    http: SocketAddr,
    https_port: u16,
    log: PathBuf,
}

impl Ppm {
    async fn start(dir: &Path, http_port: u16, pebble: &Pebble, env: &[(&str, &str)]) -> Ppm {
        let ports = tcp_ports(2);
        let api: SocketAddr = format!("127.0.0.1:{}", ports[0]).parse().unwrap();
        let http: SocketAddr = format!("127.0.0.1:{http_port}").parse().unwrap();
        let https_port = ports[1];
        let log = dir.join("ppm.log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ppm-server"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PPM_DATA_DIR", dir.join("data"))
            .env("PPM_API_LISTEN", api.to_string())
            .env("PPM_HTTP_LISTEN", http.to_string())
            .env("PPM_HTTPS_LISTEN", format!("127.0.0.1:{https_port}"))
            .env("PPM_GRACE_PERIOD", "1")
            .env("PPM_ADMIN_EMAIL", ADMIN)
            .env("PPM_ADMIN_PASSWORD", ADMIN_PW)
            .env("PPM_ACME_DIRECTORY", pebble.directory())
            .env("PPM_ACME_CA_ROOTS", &pebble.ca)
            .env("RUST_LOG", "info");
        let out = std::fs::File::create(&log).unwrap();
        cmd.stdout(out.try_clone().unwrap()).stderr(out);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap();
        let mut p = Ppm {
            child: Some(child),
            api,
            http,
            https_port,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let up = send(api, "GET", "/api/health", &[], b"").await;
            if up.is_ok_and(|r| r.status == 200) {
                break;
            }
            let exited = p.child.as_mut().unwrap().try_wait().unwrap();
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "ppm-server did not come up ({exited:?}); log:\n{}",
                p.log_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        p
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> TestResponse {
        let auth = format!("Bearer {token}");
        let mut headers = vec![("host", "ppm.test"), ("authorization", auth.as_str())];
        let bytes = body.map(|b| b.to_string()).unwrap_or_default();
        if !bytes.is_empty() {
            headers.push(("content-type", "application/json"));
        }
        send(self.api, method, path, &headers, bytes.as_bytes())
            .await
            .unwrap()
    }

    async fn token(&self) -> String {
        let r = send(
            self.api,
            "POST",
            "/api/auth/login",
            &[("host", "ppm.test"), ("content-type", "application/json")],
            json!({"email": ADMIN, "password": ADMIN_PW})
                .to_string()
                .as_bytes(),
        )
        .await
        .unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["token"].as_str().unwrap().to_string()
    }

    /// Waits until certificate `id`'s order has `status` (or fails the
    /// test with the order and the log).
    async fn wait_status(&self, token: &str, id: i64, status: &str, within: Duration) -> Value {
        let (ok, last) = self
            .poll(token, id, within, |c| c["status"] == status)
            .await;
        assert!(
            ok,
            "certificate {id} never became {status}: {last}\nlog:\n{}",
            self.log_text()
        );
        last
    }

    /// Reads certificate `id` until `done` holds or `within` passes.
    async fn poll(
        &self,
        token: &str,
        id: i64,
        within: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> (bool, Value) {
        let deadline = Instant::now() + within;
        loop {
            let last = self
                .call("GET", &format!("/api/certificates/{id}"), token, None)
                .await
                .json();
            if done(&last) {
                return (true, last);
            }
            if Instant::now() >= deadline {
                return (false, last);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The HTTPS listener's certificate for `sni`, or `None` (with a note)
    /// while this build has no HTTPS listener.
    fn served(&self, sni: &str, root: &X509) -> Option<X509> {
        let c = served_cert(self.https_port, sni, root);
        if c.is_none() {
            eprintln!(
                "note: no HTTPS listener on {}; handshake not checked",
                self.https_port
            );
        }
        c
    }
}

impl Drop for Ppm {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn chain_of(cert: &Value) -> Vec<X509> {
    X509::stack_from_pem(cert["certificate_pem"].as_str().unwrap().as_bytes()).unwrap()
}

fn san_names(x: &X509) -> Vec<String> {
    x.subject_alt_names()
        .map(|s| {
            s.iter()
                .filter_map(|n| n.dnsname().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Verifies `chain` (leaf first) up to `root`.
fn verifies(chain: &[X509], root: &X509) -> bool {
    let mut store = X509StoreBuilder::new().unwrap();
    store.add_cert(root.clone()).unwrap();
    let store = store.build();
    let mut rest = openssl::stack::Stack::new().unwrap();
    for c in &chain[1..] {
        rest.push(c.clone()).unwrap();
    }
    let mut ctx = openssl::x509::X509StoreContext::new().unwrap();
    ctx.init(&store, &chain[0], &rest, |c| c.verify_cert())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http01_issues_through_a_force_https_access_listed_host() {
    if !have_pebble() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let http_port = tcp_ports(1)[0];
    let pebble = Pebble::start(&tmp.path().join("pebble"), http_port, false).await;
    let ppm = Ppm::start(tmp.path(), http_port, &pebble, &[]).await;
    let token = ppm.token().await;
    let up = EchoUpstream::start("a").await.unwrap();

    // a.test forces HTTPS and denies everyone: only the challenge filter,
    // which runs before routing, can answer the CA.
    let r = ppm
        .call(
            "POST",
            "/api/access-lists",
            &token,
            Some(json!({"name": "nobody", "default_action": "deny"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let acl = r.json()["id"].as_i64().unwrap();
    let r = ppm
        .call(
            "POST",
            "/api/proxy-hosts",
            &token,
            Some(json!({
                "domain_names": ["a.test"],
                "upstreams": [{"host": "127.0.0.1", "port": up.port()}],
                "ssl_forced": true, "access_list_id": acl,
            })),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = send(ppm.http, "GET", "/", &[("host", "a.test")], b"")
        .await
        .unwrap();
    assert_eq!(r.status, 301, "a.test redirects to HTTPS");
    let r = send(
        ppm.http,
        "GET",
        "/.well-known/acme-challenge/nothing-pending",
        &[("host", "a.test")],
        b"",
    )
    .await
    .unwrap();
    assert_eq!(r.status, 404, "no token is published before an order");

    let r = ppm
        .call(
            "POST",
            "/api/certificates",
            &token,
            Some(json!({
                "source": "acme", "domain_names": ["a.test"], "challenge": "http-01",
            })),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let body = r.json();
    let id = body["id"].as_i64().unwrap();
    // The order may already be with the CA when the answer is built.
    assert!(
        body["status"] == "pending" || body["status"] == "validating",
        "{body}"
    );
    assert_eq!(body["source"], "acme");

    let cert = ppm
        .wait_status(&token, id, "issued", Duration::from_secs(60))
        .await;
    assert_eq!(cert["error"], Value::Null);
    assert!(
        cert.get("private_key_pem").is_none(),
        "the API never returns the key"
    );
    let root = pebble.root();
    let chain = chain_of(&cert);
    assert!(chain.len() >= 2, "the full chain is stored");
    assert_eq!(san_names(&chain[0]), vec!["a.test".to_string()]);
    assert!(
        verifies(&chain, &root),
        "the chain verifies up to pebble's root"
    );
    assert_eq!(up.hits(), 0, "validation never reached the upstream");
    // Renewal is scheduled: pebble issues for years, so a third remains
    // well after now.
    let renew_at = cert["acme"]["renew_at"].as_i64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert!(renew_at > now + 86_400_000, "{cert}");

    // The issuance is in the audit log as the system.
    let r = ppm.call("GET", "/api/audit-log", &token, None).await;
    let log = r.json();
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .any(|e| e["actor"] == "system (ACME)"
                && e["entity"] == "certificates"
                && e["entity_id"] == id),
        "{log}"
    );

    // The next handshake for a.test serves it.
    if let Some(served) = ppm.served("a.test", &root) {
        assert_eq!(served.to_der().unwrap(), chain[0].to_der().unwrap());
    }

    // Bad requests name the field and create nothing.
    for (body, field) in [
        (
            json!({"source": "acme", "domain_names": ["*.a.test"], "challenge": "http-01"}),
            "domain_names[0]",
        ),
        (
            json!({"source": "acme", "domain_names": ["a.test"], "challenge": "dns-01"}),
            "dns_provider_id",
        ),
        (
            json!({"source": "acme", "domain_names": ["a.test"], "challenge": "dns-01", "dns_provider_id": 99}),
            "dns_provider_id",
        ),
        (
            json!({"source": "acme", "domain_names": [], "challenge": "http-01"}),
            "domain_names",
        ),
        (
            json!({"source": "acme", "domain_names": ["bad name"], "challenge": "http-01"}),
            "domain_names[0]",
        ),
        (
            // Parsed through the tagged request: the message names it.
            json!({"source": "acme", "domain_names": ["a.test"], "challenge": "tls-alpn-01"}),
            "",
        ),
    ] {
        let r = ppm
            .call("POST", "/api/certificates", &token, Some(body.clone()))
            .await;
        assert!(
            r.status == 422 || r.status == 400,
            "{body}: {} {}",
            r.status,
            r.text()
        );
        let fields = r.json()["error"]["fields"].clone();
        assert!(
            fields.to_string().contains(&format!("\"{field}\"")),
            "{body}: {fields}"
        );
        if field.is_empty() {
            assert!(fields.to_string().contains("tls-alpn-01"), "{fields}");
        }
    }
    let r = ppm.call("GET", "/api/certificates", &token, None).await;
    assert_eq!(r.json().as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns01_wildcard_through_a_command_hook() {
    if !have_pebble() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let http_port = tcp_ports(1)[0];
    let pebble = Pebble::start(&tmp.path().join("pebble"), http_port, false).await;
    let ppm = Ppm::start(tmp.path(), http_port, &pebble, &[]).await;
    let token = ppm.token().await;

    // The hook drives pebble-challtestsrv's TXT API and logs its calls.
    let calls = tmp.path().join("hook-calls");
    let hook = tmp.path().join("hook.sh");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\nset -e\necho \"$1 $2 $3 $PPM_ACME_TXT_NAME\" >> {calls}\n\
             if [ \"$1\" = set ]; then\n\
               curl -sf -X POST -d \"{{\\\"host\\\":\\\"$2.\\\",\\\"value\\\":\\\"$3\\\"}}\" http://127.0.0.1:{p}/set-txt\n\
             else\n\
               curl -sf -X POST -d \"{{\\\"host\\\":\\\"$2.\\\"}}\" http://127.0.0.1:{p}/clear-txt\n\
             fi\n",
            calls = calls.display(),
            p = pebble.challtest
        ),
    )
    .unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&hook)
        .status()
        .unwrap();

    let r = ppm
        .call(
            "POST",
            "/api/dns-providers",
            &token,
            Some(json!({
                "name": "challtestsrv",
                "provider": {"kind": "command", "command": [hook]},
            })),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let provider = r.json()["id"].as_i64().unwrap();
    // Credentials are stored but never returned.
    let r = ppm
        .call(
            "POST",
            "/api/dns-providers",
            &token,
            Some(json!({
                "name": "cf", "propagation_seconds": 30,
                "provider": {"kind": "cloudflare", "api_token": "cf-secret-token-value"},
            })),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let cf = r.json()["id"].as_i64().unwrap();
    let listed = ppm
        .call("GET", "/api/dns-providers", &token, None)
        .await
        .text();
    assert!(!listed.contains("cf-secret-token-value"), "{listed}");
    assert!(listed.contains("challtestsrv"));
    let r = ppm
        .call(
            "PUT",
            &format!("/api/dns-providers/{cf}"),
            &token,
            Some(json!({
                "name": "cf2", "provider": {"kind": "cloudflare", "api_token": ""},
            })),
        )
        .await;
    assert_eq!(
        r.status,
        200,
        "a blank token keeps the stored one: {}",
        r.text()
    );
    let r = ppm
        .call("POST", "/api/dns-providers", &token, Some(json!({
            "name": "bad", "provider": {"kind": "rfc2136", "server": "nowhere", "zone": "b.test", "tsig_key_name": "k", "tsig_secret": "c2VjcmV0"},
        })))
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.text().contains("provider.server"), "{}", r.text());

    let r = ppm
        .call(
            "POST",
            "/api/certificates",
            &token,
            Some(json!({
                "source": "acme", "domain_names": ["*.b.test", "b.test"],
                "challenge": "dns-01", "dns_provider_id": provider,
            })),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["id"].as_i64().unwrap();
    let cert = ppm
        .wait_status(&token, id, "issued", Duration::from_secs(60))
        .await;
    let chain = chain_of(&cert);
    let mut names = san_names(&chain[0]);
    names.sort();
    assert_eq!(names, vec!["*.b.test".to_string(), "b.test".to_string()]);
    assert!(verifies(&chain, &pebble.root()));

    // Both TXT values were set and cleared again (same name: the wildcard
    // and the bare name share _acme-challenge.b.test).
    let log = std::fs::read_to_string(&calls).unwrap();
    let sets: Vec<&str> = log.lines().filter(|l| l.starts_with("set ")).collect();
    let clears: Vec<&str> = log.lines().filter(|l| l.starts_with("clear ")).collect();
    assert_eq!(sets.len(), 2, "{log}");
    assert_eq!(clears.len(), 2, "{log}");
    for s in &sets {
        assert!(s.starts_with("set _acme-challenge.b.test "), "{log}");
        let value = s.split(' ').nth(2).unwrap();
        assert!(
            clears.iter().any(|c| c.split(' ').nth(2) == Some(value)),
            "{value} not cleared: {log}"
        );
    }

    if let Some(served) = ppm.served("x.b.test", &pebble.root()) {
        assert_eq!(served.to_der().unwrap(), chain[0].to_der().unwrap());
    }
    // The provider cannot go while an order uses it.
    let r = ppm
        .call(
            "DELETE",
            &format!("/api/dns-providers/{provider}"),
            &token,
            None,
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.text());
    let _ = pebble.dir.clone();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eab_is_used_when_required() {
    if !have_pebble() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let http_port = tcp_ports(1)[0];
    let pebble = Pebble::start(&tmp.path().join("pebble"), http_port, true).await;
    // Retries far apart: the test renews by hand.
    let ppm = Ppm::start(
        tmp.path(),
        http_port,
        &pebble,
        &[("PPM_ACME_RETRY_BASE", "3600")],
    )
    .await;
    let token = ppm.token().await;

    let r = ppm
        .call(
            "POST",
            "/api/certificates",
            &token,
            Some(json!({
                "source": "acme", "domain_names": ["eab.test"], "challenge": "http-01",
            })),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["id"].as_i64().unwrap();
    let failed = ppm
        .wait_status(&token, id, "failed", Duration::from_secs(30))
        .await;
    let err = failed["error"].as_str().unwrap().to_ascii_lowercase();
    assert!(
        err.contains("external account binding") && err.contains("eab"),
        "a clear error: {err}"
    );

    // Settings through the API; the HMAC is never shown.
    let r = ppm
        .call(
            "PUT",
            "/api/settings/acme",
            &token,
            Some(json!({"eab_key_id": EAB_KID})),
        )
        .await;
    assert_eq!(r.status, 422, "a key id alone is refused: {}", r.text());
    let r = ppm
        .call(
            "PUT",
            "/api/settings/acme",
            &token,
            Some(json!({"eab_key_id": EAB_KID, "eab_hmac": EAB_HMAC})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = ppm.call("GET", "/api/settings/acme", &token, None).await;
    assert_eq!(r.json()["eab_hmac_set"], true);
    assert_eq!(r.json()["directory_url"], pebble.directory());
    assert!(!r.text().contains(EAB_HMAC));

    let r = ppm
        .call(
            "POST",
            &format!("/api/certificates/{id}/renew"),
            &token,
            None,
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let cert = ppm
        .wait_status(&token, id, "issued", Duration::from_secs(60))
        .await;
    assert_eq!(cert["error"], Value::Null);
    assert_eq!(cert["acme"]["attempts"], 0);
    assert!(verifies(&chain_of(&cert), &pebble.root()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_renewal_keeps_the_old_certificate_and_backs_off() {
    if !have_pebble() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let ports = tcp_ports(2);
    let (http_port, nobody) = (ports[0], ports[1]);
    let good = Pebble::start(&tmp.path().join("good"), http_port, false).await;
    // This CA validates against a port nobody serves.
    let bad = Pebble::start(&tmp.path().join("bad"), nobody, false).await;
    let ppm = Ppm::start(
        tmp.path(),
        http_port,
        &good,
        &[("PPM_ACME_RETRY_BASE", "2")],
    )
    .await;
    let token = ppm.token().await;

    let r = ppm
        .call(
            "POST",
            "/api/certificates",
            &token,
            Some(json!({
                "source": "acme", "domain_names": ["c.test"], "challenge": "http-01",
            })),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["id"].as_i64().unwrap();
    let issued = ppm
        .wait_status(&token, id, "issued", Duration::from_secs(60))
        .await;
    let old_pem = issued["certificate_pem"].as_str().unwrap().to_string();
    let good_root = good.root();

    // Switch to the CA that cannot reach us (its own test CA file), renew.
    let r = ppm
        .call(
            "PUT",
            "/api/settings/acme",
            &token,
            Some(json!({
                "directory_url": bad.directory(), "ca_roots": bad.ca,
            })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = ppm
        .call(
            "POST",
            &format!("/api/certificates/{id}/renew"),
            &token,
            None,
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let failed = ppm
        .wait_status(&token, id, "failed", Duration::from_secs(30))
        .await;
    let seen1 = now_ms();
    let err = failed["error"].as_str().unwrap();
    assert!(
        err.contains("c.test") && err.to_ascii_lowercase().contains("connection refused"),
        "{err}"
    );
    assert_eq!(failed["acme"]["attempts"], 1);
    assert_eq!(
        failed["certificate_pem"], old_pem,
        "the old certificate stays"
    );
    if let Some(served) = ppm.served("c.test", &good_root) {
        let old = X509::from_pem(old_pem.as_bytes()).unwrap();
        assert_eq!(served.to_der().unwrap(), old.to_der().unwrap());
    }
    // Retried after 2 s, then after 4 s: never in a hot loop.
    let next1 = failed["acme"]["next_attempt_at"].as_i64().unwrap();
    assert!(
        next1 > seen1 + 500 && next1 <= seen1 + 2_100,
        "first retry in ~2 s: {next1} vs {seen1}"
    );
    let (ok, second) = ppm
        .poll(&token, id, Duration::from_secs(20), |c| {
            c["acme"]["attempts"] == 2 && c["status"] == "failed"
        })
        .await;
    let seen2 = now_ms();
    assert!(ok, "no second attempt: {second}");
    assert!(seen2 >= next1 - 100, "the retry waited for its time");
    let next2 = second["acme"]["next_attempt_at"].as_i64().unwrap();
    assert!(
        next2 > seen2 + 2_500 && next2 <= seen2 + 4_100,
        "second retry in ~4 s: {next2} vs {seen2}"
    );
    assert_eq!(second["certificate_pem"], old_pem);
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A fresh database on the server named by `PPM_TEST_POSTGRES_URL`, or
/// `None` (with the reason printed) without one.
async fn pg_database(test: &str) -> Option<(String, String, String)> {
    let Ok(admin) = std::env::var("PPM_TEST_POSTGRES_URL") else {
        eprintln!(
            "skipped {test}: PPM_TEST_POSTGRES_URL is not set, so there is no PostgreSQL \
             server to test against (.ci/run sets it)"
        );
        return None;
    };
    let name = format!("ppm_acme_{}_{}", std::process::id(), tcp_ports(1)[0]);
    pg_exec(&admin, &format!("CREATE DATABASE {name}")).await;
    let url = format!("{}/{name}", admin.rsplit_once('/').unwrap().0);
    Some((admin, name, url))
}

async fn pg_exec(url: &str, sql: &str) {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
}

/// Reads `GET /api/cluster/nodes` on `node` until its `acme_leader` is
/// `leader` (or fails after `within`); returns how long that took.
async fn wait_leader(node: &Ppm, token: &str, leader: &str, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let r = node.call("GET", "/api/cluster/nodes", token, None).await;
        assert_eq!(r.status, 200, "{}", r.text());
        if r.json()["acme_leader"] == leader {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "{leader} did not become the ACME leader within {within:?}: {}",
            r.text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_one_leader_orders_and_a_follower_answers_the_challenge() {
    if !have_pebble() {
        return;
    }
    let test = "on_postgres_one_leader_orders_and_a_follower_answers_the_challenge";
    let Some((admin, db_name, url)) = pg_database(test).await else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let ports = tcp_ports(2);
    let (a_http, b_http) = (ports[0], ports[1]);
    // The CA reaches node b only.
    let pebble = Pebble::start(&tmp.path().join("pebble"), b_http, false).await;
    let env = |id: &'static str| {
        [
            ("PPM_DATABASE_URL", url.clone()),
            ("PPM_NODE_ID", id.to_owned()),
            ("PPM_NODE_HEARTBEAT", "1".to_owned()),
            ("PPM_ACME_LEASE", "3".to_owned()),
        ]
    };
    let env_a = env("a");
    let env_a: Vec<(&str, &str)> = env_a.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let a_dir = tmp.path().join("a");
    std::fs::create_dir_all(&a_dir).unwrap();
    let a = Ppm::start(&a_dir, a_http, &pebble, &env_a).await;
    let token = a.token().await;
    wait_leader(&a, &token, "a", Duration::from_secs(10)).await;
    let env_b = env("b");
    let env_b: Vec<(&str, &str)> = env_b.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let b_dir = tmp.path().join("b");
    std::fs::create_dir_all(&b_dir).unwrap();
    let b = Ppm::start(&b_dir, b_http, &pebble, &env_b).await;
    wait_leader(&b, &token, "a", Duration::from_secs(10)).await;

    // Ordered through b's API, run by the leader a, validated by the CA
    // against b: b answers the token a published.
    let r = b
        .call(
            "POST",
            "/api/certificates",
            &token,
            Some(json!({"source": "acme", "domain_names": ["one.test"], "challenge": "http-01"})),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let one = r.json()["id"].as_i64().unwrap();
    let issued = b
        .wait_status(&token, one, "issued", Duration::from_secs(60))
        .await;
    assert!(!chain_of(&issued).is_empty());
    assert!(a.log_text().contains("ACME: ordering"), "a ran the order");
    assert!(!b.log_text().contains("ACME: ordering"), "b did not");
    // Every node serves the issued certificate (the normal revision path).
    a.wait_status(&token, one, "issued", Duration::from_secs(5))
        .await;
    let root = pebble.root();
    for node in [&a, &b] {
        if let Some(leaf) = node.served("one.test", &root) {
            assert_eq!(san_names(&leaf), ["one.test"]);
        }
    }

    // The leader dies: b takes the lease over within the lease lifetime
    // and a third (3 s + 1 s), plus a poll.
    drop(a);
    let took = wait_leader(&b, &token, "b", Duration::from_secs(15)).await;
    eprintln!("ACME lease moved from a killed leader to b after {took:?} (lease 3 s)");
    let r = b
        .call(
            "POST",
            "/api/certificates",
            &token,
            Some(json!({"source": "acme", "domain_names": ["two.test"], "challenge": "http-01"})),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let two = r.json()["id"].as_i64().unwrap();
    b.wait_status(&token, two, "issued", Duration::from_secs(60))
        .await;
    assert!(b.log_text().contains("ACME: ordering"), "b ran the order");
    drop(b);
    pg_exec(
        &admin,
        &format!("DROP DATABASE IF EXISTS {db_name} WITH (FORCE)"),
    )
    .await;
}
