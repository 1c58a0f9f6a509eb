use clap::Parser;

/// OpenWarn distribution service.
#[derive(Parser)]
#[command(name = "openwarn-distribution", version)]
struct Cli {
    #[command(flatten)]
    inner: openwarn_distribution::Cli,
}

fn main() -> std::process::ExitCode {
    openwarn_distribution::main(Cli::parse().inner)
}
