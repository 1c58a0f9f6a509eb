//! The lab API: `POST /api/v1/lab/results` (PCR), `/api/v1/quicktest/results` (rapid antigen
//! tests) and `/api/v1/pocnat/results` (point-of-care NAT), each
//! `{"labId"?, "testResults": [{"id", "result", "sc"?}]}` → 204.

use crate::store::{LabResult, Store};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use openwarn_bootstrap::http::{ApiError, read_body};
use openwarn_bootstrap::lifecycle::{PeerCertificate, Routes};
use openwarn_domain::{HashedGuid, TestResult, sha256_hex};
use serde_json::{Value, json};
use std::collections::HashSet;

/// Longest accepted lab id.
pub const MAX_LAB_ID_LEN: usize = 64;
/// A sample time may be this far ahead of our clock (clock skew between lab and us).
pub const SC_CLOCK_SKEW_SECS: i64 = 300;

#[derive(Clone)]
pub struct LabState {
    pub store: Store,
    pub max_batch: usize,
    pub max_body_bytes: usize,
    /// Served over TLS with allow-listed client certificates: every request must come with one.
    pub client_certificates: bool,
}

/// The three routes labs post to, with CWA's result codes and id rules for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `/api/v1/lab/results`: results 1 to 3; the id is stored as posted (lowercased).
    Pcr,
    /// `/api/v1/quicktest/results`: results 5 to 9 (CWA's `QUICK_*` codes, pending and redeemed
    /// included, as CWA accepts them); the id stored is the SHA-256 of the id posted, as CWA's
    /// `convertQuickTest` does (the app registers the SHA-256 of the QR code's hash).
    QuickTest,
    /// `/api/v1/pocnat/results`: results 10 to 14, stored as their PCR codes 0 to 4 (CWA stores
    /// 10 to 14 and answers the app 0 to 4); the id stored is the SHA-256 of the id posted.
    PocNat,
}

impl Kind {
    /// The result a lab's code stands for on this route, if the route accepts it.
    pub fn result(self, code: i64) -> Option<TestResult> {
        let result = match self {
            Self::Pcr => TestResult::try_from(code)
                .ok()
                .filter(|r| r.is_lab_result())?,
            Self::QuickTest => TestResult::try_from(code)
                .ok()
                .filter(|r| r.is_rapid_test())?,
            Self::PocNat if (10..=14).contains(&code) => TestResult::try_from(code - 10).ok()?,
            Self::PocNat => return None,
        };
        Some(result)
    }

    fn result_rule(self) -> &'static str {
        match self {
            Self::Pcr => "must be 1 (negative), 2 (positive) or 3 (invalid)",
            Self::QuickTest => {
                "must be 5 (pending), 6 (negative), 7 (positive), 8 (invalid) or 9 (redeemed)"
            }
            Self::PocNat => {
                "must be 10 (pending), 11 (negative), 12 (positive), 13 (invalid) or 14 (redeemed)"
            }
        }
    }

    /// The id the result is stored under, from the id the lab posted (already checked against
    /// CWA's pattern).
    fn stored_id(self, posted: &str, checked: HashedGuid) -> HashedGuid {
        match self {
            Self::Pcr => checked,
            // A SHA-256 in lowercase hex always parses.
            Self::QuickTest | Self::PocNat => {
                HashedGuid::try_from(sha256_hex(posted)).unwrap_or(checked)
            }
        }
    }
}

pub fn routes(state: LabState) -> Routes {
    let state = web::Data::new(state);
    Routes::new(move |config| {
        config
            .app_data(state.clone())
            .service(web::resource("/api/v1/lab/results").route(web::post().to(post_results)))
            .service(
                web::resource("/api/v1/quicktest/results")
                    .route(web::post().to(post_quicktest_results)),
            )
            .service(
                web::resource("/api/v1/pocnat/results").route(web::post().to(post_pocnat_results)),
            );
    })
}

/// A batch of results from one lab.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "camelCase")]
#[allow(
    dead_code,
    reason = "describes the request in the API description; parsed as JSON"
)]
struct LabResultList {
    /// Names the lab (1 to 64 printable characters), returned to the app with each result.
    /// Optional, as in CWA.
    #[schema(min_length = 1, max_length = 64)]
    lab_id: Option<String>,
    /// 1 to the batch limit (default 1,000) results, each test id at most once.
    #[schema(min_items = 1)]
    test_results: Vec<LabTestResult>,
}

/// One result.
#[derive(utoipa::ToSchema)]
#[allow(
    dead_code,
    reason = "describes the request in the API description; parsed as JSON"
)]
struct LabTestResult {
    /// SHA-256 of the GUID printed on the test's QR code (64 hex characters), or the
    /// date-of-birth-bound id (`x` + 63 hex). Either case; stored lowercase.
    #[schema(pattern = "^[XxA-Fa-f0-9]([A-Fa-f0-9]{63})$")]
    id: String,
    /// 1 negative, 2 positive, 3 invalid.
    #[schema(minimum = 1, maximum = 3)]
    result: i32,
    /// When the sample was collected, Unix seconds (not in the future). Without it, the time the
    /// result arrives is stored (as CWA does).
    sc: Option<i64>,
}

/// A batch of rapid antigen test results (CWA's `QuickTestResultList`).
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "camelCase")]
#[allow(
    dead_code,
    reason = "describes the request in the API description; parsed as JSON"
)]
struct QuickTestResultList {
    /// Names the lab or test centre (1 to 64 printable characters). Optional, as in CWA.
    #[schema(min_length = 1, max_length = 64)]
    lab_id: Option<String>,
    /// 1 to the batch limit (default 1,000) results, each test id at most once.
    #[schema(min_items = 1)]
    test_results: Vec<QuickTestResult>,
}

/// One rapid antigen test result.
#[derive(utoipa::ToSchema)]
#[allow(
    dead_code,
    reason = "describes the request in the API description; parsed as JSON"
)]
struct QuickTestResult {
    /// The hash of the rapid test's QR code (64 hex characters, or `x` + 63 hex when bound to a
    /// date of birth), either case. Stored as its SHA-256, which is what the app registers.
    #[schema(pattern = "^[XxA-Fa-f0-9]([A-Fa-f0-9]{63})$")]
    id: String,
    /// 5 pending, 6 negative, 7 positive, 8 invalid, 9 redeemed.
    #[schema(minimum = 5, maximum = 9)]
    result: i32,
    /// When the sample was collected, Unix seconds (not in the future). Without it, the time the
    /// result arrives is stored (as CWA does).
    sc: Option<i64>,
}

/// A batch of point-of-care NAT results (CWA's `PocNatResultList`).
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "camelCase")]
#[allow(
    dead_code,
    reason = "describes the request in the API description; parsed as JSON"
)]
struct PocNatResultList {
    /// Names the lab or test centre (1 to 64 printable characters). Optional, as on the other
    /// routes.
    #[schema(min_length = 1, max_length = 64)]
    lab_id: Option<String>,
    /// 1 to the batch limit (default 1,000) results, each test id at most once.
    #[schema(min_items = 1)]
    test_results: Vec<PocNatResult>,
}

/// One point-of-care NAT result.
#[derive(utoipa::ToSchema)]
#[allow(
    dead_code,
    reason = "describes the request in the API description; parsed as JSON"
)]
struct PocNatResult {
    /// The hash of the test's QR code (64 hex characters, or `x` + 63 hex), either case. Stored
    /// as its SHA-256, which is what the app registers.
    #[schema(pattern = "^[XxA-Fa-f0-9]([A-Fa-f0-9]{63})$")]
    id: String,
    /// 10 pending, 11 negative, 12 positive, 13 invalid, 14 redeemed; the app reads them as the
    /// PCR codes 0 to 4, as from CWA.
    #[schema(minimum = 10, maximum = 14)]
    result: i32,
    /// When the sample was collected, Unix seconds (not in the future). Without it, the time the
    /// result arrives is stored (as CWA does).
    sc: Option<i64>,
}

/// A refused batch: nothing of it was stored.
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "describes the answer in the API description")]
struct InvalidBatch {
    /// Always `invalid_request`.
    error: String,
    /// JSON path of the first offending field, e.g. `testResults[3].id`.
    field: String,
    /// What is wrong with it, in words.
    reason: String,
}

/// An error other than an invalid batch.
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "describes the answer in the API description")]
struct LabError {
    /// `payload_too_large`, `unsupported_media_type`, `malformed_json`, `unreadable_body`,
    /// `client_certificate_required`, `dependency_unavailable` or `internal_error`.
    error: String,
}

/// The lab API's description (served at `/openapi.json` on the admin port).
pub fn api() -> utoipa::openapi::OpenApi {
    use utoipa::OpenApi;
    #[derive(OpenApi)]
    #[openapi(
        info(
            title = "OpenWarn test-result: lab API",
            description = "How a laboratory posts test results, so that the app of a person \
tested can fetch theirs. Wire-compatible with the Corona-Warn-App test result server's \
`/api/v1/lab/results`, `/api/v1/quicktest/results` (rapid antigen tests) and \
`/api/v1/pocnat/results` (point-of-care NAT) (differences: docs/API-COMPATIBILITY.md).\n\n\
**Connecting.** HTTPS with a client certificate. A lab is onboarded by the SHA-256 fingerprint \
of its certificate (whatever CA issued it): the operator adds the fingerprint to the allow-list. \
A connection without an allow-listed certificate is refused in the TLS handshake; no HTTP answer \
is sent.\n\n\
**Posting.** A batch is checked completely before anything is stored: either every result of \
it is stored (204) or none is (400 naming the first offending field). Posting the same batch \
again is safe: a result already stored for a test id is kept, never overwritten by a later post \
(a test has one result). Results are kept until they are fetched and redeemed or their \
retention ends.\n\n\
**Errors.** Every error answer is JSON with a machine-readable `error`: `invalid_request` (400, \
with `field` and `reason`), `malformed_json` (400), `unreadable_body` (400), \
`payload_too_large` (413), `unsupported_media_type` (415, send `Content-Type: \
application/json`), `dependency_unavailable` (503, retry later with backoff), \
`internal_error` (500).",
        ),
        paths(post_results, post_quicktest_results, post_pocnat_results),
        components(schemas(
            LabResultList,
            LabTestResult,
            QuickTestResultList,
            QuickTestResult,
            PocNatResultList,
            PocNatResult,
            InvalidBatch,
            LabError
        ))
    )]
    struct Api;
    Api::openapi()
}

/// What is wrong with a lab request: the JSON path of the offending field and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: String,
    pub reason: &'static str,
}

impl Invalid {
    fn response(&self) -> HttpResponse {
        HttpResponse::BadRequest()
            .json(json!({"error": "invalid_request", "field": self.field, "reason": self.reason}))
    }
}

fn invalid(field: impl Into<String>, reason: &'static str) -> Invalid {
    Invalid {
        field: field.into(),
        reason,
    }
}

/// Characters that change how text around them is shown without being seen themselves: every
/// `Bidi_Control` (marks, embeddings, overrides, isolates — a lab id could display as another
/// lab's), zero-width and other invisible characters (soft hyphen, Mongolian vowel separator,
/// interlinear annotations, tags) and the byte order mark.
fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{E0000}'..='\u{E007F}'
    )
}

/// The request body as JSON, refusing an object that names a field twice (with a JSON parser's
/// usual "last wins", a batch could be read differently by the lab's system and by us).
fn parse_strict(bytes: &[u8]) -> Result<Value, Invalid> {
    use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

    /// Builds a `Value` like serde_json does, but fails on a repeated key.
    struct Strict;
    impl<'de> DeserializeSeed<'de> for Strict {
        type Value = Value;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
            d.deserialize_any(self)
        }
    }
    impl<'de> Visitor<'de> for Strict {
        type Value = Value;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("JSON")
        }
        fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
            Ok(Value::Bool(v))
        }
        fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
            Ok(v.into())
        }
        fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
            Ok(v.into())
        }
        fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
            Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
        }
        fn visit_str<E>(self, v: &str) -> Result<Value, E> {
            Ok(Value::String(v.to_owned()))
        }
        fn visit_string<E>(self, v: String) -> Result<Value, E> {
            Ok(Value::String(v))
        }
        fn visit_unit<E>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
            let mut items = Vec::new();
            while let Some(item) = seq.next_element_seed(Strict)? {
                items.push(item);
            }
            Ok(Value::Array(items))
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
            let mut object = serde_json::Map::new();
            while let Some(key) = map.next_key::<String>()? {
                let value = map.next_value_seed(Strict)?;
                if object.contains_key(&key) {
                    return Err(serde::de::Error::custom(format_args!("duplicate:{key}")));
                }
                object.insert(key, value);
            }
            Ok(Value::Object(object))
        }
    }

    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let parsed = Strict
        .deserialize(&mut deserializer)
        .and_then(|v| deserializer.end().map(|()| v));
    parsed.map_err(|e| {
        let message = e.to_string();
        match message
            .strip_prefix("duplicate:")
            .and_then(|m| m.split(" at line").next())
        {
            Some(field) => Invalid {
                field: field.to_owned(),
                reason: "appears more than once in its object",
            },
            None => not_json(),
        }
    })
}

fn not_json() -> Invalid {
    invalid("$", "is not valid JSON")
}

/// A lab request's body as the lab API reads it — strict JSON (no field twice), then every
/// check of `validate` — before anything is stored. The entry point of the fuzz target.
pub fn read_batch(
    bytes: &[u8],
    now: i64,
    max_batch: usize,
    kind: Kind,
) -> Result<(Option<String>, Vec<LabResult>), Invalid> {
    validate(&parse_strict(bytes)?, now, max_batch, kind)
}

/// Checks a lab request completely before anything is stored.
pub fn validate(
    body: &Value,
    now: i64,
    max_batch: usize,
    kind: Kind,
) -> Result<(Option<String>, Vec<LabResult>), Invalid> {
    let obj = body
        .as_object()
        .ok_or_else(|| invalid("$", "must be a JSON object"))?;
    let lab_id = match obj.get("labId") {
        Some(Value::String(s))
            if !s.trim().is_empty()
                && s.len() <= MAX_LAB_ID_LEN
                && !s.chars().any(|c| c.is_control() || is_invisible_format(c)) =>
        {
            Some(s.clone())
        }
        Some(Value::String(_)) => {
            return Err(invalid("labId", "must be 1 to 64 printable characters"));
        }
        // Optional, as in CWA (a result without one reaches the app without `labId`).
        None | Some(Value::Null) => None,
        Some(_) => return Err(invalid("labId", "must be a string")),
    };
    let results = match obj.get("testResults") {
        Some(Value::Array(a)) => a,
        Some(_) => return Err(invalid("testResults", "must be an array")),
        None => return Err(invalid("testResults", "is required")),
    };
    if results.is_empty() {
        return Err(invalid("testResults", "must not be empty"));
    }
    if results.len() > max_batch {
        return Err(invalid(
            "testResults",
            "has more entries than the batch limit",
        ));
    }
    let mut seen = HashSet::with_capacity(results.len());
    let mut out = Vec::with_capacity(results.len());
    for (i, entry) in results.iter().enumerate() {
        let at = |field: &str| format!("testResults[{i}].{field}");
        let entry = entry
            .as_object()
            .ok_or_else(|| invalid(format!("testResults[{i}]"), "must be an object"))?;
        let id = match entry.get("id").map(|v| v.as_str()) {
            Some(Some(posted)) => match HashedGuid::try_from(posted) {
                Ok(checked) => kind.stored_id(posted, checked),
                Err(_) => {
                    return Err(invalid(
                        at("id"),
                        "must match ^[XxA-Fa-f0-9]([A-Fa-f0-9]{63})$ (a SHA-256 in hex, or x and \
                         63 hex for a date-of-birth-bound id)",
                    ));
                }
            },
            Some(None) => return Err(invalid(at("id"), "must be a string")),
            None => return Err(invalid(at("id"), "is required")),
        };
        let result = match entry
            .get("result")
            .and_then(Value::as_i64)
            .and_then(|r| kind.result(r))
        {
            Some(r) => r,
            None => return Err(invalid(at("result"), kind.result_rule())),
        };
        let sc = match entry.get("sc") {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_i64() {
                Some(sc) if sc < 0 => return Err(invalid(at("sc"), "must not be negative")),
                Some(sc) if sc > now + SC_CLOCK_SKEW_SECS => {
                    return Err(invalid(at("sc"), "must not be in the future"));
                }
                Some(sc) => Some(sc),
                None => return Err(invalid(at("sc"), "must be an integer (unix seconds)")),
            },
        };
        if !seen.insert(id.clone()) {
            return Err(invalid(at("id"), "appears more than once in the batch"));
        }
        out.push(LabResult {
            hashed_guid: id,
            result,
            sample_collected_at: sc,
        });
    }
    Ok((lab_id, out))
}

#[utoipa::path(
    post,
    path = "/api/v1/lab/results",
    request_body(content = LabResultList, examples(
        ("204 a positive and a negative result" = (value = json!({"labId": "lab-berlin-1", "testResults": [
            {"id": "8c5f3b1e2a4d6c7b9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d", "result": 2, "sc": 1700000000},
            {"id": "1f2e3d4c5b6a79880716253443526170f1e2d3c4b5a69788796a5b4c3d2e1f00", "result": 1}
        ]}))),
        ("400 invalid_request" = (summary = "A result outside 1..3 (field `testResults[0].result`)", value = json!({"labId": "lab-berlin-1", "testResults": [
            {"id": "8c5f3b1e2a4d6c7b9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d", "result": 7}
        ]}))),
        ("400 invalid_request (id)" = (summary = "An id that matches neither a SHA-256 in hex nor a date-of-birth-bound id", value = json!({"labId": "lab-berlin-1", "testResults": [{"id": "ABC", "result": 1}]}))),
        ("400 invalid_request (labId)" = (summary = "An empty labId (it is optional, but not empty)", value = json!({"labId": "", "testResults": [{"id": "8c5f3b1e2a4d6c7b9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d", "result": 1}]}))),
    )),
    responses(
        (status = 204, description = "Every result of the batch is stored"),
        (status = 400, description = "`invalid_request`: nothing stored; `field` names the first offending field", body = InvalidBatch,
            example = json!({"error": "invalid_request", "field": "testResults[0].result", "reason": "must be 1 (negative), 2 (positive) or 3 (invalid)"})),
        (status = 403, description = "`client_certificate_required`: served over TLS but the connection has no client certificate (a listener misconfigured; an allow-listed lab never sees it)", body = LabError, example = json!({"error": "client_certificate_required"})),
        (status = 413, description = "`payload_too_large`: body over the size limit", body = LabError, example = json!({"error": "payload_too_large"})),
        (status = 415, description = "`unsupported_media_type`: not `application/json`", body = LabError, example = json!({"error": "unsupported_media_type"})),
        (status = 500, description = "`internal_error`: not stored; report it", body = LabError, example = json!({"error": "internal_error"})),
        (status = 503, description = "`dependency_unavailable`: not stored; retry later with backoff", body = LabError, example = json!({"error": "dependency_unavailable"})),
    ),
)]
async fn post_results(
    state: web::Data<LabState>,
    request: HttpRequest,
    body: web::Payload,
) -> HttpResponse {
    post(&state, &request, body, Kind::Pcr).await
}

#[utoipa::path(
    post,
    path = "/api/v1/quicktest/results",
    request_body(content = QuickTestResultList, examples(
        ("204 a positive rapid test" = (value = json!({"labId": "test-centre-7", "testResults": [
            {"id": "7c4a8d09ca3762af61e59520943dc26494f8941b7c4a8d09ca3762af61e59520", "result": 7, "sc": 1700000000}
        ]}))),
        ("204 a pending rapid test bound to a date of birth" = (value = json!({"testResults": [
            {"id": "x84a8d09ca3762af61e59520943dc26494f8941b7c4a8d09ca3762af61e59520", "result": 5}
        ]}))),
        ("400 invalid_request" = (summary = "A PCR code on the rapid-test route (field `testResults[0].result`)", value = json!({"testResults": [
            {"id": "7c4a8d09ca3762af61e59520943dc26494f8941b7c4a8d09ca3762af61e59520", "result": 4}
        ]}))),
    )),
    responses(
        (status = 204, description = "Every result of the batch is stored"),
        (status = 400, description = "`invalid_request`: nothing stored; `field` names the first offending field", body = InvalidBatch),
        (status = 403, description = "`client_certificate_required` (see `/api/v1/lab/results`)", body = LabError),
        (status = 413, description = "`payload_too_large`: body over the size limit", body = LabError),
        (status = 415, description = "`unsupported_media_type`: not `application/json`", body = LabError),
        (status = 500, description = "`internal_error`: not stored; report it", body = LabError),
        (status = 503, description = "`dependency_unavailable`: not stored; retry later with backoff", body = LabError),
    ),
)]
async fn post_quicktest_results(
    state: web::Data<LabState>,
    request: HttpRequest,
    body: web::Payload,
) -> HttpResponse {
    post(&state, &request, body, Kind::QuickTest).await
}

#[utoipa::path(
    post,
    path = "/api/v1/pocnat/results",
    request_body(content = PocNatResultList, examples(
        ("204 a positive point-of-care NAT" = (value = json!({"labId": "test-centre-7", "testResults": [
            {"id": "7c4a8d09ca3762af61e59520943dc26494f8941b7c4a8d09ca3762af61e59520", "result": 12}
        ]}))),
        ("400 invalid_request" = (summary = "A rapid-test code on the PoC-NAT route (field `testResults[0].result`)", value = json!({"testResults": [
            {"id": "7c4a8d09ca3762af61e59520943dc26494f8941b7c4a8d09ca3762af61e59520", "result": 7}
        ]}))),
    )),
    responses(
        (status = 204, description = "Every result of the batch is stored"),
        (status = 400, description = "`invalid_request`: nothing stored; `field` names the first offending field", body = InvalidBatch),
        (status = 403, description = "`client_certificate_required` (see `/api/v1/lab/results`)", body = LabError),
        (status = 413, description = "`payload_too_large`: body over the size limit", body = LabError),
        (status = 415, description = "`unsupported_media_type`: not `application/json`", body = LabError),
        (status = 500, description = "`internal_error`: not stored; report it", body = LabError),
        (status = 503, description = "`dependency_unavailable`: not stored; retry later with backoff", body = LabError),
    ),
)]
async fn post_pocnat_results(
    state: web::Data<LabState>,
    request: HttpRequest,
    body: web::Payload,
) -> HttpResponse {
    post(&state, &request, body, Kind::PocNat).await
}

/// Every lab route: the same checks of the connection and the body, the route's result codes.
async fn post(
    state: &LabState,
    request: &HttpRequest,
    body: web::Payload,
    kind: Kind,
) -> HttpResponse {
    // The TLS handshake admitted only allow-listed certificates; a connection without one never
    // reaches a handler. Checked here too, so that a misconfigured listener fails closed.
    let lab_certificate = request.conn_data::<PeerCertificate>();
    if state.client_certificates && lab_certificate.is_none() {
        return ApiError::new(StatusCode::FORBIDDEN, "client_certificate_required")
            .error_response();
    }
    let bytes = match read_body(request, body, state.max_body_bytes, "application/json").await {
        Ok(bytes) => bytes,
        Err(e) => return e.error_response(),
    };
    let now = openwarn_bootstrap::lifecycle::unix_now();
    let (lab_id, mut results) = match read_batch(&bytes, now, state.max_batch, kind) {
        Ok(v) => v,
        Err(e) if e == not_json() => {
            return ApiError::bad_request("malformed_json").error_response();
        }
        Err(e) => return e.response(),
    };
    // As CWA: a result without a sample time gets the time it arrived, so that the app always
    // learns one with a result.
    for result in &mut results {
        result.sample_collected_at.get_or_insert(now);
    }
    let count = results.len();
    match state.store.save_lab_results(lab_id, results, now).await {
        Ok(stored) => {
            metrics::counter!("openwarn_lab_results_received_total").increment(count as u64);
            // The certificate's fingerprint names the onboarded lab (it is public, not a secret).
            let certificate = lab_certificate.map(|c| openwarn_mtls::fingerprint(&c.0));
            tracing::info!(
                route = ?kind,
                received = count,
                stored,
                lab_certificate = certificate.as_deref().map(|f| &f[..16]),
                "lab results saved"
            );
            HttpResponse::NoContent().finish()
        }
        Err(e) if e.is_unavailable() => {
            tracing::warn!(error = %e, "lab results not saved: database unavailable");
            ApiError::unavailable().error_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "lab results not saved");
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error").error_response()
        }
    }
}

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn id(c: char) -> String {
        c.to_string().repeat(64)
    }

    fn check(body: Value) -> Result<(Option<String>, Vec<LabResult>), Invalid> {
        validate(&body, NOW, 3, Kind::Pcr)
    }

    fn field_of(body: Value) -> String {
        check(body).unwrap_err().field
    }

    /// Served over TLS, the handler refuses a request whose connection has no client certificate
    /// (the handshake already refuses such connections: this is the listener misconfigured),
    /// and stores nothing; in the clear (development) no certificate is asked for.
    #[actix_web::test]
    async fn without_a_client_certificate_tls_routes_refuse_and_store_nothing() {
        let db = openwarn_testkit::TestDatabase::sqlite();
        let database = openwarn_db::Database::open(db.url(), 1).await.unwrap();
        database
            .migrate(crate::MIGRATIONS_PG, crate::MIGRATIONS_SQLITE)
            .await
            .unwrap();
        let post = |client_certificates| {
            let store = Store::new(database.clone());
            async move {
                let routes = routes(LabState {
                    store,
                    max_batch: 10,
                    max_body_bytes: 10_000,
                    client_certificates,
                });
                let app = actix_web::test::init_service(
                    actix_web::App::new().configure(|c| routes.configure(c)),
                )
                .await;
                let request = actix_web::test::TestRequest::post()
                    .uri("/api/v1/lab/results")
                    .set_json(json!({"testResults": [{"id": id('a'), "result": 2}]}))
                    .to_request();
                let response = actix_web::test::call_service(&app, request).await;
                let status = response.status().as_u16();
                (status, actix_web::test::read_body(response).await)
            }
        };
        let (status, body) = post(true).await;
        assert_eq!(status, 403);
        assert_eq!(&body[..], br#"{"error":"client_certificate_required"}"#);
        let store = Store::new(database.clone());
        assert!(store.dump().await.unwrap().is_empty(), "nothing stored");
        assert_eq!(post(false).await.0, 204);
        assert_eq!(store.dump().await.unwrap().len(), 1);
    }

    #[test]
    fn a_valid_batch_passes() {
        let (lab, results) = check(json!({"labId": "lab-1", "testResults": [
            {"id": id('a'), "result": 2, "sc": NOW - 3600},
            {"id": id('b'), "result": 1},
        ]}))
        .unwrap();
        assert_eq!(lab.as_deref(), Some("lab-1"));
        assert_eq!(
            results[0],
            LabResult {
                hashed_guid: id('a').parse().unwrap(),
                result: TestResult::Positive,
                sample_collected_at: Some(NOW - 3600)
            }
        );
        assert_eq!(results[1].sample_collected_at, None);
    }

    #[test]
    fn a_field_named_twice_is_refused_wherever_it_is() {
        let twice = |body: &str| parse_strict(body.as_bytes()).unwrap_err();
        let top = twice(r#"{"labId": "a", "labId": "b", "testResults": []}"#);
        assert_eq!(top.field, "labId");
        assert_eq!(top.reason, "appears more than once in its object");
        let nested =
            twice(r#"{"labId": "a", "testResults": [{"id": "x", "result": 1, "result": 2}]}"#);
        assert_eq!(nested.field, "result");
        assert_eq!(twice("{not json").field, "$");
        assert_eq!(twice(r#"{"a": 1} trailing"#).field, "$");
        let parsed = parse_strict(
            br#"{"labId": "a", "testResults": [{"id": "x", "result": 1.5, "sc": null}]}"#,
        )
        .unwrap();
        assert_eq!(
            parsed,
            json!({"labId": "a", "testResults": [{"id": "x", "result": 1.5, "sc": null}]})
        );
    }

    #[test]
    fn a_lab_id_with_invisible_formatting_is_refused() {
        let results = json!([{"id": id('a'), "result": 2}]);
        for hidden in ["lab\u{202E}1", "\u{2066}lab", "la\u{200B}b", "\u{FEFF}lab"] {
            assert_eq!(
                field_of(json!({"labId": hidden, "testResults": results})),
                "labId",
                "{hidden:?}"
            );
        }
        assert!(check(json!({"labId": "Labor Müller – Köln", "testResults": results})).is_ok());
    }

    #[test]
    fn the_body_must_be_an_object() {
        assert_eq!(field_of(json!([1])), "$");
    }

    #[test]
    fn lab_id_is_optional_and_bounded() {
        let results = json!([{"id": id('a'), "result": 2}]);
        assert_eq!(check(json!({"testResults": results})).unwrap().0, None);
        assert_eq!(
            check(json!({"labId": null, "testResults": results}))
                .unwrap()
                .0,
            None
        );
        assert_eq!(
            field_of(json!({"labId": "", "testResults": results})),
            "labId"
        );
        assert_eq!(
            field_of(json!({"labId": 5, "testResults": results})),
            "labId"
        );
        assert_eq!(
            field_of(json!({"labId": "x".repeat(65), "testResults": results})),
            "labId"
        );
        assert_eq!(
            field_of(json!({"labId": "a\nb", "testResults": results})),
            "labId"
        );
        assert!(check(json!({"labId": "x".repeat(64), "testResults": results})).is_ok());
    }

    #[test]
    fn the_batch_is_required_non_empty_and_bounded() {
        assert_eq!(field_of(json!({"labId": "l"})), "testResults");
        assert_eq!(
            field_of(json!({"labId": "l", "testResults": {}})),
            "testResults"
        );
        assert_eq!(
            field_of(json!({"labId": "l", "testResults": []})),
            "testResults"
        );
        let four: Vec<Value> = "abcd"
            .chars()
            .map(|c| json!({"id": id(c), "result": 1}))
            .collect();
        assert_eq!(
            field_of(json!({"labId": "l", "testResults": four})),
            "testResults"
        );
    }

    #[test]
    fn ids_follow_cwas_pattern_are_stored_lowercase_and_unique() {
        // CWA's TestResultControllerTest#insertValidDobHashShouldReturnNoContentWithLabId: a
        // date-of-birth-bound id (`x` + 63 hex) is a valid id.
        let (_, results) = check(json!({"testResults": [
            {"id": "A".repeat(64), "result": 1},
            {"id": format!("X{}", "B".repeat(63)), "result": 2},
        ]}))
        .unwrap();
        assert_eq!(results[0].hashed_guid.as_str(), "a".repeat(64));
        assert_eq!(
            results[1].hashed_guid.as_str(),
            format!("x{}", "b".repeat(63))
        );
        assert_eq!(
            field_of(
                json!({"testResults": [{"id": "A".repeat(64), "result": 1}, {"id": "a".repeat(64), "result": 2}]})
            ),
            "testResults[1].id",
            "the same id in two cases is the same id"
        );
        for bad in [
            json!(format!("y{}", "a".repeat(63))),
            json!(format!("ax{}", "a".repeat(62))),
            json!("a".repeat(63)),
            json!("g".repeat(64)),
            json!(5),
        ] {
            assert_eq!(
                field_of(json!({"labId": "l", "testResults": [{"id": bad, "result": 1}]})),
                "testResults[0].id"
            );
        }
        assert_eq!(
            field_of(json!({"labId": "l", "testResults": [{"result": 1}]})),
            "testResults[0].id"
        );
        assert_eq!(
            field_of(
                json!({"labId": "l", "testResults": [{"id": id('a'), "result": 1}, {"id": id('a'), "result": 2}]})
            ),
            "testResults[1].id"
        );
        assert_eq!(
            field_of(json!({"labId": "l", "testResults": ["x"]})),
            "testResults[0]"
        );
    }

    #[test]
    fn results_are_1_to_3() {
        for bad in [
            json!(0),
            json!(4),
            json!(-1),
            json!("2"),
            json!(2.5),
            Value::Null,
        ] {
            assert_eq!(
                field_of(json!({"labId": "l", "testResults": [{"id": id('a'), "result": bad}]})),
                "testResults[0].result"
            );
        }
        for good in 1..=3 {
            assert!(
                check(json!({"labId": "l", "testResults": [{"id": id('a'), "result": good}]}))
                    .is_ok()
            );
        }
    }

    /// CWA's TestResultControllerTest#quickInsertValidShouldReturnNoContent,
    /// #quickInsertInValidShouldReturnUnprocessableEntity (4 on the rapid-test route is 400),
    /// #pocnatInsertValidShouldReturnNoContent and #pocnatInsertInValidShouldReturnUnprocessableEntity;
    /// ids are stored as the SHA-256 of the id posted (CWA's convertQuickTest/convertPocNat).
    #[test]
    fn rapid_test_and_pocnat_routes_take_cwas_codes_and_hash_the_id() {
        let body = |code: i64| json!({"testResults": [{"id": id('b'), "result": code}]});
        let quick = |code| validate(&body(code), NOW, 3, Kind::QuickTest);
        let pocnat = |code| validate(&body(code), NOW, 3, Kind::PocNat);
        for code in 5..=9 {
            let (_, results) = quick(code).unwrap();
            assert_eq!(i64::from(results[0].result), code);
            assert_eq!(results[0].hashed_guid.as_str(), sha256_hex(id('b')));
        }
        for code in [0, 1, 2, 3, 4, 10, 12, -5] {
            assert_eq!(
                quick(code).unwrap_err().field,
                "testResults[0].result",
                "{code}"
            );
        }
        for code in 10..=14 {
            let (_, results) = pocnat(code).unwrap();
            assert_eq!(
                i64::from(results[0].result),
                code - 10,
                "stored as its PCR code"
            );
            assert_eq!(results[0].hashed_guid.as_str(), sha256_hex(id('b')));
        }
        for code in [0, 2, 4, 5, 7, 9, 15] {
            assert_eq!(
                pocnat(code).unwrap_err().field,
                "testResults[0].result",
                "{code}"
            );
        }
        for code in [0, 4, 5, 7, 9, 12] {
            assert!(check(body(code)).is_err(), "{code} on the PCR route");
        }
        // Hashed as posted, as CWA hashes it: the app hashes the QR code's string itself.
        let upper = json!({"testResults": [{"id": "B".repeat(64), "result": 7}]});
        let (_, results) = validate(&upper, NOW, 3, Kind::QuickTest).unwrap();
        assert_eq!(results[0].hashed_guid.as_str(), sha256_hex("B".repeat(64)));
    }

    #[test]
    fn sample_time_is_optional_but_not_in_the_future() {
        let with_sc = |sc: Value| json!({"labId": "l", "testResults": [{"id": id('a'), "result": 2, "sc": sc}]});
        assert!(check(with_sc(json!(NOW))).is_ok());
        assert!(check(with_sc(Value::Null)).is_ok());
        assert!(check(with_sc(json!(NOW + SC_CLOCK_SKEW_SECS))).is_ok());
        assert_eq!(
            field_of(with_sc(json!(NOW + SC_CLOCK_SKEW_SECS + 1))),
            "testResults[0].sc"
        );
        assert_eq!(field_of(with_sc(json!(-5))), "testResults[0].sc");
        assert_eq!(field_of(with_sc(json!("yesterday"))), "testResults[0].sc");
    }
}
