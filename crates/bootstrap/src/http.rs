//! What every app-facing JSON endpoint shares: error bodies with a machine-readable reason, bodies
//! read under a size cap, response padding to one length per endpoint, and the recent-latency
//! reservoir that fake requests draw their delay from.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, header};
use rand::Rng;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::sync::Mutex;
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
    pub fn body(&self) -> Map<String, Value> {
        let mut map = Map::new();
        map.insert("error".into(), Value::String(self.reason.into()));
        map
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        json_response(self.status, &self.body(), 0)
    }
}

/// A JSON response. With `padded_length > 0` the object gets a `responsePadding` string so that the
/// serialized body is exactly `padded_length` bytes (when it fits; it never truncates).
pub fn json_response(
    status: StatusCode,
    body: &Map<String, Value>,
    padded_length: usize,
) -> Response {
    let bytes = if padded_length > 0 {
        padded_json(body, padded_length)
    } else {
        serde_json::to_vec(body).expect("a JSON map always serializes")
    };
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(bytes))
        .expect("static response parts are valid")
}

const PADDING_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// Serializes `body` plus a random `responsePadding` to exactly `length` bytes when possible.
pub fn padded_json(body: &Map<String, Value>, length: usize) -> Vec<u8> {
    let mut map = body.clone();
    map.insert("responsePadding".into(), Value::String(String::new()));
    let bare = serde_json::to_vec(&map)
        .expect("a JSON map always serializes")
        .len();
    let fill = length.saturating_sub(bare);
    let mut rng = rand::rng();
    let padding: String = (0..fill)
        .map(|_| PADDING_ALPHABET[rng.random_range(0..PADDING_ALPHABET.len())] as char)
        .collect();
    map.insert("responsePadding".into(), Value::String(padding));
    serde_json::to_vec(&map).expect("a JSON map always serializes")
}

/// Reads a JSON request body: 415 unless `Content-Type: application/json`, 413 over `limit` bytes,
/// 400 `malformed_json` when it does not parse into `T`.
pub async fn read_json<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<T, ApiError> {
    let bytes = read_body(headers, body, limit, "application/json").await?;
    serde_json::from_slice(&bytes).map_err(|_| ApiError::bad_request("malformed_json"))
}

/// Reads a request body of the given media type under a size cap (415 / 413 otherwise).
pub async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    media_type: &str,
) -> Result<bytes::Bytes, ApiError> {
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
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let is_limit = std::iter::successors(Some(&e as &dyn std::error::Error), |e| e.source())
            .any(|e| e.is::<http_body_util::LengthLimitError>());
        if is_limit {
            too_large
        } else {
            ApiError::bad_request("unreadable_body")
        }
    })
}

/// Whether the request says `cwa-fake: 1` (any value other than a missing header or `0`).
pub fn is_fake(headers: &HeaderMap) -> bool {
    headers
        .get("cwa-fake")
        .is_some_and(|v| v.as_bytes() != b"0")
}

/// The most recent latencies of one endpoint's real requests, bounded in size, for fake requests to
/// sample their delay from: the delay of a fake is drawn from the same distribution as a real one.
#[derive(Debug)]
pub struct LatencyReservoir {
    inner: Mutex<Ring>,
    fallback: Duration,
}

#[derive(Debug)]
struct Ring {
    samples: Vec<Duration>,
    next: usize,
    capacity: usize,
}

impl LatencyReservoir {
    /// `fallback` is used (with ±50% jitter) until the first real request has been timed.
    pub fn new(capacity: usize, fallback: Duration) -> Self {
        Self {
            inner: Mutex::new(Ring {
                samples: Vec::with_capacity(capacity),
                next: 0,
                capacity: capacity.max(1),
            }),
            fallback,
        }
    }

    pub fn record(&self, latency: Duration) {
        let mut ring = self.inner.lock().expect("reservoir lock");
        if ring.samples.len() < ring.capacity {
            ring.samples.push(latency);
        } else {
            let i = ring.next;
            ring.samples[i] = latency;
        }
        ring.next = (ring.next + 1) % ring.capacity;
    }

    pub fn sample(&self) -> Duration {
        let ring = self.inner.lock().expect("reservoir lock");
        let mut rng = rand::rng();
        if ring.samples.is_empty() {
            self.fallback.mul_f64(rng.random_range(0.5..1.5))
        } else {
            ring.samples[rng.random_range(0..ring.samples.len())]
        }
    }

    pub fn len(&self) -> usize {
        self.inner.lock().expect("reservoir lock").samples.len()
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

    #[test]
    fn padding_never_truncates() {
        let body = map(&[("x", "y".repeat(50).into())]);
        assert!(padded_json(&body, 10).len() > 10);
    }

    #[test]
    fn fake_header_is_anything_but_zero() {
        let mut headers = HeaderMap::new();
        assert!(!is_fake(&headers));
        headers.insert("cwa-fake", "0".parse().unwrap());
        assert!(!is_fake(&headers));
        headers.insert("cwa-fake", "1".parse().unwrap());
        assert!(is_fake(&headers));
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
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        read_json::<Value>(&map, Body::from(body), limit).await
    }

    #[tokio::test]
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
