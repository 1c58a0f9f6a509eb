//! Issuing teleTANs: verification's `IssueTeleTan` over gRPC with mutual TLS, with the portal's
//! own client certificate. The teleTAN passes through the portal's memory to the page and is
//! never stored or logged here.

use openwarn_domain::TeleTan;
use openwarn_protocol::verification::v1::verification_service_client::VerificationServiceClient;
use openwarn_protocol::verification::v1::{IssueTeleTanRequest, TeleTanType};
use std::time::Duration;
use tonic::transport::Channel;

/// Longest wait for verification before the officer is told to try again.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// A teleTAN as verification issued it.
#[derive(Debug)]
pub struct Issued {
    pub tele_tan: TeleTan,
    /// Unix seconds.
    pub expires_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueError {
    /// Verification's limit for all officers together in this hour is reached.
    GlobalLimit,
    /// Verification cannot be reached or failed.
    Unavailable,
}

/// Verification's teleTAN issuance.
#[derive(Debug, Clone)]
pub struct Issuer {
    client: VerificationServiceClient<Channel>,
}

impl Issuer {
    pub fn new(channel: Channel) -> Self {
        Self {
            client: VerificationServiceClient::new(channel),
        }
    }

    pub async fn issue(&self) -> Result<Issued, IssueError> {
        let mut request = tonic::Request::new(IssueTeleTanRequest {
            r#type: TeleTanType::Test as i32,
        });
        request.set_timeout(CALL_TIMEOUT);
        let answer = tokio::time::timeout(
            CALL_TIMEOUT,
            openwarn_bootstrap::grpc_metrics::client_call(
                "/openwarn.verification.v1.VerificationService/IssueTeleTan",
                self.client.clone().issue_tele_tan(request),
            ),
        )
        .await
        .map_err(|_| IssueError::Unavailable)?;
        match answer {
            Ok(answer) => {
                let answer = answer.into_inner();
                // A teleTAN verification would refuse later is not shown to an officer.
                let tele_tan = answer.tele_tan.parse::<TeleTan>().map_err(|_| {
                    tracing::warn!("verification answered a malformed teleTAN");
                    IssueError::Unavailable
                })?;
                Ok(Issued {
                    tele_tan,
                    expires_at: answer.expires_at,
                })
            }
            Err(status) if status.code() == tonic::Code::ResourceExhausted => {
                Err(IssueError::GlobalLimit)
            }
            Err(status) => {
                tracing::warn!(code = ?status.code(), "verification did not issue a teleTAN");
                Err(IssueError::Unavailable)
            }
        }
    }
}
