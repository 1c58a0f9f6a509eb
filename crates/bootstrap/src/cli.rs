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
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{}: cannot start the async runtime: {e}", S::NAME);
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let (migrate, config) = match cli.command {
            None => (false, cli.config),
            Some(ServiceCommand::Serve(config)) => (false, config),
            Some(ServiceCommand::Migrate(config)) => (true, config),
        };
        let _telemetry = match crate::telemetry::init(S::NAME, S::telemetry(&config)) {
            Ok(guard) => guard,
            Err(e) => {
                eprintln!("{}: {e}", S::NAME);
                return ExitCode::from(2);
            }
        };
        let result: Result<(), Box<dyn std::error::Error + Send + Sync>> =
            match migrate {
                true => match S::migrate(config).await {
                    Ok(applied) => {
                        tracing::info!(count = applied.len(), versions = ?applied, "migrations applied");
                        Ok(())
                    }
                    Err(e) => Err(e.into()),
                },
                false => match S::start(config).await {
                    Ok(running) => {
                        tracing::info!(service = S::NAME, addrs = ?running.addrs(), "serving");
                        running.run_until_signal().await.map_err(Into::into)
                    }
                    Err(e) => Err(e.into()),
                },
            };
        match result {
            Ok(()) => {
                tracing::info!("stopped");
                ExitCode::SUCCESS
            }
            Err(e) => {
                tracing::error!(error = %e, "{} failed", S::NAME);
                eprintln!("{}: {e}", S::NAME);
                ExitCode::FAILURE
            }
        }
    })
}
