//! The verification client: reserve a TAN before storing keys, commit it after, release it when
//! storing failed.

use openwarn_bootstrap::telemetry::TraceContextInterceptor;
use openwarn_domain::Tan;
use openwarn_protocol::verification::v1::verification_service_client::VerificationServiceClient;
use openwarn_protocol::verification::v1::{CommitTanRequest, ReleaseTanRequest, ReserveTanRequest};
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

#[derive(Debug, Clone)]
pub struct Tans {
    client: VerificationServiceClient<InterceptedService<Channel, TraceContextInterceptor>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TanError {
    /// Verification refuses the TAN: unknown, expired, spent or in use (403).
    Refused,
    /// Verification cannot answer (503).
    Unavailable,
}

fn classify(status: &tonic::Status) -> TanError {
    match status.code() {
        Code::FailedPrecondition
        | Code::InvalidArgument
        | Code::NotFound
        | Code::PermissionDenied => TanError::Refused,
        code => {
            tracing::warn!(?code, "verification unavailable");
            TanError::Unavailable
        }
    }
}

impl Tans {
    pub fn new(channel: Channel) -> Self {
        Self {
            client: VerificationServiceClient::with_interceptor(channel, TraceContextInterceptor),
        }
    }

    /// Reserves the TAN; returns the reservation id.
    pub async fn reserve(&self, tan: &Tan) -> Result<String, TanError> {
        self.client
            .clone()
            .reserve_tan(ReserveTanRequest {
                tan: tan.expose().to_owned(),
            })
            .await
            .map(|r| r.into_inner().reservation_id)
            .map_err(|s| classify(&s))
    }

    /// Spends the reserved TAN (idempotent at verification, so retrying is safe).
    pub async fn commit(&self, tan: &Tan, reservation_id: &str) -> Result<(), TanError> {
        let mut last = TanError::Unavailable;
        for attempt in 0..3 {
            if attempt > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(50 * attempt)).await;
            }
            match self
                .client
                .clone()
                .commit_tan(CommitTanRequest {
                    tan: tan.expose().to_owned(),
                    reservation_id: reservation_id.to_owned(),
                })
                .await
            {
                Ok(_) => return Ok(()),
                Err(s) => {
                    last = classify(&s);
                    if last == TanError::Refused {
                        break;
                    }
                }
            }
        }
        Err(last)
    }

    /// Gives the reservation back; failures only mean it lapses by itself a little later.
    pub async fn release(&self, tan: &Tan, reservation_id: &str) {
        if let Err(s) = self
            .client
            .clone()
            .release_tan(ReleaseTanRequest {
                tan: tan.expose().to_owned(),
                reservation_id: reservation_id.to_owned(),
            })
            .await
        {
            tracing::warn!(code = ?s.code(), "could not release a TAN reservation; it lapses by itself");
        }
    }
}
