//! The end-to-end proof, over the launcher's separate processes on a temporary data directory:
//! phones that met a positive phone (QR code, and teleTAN) are warned — close and long: high
//! risk, far and brief: low, never: nothing; a replayed TAN is refused; a tampered package is
//! rejected by every phone; thousands of fake requests change nothing in any database; and
//! load mode drives every kind of traffic without errors.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration test: a failure is a failed test"
)]

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use tokio::process::Command;

const OFFSET: u16 = 24_000;

async fn sim(data_dir: &Path, args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_openwarn"))
        .args(["sim", "run", "--json", "--data-dir"])
        .arg(data_dir)
        .args(args)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "sim {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn phone<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["phones"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no phone {name} in {report}"))
}

#[derive(QueryableByName)]
struct Text {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    value: Option<String>,
}

/// Every row of every table of every database of the stack, as text.
fn databases(data_dir: &Path) -> BTreeMap<String, String> {
    let mut all = BTreeMap::new();
    for db in ["verification", "submission", "test-result"] {
        let path = data_dir.join(format!("{db}.db"));
        let mut conn = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
        let tables: Vec<Text> = diesel::sql_query(
            "SELECT name AS value FROM sqlite_master WHERE type = 'table' \
             AND name NOT LIKE 'sqlite_%' ORDER BY name",
        )
        .load(&mut conn)
        .unwrap();
        assert!(tables.len() > 1, "{db} has tables");
        for table in tables.into_iter().filter_map(|t| t.value) {
            let columns: Vec<Text> = diesel::sql_query(format!(
                "SELECT name AS value FROM pragma_table_info('{table}')"
            ))
            .load(&mut conn)
            .unwrap();
            let row = columns
                .iter()
                .filter_map(|c| c.value.as_deref())
                .map(|c| format!("quote(\"{c}\")"))
                .collect::<Vec<_>>()
                .join(" || ',' || ");
            let rows: Vec<Text> = diesel::sql_query(format!(
                "SELECT group_concat(r, char(10)) AS value FROM \
                 (SELECT {row} AS r FROM \"{table}\" ORDER BY 1)"
            ))
            .load(&mut conn)
            .unwrap();
            all.insert(
                format!("{db}.{table}"),
                rows.into_iter()
                    .next()
                    .and_then(|r| r.value)
                    .unwrap_or_default(),
            );
        }
    }
    all
}

/// The example scenario on the stack of `data_dir`: every phone ends at the risk it should, both
/// uploads (QR code and teleTAN) succeed once and their TANs are refused when replayed.
async fn warns(data_dir: &Path) {
    // The scenario: Alice positive by QR code, Erin by teleTAN; published with `run-once --now`
    // semantics (as of the next hour) through the launcher's distribution.
    let scenario = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/scenarios/warn.json"
    );
    let report = sim(data_dir, &["--scenario", scenario]).await;
    assert_eq!(report["failures"], serde_json::json!([]), "{report:#}");
    for (name, level) in [
        ("bob", "high"),
        ("frank", "high"),
        ("carol", "low"),
        ("grace", "low"),
        ("dave", "none"),
        ("alice", "none"),
        ("erin", "none"),
    ] {
        let p = phone(&report, name);
        assert_eq!(p["risk"], level, "{name}: {p:#}");
        assert_eq!(p["rejected_packages"], serde_json::json!([]), "{name}");
        assert!(p["packages_verified"].as_u64().unwrap() > 0);
    }
    assert_eq!(
        phone(&report, "bob")["matched_days"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        phone(&report, "dave")["matched_days"],
        serde_json::json!([])
    );
    for (name, via) in [("alice", "qr"), ("erin", "teletan")] {
        let upload = &phone(&report, name)["upload"];
        assert_eq!(upload["via"], via);
        assert_eq!(upload["status"], 200);
        assert_eq!(upload["replayed_tan_status"], 403, "{name}: replayed TAN");
    }
    assert_eq!(report["fakes"]["unexpected"], 0);
    let published = report["published"]["hours_published"].as_array().unwrap();
    assert!(!published.is_empty(), "{report:#}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_on_one_phone_warns_another() {
    let dir = tempfile::tempdir().unwrap();
    let mut stack =
        openwarn_testkit::launcher::up(env!("CARGO_BIN_EXE_openwarn"), dir.path(), OFFSET);
    stack.until("ready; Ctrl-C stops everything").await;

    warns(dir.path()).await;

    // Tamper with yesterday's day package (every phone downloads it): same signature, one key
    // byte changed.
    let yesterday = chrono::Utc::now().date_naive() - chrono::Days::new(1);
    let object = dir
        .path()
        .join("cdn/version/v1/diagnosis-keys/country/DE/date")
        .join(yesterday.format("%Y-%m-%d").to_string())
        .join("_object");
    let mut package = openwarn_export::Package::open(&std::fs::read(&object).unwrap()).unwrap();
    let last = package.bin.len() - 1;
    package.bin[last] ^= 0x01;
    std::fs::write(&object, package.to_zip().unwrap()).unwrap();

    // A hundred phones with 30 fake requests each, downloading everything; nothing changes in
    // any database, and every phone rejects the tampered package (and only it).
    let before = databases(dir.path());
    let quiet = sim(
        dir.path(),
        &[
            "--phones",
            "100",
            "--positives",
            "0",
            "--encounters",
            "0",
            "--fakes-per-phone",
            "30",
            "--publish",
            "no",
        ],
    )
    .await;
    assert_eq!(quiet["fakes"]["sent"], 3000, "{:#}", quiet["fakes"]);
    assert_eq!(quiet["fakes"]["unexpected"], 0);
    let tampered = format!(
        "diagnosis-keys/country/DE/date/{}",
        yesterday.format("%Y-%m-%d")
    );
    for p in quiet["phones"].as_array().unwrap() {
        let rejected = p["rejected_packages"].as_array().unwrap();
        assert_eq!(rejected.len(), 1, "{p:#}");
        assert_eq!(rejected[0]["path"], tampered.as_str());
        assert!(
            rejected[0]["reason"]
                .as_str()
                .unwrap()
                .contains("verification failed"),
            "{p:#}"
        );
        assert!(p["packages_verified"].as_u64().unwrap() > 0);
    }
    let after = databases(dir.path());
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
    for (table, rows) in &before {
        assert_eq!(rows, &after[table], "{table} changed under fake traffic");
    }
    assert!(
        before["submission.diagnosis_keys"].lines().count() >= 28,
        "the real uploads are there: {}",
        before["submission.diagnosis_keys"].lines().count()
    );

    // Load mode on the same stack: a short run with every kind of traffic, no errors, every
    // endpoint reported with its percentiles.
    let out = Command::new(env!("CARGO_BIN_EXE_openwarn"))
        .args(["sim", "load", "--json", "--data-dir"])
        .arg(dir.path())
        .args([
            "--phones",
            "200",
            "--rate",
            "50",
            "--duration",
            "2s",
            "--test-share",
            "0.5",
            "--positive-share",
            "0.5",
            "--fake-share",
            "1",
            "--seed",
            "5",
        ])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let load: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(load["errors"], 0, "{load:#}");
    assert!(load["sessions"].as_u64().unwrap() >= 100, "{load:#}");
    let endpoints: BTreeMap<String, &Value> = load["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["endpoint"].as_str().unwrap().to_owned(), e))
        .collect();
    for name in [
        "cdn date index",
        "cdn hour index",
        "cdn hour package",
        "cdn app_config",
        "registrationToken",
        "testresult",
        "lab results",
        "tan",
        "diagnosis-keys",
        "fake registrationToken",
        "fake testresult",
        "fake tan",
        "fake diagnosis-keys",
    ] {
        let e = endpoints
            .get(name)
            .unwrap_or_else(|| panic!("no {name} in {load:#}"));
        assert!(e["requests"].as_u64().unwrap() > 0, "{name}");
        assert!(e["p50_ms"].as_f64().unwrap() <= e["p99_ms"].as_f64().unwrap());
    }
    // Every session fetched the four CDN files; the fake playbook went to every phone.
    let sessions = load["sessions"].as_u64().unwrap();
    assert_eq!(endpoints["cdn app_config"]["requests"], sessions);
    assert_eq!(endpoints["fake tan"]["requests"], sessions);

    assert!(stack.stop().await.success());
}

/// `up --postgres-url --redis-url` (required in CI): the same scenario with every database on
/// PostgreSQL (`<prefix>_<service>`, created by `up`) and the shared state in Redis; no SQLite file
/// is made.
#[tokio::test(flavor = "multi_thread")]
async fn the_scenario_warns_on_postgres_and_redis() {
    let (Some(server), Some(redis)) = (
        openwarn_testkit::postgres_url(),
        openwarn_testkit::redis_url(),
    ) else {
        eprintln!("skipping: OPENWARN_TEST_POSTGRES_URL and OPENWARN_TEST_REDIS_URL not both set");
        return;
    };
    let prefix = format!("owup_{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let mut stack = openwarn_testkit::launcher::up_with_env(
        env!("CARGO_BIN_EXE_openwarn"),
        dir.path(),
        OFFSET + 100,
        &[
            ("OPENWARN_UP_POSTGRES_URL", server.as_str()),
            ("OPENWARN_UP_POSTGRES_PREFIX", prefix.as_str()),
            ("OPENWARN_UP_REDIS_URL", redis.as_str()),
        ],
    );
    stack.until("ready; Ctrl-C stops everything").await;
    warns(dir.path()).await;
    assert!(stack.stop().await.success());

    let mut admin = PgConnection::establish(&server).unwrap();
    let names: Vec<Text> = diesel::sql_query(format!(
        "SELECT datname AS value FROM pg_database WHERE datname LIKE '{prefix}_%' ORDER BY 1"
    ))
    .load(&mut admin)
    .unwrap();
    let names: Vec<String> = names.into_iter().filter_map(|t| t.value).collect();
    assert_eq!(
        names,
        ["portal", "submission", "test_result", "verification"].map(|s| format!("{prefix}_{s}"))
    );
    for name in &names {
        admin
            .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .unwrap();
    }
    let sqlite: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "db"))
        .collect();
    assert!(sqlite.is_empty(), "{sqlite:?}");
}
