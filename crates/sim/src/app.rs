//! What a phone sends: the app API through the proxy (real and fake requests of identical shape
//! and size), the lab API the way a lab system posts results, and the CDN downloads.

use openwarn_domain::TestResult;
use openwarn_protocol::Message;
use openwarn_protocol::cwa::SubmissionPayload;
use openwarn_protocol::gaen::TemporaryExposureKey;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

/// App API endpoints (paths under the proxy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endpoint {
    RegistrationToken,
    TestResult,
    Tan,
    DiagnosisKeys,
}

impl Endpoint {
    pub const ALL: [Self; 4] = [
        Self::RegistrationToken,
        Self::TestResult,
        Self::Tan,
        Self::DiagnosisKeys,
    ];

    #[must_use]
    pub fn path(self) -> &'static str {
        match self {
            Self::RegistrationToken => "/version/v1/registrationToken",
            Self::TestResult => "/version/v1/testresult",
            Self::Tan => "/version/v1/tan",
            Self::DiagnosisKeys => "/version/v1/diagnosis-keys",
        }
    }

    /// The status of a real success, which a fake must get too.
    #[must_use]
    pub fn success(self) -> StatusCode {
        match self {
            Self::RegistrationToken | Self::Tan => StatusCode::CREATED,
            Self::TestResult | Self::DiagnosisKeys => StatusCode::OK,
        }
    }
}

/// Every JSON request of the app is padded to this many bytes (`requestPadding`), so a GUID
/// registration, a teleTAN registration and their fakes all have the same size.
pub const JSON_REQUEST_BYTES: usize = 256;
/// Every submission carries 14 keys and is padded to this many bytes.
pub const SUBMISSION_BYTES: usize = 700;

/// `value` with a `requestPadding` string making its JSON exactly `len` bytes (when it fits).
#[must_use]
pub fn padded(mut value: Value, len: usize) -> Vec<u8> {
    value["requestPadding"] = json!("");
    let bare = serde_json::to_vec(&value).unwrap_or_default().len();
    value["requestPadding"] = json!("a".repeat(len.saturating_sub(bare)));
    serde_json::to_vec(&value).unwrap_or_default()
}

/// A submission of `keys`, padded to [`SUBMISSION_BYTES`].
#[must_use]
pub fn submission(keys: Vec<TemporaryExposureKey>, country: &str) -> Vec<u8> {
    let mut payload = SubmissionPayload {
        keys,
        request_padding: Some(Vec::new()),
        visited_countries: vec![],
        origin: Some(country.to_owned()),
        consent_to_federation: Some(false),
        submission_type: Some(0),
    };
    let bare = payload.encoded_len();
    // The padding's own length prefix grows with it; settle in two steps.
    let mut pad = SUBMISSION_BYTES.saturating_sub(bare);
    payload.request_padding = Some(vec![0; pad]);
    let over = payload.encoded_len().saturating_sub(SUBMISSION_BYTES);
    pad = pad.saturating_sub(over);
    payload.request_padding = Some(vec![0; pad]);
    payload.encode_to_vec()
}

/// A fake request body of `endpoint`, the same size as a real one.
#[must_use]
pub fn fake_body(endpoint: Endpoint, rng: &mut impl rand::Rng, country: &str) -> Vec<u8> {
    match endpoint {
        Endpoint::RegistrationToken => padded(
            json!({"key": hex::encode(rng.random::<[u8; 32]>()), "keyType": "GUID"}),
            JSON_REQUEST_BYTES,
        ),
        Endpoint::TestResult | Endpoint::Tan => padded(
            json!({"registrationToken": uuid::Builder::from_random_bytes(rng.random()).into_uuid().to_string()}),
            JSON_REQUEST_BYTES,
        ),
        Endpoint::DiagnosisKeys => submission(random_keys(rng), country),
    }
}

/// 14 keys of random bytes for the last 14 days (what a fake submission carries).
pub fn random_keys(rng: &mut impl rand::Rng) -> Vec<TemporaryExposureKey> {
    let today = openwarn_gaen::rolling_start(openwarn_gaen::en_interval_number(
        openwarn_bootstrap::lifecycle::unix_now().unsigned_abs(),
    ));
    (0..14u32)
        .map(|age| TemporaryExposureKey {
            key_data: Some(rng.random::<[u8; 16]>().to_vec()),
            transmission_risk_level: Some(transmission_risk_level(age)),
            rolling_start_interval_number: i32::try_from(today - age * 144).ok(),
            rolling_period: Some(144),
            report_type: Some(1),
            days_since_onset_of_symptoms: None,
        })
        .collect()
}

/// The transmission risk level an app assigns a key `age` days old (CWA's default vector).
#[must_use]
pub fn transmission_risk_level(age: u32) -> i32 {
    const LEVELS: [i32; 14] = [5, 6, 8, 8, 8, 5, 3, 1, 1, 1, 1, 1, 1, 1];
    LEVELS.get(age as usize).copied().unwrap_or(1)
}

/// One of the simulator's HTTP clients, with `configure` applied to its builder. They speak plain
/// HTTP only (the proxy, the lab API in development mode, the CDN, admin ports): their TLS
/// configuration (ring) trusts no server, and the process needs no default TLS provider.
#[allow(
    clippy::disallowed_methods,
    reason = "the one place the simulator's clients are built: with their own TLS configuration"
)]
pub fn http_client(
    configure: impl FnOnce(reqwest::ClientBuilder) -> reqwest::ClientBuilder,
) -> Result<reqwest::Client, ClientError> {
    let tls = openwarn_mtls::http_client_tls(&[], None).map_err(ClientError::Tls)?;
    configure(reqwest::Client::builder().tls_backend_preconfigured(tls))
        .build()
        .map_err(ClientError::Build)
}

/// A request that got no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot configure the HTTP client's TLS")]
    Tls(#[source] openwarn_mtls::TlsError),
    #[error("cannot build the HTTP client")]
    Build(#[source] reqwest::Error),
    #[error("{what} does not answer")]
    Unreachable {
        what: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("the answer is not JSON")]
    NotJson(#[source] serde_json::Error),
    #[error("{path} is not the expected JSON")]
    UnexpectedJson {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("GET {path}: {status}")]
    Status { path: String, status: StatusCode },
}

/// An HTTP answer with its latency.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: bytes::Bytes,
    pub latency: Duration,
}

impl Answer {
    pub fn json(&self) -> Result<Value, ClientError> {
        serde_json::from_slice(&self.body).map_err(ClientError::NotJson)
    }
}

/// The stack's public endpoints, as a phone and a lab see them.
#[derive(Clone)]
pub struct Client {
    pub http: reqwest::Client,
    pub app: String,
    pub lab: String,
    pub cdn: String,
    pub country: String,
}

impl Client {
    pub fn new(
        app: &str,
        lab: &str,
        cdn: &str,
        country: &str,
        pool: usize,
    ) -> Result<Self, ClientError> {
        Ok(Self {
            http: http_client(|b| {
                b.pool_max_idle_per_host(pool)
                    .timeout(Duration::from_secs(30))
            })?,
            app: app.trim_end_matches('/').to_owned(),
            lab: lab.trim_end_matches('/').to_owned(),
            cdn: cdn.trim_end_matches('/').to_owned(),
            country: country.to_owned(),
        })
    }

    /// One app request from the phone at `address` (the ingress would put it in
    /// X-Forwarded-For; the proxy uses it for the rate limit and never forwards it).
    pub async fn app(
        &self,
        endpoint: Endpoint,
        address: Ipv4Addr,
        body: Vec<u8>,
        fake: bool,
        tan: Option<&str>,
    ) -> Result<Answer, ClientError> {
        let content_type = if endpoint == Endpoint::DiagnosisKeys {
            "application/x-protobuf"
        } else {
            "application/json"
        };
        let mut request = self
            .http
            .post(format!("{}{}", self.app, endpoint.path()))
            .header("content-type", content_type)
            .header("cwa-fake", if fake { "1" } else { "0" })
            .header("x-forwarded-for", address.to_string())
            .body(body);
        if endpoint == Endpoint::DiagnosisKeys {
            // A fake carries a TAN-shaped value too.
            let tan = tan.map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
            request = request.header("cwa-authorization", tan);
        }
        send(request, endpoint.path()).await
    }

    /// Posts results the way a lab system does.
    pub async fn lab_results(
        &self,
        results: &[(String, TestResult)],
    ) -> Result<Answer, ClientError> {
        let body = json!({
            "labId": "openwarn-sim-lab",
            "testResults": results.iter().map(|(id, r)| json!({"id": id, "result": r})).collect::<Vec<_>>(),
        });
        send(
            self.http
                .post(format!("{}/api/v1/lab/results", self.lab))
                .json(&body),
            "the lab API",
        )
        .await
    }

    /// GET of a CDN path under `/version/v1/`.
    pub async fn cdn(&self, path: &str) -> Result<Answer, ClientError> {
        send(
            self.http.get(format!("{}/version/v1/{path}", self.cdn)),
            "the CDN",
        )
        .await
    }

    /// GET of a CDN JSON index; `None` when it does not exist (404).
    pub async fn index<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<Option<T>, ClientError> {
        let answer = self.cdn(path).await?;
        match answer.status {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => {
                serde_json::from_slice(&answer.body)
                    .map(Some)
                    .map_err(|source| ClientError::UnexpectedJson {
                        path: path.to_owned(),
                        source,
                    })
            }
            status => Err(ClientError::Status {
                path: path.to_owned(),
                status,
            }),
        }
    }
}

/// Sends a request and reads the whole answer, timed.
async fn send(request: reqwest::RequestBuilder, what: &str) -> Result<Answer, ClientError> {
    let started = Instant::now();
    let unreachable = |source| ClientError::Unreachable {
        what: what.to_owned(),
        source,
    };
    let response = request.send().await.map_err(unreachable)?;
    let status = response.status();
    let body = response.bytes().await.map_err(unreachable)?;
    Ok(Answer {
        status,
        body,
        latency: started.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn requests_of_one_endpoint_have_one_size() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let guid = padded(
            json!({"key": hex::encode([7u8; 32]), "keyType": "GUID"}),
            JSON_REQUEST_BYTES,
        );
        let teletan = padded(
            json!({"key": "R3ZNUPTXK6", "keyType": "TELETAN"}),
            JSON_REQUEST_BYTES,
        );
        assert_eq!(guid.len(), JSON_REQUEST_BYTES);
        assert_eq!(teletan.len(), JSON_REQUEST_BYTES);
        for endpoint in Endpoint::ALL {
            let fake = fake_body(endpoint, &mut rng, "DE");
            let expected = if endpoint == Endpoint::DiagnosisKeys {
                SUBMISSION_BYTES
            } else {
                JSON_REQUEST_BYTES
            };
            assert_eq!(fake.len(), expected, "{endpoint:?}");
        }
        let real = submission(random_keys(&mut rng), "DE");
        assert_eq!(real.len(), SUBMISSION_BYTES);
        let decoded = SubmissionPayload::decode(real.as_slice()).unwrap();
        assert_eq!(decoded.keys.len(), 14);
    }
}
