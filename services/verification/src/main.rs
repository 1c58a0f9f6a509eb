use clap::Parser;

/// OpenWarn verification service.
#[derive(Parser)]
#[command(name = "openwarn-verification", version)]
struct Cli {
    #[command(flatten)]
    inner: openwarn_bootstrap::cli::ServiceCli<openwarn_verification::Config>,
}

fn main() -> std::process::ExitCode {
    openwarn_bootstrap::cli::main::<openwarn_verification::VerificationService>(Cli::parse().inner)
}
