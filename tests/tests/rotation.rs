//! Certificates rotated under running services: cert-manager writes renewed files in place, and
//! without a restart every TLS port (internal gRPC, internal HTTPS, the lab endpoint) presents
//! the new certificate on new handshakes, while a connection made before keeps working. The
//! certificates' expiry is exported for alerting.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration test: a failure is a failed test"
)]

use openwarn_e2e::PKI_NAMES;
use openwarn_mtls::DevPki;
use openwarn_testkit::{TestDatabase, config};
use rustls::pki_types::{CertificateDer, ServerName};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const RELOAD: [&str; 2] = ["--tls-reload-interval", "1s"];

fn first_cert(path: &std::path::Path) -> CertificateDer<'static> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_file_iter(path)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
}

type Tls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

/// A TLS connection to `addr` as `client` (its certificate from the PKI), expecting `server`'s
/// name; ALPN `alpn`.
async fn connect(pki: &DevPki, client: &str, addr: SocketAddr, server: &str, alpn: &[u8]) -> Tls {
    let files = pki.files(client).unwrap();
    let mut config = files.https_client().unwrap();
    config.alpn_protocols = vec![alpn.to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from(server.to_owned()).unwrap(), tcp)
        .await
        .unwrap()
}

fn presented(tls: &Tls) -> CertificateDer<'static> {
    tls.get_ref().1.peer_certificates().unwrap()[0].clone()
}

/// One HTTP/1.1 request on an open connection; the status line of the answer.
async fn status_line(tls: &mut Tls) -> String {
    tls.write_all(b"GET /no-such-path HTTP/1.1\r\nHost: test-result\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let mut buf = [0_u8; 4096];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tls.read(&mut buf).await.unwrap();
        assert!(n > 0, "the connection was closed");
        answer.extend_from_slice(&buf[..n]);
    }
    // The JSON body's length is in Content-Length; read it so the next request starts clean.
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap();
    let mut have = body.len();
    while have < length {
        have += tls.read(&mut buf).await.unwrap();
    }
    head.lines().next().unwrap().to_owned()
}

fn unix(t: SystemTime) -> i64 {
    i64::try_from(t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs()).unwrap()
}

#[tokio::test]
async fn renewed_certificates_serve_new_handshakes_on_every_port_without_a_restart() {
    let (_dir, pki) = openwarn_testkit::dev_pki(PKI_NAMES);
    let backend = TestDatabase::sqlite();
    let (test_result_db, verification_db) = (backend.another(), backend.another());
    let mut args = openwarn_e2e::test_result_args(&pki, &test_result_db);
    args.extend(RELOAD.map(str::to_owned));
    let test_result = openwarn_test_result::start(config(&args)).await.unwrap();
    let mut args: Vec<String> = openwarn_e2e::EPHEMERAL
        .iter()
        .chain(&RELOAD)
        .map(|s| (*s).to_owned())
        .collect();
    args.extend(pki.service_args("verification"));
    args.extend([
        "--database-url".into(),
        verification_db.url().to_owned(),
        "--test-result-url".into(),
        format!("https://{}", test_result.addr("grpc")),
    ]);
    let verification = openwarn_verification::start(config(&args)).await.unwrap();

    // (port, the caller's identity, the server's name, ALPN, whose certificate it presents)
    let ports = [
        (
            test_result.addr("grpc"),
            "verification",
            "test-result",
            &b"h2"[..],
            "test-result",
        ),
        (
            test_result.addr("http"),
            "lab",
            "test-result",
            &b"http/1.1"[..],
            "test-result",
        ),
        (
            verification.addr("grpc"),
            "submission",
            "verification",
            &b"h2"[..],
            "verification",
        ),
        (
            verification.addr("http"),
            "proxy",
            "verification",
            &b"http/1.1"[..],
            "verification",
        ),
    ];
    for (addr, client, server, alpn, owner) in ports {
        let tls = connect(&pki, client, addr, server, alpn).await;
        assert_eq!(
            presented(&tls),
            first_cert(&pki.cert(owner)),
            "{addr} before"
        );
    }
    // A lab's connection made before the rotation.
    let mut kept = connect(
        &pki,
        "lab",
        test_result.addr("http"),
        "test-result",
        b"http/1.1",
    )
    .await;
    assert!(status_line(&mut kept).await.starts_with("HTTP/1.1 404"));

    // cert-manager renews both services' certificates: each file replaced whole, in place.
    let now = SystemTime::now();
    let not_after = now + Duration::from_secs(400 * 86_400);
    for name in ["test-result", "verification"] {
        let renewed = format!("{name}-renewed");
        pki.issue(name, &renewed, now - Duration::from_secs(60), not_after)
            .unwrap();
        for (from, to) in [
            (pki.key(&renewed), pki.key(name)),
            (pki.cert(&renewed), pki.cert(name)),
        ] {
            let tmp = to.with_extension("tmp");
            std::fs::copy(from, &tmp).unwrap();
            std::fs::rename(&tmp, &to).unwrap();
        }
    }

    // New handshakes on every port present the renewed certificates (within a few reload
    // intervals; the deadline only bounds a failing test).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    for (addr, client, server, alpn, owner) in ports {
        let renewed = first_cert(&pki.cert(&format!("{owner}-renewed")));
        loop {
            let tls = connect(&pki, client, addr, server, alpn).await;
            if presented(&tls) == renewed {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{addr} still presents the old certificate"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // The connection made before the rotation was not dropped.
    assert!(status_line(&mut kept).await.starts_with("HTTP/1.1 404"));

    // The expiry of what is in use now, for alerting.
    let metrics = openwarn_testkit::scrape(test_result.addr("admin")).await;
    for certificate in ["service", "lab_server", "ca", "lab_ca"] {
        let line = metrics
            .lines()
            .find(|l| {
                l.starts_with(&format!(
                    "openwarn_tls_certificate_expiry_timestamp_seconds{{certificate=\"{certificate}\"}}"
                ))
            })
            .unwrap_or_else(|| panic!("no expiry of {certificate} in\n{metrics}"));
        let value: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        if certificate == "service" || certificate == "lab_server" {
            #[allow(clippy::cast_precision_loss, reason = "Unix seconds fit an f64")]
            let expected = unix(not_after) as f64;
            assert!((value - expected).abs() <= 1.0, "{line}");
        }
    }
    assert!(
        metrics.contains("openwarn_tls_reloads_total{result=\"ok\"}"),
        "{metrics}"
    );

    verification.shutdown().await.unwrap();
    test_result.shutdown().await.unwrap();
}
