use clap::Parser;

/// OpenWarn test-result service.
#[derive(Parser)]
#[command(name = "openwarn-test-result", version)]
struct Cli {
    #[command(flatten)]
    inner: openwarn_bootstrap::cli::ServiceCli<openwarn_test_result::Config>,
}

fn main() -> std::process::ExitCode {
    openwarn_bootstrap::cli::main::<openwarn_test_result::TestResultService>(Cli::parse().inner)
}
