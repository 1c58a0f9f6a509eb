//! `openwarn up`: every service as its own child process, with embedded defaults. A service that
//! dies stops the stack — or, with `--restart`, is started again after a pause (1 s, doubling to
//! 30 s while it keeps dying within a minute). Each child's pid is in `<data dir>/pids/`.
//!
//! Platforms: on Linux each child also asks the kernel for SIGTERM when `up` dies
//! (`OPENWARN_EXIT_WITH_PARENT`, see `main.rs`), so even a SIGKILLed `up` leaves no service
//! behind. On other Unix systems `up` stops its children itself (Ctrl-C, SIGTERM, a service
//! that dies, an error), but children of an `up` killed with SIGKILL keep running.

use anyhow::{Context, bail};
use openwarn_sim::stack::{PUBLIC_KEY_FILE, StackFile};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::process::{Child, Command};

/// Every name the dev PKI issues a certificate for (services, and callers such as the CLI).
pub const PKI_NAMES: &[&str] = &[
    "proxy",
    "verification",
    "submission",
    "test-result",
    "portal",
    "distribution",
    "lab",
];

#[derive(clap::Args)]
pub struct UpArgs {
    /// Where the SQLite files and the generated dev PKI live.
    #[arg(long, env = "OPENWARN_DATA_DIR", default_value = "openwarn-data")]
    pub data_dir: PathBuf,
    /// Added to every default port (to run a second stack beside the first).
    #[arg(long, default_value_t = 0)]
    pub port_offset: u16,
    /// Log format of the services: `text` for a terminal, `json` as in production.
    #[arg(long, default_value = "text")]
    pub log_format: String,
    /// Run on PostgreSQL instead of SQLite files: the server (a user that may create databases)
    /// where each service gets its own database, `<prefix>_<service>`, created if missing and
    /// kept between runs.
    #[arg(long, env = "OPENWARN_UP_POSTGRES_URL", hide_env_values = true)]
    pub postgres_url: Option<String>,
    /// The prefix of the services' database names on `--postgres-url` (letters, digits, `_`).
    #[arg(long, env = "OPENWARN_UP_POSTGRES_PREFIX", default_value = "openwarn")]
    pub postgres_prefix: String,
    /// Share short-lived state through this Redis (each service under its own namespace) instead
    /// of each process's memory.
    #[arg(long, env = "OPENWARN_UP_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// Start a service that exits again (after 1 s, doubling up to 30 s while it keeps exiting
    /// within a minute) instead of stopping the whole stack.
    #[arg(long, env = "OPENWARN_UP_RESTART")]
    pub restart: bool,
}

/// Where the services keep their data: a database URL per service, and the key-value store.
struct Backends {
    databases: std::collections::BTreeMap<&'static str, String>,
    kv: String,
}

impl Backends {
    /// SQLite files in the data directory (or a database each on `postgres`: server URL and name
    /// prefix), and `redis` or each process's memory.
    async fn new(
        specs: &[Spec],
        data_dir: &Path,
        postgres: Option<(&str, &str)>,
        redis: Option<&str>,
    ) -> anyhow::Result<Self> {
        let mut databases = std::collections::BTreeMap::new();
        for spec in specs.iter().filter(|s| s.database) {
            let url = match postgres {
                None => format!(
                    "sqlite://{}",
                    data_dir.join(format!("{}.db", spec.name)).display()
                ),
                Some((server, prefix)) => {
                    let (server, name) = (
                        server.to_owned(),
                        format!("{prefix}_{}", spec.name.replace('-', "_")),
                    );
                    tokio::task::spawn_blocking(move || {
                        openwarn_db::ensure_database(&server, &name)
                    })
                    .await?
                    .with_context(|| {
                        format!(
                            "cannot create the database of {} (OPENWARN_UP_POSTGRES_URL, \
                             OPENWARN_UP_POSTGRES_PREFIX)",
                            spec.name
                        )
                    })?
                }
            };
            databases.insert(spec.name, url);
        }
        Ok(Self {
            databases,
            kv: redis.unwrap_or("memory://").to_owned(),
        })
    }
}

/// The first pause before a service that exited is started again.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest pause.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A service that ran this long before it exited is started again after the first pause.
const STABLE_AFTER: Duration = Duration::from_secs(60);

/// One service of the stack: its name and ports (`grpc: None` for a service without gRPC).
struct Spec {
    name: &'static str,
    http: u16,
    grpc: Option<u16>,
    database: bool,
    /// Takes `--kv-url`.
    kv: bool,
    extra: Vec<String>,
}

impl Spec {
    fn admin(&self) -> u16 {
        self.http + 1
    }
}

struct Running<'a> {
    spec: &'a Spec,
    child: Child,
    started: tokio::time::Instant,
    /// The pause before starting it again should it exit soon.
    backoff: Duration,
}

impl<'a> Running<'a> {
    /// Starts the service, writes its pid to `<data dir>/pids/<name>.pid` and says so.
    fn start(spec: &'a Spec, how: &How<'_>) -> anyhow::Result<Self> {
        let child = how
            .command(spec)
            .spawn()
            .with_context(|| format!("cannot start {}", spec.name))?;
        let pid = child.id().unwrap_or(0);
        let pids = how.data_dir.join("pids");
        std::fs::create_dir_all(&pids)
            .and_then(|()| {
                std::fs::write(pids.join(format!("{}.pid", spec.name)), format!("{pid}\n"))
            })
            .with_context(|| {
                format!(
                    "cannot write the pid of {} in {}",
                    spec.name,
                    pids.display()
                )
            })?;
        println!("started {} (pid {pid})", spec.name);
        Ok(Self {
            spec,
            child,
            started: tokio::time::Instant::now(),
            backoff: FIRST_BACKOFF,
        })
    }
}

/// How every service is started: the executable, the data directory, the backends, the PKI, the
/// log format.
struct How<'a> {
    exe: &'a Path,
    data_dir: &'a Path,
    backends: &'a Backends,
    pki: &'a openwarn_mtls::DevPki,
    log_format: &'a str,
}

impl How<'_> {
    fn command(&self, spec: &Spec) -> Command {
        command(self.exe, spec, self.backends, self.pki, self.log_format)
    }
}

/// Where `up` keeps the distribution service's dev material.
pub struct DistributionKeys {
    /// PKCS#8 PEM signing key (mode 0600).
    pub signing_key: PathBuf,
    /// The public key phones verify packages with (SPKI PEM).
    pub public_key: PathBuf,
    /// The secret padding keys are derived from (mode 0600).
    pub padding_secret: PathBuf,
}

impl DistributionKeys {
    pub fn paths(data_dir: &Path) -> Self {
        Self {
            signing_key: data_dir.join("distribution").join("signing-key.pem"),
            public_key: data_dir.join(PUBLIC_KEY_FILE),
            padding_secret: data_dir.join("distribution").join("padding-secret"),
        }
    }

    /// Generates whatever is missing: an ECDSA P-256 signing key with its public key, and a
    /// padding secret.
    pub fn ensure(data_dir: &Path) -> anyhow::Result<Self> {
        let keys = Self::paths(data_dir);
        std::fs::create_dir_all(data_dir.join("distribution"))?;
        let private = |path: &Path, contents: &str| -> anyhow::Result<()> {
            use std::io::Write;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            options
                .open(path)
                .and_then(|mut f| f.write_all(contents.as_bytes()))
                .with_context(|| format!("cannot write {}", path.display()))
        };
        if !keys.signing_key.exists() || !keys.public_key.exists() {
            let _ = std::fs::remove_file(&keys.signing_key);
            let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
            private(&keys.signing_key, &pair.serialize_pem())?;
            std::fs::write(&keys.public_key, pair.public_key_pem())?;
        }
        if !keys.padding_secret.exists() {
            private(
                &keys.padding_secret,
                &hex::encode(rand::random::<[u8; 32]>()),
            )?;
        }
        Ok(keys)
    }
}

fn specs(offset: u16, data_dir: &Path) -> anyhow::Result<Vec<Spec>> {
    let port = |p: u16| {
        p.checked_add(offset)
            .context("--port-offset moves a port past 65535")
    };
    Ok(vec![
        Spec {
            name: "test-result",
            http: port(8030)?,
            grpc: Some(port(9030)?),
            database: true,
            kv: false,
            extra: vec!["--lab-insecure-http".into()],
        },
        Spec {
            name: "verification",
            http: port(8010)?,
            grpc: Some(port(9010)?),
            database: true,
            kv: true,
            extra: vec![
                "--test-result-url".into(),
                format!("https://127.0.0.1:{}", port(9030)?),
            ],
        },
        Spec {
            name: "submission",
            http: port(8020)?,
            grpc: Some(port(9020)?),
            database: true,
            kv: false,
            extra: vec![
                "--verification-url".into(),
                format!("https://127.0.0.1:{}", port(9010)?),
            ],
        },
        Spec {
            name: "proxy",
            http: port(8000)?,
            grpc: None,
            database: false,
            kv: true,
            extra: vec![
                "--verification-http-url".into(),
                format!("https://127.0.0.1:{}", port(8010)?),
                "--submission-http-url".into(),
                format!("https://127.0.0.1:{}", port(8020)?),
                // As behind an ingress: `openwarn sim` plays many phones, each with its own
                // address, so the per-client rate limit applies per phone.
                "--client-address-header".into(),
                "x-forwarded-for".into(),
            ],
        },
        Spec {
            name: "portal",
            http: port(8040)?,
            grpc: None,
            database: true,
            kv: false,
            extra: vec![
                "--public-url".into(),
                format!("http://127.0.0.1:{}", port(8040)?),
                "--verification-url".into(),
                format!("https://127.0.0.1:{}", port(9010)?),
            ],
        },
        {
            let keys = DistributionKeys::paths(data_dir);
            Spec {
                name: "distribution",
                http: port(8050)?,
                grpc: None,
                database: false,
                kv: true,
                extra: vec![
                    "--submission-url".into(),
                    format!("https://127.0.0.1:{}", port(9020)?),
                    "--store-url".into(),
                    data_dir.join("cdn").display().to_string(),
                    "--signing-keys".into(),
                    format!("v1={}", keys.signing_key.display()),
                    "--padding-secret-file".into(),
                    keys.padding_secret.display().to_string(),
                    "--manual-runs".into(),
                    "true".into(),
                ],
            }
        },
    ])
}

fn command(
    exe: &Path,
    spec: &Spec,
    backends: &Backends,
    pki: &openwarn_mtls::DevPki,
    log_format: &str,
) -> Command {
    let mut cmd = Command::new(exe);
    cmd.arg("service")
        .arg(spec.name)
        .args(["--http-addr", &format!("127.0.0.1:{}", spec.http)])
        .args(["--admin-addr", &format!("127.0.0.1:{}", spec.admin())]);
    if let Some(grpc) = spec.grpc {
        cmd.args(["--grpc-addr", &format!("127.0.0.1:{grpc}")]);
    }
    if let Some(url) = backends.databases.get(spec.name) {
        cmd.args(["--database-url", url]);
    }
    if spec.kv {
        cmd.args(["--kv-url", &backends.kv]);
    }
    cmd.args(pki.service_args(spec.name))
        .args(["--log-format", log_format])
        .args(&spec.extra)
        .stdin(Stdio::null())
        .env("OPENWARN_EXIT_WITH_PARENT", "1")
        .kill_on_drop(true);
    cmd
}

#[tokio::main]
pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}",
            args.data_dir.display()
        )
    })?;
    let data_dir = std::fs::canonicalize(&args.data_dir)?;
    let pki = openwarn_mtls::DevPki::ensure(&data_dir.join("pki"), PKI_NAMES)?;
    let exe = std::env::current_exe().context("cannot find the openwarn executable")?;
    DistributionKeys::ensure(&data_dir)?;
    let specs = specs(args.port_offset, &data_dir)?;
    let backends = Backends::new(
        &specs,
        &data_dir,
        args.postgres_url
            .as_deref()
            .map(|url| (url, args.postgres_prefix.as_str())),
        args.redis_url.as_deref(),
    )
    .await?;
    let port = |p: u16| p + args.port_offset;
    let stack = StackFile {
        app: format!("http://127.0.0.1:{}", port(8000)),
        lab: format!("http://127.0.0.1:{}", port(8030)),
        cdn: format!("http://127.0.0.1:{}", port(8050)),
        distribution_admin: format!("http://127.0.0.1:{}", port(8051)),
        verification_grpc: format!("https://127.0.0.1:{}", port(9010)),
    };
    stack
        .write(&data_dir)
        .with_context(|| format!("cannot write {}", StackFile::path(&data_dir).display()))?;

    // One at a time, each ready before the next starts, so that a service's first calls find
    // what it depends on listening (distribution's start-up run streams from submission at once).
    let how = How {
        exe: &exe,
        data_dir: &data_dir,
        backends: &backends,
        pki: &pki,
        log_format: &args.log_format,
    };
    let mut running = Vec::new();
    let mut started: anyhow::Result<()> = Ok(());
    for spec in &specs {
        running.push(Running::start(spec, &how)?);
        started = tokio::select! {
            ready = wait_ready(spec) => ready,
            exited = first_exit(&mut running) => Err(died(exited)),
        };
        if started.is_err() {
            break;
        }
    }
    let started = match started {
        Ok(()) => first_admin(&exe, &specs, &backends).await,
        Err(e) => Err(e),
    };
    let outcome = match started {
        Ok(enrolment) => {
            print_endpoints(&specs, &data_dir, args.port_offset, enrolment.as_deref());
            if args.restart {
                println!("a service that exits is started again (--restart)");
            }
            supervise(&mut running, args.restart.then_some(&how)).await
        }
        Err(e) => Err(e),
    };
    stop(&mut running).await;
    let _ = std::fs::remove_dir_all(data_dir.join("pids"));
    match outcome {
        Ok(()) => {
            println!("stopped");
            Ok(())
        }
        Err(e) => Err(e),
    }
}

fn died((name, status): (&'static str, std::io::Result<ExitStatus>)) -> anyhow::Error {
    match status {
        Ok(status) => {
            anyhow::anyhow!("{name} exited ({status}); its error is above. Stopped the others.")
        }
        Err(e) => anyhow::anyhow!("{name} could not be watched: {e}"),
    }
}

/// Polls the service's `/readyz` until it answers 200 (at most a minute).
async fn wait_ready(spec: &Spec) -> anyhow::Result<()> {
    let admin = std::net::SocketAddr::from(([127, 0, 0, 1], spec.admin()));
    if !openwarn_sim::stack::wait_ready(admin, Duration::from_secs(60)).await {
        bail!(
            "{} did not become ready at http://{admin}/readyz",
            spec.name
        );
    }
    Ok(())
}

/// The portal's first administrator: created on the first `up` of a data directory (there is no
/// default password); its one-time enrolment link, or `None` when an administrator exists.
async fn first_admin(
    exe: &Path,
    specs: &[Spec],
    backends: &Backends,
) -> anyhow::Result<Option<String>> {
    let portal = specs
        .iter()
        .find(|s| s.name == "portal")
        .context("the stack has no portal")?;
    let database = backends
        .databases
        .get("portal")
        .context("the portal has no database")?;
    let output = Command::new(exe)
        .args([
            "service",
            "portal",
            "create-admin",
            "--if-none",
            "--username",
            "admin",
        ])
        .args(["--display-name", "Administrator"])
        .args(["--database-url", database])
        .args(&portal.extra)
        .args(["--log-format", "json", "--log", "error"])
        .stdin(Stdio::null())
        .output()
        .await
        .context("cannot run the portal's create-admin")?;
    if !output.status.success() {
        bail!(
            "the portal's first administrator could not be created: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let link = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    Ok((!link.is_empty()).then_some(link))
}

fn print_endpoints(specs: &[Spec], data_dir: &Path, offset: u16, enrolment: Option<&str>) {
    println!();
    println!("OpenWarn is up. Data and dev PKI: {}", data_dir.display());
    println!(
        "  app API (proxy)         http://127.0.0.1:{}/version/v1/",
        8000 + offset
    );
    println!(
        "  lab API (test-result)   http://127.0.0.1:{}/api/v1/lab/results",
        8030 + offset
    );
    for spec in specs {
        let grpc = spec
            .grpc
            .map_or_else(|| "-".to_owned(), |p| format!("127.0.0.1:{p}"));
        println!(
            "  {:<12} gRPC (mTLS) {grpc:<15}  admin http://127.0.0.1:{}/metrics",
            spec.name,
            spec.admin()
        );
    }
    println!(
        "  CDN (distribution)      http://127.0.0.1:{}/version/v1/diagnosis-keys/country",
        8050 + offset
    );
    println!(
        "  packages verify with    {}",
        DistributionKeys::paths(data_dir).public_key.display()
    );
    println!(
        "  portal (officers)       http://127.0.0.1:{}/",
        8040 + offset
    );
    match enrolment {
        Some(link) => println!("  enrol the first portal administrator (once): {link}"),
        None => println!(
            "  portal administrator exists; another: openwarn service portal create-admin --help"
        ),
    }
    println!(
        "  publish now:  openwarn publish --data-dir {}",
        data_dir.display()
    );
    println!("ready; Ctrl-C stops everything");
}

/// Runs until a signal (Ok) or until a child dies (Err); with `restart`, a child that dies is
/// started again after a pause instead.
async fn supervise(running: &mut [Running<'_>], restart: Option<&How<'_>>) -> anyhow::Result<()> {
    let signal = openwarn_bootstrap::lifecycle::shutdown_signal();
    tokio::pin!(signal);
    loop {
        let (index, status) = tokio::select! {
            () = &mut signal => return Ok(()),
            exited = exit_of(running) => exited,
        };
        let name = running[index].spec.name;
        let Some(how) = restart else {
            return Err(died((name, status)));
        };
        let r = &mut running[index];
        let pause = if r.started.elapsed() >= STABLE_AFTER {
            FIRST_BACKOFF
        } else {
            r.backoff
        };
        match status {
            Ok(status) => println!("{name} exited ({status}); starting it again in {pause:?}"),
            Err(e) => println!("{name} could not be watched ({e}); starting it again in {pause:?}"),
        }
        tokio::select! {
            () = &mut signal => return Ok(()),
            () = tokio::time::sleep(pause) => {}
        }
        *r = Running::start(r.spec, how)?;
        r.backoff = (pause * 2).min(MAX_BACKOFF);
    }
}

async fn first_exit(running: &mut [Running<'_>]) -> (&'static str, std::io::Result<ExitStatus>) {
    let (index, status) = exit_of(running).await;
    (running[index].spec.name, status)
}

/// The index of the first child to exit, and its status.
async fn exit_of(running: &mut [Running<'_>]) -> (usize, std::io::Result<ExitStatus>) {
    let waits = running
        .iter_mut()
        .enumerate()
        .map(|(i, r)| Box::pin(async move { (i, r.child.wait().await) }));
    futures::future::select_all(waits).await.0
}

/// SIGTERM to every child that still runs, then SIGKILL after 10 s.
async fn stop(running: &mut [Running<'_>]) {
    for r in running.iter_mut() {
        terminate(&mut r.child);
    }
    for r in running.iter_mut() {
        match tokio::time::timeout(Duration::from_secs(10), r.child.wait()).await {
            Ok(_) => {}
            Err(_) => {
                eprintln!("{} did not stop in time; killing it", r.spec.name);
                let _ = r.child.kill().await;
            }
        }
    }
}

/// Asks a child to stop gracefully: SIGTERM on Unix; elsewhere there is no such signal, so it is
/// killed.
#[cfg(unix)]
fn terminate(child: &mut Child) {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    if let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    }
}

#[cfg(not(unix))]
fn terminate(child: &mut Child) {
    let _ = child.start_kill();
}
