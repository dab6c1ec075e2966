//! The ACME manager: issues and renews certificates from any RFC 8555 CA
//! (Let's Encrypt, ZeroSSL, step-ca...) with HTTP-01 or DNS-01, in the
//! background.
//!
//! - An order is a record per ACME certificate (`acme_orders`), with a
//!   status the API shows: `pending`, `validating`, `issued` or `failed`
//!   (with the CA's error text). Orders run as tasks of [`AcmeManager::run`];
//!   no API request waits for a CA.
//! - An issued certificate is written to the config [`Certificate`] through
//!   the same checked write path as the API (compile check, one store
//!   transaction, engine apply, audit as the system), so the next TLS
//!   handshake serves it.
//! - A failed order leaves the certificate as it was (an earlier
//!   certificate keeps serving) and is retried with exponential backoff.
//! - Every hour the manager renews certificates whose remaining lifetime is
//!   under a third of their lifetime or 30 days, whichever comes first.
//! - HTTP-01 key authorizations are published through [`Http01Tokens`]
//!   (served by the `AcmeChallenge` filter); DNS-01 TXT records through a
//!   [`dns::DnsProvider`]. Whether this process may run orders at all is
//!   asked of an [`OrderLease`], so a cluster can elect one runner.

pub mod api;
pub mod client;
#[cfg(feature = "postgres")]
pub mod cluster;
pub mod dns;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, ExternalAccountKey,
    Identifier, NewAccount, NewOrder, OrderStatus, Problem, RetryPolicy,
};
use ppm_core::async_trait;
use ppm_core::config::{Certificate, CertificateSource, Config, Id};
use ppm_core::engine::EngineHandle;
use ppm_core::store::ConfigStore;
use ppm_filters::AcmeTokens;
use ppm_store::accounts::AuditEntry;
use ppm_store::acme::AcmeOrder;
use ppm_store::{AnyStore, ConfigWriter, Entity, WriteContext};
use serde::Serialize;
use tokio::sync::Notify;

use self::client::HttpsClient;
use self::dns::DnsProviderSpec;

/// Let's Encrypt's production directory, the default.
pub const LETS_ENCRYPT_DIRECTORY: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// Let's Encrypt's staging directory (untrusted certificates, high limits).
pub const LETS_ENCRYPT_STAGING_DIRECTORY: &str =
    "https://acme-staging-v02.api.letsencrypt.org/directory";

/// The actor recorded in the history and audit log for the manager's writes.
pub const SYSTEM_ACTOR: &str = "system (ACME)";

/// Where HTTP-01 key authorizations are published while an order is
/// pending. The in-memory [`AcmeTokens`] serves one process; a cluster
/// publishes to shared storage so every node answers.
#[async_trait]
pub trait Http01Tokens: Send + Sync + 'static {
    /// Makes `key_authorization` the answer for `token`.
    async fn publish(&self, token: &str, key_authorization: &str) -> Result<(), String>;
    /// Stops answering for `token`.
    async fn withdraw(&self, token: &str);
}

#[async_trait]
impl Http01Tokens for AcmeTokens {
    async fn publish(&self, token: &str, key_authorization: &str) -> Result<(), String> {
        self.insert(token, key_authorization)
            .map_err(|e| format!("publishing the HTTP-01 token: {e}"))
    }
    async fn withdraw(&self, token: &str) {
        self.remove(token);
    }
}

/// Whether this process may run ACME orders now. A single process always
/// may; a cluster holds a leader lease so one node talks to the CA.
#[async_trait]
pub trait OrderLease: Send + Sync + 'static {
    /// Asked before each round of orders.
    async fn may_run_orders(&self) -> bool;

    /// How soon to ask again after [`may_run_orders`](Self::may_run_orders)
    /// said no. Default 30 s.
    fn retry_after(&self) -> Duration {
        Duration::from_secs(30)
    }

    /// Called once when the manager stops, so another node can take over at
    /// once. Default: nothing.
    async fn release(&self) {}

    /// How often the order records are reread even when nothing woke the
    /// manager: other processes (cluster nodes taking API requests) add
    /// orders this one is not told about. Default: never.
    fn poll_every(&self) -> Option<Duration> {
        None
    }
}

/// The lease of a single process: always granted.
#[derive(Debug, Clone, Copy, Default)]
pub struct SingleProcess;

#[async_trait]
impl OrderLease for SingleProcess {
    async fn may_run_orders(&self) -> bool {
        true
    }
}

/// Which CA to use and how to talk to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeSettings {
    /// The directory URL.
    pub directory_url: String,
    /// Contact email given to the CA.
    pub email: Option<String>,
    /// A PEM file of extra roots trusted for the CA's HTTPS endpoint.
    pub ca_roots: Option<PathBuf>,
    /// External account binding key id.
    pub eab_key_id: Option<String>,
    /// External account binding HMAC key, base64url.
    pub eab_hmac: Option<String>,
}

impl Default for AcmeSettings {
    fn default() -> Self {
        AcmeSettings {
            directory_url: LETS_ENCRYPT_DIRECTORY.into(),
            email: None,
            ca_roots: None,
            eab_key_id: None,
            eab_hmac: None,
        }
    }
}

/// Setting names as stored and shown by the API.
pub const SETTING_NAMES: [&str; 5] = [
    "directory_url",
    "email",
    "ca_roots",
    "eab_key_id",
    "eab_hmac",
];

impl AcmeSettings {
    /// Checks the settings, naming the setting (API field names) on error.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let url = &self.directory_url;
        if !url.starts_with("https://") || ppm_core::validate::http_url(url).is_err() {
            return Err(("directory_url", "must be an https:// URL".into()));
        }
        if let Some(e) = &self.email {
            crate::auth::validate_email(e).map_err(|m| ("email", m.to_string()))?;
        }
        if let Some(p) = &self.ca_roots {
            client::read_roots(p).map_err(|m| ("ca_roots", m))?;
        }
        match (&self.eab_key_id, &self.eab_hmac) {
            (None, None) => {}
            (Some(k), Some(h)) => {
                if k.is_empty() || k.len() > 256 || !k.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(("eab_key_id", "must be 1 to 256 visible characters".into()));
                }
                decode_hmac(h).map_err(|m| ("eab_hmac", m))?;
            }
            (Some(_), None) => {
                return Err(("eab_hmac", "is required with eab_key_id".into()));
            }
            (None, Some(_)) => {
                return Err(("eab_key_id", "is required with eab_hmac".into()));
            }
        }
        Ok(())
    }

    /// These settings with the stored overrides applied.
    pub fn with_overrides(&self, overrides: &[(String, String)]) -> AcmeSettings {
        let mut s = self.clone();
        for (k, v) in overrides {
            match k.as_str() {
                "directory_url" => s.directory_url = v.clone(),
                "email" => s.email = Some(v.clone()).filter(|v| !v.is_empty()),
                "ca_roots" => s.ca_roots = Some(PathBuf::from(v)).filter(|_| !v.is_empty()),
                "eab_key_id" => s.eab_key_id = Some(v.clone()).filter(|v| !v.is_empty()),
                "eab_hmac" => s.eab_hmac = Some(v.clone()).filter(|v| !v.is_empty()),
                _ => {}
            }
        }
        s
    }
}

/// Decodes an EAB HMAC key (base64url as CAs hand it out; padded or
/// standard base64 accepted too).
pub fn decode_hmac(h: &str) -> Result<Vec<u8>, String> {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
    let key = URL_SAFE_NO_PAD
        .decode(h)
        .or_else(|_| URL_SAFE.decode(h))
        .or_else(|_| STANDARD.decode(h))
        .map_err(|_| "must be the base64url key the CA gave".to_string())?;
    if key.is_empty() {
        return Err("must not be empty".into());
    }
    Ok(key)
}

/// Timing of retries, renewals and validation.
#[derive(Debug, Clone, Copy)]
pub struct AcmeOptions {
    /// Delay before the first retry of a failed order; doubled per failure.
    pub retry_base: Duration,
    /// Longest delay between retries.
    pub retry_max: Duration,
    /// How often issued certificates are checked for renewal.
    pub renew_check: Duration,
    /// Longest an order may take, validation and issuance included.
    pub order_timeout: Duration,
}

impl Default for AcmeOptions {
    fn default() -> Self {
        AcmeOptions {
            retry_base: Duration::from_secs(300),
            retry_max: Duration::from_secs(86_400),
            renew_check: Duration::from_secs(3600),
            order_timeout: Duration::from_secs(600),
        }
    }
}

/// The order state of an ACME certificate, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct OrderView {
    /// `pending`, `validating`, `issued` or `failed`.
    pub status: String,
    /// Why the last attempt failed (the CA's error text), if it did.
    pub error: Option<String>,
    /// `http-01` or `dns-01`.
    pub challenge: String,
    /// The DNS provider used for `dns-01`.
    pub dns_provider_id: Option<Id>,
    /// Failed attempts since the last success.
    pub attempts: i64,
    /// When the next attempt (retry or renewal order) is due, unix ms.
    pub next_attempt_at: Option<i64>,
    /// When the issued certificate will be renewed, unix ms.
    pub renew_at: Option<i64>,
    /// When the certificate was last issued, unix ms.
    pub issued_at: Option<i64>,
}

impl From<&AcmeOrder> for OrderView {
    fn from(o: &AcmeOrder) -> Self {
        OrderView {
            status: o.status.clone(),
            error: o.error.clone(),
            challenge: o.challenge.clone(),
            dns_provider_id: o.dns_provider_id,
            attempts: o.attempts,
            next_attempt_at: o.next_attempt_at,
            renew_at: o.renew_at,
            issued_at: o.issued_at,
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The delay before retry number `attempts` (1-based): `base * 2^(n-1)`,
/// at most `max`.
pub fn backoff(attempts: i64, base: Duration, max: Duration) -> Duration {
    let exp = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    base.checked_mul(1u32 << exp).unwrap_or(max).min(max)
}

/// When a certificate valid from `not_before` to `not_after` (unix ms) is
/// renewed: when a third of its lifetime remains or 30 days, whichever
/// comes first; for certificates shorter than 60 days, at half their
/// lifetime at the latest, so short-lived certificates do not renew in a
/// loop.
pub fn renew_at(not_before: i64, not_after: i64) -> i64 {
    const DAY: i64 = 86_400_000;
    let lifetime = (not_after - not_before).max(0);
    let margin = (lifetime / 3).max((30 * DAY).min(lifetime / 2));
    not_after - margin
}

/// Validity of the first certificate of a PEM chain, as unix ms.
pub fn validity(pem: &str) -> Result<(i64, i64), String> {
    let x = openssl::x509::X509::from_pem(pem.as_bytes())
        .map_err(|e| format!("the issued certificate does not parse: {e}"))?;
    let epoch = openssl::asn1::Asn1Time::from_unix(0).map_err(|e| e.to_string())?;
    let ms = |t: &openssl::asn1::Asn1TimeRef| -> Result<i64, String> {
        let d = epoch.diff(t).map_err(|e| e.to_string())?;
        Ok((i64::from(d.days) * 86_400 + i64::from(d.secs)) * 1000)
    };
    Ok((ms(x.not_before())?, ms(x.not_after())?))
}

fn problem_text(p: &Problem) -> String {
    let mut s = p
        .detail
        .clone()
        .unwrap_or_else(|| "the CA gave no detail".into());
    if let Some(t) = &p.r#type {
        s.push_str(&format!(
            " ({})",
            t.trim_start_matches("urn:ietf:params:acme:error:")
        ));
    }
    for sub in &p.subproblems {
        s.push_str(&format!("; {sub}"));
    }
    if p.r#type
        .as_deref()
        .is_some_and(|t| t.ends_with(":externalAccountRequired"))
    {
        s.push_str(
            "; this CA requires external account binding: set the EAB key id and HMAC \
             (--acme-eab-kid and --acme-eab-hmac, or eab_key_id and eab_hmac in /api/settings/acme)",
        );
    }
    s
}

fn acme_err(what: &str, e: instant_acme::Error) -> String {
    match e {
        instant_acme::Error::Api(p) => format!("{what}: {}", problem_text(&p)),
        other => format!("{what}: {}", crate::api::error::display_chain(&other)),
    }
}

/// Publishes challenges and removes them again once the authorizations
/// are final.
#[derive(Default)]
struct Published {
    tokens: Vec<String>,
    txt: Vec<(String, String)>,
}

type AccountKey = (String, String, String, Option<PathBuf>);

/// Issues and renews ACME certificates in the background. See the module
/// docs.
pub struct AcmeManager {
    store: Arc<AnyStore>,
    engine: EngineHandle,
    write_lock: Arc<tokio::sync::Mutex<()>>,
    tokens: Arc<dyn Http01Tokens>,
    lease: Arc<dyn OrderLease>,
    defaults: AcmeSettings,
    options: AcmeOptions,
    wake: Notify,
    running: std::sync::Mutex<HashSet<Id>>,
    account: tokio::sync::Mutex<Option<(AccountKey, Account, HttpsClient)>>,
    /// The order state of every ACME certificate, for the API's views.
    statuses: std::sync::RwLock<HashMap<Id, OrderView>>,
}

impl std::fmt::Debug for AcmeManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcmeManager")
            .field("defaults", &self.defaults.directory_url)
            .finish_non_exhaustive()
    }
}

impl AcmeManager {
    /// A manager writing certificates to `store` and applying them to
    /// `engine`, serialised with the API's writes by `write_lock`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<AnyStore>,
        engine: EngineHandle,
        write_lock: Arc<tokio::sync::Mutex<()>>,
        tokens: Arc<dyn Http01Tokens>,
        lease: Arc<dyn OrderLease>,
        defaults: AcmeSettings,
        options: AcmeOptions,
    ) -> Self {
        AcmeManager {
            store,
            engine,
            write_lock,
            tokens,
            lease,
            defaults,
            options,
            wake: Notify::new(),
            running: std::sync::Mutex::new(HashSet::new()),
            account: tokio::sync::Mutex::new(None),
            statuses: std::sync::RwLock::new(HashMap::new()),
        }
    }

    /// Loads the order states the API shows (at startup).
    pub async fn load_statuses(&self) -> Result<(), String> {
        let orders = self
            .store
            .list_acme_orders()
            .await
            .map_err(|e| format!("reading ACME orders: {e}"))?;
        if let Ok(mut m) = self.statuses.write() {
            m.clear();
            for o in &orders {
                m.insert(o.certificate_id, OrderView::from(o));
            }
        }
        Ok(())
    }

    /// Rereads the order states when other nodes may have changed them (on
    /// PostgreSQL, the leader runs the orders); a no-op on SQLite, where
    /// this process wrote them all.
    pub async fn refresh_statuses(&self) {
        if self.store.as_sqlite().is_some() {
            return;
        }
        if let Err(e) = self.load_statuses().await {
            tracing::debug!(error = %e, "ACME: rereading the order states failed");
        }
    }

    /// The order state of certificate `id` as last recorded by this
    /// process, without touching the store (for certificate views).
    pub fn cached_status(&self, id: Id) -> Option<OrderView> {
        self.statuses.read().ok().and_then(|m| m.get(&id).cloned())
    }

    /// Saves an order record and the state the API shows.
    async fn save(&self, order: &AcmeOrder) -> Result<AcmeOrder, String> {
        let saved = self
            .records()?
            .save_acme_order(order)
            .await
            .map_err(|e| e.to_string())?;
        if let Ok(mut m) = self.statuses.write() {
            m.insert(saved.certificate_id, OrderView::from(&saved));
        }
        Ok(saved)
    }

    /// Forgets the order of a deleted certificate.
    pub async fn certificate_deleted(&self, id: Id) {
        if let Ok(mut m) = self.statuses.write() {
            m.remove(&id);
        }
        if let Err(e) = match self.records() {
            Ok(r) => r
                .delete_acme_order(id)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Err(e) => Err(e),
        } {
            tracing::warn!(error = %e, certificate = id, "ACME: deleting the order failed");
        }
    }

    /// The settings from the command line and environment.
    pub fn defaults(&self) -> &AcmeSettings {
        &self.defaults
    }

    /// The settings in effect: the command line's, overridden by those set
    /// through the API.
    pub async fn settings(&self) -> Result<AcmeSettings, String> {
        let overrides = self
            .records()?
            .acme_settings()
            .await
            .map_err(|e| format!("reading the ACME settings: {e}"))?;
        Ok(self.defaults.with_overrides(&overrides))
    }

    /// Where ACME accounts, orders, DNS providers and settings are kept:
    /// the config store (on PostgreSQL, shared by every node). Never fails
    /// today; the `Result` leaves room for stores without ACME records.
    pub fn records(&self) -> Result<&AnyStore, String> {
        Ok(&self.store)
    }

    /// Asks the background task to look at the orders now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The order state of certificate `id`, if it is ACME-managed.
    pub async fn order_status(&self, id: Id) -> Result<Option<OrderView>, String> {
        self.records()?
            .acme_order(id)
            .await
            .map(|o| o.as_ref().map(OrderView::from))
            .map_err(|e| e.to_string())
    }

    /// Schedules an order for certificate `id` now (a new certificate, a
    /// renewal on demand, or a retry the operator does not want to wait
    /// for). The status becomes `pending`; the certificate keeps serving
    /// until the new one is issued.
    pub async fn schedule_now(&self, mut order: AcmeOrder) -> Result<AcmeOrder, String> {
        if !self.is_running(order.certificate_id) {
            order.status = "pending".into();
        }
        order.next_attempt_at = Some(now_ms());
        let saved = self.save(&order).await?;
        self.wake();
        Ok(saved)
    }

    fn is_running(&self, id: Id) -> bool {
        self.running
            .lock()
            .map(|r| r.contains(&id))
            .unwrap_or(false)
    }

    /// Runs orders and renewals until `stop` completes.
    pub async fn run(self: Arc<Self>, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        let mut next_renew_check = tokio::time::Instant::now();
        loop {
            let now = tokio::time::Instant::now();
            if now >= next_renew_check {
                // A node that may not run orders asks again soon, so the
                // node taking over checks renewals at once.
                next_renew_check = now
                    + if self.check_renewals().await {
                        self.options.renew_check
                    } else {
                        self.lease.retry_after()
                    };
            }
            let until_due = self.clone().dispatch().await;
            let sleep_for = until_due
                .unwrap_or(self.options.renew_check)
                .min(next_renew_check.saturating_duration_since(now))
                .min(self.lease.poll_every().unwrap_or(Duration::MAX))
                .max(Duration::from_millis(50));
            tokio::select! {
                _ = &mut stop => break,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(sleep_for) => {}
            }
        }
        self.lease.release().await;
    }

    /// Marks issued certificates due for renewal as pending; `false` when
    /// this process may not run orders now.
    async fn check_renewals(&self) -> bool {
        // Only the node that runs orders schedules renewals.
        if !self.lease.may_run_orders().await {
            return false;
        }
        let Ok(records) = self.records() else {
            return true;
        };
        let orders = match records.list_acme_orders().await {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(error = %e, "ACME: reading orders failed");
                return true;
            }
        };
        let now = now_ms();
        for mut o in orders {
            if o.status == "issued" && o.renew_at.is_some_and(|r| r <= now) {
                tracing::info!(certificate = o.certificate_id, "ACME: renewing");
                o.status = "pending".into();
                o.next_attempt_at = Some(now);
                if let Err(e) = self.save(&o).await {
                    tracing::warn!(error = %e, "ACME: scheduling a renewal failed");
                }
            }
        }
        true
    }

    /// Starts every due order not already running; returns how long until
    /// the next one is due.
    async fn dispatch(self: Arc<Self>) -> Option<Duration> {
        if !self.lease.may_run_orders().await {
            return Some(self.lease.retry_after());
        }
        let Ok(records) = self.records() else {
            return None;
        };
        let orders = match records.list_acme_orders().await {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(error = %e, "ACME: reading orders failed");
                return Some(Duration::from_secs(30));
            }
        };
        let now = now_ms();
        let mut next: Option<i64> = None;
        for o in orders {
            if o.status == "issued" {
                continue;
            }
            let Some(due) = o.next_attempt_at else {
                continue;
            };
            if due > now {
                next = Some(next.map_or(due, |n| n.min(due)));
                continue;
            }
            let id = o.certificate_id;
            let fresh = self
                .running
                .lock()
                .map(|mut r| r.insert(id))
                .unwrap_or(false);
            if !fresh {
                continue;
            }
            let me = self.clone();
            tokio::spawn(async move {
                me.run_order(id).await;
                if let Ok(mut r) = me.running.lock() {
                    r.remove(&id);
                }
                me.wake();
            });
        }
        next.map(|n| Duration::from_millis(u64::try_from(n - now).unwrap_or(0)))
    }

    /// One attempt at one order, recording the outcome.
    async fn run_order(&self, id: Id) {
        let Ok(records) = self.records() else {
            return;
        };
        let Ok(Some(mut order)) = records.acme_order(id).await else {
            return;
        };
        let exists = match self.store.load().await {
            Ok(s) => s.config.certificates.iter().any(|c| c.id == id),
            Err(e) => {
                tracing::warn!(error = %e, "ACME: reading the config failed");
                return;
            }
        };
        if !exists {
            // The certificate was deleted: its order goes too.
            self.certificate_deleted(id).await;
            return;
        }
        order.status = "validating".into();
        if let Err(e) = self.save(&order).await {
            tracing::warn!(error = %e, "ACME: saving the order failed");
            return;
        }
        tracing::info!(certificate = id, names = ?order.domain_names, challenge = %order.challenge, "ACME: ordering");
        let outcome =
            match tokio::time::timeout(self.options.order_timeout, self.issue(&order)).await {
                Ok(Ok((chain, key))) => self.store_certificate(id, chain, key).await,
                Ok(Err(e)) => Err(e),
                Err(_) => Err(format!(
                    "the order did not complete within {} s",
                    self.options.order_timeout.as_secs()
                )),
            };
        let now = now_ms();
        match outcome {
            Ok((not_before, not_after)) => {
                order.status = "issued".into();
                order.error = None;
                order.attempts = 0;
                order.next_attempt_at = None;
                order.not_after = Some(not_after);
                order.renew_at = Some(renew_at(not_before, not_after));
                order.issued_at = Some(now);
                tracing::info!(certificate = id, "ACME: certificate issued");
            }
            Err(e) => {
                order.status = "failed".into();
                order.attempts += 1;
                let delay = backoff(
                    order.attempts,
                    self.options.retry_base,
                    self.options.retry_max,
                );
                order.next_attempt_at =
                    Some(now + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 2));
                tracing::warn!(certificate = id, attempts = order.attempts, retry_in_s = delay.as_secs(), error = %e, "ACME: order failed");
                order.error = Some(e);
            }
        }
        if let Err(e) = self.save(&order).await {
            tracing::warn!(error = %e, "ACME: saving the order failed");
        }
    }

    /// The account for the settings in effect, created once and stored.
    async fn account(&self, s: &AcmeSettings) -> Result<(Account, HttpsClient), String> {
        let key: AccountKey = (
            s.directory_url.clone(),
            s.email.clone().unwrap_or_default(),
            s.eab_key_id.clone().unwrap_or_default(),
            s.ca_roots.clone(),
        );
        let mut cache = self.account.lock().await;
        if let Some((k, a, h)) = &*cache {
            if *k == key {
                return Ok((a.clone(), h.clone()));
            }
        }
        let http = client::https_client(s.ca_roots.as_deref())?;
        let (dir, email, kid, _) = &key;
        let stored = self
            .records()?
            .acme_account(dir, email, kid)
            .await
            .map_err(|e| format!("reading the ACME account: {e}"))?;
        let account = match stored {
            Some(rec) => {
                let creds: AccountCredentials = serde_json::from_str(&rec.credentials)
                    .map_err(|e| format!("the stored ACME account is unreadable: {e}"))?;
                Account::builder_with_http(Box::new(http.clone()))
                    .from_credentials(creds)
                    .await
                    .map_err(|e| acme_err("restoring the ACME account", e))?
            }
            None => {
                let contact = s.email.as_ref().map(|e| format!("mailto:{e}"));
                let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
                let eab = match (&s.eab_key_id, &s.eab_hmac) {
                    (Some(k), Some(h)) => {
                        Some(ExternalAccountKey::new(k.clone(), &decode_hmac(h)?))
                    }
                    _ => None,
                };
                let (account, creds) = Account::builder_with_http(Box::new(http.clone()))
                    .create(
                        &NewAccount {
                            contact: &contacts,
                            terms_of_service_agreed: true,
                            only_return_existing: false,
                        },
                        dir.clone(),
                        eab.as_ref(),
                    )
                    .await
                    .map_err(|e| acme_err("creating the ACME account", e))?;
                let json = serde_json::to_string(&creds)
                    .map_err(|e| format!("saving the ACME account: {e}"))?;
                let saved = self
                    .records()?
                    .save_acme_account(dir, email, kid, &json)
                    .await
                    .map_err(|e| format!("saving the ACME account: {e}"))?;
                if saved.credentials == json {
                    account
                } else {
                    // Another process stored an account first: use that one.
                    let creds: AccountCredentials = serde_json::from_str(&saved.credentials)
                        .map_err(|e| format!("the stored ACME account is unreadable: {e}"))?;
                    Account::builder_with_http(Box::new(http.clone()))
                        .from_credentials(creds)
                        .await
                        .map_err(|e| acme_err("restoring the ACME account", e))?
                }
            }
        };
        *cache = Some((key, account.clone(), http.clone()));
        Ok((account, http))
    }

    /// Runs the ACME protocol for one order: returns the chain and key.
    async fn issue(&self, o: &AcmeOrder) -> Result<(String, String), String> {
        let settings = self.settings().await?;
        let (account, http) = self.account(&settings).await?;
        let (kind, provider, wait) = match o.challenge.as_str() {
            "dns-01" => {
                let pid = o
                    .dns_provider_id
                    .ok_or("a dns-01 order needs a DNS provider")?;
                let rec = self
                    .records()?
                    .dns_provider(pid)
                    .await
                    .map_err(|e| format!("DNS provider {pid}: {e}"))?
                    .ok_or_else(|| format!("DNS provider {pid} was deleted"))?;
                let spec: DnsProviderSpec = serde_json::from_str(&rec.spec)
                    .map_err(|e| format!("DNS provider {pid} is unreadable: {e}"))?;
                let wait = Duration::from_secs(u64::try_from(rec.propagation_seconds).unwrap_or(0));
                (ChallengeType::Dns01, Some(spec.provider(http)), wait)
            }
            _ => (ChallengeType::Http01, None, Duration::ZERO),
        };
        let identifiers: Vec<Identifier> = o
            .domain_names
            .iter()
            .map(|n| Identifier::Dns(n.clone()))
            .collect();
        let mut order = account
            .new_order(&NewOrder::new(&identifiers))
            .await
            .map_err(|e| acme_err("the CA refused the order", e))?;

        let mut published = Published::default();
        let validated = self
            .validate(&mut order, &kind, provider.as_deref(), wait, &mut published)
            .await;
        // The authorizations are final (or abandoned): withdraw everything.
        for t in &published.tokens {
            self.tokens.withdraw(t).await;
        }
        if let Some(p) = &provider {
            for (name, value) in &published.txt {
                if let Err(e) = p.clear_txt(name, value).await {
                    tracing::warn!(error = %e, record = %name, "ACME: removing a TXT record failed");
                }
            }
        }
        validated?;

        let key_pem = order
            .finalize()
            .await
            .map_err(|e| acme_err("finalizing the order", e))?;
        let chain = order
            .poll_certificate(&self.retry_policy())
            .await
            .map_err(|e| acme_err("downloading the certificate", e))?;
        Ok((chain, key_pem))
    }

    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy::new()
            .initial_delay(Duration::from_millis(250))
            .backoff(1.5)
            .timeout(Duration::from_secs(120))
    }

    async fn validate(
        &self,
        order: &mut instant_acme::Order,
        kind: &ChallengeType,
        provider: Option<&dyn dns::DnsProvider>,
        wait: Duration,
        published: &mut Published,
    ) -> Result<(), String> {
        let mut pending = 0usize;
        {
            let mut authzs = order.authorizations();
            while let Some(a) = authzs.next().await {
                let mut a = a.map_err(|e| acme_err("reading an authorization", e))?;
                let ident = a.identifier().to_string();
                match a.status {
                    AuthorizationStatus::Pending => {}
                    AuthorizationStatus::Valid => continue,
                    other => {
                        return Err(format!("the authorization for {ident} is {other:?}"));
                    }
                }
                let ch = a
                    .challenge(kind.clone())
                    .ok_or_else(|| format!("the CA offers no {kind:?} challenge for {ident}"))?;
                let ka = ch.key_authorization();
                match provider {
                    None => {
                        self.tokens.publish(&ch.token, ka.as_str()).await?;
                        published.tokens.push(ch.token.clone());
                    }
                    Some(p) => {
                        let name = format!("_acme-challenge.{}", ident.trim_start_matches("*."));
                        let value = ka.dns_value();
                        p.set_txt(&name, &value).await?;
                        published.txt.push((name, value));
                    }
                }
                pending += 1;
            }
        }
        if pending == 0 {
            return Ok(());
        }
        if provider.is_some() && !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        {
            let mut authzs = order.authorizations();
            while let Some(a) = authzs.next().await {
                let mut a = a.map_err(|e| acme_err("reading an authorization", e))?;
                if a.status != AuthorizationStatus::Pending {
                    continue;
                }
                if let Some(mut ch) = a.challenge(kind.clone()) {
                    ch.set_ready()
                        .await
                        .map_err(|e| acme_err("the CA refused the challenge", e))?;
                }
            }
        }
        let status = order
            .poll_ready(&self.retry_policy())
            .await
            .map_err(|e| acme_err("validation failed", e))?;
        if status == OrderStatus::Ready {
            return Ok(());
        }
        // Invalid: the CA's reasons are on the challenges.
        let mut reasons = Vec::new();
        let mut authzs = order.authorizations();
        while let Some(a) = authzs.next().await {
            let Ok(mut a) = a else { continue };
            let ident = a.identifier().to_string();
            if let Ok(state) = a.refresh().await {
                for c in &state.challenges {
                    if let Some(p) = &c.error {
                        reasons.push(format!("{ident}: {}", problem_text(p)));
                    }
                }
            }
        }
        Err(if reasons.is_empty() {
            "the CA marked the order invalid".into()
        } else {
            reasons.join("; ")
        })
    }

    /// Writes an issued certificate into the config, as the API's write
    /// path does: compile check, one transaction, engine apply, audit.
    /// Returns the certificate's validity (unix ms).
    async fn store_certificate(
        &self,
        id: Id,
        chain: String,
        key: String,
    ) -> Result<(i64, i64), String> {
        let (not_before, not_after) = validity(&chain)?;
        let _guard = self.write_lock.lock().await;
        let mut candidate: Config = self
            .store
            .load()
            .await
            .map_err(|e| format!("reading the config: {e}"))?
            .config;
        let i = candidate
            .certificates
            .iter()
            .position(|c| c.id == id)
            .ok_or_else(|| format!("certificate {id} was deleted during the order"))?;
        let before = candidate.certificates[i].clone();
        let mut cert = before.clone();
        cert.certificate_pem = chain;
        cert.private_key_pem = key;
        candidate.certificates[i] = cert.clone();
        self.engine.check(candidate).await.map_err(|e| {
            format!(
                "the issued certificate was refused: {}",
                crate::api::error::display_chain(&e)
            )
        })?;
        let ctx = WriteContext::new(SYSTEM_ACTOR);
        let committed = self
            .store
            .update(&ctx, Entity::Certificate(cert))
            .await
            .map_err(|e| format!("storing the certificate: {e}"))?;
        apply(&self.engine, committed.revision).await?;
        let mut audit = AuditEntry::new(SYSTEM_ACTOR, "update", "certificates");
        audit.entity_id = Some(id);
        audit.before = serde_json::to_value(redacted(before)).ok();
        if let Entity::Certificate(c) = committed.value {
            audit.after = serde_json::to_value(redacted(c)).ok();
        }
        if let Err(e) = self.store.append_audit(audit).await {
            tracing::error!(error = %e, "writing the audit log failed");
        }
        Ok((not_before, not_after))
    }

    /// Creates an ACME certificate entity (empty until issued) as `ctx`'s
    /// actor, with its order due now. The caller validated the request.
    pub(crate) async fn create_certificate(
        &self,
        ctx: &WriteContext,
        user_id: Option<Id>,
        name: String,
        domain_names: Vec<String>,
        challenge: &str,
        dns_provider_id: Option<Id>,
    ) -> Result<(Certificate, AcmeOrder), crate::api::ApiError> {
        use crate::api::ApiError;
        let cert = Certificate {
            name,
            source: CertificateSource::Acme,
            domain_names: domain_names.clone(),
            ..Certificate::default()
        };
        let _guard = self.write_lock.lock().await;
        let mut candidate = self
            .store
            .load()
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?
            .config;
        let mut placeholder = cert.clone();
        placeholder.id = candidate
            .certificates
            .iter()
            .map(|c| c.id)
            .max()
            .unwrap_or(0)
            + 1;
        candidate.certificates.push(placeholder);
        let index = candidate.certificates.len() - 1;
        if let Err(e) = self.engine.check(candidate).await {
            return Err(ApiError::from(e).relative_to(&format!("certificates[{index}]")));
        }
        let committed = self.store.create(ctx, Entity::Certificate(cert)).await?;
        apply(&self.engine, committed.revision)
            .await
            .map_err(ApiError::internal)?;
        let Entity::Certificate(stored) = committed.value else {
            return Err(ApiError::internal("the store returned another entity kind"));
        };
        let mut audit = AuditEntry::new(ctx.actor.clone(), "create", "certificates");
        audit.user_id = user_id;
        audit.client_ip = ctx.client_ip.clone();
        audit.entity_id = Some(stored.id);
        audit.after = serde_json::to_value(redacted(stored.clone())).ok();
        if let Err(e) = self.store.append_audit(audit).await {
            tracing::error!(error = %e, "writing the audit log failed");
        }
        let order = AcmeOrder::new(stored.id, domain_names, challenge, dns_provider_id);
        let order = self.save(&order).await.map_err(ApiError::internal)?;
        drop(_guard);
        self.wake();
        Ok((stored, order))
    }
}

fn redacted(mut c: Certificate) -> Certificate {
    c.private_key_pem.clear();
    c
}

/// Applies a committed revision to the engine.
async fn apply(engine: &EngineHandle, revision: u64) -> Result<(), String> {
    match engine.reload().await {
        Ok(applied) if applied >= revision => {
            crate::cluster::note_committed(revision);
            Ok(())
        }
        Ok(applied) => Err(format!(
            "engine applied revision {applied}, expected {revision}"
        )),
        Err(e) => Err(crate::api::error::display_chain(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let b = Duration::from_secs(300);
        let m = Duration::from_secs(86_400);
        assert_eq!(backoff(1, b, m), b);
        assert_eq!(backoff(2, b, m), b * 2);
        assert_eq!(backoff(4, b, m), b * 8);
        assert_eq!(backoff(40, b, m), m);
        assert_eq!(backoff(0, b, m), b);
    }

    #[test]
    fn renewal_is_at_a_third_or_thirty_days() {
        const DAY: i64 = 86_400_000;
        // 90 days: a third and 30 days agree.
        assert_eq!(renew_at(0, 90 * DAY), 60 * DAY);
        // A year: a third remaining comes first.
        assert_eq!(renew_at(0, 366 * DAY), 244 * DAY);
        // 45 days: 30 days would be too soon; half the lifetime... but a
        // third (15) is less than half (22.5), so half it is.
        assert_eq!(renew_at(0, 45 * DAY), 45 * DAY - 45 * DAY / 2);
        // Six days (short-lived certificates): renew at half.
        assert_eq!(renew_at(0, 6 * DAY), 3 * DAY);
    }

    #[test]
    fn settings_validate_and_override() {
        let mut s = AcmeSettings::default();
        s.validate().unwrap_or_else(|e| panic!("{e:?}"));
        s.eab_key_id = Some("kid".into());
        assert_eq!(s.validate().unwrap_err().0, "eab_hmac");
        s.eab_hmac = Some("not base64!".into());
        assert_eq!(s.validate().unwrap_err().0, "eab_hmac");
        s.eab_hmac = Some("c2VjcmV0".into());
        assert!(s.validate().is_ok());
        let o = s.with_overrides(&[
            ("directory_url".into(), "http://insecure/".into()),
            ("eab_key_id".into(), String::new()),
        ]);
        assert_eq!(o.validate().unwrap_err().0, "directory_url");
        assert_eq!(o.eab_key_id, None);
    }
}
