//! ppm-core: the ppm proxy engine.

pub mod compile;
pub mod config;
pub mod engine;
pub mod error;
pub mod filter;
pub mod forwarded;
pub mod router;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
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
