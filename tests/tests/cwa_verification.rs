//! cwa-verification-server's `VerificationApplicationExternalTest`, ported for the date-of-birth
//! flow (`keyDob`) and rapid tests: the app's requests go to a running verification, the lab's to
//! a running test-result (CWA's tests mock the test result server; here a lab posts the results).
//! Each test is named after the CWA test it comes from. Runs on SQLite + in-memory store, and on
//! PostgreSQL + Redis when configured (required with CI=true).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration test: a failure is a failed test"
)]

use openwarn_e2e::Chain;
use openwarn_e2e::cwa::{Reply, date_of_birth_key};
use openwarn_e2e::sha256_hex;
use serde_json::json;

/// Runs `case` against a fresh chain on every configured backend.
async fn on_every_backend<F, Fut>(case: F)
where
    F: Fn(Chain, String) -> Fut,
    Fut: std::future::Future<Output = Chain>,
{
    for (db, kv) in openwarn_testkit::backends() {
        let chain = Chain::start(&db, &kv, &[]).await;
        case(chain, db.label().to_owned()).await.shutdown().await;
    }
}

/// A fresh test: its GUID, the hash the app registers and the date-of-birth-bound id.
fn test_ids(day: u32) -> (String, String, String) {
    let guid = uuid::Uuid::new_v4().to_string().to_uppercase();
    let hash = sha256_hex(&guid);
    let dob = date_of_birth_key(&guid, day, 6, 1980);
    (guid, hash, dob)
}

async fn lab_posts(chain: &Chain, route: &str, id: &str, result: i64) {
    let reply = chain
        .lab_post_to(
            route,
            &json!({"labId": "lab-e2e", "testResults": [{"id": id, "result": result}]}),
        )
        .await;
    assert_eq!(reply.status, 204, "{route}: {:?}", reply.body);
}

fn token_of(reply: &Reply) -> String {
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    reply.body["registrationToken"].as_str().unwrap().to_owned()
}

async fn poll(chain: &Chain, token: &str) -> Reply {
    chain
        .app_post("testresult", &json!({"registrationToken": token}))
        .await
}

async fn tan(chain: &Chain, token: &str) -> Reply {
    chain
        .app_post("tan", &json!({"registrationToken": token}))
        .await
}

/// CWA `callGetRegistrationTokenByGuidAndDobHash`: registered, the date-of-birth id stored with
/// the session (lowercase, whichever case the app sent).
#[tokio::test]
async fn call_get_registration_token_by_guid_and_dob_hash() {
    on_every_backend(|chain, label| async move {
        let (_, hash, dob) = test_ids(1);
        let reply = chain
            .register_guid(&hash.to_uppercase(), Some(&dob.to_uppercase()))
            .await;
        token_of(&reply);
        let rows = chain.tables().await;
        let session = rows
            .iter()
            .find(|r| r.starts_with("app_sessions"))
            .expect("a session");
        assert!(
            session.contains(&format!("Some(\"{hash}\")")),
            "{label}: {session}"
        );
        assert!(
            session.contains(&format!("Some(\"{dob}\")")),
            "{label}: {session}"
        );
        chain
    })
    .await;
}

/// CWA `callGetRegistrationTokenByGuidAndDobHashAndWithoutDobHashAfterwards`,
/// `...AndWithAnotherDobHashAfterwards` and `...AndUseDobHashAgainAfterwards` (issue 17: (H1, D)
/// then (H2, D) is refused): 400, padded to the length of a success, nothing stored.
#[tokio::test]
async fn call_get_registration_token_by_guid_and_dob_hash_and_afterwards() {
    on_every_backend(|chain, label| async move {
        let (_, hash, dob) = test_ids(2);
        let first = chain.register_guid(&hash, Some(&dob)).await;
        token_of(&first);
        let before = chain.tables().await;
        let (_, other_hash, other_dob) = test_ids(3);
        for (case, key, key_dob) in [
            ("without dob hash", hash.as_str(), None),
            (
                "with another dob hash",
                hash.as_str(),
                Some(other_dob.as_str()),
            ),
            (
                "use dob hash again",
                other_hash.as_str(),
                Some(dob.as_str()),
            ),
            (
                "use dob hash again, other case",
                other_hash.as_str(),
                Some(&*dob.to_uppercase()),
            ),
            (
                "the guid hash as another's dob hash",
                other_hash.as_str(),
                Some(hash.as_str()),
            ),
        ] {
            let again = chain.register_guid(key, key_dob).await;
            assert_eq!(
                (again.status, again.error()),
                (400, Some("already_registered")),
                "{label}: {case}"
            );
            assert_eq!(
                again.len, first.len,
                "{label}: {case}: padded like a success"
            );
        }
        assert_eq!(chain.tables().await, before, "{label}: nothing stored");
        token_of(&chain.register_guid(&other_hash, Some(&other_dob)).await);
        chain
    })
    .await;
}

/// CWA `callGetRegistrationTokenByDobHash`: a date-of-birth id is not a GUID hash (CWA's key
/// pattern is `^[0-9A-Fa-f]{64}$`); and `keyDob` must match `^[XxA-Fa-f0-9]([A-Fa-f0-9]{63})$`
/// (CWA's `RegistrationTokenRequest`), with either key type.
#[tokio::test]
async fn call_get_registration_token_by_dob_hash() {
    on_every_backend(|chain, label| async move {
        let (_, hash, dob) = test_ids(4);
        let reply = chain.register_guid(&dob, None).await;
        assert_eq!(
            (reply.status, reply.error()),
            (400, Some("invalid_key")),
            "{label}"
        );
        for bad in ["x12", &format!("z{}", &dob[1..]), &format!("{dob}0")] {
            let reply = chain.register_guid(&hash, Some(bad)).await;
            assert_eq!(
                (reply.status, reply.error()),
                (400, Some("invalid_key_dob")),
                "{label}: {bad}"
            );
        }
        let reply = chain
            .app_post(
                "registrationToken",
                &json!({"key": "ABCDEFGHIJ", "keyType": "TELETAN", "keyDob": "x12"}),
            )
            .await;
        assert_eq!(
            (reply.status, reply.error()),
            (400, Some("invalid_key_dob"))
        );
        assert!(chain.tables().await.is_empty(), "{label}: nothing stored");
        chain
    })
    .await;
}

/// CWA `callGetTestStateWithDobRegistrationToken`: the lab posted the same result for the GUID
/// hash and the date-of-birth id; the app reads it (with sc and labId) and gets a TAN.
#[tokio::test]
async fn call_get_test_state_with_dob_registration_token() {
    on_every_backend(|chain, label| async move {
        let (_, hash, dob) = test_ids(5);
        let token = token_of(&chain.register_guid(&hash, Some(&dob)).await);
        let pending = poll(&chain, &token).await;
        assert_eq!(
            (pending.status, pending.body["testResult"].as_i64()),
            (200, Some(0))
        );
        lab_posts(&chain, "lab", &hash, 2).await;
        lab_posts(&chain, "lab", &dob, 2).await;
        let positive = poll(&chain, &token).await;
        assert_eq!(positive.status, 200, "{label}: {:?}", positive.body);
        assert_eq!(positive.body["testResult"], 2);
        assert!(positive.body["sc"].is_i64());
        assert_eq!(positive.body["labId"], "lab-e2e");
        let issued = tan(&chain, &token).await;
        assert_eq!(issued.status, 201, "{label}: {:?}", issued.body);
        chain
    })
    .await;
}

/// CWA `callGetTestStateWithDobRegistrationTokenAndTrsRespondsWithDifferentResults`: the result
/// for the date-of-birth id differs (or there is none: test-result answers pending) → 403,
/// padded to the length of a success. No TAN either (stricter than CWA, which checks only here).
#[tokio::test]
async fn call_get_test_state_with_dob_registration_token_and_trs_responds_with_different_results() {
    on_every_backend(|chain, label| async move {
        let (_, hash, dob) = test_ids(6);
        let token = token_of(&chain.register_guid(&hash, Some(&dob)).await);
        let success_len = poll(&chain, &token).await.len;
        // Only the GUID's result: the date-of-birth id reads pending.
        lab_posts(&chain, "lab", &hash, 2).await;
        for round in ["no result for the dob id", "a different result for it"] {
            let refused = poll(&chain, &token).await;
            assert_eq!(
                (refused.status, refused.error()),
                (403, Some("dob_mismatch")),
                "{label}: {round}"
            );
            assert_eq!(refused.len, success_len, "{label}: {round}: padded");
            let refused = tan(&chain, &token).await;
            assert_eq!(
                (refused.status, refused.error()),
                (403, Some("dob_mismatch")),
                "{label}: {round}"
            );
            lab_posts(&chain, "lab", &dob, 1).await;
        }
        // The lab corrects it: both positive.
        lab_posts(&chain, "lab", &dob, 2).await;
        assert_eq!(poll(&chain, &token).await.body["testResult"], 2);
        // A session without a date-of-birth id is not asked for one.
        let (_, plain, _) = test_ids(7);
        let plain_token = token_of(&chain.register_guid(&plain, None).await);
        lab_posts(&chain, "lab", &plain, 2).await;
        assert_eq!(poll(&chain, &plain_token).await.body["testResult"], 2);
        chain
    })
    .await;
}

/// CWA `callGenerateTanForQuickTest`: a rapid test registers as a GUID (the SHA-256 of the QR
/// code's hash, which the test centre posts to `/api/v1/quicktest/results`); the app reads the
/// rapid-test codes (5 pending, 7 positive, 9 once its TAN was used) and a positive yields a
/// TAN; a negative does not.
#[tokio::test]
async fn call_generate_tan_for_quick_test() {
    on_every_backend(|chain, label| async move {
        let qr_hash = sha256_hex(uuid::Uuid::new_v4().to_string());
        let registered = sha256_hex(&qr_hash);
        lab_posts(&chain, "quicktest", &qr_hash, 5).await;
        let token = token_of(&chain.register_guid(&registered, None).await);
        assert_eq!(poll(&chain, &token).await.body["testResult"], 5, "{label}");
        let refused = tan(&chain, &token).await;
        assert_eq!(
            (refused.status, refused.error()),
            (400, Some("result_not_positive"))
        );
        lab_posts(&chain, "quicktest", &qr_hash, 7).await;
        assert_eq!(poll(&chain, &token).await.body["testResult"], 7);
        let issued = tan(&chain, &token).await;
        assert_eq!(issued.status, 201, "{label}: {:?}", issued.body);
        chain.spend_tan(issued.body["tan"].as_str().unwrap()).await;
        assert_eq!(
            poll(&chain, &token).await.body["testResult"],
            9,
            "{label}: redeemed"
        );

        let negative_hash = sha256_hex(uuid::Uuid::new_v4().to_string());
        lab_posts(&chain, "quicktest", &negative_hash, 6).await;
        let token = token_of(&chain.register_guid(&sha256_hex(&negative_hash), None).await);
        assert_eq!(poll(&chain, &token).await.body["testResult"], 6);
        let refused = tan(&chain, &token).await;
        assert_eq!(
            (refused.status, refused.error()),
            (400, Some("result_not_positive"))
        );
        chain
    })
    .await;
}

/// A PoC-NAT result (cwa-testresult-server `pocnatResults`, `conversionCheck`) reaches the app as
/// the PCR code, and a positive one yields a TAN (the verification server sees 2), as with CWA.
#[tokio::test]
async fn call_generate_tan_for_pocnat_test() {
    on_every_backend(|chain, label| async move {
        let qr_hash = sha256_hex(uuid::Uuid::new_v4().to_string());
        let token = token_of(&chain.register_guid(&sha256_hex(&qr_hash), None).await);
        lab_posts(&chain, "pocnat", &qr_hash, 12).await;
        assert_eq!(poll(&chain, &token).await.body["testResult"], 2, "{label}");
        let issued = tan(&chain, &token).await;
        assert_eq!(issued.status, 201, "{label}: {:?}", issued.body);
        chain.spend_tan(issued.body["tan"].as_str().unwrap()).await;
        assert_eq!(
            poll(&chain, &token).await.body["testResult"],
            4,
            "{label}: redeemed"
        );
        chain
    })
    .await;
}

/// Issue 17: a lab posting an id in upper case and an app registering it in lower case (or the
/// other way round) meet: ids are stored lowercase on both sides.
#[tokio::test]
async fn ids_in_either_case_meet() {
    on_every_backend(|chain, label| async move {
        let (_, hash, _) = test_ids(8);
        lab_posts(&chain, "lab", &hash.to_uppercase(), 2).await;
        let token = token_of(&chain.register_guid(&hash, None).await);
        assert_eq!(poll(&chain, &token).await.body["testResult"], 2, "{label}");
        let (_, hash, _) = test_ids(9);
        lab_posts(&chain, "lab", &hash, 1).await;
        let token = token_of(&chain.register_guid(&hash.to_uppercase(), None).await);
        assert_eq!(poll(&chain, &token).await.body["testResult"], 1, "{label}");
        let again = chain.register_guid(&hash, None).await;
        assert_eq!(
            (again.status, again.error()),
            (400, Some("already_registered"))
        );
        chain
    })
    .await;
}
