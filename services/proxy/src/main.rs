use clap::Parser;

/// OpenWarn proxy (the app gateway).
#[derive(Parser)]
#[command(name = "openwarn-proxy", version)]
struct Cli {
    #[command(flatten)]
    inner: openwarn_bootstrap::cli::ServiceCli<openwarn_proxy::Config>,
}

fn main() -> std::process::ExitCode {
    openwarn_bootstrap::cli::main::<openwarn_proxy::ProxyService>(Cli::parse().inner)
}
