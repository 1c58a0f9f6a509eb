//! Services as their own `openwarn service <name>` processes (the CLI at a path the test names,
//! e.g. `env!("CARGO_BIN_EXE_openwarn")`), each on ports of its own, which a test can kill
//! (SIGKILL or SIGTERM) and start again on the same ports with the same arguments.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::process::{Child, Command};

/// The ports of one service: the public HTTP port, gRPC (unused by the proxy) and admin.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub http: u16,
    pub grpc: u16,
    pub admin: u16,
}

impl Ports {
    /// Three loopback ports free at the time of the call.
    pub fn new() -> Self {
        Self {
            http: crate::free_port(),
            grpc: crate::free_port(),
            admin: crate::free_port(),
        }
    }

    pub fn admin_addr(&self) -> SocketAddr {
        ([127, 0, 0, 1], self.admin).into()
    }

    /// `http://127.0.0.1:<http>`.
    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http)
    }

    /// `https://127.0.0.1:<http>` (a port only internal services call).
    pub fn https_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.http)
    }

    /// `https://127.0.0.1:<grpc>`.
    pub fn grpc_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.grpc)
    }
}

impl Default for Ports {
    fn default() -> Self {
        Self::new()
    }
}

/// One service process, started again on demand with the same command line.
pub struct ServiceProcess {
    pub name: &'static str,
    pub ports: Ports,
    exe: PathBuf,
    args: Vec<String>,
    log: Option<PathBuf>,
    child: Option<Child>,
}

impl ServiceProcess {
    /// Starts `<exe> service <name>` on `ports` with the TLS files of `name` from `pki`, logging
    /// at WARN (to the test's stderr, or appended to `log` when given), and `extra` arguments.
    pub fn start(
        exe: impl AsRef<Path>,
        name: &'static str,
        ports: Ports,
        pki: &openwarn_mtls::DevPki,
        extra: &[String],
        log: Option<PathBuf>,
    ) -> Self {
        let mut args = vec![
            "--http-addr".to_owned(),
            format!("127.0.0.1:{}", ports.http),
            "--admin-addr".to_owned(),
            format!("127.0.0.1:{}", ports.admin),
            "--log".to_owned(),
            "warn".to_owned(),
        ];
        // Services with an internal gRPC port (the proxy, the portal and distribution have none).
        if !matches!(name, "proxy" | "portal" | "distribution") {
            args.extend([
                "--grpc-addr".to_owned(),
                format!("127.0.0.1:{}", ports.grpc),
            ]);
        }
        args.extend(pki.service_args(name));
        args.extend(extra.iter().cloned());
        let mut process = Self {
            name,
            ports,
            exe: exe.as_ref().to_owned(),
            args,
            log,
            child: None,
        };
        process.spawn();
        process
    }

    /// Starts the process (again).
    pub fn spawn(&mut self) {
        let mut cmd = Command::new(&self.exe);
        cmd.args(["service", self.name])
            .args(&self.args)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        if let Some(log) = &self.log {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .expect("open the service's log file");
            cmd.stdout(Stdio::null()).stderr(file);
        }
        self.child = Some(cmd.spawn().expect("start the service"));
    }

    /// Waits until `/readyz` answers 200 (panics, with the end of its log, when the process
    /// exits first or after a minute).
    pub async fn ready(&mut self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let failed = loop {
            if wait_ready(self.ports.admin_addr(), Duration::from_millis(500)).await {
                break None;
            }
            if self.exited() {
                break Some("it exited");
            }
            if tokio::time::Instant::now() > deadline {
                break Some("60 s");
            }
        };
        if let Some(why) = failed {
            let log = self
                .log
                .as_ref()
                .and_then(|log| std::fs::read_to_string(log).ok())
                .unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            panic!(
                "{} did not become ready ({why}); its log ends:\n{}",
                self.name,
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    }

    /// [`Self::spawn`], then [`Self::ready`].
    pub async fn restart(&mut self) {
        self.spawn();
        self.ready().await;
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// SIGKILL: the process gets no chance to finish anything. Waits until it is gone.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("kill the service");
        }
    }

    /// SIGTERM, then waits (at most 30 s) for the exit; returns its status.
    #[cfg(unix)]
    pub async fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("the service runs");
        signal(&child, nix::sys::signal::Signal::SIGTERM);
        tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .unwrap_or_else(|_| panic!("{} did not stop within 30 s of SIGTERM", self.name))
            .expect("the service's exit status")
    }

    /// Whether the process has exited (without waiting).
    pub fn exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_none_or(|c| c.try_wait().ok().flatten().is_some())
    }
}

/// Sends `signal` to a child that has not been waited for.
#[cfg(unix)]
pub fn signal(child: &Child, signal: nix::sys::signal::Signal) {
    if let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
    }
}

/// Polls `http://<admin>/readyz` until it answers 200 (true) or `within` has passed (false).
pub async fn wait_ready(admin: SocketAddr, within: Duration) -> bool {
    let client = crate::http_client();
    let url = format!("http://{admin}/readyz");
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let answered = tokio::time::timeout(Duration::from_secs(2), client.get(&url).send()).await;
        if matches!(answered, Ok(Ok(r)) if r.status().is_success()) {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
