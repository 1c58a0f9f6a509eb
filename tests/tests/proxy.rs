//! The proxy in front of a recording upstream (an HTTPS server with mutual TLS that records what
//! reaches it): forbidden headers and addresses never arrive (a phone's trace context neither:
//! the proxy sends its own), nor fakes, unknown paths, oversized
//! or slow bodies; rate limiting answers 429 with Retry-After; an upstream outage is a 503.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration test: a failure is a failed test"
)]

use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use openwarn_bootstrap::RunningService;
use openwarn_bootstrap::lifecycle::Routes;
use openwarn_e2e::{PKI_NAMES, start_proxy};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug, Clone)]
struct Seen {
    path: String,
    headers: Vec<(String, String)>,
    body_len: usize,
}

type Log = Arc<Mutex<Vec<Seen>>>;

async fn record(log: web::Data<Log>, request: HttpRequest, body: Bytes) -> HttpResponse {
    log.lock().unwrap().push(Seen {
        path: request.path().to_owned(),
        headers: request
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect(),
        body_len: body.len(),
    });
    HttpResponse::Created()
        .insert_header(("content-type", "application/json"))
        .insert_header(("set-cookie", "tracking=1"))
        .body(format!(
            "{{\"tan\":\"x\",\"responsePadding\":\"{}\"}}",
            "p".repeat(100)
        ))
}

struct Rig {
    log: Log,
    _pki_dir: tempfile::TempDir,
    upstream: RunningService,
    proxy: RunningService,
}

async fn rig(extra: &[&str]) -> Rig {
    let (pki_dir, pki) = openwarn_testkit::dev_pki(PKI_NAMES);
    let log: Log = Arc::default();
    let recorded = web::Data::new(log.clone());
    let router = Routes::new(move |config| {
        config
            .app_data(recorded.clone())
            .default_service(web::to(record));
    });
    let mut upstream = RunningService::new("recorder");
    let tls = pki.files("verification").unwrap().https_server().unwrap();
    let addr = upstream
        .serve_https_on("http", "127.0.0.1:0".parse().unwrap(), tls, router)
        .await
        .unwrap();
    let base = format!("https://{addr}");
    let proxy = start_proxy(&pki, &base, &base, "memory://", extra).await;
    Rig {
        log,
        _pki_dir: pki_dir,
        upstream,
        proxy,
    }
}

impl Rig {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.proxy.addr("http"))
    }
    fn seen(&self) -> Vec<Seen> {
        self.log.lock().unwrap().clone()
    }
    async fn stop(self) {
        self.proxy.shutdown().await.unwrap();
        self.upstream.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn only_allow_listed_headers_reach_the_backend_and_the_app() {
    // With telemetry installed (as in every service process), the proxy sends its own trace
    // context; the phone's never passes. The guard stays for the whole test.
    let _telemetry = openwarn_bootstrap::telemetry::init(
        "proxy-test",
        &openwarn_bootstrap::config::TelemetryArgs {
            log_format: openwarn_bootstrap::config::LogFormat::Json,
            log_filter: "warn".into(),
            otlp_endpoint: None,
        },
    )
    .unwrap();
    let rig = rig(&[]).await;
    let response = openwarn_testkit::http_client()
        .post(rig.url("/version/v1/tan"))
        .header("content-type", "application/json")
        .header("cwa-fake", "0")
        .header("x-forwarded-for", "203.0.113.9")
        .header("forwarded", "for=203.0.113.9")
        .header("x-real-ip", "203.0.113.9")
        .header("user-agent", "Phone/1.0")
        .header("cookie", "session=abc")
        .header("via", "1.1 edge")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .header("tracestate", "vendor=x")
        .header("x-anything-else", "y")
        .body(r#"{"registrationToken":"x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    let names: Vec<&str> = response.headers().keys().map(|k| k.as_str()).collect();
    assert!(
        !names.contains(&"set-cookie"),
        "response headers are allow-listed too: {names:?}"
    );
    let seen = rig.seen();
    assert_eq!(seen.len(), 1);
    let request = &seen[0];
    assert_eq!(request.path, "/version/v1/tan");
    assert_eq!(request.body_len, 25);
    let traceparent = request
        .headers
        .iter()
        .find(|(n, _)| n == "traceparent")
        .map(|(_, v)| v.clone())
        .expect("the proxy's own trace context");
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "{traceparent}");
    assert_ne!(
        parts[1], "4bf92f3577b34da6a3ce929d0e0e4736",
        "the phone's trace is not continued"
    );
    assert_ne!(parts[2], "00f067aa0ba902b7");
    for (name, value) in &request.headers {
        assert!(
            [
                "content-type",
                "content-length",
                "cwa-fake",
                "cwa-authorization",
                "host",
                "traceparent"
            ]
            .contains(&name.as_str()),
            "{name} reached the backend"
        );
        assert!(
            !value.contains("203.0.113.9"),
            "an address reached the backend in {name}"
        );
    }
    // Over HTTP/2 (negotiated with the backend) the authority travels in the URI; over HTTP/1.1
    // it would be `host`. Either way it names the backend, never the client.
    if let Some((_, host)) = request.headers.iter().find(|(n, _)| n == "host") {
        assert_eq!(host, &rig.upstream.addr("http").to_string());
    }
    rig.stop().await;
}

#[tokio::test]
async fn fakes_unknown_paths_oversized_and_slow_bodies_never_arrive() {
    let rig = rig(&["--read-timeout", "1s"]).await;
    let client = openwarn_testkit::http_client();
    // One real request per route teaches the proxy what a success looks like.
    for path in [
        "/version/v1/registrationToken",
        "/version/v1/diagnosis-keys",
    ] {
        let r = client
            .post(rig.url(path))
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201);
    }
    let real_len = openwarn_testkit::http_client()
        .post(rig.url("/version/v1/tan"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .len();
    assert_eq!(rig.seen().len(), 3);

    // Fakes, on every route: answered at the edge with the real status and length.
    for path in [
        "/version/v1/registrationToken",
        "/version/v1/testresult",
        "/version/v1/tan",
        "/version/v1/diagnosis-keys",
    ] {
        let r = client
            .post(rig.url(path))
            .header("content-type", "application/json")
            .header("cwa-fake", "1")
            .body("{\"registrationToken\":\"whatever\"}")
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let len = r.bytes().await.unwrap().len();
        if path.ends_with("/tan") {
            assert_eq!((status, len), (201, real_len));
        }
        if path.ends_with("/testresult") {
            assert_eq!(
                (status, len),
                (200, 320),
                "no real one seen yet: the configured length"
            );
        }
    }
    // Unknown paths and methods.
    assert_eq!(
        client
            .post(rig.url("/version/v1/other"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        404
    );
    assert_eq!(
        client
            .get(rig.url("/"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        404
    );
    assert_eq!(
        client
            .get(rig.url("/version/v1/tan"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        405
    );
    // Oversized: declared, and streamed without a length.
    let big = vec![b'x'; 11 * 1024];
    assert_eq!(
        client
            .post(rig.url("/version/v1/tan"))
            .body(big.clone())
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        413
    );
    let chunks = futures_stream(big);
    let r = client
        .post(rig.url("/version/v1/tan"))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);
    let huge = vec![b'x'; 101 * 1024];
    assert_eq!(
        client
            .post(rig.url("/version/v1/diagnosis-keys"))
            .body(huge)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        413
    );
    // A body that never finishes arriving.
    let mut stream = tokio::net::TcpStream::connect(rig.proxy.addr("http"))
        .await
        .unwrap();
    stream
        .write_all(b"POST /version/v1/tan HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"regis")
        .await
        .unwrap();
    let mut answer = vec![0; 512];
    let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&answer[..n])
    );

    assert_eq!(
        rig.seen().len(),
        3,
        "nothing but the three real requests arrived"
    );
    rig.stop().await;
}

fn futures_stream(
    bytes: Vec<u8>,
) -> impl futures_core::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    tokio_stream::iter(
        bytes
            .chunks(1024)
            .map(|c| Ok(c.to_vec()))
            .collect::<Vec<_>>(),
    )
}

#[tokio::test]
async fn rate_limiting_answers_429_with_retry_after() {
    let rig = rig(&["--rate-limit", "3", "--rate-limit-window", "1h"]).await;
    let client = openwarn_testkit::http_client();
    let send = || {
        client
            .post(rig.url("/version/v1/tan"))
            .header("content-type", "application/json")
            .header("cwa-fake", "1")
            .body("{}")
            .send()
    };
    for _ in 0..3 {
        assert_eq!(send().await.unwrap().status().as_u16(), 201);
    }
    let limited = send().await.unwrap();
    assert_eq!(limited.status().as_u16(), 429);
    let retry: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3600).contains(&retry));
    rig.stop().await;
}

#[tokio::test]
async fn an_upstream_outage_is_a_503() {
    let rig = rig(&[]).await;
    let Rig {
        log: _,
        _pki_dir,
        upstream,
        proxy,
    } = rig;
    upstream.shutdown().await.unwrap();
    let r = openwarn_testkit::http_client()
        .post(format!("http://{}/version/v1/tan", proxy.addr("http")))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 503);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "dependency_unavailable");
    proxy.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_rate_limit_key_is_the_ingress_supplied_address_and_cannot_be_spoofed() {
    let rig = rig(&[
        "--rate-limit",
        "2",
        "--rate-limit-window",
        "1h",
        "--client-address-header",
        "x-forwarded-for",
    ])
    .await;
    let client = openwarn_testkit::http_client();
    let send = |xff: &'static str| {
        client
            .post(rig.url("/version/v1/tan"))
            .header("content-type", "application/json")
            .header("cwa-fake", "1")
            .header("x-forwarded-for", xff)
            .body("{}")
            .send()
    };
    // The ingress appends the real client address last; what a phone put before it is ignored.
    assert_eq!(send("198.51.100.1").await.unwrap().status().as_u16(), 201);
    assert_eq!(
        send("10.0.0.1, 198.51.100.1")
            .await
            .unwrap()
            .status()
            .as_u16(),
        201
    );
    assert_eq!(
        send("10.0.0.2, 198.51.100.1")
            .await
            .unwrap()
            .status()
            .as_u16(),
        429,
        "same client, spoofed prefix"
    );
    // Another client has its own quota, though the TCP peer is the same ingress.
    assert_eq!(send("198.51.100.2").await.unwrap().status().as_u16(), 201);
    rig.stop().await;
}
