//! The command line every service binary shares: `<service> [serve|migrate] [settings]`.

use crate::config::TelemetryArgs;
use crate::lifecycle::RunningService;
use std::future::Future;
use std::process::ExitCode;

/// What a service crate provides so that its binary, and `openwarn`, can run it.
pub trait Service {
    const NAME: &'static str;
    type Config: clap::Args + Clone + Send + 'static;
    type Error: std::error::Error + Send + Sync + 'static;

    fn telemetry(config: &Self::Config) -> &TelemetryArgs;
    /// Binds every listener and starts every task; returns once the service is serving.
    fn start(
        config: Self::Config,
    ) -> impl Future<Output = Result<RunningService, Self::Error>> + Send;
    /// Applies pending database migrations; returns the versions applied.
    fn migrate(
        config: Self::Config,
    ) -> impl Future<Output = Result<Vec<String>, Self::Error>> + Send;
}

/// `<service> [SETTINGS]` serves; `<service> serve [SETTINGS]` and `<service> migrate [SETTINGS]`
/// say so explicitly.
#[derive(Debug, Clone, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ServiceCli<C: clap::Args> {
    #[command(subcommand)]
    pub command: Option<ServiceCommand<C>>,
    #[command(flatten)]
    pub config: C,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum ServiceCommand<C: clap::Args> {
    /// Serve until SIGINT/SIGTERM (the default). Migrations are applied at start-up.
    Serve(C),
    /// Apply pending database migrations and exit.
    Migrate(C),
}

/// Runs a service from its parsed command line; the process's exit code.
pub fn main<S: Service>(cli: ServiceCli<S::Config>) -> ExitCode {
    let (migrate, config) = match cli.command {
        None => (false, cli.config),
        Some(ServiceCommand::Serve(config)) => (false, config),
        Some(ServiceCommand::Migrate(config)) => (true, config),
    };
    let telemetry = S::telemetry(&config).clone();
    execute(S::NAME, &telemetry, move || async move {
        if migrate {
            let applied = S::migrate(config).await?;
            tracing::info!(count = applied.len(), versions = ?applied, "migrations applied");
            Ok(())
        } else {
            serve(S::start(config).await?).await
        }
    })
}

/// Serves a started service until SIGINT/SIGTERM.
pub async fn serve(running: RunningService) -> Result<(), BoxError> {
    tracing::info!(service = running.name(), addrs = ?running.addrs(), "serving");
    running.run_until_signal().await?;
    Ok(())
}

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The frame of every service command: an async runtime, telemetry, then `job`; failures are
/// logged and printed, and become a non-zero exit code (2 for telemetry set-up, 1 otherwise).
pub fn execute<F, Fut>(name: &'static str, telemetry: &TelemetryArgs, job: F) -> ExitCode
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<(), BoxError>>,
{
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{name}: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let _telemetry = match crate::telemetry::init(name, telemetry) {
            Ok(guard) => guard,
            Err(e) => {
                eprintln!("{name}: {e}");
                return ExitCode::from(2);
            }
        };
        match job().await {
            Ok(()) => {
                tracing::info!("stopped");
                ExitCode::SUCCESS
            }
            Err(e) => {
                tracing::error!(error = %e, "{name} failed");
                eprintln!("{name}: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
