//! App-facing REST, wire-compatible with the CWA verification server:
//! `POST /version/v1/registrationToken`, `/testresult`, `/tan`.
//!
//! Every response body of an endpoint — success, error or fake — is padded (`responsePadding`)
//! to the same length. A request with `cwa-fake: 1` is read like a real one (same size and type
//! checks), changes nothing, calls no one, waits a delay drawn from the endpoint's recent real
//! latencies, and gets the status and body length of a real success.

use crate::store::{Registered, Source, Store, TanIssue};
use crate::testresults::TestResults;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use http::{HeaderMap, StatusCode};
use openwarn_bootstrap::http::{ApiError, LatencyReservoir, is_fake, json_response, read_json};
use openwarn_bootstrap::lifecycle::unix_now;
use openwarn_domain::{HashedGuid, RegistrationToken, Tan, TeleTan, TestResult};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub response_length: usize,
    pub tan_validity: Duration,
    pub max_tans_per_session: i32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Endpoint {
    RegistrationToken,
    TestResult,
    Tan,
}

impl Endpoint {
    fn index(self) -> usize {
        self as usize
    }
    fn success(self) -> StatusCode {
        match self {
            Self::RegistrationToken | Self::Tan => StatusCode::CREATED,
            Self::TestResult => StatusCode::OK,
        }
    }
    /// What a fake request gets: the shape of a real success, with values of no meaning.
    fn fake_body(self) -> Map<String, Value> {
        let mut body = Map::new();
        match self {
            Self::RegistrationToken => {
                body.insert(
                    "registrationToken".into(),
                    RegistrationToken::generate().into_exposed().into(),
                );
            }
            Self::Tan => {
                body.insert("tan".into(), Tan::generate().into_exposed().into());
            }
            Self::TestResult => {
                body.insert("testResult".into(), i32::from(TestResult::Pending).into());
            }
        }
        body
    }
}

pub struct AppState {
    store: Store,
    test_results: TestResults,
    limits: Limits,
    reservoirs: [LatencyReservoir; 3],
}

pub fn router(store: Store, test_results: TestResults, limits: Limits) -> Router {
    let reservoir = || LatencyReservoir::new(1024, Duration::from_millis(20));
    let state = Arc::new(AppState {
        store,
        test_results,
        limits,
        reservoirs: [reservoir(), reservoir(), reservoir()],
    });
    Router::new()
        .route("/version/v1/registrationToken", post(registration_token))
        .route("/version/v1/testresult", post(test_result))
        .route("/version/v1/tan", post(tan))
        .with_state(state)
        .layer(axum::middleware::from_fn(
            openwarn_bootstrap::admin::track_http,
        ))
}

type Outcome = Result<Map<String, Value>, ApiError>;

/// Reads the body, then answers a fake or runs the real handler; pads every answer.
async fn respond<T, F, Fut>(
    state: &AppState,
    endpoint: Endpoint,
    headers: &HeaderMap,
    body: Body,
    real: F,
) -> Response
where
    T: serde::de::DeserializeOwned,
    F: FnOnce(T) -> Fut,
    Fut: Future<Output = Outcome>,
{
    let started = Instant::now();
    let length = state.limits.response_length;
    let request: T = match read_json(headers, body, state.limits.max_body_bytes).await {
        Ok(r) => r,
        Err(e) => return json_response(e.status, &e.body(), length),
    };
    let reservoir = &state.reservoirs[endpoint.index()];
    if is_fake(headers) {
        let delay = reservoir.sample().saturating_sub(started.elapsed());
        tokio::time::sleep(delay).await;
        return json_response(endpoint.success(), &endpoint.fake_body(), length);
    }
    match real(request).await {
        Ok(body) => {
            reservoir.record(started.elapsed());
            json_response(endpoint.success(), &body, length)
        }
        Err(e) => json_response(e.status, &e.body(), length),
    }
}

fn db_error(e: &openwarn_db::DbError) -> ApiError {
    if e.is_unavailable() {
        tracing::warn!(error = %e, "database unavailable");
        ApiError::unavailable()
    } else {
        tracing::error!(error = %e, "database error");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error")
    }
}

#[derive(Deserialize)]
struct RegistrationRequest {
    key: Option<String>,
    #[serde(rename = "keyType")]
    key_type: Option<String>,
}

#[derive(Deserialize)]
struct TokenRequest {
    #[serde(rename = "registrationToken")]
    registration_token: Option<String>,
}

async fn registration_token(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    respond(
        &state,
        Endpoint::RegistrationToken,
        &headers,
        body,
        |r: RegistrationRequest| register(&state, r),
    )
    .await
}

async fn register(state: &AppState, request: RegistrationRequest) -> Outcome {
    let key = request.key.ok_or(ApiError::bad_request("missing_key"))?;
    let now = unix_now();
    let token = RegistrationToken::generate();
    let token_hash = token.hash();
    let outcome = match request.key_type.as_deref() {
        Some("GUID") => {
            let hashed_guid =
                HashedGuid::try_from(key).map_err(|_| ApiError::bad_request("invalid_key"))?;
            state
                .store
                .register_guid(token_hash, hashed_guid, now)
                .await
        }
        Some("TELETAN") => {
            // Format and check character first: a mistyped teleTAN never reaches the database.
            let tele_tan =
                TeleTan::try_from(key).map_err(|_| ApiError::bad_request("invalid_teletan"))?;
            state
                .store
                .register_tele_tan(token_hash, tele_tan.hash(), now)
                .await
        }
        _ => return Err(ApiError::bad_request("invalid_key_type")),
    }
    .map_err(|e| db_error(&e))?;
    match outcome {
        Registered::Created => {
            metrics::counter!("openwarn_registrations_total").increment(1);
            let mut body = Map::new();
            body.insert("registrationToken".into(), token.into_exposed().into());
            Ok(body)
        }
        Registered::AlreadyRegistered => Err(ApiError::bad_request("already_registered")),
        Registered::TeleTanRefused => Err(ApiError::bad_request("teletan_invalid_expired_or_used")),
    }
}

/// The session of a registration token, and the token's hash.
async fn session_of(
    state: &AppState,
    token: Option<String>,
) -> Result<(String, crate::store::Session), ApiError> {
    let token = token
        .as_deref()
        .and_then(|t| RegistrationToken::try_from(t).ok())
        .ok_or(ApiError::bad_request("invalid_token"))?;
    let token_hash = token.hash();
    let session = state
        .store
        .session(token_hash.clone())
        .await
        .map_err(|e| db_error(&e))?
        .ok_or(ApiError::bad_request("unknown_token"))?;
    Ok((token_hash, session))
}

async fn test_result(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    respond(
        &state,
        Endpoint::TestResult,
        &headers,
        body,
        |r: TokenRequest| fetch_result(&state, r),
    )
    .await
}

async fn fetch_result(state: &AppState, r: TokenRequest) -> Outcome {
    let (_, session) = session_of(state, r.registration_token).await?;
    let mut body = Map::new();
    match (session.source, session.hashed_guid) {
        // The session knows first that its TAN was redeemed: test-result is told off the
        // submission's path, and a poll right after the upload must not read positive.
        (Source::Guid, Some(_)) if session.tan_redeemed => {
            body.insert("testResult".into(), i32::from(TestResult::Redeemed).into());
        }
        (Source::Guid, Some(hashed_guid)) => {
            let result = state.test_results.get(&hashed_guid).await?;
            body.insert("testResult".into(), i32::from(result.result).into());
            if let Some(sc) = result.sample_collected_at {
                body.insert("sc".into(), sc.into());
            }
            if let Some(lab_id) = result.lab_id {
                body.insert("labId".into(), lab_id.into());
            }
        }
        // A teleTAN session is positive by definition.
        _ => {
            body.insert("testResult".into(), i32::from(TestResult::Positive).into());
        }
    }
    Ok(body)
}

async fn tan(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    respond(&state, Endpoint::Tan, &headers, body, |r: TokenRequest| {
        issue_tan(&state, r)
    })
    .await
}

async fn issue_tan(state: &AppState, r: TokenRequest) -> Outcome {
    let (token_hash, session) = session_of(state, r.registration_token).await?;
    if session.tan_redeemed {
        return Err(ApiError::bad_request("tan_already_redeemed"));
    }
    if session.tans_issued >= state.limits.max_tans_per_session {
        return Err(ApiError::bad_request("tan_quota_used"));
    }
    if let (Source::Guid, Some(hashed_guid)) = (session.source, &session.hashed_guid) {
        // Re-checked now: a result can change (or be redeemed) after the app last polled.
        let result = state.test_results.get(hashed_guid).await?;
        if result.result != TestResult::Positive {
            return Err(ApiError::bad_request("result_not_positive"));
        }
    }
    let now = unix_now();
    let tan = Tan::generate();
    let expires_at =
        now + i64::try_from(state.limits.tan_validity.as_secs()).unwrap_or(i64::MAX / 2);
    let issued = state
        .store
        .issue_tan(
            token_hash,
            tan.hash(),
            now,
            expires_at,
            state.limits.max_tans_per_session,
        )
        .await
        .map_err(|e| db_error(&e))?;
    match issued {
        TanIssue::Issued => {
            metrics::counter!("openwarn_tans_issued_total").increment(1);
            let mut body = Map::new();
            body.insert("tan".into(), tan.into_exposed().into());
            Ok(body)
        }
        TanIssue::UnknownSession => Err(ApiError::bad_request("unknown_token")),
        TanIssue::AlreadyRedeemed => Err(ApiError::bad_request("tan_already_redeemed")),
        TanIssue::QuotaUsed => Err(ApiError::bad_request("tan_quota_used")),
    }
}
