//! `POST /version/v1/diagnosis-keys`: validate (spends nothing), reserve the TAN, store every key
//! in one transaction, commit the TAN — or release it when storing failed. Either the keys are
//! stored and the TAN is spent, or nothing is stored and the TAN stays usable.

use crate::rules::{Rules, validate};
use crate::store::Store;
use crate::tans::{TanError, Tans};
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http::{HeaderMap, StatusCode};
use openwarn_bootstrap::http::{ApiError, is_fake, read_body};
use openwarn_domain::Tan;
use openwarn_protocol::Message;
use openwarn_protocol::cwa::SubmissionPayload;
use std::sync::Arc;

pub struct AppState {
    pub store: Store,
    pub tans: Tans,
    pub rules: Rules,
    pub max_body_bytes: usize,
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/version/v1/diagnosis-keys", post(submit))
        .with_state(state)
        .layer(axum::middleware::from_fn(
            openwarn_bootstrap::admin::track_http,
        ))
}

fn outcome(name: &'static str) {
    metrics::counter!("openwarn_submissions_total", "outcome" => name).increment(1);
}

/// The current 10-minute interval number and hour since the epoch.
fn clock() -> (i32, i64) {
    let now = openwarn_bootstrap::lifecycle::unix_now();
    (i32::try_from(now / 600).unwrap_or(i32::MAX), now / 3600)
}

async fn submit(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    if is_fake(&headers) {
        // Defence in depth (the proxy answers fakes): read nothing, call no one, store nothing.
        drop(body);
        return StatusCode::OK.into_response();
    }
    match handle(&state, &headers, body).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => e.into_response(),
    }
}

async fn handle(state: &AppState, headers: &HeaderMap, body: Body) -> Result<(), ApiError> {
    let bytes = read_body(
        headers,
        body,
        state.max_body_bytes,
        "application/x-protobuf",
    )
    .await?;
    let tan = headers
        .get("cwa-authorization")
        .ok_or(ApiError::bad_request("missing_authorization"))?
        .to_str()
        .ok()
        .and_then(|t| Tan::from_authorization_header(t).ok())
        .ok_or(ApiError::new(StatusCode::FORBIDDEN, "tan_not_valid"))?;
    let payload =
        SubmissionPayload::decode(bytes).map_err(|_| ApiError::bad_request("invalid_payload"))?;
    let (now_interval, now_hour) = clock();
    let submission = validate(&payload, &state.rules, now_interval).map_err(|r| {
        outcome("invalid");
        ApiError::bad_request(r.reason())
    })?;

    let reservation = state.tans.reserve(&tan).await.map_err(|e| match e {
        TanError::Refused => {
            outcome("tan_refused");
            ApiError::new(StatusCode::FORBIDDEN, "tan_not_valid")
        }
        TanError::Unavailable => ApiError::unavailable(),
    })?;
    match state.store.store(&submission, now_hour).await {
        Ok(stored) => {
            metrics::counter!("openwarn_diagnosis_keys_stored_total").increment(stored as u64);
        }
        Err(e) => {
            tracing::warn!(error = %e, "storing keys failed; giving the TAN back");
            state.tans.release(&tan, &reservation).await;
            outcome("storage_failed");
            return Err(ApiError::unavailable());
        }
    }
    if let Err(e) = state.tans.commit(&tan, &reservation).await {
        // The keys are stored; the reservation lapses by itself, so the user is never stranded.
        tracing::warn!(?e, "keys stored but the TAN could not be committed");
        metrics::counter!("openwarn_tan_commit_failures_total").increment(1);
    }
    outcome("stored");
    Ok(())
}
