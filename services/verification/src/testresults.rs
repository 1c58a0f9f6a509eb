//! The gRPC client for the test-result service (mutual TLS, W3C trace context).

use openwarn_bootstrap::http::ApiError;
use openwarn_bootstrap::telemetry::TraceContextInterceptor;
use openwarn_domain::{HashedGuid, TestResult};
use openwarn_protocol::testresult::v1::test_result_service_client::TestResultServiceClient;
use openwarn_protocol::testresult::v1::{
    GetTestResultRequest, MarkRedeemedRequest, TestResult as WireTestResult,
};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

#[derive(Debug, Clone)]
pub struct TestResults {
    client: TestResultServiceClient<InterceptedService<Channel, TraceContextInterceptor>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub result: TestResult,
    pub sample_collected_at: Option<i64>,
    pub lab_id: Option<String>,
}

impl TestResults {
    pub fn new(channel: Channel) -> Self {
        Self {
            client: TestResultServiceClient::with_interceptor(channel, TraceContextInterceptor),
        }
    }

    /// The current result; 503 when test-result cannot answer (or answers a result code outside
    /// the contract).
    pub async fn get(&self, hashed_guid: &HashedGuid) -> Result<Fetched, ApiError> {
        let response = openwarn_bootstrap::grpc_metrics::client_call(
            "/openwarn.testresult.v1.TestResultService/GetTestResult",
            self.client.clone().get_test_result(GetTestResultRequest {
                hashed_guid: hashed_guid.as_str().to_owned(),
            }),
        )
        .await
        .map_err(|status| {
            tracing::warn!(code = ?status.code(), "test-result unavailable");
            ApiError::unavailable()
        })?
        .into_inner();
        let result = WireTestResult::try_from(response.result).map_err(|_| {
            tracing::warn!(
                code = response.result,
                "test-result answered an unknown result code"
            );
            ApiError::unavailable()
        })?;
        Ok(Fetched {
            result: TestResult::from(result),
            sample_collected_at: response.sample_collected_at,
            lab_id: response.lab_id,
        })
    }

    /// The last second test-result holds the result for `hashed_guid` (on its clock); asking
    /// records a pending result when there is none, so it holds one from now on. `Err` when
    /// test-result cannot answer.
    pub async fn held_until(&self, hashed_guid: &HashedGuid) -> Result<i64, ()> {
        openwarn_bootstrap::grpc_metrics::client_call(
            "/openwarn.testresult.v1.TestResultService/GetTestResult",
            self.client.clone().get_test_result(GetTestResultRequest {
                hashed_guid: hashed_guid.as_str().to_owned(),
            }),
        )
        .await
        .map(|r| r.into_inner().held_until)
        .map_err(|status| {
            tracing::warn!(code = ?status.code(), "test-result unavailable");
        })
    }

    /// Marks results redeemed, all in one call (queued by the `redeem` module).
    pub async fn mark_redeemed(&self, hashed_guids: Vec<String>) -> Result<(), tonic::Status> {
        openwarn_bootstrap::grpc_metrics::client_call(
            "/openwarn.testresult.v1.TestResultService/MarkRedeemed",
            self.client.clone().mark_redeemed(MarkRedeemedRequest {
                hashed_guid: String::new(),
                hashed_guids,
            }),
        )
        .await
        .map(drop)
    }
}
