//! The Redis store over TLS against a real `redis-server` this test starts (TLS port only, a CA
//! and server certificate from the development PKI, a password). Skipped with a message when
//! `redis-server` is missing, failed instead under `CI=true`.

use super::tests::{
    check_a_lease_has_one_holder_until_released_or_lapsed,
    check_concurrent_increments_are_not_lost, check_concurrent_takers_get_one_lease,
    check_counters_count_and_expire,
};
use super::{KvError, KvStore, Options, open_with};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PASSWORD: &str = "test-password-7f3a";

#[allow(
    clippy::disallowed_methods,
    reason = "tests only: CI decides whether a missing redis-server fails or skips, as in \
              openwarn_testkit::ci(); no service configuration is read here"
)]
fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// A `redis-server` child listening with TLS only; killed on drop.
struct TlsRedis {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
    ca_pem: String,
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn redis_server_available() -> bool {
    Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl TlsRedis {
    /// `None` (with a message) when there is no `redis-server` and this is not CI.
    async fn start() -> Option<Self> {
        if !redis_server_available() {
            assert!(!ci(), "CI=true but redis-server is not installed");
            eprintln!("skipped: redis-server is not installed (install it to run the TLS tests)");
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let pki = openwarn_mtls::DevPki::ensure(&dir.path().join("pki"), &["redis"])
            .expect("development PKI");
        let ca_pem = std::fs::read_to_string(pki.ca()).expect("CA PEM");
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("redis.log")).expect("log file");
        let child = Command::new("redis-server")
            .arg("--port")
            .arg("0")
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--tls-port")
            .arg(port.to_string())
            .arg("--tls-cert-file")
            .arg(pki.cert("redis"))
            .arg("--tls-key-file")
            .arg(pki.key("redis"))
            .arg("--tls-ca-cert-file")
            .arg(pki.ca())
            .arg("--tls-auth-clients")
            .arg("no")
            .arg("--requirepass")
            .arg(PASSWORD)
            .arg("--save")
            .arg("")
            .arg("--appendonly")
            .arg("no")
            .arg("--dir")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("redis-server starts");
        let mut server = Self {
            child,
            port,
            _dir: dir,
            ca_pem,
        };
        server.wait_listening().await;
        Some(server)
    }

    async fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().expect("child status") {
                let log =
                    std::fs::read_to_string(self._dir.path().join("redis.log")).unwrap_or_default();
                panic!("redis-server exited ({status}) before listening:\n{log}");
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not listen on its TLS port within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.port)
    }

    fn options(&self) -> Options {
        Options {
            ca_pem: Some(self.ca_pem.clone()),
            password: Some(PASSWORD.to_owned()),
        }
    }
}

fn namespace() -> String {
    format!("tls-test-{}", uuid::Uuid::new_v4())
}

/// Opens and pings, bounded in time: a refusal must be an error, never a hang.
async fn open_and_ping(url: &str, options: &Options) -> Result<Arc<dyn KvStore>, KvError> {
    tokio::time::timeout(Duration::from_secs(30), async {
        let store = open_with(url, &namespace(), options).await?;
        store.ping().await?;
        Ok(store)
    })
    .await
    .expect("an answer (error or not) within 30 s, not a hang")
}

#[tokio::test]
async fn the_store_works_over_tls_with_the_ca_file_and_password() {
    let Some(redis) = TlsRedis::start().await else {
        return;
    };
    let options = redis.options();
    for check in 0..4 {
        // A fresh namespace for each check, as the existing store tests expect.
        let store = open_and_ping(&redis.url(), &options)
            .await
            .expect("rediss:// with the right CA and password");
        match check {
            0 => check_counters_count_and_expire(store).await,
            1 => check_concurrent_increments_are_not_lost(store).await,
            2 => check_a_lease_has_one_holder_until_released_or_lapsed(store).await,
            _ => check_concurrent_takers_get_one_lease(store).await,
        }
    }
}

#[tokio::test]
async fn a_server_certificate_of_another_ca_is_refused() {
    let Some(redis) = TlsRedis::start().await else {
        return;
    };
    let other = tempfile::tempdir().expect("temp dir");
    let other_pki =
        openwarn_mtls::DevPki::ensure(other.path(), &["redis"]).expect("another development PKI");
    let options = Options {
        ca_pem: Some(std::fs::read_to_string(other_pki.ca()).expect("other CA PEM")),
        password: Some(PASSWORD.to_owned()),
    };
    let err = open_and_ping(&redis.url(), &options)
        .await
        .expect_err("a server certificate the CA did not sign is refused");
    eprintln!("another CA: {err}");
    assert!(matches!(err, KvError::Unavailable(_)), "{err:?}");
    assert!(err.to_string().contains("certificate"), "{err}");
    // Nor do the system roots trust the development CA.
    let no_ca = Options {
        ca_pem: None,
        password: Some(PASSWORD.to_owned()),
    };
    let err = open_and_ping(&redis.url(), &no_ca)
        .await
        .expect_err("the development CA is not among the system roots");
    eprintln!("system roots: {err}");
    assert!(matches!(err, KvError::Unavailable(_)), "{err:?}");
}

#[tokio::test]
async fn plain_redis_to_the_tls_port_and_a_wrong_password_fail() {
    let Some(redis) = TlsRedis::start().await else {
        return;
    };
    let plain = Options {
        ca_pem: None,
        password: Some(PASSWORD.to_owned()),
    };
    let err = open_and_ping(&format!("redis://127.0.0.1:{}", redis.port), &plain)
        .await
        .expect_err("plain text to a TLS port fails");
    eprintln!("plain redis:// to the TLS port: {err}");
    assert!(matches!(err, KvError::Unavailable(_)), "{err:?}");

    let wrong = Options {
        ca_pem: Some(redis.ca_pem.clone()),
        password: Some("not-the-password".to_owned()),
    };
    assert!(open_and_ping(&redis.url(), &wrong).await.is_err());
    let none = Options {
        ca_pem: Some(redis.ca_pem.clone()),
        password: None,
    };
    assert!(open_and_ping(&redis.url(), &none).await.is_err());
}

#[tokio::test]
async fn a_ca_needs_rediss_and_a_pem_certificate() {
    let ca = Options {
        ca_pem: Some("-----BEGIN CERTIFICATE-----\n".to_owned()),
        password: None,
    };
    for url in ["redis://127.0.0.1:1", "memory://"] {
        let err = open_with(url, "n", &ca).await.expect_err(url);
        assert!(matches!(err, KvError::Options(_)), "{url}: {err:?}");
    }
    let not_pem = Options {
        ca_pem: Some("not a certificate".to_owned()),
        password: None,
    };
    let err = open_with("rediss://127.0.0.1:1", "n", &not_pem)
        .await
        .expect_err("not PEM");
    assert!(matches!(err, KvError::Options(_)), "{err:?}");
    let broken = Options {
        ca_pem: Some("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_owned()),
        password: None,
    };
    let err = open_with("rediss://127.0.0.1:1", "n", &broken)
        .await
        .expect_err("broken PEM");
    assert!(matches!(err, KvError::Options(_)), "{err:?}");
    // The error never echoes the certificate or a password.
    let with_password = Options {
        ca_pem: None,
        password: Some("hunter2".to_owned()),
    };
    let err = open_with("memory://", "n", &with_password)
        .await
        .expect_err("password for memory://");
    assert!(!err.to_string().contains("hunter2"));
    assert!(!format!("{with_password:?}").contains("hunter2"));
}
