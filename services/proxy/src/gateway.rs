//! The request path: route → rate limit → read the whole body (size cap, read timeout) → answer a
//! fake here, or forward a real request with only allow-listed headers over pooled mutual-TLS
//! connections, and return only allow-listed response headers.

use crate::ratelimit::Limiter;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use openwarn_bootstrap::http::{
    AppAnswer, FAKE_HEADER, LatencyReservoir, is_fake_value, padded_json,
};
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};
use tracing::Instrument;

pub type HttpsClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

/// Request headers that reach a backend. Everything else (X-Forwarded-For, Forwarded, X-Real-IP,
/// User-Agent, Cookie, Via, traceparent, tracestate, …) stays here; the proxy adds its own
/// `traceparent` (a new trace per request, see `Gateway::handle`).
pub static FORWARDED_REQUEST_HEADERS: [HeaderName; 3] = [
    header::CONTENT_TYPE,
    HeaderName::from_static("cwa-authorization"),
    HeaderName::from_static("cwa-fake"),
];

/// Response headers that reach the app.
pub static FORWARDED_RESPONSE_HEADERS: [HeaderName; 2] =
    [header::CONTENT_TYPE, header::RETRY_AFTER];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upstream {
    Verification,
    Submission,
}

impl Upstream {
    /// The backend's metric label.
    fn label(self) -> &'static str {
        match self {
            Self::Verification => "verification",
            Self::Submission => "submission",
        }
    }
}

/// What a real success on a route looked like: a fake gets the same status, content type and
/// body length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub status: StatusCode,
    pub content_type: Option<HeaderValue>,
    pub length: usize,
}

#[derive(Debug)]
pub struct Route {
    pub path: &'static str,
    pub upstream: Upstream,
    pub max_body: usize,
    pub reservoir: LatencyReservoir,
    pub template: Mutex<Template>,
    /// What a real success answers (`None`: an empty body), and so a fake's fields.
    pub answer: Option<AppAnswer>,
}

impl Route {
    fn new(
        path: &'static str,
        upstream: Upstream,
        max_body: usize,
        template: Template,
        answer: Option<AppAnswer>,
        limits: &Limits,
    ) -> Self {
        let fallback = Duration::from_millis(20);
        let reservoir = match limits.fake_seed {
            Some(seed) => {
                LatencyReservoir::seeded(limits.reservoir_size, fallback, seed ^ path.len() as u64)
            }
            None => LatencyReservoir::new(limits.reservoir_size, fallback),
        };
        Self {
            path,
            upstream,
            max_body,
            reservoir,
            template: Mutex::new(template),
            answer,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_submission_bytes: usize,
    pub max_verification_bytes: usize,
    pub read_timeout: Duration,
    pub upstream_timeout: Duration,
    pub reservoir_size: usize,
    pub fake_seed: Option<u64>,
    /// Length of every answer body on a known route (see [`pad`]); verification pads its own
    /// answers to the same length.
    pub verification_response_length: usize,
}

pub struct Gateway {
    pub routes: Vec<Route>,
    pub client: HttpsClient,
    pub verification: String,
    pub submission: String,
    pub limiter: Limiter,
    pub limits: Limits,
    /// Header an ingress in front of the proxy puts the client address in (rightmost entry).
    pub client_address_header: Option<HeaderName>,
    /// Sub-millisecond sleeps for fakes.
    pub timer: openwarn_bootstrap::http::PreciseTimer,
}

fn json_template(status: StatusCode, length: usize) -> Template {
    Template {
        status,
        content_type: Some(HeaderValue::from_static("application/json")),
        length,
    }
}

pub fn routes(limits: &Limits) -> Vec<Route> {
    let v = limits.verification_response_length;
    let n = limits;
    vec![
        Route::new(
            "/version/v1/registrationToken",
            Upstream::Verification,
            limits.max_verification_bytes,
            json_template(StatusCode::CREATED, v),
            Some(AppAnswer::RegistrationToken),
            n,
        ),
        Route::new(
            "/version/v1/testresult",
            Upstream::Verification,
            limits.max_verification_bytes,
            json_template(StatusCode::OK, v),
            Some(AppAnswer::TestResult),
            n,
        ),
        Route::new(
            "/version/v1/tan",
            Upstream::Verification,
            limits.max_verification_bytes,
            json_template(StatusCode::CREATED, v),
            Some(AppAnswer::Tan),
            n,
        ),
        Route::new(
            "/version/v1/diagnosis-keys",
            Upstream::Submission,
            limits.max_submission_bytes,
            Template {
                status: StatusCode::OK,
                content_type: None,
                length: 0,
            },
            None,
            n,
        ),
    ]
}

fn error(status: StatusCode, reason: &'static str) -> Response<Full<Bytes>> {
    metrics::counter!("openwarn_proxy_refused_total", "reason" => reason).increment(1);
    let mut response = Response::new(Full::new(Bytes::from(format!(
        "{{\"error\":\"{reason}\"}}"
    ))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn retry_after(secs: u64) -> Response<Full<Bytes>> {
    let mut response = error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    response
}

/// A body shaped like the route's real successes (`fields`, padded), of exactly the recorded
/// length.
fn fake_body(template: &Template, fields: &serde_json::Map<String, serde_json::Value>) -> Bytes {
    if template.length == 0 {
        return Bytes::new();
    }
    let is_json = template
        .content_type
        .as_ref()
        .is_some_and(|c| c.as_bytes().starts_with(b"application/json"));
    let mut body = if is_json {
        padded_json(fields, template.length)
    } else {
        Vec::new()
    };
    body.resize(template.length, b' ');
    Bytes::from(body)
}

impl Gateway {
    fn client_ip(&self, headers: &HeaderMap, peer: IpAddr) -> IpAddr {
        self.client_address_header
            .as_ref()
            .and_then(|name| headers.get_all(name).iter().next_back())
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(peer)
    }

    /// Handles one request. `peer` is used for the rate-limit key only and never kept. Every
    /// answer on a known route has the same body length and content type (see [`pad`]).
    ///
    /// Each request starts a new trace (a phone's `traceparent` is never continued nor
    /// forwarded) and is counted by route, kind (real or fake: internal labels, never visible to
    /// phones) and status.
    pub async fn handle(&self, request: Request<Incoming>, peer: IpAddr) -> Response<Full<Bytes>> {
        let started = Instant::now();
        let route = self.route(&request);
        let label = route.as_ref().map_or("unmatched", |r| r.path);
        let kind = if is_fake_value(
            request
                .headers()
                .get(FAKE_HEADER)
                .map(http::HeaderValue::as_bytes),
        ) {
            "fake"
        } else {
            "real"
        };
        let span = tracing::info_span!(
            parent: None,
            "proxy",
            otel.kind = "server",
            http.route = label,
            http.response.status_code = tracing::field::Empty,
        );
        let answered = async {
            let response = match route {
                Ok(route) => match self.answer(route, request, peer).await {
                    Ok(response) => response,
                    Err(refusal) => refusal.into_response(),
                },
                Err(refusal) => refusal.into_response(),
            };
            pad(response, self.limits.verification_response_length)
        }
        .instrument(span.clone())
        .await;
        let status = answered.status().as_u16();
        span.record("http.response.status_code", status);
        metrics::counter!(
            "openwarn_proxy_requests_total",
            "route" => label,
            "kind" => kind,
            "status" => status.to_string()
        )
        .increment(1);
        metrics::histogram!(
            "openwarn_proxy_request_duration_seconds",
            "route" => label,
            "kind" => kind
        )
        .record(started.elapsed().as_secs_f64());
        answered
    }

    async fn answer(
        &self,
        route: &Route,
        request: Request<Incoming>,
        peer: IpAddr,
    ) -> Result<Response<Full<Bytes>>, Refusal> {
        let started = Instant::now();
        self.rate_limit(request.headers(), peer).await?;
        let (parts, body) = request.into_parts();
        let body = read_body(
            &parts.headers,
            body,
            route.max_body,
            self.limits.read_timeout,
        )
        .await?;
        if is_fake_value(
            parts
                .headers
                .get(FAKE_HEADER)
                .map(http::HeaderValue::as_bytes),
        ) {
            return Ok(self.fake(route, started).await);
        }
        let (answer, answer_body) = self.forward(route, &parts.headers, body).await?;
        Ok(relay(route, answer, answer_body, started))
    }

    /// The route of the request's path: 404 for any other path, 405 for any method but POST.
    fn route(&self, request: &Request<Incoming>) -> Result<&Route, Refusal> {
        let route = self
            .routes
            .iter()
            .find(|r| r.path == request.uri().path())
            .ok_or(Refusal::Error(StatusCode::NOT_FOUND, "not_found"))?;
        if request.method() != Method::POST {
            return Err(Refusal::Error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
            ));
        }
        Ok(route)
    }

    async fn rate_limit(&self, headers: &HeaderMap, peer: IpAddr) -> Result<(), Refusal> {
        let now = u64::try_from(openwarn_bootstrap::lifecycle::unix_now()).unwrap_or(0);
        match self.limiter.check(self.client_ip(headers, peer), now).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(limited)) => Err(Refusal::RateLimited {
                retry_after_secs: limited.retry_after_secs,
            }),
            Err(e) => {
                // Failing open: an outage of the counter store must not lock every phone out.
                metrics::counter!("openwarn_proxy_rate_limit_unavailable_total").increment(1);
                tracing::warn!(error = %e, "rate limit store unavailable; request let through");
                Ok(())
            }
        }
    }

    /// A fake request's answer, shaped like the route's last real success, returned once a
    /// latency drawn from the route's real ones has passed since the request arrived.
    async fn fake(&self, route: &Route, started: Instant) -> Response<Full<Bytes>> {
        // Build the answer first: only then wait, until the drawn latency has passed.
        let template = route
            .template
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let fields = route.answer.map(AppAnswer::fake_fields).unwrap_or_default();
        let mut response = Response::new(Full::new(fake_body(&template, &fields)));
        *response.status_mut() = template.status;
        if let Some(content_type) = template.content_type {
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, content_type);
        }
        self.timer
            .sleep_until(started + route.reservoir.sample())
            .await;
        response
    }

    /// Sends a real request to the route's backend with only the allow-listed headers; the
    /// backend's whole answer.
    async fn forward(
        &self,
        route: &Route,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<(http::response::Parts, Bytes), Refusal> {
        let base = match route.upstream {
            Upstream::Verification => &self.verification,
            Upstream::Submission => &self.submission,
        };
        let mut upstream = Request::builder()
            .method(Method::POST)
            .uri(format!("{base}{}", route.path));
        for name in &FORWARDED_REQUEST_HEADERS {
            for value in headers.get_all(name) {
                upstream = upstream.header(name, value);
            }
        }
        let mut upstream = upstream
            .body(Full::new(body))
            .map_err(|_| Refusal::Error(StatusCode::BAD_REQUEST, "invalid_request"))?;
        let backend = route.upstream.label();
        let span = tracing::info_span!("upstream", otel.kind = "client", upstream = backend);
        // The proxy's own trace context, after the allow-list: the phone's never passes.
        span.in_scope(|| {
            openwarn_bootstrap::telemetry::inject_trace_context(upstream.headers_mut())
        });
        let started = Instant::now();
        let answer = tokio::time::timeout(self.limits.upstream_timeout, async {
            let response = self.client.request(upstream).await?;
            let (parts, body) = response.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((parts, body))
        })
        .instrument(span)
        .await;
        let outcome = match &answer {
            Ok(Ok(_)) => "answered",
            Ok(Err(_)) => "unavailable",
            Err(_) => "timeout",
        };
        metrics::histogram!(
            "openwarn_proxy_upstream_duration_seconds",
            "upstream" => backend,
            "outcome" => outcome
        )
        .record(started.elapsed().as_secs_f64());
        match answer {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, upstream = ?route.upstream, "upstream unavailable");
                Err(Refusal::UNAVAILABLE)
            }
            Err(_) => {
                tracing::warn!(upstream = ?route.upstream, "upstream timed out");
                Err(Refusal::UNAVAILABLE)
            }
        }
    }
}

/// A request the proxy answers itself with an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// The status and the `error` of the JSON body.
    Error(StatusCode, &'static str),
    /// 429 with `Retry-After`.
    RateLimited { retry_after_secs: u64 },
}

impl Refusal {
    const UNAVAILABLE: Self =
        Self::Error(StatusCode::SERVICE_UNAVAILABLE, "dependency_unavailable");

    fn into_response(self) -> Response<Full<Bytes>> {
        match self {
            Self::Error(status, reason) => error(status, reason),
            Self::RateLimited { retry_after_secs } => retry_after(retry_after_secs),
        }
    }
}

/// The answer with a JSON body of exactly `length` bytes: an object gets (or has its)
/// `responsePadding` string sized to fit, an empty body becomes `{"responsePadding":"…"}`. So a
/// failed real upload, a success, a fake and the proxy's own refusal on a route look alike but
/// for the status line (and `Retry-After` on 429/503). A body already of that length is left as
/// it is (verification pads its own); one that is longer, or not a JSON object, too.
fn pad(response: Response<Full<Bytes>>, length: usize) -> Response<Full<Bytes>> {
    let (mut parts, body) = response.into_parts();
    // `Full` is one chunk: its bytes are already here.
    let body = body.into_inner().unwrap_or_default();
    if body.len() >= length {
        return Response::from_parts(parts, Full::new(body));
    }
    let object = if body.is_empty() {
        Some(serde_json::Map::new())
    } else {
        serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&body).ok()
    };
    let Some(mut object) = object else {
        return Response::from_parts(parts, Full::new(body));
    };
    object.remove("responsePadding");
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Full::new(Bytes::from(padded_json(&object, length))))
}

/// Reads the whole body, within the route's size cap and the read timeout.
async fn read_body(
    headers: &HeaderMap,
    body: Incoming,
    max_body: usize,
    read_timeout: Duration,
) -> Result<Bytes, Refusal> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > max_body) {
        return Err(Refusal::Error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ));
    }
    match tokio::time::timeout(read_timeout, Limited::new(body, max_body).collect()).await {
        Err(_) => Err(Refusal::Error(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
        )),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(Refusal::Error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        )),
        Ok(Err(_)) => Err(Refusal::Error(StatusCode::BAD_REQUEST, "unreadable_body")),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

/// The backend's answer with only the allow-listed headers. A success becomes the route's
/// template for fakes, and its latency one the fakes draw from.
fn relay(
    route: &Route,
    parts: http::response::Parts,
    body: Bytes,
    started: Instant,
) -> Response<Full<Bytes>> {
    let succeeded = parts.status.is_success();
    if succeeded {
        *route
            .template
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Template {
            status: parts.status,
            content_type: parts.headers.get(header::CONTENT_TYPE).cloned(),
            length: body.len(),
        };
    }
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = parts.status;
    for name in &FORWARDED_RESPONSE_HEADERS {
        if let Some(value) = parts.headers.get(name) {
            response.headers_mut().insert(name, value.clone());
        }
    }
    drop(parts);
    if succeeded {
        // Timed as late as the handler can: a fake returns its answer when the drawn latency
        // has passed, so a real one's latency covers everything up to its own return.
        route.reservoir.record(started.elapsed());
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_bodies_have_the_recorded_length() {
        let json = json_template(StatusCode::CREATED, 320);
        let body = fake_body(&json, &AppAnswer::Tan.fake_fields());
        assert_eq!(body.len(), 320);
        let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(
            parsed["tan"]
                .as_str()
                .unwrap()
                .parse::<openwarn_domain::Tan>()
                .is_ok()
        );
        assert_eq!(
            fake_body(
                &Template {
                    status: StatusCode::OK,
                    content_type: None,
                    length: 0
                },
                &serde_json::Map::new()
            )
            .len(),
            0
        );
        assert_eq!(
            fake_body(
                &Template {
                    status: StatusCode::OK,
                    content_type: None,
                    length: 7
                },
                &serde_json::Map::new()
            )
            .len(),
            7
        );
        assert_eq!(
            fake_body(&json_template(StatusCode::OK, 5), &serde_json::Map::new()).len(),
            5,
            "even below a JSON object's size"
        );
    }

    /// Each route's fakes carry the fields its real success has (the fields themselves:
    /// `AppAnswer`'s test), padded to the template's length.
    #[test]
    fn each_route_fakes_its_own_answer() {
        let limits = Limits {
            max_submission_bytes: 100,
            max_verification_bytes: 100,
            read_timeout: Duration::from_secs(1),
            upstream_timeout: Duration::from_secs(1),
            reservoir_size: 1,
            fake_seed: Some(1),
            verification_response_length: 320,
        };
        let answers: Vec<(&str, Option<AppAnswer>)> =
            routes(&limits).iter().map(|r| (r.path, r.answer)).collect();
        assert_eq!(
            answers,
            [
                (
                    "/version/v1/registrationToken",
                    Some(AppAnswer::RegistrationToken)
                ),
                ("/version/v1/testresult", Some(AppAnswer::TestResult)),
                ("/version/v1/tan", Some(AppAnswer::Tan)),
                ("/version/v1/diagnosis-keys", None),
            ]
        );
        for route in routes(&limits) {
            let template = route.template.lock().unwrap().clone();
            let fields = route.answer.map(AppAnswer::fake_fields).unwrap_or_default();
            let body = fake_body(&template, &fields);
            assert_eq!(body.len(), template.length, "{}", route.path);
            if let Some(answer) = route.answer {
                // Two `http` generations (hyper's and actix-web's): compared by number.
                assert_eq!(template.status.as_u16(), answer.success().as_u16());
                let parsed: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_slice(&body).unwrap();
                for field in fields.keys() {
                    assert!(parsed.contains_key(field), "{} {field}", route.path);
                }
            }
        }
    }

    #[test]
    fn forwarded_headers_are_only_the_allow_list() {
        let names: Vec<&str> = FORWARDED_REQUEST_HEADERS
            .iter()
            .map(HeaderName::as_str)
            .collect();
        assert_eq!(names, ["content-type", "cwa-authorization", "cwa-fake"]);
        for forbidden in [
            "x-forwarded-for",
            "forwarded",
            "x-real-ip",
            "user-agent",
            "cookie",
            "via",
            "traceparent",
            "tracestate",
        ] {
            assert!(!names.contains(&forbidden));
        }
    }
}
