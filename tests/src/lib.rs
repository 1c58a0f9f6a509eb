//! Starts OpenWarn services in-process on 127.0.0.1:0 with a fresh dev PKI and fresh databases,
//! for end-to-end tests over real sockets (HTTP, HTTPS with client certificates, gRPC over mTLS).

use clap::Parser;
use openwarn_bootstrap::RunningService;
use openwarn_mtls::DevPki;
use openwarn_protocol::verification::v1::verification_service_client::VerificationServiceClient;
use openwarn_testkit::TestDatabase;
use std::net::SocketAddr;
use tonic::transport::Channel;

/// Certificates the tests issue: one per service, one for a gRPC caller standing in for
/// submission/portal, one allow-listed lab and one lab that is not.
pub const PKI_NAMES: &[&str] = &[
    "test-result",
    "verification",
    "submission",
    "lab",
    "rogue-lab",
];

#[derive(Parser)]
struct Parse<C: clap::Args> {
    #[command(flatten)]
    config: C,
}

/// Parses a service configuration from arguments (as its binary would).
pub fn config<C: clap::Args>(args: &[String]) -> C {
    Parse::<C>::try_parse_from(std::iter::once("test".to_owned()).chain(args.iter().cloned()))
        .unwrap_or_else(|e| panic!("bad test configuration: {e}"))
        .config
}

fn tls_args(pki: &DevPki, name: &str) -> Vec<String> {
    vec![
        "--tls-ca".into(),
        pki.ca().display().to_string(),
        "--tls-cert".into(),
        pki.cert(name).display().to_string(),
        "--tls-key".into(),
        pki.key(name).display().to_string(),
    ]
}

const EPHEMERAL: [&str; 6] = [
    "--http-addr",
    "127.0.0.1:0",
    "--grpc-addr",
    "127.0.0.1:0",
    "--admin-addr",
    "127.0.0.1:0",
];

/// test-result and verification, wired together.
pub struct Chain {
    pub pki: DevPki,
    _pki_dir: tempfile::TempDir,
    pub test_result_db: TestDatabase,
    pub verification_db: TestDatabase,
    pub kv_url: String,
    pub kv_namespace: String,
    pub test_result: Option<RunningService>,
    pub verification: Option<RunningService>,
}

impl Chain {
    /// Starts both services on fresh databases of the same backend as `db`, with the lab API
    /// over HTTPS and only the `lab` certificate allow-listed. `extra` goes to verification.
    pub async fn start(backend: &TestDatabase, kv_url: &str, extra: &[&str]) -> Self {
        let (pki_dir, pki) = openwarn_testkit::dev_pki(PKI_NAMES);
        let fresh = |db: &TestDatabase| match db {
            TestDatabase::Sqlite { .. } => TestDatabase::sqlite(),
            TestDatabase::Postgres { .. } => TestDatabase::postgres(
                &std::env::var(openwarn_testkit::POSTGRES_ENV).expect("postgres under test"),
            ),
        };
        let test_result_db = fresh(backend);
        let verification_db = fresh(backend);
        let lab_fingerprint = openwarn_mtls::fingerprint_of_pem(&pki.cert("lab")).unwrap();

        let mut args: Vec<String> = EPHEMERAL.iter().map(|s| (*s).to_owned()).collect();
        args.extend(tls_args(&pki, "test-result"));
        args.extend([
            "--database-url".into(),
            test_result_db.url().to_owned(),
            "--lab-tls-cert".into(),
            pki.cert("test-result").display().to_string(),
            "--lab-tls-key".into(),
            pki.key("test-result").display().to_string(),
            "--lab-client-fingerprints".into(),
            lab_fingerprint,
        ]);
        let test_result = openwarn_test_result::start(config(&args))
            .await
            .expect("test-result starts");

        let kv_namespace = format!("openwarn-e2e-{}", uuid::Uuid::new_v4().simple());
        let mut args: Vec<String> = EPHEMERAL.iter().map(|s| (*s).to_owned()).collect();
        args.extend(tls_args(&pki, "verification"));
        args.extend([
            "--database-url".into(),
            verification_db.url().to_owned(),
            "--kv-url".into(),
            kv_url.to_owned(),
            "--kv-namespace".into(),
            kv_namespace.clone(),
            "--test-result-url".into(),
            format!("https://{}", test_result.addr("grpc")),
        ]);
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let verification = openwarn_verification::start(config(&args))
            .await
            .expect("verification starts");
        Self {
            pki,
            _pki_dir: pki_dir,
            test_result_db,
            verification_db,
            kv_url: kv_url.to_owned(),
            kv_namespace,
            test_result: Some(test_result),
            verification: Some(verification),
        }
    }

    pub fn verification_addr(&self, label: &str) -> SocketAddr {
        self.verification
            .as_ref()
            .expect("verification runs")
            .addr(label)
    }

    pub fn test_result_addr(&self, label: &str) -> SocketAddr {
        self.test_result
            .as_ref()
            .expect("test-result runs")
            .addr(label)
    }

    /// An HTTPS client presenting the named certificate from the test PKI.
    pub fn lab_client(&self, name: Option<&str>) -> reqwest::Client {
        let ca = reqwest::Certificate::from_pem(&std::fs::read(self.pki.ca()).unwrap()).unwrap();
        let mut builder = reqwest::Client::builder()
            .add_root_certificate(ca)
            .use_rustls_tls();
        if let Some(name) = name {
            let mut pem = std::fs::read(self.pki.cert(name)).unwrap();
            pem.extend(std::fs::read(self.pki.key(name)).unwrap());
            builder = builder.identity(reqwest::Identity::from_pem(&pem).unwrap());
        }
        builder.build().unwrap()
    }

    pub fn lab_url(&self) -> String {
        format!(
            "https://{}/api/v1/lab/results",
            self.test_result_addr("http")
        )
    }

    pub fn app_url(&self, path: &str) -> String {
        format!(
            "http://{}/version/v1/{path}",
            self.verification_addr("http")
        )
    }

    /// A gRPC client of verification, authenticated as `as_name` from the test PKI.
    pub fn verification_grpc(&self, as_name: &str) -> VerificationServiceClient<Channel> {
        let channel = self
            .pki
            .files(as_name)
            .unwrap()
            .grpc_channel(
                &format!("https://{}", self.verification_addr("grpc")),
                "verification",
            )
            .unwrap();
        VerificationServiceClient::new(channel)
    }

    /// Every row of both services' databases.
    pub async fn tables(&self) -> Vec<String> {
        let tr = openwarn_db::Database::open(self.test_result_db.url(), 1)
            .await
            .unwrap();
        let mut rows = openwarn_test_result::Store::new(tr).dump().await.unwrap();
        let v = openwarn_db::Database::open(self.verification_db.url(), 1)
            .await
            .unwrap();
        rows.extend(openwarn_verification::Store::new(v).dump().await.unwrap());
        rows
    }

    pub async fn stop_test_result(&mut self) {
        if let Some(s) = self.test_result.take() {
            s.shutdown().await.unwrap();
        }
    }

    pub async fn shutdown(mut self) {
        if let Some(s) = self.verification.take() {
            s.shutdown().await.unwrap();
        }
        self.stop_test_result().await;
    }
}

/// Lowercase hex SHA-256, as the app hashes a GUID.
pub fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}
