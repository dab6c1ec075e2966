//! ppm-core: the ppm proxy engine.

pub mod config;
pub mod error;
pub mod store;
pub mod validate;
