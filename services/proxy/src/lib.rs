//! The proxy: the app gateway every phone request passes through.
//!
//! It routes the four app endpoints to verification and submission over mutual TLS (pooled,
//! reused connections) and everything else to a 404 without touching a backend; forwards only an
//! allow-list of headers, so no client address, user agent, cookie or trace context reaches a
//! backend; rate-limits per client by a keyed, daily-rotating hash of its address (counters in
//! Redis, or in memory); caps body sizes and read times; and answers every fake request itself
//! with the status, headers and body length of a real success, after a delay drawn from that
//! route's recent real latencies.

mod api;
mod gateway;
pub mod ratelimit;

pub use gateway::{FORWARDED_REQUEST_HEADERS, FORWARDED_RESPONSE_HEADERS};

use clap::Args;
use openwarn_bootstrap::cli::NoCommands;
use openwarn_bootstrap::config::{
    ConfigError, ListenArgs, ListenDefaults, TelemetryArgs, TlsArgs, parse_duration, secret,
};
use openwarn_bootstrap::lifecycle::{BindError, RunningService, ServeError};
use openwarn_kv::{KvError, KvStore};
use openwarn_mtls::{HttpServer, TlsError, TlsFiles};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub const NAME: &str = "proxy";

impl ListenDefaults for ProxyService {
    const HTTP_ADDR: &'static str = "127.0.0.1:8000";
    const HTTP_HELP: &'static str = "App-facing HTTP (behind the TLS-terminating ingress)";
    const ADMIN_ADDR: &'static str = "127.0.0.1:8001";
}

#[derive(Debug, Clone, Args)]
pub struct Config {
    #[command(flatten)]
    pub listen: ListenArgs<ProxyService>,
    #[command(flatten)]
    pub tls: TlsArgs,
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
    /// Verification's app API (HTTPS, mutual TLS).
    #[arg(
        long,
        env = "OPENWARN_VERIFICATION_HTTP_URL",
        default_value = "https://127.0.0.1:8010"
    )]
    pub verification_http_url: String,
    /// Submission's app API (HTTPS, mutual TLS).
    #[arg(
        long,
        env = "OPENWARN_SUBMISSION_HTTP_URL",
        default_value = "https://127.0.0.1:8020"
    )]
    pub submission_http_url: String,
    /// Key-value store for rate-limit counters: `redis://…`, or `memory://` (one process).
    #[arg(long, env = "OPENWARN_KV_URL", hide_env_values = true)]
    pub kv_url: Option<String>,
    /// File holding the key-value store URL.
    #[arg(long, env = "OPENWARN_KV_URL_FILE")]
    pub kv_url_file: Option<std::path::PathBuf>,
    /// CA certificate (PEM) that signs the Redis server's certificate, for a `rediss://` URL
    /// (without it, the system's roots).
    #[arg(long, env = "OPENWARN_KV_CA_FILE")]
    pub kv_ca_file: Option<std::path::PathBuf>,
    /// File holding the Redis password (instead of one in the URL).
    #[arg(long, env = "OPENWARN_KV_PASSWORD_FILE")]
    pub kv_password_file: Option<std::path::PathBuf>,
    /// Prefix of every key the proxy writes to the key-value store.
    #[arg(long, env = "OPENWARN_KV_NAMESPACE", default_value = "openwarn:proxy")]
    pub kv_namespace: String,
    /// Secret of the keyed hash of client addresses; the same on every replica. Without it each
    /// process draws its own (fine for one process; replicas then count apart).
    #[arg(long, env = "OPENWARN_RATE_LIMIT_SECRET", hide_env_values = true)]
    pub rate_limit_secret: Option<String>,
    /// File holding the rate-limit secret.
    #[arg(long, env = "OPENWARN_RATE_LIMIT_SECRET_FILE")]
    pub rate_limit_secret_file: Option<std::path::PathBuf>,
    /// Requests per client per window.
    #[arg(long, env = "OPENWARN_RATE_LIMIT", default_value_t = 60)]
    pub rate_limit: u64,
    /// Rate-limit window.
    #[arg(long, env = "OPENWARN_RATE_LIMIT_WINDOW", default_value = "1m", value_parser = parse_duration)]
    pub rate_limit_window: Duration,
    /// How often the keyed hash of client addresses changes.
    #[arg(long, env = "OPENWARN_RATE_LIMIT_ROTATION", default_value = "1d", value_parser = parse_duration)]
    pub rate_limit_rotation: Duration,
    /// Header in which the ingress passes the client address (its rightmost entry is used), e.g.
    /// `x-forwarded-for`. Without it, the TCP peer address is used. Never forwarded.
    #[arg(long, env = "OPENWARN_CLIENT_ADDRESS_HEADER")]
    pub client_address_header: Option<String>,
    /// Largest submission body, in bytes.
    #[arg(long, env = "OPENWARN_MAX_SUBMISSION_BYTES", default_value_t = 100 * 1024)]
    pub max_submission_bytes: usize,
    /// Largest verification request body, in bytes.
    #[arg(long, env = "OPENWARN_MAX_VERIFICATION_BYTES", default_value_t = 10 * 1024)]
    pub max_verification_bytes: usize,
    /// Time allowed to send request headers and, separately, the whole body.
    #[arg(long, env = "OPENWARN_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub read_timeout: Duration,
    /// Time allowed for a backend to answer.
    #[arg(long, env = "OPENWARN_UPSTREAM_TIMEOUT", default_value = "15s", value_parser = parse_duration)]
    pub upstream_timeout: Duration,
    /// Recent real latencies kept per route for fake requests to draw from.
    #[arg(long, env = "OPENWARN_FAKE_RESERVOIR", default_value_t = 1024)]
    pub fake_reservoir: usize,
    /// Seed of the fake-delay sampler, for reproducible tests; random when absent.
    #[arg(long, env = "OPENWARN_FAKE_SEED", hide = true)]
    pub fake_seed: Option<u64>,
    /// Length of every app-facing answer body on a known route — success, error, fake, and the
    /// proxy's own 4xx/5xx — padded with `responsePadding` (verification pads its answers to its
    /// own OPENWARN_RESPONSE_LENGTH: set both to the same value).
    #[arg(long, env = "OPENWARN_RESPONSE_LENGTH", default_value_t = 320)]
    pub response_length: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("OPENWARN_KV_URL: {0}")]
    Kv(#[from] KvError),
    #[error(transparent)]
    Bind(#[from] BindError),
}

fn upstream_base(url: &str, setting: &'static str) -> Result<String, ConfigError> {
    let uri: http::Uri = url
        .parse()
        .map_err(|_| ConfigError::new(setting, "is not a URL"))?;
    if uri.scheme_str() != Some("https") || uri.host().is_none() {
        return Err(ConfigError::new(
            setting,
            "must be an https:// URL (backends are mutual TLS)",
        ));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// Starts the proxy.
pub async fn start(config: Config) -> Result<RunningService, Error> {
    let verification = upstream_base(
        &config.verification_http_url,
        "OPENWARN_VERIFICATION_HTTP_URL",
    )?;
    let submission = upstream_base(&config.submission_http_url, "OPENWARN_SUBMISSION_HTTP_URL")?;
    if config.rate_limit == 0 {
        return Err(ConfigError::new("OPENWARN_RATE_LIMIT", "must be at least 1").into());
    }
    let client_address_header = client_address_header(&config)?;
    let tls = config.tls.load()?;
    let client = https_client(&tls)?;
    let kv = open_kv(&config).await?;
    let limiter = ratelimit::Limiter::new(
        kv.clone(),
        rate_limit_secret(&config)?,
        config.rate_limit,
        config.rate_limit_window,
        config.rate_limit_rotation,
    );
    let limits = limits(&config);
    let description = api::api(&limits);
    let gateway = Arc::new(gateway::Gateway {
        routes: gateway::routes(&limits),
        client,
        verification,
        submission,
        limiter,
        limits,
        client_address_header,
        timer: openwarn_bootstrap::http::PreciseTimer::new(),
    });

    let mut service = RunningService::new(NAME);
    service.watch_tls(vec![Arc::new(tls)], config.tls.reload_interval);
    serve_gateway(
        &mut service,
        config.listen.http_addr,
        gateway,
        config.read_timeout,
    )
    .await?;
    service
        .serve_admin_on(
            config.listen.admin_addr,
            openwarn_bootstrap::admin::Admin::new(Arc::new(move || {
                let kv = kv.clone();
                Box::pin(async move { kv.ping().await.map_err(|e| e.to_string()) })
            }))
            .openapi(&description),
        )
        .await?;
    Ok(service)
}

fn client_address_header(config: &Config) -> Result<Option<http::HeaderName>, ConfigError> {
    config
        .client_address_header
        .as_deref()
        .map(|h| {
            http::HeaderName::try_from(h).map_err(|_| {
                ConfigError::new("OPENWARN_CLIENT_ADDRESS_HEADER", "is not a header name")
            })
        })
        .transpose()
}

/// The pooled HTTP/1 and HTTP/2 client towards the backends: HTTPS only, with our certificate.
fn https_client(tls: &TlsFiles) -> Result<gateway::HttpsClient, TlsError> {
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.set_nodelay(true);
    http.enforce_http(false);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls.https_client()?)
        .https_only()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    Ok(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(256)
            .build(connector),
    )
}

async fn open_kv(config: &Config) -> Result<Arc<dyn KvStore>, Error> {
    let kv_url = secret(
        config.kv_url.as_deref(),
        config.kv_url_file.as_deref(),
        "OPENWARN_KV_URL",
    )?
    .unwrap_or_else(|| "memory://".to_owned());
    let kv_options = openwarn_kv::Options {
        ca_pem: secret(None, config.kv_ca_file.as_deref(), "OPENWARN_KV_CA_FILE")?,
        password: secret(
            None,
            config.kv_password_file.as_deref(),
            "OPENWARN_KV_PASSWORD_FILE",
        )?,
    };
    Ok(openwarn_kv::open_with(&kv_url, &config.kv_namespace, &kv_options).await?)
}

/// The configured secret of the keyed hash of client addresses, or one drawn for this process.
fn rate_limit_secret(config: &Config) -> Result<Vec<u8>, ConfigError> {
    match secret(
        config.rate_limit_secret.as_deref(),
        config.rate_limit_secret_file.as_deref(),
        "OPENWARN_RATE_LIMIT_SECRET",
    )? {
        Some(s) if s.len() >= 16 => Ok(s.into_bytes()),
        Some(_) => Err(ConfigError::new(
            "OPENWARN_RATE_LIMIT_SECRET",
            "must be at least 16 characters",
        )),
        None => {
            tracing::warn!("OPENWARN_RATE_LIMIT_SECRET not set: this process draws its own");
            let mut bytes = vec![0; 32];
            rand::Rng::fill(&mut rand::rng(), &mut bytes[..]);
            Ok(bytes)
        }
    }
}

fn limits(config: &Config) -> gateway::Limits {
    gateway::Limits {
        max_submission_bytes: config.max_submission_bytes,
        max_verification_bytes: config.max_verification_bytes,
        read_timeout: config.read_timeout,
        upstream_timeout: config.upstream_timeout,
        reservoir_size: config.fake_reservoir,
        fake_seed: config.fake_seed,
        verification_response_length: config.response_length,
    }
}

/// Binds `addr` and serves the gateway there (plain HTTP: the ingress terminates TLS) as the
/// task `http`. Each request learns its connection's peer address, for the rate limit only.
async fn serve_gateway(
    service: &mut RunningService,
    addr: SocketAddr,
    gateway: Arc<gateway::Gateway>,
    header_timeout: Duration,
) -> Result<(), BindError> {
    let listener = service.listen("http", addr).await?;
    let token = service.token();
    let server = HttpServer::plain().header_read_timeout(header_timeout);
    service.spawn(async move {
        let per_connection = move |peer: SocketAddr| {
            let gateway = gateway.clone();
            let ip = peer.ip();
            hyper::service::service_fn(move |request| {
                let gateway = gateway.clone();
                async move { Ok::<_, std::convert::Infallible>(gateway.handle(request, ip).await) }
            })
        };
        server
            .serve(listener, per_connection, token)
            .await
            .map_err(|e| ServeError::new("http", e))
    });
    Ok(())
}

/// The service as the shared command line runs it.
pub struct ProxyService;

impl openwarn_bootstrap::cli::Service for ProxyService {
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
}
