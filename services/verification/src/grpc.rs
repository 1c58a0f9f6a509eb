//! Internal gRPC: TAN reservation for submission, teleTAN issuance for the portal.

use crate::redeem::RedeemMarks;
use crate::store::{Committed, Source, Store, TELE_TAN_KIND_TEST};
use openwarn_bootstrap::lifecycle::unix_now;
use openwarn_domain::{Tan, TeleTan, canonical_uuid_v4};
use openwarn_kv::KvStore;
use openwarn_protocol::verification::v1::verification_service_server::{
    VerificationService, VerificationServiceServer,
};
use openwarn_protocol::verification::v1::{
    CommitTanRequest, CommitTanResponse, IssueTeleTanRequest, IssueTeleTanResponse,
    ReleaseTanRequest, ReleaseTanResponse, ReserveTanRequest, ReserveTanResponse, TanSource,
    TeleTanType, VerifyTanRequest, VerifyTanResponse,
};
use std::sync::Arc;
use std::time::Duration;
use tonic::{Request, Response, Status};

#[derive(Debug, Clone)]
pub struct GrpcLimits {
    pub reservation_ttl: Duration,
    pub tele_tan_validity: Duration,
    pub tele_tans_per_hour: u64,
}

pub struct Grpc {
    store: Store,
    kv: Arc<dyn KvStore>,
    redeem: RedeemMarks,
    limits: GrpcLimits,
}

pub fn server(
    store: Store,
    kv: Arc<dyn KvStore>,
    redeem: RedeemMarks,
    limits: GrpcLimits,
) -> VerificationServiceServer<Grpc> {
    VerificationServiceServer::new(Grpc {
        store,
        kv,
        redeem,
        limits,
    })
}

fn tan_hash(tan: &str) -> Result<String, Status> {
    Tan::try_from(tan)
        .map(|t| t.hash())
        .map_err(|_| Status::invalid_argument("tan must be a version-4 UUID"))
}

fn reservation(id: &str) -> Result<String, Status> {
    canonical_uuid_v4(id)
        .ok_or_else(|| Status::invalid_argument("reservation_id must be a version-4 UUID"))
}

fn source(s: Source) -> i32 {
    match s {
        Source::Guid => TanSource::Guid as i32,
        Source::TeleTan => TanSource::Teletan as i32,
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 2)
}

#[tonic::async_trait]
impl VerificationService for Grpc {
    async fn verify_tan(
        &self,
        request: Request<VerifyTanRequest>,
    ) -> Result<Response<VerifyTanResponse>, Status> {
        let hash = tan_hash(&request.into_inner().tan)?;
        let found = self.store.verify_tan(hash, unix_now()).await?;
        Ok(Response::new(VerifyTanResponse {
            valid: found.is_some(),
            source: found.map_or(TanSource::Unspecified as i32, source),
        }))
    }

    async fn reserve_tan(
        &self,
        request: Request<ReserveTanRequest>,
    ) -> Result<Response<ReserveTanResponse>, Status> {
        let hash = tan_hash(&request.into_inner().tan)?;
        let now = unix_now();
        let reservation_id = uuid::Uuid::new_v4().to_string();
        let reserved = self
            .store
            .reserve_tan(
                hash,
                reservation_id.clone(),
                now,
                now + secs(self.limits.reservation_ttl),
            )
            .await?;
        match reserved {
            Some(r) => Ok(Response::new(ReserveTanResponse {
                reservation_id,
                reserved_until: r.reserved_until,
                source: source(r.source),
            })),
            None => {
                metrics::counter!("openwarn_tan_reservations_refused_total").increment(1);
                Err(Status::failed_precondition(
                    "TAN is not valid, already used, or in use",
                ))
            }
        }
    }

    async fn commit_tan(
        &self,
        request: Request<CommitTanRequest>,
    ) -> Result<Response<CommitTanResponse>, Status> {
        let request = request.into_inner();
        let hash = tan_hash(&request.tan)?;
        let reservation_id = reservation(&request.reservation_id)?;
        match self
            .store
            .commit_tan(hash, reservation_id, unix_now())
            .await?
        {
            Committed::Done { hashed_guid } => {
                metrics::counter!("openwarn_tans_redeemed_total").increment(1);
                if let Some(hashed_guid) = hashed_guid {
                    // The TAN is spent here whatever happens next; the mark at test-result only
                    // keeps labs from changing a result that was used, so it is queued and sent
                    // off the submission's path, together with other uploads' marks. The session
                    // (redeemed here) refuses further TANs either way.
                    self.redeem.mark(hashed_guid.into_string());
                }
                Ok(Response::new(CommitTanResponse {}))
            }
            // Spent TANs are deleted: a retried commit finds none either.
            Committed::Unknown => Err(Status::not_found("no such TAN (or spent)")),
        }
    }

    async fn release_tan(
        &self,
        request: Request<ReleaseTanRequest>,
    ) -> Result<Response<ReleaseTanResponse>, Status> {
        let request = request.into_inner();
        let hash = tan_hash(&request.tan)?;
        let reservation_id = reservation(&request.reservation_id)?;
        if self.store.release_tan(hash, reservation_id).await? {
            Ok(Response::new(ReleaseTanResponse {}))
        } else {
            Err(Status::failed_precondition(
                "no such reservation on this TAN",
            ))
        }
    }

    async fn issue_tele_tan(
        &self,
        request: Request<IssueTeleTanRequest>,
    ) -> Result<Response<IssueTeleTanResponse>, Status> {
        let kind = match TeleTanType::try_from(request.into_inner().r#type) {
            Ok(TeleTanType::Test) => TELE_TAN_KIND_TEST,
            _ => return Err(Status::invalid_argument("type must be TELE_TAN_TYPE_TEST")),
        };
        let now = unix_now();
        // One fixed window per clock hour, shared by every replica through the key-value store.
        let window = format!("tele-tans-issued:{}", now / 3600);
        let issued = self
            .kv
            .incr(&window, 1, Duration::from_secs(2 * 3600))
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "key-value store unavailable");
                Status::unavailable("issuance counter unavailable")
            })?;
        if issued > self.limits.tele_tans_per_hour {
            metrics::counter!("openwarn_tele_tans_refused_total").increment(1);
            return Err(Status::resource_exhausted(
                "teleTAN issuance limit for this hour reached",
            ));
        }
        let expires_at = now + secs(self.limits.tele_tan_validity);
        for _ in 0..5 {
            let tele_tan = TeleTan::generate();
            if self
                .store
                .insert_tele_tan(tele_tan.hash(), kind, now, expires_at)
                .await?
            {
                metrics::counter!("openwarn_tele_tans_issued_total").increment(1);
                return Ok(Response::new(IssueTeleTanResponse {
                    tele_tan: tele_tan.into_exposed(),
                    expires_at,
                }));
            }
        }
        Err(Status::internal("could not draw an unused teleTAN"))
    }
}
