//! The benchmarks behind `openwarn bench`, `openwarn bench-distribution` and `openwarn
//! bench-polling` (numbers and how to read them: docs/PERFORMANCE.md). They start services
//! in-process or as processes of the CLI ([`Launcher`]), so this crate, unlike the simulator,
//! links the services. [`load`] is their HTTP load client.

pub mod bench;
pub mod bench_distribution;
pub mod bench_polling;
pub mod cpu;
pub mod load;
pub mod serving;

use std::path::PathBuf;

/// How a benchmark starts a service as its own process: `<program> <prefix…> <service> …`. For
/// the `openwarn` CLI that is `openwarn service <name>` ([`Launcher::cli`]).
#[derive(Debug, Clone)]
pub struct Launcher {
    pub program: PathBuf,
    pub prefix: Vec<String>,
}

impl Launcher {
    /// `<program> service <name>`: the `openwarn` CLI at `program`.
    #[must_use]
    pub fn cli(program: PathBuf) -> Self {
        Self {
            program,
            prefix: vec!["service".to_owned()],
        }
    }

    /// The command that runs `service`; its arguments follow.
    #[must_use]
    pub fn command(&self, service: &str) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(&self.program);
        command.args(&self.prefix).arg(service);
        command
    }
}
