//! Publishing rules on both object stores: the local filesystem and a real S3-compatible server
//! (moto; required under CI=true).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration test: a failure is a failed test"
)]

use clap::Parser;
use openwarn_distribution::publish::{
    AppConfigOutcome, AppConfigSource, Publisher, Report, Settings,
};
use openwarn_distribution::source::{InMemory, KeySource, KeyStream, SourceError};
use openwarn_distribution::tree::Tree;
use openwarn_export::{KeyInfo, Package, Signer};
use openwarn_kv::{KvStore, MemoryStore};
use openwarn_protocol::submission::v1::DiagnosisKey;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

const PEM: &str = include_str!("data/test-signing-key.pem");

fn signer() -> Signer {
    Signer::from_pkcs8_pem(
        PEM,
        &KeyInfo {
            verification_key_id: "262".into(),
            verification_key_version: "v1".into(),
            ..KeyInfo::default()
        },
    )
    .unwrap()
}

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    config: openwarn_distribution::Config,
}

/// A tree on the local filesystem, and one in a fresh S3 bucket when moto is available.
struct Stores {
    _dir: tempfile::TempDir,
    _s3: Option<openwarn_testkit::S3Server>,
    trees: Vec<(&'static str, Tree)>,
}

fn stores() -> Stores {
    let dir = tempfile::tempdir().unwrap();
    let mut trees = vec![("local", Tree::local(dir.path()).unwrap())];
    let s3 = openwarn_testkit::S3Server::start();
    if let Some(server) = &s3 {
        let args = Args::parse_from([
            "distribution",
            "--store-url",
            &format!("s3://{}/cdn", server.bucket),
            "--s3-endpoint",
            &server.endpoint,
            "--s3-region",
            "us-east-1",
            "--s3-access-key-id",
            "test",
            "--s3-secret-access-key",
            "test",
        ]);
        trees.push(("s3", openwarn_distribution::tree(&args.config).unwrap()));
    }
    Stores {
        _dir: dir,
        _s3: s3,
        trees,
    }
}

fn settings() -> Settings {
    Settings {
        country: "DE".parse().unwrap(),
        min_keys_per_hour: 140,
        max_keys_per_package: 600_000,
        embargo: Duration::from_secs(2 * 3600),
        hour_retention: Duration::from_secs(2 * 86_400),
        day_retention: Duration::from_secs(14 * 86_400),
        padding_secret: b"test-padding-secret".to_vec(),
        lease_ttl: Duration::from_secs(60),
        trl_encoding: openwarn_protocol::metadata::TrlEncoding::CWA,
    }
}

fn publisher(tree: &Tree, source: Arc<dyn KeySource>, settings: Settings) -> Publisher {
    Publisher::new(
        tree.clone(),
        source,
        vec![signer()],
        settings,
        Arc::new(MemoryStore::default()),
        AppConfigSource::Default,
    )
}

fn at(rfc3339: &str) -> i64 {
    openwarn_distribution::parse_now(rfc3339).unwrap()
}

fn hour_of(rfc3339: &str) -> i64 {
    at(rfc3339) / 3600
}

/// Midnight of the day `hour` falls in, in rolling intervals, minus `days_back` days.
fn day_start_interval(hour: i64, days_back: i64) -> i32 {
    i32::try_from((hour / 24 - days_back) * 144).unwrap()
}

fn key(byte: u8, rolling_start: i32, submission_hour: i64) -> DiagnosisKey {
    DiagnosisKey {
        key_data: vec![byte; 16],
        rolling_start_interval_number: rolling_start,
        rolling_period: 144,
        transmission_risk_level: 6,
        report_type: 1,
        days_since_onset_of_symptoms: -1,
        origin: "DE".into(),
        visited_countries: vec!["DE".into()],
        consent_to_federation: false,
        submission_type: 0,
        submission_hour,
    }
}

async fn package(tree: &Tree, path: &str) -> Package {
    let object = tree
        .get(path)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{path} missing"));
    let package = Package::open(&object.bytes).unwrap();
    signer().verifier().verify(&package).unwrap();
    package
}

async fn app_config(tree: &Tree, path: &str) -> Package {
    let object = tree
        .get(path)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{path} missing"));
    let package = Package::open(&object.bytes).unwrap();
    signer().verifier().verify_content(&package).unwrap();
    package
}

async fn json(tree: &Tree, path: &str) -> serde_json::Value {
    let object = tree
        .get(path)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{path} missing"));
    serde_json::from_slice(&object.bytes).unwrap()
}

/// Whether the tree holds an object at `path`.
async fn exists(tree: &Tree, path: &str) -> bool {
    tree.get(path).await.unwrap().is_some()
}

/// Every object of the tree: those under `version/`, and `version` itself (which a local tree
/// lists under its own prefix and S3 does not).
async fn snapshot(tree: &Tree) -> BTreeMap<String, Vec<u8>> {
    let mut all = BTreeMap::new();
    if let Some(object) = tree.get("version").await.unwrap() {
        all.insert("version".to_owned(), object.bytes.to_vec());
    }
    for path in tree.list("version").await.unwrap() {
        let bytes = tree.get(&path).await.unwrap().unwrap().bytes.to_vec();
        all.insert(path, bytes);
    }
    all
}

fn key_bytes(package: &Package) -> Vec<Vec<u8>> {
    package
        .export()
        .unwrap()
        .keys
        .into_iter()
        .map(|k| k.key_data.unwrap())
        .collect()
}

const DE: &str = "version/v1/diagnosis-keys/country/DE";
const EUR: &str = "version/v1/diagnosis-keys/country/EUR";

#[tokio::test]
async fn closed_hours_are_published_padded_sorted_and_signed_with_embargo() {
    let h9 = hour_of("2026-11-20T09:00:00Z");
    let source = InMemory::default();
    for byte in [0x30, 0x10, 0x20] {
        source.push(key(byte, day_start_interval(h9, 2), h9)); // expired two days ago
    }
    source.push(key(0x40, day_start_interval(h9, 0), h9)); // still valid today: embargoed
    source.push(key(0x50, day_start_interval(h9, 1), h9 + 1)); // the open hour
    for (name, tree) in stores().trees {
        let publisher = publisher(&tree, Arc::new(source.clone()), settings());
        let report = publisher.run(at("2026-11-20T10:00:30Z")).await.unwrap();
        assert!(report.skipped.is_none());
        assert!(
            report.hours_published.contains(&"2026-11-20/9".to_owned()),
            "{name}"
        );
        assert!(
            !report.hours_published.contains(&"2026-11-20/10".to_owned()),
            "{name}"
        );

        let hour = package(&tree, &format!("{DE}/date/2026-11-20/hour/9")).await;
        let export = hour.export().unwrap();
        assert_eq!(export.region(), "DE");
        assert_eq!(export.start_timestamp(), u64::try_from(h9 * 3600).unwrap());
        assert_eq!(
            export.end_timestamp(),
            u64::try_from((h9 + 1) * 3600).unwrap()
        );
        let bytes = key_bytes(&hour);
        assert_eq!(bytes.len(), 140, "{name}: padded to 140");
        assert!(
            bytes.windows(2).all(|w| w[0] < w[1]),
            "{name}: ordered by key_data"
        );
        for real in [0x10, 0x20, 0x30] {
            assert!(
                bytes.contains(&vec![real; 16]),
                "{name}: real key {real:#x}"
            );
        }
        assert!(
            !bytes.contains(&vec![0x40; 16]),
            "{name}: an unexpired key is embargoed"
        );
        assert!(
            !bytes.contains(&vec![0x50; 16]),
            "{name}: the open hour is not published"
        );
        // Padding copies the metadata of real keys: TRL 6, published as (2, CLINICAL_DIAGNOSIS).
        for k in &export.keys {
            assert_eq!(k.rolling_start_interval_number(), day_start_interval(h9, 2));
            assert_eq!(k.transmission_risk_level(), 6);
            assert_eq!(
                (k.days_since_onset_of_symptoms(), k.report_type() as i32),
                (2, 2)
            );
        }

        // A closed hour without keys still gets a signed package, all padding.
        let empty = package(&tree, &format!("{DE}/date/2026-11-20/hour/3")).await;
        assert_eq!(key_bytes(&empty).len(), 140, "{name}");

        // Indexes: the country and the common package (CWA's `EUR`).
        assert_eq!(
            json(&tree, "version/v1/diagnosis-keys/country").await,
            serde_json::json!(["DE", "EUR"])
        );
        assert_eq!(
            json(&tree, &format!("{DE}/date/2026-11-20/hour")).await,
            serde_json::json!((0..=9).collect::<Vec<_>>()),
            "{name}: today's closed hours"
        );
        let dates: Vec<String> = (6..=19).map(|d| format!("2026-11-{d:02}")).collect();
        assert_eq!(
            json(&tree, &format!("{DE}/date")).await,
            serde_json::json!(dates),
            "{name}"
        );

        // The next day: the embargoed key is out two hours after it expired (midnight), and the
        // day package of the 20th holds every key of its hour packages.
        let report = publisher.run(at("2026-11-21T03:00:30Z")).await.unwrap();
        assert!(
            report.days_published.contains(&"2026-11-20".to_owned()),
            "{name}"
        );
        let h2 = key_bytes(&package(&tree, &format!("{DE}/date/2026-11-21/hour/2")).await);
        assert!(h2.contains(&vec![0x40; 16]), "{name}: embargo over");
        for h in [0, 1] {
            let early = key_bytes(&package(&tree, &format!("{DE}/date/2026-11-21/hour/{h}")).await);
            assert!(
                !early.contains(&vec![0x40; 16]),
                "{name}: still embargoed at hour {h}"
            );
        }
        let h10 = key_bytes(&package(&tree, &format!("{DE}/date/2026-11-20/hour/10")).await);
        assert!(h10.contains(&vec![0x50; 16]), "{name}");
        let day = key_bytes(&package(&tree, &format!("{DE}/date/2026-11-20")).await);
        let mut union = Vec::new();
        for h in 0..24 {
            union.extend(key_bytes(
                &package(&tree, &format!("{DE}/date/2026-11-20/hour/{h}")).await,
            ));
        }
        union.sort();
        assert_eq!(
            day, union,
            "{name}: the day package is the union of its hours"
        );
        assert!(
            json(&tree, &format!("{DE}/date"))
                .await
                .as_array()
                .unwrap()
                .contains(&"2026-11-20".into())
        );
    }
}

#[tokio::test]
async fn reruns_are_idempotent_and_byte_identical() {
    let h = hour_of("2026-11-20T09:00:00Z");
    let source = InMemory::default();
    for byte in 1..=20u8 {
        source.push(key(byte, day_start_interval(h, 3), h - i64::from(byte)));
    }
    let now = at("2026-11-20T10:00:30Z");
    let stores = stores();
    for (name, tree) in &stores.trees {
        let first = publisher(tree, Arc::new(source.clone()), settings());
        first.run(now).await.unwrap();
        let before = snapshot(tree).await;
        let again = first.run(now).await.unwrap();
        assert!(
            again.hours_published.is_empty() && again.days_published.is_empty(),
            "{name}"
        );
        assert_eq!(
            snapshot(tree).await,
            before,
            "{name}: a rerun changes nothing"
        );

        // Another tree, another process: the same bytes.
        let dir = tempfile::tempdir().unwrap();
        let other = Tree::local(dir.path()).unwrap();
        publisher(&other, Arc::new(source.clone()), settings())
            .run(now)
            .await
            .unwrap();
        assert_eq!(
            snapshot(&other).await,
            before,
            "{name}: byte-identical on a fresh tree"
        );
    }
}

#[tokio::test]
async fn a_run_killed_half_way_resumes_without_gaps_or_duplicates() {
    let h = hour_of("2026-11-20T09:00:00Z");
    let source = InMemory::default();
    for byte in 1..=50u8 {
        source.push(key(byte, day_start_interval(h, 4), h - 3 * i64::from(byte)));
    }
    let now = at("2026-11-20T10:00:30Z");
    let dir = tempfile::tempdir().unwrap();
    let complete = Tree::local(dir.path()).unwrap();
    publisher(&complete, Arc::new(source.clone()), settings())
        .run(now)
        .await
        .unwrap();
    let expected = snapshot(&complete).await;

    for (name, tree) in stores().trees {
        // What a run leaves when killed after some packages: packages are written one by one
        // (each atomically), the indexes only after all of them.
        for (i, (path, bytes)) in expected.iter().enumerate() {
            let is_package = !["country", "date", "hour", "app_config", "version", "v1"]
                .iter()
                .any(|end| path.ends_with(end));
            if is_package && i % 3 == 0 {
                tree.create(path, bytes.clone()).await.unwrap();
            }
        }
        let resumed = publisher(&tree, Arc::new(source.clone()), settings())
            .run(now)
            .await
            .unwrap();
        assert!(!resumed.hours_published.is_empty(), "{name}");
        assert_eq!(
            snapshot(&tree).await,
            expected,
            "{name}: no hour missing, none different"
        );
        // Every real key is in exactly one hour package.
        let mut seen = BTreeMap::new();
        for path in expected
            .keys()
            .filter(|p| p.starts_with(DE) && p.contains("/hour/"))
        {
            for k in key_bytes(&package(&tree, path).await) {
                *seen.entry(k).or_insert(0) += 1;
            }
        }
        for byte in 1..=50u8 {
            let count = seen.get(&vec![byte; 16]).copied().unwrap_or(0);
            let submitted = h - 3 * i64::from(byte);
            // Hours older than two days are no longer published as hours (their day is).
            let expect = usize::from(submitted >= now / 3600 - 48);
            assert_eq!(count, expect, "{name}: key {byte}");
        }
    }
}

/// A source that takes its time, so that runs overlap.
struct Slow(InMemory);

#[async_trait::async_trait]
impl KeySource for Slow {
    async fn stream(&self, from: i64, until: i64) -> Result<KeyStream, SourceError> {
        tokio::time::sleep(Duration::from_millis(400)).await;
        self.0.stream(from, until).await
    }
}

#[tokio::test]
async fn concurrent_runs_cannot_both_publish() {
    let source = Arc::new(Slow(InMemory::default()));
    for (kv_name, kv) in openwarn_testkit::kv_stores().await {
        let dir = tempfile::tempdir().unwrap();
        let tree = Tree::local(dir.path()).unwrap();
        let make = |kv: Arc<dyn KvStore>| {
            Publisher::new(
                tree.clone(),
                source.clone(),
                vec![signer()],
                settings(),
                kv,
                AppConfigSource::Default,
            )
        };
        let (a, b) = (make(kv.clone()), make(kv.clone()));
        let now = at("2026-11-20T10:00:30Z");
        let (ra, rb) = tokio::join!(a.run(now), b.run(now));
        let reports: Vec<Report> = vec![ra.unwrap(), rb.unwrap()];
        let skipped = reports.iter().filter(|r| r.skipped.is_some()).count();
        assert_eq!(skipped, 1, "{kv_name}: exactly one run holds the lease");
        let published: usize = reports.iter().map(|r| r.hours_published.len()).sum();
        assert_eq!(
            published,
            2 * 48, /* the closed hours of the two-day hour window, for DE and EUR */
            "{kv_name}"
        );
        // The lease is given back: the next run goes ahead.
        assert!(a.run(now).await.unwrap().skipped.is_none(), "{kv_name}");
    }
}

#[tokio::test]
async fn a_day_above_the_cap_keeps_its_hours_instead_of_a_day_package() {
    let h = hour_of("2026-11-18T12:00:00Z");
    let source = InMemory::default();
    for i in 0..2_000u32 {
        let mut k = key(0, day_start_interval(h, 2), h);
        k.key_data = [i.to_be_bytes().to_vec(), vec![7; 12]].concat();
        source.push(k);
    }
    let mut capped = settings();
    capped.max_keys_per_package = 5_000; // 23 padded hours (3,220) + 2,000 real keys > 5,000
    for (name, tree) in stores().trees {
        let publisher = publisher(&tree, Arc::new(source.clone()), capped.clone());
        let report = publisher.run(at("2026-11-21T10:00:30Z")).await.unwrap();
        assert_eq!(report.days_over_cap, ["2026-11-18"], "{name}");
        let dates = json(&tree, &format!("{DE}/date")).await;
        assert!(
            !dates.as_array().unwrap().contains(&"2026-11-18".into()),
            "{name}"
        );
        assert!(
            dates.as_array().unwrap().contains(&"2026-11-17".into()),
            "{name}"
        );
        assert!(!exists(&tree, &format!("{DE}/date/2026-11-18")).await);
        // Its hours are published although older than the two-day hour window, and stay.
        let hours = json(&tree, &format!("{DE}/date/2026-11-18/hour")).await;
        assert_eq!(
            hours,
            serde_json::json!((0..24).collect::<Vec<_>>()),
            "{name}"
        );
        let noon = key_bytes(&package(&tree, &format!("{DE}/date/2026-11-18/hour/12")).await);
        assert_eq!(noon.len(), 2_000, "{name}");
        // Hours of a day with a day package, older than two days, are not published.
        assert!(!exists(&tree, &format!("{DE}/date/2026-11-17/hour")).await);
        let later = publisher.run(at("2026-11-22T10:00:30Z")).await.unwrap();
        assert_eq!(later.days_over_cap, ["2026-11-18"], "{name}");
        assert!(exists(&tree, &format!("{DE}/date/2026-11-18/hour/12")).await);
    }
}

#[tokio::test]
async fn retention_deletes_old_hours_and_days_and_updates_the_indexes() {
    let source = InMemory::default();
    for (name, tree) in stores().trees {
        let publisher = publisher(&tree, Arc::new(source.clone()), settings());
        publisher.run(at("2026-11-20T10:00:30Z")).await.unwrap();
        assert!(exists(&tree, &format!("{DE}/date/2026-11-18/hour/11")).await);
        assert!(exists(&tree, &format!("{DE}/date/2026-11-06")).await);

        let report = publisher.run(at("2026-11-21T10:00:30Z")).await.unwrap();
        assert_eq!(
            report.hours_deleted,
            2 * 24,
            "{name}: one day of hours aged out, for DE and EUR"
        );
        assert_eq!(report.days_deleted, 2, "{name}");
        for region in [DE, EUR] {
            assert!(!exists(&tree, &format!("{region}/date/2026-11-06")).await);
            assert!(!exists(&tree, &format!("{region}/date/2026-11-19/hour/9")).await);
            assert!(exists(&tree, &format!("{region}/date/2026-11-19/hour/10")).await);
        }
        assert!(!exists(&tree, &format!("{DE}/date/2026-11-19/hour/9")).await);
        assert!(exists(&tree, &format!("{DE}/date/2026-11-19/hour/10")).await);
        assert!(
            !exists(&tree, &format!("{DE}/date/2026-11-18/hour")).await,
            "{name}: an emptied hour index goes"
        );
        assert_eq!(
            json(&tree, &format!("{DE}/date/2026-11-19/hour")).await,
            serde_json::json!((10..24).collect::<Vec<_>>()),
            "{name}"
        );
        assert!(
            !exists(&tree, &format!("{DE}/date/2026-11-06")).await,
            "{name}"
        );
        let dates: Vec<String> = (7..=20).map(|d| format!("2026-11-{d:02}")).collect();
        assert_eq!(
            json(&tree, &format!("{DE}/date")).await,
            serde_json::json!(dates),
            "{name}"
        );
        // Nothing older than the windows is left anywhere in the tree.
        let left = tree.list(&format!("{DE}/date/2026-11-06")).await.unwrap();
        assert!(left.is_empty(), "{name}: {left:?}");
    }
}

#[tokio::test]
async fn the_app_config_is_signed_and_an_invalid_one_is_refused_keeping_the_previous() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app_config.json");
    let valid = openwarn_distribution::appconfig::DEFAULT_JSON;
    std::fs::write(&file, valid).unwrap();
    for (name, tree) in stores().trees {
        let publisher = Publisher::new(
            tree.clone(),
            Arc::new(InMemory::default()),
            vec![signer()],
            settings(),
            Arc::new(MemoryStore::default()),
            AppConfigSource::File(file.clone()),
        );
        let path = "version/v1/configuration/country/DE/app_config";
        let now = at("2026-11-20T10:00:30Z");
        std::fs::write(&file, valid).unwrap();
        assert_eq!(
            publisher.run(now).await.unwrap().app_config,
            Some(AppConfigOutcome::Published)
        );
        let published = app_config(&tree, path).await;
        let config = <openwarn_protocol::config::v1::ApplicationConfiguration as openwarn_protocol::Message>::decode(
            published.bin.as_slice(),
        )
        .unwrap();
        assert_eq!(config.min_risk_score, 11);
        assert_eq!(
            publisher.run(now).await.unwrap().app_config,
            Some(AppConfigOutcome::Unchanged)
        );

        std::fs::write(&file, valid.replace("\"upper\": 63", "\"upper\": 20")).unwrap();
        let refused = publisher.run(now).await.unwrap().app_config;
        let Some(AppConfigOutcome::Refused(reason)) = refused else {
            panic!("{name}: {refused:?}")
        };
        assert!(
            reason.contains("attenuationDuration.thresholds.upper"),
            "{reason}"
        );
        assert_eq!(
            app_config(&tree, path).await,
            published,
            "{name}: the previous one stays"
        );

        std::fs::write(
            &file,
            valid.replace("\"minRiskScore\": 11", "\"minRiskScore\": 12"),
        )
        .unwrap();
        assert_eq!(
            publisher.run(now).await.unwrap().app_config,
            Some(AppConfigOutcome::Published)
        );
        assert_ne!(app_config(&tree, path).await, published, "{name}");
    }
}

/// Pins the bytes of export.bin for a fixed key set and time (regenerate with
/// OPENWARN_UPDATE_GOLDEN=1 after a deliberate format change).
#[tokio::test]
#[allow(
    clippy::disallowed_methods,
    reason = "a test-only switch (OPENWARN_UPDATE_GOLDEN) to regenerate the golden file, not service configuration"
)]
async fn golden_export_bin() {
    let h = hour_of("2026-11-20T09:00:00Z");
    let source = InMemory::default();
    for byte in [0xa1, 0x07, 0x5c] {
        let mut k = key(byte, day_start_interval(h, 3), h);
        k.transmission_risk_level = i32::from(byte % 8) + 1;
        k.days_since_onset_of_symptoms = i32::from(byte % 5) - 2;
        source.push(k);
    }
    let mut small = settings();
    small.min_keys_per_hour = 5;
    let dir = tempfile::tempdir().unwrap();
    let tree = Tree::local(dir.path()).unwrap();
    publisher(&tree, Arc::new(source), small)
        .run(at("2026-11-20T10:00:30Z"))
        .await
        .unwrap();
    let bin = package(&tree, &format!("{DE}/date/2026-11-20/hour/9"))
        .await
        .bin;
    let golden =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden-hour-export.bin");
    if std::env::var("OPENWARN_UPDATE_GOLDEN").is_ok() {
        std::fs::write(&golden, &bin).unwrap();
    }
    let expected =
        std::fs::read(&golden).expect("golden file (OPENWARN_UPDATE_GOLDEN=1 writes it)");
    assert_eq!(bin, expected, "export.bin changed");
}

#[tokio::test]
async fn a_path_can_be_a_package_and_a_directory_and_packages_are_never_replaced() {
    use openwarn_distribution::tree::Created;
    for (name, tree) in stores().trees {
        let day = format!("{DE}/date/2026-11-20");
        assert_eq!(
            tree.create(&day, b"day".to_vec()).await.unwrap(),
            Created::New,
            "{name}"
        );
        tree.replace(&format!("{day}/hour"), b"[1]".to_vec())
            .await
            .unwrap();
        assert_eq!(
            tree.create(&format!("{day}/hour/1"), b"h1".to_vec())
                .await
                .unwrap(),
            Created::New
        );
        assert_eq!(
            tree.create(&day, b"other".to_vec()).await.unwrap(),
            Created::AlreadyThere,
            "{name}"
        );
        assert_eq!(
            tree.get(&day).await.unwrap().unwrap().bytes.as_ref(),
            b"day",
            "{name}"
        );
        assert_eq!(
            tree.get(&format!("{day}/hour"))
                .await
                .unwrap()
                .unwrap()
                .bytes
                .as_ref(),
            b"[1]"
        );
        let mut listed = tree.list(&format!("{DE}/date")).await.unwrap();
        listed.sort();
        assert_eq!(
            listed,
            [day.clone(), format!("{day}/hour"), format!("{day}/hour/1")],
            "{name}"
        );
        tree.delete(&day).await.unwrap();
        assert!(!exists(&tree, &day).await, "{name}");
        assert!(exists(&tree, &format!("{day}/hour/1")).await, "{name}");
        tree.delete(&day).await.unwrap(); // deleting what is gone is fine
        assert!(!exists(&tree, &format!("{DE}/nothing")).await);
    }
}

// ---------------------------------------------------------------------------------------------
// Ported from cwa-server's distribution tests (services/distribution/src/test/…)
// ---------------------------------------------------------------------------------------------

/// cwa-server `DiagnosisKeysStructureProvider` hands every key to `EnfParameterAdapter.adaptKeys`
/// before bundling (`EnfParameterAdapterComponentTest.dsosAndReportTypeOfKeysShouldBeAdapted`):
/// every published key — real or padding, in hour and day packages, of DE and EUR — carries its
/// risk level unchanged and the days since onset and report type CWA's table gives that level,
/// whatever the phone submitted.
#[tokio::test]
async fn enf_parameter_adapter_component_test_published_keys_are_adapted() {
    use openwarn_protocol::metadata::TrlEncoding;
    let h = hour_of("2026-11-20T09:00:00Z");
    let source = InMemory::default();
    for trl in 1..=8u8 {
        let mut k = key(trl, day_start_interval(h, 3), h);
        k.transmission_risk_level = i32::from(trl);
        // As submitted: a confirmed test, days since onset derived by submission (CWA's map).
        k.report_type = 1;
        k.days_since_onset_of_symptoms = openwarn_protocol::metadata::dsos_from_trl(i32::from(trl));
        source.push(k);
    }
    for (name, tree) in stores().trees {
        let publisher = publisher(&tree, Arc::new(source.clone()), settings());
        publisher.run(at("2026-11-21T00:00:30Z")).await.unwrap();
        for region in [DE, EUR] {
            for path in [
                format!("{region}/date/2026-11-20/hour/9"),
                format!("{region}/date/2026-11-20/hour/3"), // padding only
                format!("{region}/date/2026-11-20"),
            ] {
                let export = package(&tree, &path).await.export().unwrap();
                assert!(!export.keys.is_empty());
                for k in &export.keys {
                    let trl = k.transmission_risk_level();
                    assert!((1..=8).contains(&trl), "{name} {path}");
                    assert_eq!(
                        Some((k.days_since_onset_of_symptoms(), k.report_type() as i32)),
                        TrlEncoding::CWA.encode(trl),
                        "{name} {path}: TRL {trl}"
                    );
                }
            }
        }
        // The real keys keep their levels: TRL 1 → (1, RECURSIVE), TRL 8 → (2, CONFIRMED_TEST).
        let export = package(&tree, &format!("{DE}/date/2026-11-20/hour/9"))
            .await
            .export()
            .unwrap();
        for (byte, trl, dsos, report_type) in [(1u8, 1, 1, 4), (3, 3, 1, 3), (8, 8, 2, 1)] {
            let k = export
                .keys
                .iter()
                .find(|k| k.key_data() == [byte; 16])
                .unwrap_or_else(|| panic!("{name}: key {byte}"));
            assert_eq!(
                (
                    k.transmission_risk_level(),
                    k.days_since_onset_of_symptoms(),
                    k.report_type() as i32
                ),
                (trl, dsos, report_type),
                "{name}"
            );
        }
    }
}

/// A table other than CWA's, as configured, is what the packages carry.
#[tokio::test]
async fn a_configured_encoding_is_what_the_packages_carry() {
    let h = hour_of("2026-11-20T09:00:00Z");
    let source = InMemory::default();
    source.push(key(0x11, day_start_interval(h, 3), h)); // TRL 6
    let mut custom = settings();
    custom.trl_encoding = openwarn_protocol::metadata::TrlEncoding::new(
        &[1, 2, 2, 2, 2, 1, 2, 1],
        &[1, 2, 3, 4, 1, 2, 3, 4],
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tree = Tree::local(dir.path()).unwrap();
    publisher(&tree, Arc::new(source), custom)
        .run(at("2026-11-20T10:00:30Z"))
        .await
        .unwrap();
    let export = package(&tree, &format!("{DE}/date/2026-11-20/hour/9"))
        .await
        .export()
        .unwrap();
    let k = export
        .keys
        .iter()
        .find(|k| k.key_data() == [0x11; 16])
        .unwrap();
    assert_eq!(
        (
            k.transmission_risk_level(),
            k.days_since_onset_of_symptoms(),
            k.report_type() as i32
        ),
        (6, 1, 2)
    );
}

/// cwa-server `DiagnosisKeysDirectoryTest.checkBuildsTheCorrectDirectoryStructureForOneCountry`
/// (and `…WhenNoKeys`): the country index lists the origin country and `EUR`; each has its date
/// index, and for every day its hour index and hour packages; `EUR` holds the union of all
/// countries' keys (`DiagnosisKeyBundler.populateEuPackageWithDistributableDiagnosisKeys`),
/// signed with region `EUR`.
#[tokio::test]
async fn diagnosis_keys_directory_test_builds_the_correct_structure_for_one_country_and_eur() {
    let h = hour_of("2026-11-20T09:00:00Z");
    let source = InMemory::default();
    for byte in [0x30, 0x10, 0x20] {
        source.push(key(byte, day_start_interval(h, 2), h));
    }
    for (name, tree) in stores().trees {
        let publisher = publisher(&tree, Arc::new(source.clone()), settings());
        let report = publisher.run(at("2026-11-21T03:00:30Z")).await.unwrap();
        assert!(
            report
                .hours_published
                .contains(&"EUR/2026-11-20/9".to_owned())
                && report.hours_published.contains(&"2026-11-20/9".to_owned()),
            "{name}: {:?}",
            report.hours_published
        );
        assert!(report.days_published.contains(&"EUR/2026-11-20".to_owned()));
        assert_eq!(
            json(&tree, "version/v1/diagnosis-keys/country").await,
            serde_json::json!(["DE", "EUR"]),
            "{name}"
        );
        assert_eq!(
            json(&tree, &format!("{EUR}/date")).await,
            json(&tree, &format!("{DE}/date")).await,
            "{name}"
        );
        for day in ["2026-11-20", "2026-11-21"] {
            assert_eq!(
                json(&tree, &format!("{EUR}/date/{day}/hour")).await,
                json(&tree, &format!("{DE}/date/{day}/hour")).await,
                "{name}: {day}"
            );
        }
        for path in ["2026-11-20/hour/9", "2026-11-20/hour/17", "2026-11-20"] {
            let de = package(&tree, &format!("{DE}/date/{path}")).await;
            let eur = package(&tree, &format!("{EUR}/date/{path}")).await;
            let (de, eur) = (de.export().unwrap(), eur.export().unwrap());
            assert_eq!(de.region(), "DE");
            assert_eq!(eur.region(), "EUR", "{name}: {path}");
            assert_eq!(
                (eur.start_timestamp(), eur.end_timestamp()),
                (de.start_timestamp(), de.end_timestamp())
            );
            assert_eq!(
                eur.keys, de.keys,
                "{name}: {path}: the union of one country"
            );
        }
        let eur_keys = key_bytes(&package(&tree, &format!("{EUR}/date/2026-11-20/hour/9")).await);
        for real in [0x10, 0x20, 0x30] {
            assert!(eur_keys.contains(&vec![real; 16]), "{name}");
        }
        // CWA publishes no app configuration for the common package.
        assert!(
            !exists(&tree, "version/v1/configuration/country/EUR/app_config").await,
            "{name}"
        );
    }
}

/// cwa-server `AppConfigurationDirectoryTest.createsCorrectFiles` (as of "Country app config
/// replicated to configuration", #962, which the distribution OpenAPI file still describes) and
/// `CwaApiStructureProvider.getDirectory`: `configuration/country` lists the origin country,
/// the configuration is at `configuration/country/DE/app_config` and, the same signed archive,
/// at `configuration/app_config`; `version` lists `v1`, and `version/v1` describes it (OpenAPI).
#[tokio::test]
async fn app_configuration_directory_test_creates_correct_files() {
    for (name, tree) in stores().trees {
        let publisher = publisher(&tree, Arc::new(InMemory::default()), settings());
        publisher.run(at("2026-11-20T10:00:30Z")).await.unwrap();
        assert_eq!(
            json(&tree, "version/v1/configuration/country").await,
            serde_json::json!(["DE"]),
            "{name}"
        );
        let country = app_config(&tree, "version/v1/configuration/country/DE/app_config").await;
        let plain = app_config(&tree, "version/v1/configuration/app_config").await;
        assert_eq!(plain, country, "{name}: one configuration, two paths");
        assert_eq!(
            json(&tree, "version").await,
            serde_json::json!(["v1"]),
            "{name}"
        );
        let description = json(&tree, "version/v1").await;
        assert!(
            description["openapi"].as_str().unwrap().starts_with('3'),
            "{name}"
        );
        assert!(
            description["paths"]
                .as_object()
                .unwrap()
                .contains_key("/version/{version}/diagnosis-keys/country"),
            "{name}"
        );
    }
}

/// cwa-server `AppConfigurationDirectoryTest.doesNotWriteAppConfigIfValidationFails`: an
/// invalid configuration is at neither path, and the country index is there still.
#[tokio::test]
async fn app_configuration_directory_test_does_not_write_app_config_if_validation_fails() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app_config.json");
    std::fs::write(
        &file,
        openwarn_distribution::appconfig::DEFAULT_JSON.replace("\"upper\": 63", "\"upper\": 20"),
    )
    .unwrap();
    for (name, tree) in stores().trees {
        let publisher = Publisher::new(
            tree.clone(),
            Arc::new(InMemory::default()),
            vec![signer()],
            settings(),
            Arc::new(MemoryStore::default()),
            AppConfigSource::File(file.clone()),
        );
        let report = publisher.run(at("2026-11-20T10:00:30Z")).await.unwrap();
        assert!(
            matches!(report.app_config, Some(AppConfigOutcome::Refused(_))),
            "{name}"
        );
        assert!(!exists(&tree, "version/v1/configuration/app_config").await);
        assert!(!exists(&tree, "version/v1/configuration/country/DE/app_config").await);
        assert_eq!(
            json(&tree, "version/v1/configuration/country").await,
            serde_json::json!(["DE"]),
            "{name}"
        );
    }
}

/// cwa-server `DateIndexingDecoratorTest.excludesCurrentDateFromIndex`: the date index (of the
/// country and of `EUR`) lists yesterday, not the day still open.
#[tokio::test]
async fn date_indexing_decorator_test_excludes_current_date_from_index() {
    let h = hour_of("2026-11-19T00:00:00Z");
    let source = InMemory::default();
    for byte in 1..=5u8 {
        source.push(key(byte, day_start_interval(h, 1), h));
    }
    for (name, tree) in stores().trees {
        let publisher = publisher(&tree, Arc::new(source.clone()), settings());
        publisher.run(at("2026-11-20T00:00:30Z")).await.unwrap();
        for region in [DE, EUR] {
            let dates = json(&tree, &format!("{region}/date")).await;
            let dates = dates.as_array().unwrap();
            assert!(dates.contains(&"2026-11-19".into()), "{name} {region}");
            assert!(!dates.contains(&"2026-11-20".into()), "{name} {region}");
        }
    }
}

/// cwa-server `DateIndexingDecoratorTest.excludesDatesThatExceedTheMaximumNumberOfKeys`: with
/// at most one key per package, no day qualifies and the date index is empty (for the country
/// and `EUR`); the hours serve instead.
#[tokio::test]
async fn date_indexing_decorator_test_excludes_dates_that_exceed_the_maximum_number_of_keys() {
    let source = InMemory::default();
    for (byte, at_hour) in [(1u8, "2026-11-19T06:00:00Z"), (2, "2026-11-19T10:00:00Z")] {
        let h = hour_of(at_hour);
        source.push(key(byte, day_start_interval(h, 1), h));
    }
    let mut one = settings();
    one.min_keys_per_hour = 1;
    one.max_keys_per_package = 1;
    for (name, tree) in stores().trees {
        let publisher = publisher(&tree, Arc::new(source.clone()), one.clone());
        let report = publisher.run(at("2026-11-20T00:00:30Z")).await.unwrap();
        assert!(report.days_over_cap.contains(&"2026-11-19".to_owned()));
        for region in [DE, EUR] {
            assert_eq!(
                json(&tree, &format!("{region}/date")).await,
                serde_json::json!([]),
                "{name} {region}"
            );
            let six = key_bytes(&package(&tree, &format!("{region}/date/2026-11-19/hour/6")).await);
            assert_eq!(six, [vec![1u8; 16]], "{name} {region}");
        }
    }
}
