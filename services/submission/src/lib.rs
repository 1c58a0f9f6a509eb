//! The submission service.
//!
//! `POST /version/v1/diagnosis-keys` (through the proxy): a positive-tested person's keys, with a
//! TAN that verification reserves and, once the keys are stored, commits. Internal gRPC
//! `StreamDiagnosisKeys` is the only way keys leave (for distribution). A retention job deletes
//! keys \[14\] days after submission.

mod grpc;
mod http;
pub mod rules;
mod store;
mod tans;

pub use store::{Store, StoredKey};

/// The upload API's OpenAPI description (served at `/openapi.json` on the admin port).
pub use http::api;

use clap::Args;
use openwarn_bootstrap::admin::Admin;
use openwarn_bootstrap::cli::NoCommands;
use openwarn_bootstrap::config::{
    ConfigError, DatabaseArgs, GrpcListenArgs, GrpcListenDefaults, ListenArgs, ListenDefaults,
    TelemetryArgs, TlsArgs, parse_duration,
};
use openwarn_bootstrap::lifecycle::{BindError, RunningService};
use openwarn_db::{Database, DbError};
use openwarn_domain::CountryCode;
use openwarn_mtls::TlsError;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

pub const NAME: &str = "submission";

impl ListenDefaults for SubmissionService {
    const HTTP_ADDR: &'static str = "127.0.0.1:8020";
    const HTTP_HELP: &'static str =
        "App REST API: HTTPS, client certificates from the internal CA (the proxy's)";
    const ADMIN_ADDR: &'static str = "127.0.0.1:8021";
}

impl GrpcListenDefaults for SubmissionService {
    const GRPC_ADDR: &'static str = "127.0.0.1:9020";
    const GRPC_HELP: &'static str = "Internal gRPC (mutual TLS) for distribution";
}

#[derive(Debug, Clone, Args)]
pub struct Config {
    #[command(flatten)]
    pub listen: ListenArgs<SubmissionService>,
    #[command(flatten)]
    pub grpc: GrpcListenArgs<SubmissionService>,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub tls: TlsArgs,
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
    /// gRPC endpoint of the verification service.
    #[arg(
        long,
        env = "OPENWARN_VERIFICATION_URL",
        default_value = "https://127.0.0.1:9010"
    )]
    pub verification_url: String,
    /// Name in the verification service's certificate.
    #[arg(
        long,
        env = "OPENWARN_VERIFICATION_SERVER_NAME",
        default_value = "verification"
    )]
    pub verification_server_name: String,
    /// This backend's country (ISO 3166 alpha-2): the origin of every key.
    #[arg(long, env = "OPENWARN_COUNTRY", default_value = "DE")]
    pub country: CountryCode,
    /// Countries a key may list as visited, comma-separated (the own country is always included).
    #[arg(
        long,
        env = "OPENWARN_SUPPORTED_COUNTRIES",
        value_delimiter = ',',
        default_value = "DE"
    )]
    pub supported_countries: Vec<CountryCode>,
    /// Most keys in one submission (at most 30).
    #[arg(long, env = "OPENWARN_MAX_KEYS", default_value_t = 14)]
    pub max_keys: usize,
    /// Largest submission body, in bytes.
    #[arg(long, env = "OPENWARN_MAX_BODY_BYTES", default_value_t = 100 * 1024)]
    pub max_body_bytes: usize,
    /// Keys are deleted once the day they refer to (their rolling start) was this long before
    /// yesterday — however recently they were submitted. (A day's margin: a key as old as the
    /// upload rules accept, uploaded late in the day, is still kept until it is published.)
    #[arg(long, env = "OPENWARN_KEY_RETENTION", default_value = "14d", value_parser = parse_duration)]
    pub key_retention: Duration,
    /// How often the retention job runs.
    #[arg(long, env = "OPENWARN_RETENTION_INTERVAL", default_value = "1h", value_parser = parse_duration)]
    pub retention_interval: Duration,
    /// How often TANs whose keys are stored but whose spending verification has not confirmed
    /// (it was unreachable, or this service stopped in between) are committed again.
    #[arg(long, env = "OPENWARN_COMMIT_RETRY_INTERVAL", default_value = "10s", value_parser = parse_duration)]
    pub commit_retry_interval: Duration,
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

fn rules(config: &Config) -> Result<rules::Rules, ConfigError> {
    if !(1..=30).contains(&config.max_keys) {
        return Err(ConfigError::new("OPENWARN_MAX_KEYS", "must be 1 to 30"));
    }
    let mut supported: HashSet<CountryCode> = config.supported_countries.iter().cloned().collect();
    supported.insert(config.country.clone());
    Ok(rules::Rules {
        max_keys: config.max_keys,
        country: config.country.clone(),
        supported_countries: supported,
    })
}

/// The rolling start (in 10-minute intervals) below which keys are deleted at `now`, keeping
/// `keep` seconds before the start of yesterday: the oldest key the rules accept today (its
/// rolling start 14 days before today's midnight) is kept until the end of tomorrow, long past
/// its publication — deleting on `now - keep` lost it before it was published.
pub fn retention_cutoff(now: i64, keep: i64) -> i32 {
    let day = now.saturating_sub(keep).div_euclid(86_400) - 1;
    i32::try_from(day.saturating_mul(144)).unwrap_or(i32::MAX)
}

/// Starts the service: migrations, app REST, gRPC, admin port, retention job.
pub async fn start(config: Config) -> Result<RunningService, Error> {
    let rules = rules(&config)?;
    let tls = config.tls.load()?;
    let verification = tls
        .grpc_endpoint(&config.verification_url, &config.verification_server_name)
        .map_err(|e| ConfigError::new("OPENWARN_VERIFICATION_URL", e.to_string()))?;
    let db = Database::open(&config.database.url()?, config.database.pool_size).await?;
    db.migrate(MIGRATIONS_PG, MIGRATIONS_SQLITE).await?;
    let store = Store::new(db);
    let mut service = RunningService::new(NAME);

    let app = http::routes(
        Arc::new(http::AppState {
            store: store.clone(),
            rules,
            max_body_bytes: config.max_body_bytes,
        }),
        {
            let verification = verification.clone();
            move || tans::Tans::new(verification.connect_lazy())
        },
    );
    // Only the proxy calls this port: mutual TLS with the internal CA.
    service
        .serve_internal_https_on("http", config.listen.http_addr, tls.https_server()?, app)
        .await?;

    let router =
        openwarn_bootstrap::lifecycle::grpc_server().add_service(grpc::server(store.clone()));
    service
        .serve_grpc_on(config.grpc.grpc_addr, tls.grpc_server()?, router)
        .await?;
    service.watch_tls(vec![Arc::new(tls)], config.tls.reload_interval);

    let ready = store.clone();
    service
        .serve_admin_on(
            config.listen.admin_addr,
            Admin::new(Arc::new(move || {
                let store = ready.clone();
                Box::pin(async move { store.ping().await.map_err(|e| e.to_string()) })
            }))
            .openapi(&http::api()),
        )
        .await?;

    let (pending, retries) = (store.clone(), tans::Tans::new(verification.connect_lazy()));
    service.spawn_periodic(config.commit_retry_interval, move || {
        tans::commit_pending(pending.clone(), retries.clone())
    });

    let keep = i64::try_from(config.key_retention.as_secs()).unwrap_or(i64::MAX);
    service.spawn_periodic(config.retention_interval, move || {
        let store = store.clone();
        async move {
            let cutoff = retention_cutoff(openwarn_bootstrap::lifecycle::unix_now(), keep);
            match store.apply_retention(cutoff).await {
                Ok(deleted) => {
                    metrics::counter!("openwarn_diagnosis_keys_deleted_total")
                        .increment(deleted as u64);
                    openwarn_bootstrap::lifecycle::retention_succeeded();
                    tracing::info!(deleted, "retention applied");
                }
                Err(e) => tracing::warn!(error = %e, "retention failed; retrying next interval"),
            }
        }
    });
    Ok(service)
}

/// The service as the shared command line runs it.
pub struct SubmissionService;

impl openwarn_bootstrap::cli::Service for SubmissionService {
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

#[cfg(test)]
mod retention_tests {
    use super::*;

    /// Every key the upload rules accept, at any time of day, survives the retention run of the
    /// same moment and of the next day (it failed for the oldest accepted key: 14 days at
    /// midnight, deleted at once by `now - 14d`).
    #[test]
    fn retention_keeps_every_key_the_rules_accept_until_it_is_published() {
        let keep = 14 * 86_400;
        let midnight = 20_000 * 86_400;
        for now in (midnight..midnight + 86_400).step_by(1800) {
            let today = i32::try_from(now / 600 / 144 * 144).unwrap();
            let oldest = today - rules::MAX_KEY_AGE_DAYS * 144;
            assert!(retention_cutoff(now, keep) <= oldest, "at {now}");
            assert!(
                retention_cutoff(now + 86_400, keep) <= oldest,
                "a day after {now}"
            );
        }
        // And older keys do go: two days later the oldest key of then is below the cutoff.
        let oldest = i32::try_from(midnight / 600).unwrap() - rules::MAX_KEY_AGE_DAYS * 144;
        assert!(retention_cutoff(midnight + 2 * 86_400, keep) > oldest);
    }
}
