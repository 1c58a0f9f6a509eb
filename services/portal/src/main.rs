use clap::Parser;

/// OpenWarn portal: officers sign in with a second factor and issue teleTANs.
#[derive(Parser)]
#[command(name = "openwarn-portal", version)]
struct Cli {
    #[command(flatten)]
    inner: openwarn_bootstrap::cli::ServiceCli<openwarn_portal::Config, openwarn_portal::Command>,
}

fn main() -> std::process::ExitCode {
    openwarn_bootstrap::cli::main::<openwarn_portal::PortalService>(Cli::parse().inner)
}
