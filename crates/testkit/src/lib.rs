//! The one test kit of OpenWarn, shared by every crate's tests, the end-to-end tests (`tests/`,
//! the CLI's) and the benchmarks.
//!
//! Storage tests run against SQLite (and the in-memory key-value store) always, and against
//! PostgreSQL and Redis when `OPENWARN_TEST_POSTGRES_URL` / `OPENWARN_TEST_REDIS_URL` are set. Each
//! test gets a fresh database (created, then dropped) and its own Redis key namespace. With
//! `CI=true` an unset or unreachable backend fails the test instead of skipping it.
//!
//! For tests that start services: a dev PKI ([`dev_pki`]) and the TLS arguments of a service
//! from it ([`openwarn_mtls::DevPki::service_args`]), a service configuration parsed from arguments as its
//! binary would ([`config`]), free ports, readiness, HTTPS clients with a test certificate, and
//! `openwarn up` as a child process ([`launcher`]). Like every crate, it links no service.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test support: a failure here is a failed test"
)]

pub mod launcher;
pub mod oidc_provider;
#[cfg(unix)]
pub mod own;
pub mod process;
pub mod web;

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use openwarn_kv::KvStore;
use std::sync::Arc;

pub const POSTGRES_ENV: &str = "OPENWARN_TEST_POSTGRES_URL";
pub const REDIS_ENV: &str = "OPENWARN_TEST_REDIS_URL";

/// Whether this run is CI's (`CI=true`), where every backend is required.
#[allow(
    clippy::disallowed_methods,
    reason = "test support: CI is the test environment's switch, not a service setting for clap"
)]
pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

#[allow(
    clippy::disallowed_methods,
    reason = "test support: OPENWARN_TEST_POSTGRES_URL / OPENWARN_TEST_REDIS_URL name the test \
              backends, not a service setting for clap"
)]
fn backend_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                !ci(),
                "CI=true but {var} is not set: this backend is required in CI"
            );
            None
        }
    }
}

/// A database that exists for one test.
pub enum TestDatabase {
    Sqlite {
        _dir: tempfile::TempDir,
        url: String,
    },
    Postgres {
        admin_url: String,
        name: String,
        url: String,
    },
}

impl TestDatabase {
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("test.db").display());
        Self::Sqlite { _dir: dir, url }
    }

    /// A new, empty PostgreSQL database on the server `admin_url` points to.
    pub fn postgres(admin_url: &str) -> Self {
        let name = format!("openwarn_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::establish(admin_url)
            .unwrap_or_else(|e| panic!("{POSTGRES_ENV} is set but PostgreSQL is unreachable: {e}"));
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create test database");
        let url = with_database(admin_url, &name);
        Self::Postgres {
            admin_url: admin_url.to_owned(),
            name,
            url,
        }
    }

    /// Another fresh database on the same backend (for a second service of one test).
    pub fn another(&self) -> Self {
        match self {
            Self::Sqlite { .. } => Self::sqlite(),
            Self::Postgres { admin_url, .. } => Self::postgres(admin_url),
        }
    }

    pub fn url(&self) -> &str {
        match self {
            Self::Sqlite { url, .. } | Self::Postgres { url, .. } => url,
        }
    }

    pub fn label(&self) -> &'static str {
        match self {
            Self::Sqlite { .. } => "sqlite",
            Self::Postgres { .. } => "postgres",
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Self::Postgres {
            admin_url, name, ..
        } = self
            && let Ok(mut admin) = PgConnection::establish(admin_url)
        {
            let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

pub use openwarn_db::with_database;

/// One fresh database per backend under test: SQLite, plus PostgreSQL when configured.
pub fn databases() -> Vec<TestDatabase> {
    let mut dbs = vec![TestDatabase::sqlite()];
    if let Some(url) = backend_url(POSTGRES_ENV) {
        dbs.push(TestDatabase::postgres(&url));
    }
    dbs
}

/// One key-value store per backend under test: in memory, plus Redis (own namespace) when set.
pub async fn kv_stores() -> Vec<(&'static str, Arc<dyn KvStore>)> {
    let mut stores: Vec<(&'static str, Arc<dyn KvStore>)> =
        vec![("memory", Arc::new(openwarn_kv::MemoryStore::default()))];
    if let Some(url) = backend_url(REDIS_ENV) {
        let namespace = format!("openwarn-test-{}", uuid::Uuid::new_v4().simple());
        let store = openwarn_kv::open(&url, &namespace)
            .await
            .unwrap_or_else(|e| panic!("{REDIS_ENV} is set but Redis is unreachable: {e}"));
        stores.push(("redis", store));
    }
    stores
}

/// The PostgreSQL server under test, if any (a user that may create databases).
pub fn postgres_url() -> Option<String> {
    backend_url(POSTGRES_ENV)
}

/// The Redis URL under test, if any (for tests that start whole services).
pub fn redis_url() -> Option<String> {
    backend_url(REDIS_ENV)
}

/// Pairs of (database, key-value URL) covering every backend: SQLite with the in-memory store,
/// and PostgreSQL with Redis when configured.
pub fn backends() -> Vec<(TestDatabase, String)> {
    let mut out = vec![(TestDatabase::sqlite(), "memory://".to_owned())];
    let pg = backend_url(POSTGRES_ENV);
    let redis = backend_url(REDIS_ENV);
    if let Some(pg) = pg {
        out.push((
            TestDatabase::postgres(&pg),
            redis.unwrap_or_else(|| "memory://".into()),
        ));
    }
    out
}

/// A development PKI in a temporary directory.
pub fn dev_pki(names: &[&str]) -> (tempfile::TempDir, openwarn_mtls::DevPki) {
    let dir = tempfile::tempdir().expect("temp dir");
    let pki = openwarn_mtls::DevPki::ensure(dir.path(), names).expect("dev PKI");
    (dir, pki)
}

#[derive(clap::Parser)]
struct Parse<C: clap::Args> {
    #[command(flatten)]
    config: C,
}

/// Parses a service configuration from `args` (without the program name), as its binary would.
pub fn try_config<C: clap::Args>(args: impl IntoIterator<Item = String>) -> Result<C, clap::Error> {
    use clap::Parser;
    Ok(Parse::<C>::try_parse_from(std::iter::once("test".to_owned()).chain(args))?.config)
}

/// [`try_config`] for tests: a configuration the test got wrong panics with clap's message.
pub fn config<C: clap::Args>(args: &[String]) -> C {
    try_config(args.iter().cloned()).unwrap_or_else(|e| panic!("bad test configuration: {e}"))
}

/// A loopback port free at the time of the call (for a child process to bind).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A plain-HTTP client for tests (its TLS configuration trusts no server; no process-wide TLS
/// provider is needed).
pub fn http_client() -> reqwest::Client {
    client(openwarn_mtls::http_client_tls(&[], None).expect("a TLS configuration"))
}

/// The Prometheus text a service's admin port at `admin` serves at `/metrics`.
pub async fn scrape(admin: std::net::SocketAddr) -> String {
    http_client()
        .get(format!("http://{admin}/metrics"))
        .send()
        .await
        .expect("the admin port answers")
        .text()
        .await
        .expect("a metrics text")
}

/// An HTTPS client trusting the dev CA and presenting the certificate of `name`, if any (a lab,
/// the proxy, or another caller from the PKI).
pub fn https_client(pki: &openwarn_mtls::DevPki, name: Option<&str>) -> reqwest::Client {
    let ca = std::fs::read(pki.ca()).expect("read the CA");
    let identity = name.map(|name| {
        (
            std::fs::read(pki.cert(name)).expect("read the certificate"),
            std::fs::read(pki.key(name)).expect("read the key"),
        )
    });
    let identity = identity
        .as_ref()
        .map(|(cert, key)| (cert.as_slice(), key.as_slice()));
    client(openwarn_mtls::http_client_tls(&ca, identity).expect("a TLS configuration"))
}

fn client(tls: rustls::ClientConfig) -> reqwest::Client {
    client_with(tls, reqwest::redirect::Policy::default())
}

#[allow(
    clippy::disallowed_methods,
    reason = "the one place test clients are built: with their own TLS configuration"
)]
pub(crate) fn client_with(
    tls: rustls::ClientConfig,
    redirect: reqwest::redirect::Policy,
) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .redirect(redirect)
        .build()
        .expect("an HTTP client")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_args_name_the_pki_files_of_the_service() {
        let (_dir, pki) = dev_pki(&["verification"]);
        let args = pki.service_args("verification");
        assert_eq!(args.len(), 6);
        assert_eq!(args[0], "--tls-ca");
        assert_eq!(args[1], pki.ca().display().to_string());
        assert_eq!(args[3], pki.cert("verification").display().to_string());
        assert_eq!(args[5], pki.key("verification").display().to_string());
        // A configuration parses them as a service binary does.
        #[derive(clap::Args)]
        struct Tls {
            #[arg(long)]
            tls_ca: std::path::PathBuf,
            #[arg(long)]
            tls_cert: std::path::PathBuf,
            #[arg(long)]
            tls_key: std::path::PathBuf,
        }
        let tls: Tls = config(&args);
        assert_eq!(tls.tls_ca, pki.ca());
        assert_eq!(tls.tls_cert, pki.cert("verification"));
        assert_eq!(tls.tls_key, pki.key("verification"));
        assert!(try_config::<Tls>(["--tls-ca".to_owned()]).is_err());
    }

    #[tokio::test]
    async fn every_configured_database_is_fresh_and_usable() {
        for db in databases() {
            let other = db.another();
            assert_eq!(other.label(), db.label());
            assert_ne!(other.url(), db.url());
        }
        for db in databases() {
            let conn = openwarn_db::Database::open(db.url(), 2).await.unwrap();
            conn.run(|c| c.batch_execute("CREATE TABLE fresh (id INTEGER PRIMARY KEY)"))
                .await
                .unwrap();
        }
    }
}

/// A real S3-compatible server for tests: moto's server mode (`pip install 'moto[server]'`) on a
/// free loopback port, with one fresh bucket. Killed on drop.
#[derive(Debug)]
pub struct S3Server {
    child: std::process::Child,
    pub endpoint: String,
    pub bucket: String,
}

impl S3Server {
    /// Starts moto. `None` when it is not installed, except under `CI=true`, where that fails the
    /// test (as a missing PostgreSQL does).
    pub fn start() -> Option<Self> {
        let installed = std::process::Command::new("python3")
            .args(["-c", "import moto.server, flask, werkzeug"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !installed {
            assert!(
                !ci(),
                "CI=true but moto's S3 server is not installed (pip install 'moto[server]')"
            );
            eprintln!("skipping the S3 case: moto is not installed (pip install 'moto[server]')");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = std::process::Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start moto");
        let server = Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            bucket: format!("openwarn-{}", uuid::Uuid::new_v4().simple()),
        };
        // Wait for it to listen, then create the bucket (moto accepts unsigned requests).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if let Ok(mut conn) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                use std::io::{Read, Write};
                let request = format!(
                    "PUT /{} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    server.bucket
                );
                conn.write_all(request.as_bytes()).expect("create bucket");
                let mut response = String::new();
                let _ = conn.read_to_string(&mut response);
                assert!(
                    response.starts_with("HTTP/1.1 200"),
                    "moto refused the bucket: {response}"
                );
                return Some(server);
            }
            assert!(
                std::time::Instant::now() < deadline,
                "moto did not start within 30 s"
            );
            #[allow(
                clippy::disallowed_methods,
                reason = "test support: a sync helper polling moto's start-up; blocking the \
                          test that waits for it is the point"
            )]
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
