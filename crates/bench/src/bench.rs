//! `openwarn bench`: submissions end to end — proxy → submission → verification → PostgreSQL —
//! and fake submissions at the proxy; then PostgreSQL's own ceiling for the same write (pgbench
//! inserting the same 14 rows per transaction), and our throughput as a ratio of it.
//!
//! Every service runs in this process on 127.0.0.1 with fresh databases and a fresh dev PKI, over
//! the same mutual-TLS paths as in production. TANs are prepared before the clock starts.

use crate::cpu::CpuTimes;
use anyhow::{Context, bail};
use diesel::Connection;
use diesel::connection::SimpleConnection;
use openwarn_bootstrap::RunningService;
use openwarn_protocol::Message;
use openwarn_protocol::cwa::SubmissionPayload;
use openwarn_protocol::gaen::TemporaryExposureKey;
use openwarn_testkit::try_config;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The PostgreSQL server both benchmarks make their fresh `openwarn_bench_*` databases on.
#[derive(clap::Args)]
pub struct PostgresArgs {
    /// PostgreSQL server (a user that may create databases); fresh `openwarn_bench_*` databases are made.
    #[arg(
        long = "postgres-url",
        env = "OPENWARN_BENCH_POSTGRES_URL",
        hide_env_values = true,
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pub url: String,
}

/// The Redis the benchmarks' services share their counters and leases on.
#[derive(clap::Args)]
pub struct RedisArgs {
    /// Redis for the shared counters (`memory://` for none).
    #[arg(
        long = "redis-url",
        env = "OPENWARN_BENCH_REDIS_URL",
        hide_env_values = true,
        default_value = "redis://127.0.0.1:6379"
    )]
    pub redis_url: String,
}

#[derive(clap::Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub postgres: PostgresArgs,
    #[command(flatten)]
    pub redis: RedisArgs,
    /// Real submissions at each concurrency (each with its own TAN, prepared beforehand).
    #[arg(long, default_value_t = 4000)]
    pub submissions: usize,
    /// Fake submissions.
    #[arg(long, default_value_t = 50_000)]
    pub fakes: usize,
    /// Real submissions in flight at once; one run at each (comma-separated). Group commit
    /// gains with concurrency, so the sweep goes past pgbench's (whose clients each hold one of
    /// PostgreSQL's 100 connections).
    #[arg(long, value_delimiter = ',', default_value = "16,32,64,128", value_parser = at_least_one)]
    pub concurrency: Vec<usize>,
    /// Fake submissions in flight at once (each waits out a real latency, so many are needed to
    /// load the proxy).
    #[arg(long, default_value_t = 2048)]
    pub fake_concurrency: usize,
    /// Concurrent clients of pgbench; one run at each (comma-separated), the best is the ceiling.
    #[arg(long, value_delimiter = ',', default_value = "8,16,32,64", value_parser = at_least_one)]
    pub pgbench_clients: Vec<usize>,
    /// pgbench run time, at each client count.
    #[arg(long, default_value = "10s", value_parser = openwarn_bootstrap::config::parse_duration)]
    pub pgbench_time: Duration,
    /// The pgbench executable.
    #[arg(long, default_value = "pgbench")]
    pub pgbench: String,
}

pub(crate) fn at_least_one(v: &str) -> Result<usize, String> {
    match v.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{v:?} is not a whole number of at least 1")),
    }
}

/// The database `name` on the server of `admin`, dropped first if a previous run left it; its URL.
pub fn fresh_database(admin: &str, name: &str) -> anyhow::Result<String> {
    let mut conn = diesel::PgConnection::establish(admin).context("connecting to PostgreSQL")?;
    conn.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))?;
    conn.batch_execute(&format!("CREATE DATABASE {name}"))?;
    Ok(openwarn_testkit::with_database(admin, name))
}

/// The services the benchmark starts (each also calls the next with its own certificate).
const PKI_NAMES: &[&str] = &["test-result", "verification", "submission", "proxy"];

struct Stack {
    _pki_dir: tempfile::TempDir,
    services: Vec<RunningService>,
    proxy: std::net::SocketAddr,
    lab: std::net::SocketAddr,
    submission_db: String,
}

async fn start_stack(args: &BenchArgs) -> anyhow::Result<Stack> {
    let pki_dir = tempfile::tempdir()?;
    let pki = openwarn_mtls::DevPki::ensure(pki_dir.path(), PKI_NAMES)?;
    let namespace = format!("openwarn-bench-{}", std::process::id());
    let test_result_db = fresh_database(&args.postgres.url, "openwarn_bench_test_result")?;
    let test_result = start_test_result(&pki, &test_result_db).await?;
    let verification_db = fresh_database(&args.postgres.url, "openwarn_bench_verification")?;
    let verification = start_verification(
        &pki,
        &verification_db,
        &args.redis.redis_url,
        &namespace,
        &test_result,
    )
    .await?;
    let submission_db = fresh_database(&args.postgres.url, "openwarn_bench_submission")?;
    let submission = start_submission(&pki, &submission_db, &verification).await?;
    let proxy = start_proxy(
        &pki,
        &args.redis.redis_url,
        namespace,
        &verification,
        Some(&submission),
    )
    .await?;
    Ok(Stack {
        _pki_dir: pki_dir,
        proxy: proxy.addr("http"),
        lab: test_result.addr("http"),
        services: vec![proxy, submission, verification, test_result],
        submission_db,
    })
}

/// The arguments every service of the benchmark starts with: its certificates of `pki`, HTTP and
/// admin on free ports of 127.0.0.1, warnings only; with `grpc`, gRPC on a free port too.
fn service_args(pki: &openwarn_mtls::DevPki, name: &str, grpc: bool) -> Vec<String> {
    let mut args = pki.service_args(name);
    args.extend([
        "--http-addr".to_owned(),
        "127.0.0.1:0".to_owned(),
        "--admin-addr".to_owned(),
        "127.0.0.1:0".to_owned(),
        "--log".to_owned(),
        "warn".to_owned(),
    ]);
    if grpc {
        args.extend(["--grpc-addr".to_owned(), "127.0.0.1:0".to_owned()]);
    }
    args
}

/// Test result, on `database` (PostgreSQL or SQLite), taking lab results over plain HTTP.
pub(crate) async fn start_test_result(
    pki: &openwarn_mtls::DevPki,
    database: &str,
) -> anyhow::Result<RunningService> {
    let mut a = service_args(pki, "test-result", true);
    a.extend([
        "--database-url".into(),
        database.to_owned(),
        "--lab-insecure-http".into(),
    ]);
    Ok(openwarn_test_result::start(try_config(a)?).await?)
}

/// Verification, on `database` and the key-value store `kv_url` (Redis or `memory://`) under
/// `namespace`, calling `test_result`.
pub(crate) async fn start_verification(
    pki: &openwarn_mtls::DevPki,
    database: &str,
    kv_url: &str,
    namespace: &str,
    test_result: &RunningService,
) -> anyhow::Result<RunningService> {
    let mut a = service_args(pki, "verification", true);
    a.extend([
        "--database-url".into(),
        database.to_owned(),
        "--kv-url".into(),
        kv_url.to_owned(),
        "--kv-namespace".into(),
        namespace.to_owned(),
        "--test-result-url".into(),
        format!("https://{}", test_result.addr("grpc")),
    ]);
    Ok(openwarn_verification::start(try_config(a)?).await?)
}

/// Submission, on `database`, calling `verification`.
async fn start_submission(
    pki: &openwarn_mtls::DevPki,
    database: &str,
    verification: &RunningService,
) -> anyhow::Result<RunningService> {
    let mut a = service_args(pki, "submission", true);
    a.extend([
        "--database-url".into(),
        database.to_owned(),
        "--verification-url".into(),
        format!("https://{}", verification.addr("grpc")),
    ]);
    Ok(openwarn_submission::start(try_config(a)?).await?)
}

/// The proxy in front of `verification` and `submission` (without it, the default URL that
/// nothing is sent to), with the key-value store `kv_url` under `namespace` and a rate limit no
/// run reaches.
pub(crate) async fn start_proxy(
    pki: &openwarn_mtls::DevPki,
    kv_url: &str,
    namespace: String,
    verification: &RunningService,
    submission: Option<&RunningService>,
) -> anyhow::Result<RunningService> {
    let mut a = service_args(pki, "proxy", false);
    a.extend([
        "--verification-http-url".into(),
        format!("https://{}", verification.addr("http")),
    ]);
    if let Some(submission) = submission {
        a.extend([
            "--submission-http-url".into(),
            format!("https://{}", submission.addr("http")),
        ]);
    }
    a.extend([
        "--kv-url".into(),
        kv_url.to_owned(),
        "--kv-namespace".into(),
        namespace,
        "--rate-limit".into(),
        "100000000".into(),
    ]);
    Ok(openwarn_proxy::start(try_config(a)?).await?)
}

/// 14 keys for the last 14 days, distinct for every `n`.
fn payload(n: u64) -> Vec<u8> {
    let today =
        i32::try_from(openwarn_bootstrap::lifecycle::unix_now() / 600 / 144 * 144).unwrap_or(0);
    SubmissionPayload {
        keys: (0..14u8)
            .map(|day| {
                let mut key_data = [0u8; 16];
                key_data[..8].copy_from_slice(&n.to_be_bytes());
                key_data[8] = day;
                TemporaryExposureKey {
                    key_data: Some(key_data.to_vec()),
                    transmission_risk_level: Some(6),
                    rolling_start_interval_number: Some(today - 144 * i32::from(day)),
                    rolling_period: Some(144),
                    report_type: Some(1),
                    days_since_onset_of_symptoms: None,
                }
            })
            .collect(),
        request_padding: Some(vec![0; 32]),
        visited_countries: vec![],
        origin: Some("DE".into()),
        consent_to_federation: Some(true),
        submission_type: Some(0),
    }
    .encode_to_vec()
}

/// A fresh hashed GUID (as the app's QR code gives it).
pub(crate) fn new_guid() -> String {
    openwarn_domain::sha256_hex(uuid::Uuid::new_v4().to_string())
}

/// Posts `results` (hashed GUID, result) as a lab to test result's lab API at `lab`, 1000 at a
/// time.
pub(crate) async fn post_lab_results(
    client: &reqwest::Client,
    lab: std::net::SocketAddr,
    results: &[(String, openwarn_domain::TestResult)],
) -> anyhow::Result<()> {
    for chunk in results.chunks(1000) {
        let results: Vec<_> = chunk
            .iter()
            .map(|(g, result)| serde_json::json!({"id": g, "result": result}))
            .collect();
        let r = client
            .post(format!("http://{lab}/api/v1/lab/results"))
            .json(&serde_json::json!({"labId": "bench", "testResults": results}))
            .send()
            .await?;
        if r.status().as_u16() != 204 {
            bail!("lab post failed: {}", r.status());
        }
    }
    Ok(())
}

/// Registers the hashed GUID `guid` at the proxy; the registration token.
pub(crate) async fn register(
    client: &reqwest::Client,
    proxy: std::net::SocketAddr,
    guid: &str,
) -> anyhow::Result<String> {
    let reg: serde_json::Value = client
        .post(format!("http://{proxy}/version/v1/registrationToken"))
        .json(&serde_json::json!({"key": guid, "keyType": "GUID"}))
        .send()
        .await?
        .json()
        .await?;
    Ok(reg["registrationToken"]
        .as_str()
        .context("no registration token")?
        .to_owned())
}

/// `step` for every one of `items`, `concurrency` at a time; the results, in no particular order.
pub(crate) async fn for_each_concurrently<I, T, F, Fut>(
    items: Vec<I>,
    concurrency: usize,
    step: F,
) -> anyhow::Result<Vec<T>>
where
    I: Clone + Send + Sync + 'static,
    T: Send + 'static,
    F: Fn(I) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = anyhow::Result<T>> + Send,
{
    let count = items.len();
    let next = Arc::new(AtomicUsize::new(0));
    let items = Arc::new(items);
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (next, items, step) = (next.clone(), items.clone(), step.clone());
        tasks.push(tokio::spawn(async move {
            let mut done = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else {
                    return Ok::<_, anyhow::Error>(done);
                };
                done.push(step(item.clone()).await?);
            }
        }));
    }
    let mut all = Vec::with_capacity(count);
    for t in tasks {
        all.extend(t.await??);
    }
    Ok(all)
}

async fn prepare_tans(
    client: &reqwest::Client,
    stack: &Stack,
    count: usize,
    concurrency: usize,
) -> anyhow::Result<Vec<String>> {
    let guids: Vec<String> = (0..count).map(|_| new_guid()).collect();
    let results: Vec<_> = guids
        .iter()
        .map(|g| (g.clone(), openwarn_domain::TestResult::Positive))
        .collect();
    post_lab_results(client, stack.lab, &results).await?;
    let (client, proxy) = (client.clone(), stack.proxy);
    for_each_concurrently(guids, concurrency, move |g| {
        let client = client.clone();
        async move {
            let token = register(&client, proxy, &g).await?;
            let tan: serde_json::Value = client
                .post(format!("http://{proxy}/version/v1/tan"))
                .json(&serde_json::json!({"registrationToken": token}))
                .send()
                .await?
                .json()
                .await?;
            Ok(tan["tan"].as_str().context("no TAN")?.to_owned())
        }
    })
    .await
}

struct Run {
    requests: usize,
    errors: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
    /// CPU spent during the run by this process (services and client), PostgreSQL and Redis.
    cpu: CpuTimes,
}

impl Run {
    fn per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
    fn quantile(&self, q: f64) -> Duration {
        let mut l = self.latencies.clone();
        l.sort_unstable();
        l.get(((l.len().saturating_sub(1)) as f64 * q) as usize)
            .copied()
            .unwrap_or_default()
    }
    fn report(&self, what: &str) {
        println!(
            "{what:<22} {:>7} requests  {:>9.0}/s  p50 {:>7.2} ms  p99 {:>7.2} ms  errors {}",
            self.requests,
            self.per_second(),
            self.quantile(0.5).as_secs_f64() * 1000.0,
            self.quantile(0.99).as_secs_f64() * 1000.0,
            self.errors
        );
        println!(
            "{:<22} {}",
            "",
            cpu_per_request(
                &[
                    ("openwarn", Some(self.cpu.this)),
                    ("postgres", self.cpu.postgres),
                    ("redis", self.cpu.redis),
                ],
                self.requests
            )
        );
    }
}

/// "CPU per request: openwarn 0.71 ms + postgres 0.80 ms + … = 1.60 ms" (what was measured).
pub(crate) fn cpu_per_request(parts: &[(&str, Option<Duration>)], requests: usize) -> String {
    let per = |d: Duration| d.as_secs_f64() * 1000.0 / requests.max(1) as f64;
    let measured: Vec<(&str, Duration)> = parts
        .iter()
        .filter_map(|(name, d)| d.map(|d| (*name, d)))
        .collect();
    let each: Vec<String> = measured
        .iter()
        .map(|(name, d)| format!("{name} {:.3} ms", per(*d)))
        .collect();
    let total: Duration = measured.iter().map(|(_, d)| *d).sum();
    format!(
        "CPU per request: {} = {:.3} ms",
        each.join(" + "),
        per(total)
    )
}

/// Sends `count` submissions (`tans[i]`, or fakes) with `concurrency` in flight; times each.
async fn drive(
    client: &reqwest::Client,
    proxy: std::net::SocketAddr,
    tans: Option<Arc<Vec<String>>>,
    count: usize,
    concurrency: usize,
) -> Run {
    let next = Arc::new(AtomicUsize::new(0));
    let cpu = CpuTimes::now();
    let started = Instant::now();
    let mut tasks = Vec::new();
    let fake_body = bytes::Bytes::from(payload(u64::MAX));
    for _ in 0..concurrency {
        let (client, next, tans, fake_body) = (
            client.clone(),
            next.clone(),
            tans.clone(),
            fake_body.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let (mut latencies, mut errors) = (Vec::new(), 0usize);
            let url = format!("http://{proxy}/version/v1/diagnosis-keys");
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return (latencies, errors);
                }
                let (tan, fake, body) = match &tans {
                    Some(tans) => (tans[i].clone(), "0", bytes::Bytes::from(payload(i as u64))),
                    None => (uuid::Uuid::new_v4().to_string(), "1", fake_body.clone()),
                };
                let t = Instant::now();
                let ok = client
                    .post(&url)
                    .header("content-type", "application/x-protobuf")
                    .header("cwa-authorization", tan)
                    .header("cwa-fake", fake)
                    .body(body)
                    .send()
                    .await
                    .map(|r| r.status().as_u16() == 200)
                    .unwrap_or(false);
                latencies.push(t.elapsed());
                errors += usize::from(!ok);
            }
        }));
    }
    let mut run = Run {
        requests: count,
        errors: 0,
        elapsed: Duration::ZERO,
        latencies: Vec::with_capacity(count),
        cpu: CpuTimes::default(),
    };
    for t in tasks {
        if let Ok((latencies, errors)) = t.await {
            run.latencies.extend(latencies);
            run.errors += errors;
        }
    }
    run.elapsed = started.elapsed();
    run.cpu = CpuTimes::now().since(&cpu);
    run
}

/// PostgreSQL's ceiling for the same write: 14 rows per transaction into the same table.
fn pgbench(args: &BenchArgs, database: &str, clients: usize) -> anyhow::Result<Ceiling> {
    let dir = tempfile::tempdir()?;
    let script = dir.path().join("submission.sql");
    let rows: Vec<String> = (0..14)
        .map(|day| {
            format!(
                "(decode(md5(random()::text || clock_timestamp()::text), 'hex'), 0, {}, 144, 6, 1, 1, 'DE', '', true, :hour)",
                2_900_000 - 144 * day
            )
        })
        .collect();
    std::fs::write(
        &script,
        format!(
            "\\set hour {}\nBEGIN;\nINSERT INTO diagnosis_keys (key_data, submission_type, rolling_start_interval_number, rolling_period, transmission_risk_level, report_type, days_since_onset_of_symptoms, origin, visited_countries, consent_to_federation, submission_hour) VALUES {} ON CONFLICT DO NOTHING;\nCOMMIT;\n",
            openwarn_bootstrap::lifecycle::unix_now() / 3600,
            rows.join(", ")
        ),
    )?;
    let cpu = CpuTimes::now();
    let output = std::process::Command::new(&args.pgbench)
        .args([
            "-n",
            "-M",
            "prepared",
            "-c",
            &clients.to_string(),
            "-j",
            "2",
            "-T",
            &args.pgbench_time.as_secs().to_string(),
            "-f",
        ])
        .arg(&script)
        .arg(database)
        .output()
        .with_context(|| format!("running {}", args.pgbench))?;
    let cpu = CpuTimes::now().since(&cpu);
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "pgbench failed: {}{}",
            stdout,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let number = |prefix: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.trim_start_matches(prefix).split_whitespace().next())
    };
    Ok(Ceiling {
        per_second: number("tps = ")
            .and_then(|v| v.parse().ok())
            .context("no tps in pgbench's output")?,
        transactions: number("number of transactions actually processed: ")
            .and_then(|v| v.parse().ok())
            .context("no transaction count in pgbench's output")?,
        cpu,
    })
}

/// pgbench's result: transactions per second, how many, and the CPU they took.
struct Ceiling {
    per_second: f64,
    transactions: usize,
    cpu: CpuTimes,
}

impl Ceiling {
    fn report(&self, clients: usize) {
        println!(
            "{:<22} {:>7} tx        {:>9.0}/s  (14-row INSERT per transaction)",
            format!("pgbench, {clients} clients"),
            self.transactions,
            self.per_second
        );
        println!(
            "{:<22} {}",
            "",
            cpu_per_request(
                &[
                    ("pgbench", Some(self.cpu.children)),
                    ("postgres", self.cpu.postgres),
                ],
                self.transactions
            )
        );
    }
}

/// Empties the submission database's key table, so every measured phase starts alike.
fn empty_keys(database: &str) -> anyhow::Result<()> {
    diesel::PgConnection::establish(database)
        .context("connecting to the submission database")?
        .batch_execute("TRUNCATE diagnosis_keys")?;
    Ok(())
}

#[tokio::main]
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    println!(
        "starting the stack on PostgreSQL ({}) and {} ...",
        args.postgres.url.split('@').next_back().unwrap_or(""),
        args.redis.redis_url
    );
    let stack = start_stack(&args).await?;
    let most = args.concurrency.iter().copied().max().unwrap_or(1);
    let client = openwarn_sim::app::http_client(|b| {
        b.pool_max_idle_per_host(most.max(args.fake_concurrency))
            .tcp_nodelay(true)
    })?;
    let prepared = Instant::now();
    let total = args.submissions * args.concurrency.len();
    let tans = prepare_tans(&client, &stack, total, most).await?;
    println!(
        "prepared {} TANs in {:.1} s",
        tans.len(),
        prepared.elapsed().as_secs_f64()
    );

    let real = real_runs(&args, &client, &stack, &tans).await?;
    let fake = drive(
        &client,
        stack.proxy,
        None,
        args.fakes,
        args.fake_concurrency,
    )
    .await;
    for service in stack.services {
        service.shutdown().await?;
    }
    let ceilings = ceilings(&args, &stack.submission_db)?;

    print_results(&args, &real, &fake, &ceilings);
    let real_errors: usize = real.iter().map(|(_, r)| r.errors).sum();
    if real_errors > 0 || fake.errors > 0 {
        bail!(
            "{} real and {} fake submissions failed",
            real_errors,
            fake.errors
        );
    }
    Ok(())
}

/// One run of real submissions at each concurrency, each on an empty key table with its own
/// share of the prepared TANs.
async fn real_runs(
    args: &BenchArgs,
    client: &reqwest::Client,
    stack: &Stack,
    tans: &[String],
) -> anyhow::Result<Vec<(usize, Run)>> {
    let mut real = Vec::new();
    for (level, tans) in args
        .concurrency
        .iter()
        .zip(tans.chunks(args.submissions.max(1)))
    {
        empty_keys(&stack.submission_db)?;
        let run = drive(
            client,
            stack.proxy,
            Some(Arc::new(tans.to_vec())),
            tans.len(),
            *level,
        )
        .await;
        real.push((*level, run));
    }
    Ok(real)
}

/// The same write, straight into PostgreSQL, on the submission database's table: one pgbench
/// run at each client count.
fn ceilings(args: &BenchArgs, submission_db: &str) -> anyhow::Result<Vec<(usize, Ceiling)>> {
    let mut ceilings = Vec::new();
    for clients in &args.pgbench_clients {
        empty_keys(submission_db)?;
        ceilings.push((*clients, pgbench(args, submission_db, *clients)?));
    }
    Ok(ceilings)
}

/// Every run, every ceiling, and the best real rate as a ratio of the best ceiling.
fn print_results(
    args: &BenchArgs,
    real: &[(usize, Run)],
    fake: &Run,
    ceilings: &[(usize, Ceiling)],
) {
    println!();
    println!(
        "machine: {} cores",
        std::thread::available_parallelism().map_or(0, usize::from),
    );
    for (level, run) in real {
        run.report(&format!("real, {level} in flight"));
    }
    fake.report(&format!("fake, {} in flight", args.fake_concurrency));
    for (clients, ceiling) in ceilings {
        ceiling.report(*clients);
    }
    let best = |rates: Vec<f64>| rates.into_iter().fold(0.0, f64::max);
    let ours = best(real.iter().map(|(_, r)| r.per_second()).collect());
    let ceiling = best(ceilings.iter().map(|(_, c)| c.per_second).collect());
    println!(
        "{:<22} {:.2} x PostgreSQL's ceiling ({ours:.0}/s of {ceiling:.0}/s, the best of each)",
        "real / ceiling",
        ours / ceiling
    );
}
