//! With `OTEL_EXPORTER_OTLP_ENDPOINT` set, spans are exported over OTLP, and a gRPC call carries
//! the caller's W3C trace context: the server's span joins the caller's trace. One upload through
//! the proxy is one trace (proxy → submission's HTTP handler → verification's gRPC → the batch
//! write), started by the proxy whatever `traceparent` the phone sent, and no span carries a
//! secret of the request. JSON log lines carry the trace and span ids.

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
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use openwarn_bootstrap::config::{LogFormat, TelemetryArgs};
use openwarn_bootstrap::telemetry::TraceContextInterceptor;
use openwarn_e2e::{Chain, payload};
use openwarn_protocol::Message;
use openwarn_protocol::verification::v1::VerifyTanRequest;
use openwarn_protocol::verification::v1::verification_service_client::VerificationServiceClient;
use std::io::Write;
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

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A span's string attribute.
fn attribute<'a>(span: &'a Span, key: &str) -> Option<&'a str> {
    span.attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref())
        .and_then(|v| match &v.value {
            Some(AnyValue::StringValue(s)) => Some(s.as_str()),
            _ => None,
        })
}

/// Everything a span says in words: its name, attribute keys and values, events and links.
fn words(span: &Span) -> String {
    let mut out = format!("{} {:?} {:?}", span.name, span.attributes, span.events);
    if let Some(status) = &span.status {
        out.push_str(&status.message);
    }
    out
}

/// One test per process: the global subscriber and its exporter are installed once.
#[tokio::test(flavor = "multi_thread")]
async fn spans_are_exported_and_grpc_continues_the_callers_trace() {
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let server = tonic::transport::Server::builder()
        .add_service(TraceServiceServer::new(collector.clone()))
        .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener));
    tokio::spawn(server);

    let logs = Captured::default();
    let writer = logs.clone();
    let guard = openwarn_bootstrap::telemetry::init_with_writer(
        "openwarn-e2e",
        &TelemetryArgs {
            log_format: LogFormat::Json,
            log_filter: "info".into(),
            otlp_endpoint: Some(endpoint),
        },
        move || writer.clone(),
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
    tracing::info_span!("logged").in_scope(|| tracing::info!("inside a span"));

    // One upload through the proxy, by a phone that sends its own trace context and address.
    let phone = openwarn_testkit::http_client();
    let (token, tan) = chain.positive_session(&phone, |e| chain.proxy_url(e)).await;
    let phone_trace = "0af7651916cd43dd8448eb211c80319c";
    let upload = payload(3, 77);
    let response = phone
        .post(chain.proxy_url("diagnosis-keys"))
        .header("content-type", "application/x-protobuf")
        .header("cwa-authorization", &tan)
        .header("cwa-fake", "0")
        .header(
            "traceparent",
            format!("00-{phone_trace}-b7ad6b7169203331-01"),
        )
        .header("x-forwarded-for", "203.0.113.9")
        .body(upload.encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let fake = phone
        .post(chain.proxy_url("diagnosis-keys"))
        .header("content-type", "application/x-protobuf")
        .header("cwa-authorization", &tan)
        .header("cwa-fake", "1")
        .body(upload.encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(fake.status().as_u16(), 200);
    // The metrics of that (one recorder per process: every service's series together).
    let admin = chain.proxy.as_ref().unwrap().addr("admin");
    let scraped = phone
        .get(format!("http://{admin}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
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

    // The upload's trace: rooted at the proxy's span of the upload route.
    let root = spans
        .iter()
        .find(|s| {
            s.name == "proxy" && attribute(s, "http.route") == Some("/version/v1/diagnosis-keys")
        })
        .expect("the proxy's span of the upload");
    assert!(root.parent_span_id.is_empty(), "the proxy starts the trace");
    let trace: Vec<&Span> = spans
        .iter()
        .copied()
        .filter(|s| s.trace_id == root.trace_id)
        .collect();
    let by_id = |id: &[u8]| trace.iter().copied().find(|s| s.span_id == id);
    // Every span of the trace hangs off the proxy's: one connected tree.
    let ancestors = |span: &Span| {
        let mut chain = vec![];
        let mut parent = span.parent_span_id.clone();
        while !parent.is_empty() {
            let p = by_id(&parent)
                .unwrap_or_else(|| panic!("{}'s parent was exported in the trace", span.name));
            chain.push(p.name.clone());
            parent = p.parent_span_id.clone();
        }
        chain
    };
    for span in &trace {
        if span.span_id != root.span_id {
            assert_eq!(
                ancestors(span).last().map(String::as_str),
                Some("proxy"),
                "{}",
                span.name
            );
        }
    }
    let submission = trace
        .iter()
        .find(|s| {
            s.name == "http" && attribute(s, "http.route") == Some("/version/v1/diagnosis-keys")
        })
        .expect("submission's HTTP span joined the proxy's trace");
    assert_eq!(ancestors(submission), ["upstream", "proxy"]);
    let calls: Vec<&str> = trace
        .iter()
        .filter(|s| s.name == "grpc")
        .filter_map(|s| attribute(s, "rpc.method"))
        .collect();
    assert!(
        calls.iter().any(|m| m.contains("VerificationService/")),
        "verification's gRPC span joined the trace: {calls:?}"
    );
    for call in trace.iter().filter(|s| s.name == "grpc") {
        assert!(
            ancestors(call).iter().any(|a| a == "http"),
            "the gRPC call is under submission's handler: {:?}",
            ancestors(call)
        );
    }
    let batch = trace
        .iter()
        .find(|s| s.name == "db.batch" && attribute(s, "db.batch") == Some("insert_keys"))
        .expect("the keys' batch write joined the trace");
    assert_eq!(
        ancestors(batch)[..2],
        ["db.write".to_owned(), "http".to_owned()],
        "the batch is written for submission's handler"
    );
    assert!(
        spans
            .iter()
            .all(|s| hex::encode(&s.trace_id) != phone_trace),
        "the phone's trace context is never continued"
    );

    // No span says anything of the request's secrets or the phone's address.
    let hashed_keys: Vec<String> = upload
        .keys
        .iter()
        .filter_map(|k| k.key_data.as_ref())
        .map(hex::encode)
        .collect();
    let mut secrets = vec![tan.clone(), token.clone(), "203.0.113.9".to_owned()];
    secrets.extend(hashed_keys);
    secrets.push(openwarn_e2e::sha256_hex(&tan));
    for span in &spans {
        let said = words(span);
        for secret in &secrets {
            assert!(
                !said.contains(secret.as_str()),
                "span {} carries a secret",
                span.name
            );
        }
        for key in [
            "client.address",
            "net.peer.ip",
            "net.sock.peer.addr",
            "http.client_ip",
        ] {
            assert!(
                attribute(span, key).is_none(),
                "span {} names {key}",
                span.name
            );
        }
    }

    // Real and fake uploads are counted apart at the proxy; the backend's latency is measured;
    // gRPC calls are counted by method and code, by the server and by the client; every metric
    // has its help text.
    let route = "route=\"/version/v1/diagnosis-keys\"";
    for series in [
        format!("openwarn_proxy_requests_total{{{route},kind=\"real\",status=\"200\"}} 1"),
        format!("openwarn_proxy_requests_total{{{route},kind=\"fake\",status=\"200\"}} 1"),
        format!("openwarn_proxy_request_duration_seconds_count{{{route},kind=\"fake\"}} 1"),
        "openwarn_proxy_upstream_duration_seconds_count{upstream=\"submission\",outcome=\"answered\"} 1".to_owned(),
        "openwarn_grpc_requests_total{method=\"/openwarn.verification.v1.VerificationService/CommitTan\",code=\"Ok\"} 1".to_owned(),
        "openwarn_grpc_request_duration_seconds_bucket{method=\"/openwarn.verification.v1.VerificationService/CommitTan\",le=\"5\"} 1".to_owned(),
        // The same call as submission, its client, counted it.
        "openwarn_grpc_client_requests_total{method=\"/openwarn.verification.v1.VerificationService/CommitTan\",code=\"Ok\"} 1".to_owned(),
        "openwarn_grpc_client_request_duration_seconds_count{method=\"/openwarn.verification.v1.VerificationService/CommitTan\"} 1".to_owned(),
        "openwarn_db_batch_items_bucket{batch=\"insert_keys\",le=\"1000\"} 1".to_owned(),
        "openwarn_db_pool_connections{state=\"in_use\"}".to_owned(),
        "process_open_fds ".to_owned(),
    ] {
        assert!(scraped.contains(&series), "{series} in\n{scraped}");
    }
    for line in scraped.lines().filter(|l| l.starts_with("# TYPE ")) {
        let name = line.split_whitespace().nth(2).unwrap();
        assert!(
            scraped.contains(&format!("# HELP {name} ")),
            "{name} has no help text"
        );
    }

    // A JSON log line inside a span carries that span's trace and span ids.
    let logged = spans
        .iter()
        .find(|s| s.name == "logged")
        .expect("the logging span");
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let line: serde_json::Value = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["message"] == "inside a span")
        .expect("the log line");
    assert_eq!(line["trace_id"], hex::encode(&logged.trace_id));
    assert_eq!(line["span_id"], hex::encode(&logged.span_id));
    for secret in &secrets {
        assert!(
            !text.contains(secret.as_str()),
            "a log line carries a secret"
        );
    }
}
