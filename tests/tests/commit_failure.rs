//! A submission whose keys were stored but whose TAN commit fails: the keys stay stored, the user
//! gets 200 (their upload succeeded), the reservation is never released, and the commit is kept
//! in submission's own database and retried until verification confirms — also by a submission
//! started after the first one stopped. Meanwhile the TAN stores nothing again, even when
//! verification would reserve it again (its reservation lapsed).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration test: a failure is a failed test"
)]

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
    /// Commits verification confirmed, by TAN.
    confirmed: std::sync::Mutex<Vec<String>>,
    releases: AtomicUsize,
    /// While set, commits fail as if verification's database were down.
    failing: std::sync::atomic::AtomicBool,
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
        request: Request<CommitTanRequest>,
    ) -> Result<Response<CommitTanResponse>, Status> {
        self.0.commits.fetch_add(1, Ordering::SeqCst);
        if self.0.failing.load(Ordering::SeqCst) {
            return Err(Status::unavailable("database unavailable"));
        }
        self.0
            .confirmed
            .lock()
            .unwrap()
            .push(request.into_inner().tan);
        Ok(Response::new(CommitTanResponse {}))
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
async fn keys_stored_but_commit_failing_succeeds_once_and_is_committed_later() {
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

        let args: Vec<String> = openwarn_e2e::EPHEMERAL
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
                "--commit-retry-interval".into(),
                "1s".into(),
            ])
            .collect();
        stub.failing.store(true, Ordering::SeqCst);
        let submission = openwarn_submission::start(config(&args)).await.unwrap();
        let tan = uuid::Uuid::new_v4().to_string();
        let upload = |submission: &openwarn_bootstrap::RunningService, seed: u8| {
            https_client(&pki, Some("proxy"))
                .post(format!(
                    "https://{}/version/v1/diagnosis-keys",
                    submission.addr("http")
                ))
                .header("content-type", "application/x-protobuf")
                .header("cwa-authorization", &tan)
                .header("cwa-fake", "0")
                .body(payload(6, seed).encode_to_vec())
                .send()
        };
        let reply = upload(&submission, 9).await.unwrap();
        assert_eq!(reply.status().as_u16(), 200, "{}", db.label());
        assert_eq!(stub.reserves.load(Ordering::SeqCst), 1);
        assert!(
            stub.commits.load(Ordering::SeqCst) >= 3,
            "the commit is retried"
        );
        assert_eq!(
            stub.releases.load(Ordering::SeqCst),
            0,
            "stored keys never give the TAN back"
        );
        let store = openwarn_submission::Store::new(
            openwarn_db::Database::open(db.url(), 1).await.unwrap(),
        );
        assert_eq!(store.count().await.unwrap(), 6, "{}", db.label());
        assert_eq!(store.pending_commits(10).await.unwrap().1, 1);

        // The reservation lapsed and verification reserves the TAN again (this stub always
        // does): the TAN still stores nothing, and the new reservation is given back.
        let replay = upload(&submission, 10).await.unwrap();
        assert_eq!(replay.status().as_u16(), 403, "{}", db.label());
        assert_eq!(
            store.count().await.unwrap(),
            6,
            "{}: nothing more",
            db.label()
        );
        assert_eq!(stub.releases.load(Ordering::SeqCst), 1);

        // Submission stops before verification is back; another one, started later on the same
        // database, commits the TAN once verification answers again.
        submission.shutdown().await.unwrap();
        stub.failing.store(false, Ordering::SeqCst);
        let restarted = openwarn_submission::start(config(&args)).await.unwrap();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
        while store.pending_commits(10).await.unwrap().1 > 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{}: the pending commit was never confirmed",
                db.label()
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(*stub.confirmed.lock().unwrap(), std::slice::from_ref(&tan));
        assert_eq!(store.count().await.unwrap(), 6, "{}", db.label());
        restarted.shutdown().await.unwrap();
        verification.shutdown().await.unwrap();
    }
}
