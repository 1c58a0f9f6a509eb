use clap::Parser;

/// OpenWarn distribution service.
#[derive(Parser)]
#[command(name = "openwarn-distribution", version)]
struct Cli {
    #[command(flatten)]
    inner: openwarn_bootstrap::cli::ServiceCli<
        openwarn_distribution::Config,
        openwarn_distribution::Command,
    >,
}

fn main() -> std::process::ExitCode {
    openwarn_bootstrap::cli::main::<openwarn_distribution::DistributionService>(Cli::parse().inner)
}
