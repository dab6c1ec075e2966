//! Startup: open the store, make sure an admin exists, build the engine,
//! bind the listeners, and run the Pingora server with the API inside it.

use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, Context};
use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use ppm_core::async_trait;
use ppm_core::engine::ProxyEngine;
use ppm_core::forwarded::TrustedProxies;
use ppm_core::pingora_core::server::configuration::ServerConf;
use ppm_core::pingora_core::server::{RunArgs, Server, ShutdownWatch};
use ppm_core::pingora_core::services::background::{background_service, BackgroundService};
use ppm_core::tls::ParsedCertificate;
use ppm_store::accounts::NewUser;
use ppm_store::AnyStore;
use tower::Service;

use crate::acme::{AcmeManager, AcmeOptions, Http01Tokens, OrderLease, SingleProcess};
use crate::api::{self, State};
use crate::auth::{self, Jwt};
use crate::cluster::Cluster;
use crate::logs::LogFiles;
use crate::settings::Settings;
use crate::stats::StatsService;
use crate::throttle::LoginThrottle;
use ppm_core::stats::AccessLog;
use ppm_store::stats::Retention;

/// How long the API waits for a request head before closing the connection
/// (also bounds idle keep-alive connections).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything built before the servers start.
pub struct Prepared {
    /// The store.
    pub store: Arc<AnyStore>,
    /// The engine.
    pub engine: ProxyEngine,
    /// The API router, with state.
    pub router: Router,
    /// The API's shared state.
    pub state: api::AppState,
    /// The HTTPS listener's certificate of last resort (taken by the
    /// listener that serves it).
    pub tls_fallback: Option<ParsedCertificate>,
    /// The ACME manager (run it with [`AcmeManager::run`]).
    pub acme: Arc<AcmeManager>,
    /// Traffic statistics (run it with [`StatsService::run`]).
    pub stats: Arc<StatsService>,
    /// This node in the cluster (run its heartbeat with [`Cluster::run`]).
    pub cluster: Arc<Cluster>,
}

/// Opens the store, creates the first admin if needed, loads the session
/// secret and builds the engine.
pub async fn prepare(settings: &Settings) -> anyhow::Result<Prepared> {
    std::fs::create_dir_all(&settings.data_dir).with_context(|| {
        format!(
            "--data-dir {}: cannot create the directory",
            settings.data_dir.display()
        )
    })?;
    let store = AnyStore::open(settings.database_url.as_deref(), &settings.data_dir)
        .await
        .map_err(|e| match &settings.database_url {
            Some(_) => anyhow!("--database-url: {}", api::error::display_chain(&e)),
            None => anyhow!(
                "--data-dir {}: {}",
                settings.data_dir.display(),
                api::error::display_chain(&e)
            ),
        })?;
    let store = Arc::new(store);
    let node_id = crate::cluster::node_id(settings.node_id.as_deref(), &settings.data_dir)?;

    ensure_admin(&store, settings).await?;

    let secret = match &settings.jwt_secret {
        Some(s) => s.as_bytes().to_vec(),
        None => {
            let fresh = base64_encode(&auth::random_bytes::<32>());
            let stored = store
                .server_secret("jwt_secret", &fresh)
                .await
                .map_err(|e| anyhow!("reading the session secret: {e}"))?;
            stored.into_bytes()
        }
    };

    let tls_fallback = tls_fallback(&store).await?;

    // HTTP-01 answers come from this token store, before routing, on every
    // host (even force-HTTPS or access-listed ones).
    let tokens = ppm_filters::AcmeTokens::new();
    let log_files = settings.access_log_path().map(|p| {
        LogFiles::new(
            p,
            settings.access_log_format,
            settings.access_log_max_size,
            settings.access_log_keep,
        )
    });
    let mut log_writer = None;
    let mut access_log = None;
    if let Some(files) = &log_files {
        let capacity = usize::try_from(settings.access_log_buffer).unwrap_or(1 << 20);
        let (log, rx) = AccessLog::channel(capacity, settings.access_log_disabled_hosts.clone());
        log_writer = Some(
            crate::logs::spawn_writer(files.clone(), rx)
                .map_err(|e| anyhow!("--access-log {}: {e}", files.access.display()))?,
        );
        access_log = Some(log);
    }
    let mut builder = ProxyEngine::builder();
    if let Some(log) = access_log {
        builder = builder.access_log(log);
    }
    let engine = builder
        .store(store.clone())
        .registry(ppm_filters::registry_with(tokens.clone()))
        .global_filter(
            ppm_core::filter::priority::ACME_CHALLENGE,
            Arc::new(ppm_filters::AcmeChallenge::new(tokens.clone())),
        )
        .stream_options(
            ppm_core::stream::StreamOptions::new()
                .grace_period(Duration::from_secs(settings.grace_period)),
        )
        .build()
        .await
        .map_err(|e| {
            anyhow!(
                "the stored config cannot be served: {}",
                api::error::display_chain(&e)
            )
        })?;

    let trusted = TrustedProxies::new(
        settings
            .trusted_proxies
            .iter()
            .filter_map(|t| ppm_core::validate::cidr(t).ok()),
    );
    let write_lock = Arc::new(tokio::sync::Mutex::new(()));
    let (http01, lease) = acme_roles(&store, tokens, &node_id, settings);
    let acme = Arc::new(AcmeManager::new(
        store.clone(),
        engine.handle(),
        write_lock.clone(),
        http01,
        lease,
        settings.acme_settings(),
        AcmeOptions {
            retry_base: Duration::from_secs(settings.acme_retry_base),
            ..AcmeOptions::default()
        },
    ));
    acme.load_statuses().await.map_err(|e| anyhow!(e))?;
    let stats = StatsService::new(
        engine.handle(),
        store.clone(),
        node_id.clone(),
        Duration::from_secs(settings.stats_interval),
        Retention {
            minute_secs: i64::try_from(settings.stats_minute_retention_hours * 3600)
                .unwrap_or(i64::MAX),
            hour_secs: i64::try_from(settings.stats_hour_retention_days * 86_400)
                .unwrap_or(i64::MAX),
        },
    )
    .await?;
    let metrics = Arc::new(crate::metrics::registry(stats.clone(), log_writer.clone()));
    let cluster = Arc::new(Cluster::new(
        node_id,
        settings.listeners(),
        store.clone(),
        engine.handle(),
        Duration::from_secs(settings.node_heartbeat),
    ));
    let state = Arc::new(State {
        store: store.clone(),
        engine: engine.handle(),
        jwt: Jwt::new(secret),
        session_ttl: settings.session_ttl as i64,
        own_ports: settings.own_ports().to_vec(),
        trusted,
        throttle: LoginThrottle::new(),
        write_lock,
        acme: acme.clone(),
        stats: stats.clone(),
        metrics,
        metrics_public: settings.metrics_public,
        metrics_token: settings.metrics_token.clone(),
        log_files,
        log_writer,
        cluster: cluster.clone(),
    });
    let router = api::router(state.clone());
    Ok(Prepared {
        store,
        engine,
        router,
        state,
        tls_fallback: Some(tls_fallback),
        acme,
        stats,
        cluster,
    })
}

/// Where HTTP-01 answers are published and whether this node may run ACME
/// orders: in memory and always for one node; on PostgreSQL through the
/// database (every node answers) and under the leader lease.
fn acme_roles(
    store: &AnyStore,
    tokens: ppm_filters::AcmeTokens,
    node_id: &str,
    settings: &Settings,
) -> (Arc<dyn Http01Tokens>, Arc<dyn OrderLease>) {
    #[cfg(feature = "postgres")]
    if let Some(pg) = store.as_postgres() {
        use crate::acme::cluster::{DbLease, DbTokens};
        let lease = Arc::new(DbLease::new(
            pg.clone(),
            node_id.to_owned(),
            Duration::from_secs(settings.acme_lease),
        ));
        // The tasks live as long as the runtime (the process).
        drop(lease.clone().start());
        let live = Duration::from_secs(settings.node_heartbeat * 3);
        let (db_tokens, sync) = DbTokens::start(pg.clone(), tokens, node_id.to_owned(), live);
        drop(sync);
        return (Arc::new(db_tokens), lease);
    }
    let _ = (store, node_id, settings);
    (Arc::new(tokens), Arc::new(SingleProcess))
}

/// The self-signed certificate served to HTTPS clients whose SNI selects
/// nothing (and no default certificate is set): generated on first run and
/// kept in the database, so it stays the same across restarts. It names no
/// tenant.
async fn tls_fallback(store: &AnyStore) -> anyhow::Result<ParsedCertificate> {
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Pair {
        certificate_pem: String,
        private_key_pem: String,
    }
    let (certificate_pem, private_key_pem) =
        tokio::task::spawn_blocking(|| ppm_core::tls::self_signed(&["ppm-default.invalid"], 3650))
            .await
            .map_err(|e| anyhow!("generating the fallback certificate: {e}"))?
            .map_err(|e| anyhow!("generating the fallback certificate: {e}"))?;
    let fresh = serde_json::to_string(&Pair {
        certificate_pem,
        private_key_pem,
    })?;
    let stored = store
        .server_secret("tls_fallback_certificate", &fresh)
        .await
        .map_err(|e| anyhow!("reading the fallback certificate: {e}"))?;
    let pair: Pair = serde_json::from_str(&stored)
        .map_err(|e| anyhow!("the stored fallback certificate is corrupt: {e}"))?;
    ParsedCertificate::from_pem(0, &pair.certificate_pem, &pair.private_key_pem)
        .map_err(|e| anyhow!("the stored fallback certificate {e}"))
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(b)
}

async fn ensure_admin(store: &AnyStore, settings: &Settings) -> anyhow::Result<()> {
    if !store
        .list_users()
        .await
        .map_err(|e| anyhow!("reading users: {e}"))?
        .is_empty()
    {
        return Ok(());
    }
    let email = settings
        .admin_email
        .clone()
        .unwrap_or_else(|| "admin@localhost.localdomain".to_string())
        .to_ascii_lowercase();
    let (password, generated) = match &settings.admin_password {
        Some(p) => (p.clone(), false),
        None => (auth::random_password(), true),
    };
    let p = password.clone();
    let hash = tokio::task::spawn_blocking(move || auth::hash_password(&p))
        .await
        .map_err(|e| anyhow!("hashing the admin password: {e}"))?
        .map_err(|e| anyhow!("hashing the admin password: {e}"))?;
    store
        .create_user(
            // A generated password was printed to the log: the admin must
            // replace it at first login.
            NewUser::new(email.clone(), "Administrator", hash, "admin")
                .must_change_password(generated),
        )
        .await
        .map_err(|e| anyhow!("creating the first admin: {e}"))?;
    if generated {
        // Printed once, on first run only: there is no default password.
        let login = format!("http://{}/", settings.api_listen);
        tracing::warn!(
            "created the first admin: email {email}, password {password} \
             (shown once; log in at {login} and change it)"
        );
        eprintln!(
            "ppm-server: first admin created: email {email}  password {password}  (log in at {login} and change it)"
        );
    } else {
        tracing::info!("created the first admin {email} from PPM_ADMIN_EMAIL/PPM_ADMIN_PASSWORD");
    }
    Ok(())
}

/// Binds a listener, naming the setting when it fails.
fn bind(setting: &str, addr: SocketAddr) -> anyhow::Result<StdListener> {
    let l = StdListener::bind(addr).map_err(|e| anyhow!("{setting} {addr}: cannot listen: {e}"))?;
    l.set_nonblocking(true)
        .map_err(|e| anyhow!("{setting} {addr}: {e}"))?;
    Ok(l)
}

/// Runs ppm-server until SIGTERM (graceful) or SIGINT (fast).
pub fn run(settings: Settings) -> anyhow::Result<()> {
    settings.validate().map_err(|m| anyhow!(m))?;

    // Bind (or probe) every listener first, so a taken port stops startup
    // with a clear message instead of a server that serves nothing.
    let api_listener = bind("--api-listen", settings.api_listen)?;
    drop(bind("--http-listen", settings.http_listen)?);
    drop(bind("--https-listen", settings.https_listen)?);

    // Setup runs on its own runtime, kept alive while the server runs: the
    // store's pool and change poller live there, and so do the L4 streams
    // (Pingora cannot add listeners at runtime), hence one worker per
    // proxy thread.
    let setup = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(usize::from(settings.threads))
        .thread_name("ppm-runtime")
        .enable_all()
        .build()
        .context("starting the setup runtime")?;
    let mut prepared = setup.block_on(prepare(&settings))?;

    let conf = ServerConf {
        threads: usize::from(settings.threads),
        grace_period_seconds: Some(settings.grace_period),
        graceful_shutdown_timeout_seconds: Some(5),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = prepared.engine.http_service(&server.configuration);
    proxy.add_tcp(&settings.http_listen.to_string());
    let tls = ppm_core::tls::tls_settings(prepared.engine.handle(), prepared.tls_fallback.take())
        .map_err(|e| anyhow!("--https-listen {}: {e}", settings.https_listen))?;
    proxy.add_tls_with_settings(&settings.https_listen.to_string(), None, tls);
    server.add_service(proxy);
    server.add_service(prepared.engine.background_service());
    server.add_service(background_service(
        "ppm api",
        ApiService {
            listener: Mutex::new(Some(api_listener)),
            router: prepared.router.clone(),
        },
    ));
    server.add_service(background_service(
        "ppm stats",
        StatsTask {
            stats: prepared.stats.clone(),
        },
    ));
    server.add_service(background_service(
        "ppm acme",
        AcmeService {
            manager: prepared.acme.clone(),
        },
    ));
    server.add_service(background_service(
        "ppm cluster",
        ClusterService {
            cluster: prepared.cluster.clone(),
        },
    ));
    tracing::info!(
        node = prepared.cluster.id(),
        api = %settings.api_listen,
        http = %settings.http_listen,
        https = %settings.https_listen,
        data_dir = %settings.data_dir.display(),
        revision = prepared.engine.handle().revision(),
        "ppm-server started"
    );
    server.run(RunArgs::default());
    // The last counts reach the store, so totals survive the restart.
    if let Err(e) = setup.block_on(prepared.stats.rollup()) {
        tracing::warn!(error = %e, "the last rollup of the traffic counters failed");
    }
    tracing::info!("ppm-server stopped");
    drop(prepared);
    setup.shutdown_timeout(Duration::from_secs(2));
    Ok(())
}

/// The statistics sampler and rollups as a Pingora background service.
pub struct StatsTask {
    stats: Arc<StatsService>,
}

#[async_trait]
impl BackgroundService for StatsTask {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        self.stats
            .clone()
            .run(async move {
                let _ = shutdown.changed().await;
            })
            .await;
    }
}

/// The ACME manager as a Pingora background service.
pub struct AcmeService {
    manager: Arc<AcmeManager>,
}

#[async_trait]
impl BackgroundService for AcmeService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        self.manager
            .clone()
            .run(async move {
                let _ = shutdown.changed().await;
            })
            .await;
    }
}

/// The node's cluster heartbeat as a Pingora background service.
pub struct ClusterService {
    cluster: Arc<Cluster>,
}

#[async_trait]
impl BackgroundService for ClusterService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        self.cluster
            .clone()
            .run(async move {
                let _ = shutdown.changed().await;
            })
            .await;
    }
}

/// The Axum API as a Pingora background service, so one signal stops both.
pub struct ApiService {
    listener: Mutex<Option<StdListener>>,
    router: Router,
}

impl ApiService {
    /// An API service on a bound listener.
    pub fn new(listener: StdListener, router: Router) -> Self {
        ApiService {
            listener: Mutex::new(Some(listener)),
            router,
        }
    }
}

#[async_trait]
impl BackgroundService for ApiService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let std_listener = self.listener.lock().ok().and_then(|mut l| l.take());
        let Some(std_listener) = std_listener else {
            return;
        };
        let listener = match tokio::net::TcpListener::from_std(std_listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "the API listener failed");
                return;
            }
        };
        serve_api(listener, self.router.clone(), async move {
            let _ = shutdown.changed().await;
        })
        .await;
    }
}

/// Serves `router` on `listener` until `shutdown`, then lets open requests
/// finish.
pub async fn serve_api(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting an API connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let router = router.clone();
        let svc =
            hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                let mut router = router.clone();
                async move { router.call(req).await }
            });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .serve_connection(TokioIo::new(stream), svc);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "API connection ended with an error");
            }
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(Duration::from_secs(10), graceful.shutdown()).await;
}
