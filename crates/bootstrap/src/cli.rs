//! The command line every service binary shares: `<service> [serve|migrate] [settings]`, plus
//! any commands of the service's own (distribution's `run-once`).

use crate::config::TelemetryArgs;
use crate::lifecycle::RunningService;
use std::future::Future;
use std::process::ExitCode;

/// What a service crate provides so that its binary, and `openwarn`, can run it.
pub trait Service {
    const NAME: &'static str;
    type Config: clap::Args + Clone + Send + 'static;
    /// Commands beyond `serve` and `migrate`; [`NoCommands`] for none.
    type Commands: Commands<Self::Config>;
    type Error: std::error::Error + Send + Sync + 'static;

    fn telemetry(config: &Self::Config) -> &TelemetryArgs;
    /// Binds every listener and starts every task; returns once the service is serving.
    fn start(
        config: Self::Config,
    ) -> impl Future<Output = Result<RunningService, Self::Error>> + Send;
    /// Applies pending database migrations; returns the versions applied. A service that keeps
    /// no database (the proxy, distribution) has nothing to migrate.
    fn migrate(
        config: Self::Config,
    ) -> impl Future<Output = Result<Vec<String>, Self::Error>> + Send {
        let _ = config;
        async { Ok(Vec::new()) }
    }
}

/// A service's own commands, beyond `serve` and `migrate`: subcommands that each take the
/// service's settings (`C`), run to their end and exit.
pub trait Commands<C>: clap::Subcommand + Clone + Send + 'static {
    /// The settings the command was given (telemetry is set up from them).
    fn config(&self) -> &C;
    /// Runs the command; an error makes the exit code 1.
    fn run(self) -> impl Future<Output = Result<(), BoxError>> + Send;
}

/// No commands beyond `serve` and `migrate`.
#[derive(Debug, Clone, Copy, clap::Subcommand)]
pub enum NoCommands {}

impl<C> Commands<C> for NoCommands {
    fn config(&self) -> &C {
        match *self {}
    }

    async fn run(self) -> Result<(), BoxError> {
        match self {}
    }
}

/// `<service> [SETTINGS]` serves; `<service> serve [SETTINGS]` and `<service> migrate [SETTINGS]`
/// say so explicitly; `X` adds the service's own commands.
#[derive(Debug, Clone, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ServiceCli<C: clap::Args, X: clap::Subcommand = NoCommands> {
    #[command(subcommand)]
    pub command: Option<ServiceCommand<C, X>>,
    #[command(flatten)]
    pub config: C,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum ServiceCommand<C: clap::Args, X: clap::Subcommand = NoCommands> {
    /// Serve until SIGINT/SIGTERM (the default). Migrations are applied at start-up.
    Serve(C),
    /// Apply pending database migrations and exit.
    Migrate(C),
    /// The service's own commands.
    #[command(flatten)]
    Own(X),
}

/// Runs a service from its parsed command line; the process's exit code.
pub fn main<S: Service>(cli: ServiceCli<S::Config, S::Commands>) -> ExitCode {
    let command = cli.command.unwrap_or(ServiceCommand::Serve(cli.config));
    let telemetry = match &command {
        ServiceCommand::Serve(config) | ServiceCommand::Migrate(config) => S::telemetry(config),
        ServiceCommand::Own(own) => S::telemetry(own.config()),
    }
    .clone();
    execute(S::NAME, &telemetry, move || async move {
        match command {
            ServiceCommand::Serve(config) => serve(S::start(config).await?).await,
            ServiceCommand::Migrate(config) => {
                let applied = S::migrate(config).await?;
                tracing::info!(count = applied.len(), versions = ?applied, "migrations applied");
                Ok(())
            }
            ServiceCommand::Own(own) => own.run().await,
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Debug, Clone, clap::Args)]
    struct Settings {
        #[arg(long, default_value_t = 1)]
        level: u32,
    }

    #[derive(Debug, Clone, clap::Subcommand)]
    enum Own {
        /// Do it once.
        Once(Settings),
    }

    impl Commands<Settings> for Own {
        fn config(&self) -> &Settings {
            match self {
                Own::Once(settings) => settings,
            }
        }

        async fn run(self) -> Result<(), BoxError> {
            Ok(())
        }
    }

    #[derive(Debug, Parser)]
    struct Plain {
        #[command(flatten)]
        inner: ServiceCli<Settings>,
    }

    #[derive(Debug, Parser)]
    struct WithOwn {
        #[command(flatten)]
        inner: ServiceCli<Settings, Own>,
    }

    fn level<X: clap::Subcommand>(cli: &ServiceCli<Settings, X>) -> u32 {
        match &cli.command {
            None => cli.config.level,
            Some(ServiceCommand::Serve(c) | ServiceCommand::Migrate(c)) => c.level,
            Some(ServiceCommand::Own(_)) => 0,
        }
    }

    #[test]
    fn serving_is_the_default_and_migrate_is_explicit() {
        Plain::command().debug_assert();
        let cli = Plain::try_parse_from(["s", "--level", "2"]).unwrap().inner;
        assert!(cli.command.is_none());
        assert_eq!(level(&cli), 2);
        let cli = Plain::try_parse_from(["s", "serve", "--level", "3"])
            .unwrap()
            .inner;
        assert!(matches!(cli.command, Some(ServiceCommand::Serve(_))));
        assert_eq!(level(&cli), 3);
        let cli = Plain::try_parse_from(["s", "migrate"]).unwrap().inner;
        assert!(matches!(cli.command, Some(ServiceCommand::Migrate(_))));
        assert!(Plain::try_parse_from(["s", "once"]).is_err());
    }

    #[test]
    fn a_service_adds_its_own_commands() {
        WithOwn::command().debug_assert();
        let cli = WithOwn::try_parse_from(["s", "once", "--level", "4"])
            .unwrap()
            .inner;
        let Some(ServiceCommand::Own(own)) = cli.command else {
            panic!("not the own command: {:?}", cli.command);
        };
        assert_eq!(own.config().level, 4);
        let cli = WithOwn::try_parse_from(["s", "serve"]).unwrap().inner;
        assert!(matches!(cli.command, Some(ServiceCommand::Serve(_))));
        let cli = WithOwn::try_parse_from(["s", "migrate"]).unwrap().inner;
        assert!(matches!(cli.command, Some(ServiceCommand::Migrate(_))));
    }
}
