//! ppm-server: the Pingora data plane and the Axum control plane in one
//! process. The binary is `src/main.rs`; this library exists so tests can
//! assemble the same app.

pub mod acme;
pub mod api;
pub mod app;
pub mod auth;
pub mod cluster;
pub mod dashboard;
pub mod logs;
pub mod metrics;
pub mod settings;
pub mod stats;
pub mod throttle;

pub use app::run;
pub use settings::Settings;
