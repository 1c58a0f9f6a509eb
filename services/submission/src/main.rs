use clap::Parser;

/// OpenWarn submission service.
#[derive(Parser)]
#[command(name = "openwarn-submission", version)]
struct Cli {
    #[command(flatten)]
    inner: openwarn_bootstrap::cli::ServiceCli<openwarn_submission::Config>,
}

fn main() -> std::process::ExitCode {
    openwarn_bootstrap::cli::main::<openwarn_submission::SubmissionService>(Cli::parse().inner)
}
