//! The serving phase of `openwarn bench-distribution`: one published hour package fetched over
//! and over from distribution's embedded server, and from nginx serving the same directory with
//! the same headers, by the same load client; requests/s, latency, and ours as a ratio of
//! nginx's.

use crate::Launcher;
use crate::load::{self, Report};
use anyhow::{Context, bail};
use openwarn_testkit::free_port;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Not counted before each measured run.
const WARMUP: Duration = Duration::from_secs(1);

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Serving phase: keep-alive connections of the load client.
    #[arg(long, default_value_t = 64, value_parser = crate::bench::at_least_one)]
    pub serve_connections: usize,
    /// Serving phase: measured time of each run (after a 1 s warm-up).
    #[arg(long, default_value = "10s", value_parser = openwarn_bootstrap::config::parse_duration)]
    pub serve_duration: Duration,
    /// Serving phase: rounds of one run against ours then one against nginx (0: no serving phase).
    #[arg(long, default_value_t = 2)]
    pub serve_rounds: usize,
    /// The nginx executable serving the same tree for comparison.
    #[arg(long, default_value = "nginx")]
    pub nginx: String,
}

/// The published object that is loaded: its CDN path, file and size.
#[derive(Debug)]
pub struct Published {
    pub path: String,
    pub file: PathBuf,
    pub size: u64,
}

/// The largest hour package under `store` (the local layout: `<cdn path>/_object`): one with
/// real keys, not padding only.
pub fn hour_package(store: &Path) -> Option<Published> {
    fn visit(store: &Path, dir: &Path, best: &mut Option<Published>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                visit(store, &path, best);
                continue;
            }
            let Some(relative) = path
                .parent()
                .and_then(|p| p.strip_prefix(store).ok())
                .and_then(Path::to_str)
            else {
                continue;
            };
            let cdn = relative.replace(std::path::MAIN_SEPARATOR, "/");
            if entry.file_name() != openwarn_distribution::tree::LOCAL_OBJECT
                || !is_hour_package(&cdn)
            {
                continue;
            }
            let size = entry.metadata().map_or(0, |m| m.len());
            if best.as_ref().is_none_or(|b| size > b.size) {
                *best = Some(Published {
                    path: cdn,
                    file: path,
                    size,
                });
            }
        }
    }
    let mut best = None;
    visit(store, store, &mut best);
    best
}

/// `version/v1/diagnosis-keys/country/CC/date/D/hour/H`.
fn is_hour_package(cdn: &str) -> bool {
    let segments: Vec<&str> = cdn.split('/').collect();
    matches!(
        segments.as_slice(),
        ["version", "v1", "diagnosis-keys", "country", _, "date", _, "hour", hour]
            if hour.bytes().all(|b| b.is_ascii_digit())
    )
}

/// nginx serving `store` on 127.0.0.1:`port` as distribution's embedded server does (see
/// `openwarn_distribution::tree::Kind`): each CDN path from its `_object` file; indexes as JSON
/// and the app configuration as zip, both cacheable for 5 minutes; everything else a package,
/// zip, immutable. Pid and temporary files in `dir`; workers as root when we are root (they must
/// read our private temporary directory).
pub fn nginx_config(store: &Path, dir: &Path, port: u16, as_root: bool) -> String {
    let package = openwarn_distribution::tree::Kind::Package.cache_control();
    let mutable = openwarn_distribution::tree::Kind::Mutable.cache_control();
    let d = dir.display();
    format!(
        r#"# Written by `openwarn bench-distribution`: the published tree as distribution serves it.
{user}daemon off;
master_process on;
worker_processes auto;
error_log stderr;
pid "{d}/nginx.pid";

events {{
    worker_connections 4096;
}}

http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    client_body_temp_path "{d}/client_body";
    proxy_temp_path "{d}/proxy";
    fastcgi_temp_path "{d}/fastcgi";
    uwsgi_temp_path "{d}/uwsgi";
    scgi_temp_path "{d}/scgi";
    types {{}}
    default_type application/zip;

    server {{
        listen 127.0.0.1:{port};
        root "{store}";
        # An object's own file is never a CDN path.
        location ~ /_object(/|$) {{
            return 404;
        }}
        # Indexes.
        location ~ /(country|date|hour)$ {{
            default_type application/json;
            add_header Cache-Control "{mutable}";
            try_files $uri/_object =404;
        }}
        location ~ /app_config$ {{
            add_header Cache-Control "{mutable}";
            try_files $uri/_object =404;
        }}
        # Packages.
        location / {{
            add_header Cache-Control "{package}";
            try_files $uri/_object =404;
        }}
    }}
}}
"#,
        user = if as_root { "user root;\n" } else { "" },
        store = store.display(),
    )
}

/// nginx, running in the foreground; stopped (SIGTERM to the master, which stops its workers)
/// when dropped.
pub struct Nginx {
    child: tokio::process::Child,
    pid: u32,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.terminate();
    }
}

impl Nginx {
    /// Where it serves (plain HTTP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// SIGTERM to the master, unless it has already been waited for (its pid may be reused).
    fn terminate(&mut self) {
        if let Some(pid) = self.child.id().and_then(|p| i32::try_from(p).ok()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    }

    /// Stops nginx and waits (a few seconds at most) until it has exited.
    pub async fn stop(mut self) {
        self.terminate();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}

/// `nginx -V`'s first line, or `None` when `nginx` cannot be run.
pub fn nginx_version(nginx: &str) -> Option<String> {
    let output = std::process::Command::new(nginx).arg("-V").output().ok()?;
    if !output.status.success() {
        return None;
    }
    // nginx prints its version and build options on stderr.
    let text = String::from_utf8_lossy(&output.stderr);
    text.lines().next().map(str::to_owned)
}

/// Starts nginx on `store` and waits until it serves `probe`.
pub async fn start_nginx(nginx: &str, store: &Path, probe: &str) -> anyhow::Result<Nginx> {
    let dir = tempfile::tempdir()?;
    let port = free_port();
    let config = dir.path().join("nginx.conf");
    let as_root = nix::unistd::geteuid().is_root();
    std::fs::write(&config, nginx_config(store, dir.path(), port, as_root))?;
    let mut child = tokio::process::Command::new(nginx)
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(&config)
        .args(["-e", "stderr"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {nginx}"))?;
    let pid = child.id().context("nginx has no pid")?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let client = openwarn_sim::app::http_client(|b| b.timeout(Duration::from_secs(2)))?;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait()? {
            bail!(
                "nginx exited at start ({status}); its configuration: {}",
                config.display()
            );
        }
        if client
            .get(format!("http://{addr}/{probe}"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        if std::time::Instant::now() > deadline {
            bail!("nginx does not serve {probe} on {addr}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(Nginx {
        child,
        pid,
        addr,
        _dir: dir,
    })
}

/// Distribution's embedded server as its own process (stopped when dropped): its pid and HTTP
/// address.
struct Ours {
    _process: tokio::process::Child,
    pid: u32,
    addr: SocketAddr,
}

/// Starts distribution serving the tree with `config` (no scheduled runs), and waits until ready.
async fn start_ours(launcher: &Launcher, config: &[String]) -> anyhow::Result<Ours> {
    let (http, admin) = (free_port(), free_port());
    let process = launcher
        .command("distribution")
        .args(config)
        .arg("--schedule=false")
        .args(["--http-addr", &format!("127.0.0.1:{http}")])
        .args(["--admin-addr", &format!("127.0.0.1:{admin}")])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start distribution")?;
    let pid = process.id().context("distribution has no pid")?;
    anyhow::ensure!(
        openwarn_sim::stack::wait_ready(([127, 0, 0, 1], admin).into(), Duration::from_secs(60))
            .await,
        "distribution did not start"
    );
    Ok(Ours {
        _process: process,
        pid,
        addr: ([127, 0, 0, 1], http).into(),
    })
}

/// One GET: status, the headers a client caches by, and the body.
struct Fetched {
    status: u16,
    content_type: Option<String>,
    cache_control: Option<String>,
    body: bytes::Bytes,
}

async fn fetch(client: &reqwest::Client, addr: SocketAddr, path: &str) -> anyhow::Result<Fetched> {
    let response = client
        .get(format!("http://{addr}/{path}"))
        .send()
        .await
        .with_context(|| format!("GET /{path} from {addr}"))?;
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (content_type, cache_control) = (header("content-type"), header("cache-control"));
    Ok(Fetched {
        status: response.status().as_u16(),
        content_type,
        cache_control,
        body: response.bytes().await?,
    })
}

/// Both serve `package` with status 200, the bytes of its file, and the same content type and
/// Cache-Control; fails loudly otherwise.
async fn check_same(
    package: &Published,
    ours: SocketAddr,
    nginx: Option<SocketAddr>,
) -> anyhow::Result<()> {
    let client = openwarn_sim::app::http_client(|b| b.timeout(Duration::from_secs(10)))?;
    let file = std::fs::read(&package.file)?;
    let mine = fetch(&client, ours, &package.path).await?;
    anyhow::ensure!(
        mine.status == 200 && mine.body == file,
        "distribution serves /{} with status {} and {} bytes, not the published {} bytes",
        package.path,
        mine.status,
        mine.body.len(),
        file.len()
    );
    let Some(nginx) = nginx else {
        return Ok(());
    };
    let theirs = fetch(&client, nginx, &package.path).await?;
    anyhow::ensure!(
        theirs.status == 200 && theirs.body == mine.body,
        "nginx serves /{} with status {} and {} bytes that differ from distribution's {} bytes",
        package.path,
        theirs.status,
        theirs.body.len(),
        mine.body.len()
    );
    anyhow::ensure!(
        (&theirs.content_type, &theirs.cache_control) == (&mine.content_type, &mine.cache_control),
        "nginx sends Content-Type {:?}, Cache-Control {:?}; distribution {:?}, {:?}",
        theirs.content_type,
        theirs.cache_control,
        mine.content_type,
        mine.cache_control
    );
    Ok(())
}

async fn load_run(
    args: &ServeArgs,
    addr: SocketAddr,
    server: u32,
    path: &str,
) -> anyhow::Result<Report> {
    let spec = load::Spec {
        addr,
        connections: args.serve_connections,
        warmup: WARMUP,
        duration: args.serve_duration,
        expected_status: 200,
        watch: vec![server],
    };
    let generator = load::fixed(
        hyper::Method::GET,
        &format!("/{path}"),
        &[],
        bytes::Bytes::new(),
    )?;
    load::run_dedicated(spec, generator).await
}

/// The report of one run: the load client's line, then CPU per request and bytes per second.
fn print_run(label: &str, report: &Report) {
    println!("{}", report.line(label));
    println!(
        "{:<22} CPU per request: server {}, load client {}; {:.0} MB/s of bodies",
        "",
        load::per_request(report.watched.first().copied().flatten(), report.requests),
        load::per_request(report.client_cpu, report.requests),
        report.body_bytes as f64 / 1e6 / report.elapsed.as_secs_f64().max(f64::EPSILON),
    );
}

/// `ours / nginx  0.42 x requests/s; p50 2.10 x; p99 1.80 x; server CPU per request 2.50 x`
fn print_ratio(label: &str, ours: &Report, nginx: &Report) {
    let ms = |r: &Report, q| r.quantile(q).as_secs_f64();
    let cpu = |r: &Report| {
        r.watched
            .first()
            .copied()
            .flatten()
            .map_or(0.0, |d| d.as_secs_f64() / r.requests.max(1) as f64)
    };
    println!(
        "{label:<22} ours / nginx: {} requests/s, {} p50, {} p99, {} server CPU per request",
        load::ratio(ours.per_second(), nginx.per_second()),
        load::ratio(ms(ours, 0.5), ms(nginx, 0.5)),
        load::ratio(ms(ours, 0.99), ms(nginx, 0.99)),
        load::ratio(cpu(ours), cpu(nginx)),
    );
}

/// The serving phase, on the tree in `store` published with distribution's `config`.
pub async fn compare(
    launcher: &Launcher,
    config: &[String],
    store: &Path,
    args: &ServeArgs,
) -> anyhow::Result<()> {
    let package = hour_package(store).context("no hour package was published")?;
    println!(
        "serving: hour package /{} ({} bytes); {} connections, {:.0} s per run after a {} s warm-up, rounds: {}",
        package.path,
        package.size,
        args.serve_connections,
        args.serve_duration.as_secs_f64(),
        WARMUP.as_secs(),
        args.serve_rounds
    );
    let ours = start_ours(launcher, config).await?;
    let nginx = match nginx_version(&args.nginx) {
        Some(version) => {
            println!("serving: {version} ({})", args.nginx);
            Some(start_nginx(&args.nginx, store, &package.path).await?)
        }
        None => {
            println!(
                "{} not found on PATH (install Debian's nginx package): serving compared with nothing",
                args.nginx
            );
            None
        }
    };
    check_same(&package, ours.addr, nginx.as_ref().map(|n| n.addr)).await?;

    let mut runs = Vec::new();
    for round in 1..=args.serve_rounds {
        let mine = load_run(args, ours.addr, ours.pid, &package.path).await?;
        print_run(&format!("round {round}, ours"), &mine);
        let theirs = match &nginx {
            Some(nginx) => {
                let theirs = load_run(args, nginx.addr, nginx.pid, &package.path).await?;
                print_run(&format!("round {round}, nginx"), &theirs);
                print_ratio(&format!("round {round}"), &mine, &theirs);
                Some(theirs)
            }
            None => None,
        };
        runs.push((mine, theirs));
    }
    if let Some(nginx) = nginx {
        nginx.stop().await;
    }
    drop(ours);

    let best_ours = runs
        .iter()
        .map(|(o, _)| o)
        .max_by(|a, b| a.per_second().total_cmp(&b.per_second()));
    let best_nginx = runs
        .iter()
        .filter_map(|(_, n)| n.as_ref())
        .max_by(|a, b| a.per_second().total_cmp(&b.per_second()));
    if let (Some(o), Some(n)) = (best_ours, best_nginx) {
        print_ratio("overall (best of each)", o, n);
        println!(
            "{:<22} ours {:.0}/s, nginx {:.0}/s",
            "",
            o.per_second(),
            n.per_second()
        );
    }
    let failed: u64 = runs
        .iter()
        .flat_map(|(o, n)| std::iter::once(o).chain(n))
        .map(|r| r.errors + r.unexpected)
        .sum();
    anyhow::ensure!(failed == 0, "{failed} requests failed while serving");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hour_packages_are_picked() {
        assert!(is_hour_package(
            "version/v1/diagnosis-keys/country/DE/date/2026-11-23/hour/5"
        ));
        for other in [
            "version/v1/diagnosis-keys/country/DE/date/2026-11-23/hour",
            "version/v1/diagnosis-keys/country/DE/date/2026-11-23",
            "version/v1/configuration/country/DE/app_config",
        ] {
            assert!(!is_hour_package(other), "{other}");
        }
    }

    #[test]
    fn the_largest_hour_package_of_a_tree_is_picked() {
        let store = tempfile::tempdir().unwrap();
        let put = |path: &str, size: usize| {
            let dir = store.path().join(path);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("_object"), vec![0u8; size]).unwrap();
        };
        let day = "version/v1/diagnosis-keys/country/DE/date/2026-11-23";
        put(day, 900);
        put(&format!("{day}/hour"), 800);
        put(&format!("{day}/hour/4"), 10);
        put(&format!("{day}/hour/5"), 20);
        let picked = hour_package(store.path()).unwrap();
        assert_eq!(picked.path, format!("{day}/hour/5"));
        assert_eq!(picked.size, 20);
        assert_eq!(picked.file, store.path().join(&picked.path).join("_object"));
    }

    #[test]
    fn nginx_serves_the_tree_with_our_headers() {
        let config = nginx_config(Path::new("/srv/cdn"), Path::new("/tmp/n"), 8080, true);
        assert!(config.starts_with("# Written"));
        assert!(config.contains("user root;\ndaemon off;"));
        assert!(config.contains("listen 127.0.0.1:8080;"));
        assert!(config.contains("root \"/srv/cdn\";"));
        assert!(config.contains("pid \"/tmp/n/nginx.pid\";"));
        assert!(
            config.contains("add_header Cache-Control \"public, max-age=31536000, immutable\";")
        );
        assert!(config.contains("add_header Cache-Control \"public, max-age=300\";"));
        assert_eq!(config.matches("try_files $uri/_object =404;").count(), 3);
        assert!(
            !nginx_config(Path::new("/srv/cdn"), Path::new("/tmp/n"), 8080, false)
                .contains("user ")
        );
    }
}
