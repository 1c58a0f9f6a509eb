//! App-facing REST, wire-compatible with the CWA verification server:
//! `POST /version/v1/registrationToken`, `/testresult`, `/tan`.
//!
//! Every response body of an endpoint — success, error or fake — is padded (`responsePadding`)
//! to the same length. A request with `cwa-fake: 1` is read like a real one (same size and type
//! checks), changes nothing, calls no one, waits a delay drawn from the endpoint's recent real
//! latencies, and gets the status and body length of a real success.

use crate::store::{Registered, Source, Store, TanIssue};
use crate::testresults::TestResults;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use openwarn_bootstrap::http::{
    ApiError, AppAnswer, LatencyReservoir, is_fake, json_response, read_json,
};
use openwarn_bootstrap::lifecycle::Routes;
use openwarn_bootstrap::lifecycle::unix_now;
use openwarn_domain::{HashedGuid, RegistrationToken, Tan, TeleTan, TestResult};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::future::Future;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub response_length: usize,
    pub tan_validity: Duration,
    pub max_tans_per_session: i32,
    /// Uploads a registration's TANs may make.
    pub max_uploads_per_session: i32,
}

/// The endpoints, by what their success answers (shared with the proxy, which answers fakes).
type Endpoint = AppAnswer;

pub struct AppState {
    store: Store,
    limits: Limits,
    reservoirs: [LatencyReservoir; 3],
}

/// The app API's routes. `test_results` makes each worker its own client of test-result: a
/// client lives on the runtime that created it, so a worker calling through its own keeps each
/// request on its thread (a shared client would wake the main runtime and back on every call).
pub fn routes(
    store: Store,
    test_results: impl Fn() -> TestResults + Send + Sync + 'static,
    limits: Limits,
) -> Routes {
    let reservoir = || LatencyReservoir::new(1024, Duration::from_millis(20));
    let state = web::Data::new(AppState {
        store,
        limits,
        reservoirs: [reservoir(), reservoir(), reservoir()],
    });
    Routes::new(move |config| {
        config
            .app_data(state.clone())
            .app_data(web::Data::new(test_results()))
            .service(
                web::resource("/version/v1/registrationToken")
                    .route(web::post().to(registration_token)),
            )
            .service(web::resource("/version/v1/testresult").route(web::post().to(test_result)))
            .service(web::resource("/version/v1/tan").route(web::post().to(tan)));
    })
}

type Outcome = Result<Map<String, Value>, ApiError>;

/// Reads the body, then answers a fake or runs the real handler; pads every answer.
async fn respond<T, F, Fut>(
    state: &AppState,
    endpoint: Endpoint,
    request: &HttpRequest,
    body: web::Payload,
    real: F,
) -> HttpResponse
where
    T: serde::de::DeserializeOwned,
    F: FnOnce(T) -> Fut,
    Fut: Future<Output = Outcome>,
{
    let started = Instant::now();
    let length = state.limits.response_length;
    let fake = is_fake(request);
    let request: T = match read_json(request, body, state.limits.max_body_bytes).await {
        Ok(r) => r,
        Err(e) => return refused(endpoint, &e, length),
    };
    let reservoir = &state.reservoirs[endpoint as usize];
    if fake {
        let delay = reservoir.sample().saturating_sub(started.elapsed());
        tokio::time::sleep(delay).await;
        return json_response(endpoint.success(), &endpoint.fake_fields(), length);
    }
    match real(request).await {
        Ok(body) => {
            reservoir.record(started.elapsed());
            json_response(endpoint.success(), &body, length)
        }
        Err(e) => refused(endpoint, &e, length),
    }
}

/// An error answer, counted by endpoint and reason (both from fixed sets, never from the
/// request): the refused-teleTAN alert reads it, since the proxy sees only its own refusals.
fn refused(endpoint: Endpoint, error: &ApiError, length: usize) -> HttpResponse {
    metrics::counter!(
        "openwarn_verification_refused_total",
        "endpoint" => endpoint.path(),
        "reason" => error.reason,
    )
    .increment(1);
    json_response(error.status, &error.body(), length)
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

/// What a phone registers: the hashed GUID of its QR code, or a teleTAN read out by a health
/// officer.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = RegistrationTokenRequest)]
struct RegistrationRequest {
    /// `GUID`: SHA-256 of the QR code's GUID, 64 hex characters (either case; stored lowercase).
    /// For a rapid test, the SHA-256 of the QR code's hash. `TELETAN`: the
    /// 10-character teleTAN.
    #[schema(required = true)]
    key: Option<String>,
    #[serde(rename = "keyType")]
    #[schema(required = true, value_type = String, pattern = "^(GUID|TELETAN)$")]
    key_type: Option<String>,
    /// With `GUID` only (ignored with `TELETAN`, as by CWA): the date-of-birth-bound id of the
    /// test, `x` and the last 63 hex characters of the SHA-256 of the GUID and the date of birth
    /// (`ddMMyyyy`). The test's result is then the lab's result for both ids, which must agree.
    #[serde(rename = "keyDob")]
    #[schema(pattern = "^[XxA-Fa-f0-9]([A-Fa-f0-9]{63})$")]
    key_dob: Option<String>,
}

/// A registration token (the answer of `registrationToken`).
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = RegistrationToken)]
struct TokenRequest {
    /// A UUID (version 4), as issued by `registrationToken`.
    #[serde(rename = "registrationToken")]
    #[schema(
        required = true,
        pattern = "^[a-f0-9]{8}-[a-f0-9]{4}-4[a-f0-9]{3}-[89aAbB][a-f0-9]{3}-[a-f0-9]{12}$"
    )]
    registration_token: Option<String>,
}

/// Every answer of this API is padded to one length per endpoint with `responsePadding`.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct RegistrationTokenResponse {
    #[schema(pattern = "^[a-f0-9]{8}-[a-f0-9]{4}-4[a-f0-9]{3}-[89aAbB][a-f0-9]{3}-[a-f0-9]{12}$")]
    registration_token: String,
    response_padding: String,
}

/// A test result: 0 pending, 1 negative, 2 positive, 3 invalid, 4 redeemed; a rapid antigen
/// test's: 5 pending, 6 negative, 7 positive, 8 invalid, 9 redeemed.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct TestResultResponse {
    #[schema(minimum = 0, maximum = 9)]
    test_result: i32,
    /// When the sample was collected (Unix seconds), if the lab said.
    sc: Option<i64>,
    /// The lab that posted the result, if known.
    lab_id: Option<String>,
    response_padding: String,
}

/// A TAN: authorizes one upload of diagnosis keys.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct TanResponse {
    #[schema(pattern = "^[a-f0-9]{8}-[a-f0-9]{4}-4[a-f0-9]{3}-[89aAbB][a-f0-9]{3}-[a-f0-9]{12}$")]
    tan: String,
    response_padding: String,
}

/// An error: a short machine-readable reason, padded like every other answer.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PaddedError {
    error: String,
    response_padding: String,
}

/// The header every endpoint of this API reads.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code, reason = "describes the request in the API description")]
struct FakeHeader {
    /// `1` for a fake (cover) request: answered like a success, changes nothing.
    #[param(rename = "cwa-fake")]
    cwa_fake: Option<String>,
}

/// The errors every endpoint of this API can answer, each padded like a success.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code, reason = "describes the answers in the API description")]
enum Refused {
    /// Refused; `error` says why.
    #[response(status = 400)]
    BadRequest(PaddedError),
    /// `payload_too_large`: body over the size limit.
    #[response(status = 413)]
    TooLarge(PaddedError),
    /// `unsupported_media_type`: not `application/json`.
    #[response(status = 415)]
    NotJson(PaddedError),
    /// `internal_error`: an error of ours (logged); nothing changed.
    #[response(status = 500)]
    Internal(PaddedError),
    /// `dependency_unavailable`: database or test-result unavailable; retry later.
    #[response(status = 503)]
    Unavailable(PaddedError),
}

/// The app API's description (served at `/openapi.json` on the admin port).
pub fn api() -> utoipa::openapi::OpenApi {
    use utoipa::OpenApi;
    #[derive(OpenApi)]
    #[openapi(
        info(
            title = "OpenWarn verification: app API",
            description = "What the app calls, through the proxy, to turn a QR code or a teleTAN \
into a registration token, poll its test result and get a TAN for one upload. Wire-compatible \
with the Corona-Warn-App verification server (differences: docs/API-COMPATIBILITY.md).\n\n\
Every answer of an endpoint (success, error or fake) has the same length: `responsePadding` fills \
it. A request with `cwa-fake: 1` is read like a real one, changes nothing and gets the status and \
length of a real success after a delay drawn from real requests.\n\n\
Example tokens: `3fa85f64-5717-4562-b3fc-2c963f66afa6` stands for the token a registration \
example returned.",
        ),
        paths(registration_token, test_result, tan),
        components(schemas(
            RegistrationRequest,
            TokenRequest,
            RegistrationTokenResponse,
            TestResultResponse,
            TanResponse,
            PaddedError
        ))
    )]
    struct Api;
    Api::openapi()
}

#[utoipa::path(
    post,
    path = "/version/v1/registrationToken",
    params(FakeHeader),
    request_body(content = RegistrationRequest, examples(
        ("201 registered with a GUID" = (summary = "The SHA-256 of a QR code's GUID", value = json!({"keyType": "GUID", "key": "75552e9d1e6ed4db4fa0b2b3a7e9f7ad9a3b5ea0dc4f2f0a2e0b8a0c0e7e4a5b"}))),
        ("400 invalid_key_type" = (value = json!({"keyType": "QRCODE", "key": "x"}))),
        ("400 missing_key" = (value = json!({"keyType": "GUID"}))),
        ("400 invalid_key" = (summary = "Not 64 hex characters", value = json!({"keyType": "GUID", "key": "not-a-hash"}))),
        ("400 invalid_key_dob" = (summary = "Not x and 63 hex characters", value = json!({"keyType": "GUID", "key": "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9", "keyDob": "x12"}))),
        ("400 invalid_teletan" = (summary = "Wrong format or check character", value = json!({"keyType": "TELETAN", "key": "ABCDEFGHIJ"}))),
    )),
    responses(
        (status = 201, description = "Registered", body = RegistrationTokenResponse),
        Refused,
    ),
)]
async fn registration_token(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: web::Payload,
) -> HttpResponse {
    respond(
        &state,
        Endpoint::RegistrationToken,
        &request,
        body,
        |r: RegistrationRequest| register(&state, r),
    )
    .await
}

async fn register(state: &AppState, request: RegistrationRequest) -> Outcome {
    let key = request.key.ok_or(ApiError::bad_request("missing_key"))?;
    // CWA's pattern, checked with either key type (CWA validates the field before the type).
    let key_dob = request
        .key_dob
        .map(HashedGuid::try_from)
        .transpose()
        .map_err(|_| ApiError::bad_request("invalid_key_dob"))?;
    let now = unix_now();
    let token = RegistrationToken::generate();
    let token_hash = token.hash();
    let outcome = match request.key_type.as_deref() {
        Some("GUID") => {
            // A SHA-256 (CWA: `^[0-9A-Fa-f]{64}$`), never a date-of-birth-bound id.
            let hashed_guid = HashedGuid::try_from(key)
                .ok()
                .filter(|g| !g.is_dob_bound())
                .ok_or(ApiError::bad_request("invalid_key"))?;
            state
                .store
                .register_guid_with_dob(token_hash, hashed_guid, key_dob, now)
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

#[utoipa::path(
    post,
    path = "/version/v1/testresult",
    params(FakeHeader),
    request_body(content = TokenRequest, examples(
        ("200 the result of a registration" = (value = json!({"registrationToken": "3fa85f64-5717-4562-b3fc-2c963f66afa6"}))),
        ("400 invalid_token" = (value = json!({"registrationToken": "not-a-token"}))),
        ("400 unknown_token" = (value = json!({"registrationToken": "9b2d5f0c-8e1a-4c3b-9f6d-2a7e4b1c0d35"}))),
    )),
    responses(
        (status = 200, description = "The test result", body = TestResultResponse),
        (status = 403, description = "`dob_mismatch`: the lab's result for the date-of-birth-bound id registered with the GUID differs from its result for the GUID (or there is none): the date of birth is wrong. Padded like every answer.", body = PaddedError),
        Refused,
    ),
)]
async fn test_result(
    state: web::Data<AppState>,
    results: web::Data<TestResults>,
    request: HttpRequest,
    body: web::Payload,
) -> HttpResponse {
    respond(
        &state,
        Endpoint::TestResult,
        &request,
        body,
        |r: TokenRequest| fetch_result(&state, &results, r),
    )
    .await
}

/// The lab's result for a GUID session. With a date-of-birth-bound id, as CWA's
/// `ExternalTestStateController`: the result for that id must equal the GUID's (test-result
/// answers pending for an id it has no result for), or the answer is 403 `dob_mismatch`.
async fn guid_result(
    results: &TestResults,
    hashed_guid: &HashedGuid,
    hashed_guid_dob: Option<&HashedGuid>,
) -> Result<crate::testresults::Fetched, ApiError> {
    let result = results.get(hashed_guid).await?;
    if let Some(dob) = hashed_guid_dob {
        let dob_result = results.get(dob).await?;
        if dob_result.result != result.result {
            return Err(ApiError::new(StatusCode::FORBIDDEN, "dob_mismatch"));
        }
    }
    Ok(result)
}

async fn fetch_result(state: &AppState, results: &TestResults, r: TokenRequest) -> Outcome {
    let (_, session) = session_of(state, r.registration_token).await?;
    let mut body = Map::new();
    match (session.source, session.hashed_guid) {
        // The session knows first that its TAN was redeemed: test-result is told off the
        // submission's path, and a poll right after the upload must not read positive. A rapid
        // test reads 9 then (CWA's QUICK_REDEEMED), any other 4.
        (Source::Guid, Some(_)) if session.tan_redeemed => {
            let redeemed = if session.rapid_test {
                TestResult::QuickRedeemed
            } else {
                TestResult::Redeemed
            };
            body.insert("testResult".into(), i32::from(redeemed).into());
        }
        (Source::Guid, Some(hashed_guid)) => {
            let result =
                guid_result(results, &hashed_guid, session.hashed_guid_dob.as_ref()).await?;
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

#[utoipa::path(
    post,
    path = "/version/v1/tan",
    params(FakeHeader),
    request_body(content = TokenRequest, examples(
        ("201 a TAN for a positive result" = (value = json!({"registrationToken": "3fa85f64-5717-4562-b3fc-2c963f66afa6"}))),
        ("400 unknown_token" = (value = json!({"registrationToken": "9b2d5f0c-8e1a-4c3b-9f6d-2a7e4b1c0d35"}))),
    )),
    responses(
        (status = 201, description = "A TAN; valid for one upload until it expires", body = TanResponse),
        (status = 403, description = "`dob_mismatch`: as for `testresult`, checked again before a TAN is issued. Padded like every answer.", body = PaddedError),
        Refused,
    ),
)]
async fn tan(
    state: web::Data<AppState>,
    results: web::Data<TestResults>,
    request: HttpRequest,
    body: web::Payload,
) -> HttpResponse {
    respond(&state, Endpoint::Tan, &request, body, |r: TokenRequest| {
        issue_tan(&state, &results, r)
    })
    .await
}

async fn issue_tan(state: &AppState, results: &TestResults, r: TokenRequest) -> Outcome {
    let (token_hash, session) = session_of(state, r.registration_token).await?;
    if session.uploads >= state.limits.max_uploads_per_session {
        return Err(ApiError::bad_request("tan_already_redeemed"));
    }
    if session.tans_issued >= state.limits.max_tans_per_session {
        return Err(ApiError::bad_request("tan_quota_used"));
    }
    // After the first upload, the lab's result reads redeemed: that upload proved it positive.
    if let (Source::Guid, Some(hashed_guid), false) =
        (session.source, &session.hashed_guid, session.tan_redeemed)
    {
        // Re-checked now: a result can change (or be redeemed) after the app last polled. A
        // positive PCR or rapid test yields a TAN (CWA's `ExternalTanController`); with a
        // date-of-birth-bound id, only when its result agrees (stricter than CWA, which checks
        // the date of birth only when the result is polled).
        let result = guid_result(results, hashed_guid, session.hashed_guid_dob.as_ref()).await?;
        if !result.result.is_positive() {
            return Err(ApiError::bad_request("result_not_positive"));
        }
        if result.result.is_rapid_test() && !session.rapid_test {
            state
                .store
                .mark_rapid_test(token_hash.clone())
                .await
                .map_err(|e| db_error(&e))?;
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
            state.limits.max_uploads_per_session,
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
        TanIssue::InUse => Err(ApiError::bad_request("tan_in_use")),
    }
}

#[cfg(test)]
mod api_tests {
    #![allow(clippy::unwrap_used, reason = "unit test")]

    #[test]
    fn every_route_is_described_with_its_header_and_errors() {
        let api = serde_json::to_value(super::api()).unwrap();
        for path in ["registrationToken", "testresult", "tan"] {
            let operation = &api["paths"][format!("/version/v1/{path}")]["post"];
            assert_eq!(operation["parameters"][0]["name"], "cwa-fake", "{path}");
            assert_eq!(operation["parameters"][0]["in"], "header", "{path}");
            for status in ["400", "413", "415", "503"] {
                assert!(
                    operation["responses"][status]["content"]["application/json"].is_object(),
                    "{path} {status}"
                );
            }
            assert!(
                operation["requestBody"]["content"]["application/json"]["examples"]
                    .as_object()
                    .is_some_and(|e| !e.is_empty()),
                "{path}"
            );
        }
    }
}
