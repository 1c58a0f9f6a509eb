//! `openwarn up` with `OTEL_EXPORTER_OTLP_ENDPOINT` set: one upload through the proxy is one
//! trace across the service processes — proxy → submission's handler → verification's gRPC
//! (ReserveTan, CommitTan) → the batch writes — exported by each process to one collector.

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
use openwarn_protocol::Message;
use openwarn_protocol::cwa::SubmissionPayload;
use openwarn_protocol::gaen::TemporaryExposureKey;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

const OFFSET: u16 = 23_000;

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

fn string(value: Option<&opentelemetry_proto::tonic::common::v1::AnyValue>) -> Option<&str> {
    match value?.value.as_ref()? {
        AnyValue::StringValue(s) => Some(s),
        _ => None,
    }
}

fn attribute<'a>(span: &'a Span, key: &str) -> Option<&'a str> {
    string(
        span.attributes
            .iter()
            .find(|a| a.key == key)?
            .value
            .as_ref(),
    )
}

fn payload() -> SubmissionPayload {
    let today = i32::try_from(openwarn_bootstrap::lifecycle::unix_now() / 600 / 144 * 144).unwrap();
    SubmissionPayload {
        keys: (0..3)
            .map(|i| TemporaryExposureKey {
                key_data: Some(vec![u8::try_from(i).unwrap() + 1; 16]),
                transmission_risk_level: Some(6),
                rolling_start_interval_number: Some(today - 144 * i),
                rolling_period: Some(144),
                report_type: Some(1),
                days_since_onset_of_symptoms: None,
            })
            .collect(),
        request_padding: Some(vec![0; 16]),
        visited_countries: vec![],
        origin: Some("DE".into()),
        consent_to_federation: Some(true),
        submission_type: Some(0),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn one_upload_is_one_trace_across_the_processes() {
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );

    let dir = tempfile::tempdir().unwrap();
    let exe = env!("CARGO_BIN_EXE_openwarn");
    let mut stack = openwarn_testkit::launcher::up_with_env(
        exe,
        dir.path(),
        OFFSET,
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str())],
    );
    stack.until("ready; Ctrl-C stops everything").await;

    let teletan = tokio::process::Command::new(exe)
        .args([
            "teletan",
            "--verification-url",
            &format!("https://127.0.0.1:{}", 9010 + OFFSET),
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .await
        .unwrap();
    assert!(teletan.status.success());
    let teletan = String::from_utf8(teletan.stdout).unwrap().trim().to_owned();
    let phone = openwarn_testkit::http_client();
    let url = |p: &str| format!("http://127.0.0.1:{}/version/v1/{p}", 8000 + OFFSET);
    let reply: Value = phone
        .post(url("registrationToken"))
        .json(&json!({"key": teletan, "keyType": "TELETAN"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = reply["registrationToken"].as_str().unwrap().to_owned();
    let reply: Value = phone
        .post(url("tan"))
        .json(&json!({"registrationToken": token}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tan = reply["tan"].as_str().unwrap().to_owned();
    let upload = phone
        .post(url("diagnosis-keys"))
        .header("content-type", "application/x-protobuf")
        .header("cwa-authorization", &tan)
        .header("cwa-fake", "0")
        .body(payload().encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(upload.status().as_u16(), 200);
    // A clean stop: every service flushes its spans before it exits.
    assert!(stack.stop().await.success());

    let exports = collector.0.lock().unwrap().clone();
    let spans: Vec<(String, Span)> = exports
        .iter()
        .flat_map(|e| &e.resource_spans)
        .flat_map(|r| {
            let service = r
                .resource
                .as_ref()
                .and_then(|res| res.attributes.iter().find(|a| a.key == "service.name"))
                .and_then(|a| string(a.value.as_ref()))
                .unwrap_or_default()
                .to_owned();
            r.scope_spans
                .iter()
                .flat_map(|s| &s.spans)
                .map(move |s| (service.clone(), s.clone()))
        })
        .collect();
    let (_, root) = spans
        .iter()
        .find(|(_, s)| {
            s.name == "proxy" && attribute(s, "http.route") == Some("/version/v1/diagnosis-keys")
        })
        .expect("the proxy's span of the upload");
    assert!(root.parent_span_id.is_empty());
    let trace: Vec<&(String, Span)> = spans
        .iter()
        .filter(|(_, s)| s.trace_id == root.trace_id)
        .collect();
    // (service, span name, parent's service, parent's name) of every span but the root.
    let mut edges: Vec<(String, String, String, String)> = trace
        .iter()
        .filter(|(_, s)| !s.parent_span_id.is_empty())
        .map(|(service, s)| {
            let (parent_service, parent) = trace
                .iter()
                .find(|(_, p)| p.span_id == s.parent_span_id)
                .unwrap_or_else(|| panic!("{service} {}: its parent is in the trace", s.name));
            (
                service.clone(),
                s.name.clone(),
                parent_service.clone(),
                parent.name.clone(),
            )
        })
        .collect();
    edges.sort();
    edges.dedup();
    let edge = |a: &str, b: &str, c: &str, d: &str| (a.into(), b.into(), c.into(), d.into());
    for expected in [
        edge("proxy", "upstream", "proxy", "proxy"),
        edge("submission", "http", "proxy", "upstream"),
        edge("verification", "grpc", "submission", "http"),
        edge("verification", "db.write", "verification", "grpc"),
        edge("submission", "db.write", "submission", "http"),
        edge("submission", "db.batch", "submission", "db.write"),
    ] {
        assert!(edges.contains(&expected), "{expected:?} in {edges:?}");
    }
    let methods: Vec<&str> = trace
        .iter()
        .filter(|(_, s)| s.name == "grpc")
        .filter_map(|(_, s)| attribute(s, "rpc.method"))
        .collect();
    for method in ["ReserveTan", "CommitTan"] {
        assert!(
            methods.iter().any(|m| m.ends_with(method)),
            "{method} in {methods:?}"
        );
    }
}
