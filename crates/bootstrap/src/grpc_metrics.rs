//! Metrics of every internal gRPC server: calls by method and status code
//! (`openwarn_grpc_requests_total{method, code}`) and their latency by method
//! (`openwarn_grpc_request_duration_seconds{method}`, until the last frame of the answer). A path
//! outside the callers' table is counted as `unlisted`, so that invented paths add no series.
//! And of every call a service makes as a client ([`client_call`]).

use crate::callers::CallerTable;
use http_body_util::BodyExt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

/// The layer for [`crate::lifecycle::grpc_server`] (outermost: refused calls count too).
#[derive(Debug, Clone, Copy)]
pub struct GrpcMetricsLayer {
    table: CallerTable,
}

impl GrpcMetricsLayer {
    /// `table`: the methods served (their paths become labels).
    pub fn new(table: CallerTable) -> Self {
        Self { table }
    }

    fn method(&self, path: &str) -> &'static str {
        self.table
            .iter()
            .find(|(p, _)| *p == path)
            .map_or("unlisted", |(p, _)| *p)
    }
}

impl<S> tower_layer::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetrics {
            inner,
            layer: *self,
        }
    }
}

/// The service [`GrpcMetricsLayer`] wraps around a gRPC router.
#[derive(Debug, Clone)]
pub struct GrpcMetrics<S> {
    inner: S,
    layer: GrpcMetricsLayer,
}

/// The name of a `grpc-status` value (`Ok`, `NotFound`, …).
fn code_label(value: &http::HeaderValue) -> String {
    format!("{:?}", tonic::Code::from_bytes(value.as_bytes()))
}

fn record(method: &'static str, code: String, started: Instant) {
    metrics::counter!("openwarn_grpc_requests_total", "method" => method, "code" => code)
        .increment(1);
    metrics::histogram!("openwarn_grpc_request_duration_seconds", "method" => method)
        .record(started.elapsed().as_secs_f64());
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, RB> tower_service::Service<http::Request<B>> for GrpcMetrics<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
    S::Error: 'static,
    RB: tonic::codegen::Body<Data = bytes::Bytes> + Send + 'static,
    RB::Error: Into<tonic::codegen::StdError>,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = self.layer.method(request.uri().path());
        let started = Instant::now();
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await?;
            // A call refused before any message (trailers-only) has its status in the headers.
            if let Some(status) = response.headers().get("grpc-status") {
                record(method, code_label(status), started);
                return Ok(response.map(tonic::body::Body::new));
            }
            Ok(response.map(|body| {
                tonic::body::Body::new(body.map_frame(move |frame| {
                    if let Some(status) = frame.trailers_ref().and_then(|t| t.get("grpc-status")) {
                        record(method, code_label(status), started);
                    }
                    frame
                }))
            }))
        })
    }
}

/// Counts and times one internal gRPC call this service makes:
/// `openwarn_grpc_client_requests_total{method, code}` (the status it got; `Unavailable` when
/// nothing answered) and `openwarn_grpc_client_request_duration_seconds{method}`. `method` is the
/// gRPC path, as in `openwarn_protocol::callers::CALLERS`; for a streaming call, until the
/// stream is open.
pub async fn client_call<T>(
    method: &'static str,
    call: impl Future<Output = Result<T, tonic::Status>>,
) -> Result<T, tonic::Status> {
    let started = Instant::now();
    let result = call.await;
    let code = match &result {
        Ok(_) => tonic::Code::Ok,
        Err(status) => status.code(),
    };
    metrics::counter!("openwarn_grpc_client_requests_total", "method" => method, "code" => format!("{code:?}"))
        .increment(1);
    metrics::histogram!("openwarn_grpc_client_request_duration_seconds", "method" => method)
        .record(started.elapsed().as_secs_f64());
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_outside_the_table_share_one_label() {
        let layer = GrpcMetricsLayer::new(&[("/a.A/Call", &["submission"])]);
        assert_eq!(layer.method("/a.A/Call"), "/a.A/Call");
        assert_eq!(layer.method("/a.A/Invented"), "unlisted");
        assert_eq!(code_label(&http::HeaderValue::from_static("0")), "Ok");
        assert_eq!(code_label(&http::HeaderValue::from_static("5")), "NotFound");
    }
}
