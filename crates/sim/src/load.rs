//! `openwarn sim load`: a population of phones whose app sessions start at a fixed rate, each
//! doing what an app does when it wakes up — download what is new, sometimes run a test
//! (register, poll, get a TAN, upload; the lab posts the result), sometimes send a fake
//! playbook — with throughput and p50/p95/p99 latency per endpoint, and every error.

use super::StackArgs;
use super::app::{self, Client, Endpoint};
use anyhow::Context;
use openwarn_domain::TestResult;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct LoadArgs {
    #[command(flatten)]
    pub stack: StackArgs,
    /// Population: distinct phones (each with its own address, TEKs and test).
    #[arg(long, default_value_t = 10_000)]
    pub phones: u32,
    /// App sessions started per second; session k is phone k mod --phones, so
    /// rate × duration = phones plays each phone's day once.
    #[arg(long, default_value_t = 200.0)]
    pub rate: f64,
    /// How long sessions are started for.
    #[arg(long, default_value = "60s", value_parser = openwarn_bootstrap::config::parse_duration)]
    pub duration: Duration,
    /// Share of sessions in which the phone has a test (QR code): registration, polling, the
    /// lab's result, and for positives a TAN and an upload.
    #[arg(long, default_value_t = 0.02)]
    pub test_share: f64,
    /// Share of tests that are positive.
    #[arg(long, default_value_t = 0.1)]
    pub positive_share: f64,
    /// Share of sessions that send a fake playbook (registration, test result, TAN, upload).
    #[arg(long, default_value_t = 0.5)]
    pub fake_share: f64,
    /// Sessions in flight at most; when reached, new sessions start late (reported).
    #[arg(long, default_value_t = 4096)]
    pub max_in_flight: usize,
    #[arg(long)]
    pub seed: Option<u64>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Latencies (microseconds) and errors per endpoint label.
#[derive(Default)]
struct Stats {
    by_label: Mutex<BTreeMap<&'static str, Series>>,
    requests: AtomicUsize,
    errors: AtomicUsize,
}

#[derive(Default)]
struct Series {
    micros: Vec<u32>,
    errors: usize,
    first_errors: Vec<String>,
}

impl Stats {
    /// Records a request's outcome: a success when `ok(status)`, else an error with the status
    /// and body; a transport error with its message. Returns the answer of a success.
    fn outcome(
        &self,
        label: &'static str,
        started: Instant,
        answer: Result<app::Answer, app::ClientError>,
        ok: impl Fn(reqwest::StatusCode) -> bool,
    ) -> Option<app::Answer> {
        match answer {
            Ok(answer) if ok(answer.status) => {
                self.record(label, answer.latency, None);
                Some(answer)
            }
            Ok(answer) => {
                let error = format!(
                    "status {}: {}",
                    answer.status,
                    String::from_utf8_lossy(&answer.body)
                );
                self.record(label, answer.latency, Some(error));
                None
            }
            Err(e) => {
                let e = anyhow::Error::from(e);
                self.record(label, started.elapsed(), Some(format!("{e:#}")));
                None
            }
        }
    }

    fn record(&self, label: &'static str, latency: Duration, error: Option<String>) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        // A poisoned lock still guards whole series (a panicking task cannot leave one half
        // written): keep counting.
        let mut map = self.by_label.lock().unwrap_or_else(PoisonError::into_inner);
        let series = map.entry(label).or_default();
        series
            .micros
            .push(u32::try_from(latency.as_micros()).unwrap_or(u32::MAX));
        if let Some(e) = error {
            self.errors.fetch_add(1, Ordering::Relaxed);
            series.errors += 1;
            if series.first_errors.len() < 3 {
                series.first_errors.push(e);
            }
        }
    }
}

#[derive(Debug, Serialize)]
pub struct EndpointReport {
    pub endpoint: String,
    pub requests: usize,
    pub per_second: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub errors: usize,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub first_errors: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct LoadReport {
    pub phones: u32,
    pub sessions: usize,
    pub sessions_started_late: usize,
    pub seconds: f64,
    pub requests: usize,
    pub requests_per_second: f64,
    pub errors: usize,
    pub endpoints: Vec<EndpointReport>,
}

fn quantile(sorted: &[u32], q: f64) -> f64 {
    sorted
        .get(((sorted.len().saturating_sub(1)) as f64 * q).round() as usize)
        .map_or(0.0, |m| f64::from(*m) / 1000.0)
}

/// Who is asking: the statistics, the client, the phone's address.
struct Ctx<'a> {
    stats: &'a Stats,
    client: &'a Client,
    address: std::net::Ipv4Addr,
}

/// The report's name of an endpoint (fakes separately).
fn label(endpoint: Endpoint, fake: bool) -> &'static str {
    match (endpoint, fake) {
        (Endpoint::RegistrationToken, false) => "registrationToken",
        (Endpoint::TestResult, false) => "testresult",
        (Endpoint::Tan, false) => "tan",
        (Endpoint::DiagnosisKeys, false) => "diagnosis-keys",
        (Endpoint::RegistrationToken, true) => "fake registrationToken",
        (Endpoint::TestResult, true) => "fake testresult",
        (Endpoint::Tan, true) => "fake tan",
        (Endpoint::DiagnosisKeys, true) => "fake diagnosis-keys",
    }
}

/// Times one app request and checks its status.
async fn app_request(
    ctx: &Ctx<'_>,
    endpoint: Endpoint,
    body: Vec<u8>,
    fake: bool,
    tan: Option<&str>,
    expected: reqwest::StatusCode,
) -> Option<app::Answer> {
    let (stats, client, address) = (ctx.stats, ctx.client, ctx.address);
    let label = label(endpoint, fake);
    let started = Instant::now();
    let answer = client.app(endpoint, address, body, fake, tan).await;
    stats.outcome(label, started, answer, |s| s == expected)
}

async fn cdn_request(
    stats: &Stats,
    client: &Client,
    label: &'static str,
    path: &str,
) -> Option<app::Answer> {
    let started = Instant::now();
    let answer = client.cdn(path).await;
    stats.outcome(label, started, answer, |s| s.is_success())
}

struct Session {
    phone: u32,
    test: Option<bool>,
    fake_playbook: bool,
    seed: u64,
}

/// What one phone does when its app wakes up.
async fn session(stats: Arc<Stats>, client: Client, s: Session, now: u64) {
    let address = std::net::Ipv4Addr::from(0x0A00_0001 + s.phone);
    let mut rng = rand::rngs::StdRng::seed_from_u64(s.seed);
    let cc = client.country.clone();

    // Downloads: the date index, today's hour index, the newest hour package, the app config.
    let base = format!("diagnosis-keys/country/{cc}/date");
    cdn_request(&stats, &client, "cdn date index", &base).await;
    let today = super::download::date(i64::try_from(now / 86_400).unwrap_or(0));
    if let Some(answer) = cdn_request(
        &stats,
        &client,
        "cdn hour index",
        &format!("{base}/{today}/hour"),
    )
    .await
    {
        let hours: Vec<u32> = serde_json::from_slice(&answer.body).unwrap_or_default();
        if let Some(h) = hours.last() {
            cdn_request(
                &stats,
                &client,
                "cdn hour package",
                &format!("{base}/{today}/hour/{h}"),
            )
            .await;
        }
    }
    cdn_request(
        &stats,
        &client,
        "cdn app_config",
        &format!("configuration/country/{cc}/app_config"),
    )
    .await;

    let ctx = Ctx {
        stats: &stats,
        client: &client,
        address,
    };
    if let Some(positive) = s.test {
        test(&ctx, positive, &mut rng).await;
    }
    if s.fake_playbook {
        for endpoint in Endpoint::ALL {
            let body = app::fake_body(endpoint, &mut rng, &cc);
            app_request(&ctx, endpoint, body, true, None, endpoint.success()).await;
        }
    }
}

impl Ctx<'_> {
    /// A real request, which must succeed.
    async fn real(
        &self,
        endpoint: Endpoint,
        body: Vec<u8>,
        tan: Option<&str>,
    ) -> Option<app::Answer> {
        app_request(self, endpoint, body, false, tan, endpoint.success()).await
    }

    /// The JSON field `name` of a real answer of `endpoint`, recorded as an error if missing.
    fn field(
        &self,
        endpoint: Endpoint,
        answer: &app::Answer,
        name: &str,
    ) -> Option<serde_json::Value> {
        let value = answer
            .json()
            .ok()
            .map(|v| v[name].clone())
            .filter(|v| !v.is_null());
        if value.is_none() {
            self.stats.record(
                label(endpoint, false),
                Duration::ZERO,
                Some(format!("no {name}")),
            );
        }
        value
    }
}

/// A QR-code test: register, poll (pending), the lab posts, poll (result), and for a positive
/// one the TAN and an upload of 14 keys.
async fn test(ctx: &Ctx<'_>, positive: bool, rng: &mut impl Rng) {
    let (stats, client) = (ctx.stats, ctx.client);
    let guid = uuid::Builder::from_random_bytes(rng.random())
        .into_uuid()
        .to_string();
    let hash = openwarn_domain::sha256_hex(&guid);
    let body = app::padded(
        json!({"key": hash, "keyType": "GUID"}),
        app::JSON_REQUEST_BYTES,
    );
    let Some(answer) = ctx.real(Endpoint::RegistrationToken, body, None).await else {
        return;
    };
    let Some(token) = ctx.field(Endpoint::RegistrationToken, &answer, "registrationToken") else {
        return;
    };
    let token_body = || app::padded(json!({"registrationToken": token}), app::JSON_REQUEST_BYTES);
    ctx.real(Endpoint::TestResult, token_body(), None).await;
    let expected = if positive {
        TestResult::Positive
    } else {
        TestResult::Negative
    };
    let started = Instant::now();
    let posted = client.lab_results(&[(hash, expected)]).await;
    stats.outcome("lab results", started, posted, |s| s.is_success());
    let Some(answer) = ctx.real(Endpoint::TestResult, token_body(), None).await else {
        return;
    };
    let result = ctx.field(Endpoint::TestResult, &answer, "testResult");
    let read = result
        .as_ref()
        .and_then(serde_json::Value::as_i64)
        .and_then(|code| TestResult::try_from(code).ok());
    if read != Some(expected) {
        stats.record(
            "testresult",
            Duration::ZERO,
            Some(format!("result {result:?}, expected {}", expected.code())),
        );
        return;
    }
    if !positive {
        return;
    }
    let Some(answer) = ctx.real(Endpoint::Tan, token_body(), None).await else {
        return;
    };
    let Some(tan) = ctx.field(Endpoint::Tan, &answer, "tan") else {
        return;
    };
    let payload = app::submission(app::random_keys(rng), &client.country);
    ctx.real(Endpoint::DiagnosisKeys, payload, tan.as_str())
        .await;
}

pub async fn run(args: LoadArgs) -> anyhow::Result<()> {
    check_args(&args)?;
    let (_, client, _) = args.stack.open(args.max_in_flight)?;
    client
        .index::<Vec<String>>("diagnosis-keys/country")
        .await
        .context("the CDN does not answer; is `openwarn up` running?")?;
    let stats = Arc::new(Stats::default());
    let started = Instant::now();
    let sessions = run_sessions(&args, &client, &stats, started).await?;
    let report = report(&args, &stats, &sessions, started.elapsed().as_secs_f64());
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(())
}

/// Refuses a population, rate or share that cannot be played.
fn check_args(args: &LoadArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.phones > 0, "--phones: at least 1");
    anyhow::ensure!(args.rate > 0.0, "--rate: more than 0");
    for (name, share) in [
        ("--test-share", args.test_share),
        ("--positive-share", args.positive_share),
        ("--fake-share", args.fake_share),
    ] {
        anyhow::ensure!(
            (0.0..=1.0).contains(&share),
            "{name}: between 0 and 1, got {share}"
        );
    }
    Ok(())
}

/// How many sessions were started, and how many of those late (`--max-in-flight` reached).
struct Sessions {
    started: usize,
    late: usize,
}

/// Starts a session every 1/`--rate` s for `--duration`, at most `--max-in-flight` at once,
/// printing progress every 5 s; returns when every session has ended.
async fn run_sessions(
    args: &LoadArgs,
    client: &Client,
    stats: &Arc<Stats>,
    started: Instant,
) -> anyhow::Result<Sessions> {
    let limit = Arc::new(tokio::sync::Semaphore::new(args.max_in_flight));
    let mut rng = rand::rngs::StdRng::seed_from_u64(args.seed.unwrap_or_else(rand::random));
    let now = super::now_secs();
    let period = Duration::from_secs_f64(1.0 / args.rate);
    let mut tasks = tokio::task::JoinSet::new();
    let mut count = Sessions {
        started: 0,
        late: 0,
    };
    let mut next_progress = started + Duration::from_secs(5);
    loop {
        let due = started + period.mul_f64(count.started as f64);
        if due > started + args.duration {
            break;
        }
        tokio::time::sleep_until(due.into()).await;
        let permit = match limit.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                count.late += 1;
                limit.clone().acquire_owned().await?
            }
        };
        let s = draw_session(args, &mut rng, count.started);
        let (task_stats, client) = (stats.clone(), client.clone());
        tasks.spawn(async move {
            session(task_stats, client, s, now).await;
            drop(permit);
        });
        count.started += 1;
        while tasks.try_join_next().is_some() {}
        if Instant::now() >= next_progress {
            next_progress += Duration::from_secs(5);
            print_progress(started, count.started, tasks.len(), stats);
        }
    }
    while tasks.join_next().await.is_some() {}
    Ok(count)
}

/// Session `k`: phone k mod `--phones`, whether it has a test (and whether positive), whether it
/// sends a fake playbook, and the seed of its own randomness.
fn draw_session(args: &LoadArgs, rng: &mut impl Rng, k: usize) -> Session {
    Session {
        phone: u32::try_from(k % args.phones as usize).unwrap_or(0),
        test: rng
            .random_bool(args.test_share)
            .then(|| rng.random_bool(args.positive_share)),
        fake_playbook: rng.random_bool(args.fake_share),
        seed: rng.random(),
    }
}

fn print_progress(started: Instant, sessions: usize, in_flight: usize, stats: &Stats) {
    eprintln!(
        "sim load: {:>4.0} s  {sessions} sessions  {in_flight} in flight  {} requests  {} errors",
        started.elapsed().as_secs_f64(),
        stats.requests.load(Ordering::Relaxed),
        stats.errors.load(Ordering::Relaxed)
    );
}

/// The report of a finished load: totals, and per endpoint its rate, quantiles and errors.
fn report(args: &LoadArgs, stats: &Stats, sessions: &Sessions, seconds: f64) -> LoadReport {
    let map = std::mem::take(
        &mut *stats
            .by_label
            .lock()
            .unwrap_or_else(PoisonError::into_inner),
    );
    let endpoints: Vec<EndpointReport> = map
        .into_iter()
        .map(|(label, mut s)| {
            s.micros.sort_unstable();
            EndpointReport {
                endpoint: label.to_owned(),
                requests: s.micros.len(),
                per_second: s.micros.len() as f64 / seconds,
                p50_ms: quantile(&s.micros, 0.50),
                p95_ms: quantile(&s.micros, 0.95),
                p99_ms: quantile(&s.micros, 0.99),
                errors: s.errors,
                first_errors: s.first_errors,
            }
        })
        .collect();
    let requests = stats.requests.load(Ordering::Relaxed);
    LoadReport {
        phones: args.phones,
        sessions: sessions.started,
        sessions_started_late: sessions.late,
        seconds,
        requests,
        requests_per_second: requests as f64 / seconds,
        errors: stats.errors.load(Ordering::Relaxed),
        endpoints,
    }
}

/// The report as text: a summary line, then a table of the endpoints with their first errors.
fn print_report(report: &LoadReport) {
    println!(
        "{} phones, {} sessions in {:.1} s ({} started late), {} requests ({:.0}/s), {} errors",
        report.phones,
        report.sessions,
        report.seconds,
        report.sessions_started_late,
        report.requests,
        report.requests_per_second,
        report.errors
    );
    println!(
        "{:<24} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7}",
        "endpoint", "requests", "per s", "p50 ms", "p95 ms", "p99 ms", "errors"
    );
    for e in &report.endpoints {
        println!(
            "{:<24} {:>9} {:>9.1} {:>9.2} {:>9.2} {:>9.2} {:>7}",
            e.endpoint, e.requests, e.per_second, e.p50_ms, e.p95_ms, e.p99_ms, e.errors
        );
        for first in &e.first_errors {
            println!("    error: {first}");
        }
    }
}
