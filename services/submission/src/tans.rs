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
        openwarn_bootstrap::grpc_metrics::client_call(
            "/openwarn.verification.v1.VerificationService/ReserveTan",
            self.client.clone().reserve_tan(ReserveTanRequest {
                tan: tan.expose().to_owned(),
            }),
        )
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
            match openwarn_bootstrap::grpc_metrics::client_call(
                "/openwarn.verification.v1.VerificationService/CommitTan",
                self.client.clone().commit_tan(CommitTanRequest {
                    tan: tan.expose().to_owned(),
                    reservation_id: reservation_id.to_owned(),
                }),
            )
            .await
            {
                Ok(_) => return Ok(()),
                // Verification deletes a TAN when it spends it: unknown means spent (by an
                // earlier attempt whose answer was lost, or by the pending-commit job) — the TAN
                // can store nothing again either way.
                Err(s) if s.code() == Code::NotFound => return Ok(()),
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
        if let Err(s) = openwarn_bootstrap::grpc_metrics::client_call(
            "/openwarn.verification.v1.VerificationService/ReleaseTan",
            self.client.clone().release_tan(ReleaseTanRequest {
                tan: tan.expose().to_owned(),
                reservation_id: reservation_id.to_owned(),
            }),
        )
        .await
        {
            tracing::warn!(code = ?s.code(), "could not release a TAN reservation; it lapses by itself");
        }
    }
}

/// How many pending commits one run of [`commit_pending`] takes on (the oldest first).
const PENDING_PER_RUN: i64 = 500;

/// Commits again the TANs whose keys are stored but whose spending verification has not
/// confirmed (it was unreachable, or the service stopped between storing and committing), and
/// forgets each once verification confirms it (or no longer knows it: spent TANs are deleted).
/// Stops at the first commit verification cannot answer; the next run goes on. Exports how many
/// are pending (`openwarn_tan_commits_pending`).
pub async fn commit_pending(store: crate::Store, tans: Tans) {
    let (pending, all) = match store.pending_commits(PENDING_PER_RUN).await {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the pending TAN commits; retrying next interval");
            return;
        }
    };
    let mut left = all;
    for commit in pending {
        let Ok(tan) = Tan::from_authorization_header(&commit.tan) else {
            // Only TANs that verification reserved are stored; keep it visible, never drop it.
            tracing::error!("a pending commit holds no TAN");
            continue;
        };
        let result = match tans.commit(&tan, &commit.reservation_id).await {
            Ok(()) => "confirmed",
            Err(TanError::Refused) => {
                // Not a TAN verification could not find (NOT_FOUND — spent or gone — counts as
                // confirmed): a refused caller or request. Kept, and retried, until someone looks.
                tracing::error!("verification refuses a pending TAN commit; kept and retried");
                metrics::counter!("openwarn_tan_commit_retries_total", "result" => "refused")
                    .increment(1);
                break;
            }
            Err(TanError::Unavailable) => {
                metrics::counter!("openwarn_tan_commit_retries_total", "result" => "unavailable")
                    .increment(1);
                break;
            }
        };
        metrics::counter!("openwarn_tan_commit_retries_total", "result" => result).increment(1);
        match store.commit_confirmed(commit.tan).await {
            Ok(()) => left -= 1,
            Err(e) => {
                tracing::warn!(error = %e, "cannot forget a confirmed TAN commit; retrying next interval");
                break;
            }
        }
    }
    #[allow(clippy::cast_precision_loss, reason = "a count of rows")]
    metrics::gauge!("openwarn_tan_commits_pending").set(left as f64);
}
