//! `openwarn bench-distribution`: package build throughput, and publishing runs streaming keys
//! from a submission service on PostgreSQL (its own process), with peak RSS; then serving one
//! published hour package, by distribution's embedded server and by nginx ([`crate::serving`]).

use crate::Launcher;
use anyhow::Context;
use diesel::{Connection, RunQueryDsl};
use openwarn_distribution::keys::{self, Key};
use openwarn_export::{Batch, KeyInfo, Package, Signer};
use openwarn_testkit::free_port;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct BenchDistributionArgs {
    #[command(flatten)]
    pub postgres: crate::bench::PostgresArgs,
    /// Keys in the single package built (and signed and zipped) on one core.
    #[arg(long, default_value_t = 1_000_000)]
    pub package_keys: usize,
    /// Keys in submission's database for the full run, spread over the last 14 days.
    #[arg(long, default_value_t = 1_400_000)]
    pub run_keys: u64,
    /// Hourly runs after the full one, each its own `run-once` process (peak RSS per run, as the
    /// published tree grows).
    #[arg(long, default_value_t = 3)]
    pub hourly_runs: i64,
    /// Only what serving needs: no package build, and the full run without hourly runs.
    #[arg(long)]
    pub serve_only: bool,
    #[command(flatten)]
    pub serve: crate::serving::ServeArgs,
}

/// A fresh signing key: the signer and its PKCS#8 PEM (for distribution's `--signing-keys`).
pub fn signer() -> anyhow::Result<(Signer, String)> {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let pem = pair.serialize_pem();
    let signer = Signer::from_pkcs8_pem(
        &pem,
        &KeyInfo {
            verification_key_id: "262".into(),
            verification_key_version: "v1".into(),
            ..KeyInfo::default()
        },
    )?;
    Ok((signer, pem))
}

/// Peak resident set size of a process, in MiB (Linux `VmHWM`).
fn peak_rss_mib(pid: &str) -> Option<f64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map(|kib| kib / 1024.0)
}

fn package_build(n: usize) -> anyhow::Result<()> {
    let (signer, _) = signer()?;
    let mut keys: Vec<Key> = (0..n)
        .map(|i| Key {
            data: rand::random(),
            rolling_start: 2_880_000 + 144 * i32::try_from(i % 14).unwrap_or(0),
            rolling_period: 144,
            transmission_risk: 5,
            report_type: 1,
            days_since_onset: 0,
        })
        .collect();
    let started = Instant::now();
    keys::sort_and_dedup(&mut keys);
    let sorted = started.elapsed();
    let exports: Vec<_> = keys.iter().map(Key::to_export).collect();
    let batch = Batch {
        start_timestamp: 0,
        end_timestamp: 3600,
        region: "DE".into(),
    };
    let built = Instant::now();
    let package = Package::build(&batch, exports.iter(), std::slice::from_ref(&signer));
    let signed = built.elapsed();
    let zipped_at = Instant::now();
    let zip = package.to_zip()?;
    let zipped = zipped_at.elapsed();
    let total = started.elapsed();
    println!(
        "package build: {n} keys in {:.3} s = {:.0} keys/s on one core (sort {:.3} s, encode+sign {:.3} s, zip {:.3} s); export.bin {:.1} MB, zip {:.1} MB",
        total.as_secs_f64(),
        n as f64 / total.as_secs_f64(),
        sorted.as_secs_f64(),
        signed.as_secs_f64(),
        zipped.as_secs_f64(),
        package.bin.len() as f64 / 1e6,
        zip.len() as f64 / 1e6,
    );
    Ok(())
}

/// Runs `command` to completion, sampling its peak RSS; (seconds, MiB).
async fn measured(mut command: tokio::process::Command) -> anyhow::Result<(f64, f64)> {
    let mut child = command
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let pid = child.id().context("child pid")?.to_string();
    let started = Instant::now();
    let mut peak = 0.0f64;
    let status = loop {
        if let Some(mib) = peak_rss_mib(&pid) {
            peak = peak.max(mib);
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    anyhow::ensure!(status.success(), "{command:?} failed: {status}");
    Ok((started.elapsed().as_secs_f64(), peak))
}

/// Runs the benchmark; `launcher` starts submission and each distribution run as processes.
#[tokio::main]
pub async fn run(args: BenchDistributionArgs, launcher: &Launcher) -> anyhow::Result<()> {
    println!(
        "machine: {} cores; release build: {}",
        std::thread::available_parallelism().map_or(0, usize::from),
        !cfg!(debug_assertions)
    );
    if !args.serve_only {
        let keys = args.package_keys;
        tokio::task::spawn_blocking(move || package_build(keys)).await??;
    }

    // Submission (its own process) on a fresh PostgreSQL database holding the keys.
    let database = crate::bench::fresh_database(&args.postgres.url, "openwarn_bench_distribution")?;
    let dir = tempfile::tempdir()?;
    let pki =
        openwarn_mtls::DevPki::ensure(&dir.path().join("pki"), &["submission", "distribution"])?;
    let submission = start_submission(launcher, &database, &pki).await?;
    let now = openwarn_bootstrap::lifecycle::unix_now() / 3600 * 3600 + 90;
    insert_keys(&database, now, args.run_keys)?;

    let store = dir.path().join("cdn");
    let config = distribution_args(dir.path(), &store, &pki, submission.grpc)?;
    let hourly_runs = if args.serve_only { 0 } else { args.hourly_runs };
    publishing_runs(launcher, &config, &store, now, args.run_keys, hourly_runs).await?;
    drop(submission);
    if args.serve.serve_rounds > 0 {
        crate::serving::compare(launcher, &config, &store, &args.serve).await?;
    }
    Ok(())
}

/// The submission process (stopped when dropped) and its gRPC port.
struct Submission {
    _process: tokio::process::Child,
    grpc: u16,
}

/// Starts submission as its own process on `database`, and waits until it is ready.
async fn start_submission(
    launcher: &Launcher,
    database: &str,
    pki: &openwarn_mtls::DevPki,
) -> anyhow::Result<Submission> {
    let (grpc, http, admin) = (free_port(), free_port(), free_port());
    let process = launcher
        .command("submission")
        .args(["--log", "warn"])
        .args(["--database-url", database])
        .args(["--grpc-addr", &format!("127.0.0.1:{grpc}")])
        .args(["--http-addr", &format!("127.0.0.1:{http}")])
        .args(["--admin-addr", &format!("127.0.0.1:{admin}")])
        .args(pki.service_args("submission"))
        .kill_on_drop(true)
        .spawn()
        .context("cannot start submission")?;
    anyhow::ensure!(
        openwarn_sim::stack::wait_ready(([127, 0, 0, 1], admin).into(), Duration::from_secs(60))
            .await,
        "submission did not start"
    );
    Ok(Submission {
        _process: process,
        grpc,
    })
}

/// Fills submission's table with `count` keys spread over the 14 days before `now`.
fn insert_keys(database: &str, now: i64, count: u64) -> anyhow::Result<()> {
    let span = 14 * 24;
    let first = now / 3600 - span;
    let inserting = Instant::now();
    let mut conn = diesel::PgConnection::establish(database).context("connecting to PostgreSQL")?;
    // Stored in arrival order (by hour), as real submissions are.
    diesel::sql_query(format!(
        "INSERT INTO diagnosis_keys SELECT decode(md5(i::text), 'hex'), 0, \
         ((h / 24 - 2) * 144)::int, 144, 5, 1, 0, 'DE', 'DE', false, h \
         FROM (SELECT i, {first} + (i % {span}) AS h FROM generate_series(1, {count}) i) s ORDER BY h"
    ))
    .execute(&mut conn)?;
    diesel::sql_query("VACUUM ANALYZE diagnosis_keys").execute(&mut conn)?;
    println!(
        "prepared {count} keys in submission's PostgreSQL database in {:.1} s",
        inserting.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Distribution's settings: publishing to `store`, keys from submission on `grpc`, a fresh
/// signing key (written into `dir`).
fn distribution_args(
    dir: &std::path::Path,
    store: &std::path::Path,
    pki: &openwarn_mtls::DevPki,
    grpc: u16,
) -> anyhow::Result<Vec<String>> {
    let (_, pem) = signer()?;
    let key = dir.join("signing.pem");
    std::fs::write(&key, pem)?;
    let mut config = vec![
        format!("--store-url={}", store.display()),
        format!("--submission-url=https://127.0.0.1:{grpc}"),
        format!("--signing-keys=v1={}", key.display()),
        "--padding-secret=benchmark padding secret".into(),
        "--log=warn".into(),
    ];
    config.extend(pki.service_args("distribution"));
    Ok(config)
}

/// Each run its own `run-once` process, as the CronJob does it: the first publishes 14 days
/// and 48 hours from every key; each later one the next hour, on a tree that keeps growing.
async fn publishing_runs(
    launcher: &Launcher,
    config: &[String],
    store: &std::path::Path,
    now: i64,
    run_keys: u64,
    hourly_runs: i64,
) -> anyhow::Result<()> {
    for i in 0..=hourly_runs {
        let at = chrono::DateTime::from_timestamp(now + i * 3600, 0)
            .context("time")?
            .to_rfc3339();
        let mut run = launcher.command("distribution");
        run.args(["run-once", "--now", &at]).args(config);
        let (seconds, peak) = measured(run).await?;
        let objects = walk(store);
        if i == 0 {
            println!(
                "full run: {} keys streamed from submission and published (14 day + 48 hour packages) in {seconds:.2} s = {:.0} keys/s; peak RSS {peak:.0} MiB; tree {objects} objects",
                run_keys,
                run_keys as f64 / seconds
            );
        } else {
            println!(
                "hourly run {i}: {seconds:.2} s; peak RSS {peak:.0} MiB; tree {objects} objects"
            );
        }
    }
    Ok(())
}

fn walk(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .flatten()
            .map(|e| {
                if e.path().is_dir() {
                    walk(&e.path())
                } else {
                    1
                }
            })
            .sum()
    })
}
