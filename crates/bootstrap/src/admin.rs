//! The admin port: `/healthz` (the process runs), `/readyz` (its dependencies answer) and
//! Prometheus `/metrics`. Metric labels never carry client data: route templates and status codes.

use crate::telemetry::TraceOrigin;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{HttpResponse, web};
use futures::future::BoxFuture;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::{Arc, OnceLock};
use std::time::Instant;
use tracing::Instrument;

/// Answers `Ok` when the service can serve, or the reason it cannot.
pub type ReadinessCheck = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// The process-wide Prometheus recorder (installed on first use), with every metric's help text
/// and buckets from [`crate::catalogue`].
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = recorder_builder().build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed in tests; ours still renders its own data.
            if metrics::set_global_recorder(recorder).is_ok() {
                crate::catalogue::describe();
                spawn_upkeep(handle.clone());
            }
            handle
        })
        .clone()
}

/// How often the recorder's histogram samples are folded into their buckets.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Folds recorded histogram samples into their buckets every [`UPKEEP_EVERY`]. The recorder
/// otherwise keeps every sample until `/metrics` is scraped: a service nobody scrapes grew by
/// every request it served (the soak in docs/PERFORMANCE.md: the proxy 22 → 55 MiB and
/// distribution 37 → 82 MiB in 10 minutes). A thread of its own, since the recorder may be
/// installed before (or without) a runtime.
fn spawn_upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || {
            loop {
                #[allow(
                    clippy::disallowed_methods,
                    reason = "a dedicated thread that only waits between upkeeps"
                )]
                std::thread::sleep(UPKEEP_EVERY);
                handle.run_upkeep();
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the metrics upkeep thread");
    }
}

/// A Prometheus recorder with each histogram's buckets from the catalogue.
fn recorder_builder() -> PrometheusBuilder {
    use metrics_exporter_prometheus::Matcher;
    crate::catalogue::METRICS
        .iter()
        .filter_map(|m| Some((m.name, m.buckets?)))
        .try_fold(PrometheusBuilder::new(), |builder, (name, buckets)| {
            builder.set_buckets_for_metric(Matcher::Full(name.to_owned()), buckets)
        })
        .unwrap_or_else(|e| {
            // Unreachable (the catalogue's buckets are non-empty, tested); should it happen,
            // histograms are still recorded, as summaries.
            tracing::error!(error = %e, "histogram buckets rejected");
            PrometheusBuilder::new()
        })
}

/// What an admin port serves besides health and metrics.
#[derive(Clone)]
pub struct Admin {
    ready: ReadinessCheck,
    openapi: Option<web::Bytes>,
    extra: Option<crate::lifecycle::Routes>,
}

impl Admin {
    /// `/healthz`, `/readyz` (answered by `ready`) and `/metrics`.
    pub fn new(ready: ReadinessCheck) -> Self {
        Self {
            ready,
            openapi: None,
            extra: None,
        }
    }

    /// Also serves the service's API description at `GET /openapi.json`.
    #[must_use]
    pub fn openapi(mut self, api: &utoipa::openapi::OpenApi) -> Self {
        // A description built from the handlers' annotations always serializes (string keys,
        // into memory); should it not, the endpoint answers 404 rather than the port failing.
        self.openapi = serde_json::to_vec(api).ok().map(web::Bytes::from);
        self
    }

    /// Also serves `routes` (e.g. distribution's manual runs), untracked like the rest.
    #[must_use]
    pub fn routes(mut self, routes: crate::lifecycle::Routes) -> Self {
        self.extra = Some(routes);
        self
    }

    /// Adds the admin routes to an app.
    pub fn configure(&self, config: &mut web::ServiceConfig) {
        let handle = metrics_handle();
        let ready = self.ready.clone();
        config
            .route("/healthz", web::get().to(|| async { "ok" }))
            .route("/readyz", web::get().to(move || readyz(ready.clone())))
            .route(
                "/metrics",
                web::get().to(move || {
                    crate::process::sample();
                    std::future::ready(handle.render())
                }),
            );
        if let Some(api) = self.openapi.clone() {
            config.route(
                "/openapi.json",
                web::get().to(move || {
                    std::future::ready(
                        HttpResponse::Ok()
                            .content_type("application/json")
                            .body(api.clone()),
                    )
                }),
            );
        }
        if let Some(extra) = &self.extra {
            extra.configure(config);
        }
    }
}

async fn readyz(ready: ReadinessCheck) -> HttpResponse {
    match ready().await {
        Ok(()) => HttpResponse::Ok().body("ready"),
        Err(reason) => {
            tracing::warn!(%reason, "not ready");
            HttpResponse::build(StatusCode::SERVICE_UNAVAILABLE)
                .body(format!("not ready: {reason}"))
        }
    }
}

/// Methods that become metric labels as themselves; any other is counted as `other`, so that
/// invented methods cannot create new series.
fn method_label(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

/// Middleware that counts requests and their latency by route template and status, and runs each
/// request in a server span continuing the caller's trace (internal ports).
pub async fn track_http(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    track(request, next, TraceOrigin::Continue).await
}

/// Like [`track_http`] for internet-facing ports: every request starts a new trace.
pub async fn track_public_http(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    track(request, next, TraceOrigin::New).await
}

async fn track(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
    origin: TraceOrigin,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let route = request
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = method_label(request.method());
    let span = crate::telemetry::http_server_span(&request, &route, method, origin);
    let started = Instant::now();
    let response = next.call(request).instrument(span.clone()).await?;
    span.record("http.response.status_code", response.status().as_u16());
    let status = response.status().as_u16().to_string();
    metrics::counter!("openwarn_http_requests_total", "route" => route.clone(), "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!("openwarn_http_request_duration_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invented_methods_share_one_label() {
        use actix_web::http::Method;
        assert_eq!(method_label(&Method::POST), "POST");
        for invented in ["FOO", "BREW", "X-1"] {
            assert_eq!(
                method_label(&Method::from_bytes(invented.as_bytes()).unwrap()),
                "other"
            );
        }
    }

    /// Every metric gets its `# HELP` and a histogram its catalogue's buckets.
    #[test]
    fn metrics_render_with_help_and_their_buckets() {
        let handle = metrics_handle();
        metrics::histogram!("openwarn_db_batch_items", "batch" => "t").record(700.0);
        metrics::histogram!("openwarn_distribution_run_seconds").record(400.0);
        metrics::counter!("openwarn_registrations_total").increment(1);
        crate::process::sample();
        let text = handle.render();
        for metric in crate::catalogue::METRICS.iter().filter(|m| {
            [
                "openwarn_db_batch_items",
                "openwarn_distribution_run_seconds",
                "openwarn_registrations_total",
            ]
            .contains(&m.name)
        }) {
            assert!(
                text.contains(&format!("# HELP {} {}", metric.name, metric.help)),
                "{}: {text}",
                metric.name
            );
        }
        assert!(
            text.contains("openwarn_db_batch_items_bucket{batch=\"t\",le=\"1000\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("openwarn_db_batch_items_bucket{batch=\"t\",le=\"500\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("openwarn_distribution_run_seconds_bucket{le=\"600\"} 1"),
            "{text}"
        );
        #[cfg(target_os = "linux")]
        for name in [
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_cpu_seconds_total",
        ] {
            assert!(text.contains(&format!("# HELP {name} ")), "{name}: {text}");
        }
    }
}
