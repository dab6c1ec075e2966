//! ppm-core: the engine of ppm, a reverse-proxy manager on Pingora.
//!
//! A [`ProxyEngine`](engine::ProxyEngine) is a Pingora `ProxyHttp` that
//! reads an `ArcSwap`'d [`CompiledConfig`](compile::CompiledConfig): each
//! request does one atomic load and takes no locks. Configuration comes from
//! a [`ConfigStore`](store::ConfigStore); when the store signals a new
//! revision, the engine validates and compiles it off the request path and
//! swaps it in, or rejects it with field paths and keeps serving the old one.
//!
//! ```
//! use std::sync::Arc;
//! use ppm_core::config::{Config, ProxyHost, Upstream};
//! use ppm_core::engine::ProxyEngine;
//! use ppm_core::store::MemoryStore;
//!
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! let mut config = Config::new();
//! config.proxy_hosts.push(ProxyHost::new(["app.test"], vec![Upstream::new("127.0.0.1", 3000)]));
//! let store = Arc::new(MemoryStore::new(config));
//! let engine = ProxyEngine::builder().store(store.clone()).build().await.unwrap();
//! let handle = engine.handle();
//!
//! // A bad change is refused with a field path; the old config keeps serving.
//! store.update(|c| c.proxy_hosts[0].upstreams[0].port = 0);
//! let err = handle.reload().await.unwrap_err();
//! assert_eq!(err.field_errors()[0].path, "proxy_hosts[0].upstreams[0].port");
//! assert_eq!(handle.revision(), 1);
//! # });
//! ```
//!
//! Serve it by adding [`ProxyEngine::http_service`](engine::ProxyEngine::http_service)
//! (with your listeners) and
//! [`ProxyEngine::background_service`](engine::ProxyEngine::background_service)
//! to a Pingora `Server`. Filters ([`filter::Filter`]) add behaviour per
//! host, location or globally; `ppm-filters` ships the default ones.
#![warn(missing_docs)]

pub mod compile;
pub mod config;
pub mod engine;
pub mod error;
pub mod filter;
pub mod forwarded;
pub mod router;
pub mod stats;
pub mod store;
#[cfg(feature = "streams")]
pub mod stream;
#[cfg(feature = "testing")]
pub mod testing;
pub mod tls;
pub mod upstream;
pub mod validate;

pub use async_trait::async_trait;
pub use filter::Result;

/// The HTTP types that appear in ppm-core's API, re-exported so users never
/// depend on a second version.
pub mod http {
    pub use ::http::*;
    pub use pingora_http::{RequestHeader, ResponseHeader};
}

pub use pingora_core;
pub use pingora_error;
pub use pingora_load_balancing;
pub use pingora_proxy;
