//! The verification service.
//!
//! App REST (through the proxy): registration tokens for a hashed GUID or a teleTAN, test result
//! polling, TAN issuance. Internal gRPC (mutual TLS): `ReserveTan`/`CommitTan`/`ReleaseTan` and
//! `VerifyTan` for submission, `IssueTeleTan` for the portal. A retention job deletes sessions,
//! TANs and teleTANs after \[21\] days.

mod app;
mod grpc;
mod redeem;
pub mod retention;
mod store;
pub mod teletan;
mod testresults;

pub use store::{Expiring, Registered, Source, Store, TanIssue};
pub use testresults::TestResults;

/// The app API's OpenAPI description (served at `/openapi.json` on the admin port).
pub use app::api;

use clap::Args;
use openwarn_bootstrap::admin::Admin;
use openwarn_bootstrap::cli::NoCommands;
use openwarn_bootstrap::config::{
    ConfigError, DatabaseArgs, GrpcListenArgs, GrpcListenDefaults, ListenArgs, ListenDefaults,
    TelemetryArgs, TlsArgs, parse_duration,
};
use openwarn_bootstrap::lifecycle::{BindError, RunningService};
use openwarn_db::{Database, DbError};
use openwarn_kv::KvError;
use openwarn_mtls::TlsError;
use std::sync::Arc;
use std::time::Duration;

pub const NAME: &str = "verification";

impl ListenDefaults for VerificationService {
    const HTTP_ADDR: &'static str = "127.0.0.1:8010";
    const HTTP_HELP: &'static str =
        "App REST API: HTTPS, client certificates from the internal CA (the proxy's)";
    const ADMIN_ADDR: &'static str = "127.0.0.1:8011";
}

impl GrpcListenDefaults for VerificationService {
    const GRPC_ADDR: &'static str = "127.0.0.1:9010";
    const GRPC_HELP: &'static str = "Internal gRPC (mutual TLS) for submission and portal";
}

#[derive(Debug, Clone, Args)]
pub struct Config {
    #[command(flatten)]
    pub listen: ListenArgs<VerificationService>,
    #[command(flatten)]
    pub grpc: GrpcListenArgs<VerificationService>,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub tls: TlsArgs,
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
    /// Key-value store for counters shared by replicas: `redis://…`, or `memory://` (one process).
    #[arg(long, env = "OPENWARN_KV_URL", hide_env_values = true)]
    pub kv_url: Option<String>,
    /// File holding the key-value store URL (for secrets mounted as files).
    #[arg(long, env = "OPENWARN_KV_URL_FILE")]
    pub kv_url_file: Option<std::path::PathBuf>,
    /// CA certificate (PEM) that signs the Redis server's certificate, for a `rediss://` URL
    /// (without it, the system's roots).
    #[arg(long, env = "OPENWARN_KV_CA_FILE")]
    pub kv_ca_file: Option<std::path::PathBuf>,
    /// File holding the Redis password (instead of one in the URL).
    #[arg(long, env = "OPENWARN_KV_PASSWORD_FILE")]
    pub kv_password_file: Option<std::path::PathBuf>,
    /// Prefix of every key this service writes to the key-value store.
    #[arg(
        long,
        env = "OPENWARN_KV_NAMESPACE",
        default_value = "openwarn:verification"
    )]
    pub kv_namespace: String,
    /// gRPC endpoint of the test-result service.
    #[arg(
        long,
        env = "OPENWARN_TEST_RESULT_URL",
        default_value = "https://127.0.0.1:9030"
    )]
    pub test_result_url: String,
    /// Name in the test-result service's certificate.
    #[arg(
        long,
        env = "OPENWARN_TEST_RESULT_SERVER_NAME",
        default_value = "test-result"
    )]
    pub test_result_server_name: String,
    /// How long a TAN is valid.
    #[arg(long = "tan-validity", env = "OPENWARN_TAN_VALIDITY", default_value = "1h", value_parser = parse_duration)]
    pub tan_validity: Duration,
    /// Most TANs one registration token can get (a new one only while none was redeemed).
    #[arg(
        long = "tans-per-registration",
        env = "OPENWARN_TANS_PER_REGISTRATION",
        default_value_t = 3
    )]
    pub tans_per_registration: i32,
    /// Uploads one registration's TANs may make: a phone uploads twice — the past days' keys,
    /// then the day's key the next day, once the phone releases it. Each upload spends one TAN.
    #[arg(
        long = "uploads-per-registration",
        env = "OPENWARN_UPLOADS_PER_REGISTRATION",
        default_value_t = 2
    )]
    pub uploads_per_registration: i32,
    /// How long a TAN reservation holds before it lapses by itself.
    #[arg(long = "tan-reservation-ttl", env = "OPENWARN_TAN_RESERVATION_TTL", default_value = "2m", value_parser = parse_duration)]
    pub tan_reservation_ttl: Duration,
    /// How long a teleTAN is valid.
    #[arg(long = "teletan-validity", env = "OPENWARN_TELETAN_VALIDITY", default_value = "1h", value_parser = parse_duration)]
    pub tele_tan_validity: Duration,
    /// teleTANs issued per clock hour, across all replicas.
    #[arg(
        long = "teletans-per-hour",
        env = "OPENWARN_TELETANS_PER_HOUR",
        default_value_t = 1000
    )]
    pub tele_tans_per_hour: u64,
    /// Sessions, TANs and teleTANs are deleted this long after creation.
    #[arg(long = "session-retention", env = "OPENWARN_SESSION_RETENTION", default_value = "21d", value_parser = parse_duration)]
    pub retention: Duration,
    /// How often the retention job runs.
    #[arg(long = "retention-interval", env = "OPENWARN_RETENTION_INTERVAL", default_value = "1h", value_parser = parse_duration)]
    pub retention_interval: Duration,
    /// Largest app request body, in bytes.
    #[arg(long = "max-body-bytes", env = "OPENWARN_MAX_BODY_BYTES", default_value_t = 10 * 1024)]
    pub max_body_bytes: usize,
    /// Length every app response body is padded to.
    #[arg(
        long = "response-length",
        env = "OPENWARN_RESPONSE_LENGTH",
        default_value_t = 320
    )]
    pub response_length: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Database(#[from] DbError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("OPENWARN_KV_URL: {0}")]
    Kv(#[from] KvError),
    #[error(transparent)]
    Bind(#[from] BindError),
}

pub(crate) const MIGRATIONS_PG: diesel_migrations::EmbeddedMigrations =
    diesel_migrations::embed_migrations!("migrations/postgres");
pub(crate) const MIGRATIONS_SQLITE: diesel_migrations::EmbeddedMigrations =
    diesel_migrations::embed_migrations!("migrations/sqlite");

fn check(config: &Config) -> Result<(), ConfigError> {
    if config.uploads_per_registration < 1 {
        return Err(ConfigError::new(
            "OPENWARN_UPLOADS_PER_REGISTRATION",
            "must be at least 1",
        ));
    }
    if config.tans_per_registration < 1 {
        return Err(ConfigError::new(
            "OPENWARN_TANS_PER_REGISTRATION",
            "must be at least 1",
        ));
    }
    if config.response_length < 128 {
        return Err(ConfigError::new(
            "OPENWARN_RESPONSE_LENGTH",
            "must be at least 128 bytes",
        ));
    }
    if config.max_body_bytes < 256 {
        return Err(ConfigError::new(
            "OPENWARN_MAX_BODY_BYTES",
            "must be at least 256 bytes",
        ));
    }
    Ok(())
}

/// Opens the database and applies pending migrations.
pub async fn open_store(config: &Config) -> Result<Store, Error> {
    let db = Database::open(&config.database.url()?, config.database.pool_size).await?;
    db.migrate(MIGRATIONS_PG, MIGRATIONS_SQLITE).await?;
    Ok(Store::new(db))
}

/// Starts the service: migrations, app REST, gRPC, admin port, retention job.
pub async fn start(config: Config) -> Result<RunningService, Error> {
    check(&config)?;
    let tls = config.tls.load()?;
    let test_result_endpoint = tls
        .grpc_endpoint(&config.test_result_url, &config.test_result_server_name)
        .map_err(|e| ConfigError::new("OPENWARN_TEST_RESULT_URL", e.to_string()))?;
    let test_results = testresults::TestResults::new(test_result_endpoint.connect_lazy());
    let kv_url = openwarn_bootstrap::config::secret(
        config.kv_url.as_deref(),
        config.kv_url_file.as_deref(),
        "OPENWARN_KV_URL",
    )?
    .unwrap_or_else(|| "memory://".to_owned());
    let kv_options = openwarn_kv::Options {
        ca_pem: openwarn_bootstrap::config::secret(
            None,
            config.kv_ca_file.as_deref(),
            "OPENWARN_KV_CA_FILE",
        )?,
        password: openwarn_bootstrap::config::secret(
            None,
            config.kv_password_file.as_deref(),
            "OPENWARN_KV_PASSWORD_FILE",
        )?,
    };
    let kv = openwarn_kv::open_with(&kv_url, &config.kv_namespace, &kv_options).await?;
    let store = open_store(&config).await?;
    let mut service = RunningService::new(NAME);

    let app = app::routes(
        store.clone(),
        move || testresults::TestResults::new(test_result_endpoint.connect_lazy()),
        app::Limits {
            max_body_bytes: config.max_body_bytes,
            response_length: config.response_length,
            tan_validity: config.tan_validity,
            max_tans_per_session: config.tans_per_registration,
            max_uploads_per_session: config.uploads_per_registration,
        },
    );
    // Only the proxy calls this port: mutual TLS with the internal CA.
    service
        .serve_internal_https_on("http", config.listen.http_addr, tls.https_server()?, app)
        .await?;

    // Marks queued when the service stops are still sent within the grace period.
    let marks_to = test_results.clone();
    let (redeem, sender) = redeem::RedeemMarks::until(
        move |ids| {
            let test_results = marks_to.clone();
            async move { test_results.mark_redeemed(ids).await }
        },
        service.token().cancelled_owned(),
        openwarn_bootstrap::lifecycle::SHUTDOWN_GRACE,
    );
    service.spawn(async move {
        sender.await;
        Ok(())
    });
    let router = grpc_router(store.clone(), kv.clone(), redeem, &config);
    service
        .serve_grpc_on(config.grpc.grpc_addr, tls.grpc_server()?, router)
        .await?;
    service.watch_tls(vec![Arc::new(tls)], config.tls.reload_interval);

    let ready_store = store.clone();
    service
        .serve_admin_on(
            config.listen.admin_addr,
            Admin::new(Arc::new(move || {
                let store = ready_store.clone();
                let kv = kv.clone();
                Box::pin(async move {
                    store.ping().await.map_err(|e| e.to_string())?;
                    kv.ping().await.map_err(|e| e.to_string())
                })
            }))
            .openapi(&app::api()),
        )
        .await?;

    spawn_retention(&mut service, store, test_results, &config);
    Ok(service)
}

/// The internal gRPC server: TANs for submission, teleTANs for the portal.
fn grpc_router(
    store: Store,
    kv: Arc<dyn openwarn_kv::KvStore>,
    redeem: redeem::RedeemMarks,
    config: &Config,
) -> tonic::transport::server::Router<openwarn_bootstrap::lifecycle::GrpcLayers> {
    openwarn_bootstrap::lifecycle::grpc_server().add_service(grpc::server(
        store,
        kv,
        redeem,
        grpc::GrpcLimits {
            reservation_ttl: config.tan_reservation_ttl,
            tele_tan_validity: config.tele_tan_validity,
            tele_tans_per_hour: config.tele_tans_per_hour,
        },
    ))
}

/// Applies [`retention`] every retention interval: sessions, TANs and teleTANs older than the
/// retention go, a GUID session's ids kept as tombstones while test-result holds their results.
fn spawn_retention(
    service: &mut RunningService,
    store: Store,
    test_results: TestResults,
    config: &Config,
) {
    let keep = i64::try_from(config.retention.as_secs()).unwrap_or(i64::MAX);
    service.spawn_periodic(config.retention_interval, move || {
        let store = store.clone();
        let test_results = test_results.clone();
        async move {
            let now = openwarn_bootstrap::lifecycle::unix_now();
            match retention::apply(&store, &test_results, now, keep).await {
                Ok(r) => {
                    metrics::counter!("openwarn_verification_rows_deleted_total")
                        .increment((r.deleted + r.buried) as u64);
                    if r.deferred {
                        tracing::warn!(
                            buried = r.buried,
                            deleted = r.deleted,
                            "retention applied; GUID sessions kept until test-result answers"
                        );
                    } else {
                        openwarn_bootstrap::lifecycle::retention_succeeded();
                        tracing::info!(buried = r.buried, deleted = r.deleted, "retention applied");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "retention failed; retrying next interval"),
            }
        }
    });
}

/// The service as the shared command line runs it.
pub struct VerificationService;

impl openwarn_bootstrap::cli::Service for VerificationService {
    const NAME: &'static str = NAME;
    type Config = Config;
    type Commands = NoCommands;
    type Error = Error;

    fn telemetry(config: &Config) -> &TelemetryArgs {
        &config.telemetry
    }

    async fn start(config: Config) -> Result<RunningService, Error> {
        start(config).await
    }

    async fn migrate(config: Config) -> Result<Vec<String>, Error> {
        let db = Database::open(&config.database.url()?, 1).await?;
        Ok(db.migrate(MIGRATIONS_PG, MIGRATIONS_SQLITE).await?)
    }
}
