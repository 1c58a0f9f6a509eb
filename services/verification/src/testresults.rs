//! The gRPC client for the test-result service (mutual TLS, W3C trace context).

use openwarn_bootstrap::http::ApiError;
use openwarn_bootstrap::telemetry::TraceContextInterceptor;
use openwarn_protocol::testresult::v1::test_result_service_client::TestResultServiceClient;
use openwarn_protocol::testresult::v1::{GetTestResultRequest, MarkRedeemedRequest};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

#[derive(Debug, Clone)]
pub struct TestResults {
    client: TestResultServiceClient<InterceptedService<Channel, TraceContextInterceptor>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub result: i32,
    pub sample_collected_at: Option<i64>,
    pub lab_id: Option<String>,
}

impl TestResults {
    pub fn new(channel: Channel) -> Self {
        Self {
            client: TestResultServiceClient::with_interceptor(channel, TraceContextInterceptor),
        }
    }

    /// The current result; 503 when test-result cannot answer.
    pub async fn get(&self, hashed_guid: &str) -> Result<Fetched, ApiError> {
        let response = self
            .client
            .clone()
            .get_test_result(GetTestResultRequest {
                hashed_guid: hashed_guid.to_owned(),
            })
            .await
            .map_err(|status| {
                tracing::warn!(code = ?status.code(), "test-result unavailable");
                ApiError::unavailable()
            })?
            .into_inner();
        Ok(Fetched {
            result: response.result,
            sample_collected_at: response.sample_collected_at,
            lab_id: response.lab_id,
        })
    }

    /// Marks results redeemed, all in one call (see [`crate::redeem`]).
    pub async fn mark_redeemed(&self, hashed_guids: Vec<String>) -> Result<(), tonic::Status> {
        self.client
            .clone()
            .mark_redeemed(MarkRedeemedRequest {
                hashed_guid: String::new(),
                hashed_guids,
            })
            .await
            .map(drop)
    }
}
