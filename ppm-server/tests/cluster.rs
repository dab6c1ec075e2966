//! Several ppm-server processes on one PostgreSQL database: a write through
//! one node is served by the others, and a database outage leaves every
//! node serving while writes fail fast with 503.
//!
//! The convergence test uses the server named by `PPM_TEST_POSTGRES_URL`
//! (a fresh database per test, dropped after); the outage test starts a
//! private PostgreSQL instance (`initdb`/`pg_ctl` from
//! `/usr/lib/postgresql/*/bin`) on a free port, so stopping it disturbs no
//! one else. Without them the tests say they are skipped.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ppm_core::testing::{free_port, send, EchoUpstream, TestResponse};
use serde_json::{json, Value};

const ADMIN: &str = "admin@example.test";
const ADMIN_PW: &str = "a-long-admin-password";
const PG_ENV: &str = "PPM_TEST_POSTGRES_URL";

/// One ppm-server process.
struct Node {
    child: Option<Child>,
    api: SocketAddr,
    http: SocketAddr,
    log: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Node {
    async fn start(database_url: &str) -> Node {
        Node::start_with(database_url, &[]).await
    }

    async fn start_with(database_url: &str, env: &[(&str, &str)]) -> Node {
        let tmp = tempfile::tempdir().unwrap();
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
        let log = tmp.path().join("log");
        let child = Command::new(env!("CARGO_BIN_EXE_ppm-server"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PPM_DATA_DIR", tmp.path().join("data"))
            .env("PPM_DATABASE_URL", database_url)
            .env("PPM_API_LISTEN", api.to_string())
            .env("PPM_HTTP_LISTEN", http.to_string())
            .env("PPM_HTTPS_LISTEN", format!("127.0.0.1:{}", ports[2]))
            .env("PPM_GRACE_PERIOD", "1")
            .env("PPM_ADMIN_EMAIL", ADMIN)
            .env("PPM_ADMIN_PASSWORD", ADMIN_PW)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut node = Node {
            child: Some(child),
            api,
            http,
            log,
            _tmp: tmp,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let up = send(api, "GET", "/api/health", &[], b"").await;
            if up.is_ok_and(|r| r.status == 200) {
                break;
            }
            let exited = node.child.as_mut().unwrap().try_wait().unwrap();
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "ppm-server did not come up ({exited:?}); log:\n{}",
                node.log_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        node
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
        let body = json!({"email": ADMIN, "password": ADMIN_PW}).to_string();
        let r = send(
            self.api,
            "POST",
            "/api/auth/login",
            &[("host", "ppm.test"), ("content-type", "application/json")],
            body.as_bytes(),
        )
        .await
        .unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["token"].as_str().unwrap().to_string()
    }

    async fn serves(&self, host: &str) -> bool {
        send(self.http, "GET", "/", &[("host", host)], b"")
            .await
            .is_ok_and(|r| r.status == 200)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn host_body(name: &str, port: u16) -> Value {
    json!({
        "domain_names": [name],
        "upstreams": [{"host": "127.0.0.1", "port": port, "weight": 1}],
    })
}

/// A fresh database on the test server, dropped with the value.
struct TestDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl TestDatabase {
    async fn create(test: &str) -> Option<TestDatabase> {
        let Ok(admin_url) = std::env::var(PG_ENV) else {
            eprintln!(
                "skipped {test}: {PG_ENV} is not set, so there is no PostgreSQL server to \
                 test against (.ci/run sets it to postgres://postgres@127.0.0.1:5432/test)"
            );
            return None;
        };
        let name = format!(
            "ppm_cluster_{}_{}",
            std::process::id(),
            free_port().unwrap()
        );
        psql(&admin_url, &format!("CREATE DATABASE {name}")).await;
        let base = admin_url.rsplit_once('/').unwrap().0;
        let url = format!("{base}/{name}");
        Some(TestDatabase {
            admin_url,
            name,
            url,
        })
    }

    async fn drop_now(self) {
        psql(
            &self.admin_url,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        )
        .await;
    }
}

async fn psql(url: &str, sql: &str) {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Writes `changes` hosts through `nodes[0]` and returns, per change, the
/// time from sending the write until every other node serves the host.
async fn converge(nodes: &[Node], token: &str, changes: usize, port: u16) -> Vec<Duration> {
    let mut times = Vec::with_capacity(changes);
    for i in 0..changes {
        let name = format!("c{i}.cluster.test");
        let start = Instant::now();
        let r = nodes[0]
            .call(
                "POST",
                "/api/proxy-hosts",
                token,
                Some(host_body(&name, port)),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
        // The writing node answers after it applied the change.
        assert!(
            nodes[0].serves(&name).await,
            "the writing node serves {name}"
        );
        let deadline = start + Duration::from_secs(1);
        for n in &nodes[1..] {
            while !n.serves(&name).await {
                assert!(
                    Instant::now() < deadline,
                    "{name} was not served by every node within 1 s"
                );
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        times.push(start.elapsed());
    }
    times.sort();
    times
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_converge_within_a_second() {
    let Some(db) = TestDatabase::create("three_nodes_converge_within_a_second").await else {
        return;
    };
    let upstream = EchoUpstream::start("u").await.unwrap();
    let mut nodes = Vec::new();
    for id in ["node-a", "node-b", "node-c"] {
        let env = [("PPM_NODE_ID", id), ("PPM_NODE_HEARTBEAT", "1")];
        nodes.push(Node::start_with(&db.url, &env).await);
    }
    // One admin and one session secret for all: a session from A works on C.
    let token = nodes[0].token().await;
    let r = nodes[2].call("GET", "/api/proxy-hosts", &token, None).await;
    assert_eq!(r.status, 200, "{}", r.text());

    // Every node knows every node.
    let v = wait_for_nodes(&nodes[2], &token, |v| v["live"] == 3).await;
    let ids: Vec<&str> = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["node-a", "node-b", "node-c"], "{v}");
    assert_eq!(v["backend"], "postgres");
    assert_eq!(v["nodes"][2]["this_node"], true);
    assert_eq!(v["nodes"][0]["this_node"], false);
    assert!(v["nodes"][0]["listeners"][0]
        .as_str()
        .unwrap()
        .starts_with("api 127.0.0.1:"));

    // A conflict is checked across nodes.
    let r = nodes[1]
        .call(
            "POST",
            "/api/proxy-hosts",
            &token,
            Some(host_body("dup.cluster.test", upstream.port())),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = nodes[2]
        .call(
            "POST",
            "/api/proxy-hosts",
            &token,
            Some(host_body("dup.cluster.test", upstream.port())),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(r.json()["error"]["fields"][0]["path"], "domain_names[0]");

    let changes: usize = std::env::var("PPM_CLUSTER_CHANGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let times = converge(&nodes, &token, changes, upstream.port()).await;
    eprintln!(
        "convergence over {changes} changes, 3 nodes: p50 {:?}, p99 {:?}, max {:?}",
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        times[times.len() - 1]
    );

    // A write says how many live nodes serve it when it answers (at least
    // the writing node), and the node list shows the others catching up.
    let r = nodes[1]
        .call(
            "POST",
            "/api/proxy-hosts",
            &token,
            Some(host_body("applied.cluster.test", upstream.port())),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let applied = r.header("x-ppm-nodes-applied").unwrap().to_owned();
    let (n, of) = applied.split_once('/').unwrap();
    assert_eq!(of, "3", "{applied}");
    assert!((1..=3).contains(&n.parse::<u32>().unwrap()), "{applied}");
    eprintln!("x-ppm-nodes-applied on a write through node-b: {applied}");
    let latest = r.json()["id"].as_i64().unwrap();
    let v = wait_for_nodes(&nodes[0], &token, |v| v["applied"] == 3).await;
    assert!(v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .all(|n| n["applied_latest"] == true && n["revision"] == v["revision"]));
    assert!(latest > 0);

    // A node that stops is listed as not live after three heartbeats, and
    // writes count the live nodes only.
    let stopped = nodes.pop().unwrap();
    drop(stopped);
    let v = wait_for_nodes(&nodes[0], &token, |v| v["live"] == 2).await;
    assert_eq!(v["nodes"][2]["live"], false, "{v}");
    let r = nodes[0]
        .call(
            "POST",
            "/api/proxy-hosts",
            &token,
            Some(host_body("after-stop.cluster.test", upstream.port())),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert!(
        r.header("x-ppm-nodes-applied").unwrap().ends_with("/2"),
        "{:?}",
        r.header("x-ppm-nodes-applied")
    );
    drop(nodes);
    db.drop_now().await;
}

/// Polls `GET path` on `node` until `done` holds (10 s at most) and
/// returns the last answer.
async fn wait_for(node: &Node, token: &str, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = node.call("GET", path, token, None).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        let v = r.json();
        if done(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "{path} never matched: {v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// [`wait_for`] on the stats summary.
async fn wait_for_summary(node: &Node, token: &str, done: impl Fn(&Value) -> bool) -> Value {
    wait_for(node, token, "/api/stats/summary", done).await
}

/// [`wait_for`] on the node list.
async fn wait_for_nodes(node: &Node, token: &str, done: impl Fn(&Value) -> bool) -> Value {
    wait_for(node, token, "/api/cluster/nodes", done).await
}

/// `(node_id, requests, status_5xx)` of each node in a summary or series.
fn shares(v: &Value) -> Vec<(String, u64, u64)> {
    v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["node_id"].as_str().unwrap().to_owned(),
                n["totals"]["requests"].as_u64().unwrap(),
                n["totals"]["status_5xx"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn shares_of(list: &[(&str, u64, u64)]) -> Vec<(String, u64, u64)> {
    list.iter()
        .map(|(n, r, e)| ((*n).to_owned(), *r, *e))
        .collect()
}

/// Sends `n` requests to `host` through `node`'s proxy, the last
/// `errors` of them answered 500 by the upstream.
async fn load(node: &Node, host: &str, n: usize, errors: usize) {
    for i in 0..n {
        let (path, status) = if i >= n - errors {
            ("/status/500".to_owned(), 500)
        } else {
            (format!("/page/{i}"), 200)
        };
        let r = send(node.http, "GET", &path, &[("host", host)], b"")
            .await
            .unwrap();
        assert_eq!(r.status, status, "{}", r.text());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_record_statistics_and_every_node_sums_them() {
    let Some(db) =
        TestDatabase::create("two_nodes_record_statistics_and_every_node_sums_them").await
    else {
        return;
    };
    let upstream = EchoUpstream::start("u").await.unwrap();
    let mut nodes = Vec::new();
    for id in ["node-a", "node-b"] {
        // Rollups only when asked, so the test knows what each one holds.
        let env = [
            ("PPM_NODE_ID", id),
            ("PPM_NODE_HEARTBEAT", "1"),
            ("PPM_STATS_INTERVAL", "3600"),
        ];
        nodes.push(Node::start_with(&db.url, &env).await);
    }
    let (a, b) = (&nodes[0], &nodes[1]);
    let token = a.token().await;
    let r = a
        .call(
            "POST",
            "/api/proxy-hosts",
            &token,
            Some(host_body("stats.cluster.test", upstream.port())),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["id"].as_i64().unwrap();
    // Both serve the host (without sending requests that would count).
    wait_for_nodes(a, &token, |v| v["live"] == 2 && v["applied"] == 2).await;

    // 7 requests through node A, 4 through node B (one of them a 500).
    load(a, "stats.cluster.test", 7, 0).await;
    load(b, "stats.cluster.test", 4, 1).await;
    let idle =
        |n: u64| move |v: &Value| v["since_start"]["requests"] == n && v["active_requests"] == 0;
    let s = wait_for_summary(a, &token, idle(7)).await;
    // Before any rollup, A knows only its own counts.
    assert_eq!(s["node_id"], "node-a");
    assert_eq!(s["totals"]["requests"], 7, "{s}");
    assert_eq!(shares(&s), shares_of(&[("node-a", 7, 0)]), "{s}");
    assert_eq!(s["nodes"][0]["last_rollup"], Value::Null);
    wait_for_summary(b, &token, idle(4)).await;

    for (node, name) in [(a, "node-a"), (b, "node-b")] {
        let r = node.call("POST", "/api/stats/rollup", &token, None).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["node_id"], name);
        assert!(r.json()["series"].as_u64().unwrap() >= 2, "{}", r.text());
    }

    // Either node answers with the sum and each node's share.
    let from = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 600;
    let expected = shares_of(&[("node-a", 7, 0), ("node-b", 4, 1)]);
    for (node, me) in [(a, 0), (b, 1)] {
        let r = node
            .call(
                "GET",
                &format!("/api/stats/hosts/{id}?from={from}&step=60"),
                &token,
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        let points = v["points"].as_array().unwrap();
        let sum = |field: &str| {
            points
                .iter()
                .map(|p| p[field].as_u64().unwrap())
                .sum::<u64>()
        };
        assert_eq!((sum("requests"), sum("status_5xx")), (11, 1), "{v}");
        assert_eq!(v["node"], Value::Null);
        assert_eq!(shares(&v), expected, "{v}");
        assert_eq!(v["nodes"][me]["this_node"], true, "{v}");
        assert_eq!(v["nodes"][1 - me]["this_node"], false, "{v}");

        // One node's points.
        let r = node
            .call(
                "GET",
                &format!("/api/stats/hosts/{id}?from={from}&step=60&node=node-b"),
                &token,
                None,
            )
            .await;
        let v = r.json();
        let sum: u64 = v["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["requests"].as_u64().unwrap())
            .sum();
        assert_eq!((sum, v["node"].as_str()), (4, Some("node-b")), "{v}");
        assert_eq!(shares(&v), expected, "{v}");

        // The upstream's series too.
        let r = node
            .call(
                "GET",
                &format!(
                    "/api/stats/upstreams/127.0.0.1:{}?from={from}&step=60",
                    upstream.port()
                ),
                &token,
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(shares(&r.json()), expected, "{}", r.text());

        let s = wait_for_summary(node, &token, |_| true).await;
        assert_eq!(s["totals"]["requests"], 11, "{s}");
        assert_eq!(s["totals"]["status_5xx"], 1, "{s}");
        assert_eq!(s["top_hosts_by_requests"][0]["requests"], 11, "{s}");
        assert_eq!(s["top_hosts_by_errors"][0]["errors"], 1, "{s}");
        assert_eq!(shares(&s), expected, "{s}");
        assert_eq!(s["nodes"][me]["this_node"], true, "{s}");
        assert!(s["nodes"][0]["last_rollup"].as_i64().unwrap() > 0, "{s}");
    }

    // Two more through A, not rolled up yet: A counts them at once, B once
    // A rolls up.
    load(a, "stats.cluster.test", 2, 0).await;
    let s = wait_for_summary(a, &token, idle(9)).await;
    assert_eq!(s["totals"]["requests"], 13, "{s}");
    assert_eq!(shares(&s), shares_of(&[("node-a", 9, 0), ("node-b", 4, 1)]));
    let s = wait_for_summary(b, &token, |_| true).await;
    assert_eq!(s["totals"]["requests"], 11, "{s}");
    let r = a.call("POST", "/api/stats/rollup", &token, None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let s = wait_for_summary(b, &token, |_| true).await;
    assert_eq!(s["totals"]["requests"], 13, "{s}");
    assert_eq!(shares(&s), shares_of(&[("node-a", 9, 0), ("node-b", 4, 1)]));

    drop(nodes);
    db.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_refuses_writes_and_restarts_after_a_newer_migration() {
    let Some(db) =
        TestDatabase::create("a_node_refuses_writes_and_restarts_after_a_newer_migration").await
    else {
        return;
    };
    let upstream = EchoUpstream::start("u").await.unwrap();
    let node = Node::start(&db.url).await;
    let token = node.token().await;
    let r = node
        .call(
            "POST",
            "/api/proxy-hosts",
            &token,
            Some(host_body("old.test", upstream.port())),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());

    // A newer ppm migrates the shared database while this node runs.
    psql(
        &db.url,
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (99990001, 'from the future', true, '\\x00', 0)",
    )
    .await;
    let r = node
        .call(
            "POST",
            "/api/proxy-hosts",
            &token,
            Some(host_body("new.test", upstream.port())),
        )
        .await;
    assert_eq!(r.status, 503, "{}", r.text());
    let msg = r.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(
        msg.contains("schema version 99990001") && msg.contains("upgrade this node"),
        "{msg}"
    );
    eprintln!("write on an older node: 503 {msg}");
    // It keeps serving what it had.
    assert!(node.serves("old.test").await);
    assert!(!node.serves("new.test").await);

    // An older node does not start on it.
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ppm-server"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PPM_DATA_DIR", tmp.path())
        .env("PPM_DATABASE_URL", &db.url)
        .env(
            "PPM_API_LISTEN",
            format!("127.0.0.1:{}", free_port().unwrap()),
        )
        .env(
            "PPM_HTTP_LISTEN",
            format!("127.0.0.1:{}", free_port().unwrap()),
        )
        .env(
            "PPM_HTTPS_LISTEN",
            format!("127.0.0.1:{}", free_port().unwrap()),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("schema version 99990001") && err.contains("upgrade ppm"),
        "{err}"
    );
    drop(node);
    db.drop_now().await;
}

/// A private PostgreSQL instance in a temporary directory.
struct PrivatePostgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
}

impl PrivatePostgres {
    fn start(test: &str) -> Option<PrivatePostgres> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|d| d.filter_map(Result::ok).map(|e| e.path().join("bin")).max())
            .filter(|b| b.join("initdb").exists());
        let Some(bin) = bin else {
            eprintln!("skipped {test}: no initdb under /usr/lib/postgresql/*/bin");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        // initdb refuses to run as root: run it as `postgres` then.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let pg = PrivatePostgres {
            bin,
            dir,
            port: free_port().unwrap(),
        };
        let data = pg.data();
        let ok = pg
            .command("initdb")
            .args([
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(ok.success(), "initdb failed");
        pg.pg_ctl("start");
        Some(pg)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn command(&self, program: &str) -> Command {
        let is_root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
        let path = self.bin.join(program);
        if is_root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    fn pg_ctl(&self, action: &str) {
        let data = self.data();
        let sock: &Path = self.dir.path();
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            sock.display()
        );
        let mut c = self.command("pg_ctl");
        c.args(["-D", data.to_str().unwrap(), "-w", "-t", "60"]);
        if action == "start" {
            c.args(["-o", &opts, "-l"])
                .arg(self.dir.path().join("log"))
                .arg("start");
        } else {
            c.args(["-m", "fast", "stop"]);
        }
        let ok = c.stdout(Stdio::null()).status().unwrap();
        assert!(ok.success(), "pg_ctl {action} failed");
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let mut c = self.command("pg_ctl");
        let _ = c
            .args([
                "-D",
                self.data().to_str().unwrap(),
                "-m",
                "immediate",
                "stop",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_outage_keeps_serving_and_writes_fail_fast() {
    let Some(pg) = PrivatePostgres::start("database_outage_keeps_serving_and_writes_fail_fast")
    else {
        return;
    };
    let upstream = EchoUpstream::start("u").await.unwrap();
    let a = Node::start(&pg.url()).await;
    let b = Node::start(&pg.url()).await;
    let token = a.token().await;
    let r = a
        .call(
            "POST",
            "/api/proxy-hosts",
            &token,
            Some(host_body("before.test", upstream.port())),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let deadline = Instant::now() + Duration::from_secs(5);
    while !b.serves("before.test").await {
        assert!(Instant::now() < deadline, "b never served before.test");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    pg.pg_ctl("stop");
    // Both nodes keep serving the last config.
    for _ in 0..20 {
        assert!(a.serves("before.test").await && b.serves("before.test").await);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Writes fail fast with a 503 that says why.
    for node in [&a, &b] {
        let start = Instant::now();
        let r = node
            .call(
                "POST",
                "/api/proxy-hosts",
                &token,
                Some(host_body("during.test", upstream.port())),
            )
            .await;
        let took = start.elapsed();
        assert_eq!(r.status, 503, "{}", r.text());
        assert_eq!(r.json()["error"]["code"], "unavailable", "{}", r.text());
        let msg = r.json()["error"]["message"].as_str().unwrap().to_owned();
        assert!(msg.contains("database"), "{msg}");
        assert!(took < Duration::from_secs(10), "the write took {took:?}");
        eprintln!("write during the outage: 503 after {took:?}: {msg}");
    }
    assert!(a.serves("before.test").await && b.serves("before.test").await);
    assert!(!a.serves("during.test").await && !b.serves("during.test").await);

    pg.pg_ctl("start");
    // Writes work again by themselves, and every node converges.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = b
            .call(
                "POST",
                "/api/proxy-hosts",
                &token,
                Some(host_body("after.test", upstream.port())),
            )
            .await;
        if r.status == 201 {
            break;
        }
        assert_eq!(r.status, 503, "{}", r.text());
        assert!(
            Instant::now() < deadline,
            "writes did not recover: {}",
            r.text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(a.serves("after.test").await && b.serves("after.test").await) {
        assert!(
            Instant::now() < deadline,
            "the nodes did not converge after the outage; a log:\n{}",
            a.log_text()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(a.serves("before.test").await);

    // Rollups work again and hold every request, those of the outage too.
    for node in [&a, &b] {
        let r = node.call("POST", "/api/stats/rollup", &token, None).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let sa = wait_for_summary(&a, &token, |s| s["active_requests"] == 0).await;
    let sb = wait_for_summary(&b, &token, |s| s["active_requests"] == 0).await;
    let (na, nb) = (
        sa["since_start"]["requests"].as_u64().unwrap(),
        sb["since_start"]["requests"].as_u64().unwrap(),
    );
    for s in [&sa, &sb] {
        assert_eq!(s["totals"]["requests"].as_u64(), Some(na + nb), "{s}");
        let mut shares: Vec<u64> = s["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["totals"]["requests"].as_u64().unwrap())
            .collect();
        shares.sort_unstable();
        let mut want = vec![na, nb];
        want.sort_unstable();
        assert_eq!(shares, want, "{s}");
    }
}
