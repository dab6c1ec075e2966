//! ppm-server end to end: the real binary with a temporary data directory,
//! real upstreams and a raw HTTP client, all on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ppm_core::testing::{free_port, send, wait_until, EchoUpstream, TestResponse};
use serde_json::{json, Value};

const ADMIN: &str = "admin@example.test";
const ADMIN_PW: &str = "a-long-admin-password";

struct Ppm {
    child: Option<Child>,
    api: SocketAddr,
    http: SocketAddr,
    https_port: u16,
    data: PathBuf,
    log: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl Ppm {
    async fn start(admin: bool) -> Ppm {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let mut p = Ppm::start_in(&data, admin, tmp.path().join("log")).await;
        p._tmp = Some(tmp);
        p
    }

    async fn start_in(data: &Path, admin: bool, log: PathBuf) -> Ppm {
        Ppm::start_env(data, admin, log, &[]).await
    }

    async fn start_env(data: &Path, admin: bool, log: PathBuf, env: &[(&str, &str)]) -> Ppm {
        // Hold all three listeners while picking, so the ports differ.
        let held: Vec<std::net::TcpListener> = (0..3)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let ports: Vec<u16> = held
            .iter()
            .map(|l| l.local_addr().unwrap().port())
            .collect();
        drop(held);
        let api: SocketAddr = format!("127.0.0.1:{}", ports[0]).parse().unwrap();
        let http: SocketAddr = format!("127.0.0.1:{}", ports[1]).parse().unwrap();
        let https_port = ports[2];
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ppm-server"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PPM_DATA_DIR", data)
            .env("PPM_API_LISTEN", api.to_string())
            .env("PPM_HTTP_LISTEN", http.to_string())
            .env("PPM_HTTPS_LISTEN", format!("127.0.0.1:{https_port}"))
            .env("PPM_GRACE_PERIOD", "3")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        if admin {
            cmd.env("PPM_ADMIN_EMAIL", ADMIN)
                .env("PPM_ADMIN_PASSWORD", ADMIN_PW);
        }
        let child = cmd.spawn().unwrap();
        let p = Ppm {
            child: Some(child),
            api,
            http,
            https_port,
            data: data.to_path_buf(),
            log,
            _tmp: None,
        };
        let mut p = p;
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
        token: Option<&str>,
        body: Option<Value>,
    ) -> TestResponse {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("host", "ppm.test")];
        if let Some(a) = &auth {
            headers.push(("authorization", a.as_str()));
        }
        let bytes = body.map(|b| b.to_string()).unwrap_or_default();
        if !bytes.is_empty() {
            headers.push(("content-type", "application/json"));
        }
        send(self.api, method, path, &headers, bytes.as_bytes())
            .await
            .unwrap()
    }

    async fn login(&self, email: &str, password: &str) -> TestResponse {
        self.call(
            "POST",
            "/api/auth/login",
            None,
            Some(json!({"email": email, "password": password})),
        )
        .await
    }

    async fn admin_token(&self) -> String {
        let r = self.login(ADMIN, ADMIN_PW).await;
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["token"].as_str().unwrap().to_string()
    }

    async fn proxy_get(&self, host: &str, path: &str) -> TestResponse {
        send(self.http, "GET", path, &[("host", host)], b"")
            .await
            .unwrap()
    }

    fn signal(&mut self, sig: &str) {
        let pid = self.child.as_ref().unwrap().id();
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string())
            .status()
            .unwrap();
        assert!(ok.success());
    }

    fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut()?;
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                self.child = None;
                return Some(s);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
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

fn host_body(names: &[&str], port: u16) -> Value {
    json!({
        "domain_names": names,
        "upstreams": [{"host": "127.0.0.1", "port": port, "weight": 1}],
        "forward_scheme": "http",
    })
}

fn field_paths(r: &TestResponse) -> Vec<String> {
    r.json()["error"]["fields"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|f| f["path"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_run_generates_a_password_and_no_defaults_work() {
    let ppm = Ppm::start(false).await;
    let log = ppm.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("first admin created"))
        .unwrap_or_else(|| panic!("no first-run line in log:\n{log}"));
    let email = line
        .split("email ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    let password = line
        .split("password ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    assert!(password.len() >= 16);
    for (e, p) in [
        ("admin", "changeme"),
        ("admin@example.com", "changeme"),
        (email, "changeme"),
        (email, ""),
    ] {
        assert_eq!(ppm.login(e, p).await.status, 401, "{e}/{p} logged in");
    }
    let r = ppm.login(email, password).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let token = r.json()["token"].as_str().unwrap().to_string();
    assert!(r.json()["expires_at"].as_i64().unwrap() > 0);
    let me = ppm.call("GET", "/api/auth/me", Some(&token), None).await;
    assert_eq!(me.json()["role"], "admin");
    assert!(me.json().get("password_hash").is_none());
    assert_eq!(me.json()["must_change_password"], true);

    // The printed password only lets the admin choose a new one.
    let r = ppm
        .call("GET", "/api/proxy-hosts", Some(&token), None)
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "password_change_required");
    let r = ppm
        .call(
            "POST",
            "/api/tokens",
            Some(&token),
            Some(json!({"name": "sneaky", "scopes": ["proxy-hosts:read"]})),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    let r = ppm
        .call(
            "POST",
            "/api/auth/password",
            Some(&token),
            Some(json!({"current_password": password, "new_password": "a fresh admin password"})),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    let token = ppm.login(email, "a fresh admin password").await.json()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let me = ppm.call("GET", "/api/auth/me", Some(&token), None).await;
    assert_eq!(me.json()["must_change_password"], false);
    let r = ppm
        .call("GET", "/api/proxy-hosts", Some(&token), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());

    // A password an admin sets for someone else must be replaced too.
    let r = ppm
        .call(
            "POST",
            "/api/users",
            Some(&token),
            Some(json!({"email": "op@x.test", "role": "operator", "password": "operator password 1"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["must_change_password"], false);
    let op_id = r.json()["id"].as_i64().unwrap();
    let r = ppm
        .call(
            "PUT",
            &format!("/api/users/{op_id}"),
            Some(&token),
            Some(
                json!({"email": "op@x.test", "role": "operator", "password": "a reset password 2"}),
            ),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["must_change_password"], true);
    let op = ppm.login("op@x.test", "a reset password 2").await.json()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let r = ppm.call("GET", "/api/proxy-hosts", Some(&op), None).await;
    assert_eq!(r.json()["error"]["code"], "password_change_required");

    // A restart does not create another admin or print another password.
    drop(ppm);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_failures_are_throttled_and_audited() {
    let ppm = Ppm::start(true).await;
    let r = ppm.login(ADMIN, "wrong password!").await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["code"], "unauthorized");
    let mut throttled = None;
    for _ in 0..10 {
        let r = ppm.login(ADMIN, "wrong password!").await;
        if r.status == 429 {
            throttled = Some(r);
            break;
        }
        assert_eq!(r.status, 401);
    }
    let r = throttled.expect("never throttled");
    assert!(r.header("retry-after").is_some());
    // The right password is refused too while locked.
    assert_eq!(ppm.login(ADMIN, ADMIN_PW).await.status, 429);
    // Wait out the backoff (bounded), then log in.
    let ok = wait_until(Duration::from_secs(10), || async {
        ppm.login(ADMIN, ADMIN_PW).await.status == 200
    })
    .await;
    assert!(ok);
    let token = ppm.admin_token().await;
    let audit = ppm
        .call("GET", "/api/audit-log", Some(&token), None)
        .await
        .json();
    let failed = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "login_failed")
        .count();
    assert!(failed >= 5, "{audit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_hosts_take_effect_immediately() {
    let ppm = Ppm::start(true).await;
    let token = ppm.admin_token().await;
    let a = EchoUpstream::start("a").await.unwrap();
    let b = EchoUpstream::start("b").await.unwrap();

    assert_eq!(ppm.proxy_get("app.test", "/").await.status, 404);
    let r = ppm
        .call(
            "POST",
            "/api/proxy-hosts",
            Some(&token),
            Some(host_body(&["app.test"], a.port())),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let host = r.json();
    let id = host["id"].as_i64().unwrap();
    assert!(id > 0);
    assert_eq!(host["domain_names"][0], "app.test");
    assert_eq!(host["enabled"], true);
    // The very next request is served.
    let got = ppm.proxy_get("app.test", "/x").await;
    assert_eq!((got.status, got.header("x-upstream")), (200, Some("a")));

    let mut changed = host.clone();
    changed["upstreams"] = json!([{"host": "127.0.0.1", "port": b.port(), "weight": 1}]);
    let r = ppm
        .call(
            "PUT",
            &format!("/api/proxy-hosts/{id}"),
            Some(&token),
            Some(changed),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        ppm.proxy_get("app.test", "/").await.header("x-upstream"),
        Some("b")
    );

    let r = ppm
        .call("GET", &format!("/api/proxy-hosts/{id}"), Some(&token), None)
        .await;
    assert_eq!(r.json()["upstreams"][0]["port"], b.port());
    let list = ppm
        .call("GET", "/api/proxy-hosts", Some(&token), None)
        .await
        .json();
    assert_eq!(list.as_array().unwrap().len(), 1);

    let r = ppm
        .call(
            "DELETE",
            &format!("/api/proxy-hosts/{id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(ppm.proxy_get("app.test", "/").await.status, 404);
    assert_eq!(
        ppm.call("GET", &format!("/api/proxy-hosts/{id}"), Some(&token), None)
            .await
            .status,
        404
    );

    // Each change is in the audit log with before and after.
    let audit = ppm
        .call("GET", "/api/audit-log", Some(&token), None)
        .await
        .json();
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["entity"] == "proxy-hosts")
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, vec!["delete", "update", "create"]);
    let update = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "update")
        .unwrap();
    assert_eq!(update["before"]["upstreams"][0]["port"], a.port());
    assert_eq!(update["after"]["upstreams"][0]["port"], b.port());
    assert_eq!(update["client_ip"], "127.0.0.1");
    assert_eq!(update["actor"], ADMIN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_names_the_field_and_changes_nothing() {
    let ppm = Ppm::start(true).await;
    let token = ppm.admin_token().await;
    let u = EchoUpstream::start("u").await.unwrap();
    let before = ppm.call("GET", "/api/health", None, None).await.json()["revision"].clone();

    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "/api/proxy-hosts",
            host_body(&["bad host"], u.port()),
            "domain_names[0]",
        ),
        (
            "/api/proxy-hosts",
            host_body(&["*.*.test"], u.port()),
            "domain_names[0]",
        ),
        (
            "/api/proxy-hosts",
            host_body(&[&format!("{}.test", "a".repeat(64))], u.port()),
            "domain_names[0]",
        ),
        (
            "/api/proxy-hosts",
            host_body(&["ok.test"], 0),
            "upstreams[0].port",
        ),
        (
            "/api/proxy-hosts",
            json!({"domain_names": ["ok.test"], "upstreams": [{"host": "127.0.0.1", "port": 70000}]}),
            "upstreams[0].port",
        ),
        (
            "/api/proxy-hosts",
            json!({"domain_names": ["ok.test"], "upstreams": [{"host": "169.254.169.254", "port": 80}]}),
            "upstreams[0].host",
        ),
        (
            "/api/proxy-hosts",
            host_body(&["ok.test"], ppm.http.port()),
            "upstreams[0].port",
        ),
        (
            "/api/proxy-hosts",
            json!({"domain_names": ["ok.test"], "upstreams": [{"host": "127.0.0.1", "port": u.port()}], "domain_name": "typo"}),
            "",
        ),
        (
            "/api/proxy-hosts",
            json!({"domain_names": ["ok.test"], "upstreams": [{"host": "127.0.0.1", "port": u.port()}],
                   "request_headers": [{"name": "X-A", "value": "a\r\nSet-Cookie: x"}]}),
            "request_headers[0].value",
        ),
        (
            "/api/proxy-hosts",
            json!({"domain_names": ["ok.test"], "upstreams": [{"host": "127.0.0.1", "port": u.port()}], "access_list_id": 99}),
            "access_list_id",
        ),
        (
            "/api/access-lists",
            json!({"name": "x", "rules": [{"action": "allow", "address": "10.0.0.0/33"}]}),
            "rules[0].address",
        ),
        (
            "/api/streams",
            json!({"incoming_port": ppm.api.port(), "upstreams": [{"host": "127.0.0.1", "port": u.port()}]}),
            "incoming_port",
        ),
        (
            "/api/redirection-hosts",
            json!({"domain_names": ["r.test"], "forward_domain": "user@evil.test"}),
            "forward_domain",
        ),
        (
            "/api/users",
            json!({"email": "not-an-email", "role": "viewer", "password": "long enough password"}),
            "email",
        ),
        (
            "/api/users",
            json!({"email": "v@x.test", "role": "viewer", "password": "short"}),
            "password",
        ),
        (
            "/api/users",
            json!({"email": "v@x.test", "role": "god", "password": "long enough password"}),
            "role",
        ),
        (
            "/api/tokens",
            json!({"name": "t", "scopes": ["everything"]}),
            "scopes[0]",
        ),
    ];
    for (path, body, want) in cases {
        let r = ppm
            .call("POST", path, Some(&token), Some(body.clone()))
            .await;
        assert!(
            (400..500).contains(&r.status),
            "{path} {body}: status {} {}",
            r.status,
            r.text()
        );
        let err = r.json();
        assert!(
            err["error"]["code"].is_string() && err["error"]["message"].is_string(),
            "{err}"
        );
        if !want.is_empty() {
            assert!(
                field_paths(&r).iter().any(|p| p == want),
                "{path} {body}: wanted field {want}, got {err}"
            );
        } else {
            assert!(
                err["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("domain_name"),
                "{err}"
            );
        }
    }
    // Malformed JSON and a wrong content type.
    let r = send(
        ppm.api,
        "POST",
        "/api/proxy-hosts",
        &[
            ("authorization", &format!("Bearer {token}")),
            ("content-type", "application/json"),
        ],
        b"{not json",
    )
    .await
    .unwrap();
    assert_eq!(r.status, 400);
    let r = send(
        ppm.api,
        "POST",
        "/api/proxy-hosts",
        &[("authorization", &format!("Bearer {token}"))],
        b"{}",
    )
    .await
    .unwrap();
    assert_eq!(r.status, 415);
    // A missing field, a bad path parameter and a bad query parameter are
    // each named.
    let mut no_port = host_body(&["noport.test"], u.port());
    no_port["upstreams"][0]
        .as_object_mut()
        .unwrap()
        .remove("port");
    let r = ppm
        .call("POST", "/api/proxy-hosts", Some(&token), Some(no_port))
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(field_paths(&r), vec!["upstreams[0].port"]);
    let r = ppm
        .call("DELETE", "/api/proxy-hosts/abc", Some(&token), None)
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(field_paths(&r), vec!["id"]);
    let r = ppm
        .call("GET", "/api/audit-log?limit=abc", Some(&token), None)
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(field_paths(&r), vec!["limit"]);

    // Duplicate names across host kinds: 422 naming the field.
    let r = ppm
        .call(
            "POST",
            "/api/proxy-hosts",
            Some(&token),
            Some(host_body(&["dup.test"], u.port())),
        )
        .await;
    assert_eq!(r.status, 201);
    let r = ppm
        .call(
            "POST",
            "/api/dead-hosts",
            Some(&token),
            Some(json!({"domain_names": ["other.test", "DUP.test"]})),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(field_paths(&r), vec!["domain_names[1]"]);

    // Nothing but the one good host was stored.
    let after = ppm.call("GET", "/api/health", None, None).await.json()["revision"]
        .as_u64()
        .unwrap();
    assert_eq!(after, before.as_u64().unwrap() + 1);
    assert_eq!(
        ppm.call("GET", "/api/nope", Some(&token), None)
            .await
            .status,
        404
    );
    let r = ppm
        .call("PATCH", "/api/proxy-hosts", Some(&token), None)
        .await;
    assert_eq!(r.status, 405, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "method_not_allowed");
    assert_eq!(r.header("allow"), Some("GET,HEAD,POST"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_scopes_and_session_tokens() {
    let ppm = Ppm::start(true).await;
    let admin = ppm.admin_token().await;
    let u = EchoUpstream::start("u").await.unwrap();

    // No or bad credentials: 401.
    assert_eq!(
        ppm.call("GET", "/api/proxy-hosts", None, None).await.status,
        401
    );
    assert_eq!(
        ppm.call("GET", "/api/proxy-hosts", Some("garbage"), None)
            .await
            .status,
        401
    );
    // Tampered, alg:none and expired JWTs: 401.
    let parts: Vec<&str> = admin.split('.').collect();
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims["sub"] = json!(claims["sub"].as_i64().unwrap() + 1);
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    );
    assert_eq!(
        ppm.call("GET", "/api/auth/me", Some(&tampered), None)
            .await
            .status,
        401
    );
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
        parts[1]
    );
    assert_eq!(
        ppm.call("GET", "/api/auth/me", Some(&none), None)
            .await
            .status,
        401
    );
    let mut expired: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    expired["exp"] = json!(1);
    let expired = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(expired.to_string()),
        parts[2]
    );
    assert_eq!(
        ppm.call("GET", "/api/auth/me", Some(&expired), None)
            .await
            .status,
        401
    );

    // A viewer reads but cannot write.
    let r = ppm
        .call(
            "POST",
            "/api/users",
            Some(&admin),
            Some(json!({"email": "v@x.test", "role": "viewer", "password": "viewer password 1"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let viewer = ppm.login("v@x.test", "viewer password 1").await.json()["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        ppm.call("GET", "/api/proxy-hosts", Some(&viewer), None)
            .await
            .status,
        200
    );
    let r = ppm
        .call(
            "POST",
            "/api/proxy-hosts",
            Some(&viewer),
            Some(host_body(&["v.test"], u.port())),
        )
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(
        ppm.call("GET", "/api/users", Some(&viewer), None)
            .await
            .status,
        403
    );

    // A token scoped to proxy-hosts:read cannot write, nor read users.
    let r = ppm
        .call(
            "POST",
            "/api/tokens",
            Some(&admin),
            Some(json!({"name": "ci", "scopes": ["proxy-hosts:read"]})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let tok = r.json()["token"].as_str().unwrap().to_string();
    let tok_id = r.json()["id"].as_i64().unwrap();
    assert_eq!(
        ppm.call("GET", "/api/proxy-hosts", Some(&tok), None)
            .await
            .status,
        200
    );
    assert_eq!(
        ppm.call(
            "POST",
            "/api/proxy-hosts",
            Some(&tok),
            Some(host_body(&["t.test"], u.port()))
        )
        .await
        .status,
        403
    );
    assert_eq!(
        ppm.call("GET", "/api/streams", Some(&tok), None)
            .await
            .status,
        403
    );
    // The token is never shown again.
    let listed = ppm
        .call("GET", "/api/tokens", Some(&admin), None)
        .await
        .json();
    assert!(listed
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t.get("token").is_none()));
    // A write token works; revoking it stops it.
    let w = ppm
        .call(
            "POST",
            "/api/tokens",
            Some(&admin),
            Some(json!({"name": "w", "scopes": ["proxy-hosts:write"]})),
        )
        .await
        .json()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let r = ppm
        .call(
            "POST",
            "/api/proxy-hosts",
            Some(&w),
            Some(host_body(&["w.test"], u.port())),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        ppm.call(
            "DELETE",
            &format!("/api/tokens/{tok_id}"),
            Some(&admin),
            None
        )
        .await
        .status,
        204
    );
    assert_eq!(
        ppm.call("GET", "/api/proxy-hosts", Some(&tok), None)
            .await
            .status,
        401
    );

    // Changing a password ends older sessions.
    let r = ppm
        .call(
            "POST",
            "/api/auth/password",
            Some(&viewer),
            Some(json!({"current_password": "viewer password 1", "new_password": "viewer password 2"})),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(
        ppm.call("GET", "/api/auth/me", Some(&viewer), None)
            .await
            .status,
        401
    );
    assert_eq!(ppm.login("v@x.test", "viewer password 2").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_import_history_and_rollback() {
    let ppm = Ppm::start(true).await;
    let token = ppm.admin_token().await;
    let u = EchoUpstream::start("u").await.unwrap();
    for name in ["one.test", "two.test"] {
        let r = ppm
            .call(
                "POST",
                "/api/proxy-hosts",
                Some(&token),
                Some(host_body(&[name], u.port())),
            )
            .await;
        assert_eq!(r.status, 201);
    }
    let rev_two = ppm.call("GET", "/api/health", None, None).await.json()["revision"]
        .as_u64()
        .unwrap();
    let r = ppm
        .call("POST", "/api/access-lists", Some(&token), Some(json!({"name": "office", "users": [{"username": "bob", "password": "bobs password"}]})))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        r.json()["users"][0]["password_hash"],
        "",
        "hashes are never returned"
    );
    let rev_acl = ppm.call("GET", "/api/health", None, None).await.json()["revision"]
        .as_u64()
        .unwrap();
    let entry = ppm
        .call(
            "GET",
            &format!("/api/config/history/{rev_acl}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(entry.status, 200, "{}", entry.text());
    assert!(
        entry.text().contains("office") && !entry.text().contains("$argon2"),
        "{}",
        entry.text()
    );

    let export = ppm
        .call("GET", "/api/config/export", Some(&token), None)
        .await;
    assert_eq!(export.status, 200);
    let doc = export.json();
    assert_eq!(doc["format"], "ppm-config");
    assert_eq!(doc["config"]["proxy_hosts"].as_array().unwrap().len(), 2);

    // Into a fresh server: dry run changes nothing, then the real import.
    let fresh = Ppm::start(true).await;
    let ft = fresh.admin_token().await;
    let r = fresh
        .call(
            "POST",
            "/api/config/import?dry_run=true",
            Some(&ft),
            Some(doc.clone()),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["counts"]["proxy_hosts"], 2);
    assert_eq!(fresh.proxy_get("one.test", "/").await.status, 404);
    let r = fresh
        .call("POST", "/api/config/import", Some(&ft), Some(doc.clone()))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(fresh.proxy_get("one.test", "/").await.status, 200);
    let again = fresh
        .call("GET", "/api/config/export", Some(&ft), None)
        .await
        .json();
    assert_eq!(again["config"], doc["config"]);

    // History, then rollback to two hosts and no access list.
    let hist = ppm
        .call("GET", "/api/config/history", Some(&token), None)
        .await
        .json();
    assert!(hist.as_array().unwrap().len() >= 3);
    let r = ppm
        .call(
            "POST",
            &format!("/api/config/rollback/{rev_two}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let lists = ppm
        .call("GET", "/api/access-lists", Some(&token), None)
        .await
        .json();
    assert_eq!(lists.as_array().unwrap().len(), 0);
    assert_eq!(ppm.proxy_get("two.test", "/").await.status, 200);
    assert_eq!(
        ppm.call("POST", "/api/config/rollback/99999", Some(&token), None)
            .await
            .status,
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_request_in_flight() {
    let mut ppm = Ppm::start(true).await;
    let token = ppm.admin_token().await;
    let u = EchoUpstream::start("u").await.unwrap();
    let r = ppm
        .call(
            "POST",
            "/api/proxy-hosts",
            Some(&token),
            Some(host_body(&["slow.test"], u.port())),
        )
        .await;
    assert_eq!(r.status, 201);
    let http = ppm.http;
    let slow = tokio::spawn(async move {
        send(http, "GET", "/sleep/1000", &[("host", "slow.test")], b"").await
    });
    assert!(wait_until(Duration::from_secs(5), || async { u.hits() > 0 }).await);
    ppm.signal("TERM");
    let r = slow.await.unwrap().unwrap();
    assert_eq!(r.status, 200);
    let status = ppm
        .wait_exit(Duration::from_secs(20))
        .expect("ppm-server did not exit");
    assert!(status.success(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_errors_name_the_setting() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ppm-server"))
        .env_clear()
        .env("PPM_DATA_DIR", tmp.path())
        .env("PPM_API_LISTEN", format!("127.0.0.1:{port}"))
        .env(
            "PPM_HTTP_LISTEN",
            format!("127.0.0.1:{}", free_port().unwrap()),
        )
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--api-listen") && !err.contains("panicked"),
        "{err}"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_ppm-server"))
        .env_clear()
        .env("PPM_DATA_DIR", tmp.path())
        .env("PPM_API_LISTEN", "127.0.0.1:notaport")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("api-listen"));

    let out = Command::new(env!("CARGO_BIN_EXE_ppm-server"))
        .env_clear()
        .env("PPM_DATA_DIR", tmp.path())
        .env("PPM_ADMIN_EMAIL", "a@b.test")
        .env("PPM_ADMIN_PASSWORD", "short")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("PPM_ADMIN_PASSWORD"));
    drop(taken);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_describes_every_route() {
    let ppm = Ppm::start(true).await;
    let r = ppm.call("GET", "/api/openapi.json", None, None).await;
    assert_eq!(r.status, 200);
    let doc = r.json();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/api/auth/login",
        "/api/proxy-hosts",
        "/api/proxy-hosts/{id}",
        "/api/redirection-hosts",
        "/api/dead-hosts",
        "/api/streams",
        "/api/access-lists",
        "/api/certificates",
        "/api/certificates/{id}/renew",
        "/api/dns-providers",
        "/api/dns-providers/{id}",
        "/api/settings/acme",
        "/api/users",
        "/api/tokens",
        "/api/settings",
        "/api/upstreams/health",
        "/api/cluster/nodes",
        "/api/audit-log",
        "/api/config/export",
        "/api/config/import",
        "/api/config/history",
        "/api/config/rollback/{revision}",
        "/api/health",
    ] {
        assert!(paths.contains_key(p), "{p} missing");
    }
    // Every $ref resolves.
    let text = doc.to_string();
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for part in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = part.split('"').next().unwrap();
        assert!(schemas.contains_key(name), "dangling $ref {name}");
    }
    // Config writes document the nodes-applied header; other writes do not.
    let headers = |path: &str, method: &str, code: &str| {
        paths[path][method]["responses"][code]["headers"].clone()
    };
    assert!(headers("/api/proxy-hosts", "post", "201")["x-ppm-nodes-applied"].is_object());
    assert!(headers("/api/settings", "put", "200")["x-ppm-nodes-applied"].is_object());
    assert!(headers("/api/users", "post", "201").is_null());
    assert!(paths["/api/proxy-hosts"]["post"]["responses"]["503"].is_object());
    // Limits the server enforces are in the schema.
    let upstream = &schemas["Upstream"]["properties"];
    assert_eq!(upstream["port"]["minimum"], 1);
    assert_eq!(upstream["port"]["maximum"], 65535);
    assert_eq!(schemas["ProxyHost"]["additionalProperties"], false);
    // Stream writes say why a listener change can be refused.
    assert!(paths.contains_key("/api/streams/status"));
    let post = doc["paths"]["/api/streams"]["post"]["description"]
        .as_str()
        .unwrap();
    assert!(
        post.contains("port_in_use") && post.contains("TCP only"),
        "{post}"
    );
    let _ = (ppm.https_port, &ppm.data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_sqlite_node_lists_itself_and_reports_writes_applied() {
    let ppm = Ppm::start(true).await;
    let token = ppm.admin_token().await;
    let u = EchoUpstream::start("u").await.unwrap();
    let r = ppm
        .call(
            "POST",
            "/api/proxy-hosts",
            Some(&token),
            Some(host_body(&["node.test"], u.port())),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("x-ppm-nodes-applied"), Some("1/1"));
    // Reads and non-config writes say nothing about nodes.
    let r = ppm
        .call("GET", "/api/proxy-hosts", Some(&token), None)
        .await;
    assert_eq!(r.header("x-ppm-nodes-applied"), None);
    let r = ppm
        .call("GET", "/api/cluster/nodes", Some(&token), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["backend"], "sqlite");
    assert_eq!(v["live"], 1);
    assert_eq!(v["applied"], 1);
    let nodes = v["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0]["this_node"], true);
    assert_eq!(nodes[0]["applied_latest"], true);
    assert_eq!(nodes[0]["revision"], v["revision"]);
    // The generated id is kept in the data directory.
    let id = std::fs::read_to_string(ppm.data.join("node-id")).unwrap();
    assert_eq!(nodes[0]["id"], id.trim());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_lists_and_force_https_apply_through_the_api() {
    let ppm = Ppm::start(true).await;
    let token = ppm.admin_token().await;
    let u = EchoUpstream::start("u").await.unwrap();
    let r = ppm
        .call(
            "POST",
            "/api/access-lists",
            Some(&token),
            Some(json!({"name": "office", "rules": [{"action": "allow", "address": "10.0.0.0/8"}],
                        "default_action": "deny", "users": [{"username": "bob", "password": "bobs password"}],
                        "satisfy": "any"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let acl = r.json()["id"].as_i64().unwrap();
    let mut body = host_body(&["locked.test"], u.port());
    body["access_list_id"] = json!(acl);
    let r = ppm
        .call("POST", "/api/proxy-hosts", Some(&token), Some(body))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    // 127.0.0.1 is not in 10.0.0.0/8: a password is needed.
    let r = ppm.proxy_get("locked.test", "/").await;
    assert_eq!(r.status, 401, "{}", r.text());
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("bob:bobs password")
    );
    let r = send(
        ppm.http,
        "GET",
        "/",
        &[("host", "locked.test"), ("authorization", &basic)],
        b"",
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(u.hits(), 1);
    // The list cannot be deleted while a host uses it.
    let r = ppm
        .call(
            "DELETE",
            &format!("/api/access-lists/{acl}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.text());

    let mut body = host_body(&["secure.test"], u.port());
    body["ssl_forced"] = json!(true);
    let r = ppm
        .call("POST", "/api/proxy-hosts", Some(&token), Some(body))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = ppm.proxy_get("secure.test", "/a?b=c").await;
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("https://secure.test/a?b=c"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_never_gets_a_500() {
    let ppm = Ppm::start(true).await;
    let token = ppm.admin_token().await;
    let auth = format!("Bearer {token}");
    let deep = format!("{}{}", "[".repeat(500), "]".repeat(500));
    let bodies: Vec<Vec<u8>> = vec![
        b"null".to_vec(),
        b"[]".to_vec(),
        b"\"x\"".to_vec(),
        b"{}".to_vec(),
        b"{\"domain_names\": null}".to_vec(),
        b"{\"domain_names\": [\"a.test\"], \"upstreams\": [{\"host\": \"a\", \"port\": -1}]}".to_vec(),
        b"{\"domain_names\": [\"a.test\"], \"upstreams\": [{\"host\": \"127.0.0.1\", \"port\": 1, \"weight\": 1e99}]}".to_vec(),
        b"{\"incoming_port\": 99999999999999999999}".to_vec(),
        b"{\"name\": \"\\u0000\", \"rules\": [{\"action\": \"maybe\", \"address\": \"x\"}]}".to_vec(),
        deep.into_bytes(),
        vec![0xff, 0xfe, 0x00, 0x7b],
        b"{\"email\": \"a@b.c\", \"password\": \"x\"}".to_vec(),
    ];
    let paths = [
        "/api/proxy-hosts",
        "/api/redirection-hosts",
        "/api/dead-hosts",
        "/api/streams",
        "/api/access-lists",
        "/api/certificates",
        "/api/dns-providers",
        "/api/users",
        "/api/tokens",
        "/api/auth/login",
        "/api/auth/password",
        "/api/config/import",
        "/api/config/import?dry_run=maybe",
    ];
    for path in paths {
        for body in &bodies {
            let r = send(
                ppm.api,
                "POST",
                path,
                &[
                    ("authorization", &auth),
                    ("content-type", "application/json"),
                ],
                body,
            )
            .await
            .unwrap();
            assert!(
                (400..500).contains(&r.status),
                "POST {path} {:?}: {} {}",
                String::from_utf8_lossy(body),
                r.status,
                r.text()
            );
            assert!(
                r.json()["error"]["code"].is_string(),
                "not a JSON error: {}",
                r.text()
            );
        }
    }
    for (method, path) in [
        ("PUT", "/api/proxy-hosts/abc"),
        ("GET", "/api/proxy-hosts/99999999999999999999999"),
        ("DELETE", "/api/streams/-1"),
        ("GET", "/api/audit-log?limit=0"),
        ("GET", "/api/audit-log?limit=nope"),
        ("POST", "/api/config/rollback/xyz"),
        ("GET", "/api/config/history/0"),
    ] {
        let r = send(
            ppm.api,
            method,
            path,
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            b"{}",
        )
        .await
        .unwrap();
        assert!(
            (400..500).contains(&r.status),
            "{method} {path}: {} {}",
            r.status,
            r.text()
        );
        assert!(
            r.json()["error"]["code"].is_string(),
            "{method} {path}: {}",
            r.text()
        );
    }
    // The server still works.
    assert_eq!(
        ppm.call("GET", "/api/proxy-hosts", Some(&token), None)
            .await
            .status,
        200
    );
}

/// A key and a certificate for `names` signed by `ca` (self-signed when
/// `None`), valid from `from` to `to` (unix seconds): `(cert + chain PEM,
/// key PEM, the signing pair for further leaves)`.
fn issue(
    names: &[&str],
    from: i64,
    to: i64,
    ca: Option<&(
        openssl::x509::X509,
        openssl::pkey::PKey<openssl::pkey::Private>,
    )>,
    is_ca: bool,
) -> (
    String,
    String,
    (
        openssl::x509::X509,
        openssl::pkey::PKey<openssl::pkey::Private>,
    ),
) {
    use openssl::asn1::Asn1Time;
    use openssl::bn::{BigNum, MsbOption};
    use openssl::ec::{EcGroup, EcKey};
    use openssl::hash::MessageDigest;
    use openssl::nid::Nid;
    use openssl::pkey::PKey;
    use openssl::x509::extension::{BasicConstraints, SubjectAlternativeName};
    use openssl::x509::{X509Builder, X509NameBuilder};
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    let key = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
    let mut n = X509NameBuilder::new().unwrap();
    n.append_entry_by_text("CN", names[0]).unwrap();
    let name = n.build();
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    let mut serial = BigNum::new().unwrap();
    serial.rand(64, MsbOption::MAYBE_ZERO, false).unwrap();
    b.set_serial_number(&serial.to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(ca.map_or(&*name, |c| c.0.subject_name()))
        .unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::from_unix(from).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::from_unix(to).unwrap()).unwrap();
    if is_ca {
        b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
            .unwrap();
    } else {
        let mut san = SubjectAlternativeName::new();
        for n in names {
            san.dns(n);
        }
        let ctx = b.x509v3_context(ca.map(|c| &*c.0), None);
        let san = san.build(&ctx).unwrap();
        b.append_extension(san).unwrap();
    }
    b.sign(ca.map_or(&key, |c| &c.1), MessageDigest::sha256())
        .unwrap();
    let cert = b.build();
    let mut pem = String::from_utf8(cert.to_pem().unwrap()).unwrap();
    if let Some(c) = ca {
        pem.push_str(&String::from_utf8(c.0.to_pem().unwrap()).unwrap());
    }
    let key_pem = String::from_utf8(key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    (pem, key_pem, (cert, key))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_upload_details_and_sni() {
    use ppm_core::testing::{send_on, tls_connect};
    let ppm = Ppm::start(true).await;
    let t = ppm.admin_token().await;
    let tok = Some(t.as_str());
    let up = EchoUpstream::start("tls-app").await.unwrap();
    let https: SocketAddr = format!("127.0.0.1:{}", ppm.https_port).parse().unwrap();
    let day = 86_400;
    let (_, _, ca) = issue(&["ppm test CA"], now() - day, now() + 30 * day, None, true);
    let (leaf, key, _) = issue(
        &["secure.test", "www.secure.test"],
        now() - day,
        now() + 20 * day,
        Some(&ca),
        false,
    );

    // Bad uploads: each names its field, nothing is stored.
    let (_, other_key, _) = issue(&["x.test"], now() - day, now() + day, None, false);
    let (expired, expired_key, _) =
        issue(&["old.test"], now() - 10 * day, now() - day, None, false);
    let (early, early_key, _) = issue(&["early.test"], now() + day, now() + 10 * day, None, false);
    for (body, field, needle) in [
        (
            json!({"source": "upload", "certificate_pem": leaf, "private_key_pem": other_key}),
            "private_key_pem",
            "does not match",
        ),
        (
            json!({"source": "upload", "certificate_pem": expired, "private_key_pem": expired_key}),
            "certificate_pem",
            "expired",
        ),
        (
            json!({"source": "upload", "certificate_pem": early, "private_key_pem": early_key}),
            "certificate_pem",
            "not valid yet",
        ),
        (
            json!({"source": "upload", "certificate_pem": "hello", "private_key_pem": key}),
            "certificate_pem",
            "PEM",
        ),
        (
            json!({"source": "upload", "certificate_pem": leaf, "private_key_pem": "nope"}),
            "private_key_pem",
            "PEM private key",
        ),
    ] {
        let r = ppm.call("POST", "/api/certificates", tok, Some(body)).await;
        assert_eq!(r.status, 422, "{}", r.text());
        assert_eq!(field_paths(&r), [field], "{}", r.text());
        assert!(r.text().contains(needle), "{}", r.text());
    }
    for body in [
        json!({"certificate_pem": leaf, "private_key_pem": key}),
        json!({"source": "upload", "certificate_pem": leaf, "private_key_pem": key, "extra": 1}),
        json!({"source": "carrier-pigeon"}),
    ] {
        let r = ppm.call("POST", "/api/certificates", tok, Some(body)).await;
        assert!((400..500).contains(&r.status), "{}", r.text());
    }
    let r = ppm.call("GET", "/api/certificates", tok, None).await;
    assert_eq!(r.json(), json!([]));

    // A good upload: names from the SANs, details, never the key.
    let r = ppm
        .call(
            "POST",
            "/api/certificates",
            tok,
            Some(json!({"source": "upload", "certificate_pem": leaf, "private_key_pem": key})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert!(!r.text().contains("PRIVATE KEY"), "{}", r.text());
    let cert = r.json();
    let id = cert["id"].as_i64().unwrap();
    assert_eq!(
        cert["domain_names"],
        json!(["secure.test", "www.secure.test"])
    );
    assert_eq!(cert["name"], "secure.test");
    assert_eq!(cert["source"], "upload");
    assert_eq!(cert["status"], "issued");
    assert_eq!(cert["issuer"], "CN=ppm test CA");
    assert_eq!(cert["chain_length"], 1);
    assert!(
        (19..=20).contains(&cert["days_left"].as_i64().unwrap()),
        "{cert}"
    );
    let fp = cert["fingerprint_sha256"].as_str().unwrap().to_string();

    // A host using it: SNI selects it (with the chain), unknown names and
    // no SNI get the self-signed fallback.
    let mut body = host_body(&["secure.test"], up.port());
    body["certificate_id"] = json!(id);
    let r = ppm.call("POST", "/api/proxy-hosts", tok, Some(body)).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let host_id = r.json()["id"].as_i64().unwrap();
    let (peer, mut s) = tls_connect(https, Some("secure.test"), &["http/1.1"], None)
        .await
        .unwrap();
    assert_eq!(
        (peer.fingerprint.as_str(), peer.chain_len),
        (fp.as_str(), 2)
    );
    let r = send_on(&mut s, "GET", "/hello", &[("host", "secure.test")], b"")
        .await
        .unwrap();
    assert_eq!((r.status, r.header("x-upstream")), (200, Some("tls-app")));
    for sni in [Some("unknown.test"), None] {
        let (peer, _) = tls_connect(https, sni, &[], None).await.unwrap();
        assert_eq!(peer.names, ["ppm-default.invalid"], "{sni:?}");
    }
    let r = ppm
        .call("GET", &format!("/api/certificates/{id}"), tok, None)
        .await;
    assert_eq!(
        r.json()["used_by"],
        json!([{"kind": "proxy_host", "id": host_id, "domain_names": ["secure.test"]}])
    );

    // In use: deleting is a conflict and changes nothing.
    let r = ppm
        .call("DELETE", &format!("/api/certificates/{id}"), tok, None)
        .await;
    assert_eq!(r.status, 409, "{}", r.text());

    // Replacing the PEMs serves the new certificate on the next handshake.
    let (renewed, renewed_key, _) = issue(
        &["secure.test"],
        now() - day,
        now() + 60 * day,
        Some(&ca),
        false,
    );
    let r = ppm
        .call(
            "PUT",
            &format!("/api/certificates/{id}"),
            tok,
            Some(json!({"certificate_pem": renewed, "private_key_pem": renewed_key})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let new_fp = r.json()["fingerprint_sha256"].as_str().unwrap().to_string();
    assert_ne!(new_fp, fp);
    assert_eq!(r.json()["domain_names"], json!(["secure.test"]));
    let (peer, _) = tls_connect(https, Some("secure.test"), &[], None)
        .await
        .unwrap();
    assert_eq!(peer.fingerprint, new_fp);

    // The fallback persists across a restart; a default certificate
    // replaces it for unknown names.
    let (peer, _) = tls_connect(https, None, &[], None).await.unwrap();
    let fallback_fp = peer.fingerprint;
    let mut settings = ppm.call("GET", "/api/settings", tok, None).await.json();
    settings["default_certificate_id"] = json!(id);
    let r = ppm
        .call("PUT", "/api/settings", tok, Some(settings.clone()))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let (peer, _) = tls_connect(https, Some("unknown.test"), &[], None)
        .await
        .unwrap();
    assert_eq!(peer.fingerprint, new_fp);
    settings["default_certificate_id"] = json!(9999);
    let r = ppm.call("PUT", "/api/settings", tok, Some(settings)).await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(field_paths(&r), ["default_certificate_id"], "{}", r.text());
    let r = ppm.call("GET", "/api/certificates", tok, None).await;
    assert_eq!(r.json()[0]["is_default"], true);
    assert!(!r.text().contains("PRIVATE KEY"));
    assert!(r.json()[0]["used_by"]
        .as_array()
        .unwrap()
        .iter()
        .any(|u| u["kind"] == "settings"));

    let data = ppm.data.clone();
    let mut ppm = ppm;
    ppm.signal("TERM");
    assert!(ppm.wait_exit(Duration::from_secs(15)).is_some());
    let log = data.parent().unwrap().join("log2");
    let ppm2 = Ppm::start_in(&data, true, log).await;
    let https2: SocketAddr = format!("127.0.0.1:{}", ppm2.https_port).parse().unwrap();
    let t2 = ppm2.admin_token().await;
    let mut settings = ppm2
        .call("GET", "/api/settings", Some(&t2), None)
        .await
        .json();
    settings["default_certificate_id"] = Value::Null;
    let r = ppm2
        .call("PUT", "/api/settings", Some(&t2), Some(settings))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let (peer, _) = tls_connect(https2, None, &[], None).await.unwrap();
    assert_eq!(peer.fingerprint, fallback_fp);
}

/// A TCP upstream that sends `tag\n`, then echoes until EOF.
async fn tagged_upstream(tag: &'static str) -> u16 {
    use tokio::io::AsyncWriteExt;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                if s.write_all(format!("{tag}\n").as_bytes()).await.is_ok() {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                }
            });
        }
    });
    port
}

/// Connects to a stream port and reads the upstream's tag line.
async fn stream_tag(port: u16) -> (tokio::net::TcpStream, String) {
    use tokio::io::AsyncReadExt;
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut b))
            .await
            .unwrap()
            .unwrap();
        if n == 0 || b[0] == b'\n' {
            break;
        }
        line.push(b[0]);
    }
    (s, String::from_utf8(line).unwrap())
}

async fn echo_through(s: &mut tokio::net::TcpStream, data: &[u8]) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(data).await.unwrap();
    let mut back = vec![0u8; data.len()];
    tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut back))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back, data);
}

fn stream_body(port: u16, protocol: &str, upstream: u16) -> Value {
    json!({
        "incoming_port": port,
        "bind_address": "127.0.0.1",
        "protocol": protocol,
        "upstreams": [{"host": "127.0.0.1", "port": upstream, "weight": 1}],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_start_change_and_stop_within_the_request() {
    let ppm = Ppm::start(true).await;
    let t = ppm.admin_token().await;
    let a = tagged_upstream("a").await;
    let b = tagged_upstream("b").await;
    let port = free_port().unwrap();

    // Create: the listener is bound when the API answers.
    let r = ppm
        .call(
            "POST",
            "/api/streams",
            Some(&t),
            Some(stream_body(port, "tcp", a)),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["id"].as_i64().unwrap();
    let (mut old, tag) = stream_tag(port).await;
    assert_eq!(tag, "a");
    let st = ppm.call("GET", "/api/streams/status", Some(&t), None).await;
    assert_eq!(st.status, 200, "{}", st.text());
    assert_eq!(st.json()[0]["id"], id);
    assert_eq!(st.json()[0]["listeners"][0]["listening"], true);

    // Change the upstream: new connections reach b, the open one stays on a.
    let r = ppm
        .call(
            "PUT",
            &format!("/api/streams/{id}"),
            Some(&t),
            Some(stream_body(port, "tcp", b)),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let (mut new, tag) = stream_tag(port).await;
    assert_eq!(tag, "b");
    echo_through(&mut old, b"the old connection keeps working").await;
    echo_through(&mut new, b"and so does the new one").await;

    // A port another program holds: 409 naming the field, nothing stored,
    // the running stream untouched.
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = held.local_addr().unwrap().port();
    let r = ppm
        .call(
            "POST",
            "/api/streams",
            Some(&t),
            Some(stream_body(taken, "tcp", a)),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "port_in_use");
    assert_eq!(field_paths(&r), vec!["incoming_port"]);
    assert!(r.text().contains(&taken.to_string()), "{}", r.text());
    let r = ppm
        .call(
            "PUT",
            &format!("/api/streams/{id}"),
            Some(&t),
            Some(stream_body(taken, "tcp", a)),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.text());
    let list = ppm.call("GET", "/api/streams", Some(&t), None).await.json();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["incoming_port"], port);
    assert_eq!(list[0]["upstreams"][0]["port"], b);
    let (_c, tag) = stream_tag(port).await;
    assert_eq!(tag, "b");
    drop(held);

    // ppm-server's own port: 422 naming the field.
    let r = ppm
        .call(
            "POST",
            "/api/streams",
            Some(&t),
            Some(stream_body(ppm.http.port(), "tcp", a)),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(field_paths(&r), vec!["incoming_port"]);

    // A privileged port, when this process may not bind one.
    if matches!(
        std::net::TcpListener::bind("127.0.0.1:1"),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied
    ) {
        let r = ppm
            .call(
                "POST",
                "/api/streams",
                Some(&t),
                Some(stream_body(1, "tcp", a)),
            )
            .await;
        assert_eq!(r.status, 422, "{}", r.text());
        assert_eq!(r.json()["error"]["code"], "cannot_listen");
        assert!(r.text().contains("privileged"), "{}", r.text());
    }

    // UDP through the API.
    let udp_up = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let udp_port = udp_up.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65_536];
        while let Ok((n, from)) = udp_up.recv_from(&mut buf).await {
            let _ = udp_up.send_to(&buf[..n], from).await;
        }
    });
    let uport = free_port().unwrap();
    let r = ppm
        .call(
            "POST",
            "/api/streams",
            Some(&t),
            Some(stream_body(uport, "udp", udp_port)),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let uid = r.json()["id"].as_i64().unwrap();
    let c = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    c.connect(("127.0.0.1", uport)).await.unwrap();
    let mut buf = [0u8; 64];
    let mut answered = false;
    for _ in 0..5 {
        c.send(b"datagram").await.unwrap();
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(1), c.recv(&mut buf)).await {
            assert_eq!(&buf[..n], b"datagram");
            answered = true;
            break;
        }
    }
    assert!(answered);

    // Delete: the listener is gone when the API answers.
    let r = ppm
        .call("DELETE", &format!("/api/streams/{id}"), Some(&t), None)
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert!(tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err());
    let r = ppm
        .call("DELETE", &format!("/api/streams/{uid}"), Some(&t), None)
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    // The UDP port is free again.
    drop(std::net::UdpSocket::bind(("127.0.0.1", uport)).unwrap());
    let st = ppm.call("GET", "/api/streams/status", Some(&t), None).await;
    assert_eq!(st.json(), json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_start_from_the_store_and_report_bind_failures() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let a = tagged_upstream("a").await;
    let (p1, p2) = (free_port().unwrap(), free_port().unwrap());
    {
        let mut ppm = Ppm::start_in(&data, true, tmp.path().join("log1")).await;
        let t = ppm.admin_token().await;
        for p in [p1, p2] {
            let r = ppm
                .call(
                    "POST",
                    "/api/streams",
                    Some(&t),
                    Some(stream_body(p, "tcp", a)),
                )
                .await;
            assert_eq!(r.status, 201, "{}", r.text());
        }
        ppm.signal("INT");
        assert!(ppm.wait_exit(Duration::from_secs(20)).is_some());
    }
    // Another program takes p2 while ppm-server is down.
    let held = std::net::TcpListener::bind(("127.0.0.1", p2)).unwrap();
    let ppm = Ppm::start_in(&data, true, tmp.path().join("log2")).await;
    let t = ppm.admin_token().await;
    let (_c, tag) = stream_tag(p1).await;
    assert_eq!(tag, "a");
    let st = ppm
        .call("GET", "/api/streams/status", Some(&t), None)
        .await
        .json();
    assert_eq!(st[0]["listeners"][0]["listening"], true);
    assert_eq!(st[1]["listeners"][0]["listening"], false);
    let err = st[1]["listeners"][0]["error"].as_str().unwrap();
    assert!(err.contains("already in use"), "{err}");
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_terminate_tls_with_a_stored_certificate() {
    use ppm_core::testing::tls_connect;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ppm = Ppm::start(true).await;
    let t = ppm.admin_token().await;
    let tok = Some(t.as_str());
    let day = 86_400;
    let (_, _, ca) = issue(&["stream CA"], now() - day, now() + 30 * day, None, true);
    let (leaf, key, _) = issue(
        &["db.test"],
        now() - day,
        now() + 20 * day,
        Some(&ca),
        false,
    );
    let r = ppm
        .call(
            "POST",
            "/api/certificates",
            tok,
            Some(json!({"source": "upload", "certificate_pem": leaf, "private_key_pem": key})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let cert_id = r.json()["id"].as_i64().unwrap();
    let fp = r.json()["fingerprint_sha256"].as_str().unwrap().to_string();

    // Plain echo upstream (no tag line): bytes come back as sent.
    let echo = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let echo_port = echo.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = echo.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });

    // Refused with a field error: a certificate that does not exist, and a
    // certificate on UDP or TCP+UDP streams. Nothing is stored or bound.
    let port = free_port().unwrap();
    for (protocol, cert, needle) in [
        ("tcp", 9999, "does not exist"),
        ("udp", cert_id, "TCP streams only"),
        ("both", cert_id, "TCP streams only"),
    ] {
        let mut body = stream_body(port, protocol, echo_port);
        body["certificate_id"] = json!(cert);
        let r = ppm.call("POST", "/api/streams", tok, Some(body)).await;
        assert_eq!(r.status, 422, "{}", r.text());
        assert_eq!(field_paths(&r), ["certificate_id"], "{}", r.text());
        assert!(r.text().contains(needle), "{}", r.text());
    }
    assert_eq!(
        ppm.call("GET", "/api/streams", tok, None).await.json(),
        json!([])
    );
    drop(std::net::TcpListener::bind(("127.0.0.1", port)).unwrap());

    // TLS client -> stream -> plain upstream, byte-exact, with the stored
    // certificate and its chain.
    let mut body = stream_body(port, "tcp", echo_port);
    body["certificate_id"] = json!(cert_id);
    let r = ppm.call("POST", "/api/streams", tok, Some(body)).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["certificate_id"], cert_id);
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let (peer, mut old) = tls_connect(addr, Some("db.test"), &[], None).await.unwrap();
    assert_eq!(
        (peer.fingerprint.as_str(), peer.chain_len),
        (fp.as_str(), 2)
    );
    for i in 0..50usize {
        let data: Vec<u8> = (0..(1 + i * 1000)).map(|j| (j * 31 + i) as u8).collect();
        old.write_all(&data).await.unwrap();
        let mut back = vec![0u8; data.len()];
        tokio::time::timeout(Duration::from_secs(10), old.read_exact(&mut back))
            .await
            .unwrap()
            .unwrap();
        assert!(back == data, "round trip {i} differs");
    }
    let st = ppm
        .call("GET", "/api/streams/status", tok, None)
        .await
        .json();
    assert_eq!(st[0]["tls"]["certificate_id"], cert_id);
    assert_eq!(st[0]["tls"]["issued"], true);
    assert_eq!(st[0]["tls"]["fingerprint"], fp.as_str());

    // The certificate is in use: deleting it is a conflict; its details
    // name the stream.
    let r = ppm
        .call("DELETE", &format!("/api/certificates/{cert_id}"), tok, None)
        .await;
    assert_eq!(r.status, 409, "{}", r.text());
    let r = ppm
        .call("GET", &format!("/api/certificates/{cert_id}"), tok, None)
        .await;
    assert!(
        r.json()["used_by"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["kind"] == "stream"),
        "{}",
        r.text()
    );

    // Replacing the certificate's PEMs is served from the next handshake;
    // the open session keeps working.
    let (leaf2, key2, _) = issue(
        &["db.test"],
        now() - day,
        now() + 60 * day,
        Some(&ca),
        false,
    );
    let r = ppm
        .call(
            "PUT",
            &format!("/api/certificates/{cert_id}"),
            tok,
            Some(json!({"certificate_pem": leaf2, "private_key_pem": key2})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let fp2 = r.json()["fingerprint_sha256"].as_str().unwrap().to_string();
    assert_ne!(fp, fp2);
    let (peer, _new) = tls_connect(addr, Some("db.test"), &[], None).await.unwrap();
    assert_eq!(peer.fingerprint, fp2);
    old.write_all(b"old session").await.unwrap();
    let mut back = [0u8; 11];
    tokio::time::timeout(Duration::from_secs(10), old.read_exact(&mut back))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&back, b"old session");
}

/// Requests summed over a series' points.
async fn series_sum(ppm: &Ppm, token: &str, q: &str) -> u64 {
    let r = ppm.call("GET", q, Some(token), None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["requests"].as_u64().unwrap())
        .sum()
}

/// The value of the sample `name` whose labels include `labels`.
fn metric(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(k).is_some_and(|x| x == *v))
        })
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_stats_metrics_and_access_logs() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let logs = tmp.path().join("logs");
    let access = logs.join("access.log");
    let env = [
        ("PPM_METRICS_TOKEN", "metrics-token-0123456789"),
        ("PPM_ACCESS_LOG", access.to_str().unwrap()),
        ("PPM_ACCESS_LOG_MAX_SIZE", "8192"),
        ("PPM_ACCESS_LOG_KEEP", "3"),
        ("PPM_STATS_INTERVAL", "3600"),
    ];
    let mut ppm = Ppm::start_env(&data, true, tmp.path().join("log1"), &env).await;
    let token = ppm.admin_token().await;
    let up = EchoUpstream::start("stats").await.unwrap();
    let r = ppm
        .call(
            "POST",
            "/api/proxy-hosts",
            Some(&token),
            Some(host_body(&["app.test"], up.port())),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["id"].as_i64().unwrap();

    // A bounded load: 30 answers (5 of them 500s) and 3 unknown hosts.
    let mut received = 0u64;
    for i in 0..30 {
        let path = if i % 6 == 5 {
            "/status/500".to_string()
        } else {
            format!("/page/{i}")
        };
        let r = ppm.proxy_get("app.test", &path).await;
        received += r.body.len() as u64;
    }
    for _ in 0..3 {
        assert_eq!(ppm.proxy_get("nobody.test", "/").await.status, 404);
    }

    let summary = || async {
        let r = ppm
            .call("GET", "/api/stats/summary?top=5", Some(&token), None)
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let s = loop {
        let s = summary().await;
        if s["since_start"]["requests"] == 33 && s["active_requests"] == 0 {
            break s;
        }
        assert!(Instant::now() < deadline, "counters never reached 33: {s}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(s["since_start"]["status_2xx"], 25);
    assert_eq!(s["since_start"]["status_5xx"], 5);
    assert_eq!(s["since_start"]["status_4xx"], 3);
    let top = &s["top_hosts_by_requests"][0];
    assert_eq!(
        (top["kind"].as_str(), top["id"].as_i64()),
        (Some("proxy"), Some(id))
    );
    assert_eq!(top["name"], "app.test");
    assert_eq!(top["requests"], 30);
    assert_eq!(top["bytes_out"].as_u64(), Some(received));
    assert_eq!(s["top_hosts_by_errors"][0]["errors"], 5);
    assert_eq!(s["access_log"]["enabled"], true);
    assert_eq!(s["series_available"], true);

    // /metrics: refused without a token, parsed as a scraper would.
    let r = send(ppm.api, "GET", "/metrics", &[("host", "ppm.test")], b"")
        .await
        .unwrap();
    assert_eq!(r.status, 401);
    let r = send(
        ppm.api,
        "GET",
        "/metrics",
        &[
            ("host", "ppm.test"),
            ("authorization", "Bearer metrics-token-0123456789"),
        ],
        b"",
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let scrape =
        prometheus_parse::Scrape::parse(r.text().lines().map(|l| Ok(l.to_string()))).unwrap();
    let host = [("host", "app.test"), ("kind", "proxy")];
    assert_eq!(
        metric(&scrape, "ppm_http_requests_total", &host),
        Some(30.0)
    );
    let class = |c: &'static str| {
        metric(
            &scrape,
            "ppm_http_responses_total",
            &[("host", "app.test"), ("status_class", c)],
        )
    };
    assert_eq!((class("2xx"), class("5xx")), (Some(25.0), Some(5.0)));
    assert_eq!(
        metric(&scrape, "ppm_http_response_body_bytes_total", &host),
        Some(received as f64)
    );
    let upstream = format!("127.0.0.1:{}", up.port());
    assert_eq!(
        metric(
            &scrape,
            "ppm_upstream_requests_total",
            &[("upstream", &upstream)]
        ),
        Some(30.0)
    );
    assert_eq!(
        metric(&scrape, "ppm_upstream_up", &[("upstream", &upstream)]),
        Some(1.0)
    );
    assert_eq!(metric(&scrape, "ppm_build_info", &[]), Some(1.0));
    assert!(metric(&scrape, "process_resident_memory_bytes", &[]).unwrap() > 0.0);
    let hist = scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == "ppm_http_request_duration_seconds"
                && s.labels.get("host") == Some("app.test")
        })
        .unwrap();
    match &hist.value {
        prometheus_parse::Value::Histogram(b) => {
            assert_eq!(b.last().unwrap().count, 30.0);
        }
        v => panic!("not a histogram: {v:?}"),
    }

    // The access log: a line per request, through the rotated files.
    let get_logs = |q: String| {
        let ppm = &ppm;
        let token = token.clone();
        async move {
            let r = ppm.call("GET", &q, Some(&token), None).await;
            assert_eq!(r.status, 200, "{q}: {}", r.text());
            r.json()["entries"].as_array().unwrap().clone()
        }
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n = get_logs("/api/logs/access?limit=1000".into()).await.len();
        if n == 33 {
            break;
        }
        assert!(Instant::now() < deadline, "{n} access log lines");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(logs.join("access.log.1").exists(), "8 KiB files rotate");
    let app = get_logs("/api/logs/access?host=app.test&limit=1000".into()).await;
    assert_eq!(app.len(), 30);
    assert_eq!(
        (app[0]["path"].as_str(), app[0]["status"].as_u64()),
        (Some("/status/500"), Some(500))
    );
    let newest = &app[1];
    assert_eq!(newest["method"], "GET");
    assert_eq!(newest["path"], "/page/28");
    assert_eq!(newest["status"], 200);
    assert_eq!(newest["client_ip"], "127.0.0.1");
    assert_eq!(newest["kind"], "proxy");
    assert_eq!(newest["host_id"].as_i64(), Some(id));
    assert_eq!(newest["upstream"], upstream.as_str());
    assert!(newest["duration_ms"].as_f64().unwrap() >= newest["upstream_ms"].as_f64().unwrap());
    let sum: u64 = app.iter().map(|e| e["bytes_out"].as_u64().unwrap()).sum();
    assert_eq!(sum, received);
    let fives = get_logs("/api/logs/access?status=5xx".into()).await;
    assert_eq!(fives.len(), 5);
    assert!(fives.iter().all(|e| e["path"] == "/status/500"));
    assert_eq!(
        get_logs("/api/logs/access?status=404".into()).await.len(),
        3
    );
    assert_eq!(
        get_logs("/api/logs/access?q=PAGE/1&limit=1000".into())
            .await
            .len(),
        9
    );
    assert_eq!(get_logs("/api/logs/access?limit=2".into()).await.len(), 2);
    let future = now() + 3600;
    assert!(get_logs(format!("/api/logs/access?since={future}"))
        .await
        .is_empty());
    let errors = get_logs("/api/logs/errors".into()).await;
    assert_eq!(errors.len(), 5);
    let r = ppm
        .call("GET", "/api/logs/access?status=abc", Some(&token), None)
        .await;
    assert_eq!(r.status, 422);

    // Rotation keeps three old files and no more.
    for i in 0..150 {
        ppm.proxy_get("app.test", &format!("/more/{i}")).await;
    }
    let rotated_enough = wait_until(Duration::from_secs(10), || async {
        logs.join("access.log.3").exists()
    })
    .await;
    assert!(rotated_enough);
    assert!(!logs.join("access.log.4").exists());
    for f in ["access.log", "access.log.1", "access.log.2", "access.log.3"] {
        assert!(
            std::fs::metadata(logs.join(f)).unwrap().len() <= 8192,
            "{f}"
        );
    }

    // A rollup now, then the series of the host has every request.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = summary().await;
        if s["since_start"]["requests"] == 183 && s["active_requests"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "counters never reached 183: {s}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = ppm
        .call("POST", "/api/stats/rollup", Some(&token), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let from = now() - 600;
    let series_q = format!("/api/stats/hosts/{id}?from={from}&step=60");
    assert_eq!(series_sum(&ppm, &token, &series_q).await, 180);
    let r = ppm
        .call("GET", "/api/stats/hosts/1?step=7", Some(&token), None)
        .await;
    assert_eq!(r.status, 422);

    // Totals and series survive a restart.
    ppm.signal("TERM");
    assert!(ppm.wait_exit(Duration::from_secs(20)).is_some());
    let ppm = Ppm::start_env(&data, true, tmp.path().join("log2"), &env).await;
    let token = ppm.admin_token().await;
    let r = ppm
        .call("GET", "/api/stats/summary", Some(&token), None)
        .await;
    let s = r.json();
    assert_eq!(s["since_start"]["requests"], 0, "{s}");
    assert_eq!(s["totals"]["requests"], 183, "{s}");
    assert_eq!(s["top_hosts_by_requests"][0]["requests"], 180);
    // One node, this one (its id kept in the data directory), holds them.
    let me = s["node_id"].as_str().unwrap();
    assert!(me.starts_with("node-"), "{s}");
    assert_eq!(s["nodes"].as_array().unwrap().len(), 1, "{s}");
    assert_eq!(s["nodes"][0]["node_id"], me);
    assert_eq!(s["nodes"][0]["this_node"], true);
    assert_eq!(s["nodes"][0]["totals"]["requests"], 183);
    assert!(s["nodes"][0]["last_rollup"].as_i64().unwrap() > 0, "{s}");
    assert_eq!(series_sum(&ppm, &token, &series_q).await, 180);
    let r = ppm.call("GET", &series_q, Some(&token), None).await;
    let v = r.json();
    assert_eq!(v["nodes"][0]["node_id"], me, "{v}");
    assert_eq!(v["nodes"][0]["totals"]["requests"], 180, "{v}");
    let r = ppm.call("GET", "/api/openapi.json", None, None).await;
    let paths = r.json()["paths"].as_object().unwrap().clone();
    for p in [
        "/api/stats/summary",
        "/api/stats/hosts/{id}",
        "/api/stats/upstreams/{upstream}",
        "/api/stats/streams/{id}",
        "/api/stats/rollup",
        "/api/logs/access",
        "/api/logs/errors",
        "/metrics",
    ] {
        assert!(
            paths.contains_key(p),
            "{p} missing from the OpenAPI document"
        );
    }
}
