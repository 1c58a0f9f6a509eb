//! The portal: public health officers sign in (local accounts with an argon2id password and a
//! TOTP second factor, or the health authority's OpenID Connect provider) and issue teleTANs
//! through verification's gRPC with the portal's own client certificate; administrators manage
//! accounts and read the audit log. Every officer action is written to an append-only,
//! hash-chained audit log in the portal's own database ([`audit`]).
//!
//! Server-rendered HTML without any script, in English and German; sessions are server-side
//! (cookie `HttpOnly`, `SameSite=Strict`, `Secure` outside development), with idle and absolute
//! timeouts; every form carries a CSRF token.

mod admin;
pub mod audit;
mod auth;
mod i18n;
mod oidc;
mod pages;
mod store;
mod teletan;
mod web;

pub use store::{Role, Store};
pub use web::{CSRF_COOKIE, REASON_HEADER, SESSION_COOKIE};

use clap::Args;
use openwarn_bootstrap::admin::Admin;
use openwarn_bootstrap::cli::BoxError;
use openwarn_bootstrap::config::{
    ConfigError, DatabaseArgs, ListenArgs, ListenDefaults, TelemetryArgs, TlsArgs, parse_duration,
    secret,
};
use openwarn_bootstrap::lifecycle::{BindError, RunningService, unix_now};
use openwarn_db::DbError;
use openwarn_mtls::TlsError;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub const NAME: &str = "portal";

pub(crate) const MIGRATIONS_PG: diesel_migrations::EmbeddedMigrations =
    diesel_migrations::embed_migrations!("migrations/postgres");
pub(crate) const MIGRATIONS_SQLITE: diesel_migrations::EmbeddedMigrations =
    diesel_migrations::embed_migrations!("migrations/sqlite");

/// The service as the shared command line runs it.
pub struct PortalService;

impl ListenDefaults for PortalService {
    const HTTP_ADDR: &'static str = "127.0.0.1:8040";
    const HTTP_HELP: &'static str =
        "Officers' web application (plain HTTP behind the TLS-terminating ingress)";
    const ADMIN_ADDR: &'static str = "127.0.0.1:8041";
}

/// How officers sign in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SignIn {
    /// Local accounts: password and TOTP second factor (small deployments, `openwarn up`).
    Local,
    /// The health authority's OpenID Connect provider (production).
    Oidc,
}

#[derive(Debug, Clone, Args)]
pub struct Config {
    #[command(flatten)]
    pub listen: ListenArgs<PortalService>,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub tls: TlsArgs,
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
    /// Where officers reach the portal, e.g. `https://portal.example.org`: enrolment links,
    /// the OIDC redirect URI; `https://` makes cookies `Secure` and sends HSTS (only a plain
    /// `http://` URL, for local development, turns both off).
    /// Required (checked at start, naming the setting; not by clap, so that commands on the same
    /// settings parse without it where they do not need it).
    #[arg(long, env = "OPENWARN_PORTAL_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// gRPC endpoint of the verification service (teleTANs).
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
    /// How officers sign in.
    #[arg(
        long,
        env = "OPENWARN_PORTAL_SIGN_IN",
        value_enum,
        default_value = "local"
    )]
    pub sign_in: SignIn,
    /// A session ends after this long without a request.
    #[arg(long, env = "OPENWARN_PORTAL_IDLE_TIMEOUT", default_value = "30m", value_parser = parse_duration)]
    pub idle_timeout: Duration,
    /// A session ends this long after sign-in, however active.
    #[arg(long, env = "OPENWARN_PORTAL_ABSOLUTE_TIMEOUT", default_value = "8h", value_parser = parse_duration)]
    pub absolute_timeout: Duration,
    /// Failed sign-ins in a row that lock a local account.
    #[arg(long, env = "OPENWARN_PORTAL_MAX_FAILED_SIGN_INS", default_value_t = 5)]
    pub max_failed_sign_ins: u16,
    /// How long a locked account stays locked.
    #[arg(long, env = "OPENWARN_PORTAL_LOCKOUT", default_value = "15m", value_parser = parse_duration)]
    pub lockout: Duration,
    /// teleTANs one officer may issue per clock hour (verification's global limit applies too).
    #[arg(
        long,
        env = "OPENWARN_PORTAL_TELE_TANS_PER_OFFICER_PER_HOUR",
        default_value_t = 20
    )]
    pub tele_tans_per_officer_per_hour: u16,
    /// How long an enrolment link works.
    #[arg(long, env = "OPENWARN_PORTAL_ENROLMENT_VALIDITY", default_value = "72h", value_parser = parse_duration)]
    pub enrolment_validity: Duration,
    /// Audit entries are deleted this long after they were written.
    #[arg(long, env = "OPENWARN_PORTAL_AUDIT_RETENTION", default_value = "365d", value_parser = parse_duration)]
    pub audit_retention: Duration,
    /// How often expired sessions and old audit entries are deleted.
    #[arg(long, env = "OPENWARN_RETENTION_INTERVAL", default_value = "1h", value_parser = parse_duration)]
    pub retention_interval: Duration,
    #[command(flatten)]
    pub oidc: OidcArgs,
}

/// The OpenID Connect provider (with `--sign-in oidc`).
#[derive(Debug, Clone, Args)]
pub struct OidcArgs {
    /// The provider's issuer URL (discovery at `<issuer>/.well-known/openid-configuration`),
    /// e.g. a Keycloak realm `https://id.example.org/realms/health`.
    #[arg(long = "oidc-issuer", env = "OPENWARN_OIDC_ISSUER")]
    pub issuer: Option<String>,
    /// The portal's client id at the provider.
    #[arg(long = "oidc-client-id", env = "OPENWARN_OIDC_CLIENT_ID")]
    pub client_id: Option<String>,
    /// The portal's client secret (none: a public client, PKCE only).
    #[arg(
        long = "oidc-client-secret",
        env = "OPENWARN_OIDC_CLIENT_SECRET",
        hide_env_values = true
    )]
    pub client_secret: Option<String>,
    /// File holding the client secret.
    #[arg(
        long = "oidc-client-secret-file",
        env = "OPENWARN_OIDC_CLIENT_SECRET_FILE"
    )]
    pub client_secret_file: Option<PathBuf>,
    /// CA certificates (PEM) trusted for the provider's HTTPS, e.g. the system bundle
    /// `/etc/ssl/certs/ca-certificates.crt`. Required for an `https://` issuer.
    #[arg(long = "oidc-ca-file", env = "OPENWARN_OIDC_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// Claim of the ID token holding the roles: a name or a dot path (Keycloak:
    /// `realm_access.roles`).
    #[arg(
        long = "oidc-roles-claim",
        env = "OPENWARN_OIDC_ROLES_CLAIM",
        default_value = "roles"
    )]
    pub roles_claim: String,
    /// The provider's role that makes an officer.
    #[arg(
        long = "oidc-officer-role",
        env = "OPENWARN_OIDC_OFFICER_ROLE",
        default_value = "officer"
    )]
    pub officer_role: String,
    /// The provider's role that makes an administrator.
    #[arg(
        long = "oidc-admin-role",
        env = "OPENWARN_OIDC_ADMIN_ROLE",
        default_value = "admin"
    )]
    pub admin_role: String,
    /// Scopes asked for besides `openid`, comma-separated.
    #[arg(
        long = "oidc-scopes",
        env = "OPENWARN_OIDC_SCOPES",
        value_delimiter = ',',
        default_value = "profile"
    )]
    pub scopes: Vec<String>,
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

/// The public URL without a trailing slash.
fn public_url(config: &Config) -> Result<String, ConfigError> {
    config
        .public_url
        .as_deref()
        .map(|url| url.trim_end_matches('/').to_owned())
        .ok_or_else(|| ConfigError::new("OPENWARN_PORTAL_PUBLIC_URL", "is required"))
}

fn check(config: &Config) -> Result<(), ConfigError> {
    let url = public_url(config)?;
    if !(url.starts_with("https://") || url.starts_with("http://")) || url.contains(['?', '#']) {
        return Err(ConfigError::new(
            "OPENWARN_PORTAL_PUBLIC_URL",
            "must be an http:// or https:// URL without query or fragment",
        ));
    }
    if config.absolute_timeout < config.idle_timeout {
        return Err(ConfigError::new(
            "OPENWARN_PORTAL_ABSOLUTE_TIMEOUT",
            "must not be shorter than OPENWARN_PORTAL_IDLE_TIMEOUT",
        ));
    }
    if config.max_failed_sign_ins == 0 {
        return Err(ConfigError::new(
            "OPENWARN_PORTAL_MAX_FAILED_SIGN_INS",
            "must be at least 1",
        ));
    }
    Ok(())
}

/// The OIDC sign-in of the configuration (`None` with local accounts).
#[allow(
    clippy::disallowed_methods,
    reason = "the client gets its own TLS configuration (ring), so no process-wide provider is needed"
)]
fn oidc_login(config: &Config) -> Result<Option<oidc::OidcLogin>, ConfigError> {
    if config.sign_in != SignIn::Oidc {
        return Ok(None);
    }
    let args = &config.oidc;
    let issuer = args.issuer.clone().ok_or_else(|| {
        ConfigError::new("OPENWARN_OIDC_ISSUER", "is required with --sign-in oidc")
    })?;
    let client_id = args.client_id.clone().ok_or_else(|| {
        ConfigError::new("OPENWARN_OIDC_CLIENT_ID", "is required with --sign-in oidc")
    })?;
    let client_secret = secret(
        args.client_secret.as_deref(),
        args.client_secret_file.as_deref(),
        "OPENWARN_OIDC_CLIENT_SECRET",
    )?;
    let ca = match &args.ca_file {
        Some(path) => std::fs::read(path).map_err(|e| {
            ConfigError::new(
                "OPENWARN_OIDC_CA_FILE",
                format!("cannot read {}: {e}", path.display()),
            )
        })?,
        None if issuer.starts_with("https://") => {
            return Err(ConfigError::new(
                "OPENWARN_OIDC_CA_FILE",
                "is required for an https:// issuer (the system bundle will do)",
            ));
        }
        None => Vec::new(),
    };
    let tls = openwarn_mtls::http_client_tls(&ca, None)
        .map_err(|e| ConfigError::new("OPENWARN_OIDC_CA_FILE", e.to_string()))?;
    let http = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| ConfigError::new("OPENWARN_OIDC_CA_FILE", e.to_string()))?;
    let settings = openwarn_oidc::OidcSettings {
        issuer,
        client_id,
        client_secret: client_secret.map(openwarn_oidc::ClientSecret::new),
        redirect_uri: format!("{}/sign-in/oidc/callback", public_url(config)?),
        scopes: args
            .scopes
            .iter()
            .filter(|s| !s.is_empty())
            .cloned()
            .collect(),
        roles_claim: args.roles_claim.clone(),
    };
    Ok(Some(oidc::OidcLogin::new(
        settings,
        http,
        args.officer_role.clone(),
        args.admin_role.clone(),
    )))
}

fn settings(config: &Config) -> Result<web::Settings, ConfigError> {
    Ok(web::Settings {
        public_url: public_url(config)?,
        idle_timeout: config.idle_timeout,
        absolute_timeout: config.absolute_timeout,
        max_failed_sign_ins: i32::from(config.max_failed_sign_ins),
        lockout: config.lockout,
        tele_tans_per_officer_per_hour: i32::from(config.tele_tans_per_officer_per_hour),
        enrolment_validity: config.enrolment_validity,
        local_accounts: config.sign_in == SignIn::Local,
    })
}

/// Starts the service: migrations, the web application, the admin port, the retention job.
pub async fn start(config: Config) -> Result<RunningService, Error> {
    check(&config)?;
    let oidc = oidc_login(&config)?;
    let tls = config.tls.load()?;
    let channel = tls
        .grpc_channel(&config.verification_url, &config.verification_server_name)
        .map_err(|e| ConfigError::new("OPENWARN_VERIFICATION_URL", e.to_string()))?;
    let store = Store::open(&config.database.url()?, config.database.pool_size).await?;
    let audit = audit::AuditLog::new(store.database().clone());
    let portal = Arc::new(web::Portal {
        store: store.clone(),
        audit: audit.clone(),
        issuer: teletan::Issuer::new(channel),
        settings: settings(&config)?,
        oidc,
    });
    let mut service = RunningService::new(NAME);
    service.watch_tls(vec![Arc::new(tls)], config.tls.reload_interval);
    service
        .serve_http_on("http", config.listen.http_addr, web::routes(portal))
        .await?;
    let ready_db = store.database().clone();
    service
        .serve_admin_on(
            config.listen.admin_addr,
            Admin::new(Arc::new(move || {
                let db = ready_db.clone();
                Box::pin(async move { db.ping().await.map_err(|e| e.to_string()) })
            })),
        )
        .await?;
    spawn_retention(&mut service, store, audit, &config);
    Ok(service)
}

/// Ends timed-out sessions and forgets sign-ins under way and old issue counts; deletes audit
/// entries older than the retention (the chain stays verifiable: see [`audit`]).
fn spawn_retention(
    service: &mut RunningService,
    store: Store,
    audit: audit::AuditLog,
    config: &Config,
) {
    let (idle, absolute, keep) = (
        web::secs(config.idle_timeout),
        web::secs(config.absolute_timeout),
        config.audit_retention,
    );
    service.spawn_periodic(config.retention_interval, move || {
        let (store, audit) = (store.clone(), audit.clone());
        async move {
            let now = unix_now();
            match store
                .expire(
                    now - idle,
                    now - absolute,
                    now - web::secs(oidc::PENDING_VALIDITY),
                    now / 3600 - 1,
                )
                .await
            {
                Ok(sessions) => tracing::info!(sessions, "expired sessions deleted"),
                Err(e) => {
                    tracing::warn!(error = %e, "session expiry failed; retrying next interval")
                }
            }
            match audit.apply_retention(now, keep).await {
                Ok(deleted) => {
                    metrics::counter!("openwarn_portal_audit_entries_deleted_total")
                        .increment(deleted);
                    openwarn_bootstrap::lifecycle::retention_succeeded();
                    tracing::info!(deleted, "audit retention applied");
                }
                Err(e) => {
                    tracing::warn!(error = %e, "audit retention failed; retrying next interval")
                }
            }
        }
    });
}

/// The portal's own commands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Create an administrator account and print its one-time enrolment link (the only way
    /// to the first administrator: no default password exists).
    CreateAdmin(CreateAdminArgs),
    /// Check the audit log's hash chain; exits 1 when an entry was edited, deleted or reordered.
    VerifyAudit(Config),
}

#[derive(Debug, Clone, Args)]
pub struct CreateAdminArgs {
    #[command(flatten)]
    pub config: Config,
    /// The administrator's username.
    #[arg(long)]
    pub username: String,
    /// The administrator's full name (default: the username).
    #[arg(long)]
    pub display_name: Option<String>,
    /// Do nothing (and print nothing) when an enabled administrator exists already (`openwarn
    /// up` asks for the first administrator at every start).
    #[arg(long)]
    pub if_none: bool,
}

impl openwarn_bootstrap::cli::Commands<Config> for Command {
    fn config(&self) -> &Config {
        match self {
            Command::CreateAdmin(args) => &args.config,
            Command::VerifyAudit(config) => config,
        }
    }

    async fn run(self) -> Result<(), BoxError> {
        match self {
            Command::CreateAdmin(args) => {
                // The link goes to standard output only: it is a credential, never logged.
                if let Some(link) = create_admin(&args).await? {
                    println!("{link}");
                }
                Ok(())
            }
            Command::VerifyAudit(config) => verify_audit(config).await,
        }
    }
}

/// Creates an administrator waiting for enrolment; its one-time enrolment link (`None` with
/// `--if-none` when an enabled administrator exists).
pub async fn create_admin(args: &CreateAdminArgs) -> Result<Option<String>, BoxError> {
    check(&args.config)?;
    if args.config.sign_in != SignIn::Local {
        return Err(ConfigError::new(
            "OPENWARN_PORTAL_SIGN_IN",
            "is oidc: administrators get their role at the identity provider",
        )
        .into());
    }
    let store = Store::open(&args.config.database.url()?, 1).await?;
    if args.if_none && store.has_admin().await? {
        return Ok(None);
    }
    if !admin::valid_username(&args.username) {
        return Err("--username: 3 to 64 letters, digits, '.', '-', '_'".into());
    }
    let display_name = args.display_name.as_deref().unwrap_or(&args.username);
    if !admin::valid_display_name(display_name) {
        return Err("--display-name: 1 to 128 characters, no control characters".into());
    }
    let audit = audit::AuditLog::new(store.database().clone());
    let link = admin::create_in(
        &store,
        &audit,
        &public_url(&args.config)?,
        args.config.enrolment_validity,
        &args.username,
        display_name,
        Role::Admin,
        audit::Actor::System,
    )
    .await
    .map_err(|()| "the database refused the account")?
    .ok_or("an account with this username exists")?;
    Ok(Some(link))
}

async fn verify_audit(config: Config) -> Result<(), BoxError> {
    let store = Store::open(&config.database.url()?, 1).await?;
    let verification = audit::AuditLog::new(store.database().clone())
        .verify()
        .await?;
    println!("{verification}");
    if verification.is_intact() {
        Ok(())
    } else {
        Err("the audit log's hash chain is broken".into())
    }
}

impl openwarn_bootstrap::cli::Service for PortalService {
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

    async fn migrate(config: Config) -> Result<Vec<String>, Error> {
        let db = openwarn_db::Database::open(&config.database.url()?, 1).await?;
        Ok(db.migrate(MIGRATIONS_PG, MIGRATIONS_SQLITE).await?)
    }
}
