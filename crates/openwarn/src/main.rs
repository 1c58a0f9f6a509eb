//! `openwarn`: run the whole stack on one machine (`up`), run one service (`service`), issue a
//! teleTAN (`teletan`).

mod bench;
mod bench_distribution;
mod cpu;
mod sim;
mod up;

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
    /// Issue a teleTAN (as the portal will), using the dev PKI of `up`.
    Teletan(TeletanArgs),
    /// Publish now (or as of --now) on a stack started by `openwarn up`, without waiting for the
    /// hour; prints the run's report.
    Publish(PublishArgs),
    /// Benchmark submissions end to end on PostgreSQL, fakes at the proxy, and PostgreSQL's ceiling.
    Bench(bench::BenchArgs),
    /// Benchmark distribution: one package of 1M keys, and full runs streaming keys from
    /// submission on PostgreSQL (keys/s, peak RSS).
    BenchDistribution(bench_distribution::BenchDistributionArgs),
    /// Play phones against a stack started by `openwarn up`: a scenario end to end (`run`), or
    /// a population's mixed traffic with latency per endpoint (`load`).
    Sim(sim::SimArgs),
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
    /// Signed key packages, indexes and app configuration (`run-once` publishes and exits).
    Distribution(Box<openwarn_distribution::Cli>),
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
    let stack = up::StackFile::read(&args.data_dir)?;
    if let Some(now) = &args.now {
        openwarn_distribution::parse_now(now).map_err(anyhow::Error::msg)?;
    }
    let report = up::publish(&stack.distribution_admin, args.now.as_deref()).await?;
    println!("{report}");
    Ok(())
}

/// Set by `up` on its children: a service that outlives `up` (killed with SIGKILL, so it could not
/// stop them) would hold its ports for ever; the kernel sends it SIGTERM instead.
const EXIT_WITH_PARENT: &str = "OPENWARN_EXIT_WITH_PARENT";

fn exit_with_parent() {
    if std::env::var_os(EXIT_WITH_PARENT).is_some() {
        let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM);
        // The parent may have died before that call.
        if nix::unistd::getppid() == nix::unistd::Pid::from_raw(1) {
            std::process::exit(1);
        }
    }
}

fn main() -> ExitCode {
    exit_with_parent();
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
        Command::Service(Service::Distribution(cli)) => openwarn_distribution::main(*cli),
        Command::Publish(args) => report(publish(args)),
        Command::Up(args) => report(up::run(args)),
        Command::Teletan(args) => report(teletan(args)),
        Command::Bench(args) => report(bench::run(args)),
        Command::BenchDistribution(args) => report(bench_distribution::run(args)),
        Command::Sim(args) => report(sim::main(args)),
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
    let (tele_tan, expires_at) = up::issue_teletan(&args.data_dir, &args.verification_url).await?;
    println!("{tele_tan}");
    eprintln!("valid until {expires_at} (unix seconds)");
    Ok(())
}
