//! cwa-testresult-server's `TestResultControllerTest`, ported: its externally visible cases run
//! against a running test-result (lab API over HTTPS with an allow-listed client certificate;
//! results read back as verification reads them, over gRPC with mutual TLS, where CWA's test reads
//! `/api/v1/app/result`). Each test is named after the CWA test it comes from. Runs on SQLite, and
//! on PostgreSQL when configured (required with CI=true).
//!
//! One deliberate difference: CWA's rapid-test and PoC-NAT tests send `sc` in milliseconds
//! (`System.currentTimeMillis()`), which CWA stores unchecked; we refuse a sample time in the
//! future (400, field `testResults[0].sc`), so the ports send seconds, and
//! [`a_sample_time_in_milliseconds_is_refused_as_in_the_future`] shows the refusal.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration test: a failure is a failed test"
)]

use openwarn_e2e::{Chain, sha256_hex};
use openwarn_protocol::testresult::v1::GetTestResultRequest;
use serde_json::{Value, json};

/// Runs `case` against a fresh chain on every configured backend.
async fn on_every_backend<F, Fut>(case: F)
where
    F: Fn(Chain) -> Fut,
    Fut: std::future::Future<Output = Chain>,
{
    for (db, kv) in openwarn_testkit::backends() {
        let chain = Chain::start(&db, &kv, &[]).await;
        case(chain).await.shutdown().await;
    }
}

/// Result, sample time and lab id test-result answers verification for `id`.
async fn get(chain: &Chain, id: &str) -> (i32, Option<i64>, Option<String>) {
    let r = chain
        .test_result_grpc()
        .get_test_result(GetTestResultRequest {
            hashed_guid: id.to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    (r.result, r.sample_collected_at, r.lab_id)
}

fn now() -> i64 {
    openwarn_bootstrap::lifecycle::unix_now()
}

fn one(id: &str, result: i64, sc: Option<i64>, lab_id: Option<&str>) -> Value {
    let mut entry = json!({"id": id, "result": result});
    if let Some(sc) = sc {
        entry["sc"] = sc.into();
    }
    let mut body = json!({"testResults": [entry]});
    if let Some(lab_id) = lab_id {
        body["labId"] = lab_id.into();
    }
    body
}

async fn expect_status(chain: &Chain, route: &str, body: &Value, status: u16) -> Value {
    let reply = chain.lab_post_to(route, body).await;
    assert_eq!(reply.status, status, "{route} {body}: {:?}", reply.body);
    reply.body
}

/// CWA `insertInvalidIdShouldReturnBadRequest`: a bare list with an empty id.
#[tokio::test]
async fn insert_invalid_id_should_return_bad_request() {
    on_every_backend(|chain| async move {
        expect_status(&chain, "lab", &json!([{"id": "", "result": 0}]), 400).await;
        let body = expect_status(&chain, "lab", &one("", 1, None, None), 400).await;
        assert_eq!(body["field"], "testResults[0].id");
        assert!(chain.tables().await.is_empty(), "nothing stored");
        chain
    })
    .await;
}

/// CWA `insertInvalidResultShouldReturnBadRequest`: no result, and the PoC-NAT code 10 on the
/// PCR route.
#[tokio::test]
async fn insert_invalid_result_should_return_bad_request() {
    on_every_backend(|chain| async move {
        let id = "a".repeat(64);
        let body = expect_status(&chain, "lab", &json!({"testResults": [{"id": id}]}), 400).await;
        assert_eq!(body["field"], "testResults[0].result");
        let body = expect_status(&chain, "lab", &one(&id, 10, None, None), 400).await;
        assert_eq!(body["field"], "testResults[0].result");
        assert!(chain.tables().await.is_empty(), "nothing stored");
        chain
    })
    .await;
}

/// CWA `insertValidShouldReturnNoContentWithoutLabId` and `insertValidAndGetShouldReturnOkWithoutLabId`.
#[tokio::test]
async fn insert_valid_and_get_should_return_ok_without_lab_id() {
    on_every_backend(|chain| async move {
        let id = "c".repeat(64);
        expect_status(&chain, "lab", &one(&id, 1, None, None), 204).await;
        let (result, sc, lab_id) = get(&chain, &id).await;
        assert_eq!(result, 1);
        assert!(sc.is_some(), "the time of insertion stands in for sc");
        assert_eq!(lab_id, None);
        chain
    })
    .await;
}

/// CWA `insertValidShouldReturnNoContentWithLabId` and `insertValidAndGetShouldReturnOkWithLabId`.
#[tokio::test]
async fn insert_valid_and_get_should_return_ok_with_lab_id() {
    on_every_backend(|chain| async move {
        let id = "c".repeat(64);
        let lab = "l".repeat(64);
        let sent = now() - 60;
        expect_status(&chain, "lab", &one(&id, 1, Some(sent), Some(&lab)), 204).await;
        assert_eq!(get(&chain, &id).await, (1, Some(sent), Some(lab)));
        chain
    })
    .await;
}

/// CWA `insertValidDobHashShouldReturnNoContentWithLabId`: a date-of-birth-bound id (`x` + 63
/// hex) is an id; and (issue 17) ids in either case are stored lowercase, so a poll in either
/// case finds the result.
#[tokio::test]
async fn insert_valid_dob_hash_should_return_no_content_with_lab_id() {
    on_every_backend(|chain| async move {
        let dob_id = format!("x{}", "b".repeat(63));
        expect_status(
            &chain,
            "lab",
            &one(&dob_id, 1, None, Some(&"l".repeat(64))),
            204,
        )
        .await;
        assert_eq!(get(&chain, &dob_id).await.0, 1);
        assert_eq!(get(&chain, &dob_id.to_uppercase()).await.0, 1);
        let upper = "ABCDEF0123456789".repeat(4);
        expect_status(&chain, "lab", &one(&upper, 2, None, None), 204).await;
        assert_eq!(get(&chain, &upper.to_lowercase()).await.0, 2);
        assert_eq!(get(&chain, &upper).await.0, 2);
        for bad in [
            format!("y{}", "b".repeat(63)),
            format!("bx{}", "b".repeat(62)),
        ] {
            let body = expect_status(&chain, "lab", &one(&bad, 1, None, None), 400).await;
            assert_eq!(body["field"], "testResults[0].id");
        }
        chain
    })
    .await;
}

/// CWA `notExistingTestResultShouldReturnOk`: an id no lab posted reads pending.
#[tokio::test]
async fn not_existing_test_result_should_return_ok() {
    on_every_backend(|chain| async move {
        assert_eq!(get(&chain, &"d".repeat(64)).await.0, 0);
        chain
    })
    .await;
}

/// CWA `quickInsertValidShouldReturnNoContent`, `quickInsertValidWithCsShouldReturnNoContent`,
/// `quickInsertValidWithCsShouldReturnNoContentWithLabId` and
/// `quickInsertValidWithCsShouldReturnNoContentAndQueryResult`: a rapid test's result is stored
/// under the SHA-256 of the id posted (what the app registers) and read back with its sc.
#[tokio::test]
async fn quick_insert_valid_with_cs_should_return_no_content_and_query_result() {
    on_every_backend(|chain| async move {
        let id = "b".repeat(64);
        let sc = now() - 120;
        expect_status(&chain, "quicktest", &one(&id, 5, None, None), 204).await;
        expect_status(
            &chain,
            "quicktest",
            &one(&id, 5, Some(sc), Some(&"l".repeat(64))),
            204,
        )
        .await;
        assert_eq!(
            get(&chain, &sha256_hex(&id)).await,
            (5, Some(sc), Some("l".repeat(64)))
        );
        assert_eq!(
            get(&chain, &id).await.0,
            0,
            "not stored under the id posted"
        );
        chain
    })
    .await;
}

/// CWA `quickInsertValidWithDobHashAndWithCsShouldReturnNoContent`.
#[tokio::test]
async fn quick_insert_valid_with_dob_hash_and_with_cs_should_return_no_content() {
    on_every_backend(|chain| async move {
        let id = format!("x{}", "b".repeat(63));
        expect_status(&chain, "quicktest", &one(&id, 5, Some(now()), None), 204).await;
        assert_eq!(get(&chain, &sha256_hex(&id)).await.0, 5);
        chain
    })
    .await;
}

/// CWA `quickInsertInValidShouldReturnUnprocessableEntity` (a 400 despite its name): 4 is not a
/// rapid-test code; nor is anything outside 5 to 9. Every code from 5 to 9 is accepted.
#[tokio::test]
async fn quick_insert_in_valid_should_return_unprocessable_entity() {
    on_every_backend(|chain| async move {
        let id = "b".repeat(64);
        for code in [4, 0, 2, 10, 12] {
            let body = expect_status(&chain, "quicktest", &one(&id, code, None, None), 400).await;
            assert_eq!(body["field"], "testResults[0].result", "{code}");
        }
        assert!(chain.tables().await.is_empty(), "nothing stored");
        for code in 5..=9 {
            expect_status(&chain, "quicktest", &one(&id, code, None, None), 204).await;
            assert_eq!(i64::from(get(&chain, &sha256_hex(&id)).await.0), code);
        }
        chain
    })
    .await;
}

/// CWA `pocnatInsertValidShouldReturnNoContent`, `pocnatInsertValidWithCsShouldReturnNoContent`,
/// `pocnatInsertValidWithCsShouldReturnNoContentWithLabId`,
/// `pocnatInsertValidWithDobHashAndWithCsShouldReturnNoContent` and
/// `pocnatInsertValidWithCsShouldReturnNoContentAndQueryResult`: stored under the SHA-256 of the id
/// posted, read as the PCR code (CWA's `conversionCheck`: 10 to 14 answer 0 to 4).
#[tokio::test]
async fn pocnat_insert_valid_with_cs_should_return_no_content_and_query_result() {
    on_every_backend(|chain| async move {
        let id = "b".repeat(64);
        let dob_id = format!("x{}", "b".repeat(63));
        let sc = now() - 30;
        expect_status(&chain, "pocnat", &one(&id, 10, None, None), 204).await;
        expect_status(
            &chain,
            "pocnat",
            &one(&id, 10, Some(sc), Some(&"l".repeat(64))),
            204,
        )
        .await;
        expect_status(&chain, "pocnat", &one(&dob_id, 12, Some(sc), None), 204).await;
        assert_eq!(
            get(&chain, &sha256_hex(&id)).await,
            (0, Some(sc), Some("l".repeat(64)))
        );
        assert_eq!(get(&chain, &sha256_hex(&dob_id)).await.0, 2);
        chain
    })
    .await;
}

/// CWA `pocnatInsertInValidShouldReturnUnprocessableEntity`: 9 (a rapid-test code) is not a
/// PoC-NAT code; nor is anything outside 10 to 14.
#[tokio::test]
async fn pocnat_insert_in_valid_should_return_unprocessable_entity() {
    on_every_backend(|chain| async move {
        let id = "b".repeat(64);
        for code in [9, 0, 2, 5, 15] {
            let body = expect_status(&chain, "pocnat", &one(&id, code, None, None), 400).await;
            assert_eq!(body["field"], "testResults[0].result", "{code}");
        }
        assert!(chain.tables().await.is_empty(), "nothing stored");
        chain
    })
    .await;
}

/// The deliberate difference named at the top: CWA's tests' millisecond `sc` is in the future.
#[tokio::test]
async fn a_sample_time_in_milliseconds_is_refused_as_in_the_future() {
    on_every_backend(|chain| async move {
        let millis = now() * 1000;
        for (route, code) in [("quicktest", 5), ("pocnat", 10), ("lab", 1)] {
            let body = expect_status(
                &chain,
                route,
                &one(&"b".repeat(64), code, Some(millis), None),
                400,
            )
            .await;
            assert_eq!(body["field"], "testResults[0].sc", "{route}");
        }
        chain
    })
    .await;
}

/// The rapid-test and PoC-NAT routes are the lab route's machinery: a client certificate that is
/// not allow-listed never gets an answer, whatever the route.
#[tokio::test]
async fn every_lab_route_admits_only_allow_listed_labs() {
    let db = openwarn_testkit::TestDatabase::sqlite();
    let chain = Chain::start(&db, "memory://", &[]).await;
    for route in ["lab", "quicktest", "pocnat"] {
        for client in [chain.lab_client(Some("rogue-lab")), chain.lab_client(None)] {
            let sent = client
                .post(chain.lab_route_url(route))
                .json(&one(&"b".repeat(64), 7, None, None))
                .send()
                .await;
            assert!(sent.is_err(), "{route}: refused in the handshake");
        }
    }
    assert!(chain.tables().await.is_empty(), "nothing stored");
    chain.shutdown().await;
}
