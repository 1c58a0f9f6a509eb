//! The service as deployed in embedded mode: the tree over HTTP with CDN headers, manual runs on
//! the admin port, a dependency outage as 503, and configuration errors that name the setting.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration test: a failure is a failed test"
)]

use clap::Parser;
use openwarn_distribution::publish::{AppConfigSource, Publisher, Settings};
use openwarn_distribution::source::InMemory;
use openwarn_distribution::tree::Tree;
use openwarn_export::{KeyInfo, Package, Signer};
use std::sync::Arc;
use std::time::Duration;

const PEM: &str = include_str!("data/test-signing-key.pem");

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    config: openwarn_distribution::Config,
}

struct Setup {
    _pki_dir: tempfile::TempDir,
    dir: tempfile::TempDir,
    args: Vec<String>,
}

fn setup() -> Setup {
    let (pki_dir, pki) = openwarn_testkit::dev_pki(&["distribution", "submission"]);
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("signing.pem");
    std::fs::write(&key, PEM).unwrap();
    let store = dir.path().join("cdn");
    let path = |p: std::path::PathBuf| p.display().to_string();
    let args = [
        "distribution",
        "--http-addr=127.0.0.1:0",
        "--admin-addr=127.0.0.1:0",
        &format!("--store-url={}", store.display()),
        &format!("--tls-ca={}", path(pki.ca())),
        &format!("--tls-cert={}", path(pki.cert("distribution"))),
        &format!("--tls-key={}", path(pki.key("distribution"))),
        // Nothing listens here: submission is down.
        "--submission-url=https://127.0.0.1:1",
        &format!("--signing-keys=v1={}", key.display()),
        "--padding-secret=0123456789abcdef0123",
        "--schedule=false",
        "--manual-runs=true",
        "--log-format=text",
    ]
    .map(str::to_owned)
    .to_vec();
    Setup {
        _pki_dir: pki_dir,
        dir,
        args,
    }
}

fn config(args: &[String]) -> openwarn_distribution::Config {
    Args::parse_from(args).config
}

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

/// Publishes ten hours of 2026-11-20 (no keys: padding) into `tree`; the signer it used.
async fn publish(tree: Tree) -> Signer {
    let signer = signer();
    Publisher::new(
        tree,
        Arc::new(InMemory::default()),
        vec![signer.clone()],
        Settings {
            country: "DE".parse().unwrap(),
            min_keys_per_hour: 140,
            max_keys_per_package: 600_000,
            embargo: Duration::from_secs(7200),
            hour_retention: Duration::from_secs(2 * 86_400),
            day_retention: Duration::from_secs(14 * 86_400),
            padding_secret: b"secret".to_vec(),
            lease_ttl: Duration::from_secs(60),
            trl_encoding: openwarn_protocol::metadata::TrlEncoding::CWA,
        },
        Arc::new(openwarn_kv::MemoryStore::default()),
        AppConfigSource::Default,
    )
    .run(openwarn_distribution::parse_now("2026-11-20T10:00:30Z").unwrap())
    .await
    .unwrap();
    signer
}

/// A tree in an S3 bucket (production's store, behind a CDN) is served through the object store:
/// content type, Cache-Control, the store's ETag and 304, 404 for what is not there.
#[tokio::test]
async fn a_tree_in_s3_is_served_from_the_store() {
    let Some(s3) = openwarn_testkit::S3Server::start() else {
        return;
    };
    let mut setup = setup();
    setup.args.retain(|a| !a.starts_with("--store-url"));
    setup.args.extend([
        format!("--store-url=s3://{}/cdn", s3.bucket),
        format!("--s3-endpoint={}", s3.endpoint),
        "--s3-region=us-east-1".to_owned(),
        "--s3-access-key-id=test".to_owned(),
        "--s3-secret-access-key=test".to_owned(),
    ]);
    let config = config(&setup.args);
    publish(openwarn_distribution::tree(&config).unwrap()).await;
    let service = openwarn_distribution::start(config).await.unwrap();
    let base = format!("http://{}/version/v1", service.addr("http"));
    let client = openwarn_testkit::http_client();

    let index = client
        .get(format!(
            "{base}/diagnosis-keys/country/DE/date/2026-11-20/hour"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(index.status(), 200);
    assert_eq!(index.headers()["content-type"], "application/json");
    assert_eq!(index.headers()["cache-control"], "public, max-age=300");
    // `version` is an object and the prefix of every other: S3 holds both.
    let versions = client
        .get(format!("http://{}/version", service.addr("http")))
        .send()
        .await
        .unwrap();
    assert_eq!(versions.headers()["content-type"], "application/json");
    assert_eq!(versions.text().await.unwrap(), "[\"v1\"]");
    let url = format!("{base}/diagnosis-keys/country/DE/date/2026-11-20/hour/9");
    let package = client.get(&url).send().await.unwrap();
    assert_eq!(package.status(), 200);
    assert_eq!(package.headers()["content-type"], "application/zip");
    let e_tag = package.headers()["etag"].clone();
    let unchanged = client
        .get(&url)
        .header("if-none-match", e_tag.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(unchanged.status(), 304);
    assert_eq!(unchanged.headers()["etag"], e_tag);
    let missing = client
        .get(format!("{base}/diagnosis-keys/country/DE/date/2026-11-21"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    service.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_tree_is_served_with_cdn_headers() {
    let setup = setup();
    // Publish into the same directory the service serves.
    let signer = publish(Tree::local(&setup.dir.path().join("cdn")).unwrap()).await;
    let service = openwarn_distribution::start(config(&setup.args))
        .await
        .unwrap();
    let base = format!("http://{}/version/v1", service.addr("http"));
    let client = openwarn_testkit::http_client();

    let index = client
        .get(format!(
            "{base}/diagnosis-keys/country/DE/date/2026-11-20/hour"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(index.status(), 200);
    assert_eq!(index.headers()["content-type"], "application/json");
    assert_eq!(index.headers()["cache-control"], "public, max-age=300");
    assert_eq!(index.text().await.unwrap(), "[0,1,2,3,4,5,6,7,8,9]");

    let url = format!("{base}/diagnosis-keys/country/DE/date/2026-11-20/hour/9");
    let package = client.get(&url).send().await.unwrap();
    assert_eq!(package.status(), 200);
    assert_eq!(package.headers()["content-type"], "application/zip");
    assert_eq!(
        package.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    let e_tag = package.headers()["etag"].clone();
    let bytes = package.bytes().await.unwrap();
    signer
        .verifier()
        .verify(&Package::open(&bytes).unwrap())
        .unwrap();

    let again = client
        .get(&url)
        .header("if-none-match", e_tag.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()["etag"], e_tag);
    let head = client.head(&url).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(
        head.headers()["content-length"],
        bytes.len().to_string().as_str()
    );
    assert_eq!(head.headers()["etag"], e_tag);
    assert_eq!(head.headers()["accept-ranges"], "bytes");

    // What nginx answers for a static file: Last-Modified and If-Modified-Since, byte ranges
    // (206 with Content-Range, 416 beyond the end), a weak or listed ETag in If-None-Match.
    let last_modified = head.headers()["last-modified"].clone();
    let unchanged = client
        .get(&url)
        .header("if-modified-since", last_modified)
        .send()
        .await
        .unwrap();
    assert_eq!(unchanged.status(), 304);
    assert_eq!(
        unchanged.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    let listed = format!("\"other\", {}", e_tag.to_str().unwrap());
    let unchanged = client
        .get(&url)
        .header("if-none-match", listed)
        .send()
        .await
        .unwrap();
    assert_eq!(unchanged.status(), 304);
    let other = client
        .get(&url)
        .header("if-none-match", "\"other\"")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200);
    let range = client
        .get(&url)
        .header("range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(range.status(), 206);
    assert_eq!(
        range.headers()["content-range"],
        format!("bytes 10-19/{}", bytes.len()).as_str()
    );
    assert_eq!(range.bytes().await.unwrap(), bytes.slice(10..20));
    let beyond = client
        .get(&url)
        .header("range", format!("bytes={}-", bytes.len() + 10))
        .send()
        .await
        .unwrap();
    assert_eq!(beyond.status(), 416);
    // If-Range: the range only while the object is the one the client has part of.
    let still = client
        .get(&url)
        .header("range", "bytes=10-19")
        .header("if-range", e_tag.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(still.status(), 206);
    let changed = client
        .get(&url)
        .header("range", "bytes=10-19")
        .header("if-range", "\"other\"")
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 200, "another version: the whole object");
    assert_eq!(changed.bytes().await.unwrap(), bytes);
    let nonsense = client
        .get(&url)
        .header("range", "pages=1-2")
        .send()
        .await
        .unwrap();
    assert_eq!(nonsense.status(), 200, "an unparsable range is ignored");
    assert_eq!(nonsense.bytes().await.unwrap(), bytes);

    let day = client
        .get(format!("{base}/diagnosis-keys/country/DE/date/2026-11-19"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        day.status(),
        200,
        "a path that is a package and a directory"
    );
    let config = client
        .get(format!("{base}/configuration/country/DE/app_config"))
        .send()
        .await
        .unwrap();
    assert_eq!(config.headers()["cache-control"], "public, max-age=300");
    assert_eq!(
        client
            .get(format!("{base}/diagnosis-keys/country"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "[\"DE\",\"EUR\"]"
    );
    // The paths above the packages CWA's apps and tools read: the API versions, the description
    // of v1, the country-less app configuration.
    let root = format!("http://{}", service.addr("http"));
    for (path, content_type, cache) in [
        ("version", "application/json", "public, max-age=300"),
        ("version/v1", "application/json", "public, max-age=300"),
        (
            "version/v1/configuration/app_config",
            "application/zip",
            "public, max-age=300",
        ),
        (
            "version/v1/configuration/country",
            "application/json",
            "public, max-age=300",
        ),
        (
            "version/v1/diagnosis-keys/country/EUR/date/2026-11-20/hour/9",
            "application/zip",
            "public, max-age=31536000, immutable",
        ),
    ] {
        let response = client.get(format!("{root}/{path}")).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.headers()["content-type"], content_type, "{path}");
        assert_eq!(response.headers()["cache-control"], cache, "{path}");
    }
    assert_eq!(
        client
            .get(format!("{root}/version"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "[\"v1\"]"
    );

    for missing in [
        format!("{base}/diagnosis-keys/country/DE/date/2026-11-21"),
        format!("{base}/diagnosis-keys/country/DE/date/2026-11-20/hour/9/_object"),
        format!("{base}/../../etc/passwd"),
        format!("http://{}/", service.addr("http")),
    ] {
        let response = client.get(&missing).send().await.unwrap();
        assert_eq!(response.status(), 404, "{missing}");
        assert_eq!(response.text().await.unwrap(), r#"{"error":"not_found"}"#);
    }
    let post = client.post(&url).send().await.unwrap();
    assert_eq!(post.status(), 405);
    service.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_manual_run_with_submission_down_is_503_and_publishes_nothing() {
    let setup = setup();
    let service = openwarn_distribution::start(config(&setup.args))
        .await
        .unwrap();
    let admin = format!("http://{}", service.addr("admin"));
    let client = openwarn_testkit::http_client();
    let bad = client
        .post(format!("{admin}/run?now=yesterday"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert_eq!(bad.text().await.unwrap(), r#"{"error":"invalid_now"}"#);

    let down = client
        .post(format!("{admin}/run?now=2026-11-20T10:00:30Z"))
        .send()
        .await
        .unwrap();
    assert_eq!(down.status(), 503);
    assert_eq!(down.text().await.unwrap(), r#"{"error":"run_failed"}"#);
    let tree = Tree::local(&setup.dir.path().join("cdn")).unwrap();
    assert!(
        tree.list("version").await.unwrap().is_empty(),
        "nothing published"
    );
    assert_eq!(
        client
            .get(format!("{admin}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    service.shutdown().await.unwrap();

    // Without OPENWARN_MANUAL_RUNS there is no /run.
    let mut args = setup.args.clone();
    args.retain(|a| a != "--manual-runs=true");
    let service = openwarn_distribution::start(config(&args)).await.unwrap();
    let admin = format!("http://{}", service.addr("admin"));
    let status = client
        .post(format!("{admin}/run"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 404);
    service.shutdown().await.unwrap();
}

#[tokio::test]
async fn invalid_settings_are_named() {
    let setup = setup();
    // A country that is not a code is refused by clap, naming the flag.
    let mut args = setup.args.clone();
    args.push("--country=de".to_owned());
    let err = Args::try_parse_from(&args)
        .err()
        .expect("--country=de accepted");
    assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation, "{err}");
    assert!(err.to_string().contains("--country"), "{err}");

    let cases: [(&[&str], &str); 13] = [
        (&["--signing-keys="], "OPENWARN_SIGNING_KEYS"),
        (&["--signing-keys=v1"], "OPENWARN_SIGNING_KEYS"),
        (
            &["--signing-keys=v1=/nonexistent.pem"],
            "OPENWARN_SIGNING_KEYS",
        ),
        (&["--padding-secret=short"], "OPENWARN_PADDING_SECRET"),
        (&["--store-url=ftp://x"], "OPENWARN_STORE_URL"),
        (&["--store-url=s3://"], "OPENWARN_STORE_URL"),
        (
            &["--store-url=s3://bucket", "--s3-access-key-id=id"],
            "OPENWARN_S3_SECRET_ACCESS_KEY",
        ),
        (
            &["--min-keys-per-hour=700000"],
            "OPENWARN_MIN_KEYS_PER_HOUR",
        ),
        (&["--hour-retention=10m"], "OPENWARN_HOUR_RETENTION"),
        (
            &["--trl-days-since-onset=1,2,3,2,1,2,1,2"],
            "OPENWARN_TRL_DAYS_SINCE_ONSET",
        ),
        (
            &["--trl-days-since-onset=1,2"],
            "OPENWARN_TRL_DAYS_SINCE_ONSET",
        ),
        (
            &["--trl-report-types=4,4,3,3,2,2,1,6"],
            "OPENWARN_TRL_REPORT_TYPES",
        ),
        (
            &["--trl-report-types=4,4,3,3,2,2,1,1,1"],
            "OPENWARN_TRL_REPORT_TYPES",
        ),
    ];
    for (given, setting) in cases {
        let names: Vec<&str> = given.iter().map(|a| a.split('=').next().unwrap()).collect();
        let mut args: Vec<String> = setup
            .args
            .iter()
            .filter(|a| !names.iter().any(|n| a.starts_with(&format!("{n}="))))
            .cloned()
            .collect();
        args.extend(
            given
                .iter()
                .filter(|a| !a.ends_with('='))
                .map(|a| (*a).to_owned()),
        );
        let arg = given.join(" ");
        let err = match openwarn_distribution::start(config(&args)).await {
            Ok(_) => panic!("{arg} accepted"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(setting), "{arg}: {err}");
    }
}
