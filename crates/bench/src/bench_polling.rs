//! `openwarn bench-polling`: the app polling its test result — `POST /version/v1/testresult`
//! with a registration token — through the proxy → verification → test result, the most
//! frequent request of a deployment. Measured on each backend: SQLite files with the in-process
//! key-value store (as `openwarn up` runs), and PostgreSQL with Redis.
//!
//! The services run in this process on 127.0.0.1 (as `openwarn bench` starts them, over the same
//! mutual-TLS paths as in production); the load client runs on a thread of its own. Lab results
//! and registrations are prepared before the clock starts.

use crate::bench::{PostgresArgs, at_least_one, fresh_database};
use crate::load::{self, Report};
use anyhow::Context;
use bytes::Bytes;
use openwarn_bootstrap::RunningService;
use openwarn_domain::TestResult;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Not counted before the measured run.
const WARMUP: Duration = Duration::from_secs(1);

#[derive(clap::Args)]
pub struct BenchPollingArgs {
    /// Backends, one run on each in this order (comma-separated): `sqlite` (SQLite files and the
    /// in-process key-value store, as `openwarn up`), `postgres` (fresh PostgreSQL databases and
    /// Redis).
    #[arg(
        long = "backend",
        value_enum,
        value_delimiter = ',',
        default_value = "sqlite,postgres"
    )]
    pub backends: Vec<Backend>,
    #[command(flatten)]
    pub postgres: PostgresArgs,
    /// Redis for the `postgres` backend's key-value store.
    #[command(flatten)]
    pub redis: crate::bench::RedisArgs,
    /// Registrations prepared (a third each pending, negative, positive); the polls rotate
    /// through their tokens.
    #[arg(long, default_value_t = 1000, value_parser = at_least_one)]
    pub registrations: usize,
    /// Keep-alive connections of the load client, each polling back to back.
    #[arg(long, default_value_t = 64, value_parser = at_least_one)]
    pub connections: usize,
    /// Measured time on each backend (after a 1 s warm-up).
    #[arg(long, default_value = "10s", value_parser = openwarn_bootstrap::config::parse_duration)]
    pub duration: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// The services the benchmark starts (verification and the proxy also call the next with their
/// own certificate).
const PKI_NAMES: &[&str] = &["test-result", "verification", "proxy"];

struct Stack {
    /// The dev PKI, and the SQLite files.
    _dir: tempfile::TempDir,
    services: Vec<RunningService>,
    proxy: SocketAddr,
    lab: SocketAddr,
}

async fn start_stack(backend: Backend, args: &BenchPollingArgs) -> anyhow::Result<Stack> {
    let dir = tempfile::tempdir()?;
    let pki = openwarn_mtls::DevPki::ensure(&dir.path().join("pki"), PKI_NAMES)?;
    let (test_result_db, verification_db, kv) = match backend {
        Backend::Sqlite => {
            let file = |name: &str| format!("sqlite://{}", dir.path().join(name).display());
            (
                file("test-result.db"),
                file("verification.db"),
                "memory://".to_owned(),
            )
        }
        Backend::Postgres => (
            fresh_database(&args.postgres.url, "openwarn_bench_polling_test_result")?,
            fresh_database(&args.postgres.url, "openwarn_bench_polling_verification")?,
            args.redis.redis_url.clone(),
        ),
    };
    let namespace = format!("openwarn-bench-polling-{}", std::process::id());
    let test_result = crate::bench::start_test_result(&pki, &test_result_db).await?;
    let verification =
        crate::bench::start_verification(&pki, &verification_db, &kv, &namespace, &test_result)
            .await?;
    let proxy = crate::bench::start_proxy(&pki, &kv, namespace, &verification, None).await?;
    Ok(Stack {
        _dir: dir,
        proxy: proxy.addr("http"),
        lab: test_result.addr("http"),
        services: vec![proxy, verification, test_result],
    })
}

/// `count` registrations, a third each pending (no lab result), negative and positive; their
/// tokens, each with the result a poll must read.
async fn prepare(
    client: &reqwest::Client,
    stack: &Stack,
    count: usize,
    concurrency: usize,
) -> anyhow::Result<Vec<(String, TestResult)>> {
    const KINDS: [TestResult; 3] = [
        TestResult::Pending,
        TestResult::Negative,
        TestResult::Positive,
    ];
    let guids: Vec<(String, TestResult)> = (0..count)
        .map(|i| (crate::bench::new_guid(), KINDS[i % KINDS.len()]))
        .collect();
    let posted: Vec<_> = guids
        .iter()
        .filter(|(_, result)| *result != TestResult::Pending)
        .cloned()
        .collect();
    crate::bench::post_lab_results(client, stack.lab, &posted).await?;
    let (client, proxy) = (client.clone(), stack.proxy);
    crate::bench::for_each_concurrently(guids, concurrency, move |(guid, result)| {
        let client = client.clone();
        async move { Ok((crate::bench::register(&client, proxy, &guid).await?, result)) }
    })
    .await
}

/// The poll's JSON body for `token`.
fn poll_body(token: &str) -> Bytes {
    Bytes::from(serde_json::json!({ "registrationToken": token }).to_string())
}

/// One poll of each kind reads the result its lab posted (or pending): the load measures real
/// answers.
async fn check_answers(
    client: &reqwest::Client,
    proxy: SocketAddr,
    tokens: &[(String, TestResult)],
) -> anyhow::Result<()> {
    for (token, expected) in tokens.iter().take(3) {
        let answer: serde_json::Value = client
            .post(format!("http://{proxy}/version/v1/testresult"))
            .header("content-type", "application/json")
            .body(poll_body(token))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let read = answer["testResult"].as_i64().context("no testResult")?;
        anyhow::ensure!(
            read == i64::from(expected.code()),
            "a poll read {read}, not {} ({expected:?})",
            expected.code()
        );
    }
    Ok(())
}

async fn poll(
    proxy: SocketAddr,
    tokens: &[(String, TestResult)],
    args: &BenchPollingArgs,
) -> anyhow::Result<Report> {
    let bodies: Arc<Vec<Bytes>> = Arc::new(tokens.iter().map(|(t, _)| poll_body(t)).collect());
    let generator: load::Generator = Arc::new(move |n| {
        let body = bodies
            .get(usize::try_from(n).unwrap_or(0) % bodies.len().max(1))
            .cloned()
            .unwrap_or_default();
        let mut request = hyper::Request::new(http_body_util::Full::new(body));
        *request.method_mut() = hyper::Method::POST;
        *request.uri_mut() = hyper::Uri::from_static("/version/v1/testresult");
        request.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("application/json"),
        );
        request
    });
    let spec = load::Spec {
        addr: proxy,
        connections: args.connections,
        warmup: WARMUP,
        duration: args.duration,
        expected_status: 200,
        watch: Vec::new(),
    };
    load::run_dedicated(spec, generator).await
}

fn print_run(backend: Backend, args: &BenchPollingArgs, report: &Report) {
    println!(
        "{}",
        report.line(&format!("{}, {} conns", backend.name(), args.connections))
    );
    // This process is the services and the load client; the client's thread is measured apart.
    let services = report
        .cpu
        .this
        .saturating_sub(report.client_cpu.unwrap_or_default());
    let (postgres, redis) = match backend {
        Backend::Sqlite => (None, None),
        Backend::Postgres => (report.cpu.postgres, report.cpu.redis),
    };
    let requests = usize::try_from(report.requests).unwrap_or(usize::MAX);
    println!(
        "{:<22} {}; load client {} (not included)",
        "",
        crate::bench::cpu_per_request(
            &[
                ("services", Some(services)),
                ("postgres", postgres),
                ("redis", redis),
            ],
            requests
        ),
        load::per_request(report.client_cpu, report.requests),
    );
}

#[tokio::main]
pub async fn run(args: BenchPollingArgs) -> anyhow::Result<()> {
    println!(
        "machine: {} cores; release build: {}",
        std::thread::available_parallelism().map_or(0, usize::from),
        !cfg!(debug_assertions)
    );
    let client = openwarn_sim::app::http_client(|b| {
        b.pool_max_idle_per_host(args.connections).tcp_nodelay(true)
    })?;
    let mut failed = 0;
    for backend in args.backends.clone() {
        match backend {
            Backend::Sqlite => println!(
                "sqlite: test result and verification on SQLite files, key-value store in memory (as `openwarn up`)"
            ),
            Backend::Postgres => println!(
                "postgres: test result and verification on PostgreSQL ({}), key-value store {}",
                args.postgres.url.split('@').next_back().unwrap_or(""),
                args.redis.redis_url
            ),
        }
        let stack = start_stack(backend, &args).await?;
        let prepared = Instant::now();
        let tokens = prepare(&client, &stack, args.registrations, args.connections).await?;
        check_answers(&client, stack.proxy, &tokens).await?;
        println!(
            "{}: prepared {} registrations (a third each pending, negative, positive) in {:.1} s; polling for {:.0} s after a {} s warm-up",
            backend.name(),
            tokens.len(),
            prepared.elapsed().as_secs_f64(),
            args.duration.as_secs_f64(),
            WARMUP.as_secs()
        );
        let report = poll(stack.proxy, &tokens, &args).await?;
        for service in stack.services {
            service.shutdown().await?;
        }
        print_run(backend, &args, &report);
        failed += report.errors + report.unexpected;
    }
    anyhow::ensure!(failed == 0, "{failed} polls failed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poll_body_carries_the_token() {
        let body = poll_body("0b3a4f6c-1d2e-4f5a-8b9c-0d1e2f3a4b5c");
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            json["registrationToken"],
            "0b3a4f6c-1d2e-4f5a-8b9c-0d1e2f3a4b5c"
        );
    }
}
