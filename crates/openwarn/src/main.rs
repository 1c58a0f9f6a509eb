//! `openwarn`: run the whole stack on one machine (`up`), run one service (`service`), issue a
//! teleTAN (`teletan`), publish now (`publish`), play phones (`sim`, from `openwarn-sim`) and
//! benchmark (`bench`, `bench-distribution`, `bench-polling`, from `openwarn-bench`), and print
//! the configuration reference (`config-reference`). The CLI only wires these
//! together; production runs each service's own binary (`services/<name>`, deploy/Dockerfile).

mod reference;
mod up;

use anyhow::Context;
use clap::{Parser, Subcommand};
use openwarn_bootstrap::cli::ServiceCli;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "openwarn",
    version,
    about = "OpenWarn exposure-notification backend"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every service as its own process with embedded defaults (SQLite, in-memory key-value
    /// store, generated dev PKI) on the default ports, until Ctrl-C.
    Up(up::UpArgs),
    /// Run one service in this process (what `up` starts for each service).
    #[command(subcommand)]
    Service(Service),
    /// Development shortcut: issue a teleTAN with the dev PKI of `up`, bypassing the portal (no
    /// sign-in, no audit log). Officers use the portal.
    Teletan(TeletanArgs),
    /// Publish now (or as of --now) on a stack started by `openwarn up`, without waiting for the
    /// hour; prints the run's report.
    Publish(PublishArgs),
    /// Benchmark submissions end to end on PostgreSQL, fakes at the proxy, and PostgreSQL's ceiling.
    Bench(openwarn_bench::bench::BenchArgs),
    /// Benchmark distribution: one package of 1M keys, full runs streaming keys from
    /// submission on PostgreSQL (keys/s, peak RSS), and serving a published package (ours and
    /// nginx's requests/s).
    BenchDistribution(openwarn_bench::bench_distribution::BenchDistributionArgs),
    /// Benchmark the app polling its test result through the proxy, on SQLite and on
    /// PostgreSQL with Redis.
    BenchPolling(openwarn_bench::bench_polling::BenchPollingArgs),
    /// Play phones against a stack started by `openwarn up`: a scenario end to end (`run`), or
    /// a population's mixed traffic with latency per endpoint (`load`).
    Sim(openwarn_sim::SimArgs),
    /// Print the configuration reference (docs/CONFIGURATION.md): every setting of every
    /// service and of this command, written from their definitions.
    ConfigReference,
}

#[derive(Subcommand)]
enum Service {
    /// Lab results by hashed GUID.
    TestResult(Box<ServiceCli<openwarn_test_result::Config>>),
    /// Registration tokens, test results, TANs, teleTANs.
    Verification(Box<ServiceCli<openwarn_verification::Config>>),
    /// Diagnosis keys uploaded with a TAN.
    Submission(Box<ServiceCli<openwarn_submission::Config>>),
    /// The app gateway.
    Proxy(Box<ServiceCli<openwarn_proxy::Config>>),
    /// Officers: sign-in with a second factor, teleTANs, accounts, audit log
    /// (`create-admin`, `verify-audit`).
    Portal(Box<ServiceCli<openwarn_portal::Config, openwarn_portal::Command>>),
    /// Signed key packages, indexes and app configuration (`run-once` publishes and exits).
    Distribution(Box<ServiceCli<openwarn_distribution::Config, openwarn_distribution::Command>>),
}

#[derive(clap::Args)]
struct TeletanArgs {
    /// The data directory of `openwarn up` (holds the dev PKI).
    #[arg(long, env = "OPENWARN_DATA_DIR", default_value = "openwarn-data")]
    data_dir: PathBuf,
    /// gRPC endpoint of the verification service.
    #[arg(long, default_value = "https://127.0.0.1:9010")]
    verification_url: String,
}

#[derive(clap::Args)]
struct PublishArgs {
    /// The data directory of `openwarn up`.
    #[arg(long, env = "OPENWARN_DATA_DIR", default_value = "openwarn-data")]
    data_dir: PathBuf,
    /// Publish as of this time (RFC 3339) instead of now: later hours count as closed.
    #[arg(long)]
    now: Option<String>,
}

#[tokio::main(flavor = "current_thread")]
async fn publish(args: PublishArgs) -> anyhow::Result<()> {
    let stack = openwarn_sim::stack::StackFile::read(&args.data_dir)?;
    if let Some(now) = &args.now {
        openwarn_distribution::parse_now(now).map_err(anyhow::Error::msg)?;
    }
    let report =
        openwarn_sim::stack::publish(&stack.distribution_admin, args.now.as_deref()).await?;
    println!("{report}");
    Ok(())
}

/// Set by `up` on its children: a service that outlives `up` (killed with SIGKILL, so it could not
/// stop them) would hold its ports for ever; on Linux the kernel sends it SIGTERM instead. Other
/// systems have no such request (`prctl(PR_SET_PDEATHSIG)`): there `up` stops its children
/// itself, which it cannot do when SIGKILLed.
const EXIT_WITH_PARENT: &str = "OPENWARN_EXIT_WITH_PARENT";

/// Asks the kernel for SIGTERM when the parent dies, if `up` asked for it. `false` when the parent
/// has already died: the process then exits at once, with status 1.
#[cfg(target_os = "linux")]
#[allow(
    clippy::disallowed_methods,
    reason = "OPENWARN_EXIT_WITH_PARENT is the supervision handshake `up` puts in its own \
              children's environment, never a user setting for clap; it is checked first in \
              `main`, before anything starts"
)]
fn exit_with_parent() -> bool {
    if std::env::var_os(EXIT_WITH_PARENT).is_some() {
        let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM);
        // The parent may have died before that call.
        if nix::unistd::getppid() == nix::unistd::Pid::from_raw(1) {
            return false;
        }
    }
    true
}

#[cfg(not(target_os = "linux"))]
fn exit_with_parent() -> bool {
    let _ = EXIT_WITH_PARENT;
    true
}

fn main() -> ExitCode {
    if !exit_with_parent() {
        // Nothing has started yet: returning is as immediate as exiting, and the status is 1.
        return ExitCode::FAILURE;
    }
    match Cli::parse().command {
        Command::Service(Service::TestResult(cli)) => {
            openwarn_bootstrap::cli::main::<openwarn_test_result::TestResultService>(*cli)
        }
        Command::Service(Service::Verification(cli)) => {
            openwarn_bootstrap::cli::main::<openwarn_verification::VerificationService>(*cli)
        }
        Command::Service(Service::Submission(cli)) => {
            openwarn_bootstrap::cli::main::<openwarn_submission::SubmissionService>(*cli)
        }
        Command::Service(Service::Proxy(cli)) => {
            openwarn_bootstrap::cli::main::<openwarn_proxy::ProxyService>(*cli)
        }
        Command::Service(Service::Portal(cli)) => {
            openwarn_bootstrap::cli::main::<openwarn_portal::PortalService>(*cli)
        }
        Command::Service(Service::Distribution(cli)) => {
            openwarn_bootstrap::cli::main::<openwarn_distribution::DistributionService>(*cli)
        }
        Command::Publish(args) => report(publish(args)),
        Command::Up(args) => report(up::run(args)),
        Command::Teletan(args) => report(teletan(args)),
        Command::Bench(args) => report(openwarn_bench::bench::run(args)),
        Command::BenchDistribution(args) => report(
            std::env::current_exe()
                .context("cannot find the openwarn executable")
                .and_then(|exe| {
                    openwarn_bench::bench_distribution::run(
                        args,
                        &openwarn_bench::Launcher::cli(exe),
                    )
                }),
        ),
        Command::BenchPolling(args) => report(openwarn_bench::bench_polling::run(args)),
        Command::Sim(args) => report(openwarn_sim::run(args)),
        Command::ConfigReference => {
            use clap::CommandFactory;
            print!("{}", reference::render(&Cli::command()));
            ExitCode::SUCCESS
        }
    }
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("openwarn: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn teletan(args: TeletanArgs) -> anyhow::Result<()> {
    let issued =
        openwarn_sim::portal::issue_teletan(&args.data_dir, &args.verification_url).await?;
    println!("{}", issued.tele_tan);
    eprintln!("{}", valid_until(issued.expires_at, &chrono::Local));
    Ok(())
}

/// `valid until 2026-03-01 14:05:09 +01:00 (2026-03-01 13:05:09 UTC)`: the expiry in the time
/// zone `tz` (the machine's, for the user) and in UTC.
fn valid_until<Tz: chrono::TimeZone>(expires_at: i64, tz: &Tz) -> String
where
    Tz::Offset: std::fmt::Display,
{
    match chrono::DateTime::from_timestamp(expires_at, 0) {
        Some(utc) => format!(
            "valid until {} ({} UTC)",
            utc.with_timezone(tz).format("%Y-%m-%d %H:%M:%S %:z"),
            utc.format("%Y-%m-%d %H:%M:%S")
        ),
        None => format!("valid until {expires_at} (unix seconds)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_expiry_is_shown_in_local_time_and_utc() {
        let at = 1_772_370_309; // 2026-03-01 13:05:09 UTC
        let berlin = chrono::FixedOffset::east_opt(3600).unwrap();
        assert_eq!(
            valid_until(at, &berlin),
            "valid until 2026-03-01 14:05:09 +01:00 (2026-03-01 13:05:09 UTC)"
        );
        let utc = valid_until(at, &chrono::Utc);
        assert_eq!(
            utc,
            "valid until 2026-03-01 13:05:09 +00:00 (2026-03-01 13:05:09 UTC)"
        );
    }

    /// docs/CONFIGURATION.md is what `openwarn config-reference` prints for these definitions.
    #[test]
    fn the_configuration_reference_is_current() {
        use clap::CommandFactory;
        let committed = include_str!("../../../docs/CONFIGURATION.md");
        let current = reference::render(&Cli::command());
        if committed != current {
            let line = committed
                .lines()
                .zip(current.lines())
                .position(|(a, b)| a != b)
                .unwrap_or_else(|| committed.lines().count().min(current.lines().count()));
            panic!(
                "docs/CONFIGURATION.md is out of date (first difference at line {}: {:?}); \
                 regenerate it with `{}`",
                line + 1,
                current.lines().nth(line).unwrap_or("<end of file>"),
                reference::REGENERATE
            );
        }
        // Every service's settings are in it, e.g. one of each.
        for expected in [
            "| `--database-url` | `OPENWARN_DATABASE_URL` |",
            "`OPENWARN_SIGNING_KEYS`",
            "## `openwarn service distribution run-once`",
            "## `openwarn up`",
        ] {
            assert!(current.contains(expected), "{expected} missing");
        }
    }

    /// Every argument whose environment variable can carry a secret (a password in a URL, a
    /// key) is shown in `--help` without its value, in every subcommand.
    #[test]
    fn secrets_are_not_shown_in_help() {
        use clap::CommandFactory;
        // Secrets, and the URLs of stores, which may carry a password.
        fn secret(env: &str) -> bool {
            !env.ends_with("_FILE")
                && (["SECRET", "PASSWORD"].iter().any(|s| env.contains(s))
                    || ["DATABASE_URL", "POSTGRES_URL", "REDIS_URL", "KV_URL"]
                        .iter()
                        .any(|s| env.ends_with(s)))
        }
        fn check(command: &clap::Command, path: &str, checked: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let Some(env) = arg.get_env().and_then(|e| e.to_str()) else {
                    continue;
                };
                if secret(env) {
                    assert!(
                        arg.is_hide_env_values_set(),
                        "{path} --{}: {env} is shown in --help",
                        arg.get_id()
                    );
                    checked.push(format!("{path} {env}"));
                }
            }
            for sub in command.get_subcommands() {
                check(sub, &format!("{path} {}", sub.get_name()), checked);
            }
        }
        let mut checked = Vec::new();
        check(&Cli::command(), "openwarn", &mut checked);
        for expected in [
            "openwarn bench OPENWARN_BENCH_POSTGRES_URL",
            "openwarn bench OPENWARN_BENCH_REDIS_URL",
            "openwarn bench-distribution OPENWARN_BENCH_POSTGRES_URL",
            "openwarn bench-polling OPENWARN_BENCH_POSTGRES_URL",
            "openwarn bench-polling OPENWARN_BENCH_REDIS_URL",
            "openwarn up OPENWARN_UP_POSTGRES_URL",
            "openwarn up OPENWARN_UP_REDIS_URL",
        ] {
            assert!(checked.iter().any(|c| c == expected), "{checked:#?}");
        }
    }
}
