//! Faults under load (issue 19 §1): the stack as separate `openwarn service` processes on a
//! PostgreSQL cluster and a Redis of the test's own, distribution publishing to an S3-compatible
//! server (moto) through a relay the test can switch off, and phones uploading all the while.
//! In turn: kill -9 and restart the proxy, verification, submission, test-result, distribution
//! during a publishing run; crash and restart PostgreSQL; restart Redis; the object store
//! unreachable during a run. Then everything is published and downloaded, and:
//!
//! - every key whose upload answered 200 is in exactly one published hour package;
//! - no TAN uploads twice: every TAN used is refused when replayed with new keys at the end, and
//!   none of those keys is published;
//! - no phone is stranded: each one that met a fault retried (the same TAN, or a new one when
//!   submission said so) and got its 200;
//! - no 5xx outside a fault's window (from the fault until the stack answered a whole phone
//!   again), never a 500, and the services answer 503 while PostgreSQL is down;
//! - every service recovers by itself once its dependency is back; the time it took is printed
//!   (a measurement, not asserted).
//!
//! Needs `initdb`/`pg_ctl`, `redis-server` and moto; without them the test skips, except under
//! `CI=true`, where it fails. `cargo test -p openwarn --test faults -- --nocapture` shows the
//! recovery times.

#![cfg(unix)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration test: a failure is a failed test"
)]

use openwarn_domain::TestResult;
use openwarn_mtls::DevPki;
use openwarn_protocol::gaen::TemporaryExposureKey;
use openwarn_sim::app::{Client, Endpoint, JSON_REQUEST_BYTES, padded, submission};
use openwarn_testkit::own::{Postgres, Redis, Relay, log_lines_with};
use openwarn_testkit::process::{Ports, ServiceProcess};
use rand::Rng;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Phones uploading at once, all the time.
const PHONES: usize = 4;
/// A phone that has not got its 200 this long after it started is stranded.
const STRANDED_AFTER: Duration = Duration::from_secs(150);

/// One answer a phone (or lab) got, or `None` for no answer (connection refused or cut).
#[derive(Debug, Clone)]
#[allow(dead_code, reason = "shown (Debug) in the failure messages")]
struct Answered {
    what: &'static str,
    status: Option<u16>,
    started: Instant,
    ended: Instant,
}

#[derive(Default)]
struct Record {
    answers: Vec<Answered>,
    /// Keys (data) whose upload answered 200, with their rolling start and when.
    accepted: HashMap<[u8; 16], (i32, Instant)>,
    /// Every TAN a phone uploaded with, and how many of its uploads answered 200.
    tans: HashMap<String, u32>,
    phones: usize,
    stranded: Vec<String>,
}

struct Load {
    client: Client,
    record: Mutex<Record>,
    next_address: AtomicU32,
}

fn guid_hash() -> String {
    openwarn_domain::sha256_hex(uuid::Uuid::new_v4().to_string())
}

/// 14 keys of random data, 1 to 14 days old (all past their validity, so published in the hour
/// they were submitted, or two hours after midnight at the latest).
fn keys() -> Vec<TemporaryExposureKey> {
    let today = i32::try_from(openwarn_bootstrap::lifecycle::unix_now() / 600 / 144 * 144).unwrap();
    let mut rng = rand::rng();
    (1..=14u32)
        .map(|age| TemporaryExposureKey {
            key_data: Some(rng.random::<[u8; 16]>().to_vec()),
            transmission_risk_level: Some(openwarn_sim::app::transmission_risk_level(age)),
            rolling_start_interval_number: Some(today - 144 * i32::try_from(age).unwrap()),
            rolling_period: Some(144),
            report_type: Some(1),
            days_since_onset_of_symptoms: None,
        })
        .collect()
}

/// Why a phone could not go on.
type Stranded = String;

impl Load {
    fn record(&self, what: &'static str, status: Option<u16>, started: Instant) {
        self.record.lock().unwrap().answers.push(Answered {
            what,
            status,
            started,
            ended: Instant::now(),
        });
    }

    /// Sends until an answer that is not a 5xx, 429 or a connection error (as an app retries),
    /// recording every answer. Gives up at `deadline`.
    async fn call(
        &self,
        endpoint: Endpoint,
        address: Ipv4Addr,
        body: &[u8],
        tan: Option<&str>,
        deadline: Instant,
    ) -> Result<openwarn_sim::app::Answer, Stranded> {
        loop {
            let started = Instant::now();
            let answer = self
                .client
                .app(endpoint, address, body.to_vec(), false, tan)
                .await;
            let status = answer.as_ref().ok().map(|a| a.status.as_u16());
            self.record(endpoint.path(), status, started);
            match answer {
                Ok(a) if a.status.as_u16() < 500 && a.status.as_u16() != 429 => return Ok(a),
                _ if Instant::now() > deadline => {
                    return Err(format!("{} kept failing: {status:?}", endpoint.path()));
                }
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// A lab posts a positive result (retried like the app's calls).
    async fn lab(&self, hash: &str, deadline: Instant) -> Result<(), Stranded> {
        loop {
            let started = Instant::now();
            let answer = self
                .client
                .lab_results(&[(hash.to_owned(), TestResult::Positive)])
                .await;
            let status = answer.as_ref().ok().map(|a| a.status.as_u16());
            self.record("lab", status, started);
            match status {
                Some(204) => return Ok(()),
                Some(s) if s < 500 => return Err(format!("the lab API answered {s}")),
                _ if Instant::now() > deadline => {
                    return Err(format!("the lab API kept failing: {status:?}"));
                }
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// One phone from its positive result to the 200 of its upload.
    async fn phone(&self) -> Result<(), Stranded> {
        let deadline = Instant::now() + STRANDED_AFTER;
        let n = self.next_address.fetch_add(1, Ordering::Relaxed);
        let address = Ipv4Addr::from(0x0a00_0000 + n);
        let hash = guid_hash();
        self.lab(&hash, deadline).await?;
        let body = padded(json!({"key": hash, "keyType": "GUID"}), JSON_REQUEST_BYTES);
        let reg = self
            .call(Endpoint::RegistrationToken, address, &body, None, deadline)
            .await?;
        if reg.status.as_u16() != 201 {
            return Err(format!(
                "registration answered {}: {:?}",
                reg.status, reg.body
            ));
        }
        let token = reg.json().unwrap()["registrationToken"]
            .as_str()
            .unwrap()
            .to_owned();
        let session = padded(json!({"registrationToken": token}), JSON_REQUEST_BYTES);
        loop {
            let polled = self
                .call(Endpoint::TestResult, address, &session, None, deadline)
                .await?;
            if polled.status.as_u16() == 200 && polled.json().unwrap()["testResult"] == 2 {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "polling answered {}: {:?}",
                    polled.status, polled.body
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let payload = submission(keys(), "DE");
        let sent = sent_keys(&payload);
        loop {
            let tan = self
                .call(Endpoint::Tan, address, &session, None, deadline)
                .await?;
            if tan.status.as_u16() != 201 {
                // `tan_in_use`: an earlier upload's reservation has not lapsed yet.
                if Instant::now() > deadline {
                    return Err(format!("TAN answered {}: {:?}", tan.status, tan.body));
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            let tan = tan.json().unwrap()["tan"].as_str().unwrap().to_owned();
            self.record
                .lock()
                .unwrap()
                .tans
                .entry(tan.clone())
                .or_default();
            // `call` retried 5xx and connection errors with the same TAN.
            let upload = self
                .call(
                    Endpoint::DiagnosisKeys,
                    address,
                    &payload,
                    Some(&tan),
                    deadline,
                )
                .await?;
            match upload.status.as_u16() {
                200 => {
                    let mut record = self.record.lock().unwrap();
                    *record.tans.entry(tan).or_default() += 1;
                    let now = Instant::now();
                    record
                        .accepted
                        .extend(sent.into_iter().map(|(data, start)| (data, (start, now))));
                    return Ok(());
                }
                // Spent, pending a commit or invalid: the app asks for a new TAN.
                403 => {}
                s => return Err(format!("upload answered {s}: {:?}", upload.body)),
            }
        }
    }
}

/// The key data and rolling start of each key of an encoded submission.
fn sent_keys(payload: &[u8]) -> Vec<([u8; 16], i32)> {
    use openwarn_protocol::Message;
    openwarn_protocol::cwa::SubmissionPayload::decode(payload)
        .unwrap()
        .keys
        .iter()
        .map(|k| {
            let data = k.key_data.as_deref().unwrap().try_into().unwrap();
            (data, k.rolling_start_interval_number.unwrap())
        })
        .collect()
}

/// The stack under test and what it runs on.
struct Stack {
    test_result: ServiceProcess,
    verification: ServiceProcess,
    submission: ServiceProcess,
    proxy: ServiceProcess,
    distribution: ServiceProcess,
}

impl Stack {
    fn all(&mut self) -> [&mut ServiceProcess; 5] {
        [
            &mut self.test_result,
            &mut self.verification,
            &mut self.submission,
            &mut self.proxy,
            &mut self.distribution,
        ]
    }

    fn admin(&self) -> String {
        format!("http://127.0.0.1:{}", self.distribution.ports.admin)
    }

    /// Every service ready, and one whole phone through (lab to 200). Returns when it is.
    async fn recovered(&mut self, load: &Load) {
        for service in self.all() {
            service.ready().await;
        }
        load.phone()
            .await
            .unwrap_or_else(|e| panic!("the stack did not recover: {e}"));
    }
}

/// A fault's window: from its start until the stack answered a whole phone again.
struct Window {
    name: String,
    start: Instant,
    end: Instant,
}

/// Called when the fault that began at `start` is healed: waits for recovery, records and
/// prints the fault's window, then lets clean traffic run (any 5xx then is outside every window).
async fn recover(
    name: &str,
    start: Instant,
    stack: &mut Stack,
    load: &Load,
    windows: &mut Vec<Window>,
) {
    let healed = Instant::now();
    stack.recovered(load).await;
    let end = Instant::now();
    eprintln!(
        "faults: {name}: broken for {:.1} s; recovered {:.1} s after it was healed",
        (healed - start).as_secs_f64(),
        (end - healed).as_secs_f64()
    );
    windows.push(Window {
        name: name.to_owned(),
        start,
        end,
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
}

async fn status(url: &str) -> Option<u16> {
    openwarn_testkit::http_client()
        .get(url)
        // A guard against a hang only: a pool checkout gives up after 3 s.
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_accepted_is_lost_under_faults() {
    let Some(pg) = Postgres::start().await else {
        return;
    };
    let Some(mut redis) = Redis::start().await else {
        return;
    };
    let Some(s3) = openwarn_testkit::S3Server::start() else {
        return;
    };
    let s3_relay = Relay::start(s3.endpoint.trim_start_matches("http://").parse().unwrap()).await;
    let (tr_db, v_db, s_db) = (pg.database(), pg.database(), pg.database());
    let (pki_dir, pki) = openwarn_testkit::dev_pki(&[
        "test-result",
        "verification",
        "submission",
        "proxy",
        "distribution",
    ]);
    let logs = tempfile::tempdir().unwrap();
    let signing = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let signing_key = pki_dir.path().join("signing.pem");
    std::fs::write(&signing_key, signing.serialize_pem()).unwrap();
    let verifier =
        openwarn_export::Verifier::from_public_key_pem(&signing.public_key_pem()).unwrap();

    let (tr, v, s, p, d) = (
        Ports::new(),
        Ports::new(),
        Ports::new(),
        Ports::new(),
        Ports::new(),
    );
    let start = |name: &'static str, ports: Ports, pki: &DevPki, extra: Vec<String>| {
        ServiceProcess::start(
            env!("CARGO_BIN_EXE_openwarn"),
            name,
            ports,
            pki,
            &extra,
            Some(logs.path().join(format!("{name}.log"))),
        )
    };
    let kv = |namespace: &str| {
        vec![
            "--kv-url".to_owned(),
            redis.url(),
            "--kv-namespace".to_owned(),
            namespace.to_owned(),
        ]
    };
    let db = |db: &openwarn_testkit::TestDatabase| {
        vec!["--database-url".to_owned(), db.url().to_owned()]
    };
    let mut stack = Stack {
        test_result: start(
            "test-result",
            tr,
            &pki,
            [db(&tr_db), vec!["--lab-insecure-http".into()]].concat(),
        ),
        verification: start(
            "verification",
            v,
            &pki,
            [
                db(&v_db),
                kv("verification"),
                vec![
                    "--test-result-url".into(),
                    tr.grpc_url(),
                    // A reservation whose upload died lapses within the test's patience.
                    "--tan-reservation-ttl".into(),
                    "10s".into(),
                ],
            ]
            .concat(),
        ),
        submission: start(
            "submission",
            s,
            &pki,
            [
                db(&s_db),
                vec![
                    "--verification-url".into(),
                    v.grpc_url(),
                    "--commit-retry-interval".into(),
                    "1s".into(),
                ],
            ]
            .concat(),
        ),
        proxy: start(
            "proxy",
            p,
            &pki,
            [
                kv("proxy"),
                vec![
                    "--verification-http-url".into(),
                    v.https_url(),
                    "--submission-http-url".into(),
                    s.https_url(),
                    "--client-address-header".into(),
                    "x-forwarded-for".into(),
                ],
            ]
            .concat(),
        ),
        distribution: start(
            "distribution",
            d,
            &pki,
            [
                kv("distribution"),
                vec![
                    "--submission-url".into(),
                    s.grpc_url(),
                    format!("--store-url=s3://{}/cdn", s3.bucket),
                    format!("--s3-endpoint={}", s3_relay.url()),
                    "--s3-region=us-east-1".into(),
                    "--s3-access-key-id=test".into(),
                    "--s3-secret-access-key=test".into(),
                    "--signing-keys".into(),
                    format!("v1={}", signing_key.display()),
                    "--padding-secret".into(),
                    "a padding secret for this test".into(),
                    "--manual-runs".into(),
                    "true".into(),
                    "--schedule".into(),
                    "false".into(),
                    // A run killed while holding the lease blocks the next for this long.
                    "--run-lease-ttl".into(),
                    "5s".into(),
                ],
            ]
            .concat(),
        ),
    };
    for service in stack.all() {
        service.ready().await;
    }

    let load = Arc::new(Load {
        client: Client::new(&p.http_url(), &tr.http_url(), &d.http_url(), "DE", PHONES).unwrap(),
        record: Mutex::default(),
        next_address: AtomicU32::new(1),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let phones: Vec<_> = (0..PHONES)
        .map(|_| {
            let (load, stop) = (load.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let outcome = load.phone().await;
                    let mut record = load.record.lock().unwrap();
                    record.phones += 1;
                    if let Err(e) = outcome {
                        record.stranded.push(e);
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut windows = Vec::new();
    for name in ["proxy", "verification", "submission", "test-result"] {
        let start = Instant::now();
        let service = match name {
            "proxy" => &mut stack.proxy,
            "verification" => &mut stack.verification,
            "submission" => &mut stack.submission,
            _ => &mut stack.test_result,
        };
        service.kill().await;
        // Traffic meets the dead service for a while.
        tokio::time::sleep(Duration::from_secs(1)).await;
        service.restart().await;
        recover(
            &format!("kill -9 {name}"),
            start,
            &mut stack,
            &load,
            &mut windows,
        )
        .await;
    }

    // Distribution killed during a publishing run (its first: every hour of the window, slow
    // enough on S3 to be caught under way).
    let admin = stack.admin();
    let start = Instant::now();
    let run = tokio::spawn({
        let admin = admin.clone();
        async move { openwarn_sim::stack::publish(&admin, None).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let under_way = !run.is_finished();
    stack.distribution.kill().await;
    eprintln!("faults: distribution killed with its run under way: {under_way}");
    let _ = run.await;
    stack.distribution.restart().await;
    let report = openwarn_sim::stack::publish(&admin, None).await.unwrap();
    assert!(report["skipped"].is_null(), "{report}");
    let name = "kill -9 distribution during a run";
    recover(name, start, &mut stack, &load, &mut windows).await;

    // PostgreSQL crashes; every service using it answers 503 (never 500) until it is back.
    let start = Instant::now();
    pg.stop("immediate").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    for service in [&stack.test_result, &stack.verification, &stack.submission] {
        let url = format!("http://{}/readyz", service.ports.admin_addr());
        assert_eq!(
            status(&url).await,
            Some(503),
            "{} while PostgreSQL is down",
            service.name
        );
    }
    let lab = load
        .client
        .lab_results(&[(guid_hash(), TestResult::Positive)])
        .await
        .unwrap();
    assert_eq!(
        lab.status.as_u16(),
        503,
        "the lab API while PostgreSQL is down"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    pg.start_again().await;
    let name = "PostgreSQL crash and restart";
    recover(name, start, &mut stack, &load, &mut windows).await;

    // Redis restarts empty; the first publishing run after it publishes.
    let start = Instant::now();
    redis.kill().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Verification needs it (teleTAN limits): not ready, and says so with 503.
    let url = format!("http://{}/readyz", stack.verification.ports.admin_addr());
    assert_eq!(
        status(&url).await,
        Some(503),
        "verification while Redis is down"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    redis.start_again().await;
    recover("Redis restart", start, &mut stack, &load, &mut windows).await;
    let after_redis = openwarn_sim::stack::publish(&admin, None).await;
    assert!(
        after_redis.as_ref().is_ok_and(|r| r["skipped"].is_null()),
        "the first run after Redis came back: {after_redis:?}"
    );

    // The object store is unreachable during a run: the run fails (or waits it out), the next
    // one publishes.
    let start = Instant::now();
    s3_relay.off();
    let during = tokio::time::timeout(
        Duration::from_secs(3),
        openwarn_sim::stack::publish(&admin, None),
    )
    .await;
    eprintln!("faults: a run while the object store is unreachable: {during:?}");
    s3_relay.on();
    let after = openwarn_sim::stack::publish(&admin, None).await.unwrap();
    assert!(after["skipped"].is_null(), "{after}");
    let name = "object store unreachable";
    recover(name, start, &mut stack, &load, &mut windows).await;

    stop.store(true, Ordering::Relaxed);
    for phone in phones {
        phone.await.unwrap();
    }

    // Every TAN used, replayed with new keys: refused, and none of those keys published.
    let mut replayed = HashSet::new();
    let tans: Vec<String> = load.record.lock().unwrap().tans.keys().cloned().collect();
    for (i, tan) in tans.iter().enumerate() {
        let payload = submission(keys(), "DE");
        replayed.extend(sent_keys(&payload).into_iter().map(|(data, _)| data));
        let address = Ipv4Addr::new(192, 168, (i / 250) as u8, (i % 250) as u8 + 1);
        let answer = load
            .call(
                Endpoint::DiagnosisKeys,
                address,
                &payload,
                Some(tan),
                Instant::now() + Duration::from_secs(30),
            )
            .await
            .unwrap();
        assert_eq!(answer.status.as_u16(), 403, "a used TAN replayed");
    }

    // Publish as of three hours from now: every key uploaded is past its embargo by then.
    let hour = openwarn_bootstrap::lifecycle::unix_now() / 3600;
    let now = chrono::DateTime::from_timestamp((hour + 3) * 3600 + 60, 0)
        .unwrap()
        .to_rfc3339();
    let report = openwarn_sim::stack::publish(&admin, Some(&now))
        .await
        .unwrap();
    assert!(report["skipped"].is_null(), "{report}");

    // Download every hour package of DE from yesterday to the publishing day.
    let mut seen: HashMap<[u8; 16], u32> = HashMap::new();
    let mut packages = 0;
    for day in (hour / 24 - 1)..=((hour + 3) / 24) {
        let base = format!(
            "diagnosis-keys/country/DE/date/{}/hour",
            openwarn_sim::download::date(day)
        );
        let hours: Vec<u32> = load.client.index(&base).await.unwrap().unwrap_or_default();
        for h in hours {
            let answer = load.client.cdn(&format!("{base}/{h}")).await.unwrap();
            assert_eq!(answer.status.as_u16(), 200, "{base}/{h}");
            let package = openwarn_export::Package::open(&answer.body).unwrap();
            verifier.verify(&package).unwrap();
            packages += 1;
            for key in package.export().unwrap().keys {
                let data: [u8; 16] = key.key_data.unwrap().as_slice().try_into().unwrap();
                *seen.entry(data).or_default() += 1;
            }
        }
    }

    check(
        &load.record.lock().unwrap(),
        &seen,
        &replayed,
        &windows,
        packages,
    );
    let panics = log_lines_with(logs.path(), "panicked");
    assert!(panics.is_empty(), "{panics:?}");
    for service in stack.all() {
        let status = service.terminate().await;
        assert!(
            status.success(),
            "{} did not stop cleanly: {status}",
            service.name
        );
    }
}

/// The invariants, on what the phones recorded and the keys `seen` in the published packages.
fn check(
    record: &Record,
    seen: &HashMap<[u8; 16], u32>,
    replayed: &HashSet<[u8; 16]>,
    windows: &[Window],
    packages: usize,
) {
    let lost: Vec<_> = record
        .accepted
        .iter()
        .filter(|(k, _)| !seen.contains_key(*k))
        .map(|(_, (start, at))| {
            (
                *start,
                at.duration_since(windows[0].start).as_secs_f64() as i64,
            )
        })
        .collect();
    let duplicated = record
        .accepted
        .keys()
        .filter(|k| seen.get(*k).is_some_and(|n| *n > 1))
        .count();
    let replay_published = replayed.iter().filter(|k| seen.contains_key(*k)).count();
    let twice: Vec<_> = record.tans.values().filter(|n| **n > 1).collect();
    eprintln!(
        "faults: {} phones, {} keys accepted, {} TANs used, {} hour packages, {} answers",
        record.phones,
        record.accepted.len(),
        record.tans.len(),
        packages,
        record.answers.len()
    );
    assert!(
        record.stranded.is_empty(),
        "stranded phones: {:?}",
        record.stranded
    );
    assert!(
        record.accepted.len() >= 14 * 10,
        "too little traffic to prove anything"
    );
    assert_eq!(
        (lost.len(), duplicated),
        (0, 0),
        "accepted keys lost, duplicated; lost (rolling start, seconds after the first fault): {lost:?}"
    );
    assert!(twice.is_empty(), "TANs with two 200s: {twice:?}");
    assert_eq!(replay_published, 0, "keys of a replayed TAN were published");

    for w in windows {
        let mut failed = std::collections::BTreeMap::<String, usize>::new();
        for a in record
            .answers
            .iter()
            .filter(|a| a.status.is_none_or(|s| s >= 500))
            .filter(|a| a.started <= w.end && a.ended >= w.start)
        {
            let status = a.status.map_or("no answer".into(), |s| s.to_string());
            *failed.entry(status).or_default() += 1;
        }
        eprintln!("faults: {}: failed answers {failed:?}", w.name);
    }
    let never_500: Vec<_> = record
        .answers
        .iter()
        .filter(|a| a.status == Some(500))
        .collect();
    assert!(never_500.is_empty(), "500s: {never_500:?}");
    let outside: Vec<_> = record
        .answers
        .iter()
        .filter(|a| a.status.is_none_or(|s| s >= 500))
        .filter(|a| {
            !windows
                .iter()
                .any(|w| a.started <= w.end && a.ended >= w.start)
        })
        .collect();
    assert!(
        outside.is_empty(),
        "failures outside every fault window ({}): {outside:?}",
        windows
            .iter()
            .map(|w| w.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
}
