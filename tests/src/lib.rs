//! Starts OpenWarn services in-process on 127.0.0.1:0 with a fresh dev PKI and fresh databases,
//! for end-to-end tests over real sockets (HTTP, HTTPS with client certificates, gRPC over mTLS).
//!
//! Only what needs the service crates lives here (the chain of services, started together);
//! everything else — databases, the dev PKI and a service's arguments from it, parsing a
//! configuration, HTTPS clients — is `openwarn_testkit`'s.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test support: a failure here is a failed test"
)]

use openwarn_bootstrap::RunningService;
use openwarn_mtls::DevPki;
use openwarn_protocol::cwa::SubmissionPayload;
use openwarn_protocol::gaen::TemporaryExposureKey;
use openwarn_protocol::submission::v1::submission_service_client::SubmissionServiceClient;
use openwarn_protocol::submission::v1::{DiagnosisKey, StreamDiagnosisKeysRequest};
use openwarn_protocol::testresult::v1::GetTestResultRequest;
use openwarn_protocol::testresult::v1::test_result_service_client::TestResultServiceClient;
use openwarn_protocol::verification::v1::verification_service_client::VerificationServiceClient;
use openwarn_protocol::verification::v1::{CommitTanRequest, ReserveTanRequest};
use openwarn_testkit::{TestDatabase, config, https_client};
use std::net::SocketAddr;
use tonic::transport::Channel;

pub mod cwa;
pub mod portal;

/// Certificates the tests issue: one per service, one for a gRPC caller standing in for
/// submission/portal, one allow-listed lab and one lab that is not.
pub const PKI_NAMES: &[&str] = &[
    "test-result",
    "verification",
    "submission",
    "distribution",
    "proxy",
    "portal",
    "lab",
    "rogue-lab",
];

/// Every port on 127.0.0.1, picked by the system.
pub const EPHEMERAL: [&str; 6] = [
    "--http-addr",
    "127.0.0.1:0",
    "--grpc-addr",
    "127.0.0.1:0",
    "--admin-addr",
    "127.0.0.1:0",
];

/// test-result's arguments: ephemeral ports, `db`, the PKI's `test-result` identity, the lab API
/// over HTTPS with the same certificate, and only the `lab` certificate allow-listed.
pub fn test_result_args(pki: &DevPki, db: &TestDatabase) -> Vec<String> {
    let mut args: Vec<String> = EPHEMERAL.iter().map(|s| (*s).to_owned()).collect();
    args.extend(pki.service_args("test-result"));
    args.extend([
        "--database-url".into(),
        db.url().to_owned(),
        "--lab-tls-cert".into(),
        pki.cert("test-result").display().to_string(),
        "--lab-tls-key".into(),
        pki.key("test-result").display().to_string(),
        "--lab-client-ca".into(),
        pki.ca().display().to_string(),
        "--lab-client-fingerprints".into(),
        openwarn_mtls::fingerprint_of_pem(&pki.cert("lab")).unwrap(),
    ]);
    args
}

/// test-result, verification and submission, wired together.
pub struct Chain {
    pub pki: DevPki,
    _pki_dir: tempfile::TempDir,
    pub test_result_db: TestDatabase,
    pub verification_db: TestDatabase,
    pub submission_db: TestDatabase,
    pub kv_url: String,
    pub kv_namespace: String,
    pub test_result: Option<RunningService>,
    pub verification: Option<RunningService>,
    pub submission: Option<RunningService>,
    pub proxy: Option<RunningService>,
    /// An HTTPS client with the proxy's certificate: how app requests reach the backends.
    pub app: reqwest::Client,
}

impl Chain {
    /// Starts both services on fresh databases of the same backend as `db`, with the lab API
    /// over HTTPS and only the `lab` certificate allow-listed. `extra` goes to verification.
    pub async fn start(backend: &TestDatabase, kv_url: &str, extra: &[&str]) -> Self {
        Self::start_with(backend, kv_url, extra, &[]).await
    }

    /// [`Chain::start`], with `submission_extra` going to submission.
    pub async fn start_with(
        backend: &TestDatabase,
        kv_url: &str,
        extra: &[&str],
        submission_extra: &[&str],
    ) -> Self {
        let (pki_dir, pki) = openwarn_testkit::dev_pki(PKI_NAMES);
        let test_result_db = backend.another();
        let verification_db = backend.another();

        let args = test_result_args(&pki, &test_result_db);
        let test_result = openwarn_test_result::start(config(&args))
            .await
            .expect("test-result starts");

        let kv_namespace = format!("openwarn-e2e-{}", uuid::Uuid::new_v4().simple());
        let mut args: Vec<String> = EPHEMERAL.iter().map(|s| (*s).to_owned()).collect();
        args.extend(pki.service_args("verification"));
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

        let submission_db = backend.another();
        let mut args: Vec<String> = EPHEMERAL.iter().map(|s| (*s).to_owned()).collect();
        args.extend(pki.service_args("submission"));
        args.extend([
            "--database-url".into(),
            submission_db.url().to_owned(),
            "--verification-url".into(),
            format!("https://{}", verification.addr("grpc")),
            "--supported-countries".into(),
            "DE,FR,NL".into(),
        ]);
        args.extend(submission_extra.iter().map(|s| (*s).to_owned()));
        let submission = openwarn_submission::start(config(&args))
            .await
            .expect("submission starts");
        let proxy = start_proxy(
            &pki,
            &format!("https://{}", verification.addr("http")),
            &format!("https://{}", submission.addr("http")),
            kv_url,
            &[
                "--rate-limit",
                "1000000",
                "--fake-seed",
                "20261123",
                "--fake-reservoir",
                "64",
            ],
        )
        .await;
        let app = https_client(&pki, Some("proxy"));
        Self {
            pki,
            _pki_dir: pki_dir,
            test_result_db,
            verification_db,
            submission_db,
            kv_url: kv_url.to_owned(),
            kv_namespace,
            test_result: Some(test_result),
            verification: Some(verification),
            submission: Some(submission),
            proxy: Some(proxy),
            app,
        }
    }

    /// The app-facing URL of `path` (e.g. `tan`, `diagnosis-keys`) at the proxy.
    pub fn proxy_url(&self, path: &str) -> String {
        format!(
            "http://{}/version/v1/{path}",
            self.proxy.as_ref().expect("proxy runs").addr("http")
        )
    }

    pub fn submission_addr(&self, label: &str) -> SocketAddr {
        self.submission
            .as_ref()
            .expect("submission runs")
            .addr(label)
    }

    pub fn submission_url(&self) -> String {
        format!(
            "https://{}/version/v1/diagnosis-keys",
            self.submission_addr("http")
        )
    }

    /// A gRPC client of submission, authenticated as distribution.
    pub fn submission_grpc(&self) -> SubmissionServiceClient<Channel> {
        let channel = self
            .pki
            .files("distribution")
            .unwrap()
            .grpc_channel(
                &format!("https://{}", self.submission_addr("grpc")),
                "submission",
            )
            .unwrap();
        SubmissionServiceClient::new(channel)
    }

    /// Every key submission streams for the hours around now.
    pub async fn streamed_keys(&self) -> Vec<DiagnosisKey> {
        let hour = openwarn_bootstrap::lifecycle::unix_now() / 3600;
        let mut stream = self
            .submission_grpc()
            .stream_diagnosis_keys(StreamDiagnosisKeysRequest {
                from_hour: hour - 1,
                until_hour: hour + 2,
            })
            .await
            .unwrap()
            .into_inner();
        let mut keys = Vec::new();
        while let Some(batch) = stream.message().await.unwrap() {
            keys.extend(batch.keys);
        }
        keys
    }

    /// A registration with a positive result, and a fresh TAN for it (straight to verification).
    pub async fn fresh_tan(&self) -> String {
        self.positive_session(&self.app, |e| self.app_url(e))
            .await
            .1
    }

    /// The lab posts a positive result for a fresh hashed GUID; the phone registers it and gets a
    /// TAN through `client` at `url(endpoint)` (verification directly, or the proxy). Returns the
    /// registration token and the TAN.
    pub async fn positive_session(
        &self,
        client: &reqwest::Client,
        url: impl Fn(&str) -> String,
    ) -> (String, String) {
        let hashed = sha256_hex(uuid::Uuid::new_v4().to_string());
        let r = self
            .lab_client(Some("lab"))
            .post(self.lab_url())
            .json(
                &serde_json::json!({"labId": "lab", "testResults": [{"id": hashed, "result": 2}]}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 204);
        let reply: serde_json::Value = client
            .post(url("registrationToken"))
            .json(&serde_json::json!({"key": hashed, "keyType": "GUID"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = reply["registrationToken"]
            .as_str()
            .expect("a registration token")
            .to_owned();
        let reply: serde_json::Value = client
            .post(url("tan"))
            .json(&serde_json::json!({"registrationToken": token}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let tan = reply["tan"].as_str().expect("a TAN").to_owned();
        (token, tan)
    }

    pub async fn stop_verification(&mut self) {
        if let Some(s) = self.verification.take() {
            s.shutdown().await.unwrap();
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
        https_client(&self.pki, name)
    }

    pub fn lab_url(&self) -> String {
        format!(
            "https://{}/api/v1/lab/results",
            self.test_result_addr("http")
        )
    }

    pub fn app_url(&self, path: &str) -> String {
        format!(
            "https://{}/version/v1/{path}",
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

    /// Spends `tan` as submission does: reserve, then commit, over verification's gRPC.
    pub async fn spend_tan(&self, tan: &str) {
        let mut grpc = self.verification_grpc("submission");
        let reservation = grpc
            .reserve_tan(ReserveTanRequest {
                tan: tan.to_owned(),
            })
            .await
            .unwrap()
            .into_inner();
        grpc.commit_tan(CommitTanRequest {
            tan: tan.to_owned(),
            reservation_id: reservation.reservation_id,
        })
        .await
        .unwrap();
    }

    /// A gRPC client of test-result, with verification's certificate.
    pub fn test_result_grpc(&self) -> TestResultServiceClient<tonic::transport::Channel> {
        TestResultServiceClient::new(self.test_result_channel())
    }

    /// A channel to test-result's gRPC port, with verification's certificate.
    pub fn test_result_channel(&self) -> Channel {
        self.pki
            .files("verification")
            .unwrap()
            .grpc_channel(
                &format!("https://{}", self.test_result_addr("grpc")),
                "test-result",
            )
            .unwrap()
    }

    /// The result test-result holds for `hashed_guid`, asked over gRPC as verification.
    pub async fn stored_result(&self, hashed_guid: &str) -> i32 {
        self.test_result_grpc()
            .get_test_result(GetTestResultRequest {
                hashed_guid: hashed_guid.to_owned(),
            })
            .await
            .unwrap()
            .into_inner()
            .result
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
        if let Some(s) = self.proxy.take() {
            s.shutdown().await.unwrap();
        }
        if let Some(s) = self.submission.take() {
            s.shutdown().await.unwrap();
        }
        self.stop_verification().await;
        self.stop_test_result().await;
    }
}

/// Starts a proxy in front of the given app API base URLs (HTTPS, mutual TLS).
pub async fn start_proxy(
    pki: &DevPki,
    verification: &str,
    submission: &str,
    kv_url: &str,
    extra: &[&str],
) -> RunningService {
    let namespace = format!("openwarn-e2e-proxy-{}", uuid::Uuid::new_v4().simple());
    start_proxy_in(pki, verification, submission, kv_url, &namespace, extra).await
}

/// [`start_proxy`] with its rate-limit counters under `namespace` of `kv_url`, for a test that
/// reads them.
pub async fn start_proxy_in(
    pki: &DevPki,
    verification: &str,
    submission: &str,
    kv_url: &str,
    namespace: &str,
    extra: &[&str],
) -> RunningService {
    let mut args: Vec<String> = ["--http-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    args.extend(pki.service_args("proxy"));
    args.extend([
        "--verification-http-url".into(),
        verification.to_owned(),
        "--submission-http-url".into(),
        submission.to_owned(),
        "--kv-url".into(),
        kv_url.to_owned(),
        "--kv-namespace".into(),
        namespace.to_owned(),
    ]);
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    openwarn_proxy::start(config(&args))
        .await
        .expect("proxy starts")
}

/// Lowercase hex SHA-256, as the app hashes a GUID.
pub use openwarn_domain::sha256_hex;

/// A payload of `n` keys for the last `n` days, as a phone sends it, with distinct key bytes
/// derived from `seed`.
pub fn payload(n: usize, seed: u8) -> SubmissionPayload {
    let today = i32::try_from(openwarn_bootstrap::lifecycle::unix_now() / 600 / 144 * 144).unwrap();
    SubmissionPayload {
        keys: (0..n)
            .map(|i| {
                let mut key_data = vec![seed; 16];
                key_data[0] = u8::try_from(i).unwrap();
                TemporaryExposureKey {
                    key_data: Some(key_data),
                    transmission_risk_level: Some(6),
                    rolling_start_interval_number: Some(today - 144 * i32::try_from(i).unwrap()),
                    rolling_period: Some(144),
                    report_type: Some(1),
                    days_since_onset_of_symptoms: None,
                }
            })
            .collect(),
        request_padding: Some(vec![0; 16]),
        visited_countries: vec!["FR".into()],
        origin: Some("DE".into()),
        consent_to_federation: Some(true),
        submission_type: Some(0),
    }
}
