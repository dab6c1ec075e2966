//! ACME records: accounts at certificate authorities, the order state of
//! ACME-managed certificates, DNS providers for DNS-01, and ACME settings
//! edited at run time.
//!
//! Like [`accounts`](crate::accounts), these are control-plane records, not
//! config: they do not change the revision, are not in the history and are
//! not exported. The issued certificate itself is config (a
//! [`Certificate`](ppm_core::config::Certificate) written through
//! [`ConfigWriter`](crate::ConfigWriter)). Timestamps are unix milliseconds.

use ppm_core::config::Id;
use serde::{Deserialize, Serialize};

use crate::error::WriteError;
use crate::sqlite::{timestamp, SqliteStore};

/// An account at an ACME directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
#[non_exhaustive]
pub struct AcmeAccount {
    /// Store id.
    pub id: Id,
    /// The directory URL of the certificate authority.
    pub directory_url: String,
    /// Contact email, empty for none.
    pub email: String,
    /// External account binding key id, empty for none.
    pub eab_key_id: String,
    /// The client's account credentials (JSON, includes the account key).
    pub credentials: String,
    /// When the account was created.
    pub created_at: i64,
}

/// The order state of one ACME-managed certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AcmeOrder {
    /// The config certificate this order issues.
    pub certificate_id: Id,
    /// Names to order.
    pub domain_names: Vec<String>,
    /// `http-01` or `dns-01`.
    pub challenge: String,
    /// The DNS provider for `dns-01`.
    pub dns_provider_id: Option<Id>,
    /// `pending`, `validating`, `issued` or `failed`.
    pub status: String,
    /// Why the last attempt failed.
    pub error: Option<String>,
    /// Failed attempts since the last success.
    pub attempts: i64,
    /// When the next attempt is due; `None` when nothing is scheduled.
    pub next_attempt_at: Option<i64>,
    /// Expiry of the issued certificate.
    pub not_after: Option<i64>,
    /// When the issued certificate is due for renewal.
    pub renew_at: Option<i64>,
    /// When the certificate was last issued.
    pub issued_at: Option<i64>,
    /// When this record last changed.
    pub updated_at: i64,
}

impl AcmeOrder {
    /// A new `pending` order, due now.
    pub fn new(
        certificate_id: Id,
        domain_names: Vec<String>,
        challenge: impl Into<String>,
        dns_provider_id: Option<Id>,
    ) -> Self {
        let now = timestamp();
        AcmeOrder {
            certificate_id,
            domain_names,
            challenge: challenge.into(),
            dns_provider_id,
            status: "pending".into(),
            error: None,
            attempts: 0,
            next_attempt_at: Some(now),
            not_after: None,
            renew_at: None,
            issued_at: None,
            updated_at: now,
        }
    }
}

#[derive(sqlx::FromRow)]
struct OrderRow {
    certificate_id: Id,
    domain_names: String,
    challenge: String,
    dns_provider_id: Option<Id>,
    status: String,
    error: Option<String>,
    attempts: i64,
    next_attempt_at: Option<i64>,
    not_after: Option<i64>,
    renew_at: Option<i64>,
    issued_at: Option<i64>,
    updated_at: i64,
}

impl TryFrom<OrderRow> for AcmeOrder {
    type Error = WriteError;

    fn try_from(r: OrderRow) -> Result<Self, WriteError> {
        Ok(AcmeOrder {
            certificate_id: r.certificate_id,
            domain_names: serde_json::from_str(&r.domain_names)
                .map_err(|e| WriteError::Corrupt(format!("acme_orders.domain_names: {e}")))?,
            challenge: r.challenge,
            dns_provider_id: r.dns_provider_id,
            status: r.status,
            error: r.error,
            attempts: r.attempts,
            next_attempt_at: r.next_attempt_at,
            not_after: r.not_after,
            renew_at: r.renew_at,
            issued_at: r.issued_at,
            updated_at: r.updated_at,
        })
    }
}

/// A DNS provider for DNS-01 challenges.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
#[non_exhaustive]
pub struct DnsProviderRecord {
    /// Store id.
    pub id: Id,
    /// A unique name for people.
    pub name: String,
    /// The provider kind (`cloudflare`, `rfc2136`, `command`).
    pub kind: String,
    /// Settings and credentials, JSON; its meaning is the server's.
    pub spec: String,
    /// Seconds to wait after publishing a record before asking the CA to
    /// validate it.
    pub propagation_seconds: i64,
    /// When the provider was created.
    pub created_at: i64,
    /// When the provider last changed.
    pub updated_at: i64,
}

impl DnsProviderRecord {
    /// A new provider record (id 0 until stored).
    pub fn new(
        name: impl Into<String>,
        kind: impl Into<String>,
        spec: impl Into<String>,
        propagation_seconds: i64,
    ) -> Self {
        DnsProviderRecord {
            id: 0,
            name: name.into(),
            kind: kind.into(),
            spec: spec.into(),
            propagation_seconds,
            created_at: 0,
            updated_at: 0,
        }
    }
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

macro_rules! order_columns {
    () => {
        "certificate_id, domain_names, challenge, dns_provider_id, status, error, attempts, \
         next_attempt_at, not_after, renew_at, issued_at, updated_at"
    };
}

/// What `delete_dns_provider` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DnsProviderDeletion {
    /// Deleted.
    Deleted,
    /// There was no such provider.
    NotFound,
    /// The ACME order of this certificate uses it; nothing was deleted.
    InUse(Id),
}

/// The ACME record methods, on each backend with the same SQL (`$n`
/// placeholders, `ON CONFLICT`, `RETURNING`: both dialects have them).
macro_rules! acme_records {
    ($store:ty, $read:ident, $write:ident) => {
impl $store {
    /// The account for a directory, contact email and EAB key id, if one was
    /// stored.
    pub async fn acme_account(
        &self,
        directory_url: &str,
        email: &str,
        eab_key_id: &str,
    ) -> Result<Option<AcmeAccount>, WriteError> {
        Ok(sqlx::query_as(
            "SELECT id, directory_url, email, eab_key_id, credentials, created_at
             FROM acme_accounts WHERE directory_url = $1 AND email = $2 AND eab_key_id = $3",
        )
        .bind(directory_url)
        .bind(email)
        .bind(eab_key_id)
        .fetch_optional(self.$read())
        .await?)
    }

    /// Stores an account unless one exists for the same directory, email
    /// and EAB key id; returns the stored one (the first writer wins, so
    /// two processes agree on one account).
    pub async fn save_acme_account(
        &self,
        directory_url: &str,
        email: &str,
        eab_key_id: &str,
        credentials: &str,
    ) -> Result<AcmeAccount, WriteError> {
        sqlx::query(
            "INSERT INTO acme_accounts (directory_url, email, eab_key_id, credentials, created_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (directory_url, email, eab_key_id) DO NOTHING",
        )
        .bind(directory_url)
        .bind(email)
        .bind(eab_key_id)
        .bind(credentials)
        .bind(timestamp())
        .execute(self.$write())
        .await?;
        Ok(sqlx::query_as(
            "SELECT id, directory_url, email, eab_key_id, credentials, created_at
             FROM acme_accounts WHERE directory_url = $1 AND email = $2 AND eab_key_id = $3",
        )
        .bind(directory_url)
        .bind(email)
        .bind(eab_key_id)
        .fetch_one(self.$write())
        .await?)
    }

    /// Creates or replaces the order record of `order.certificate_id`,
    /// stamping `updated_at`.
    pub async fn save_acme_order(&self, order: &AcmeOrder) -> Result<AcmeOrder, WriteError> {
        let names = serde_json::to_string(&order.domain_names)
            .map_err(|e| WriteError::Corrupt(e.to_string()))?;
        let row: OrderRow = sqlx::query_as(concat!(
            "INSERT INTO acme_orders (",
            order_columns!(),
            ")
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
             ON CONFLICT (certificate_id) DO UPDATE SET
                domain_names = excluded.domain_names, challenge = excluded.challenge,
                dns_provider_id = excluded.dns_provider_id, status = excluded.status,
                error = excluded.error, attempts = excluded.attempts,
                next_attempt_at = excluded.next_attempt_at, not_after = excluded.not_after,
                renew_at = excluded.renew_at, issued_at = excluded.issued_at,
                updated_at = excluded.updated_at
             RETURNING ",
            order_columns!()
        ))
        .bind(order.certificate_id)
        .bind(names)
        .bind(&order.challenge)
        .bind(order.dns_provider_id)
        .bind(&order.status)
        .bind(&order.error)
        .bind(order.attempts)
        .bind(order.next_attempt_at)
        .bind(order.not_after)
        .bind(order.renew_at)
        .bind(order.issued_at)
        .bind(timestamp())
        .fetch_one(self.$write())
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(d) if d.is_check_violation() => {
                WriteError::field("status", format!("not a valid order: {d}"))
            }
            _ => WriteError::from(e),
        })?;
        row.try_into()
    }

    /// The order record of a certificate.
    pub async fn acme_order(&self, certificate_id: Id) -> Result<Option<AcmeOrder>, WriteError> {
        let row: Option<OrderRow> = sqlx::query_as(concat!(
            "SELECT ",
            order_columns!(),
            " FROM acme_orders WHERE certificate_id = $1"
        ))
        .bind(certificate_id)
        .fetch_optional(self.$read())
        .await?;
        row.map(AcmeOrder::try_from).transpose()
    }

    /// Every order record, by certificate id.
    pub async fn list_acme_orders(&self) -> Result<Vec<AcmeOrder>, WriteError> {
        let rows: Vec<OrderRow> = sqlx::query_as(concat!(
            "SELECT ",
            order_columns!(),
            " FROM acme_orders ORDER BY certificate_id"
        ))
        .fetch_all(self.$read())
        .await?;
        rows.into_iter().map(AcmeOrder::try_from).collect()
    }

    /// Deletes the order record of a certificate; `false` when there was
    /// none.
    pub async fn delete_acme_order(&self, certificate_id: Id) -> Result<bool, WriteError> {
        let done = sqlx::query("DELETE FROM acme_orders WHERE certificate_id = $1")
            .bind(certificate_id)
            .execute(self.$write())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Stores a new DNS provider. Fails with a field error on `name` when it
    /// is taken.
    pub async fn create_dns_provider(
        &self,
        p: &DnsProviderRecord,
    ) -> Result<DnsProviderRecord, WriteError> {
        let now = timestamp();
        sqlx::query_as(
            "INSERT INTO acme_dns_providers (name, kind, spec, propagation_seconds, created_at,
                updated_at)
             VALUES ($1, $2, $3, $4, $5, $5)
             RETURNING id, name, kind, spec, propagation_seconds, created_at, updated_at",
        )
        .bind(&p.name)
        .bind(&p.kind)
        .bind(&p.spec)
        .bind(p.propagation_seconds)
        .bind(now)
        .fetch_one(self.$write())
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                WriteError::field("name", format!("a DNS provider named {} exists", p.name))
            } else {
                e.into()
            }
        })
    }

    /// Replaces a DNS provider's name, kind, spec and propagation wait;
    /// `None` when there is no such provider.
    pub async fn update_dns_provider(
        &self,
        p: &DnsProviderRecord,
    ) -> Result<Option<DnsProviderRecord>, WriteError> {
        let row: Option<DnsProviderRecord> = sqlx::query_as(
            "UPDATE acme_dns_providers
             SET name = $2, kind = $3, spec = $4, propagation_seconds = $5, updated_at = $6
             WHERE id = $1
             RETURNING id, name, kind, spec, propagation_seconds, created_at, updated_at",
        )
        .bind(p.id)
        .bind(&p.name)
        .bind(&p.kind)
        .bind(&p.spec)
        .bind(p.propagation_seconds)
        .bind(timestamp())
        .fetch_optional(self.$write())
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                WriteError::field("name", format!("a DNS provider named {} exists", p.name))
            } else {
                e.into()
            }
        })?;
        Ok(row)
    }

    /// One DNS provider.
    pub async fn dns_provider(&self, id: Id) -> Result<Option<DnsProviderRecord>, WriteError> {
        let row: Option<DnsProviderRecord> = sqlx::query_as(
            "SELECT id, name, kind, spec, propagation_seconds, created_at, updated_at
             FROM acme_dns_providers WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.$read())
        .await?;
        Ok(row)
    }

    /// Every DNS provider, by id.
    pub async fn list_dns_providers(&self) -> Result<Vec<DnsProviderRecord>, WriteError> {
        Ok(sqlx::query_as(
            "SELECT id, name, kind, spec, propagation_seconds, created_at, updated_at
             FROM acme_dns_providers ORDER BY id",
        )
        .fetch_all(self.$read())
        .await?)
    }

    /// Deletes a DNS provider unless an order uses it.
    pub async fn delete_dns_provider(&self, id: Id) -> Result<DnsProviderDeletion, WriteError> {
        let user: Option<Id> = sqlx::query_scalar(
            "SELECT certificate_id FROM acme_orders WHERE dns_provider_id = $1 LIMIT 1",
        )
        .bind(id)
        .fetch_optional(self.$write())
        .await?;
        if let Some(cert) = user {
            return Ok(DnsProviderDeletion::InUse(cert));
        }
        let done = sqlx::query("DELETE FROM acme_dns_providers WHERE id = $1")
            .bind(id)
            .execute(self.$write())
            .await?;
        Ok(if done.rows_affected() == 0 {
            DnsProviderDeletion::NotFound
        } else {
            DnsProviderDeletion::Deleted
        })
    }

    /// ACME settings set at run time, as `(name, value)` pairs.
    pub async fn acme_settings(&self) -> Result<Vec<(String, String)>, WriteError> {
        Ok(
            sqlx::query_as("SELECT name, value FROM acme_settings ORDER BY name")
                .fetch_all(self.$read())
                .await?,
        )
    }

    /// Replaces the run-time ACME settings with `values` in one transaction.
    pub async fn replace_acme_settings(
        &self,
        values: &[(String, String)],
    ) -> Result<(), WriteError> {
        let mut tx = self.$write().begin().await?;
        sqlx::query("DELETE FROM acme_settings")
            .execute(&mut *tx)
            .await?;
        for (k, v) in values {
            sqlx::query("INSERT INTO acme_settings (name, value) VALUES ($1, $2)")
                .bind(k)
                .bind(v)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
    };
}

acme_records!(SqliteStore, read_pool, write_pool);
#[cfg(feature = "postgres")]
acme_records!(crate::postgres::PostgresStore, pool, pool);

/// The database's clock in unix ms, in SQL.
#[cfg(feature = "postgres")]
macro_rules! pg_now_ms {
    () => {
        "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT"
    };
}

/// A pending HTTP-01 challenge as stored for every node.
#[cfg(feature = "postgres")]
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
#[non_exhaustive]
pub struct StoredToken {
    /// The challenge token (the last path segment the CA asks for).
    pub token: String,
    /// The answer.
    pub key_authorization: String,
    /// Increases with every publication.
    pub serial: i64,
}

#[cfg(feature = "postgres")]
impl crate::postgres::PostgresStore {
    /// Takes the lease `name` for `holder` for `ttl_ms` milliseconds (by the
    /// database's clock), or renews it when `holder` has it. Returns
    /// whether `holder` holds it now: `false` while another holder's lease
    /// has not expired.
    pub async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl_ms: i64,
    ) -> Result<bool, WriteError> {
        let got: Option<String> = sqlx::query_scalar(concat!(
            "INSERT INTO cluster_leases (name, holder, expires_at) VALUES ($1, $2, ",
            pg_now_ms!(),
            " + $3)
             ON CONFLICT (name) DO UPDATE
                SET holder = excluded.holder, expires_at = excluded.expires_at
                WHERE cluster_leases.holder = excluded.holder
                   OR cluster_leases.expires_at < ",
            pg_now_ms!(),
            " RETURNING holder"
        ))
        .bind(name)
        .bind(holder)
        .bind(ttl_ms)
        .fetch_optional(self.pool())
        .await?;
        Ok(got.as_deref() == Some(holder))
    }

    /// Gives the lease `name` up if `holder` has it, so another node can
    /// take it at once.
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<(), WriteError> {
        sqlx::query("DELETE FROM cluster_leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Who holds the lease `name` now, if anyone (an expired lease is held
    /// by no one).
    pub async fn lease_holder(&self, name: &str) -> Result<Option<String>, WriteError> {
        Ok(sqlx::query_scalar(concat!(
            "SELECT holder FROM cluster_leases WHERE name = $1 AND expires_at >= ",
            pg_now_ms!()
        ))
        .bind(name)
        .fetch_optional(self.pool())
        .await?)
    }

    /// Publishes an HTTP-01 answer for every node; returns its serial.
    pub async fn publish_http01_token(
        &self,
        token: &str,
        key_authorization: &str,
    ) -> Result<i64, WriteError> {
        Ok(sqlx::query_scalar(
            "INSERT INTO acme_http01_tokens (token, key_authorization) VALUES ($1, $2)
             ON CONFLICT (token) DO UPDATE
                SET key_authorization = excluded.key_authorization,
                    serial = nextval(pg_get_serial_sequence('acme_http01_tokens', 'serial'))
             RETURNING serial",
        )
        .bind(token)
        .bind(key_authorization)
        .fetch_one(self.pool())
        .await?)
    }

    /// Withdraws an HTTP-01 answer from every node.
    pub async fn withdraw_http01_token(&self, token: &str) -> Result<(), WriteError> {
        sqlx::query("DELETE FROM acme_http01_tokens WHERE token = $1")
            .bind(token)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Every pending HTTP-01 answer.
    pub async fn http01_tokens(&self) -> Result<Vec<StoredToken>, WriteError> {
        Ok(sqlx::query_as(
            "SELECT token, key_authorization, serial FROM acme_http01_tokens ORDER BY serial",
        )
        .fetch_all(self.pool())
        .await?)
    }

    /// Records that node `node_id` serves the HTTP-01 answers up to
    /// `serial`.
    pub async fn http01_tokens_loaded(&self, node_id: &str, serial: i64) -> Result<(), WriteError> {
        sqlx::query(
            "UPDATE cluster_nodes SET acme_tokens_loaded = GREATEST(acme_tokens_loaded, $2)
             WHERE id = $1",
        )
        .bind(node_id)
        .bind(serial)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// How many nodes other than `node_id`, seen within `live_ms`, have not
    /// loaded the HTTP-01 answer with `serial` yet.
    pub async fn http01_tokens_lagging(
        &self,
        node_id: &str,
        serial: i64,
        live_ms: i64,
    ) -> Result<i64, WriteError> {
        Ok(sqlx::query_scalar(concat!(
            "SELECT COUNT(*) FROM cluster_nodes
             WHERE id <> $1 AND acme_tokens_loaded < $2 AND last_seen >= ",
            pg_now_ms!(),
            " - $3"
        ))
        .bind(node_id)
        .bind(serial)
        .bind(live_ms)
        .fetch_one(self.pool())
        .await?)
    }

    /// Keeps this node's answers to HTTP-01 challenges equal to the ones in
    /// the database: calls `apply` with every pending token when the
    /// database announces a change (and every `safety_poll`, and after a
    /// reconnection), then records for node `node_id` the newest serial
    /// loaded. Runs until the store is closed or the task is aborted.
    pub fn sync_http01_tokens(
        &self,
        node_id: String,
        safety_poll: std::time::Duration,
        apply: impl Fn(&[StoredToken]) + Send + Sync + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let store = self.clone();
        tokio::spawn(async move {
            let mut warned = false;
            loop {
                if store.pool().is_closed() {
                    return;
                }
                let channel = match sqlx::query_scalar::<_, String>("SELECT current_schema()")
                    .fetch_one(store.pool())
                    .await
                {
                    Ok(schema) => format!("ppm_acme_tokens.{schema}"),
                    Err(e) => {
                        if !warned {
                            tracing::warn!(error = %e, "ACME: watching challenge tokens failed; retrying");
                            warned = true;
                        }
                        tokio::time::sleep(safety_poll).await;
                        continue;
                    }
                };
                let listener = async {
                    let mut l = sqlx::postgres::PgListener::connect_with(store.pool()).await?;
                    l.eager_reconnect(false);
                    l.listen(&channel).await?;
                    Ok::<_, sqlx::Error>(l)
                }
                .await;
                let mut listener = match listener {
                    Ok(l) => l,
                    Err(e) => {
                        if !warned {
                            tracing::warn!(error = %e, "ACME: watching challenge tokens failed; retrying");
                            warned = true;
                        }
                        tokio::time::sleep(safety_poll).await;
                        continue;
                    }
                };
                warned = false;
                loop {
                    match store.http01_tokens().await {
                        Ok(tokens) => {
                            apply(&tokens);
                            if let Some(max) = tokens.iter().map(|t| t.serial).max() {
                                if let Err(e) = store.http01_tokens_loaded(&node_id, max).await {
                                    tracing::debug!(error = %e, "ACME: recording loaded tokens failed");
                                }
                            }
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, "ACME: reading challenge tokens failed");
                        }
                    }
                    match tokio::time::timeout(safety_poll, listener.try_recv()).await {
                        Err(_) | Ok(Ok(Some(_))) => {}
                        Ok(Ok(None)) | Ok(Err(_)) => break,
                    }
                }
                tokio::time::sleep(safety_poll.min(std::time::Duration::from_millis(500))).await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    async fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open_dir(dir.path()).await.unwrap();
        (dir, s)
    }

    #[tokio::test]
    async fn accounts_are_created_once() {
        let (_d, s) = store().await;
        assert!(s
            .acme_account("https://ca/dir", "", "")
            .await
            .unwrap()
            .is_none());
        let a = s
            .save_acme_account("https://ca/dir", "", "", "{\"a\":1}")
            .await
            .unwrap();
        let b = s
            .save_acme_account("https://ca/dir", "", "", "{\"b\":2}")
            .await
            .unwrap();
        assert_eq!(a, b, "the first stored account wins");
        let other = s
            .save_acme_account("https://ca/dir", "x@example.com", "", "{}")
            .await
            .unwrap();
        assert_ne!(other.id, a.id);
    }

    #[tokio::test]
    async fn orders_round_trip_and_providers_in_use_are_kept() {
        let (_d, s) = store().await;
        let p = s
            .create_dns_provider(&DnsProviderRecord::new("cf", "cloudflare", "{}", 10))
            .await
            .unwrap();
        let dup = s
            .create_dns_provider(&DnsProviderRecord::new("cf", "command", "{}", 0))
            .await
            .unwrap_err();
        assert!(matches!(dup, WriteError::Invalid(_)), "{dup:?}");
        let mut o = AcmeOrder::new(7, vec!["*.b.test".into()], "dns-01", Some(p.id));
        s.save_acme_order(&o).await.unwrap();
        o.status = "failed".into();
        o.error = Some("boom".into());
        o.attempts = 2;
        let saved = s.save_acme_order(&o).await.unwrap();
        assert_eq!(saved.status, "failed");
        assert_eq!(s.acme_order(7).await.unwrap().unwrap().attempts, 2);
        o.status = "nonsense".into();
        assert!(s.save_acme_order(&o).await.is_err());
        assert_eq!(
            s.delete_dns_provider(p.id).await.unwrap(),
            DnsProviderDeletion::InUse(7)
        );
        assert!(s.delete_acme_order(7).await.unwrap());
        assert_eq!(
            s.delete_dns_provider(p.id).await.unwrap(),
            DnsProviderDeletion::Deleted
        );
        assert_eq!(
            s.delete_dns_provider(p.id).await.unwrap(),
            DnsProviderDeletion::NotFound
        );
        assert!(s.list_dns_providers().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn settings_replace_as_a_whole() {
        let (_d, s) = store().await;
        s.replace_acme_settings(&[("email".into(), "a@b.test".into())])
            .await
            .unwrap();
        s.replace_acme_settings(&[("directory_url".into(), "https://x/".into())])
            .await
            .unwrap();
        assert_eq!(
            s.acme_settings().await.unwrap(),
            vec![("directory_url".to_string(), "https://x/".to_string())]
        );
    }
}
