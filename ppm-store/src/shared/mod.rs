//! Code the SQLite and PostgreSQL backends share, compiled once per
//! backend.
//!
//! The other files in this directory are not modules of `shared`: each
//! backend includes them as modules of its own, as `sqlite/mod.rs` does:
//!
//! ```text
//! mod dialect;
//! #[path = "../shared/write.rs"]
//! mod write;
//! ```
//!
//! - `read.rs`: loading the config, whole or one entity, and assembling
//!   rows into it;
//! - `write.rs`: the checks that name the field, and the row writes;
//! - `store.rs`: `ConfigWriter` (transactions, revision, history,
//!   snapshots);
//! - `accounts.rs`: users, API tokens, the audit log and server secrets.
//!
//! They name their backend only through `super::dialect` and a few methods
//! of its store (`begin_write`, `begin_read`, `read_pool`, `write_pool`).
//! The dialect states, once, what differs: the connection, database and
//! store types, how a table's rows are loaded (`select`), the id column of
//! an inserted entity (`new_id!`), what an import does after its rows are
//! in (`after_import`), how a user's email is compared (`email_matches!`)
//! and what a connection failure means (`write_unavailable`). Each
//! statement and each piece of row assembly is so written once, and each
//! compiled copy is plain code on one concrete connection type, as fast as
//! the hand-written copies it replaced. Clippy's `duplicate_mod` lint is
//! allowed on those `mod` items for this reason. The read side,
//! `ConfigStore` (`load`, `revision`, `watch`), stays in each backend's
//! `mod.rs`: it is a few lines, and how a backend loads fastest differs.
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
//! `sqlite/dialect.rs` checks that), booleans are `TRUE` and `FALSE`, and
//! upserts are `ON CONFLICT ... DO`; SQLite accepts all of these.
