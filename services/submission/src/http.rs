//! `POST /version/v1/diagnosis-keys`: validate (spends nothing), reserve the TAN, store every key
//! in one transaction, commit the TAN — or release it when storing failed. Either the keys are
//! stored and the TAN is spent, or nothing is stored and the TAN stays usable.

use crate::rules::{Rules, validate};
use crate::store::{PendingCommit, Store, Stored};
use crate::tans::{TanError, Tans};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use openwarn_bootstrap::http::{ApiError, FAKE_HEADER, is_fake, read_body};
use openwarn_bootstrap::lifecycle::Routes;
use openwarn_domain::Tan;
use openwarn_protocol::Message;
use openwarn_protocol::cwa::SubmissionPayload;
use std::sync::Arc;

pub struct AppState {
    pub store: Store,
    pub rules: Rules,
    pub max_body_bytes: usize,
}

/// The upload route. `tans` makes each worker its own client of verification: a gRPC client
/// lives on the runtime that made it, so a worker's own keeps each upload on its thread.
pub fn routes(state: Arc<AppState>, tans: impl Fn() -> Tans + Send + Sync + 'static) -> Routes {
    let state = web::Data::from(state);
    Routes::new(move |config| {
        config
            .app_data(state.clone())
            .app_data(web::Data::new(tans()))
            .service(web::resource("/version/v1/diagnosis-keys").route(web::post().to(submit)));
    })
}

/// A `SubmissionPayload` in protocol buffer encoding.
#[derive(utoipa::ToSchema)]
#[allow(
    dead_code,
    reason = "describes the request in the API description; read as bytes"
)]
#[schema(value_type = String, format = Binary)]
struct ProtobufBody(Vec<u8>);

/// An error: a short machine-readable reason.
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "describes the answer in the API description")]
struct SubmissionError {
    error: String,
}

/// The upload API's description (served at `/openapi.json` on the admin port).
pub fn api() -> utoipa::openapi::OpenApi {
    use utoipa::OpenApi;
    #[derive(OpenApi)]
    #[openapi(
        info(
            title = "OpenWarn submission: upload API",
            description = "How the app uploads the diagnosis keys of a person who tested \
positive, through the proxy, with a TAN from verification. Wire-compatible with the \
Corona-Warn-App submission server (differences: docs/API-COMPATIBILITY.md). Either every key \
of an upload is stored and the TAN is spent, or nothing is stored and the TAN stays usable.",
        ),
        paths(submit),
        components(schemas(ProtobufBody, SubmissionError))
    )]
    struct Api;
    Api::openapi()
}

fn outcome(name: &'static str) {
    metrics::counter!("openwarn_submissions_total", "outcome" => name).increment(1);
}

/// The current 10-minute interval number and hour since the epoch.
fn clock() -> (i32, i64) {
    let now = openwarn_bootstrap::lifecycle::unix_now();
    (i32::try_from(now / 600).unwrap_or(i32::MAX), now / 3600)
}

#[utoipa::path(
    post,
    path = "/version/v1/diagnosis-keys",
    params(
        ("cwa-authorization" = String, Header, description = "The TAN (a UUID) from verification"),
        ("cwa-fake" = String, Header, description = "`0` for a real upload; anything else marks a fake (cover) upload: answered 200, nothing stored. Required, as in CWA (400 `missing_fake_header` without it)"),
    ),
    request_body(content = ProtobufBody, content_type = "application/x-protobuf",
        description = "A `SubmissionPayload` (cwa-server's protocol buffer): keys, visited countries, origin, consent, submission type"),
    responses(
        (status = 200, description = "Every key stored; the TAN is spent"),
        (status = 400, description = "`invalid_payload`, `missing_fake_header`, `missing_authorization` (absent or empty) or a rule the keys break (e.g. `too_many_keys`, `invalid_report_type`); nothing stored", body = SubmissionError),
        (status = 403, description = "`tan_not_valid`: unknown, expired or spent TAN", body = SubmissionError),
        (status = 413, description = "`payload_too_large`", body = SubmissionError),
        (status = 415, description = "`unsupported_media_type`: not `application/x-protobuf`", body = SubmissionError),
        (status = 503, description = "`dependency_unavailable`: nothing stored, the TAN stays usable; retry later", body = SubmissionError),
    ),
)]
async fn submit(
    state: web::Data<AppState>,
    tans: web::Data<Tans>,
    request: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    if request.headers().get(FAKE_HEADER).is_none() {
        // CWA routes by the header's value (`0` real, anything else fake) and has no route for
        // a request without it.
        return Err(ApiError::bad_request("missing_fake_header"));
    }
    if is_fake(&request) {
        // Defence in depth (the proxy answers fakes): read nothing, call no one, store nothing.
        drop(body);
        return Ok(HttpResponse::Ok().finish());
    }
    handle(&state, &tans, &request, body).await?;
    Ok(HttpResponse::Ok().finish())
}

async fn handle(
    state: &AppState,
    tans: &Tans,
    request: &HttpRequest,
    body: web::Payload,
) -> Result<(), ApiError> {
    let bytes = read_body(
        request,
        body,
        state.max_body_bytes,
        "application/x-protobuf",
    )
    .await?;
    let tan = request
        .headers()
        .get("cwa-authorization")
        .filter(|v| !v.is_empty())
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

    let reservation = tans.reserve(&tan).await.map_err(|e| match e {
        TanError::Refused => {
            outcome("tan_refused");
            ApiError::new(StatusCode::FORBIDDEN, "tan_not_valid")
        }
        TanError::Unavailable => ApiError::unavailable(),
    })?;
    let commit = PendingCommit {
        tan: tan.expose().to_owned(),
        reservation_id: reservation.clone(),
        created_at: openwarn_bootstrap::lifecycle::unix_now(),
    };
    match state.store.store(&submission, now_hour, commit).await {
        Ok(Stored::Keys(stored)) => {
            metrics::counter!("openwarn_diagnosis_keys_stored_total").increment(stored as u64);
        }
        Ok(Stored::TanAlreadyUsed) => {
            // Its keys are stored and verification has not confirmed the spending yet (e.g. the
            // reservation lapsed meanwhile): this TAN never stores keys again.
            tans.release(&tan, &reservation).await;
            outcome("tan_refused");
            return Err(ApiError::new(StatusCode::FORBIDDEN, "tan_not_valid"));
        }
        Err(e) => {
            tracing::warn!(error = %e, "storing keys failed; giving the TAN back");
            tans.release(&tan, &reservation).await;
            outcome("storage_failed");
            return Err(ApiError::unavailable());
        }
    }
    match tans.commit(&tan, &reservation).await {
        Ok(()) => {
            if let Err(e) = state.store.commit_confirmed(tan.expose().to_owned()).await {
                // The pending commit stays; the retry job confirms it again and removes it.
                tracing::warn!(error = %e, "TAN spent, but its pending commit could not be removed");
            }
        }
        Err(e) => {
            // The keys and the pending commit are stored: the retry job commits until
            // verification confirms, and meanwhile the TAN can store nothing again.
            tracing::warn!(?e, "keys stored but the TAN could not be committed yet");
            metrics::counter!("openwarn_tan_commit_failures_total").increment(1);
        }
    }
    outcome("stored");
    Ok(())
}
