//! With `OTEL_EXPORTER_OTLP_ENDPOINT` set, spans are exported over OTLP, and a gRPC call carries
//! the caller's W3C trace context: the server's span joins the caller's trace.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration test: a failure is a failed test"
)]

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use openwarn_bootstrap::config::{LogFormat, TelemetryArgs};
use openwarn_bootstrap::telemetry::TraceContextInterceptor;
use openwarn_e2e::Chain;
use openwarn_protocol::verification::v1::VerifyTanRequest;
use openwarn_protocol::verification::v1::verification_service_client::VerificationServiceClient;
use std::sync::{Arc, Mutex};
use tracing::Instrument;

#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<ExportTraceServiceRequest>>>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn spans_are_exported_and_grpc_continues_the_callers_trace() {
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let server = tonic::transport::Server::builder()
        .add_service(TraceServiceServer::new(collector.clone()))
        .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener));
    tokio::spawn(server);

    let guard = openwarn_bootstrap::telemetry::init(
        "openwarn-e2e",
        &TelemetryArgs {
            log_format: LogFormat::Json,
            log_filter: "info".into(),
            otlp_endpoint: Some(endpoint),
        },
    )
    .unwrap();

    let db = openwarn_testkit::TestDatabase::sqlite();
    let chain = Chain::start(&db, "memory://", &[]).await;
    let channel = chain
        .pki
        .files("submission")
        .unwrap()
        .grpc_channel(
            &format!("https://{}", chain.verification_addr("grpc")),
            "verification",
        )
        .unwrap();
    let mut client = VerificationServiceClient::with_interceptor(channel, TraceContextInterceptor);
    let caller = tracing::info_span!("caller");
    async {
        client
            .verify_tan(VerifyTanRequest {
                tan: uuid::Uuid::new_v4().to_string(),
            })
            .await
            .unwrap();
    }
    .instrument(caller)
    .await;
    chain.shutdown().await;
    tokio::task::spawn_blocking(move || drop(guard))
        .await
        .unwrap(); // flushes the batch exporter

    let exports = collector.0.lock().unwrap().clone();
    let spans: Vec<_> = exports
        .iter()
        .flat_map(|e| &e.resource_spans)
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .collect();
    let caller = spans
        .iter()
        .find(|s| s.name == "caller")
        .expect("the caller's span was exported");
    let server = spans
        .iter()
        .find(|s| s.name == "grpc")
        .expect("the server's span was exported");
    assert_eq!(
        server.trace_id, caller.trace_id,
        "the server span joined the caller's trace"
    );
    assert_eq!(server.parent_span_id, caller.span_id);
    let service_names: Vec<String> = exports
        .iter()
        .flat_map(|e| &e.resource_spans)
        .filter_map(|r| r.resource.as_ref())
        .flat_map(|r| &r.attributes)
        .filter(|a| a.key == "service.name")
        .filter_map(|a| a.value.as_ref().and_then(|v| v.value.as_ref()))
        .map(|v| format!("{v:?}"))
        .collect();
    assert!(
        service_names.iter().any(|n| n.contains("openwarn-e2e")),
        "{service_names:?}"
    );
}
