//! `openwarn up` as a user runs it: separate processes, endpoints printed, teleTAN issued through
//! the CLI, a clean stop on SIGTERM, and the whole stack stopping when one service dies — or,
//! with `--restart`, that service started again on its own.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration test: a failure is a failed test"
)]

use serde_json::{Value, json};
use std::time::Duration;
use tokio::process::Command;

const OFFSET: u16 = 21_000;

fn pid_of(lines: &[String], service: &str) -> i32 {
    let line = lines
        .iter()
        .find(|l| l.starts_with(&format!("started {service} (pid ")))
        .unwrap();
    line.rsplit("pid ")
        .next()
        .unwrap()
        .trim_end_matches(')')
        .parse()
        .unwrap()
}

fn up(data_dir: &std::path::Path) -> openwarn_testkit::launcher::Up {
    openwarn_testkit::launcher::up(env!("CARGO_BIN_EXE_openwarn"), data_dir, OFFSET)
}

fn signal(pid: i32, sig: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig).unwrap();
}

#[tokio::test]
async fn up_runs_the_stack_and_stops_it_cleanly_or_when_a_service_dies() {
    let dir = tempfile::tempdir().unwrap();

    let mut stack = up(dir.path());
    let lines = stack.until("ready; Ctrl-C stops everything").await;
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&format!("http://127.0.0.1:{}/version/v1/", 8000 + OFFSET)))
    );
    assert!(dir.path().join("pki/ca.pem").exists());
    assert!(dir.path().join("verification.db").exists());

    // The portal's first administrator: a one-time enrolment link, printed once, that opens.
    let link = lines
        .iter()
        .find_map(|l| l.split_once("enrol the first portal administrator (once): "))
        .map(|(_, link)| link.trim().to_owned())
        .expect("an enrolment link");
    assert!(
        link.starts_with(&format!("http://127.0.0.1:{}/enrol/", 8040 + OFFSET)),
        "{link}"
    );
    let page = openwarn_testkit::http_client()
        .get(&link)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);

    // A teleTAN through the CLI, then the app registers with it over HTTP.
    let teletan = Command::new(env!("CARGO_BIN_EXE_openwarn"))
        .args([
            "teletan",
            "--verification-url",
            &format!("https://127.0.0.1:{}", 9010 + OFFSET),
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .await
        .unwrap();
    assert!(
        teletan.status.success(),
        "{}",
        String::from_utf8_lossy(&teletan.stderr)
    );
    // The expiry, for the health officer: local time and UTC.
    let stderr = String::from_utf8_lossy(&teletan.stderr);
    assert!(
        stderr.contains("valid until ") && stderr.contains(" UTC)"),
        "{stderr}"
    );
    let teletan = String::from_utf8(teletan.stdout).unwrap().trim().to_owned();
    let reply: Value = openwarn_testkit::http_client()
        .post(format!(
            "http://127.0.0.1:{}/version/v1/registrationToken",
            8000 + OFFSET
        ))
        .json(&json!({"key": teletan, "keyType": "TELETAN"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(reply["registrationToken"].is_string(), "{reply}");

    // `openwarn publish` on this data directory; a phone fetches the tree from the CDN port and
    // verifies a package with the public key `up` wrote.
    // Two hours ahead of the real time, so the hour before it cannot have been published by the
    // run distribution makes at start-up.
    let now = openwarn_bootstrap::lifecycle::unix_now() / 3600 * 3600 + 2 * 3600 + 30;
    let hour = now / 3600 - 1;
    let date = chrono::DateTime::from_timestamp(hour * 3600, 0)
        .unwrap()
        .format("%Y-%m-%d")
        .to_string();
    let at = chrono::DateTime::from_timestamp(now, 0)
        .unwrap()
        .to_rfc3339();
    let published = Command::new(env!("CARGO_BIN_EXE_openwarn"))
        .args(["publish", "--now", &at, "--data-dir"])
        .arg(dir.path())
        .output()
        .await
        .unwrap();
    assert!(
        published.status.success(),
        "{}",
        String::from_utf8_lossy(&published.stderr)
    );
    let report: Value = serde_json::from_slice(&published.stdout).unwrap();
    let published_hour = format!("{date}/{}", hour % 24);
    assert!(
        report["hours_published"]
            .as_array()
            .unwrap()
            .contains(&json!(published_hour)),
        "{report}"
    );
    let cdn = format!(
        "http://127.0.0.1:{}/version/v1/diagnosis-keys/country/DE",
        8050 + OFFSET
    );
    let hours: Vec<i64> = openwarn_testkit::http_client()
        .get(format!("{cdn}/date/{date}/hour"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(hours.contains(&(hour % 24)), "{hours:?}");
    let zip = openwarn_testkit::http_client()
        .get(format!("{cdn}/date/{date}/hour/{}", hour % 24))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let public_key =
        std::fs::read_to_string(dir.path().join("distribution-public-key.pem")).unwrap();
    openwarn_export::Verifier::from_public_key_pem(&public_key)
        .unwrap()
        .verify(&openwarn_export::Package::open(&zip).unwrap())
        .unwrap();

    // SIGTERM: everything stops, exit 0.
    let status = stack.stop().await;
    assert!(status.success(), "{status}");

    // Again on the same data directory; this time a service dies.
    let mut stack = up(dir.path());
    let lines = stack.until("ready; Ctrl-C stops everything").await;
    // The administrator exists: no second link.
    assert!(
        lines
            .iter()
            .any(|l| l.contains("portal administrator exists"))
            && !lines.iter().any(|l| l.contains("/enrol/")),
        "{lines:?}"
    );
    signal(
        pid_of(&lines, "verification"),
        nix::sys::signal::Signal::SIGKILL,
    );
    stack.until("verification exited").await;
    let status = tokio::time::timeout(Duration::from_secs(30), stack.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(!status.success());
    // test-result was stopped too: its port is free again.
    assert!(std::net::TcpListener::bind(("127.0.0.1", 8030 + OFFSET)).is_ok());
}

/// `up --restart`: a service killed with SIGKILL is started again (its pid in
/// `<data dir>/pids/<name>.pid`), and the stack answers again; the others kept running.
#[tokio::test]
async fn up_with_restart_starts_a_service_that_died_again() {
    const OFFSET: u16 = 26_000;
    let dir = tempfile::tempdir().unwrap();
    let mut stack = openwarn_testkit::launcher::up_with(
        env!("CARGO_BIN_EXE_openwarn"),
        dir.path(),
        OFFSET,
        &["--restart"],
        &[],
    );
    let lines = stack.until("ready; Ctrl-C stops everything").await;
    let pid_file = |name: &str| -> i32 {
        std::fs::read_to_string(dir.path().join("pids").join(format!("{name}.pid")))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let verification = pid_file("verification");
    assert_eq!(verification, pid_of(&lines, "verification"));
    let test_result = pid_file("test-result");
    signal(verification, nix::sys::signal::Signal::SIGKILL);
    stack.until("verification exited").await;
    let lines = stack.until("started verification (pid ").await;
    let again = pid_of(&lines, "verification");
    assert_ne!(again, verification);
    assert_eq!(pid_file("verification"), again);
    assert_eq!(
        pid_file("test-result"),
        test_result,
        "the others kept running"
    );

    // The stack answers again: a registration through the proxy reaches the new verification.
    let admin = std::net::SocketAddr::from(([127, 0, 0, 1], 8011 + OFFSET));
    assert!(openwarn_testkit::process::wait_ready(admin, Duration::from_secs(60)).await);
    let reply = openwarn_testkit::http_client()
        .post(format!(
            "http://127.0.0.1:{}/version/v1/registrationToken",
            8000 + OFFSET
        ))
        .json(&json!({"key": openwarn_domain::sha256_hex("a GUID"), "keyType": "GUID"}))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status().as_u16(), 201);

    let status = stack.stop().await;
    assert!(status.success(), "{status}");
    assert!(
        !dir.path().join("pids").exists(),
        "pid files removed at stop"
    );
}
