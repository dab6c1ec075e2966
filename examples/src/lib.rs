//! Runnable examples for embedding ppm, one program per topic in `src/bin/`.
//!
//! | Program | Shows |
//! | --- | --- |
//! | `custom_gateway` | a complete gateway in under 50 lines: a `MemoryStore` config, a custom API-key filter and a default filter, served by Pingora |
//! | `custom_filter` | writing a filter with a typed config, registering it with `FilterRegistry::register_fn`, attaching it by config and unit-testing it |
//! | `hot_reload` | changing routing live with `MemoryStore::update`; invalid changes are refused and the old config keeps serving |
//!
//! Each file starts with what it shows, the command to run it
//! (`cargo run -p ppm-examples --bin custom_gateway`), a curl line and the
//! output to expect. `tests/examples.rs` runs every program and checks
//! those outputs, so the examples cannot rot.
//!
//! Ctrl-C (SIGINT) stops a program at once; SIGTERM starts Pingora's
//! graceful shutdown, which waits out its grace period (5 minutes unless
//! the server's configuration says otherwise).
