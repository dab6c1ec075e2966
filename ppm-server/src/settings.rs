//! Command-line and environment settings.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Access log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AccessLogFormat {
    /// One JSON object per line.
    Json,
    /// NCSA common log format, followed by host, upstream, durations and
    /// the answering filter as `key=value` pairs.
    Common,
}

/// ppm-server: a reverse-proxy manager on Pingora, with a REST API.
///
/// Every setting can also come from the environment variable shown.
#[derive(Debug, Clone, Parser)]
#[command(name = "ppm-server", version, about, long_about = None)]
pub struct Settings {
    /// Directory holding the SQLite database and other state.
    #[arg(long, env = "PPM_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// The config database: `sqlite:///path/ppm.db` or
    /// `postgres://user:password@host:5432/database` (several nodes can
    /// share one PostgreSQL database; see docs/clustering.md). Default: the
    /// SQLite file `ppm.db` in the data directory.
    #[arg(long, env = "PPM_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// This node's id in a cluster (shown by `GET /api/cluster/nodes`): 1 to
    /// 64 of `A-Z a-z 0-9 . _ -`. Default: generated on first start and
    /// kept in the data directory (`node-id`).
    #[arg(long, env = "PPM_NODE_ID")]
    pub node_id: Option<String>,

    /// Seconds between this node's heartbeats to a shared PostgreSQL
    /// database; a node is shown as not live after three missed ones.
    #[arg(long, env = "PPM_NODE_HEARTBEAT", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub node_heartbeat: u64,

    /// Address of the API (and dashboard) listener.
    #[arg(long, env = "PPM_API_LISTEN", default_value = "0.0.0.0:81")]
    pub api_listen: SocketAddr,

    /// Address of the plain-HTTP proxy listener.
    #[arg(long, env = "PPM_HTTP_LISTEN", default_value = "0.0.0.0:8080")]
    pub http_listen: SocketAddr,

    /// Address of the HTTPS proxy listener (served once TLS termination is
    /// configured; reserved so streams and hosts cannot take the port).
    #[arg(long, env = "PPM_HTTPS_LISTEN", default_value = "0.0.0.0:443")]
    pub https_listen: SocketAddr,

    /// Pingora worker threads for the proxy.
    #[arg(long, env = "PPM_THREADS", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: u16,

    /// Log line format.
    #[arg(long, env = "PPM_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Comma-separated CIDRs of proxies whose X-Forwarded-For is believed,
    /// for the API's own client IPs (login throttling, audit). The proxy's
    /// trusted proxies are a setting in the API (`/api/settings`).
    #[arg(long, env = "PPM_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<String>,

    /// Seconds in-flight requests get to finish on SIGTERM.
    #[arg(long, env = "PPM_GRACE_PERIOD", default_value_t = 10)]
    pub grace_period: u64,

    /// Email of the first admin, created on an empty database.
    #[arg(long, env = "PPM_ADMIN_EMAIL", hide_env_values = true)]
    pub admin_email: Option<String>,

    /// Password of the first admin (at least 12 characters). When unset on
    /// an empty database, a random one is generated and logged once.
    #[arg(long, env = "PPM_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,

    /// Secret for signing session tokens (at least 32 characters). When
    /// unset, a random 256-bit secret is generated once and kept in the
    /// database.
    #[arg(long, env = "PPM_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// Lifetime of a session token, in seconds.
    #[arg(long, env = "PPM_SESSION_TTL", default_value_t = 86_400)]
    pub session_ttl: u64,

    /// ACME directory URL of the certificate authority (Let's Encrypt
    /// staging: https://acme-staging-v02.api.letsencrypt.org/directory).
    #[arg(long, env = "PPM_ACME_DIRECTORY", default_value = crate::acme::LETS_ENCRYPT_DIRECTORY)]
    pub acme_directory: String,

    /// Contact email for the ACME account (expiry notices).
    #[arg(long, env = "PPM_ACME_EMAIL")]
    pub acme_email: Option<String>,

    /// PEM file of extra root certificates to trust when talking to the
    /// ACME server (private CAs such as step-ca, test CAs).
    #[arg(long, env = "PPM_ACME_CA_ROOTS")]
    pub acme_ca_roots: Option<PathBuf>,

    /// External account binding key id (ZeroSSL, Google, step-ca...).
    #[arg(long, env = "PPM_ACME_EAB_KID")]
    pub acme_eab_kid: Option<String>,

    /// External account binding HMAC key, base64url as the CA gives it.
    #[arg(long, env = "PPM_ACME_EAB_HMAC", hide_env_values = true)]
    pub acme_eab_hmac: Option<String>,

    /// With several nodes on one PostgreSQL database: seconds the ACME
    /// leader lease lasts. One node runs orders and renewals, renewing the
    /// lease every third of this; when it dies, another node takes over
    /// within this plus a third.
    #[arg(long, env = "PPM_ACME_LEASE", default_value_t = 30, value_parser = clap::value_parser!(u64).range(3..=3600))]
    pub acme_lease: u64,

    /// Seconds before the first retry of a failed ACME order; doubled per
    /// failure, at most a day.
    #[arg(long, env = "PPM_ACME_RETRY_BASE", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub acme_retry_base: u64,

    /// Seconds between rollups of the traffic counters into the time
    /// series (`POST /api/stats/rollup` rolls up at once).
    #[arg(long, env = "PPM_STATS_INTERVAL", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub stats_interval: u64,

    /// Hours of minute-resolution traffic series to keep.
    #[arg(long, env = "PPM_STATS_MINUTE_RETENTION_HOURS", default_value_t = 48, value_parser = clap::value_parser!(u64).range(1..=8760))]
    pub stats_minute_retention_hours: u64,

    /// Days of hourly traffic series to keep.
    #[arg(long, env = "PPM_STATS_HOUR_RETENTION_DAYS", default_value_t = 90, value_parser = clap::value_parser!(u64).range(1..=3660))]
    pub stats_hour_retention_days: u64,

    /// Serve `GET /metrics` without authentication. Otherwise a scrape
    /// needs `Authorization: Bearer` with the metrics token, an API token
    /// or a session token.
    #[arg(long, env = "PPM_METRICS_PUBLIC", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub metrics_public: bool,

    /// A bearer token that may scrape `GET /metrics` (at least 16
    /// characters).
    #[arg(long, env = "PPM_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,

    /// The access log file, or `off`. Default: `logs/access.log` in the
    /// data directory. Failed requests (no response, 5xx, proxy errors)
    /// also go to `error.log` beside it, always as JSON.
    #[arg(long, env = "PPM_ACCESS_LOG")]
    pub access_log: Option<String>,

    /// Access log line format.
    #[arg(
        long,
        env = "PPM_ACCESS_LOG_FORMAT",
        value_enum,
        default_value = "json"
    )]
    pub access_log_format: AccessLogFormat,

    /// Size in bytes at which a log file is rotated (`access.log` becomes
    /// `access.log.1`).
    #[arg(long, env = "PPM_ACCESS_LOG_MAX_SIZE", default_value_t = 50 << 20, value_parser = clap::value_parser!(u64).range(1024..))]
    pub access_log_max_size: u64,

    /// Rotated log files to keep.
    #[arg(long, env = "PPM_ACCESS_LOG_KEEP", default_value_t = 5, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub access_log_keep: u32,

    /// Records the access log buffers between the proxy and the writer;
    /// when full, records are dropped (and counted), never waited for.
    #[arg(long, env = "PPM_ACCESS_LOG_BUFFER", default_value_t = 16_384, value_parser = clap::value_parser!(u64).range(1..=1_048_576))]
    pub access_log_buffer: u64,

    /// Comma-separated host names whose requests are not logged.
    #[arg(long, env = "PPM_ACCESS_LOG_DISABLED_HOSTS", value_delimiter = ',')]
    pub access_log_disabled_hosts: Vec<String>,
}

impl Settings {
    /// Checks settings that clap cannot, returning a message naming the
    /// setting.
    pub fn validate(&self) -> Result<(), String> {
        let listeners = [
            ("--api-listen", self.api_listen),
            ("--http-listen", self.http_listen),
            ("--https-listen", self.https_listen),
        ];
        for (i, (a, aa)) in listeners.iter().enumerate() {
            for (b, ba) in &listeners[i + 1..] {
                if aa.port() == ba.port()
                    && (aa.ip() == ba.ip() || aa.ip().is_unspecified() || ba.ip().is_unspecified())
                {
                    return Err(format!("{a} and {b} both use port {}", aa.port()));
                }
            }
        }
        if let Some(id) = &self.node_id {
            crate::cluster::validate_node_id(id).map_err(|m| format!("--node-id: {m}"))?;
        }
        if let Some(url) = &self.database_url {
            ppm_store::DatabaseUrl::parse(url).map_err(|m| format!("--database-url: {m}"))?;
        }
        for (i, t) in self.trusted_proxies.iter().enumerate() {
            ppm_core::validate::cidr(t).map_err(|m| format!("--trusted-proxies[{i}]: {m}"))?;
        }
        if let Some(s) = &self.jwt_secret {
            if s.len() < 32 {
                return Err("PPM_JWT_SECRET must be at least 32 characters".into());
            }
        }
        if let Some(p) = &self.admin_password {
            if p.chars().count() < crate::auth::MIN_PASSWORD_LEN {
                return Err(format!(
                    "PPM_ADMIN_PASSWORD must be at least {} characters",
                    crate::auth::MIN_PASSWORD_LEN
                ));
            }
        }
        if let Some(e) = &self.admin_email {
            crate::auth::validate_email(e).map_err(|m| format!("PPM_ADMIN_EMAIL: {m}"))?;
        }
        if self.session_ttl < 60 || self.session_ttl > 30 * 86_400 {
            return Err("--session-ttl must be 60..=2592000 seconds".into());
        }
        self.acme_settings()
            .validate()
            .map_err(|(field, m)| format!("{}: {m}", acme_flag(field)))?;
        if let Some(t) = &self.metrics_token {
            if t.len() < 16 {
                return Err("PPM_METRICS_TOKEN must be at least 16 characters".into());
            }
        }
        if self.grace_period > 3600 {
            return Err("--grace-period must be at most 3600 seconds".into());
        }
        Ok(())
    }

    /// The ACME settings given on the command line or in the environment.
    pub fn acme_settings(&self) -> crate::acme::AcmeSettings {
        crate::acme::AcmeSettings {
            directory_url: self.acme_directory.clone(),
            email: self.acme_email.clone(),
            ca_roots: self.acme_ca_roots.clone(),
            eab_key_id: self.acme_eab_kid.clone(),
            eab_hmac: self.acme_eab_hmac.clone(),
        }
    }

    /// The access log file, `None` when it is off.
    pub fn access_log_path(&self) -> Option<std::path::PathBuf> {
        match self.access_log.as_deref().map(str::trim) {
            Some("off") | Some("") => None,
            Some(p) => Some(p.into()),
            None => Some(self.data_dir.join("logs").join("access.log")),
        }
    }

    /// The listeners, for people: `api 0.0.0.0:81`...
    pub fn listeners(&self) -> Vec<String> {
        vec![
            format!("api {}", self.api_listen),
            format!("http {}", self.http_listen),
            format!("https {}", self.https_listen),
        ]
    }

    /// The ports ppm-server itself listens on, which hosts and streams may
    /// not take.
    pub fn own_ports(&self) -> [u16; 3] {
        [
            self.api_listen.port(),
            self.http_listen.port(),
            self.https_listen.port(),
        ]
    }
}

fn acme_flag(field: &str) -> &'static str {
    match field {
        "directory_url" => "--acme-directory",
        "email" => "--acme-email",
        "ca_roots" => "--acme-ca-roots",
        "eab_key_id" => "--acme-eab-kid",
        _ => "--acme-eab-hmac",
    }
}
