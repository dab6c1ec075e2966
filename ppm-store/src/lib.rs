//! Persistent configuration stores for the ppm proxy engine.
//!
//! This crate will hold `SqliteStore`, the embedded default `ConfigStore`.
//! It is not implemented yet.
