//! # hot_reload: changing routing live with `MemoryStore::update`
//!
//! Shows: the engine's background service picks up every
//! [`MemoryStore::update`] and swaps the compiled config atomically, with no
//! restart and no dropped request; an invalid change is rejected with its
//! field path and the previous config keeps serving.
//!
//! Each line typed on stdin is a new upstream (`host:port`) for the
//! `localhost` host. The program stores it and reports when the engine
//! serves the new revision, or why it refused it.
//!
//! Run it (`LISTEN` and `UPSTREAM` override the defaults `127.0.0.1:8080`
//! and `127.0.0.1:3000`):
//!
//! ```text
//! mkdir -p /tmp/a /tmp/b && echo A > /tmp/a/index.html && echo B > /tmp/b/index.html
//! python3 -m http.server 3000 --bind 127.0.0.1 -d /tmp/a &
//! python3 -m http.server 3001 --bind 127.0.0.1 -d /tmp/b &
//! cargo run -p ppm-examples --bin hot_reload
//! ```
//!
//! Then:
//!
//! ```text
//! $ curl http://localhost:8080/
//! A
//! ```
//!
//! Type `127.0.0.1:3001` into the program; it prints
//! `revision 2 live: upstream 127.0.0.1:3001`, and:
//!
//! ```text
//! $ curl http://localhost:8080/
//! B
//! ```
//!
//! Type `127.0.0.1:0`; it prints `revision 3 rejected (invalid config:
//! proxy_hosts[0].upstreams[0].port: must be 1..=65535); still serving
//! revision 2`, and
//! curl still answers `B`.
//!
//! `tests/examples.rs` runs this program and checks these answers.

use std::error::Error;
use std::io::BufRead;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ppm_core::config::{Config, ProxyHost, Upstream};
use ppm_core::engine::{EngineHandle, ProxyEngine};
use ppm_core::pingora_core::server::Server;
use ppm_core::store::MemoryStore;

/// Parses `host:port`.
fn upstream(addr: &str) -> Result<Upstream, Box<dyn Error>> {
    let (host, port) = addr.rsplit_once(':').ok_or("expected host:port")?;
    Ok(Upstream::new(host, port.parse()?))
}

/// What became of a stored revision.
enum Outcome {
    Live,
    Rejected(String),
    Pending,
}

/// Waits (up to 10 s) until the engine serves `revision` or has refused it.
fn outcome(handle: &EngineHandle, revision: u64) -> Outcome {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if handle.revision() >= revision {
            return Outcome::Live;
        }
        if let Some((rejected, err)) = handle.last_error() {
            if rejected >= revision {
                return Outcome::Rejected(err.to_string());
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Outcome::Pending
}

/// Applies each stdin line as the new upstream of every host.
fn read_commands(store: &MemoryStore, handle: &EngineHandle) {
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let addr = line.trim();
        if addr.is_empty() {
            continue;
        }
        let new = match upstream(addr) {
            Ok(u) => u,
            Err(e) => {
                println!("ignored {addr:?}: {e}");
                continue;
            }
        };
        // The only call needed: the engine is notified and reloads.
        let revision = store.update(|config| {
            for host in &mut config.proxy_hosts {
                host.upstreams = vec![new.clone()];
            }
        });
        match outcome(handle, revision) {
            Outcome::Live => println!("revision {revision} live: upstream {addr}"),
            Outcome::Rejected(err) => println!(
                "revision {revision} rejected ({err}); still serving revision {}",
                handle.revision()
            ),
            Outcome::Pending => println!("revision {revision} stored, not applied yet"),
        }
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let env = |name, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
    let listen = env("LISTEN", "127.0.0.1:8080");
    let first = env("UPSTREAM", "127.0.0.1:3000");

    let mut config = Config::new();
    config
        .proxy_hosts
        .push(ProxyHost::new(["localhost"], vec![upstream(&first)?]));
    let store = Arc::new(MemoryStore::new(config));

    let runtime = tokio::runtime::Runtime::new()?; // lives until the process exits
    let engine = runtime.block_on(ProxyEngine::builder().store(store.clone()).build())?;
    let handle = engine.handle();
    std::thread::spawn(move || read_commands(&store, &handle));

    let mut server = Server::new(None)?;
    server.bootstrap();
    let mut proxy = engine.http_service(&server.configuration);
    proxy.add_tcp(&listen);
    server.add_service(proxy);
    server.add_service(engine.background_service());
    println!("hot_reload: http://{listen} -> {first} (revision 1); type host:port to switch");
    server.run_forever()
}
