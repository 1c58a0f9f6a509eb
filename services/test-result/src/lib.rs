//! The test-result service.
//!
//! Labs post results by hashed GUID (`POST /api/v1/lab/results`, mutual TLS with allow-listed
//! client certificates outside dev mode). Verification reads them over gRPC (`GetTestResult`) and
//! marks them redeemed (`MarkRedeemed`). A retention job redeems results after \[21\] days and
//! deletes them after \[60\].

mod grpc;
mod lab;
mod store;

pub use store::{LabResult, Store, StoredResult};

/// The lab API's OpenAPI description (served at `/openapi.json` on the admin port).
pub use lab::{Invalid, Kind, api, read_batch};

use clap::Args;
use openwarn_bootstrap::admin::Admin;
use openwarn_bootstrap::cli::NoCommands;
use openwarn_bootstrap::config::{
    ConfigError, DatabaseArgs, GrpcListenArgs, GrpcListenDefaults, ListenArgs, ListenDefaults,
    TelemetryArgs, TlsArgs, parse_duration,
};
use openwarn_bootstrap::lifecycle::{BindError, RunningService};
use openwarn_db::{Database, DbError};
use openwarn_mtls::TlsError;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub const NAME: &str = "test-result";

impl ListenDefaults for TestResultService {
    const HTTP_ADDR: &'static str = "127.0.0.1:8030";
    const HTTP_HELP: &'static str =
        "Lab API (HTTPS with client certificates, or plain HTTP with --lab-insecure-http)";
    const ADMIN_ADDR: &'static str = "127.0.0.1:8031";
}

impl GrpcListenDefaults for TestResultService {
    const GRPC_ADDR: &'static str = "127.0.0.1:9030";
    const GRPC_HELP: &'static str = "Internal gRPC (mutual TLS) for verification";
}

#[derive(Debug, Clone, Args)]
pub struct Config {
    #[command(flatten)]
    pub listen: ListenArgs<TestResultService>,
    #[command(flatten)]
    pub grpc: GrpcListenArgs<TestResultService>,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub tls: TlsArgs,
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
    /// Serve the lab API over plain HTTP, without client certificates. Local development only.
    #[arg(long = "lab-insecure-http", env = "OPENWARN_LAB_INSECURE_HTTP")]
    pub lab_insecure_http: bool,
    /// Server certificate (PEM) of the lab API.
    #[arg(long = "lab-tls-cert", env = "OPENWARN_LAB_TLS_CERT")]
    pub lab_tls_cert: Option<PathBuf>,
    /// Private key (PEM) of the lab API.
    #[arg(long = "lab-tls-key", env = "OPENWARN_LAB_TLS_KEY")]
    pub lab_tls_key: Option<PathBuf>,
    /// CA certificates (PEM) lab client certificates must chain to (besides being allow-listed
    /// by fingerprint, valid now and meant for client authentication).
    #[arg(long = "lab-client-ca", env = "OPENWARN_LAB_CLIENT_CA")]
    pub lab_client_ca: Option<PathBuf>,
    /// SHA-256 fingerprints (hex) of the lab client certificates allowed in, comma-separated.
    #[arg(
        long = "lab-client-fingerprints",
        env = "OPENWARN_LAB_CLIENT_FINGERPRINTS",
        value_delimiter = ','
    )]
    pub lab_client_fingerprints: Vec<String>,
    /// Most results in one lab request.
    #[arg(
        long = "lab-max-batch",
        env = "OPENWARN_LAB_MAX_BATCH",
        default_value_t = 1000
    )]
    pub max_batch: usize,
    /// Largest lab request body, in bytes.
    #[arg(long = "lab-max-body-bytes", env = "OPENWARN_LAB_MAX_BODY_BYTES", default_value_t = 256 * 1024)]
    pub max_body_bytes: usize,
    /// Results are marked redeemed this long after they were first seen.
    #[arg(long = "result-redeem-after", env = "OPENWARN_RESULT_REDEEM_AFTER", default_value = "21d", value_parser = parse_duration)]
    pub redeem_after: Duration,
    /// Results are deleted this long after they were first seen.
    #[arg(long = "result-delete-after", env = "OPENWARN_RESULT_DELETE_AFTER", default_value = "60d", value_parser = parse_duration)]
    pub delete_after: Duration,
    /// How often the retention job runs.
    #[arg(long = "retention-interval", env = "OPENWARN_RETENTION_INTERVAL", default_value = "1h", value_parser = parse_duration)]
    pub retention_interval: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Database(#[from] DbError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Bind(#[from] BindError),
}

pub(crate) const MIGRATIONS_PG: diesel_migrations::EmbeddedMigrations =
    diesel_migrations::embed_migrations!("migrations/postgres");
pub(crate) const MIGRATIONS_SQLITE: diesel_migrations::EmbeddedMigrations =
    diesel_migrations::embed_migrations!("migrations/sqlite");

enum LabTransport {
    Plain,
    Tls(openwarn_mtls::LabTls),
}

fn lab_transport(config: &Config) -> Result<LabTransport, Error> {
    if config.lab_insecure_http {
        return Ok(LabTransport::Plain);
    }
    let cert = config.lab_tls_cert.as_deref().ok_or_else(|| {
        ConfigError::new(
            "OPENWARN_LAB_TLS_CERT",
            "is required unless OPENWARN_LAB_INSECURE_HTTP is set",
        )
    })?;
    let key = config.lab_tls_key.as_deref().ok_or_else(|| {
        ConfigError::new(
            "OPENWARN_LAB_TLS_KEY",
            "is required unless OPENWARN_LAB_INSECURE_HTTP is set",
        )
    })?;
    let lab_cas = config.lab_client_ca.as_deref().ok_or_else(|| {
        ConfigError::new(
            "OPENWARN_LAB_CLIENT_CA",
            "is required unless OPENWARN_LAB_INSECURE_HTTP is set",
        )
    })?;
    if config.lab_client_fingerprints.is_empty() {
        return Err(ConfigError::new(
            "OPENWARN_LAB_CLIENT_FINGERPRINTS",
            "lists no lab certificate; no lab could post results",
        )
        .into());
    }
    let tls = openwarn_mtls::LabTls::load(cert, key, lab_cas, &config.lab_client_fingerprints)
        .map_err(|e| {
            let setting = match &e {
                TlsError::Config(m) if m.starts_with("lab CA") || m.starts_with("a lab CA") => {
                    "OPENWARN_LAB_CLIENT_CA"
                }
                TlsError::Config(_) => "OPENWARN_LAB_CLIENT_FINGERPRINTS",
                _ if e.path() == Some(lab_cas) => "OPENWARN_LAB_CLIENT_CA",
                _ if e.path() == Some(key) => "OPENWARN_LAB_TLS_KEY",
                _ => "OPENWARN_LAB_TLS_CERT",
            };
            ConfigError::new(setting, e.to_string())
        })?;
    Ok(LabTransport::Tls(tls))
}

fn check(config: &Config) -> Result<(), ConfigError> {
    if config.delete_after <= config.redeem_after {
        return Err(ConfigError::new(
            "OPENWARN_RESULT_DELETE_AFTER",
            "must be longer than OPENWARN_RESULT_REDEEM_AFTER",
        ));
    }
    if config.max_batch == 0 {
        return Err(ConfigError::new(
            "OPENWARN_LAB_MAX_BATCH",
            "must be at least 1",
        ));
    }
    Ok(())
}

async fn open_database(config: &Config) -> Result<Database, Error> {
    let db = Database::open(&config.database.url()?, config.database.pool_size).await?;
    db.migrate(MIGRATIONS_PG, MIGRATIONS_SQLITE).await?;
    Ok(db)
}

/// Starts the service: migrations, lab API, gRPC, admin port, retention job.
pub async fn start(config: Config) -> Result<RunningService, Error> {
    check(&config)?;
    let transport = lab_transport(&config)?;
    let tls = config.tls.load()?;
    let db = open_database(&config).await?;
    let store = Store::new(db.clone())
        .holding_results_for(i64::try_from(config.delete_after.as_secs()).unwrap_or(i64::MAX));
    let mut service = RunningService::new(NAME);

    // Lab API.
    let routes = |client_certificates| {
        lab::routes(lab::LabState {
            store: store.clone(),
            max_batch: config.max_batch,
            max_body_bytes: config.max_body_bytes,
            client_certificates,
        })
    };
    let mut watched: Vec<Arc<dyn openwarn_mtls::Reload>> = vec![Arc::new(tls.clone())];
    match transport {
        LabTransport::Plain => {
            service
                .serve_http_on("http", config.listen.http_addr, routes(false))
                .await?;
        }
        LabTransport::Tls(lab_tls) => {
            service
                .serve_https_on(
                    "http",
                    config.listen.http_addr,
                    lab_tls.server_config()?,
                    routes(true),
                )
                .await?;
            watched.push(Arc::new(lab_tls));
        }
    }

    // Internal gRPC.
    let router =
        openwarn_bootstrap::lifecycle::grpc_server().add_service(grpc::server(store.clone()));
    service
        .serve_grpc_on(config.grpc.grpc_addr, tls.grpc_server()?, router)
        .await?;
    service.watch_tls(watched, config.tls.reload_interval);

    // Admin.
    let ready_db = db.clone();
    service
        .serve_admin_on(
            config.listen.admin_addr,
            Admin::new(Arc::new(move || {
                let db = ready_db.clone();
                Box::pin(async move { db.ping().await.map_err(|e| e.to_string()) })
            }))
            .openapi(&lab::api()),
        )
        .await?;

    spawn_retention(&mut service, store, &config);
    Ok(service)
}

/// Redeems results older than OPENWARN_RESULT_REDEEM_AFTER and deletes those older than
/// OPENWARN_RESULT_DELETE_AFTER, every retention interval.
fn spawn_retention(service: &mut RunningService, store: Store, config: &Config) {
    let redeem_after = i64::try_from(config.redeem_after.as_secs()).unwrap_or(i64::MAX);
    let delete_after = i64::try_from(config.delete_after.as_secs()).unwrap_or(i64::MAX);
    service.spawn_periodic(config.retention_interval, move || {
        let store = store.clone();
        async move {
            let now = openwarn_bootstrap::lifecycle::unix_now();
            match store.apply_retention(now, redeem_after, delete_after).await {
                Ok((redeemed, deleted)) => {
                    metrics::counter!("openwarn_test_results_redeemed_by_retention_total")
                        .increment(redeemed as u64);
                    metrics::counter!("openwarn_test_results_deleted_total")
                        .increment(deleted as u64);
                    openwarn_bootstrap::lifecycle::retention_succeeded();
                    tracing::info!(redeemed, deleted, "retention applied");
                }
                Err(e) => tracing::warn!(error = %e, "retention failed; retrying next interval"),
            }
        }
    });
}

/// The service as the shared command line runs it.
pub struct TestResultService;

impl openwarn_bootstrap::cli::Service for TestResultService {
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
