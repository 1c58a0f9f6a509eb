//! `openwarn up` as a child process whose output lines can be awaited, for the tests that run the
//! launcher as a user does.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A running `openwarn up`.
pub struct Up {
    pub child: Child,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
}

/// Starts `<openwarn> up` (the CLI at `exe`, e.g. `env!("CARGO_BIN_EXE_openwarn")`) on
/// `data_dir` with every port moved by `offset`.
pub fn up(exe: impl AsRef<Path>, data_dir: &Path, offset: u16) -> Up {
    up_with_env(exe, data_dir, offset, &[])
}

/// [`up`] with extra environment variables (e.g. `OTEL_EXPORTER_OTLP_ENDPOINT`), which the
/// services it starts inherit.
pub fn up_with_env(
    exe: impl AsRef<Path>,
    data_dir: &Path,
    offset: u16,
    env: &[(&str, &str)],
) -> Up {
    up_with(exe, data_dir, offset, &[], env)
}

/// [`up_with_env`] with extra arguments of `up` (e.g. `--restart`).
pub fn up_with(
    exe: impl AsRef<Path>,
    data_dir: &Path,
    offset: u16,
    args: &[&str],
    env: &[(&str, &str)],
) -> Up {
    let mut child = Command::new(exe.as_ref())
        .args(["up", "--port-offset", &offset.to_string(), "--data-dir"])
        .arg(data_dir)
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start openwarn up");
    let (tx, lines) = tokio::sync::mpsc::unbounded_channel();
    for stream in [
        Box::new(child.stdout.take().expect("stdout"))
            as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
        Box::new(child.stderr.take().expect("stderr")),
    ] {
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stream).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                let _ = tx.send(line);
            }
        });
    }
    Up { child, lines }
}

impl Up {
    /// Reads output until a line contains `needle` (at most a minute); returns everything read.
    pub async fn until(&mut self, needle: &str) -> Vec<String> {
        let mut seen = Vec::new();
        let found = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = self.lines.recv().await {
                let hit = line.contains(needle);
                seen.push(line);
                if hit {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(
            found,
            Ok(true),
            "no line with {needle:?} in:\n{}",
            seen.join("\n")
        );
        seen
    }

    /// SIGTERM to `up`; waits for it to say it stopped everything and exit; returns its status.
    #[cfg(unix)]
    pub async fn stop(mut self) -> std::process::ExitStatus {
        let pid = i32::try_from(self.child.id().expect("up runs")).expect("a pid");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        )
        .expect("signal up");
        self.until("stopped").await;
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("up exits within 30 s")
            .expect("up's status")
    }
}
