//! Fake and real requests through the proxy, per route: the same status and body length, and
//! latency distributions that a two-sample Kolmogorov–Smirnov test does not separate.
//!
//! The test: per route, real and fake requests alternate (as phones send them), in the order
//! real-fake, fake-real, real-fake, … so that as many reals as fakes follow each kind, with a
//! pause after each request (a phone does not send back to back: the work a real request leaves
//! behind in the co-located backends must not slow the next request down). After 50 unmeasured
//! pairs that warm the route up, n = 200 of each are timed at the client. The
//! sampler of fake delays has a fixed seed. The null hypothesis (both samples from one
//! distribution) is rejected when D > c(α)·√((n+m)/(n·m)) with α = 0.001, c(α) = 1.949, i.e.
//! D > 0.195. So a correct proxy fails this test with probability at most 0.1 % per route, 0.4 %
//! per run (four routes) — the documented false-alarm rate. It is a statistical test, not a
//! timing threshold: no latency value is asserted.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration test: a failure is a failed test"
)]

use openwarn_e2e::{Chain, payload, sha256_hex};
use openwarn_protocol::Message;
use std::time::Instant;

const N: usize = 200;
const WARMUP: usize = 50;
/// Idle time after each request, longer than the work a request leaves behind.
const PAUSE: std::time::Duration = std::time::Duration::from_millis(2);
const C_ALPHA: f64 = 1.949; // α = 0.001

/// The two-sample Kolmogorov–Smirnov statistic: the largest distance between the empirical CDFs.
fn ks_statistic(a: &[f64], b: &[f64]) -> f64 {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    let (mut i, mut j, mut d) = (0, 0, 0.0f64);
    while i < a.len() && j < b.len() {
        let x = a[i].min(b[j]);
        while i < a.len() && a[i] <= x {
            i += 1;
        }
        while j < b.len() && b[j] <= x {
            j += 1;
        }
        d = d.max((i as f64 / a.len() as f64 - j as f64 / b.len() as f64).abs());
    }
    d
}

fn critical(n: usize, m: usize) -> f64 {
    C_ALPHA * (((n + m) as f64) / ((n * m) as f64)).sqrt()
}

#[test]
fn ks_statistic_is_right_on_known_samples() {
    let a: Vec<f64> = (0..100).map(f64::from).collect();
    assert!(ks_statistic(&a, &a) < 1e-12);
    let shifted: Vec<f64> = (50..150).map(f64::from).collect();
    assert!((ks_statistic(&a, &shifted) - 0.5).abs() < 1e-12);
    let apart: Vec<f64> = (1000..1100).map(f64::from).collect();
    assert!((ks_statistic(&a, &apart) - 1.0).abs() < 1e-12);
    assert!((critical(200, 200) - 0.1949).abs() < 1e-3);
}

#[derive(Default)]
struct Sample {
    statuses: Vec<u16>,
    lengths: Vec<usize>,
    millis: Vec<f64>,
    bodies: Vec<bytes::Bytes>,
}

impl Sample {
    async fn push(&mut self, client: &reqwest::Client, request: reqwest::Request) {
        let started = Instant::now();
        let response = client.execute(request).await.unwrap();
        let status = response.status().as_u16();
        let body = response.bytes().await.unwrap();
        self.millis.push(started.elapsed().as_secs_f64() * 1000.0);
        self.statuses.push(status);
        self.lengths.push(body.len());
        self.bodies.push(body);
    }
}

/// Real and fake requests alternating, as phones send them: real first in even pairs, fake first
/// in odd ones, [`PAUSE`] after each request.
///
/// The phone runs on a thread, runtime and CPU of its own, as on its own device: sharing the
/// services' runtime or CPU, its reading of a real answer would queue behind the work the
/// backends still do after answering (their connection tasks, TLS), which no observer of the
/// proxy on the network sees — a co-location artifact of tens of microseconds that this test
/// would otherwise detect.
async fn alternate(
    real: Vec<reqwest::RequestBuilder>,
    fake: Vec<reqwest::RequestBuilder>,
) -> (Sample, Sample) {
    let pairs: Vec<(reqwest::Request, reqwest::Request)> = real
        .into_iter()
        .zip(fake)
        .map(|(real, fake)| (real.build().unwrap(), fake.build().unwrap()))
        .collect();
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        pin_to(PHONE_CPU.get().copied().flatten());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let samples = runtime.block_on(async move {
            let phone = openwarn_testkit::http_client();
            let (mut r, mut f) = (Sample::default(), Sample::default());
            for (i, (real, fake)) in pairs.into_iter().enumerate() {
                if i % 2 == 0 {
                    r.push(&phone, real).await;
                    tokio::time::sleep(PAUSE).await;
                    f.push(&phone, fake).await;
                } else {
                    f.push(&phone, fake).await;
                    tokio::time::sleep(PAUSE).await;
                    r.push(&phone, real).await;
                }
                tokio::time::sleep(PAUSE).await;
            }
            (r, f)
        });
        let _ = done.send(samples);
    });
    let (mut r, mut f) = result.await.expect("the phone's thread panicked");
    // The first WARMUP pairs warmed the route up; they are not measured. (The real answers are
    // all kept: they carry the tokens and TANs the next routes need.)
    for s in [&mut r, &mut f] {
        s.statuses.drain(..WARMUP);
        s.lengths.drain(..WARMUP);
        s.millis.drain(..WARMUP);
    }
    assert_eq!(r.millis.len(), N);
    (r, f)
}

fn compare(route: &str, real: &Sample, fake: &Sample) {
    let status = real.statuses[0];
    assert!(
        real.statuses.iter().all(|s| *s == status),
        "{route}: every real request succeeded: {:?}",
        real.statuses
    );
    assert!(
        fake.statuses.iter().all(|s| *s == status),
        "{route}: fakes have the real status"
    );
    let lengths: std::collections::BTreeSet<usize> =
        real.lengths.iter().chain(&fake.lengths).copied().collect();
    assert_eq!(
        lengths.len(),
        1,
        "{route}: one body length for real and fake: {lengths:?}"
    );
    let d = ks_statistic(&real.millis, &fake.millis);
    let limit = critical(real.millis.len(), fake.millis.len());
    let quantiles = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        [0.1, 0.5, 0.9].map(|q| v[((v.len() - 1) as f64 * q) as usize])
    };
    eprintln!(
        "{route}: D = {d:.3} (reject above {limit:.3}); real p10/p50/p90 {:.2?} ms, fake {:.2?} ms",
        quantiles(&real.millis),
        quantiles(&fake.millis)
    );
    assert!(
        d <= limit,
        "{route}: KS separates fake from real latencies: D = {d:.3} > {limit:.3}"
    );
}

/// The CPUs this process may run on.
fn allowed_cpus() -> Vec<usize> {
    use nix::sched::{CpuSet, sched_getaffinity};
    sched_getaffinity(nix::unistd::Pid::from_raw(0))
        .map(|set| {
            (0..CpuSet::count())
                .filter(|&cpu| set.is_set(cpu).unwrap_or(false))
                .collect()
        })
        .unwrap_or_default()
}

/// Keeps the calling thread on `cpu` (best effort: unpinned if that fails).
fn pin_to(cpu: Option<usize>) {
    let mut set = nix::sched::CpuSet::new();
    if let Some(cpu) = cpu
        && set.set(cpu).is_ok()
    {
        let _ = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set);
    }
}

/// Where the phone's thread runs: a CPU of its own, when the machine has two.
static PHONE_CPU: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();

/// The services (one worker, and their blocking threads) on one CPU, the phone on another, as on
/// two devices: the phone's wake-up on an answer must not wait for the work the backends do
/// after answering a real request.
#[test]
fn fakes_are_indistinguishable_from_real_requests() {
    let cpus = allowed_cpus();
    let services_cpu = cpus.first().copied().filter(|_| cpus.len() > 1);
    PHONE_CPU.get_or_init(|| cpus.get(1).copied());
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .on_thread_start(move || pin_to(services_cpu))
        .build()
        .unwrap()
        .block_on(fakes_against_reals());
}

async fn fakes_against_reals() {
    let db = openwarn_testkit::TestDatabase::sqlite();
    let chain = Chain::start(&db, "memory://", &[]).await;
    let phone = openwarn_testkit::http_client();
    let json = |path: &str, body: serde_json::Value, fake: bool| {
        phone
            .post(chain.proxy_url(path))
            .header("content-type", "application/json")
            .header("cwa-fake", if fake { "1" } else { "0" })
            .body(body.to_string())
    };

    // N people tested positive, and WARMUP more whose requests warm each route up unmeasured
    // (connections, caches, the reservoir): the test is about steady state.
    let guids: Vec<String> = (0..N + WARMUP)
        .map(|_| sha256_hex(uuid::Uuid::new_v4().to_string()))
        .collect();
    let results: Vec<_> = guids
        .iter()
        .map(|g| serde_json::json!({"id": g, "result": 2}))
        .collect();
    let r = chain
        .lab_client(Some("lab"))
        .post(chain.lab_url())
        .json(&serde_json::json!({"labId": "lab", "testResults": results}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);

    // registrationToken
    let (real, fake) = alternate(
        guids
            .iter()
            .map(|g| {
                json(
                    "registrationToken",
                    serde_json::json!({"key": g, "keyType": "GUID"}),
                    false,
                )
            })
            .collect(),
        (0..N + WARMUP)
            .map(|_| {
                json(
                    "registrationToken",
                    serde_json::json!({"key": sha256_hex("x"), "keyType": "GUID"}),
                    true,
                )
            })
            .collect(),
    )
    .await;
    compare("registrationToken", &real, &fake);
    let tokens: Vec<String> = real
        .bodies
        .iter()
        .map(|b| {
            serde_json::from_slice::<serde_json::Value>(b).unwrap()["registrationToken"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();

    // testresult
    let (real, fake) = alternate(
        tokens
            .iter()
            .map(|t| {
                json(
                    "testresult",
                    serde_json::json!({"registrationToken": t}),
                    false,
                )
            })
            .collect(),
        tokens
            .iter()
            .map(|t| {
                json(
                    "testresult",
                    serde_json::json!({"registrationToken": t}),
                    true,
                )
            })
            .collect(),
    )
    .await;
    compare("testresult", &real, &fake);

    // tan: one real TAN per registration.
    let (real, fake) = alternate(
        tokens
            .iter()
            .map(|t| json("tan", serde_json::json!({"registrationToken": t}), false))
            .collect(),
        tokens
            .iter()
            .map(|t| json("tan", serde_json::json!({"registrationToken": t}), true))
            .collect(),
    )
    .await;
    compare("tan", &real, &fake);
    let tans: Vec<String> = real
        .bodies
        .iter()
        .map(|b| {
            serde_json::from_slice::<serde_json::Value>(b).unwrap()["tan"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();

    // diagnosis-keys: 14 keys each, with those TANs.
    let upload = |tan: &str, fake: bool, seed: u8| {
        phone
            .post(chain.proxy_url("diagnosis-keys"))
            .header("content-type", "application/x-protobuf")
            .header("cwa-authorization", tan)
            .header("cwa-fake", if fake { "1" } else { "0" })
            .body(payload(14, seed).encode_to_vec())
    };
    let (real, fake) = alternate(
        tans.iter()
            .enumerate()
            .map(|(i, t)| upload(t, false, (i % 250) as u8))
            .collect(),
        tans.iter().map(|t| upload(t, true, 0)).collect(),
    )
    .await;
    compare("diagnosis-keys", &real, &fake);
    chain.shutdown().await;
}
