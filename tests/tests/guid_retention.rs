//! Issue 17: a hashed GUID is kept exactly as long as the lab's result for it can be read, so the
//! same GUID can never register again (and get more TANs) while its result is there — across
//! verification's and test-result's retention, with the clock moved by running each retention
//! job at a later `now`. Runs on SQLite + in-memory store, and on PostgreSQL + Redis when
//! configured (required with CI=true).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration test: a failure is a failed test"
)]

use openwarn_e2e::{Chain, sha256_hex};
use openwarn_protocol::testresult::v1::GetTestResultRequest;
use serde_json::json;

const DAY: i64 = 86_400;

fn verification_store(
    chain: &Chain,
) -> impl std::future::Future<Output = openwarn_verification::Store> {
    let url = chain.verification_db.url().to_owned();
    async move { openwarn_verification::Store::new(openwarn_db::Database::open(&url, 2).await.unwrap()) }
}

/// Verification's client of test-result, as its retention job has it.
fn test_results(chain: &Chain) -> openwarn_verification::TestResults {
    openwarn_verification::TestResults::new(chain.test_result_channel())
}

/// The rows of both databases that name `id`.
async fn rows_naming(chain: &Chain, id: &str) -> Vec<String> {
    chain
        .tables()
        .await
        .into_iter()
        .filter(|r| r.contains(id))
        .collect()
}

#[tokio::test]
async fn a_guid_registers_again_only_once_its_result_is_gone() {
    for (db, kv) in openwarn_testkit::backends() {
        let label = db.label();
        let mut chain = Chain::start(&db, &kv, &[]).await;
        let now = openwarn_bootstrap::lifecycle::unix_now();
        let hashed = sha256_hex(uuid::Uuid::new_v4().to_string());
        let posted = chain
            .lab_post_to(
                "lab",
                &json!({"labId": "lab", "testResults": [{"id": hashed, "result": 2}]}),
            )
            .await;
        assert_eq!(posted.status, 204);
        let first = chain.register_guid(&hashed, None).await;
        assert_eq!(first.status, 201, "{label}: {:?}", first.body);
        let held_until = chain
            .test_result_grpc()
            .get_test_result(GetTestResultRequest {
                hashed_guid: hashed.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .held_until;
        assert!(
            (now + 60 * DAY..=now + 60 * DAY + 60).contains(&held_until),
            "{label}: held 60 days from when test-result first saw it"
        );

        // 22 days on: the session is past its retention (21 days), the result is not.
        let store = verification_store(&chain).await;
        let results = test_results(&chain);
        let run =
            openwarn_verification::retention::apply(&store, &results, now + 22 * DAY, 21 * DAY)
                .await
                .unwrap();
        assert_eq!((run.buried, run.deferred), (1, false), "{label}");
        let left = rows_naming(&chain, &hashed).await;
        assert_eq!(
            left,
            vec![
                left.iter()
                    .find(|r| r.starts_with("test_results"))
                    .cloned()
                    .expect("the result"),
                format!("guid_tombstones (\"{hashed}\", {held_until})"),
            ],
            "{label}: the result and a tombstone of the id and its time, nothing else"
        );
        let again = chain.register_guid(&hashed, None).await;
        assert_eq!(
            (again.status, again.error()),
            (400, Some("already_registered")),
            "{label}: registering again while the result is held"
        );
        assert_eq!(chain.stored_result(&hashed).await, 2, "{label}: still held");

        // A later run keeps the tombstone to its last second, and drops it after.
        let run = openwarn_verification::retention::apply(&store, &results, held_until, 21 * DAY)
            .await
            .unwrap();
        assert_eq!((run.buried, run.deleted), (0, 0), "{label}");
        let tr = openwarn_test_result::Store::new(
            openwarn_db::Database::open(chain.test_result_db.url(), 1)
                .await
                .unwrap(),
        );
        assert_eq!(
            tr.apply_retention(held_until, 21 * DAY, 60 * DAY)
                .await
                .unwrap()
                .1,
            0,
            "{label}: test-result holds it to the same second"
        );
        assert_eq!(
            tr.apply_retention(held_until + 1, 21 * DAY, 60 * DAY)
                .await
                .unwrap()
                .1,
            1,
            "{label}"
        );
        let run =
            openwarn_verification::retention::apply(&store, &results, held_until + 1, 21 * DAY)
                .await
                .unwrap();
        assert_eq!(run.deleted, 1, "{label}: the tombstone");
        assert_eq!(
            rows_naming(&chain, &hashed).await,
            Vec::<String>::new(),
            "{label}: nothing of the GUID remains in either database"
        );
        let later = chain.register_guid(&hashed, None).await;
        assert_eq!(later.status, 201, "{label}: the id is unknown again");

        // test-result down: a session past its retention stays until it answers.
        let other = sha256_hex(uuid::Uuid::new_v4().to_string());
        let registered = chain.register_guid(&other, None).await;
        assert_eq!(registered.status, 201);
        // The phone polls: the session is its own (an unused one could be registered anew).
        let polled = chain
            .app_post(
                "testresult",
                &json!({"registrationToken": registered.body["registrationToken"]}),
            )
            .await;
        assert_eq!(polled.status, 200, "{label}");
        chain.stop_test_result().await;
        let run =
            openwarn_verification::retention::apply(&store, &results, now + 22 * DAY, 21 * DAY)
                .await
                .unwrap();
        assert!(run.deferred, "{label}");
        assert_eq!(run.buried, 0, "{label}");
        let again = chain.register_guid(&other, None).await;
        assert_eq!(
            (again.status, again.error()),
            (400, Some("already_registered")),
            "{label}: the session is kept"
        );
        chain.shutdown().await;
    }
}
