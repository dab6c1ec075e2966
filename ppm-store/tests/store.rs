//! Integration tests of the config stores. The shared suite runs against
//! every backend: `on_sqlite::*` on a fresh SQLite file in a temporary
//! directory, `on_postgres::*` in a fresh schema of the PostgreSQL database
//! named by `PPM_TEST_POSTGRES_URL` (dropped after the test; without the
//! variable those tests say they are skipped and pass). Backend-specific
//! tests follow the suite.

// Helpers outside `#[test]` functions are test code too; building fixtures
// field by field reads better than one large initializer.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::field_reassign_with_default
)]

use std::future::Future;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ppm_core::config::*;
use ppm_core::stats::Counts;
use ppm_core::store::{ChangeSignal, ConfigStore};
use ppm_store::accounts::{AuditEntry, NewUser};
use ppm_store::stats::{Resolution, Retention, StatsRow, StatsStore};
use ppm_store::{
    AccountStore, ConfigWriter, ConfigWriterExt, EntityKind, ExportDocument, OpenError,
    PostgresOptions, PostgresStore, SqliteOptions, SqliteStore, WriteContext, WriteError,
};
use serde_json::json;

fn ctx() -> WriteContext {
    WriteContext::new("tester@example.com").client_ip("192.0.2.7")
}

async fn fresh() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_dir(dir.path()).await.unwrap();
    (dir, store)
}

/// A database backend the shared suite runs against.
#[async_trait]
trait Backend: Send + Sync + 'static {
    type Store: ConfigWriter + AccountStore + StatsStore + Clone + Send + Sync + 'static;
    /// A new, empty store, removed by [`cleanup`](Self::cleanup).
    async fn fresh(&self) -> Self::Store;
    /// A second store on the same database as `store`, as another process
    /// or node opens it.
    async fn peer(&self, store: &Self::Store) -> Self::Store;
    /// Removes every database this backend created.
    async fn cleanup(&self);
}

#[derive(Default)]
struct Sqlite {
    dirs: Mutex<Vec<tempfile::TempDir>>,
}

#[async_trait]
impl Backend for Sqlite {
    type Store = SqliteStore;
    async fn fresh(&self) -> SqliteStore {
        let (dir, store) = fresh().await;
        self.dirs.lock().unwrap().push(dir);
        store
    }
    async fn peer(&self, store: &SqliteStore) -> SqliteStore {
        let opts = SqliteOptions::new().poll_interval(Some(Duration::from_millis(50)));
        SqliteStore::open_with(store.path(), opts).await.unwrap()
    }
    async fn cleanup(&self) {}
}

const PG_ENV: &str = "PPM_TEST_POSTGRES_URL";

/// Fresh schemas in the test PostgreSQL database.
struct Postgres {
    url: String,
    stores: Mutex<Vec<PostgresStore>>,
}

impl Postgres {
    /// The backend, or `None` (after saying why) when no server is configured.
    fn from_env(test: &str) -> Option<Self> {
        match std::env::var(PG_ENV) {
            Ok(url) if !url.is_empty() => Some(Postgres {
                url,
                stores: Mutex::new(Vec::new()),
            }),
            _ => {
                eprintln!(
                    "skipped {test}: {PG_ENV} is not set, so there is no PostgreSQL server to \
                     test against (.ci/run sets it to postgres://postgres@127.0.0.1:5432/test)"
                );
                None
            }
        }
    }

    fn options(schema: &str) -> PostgresOptions {
        PostgresOptions::new()
            .schema(Some(schema.to_owned()))
            .poll_interval(Duration::from_millis(50))
    }

    async fn open_schema(&self, schema: &str) -> PostgresStore {
        let store = PostgresStore::open_with(&self.url, Self::options(schema))
            .await
            .unwrap();
        self.stores.lock().unwrap().push(store.clone());
        store
    }
}

/// A schema name unique to this test run.
fn unique_schema() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "ppm_test_{}_{}_{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

#[async_trait]
impl Backend for Postgres {
    type Store = PostgresStore;
    async fn fresh(&self) -> PostgresStore {
        self.open_schema(&unique_schema()).await
    }
    async fn peer(&self, store: &PostgresStore) -> PostgresStore {
        self.open_schema(store.schema().unwrap()).await
    }
    async fn cleanup(&self) {
        let stores: Vec<PostgresStore> = std::mem::take(&mut *self.stores.lock().unwrap());
        let mut schemas: Vec<String> = stores
            .iter()
            .filter_map(|s| s.schema().map(str::to_owned))
            .collect();
        schemas.sort();
        schemas.dedup();
        for s in &stores {
            s.close().await;
        }
        if schemas.is_empty() {
            return;
        }
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
        for schema in schemas {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
            )))
            .execute(&mut conn)
            .await
            .unwrap();
        }
        conn.close().await.unwrap();
    }
}

/// Runs one test of the suite on `backend`, then removes its databases,
/// also when the test fails.
async fn run<B, F, Fut>(backend: B, test: F)
where
    B: Backend,
    F: FnOnce(Arc<B>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let backend = Arc::new(backend);
    let result = tokio::spawn(test(backend.clone())).await;
    backend.cleanup().await;
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// Runs a test on [`Postgres`], or says it is skipped when no server is
/// configured.
async fn on_postgres<F, Fut>(test: &str, body: F)
where
    F: FnOnce(Arc<Postgres>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    if let Some(pg) = Postgres::from_env(test) {
        run(pg, body).await;
    }
}

/// Records a migration newer than this build's in `store`'s schema, as a
/// newer ppm would.
async fn record_newer_migration(store: &PostgresStore) {
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (99990001, 'from the future', TRUE, '\\x00', 0)",
    )
    .execute(store.pool())
    .await
    .unwrap();
}

/// Waits up to ten seconds for `signal` to announce `revision` or a later
/// one; fails naming `what`.
async fn wait_for_revision(signal: &mut ChangeSignal, revision: u64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let rev = tokio::time::timeout(left, signal.changed())
            .await
            .unwrap_or_else(|_| panic!("{what}"))
            .unwrap();
        if rev >= revision {
            return;
        }
    }
}

/// Creates a host named `name` through `writer`; `watched`'s change signal
/// must announce exactly that write's revision within five seconds, which
/// is returned.
async fn write_is_announced(
    writer: &impl ConfigWriter,
    watched: &impl ConfigStore,
    name: &str,
) -> u64 {
    let mut signal = watched.watch().unwrap();
    let c = writer
        .create_proxy_host(&ctx(), ProxyHost::new([name], vec![]))
        .await
        .unwrap();
    let rev = tokio::time::timeout(Duration::from_secs(5), signal.changed())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rev, c.revision);
    rev
}

/// Waits up to ten seconds for `done`, checking every 10 ms; fails naming
/// `what`.
async fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Declares each suite test once per backend.
macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::run(super::Sqlite::default(), super::$name).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    super::on_postgres(stringify!($name), super::$name).await;
                }
            )*
        }
    };
}

suite!(
    crud_round_trips_every_entity_exactly,
    settings_round_trip,
    conflicts_and_references_name_the_field,
    replace_all_checks_the_whole_config,
    export_import_reproduces_the_snapshot,
    rollback_restores_earlier_snapshots_exactly,
    watch_fires_after_commit,
    two_stores_on_one_database_converge,
    users_tokens_and_audit,
    loads_many_hosts_with_few_queries,
    engine_runs_from_the_store,
    stats_are_recorded_per_node_and_summed,
    a_rollup_of_many_series,
    children_keep_their_declared_order,
);

/// Domain names, upstreams, header rules and locations come back in the
/// order they were written, also where that is not the order of their keys
/// in the table, and after an update that reverses them.
async fn children_keep_their_declared_order<B: Backend>(b: Arc<B>) {
    let store = b.fresh().await;
    let names =
        |tags: &[&str]| -> Vec<String> { tags.iter().map(|t| format!("{t}.order.test")).collect() };
    let mut hosts = Vec::new();
    for (i, tags) in [["zz", "aa", "mm"], ["yy", "bb", "nn"]].iter().enumerate() {
        let mut h = ProxyHost::new(
            names(&tags[..]),
            vec![
                Upstream::new("10.0.0.3", 80),
                Upstream::new("10.0.0.1", 81),
                Upstream::new("10.0.0.2", 82),
            ],
        );
        h.request_headers = vec![
            HeaderRule::set("X-Z", format!("{i}")),
            HeaderRule::set("X-A", "a"),
        ];
        h.locations = ["/z", "/a", "/m"]
            .iter()
            .map(|p| Location {
                path: (*p).into(),
                upstreams: vec![Upstream::new("10.0.1.9", 90), Upstream::new("10.0.1.1", 91)],
                ..Location::default()
            })
            .collect();
        hosts.push(store.create_proxy_host(&ctx(), h).await.unwrap().value);
    }
    let loaded = store.load().await.unwrap().config;
    assert_eq!(loaded.proxy_hosts, hosts);

    let mut h = hosts[0].clone();
    h.domain_names.reverse();
    h.upstreams.reverse();
    h.request_headers.reverse();
    h.locations.reverse();
    for l in &mut h.locations {
        l.upstreams.reverse();
    }
    let updated = store
        .update_proxy_host(&ctx(), h.clone())
        .await
        .unwrap()
        .value;
    let loaded = store.load().await.unwrap().config;
    assert_eq!(loaded.proxy_hosts[0], updated);
    assert_eq!(
        loaded.proxy_hosts[0].domain_names,
        names(&["mm", "aa", "zz"])
    );
    let ups: Vec<u16> = loaded.proxy_hosts[0]
        .upstreams
        .iter()
        .map(|u| u.port)
        .collect();
    assert_eq!(ups, [82, 81, 80]);
    let paths: Vec<&str> = loaded.proxy_hosts[0]
        .locations
        .iter()
        .map(|l| l.path.as_str())
        .collect();
    assert_eq!(paths, ["/m", "/a", "/z"]);
    assert_eq!(loaded.proxy_hosts[0].locations[0].upstreams[0].port, 91);
    assert_eq!(loaded.proxy_hosts[1], hosts[1]);
}

/// A 253-character name: 3 labels of 63, one of 61 (63*3 + 61 + 3 dots).
fn longest_name(tag: char) -> String {
    let l63 = "a".repeat(62);
    format!("{tag}{l63}.b{l63}.c{l63}.{}", "d".repeat(61))
}

fn full_acl() -> AccessList {
    let mut a = AccessList::default();
    a.name = "Büro – ñandú 🚀".into();
    a.rules = vec![
        IpRule {
            action: RuleAction::Allow,
            address: "10.0.0.0/8".into(),
        },
        IpRule {
            action: RuleAction::Deny,
            address: "2001:db8::/32".into(),
        },
        IpRule {
            action: RuleAction::Allow,
            address: "all".into(),
        },
    ];
    a.default_action = RuleAction::Deny;
    a.users = vec![
        AccessUser {
            username: "zoë".into(),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        },
        AccessUser {
            username: "bob".into(),
            password_hash: "$2b$12$abcdefghijklmnopqrstuv".into(),
        },
    ];
    a.satisfy = Satisfy::All;
    a.pass_auth = true;
    a
}

fn full_cert() -> Certificate {
    let mut c = Certificate::default();
    c.name = "wildcard ✓".into();
    c.source = CertificateSource::Acme;
    c.domain_names = vec!["*.example.com".into(), "example.com".into()];
    c.certificate_pem =
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n".into();
    c.private_key_pem = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n".into();
    c
}

fn full_proxy_host(acl: Option<Id>, cert: Option<Id>, names: Vec<String>) -> ProxyHost {
    let mut loc = Location::default();
    loc.path = "^/api/(v[0-9]+)/(.*)$".into();
    loc.match_kind = MatchKind::Regex;
    loc.upstreams = vec![Upstream::new("api.internal", 8443).weight(3)];
    loc.balancing = Some(Balancing::ConsistentHash {
        key: HashKey::Cookie("session".into()),
    });
    loc.forward_scheme = Some(Scheme::Https);
    loc.rewrite = Some("/$1/$2".into());
    loc.request_headers = vec![HeaderRule::set("X-Api", "ü")];
    loc.response_headers = vec![HeaderRule {
        name: "Server".into(),
        value: String::new(),
        action: HeaderAction::Remove,
    }];
    loc.timeouts = Timeouts {
        connect_ms: Some(100),
        read_ms: None,
        write_ms: Some(u64::MAX >> 1),
    };
    loc.filters = vec![FilterSpec::new(
        "rate_limit",
        json!({"per_second": 5.5, "burst": 10}),
    )];
    let mut loc2 = Location::default();
    loc2.path = "/static".into();

    let mut h = ProxyHost::new(
        names,
        vec![
            Upstream::new("127.0.0.1", 8080),
            Upstream::new("::1", 65535).weight(1000),
        ],
    );
    h.balancing = Balancing::LeastConnections;
    h.forward_scheme = Scheme::Https;
    h.upstream_sni = Some("backend.internal".into());
    h.upstream_verify_tls = false;
    h.health_check = Some(HealthCheck {
        kind: HealthCheckKind::Http {
            path: "/healthz".into(),
            host: Some("h.internal".into()),
            expected_status: 204,
        },
        interval_ms: 1000,
        timeout_ms: 500,
        healthy_threshold: 2,
        unhealthy_threshold: 3,
    });
    h.passive_health = PassiveHealth {
        max_fails: 4,
        fail_timeout_ms: 30_000,
    };
    h.retries = 3;
    h.timeouts = Timeouts {
        connect_ms: Some(1),
        read_ms: Some(2),
        write_ms: Some(3),
    };
    h.max_body_size = Some(10 << 20);
    h.allow_websocket_upgrade = false;
    h.request_headers = vec![
        HeaderRule::set("X-Real-IP", "$client_ip"),
        HeaderRule {
            name: "X-Multi".into(),
            value: "a, b".into(),
            action: HeaderAction::Add,
        },
    ];
    h.response_headers = vec![HeaderRule::set("X-Frame-Options", "DENY")];
    h.locations = vec![loc, loc2];
    h.access_list_id = acl;
    h.certificate_id = cert;
    h.ssl_forced = true;
    h.hsts_enabled = true;
    h.hsts_subdomains = true;
    h.http2_support = false;
    h.block_exploits = true;
    h.filters = vec![
        FilterSpec {
            kind: "headers".into(),
            config: json!({"nested": {"list": [1, -2, 3.25, null, true, "ß"]}}),
            priority: Some(-7),
        },
        FilterSpec::new("noop", serde_json::Value::Null),
    ];
    h.enabled = false;
    h
}

fn full_redirection(cert: Option<Id>, names: Vec<String>) -> RedirectionHost {
    RedirectionHost {
        id: 0,
        domain_names: names,
        status: 308,
        forward_scheme: Some(Scheme::Https),
        forward_domain: "bücher.example:8443".into(),
        preserve_path: false,
        certificate_id: cert,
        ssl_forced: true,
        hsts_enabled: true,
        hsts_subdomains: false,
        block_exploits: true,
        filters: vec![FilterSpec::new("noop", json!({}))],
        enabled: true,
    }
}

fn full_dead(cert: Option<Id>, names: Vec<String>) -> DeadHost {
    DeadHost {
        id: 0,
        domain_names: names,
        certificate_id: cert,
        ssl_forced: true,
        hsts_enabled: false,
        hsts_subdomains: true,
        filters: vec![FilterSpec::new("error_page", json!({"html": "<h1>ø</h1>"}))],
        enabled: false,
    }
}

fn full_stream(port: u16, protocol: StreamProtocol, acl: Option<Id>, cert: Option<Id>) -> Stream {
    Stream {
        id: 0,
        incoming_port: port,
        bind_address: "::".into(),
        protocol,
        upstreams: vec![
            Upstream::new("10.0.0.1", 5432),
            Upstream::new("10.0.0.2", 5432).weight(2),
        ],
        balancing: Balancing::ConsistentHash {
            key: HashKey::ClientIp,
        },
        access_list_id: acl,
        certificate_id: cert,
        proxy_protocol: Some(2),
        idle_timeout_ms: 1234,
        enabled: false,
    }
}

/// Creates one entity of every kind, fully populated.
async fn populate(store: &impl ConfigWriter) -> Config {
    let acl = store
        .create_access_list(&ctx(), full_acl())
        .await
        .unwrap()
        .value;
    let cert = store
        .create_certificate(&ctx(), full_cert())
        .await
        .unwrap()
        .value;
    store
        .create_proxy_host(
            &ctx(),
            full_proxy_host(
                Some(acl.id),
                Some(cert.id),
                vec![
                    longest_name('p'),
                    "bücher.example".into(),
                    "*.wild.example".into(),
                ],
            ),
        )
        .await
        .unwrap();
    store
        .create_redirection_host(
            &ctx(),
            full_redirection(Some(cert.id), vec![longest_name('r')]),
        )
        .await
        .unwrap();
    store
        .create_dead_host(&ctx(), full_dead(None, vec![longest_name('d')]))
        .await
        .unwrap();
    store
        .create_stream(
            &ctx(),
            full_stream(5432, StreamProtocol::Both, Some(acl.id), Some(cert.id)),
        )
        .await
        .unwrap();
    let mut settings = Settings::default();
    settings.default_site = DefaultSite::Redirect {
        url: "https://example.com/ü".into(),
    };
    settings.trusted_proxies = vec!["10.0.0.0/8".into()];
    settings.filters = vec![FilterSpec::new("access_log", json!({"format": "json"}))];
    settings.allow_link_local_upstreams = true;
    store.update_settings(&ctx(), settings).await.unwrap();
    store.load().await.unwrap().config
}

async fn crud_round_trips_every_entity_exactly<B: Backend>(b: Arc<B>) {
    let store = b.fresh().await;
    assert_eq!(store.load().await.unwrap().revision, 0);

    let acl_in = full_acl();
    let acl = store
        .create_access_list(&ctx(), acl_in.clone())
        .await
        .unwrap();
    assert_eq!(acl.revision, 1);
    assert!(acl.value.id > 0);
    assert_eq!(
        AccessList {
            id: acl.value.id,
            ..acl_in
        },
        acl.value
    );
    assert_eq!(
        store.get_access_list(acl.value.id).await.unwrap(),
        acl.value
    );

    let cert = store
        .create_certificate(&ctx(), full_cert())
        .await
        .unwrap()
        .value;
    assert_eq!(store.get_certificate(cert.id).await.unwrap(), cert);

    let names = vec![
        longest_name('p'),
        "bücher.example".into(),
        "*.wild.example".into(),
    ];
    assert_eq!(names[0].len(), 253);
    let host_in = full_proxy_host(Some(acl.value.id), Some(cert.id), names);
    let host = store
        .create_proxy_host(&ctx(), host_in.clone())
        .await
        .unwrap()
        .value;
    assert_eq!(
        ProxyHost {
            id: host.id,
            ..host_in
        },
        host
    );
    assert_eq!(store.get_proxy_host(host.id).await.unwrap(), host);

    let redir = store
        .create_redirection_host(
            &ctx(),
            full_redirection(Some(cert.id), vec![longest_name('r')]),
        )
        .await
        .unwrap()
        .value;
    assert_eq!(store.get_redirection_host(redir.id).await.unwrap(), redir);
    let dead = store
        .create_dead_host(
            &ctx(),
            full_dead(Some(cert.id), vec!["ünïcödé.example".into()]),
        )
        .await
        .unwrap()
        .value;
    assert_eq!(store.get_dead_host(dead.id).await.unwrap(), dead);
    let stream = store
        .create_stream(
            &ctx(),
            full_stream(53, StreamProtocol::Udp, Some(acl.value.id), None),
        )
        .await
        .unwrap();
    assert_eq!(stream.revision, 6);
    let stream = stream.value;
    assert_eq!(store.get_stream(stream.id).await.unwrap(), stream);

    let snap = store.load().await.unwrap();
    assert_eq!(snap.revision, 6);
    assert_eq!(snap.config.access_lists, vec![acl.value.clone()]);
    assert_eq!(snap.config.certificates, vec![cert.clone()]);
    assert_eq!(snap.config.proxy_hosts, vec![host.clone()]);
    assert_eq!(snap.config.redirection_hosts, vec![redir.clone()]);
    assert_eq!(snap.config.dead_hosts, vec![dead.clone()]);
    assert_eq!(snap.config.streams, vec![stream.clone()]);

    // Updates replace everything, children included.
    let mut host2 = host.clone();
    host2.domain_names = vec!["only.example".into()];
    host2.locations.truncate(1);
    host2.locations[0].upstreams.clear();
    host2.upstreams.reverse();
    host2.filters.clear();
    host2.health_check = None;
    host2.max_body_size = None;
    host2.access_list_id = None;
    let updated = store
        .update_proxy_host(&ctx(), host2.clone())
        .await
        .unwrap();
    assert_eq!(updated.revision, 7);
    assert_eq!(updated.value, host2);
    assert_eq!(store.get_proxy_host(host.id).await.unwrap(), host2);
    // The old names are free again.
    let mut other = ProxyHost::new(["bücher.example"], vec![Upstream::new("127.0.0.1", 1)]);
    other = store.create_proxy_host(&ctx(), other).await.unwrap().value;

    let mut acl2 = acl.value.clone();
    acl2.users.pop();
    acl2.rules.swap(0, 2);
    acl2.name = String::new();
    assert_eq!(
        store
            .update_access_list(&ctx(), acl2.clone())
            .await
            .unwrap()
            .value,
        acl2
    );
    let mut cert2 = cert.clone();
    cert2.domain_names = vec![];
    cert2.private_key_pem = "k".into();
    assert_eq!(
        store
            .update_certificate(&ctx(), cert2.clone())
            .await
            .unwrap()
            .value,
        cert2
    );
    let mut stream2 = stream.clone();
    stream2.protocol = StreamProtocol::Tcp;
    stream2.proxy_protocol = None;
    assert_eq!(
        store
            .update_stream(&ctx(), stream2.clone())
            .await
            .unwrap()
            .value,
        stream2
    );
    let mut redir2 = redir.clone();
    redir2.forward_scheme = None;
    assert_eq!(
        store
            .update_redirection_host(&ctx(), redir2.clone())
            .await
            .unwrap()
            .value,
        redir2
    );
    let mut dead2 = dead.clone();
    dead2.domain_names.push("zwei.example".into());
    assert_eq!(
        store
            .update_dead_host(&ctx(), dead2.clone())
            .await
            .unwrap()
            .value,
        dead2
    );

    // Deletes return what was deleted.
    let deleted = store.delete_proxy_host(&ctx(), other.id).await.unwrap();
    assert_eq!(deleted.value, other);
    store.delete_stream(&ctx(), stream.id).await.unwrap();
    store.delete_proxy_host(&ctx(), host.id).await.unwrap();
    store
        .delete_redirection_host(&ctx(), redir.id)
        .await
        .unwrap();
    store.delete_dead_host(&ctx(), dead.id).await.unwrap();
    store
        .delete_access_list(&ctx(), acl.value.id)
        .await
        .unwrap();
    let last = store.delete_certificate(&ctx(), cert.id).await.unwrap();
    let snap = store.load().await.unwrap();
    assert_eq!(snap.revision, last.revision);
    assert_eq!(snap.config, Config::new());
    assert!(matches!(
        store.get_proxy_host(host.id).await,
        Err(WriteError::NotFound {
            kind: EntityKind::ProxyHost,
            ..
        })
    ));
    // Ids are never reused.
    let again = store
        .create_proxy_host(&ctx(), ProxyHost::new(["x.example"], vec![]))
        .await
        .unwrap();
    assert!(again.value.id > other.id);
}

async fn settings_round_trip<B: Backend>(b: Arc<B>) {
    let store = b.fresh().await;
    let config = populate(&store).await;
    assert_eq!(
        config.settings.trusted_proxies,
        vec!["10.0.0.0/8".to_string()]
    );
    let host = config.proxy_hosts[0].id;
    let mut s = config.settings.clone();
    s.default_site = DefaultSite::Host { host_id: host };
    store.update_settings(&ctx(), s.clone()).await.unwrap();
    assert_eq!(store.load().await.unwrap().config.settings, s);

    let err = store.delete_proxy_host(&ctx(), host).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("proxy host {host} is in use by settings.default_site")
    );
    s.default_site = DefaultSite::Host { host_id: 999 };
    let err = store.update_settings(&ctx(), s).await.unwrap_err();
    assert_eq!(
        err.field_errors()[0].to_string(),
        "default_site.host_id: proxy host 999 does not exist"
    );
}

async fn conflicts_and_references_name_the_field<B: Backend>(b: Arc<B>) {
    let store = b.fresh().await;
    let up = || vec![Upstream::new("127.0.0.1", 80)];
    let h = store
        .create_proxy_host(&ctx(), ProxyHost::new(["a.test", "b.test"], up()))
        .await
        .unwrap()
        .value;
    let before = store.revision().await.unwrap();

    // Across host kinds, case-insensitively.
    let mut r = RedirectionHost::default();
    r.domain_names = vec!["c.test".into(), "A.TEST".into()];
    let err = store.create_redirection_host(&ctx(), r).await.unwrap_err();
    assert_eq!(
        err.field_errors()[0].to_string(),
        format!(
            "domain_names[1]: \"A.TEST\" is already used by proxy host {}",
            h.id
        )
    );
    // Punycode and unicode forms are one name.
    store
        .create_dead_host(
            &ctx(),
            DeadHost {
                domain_names: vec!["bücher.test".into()],
                ..DeadHost::default()
            },
        )
        .await
        .unwrap();
    let err = store
        .create_proxy_host(&ctx(), ProxyHost::new(["xn--bcher-kva.test"], up()))
        .await
        .unwrap_err();
    assert!(
        err.field_errors()[0]
            .message
            .contains("is already used by 404 host"),
        "{err}"
    );
    // Twice in one host.
    let err = store
        .create_proxy_host(&ctx(), ProxyHost::new(["d.test", "e.test", "d.test"], up()))
        .await
        .unwrap_err();
    assert_eq!(
        err.field_errors()[0].to_string(),
        "domain_names[2]: \"d.test\" is already listed at domain_names[0]"
    );
    // Updating a host with its own names is fine.
    store.update_proxy_host(&ctx(), h.clone()).await.unwrap();

    // References.
    let mut bad = ProxyHost::new(["f.test"], up());
    bad.access_list_id = Some(9);
    bad.certificate_id = Some(10);
    let err = store.create_proxy_host(&ctx(), bad).await.unwrap_err();
    let fields: Vec<String> = err.field_errors().iter().map(|e| e.to_string()).collect();
    assert_eq!(
        fields,
        vec![
            "access_list_id: access list 9 does not exist",
            "certificate_id: certificate 10 does not exist"
        ]
    );

    // Stream ports: tcp and udp coexist, both conflicts with either.
    let s = |port, protocol| Stream {
        incoming_port: port,
        protocol,
        ..Stream::default()
    };
    let tcp = store
        .create_stream(&ctx(), s(9000, StreamProtocol::Tcp))
        .await
        .unwrap()
        .value;
    store
        .create_stream(&ctx(), s(9000, StreamProtocol::Udp))
        .await
        .unwrap();
    let err = store
        .create_stream(&ctx(), s(9000, StreamProtocol::Both))
        .await
        .unwrap_err();
    assert_eq!(
        err.field_errors()[0].to_string(),
        format!(
            "incoming_port: tcp port 9000 is already used by stream {}",
            tcp.id
        )
    );
    let both = store
        .create_stream(&ctx(), s(9001, StreamProtocol::Both))
        .await
        .unwrap()
        .value;
    let err = store
        .create_stream(&ctx(), s(9001, StreamProtocol::Udp))
        .await
        .unwrap_err();
    assert!(
        err.field_errors()[0]
            .to_string()
            .starts_with("incoming_port: udp port 9001"),
        "{err}"
    );
    let mut moved = tcp.clone();
    moved.incoming_port = 9001;
    let err = store.update_stream(&ctx(), moved).await.unwrap_err();
    assert_eq!(
        err.field_errors()[0].to_string(),
        format!(
            "incoming_port: tcp port 9001 is already used by stream {}",
            both.id
        )
    );
    // A stream keeps its own port on update.
    store.update_stream(&ctx(), both.clone()).await.unwrap();

    // Not found, in use.
    let mut ghost = h.clone();
    ghost.id = 4242;
    assert!(matches!(
        store.update_proxy_host(&ctx(), ghost).await,
        Err(WriteError::NotFound {
            kind: EntityKind::ProxyHost,
            id: 4242
        })
    ));
    assert!(matches!(
        store.delete_stream(&ctx(), 4242).await,
        Err(WriteError::NotFound {
            kind: EntityKind::Stream,
            id: 4242
        })
    ));
    let acl = store
        .create_access_list(&ctx(), full_acl())
        .await
        .unwrap()
        .value;
    let mut uses = both.clone();
    uses.access_list_id = Some(acl.id);
    store.update_stream(&ctx(), uses).await.unwrap();
    let err = store.delete_access_list(&ctx(), acl.id).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("access list {} is in use by stream {}", acl.id, both.id)
    );
    // Duplicate access list user names.
    let mut dup = full_acl();
    dup.users.push(dup.users[0].clone());
    let err = store.create_access_list(&ctx(), dup).await.unwrap_err();
    assert_eq!(err.field_errors()[0].path, "users[2].username");

    // Refused writes bumped nothing beyond the accepted ones.
    let history = store.history(None, 1000).await.unwrap();
    assert_eq!(history.len() as u64, store.revision().await.unwrap());
    assert!(store.revision().await.unwrap() > before);
}

async fn replace_all_checks_the_whole_config<B: Backend>(b: Arc<B>) {
    let store = b.fresh().await;
    let mut c = Config::new();
    let mut a = ProxyHost::new(["a.test"], vec![]);
    a.id = 5;
    a.access_list_id = Some(3);
    let mut b = ProxyHost::new(["x.test", "A.test"], vec![]);
    b.id = 5;
    c.proxy_hosts = vec![a, b];
    c.streams = vec![
        Stream {
            id: 1,
            incoming_port: 22,
            ..Stream::default()
        },
        Stream {
            id: 2,
            incoming_port: 22,
            protocol: StreamProtocol::Both,
            ..Stream::default()
        },
    ];
    let err = store.replace_all(&ctx(), c, "import").await.unwrap_err();
    let fields: Vec<String> = err.field_errors().iter().map(|e| e.to_string()).collect();
    assert_eq!(
        fields,
        vec![
            "proxy_hosts[1].id: id 5 is already used by proxy_hosts[0]",
            "proxy_hosts[1].domain_names[1]: \"A.test\" is already used by proxy_hosts[0].domain_names[0]",
            "proxy_hosts[0].access_list_id: access list 3 does not exist",
            "streams[1].incoming_port: tcp port 22 is already used by streams[0]",
        ]
    );
    assert_eq!(store.revision().await.unwrap(), 0);
}

async fn export_import_reproduces_the_snapshot<B: Backend>(b: Arc<B>) {
    let store = b.fresh().await;
    let config = populate(&store).await;

    let doc = store.export(true).await.unwrap();
    assert_eq!(doc.format, "ppm-config");
    assert_eq!(doc.version, 1);
    assert_eq!(doc.revision, store.revision().await.unwrap());
    let text = doc.to_json().unwrap();

    let empty = b.fresh().await;
    let parsed = ExportDocument::from_json(&text).unwrap();
    let imported = empty
        .import(&WriteContext::new("import"), parsed)
        .await
        .unwrap();
    assert_eq!(imported.revision, 1);
    assert_eq!(imported.value, config);
    assert_eq!(empty.load().await.unwrap().config, config);
    // Ids were kept, so new entities do not collide with imported ones.
    let next = empty
        .create_proxy_host(&ctx(), ProxyHost::new(["new.example"], vec![]))
        .await
        .unwrap();
    assert!(next.value.id > config.proxy_hosts[0].id);

    // Without secrets: blank in the document, kept by a re-import.
    let blank = store.export(false).await.unwrap();
    assert!(blank.config.certificates[0].private_key_pem.is_empty());
    assert!(blank.config.access_lists[0]
        .users
        .iter()
        .all(|u| u.password_hash.is_empty()));
    assert!(!blank.to_json().unwrap().contains("PRIVATE KEY"));
    store.import(&ctx(), blank).await.unwrap();
    assert_eq!(store.load().await.unwrap().config, config);

    // Wrong documents are refused.
    for bad in [
        r#"{"format":"other","version":1,"revision":1,"config":{}}"#,
        r#"{"format":"ppm-config","version":2,"revision":1,"config":{}}"#,
        "not json",
    ] {
        assert!(
            matches!(ExportDocument::from_json(bad), Err(WriteError::Format(_))),
            "{bad}"
        );
    }
}

async fn rollback_restores_earlier_snapshots_exactly<B: Backend>(b: Arc<B>) {
    let store = b.fresh().await;
    let mut seen = vec![(0, Config::new())];
    populate(&store).await;
    seen.push((
        store.revision().await.unwrap(),
        store.load().await.unwrap().config,
    ));
    // Enough writes to pass a history checkpoint (64 KiB of changes at
    // least; each of these is over 1 KiB of JSON).
    let mut ids = Vec::new();
    for i in 0..120u16 {
        let name = format!("h{i}.example");
        let c = if i % 3 == 2 {
            let id: Id = ids.remove(0);
            store.delete_proxy_host(&ctx(), id).await.unwrap().revision
        } else {
            let mut h = full_proxy_host(None, None, vec![name]);
            h.retries = u32::from(i);
            let c = store.create_proxy_host(&ctx(), h).await.unwrap();
            ids.push(c.value.id);
            c.revision
        };
        let snap = store.load().await.unwrap();
        assert_eq!(snap.revision, c);
        seen.push((c, snap.config));
    }
    for (rev, config) in &seen {
        let snap = store.snapshot_at(*rev).await.unwrap();
        assert_eq!(&snap.config, config, "snapshot at revision {rev}");
    }
    let history = store.history(None, 5).await.unwrap();
    assert_eq!(history.len(), 5);
    assert_eq!(history[0].revision, store.revision().await.unwrap());
    assert_eq!(history[0].actor, "tester@example.com");
    assert_eq!(history[0].client_ip.as_deref(), Some("192.0.2.7"));
    let changes = store.revision_changes(history[0].revision).await.unwrap();
    assert_eq!(changes.changes.len(), 1);

    for (rev, config) in seen.iter().rev().step_by(7) {
        let done = store.rollback(&ctx(), *rev).await.unwrap();
        assert_eq!(&done.value, config);
        let snap = store.load().await.unwrap();
        assert_eq!(snap.revision, done.revision);
        assert_eq!(&snap.config, config, "rollback to {rev}");
        assert_eq!(
            store.history(None, 1).await.unwrap()[0].summary,
            format!("rollback to revision {rev}")
        );
    }
    assert!(matches!(
        store.snapshot_at(10_000).await,
        Err(WriteError::UnknownRevision(10_000))
    ));
}

async fn watch_fires_after_commit<B: Backend>(b: Arc<B>) {
    let store = b.fresh().await;
    let rev = write_is_announced(&store, &store, "w.example").await;
    assert_eq!(store.load().await.unwrap().revision, rev);
}

async fn two_stores_on_one_database_converge<B: Backend>(b: Arc<B>) {
    let a = b.fresh().await;
    let second = b.peer(&a).await;
    let b = second;
    let mut signal = b.watch().unwrap();

    populate(&a).await;
    let target = a.revision().await.unwrap();
    wait_for_revision(
        &mut signal,
        target,
        "the second store did not notice the writes",
    )
    .await;
    assert_eq!(b.load().await.unwrap(), a.load().await.unwrap());

    // And the other way round, with a conflict checked across both.
    let err = b
        .create_proxy_host(&ctx(), ProxyHost::new(["bücher.example"], vec![]))
        .await
        .unwrap_err();
    assert!(err.field_errors()[0].message.contains("already used"));
}

/// Checks that `err` refuses a database with migration 99990001 (as the
/// tests record it) and that its message names both versions; returns the
/// message.
fn refused_as_newer(err: OpenError, supported: i64) -> String {
    assert!(
        matches!(
            err,
            OpenError::NewerSchema {
                found: 99990001,
                ..
            }
        ),
        "{err}"
    );
    let msg = err.to_string();
    assert!(msg.contains("99990001"), "{msg}");
    assert!(msg.contains(&supported.to_string()), "{msg}");
    msg
}

#[tokio::test]
async fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ppm.db");
    let store = SqliteStore::open(&path).await.unwrap();
    store.close().await;
    drop(store);
    {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
             VALUES (99990001, 'from the future', 1, x'00', 0)",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        conn.close().await.unwrap();
    }
    let err = SqliteStore::open(&path).await.unwrap_err();
    refused_as_newer(err, SqliteStore::supported_schema_version());
}

/// SQLite loads read half the tables on a second connection; every loaded
/// snapshot must still be one committed state while a writer changes a
/// host's row and its names together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loads_during_writes_are_consistent_snapshots() {
    let (_dir, store) = fresh().await;
    let names = |k: u64| {
        vec![
            format!("v{k}.consistency.test"),
            format!("w{k}.consistency.test"),
        ]
    };
    let mut h = ProxyHost::new(names(0), vec![Upstream::new("10.0.0.1", 80)]);
    h.max_body_size = Some(0);
    let mut h = store.create_proxy_host(&ctx(), h).await.unwrap().value;
    // Padding, so a load takes long enough for writes to land inside it.
    let mut filler = Config::new();
    filler.proxy_hosts.push(h.clone());
    for i in 0..500 {
        let mut f = ProxyHost::new(
            [format!("f{i}.filler.test")],
            vec![Upstream::new("10.0.0.2", 80)],
        );
        f.request_headers = vec![HeaderRule::set("X-F", "1")];
        filler.proxy_hosts.push(f);
    }
    store.replace_all(&ctx(), filler, "filler").await.unwrap();
    h = store.load().await.unwrap().config.proxy_hosts[0].clone();

    let writes = 60u64;
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for k in 1..=writes {
                h.max_body_size = Some(k);
                h.domain_names = names(k);
                store.update_proxy_host(&ctx(), h.clone()).await.unwrap();
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut loads = 0;
    let mut seen = std::collections::BTreeSet::new();
    while !writer.is_finished() {
        assert!(Instant::now() < deadline, "the writer did not finish");
        let snap = store.load().await.unwrap();
        let host = &snap.config.proxy_hosts[0];
        let k = host.max_body_size.unwrap();
        assert_eq!(host.domain_names, names(k), "revision {}", snap.revision);
        assert_eq!(snap.config.proxy_hosts.len(), 501);
        seen.insert(k);
        loads += 1;
    }
    writer.await.unwrap();
    let last = store.load().await.unwrap();
    assert_eq!(last.config.proxy_hosts[0].domain_names, names(writes));
    assert!(loads > 1 && seen.len() > 1, "{loads} loads saw {seen:?}");
}

#[tokio::test]
async fn backup_is_a_consistent_copy() {
    let (dir, store) = fresh().await;
    populate(&store).await;
    let target = dir.path().join("backup.db");
    store.backup_to(&target).await.unwrap();
    let copy = SqliteStore::open(&target).await.unwrap();
    assert_eq!(copy.integrity_check().await.unwrap(), "ok");
    assert_eq!(copy.load().await.unwrap(), store.load().await.unwrap());
}

fn counts(requests: u64, bytes_out: u64) -> Counts {
    let mut c = Counts::default();
    c.requests = requests;
    c.status_2xx = requests;
    c.bytes_out = bytes_out;
    c.duration_us_sum = requests * 1000;
    c.duration_count = requests;
    c
}

/// `requests` of each point.
fn requests(points: &[ppm_store::stats::SeriesPoint]) -> Vec<u64> {
    points.iter().map(|p| p.counts.requests).collect()
}

/// Two nodes roll up into one database, each through its own store (as
/// two processes do); the reads sum them and break them down per node.
async fn stats_are_recorded_per_node_and_summed<B: Backend>(b: Arc<B>) {
    let a = b.fresh().await;
    let peer = b.peer(&a).await;
    let t0 = 1_700_000_000 - 1_700_000_000 % 3600;
    let host = |c| StatsRow::new("host", "proxy:1", c);
    a.add_rollup(
        "node-a",
        t0 + 5,
        &[
            host(counts(2, 10)),
            StatsRow::new("upstream", "10.0.0.1:80", counts(2, 10)),
            StatsRow::new("host", "proxy:2", Counts::default()),
        ],
    )
    .await
    .unwrap();
    peer.add_rollup("node-b", t0 + 10, &[host(counts(3, 7))])
        .await
        .unwrap();
    a.add_rollup("node-a", t0 + 70, &[host(counts(1, 1))])
        .await
        .unwrap();
    peer.add_rollup("node-b", t0 + 3605, &[host(counts(4, 4))])
        .await
        .unwrap();
    // Twice in one minute adds to the same row.
    peer.add_rollup("node-b", t0 + 3650, &[host(counts(1, 1))])
        .await
        .unwrap();

    // Minutes, from either store.
    for s in [&a, &peer] {
        let m = s
            .series("host", "proxy:1", Resolution::Minute, t0, t0 + 180, 60)
            .await
            .unwrap();
        assert_eq!(
            m.iter().map(|p| p.t).collect::<Vec<_>>(),
            [t0, t0 + 60, t0 + 120]
        );
        assert_eq!(requests(&m), [5, 1, 0]);
        assert_eq!(m[0].counts.bytes_out, 17);
        assert_eq!(m[0].counts.duration_us_sum, 5000);
        let by = s
            .series_by_node("host", "proxy:1", Resolution::Minute, t0, t0 + 180, 60)
            .await
            .unwrap();
        let ids: Vec<&str> = by.iter().map(|n| n.node_id.as_str()).collect();
        assert_eq!(ids, ["node-a", "node-b"]);
        assert_eq!(requests(&by[0].points), [2, 1, 0]);
        assert_eq!(requests(&by[1].points), [3, 0, 0]);
    }
    // Wider buckets, starting from a `from` inside a bucket.
    let m = a
        .series(
            "host",
            "proxy:1",
            Resolution::Minute,
            t0 + 30,
            t0 + 240,
            120,
        )
        .await
        .unwrap();
    assert_eq!(m.iter().map(|p| p.t).collect::<Vec<_>>(), [t0, t0 + 120]);
    assert_eq!(requests(&m), [6, 0]);
    // Hours.
    let h = a
        .series("host", "proxy:1", Resolution::Hour, t0, t0 + 7200, 3600)
        .await
        .unwrap();
    assert_eq!(requests(&h), [6, 5]);
    assert_eq!(h[1].counts.bytes_out, 5);
    let by = peer
        .series_by_node("host", "proxy:1", Resolution::Hour, t0, t0 + 7200, 3600)
        .await
        .unwrap();
    assert_eq!(requests(&by[0].points), [3, 0]);
    assert_eq!(requests(&by[1].points), [3, 5]);
    // A node without rows in the range is left out; an unknown series is
    // zero.
    let by = a
        .series_by_node(
            "host",
            "proxy:1",
            Resolution::Minute,
            t0 + 3600,
            t0 + 3720,
            60,
        )
        .await
        .unwrap();
    assert_eq!(by.len(), 1);
    assert_eq!(by[0].node_id, "node-b");
    assert_eq!(requests(&by[0].points), [5, 0]);
    let none = a
        .series("host", "proxy:9", Resolution::Minute, t0, t0 + 120, 60)
        .await
        .unwrap();
    assert_eq!(requests(&none), [0, 0]);

    // Totals: summed, and per node with each node's last rollup.
    let totals = peer.totals().await.unwrap();
    let keys: Vec<(&str, &str, u64, u64)> = totals
        .iter()
        .map(|r| {
            (
                r.scope.as_str(),
                r.key.as_str(),
                r.counts.requests,
                r.counts.bytes_out,
            )
        })
        .collect();
    assert_eq!(
        keys,
        [
            ("host", "proxy:1", 11, 23),
            ("upstream", "10.0.0.1:80", 2, 10)
        ]
    );
    let by = a.totals_by_node().await.unwrap();
    assert_eq!(by.len(), 2);
    assert_eq!(
        (by[0].node_id.as_str(), by[0].last_rollup, by[0].rows.len()),
        ("node-a", t0 + 70, 2)
    );
    assert_eq!(
        (by[0].rows[0].key.as_str(), by[0].rows[0].counts.requests),
        ("proxy:1", 3)
    );
    assert_eq!(
        (by[1].node_id.as_str(), by[1].last_rollup, by[1].rows.len()),
        ("node-b", t0 + 3650, 1)
    );
    assert_eq!(by[1].rows[0].counts.requests, 8);
    assert_eq!(ppm_store::stats::sum_totals(&by), totals);
    // Both at once: per series, and per node and scope.
    let summary = a.totals_summary().await.unwrap();
    assert_eq!(summary.series, totals);
    let nodes: Vec<(&str, &str, i64, u64)> = summary
        .nodes
        .iter()
        .map(|n| {
            (
                n.node_id.as_str(),
                n.scope.as_str(),
                n.last_rollup,
                n.counts.requests,
            )
        })
        .collect();
    assert_eq!(
        nodes,
        [
            ("node-a", "host", t0 + 70, 3),
            ("node-a", "upstream", t0 + 5, 2),
            ("node-b", "host", t0 + 3650, 8),
        ]
    );
    assert_eq!(summary.nodes[2].counts.bytes_out, 12);

    // Prune: minute rows before t0+3300 and hour rows before t0+300, of
    // every node; totals stay.
    let retention = Retention {
        minute_secs: 600,
        hour_secs: 3600,
    };
    let pruned = peer.prune(t0 + 3900, retention).await.unwrap();
    // Minutes: a's t0 (host, upstream) and t0+60, b's t0; hours: a's t0
    // (host, upstream), b's t0.
    assert_eq!(pruned, 7);
    let by = a
        .series_by_node("host", "proxy:1", Resolution::Minute, t0, t0 + 3720, 60)
        .await
        .unwrap();
    assert_eq!(by.len(), 1, "{by:?}");
    assert_eq!(
        by[0].points.iter().map(|p| p.counts.requests).sum::<u64>(),
        5
    );
    let h = a
        .series_by_node("host", "proxy:1", Resolution::Hour, t0, t0 + 7200, 3600)
        .await
        .unwrap();
    assert_eq!(h.len(), 1);
    assert_eq!(requests(&h[0].points), [0, 5]);
    assert_eq!(a.totals().await.unwrap(), totals);
    assert_eq!(a.prune(t0 + 3900, retention).await.unwrap(), 0);
}

/// A rollup of more series than one statement holds adds every one of
/// them; a series given twice adds both.
async fn a_rollup_of_many_series<B: Backend>(b: Arc<B>) {
    let s = b.fresh().await;
    let t0 = 1_700_000_000 - 1_700_000_000 % 3600;
    let mut rows: Vec<StatsRow> = (1..=1000u64)
        .map(|i| StatsRow::new("host", format!("proxy:{i}"), counts(i, 2 * i)))
        .collect();
    rows.push(StatsRow::new("host", "proxy:7", counts(1, 1)));
    let start = Instant::now();
    s.add_rollup("node-a", t0 + 1, &rows).await.unwrap();
    let first = start.elapsed();
    s.add_rollup("node-b", t0 + 2, &rows).await.unwrap();
    eprintln!(
        "a rollup of {} series: {first:?}, then {:?}",
        rows.len(),
        start.elapsed() - first
    );
    let totals = s.totals().await.unwrap();
    assert_eq!(totals.len(), 1000);
    let sum: u64 = totals.iter().map(|r| r.counts.requests).sum();
    assert_eq!(sum, 2 * (500 * 1001 + 1));
    let seven = totals.iter().find(|r| r.key == "proxy:7").unwrap();
    assert_eq!((seven.counts.requests, seven.counts.bytes_out), (16, 30));
    let m = s
        .series("host", "proxy:1000", Resolution::Minute, t0, t0 + 60, 60)
        .await
        .unwrap();
    assert_eq!(requests(&m), [2000]);
    let by = s.totals_by_node().await.unwrap();
    assert_eq!(by.len(), 2);
    assert!(by.iter().all(|n| n.rows.len() == 1000));
}

/// A database from before statistics were kept per node keeps its rows,
/// as node "".
#[tokio::test]
async fn sqlite_stats_from_before_nodes_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ppm.db");
    {
        use sqlx::Connection;
        // The migrations up to 0004, as an older ppm applied them.
        let old = dir.path().join("old-migrations");
        std::fs::create_dir(&old).unwrap();
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        for e in std::fs::read_dir(&src).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().into_string().unwrap();
            if name.as_str() < "0005" {
                std::fs::copy(e.path(), old.join(&name)).unwrap();
            }
        }
        let mut conn =
            sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=rwc", path.display()))
                .await
                .unwrap();
        sqlx::migrate::Migrator::new(old.as_path())
            .await
            .unwrap()
            .run(&mut conn)
            .await
            .unwrap();
        for (table, ts) in [
            ("stats_minute", 1_700_000_040),
            ("stats_hour", 1_699_999_200),
            ("stats_total", 1_700_000_059),
        ] {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO {table} (scope, key, ts, requests, status_2xx, bytes_out)
                 VALUES ('host', 'proxy:1', {ts}, 4, 4, 40)"
            )))
            .execute(&mut conn)
            .await
            .unwrap();
        }
        conn.close().await.unwrap();
    }
    let store = SqliteStore::open(&path).await.unwrap();
    store
        .add_rollup(
            "node-a",
            1_700_000_050,
            &[StatsRow::new("host", "proxy:1", counts(1, 1))],
        )
        .await
        .unwrap();
    let by = store.totals_by_node().await.unwrap();
    let shares: Vec<(&str, u64, i64)> = by
        .iter()
        .map(|n| (n.node_id.as_str(), n.rows[0].counts.requests, n.last_rollup))
        .collect();
    assert_eq!(
        shares,
        [("", 4, 1_700_000_059), ("node-a", 1, 1_700_000_050)]
    );
    let m = store
        .series_by_node(
            "host",
            "proxy:1",
            Resolution::Minute,
            1_700_000_040,
            1_700_000_100,
            60,
        )
        .await
        .unwrap();
    assert_eq!(m.len(), 2);
    assert_eq!(requests(&m[0].points), [4]);
    assert_eq!(requests(&m[1].points), [1]);
    let h = store
        .series(
            "host",
            "proxy:1",
            Resolution::Hour,
            1_699_999_200,
            1_700_002_800,
            3600,
        )
        .await
        .unwrap();
    assert_eq!(requests(&h), [5]);
    assert_eq!(h[0].counts.bytes_out, 41);
}

async fn users_tokens_and_audit<B: Backend>(b: Arc<B>) {
    let store = b.fresh().await;
    let u = store
        .create_user(NewUser::new(
            "Admin@Example.com",
            "Ädmin",
            "$argon2id$x",
            "admin",
        ))
        .await
        .unwrap();
    assert!(u.id > 0);
    assert_eq!(store.get_user(u.id).await.unwrap(), u);
    let err = store
        .create_user(NewUser::new("admin@example.com", "dup", "h", "viewer"))
        .await
        .unwrap_err();
    assert_eq!(err.field_errors()[0].path, "email");
    assert_eq!(
        store
            .find_user_by_email("ADMIN@example.com")
            .await
            .unwrap()
            .unwrap()
            .id,
        u.id
    );
    let mut u2 = u.clone();
    u2.disabled = true;
    u2.name = "renamed".into();
    let saved = store.update_user(&u2).await.unwrap();
    assert!(saved.disabled);
    store.set_user_password(u.id, "$argon2id$y").await.unwrap();
    let reread = store.get_user(u.id).await.unwrap();
    assert_eq!(reread.password_hash, "$argon2id$y");
    assert!(reread.password_changed_at.is_some());

    let scopes = vec!["read".to_string(), "write".to_string()];
    let t = store
        .create_api_token(u.id, "ci", "hash1", &scopes)
        .await
        .unwrap();
    assert_eq!(t.scopes, scopes);
    assert_eq!(store.find_api_token("hash1").await.unwrap().unwrap(), t);
    store.touch_api_token(t.id).await.unwrap();
    store.revoke_api_token(t.id).await.unwrap();
    let t2 = store.find_api_token("hash1").await.unwrap().unwrap();
    assert!(t2.last_used_at.is_some() && t2.revoked_at.is_some());
    assert_eq!(store.list_api_tokens(u.id).await.unwrap().len(), 1);
    let err = store
        .create_api_token(999, "x", "hash2", &[])
        .await
        .unwrap_err();
    assert_eq!(err.field_errors()[0].path, "user_id");

    let mut e = AuditEntry::new("admin@example.com", "create", "proxy_host");
    e.user_id = Some(u.id);
    e.entity_id = Some(3);
    e.after = Some(json!({"domain_names": ["a.test"]}));
    let e = store.append_audit(e).await.unwrap();
    store
        .append_audit(AuditEntry::new("system", "login", "user"))
        .await
        .unwrap();
    let log = store.list_audit(None, 10).await.unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(log[1], e);
    assert_eq!(
        store.list_audit(Some(log[0].id), 10).await.unwrap(),
        vec![e.clone()]
    );

    store.delete_user(u.id).await.unwrap();
    assert!(store.find_api_token("hash1").await.unwrap().is_none());
    let log = store.list_audit(None, 10).await.unwrap();
    assert_eq!(log[1].user_id, None);
    assert_eq!(log[1].actor, "admin@example.com");
    // None of this touched the config revision.
    assert_eq!(store.revision().await.unwrap(), 0);
}

async fn loads_many_hosts_with_few_queries<B: Backend>(b: Arc<B>) {
    let store = b.fresh().await;
    // PPM_STORE_LOAD_HOSTS=10000 with --release checks the load budget.
    let n: i64 = std::env::var("PPM_STORE_LOAD_HOSTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let mut c = Config::new();
    for i in 0..n {
        let mut h = ProxyHost::new(
            [format!("h{i}.example"), format!("www.h{i}.example")],
            vec![Upstream::new("10.0.0.1", 80), Upstream::new("10.0.0.2", 80)],
        );
        h.id = i + 1;
        h.request_headers = vec![HeaderRule::set("X-A", "b")];
        h.locations = vec![Location {
            path: "/api".into(),
            ..Location::default()
        }];
        c.proxy_hosts.push(h);
    }
    let stored = store.replace_all(&ctx(), c.clone(), "bulk").await.unwrap();
    assert_eq!(stored.value, c);
    let start = Instant::now();
    let snap = store.load().await.unwrap();
    eprintln!("load of {n} hosts: {:?}", start.elapsed());
    assert_eq!(snap.config, c);
}

const KILL_DB_ENV: &str = "PPM_STORE_KILL_TEST_DB";

/// The writer half of `sigkill_mid_write_keeps_the_database_sound`: run by
/// the parent test as a child process, never on its own.
#[tokio::test]
#[ignore = "run by sigkill_mid_write_keeps_the_database_sound"]
async fn sigkill_writer_child() {
    let Ok(path) = std::env::var(KILL_DB_ENV) else {
        return;
    };
    let store = SqliteStore::open(&path).await.unwrap();
    for i in 0..100 {
        let mut h = full_proxy_host(None, None, vec![format!("k{i}.example")]);
        h.retries = i;
        let c = store.create_proxy_host(&ctx(), h).await.unwrap();
        println!("committed {}", c.revision);
        // Spread the writes so the parent's kill lands mid-way.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn sigkill_mid_write_keeps_the_database_sound() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("killed.db");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "sigkill_writer_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(KILL_DB_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut last_seen = 0u64;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(rev) = line.strip_prefix("committed ") {
            last_seen = rev.parse().unwrap();
            if last_seen >= 20 {
                break;
            }
        }
    }
    assert!(
        last_seen >= 20,
        "the writer committed {last_seen} revisions before exiting"
    );
    child.kill().unwrap(); // SIGKILL on Unix
    let status = child.wait().unwrap();
    assert!(!status.success(), "the writer was killed, not finished");

    let store = SqliteStore::open(&path).await.unwrap();
    assert_eq!(store.integrity_check().await.unwrap(), "ok");
    let snap = store.load().await.unwrap();
    eprintln!(
        "killed after revision {last_seen}; the file holds revision {}",
        snap.revision
    );
    assert!(snap.revision >= last_seen && snap.revision <= 100);
    // Consistent: one host per committed revision, history up to it, and
    // the last host fully written.
    assert_eq!(snap.config.proxy_hosts.len() as u64, snap.revision);
    assert_eq!(
        store.history(None, 1).await.unwrap()[0].revision,
        snap.revision
    );
    let last = snap.config.proxy_hosts.last().unwrap();
    let mut expected = full_proxy_host(None, None, vec![format!("k{}.example", snap.revision - 1)]);
    expected.id = last.id;
    expected.retries = (snap.revision - 1) as u32;
    assert_eq!(last, &expected);
    assert_eq!(
        store.snapshot_at(snap.revision).await.unwrap().config,
        snap.config
    );
}

async fn engine_runs_from_the_store<B: Backend>(b: Arc<B>) {
    use ppm_core::engine::ProxyEngine;
    use ppm_core::filter::RouteKind;

    let store = b.fresh().await;
    let store = Arc::new(store);
    let engine = ProxyEngine::builder()
        .store(store.clone())
        .poll_interval(Duration::from_secs(60))
        .build()
        .await
        .unwrap();
    let handle = engine.handle();
    assert_eq!(handle.revision(), 0);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let background = {
        let handle = handle.clone();
        tokio::spawn(async move {
            handle
                .run_background(async {
                    let _ = stopped.await;
                })
                .await
        })
    };

    let host = store
        .create_proxy_host(
            &ctx(),
            ProxyHost::new(["app.example"], vec![Upstream::new("127.0.0.1", 8080)]),
        )
        .await
        .unwrap();
    // The store's signal drives the reload: wait for the engine to serve it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while handle.revision() < host.revision {
        assert!(Instant::now() < deadline, "the engine did not reload");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let route = handle.current().route_host("app.example");
    assert!(
        matches!(route, Some((RouteKind::Proxy, id)) if id == host.value.id),
        "{route:?}"
    );
    let _ = stop.send(());
    background.await.unwrap();
}

#[tokio::test]
async fn postgres_newer_schema_is_refused() {
    on_postgres("postgres_newer_schema_is_refused", |pg| async move {
        let store = pg.fresh().await;
        let schema = store.schema().unwrap().to_owned();
        assert_eq!(
            store.schema_version().await.unwrap(),
            PostgresStore::supported_schema_version()
        );
        record_newer_migration(&store).await;
        let err = PostgresStore::open_with(&pg.url, Postgres::options(&schema))
            .await
            .unwrap_err();
        let msg = refused_as_newer(err, PostgresStore::supported_schema_version());
        assert!(msg.contains(&schema), "{msg}");
        assert!(!msg.contains("password"), "{msg}");
    })
    .await;
}

/// A store whose notification connection is cut keeps converging: it polls
/// while the connection is down, and reads the revision when it is back.
#[tokio::test]
async fn postgres_lost_notifications_are_caught_up() {
    on_postgres(
        "postgres_lost_notifications_are_caught_up",
        |pg| async move {
            let a = pg.fresh().await;
            let b = pg.peer(&a).await;
            let schema = a.schema().unwrap().to_owned();
            wait_until("the stores never listened", || {
                a.is_listening() && b.is_listening()
            })
            .await;
            // A notification reaches the other store.
            write_is_announced(&a, &b, "n1.example").await;
            let mut signal = b.watch().unwrap();

            // Cut both stores' listening connections, write, and watch the
            // other store converge anyway.
            let cut: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
        )
        .bind(format!("ppm listen {schema}"))
        .fetch_all(a.pool())
        .await
        .unwrap();
            assert_eq!(cut.len(), 2, "two listening connections");
            let mut last = 0;
            for i in 0..5 {
                last = a
                    .create_proxy_host(&ctx(), ProxyHost::new([format!("m{i}.example")], vec![]))
                    .await
                    .unwrap()
                    .revision;
            }
            wait_for_revision(&mut signal, last, "the cut store did not catch up").await;
            assert_eq!(b.load().await.unwrap(), a.load().await.unwrap());
            // And it listens again.
            wait_until("the store did not listen again", || b.is_listening()).await;
        },
    )
    .await;
}

/// Writes from two stores at once are serialised: every write gets its own
/// revision and the history has no gaps.
#[tokio::test]
async fn postgres_concurrent_writers_serialise() {
    on_postgres("postgres_concurrent_writers_serialise", |pg| async move {
        let a = pg.fresh().await;
        let b = pg.peer(&a).await;
        let mut tasks = Vec::new();
        for (n, store) in [a.clone(), b.clone()].into_iter().enumerate() {
            tasks.push(tokio::spawn(async move {
                let mut revs = Vec::new();
                for i in 0..20 {
                    let h = ProxyHost::new([format!("s{n}-{i}.example")], vec![]);
                    revs.push(store.create_proxy_host(&ctx(), h).await.unwrap().revision);
                }
                // The same name from both: exactly one wins.
                let dup = store
                    .create_proxy_host(&ctx(), ProxyHost::new(["same.example"], vec![]))
                    .await;
                (revs, dup.is_ok())
            }));
        }
        let mut all = Vec::new();
        let mut winners = 0;
        for t in tasks {
            let (revs, won) = t.await.unwrap();
            all.extend(revs);
            winners += usize::from(won);
        }
        assert_eq!(winners, 1);
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 40, "every write has its own revision");
        let snap = a.load().await.unwrap();
        assert_eq!(snap.revision, 41);
        assert_eq!(snap.config.proxy_hosts.len(), 41);
        let history = a.history(None, 100).await.unwrap();
        let revs: Vec<u64> = history.iter().map(|h| h.revision).rev().collect();
        assert_eq!(revs, (1..=41).collect::<Vec<_>>());
    })
    .await;
}

/// A running store refuses config writes once a newer ppm migrated the
/// database, instead of writing with an older idea of the tables.
#[tokio::test]
async fn postgres_refuses_writes_after_a_newer_migration() {
    on_postgres(
        "postgres_refuses_writes_after_a_newer_migration",
        |pg| async move {
            let store = pg.fresh().await;
            store
                .create_proxy_host(&ctx(), ProxyHost::new(["before.example"], vec![]))
                .await
                .unwrap();
            record_newer_migration(&store).await;
            let err = store
                .create_proxy_host(&ctx(), ProxyHost::new(["after.example"], vec![]))
                .await
                .unwrap_err();
            assert!(
                matches!(
                    err,
                    WriteError::NewerSchema {
                        found: 99990001,
                        ..
                    }
                ),
                "{err}"
            );
            assert!(err.to_string().contains("upgrade this node"), "{err}");
            // Reads keep working: the node keeps serving what it has.
            assert_eq!(store.load().await.unwrap().config.proxy_hosts.len(), 1);
        },
    )
    .await;
}

/// ACME records on PostgreSQL (the SQL shared with SQLite), the leader
/// lease, shared HTTP-01 tokens and node reports.
#[tokio::test]
async fn postgres_acme_records_leases_tokens_and_nodes() {
    use ppm_store::acme::{AcmeOrder, DnsProviderDeletion, DnsProviderRecord};
    use ppm_store::nodes::NodeRecord;
    on_postgres(
        "postgres_acme_records_leases_tokens_and_nodes",
        |pg| async move {
            let a = pg.fresh().await;
            let b = pg.peer(&a).await;

            // Records: the first stored account wins, orders round-trip, a
            // provider in use is kept, settings replace as a whole.
            let first = a
                .save_acme_account("https://ca/dir", "", "", "{\"a\":1}")
                .await
                .unwrap();
            let second = b
                .save_acme_account("https://ca/dir", "", "", "{\"b\":2}")
                .await
                .unwrap();
            assert_eq!(first, second);
            let p = a
                .create_dns_provider(&DnsProviderRecord::new("cf", "cloudflare", "{}", 10))
                .await
                .unwrap();
            let dup = a
                .create_dns_provider(&DnsProviderRecord::new("cf", "command", "{}", 0))
                .await
                .unwrap_err();
            assert!(matches!(dup, WriteError::Invalid(_)), "{dup:?}");
            let mut o = AcmeOrder::new(7, vec!["*.b.test".into()], "dns-01", Some(p.id));
            a.save_acme_order(&o).await.unwrap();
            o.status = "failed".into();
            o.attempts = 2;
            a.save_acme_order(&o).await.unwrap();
            assert_eq!(b.acme_order(7).await.unwrap().unwrap().attempts, 2);
            o.status = "nonsense".into();
            assert!(a.save_acme_order(&o).await.is_err());
            assert_eq!(
                b.delete_dns_provider(p.id).await.unwrap(),
                DnsProviderDeletion::InUse(7)
            );
            assert!(a.delete_acme_order(7).await.unwrap());
            assert_eq!(
                b.delete_dns_provider(p.id).await.unwrap(),
                DnsProviderDeletion::Deleted
            );
            a.replace_acme_settings(&[("email".into(), "a@b.test".into())])
                .await
                .unwrap();
            assert_eq!(
                b.acme_settings().await.unwrap(),
                vec![("email".to_string(), "a@b.test".to_string())]
            );

            // The lease: one holder at a time; the holder renews it; another
            // takes it once it expired or was released.
            assert!(a.acquire_lease("acme", "node-a", 60_000).await.unwrap());
            assert!(!b.acquire_lease("acme", "node-b", 60_000).await.unwrap());
            assert!(a.acquire_lease("acme", "node-a", 300).await.unwrap());
            assert_eq!(
                b.lease_holder("acme").await.unwrap().as_deref(),
                Some("node-a")
            );
            let deadline = Instant::now() + Duration::from_secs(5);
            while !b.acquire_lease("acme", "node-b", 60_000).await.unwrap() {
                assert!(
                    Instant::now() < deadline,
                    "the expired lease was never taken"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert!(!a.acquire_lease("acme", "node-a", 60_000).await.unwrap());
            b.release_lease("acme", "node-b").await.unwrap();
            assert_eq!(a.lease_holder("acme").await.unwrap(), None);
            assert!(a.acquire_lease("acme", "node-a", 60_000).await.unwrap());

            // Nodes and tokens: a node that loaded a token is not waited for.
            a.report_node(&NodeRecord::new("node-a", "1", 1, vec![]), true)
                .await
                .unwrap();
            b.report_node(
                &NodeRecord::new("node-b", "1", 0, vec!["api x".into()]),
                true,
            )
            .await
            .unwrap();
            let list = b.nodes().await.unwrap();
            assert_eq!(list.nodes.len(), 2);
            assert_eq!(list.nodes[1].listeners, ["api x"]);
            let serial = a.publish_http01_token("tok", "tok.key").await.unwrap();
            assert_eq!(
                a.http01_tokens_lagging("node-a", serial, 60_000)
                    .await
                    .unwrap(),
                1
            );
            let seen = std::sync::Arc::new(Mutex::new(Vec::new()));
            let sink = seen.clone();
            let sync = b.sync_http01_tokens("node-b".into(), Duration::from_secs(5), move |t| {
                *sink.lock().unwrap() = t.iter().map(|t| t.token.clone()).collect();
            });
            let deadline = Instant::now() + Duration::from_secs(5);
            while a
                .http01_tokens_lagging("node-a", serial, 60_000)
                .await
                .unwrap()
                != 0
            {
                assert!(Instant::now() < deadline, "node-b never loaded the token");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert_eq!(*seen.lock().unwrap(), ["tok"]);
            a.withdraw_http01_token("tok").await.unwrap();
            let deadline = Instant::now() + Duration::from_secs(5);
            while !seen.lock().unwrap().is_empty() {
                assert!(Instant::now() < deadline, "node-b never dropped the token");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            sync.abort();
        },
    )
    .await;
}
