//! # custom_filter: writing, registering, attaching and testing a filter
//!
//! Shows:
//! - a [`Filter`] with a typed config (`AllowMethodsConfig`, with
//!   `#[serde(deny_unknown_fields)]` so a typo is an error, not a silently
//!   ignored setting) that refuses other methods with 405 and an `Allow`
//!   header;
//! - registering its kind, `allow_methods`, next to the default kinds with
//!   [`FilterRegistry::register_fn`], whose factory validates the config;
//! - attaching it by config: a [`FilterSpec`] in a proxy host's `filters`
//!   (`settings.filters` would attach it globally, a location's `filters`
//!   to one path). In a stored config or an API body the spec reads
//!   `{"kind": "allow_methods", "config": {"methods": ["GET", "HEAD"]}}`;
//! - unit tests with `ppm_core::testing::{request, run_request_phase}` (at
//!   the bottom of this file; `cargo test -p ppm-examples --bin custom_filter`);
//! - the same filter serving in a gateway.
//!
//! Run it (`LISTEN` and `UPSTREAM` override the defaults `127.0.0.1:8080`
//! and `127.0.0.1:3000`):
//!
//! ```text
//! mkdir -p /tmp/www && echo hello > /tmp/www/index.html
//! python3 -m http.server 3000 --bind 127.0.0.1 -d /tmp/www &   # any upstream will do
//! cargo run -p ppm-examples --bin custom_filter
//! ```
//!
//! Then, in another shell:
//!
//! ```text
//! $ curl http://localhost:8080/
//! hello
//!
//! $ curl -i -X DELETE http://localhost:8080/
//! HTTP/1.1 405 Method Not Allowed
//! Content-Type: text/plain; charset=utf-8
//! allow: GET, HEAD
//! Content-Length: 34
//! ...
//!
//! method DELETE is not allowed here
//! ```
//!
//! `tests/examples.rs` runs this program and checks exactly these answers.

use std::error::Error;
use std::sync::Arc;

use ppm_core::config::{Config, FilterSpec, ProxyHost, Upstream};
use ppm_core::engine::ProxyEngine;
use ppm_core::filter::{
    priority, Filter, FilterAction, FilterRegistry, FilterResponse, Phases, RequestCtx,
};
use ppm_core::http::{header, HeaderValue, Method, RequestHeader};
use ppm_core::pingora_core::server::Server;
use ppm_core::store::MemoryStore;
use serde::Deserialize;

/// The kind name configs use to attach [`AllowMethods`].
const KIND: &str = "allow_methods";

/// Config of the `allow_methods` kind: `{"methods": ["GET", "HEAD"]}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AllowMethodsConfig {
    /// Methods let through (case-insensitive); every other one gets 405.
    methods: Vec<String>,
}

/// Refuses requests whose method is not in the list with 405.
struct AllowMethods {
    methods: Vec<Method>,
    /// The `Allow` header value, built once per config revision.
    allow: HeaderValue,
}

impl AllowMethods {
    /// Validates `config`; the error is a message for people (the engine
    /// adds the field path of the offending `FilterSpec`).
    fn new(config: AllowMethodsConfig) -> Result<Self, String> {
        if config.methods.is_empty() {
            return Err("methods: must name at least one method".into());
        }
        let methods = config
            .methods
            .iter()
            .map(|m| {
                Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                    .map_err(|_| format!("methods: {m:?} is not an HTTP method"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let list = methods.iter().map(Method::as_str).collect::<Vec<_>>();
        let allow = HeaderValue::from_str(&list.join(", ")).map_err(|e| e.to_string())?;
        Ok(AllowMethods { methods, allow })
    }
}

#[ppm_core::async_trait]
impl Filter for AllowMethods {
    fn name(&self) -> &str {
        KIND
    }

    /// Only the request phase: the engine skips this filter in the others.
    fn phases(&self) -> Phases {
        Phases::REQUEST
    }

    async fn request_filter(
        &self,
        req: &RequestHeader,
        _ctx: &mut RequestCtx,
    ) -> ppm_core::Result<FilterAction> {
        if self.methods.contains(&req.method) {
            return Ok(FilterAction::Continue);
        }
        let body = format!("method {} is not allowed here\n", req.method);
        Ok(FilterAction::Respond(
            FilterResponse::text(405, body).header(header::ALLOW, self.allow.clone()),
        ))
    }
}

/// The default kinds of `ppm-filters` plus `allow_methods`.
fn registry() -> FilterRegistry {
    let mut registry = ppm_filters::default_registry();
    registry.register_fn(KIND, priority::USER, |config: AllowMethodsConfig, _ctx| {
        Ok(Arc::new(AllowMethods::new(config)?) as Arc<dyn Filter>)
    });
    registry
}

/// One host, `localhost`, proxied to `upstream` (`host:port`), that lets
/// only `GET` and `HEAD` through.
fn config(upstream: &str) -> Result<Config, Box<dyn Error>> {
    let (host, port) = upstream.rsplit_once(':').ok_or("UPSTREAM is host:port")?;
    let mut proxy_host = ProxyHost::new(["localhost"], vec![Upstream::new(host, port.parse()?)]);
    proxy_host.filters.push(FilterSpec::new(
        KIND,
        serde_json::json!({ "methods": ["GET", "HEAD"] }),
    ));
    let mut config = Config::new();
    config.proxy_hosts.push(proxy_host);
    Ok(config)
}

fn main() -> Result<(), Box<dyn Error>> {
    let env = |name, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
    let listen = env("LISTEN", "127.0.0.1:8080");
    let upstream = env("UPSTREAM", "127.0.0.1:3000");

    // Building compiles the config: an invalid `allow_methods` config stops
    // here with its field path, e.g. `invalid config: proxy_hosts[0].filters[0]:
    // methods: must name at least one method`.
    let runtime = tokio::runtime::Runtime::new()?; // lives until the process exits
    let engine = runtime.block_on(
        ProxyEngine::builder()
            .store(Arc::new(MemoryStore::new(config(&upstream)?)))
            .registry(registry())
            .build(),
    )?;

    let mut server = Server::new(None)?;
    server.bootstrap();
    let mut proxy = engine.http_service(&server.configuration);
    proxy.add_tcp(&listen);
    server.add_service(proxy);
    server.add_service(engine.background_service());
    println!("custom_filter: http://{listen} -> {upstream}");
    server.run_forever()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ppm_core::error::BuildError;
    use ppm_core::filter::BuildContext;
    use ppm_core::testing::{request, run_request_phase};

    fn filter(methods: &[&str]) -> Arc<dyn Filter> {
        let config = AllowMethodsConfig {
            methods: methods.iter().map(|m| m.to_string()).collect(),
        };
        Arc::new(AllowMethods::new(config).unwrap())
    }

    #[tokio::test]
    async fn listed_methods_continue() {
        let filters = [filter(&["get", "HEAD"])];
        for method in ["GET", "HEAD"] {
            let req = request(method, "/", &[("host", "localhost")]).unwrap();
            let mut ctx = RequestCtx::new(Some("192.0.2.1".parse().unwrap()));
            let action = run_request_phase(&filters, &req, &mut ctx).await.unwrap();
            assert!(matches!(action, FilterAction::Continue), "{method}");
        }
    }

    #[tokio::test]
    async fn other_methods_get_405_with_allow() {
        let filters = [filter(&["GET", "HEAD"])];
        let req = request("DELETE", "/", &[("host", "localhost")]).unwrap();
        let mut ctx = RequestCtx::default();
        match run_request_phase(&filters, &req, &mut ctx).await.unwrap() {
            FilterAction::Respond(resp) => {
                assert_eq!(resp.status, 405);
                assert!(resp
                    .headers
                    .contains(&(header::ALLOW, HeaderValue::from_static("GET, HEAD"))));
                assert_eq!(resp.body, "method DELETE is not allowed here\n");
            }
            other => panic!("expected a 405, got {other:?}"),
        }
        assert_eq!(ctx.responded_by.as_deref(), Some(KIND));
    }

    #[test]
    fn the_factory_validates_the_typed_config() {
        let config = Config::new();
        let ctx = BuildContext { config: &config };
        let factory = registry();
        let factory = factory.get(KIND).unwrap();
        assert!(factory
            .build(&serde_json::json!({"methods": ["GET"]}), &ctx)
            .is_ok());
        // deny_unknown_fields: a typo is an error naming the field.
        let typo = factory
            .build(&serde_json::json!({"method": ["GET"]}), &ctx)
            .err()
            .unwrap();
        assert!(typo.contains("unknown field `method`"), "{typo}");
        let empty = factory
            .build(&serde_json::json!({"methods": []}), &ctx)
            .err()
            .unwrap();
        assert!(empty.contains("at least one method"), "{empty}");
    }

    #[tokio::test]
    async fn a_bad_spec_stops_the_engine_with_its_field_path() {
        let mut config = config("127.0.0.1:3000").unwrap();
        config.proxy_hosts[0].filters[0].config = serde_json::json!({ "methods": [] });
        let err = ProxyEngine::builder()
            .store(Arc::new(MemoryStore::new(config)))
            .registry(registry())
            .build()
            .await
            .err()
            .unwrap();
        match err {
            BuildError::Config(e) => assert_eq!(
                e.to_string(),
                "invalid config: proxy_hosts[0].filters[0]: methods: must name at least one method"
            ),
            other => panic!("expected a config error, got {other:?}"),
        }
    }
}
