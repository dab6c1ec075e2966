//! Runs every example program as a child process on ephemeral ports, against
//! real upstreams, and checks the answers its header documents.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use ppm_core::testing::{free_port, send, EchoUpstream, TestResponse};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::TcpStream;
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// How long a program may take to start listening (a cold, busy machine).
const START_DEADLINE: Duration = Duration::from_secs(60);
/// How long a program may take to print an expected line.
const LINE_DEADLINE: Duration = Duration::from_secs(20);

/// A running example program, killed on drop.
struct Example {
    name: &'static str,
    child: Child,
    addr: SocketAddr,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Example {
    /// Starts `bin` listening on a free port with `UPSTREAM=upstream`, and
    /// waits until it accepts connections (or fails if it exits first).
    async fn start(name: &'static str, bin: &str, upstream: SocketAddr) -> Example {
        let addr: SocketAddr = ([127, 0, 0, 1], free_port().unwrap()).into();
        let mut child = Command::new(bin)
            .env("LISTEN", addr.to_string())
            .env("UPSTREAM", upstream.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: cannot start {bin}: {e}"));
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if TcpStream::connect(addr).await.is_ok() {
                break;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("{name} exited before listening on {addr}: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "{name} did not listen on {addr} within {START_DEADLINE:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Example {
            name,
            child,
            addr,
            stdin,
            stdout,
        }
    }

    /// Sends `method /` with `Host: localhost` and `headers`.
    async fn request(&self, method: &str, headers: &[(&str, &str)]) -> TestResponse {
        let mut all = vec![("host", "localhost")];
        all.extend_from_slice(headers);
        send(self.addr, method, "/", &all, b"")
            .await
            .unwrap_or_else(|e| panic!("{}: {method} / failed: {e}", self.name))
    }

    /// Writes one line to the program's stdin.
    async fn type_line(&mut self, line: &str) {
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
        self.stdin.flush().await.unwrap();
    }

    /// Reads stdout until a line starts with `prefix`; returns that line.
    async fn expect_line(&mut self, prefix: &str) -> String {
        let name = self.name;
        let wait = async {
            while let Some(line) = self.stdout.next_line().await.unwrap() {
                if line.starts_with(prefix) {
                    return line;
                }
            }
            panic!("{name} closed stdout before printing {prefix:?}");
        };
        tokio::time::timeout(LINE_DEADLINE, wait)
            .await
            .unwrap_or_else(|_| panic!("{name} did not print {prefix:?} within {LINE_DEADLINE:?}"))
    }

    /// Kills the program and reaps it.
    async fn stop(mut self) {
        self.child.kill().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_gateway_checks_the_api_key_and_adds_the_header() {
    let upstream = EchoUpstream::start("echo").await.unwrap();
    let gw = Example::start(
        "custom_gateway",
        env!("CARGO_BIN_EXE_custom_gateway"),
        upstream.addr,
    )
    .await;

    // $ curl -i http://localhost:8080/  ->  401, "missing or wrong X-Api-Key"
    let r = gw.request("GET", &[]).await;
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(r.text(), "missing or wrong X-Api-Key\n");
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.header("x-served-by"), Some("ppm"), "{r:?}");

    let r = gw.request("GET", &[("x-api-key", "wrong")]).await;
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(upstream.hits(), 0, "refused requests reached the upstream");

    // $ curl -i -H 'X-Api-Key: secret' http://localhost:8080/  ->  200 from the upstream
    let r = gw.request("GET", &[("x-api-key", "secret")]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("x-served-by"), Some("ppm"), "{r:?}");
    let echo = r.json();
    assert_eq!(echo["upstream"], "echo", "{r:?}");
    assert_eq!(echo["method"], "GET");
    assert_eq!(echo["path"], "/");
    assert_eq!(upstream.hits(), 1);

    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_filter_lets_get_through_and_refuses_delete() {
    let upstream = EchoUpstream::start("echo").await.unwrap();
    let gw = Example::start(
        "custom_filter",
        env!("CARGO_BIN_EXE_custom_filter"),
        upstream.addr,
    )
    .await;

    // $ curl -i http://localhost:8080/  ->  200 from the upstream
    let r = gw.request("GET", &[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["upstream"], "echo", "{r:?}");
    assert_eq!(upstream.hits(), 1);

    // $ curl -i -X DELETE http://localhost:8080/  ->  405 with Allow
    let r = gw.request("DELETE", &[]).await;
    assert_eq!(r.status, 405, "{r:?}");
    assert_eq!(r.header("allow"), Some("GET, HEAD"), "{r:?}");
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.text(), "method DELETE is not allowed here\n");
    assert_eq!(upstream.hits(), 1, "a refused request reached the upstream");

    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_reload_switches_upstreams_and_keeps_serving_on_a_bad_change() {
    let a = EchoUpstream::start("a").await.unwrap();
    let b = EchoUpstream::start("b").await.unwrap();
    let mut gw = Example::start("hot_reload", env!("CARGO_BIN_EXE_hot_reload"), a.addr).await;
    gw.expect_line("hot_reload: ").await;

    // $ curl http://localhost:8080/  ->  upstream A
    let r = gw.request("GET", &[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("x-upstream"), Some("a"), "{r:?}");

    // Type B's address: revision 2 goes live and the next request reaches B.
    gw.type_line(&b.addr.to_string()).await;
    let line = gw.expect_line("revision 2 ").await;
    assert_eq!(line, format!("revision 2 live: upstream {}", b.addr));
    let r = gw.request("GET", &[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("x-upstream"), Some("b"), "{r:?}");

    // Port 0 is invalid: revision 3 is refused with its field path and B
    // keeps answering.
    gw.type_line("127.0.0.1:0").await;
    let line = gw.expect_line("revision 3 ").await;
    assert!(line.starts_with("revision 3 rejected ("), "{line}");
    assert!(line.contains("proxy_hosts[0].upstreams[0].port"), "{line}");
    assert!(line.ends_with("; still serving revision 2"), "{line}");
    let r = gw.request("GET", &[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("x-upstream"), Some("b"), "{r:?}");

    // Back to A.
    gw.type_line(&a.addr.to_string()).await;
    let line = gw.expect_line("revision 4 ").await;
    assert_eq!(line, format!("revision 4 live: upstream {}", a.addr));
    let r = gw.request("GET", &[]).await;
    assert_eq!(r.header("x-upstream"), Some("a"), "{r:?}");
    assert_eq!(a.hits(), 2);
    assert_eq!(b.hits(), 2);

    gw.stop().await;
}
