//! Shared by the tests that run the launcher: `openwarn up` as a child process whose output
//! lines can be awaited.

use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub struct Stack {
    pub child: Child,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
}

/// Starts `openwarn up` on `data_dir` with every port moved by `offset`.
pub async fn up(data_dir: &std::path::Path, offset: u16) -> Stack {
    let mut child = Command::new(env!("CARGO_BIN_EXE_openwarn"))
        .args(["up", "--port-offset", &offset.to_string(), "--data-dir"])
        .arg(data_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let (tx, lines) = tokio::sync::mpsc::unbounded_channel();
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stream).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                let _ = tx.send(line);
            }
        });
    }
    Stack { child, lines }
}

impl Stack {
    /// Reads output until a line contains `needle`; returns everything read.
    /// SIGTERM to `up`; waits for it to say it stopped everything and exit; returns its status.
    pub async fn stop(mut self) -> std::process::ExitStatus {
        let pid = i32::try_from(self.child.id().unwrap()).unwrap();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        self.until("stopped").await;
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .unwrap()
            .unwrap()
    }

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
}
