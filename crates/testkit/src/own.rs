//! Backends a test owns, so it can stop, crash and restart them without disturbing the shared
//! ones other tests use: a PostgreSQL cluster (`initdb` into a temporary directory, on a free
//! port) and a `redis-server` (on a free port, nothing persisted), and a TCP relay that can be
//! switched off to make a server unreachable for a while.
//!
//! `initdb` refuses to run as root: as root, the cluster is made and run as the `postgres` user
//! (`runuser -u postgres --`), in a directory that user owns.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

/// Whether `program` can be found and run (`--version`).
async fn installed(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success())
}

/// `None` with a message when `program` is missing (a failed test under `CI=true`).
async fn require(program: &str) -> Option<()> {
    if installed(program).await {
        return Some(());
    }
    assert!(
        !crate::ci(),
        "CI=true but {program} is not installed: this test needs it"
    );
    eprintln!("skipping: {program} is not installed");
    None
}

/// A number `id` prints (`-u`: this process's user id; `-u NAME`, `-g NAME`: a user's).
async fn id(args: &[&str]) -> u32 {
    let output = Command::new("id")
        .args(args)
        .output()
        .await
        .expect("run id");
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("id {args:?}: {}", String::from_utf8_lossy(&output.stderr)))
}

/// Waits until something listens on `port` (panics after `within`).
async fn listening(port: u16, within: Duration, what: &str) {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} did not listen on {port} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A PostgreSQL cluster of this test's own (trust authentication, no fsync). Stopped on drop.
pub struct Postgres {
    dir: tempfile::TempDir,
    pub port: u16,
    /// `Some("postgres")` when running as root.
    user: Option<String>,
}

impl Postgres {
    /// Creates and starts a cluster; `None` (skip, with a message) when `initdb` is missing,
    /// except under `CI=true`.
    pub async fn start() -> Option<Self> {
        require("initdb").await?;
        require("pg_ctl").await?;
        let dir = tempfile::tempdir().expect("temp dir");
        let user = (id(&["-u"]).await == 0).then(|| "postgres".to_owned());
        if let Some(user) = &user {
            let (uid, gid) = (id(&["-u", user]).await, id(&["-g", user]).await);
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .expect("give the cluster's directory to postgres");
        }
        let cluster = Self {
            port: crate::free_port(),
            user,
            dir,
        };
        cluster
            .run(
                "initdb",
                &[
                    "-D",
                    &cluster.data().display().to_string(),
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ],
            )
            .await;
        cluster.start_again().await;
        Some(cluster)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Runs a PostgreSQL program (as `postgres` when root); panics with its output on failure.
    async fn run(&self, program: &str, args: &[&str]) {
        let mut cmd = match &self.user {
            Some(user) => {
                let mut cmd = Command::new("runuser");
                cmd.args(["-u", user, "--", program]);
                cmd
            }
            None => Command::new(program),
        };
        let output = cmd
            .args(args)
            .stdin(Stdio::null())
            .output()
            .await
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        assert!(
            output.status.success(),
            "{program} {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Starts the (stopped) cluster on its port and waits until it accepts connections.
    pub async fn start_again(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("postgres.log").display().to_string();
        let data = self.data().display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D", &data, "-l", &log, "-o", &options, "-w", "-t", "60", "start",
            ],
        )
        .await;
    }

    /// Stops the cluster: `immediate` is a crash (no checkpoint, clients cut), `fast` a
    /// graceful stop that disconnects clients.
    pub async fn stop(&self, mode: &str) {
        let data = self.data().display().to_string();
        self.run("pg_ctl", &["-D", &data, "-m", mode, "-w", "stop"])
            .await;
    }

    /// The URL of database `name` on this cluster.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// A new, empty database on this cluster (dropped with the cluster).
    pub fn database(&self) -> crate::TestDatabase {
        crate::TestDatabase::postgres(&self.url("postgres"))
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.data().display().to_string();
        let mut cmd = match &self.user {
            Some(user) => {
                let mut cmd = std::process::Command::new("runuser");
                cmd.args(["-u", user, "--", "pg_ctl"]);
                cmd
            }
            None => std::process::Command::new("pg_ctl"),
        };
        let _ = cmd
            .args(["-D", &data, "-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A `redis-server` of this test's own; nothing is persisted, so a restart loses every key (as
/// a Redis without persistence does). Killed on drop.
pub struct Redis {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Redis {
    /// Starts it; `None` (skip, with a message) when `redis-server` is missing, except under
    /// `CI=true`.
    pub async fn start() -> Option<Self> {
        require("redis-server").await?;
        let mut redis = Self {
            port: crate::free_port(),
            dir: tempfile::tempdir().expect("temp dir"),
            child: None,
        };
        redis.start_again().await;
        Some(redis)
    }

    /// Starts the (stopped) server on its port and waits until it listens.
    pub async fn start_again(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        listening(self.port, Duration::from_secs(30), "redis-server").await;
    }

    /// SIGKILL: gone at once, with everything it held.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("kill redis-server");
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

/// A TCP relay to `target` that can be switched off: while off it refuses new connections
/// (accepts and closes them) and cuts the ones it relays, as an unreachable server would.
pub struct Relay {
    pub addr: SocketAddr,
    on: tokio::sync::watch::Sender<bool>,
}

impl Relay {
    pub async fn start(target: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the relay");
        let addr = listener.local_addr().expect("the relay's address");
        let (on, watch) = tokio::sync::watch::channel(true);
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !*watch.borrow() {
                    drop(inbound);
                    continue;
                }
                let mut watch = watch.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = watch.wait_for(|on| !on) => {}
                    }
                });
            }
        });
        Self { addr, on }
    }

    /// `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Off: new connections refused, open ones cut.
    pub fn off(&self) {
        self.on.send_replace(false);
    }

    /// On again.
    pub fn on(&self) {
        self.on.send_replace(true);
    }
}

/// A log file per process in `dir`, for [`crate::process::ServiceProcess`]; the lines of all of
/// them that contain `needle` (e.g. a panic).
pub fn log_lines_with(dir: &Path, needle: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
        .flat_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            std::fs::read_to_string(e.path())
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains(needle))
                .map(|l| format!("{name}: {l}"))
                .collect::<Vec<_>>()
        })
        .collect()
}
