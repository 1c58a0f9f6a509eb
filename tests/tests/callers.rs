//! Named callers over real mutual TLS: for every identity of the PKI and every internal method,
//! the allowed pairs are answered and every other pair is refused with `PERMISSION_DENIED`
//! (counted in metrics); a certificate from another CA, or an expired one, gets no answer at all.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration test: a failure is a failed test"
)]

use openwarn_e2e::{Chain, PKI_NAMES};
use openwarn_protocol::callers::CALLERS;
use openwarn_protocol::submission::v1::StreamDiagnosisKeysRequest;
use openwarn_protocol::submission::v1::submission_service_client::SubmissionServiceClient;
use openwarn_protocol::testresult::v1::test_result_service_client::TestResultServiceClient;
use openwarn_protocol::testresult::v1::{GetTestResultRequest, MarkRedeemedRequest};
use openwarn_protocol::verification::v1::verification_service_client::VerificationServiceClient;
use openwarn_protocol::verification::v1::{
    CommitTanRequest, IssueTeleTanRequest, ReleaseTanRequest, ReserveTanRequest, TeleTanType,
    VerifyTanRequest,
};
use openwarn_testkit::TestDatabase;
use tonic::Code;
use tonic::transport::Channel;

/// A channel to the service behind `path`, as `files` (a certificate and key, and the CA).
fn channel(chain: &Chain, files: &openwarn_mtls::TlsFiles, path: &str) -> Channel {
    let (addr, server) = if path.starts_with("/openwarn.verification.") {
        (chain.verification_addr("grpc"), "verification")
    } else if path.starts_with("/openwarn.testresult.") {
        (chain.test_result_addr("grpc"), "test-result")
    } else {
        (chain.submission_addr("grpc"), "submission")
    };
    files
        .grpc_channel(&format!("https://{addr}"), server)
        .unwrap()
}

/// Calls `path` with a harmless request; `None` when answered OK, else the status code.
async fn call(channel: Channel, path: &str) -> Option<Code> {
    let tan = uuid::Uuid::new_v4().to_string();
    let hashed_guid = openwarn_domain::sha256_hex(&tan);
    let method = path.rsplit('/').next().unwrap();
    let outcome = if path.starts_with("/openwarn.verification.") {
        let mut c = VerificationServiceClient::new(channel);
        match method {
            "VerifyTan" => c.verify_tan(VerifyTanRequest { tan }).await.map(drop),
            "ReserveTan" => c.reserve_tan(ReserveTanRequest { tan }).await.map(drop),
            "CommitTan" => c
                .commit_tan(CommitTanRequest {
                    tan,
                    reservation_id: uuid::Uuid::new_v4().to_string(),
                })
                .await
                .map(drop),
            "ReleaseTan" => c
                .release_tan(ReleaseTanRequest {
                    tan,
                    reservation_id: uuid::Uuid::new_v4().to_string(),
                })
                .await
                .map(drop),
            "IssueTeleTan" => c
                .issue_tele_tan(IssueTeleTanRequest {
                    r#type: TeleTanType::Test as i32,
                })
                .await
                .map(drop),
            other => panic!("a method this test does not know: {other}"),
        }
    } else if path.starts_with("/openwarn.testresult.") {
        let mut c = TestResultServiceClient::new(channel);
        match method {
            "GetTestResult" => c
                .get_test_result(GetTestResultRequest { hashed_guid })
                .await
                .map(drop),
            "MarkRedeemed" => c
                .mark_redeemed(MarkRedeemedRequest {
                    hashed_guid,
                    hashed_guids: Vec::new(),
                })
                .await
                .map(drop),
            other => panic!("a method this test does not know: {other}"),
        }
    } else {
        let mut c = SubmissionServiceClient::new(channel);
        match method {
            "StreamDiagnosisKeys" => c
                .stream_diagnosis_keys(StreamDiagnosisKeysRequest {
                    from_hour: 0,
                    until_hour: 1,
                })
                .await
                .map(drop),
            other => panic!("a method this test does not know: {other}"),
        }
    };
    outcome.err().map(|status| status.code())
}

#[tokio::test]
async fn every_internal_method_answers_only_its_named_callers() {
    let db = TestDatabase::sqlite();
    let chain = Chain::start(&db, "memory://", &[]).await;
    for identity in PKI_NAMES {
        let files = chain.pki.files(identity).unwrap();
        for (path, callers) in CALLERS {
            let code = call(channel(&chain, &files, path), path).await;
            if callers.contains(identity) {
                assert_ne!(
                    code,
                    Some(Code::PermissionDenied),
                    "{identity} may call {path}"
                );
                assert_ne!(code, Some(Code::Unavailable), "{identity} {path}");
            } else {
                assert_eq!(
                    code,
                    Some(Code::PermissionDenied),
                    "{identity} may not call {path}"
                );
            }
        }
    }

    // Refusals are counted by caller and method (a certificate naming no service is `unknown`).
    let metrics = openwarn_testkit::scrape(chain.verification_addr("admin")).await;
    for (caller, method) in [
        ("submission", "IssueTeleTan"),
        ("distribution", "ReserveTan"),
        ("unknown", "CommitTan"),
    ] {
        let series = format!(
            "openwarn_grpc_calls_denied_total{{caller=\"{caller}\",method=\"/openwarn.verification.v1.VerificationService/{method}\"}}"
        );
        assert!(metrics.contains(&series), "{series} in\n{metrics}");
    }

    // A certificate of another CA, and an expired certificate of the internal CA, each naming
    // the right caller: no answer on any port.
    let (_other_dir, other) =
        openwarn_testkit::dev_pki(&["portal", "submission", "verification", "distribution"]);
    let now = std::time::SystemTime::now();
    let day = std::time::Duration::from_secs(86_400);
    for (path, callers) in CALLERS {
        let caller = callers[0];
        let expired = format!("{caller}-expired");
        chain
            .pki
            .issue(caller, &expired, now - 30 * day, now - day)
            .unwrap();
        for (what, cert, key) in [
            ("of another CA", other.cert(caller), other.key(caller)),
            ("expired", chain.pki.cert(&expired), chain.pki.key(&expired)),
        ] {
            let files = openwarn_mtls::TlsFiles::load(&chain.pki.ca(), &cert, &key).unwrap();
            let code = call(channel(&chain, &files, path), path).await;
            assert!(
                matches!(
                    code,
                    Some(Code::Unavailable | Code::Unknown | Code::Internal)
                ),
                "{caller} {what} at {path}: {code:?}"
            );
        }
    }
    chain.shutdown().await;
}
