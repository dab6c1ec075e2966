//! # custom_gateway: a complete API gateway in under 50 lines of code
//!
//! Shows: a [`MemoryStore`] config with one proxy host, one custom filter
//! (an API-key check: requests without `X-Api-Key: <key>` get 401) added as
//! a global filter, and one default filter from `ppm-filters` (the `headers`
//! filter, attached by the host's `response_headers` field), served by a
//! Pingora `Server`.
//!
//! Run it (`LISTEN`, `UPSTREAM` and `API_KEY` override the defaults
//! `127.0.0.1:8080`, `127.0.0.1:3000` and `secret`):
//!
//! ```text
//! mkdir -p /tmp/www && echo hello > /tmp/www/index.html
//! python3 -m http.server 3000 --bind 127.0.0.1 -d /tmp/www &   # any upstream will do
//! cargo run -p ppm-examples --bin custom_gateway
//! ```
//!
//! Then, in another shell:
//!
//! ```text
//! $ curl -i http://localhost:8080/
//! HTTP/1.1 401 Unauthorized
//! Content-Type: text/plain; charset=utf-8
//! Content-Length: 27
//! x-served-by: ppm
//! ...
//!
//! missing or wrong X-Api-Key
//!
//! $ curl -i -H 'X-Api-Key: secret' http://localhost:8080/
//! HTTP/1.0 200 OK                    (the status line of python's server)
//! Server: SimpleHTTP/0.6 Python/3.11.7
//! ...
//! x-served-by: ppm
//! ...
//!
//! hello
//! ```
//!
//! `tests/examples.rs` runs this program and checks exactly these answers.

use std::{error::Error, sync::Arc};

use ppm_core::config::{Config, HeaderRule, ProxyHost, Upstream};
use ppm_core::filter::{priority, Filter, FilterAction, FilterResponse, RequestCtx};
use ppm_core::pingora_core::server::Server;
use ppm_core::{engine::ProxyEngine, http::RequestHeader, store::MemoryStore};

/// Answers 401 unless the request carries `X-Api-Key: <the key>`.
struct ApiKey(String);

#[ppm_core::async_trait]
impl Filter for ApiKey {
    fn name(&self) -> &str {
        "api_key"
    }
    async fn request_filter(
        &self,
        req: &RequestHeader,
        _ctx: &mut RequestCtx,
    ) -> ppm_core::Result<FilterAction> {
        if req.headers.get("x-api-key").map(|k| k.as_bytes()) == Some(self.0.as_bytes()) {
            return Ok(FilterAction::Continue);
        }
        let denied = FilterResponse::text(401, "missing or wrong X-Api-Key\n");
        Ok(FilterAction::Respond(denied))
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let env = |name, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
    let listen = env("LISTEN", "127.0.0.1:8080");
    let upstream = env("UPSTREAM", "127.0.0.1:3000");
    let (h, p) = upstream.rsplit_once(':').ok_or("UPSTREAM is host:port")?;
    let mut config = Config::new();
    config.proxy_hosts.push(ProxyHost {
        // A header rule: the compiler attaches ppm-filters' `headers` filter for it.
        response_headers: vec![HeaderRule::set("x-served-by", "ppm")],
        ..ProxyHost::new(["localhost"], vec![Upstream::new(h, p.parse()?)])
    });

    // Building loads and compiles the config (a MemoryStore needs no runtime after that).
    let engine = tokio::runtime::Runtime::new()?.block_on(
        ProxyEngine::builder()
            .store(Arc::new(MemoryStore::new(config)))
            .registry(ppm_filters::default_registry())
            .global_filter(priority::USER, Arc::new(ApiKey(env("API_KEY", "secret"))))
            .build(),
    )?;

    let mut server = Server::new(None)?;
    server.bootstrap();
    let mut proxy = engine.http_service(&server.configuration);
    proxy.add_tcp(&listen);
    server.add_service(proxy);
    server.add_service(engine.background_service());
    println!("custom_gateway: http://{listen} -> {upstream}");
    server.run_forever()
}
