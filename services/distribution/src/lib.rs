//! The distribution service: every hour, the keys of the last closed hour as a signed package in
//! the Apple/Google export format, day packages for closed days, the indexes, and the signed
//! application configuration, on an object store behind a CDN (see `publish` for the rules).
//!
//! Distribution owns no database: keys come from submission's `StreamDiagnosisKeys`, and its state
//! is what it has published. In embedded mode it also serves the tree on port 8050.

pub mod api;
pub mod appconfig;
mod files;
pub mod keys;
pub mod publish;
mod serve;
pub mod source;
pub mod tree;

/// The published tree's OpenAPI description (served at `/openapi.json` on the admin port).
pub use api::api;

use clap::Args;
use openwarn_bootstrap::admin::Admin;
use openwarn_bootstrap::cli::BoxError;
use openwarn_bootstrap::config::{
    ConfigError, ListenArgs, ListenDefaults, TelemetryArgs, TlsArgs, parse_duration, secret,
};
use openwarn_bootstrap::lifecycle::{BindError, Routes, RunningService};
use openwarn_domain::CountryCode;
use openwarn_export::{KeyInfo, Signer};
use openwarn_mtls::TlsError;
use openwarn_protocol::metadata::TrlEncoding;
use publish::{AppConfigSource, Publisher, Report, Settings};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tree::Tree;

pub const NAME: &str = "distribution";

impl ListenDefaults for DistributionService {
    const HTTP_ADDR: &'static str = "127.0.0.1:8050";
    const HTTP_HELP: &'static str =
        "Embedded mode: serves the published tree here (production: the CDN serves the bucket)";
    const ADMIN_ADDR: &'static str = "127.0.0.1:8051";
    const ADMIN_HELP: &'static str =
        "`/healthz`, `/readyz`, `/metrics` (and `POST /run` with OPENWARN_MANUAL_RUNS)";
}

#[derive(Debug, Clone, Args)]
pub struct Config {
    #[command(flatten)]
    pub listen: ListenArgs<DistributionService>,
    /// Serve the tree on OPENWARN_HTTP_ADDR (off when a CDN serves the bucket).
    #[arg(long, env = "OPENWARN_SERVE_TREE", default_value_t = true, action = clap::ArgAction::Set)]
    pub serve_tree: bool,
    /// Where the tree is published: a directory (`file:///srv/cdn` or a plain path), or
    /// `s3://BUCKET[/PREFIX]` (credentials from the standard AWS_* variables).
    #[arg(long, env = "OPENWARN_STORE_URL", default_value = "openwarn-cdn")]
    pub store_url: String,
    /// S3-compatible endpoint other than AWS (e.g. `http://minio:9000`).
    #[arg(long, env = "OPENWARN_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    #[arg(long, env = "OPENWARN_S3_REGION", default_value = "eu-central-1")]
    pub s3_region: String,
    /// S3 access key id; without it the standard AWS_* variables / instance credentials apply.
    #[arg(long, env = "OPENWARN_S3_ACCESS_KEY_ID")]
    pub s3_access_key_id: Option<String>,
    #[arg(long, env = "OPENWARN_S3_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub s3_secret_access_key: Option<String>,
    /// File holding the S3 secret access key.
    #[arg(long, env = "OPENWARN_S3_SECRET_ACCESS_KEY_FILE")]
    pub s3_secret_access_key_file: Option<PathBuf>,
    #[command(flatten)]
    pub tls: TlsArgs,
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
    /// gRPC endpoint of the submission service.
    #[arg(
        long,
        env = "OPENWARN_SUBMISSION_URL",
        default_value = "https://127.0.0.1:9020"
    )]
    pub submission_url: String,
    /// Name in the submission service's certificate.
    #[arg(
        long,
        env = "OPENWARN_SUBMISSION_SERVER_NAME",
        default_value = "submission"
    )]
    pub submission_server_name: String,
    /// How long a run holds the lease before another may take over: a run killed while holding
    /// it blocks the others (and its own restart's runs) this long.
    #[arg(long, env = "OPENWARN_RUN_LEASE_TTL", default_value = "15m", value_parser = parse_duration)]
    pub run_lease_ttl: Duration,
    /// Key-value store holding the run lease: `redis://…` when several processes may publish,
    /// `memory://` for one process.
    #[arg(long, env = "OPENWARN_KV_URL", hide_env_values = true)]
    pub kv_url: Option<String>,
    /// File holding the key-value store URL.
    #[arg(long, env = "OPENWARN_KV_URL_FILE")]
    pub kv_url_file: Option<PathBuf>,
    /// CA certificate (PEM) that signs the Redis server's certificate, for a `rediss://` URL
    /// (without it, the system's roots).
    #[arg(long, env = "OPENWARN_KV_CA_FILE")]
    pub kv_ca_file: Option<PathBuf>,
    /// File holding the Redis password (instead of one in the URL).
    #[arg(long, env = "OPENWARN_KV_PASSWORD_FILE")]
    pub kv_password_file: Option<PathBuf>,
    #[arg(
        long,
        env = "OPENWARN_KV_NAMESPACE",
        default_value = "openwarn:distribution"
    )]
    pub kv_namespace: String,
    /// The region of every package and the `{CC}` in every path (ISO 3166 alpha-2).
    #[arg(long, env = "OPENWARN_COUNTRY", default_value = "DE")]
    pub country: CountryCode,
    /// Signing keys, comma-separated `VERSION=PATH` of PKCS#8 PEM files. During a rotation give
    /// the old and the new key: every package then carries one signature of each.
    #[arg(long, env = "OPENWARN_SIGNING_KEYS", value_delimiter = ',')]
    pub signing_keys: Vec<String>,
    /// `verification_key_id` of the signatures (agreed with Apple/Google, e.g. the MCC `262`).
    #[arg(long, env = "OPENWARN_VERIFICATION_KEY_ID", default_value = "262")]
    pub verification_key_id: String,
    /// iOS bundle id written into the signature info (deprecated by Apple; optional).
    #[arg(long, env = "OPENWARN_APP_BUNDLE_ID")]
    pub app_bundle_id: Option<String>,
    /// Android package name written into the signature info (deprecated by Google; optional).
    #[arg(long, env = "OPENWARN_ANDROID_PACKAGE")]
    pub android_package: Option<String>,
    /// Application configuration (JSON, see services/distribution/config/app_config.json); the
    /// built-in default when absent. Read at every run.
    #[arg(long, env = "OPENWARN_APP_CONFIG")]
    pub app_config: Option<PathBuf>,
    /// Secret the padding keys are derived from.
    #[arg(long, env = "OPENWARN_PADDING_SECRET", hide_env_values = true)]
    pub padding_secret: Option<String>,
    /// File holding the padding secret.
    #[arg(long, env = "OPENWARN_PADDING_SECRET_FILE")]
    pub padding_secret_file: Option<PathBuf>,
    /// An hour with fewer real keys is padded with fake keys up to this many.
    #[arg(long, env = "OPENWARN_MIN_KEYS_PER_HOUR", default_value_t = 140)]
    pub min_keys_per_hour: usize,
    /// Most keys in one package; a day above it gets no day package.
    #[arg(long, env = "OPENWARN_MAX_KEYS_PER_PACKAGE", default_value_t = 600_000)]
    pub max_keys_per_package: usize,
    /// A key still valid when submitted is published once it has been expired this long.
    #[arg(long, env = "OPENWARN_EMBARGO", default_value = "2h", value_parser = parse_duration)]
    pub embargo: Duration,
    /// Days since onset of symptoms published for transmission risk levels 1 to 8 (in order; 1
    /// or 2 each): with OPENWARN_TRL_REPORT_TYPES, how each key's risk level is encoded for
    /// apps with Exposure Notification v2. CWA's table by default.
    #[arg(
        long,
        env = "OPENWARN_TRL_DAYS_SINCE_ONSET",
        value_delimiter = ',',
        default_value = "1,2,1,2,1,2,1,2"
    )]
    pub trl_days_since_onset: Vec<i32>,
    /// Report types published for transmission risk levels 1 to 8 (in order; 1 confirmed test,
    /// 2 clinical diagnosis, 3 self report, 4 recursive). CWA's table by default.
    #[arg(
        long,
        env = "OPENWARN_TRL_REPORT_TYPES",
        value_delimiter = ',',
        default_value = "4,4,3,3,2,2,1,1"
    )]
    pub trl_report_types: Vec<i32>,
    #[arg(long, env = "OPENWARN_HOUR_RETENTION", default_value = "2d", value_parser = parse_duration)]
    pub hour_retention: Duration,
    #[arg(long, env = "OPENWARN_DAY_RETENTION", default_value = "14d", value_parser = parse_duration)]
    pub day_retention: Duration,
    /// Publish every hour, this long after the hour (time for in-flight submissions to commit),
    /// and once at start-up. Off for a process that only serves.
    #[arg(long, env = "OPENWARN_SCHEDULE", default_value_t = true, action = clap::ArgAction::Set)]
    pub schedule: bool,
    #[arg(long, env = "OPENWARN_RUN_DELAY", default_value = "1m", value_parser = parse_duration)]
    pub run_delay: Duration,
    /// Accept `POST /run[?now=RFC3339]` on the admin port (`openwarn publish`; development only).
    #[arg(long, env = "OPENWARN_MANUAL_RUNS", default_value_t = false, action = clap::ArgAction::Set)]
    pub manual_runs: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error(transparent)]
    Publish(#[from] publish::PublishError),
    #[error("the application configuration was refused: {0}")]
    AppConfigRefused(String),
}

pub(crate) fn now_f64() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Reads every signing key named in the configuration.
pub fn signers(config: &Config) -> Result<Vec<Signer>, ConfigError> {
    const SETTING: &str = "OPENWARN_SIGNING_KEYS";
    if config.signing_keys.is_empty() {
        return Err(ConfigError::new(
            SETTING,
            "is required (VERSION=PATH of a PKCS#8 PEM key)",
        ));
    }
    config
        .signing_keys
        .iter()
        .map(|entry| {
            let (version, path) = entry
                .split_once('=')
                .filter(|(v, p)| !v.is_empty() && !p.is_empty())
                .ok_or_else(|| {
                    ConfigError::new(SETTING, format!("{entry:?} is not VERSION=PATH"))
                })?;
            let pem = std::fs::read_to_string(path)
                .map_err(|e| ConfigError::new(SETTING, format!("cannot read {path}: {e}")))?;
            Signer::from_pkcs8_pem(
                &pem,
                &KeyInfo {
                    verification_key_id: config.verification_key_id.clone(),
                    verification_key_version: version.to_owned(),
                    app_bundle_id: config.app_bundle_id.clone(),
                    android_package: config.android_package.clone(),
                },
            )
            .map_err(|e| ConfigError::new(SETTING, format!("{path}: {e}")))
        })
        .collect()
}

/// The object store the configuration names.
pub fn tree(config: &Config) -> Result<Tree, ConfigError> {
    const SETTING: &str = "OPENWARN_STORE_URL";
    let url = config.store_url.as_str();
    if let Some(rest) = url.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(ConfigError::new(
                SETTING,
                "s3://BUCKET[/PREFIX] needs a bucket",
            ));
        }
        // The client needs a process-wide TLS provider; ours is ring (as everywhere else).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_region(&config.s3_region);
        if let Some(id) = &config.s3_access_key_id {
            let key = secret(
                config.s3_secret_access_key.as_deref(),
                config.s3_secret_access_key_file.as_deref(),
                "OPENWARN_S3_SECRET_ACCESS_KEY",
            )?
            .ok_or_else(|| {
                ConfigError::new(
                    "OPENWARN_S3_SECRET_ACCESS_KEY",
                    "is required with OPENWARN_S3_ACCESS_KEY_ID",
                )
            })?;
            builder = builder.with_access_key_id(id).with_secret_access_key(key);
        }
        if let Some(endpoint) = &config.s3_endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"))
                .with_virtual_hosted_style_request(false);
        }
        let store = builder
            .build()
            .map_err(|e| ConfigError::new(SETTING, e.to_string()))?;
        Ok(Tree::s3(store, prefix.trim_matches('/')))
    } else {
        let dir = url.strip_prefix("file://").unwrap_or(url);
        if dir.is_empty() || url.contains("://") && !url.starts_with("file://") {
            return Err(ConfigError::new(
                SETTING,
                "expected a directory, file:///DIR or s3://BUCKET",
            ));
        }
        Tree::local(std::path::Path::new(dir)).map_err(|e| ConfigError::new(SETTING, e.to_string()))
    }
}

/// The encoding of risk levels the configuration names (CWA's by default).
pub fn trl_encoding(config: &Config) -> Result<TrlEncoding, ConfigError> {
    use openwarn_protocol::metadata::InvalidEncoding;
    TrlEncoding::new(&config.trl_days_since_onset, &config.trl_report_types).map_err(|e| {
        let setting = match e {
            InvalidEncoding::DaysSinceOnset(_) => "OPENWARN_TRL_DAYS_SINCE_ONSET",
            InvalidEncoding::ReportType(_) => "OPENWARN_TRL_REPORT_TYPES",
            InvalidEncoding::Levels(_) if config.trl_days_since_onset.len() != 8 => {
                "OPENWARN_TRL_DAYS_SINCE_ONSET"
            }
            InvalidEncoding::Levels(_) => "OPENWARN_TRL_REPORT_TYPES",
        };
        ConfigError::new(setting, e.to_string())
    })
}

/// Everything a run needs, from the configuration.
pub async fn publisher(config: &Config) -> Result<Publisher, Error> {
    publisher_with(config, &config.tls.load()?).await
}

/// [`publisher`] with the internal TLS files already loaded (the service watches them).
async fn publisher_with(
    config: &Config,
    tls: &openwarn_mtls::TlsFiles,
) -> Result<Publisher, Error> {
    let trl_encoding = trl_encoding(config)?;
    if config.min_keys_per_hour > config.max_keys_per_package {
        return Err(ConfigError::new(
            "OPENWARN_MIN_KEYS_PER_HOUR",
            "must not exceed OPENWARN_MAX_KEYS_PER_PACKAGE",
        )
        .into());
    }
    if config.hour_retention < Duration::from_secs(3600)
        || config.day_retention < Duration::from_secs(86_400)
    {
        return Err(ConfigError::new(
            "OPENWARN_HOUR_RETENTION",
            "hour retention must be at least 1h and OPENWARN_DAY_RETENTION at least 1d",
        )
        .into());
    }
    let padding_secret = secret(
        config.padding_secret.as_deref(),
        config.padding_secret_file.as_deref(),
        "OPENWARN_PADDING_SECRET",
    )?
    .filter(|s| s.len() >= 16)
    .ok_or_else(|| {
        ConfigError::new(
            "OPENWARN_PADDING_SECRET",
            "is required (at least 16 characters)",
        )
    })?;
    let signers = signers(config)?;
    let tree = tree(config)?;
    let app_config = match &config.app_config {
        Some(path) => AppConfigSource::File(path.clone()),
        None => AppConfigSource::Default,
    };
    let channel = tls
        .grpc_channel(&config.submission_url, &config.submission_server_name)
        .map_err(|e| ConfigError::new("OPENWARN_SUBMISSION_URL", e.to_string()))?;
    let kv_url = secret(
        config.kv_url.as_deref(),
        config.kv_url_file.as_deref(),
        "OPENWARN_KV_URL",
    )?
    .unwrap_or_else(|| "memory://".into());
    let kv_options = openwarn_kv::Options {
        ca_pem: secret(None, config.kv_ca_file.as_deref(), "OPENWARN_KV_CA_FILE")?,
        password: secret(
            None,
            config.kv_password_file.as_deref(),
            "OPENWARN_KV_PASSWORD_FILE",
        )?,
    };
    let kv = openwarn_kv::open_with(&kv_url, &config.kv_namespace, &kv_options)
        .await
        .map_err(|e| ConfigError::new("OPENWARN_KV_URL", e.to_string()))?;
    Ok(Publisher::new(
        tree,
        Arc::new(source::Submission::new(channel)),
        signers,
        Settings {
            country: config.country.clone(),
            min_keys_per_hour: config.min_keys_per_hour,
            max_keys_per_package: config.max_keys_per_package,
            embargo: config.embargo,
            hour_retention: config.hour_retention,
            day_retention: config.day_retention,
            padding_secret: padding_secret.into_bytes(),
            lease_ttl: config.run_lease_ttl,
            trl_encoding,
        },
        kv,
        app_config,
    ))
}

/// One run as of `now` (default: the current time), then exit (tests, replays).
pub async fn run_once(config: Config, now: Option<i64>) -> Result<Report, Error> {
    let publisher = publisher(&config).await?;
    let report = publisher
        .run(now.unwrap_or_else(openwarn_bootstrap::lifecycle::unix_now))
        .await?;
    Ok(report)
}

/// Starts the service: the tree's HTTP server (embedded mode), the admin port, the hourly runs.
pub async fn start(config: Config) -> Result<RunningService, Error> {
    let tls = config.tls.load()?;
    let publisher = Arc::new(publisher_with(&config, &tls).await?);
    let mut service = RunningService::new(NAME);
    service.watch_tls(vec![Arc::new(tls)], config.tls.reload_interval);
    if config.serve_tree {
        service
            .serve_http_on(
                "http",
                config.listen.http_addr,
                serve::routes(publisher.tree().clone()),
            )
            .await?;
    }
    let ready = publisher.clone();
    let mut admin = Admin::new(Arc::new(move || {
        let publisher = ready.clone();
        Box::pin(async move { publisher.tree().ping().await.map_err(|e| e.to_string()) })
    }))
    .openapi(&api::api());
    if config.manual_runs {
        admin = admin.routes(manual_runs(publisher.clone()));
    }
    service
        .serve_admin_on(config.listen.admin_addr, admin)
        .await?;
    if config.schedule {
        let token = service.token();
        let delay = i64::try_from(config.run_delay.as_secs()).unwrap_or(0);
        service.spawn(async move {
            loop {
                let now = openwarn_bootstrap::lifecycle::unix_now();
                // Errors are logged and counted by the run. A failed run (submission not up
                // yet, a store outage) is retried after a minute; otherwise the next hour.
                let failed = publisher.run(now).await.is_err();
                let next_hour = (now - delay).div_euclid(3600) * 3600 + 3600 + delay;
                let next = if failed {
                    next_hour.min(now + 60)
                } else {
                    next_hour
                };
                let wait = Duration::from_secs(u64::try_from(next - now).unwrap_or(1).max(1));
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = token.cancelled() => return Ok(()),
                }
            }
        });
    }
    Ok(service)
}

/// `POST /run[?now=RFC3339]`: one run now, answered with its report.
fn manual_runs(publisher: Arc<Publisher>) -> Routes {
    use actix_web::{HttpResponse, ResponseError, web};
    use openwarn_bootstrap::http::ApiError;

    #[derive(serde::Deserialize)]
    struct RunQuery {
        now: Option<String>,
    }
    async fn run(publisher: web::Data<Publisher>, query: web::Query<RunQuery>) -> HttpResponse {
        let now = match query.now.as_deref().map(parse_now) {
            None => openwarn_bootstrap::lifecycle::unix_now(),
            Some(Ok(now)) => now,
            Some(Err(_)) => return ApiError::bad_request("invalid_now").error_response(),
        };
        match publisher.run(now).await {
            Ok(report) => HttpResponse::Ok().json(report),
            Err(_) => ApiError::new(
                actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
                "run_failed",
            )
            .error_response(),
        }
    }
    let publisher = web::Data::from(publisher);
    Routes::new(move |config| {
        config
            .app_data(publisher.clone())
            .service(web::resource("/run").route(web::post().to(run)));
    })
}

/// Parses `--now`: RFC 3339 (`2026-11-23T14:00:00Z`).
pub fn parse_now(s: &str) -> Result<i64, String> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp())
        .map_err(|e| format!("{s:?} is not an RFC 3339 time: {e}"))
}

/// Distribution's own commands, beside `serve` (and `migrate`, which has nothing to do: the
/// published tree is distribution's only state).
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Publish once and exit (tests, replays). Prints the run's report as JSON.
    RunOnce(RunOnce),
}

#[derive(Debug, Clone, clap::Args)]
pub struct RunOnce {
    /// Publish as of this time instead of now (RFC 3339). Hours up to it count as closed: for
    /// tests and replays, never ahead of the real time in production.
    #[arg(long, value_parser = parse_now)]
    pub now: Option<i64>,
    #[command(flatten)]
    pub config: Config,
}

impl openwarn_bootstrap::cli::Commands<Config> for Command {
    fn config(&self) -> &Config {
        match self {
            Self::RunOnce(run_once) => &run_once.config,
        }
    }

    /// `run-once` fails (exit code 1) when the run failed, or published keys but refused the
    /// application configuration.
    async fn run(self) -> Result<(), BoxError> {
        match self {
            Self::RunOnce(RunOnce { now, config }) => {
                let report = run_once(config, now).await?;
                println!("{}", serde_json::to_string_pretty(&report)?);
                match report.app_config {
                    Some(publish::AppConfigOutcome::Refused(reason)) => {
                        Err(Error::AppConfigRefused(reason).into())
                    }
                    _ => Ok(()),
                }
            }
        }
    }
}

/// The service as the shared command line runs it:
/// `distribution [serve|migrate|run-once [--now RFC3339]] [SETTINGS]`.
pub struct DistributionService;

impl openwarn_bootstrap::cli::Service for DistributionService {
    const NAME: &'static str = NAME;
    type Config = Config;
    type Commands = Command;
    type Error = Error;

    fn telemetry(config: &Config) -> &TelemetryArgs {
        &config.telemetry
    }

    async fn start(config: Config) -> Result<RunningService, Error> {
        start(config).await
    }
}
