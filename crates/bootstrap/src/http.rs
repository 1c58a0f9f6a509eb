//! What every app-facing JSON endpoint shares: error bodies with a machine-readable reason, bodies
//! read under a size cap, response padding to one length per endpoint, and the recent-latency
//! reservoir that fake requests draw their delay from.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use rand::Rng;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// An error answer: a status and a short machine-readable reason, e.g. `400 {"error":"malformed_json"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub reason: &'static str,
}

impl ApiError {
    pub const fn new(status: StatusCode, reason: &'static str) -> Self {
        Self { status, reason }
    }
    pub const fn bad_request(reason: &'static str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, reason)
    }
    pub const fn unavailable() -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "dependency_unavailable")
    }
    pub const fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found")
    }
    pub fn body(&self) -> Map<String, Value> {
        let mut map = Map::new();
        map.insert("error".into(), Value::String(self.reason.into()));
        map
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.reason)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }
    fn error_response(&self) -> HttpResponse {
        json_response(self.status, &self.body(), 0)
    }
}

/// A JSON response. With `padded_length > 0` the object gets a `responsePadding` string so that the
/// serialized body is exactly `padded_length` bytes (when it fits; it never truncates).
pub fn json_response(
    status: StatusCode,
    body: &Map<String, Value>,
    padded_length: usize,
) -> HttpResponse {
    let bytes = if padded_length > 0 {
        padded_json(body, padded_length)
    } else {
        Value::Object(body.clone()).to_string().into_bytes()
    };
    HttpResponse::build(status)
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        ))
        .body(bytes)
}

const PADDING_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// Serializes `body` plus a random `responsePadding` to exactly `length` bytes when possible.
pub fn padded_json(body: &Map<String, Value>, length: usize) -> Vec<u8> {
    let mut map = body.clone();
    map.insert("responsePadding".into(), Value::String(String::new()));
    // `Value`'s `Display`: serde_json's infallible serialization (string keys, into memory).
    let mut object = Value::Object(map);
    let bare = object.to_string().len();
    let fill = length.saturating_sub(bare);
    let mut rng = rand::rng();
    let padding: String = (0..fill)
        .map(|_| PADDING_ALPHABET[rng.random_range(0..PADDING_ALPHABET.len())] as char)
        .collect();
    if let Some(slot) = object.get_mut("responsePadding") {
        *slot = Value::String(padding);
    }
    object.to_string().into_bytes()
}

/// Reads a JSON request body: 415 unless `Content-Type: application/json`, 413 over `limit` bytes,
/// 400 `malformed_json` when it does not parse into `T`.
pub async fn read_json<T: DeserializeOwned>(
    request: &HttpRequest,
    body: web::Payload,
    limit: usize,
) -> Result<T, ApiError> {
    let bytes = read_body(request, body, limit, "application/json").await?;
    serde_json::from_slice(&bytes).map_err(|_| ApiError::bad_request("malformed_json"))
}

/// Reads a request body of the given media type under a size cap (415 / 413 otherwise).
pub async fn read_body(
    request: &HttpRequest,
    body: web::Payload,
    limit: usize,
    media_type: &str,
) -> Result<bytes::Bytes, ApiError> {
    let headers = request.headers();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case(media_type) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ));
    }
    let too_large = ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large);
    }
    read_within(body, limit, BODY_READ_TIMEOUT).await
}

/// Time a client has to send a request's body (its head has actix-web's client request
/// timeout): a client that sends slowly does not hold a connection and a handler forever.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

async fn read_within(
    body: web::Payload,
    limit: usize,
    timeout: Duration,
) -> Result<bytes::Bytes, ApiError> {
    match tokio::time::timeout(timeout, body.to_bytes_limited(limit)).await {
        Ok(Ok(Ok(bytes))) => Ok(bytes),
        Ok(Ok(Err(_))) => Err(ApiError::bad_request("unreadable_body")),
        Ok(Err(_)) => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        )),
        Err(_) => Err(ApiError::new(StatusCode::REQUEST_TIMEOUT, "body_timeout")),
    }
}

/// The app's verification endpoints, by what a real success answers: what the backend answers and
/// what a fake (answered by the proxy, or by verification should one reach it) looks like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppAnswer {
    RegistrationToken,
    TestResult,
    Tan,
}

impl AppAnswer {
    pub const ALL: [Self; 3] = [Self::RegistrationToken, Self::TestResult, Self::Tan];

    /// The endpoint's path segment (`/version/v1/<path>`), also its metric label.
    pub fn path(self) -> &'static str {
        match self {
            Self::RegistrationToken => "registrationToken",
            Self::TestResult => "testresult",
            Self::Tan => "tan",
        }
    }

    /// The status of a real success.
    pub fn success(self) -> StatusCode {
        match self {
            Self::RegistrationToken | Self::Tan => StatusCode::CREATED,
            Self::TestResult => StatusCode::OK,
        }
    }

    /// A fake's fields: those of a real success, with values of their form and no meaning (a
    /// fresh token or TAN; a poll answers pending, as most real polls do — without `sc`).
    pub fn fake_fields(self) -> Map<String, Value> {
        use openwarn_domain::{RegistrationToken, Tan, TestResult};
        let (name, value) = match self {
            Self::RegistrationToken => (
                "registrationToken",
                RegistrationToken::generate().into_exposed().into(),
            ),
            Self::TestResult => ("testResult", i32::from(TestResult::Pending).into()),
            Self::Tan => ("tan", Tan::generate().into_exposed().into()),
        };
        std::iter::once((name.to_owned(), value)).collect()
    }
}

/// The header that marks a phone's fake (cover) request.
pub const FAKE_HEADER: &str = "cwa-fake";

/// Whether a `cwa-fake` header value marks a fake: anything but a missing header or `0`.
pub fn is_fake_value(value: Option<&[u8]>) -> bool {
    value.is_some_and(|v| v != b"0")
}

/// Whether the request says `cwa-fake: 1` (any value other than a missing header or `0`).
pub fn is_fake(request: &HttpRequest) -> bool {
    is_fake_value(
        request
            .headers()
            .get(FAKE_HEADER)
            .map(HeaderValue::as_bytes),
    )
}

/// The most recent latencies of one endpoint's real requests, bounded in size, for fake requests to
/// sample their delay from: the delay of a fake is drawn from the same distribution as a real one.
#[derive(Debug)]
pub struct LatencyReservoir {
    inner: Mutex<Ring>,
    fallback: Duration,
}

type SamplerRng = rand::rngs::StdRng;

#[derive(Debug)]
struct Ring {
    samples: Vec<Duration>,
    next: usize,
    capacity: usize,
    rng: SamplerRng,
}

impl LatencyReservoir {
    /// `fallback` is used (with ±50% jitter) until the first real request has been timed.
    pub fn new(capacity: usize, fallback: Duration) -> Self {
        Self::seeded(capacity, fallback, rand::random())
    }

    /// A reservoir whose draws are reproducible (for tests; an observer never sees the seed).
    pub fn seeded(capacity: usize, fallback: Duration, seed: u64) -> Self {
        use rand::SeedableRng;
        Self {
            inner: Mutex::new(Ring {
                samples: Vec::with_capacity(capacity),
                next: 0,
                capacity: capacity.max(1),
                rng: SamplerRng::seed_from_u64(seed),
            }),
            fallback,
        }
    }

    /// The ring, also after a panic elsewhere while it was held: every update leaves it whole (a
    /// push or one slot written, then the index moved), so a poisoned lock holds valid samples.
    fn ring(&self) -> MutexGuard<'_, Ring> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn record(&self, latency: Duration) {
        let mut ring = self.ring();
        if ring.samples.len() < ring.capacity {
            ring.samples.push(latency);
        } else {
            let i = ring.next;
            ring.samples[i] = latency;
        }
        ring.next = (ring.next + 1) % ring.capacity;
    }

    pub fn sample(&self) -> Duration {
        let mut ring = self.ring();
        if ring.samples.is_empty() {
            let factor = ring.rng.random_range(0.5..1.5);
            self.fallback.mul_f64(factor)
        } else {
            let len = ring.samples.len();
            let i = ring.rng.random_range(0..len);
            ring.samples[i]
        }
    }

    pub fn len(&self) -> usize {
        self.ring().samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, Value)]) -> Map<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    #[test]
    fn padding_makes_every_body_the_same_length() {
        let short = map(&[("testResult", 0.into())]);
        let long = map(&[
            ("testResult", 2.into()),
            ("sc", 1_700_000_000.into()),
            ("labId", "lab-1".into()),
        ]);
        let a = padded_json(&short, 200);
        let b = padded_json(&long, 200);
        assert_eq!(a.len(), 200);
        assert_eq!(b.len(), 200);
        let parsed: Map<String, Value> = serde_json::from_slice(&b).unwrap();
        assert_eq!(parsed["labId"], "lab-1");
        assert!(parsed["responsePadding"].as_str().unwrap().len() > 100);
    }

    #[actix_web::test]
    async fn json_responses_carry_status_type_and_compact_body() {
        let response = ApiError::bad_request("malformed_json").error_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            response
                .headers()
                .get_all(header::CONTENT_TYPE)
                .collect::<Vec<_>>(),
            ["application/json"]
        );
        let body = actix_web::body::to_bytes(response.into_body())
            .await
            .unwrap();
        assert_eq!(&body[..], br#"{"error":"malformed_json"}"#);

        let padded = json_response(StatusCode::OK, &map(&[("a", 1.into())]), 64);
        assert_eq!(padded.status(), StatusCode::OK);
        let body = actix_web::body::to_bytes(padded.into_body()).await.unwrap();
        assert_eq!(body.len(), 64);
        assert!(body.starts_with(br#"{"a":1,"responsePadding":""#));
    }

    #[test]
    fn fakes_have_the_fields_of_a_real_success() {
        use openwarn_domain::{RegistrationToken, Tan};
        let token = AppAnswer::RegistrationToken.fake_fields();
        assert!(
            token["registrationToken"]
                .as_str()
                .unwrap()
                .parse::<RegistrationToken>()
                .is_ok()
        );
        assert_eq!(
            Value::Object(AppAnswer::TestResult.fake_fields()),
            serde_json::json!({"testResult": 0})
        );
        let tan = AppAnswer::Tan.fake_fields();
        assert!(tan["tan"].as_str().unwrap().parse::<Tan>().is_ok());
        assert_ne!(AppAnswer::Tan.fake_fields(), tan, "fresh every time");
    }

    #[test]
    fn padding_never_truncates() {
        let body = map(&[("x", "y".repeat(50).into())]);
        assert!(padded_json(&body, 10).len() > 10);
    }

    #[test]
    fn fake_header_is_anything_but_zero() {
        use actix_web::test::TestRequest;
        assert!(!is_fake(&TestRequest::default().to_http_request()));
        let with = |v: &str| TestRequest::default().insert_header((FAKE_HEADER, v));
        assert!(!is_fake(&with("0").to_http_request()));
        assert!(is_fake(&with("1").to_http_request()));
        assert!(is_fake(&with("true").to_http_request()));
    }

    #[test]
    fn reservoir_keeps_only_recent_samples() {
        let r = LatencyReservoir::new(3, Duration::from_millis(10));
        let fallback = r.sample();
        assert!(fallback >= Duration::from_millis(5) && fallback <= Duration::from_millis(15));
        for ms in [1, 2, 3, 100, 100, 100] {
            r.record(Duration::from_millis(ms));
        }
        assert_eq!(r.len(), 3);
        for _ in 0..50 {
            assert_eq!(r.sample(), Duration::from_millis(100));
        }
    }

    async fn read(
        headers: &[(&str, &str)],
        body: &'static str,
        limit: usize,
    ) -> Result<Value, ApiError> {
        // The payload first: it sets Content-Length, which a case below declares itself.
        let mut request = actix_web::test::TestRequest::default().set_payload(body);
        for (k, v) in headers {
            request = request.insert_header((*k, *v));
        }
        let (request, mut payload) = request.to_http_parts();
        let payload =
            <web::Payload as actix_web::FromRequest>::from_request(&request, &mut payload)
                .await
                .unwrap();
        read_json::<Value>(&request, payload, limit).await
    }

    #[actix_web::test]
    async fn a_body_sent_too_slowly_is_refused_with_408() {
        // A body whose sender keeps it open without sending anything.
        let request = actix_web::test::TestRequest::default().to_http_request();
        type Chunk = Result<bytes::Bytes, actix_web::error::PayloadError>;
        let stream: std::pin::Pin<Box<dyn futures::Stream<Item = Chunk>>> =
            Box::pin(futures::stream::pending::<Chunk>());
        let mut pending = actix_web::dev::Payload::Stream { payload: stream };
        let payload =
            <web::Payload as actix_web::FromRequest>::from_request(&request, &mut pending)
                .await
                .unwrap();
        let refused = read_within(payload, 100, Duration::from_millis(50))
            .await
            .unwrap_err();
        assert_eq!(refused.status, StatusCode::REQUEST_TIMEOUT);
        assert_eq!(refused.reason, "body_timeout");
    }

    #[actix_web::test]
    async fn a_body_broken_off_is_unreadable() {
        type Chunk = Result<bytes::Bytes, actix_web::error::PayloadError>;
        let request = actix_web::test::TestRequest::default().to_http_request();
        let stream: std::pin::Pin<Box<dyn futures::Stream<Item = Chunk>>> =
            Box::pin(futures::stream::iter([
                Ok(bytes::Bytes::from_static(b"{")),
                Err(actix_web::error::PayloadError::Incomplete(None)),
            ]));
        let mut broken = actix_web::dev::Payload::Stream { payload: stream };
        let payload = <web::Payload as actix_web::FromRequest>::from_request(&request, &mut broken)
            .await
            .unwrap();
        let refused = read_within(payload, 100, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert_eq!(refused, ApiError::bad_request("unreadable_body"));
    }

    #[actix_web::test]
    async fn json_bodies_are_checked_for_type_size_and_syntax() {
        let json = [("content-type", "application/json; charset=utf-8")];
        assert_eq!(read(&json, "{\"a\":1}", 100).await.unwrap()["a"], 1);
        assert_eq!(
            read(&[("content-type", "text/plain")], "{}", 100)
                .await
                .unwrap_err()
                .status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        assert_eq!(
            read(&[], "{}", 100).await.unwrap_err().status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        assert_eq!(
            read(&json, "{\"a\":\"0123456789\"}", 8)
                .await
                .unwrap_err()
                .status,
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(
            read(
                &[
                    ("content-type", "application/json"),
                    ("content-length", "5000")
                ],
                "{}",
                100
            )
            .await
            .unwrap_err()
            .status,
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(
            read(&json, "{not json", 100).await.unwrap_err().reason,
            "malformed_json"
        );
    }
}

/// Sleeps with sub-millisecond precision for fake requests, so that a fake's delay matches the
/// real latency it was drawn from. (Tokio's timer works in whole milliseconds and an idle worker
/// wakes late, which a statistical test of fake against real latencies detects.) One thread keeps
/// the pending deadlines in a heap and wakes each waiter through a oneshot channel: no spinning.
#[derive(Debug, Clone)]
pub struct PreciseTimer {
    requests: std::sync::mpsc::Sender<(std::time::Instant, tokio::sync::oneshot::Sender<()>)>,
    /// Moving average of how late waiters resume (µs); the timer fires that much early.
    lateness_micros: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Default for PreciseTimer {
    fn default() -> Self {
        Self::new()
    }
}

impl PreciseTimer {
    /// Starts the timer thread; it ends when the last clone of this timer is dropped. Should the
    /// thread fail to start, the timer says so in the log and waits with Tokio's timer instead.
    pub fn new() -> Self {
        use std::cmp::Reverse;
        use std::collections::BinaryHeap;
        use std::sync::mpsc::RecvTimeoutError;
        use std::time::Instant;

        struct Due(Instant, u64, tokio::sync::oneshot::Sender<()>);
        impl PartialEq for Due {
            fn eq(&self, other: &Self) -> bool {
                (self.0, self.1) == (other.0, other.1)
            }
        }
        impl Eq for Due {}
        impl PartialOrd for Due {
            fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
                Some(self.cmp(other))
            }
        }
        impl Ord for Due {
            fn cmp(&self, other: &Self) -> std::cmp::Ordering {
                (self.0, self.1).cmp(&(other.0, other.1))
            }
        }

        let (requests, incoming) =
            std::sync::mpsc::channel::<(Instant, tokio::sync::oneshot::Sender<()>)>();
        let spawned = std::thread::Builder::new()
            .name("openwarn-precise-timer".into())
            .spawn(move || {
                let mut heap: BinaryHeap<Reverse<Due>> = BinaryHeap::new();
                let mut seq = 0u64;
                loop {
                    let next = heap.peek().map(|Reverse(d)| d.0);
                    let received = match next {
                        None => incoming.recv().map_err(|_| RecvTimeoutError::Disconnected),
                        Some(at) => {
                            incoming.recv_timeout(at.saturating_duration_since(Instant::now()))
                        }
                    };
                    match received {
                        Ok((at, waker)) => {
                            seq += 1;
                            heap.push(Reverse(Due(at, seq, waker)));
                        }
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) if heap.is_empty() => return,
                        Err(RecvTimeoutError::Disconnected) => {
                            if let Some(Reverse(d)) = heap.peek() {
                                #[allow(
                                    clippy::disallowed_methods,
                                    reason = "the timer's own dedicated thread, not a runtime \
                                              worker: sleeping until the last deadline blocks \
                                              no task"
                                )]
                                std::thread::sleep(d.0.saturating_duration_since(Instant::now()));
                            }
                        }
                    }
                    let now = Instant::now();
                    while heap.peek().is_some_and(|Reverse(d)| d.0 <= now) {
                        if let Some(Reverse(Due(_, _, waker))) = heap.pop() {
                            let _ = waker.send(());
                        }
                    }
                }
            });
        if let Err(e) = spawned {
            // The receiver went with the closure: every `sleep_until` falls back to Tokio's timer.
            tracing::warn!(error = %e, "precise timer thread not started; using the Tokio timer");
        }
        Self {
            requests,
            lateness_micros: std::sync::Arc::default(),
        }
    }

    /// Resolves at `deadline` (at once if it has passed), as close to it as the machine allows:
    /// the timer fires early by the average lateness it has observed in resuming waiters.
    pub async fn sleep_until(&self, deadline: std::time::Instant) {
        use std::sync::atomic::Ordering;
        let lead = std::time::Duration::from_micros(self.lateness_micros.load(Ordering::Relaxed));
        let fire_at = deadline.checked_sub(lead).unwrap_or(deadline);
        if fire_at <= std::time::Instant::now() {
            return;
        }
        let (waker, woken) = tokio::sync::oneshot::channel();
        if self.requests.send((fire_at, waker)).is_ok() {
            let _ = woken.await;
            let late = std::time::Instant::now().saturating_duration_since(fire_at);
            let late = u64::try_from(late.as_micros())
                .unwrap_or(u64::MAX)
                .min(5_000);
            let old = self.lateness_micros.load(Ordering::Relaxed);
            // Weight 1/16; concurrent updates only blur the average.
            self.lateness_micros
                .store((old * 15 + late) / 16, Ordering::Relaxed);
        } else {
            tokio::time::sleep_until(deadline.into()).await;
        }
    }
}

#[cfg(test)]
mod timer_tests {
    use super::PreciseTimer;
    use std::time::{Duration, Instant};

    #[tokio::test]
    async fn wakes_every_waiter_in_deadline_order_and_never_early() {
        let timer = PreciseTimer::new();
        let start = Instant::now();
        let mut tasks = Vec::new();
        for ms in [30u64, 10, 20, 0] {
            let timer = timer.clone();
            tasks.push(tokio::spawn(async move {
                let deadline = start + Duration::from_millis(ms);
                timer.sleep_until(deadline).await;
                // Calibration may wake a waiter a little early, never by more than 5 ms.
                assert!(
                    Instant::now() + Duration::from_millis(5) >= deadline,
                    "woke far too early"
                );
                (ms, Instant::now())
            }));
        }
        let mut woken = Vec::new();
        for t in tasks {
            woken.push(t.await.unwrap());
        }
        woken.sort_by_key(|(_, at)| *at);
        assert_eq!(
            woken.iter().map(|(ms, _)| *ms).collect::<Vec<_>>(),
            vec![0, 10, 20, 30]
        );
    }
}
