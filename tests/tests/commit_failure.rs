//! A submission whose keys were stored but whose TAN commit fails: the keys stay stored, the user
//! gets 200 (their upload succeeded), the commit was retried, and the reservation is left to lapse
//! by itself (never released: releasing would let the TAN be used twice).

use openwarn_e2e::{PKI_NAMES, payload};
use openwarn_protocol::Message;
use openwarn_protocol::verification::v1::verification_service_server::{
    VerificationService, VerificationServiceServer,
};
use openwarn_protocol::verification::v1::*;
use openwarn_testkit::{config, https_client};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tonic::{Request, Response, Status};

#[derive(Default)]
struct Stub {
    reserves: AtomicUsize,
    commits: AtomicUsize,
    releases: AtomicUsize,
}

/// The gRPC service over shared counters (a local type, as the orphan rule wants).
struct StubService(Arc<Stub>);

#[tonic::async_trait]
impl VerificationService for StubService {
    async fn verify_tan(
        &self,
        _: Request<VerifyTanRequest>,
    ) -> Result<Response<VerifyTanResponse>, Status> {
        Err(Status::unimplemented("not used"))
    }
    async fn reserve_tan(
        &self,
        _: Request<ReserveTanRequest>,
    ) -> Result<Response<ReserveTanResponse>, Status> {
        self.0.reserves.fetch_add(1, Ordering::SeqCst);
        Ok(Response::new(ReserveTanResponse {
            reservation_id: uuid::Uuid::new_v4().to_string(),
            reserved_until: openwarn_bootstrap::lifecycle::unix_now() + 120,
            source: TanSource::Guid as i32,
        }))
    }
    async fn commit_tan(
        &self,
        _: Request<CommitTanRequest>,
    ) -> Result<Response<CommitTanResponse>, Status> {
        self.0.commits.fetch_add(1, Ordering::SeqCst);
        Err(Status::unavailable("database unavailable"))
    }
    async fn release_tan(
        &self,
        _: Request<ReleaseTanRequest>,
    ) -> Result<Response<ReleaseTanResponse>, Status> {
        self.0.releases.fetch_add(1, Ordering::SeqCst);
        Ok(Response::new(ReleaseTanResponse {}))
    }
    async fn issue_tele_tan(
        &self,
        _: Request<IssueTeleTanRequest>,
    ) -> Result<Response<IssueTeleTanResponse>, Status> {
        Err(Status::unimplemented("not used"))
    }
}

#[tokio::test]
async fn keys_stored_but_commit_failing_is_a_success_that_keeps_the_keys() {
    for (db, _) in openwarn_testkit::backends() {
        let (_dir, pki) = openwarn_testkit::dev_pki(PKI_NAMES);
        let stub = Arc::new(Stub::default());
        let mut verification = openwarn_bootstrap::RunningService::new("stub-verification");
        let router = openwarn_bootstrap::lifecycle::grpc_server()
            .add_service(VerificationServiceServer::new(StubService(stub.clone())));
        let grpc = verification
            .serve_grpc_on(
                "127.0.0.1:0".parse().unwrap(),
                pki.files("verification").unwrap().grpc_server().unwrap(),
                router,
            )
            .await
            .unwrap();

        let args: Vec<String> = [
            "--http-addr",
            "127.0.0.1:0",
            "--grpc-addr",
            "127.0.0.1:0",
            "--admin-addr",
            "127.0.0.1:0",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .chain(pki.service_args("submission"))
        .chain([
            "--database-url".into(),
            db.url().to_owned(),
            "--verification-url".into(),
            format!("https://{grpc}"),
            "--supported-countries".into(),
            "DE,FR".into(),
        ])
        .collect();
        let submission = openwarn_submission::start(config(&args)).await.unwrap();
        let reply = https_client(&pki, Some("proxy"))
            .post(format!(
                "https://{}/version/v1/diagnosis-keys",
                submission.addr("http")
            ))
            .header("content-type", "application/x-protobuf")
            .header("cwa-authorization", uuid::Uuid::new_v4().to_string())
            .header("cwa-fake", "0")
            .body(payload(6, 9).encode_to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status().as_u16(), 200, "{}", db.label());
        assert_eq!(stub.reserves.load(Ordering::SeqCst), 1);
        assert_eq!(
            stub.commits.load(Ordering::SeqCst),
            3,
            "the commit is retried"
        );
        assert_eq!(
            stub.releases.load(Ordering::SeqCst),
            0,
            "stored keys never give the TAN back"
        );
        let stored = openwarn_submission::Store::new(
            openwarn_db::Database::open(db.url(), 1).await.unwrap(),
        );
        assert_eq!(stored.count().await.unwrap(), 6, "{}", db.label());
        submission.shutdown().await.unwrap();
        verification.shutdown().await.unwrap();
    }
}
