//! What the PostgreSQL backend does differently from SQLite; the code both
//! share (`src/shared/`) is compiled here against these items.

use ppm_core::config::Id;
use ppm_core::error::StoreError;
use sqlx::postgres::PgRow;

use crate::error::backend;

pub(super) use sqlx::PgConnection as Conn;

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
