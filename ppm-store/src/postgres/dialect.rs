//! What the PostgreSQL backend does differently from SQLite; the code both
//! share (`src/shared/`) is compiled here against these items.

use ppm_core::config::Id;
use ppm_core::error::StoreError;
use sqlx::postgres::PgRow;

use crate::error::{backend, WriteError};

pub(super) use super::PostgresStore as Store;
pub(super) use sqlx::PgConnection as Conn;
pub(super) use sqlx::Postgres as Db;

/// The id column's value in an `INSERT` of an entity: `$1`, the id to keep
/// (an import), or when that is NULL the next value of the table's id
/// sequence (a column default does not apply to an explicit NULL).
macro_rules! new_id {
    ($table:literal) => {
        concat!("COALESCE($1, nextval('", $table, "_id_seq'))")
    };
}
pub(super) use new_id;

/// `users.email` equal to the parameter `$p`, ignoring case, as the unique
/// index `users_email` on `lower(email)` compares them (and serves this).
macro_rules! email_matches {
    ($p:literal) => {
        concat!("lower(email) = lower(", $p, ")")
    };
}
pub(super) use email_matches;

/// Moves each entity table's id sequence past the ids an import wrote, so
/// the next create never reuses one (SQLite's `AUTOINCREMENT` does this by
/// itself).
pub(super) async fn after_import(conn: &mut Conn) -> Result<(), WriteError> {
    for table in [
        "proxy_hosts",
        "redirection_hosts",
        "dead_hosts",
        "streams",
        "access_lists",
        "certificates",
    ] {
        let sql = format!(
            "SELECT setval('{table}_id_seq', m) FROM (SELECT MAX(id) AS m FROM {table}) AS x
             WHERE m IS NOT NULL AND m >= (SELECT last_value FROM {table}_id_seq)"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// A pool or connection failure: the database is unreachable for now.
pub(super) fn unavailable(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
            StoreError::Unavailable(format!("PostgreSQL is unreachable: {e}"))
        }
        other => backend(other),
    }
}

/// A connection failure at the start of a write or a read of the history:
/// unavailable, not a bug.
pub(super) fn write_unavailable(e: sqlx::Error) -> WriteError {
    WriteError::from(unavailable(e))
}

/// What a row type of `shared/read.rs` must be to be loaded by [`select`].
pub(super) trait Row: for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin {}

impl<T: for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin> Row for T {}

/// The rows of `table` (all, or those `filter` selects with `$1` bound to
/// its id), as `cols` in `order`, decoded by column name.
pub(super) async fn select<R: Row>(
    conn: &mut Conn,
    table: &'static str,
    cols: &'static str,
    order: &'static str,
    filter: Option<(&'static str, Id)>,
) -> Result<Vec<R>, StoreError> {
    let (filter, id) = match filter {
        Some((filter, id)) => (filter, Some(id)),
        None => ("", None),
    };
    // Built from the constants of `shared/read.rs` only.
    let sql = format!("SELECT {cols} FROM {table} {filter} ORDER BY {order}");
    let query = sqlx::query_as::<_, R>(sqlx::AssertSqlSafe(sql));
    let query = match id {
        Some(id) => query.bind(id),
        None => query,
    };
    query.fetch_all(&mut *conn).await.map_err(backend)
}
