//! Logs and traces.
//!
//! Logs are JSON lines on stderr (or text for humans, coloured only on a terminal). When `OTEL_EXPORTER_OTLP_ENDPOINT`
//! (`--otlp-endpoint`) is set, spans are also exported over OTLP/gRPC. The W3C trace context travels across internal gRPC
//! calls: [`TraceContextInterceptor`] injects it on the client, [`grpc_server_span`] picks it up.
//!
//! What is never logged: GUIDs or their hashes, registration tokens, TANs, teleTANs, keys, client
//! addresses. Code logs outcomes and counts, not request contents.

use crate::config::{LogFormat, TelemetryArgs};
use opentelemetry::propagation::Injector;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::HeaderExtractor;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::io::IsTerminal;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("invalid setting OPENWARN_LOG: {0}")]
    Filter(String),
    #[error("OTLP exporter: {0}")]
    Exporter(String),
}

/// Flushes exported spans when dropped.
#[must_use = "dropping the guard stops span export"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("telemetry: flushing spans failed: {e}");
        }
    }
}

/// `OPENWARN_LOG`: a default level and `target=level` directives (`info,openwarn_verification=debug`).
fn log_filter(directives: &str) -> Result<Targets, TelemetryError> {
    directives
        .parse()
        .map_err(|e: tracing_subscriber::filter::ParseError| TelemetryError::Filter(e.to_string()))
}

/// Installs the global subscriber for a service process. Call once, from `main`.
///
/// Spans always get W3C trace and span ids (so that JSON log lines carry `trace_id` and `span_id`
/// and internal calls carry `traceparent`); they are exported only with an OTLP endpoint.
pub fn init(service: &'static str, args: &TelemetryArgs) -> Result<TelemetryGuard, TelemetryError> {
    init_with_writer(service, args, std::io::stderr)
}

/// [`init`] with logs written to `writer` instead of stderr (tests read them).
pub fn init_with_writer<W>(
    service: &'static str,
    args: &TelemetryArgs,
    writer: W,
) -> Result<TelemetryGuard, TelemetryError>
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let filter = log_filter(&args.log_filter)?;
    let no_color = no_color_requested();
    let fmt = match args.log_format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .event_format(JsonWithTraceIds(
                tracing_subscriber::fmt::format()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(false),
            ))
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .with_writer(writer)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(colour(
                args.log_format,
                std::io::stderr().is_terminal(),
                no_color,
            ))
            .with_writer(writer)
            .boxed(),
    };
    let endpoint = args.otlp_endpoint.as_deref().filter(|e| !e.is_empty());
    let mut provider = SdkTracerProvider::builder().with_resource(
        opentelemetry_sdk::Resource::builder()
            .with_service_name(service)
            .build(),
    );
    if let Some(endpoint) = endpoint {
        use opentelemetry_otlp::WithExportConfig;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .build()
            .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
        provider = provider.with_batch_exporter(exporter);
    }
    let provider = provider.build();
    let traced = trace_filter(&filter);
    let otel = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer(service))
        .with_filter(traced);
    // A second init in the same process (tests) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(otel)
        .try_init();
    Ok(TelemetryGuard {
        provider: Some(provider),
    })
}

/// What is traced: what `OPENWARN_LOG` lets through, and OpenWarn's own spans from INFO even
/// when the logs show only warnings.
fn trace_filter(log_filter: &Targets) -> Targets {
    log_filter
        .clone()
        .with_target("openwarn", tracing::Level::INFO)
}

/// The JSON line of an event with the `trace_id` and `span_id` of the span it happened in (none
/// outside a span).
struct JsonWithTraceIds<F>(F);

impl<S, N, F> tracing_subscriber::fmt::FormatEvent<S, N> for JsonWithTraceIds<F>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
    F: tracing_subscriber::fmt::FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let mut line = String::new();
        self.0.format_event(
            ctx,
            tracing_subscriber::fmt::format::Writer::new(&mut line),
            event,
        )?;
        // The traced span the event happened in, whether or not the log filter shows spans.
        let context = tracing::Span::current().context();
        let span = opentelemetry::trace::TraceContextExt::span(&context);
        let ids = Some((
            span.span_context().trace_id(),
            span.span_context().span_id(),
        ));
        writer.write_str(&with_trace_ids(line, ids))
    }
}

/// Adds `"trace_id"` and `"span_id"` to a JSON object line (`{…}\n`); anything else unchanged.
fn with_trace_ids(
    mut line: String,
    ids: Option<(opentelemetry::TraceId, opentelemetry::SpanId)>,
) -> String {
    let Some((trace_id, span_id)) = ids else {
        return line;
    };
    if trace_id == opentelemetry::TraceId::INVALID {
        return line;
    }
    let end = line.trim_end().len();
    if !line[..end].ends_with('}') {
        return line;
    }
    let close = end - 1;
    let empty = line[..close].trim_end().ends_with('{');
    let ids = format!(
        "{}\"trace_id\":\"{trace_id}\",\"span_id\":\"{span_id}\"",
        if empty { "" } else { "," }
    );
    line.insert_str(close, &ids);
    line
}

/// Whether the environment asks programs for no colour: `NO_COLOR` set and not empty.
#[allow(
    clippy::disallowed_methods,
    reason = "NO_COLOR is the cross-program terminal convention (no-color.org), not an OpenWarn \
              setting for clap; it is read once, next to the terminal check, at start-up"
)]
fn no_color_requested() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

/// Whether logs carry ANSI colour codes: text logs on a terminal only, never in a file or a pipe
/// (or with `NO_COLOR` set, see <https://no-color.org>), and JSON logs never.
fn colour(format: LogFormat, on_terminal: bool, no_color: bool) -> bool {
    format == LogFormat::Text && on_terminal && !no_color
}

/// Injects the current span's W3C trace context into every outgoing gRPC request.
#[derive(Debug, Clone, Copy, Default)]
pub struct TraceContextInterceptor;

impl tonic::service::Interceptor for TraceContextInterceptor {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        let context = tracing::Span::current().context();
        opentelemetry::global::get_text_map_propagator(|propagator| {
            propagator.inject_context(&context, &mut MetadataInjector(request.metadata_mut()));
        });
        Ok(request)
    }
}

struct MetadataInjector<'a>(&'a mut tonic::metadata::MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(value)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            tonic::metadata::MetadataValue::try_from(value.as_str()),
        ) {
            self.0.insert(key, value);
        }
    }
}

/// Reads the W3C trace context from actix-web's request headers.
struct ActixHeaderExtractor<'a>(&'a actix_web::http::header::HeaderMap);

impl opentelemetry::propagation::Extractor for ActixHeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .keys()
            .map(actix_web::http::header::HeaderName::as_str)
            .collect()
    }
}

/// Where the trace of an incoming HTTP request comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceOrigin {
    /// Internal callers (the proxy, over mutual TLS): the request's `traceparent` is continued.
    Continue,
    /// Internet-facing ports (labs, the portal's users, the CDN): every request starts a new
    /// trace; a `traceparent` it brings is ignored.
    New,
}

/// The server span of one HTTP request on an actix-web port. `route` is the route template (never
/// the path with its values), `method` a fixed label.
pub fn http_server_span(
    request: &actix_web::dev::ServiceRequest,
    route: &str,
    method: &'static str,
    origin: TraceOrigin,
) -> tracing::Span {
    let span = tracing::info_span!(
        parent: None,
        "http",
        otel.kind = "server",
        http.route = route,
        http.request.method = method,
        http.response.status_code = tracing::field::Empty,
    );
    if origin == TraceOrigin::Continue {
        let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
            propagator.extract(&ActixHeaderExtractor(request.headers()))
        });
        let _ = span.set_parent(parent);
    }
    span
}

/// Writes the current span's W3C trace context (`traceparent`; `tracestate` only when it has
/// entries) into outgoing HTTP headers.
pub fn inject_trace_context(headers: &mut http::HeaderMap) {
    let context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut NonEmptyHeaders(headers));
    });
}

/// Sets only headers with a value.
struct NonEmptyHeaders<'a>(&'a mut http::HeaderMap);

impl Injector for NonEmptyHeaders<'_> {
    fn set(&mut self, key: &str, value: String) {
        if !value.is_empty() {
            opentelemetry_http::HeaderInjector(self.0).set(key, value);
        }
    }
}

/// The span of one incoming gRPC call, child of the caller's span when it sent a trace context.
/// Use with `tower_http::trace::TraceLayer::new_for_grpc().make_span_with(grpc_server_span)`.
pub fn grpc_server_span<B>(request: &http::Request<B>) -> tracing::Span {
    let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&HeaderExtractor(request.headers()))
    });
    let span =
        tracing::info_span!("grpc", rpc.method = %request.uri().path(), otel.kind = "server");
    let _ = span.set_parent(parent);
    span
}

/// The tracing layer of internal gRPC servers.
pub type GrpcTraceLayer = tower_http::trace::TraceLayer<
    tower_http::classify::SharedClassifier<tower_http::classify::GrpcErrorsAsFailures>,
    fn(&http::Request<tonic::body::Body>) -> tracing::Span,
>;

/// A gRPC tracing layer that continues the caller's trace. A call refused for the caller's reason
/// (a TAN that is spent, a request that is invalid, a caller that may not) is an answer, not a
/// failure of the service: only the other codes are logged as failures (at WARN).
pub fn grpc_trace_layer() -> GrpcTraceLayer {
    use tower_http::classify::{GrpcCode, GrpcErrorsAsFailures, SharedClassifier};
    let classifier = [
        GrpcCode::InvalidArgument,
        GrpcCode::NotFound,
        GrpcCode::AlreadyExists,
        GrpcCode::PermissionDenied,
        GrpcCode::FailedPrecondition,
        GrpcCode::OutOfRange,
        GrpcCode::Unauthenticated,
    ]
    .into_iter()
    .fold(
        GrpcErrorsAsFailures::new(),
        GrpcErrorsAsFailures::with_success,
    );
    tower_http::trace::TraceLayer::new(SharedClassifier::new(classifier))
        .make_span_with(grpc_server_span::<tonic::body::Body> as fn(&_) -> _)
        .on_failure(tower_http::trace::DefaultOnFailure::new().level(tracing::Level::WARN))
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
    };
    use tonic::service::Interceptor;

    #[test]
    fn log_filters_take_a_level_and_target_directives() {
        use tracing::Level;
        let filter = log_filter("info,openwarn_verification=debug").unwrap();
        assert!(filter.would_enable("openwarn_verification::app", &Level::DEBUG));
        assert!(!filter.would_enable("openwarn_proxy", &Level::DEBUG));
        assert!(filter.would_enable("openwarn_proxy", &Level::INFO));
        let refused = log_filter("info,openwarn=loud").unwrap_err();
        assert!(refused.to_string().contains("OPENWARN_LOG"), "{refused}");
    }

    #[test]
    fn our_spans_are_traced_when_logs_show_only_warnings() {
        use tracing::Level;
        let traced = trace_filter(&log_filter("warn").unwrap());
        assert!(traced.would_enable("openwarn_proxy::gateway", &Level::INFO));
        assert!(traced.would_enable("openwarn_db::batch", &Level::INFO));
        assert!(!traced.would_enable("openwarn_db::batch", &Level::DEBUG));
        assert!(!traced.would_enable("h2::codec", &Level::INFO));
        let debug = trace_filter(&log_filter("info,openwarn_verification=debug").unwrap());
        assert!(debug.would_enable("openwarn_verification::app", &Level::DEBUG));
        assert!(debug.would_enable("tower::buffer", &Level::INFO));
    }

    #[test]
    fn json_lines_get_the_trace_and_span_ids() {
        let trace_id = TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
        let span_id = SpanId::from_hex("00f067aa0ba902b7").unwrap();
        let line = with_trace_ids("{\"message\":\"hi\"}\n".into(), Some((trace_id, span_id)));
        assert_eq!(
            line,
            "{\"message\":\"hi\",\"trace_id\":\"4bf92f3577b34da6a3ce929d0e0e4736\",\"span_id\":\"00f067aa0ba902b7\"}\n"
        );
        let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(
            with_trace_ids("{}".into(), Some((trace_id, span_id))),
            "{\"trace_id\":\"4bf92f3577b34da6a3ce929d0e0e4736\",\"span_id\":\"00f067aa0ba902b7\"}"
        );
        assert_eq!(with_trace_ids("{\"a\":1}\n".into(), None), "{\"a\":1}\n");
        assert_eq!(
            with_trace_ids("{\"a\":1}\n".into(), Some((TraceId::INVALID, span_id))),
            "{\"a\":1}\n"
        );
    }

    /// An internal port continues the caller's trace; an internet-facing one starts a new trace
    /// whatever `traceparent` the request brings.
    #[test]
    fn only_internal_ports_continue_the_callers_trace() {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        let provider = SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        let callers = TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
        tracing::subscriber::with_default(subscriber, || {
            let trace_of = |origin| {
                let request = actix_web::test::TestRequest::post()
                    .uri("/version/v1/diagnosis-keys")
                    .insert_header((
                        "traceparent",
                        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                    ))
                    .to_srv_request();
                let span = http_server_span(&request, "/version/v1/diagnosis-keys", "POST", origin);
                span.context().span().span_context().clone()
            };
            let continued = trace_of(TraceOrigin::Continue);
            assert!(continued.is_valid());
            assert_eq!(continued.trace_id(), callers);
            let fresh = trace_of(TraceOrigin::New);
            assert!(fresh.is_valid(), "a new trace, with ids");
            assert_ne!(fresh.trace_id(), callers);
        });
    }

    #[test]
    fn only_text_logs_on_a_terminal_are_coloured() {
        assert!(colour(LogFormat::Text, true, false));
        assert!(
            !colour(LogFormat::Text, false, false),
            "a file or a pipe gets no escape codes"
        );
        assert!(!colour(LogFormat::Text, true, true), "NO_COLOR is honoured");
        assert!(!colour(LogFormat::Json, true, false));
        assert!(!colour(LogFormat::Json, false, false));
    }

    #[test]
    fn trace_context_round_trips_through_grpc_metadata() {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        let remote = SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        );
        let cx = opentelemetry::Context::new().with_remote_span_context(remote);
        let mut request = tonic::Request::new(());
        opentelemetry::global::get_text_map_propagator(|p| {
            p.inject_context(&cx, &mut MetadataInjector(request.metadata_mut()));
        });
        let header = request
            .metadata()
            .get("traceparent")
            .unwrap()
            .to_str()
            .unwrap();
        assert_eq!(
            header,
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );

        let mut http_request = http::Request::new(());
        http_request
            .headers_mut()
            .insert("traceparent", header.parse().unwrap());
        let extracted = opentelemetry::global::get_text_map_propagator(|p| {
            p.extract(&HeaderExtractor(http_request.headers()))
        });
        assert_eq!(
            extracted.span().span_context().trace_id(),
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap()
        );
        // Without a current span, the interceptor adds nothing that claims a trace.
        let out = TraceContextInterceptor
            .call(tonic::Request::new(()))
            .unwrap();
        assert!(out.metadata().get("traceparent").is_none());
    }
}
