//! What the SQLite backend does differently from PostgreSQL; the code both
//! share (`src/shared/`) is compiled here against these items.

use ppm_core::config::Id;
use ppm_core::error::StoreError;

use crate::codec::from_json;
use crate::error::{backend, WriteError};

pub(super) use super::SqliteStore as Store;
pub(super) use sqlx::Sqlite as Db;
pub(super) use sqlx::SqliteConnection as Conn;

/// The id column's value in an `INSERT` of an entity: `$1`, which is the
/// id to keep (an import) or NULL, for which SQLite picks the next id
/// (`AUTOINCREMENT`: never one used before).
macro_rules! new_id {
    ($table:literal) => {
        "$1"
    };
}
pub(super) use new_id;

/// `users.email` equal to the parameter `$p`, ignoring ASCII case: the
/// column is `COLLATE NOCASE`, so the comparison is too and its unique
/// index serves it.
macro_rules! email_matches {
    ($p:literal) => {
        concat!("email = ", $p)
    };
}
pub(super) use email_matches;

/// After an import wrote its rows with their ids: nothing to do, as
/// `AUTOINCREMENT` keeps new ids above every id stored.
pub(super) async fn after_import(_conn: &mut Conn) -> Result<(), WriteError> {
    Ok(())
}

/// A failure to get a connection or start a transaction, for a write or a
/// read of the history: the driver's error as it is (the database is a
/// local file; there is no server to be unreachable).
pub(super) fn write_unavailable(e: sqlx::Error) -> WriteError {
    WriteError::from(e)
}

/// What a row type of `shared/read.rs` must be to be loaded by [`select`].
pub(super) trait Row: serde::de::DeserializeOwned {}

impl<T: serde::de::DeserializeOwned> Row for T {}

/// The rows of `table` (all, or those `filter` selects with `$1` bound to
/// its id), as `cols` in `order`.
///
/// One query returns the rows as one JSON array of arrays, built by SQLite
/// (`json_group_array`), parsed with serde: decoding tens of thousands of
/// rows one driver row at a time costs several times more than the
/// database's own work. Each row carries its `order` columns after it and
/// the rows are sorted here: an aggregate's `ORDER BY` makes SQLite build
/// a temporary B-tree, which took about two thirds of the query's time
/// (20k domain names: 20 ms sorted by SQLite, 9 ms by this), while the
/// rows mostly arrive in order already, which a stable sort checks in one
/// pass.
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
    let sql = format!(
        "SELECT json_group_array(json_array(json_array({cols}), {order})) FROM {table} {filter}"
    );
    let query = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql));
    let query = match id {
        Some(id) => query.bind(id),
        None => query,
    };
    let json = query.fetch_one(&mut *conn).await.map_err(backend)?;
    let mut rows: Vec<Keyed<R>> = from_json(&json, table)?;
    rows.sort_by_key(|r| r.key);
    Ok(rows.into_iter().map(|r| r.row).collect())
}

/// A row followed by up to two sort-key columns: `[[cols..], k1, k2]`.
struct Keyed<R> {
    row: R,
    key: (Option<i64>, Option<i64>),
}

impl<'de, R: serde::Deserialize<'de>> serde::Deserialize<'de> for Keyed<R> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<R>(std::marker::PhantomData<R>);

        impl<'de, R: serde::Deserialize<'de>> serde::de::Visitor<'de> for Visit<R> {
            type Value = Keyed<R>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a row followed by its sort key")
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Keyed<R>, A::Error> {
                let row = seq
                    .next_element()?
                    .ok_or_else(|| serde::de::Error::invalid_length(0, &self))?;
                let k1 = seq.next_element::<Option<i64>>()?.flatten();
                let k2 = seq.next_element::<Option<i64>>()?.flatten();
                if seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
                    return Err(serde::de::Error::invalid_length(4, &self));
                }
                Ok(Keyed { row, key: (k1, k2) })
            }
        }

        d.deserialize_seq(Visit(std::marker::PhantomData))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use sqlx::Connection;

    use super::Conn;

    /// The shared statements use `$n` placeholders, out of order and
    /// repeated; SQLite itself numbers `$n` parameters by first appearance,
    /// sqlx binds them by the number in the name.
    #[tokio::test]
    async fn dollar_placeholders_bind_by_number() {
        let mut conn = Conn::connect("sqlite::memory:").await.unwrap();
        let got: (String, i64, Option<i64>) = sqlx::query_as("SELECT $2 || $1, $3 + $3, $4")
            .bind("a")
            .bind("b")
            .bind(20i64)
            .bind(None::<i64>)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(got, ("ba".to_owned(), 40, None));
    }
}
