//! The admin port: `/healthz` (the process runs), `/readyz` (its dependencies answer) and
//! Prometheus `/metrics`. Metric labels never carry client data: route templates and status codes.

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::future::BoxFuture;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// Answers `Ok` when the service can serve, or the reason it cannot.
pub type ReadinessCheck = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// Histogram buckets of every latency metric (seconds).
const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];
// `set_buckets` rejects only an empty list.
const _: () = assert!(!LATENCY_BUCKETS.is_empty());

/// The process-wide Prometheus recorder (installed on first use).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets(&LATENCY_BUCKETS)
                .unwrap_or_else(|e| {
                    // Unreachable (the buckets are a non-empty constant, checked at compile time);
                    // should it happen, latencies are still recorded, as summaries.
                    tracing::error!(error = %e, "latency histogram buckets rejected");
                    PrometheusBuilder::new()
                });
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed in tests; ours still renders its own data.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

pub fn router(ready: ReadinessCheck) -> Router {
    let handle = metrics_handle();
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz).with_state(ready))
        .route("/metrics", get(move || std::future::ready(handle.render())))
}

async fn readyz(State(ready): State<ReadinessCheck>) -> Response {
    match ready().await {
        Ok(()) => "ready".into_response(),
        Err(reason) => {
            tracing::warn!(%reason, "not ready");
            (
                http::StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {reason}"),
            )
                .into_response()
        }
    }
}

/// Middleware that counts requests and their latency by route template and status.
pub async fn track_http(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("openwarn_http_requests_total", "route" => route.clone(), "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!("openwarn_http_request_duration_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_buckets_are_accepted() {
        assert!(
            PrometheusBuilder::new()
                .set_buckets(&LATENCY_BUCKETS)
                .is_ok()
        );
    }
}
