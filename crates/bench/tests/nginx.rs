//! Distribution's embedded server answers as nginx answers for the same static files: the same
//! status, body and the headers a phone or a cache acts on, for plain, conditional, ranged and
//! HEAD requests and for paths that are not there. nginx serves the same directory with the
//! configuration `openwarn bench-distribution` uses (`serving::nginx_config`).
//!
//! Needs `nginx` on PATH (Debian's `nginx` package; `.ci/run` installs it). With `CI=true` a
//! missing nginx fails the test; elsewhere the test says so and passes.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration test: a failure is a failed test"
)]

use openwarn_bench::serving::{nginx_version, start_nginx};
use std::path::Path;

/// Writes an object in the local layout (`<path>/_object`).
fn put(store: &Path, path: &str, bytes: &[u8]) {
    let dir = store.join(path);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("_object"), bytes).unwrap();
}

const INDEX: &str = "version/v1/diagnosis-keys/country/DE/date";
const PACKAGE: &str = "version/v1/diagnosis-keys/country/DE/date/2026-11-20/hour/5";

/// A request header's value in a case.
enum Value {
    /// The ETag the server itself sent.
    OwnTag,
    /// The Last-Modified both send (the file's time).
    LastModified,
    Text(&'static str),
}

/// What of an answer must agree.
#[derive(Debug, PartialEq, Eq)]
struct Answer {
    status: u16,
    headers: Vec<(&'static str, Option<String>)>,
    body: Vec<u8>,
}

async fn answer(
    client: &reqwest::Client,
    addr: std::net::SocketAddr,
    method: reqwest::Method,
    path: &str,
    headers: &[(&str, String)],
) -> Answer {
    let mut request = client.request(method, format!("http://{addr}/{path}"));
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let mut kept = vec![
        ("content-length", header("content-length")),
        ("content-range", header("content-range")),
        ("last-modified", header("last-modified")),
    ];
    if status < 400 {
        // nginx's own error pages are HTML; ours are JSON with a reason: compared by status only.
        kept.push(("content-type", header("content-type")));
        kept.push(("cache-control", header("cache-control")));
        kept.push(("accept-ranges", header("accept-ranges")));
    } else {
        kept.retain(|(name, _)| *name == "content-range");
    }
    let body = response.bytes().await.unwrap().to_vec();
    Answer {
        status,
        headers: kept,
        body: if status < 400 { body } else { Vec::new() },
    }
}

#[tokio::test]
async fn the_embedded_server_answers_as_nginx_does() {
    if nginx_version("nginx").is_none() {
        assert!(
            !openwarn_testkit::ci(),
            "CI=true but nginx is not on PATH (Debian's nginx package)"
        );
        eprintln!("nginx not on PATH: comparison skipped (install Debian's nginx package)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("cdn");
    put(&store, INDEX, br#"["2026-11-19","2026-11-20"]"#);
    let package: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
    put(&store, PACKAGE, &package);

    let (pki_dir, pki) = openwarn_testkit::dev_pki(&["distribution"]);
    let (_, pem) = openwarn_bench::bench_distribution::signer().unwrap();
    let key = dir.path().join("signing.pem");
    std::fs::write(&key, pem).unwrap();
    let mut args = vec![
        "--http-addr=127.0.0.1:0".to_owned(),
        "--admin-addr=127.0.0.1:0".to_owned(),
        format!("--store-url={}", store.display()),
        "--submission-url=https://127.0.0.1:1".to_owned(),
        format!("--signing-keys=v1={}", key.display()),
        "--padding-secret=0123456789abcdef0123".to_owned(),
        "--schedule=false".to_owned(),
    ];
    args.extend(pki.service_args("distribution"));
    let ours = openwarn_distribution::start(openwarn_testkit::config(&args))
        .await
        .unwrap();
    let nginx = start_nginx("nginx", &store, INDEX).await.unwrap();
    let client = openwarn_testkit::http_client();

    let first = answer(&client, nginx.addr(), reqwest::Method::GET, PACKAGE, &[]).await;
    let last_modified = first.headers[2].1.clone().unwrap();
    // Each server's own validators: the tags differ in form, their use must not.
    let tag = |addr| {
        let client = client.clone();
        async move {
            client
                .get(format!("http://{addr}/{PACKAGE}"))
                .send()
                .await
                .unwrap()
                .headers()["etag"]
                .to_str()
                .unwrap()
                .to_owned()
        }
    };
    let (our_tag, their_tag) = (tag(ours.addr("http")).await, tag(nginx.addr()).await);
    assert!(
        our_tag.starts_with('"') && their_tag.starts_with('"'),
        "strong tags"
    );

    use reqwest::Method;
    let cases = [
        ("package", Method::GET, PACKAGE, None),
        ("index", Method::GET, INDEX, None),
        ("HEAD", Method::HEAD, PACKAGE, None),
        (
            "own tag",
            Method::GET,
            PACKAGE,
            Some(("if-none-match", Value::OwnTag)),
        ),
        (
            "since",
            Method::GET,
            PACKAGE,
            Some(("if-modified-since", Value::LastModified)),
        ),
        (
            "range",
            Method::GET,
            PACKAGE,
            Some(("range", Value::Text("bytes=100-199"))),
        ),
        (
            "suffix range",
            Method::GET,
            PACKAGE,
            Some(("range", Value::Text("bytes=-300"))),
        ),
        (
            "range beyond",
            Method::GET,
            PACKAGE,
            Some(("range", Value::Text("bytes=9000-"))),
        ),
        (
            "missing",
            Method::GET,
            "version/v1/diagnosis-keys/country/DE/date/2026-11-21",
            None,
        ),
        ("not a CDN path", Method::GET, "etc/passwd", None),
    ];
    for (what, method, path, header) in cases {
        let with = |tag: &str| -> Vec<(&str, String)> {
            header
                .iter()
                .map(|(name, value)| {
                    let value = match value {
                        Value::OwnTag => tag.to_owned(),
                        Value::LastModified => last_modified.clone(),
                        Value::Text(text) => (*text).to_owned(),
                    };
                    (*name, value)
                })
                .collect()
        };
        let theirs = answer(
            &client,
            nginx.addr(),
            method.clone(),
            path,
            &with(&their_tag),
        )
        .await;
        let mine = answer(&client, ours.addr("http"), method, path, &with(&our_tag)).await;
        assert_eq!(
            mine, theirs,
            "{what}: ours (left) and nginx's (right) differ"
        );
    }

    nginx.stop().await;
    ours.shutdown().await.unwrap();
    drop(pki_dir);
}
