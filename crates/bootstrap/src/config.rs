//! Configuration shared by every service.

use openwarn_mtls::TlsFiles;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// A setting that cannot be used. The message names the setting, never its (possibly secret) value.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting {setting}: {reason}")]
pub struct ConfigError {
    /// The environment variable (and so the flag) at fault, e.g. `OPENWARN_DATABASE_URL`.
    pub setting: &'static str,
    pub reason: String,
}

impl ConfigError {
    pub fn new(setting: &'static str, reason: impl Into<String>) -> Self {
        Self {
            setting,
            reason: reason.into(),
        }
    }
}

/// Reads a secret given either directly or as a file path (`*_FILE`, as Kubernetes mounts secrets).
/// Exactly one of the two must be given when `required`.
pub fn secret(
    value: Option<&str>,
    file: Option<&Path>,
    setting: &'static str,
) -> Result<Option<String>, ConfigError> {
    match (value, file) {
        (Some(_), Some(_)) => Err(ConfigError::new(
            setting,
            "given both directly and as a file; give one",
        )),
        (Some(v), None) => Ok(Some(v.to_owned())),
        (None, Some(path)) => std::fs::read_to_string(path)
            .map(|s| Some(s.trim_end_matches(['\n', '\r']).to_owned()))
            .map_err(|e| ConfigError::new(setting, format!("cannot read {}: {e}", path.display()))),
        (None, None) => Ok(None),
    }
}

/// Paths of the PEM files for mutual TLS on internal gRPC (server and client side alike).
#[derive(Debug, Clone, clap::Args)]
pub struct TlsArgs {
    /// CA certificate (PEM) that signs every internal certificate.
    #[arg(long = "tls-ca", env = "OPENWARN_TLS_CA")]
    pub ca: Option<PathBuf>,
    /// This service's certificate (PEM), used as gRPC server and as gRPC client.
    #[arg(long = "tls-cert", env = "OPENWARN_TLS_CERT")]
    pub cert: Option<PathBuf>,
    /// This service's private key (PEM).
    #[arg(long = "tls-key", env = "OPENWARN_TLS_KEY")]
    pub key: Option<PathBuf>,
    /// How often the three files are read again: renewed certificates (cert-manager writes them
    /// in place) and a changed CA bundle serve new connections without a restart.
    #[arg(long = "tls-reload-interval", env = "OPENWARN_TLS_RELOAD_INTERVAL", default_value = "1m", value_parser = parse_duration)]
    pub reload_interval: std::time::Duration,
}

impl TlsArgs {
    /// The three paths; serving requires all of them (migrating needs none).
    pub fn paths(&self) -> Result<(&Path, &Path, &Path), ConfigError> {
        Ok((
            required(self.ca.as_deref(), "OPENWARN_TLS_CA")?,
            required(self.cert.as_deref(), "OPENWARN_TLS_CERT")?,
            required(self.key.as_deref(), "OPENWARN_TLS_KEY")?,
        ))
    }

    /// Loads the three files; an error names the setting at fault.
    pub fn load(&self) -> Result<TlsFiles, ConfigError> {
        let (ca, cert, key) = self.paths()?;
        TlsFiles::load(ca, cert, key).map_err(|e| {
            let setting = match e.path() {
                Some(p) if p == ca => "OPENWARN_TLS_CA",
                Some(p) if p == cert => "OPENWARN_TLS_CERT",
                _ => "OPENWARN_TLS_KEY",
            };
            ConfigError::new(setting, e.to_string())
        })
    }
}

fn required<'a>(path: Option<&'a Path>, setting: &'static str) -> Result<&'a Path, ConfigError> {
    path.ok_or_else(|| ConfigError::new(setting, "is required"))
}

/// A service's default listen addresses, and what it serves on its HTTP port: the service side
/// of [`ListenArgs`].
pub trait ListenDefaults: 'static {
    /// Default of `--http-addr` / `OPENWARN_HTTP_ADDR`.
    const HTTP_ADDR: &'static str;
    /// Help of `--http-addr`: what the service serves there (no final period, like clap's help
    /// from doc comments).
    const HTTP_HELP: &'static str;
    /// Default of `--admin-addr` / `OPENWARN_ADMIN_ADDR`.
    const ADMIN_ADDR: &'static str;
    /// Help of `--admin-addr`.
    const ADMIN_HELP: &'static str = "`/healthz`, `/readyz`, `/metrics`";
}

/// The addresses every service listens on: its HTTP port and its admin port. The flags and
/// variables are the same for every service; `S` gives the defaults and the help.
#[derive(clap::Args)]
pub struct ListenArgs<S: ListenDefaults> {
    #[arg(long = "http-addr", env = "OPENWARN_HTTP_ADDR", default_value = S::HTTP_ADDR, help = S::HTTP_HELP)]
    pub http_addr: SocketAddr,
    #[arg(long = "admin-addr", env = "OPENWARN_ADMIN_ADDR", default_value = S::ADMIN_ADDR, help = S::ADMIN_HELP)]
    pub admin_addr: SocketAddr,
    #[arg(skip)]
    defaults: PhantomData<fn() -> S>,
}

/// The default address of a service's internal gRPC port: the service side of
/// [`GrpcListenArgs`].
pub trait GrpcListenDefaults: 'static {
    /// Default of `--grpc-addr` / `OPENWARN_GRPC_ADDR`.
    const GRPC_ADDR: &'static str;
    /// Help of `--grpc-addr`: who calls the service there.
    const GRPC_HELP: &'static str;
}

/// The internal gRPC address of a service that has one.
#[derive(clap::Args)]
pub struct GrpcListenArgs<S: GrpcListenDefaults> {
    #[arg(long = "grpc-addr", env = "OPENWARN_GRPC_ADDR", default_value = S::GRPC_ADDR, help = S::GRPC_HELP)]
    pub grpc_addr: SocketAddr,
    #[arg(skip)]
    defaults: PhantomData<fn() -> S>,
}

// By hand, so that `S` (a marker type) needs neither `Clone` nor `Debug`.
impl<S: ListenDefaults> Clone for ListenArgs<S> {
    fn clone(&self) -> Self {
        Self {
            http_addr: self.http_addr,
            admin_addr: self.admin_addr,
            defaults: PhantomData,
        }
    }
}

impl<S: ListenDefaults> std::fmt::Debug for ListenArgs<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenArgs")
            .field("http_addr", &self.http_addr)
            .field("admin_addr", &self.admin_addr)
            .finish()
    }
}

impl<S: GrpcListenDefaults> Clone for GrpcListenArgs<S> {
    fn clone(&self) -> Self {
        Self {
            grpc_addr: self.grpc_addr,
            defaults: PhantomData,
        }
    }
}

impl<S: GrpcListenDefaults> std::fmt::Debug for GrpcListenArgs<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcListenArgs")
            .field("grpc_addr", &self.grpc_addr)
            .finish()
    }
}

/// Where a service keeps its data.
#[derive(Debug, Clone, clap::Args)]
pub struct DatabaseArgs {
    /// `postgres://…` in production, `sqlite://PATH` as the embedded default.
    #[arg(
        long = "database-url",
        env = "OPENWARN_DATABASE_URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// File holding the database URL (for secrets mounted as files).
    #[arg(long = "database-url-file", env = "OPENWARN_DATABASE_URL_FILE")]
    pub database_url_file: Option<PathBuf>,
    /// Maximum connections in the pool.
    #[arg(
        long = "database-pool-size",
        env = "OPENWARN_DATABASE_POOL_SIZE",
        default_value_t = 16
    )]
    pub pool_size: u32,
}

impl DatabaseArgs {
    pub fn url(&self) -> Result<String, ConfigError> {
        secret(
            self.database_url.as_deref(),
            self.database_url_file.as_deref(),
            "OPENWARN_DATABASE_URL",
        )?
        .ok_or_else(|| ConfigError::new("OPENWARN_DATABASE_URL", "is required"))
    }
}

/// Logging and tracing options.
#[derive(Debug, Clone, clap::Args)]
pub struct TelemetryArgs {
    /// `json` (default, for production) or `text`.
    #[arg(
        long = "log-format",
        env = "OPENWARN_LOG_FORMAT",
        default_value = "json"
    )]
    pub log_format: LogFormat,
    /// Log filter: a default level and `target=level` directives, e.g. `info,openwarn_verification=debug`.
    #[arg(long = "log", env = "OPENWARN_LOG", default_value = "info")]
    pub log_filter: String,
    /// OTLP/gRPC collector to export spans to (e.g. `http://otel-collector:4317`); none: no export.
    #[arg(long = "otlp-endpoint", env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Json,
    Text,
}

/// Parses a duration such as `90s`, `15m`, `1h`, `21d` (a bare number is seconds).
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let (number, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 90s, 15m, 1h or 21d"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("{s:?} has an unknown unit; use s, m, h or d")),
    };
    if secs == 0 {
        return Err("a duration must be positive".into());
    }
    Ok(std::time::Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};
    use std::time::Duration;

    struct Example;

    impl ListenDefaults for Example {
        const HTTP_ADDR: &'static str = "127.0.0.1:8100";
        const HTTP_HELP: &'static str = "The example API";
        const ADMIN_ADDR: &'static str = "127.0.0.1:8101";
    }

    impl GrpcListenDefaults for Example {
        const GRPC_ADDR: &'static str = "127.0.0.1:9100";
        const GRPC_HELP: &'static str = "Internal gRPC of the example";
    }

    #[derive(Debug, Parser)]
    struct ExampleCli {
        #[command(flatten)]
        listen: ListenArgs<Example>,
        #[command(flatten)]
        grpc: GrpcListenArgs<Example>,
    }

    #[test]
    fn listen_addresses_default_per_service_under_shared_names() {
        ExampleCli::command().debug_assert();
        let defaults = ExampleCli::try_parse_from(["x"]).unwrap();
        assert_eq!(defaults.listen.http_addr, "127.0.0.1:8100".parse().unwrap());
        assert_eq!(
            defaults.listen.admin_addr,
            "127.0.0.1:8101".parse().unwrap()
        );
        assert_eq!(defaults.grpc.grpc_addr, "127.0.0.1:9100".parse().unwrap());
        let given = ExampleCli::try_parse_from([
            "x",
            "--http-addr",
            "0.0.0.0:1",
            "--admin-addr",
            "0.0.0.0:2",
            "--grpc-addr",
            "0.0.0.0:3",
        ])
        .unwrap();
        assert_eq!(given.listen.http_addr, "0.0.0.0:1".parse().unwrap());
        assert_eq!(given.listen.admin_addr, "0.0.0.0:2".parse().unwrap());
        assert_eq!(given.grpc.grpc_addr, "0.0.0.0:3".parse().unwrap());

        let command = ExampleCli::command();
        let arg = |id: &str| {
            command
                .get_arguments()
                .find(|a| a.get_id() == id)
                .unwrap_or_else(|| panic!("no {id}"))
        };
        for (id, env, help) in [
            ("http_addr", "OPENWARN_HTTP_ADDR", "The example API"),
            (
                "admin_addr",
                "OPENWARN_ADMIN_ADDR",
                "`/healthz`, `/readyz`, `/metrics`",
            ),
            (
                "grpc_addr",
                "OPENWARN_GRPC_ADDR",
                "Internal gRPC of the example",
            ),
        ] {
            assert_eq!(arg(id).get_env().and_then(|e| e.to_str()), Some(env));
            assert_eq!(
                arg(id).get_help().map(ToString::to_string).as_deref(),
                Some(help)
            );
        }
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(
            parse_duration("21d").unwrap(),
            Duration::from_secs(21 * 86_400)
        );
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5w").is_err());
        assert!(parse_duration("h").is_err());
    }

    #[test]
    fn secrets_come_from_value_or_file_but_not_both() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("url");
        std::fs::write(&path, "postgres://x\n").unwrap();
        assert_eq!(secret(Some("a"), None, "S").unwrap().as_deref(), Some("a"));
        assert_eq!(
            secret(None, Some(&path), "S").unwrap().as_deref(),
            Some("postgres://x")
        );
        assert_eq!(secret(None, None, "S").unwrap(), None);
        let both = secret(Some("a"), Some(&path), "OPENWARN_X").unwrap_err();
        assert!(both.to_string().contains("OPENWARN_X"));
        let missing = secret(None, Some(&dir.path().join("nope")), "OPENWARN_Y").unwrap_err();
        assert!(missing.to_string().contains("OPENWARN_Y"));
    }
}
