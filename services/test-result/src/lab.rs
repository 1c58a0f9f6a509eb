//! The lab API: `POST /api/v1/lab/results` `{"labId", "testResults": [{"id", "result", "sc"?}]}` → 204.

use crate::store::{LabResult, Store};
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http::{HeaderMap, StatusCode};
use openwarn_bootstrap::http::{ApiError, read_json};
use openwarn_domain::{HashedGuid, TestResult};
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
}

pub fn router(state: LabState) -> Router {
    Router::new()
        .route("/api/v1/lab/results", post(post_results))
        .with_state(state)
        .layer(axum::middleware::from_fn(
            openwarn_bootstrap::admin::track_http,
        ))
}

/// What is wrong with a lab request: the JSON path of the offending field and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: String,
    pub reason: &'static str,
}

impl IntoResponse for Invalid {
    fn into_response(self) -> Response {
        (
            StatusCode::BAD_REQUEST,
            axum::Json(
                json!({"error": "invalid_request", "field": self.field, "reason": self.reason}),
            ),
        )
            .into_response()
    }
}

fn invalid(field: impl Into<String>, reason: &'static str) -> Invalid {
    Invalid {
        field: field.into(),
        reason,
    }
}

/// Checks a lab request completely before anything is stored.
pub fn validate(
    body: &Value,
    now: i64,
    max_batch: usize,
) -> Result<(String, Vec<LabResult>), Invalid> {
    let obj = body
        .as_object()
        .ok_or_else(|| invalid("$", "must be a JSON object"))?;
    let lab_id = match obj.get("labId") {
        Some(Value::String(s))
            if !s.trim().is_empty()
                && s.len() <= MAX_LAB_ID_LEN
                && !s.chars().any(char::is_control) =>
        {
            s.clone()
        }
        Some(Value::String(_)) => {
            return Err(invalid("labId", "must be 1 to 64 printable characters"));
        }
        Some(_) => return Err(invalid("labId", "must be a string")),
        None => return Err(invalid("labId", "is required")),
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
        let id = match entry
            .get("id")
            .map(|v| v.as_str().map(HashedGuid::try_from))
        {
            Some(Some(Ok(id))) => id,
            Some(_) => {
                return Err(invalid(
                    at("id"),
                    "must be 64 lowercase hex characters (SHA-256 of the GUID)",
                ));
            }
            None => return Err(invalid(at("id"), "is required")),
        };
        let result = match entry
            .get("result")
            .and_then(Value::as_i64)
            .and_then(|r| TestResult::try_from(r).ok())
        {
            Some(r) if r.is_lab_result() => r,
            _ => {
                return Err(invalid(
                    at("result"),
                    "must be 1 (negative), 2 (positive) or 3 (invalid)",
                ));
            }
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

async fn post_results(State(state): State<LabState>, headers: HeaderMap, body: Body) -> Response {
    let value: Value = match read_json(&headers, body, state.max_body_bytes).await {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let now = openwarn_bootstrap::lifecycle::unix_now();
    let (lab_id, results) = match validate(&value, now, state.max_batch) {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let count = results.len();
    match state.store.save_lab_results(lab_id, results, now).await {
        Ok(stored) => {
            metrics::counter!("openwarn_lab_results_received_total").increment(count as u64);
            tracing::info!(received = count, stored, "lab results saved");
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) if e.is_unavailable() => {
            tracing::warn!(error = %e, "lab results not saved: database unavailable");
            ApiError::unavailable().into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "lab results not saved");
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error").into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn id(c: char) -> String {
        c.to_string().repeat(64)
    }

    fn check(body: Value) -> Result<(String, Vec<LabResult>), Invalid> {
        validate(&body, NOW, 3)
    }

    fn field_of(body: Value) -> String {
        check(body).unwrap_err().field
    }

    #[test]
    fn a_valid_batch_passes() {
        let (lab, results) = check(json!({"labId": "lab-1", "testResults": [
            {"id": id('a'), "result": 2, "sc": NOW - 3600},
            {"id": id('b'), "result": 1},
        ]}))
        .unwrap();
        assert_eq!(lab, "lab-1");
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
    fn the_body_must_be_an_object() {
        assert_eq!(field_of(json!([1])), "$");
    }

    #[test]
    fn lab_id_is_required_and_bounded() {
        let results = json!([{"id": id('a'), "result": 2}]);
        assert_eq!(field_of(json!({"testResults": results})), "labId");
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
    fn ids_are_64_lowercase_hex_and_unique() {
        for bad in [
            json!("A".repeat(64)),
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
