//! Code the SQLite and PostgreSQL backends share, compiled once per
//! backend.
//!
//! The other files in this directory are not modules of `shared`: each
//! backend includes them as modules of its own, as in `sqlite/mod.rs`:
//!
//! ```text
//! mod dialect;
//! #[path = "../shared/read.rs"]
//! mod read;
//! ```
//!
//! and they name their backend only through `super::dialect`, a small
//! module per backend that states what differs between the two (the
//! connection type, how a table's rows are loaded). Each statement and
//! each piece of row assembly is so written once, and each compiled copy
//! is plain code on one concrete connection type, as fast as the
//! hand-written copies it replaces. Clippy's `duplicate_mod` lint is
//! allowed on those `mod` items for this reason.
//!
//! The alternatives weighed:
//!
//! - functions generic over [`sqlx::Database`]: each would carry bounds
//!   such as `for<'e> &'e mut DB::Connection: Executor<'e, Database = DB>`
//!   and `T: Encode<'q, DB> + Type<DB>` for every bound value type and
//!   `FromRow` for every row type, for code that only ever runs on two
//!   known connection types;
//! - a macro that expands the code once per store type (`acme.rs` does
//!   this for a few records): rustfmt does not format macro bodies, and
//!   compiler errors point into the expansion.
//!
//! The SQL text is the same on both backends: placeholders are `$n`,
//! which sqlx's SQLite driver binds by number as it binds `?n` (a test in
//! `sqlite/dialect.rs` checks that), and the statements use only syntax
//! both databases accept.
