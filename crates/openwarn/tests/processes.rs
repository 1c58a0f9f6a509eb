//! The whole path over real processes — each service its own `openwarn service <name>` process —
//! on SQLite with the in-memory store and, when configured (required in CI), PostgreSQL + Redis:
//! lab result → registration → TAN → proxy → submission → keys back through StreamDiagnosisKeys.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration test: a failure is a failed test"
)]

use openwarn_mtls::DevPki;
use openwarn_protocol::Message;
use openwarn_protocol::cwa::SubmissionPayload;
use openwarn_protocol::gaen::TemporaryExposureKey;
use openwarn_protocol::submission::v1::StreamDiagnosisKeysRequest;
use openwarn_protocol::submission::v1::submission_service_client::SubmissionServiceClient;
use openwarn_testkit::process::{Ports, ServiceProcess};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::process::Command;

fn spawn(name: &'static str, ports: &Ports, pki: &DevPki, extra: &[String]) -> ServiceProcess {
    ServiceProcess::start(
        env!("CARGO_BIN_EXE_openwarn"),
        name,
        *ports,
        pki,
        extra,
        None,
    )
}

#[tokio::test]
async fn the_whole_path_over_real_processes() {
    for (test_result_db, kv) in openwarn_testkit::backends() {
        let (verification_db, submission_db) = (test_result_db.another(), test_result_db.another());
        let label = test_result_db.label();
        let (_dir, pki) = openwarn_testkit::dev_pki(&[
            "test-result",
            "verification",
            "submission",
            "proxy",
            "distribution",
        ]);
        let (tr, v, s, p) = (Ports::new(), Ports::new(), Ports::new(), Ports::new());
        let namespace = format!("openwarn-processes-{}", std::process::id());
        let mut children = vec![
            spawn(
                "test-result",
                &tr,
                &pki,
                &[
                    "--database-url".into(),
                    test_result_db.url().into(),
                    "--lab-insecure-http".into(),
                ],
            ),
            spawn(
                "verification",
                &v,
                &pki,
                &[
                    "--database-url".into(),
                    verification_db.url().into(),
                    "--kv-url".into(),
                    kv.clone(),
                    "--kv-namespace".into(),
                    namespace.clone(),
                    "--test-result-url".into(),
                    format!("https://127.0.0.1:{}", tr.grpc),
                ],
            ),
            spawn(
                "submission",
                &s,
                &pki,
                &[
                    "--database-url".into(),
                    submission_db.url().into(),
                    "--verification-url".into(),
                    format!("https://127.0.0.1:{}", v.grpc),
                ],
            ),
            spawn(
                "proxy",
                &p,
                &pki,
                &[
                    "--verification-http-url".into(),
                    format!("https://127.0.0.1:{}", v.http),
                    "--submission-http-url".into(),
                    format!("https://127.0.0.1:{}", s.http),
                    "--kv-url".into(),
                    kv.clone(),
                    "--kv-namespace".into(),
                    namespace,
                ],
            ),
        ];
        for child in &mut children {
            child.ready().await;
        }
        // Each process exports what the alerts read: its certificate's expiry, and (the three
        // with a retention job) when that job last succeeded — it runs once at start.
        for (name, ports, retention) in [
            ("test-result", &tr, true),
            ("verification", &v, true),
            ("submission", &s, true),
            ("proxy", &p, false),
        ] {
            let admin = ([127, 0, 0, 1], ports.admin).into();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            loop {
                let metrics = openwarn_testkit::scrape(admin).await;
                let has = |series: &str| metrics.lines().any(|l| l.starts_with(series));
                if has("openwarn_tls_certificate_expiry_timestamp_seconds{certificate=\"service\"}")
                    && has("openwarn_retention_last_success_timestamp_seconds ") == retention
                {
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{label}: {name} exports\n{metrics}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }

        let phone = openwarn_testkit::http_client();
        let app = |path: &str| format!("http://127.0.0.1:{}/version/v1/{path}", p.http);
        let guid_hash = openwarn_domain::sha256_hex(uuid::Uuid::new_v4().to_string());
        let lab = phone
            .post(format!("http://127.0.0.1:{}/api/v1/lab/results", tr.http))
            .json(&json!({"labId": "lab", "testResults": [{"id": guid_hash, "result": 2}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(lab.status().as_u16(), 204, "{label}");
        let reg: Value = phone
            .post(app("registrationToken"))
            .json(&json!({"key": guid_hash, "keyType": "GUID"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = reg["registrationToken"]
            .as_str()
            .expect("a registration token")
            .to_owned();
        let result: Value = phone
            .post(app("testresult"))
            .json(&json!({"registrationToken": token}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(result["testResult"], 2, "{label}");
        let tan: Value = phone
            .post(app("tan"))
            .json(&json!({"registrationToken": token}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let tan = tan["tan"].as_str().expect("a TAN").to_owned();
        let today =
            i32::try_from(openwarn_bootstrap::lifecycle::unix_now() / 600 / 144 * 144).unwrap();
        let payload = SubmissionPayload {
            // Today's key, and keys of two and three days ago: the latter expired at least a day
            // ago, past the two-hour embargo at any time of day (yesterday's key would still be
            // embargoed between 00:00 and 02:00 UTC).
            keys: [(1u8, 0), (2, 2), (3, 3)]
                .into_iter()
                .map(|(byte, days_ago)| TemporaryExposureKey {
                    key_data: Some(vec![byte; 16]),
                    transmission_risk_level: Some(5),
                    rolling_start_interval_number: Some(today - 144 * days_ago),
                    rolling_period: Some(144),
                    report_type: Some(1),
                    days_since_onset_of_symptoms: Some(1),
                })
                .collect(),
            ..Default::default()
        };
        let upload = phone
            .post(app("diagnosis-keys"))
            .header("content-type", "application/x-protobuf")
            .header("cwa-authorization", &tan)
            .header("cwa-fake", "0")
            .body(payload.encode_to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(upload.status().as_u16(), 200, "{label}");

        let channel = pki
            .files("distribution")
            .unwrap()
            .grpc_channel(&format!("https://127.0.0.1:{}", s.grpc), "submission")
            .unwrap();
        let hour = openwarn_bootstrap::lifecycle::unix_now() / 3600;
        let mut stream = SubmissionServiceClient::new(channel)
            .stream_diagnosis_keys(StreamDiagnosisKeysRequest {
                from_hour: hour - 1,
                until_hour: hour + 2,
            })
            .await
            .unwrap()
            .into_inner();
        let mut keys = Vec::new();
        while let Some(batch) = stream.message().await.unwrap() {
            keys.extend(batch.keys);
        }
        let mut bytes: Vec<u8> = keys.iter().map(|k| k.key_data[0]).collect();
        bytes.sort_unstable();
        assert_eq!(bytes, vec![1, 2, 3], "{label}");

        // Distribution, one hour later: `run-once --now` publishes the hour of the upload.
        let submitted = keys[0].submission_hour;
        let published = publish_once(&pki, s.grpc, submitted).await;
        let date = chrono::DateTime::from_timestamp(submitted * 3600, 0)
            .unwrap()
            .format("%Y-%m-%d")
            .to_string();
        let base = format!("version/v1/diagnosis-keys/country/DE/date/{date}");
        let hours: Vec<i64> =
            serde_json::from_slice(&published.read(&format!("{base}/hour"))).unwrap();
        assert!(hours.contains(&(submitted % 24)), "{label}: {hours:?}");
        let package = openwarn_export::Package::open(
            &published.read(&format!("{base}/hour/{}", submitted % 24)),
        )
        .unwrap();
        published.verifier.verify(&package).unwrap();
        let in_package: Vec<Vec<u8>> = package
            .export()
            .unwrap()
            .keys
            .into_iter()
            .map(|k| k.key_data.unwrap())
            .collect();
        assert_eq!(in_package.len(), 140, "{label}: padded to 140");
        // The keys of two and three days ago; today's key is still valid: embargoed.
        for (byte, expected) in [(1u8, false), (2, true), (3, true)] {
            assert_eq!(
                in_package.contains(&vec![byte; 16]),
                expected,
                "{label}: key {byte}"
            );
        }

        for child in &mut children {
            let status = child.terminate().await;
            assert!(
                status.success(),
                "{label}: {} did not stop cleanly: {status}",
                child.name
            );
        }
    }
}

/// A published tree in a temporary directory, with the public key to check it.
struct Published {
    dir: tempfile::TempDir,
    verifier: openwarn_export::Verifier,
}

impl Published {
    fn read(&self, path: &str) -> Vec<u8> {
        // The local layout keeps each object in `<path>/_object`.
        let file = self.dir.path().join("cdn").join(path).join("_object");
        std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
    }
}

/// `openwarn service distribution run-once --now <hour + 1>` as its own process.
async fn publish_once(pki: &DevPki, submission_grpc: u16, hour: i64) -> Published {
    let dir = tempfile::tempdir().unwrap();
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let key = dir.path().join("signing.pem");
    std::fs::write(&key, pair.serialize_pem()).unwrap();
    let now = chrono::DateTime::from_timestamp((hour + 1) * 3600 + 60, 0)
        .unwrap()
        .to_rfc3339();
    let output = Command::new(env!("CARGO_BIN_EXE_openwarn"))
        .args(["service", "distribution", "run-once", "--now", &now])
        .arg("--store-url")
        .arg(dir.path().join("cdn"))
        .args(pki.service_args("distribution"))
        .args([
            "--submission-url",
            &format!("https://127.0.0.1:{submission_grpc}"),
        ])
        .arg("--signing-keys")
        .arg(format!("v1={}", key.display()))
        .args(["--padding-secret", "a padding secret for this test"])
        .args(["--log", "warn"])
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "run-once failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["app_config"]["outcome"], "published", "{report}");
    let verifier = openwarn_export::Verifier::from_public_key_pem(&pair.public_key_pem()).unwrap();
    Published { dir, verifier }
}
