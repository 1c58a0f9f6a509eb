//! Uploads over real sockets: TAN reserve → store → commit, every error code, a TAN spent exactly
//! once under concurrency, a storage failure that keeps the TAN usable, a verification outage.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration test: a failure is a failed test"
)]

use openwarn_e2e::{Chain, payload};
use openwarn_protocol::Message;
use openwarn_protocol::cwa::SubmissionPayload;
use openwarn_protocol::verification::v1::VerifyTanRequest;
use serde_json::Value;

/// TAN header, content type, body, expected status, expected reason.
type Case<'a> = (Option<&'a str>, &'a str, Vec<u8>, u16, &'a str);

struct Reply {
    status: u16,
    reason: Option<String>,
}

async fn submit(
    chain: &Chain,
    tan: Option<&str>,
    content_type: &str,
    body: Vec<u8>,
    fake: bool,
) -> Reply {
    let mut request = chain
        .app
        .post(chain.submission_url())
        .header("content-type", content_type)
        .header("cwa-fake", if fake { "1" } else { "0" })
        .body(body);
    if let Some(tan) = tan {
        request = request.header("cwa-authorization", tan);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    Reply {
        status,
        reason: body["error"].as_str().map(str::to_owned),
    }
}

async fn upload(chain: &Chain, tan: &str, p: &SubmissionPayload) -> Reply {
    submit(
        chain,
        Some(tan),
        "application/x-protobuf",
        p.encode_to_vec(),
        false,
    )
    .await
}

async fn stored(chain: &Chain) -> i64 {
    let db = openwarn_db::Database::open(chain.submission_db.url(), 1)
        .await
        .unwrap();
    openwarn_submission::Store::new(db).count().await.unwrap()
}

#[tokio::test]
async fn keys_uploaded_with_a_tan_come_back_through_the_stream() {
    for (db, kv) in openwarn_testkit::backends() {
        let chain = Chain::start(&db, &kv, &[]).await;
        let tan = chain.fresh_tan().await;
        let reply = upload(&chain, &tan, &payload(14, 7)).await;
        assert_eq!(reply.status, 200, "{}: {:?}", db.label(), reply.reason);
        // The TAN is spent.
        let again = upload(&chain, &tan, &payload(14, 8)).await;
        assert_eq!(
            (again.status, again.reason.as_deref()),
            (403, Some("tan_not_valid"))
        );

        let keys = chain.streamed_keys().await;
        assert_eq!(keys.len(), 14, "{}", db.label());
        let hour = openwarn_bootstrap::lifecycle::unix_now() / 3600;
        for k in &keys {
            assert_eq!(k.key_data.len(), 16);
            assert_eq!(k.key_data[1], 7);
            assert_eq!(k.transmission_risk_level, 6);
            assert_eq!(
                k.days_since_onset_of_symptoms,
                openwarn_submission::rules::dsos_from_trl(6),
                "derived"
            );
            assert_eq!(k.origin, "DE");
            assert_eq!(k.visited_countries, vec!["DE", "FR"], "the origin added");
            assert!(k.consent_to_federation);
            assert!((hour - 1..=hour).contains(&k.submission_hour));
        }
        let mut sorted = keys.iter().map(|k| k.key_data.clone()).collect::<Vec<_>>();
        sorted.sort();
        assert_eq!(
            sorted,
            keys.iter().map(|k| k.key_data.clone()).collect::<Vec<_>>(),
            "ordered by key bytes"
        );
        chain.shutdown().await;
    }
}

/// As CWA accepts them (its own tests upload such payloads): a key repeated at the same rolling
/// start is stored once, the same key data at another rolling start is another key.
#[tokio::test]
async fn repeated_key_data_is_accepted_and_stored_once_per_rolling_start() {
    for (db, kv) in openwarn_testkit::backends() {
        let chain = Chain::start(&db, &kv, &[]).await;
        let tan = chain.fresh_tan().await;
        let mut p = payload(2, 9);
        let mut again = p.keys[0].clone();
        p.keys.push(again.clone());
        again.rolling_start_interval_number =
            again.rolling_start_interval_number.map(|s| s - 144 * 3);
        p.keys.push(again);
        let reply = upload(&chain, &tan, &p).await;
        assert_eq!(reply.status, 200, "{}: {:?}", db.label(), reply.reason);
        let mut keys: Vec<(Vec<u8>, i32)> = chain
            .streamed_keys()
            .await
            .into_iter()
            .map(|k| (k.key_data, k.rolling_start_interval_number))
            .collect();
        keys.sort();
        assert_eq!(keys.len(), 3, "{}: {keys:?}", db.label());
        assert_eq!(keys[0].0, keys[1].0, "one key data at two rolling starts");
        assert_ne!(keys[0].1, keys[1].1);
        chain.shutdown().await;
    }
}

#[tokio::test]
async fn every_error_has_its_code_and_changes_nothing() {
    for (db, kv) in openwarn_testkit::backends() {
        let chain = Chain::start(&db, &kv, &[]).await;
        let tan = chain.fresh_tan().await;
        let good = payload(3, 1).encode_to_vec();
        let proto = "application/x-protobuf";
        let mut too_many = payload(15, 1);
        too_many.keys.truncate(15);
        let mut misaligned = payload(1, 1);
        misaligned.keys[0].rolling_start_interval_number =
            Some(misaligned.keys[0].rolling_start_interval_number() - 1);
        let mut bad_country = payload(1, 1);
        bad_country.visited_countries = vec!["XX".into()];
        let cases: Vec<Case> = vec![
            (
                Some(&tan),
                "application/json",
                good.clone(),
                415,
                "unsupported_media_type",
            ),
            (
                Some(&tan),
                proto,
                vec![0; 101 * 1024],
                413,
                "payload_too_large",
            ),
            (None, proto, good.clone(), 400, "missing_authorization"),
            // CWA: an empty header is a missing one (400), not a wrong TAN.
            (Some(""), proto, good.clone(), 400, "missing_authorization"),
            (Some("not-a-tan"), proto, good.clone(), 403, "tan_not_valid"),
            (
                Some(&tan),
                proto,
                vec![0xff, 0xff, 0xff],
                400,
                "invalid_payload",
            ),
            (
                Some(&tan),
                proto,
                too_many.encode_to_vec(),
                400,
                "too_many_keys",
            ),
            (
                Some(&tan),
                proto,
                misaligned.encode_to_vec(),
                400,
                "misaligned_rolling_start",
            ),
            (
                Some(&tan),
                proto,
                bad_country.encode_to_vec(),
                400,
                "unsupported_country",
            ),
        ];
        for (t, content_type, body, status, reason) in cases {
            let reply = submit(&chain, t, content_type, body, false).await;
            assert_eq!(
                (reply.status, reply.reason.as_deref()),
                (status, Some(reason)),
                "{}",
                db.label()
            );
        }
        let unknown = upload(&chain, &uuid::Uuid::new_v4().to_string(), &payload(3, 1)).await;
        assert_eq!(
            (unknown.status, unknown.reason.as_deref()),
            (403, Some("tan_not_valid"))
        );
        // Without `cwa-fake` (CWA routes by its value and has no route without it): 400.
        let no_header = chain
            .app
            .post(chain.submission_url())
            .header("content-type", proto)
            .header("cwa-authorization", &tan)
            .body(good.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(no_header.status().as_u16(), 400);
        let body: Value = no_header.json().await.unwrap();
        assert_eq!(body["error"], "missing_fake_header");
        // A fake is answered 200 and does nothing: nothing stored, the TAN still valid.
        let fake = submit(&chain, Some(&tan), proto, good.clone(), true).await;
        assert_eq!(fake.status, 200);
        assert_eq!(stored(&chain).await, 0, "{}", db.label());
        // None of it cost the user the TAN.
        assert_eq!(upload(&chain, &tan, &payload(3, 1)).await.status, 200);
        assert_eq!(stored(&chain).await, 3);
        chain.shutdown().await;
    }
}

#[tokio::test]
async fn a_tan_is_spent_exactly_once_under_concurrent_uploads() {
    for (db, kv) in openwarn_testkit::backends() {
        let chain = std::sync::Arc::new(Chain::start(&db, &kv, &[]).await);
        let tan = chain.fresh_tan().await;
        let mut tasks = Vec::new();
        for seed in 0..8u8 {
            let (chain, tan) = (chain.clone(), tan.clone());
            tasks.push(tokio::spawn(async move {
                upload(&chain, &tan, &payload(5, seed + 10)).await.status
            }));
        }
        let mut statuses = Vec::new();
        for t in tasks {
            statuses.push(t.await.unwrap());
        }
        statuses.sort_unstable();
        assert_eq!(
            statuses,
            vec![200, 403, 403, 403, 403, 403, 403, 403],
            "{}",
            db.label()
        );
        assert_eq!(stored(&chain).await, 5, "only the winner's keys");
        std::sync::Arc::into_inner(chain).unwrap().shutdown().await;
    }
}

#[tokio::test]
async fn a_failed_write_keeps_the_tan_usable() {
    for (db, kv) in openwarn_testkit::backends() {
        let chain = Chain::start(&db, &kv, &[]).await;
        let tan = chain.fresh_tan().await;
        let admin = openwarn_db::Database::open(chain.submission_db.url(), 1)
            .await
            .unwrap();
        // Inject the failure: the table the keys go to is gone.
        admin
            .run(|c| {
                diesel::connection::SimpleConnection::batch_execute(
                    c,
                    "ALTER TABLE diagnosis_keys RENAME TO diagnosis_keys_away",
                )
            })
            .await
            .unwrap();
        let reply = upload(&chain, &tan, &payload(4, 3)).await;
        assert_eq!(
            (reply.status, reply.reason.as_deref()),
            (503, Some("dependency_unavailable")),
            "{}",
            db.label()
        );
        let verified = chain
            .verification_grpc("submission")
            .verify_tan(VerifyTanRequest { tan: tan.clone() })
            .await
            .unwrap()
            .into_inner();
        assert!(
            verified.valid,
            "{}: the TAN survived the failed write",
            db.label()
        );
        admin
            .run(|c| {
                diesel::connection::SimpleConnection::batch_execute(
                    c,
                    "ALTER TABLE diagnosis_keys_away RENAME TO diagnosis_keys",
                )
            })
            .await
            .unwrap();
        let retry = upload(&chain, &tan, &payload(4, 3)).await;
        assert_eq!(
            retry.status,
            200,
            "{}: the retry with the same TAN succeeds: {:?}",
            db.label(),
            retry.reason
        );
        assert_eq!(stored(&chain).await, 4);
        chain.shutdown().await;
    }
}

#[tokio::test]
async fn a_verification_outage_is_a_503_and_stores_nothing() {
    for (db, kv) in openwarn_testkit::backends() {
        let mut chain = Chain::start(&db, &kv, &[]).await;
        let tan = chain.fresh_tan().await;
        chain.stop_verification().await;
        let reply = upload(&chain, &tan, &payload(2, 5)).await;
        assert_eq!(
            (reply.status, reply.reason.as_deref()),
            (503, Some("dependency_unavailable")),
            "{}",
            db.label()
        );
        assert_eq!(stored(&chain).await, 0);
        chain.shutdown().await;
    }
}

#[tokio::test]
async fn the_whole_path_through_the_proxy() {
    for (db, kv) in openwarn_testkit::backends() {
        let chain = Chain::start(&db, &kv, &[]).await;
        let phone = openwarn_testkit::http_client();
        // Lab result, registration, TAN: all of the phone's requests go through the proxy.
        let (_, tan) = chain.positive_session(&phone, |e| chain.proxy_url(e)).await;
        let r = phone
            .post(chain.proxy_url("diagnosis-keys"))
            .header("content-type", "application/x-protobuf")
            .header("cwa-authorization", &tan)
            .header("cwa-fake", "0")
            .body(payload(10, 42).encode_to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{}", db.label());
        let again = phone
            .post(chain.proxy_url("diagnosis-keys"))
            .header("content-type", "application/x-protobuf")
            .header("cwa-authorization", &tan)
            .header("cwa-fake", "0")
            .body(payload(10, 43).encode_to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(again.status().as_u16(), 403, "the TAN is spent");
        let keys = chain.streamed_keys().await;
        assert_eq!(keys.len(), 10, "{}", db.label());
        assert!(keys.iter().all(|k| k.key_data[1] == 42));
        chain.shutdown().await;
    }
}

/// Through the proxy, every answer on an app route — success, fake, a failed real upload, the
/// proxy's own refusal — has the same body length and content type: only the status line tells
/// them apart.
#[tokio::test]
async fn every_answer_on_a_route_has_one_length_at_the_proxy() {
    let db = openwarn_testkit::TestDatabase::sqlite();
    let chain = Chain::start(&db, "memory://", &[]).await;
    let phone = openwarn_testkit::http_client();
    let (_, tan) = chain.positive_session(&phone, |e| chain.proxy_url(e)).await;
    let upload = |tan: &str, fake: Option<&str>, body: Vec<u8>| {
        let mut request = phone
            .post(chain.proxy_url("diagnosis-keys"))
            .header("content-type", "application/x-protobuf")
            .header("cwa-authorization", tan)
            .body(body);
        if let Some(fake) = fake {
            request = request.header("cwa-fake", fake);
        }
        request.send()
    };
    let good = payload(5, 3).encode_to_vec();
    let mut answers = Vec::new();
    for (what, response) in [
        ("success", upload(&tan, Some("0"), good.clone()).await),
        ("spent TAN", upload(&tan, Some("0"), good.clone()).await),
        ("fake", upload(&tan, Some("1"), good.clone()).await),
        ("no cwa-fake", upload(&tan, None, good.clone()).await),
        ("bad payload", upload(&tan, Some("0"), vec![0xff; 3]).await),
        (
            "too large",
            upload(&tan, Some("0"), vec![0; 200 * 1024]).await,
        ),
    ] {
        let response = response.unwrap();
        let status = response.status().as_u16();
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        let body = response.bytes().await.unwrap();
        let json: Value = serde_json::from_slice(&body).unwrap();
        answers.push((what, status, content_type, body.len(), json));
    }
    let statuses: Vec<u16> = answers.iter().map(|a| a.1).collect();
    assert_eq!(statuses, [200, 403, 200, 400, 400, 413], "{answers:?}");
    for (what, _, content_type, length, json) in &answers {
        assert_eq!(content_type, "application/json", "{what}");
        assert_eq!(*length, 320, "{what}: {json}");
        assert!(json["responsePadding"].is_string(), "{what}: {json}");
    }
    assert_eq!(answers[1].4["error"], "tan_not_valid");
    assert_eq!(answers[3].4["error"], "missing_fake_header");

    // A verification route: a refused poll and the proxy's own 413 are as long as a success.
    let poll = |body: Vec<u8>| {
        phone
            .post(chain.proxy_url("testresult"))
            .header("content-type", "application/json")
            .header("cwa-fake", "0")
            .body(body)
            .send()
    };
    for (what, response, status) in [
        (
            "unknown token",
            poll(br#"{"registrationToken":"3ab7a6c2-2b6c-4c3d-9a4b-b0f7c7a4a1de"}"#.to_vec()).await,
            400,
        ),
        ("too large", poll(vec![b' '; 200 * 1024]).await, 413),
    ] {
        let response = response.unwrap();
        assert_eq!(response.status().as_u16(), status, "{what}");
        assert_eq!(response.bytes().await.unwrap().len(), 320, "{what}");
    }
    chain.shutdown().await;
}

/// A phone uploads twice with one registration: the past days' keys, then — the next day, once
/// the phone releases it — the day's key, each with its own TAN (the second issued without asking
/// the lab again: its result reads redeemed after the first upload). A third TAN is refused, and
/// both uploads' keys reach distribution.
#[tokio::test]
async fn two_uploads_per_registration_and_no_third() {
    for (db, kv) in openwarn_testkit::backends() {
        let chain = Chain::start(&db, &kv, &[]).await;
        let phone = openwarn_testkit::http_client();
        let (token, first_tan) = chain.positive_session(&phone, |e| chain.proxy_url(e)).await;
        let upload = |tan: String, keys: usize, seed: u8| {
            phone
                .post(chain.proxy_url("diagnosis-keys"))
                .header("content-type", "application/x-protobuf")
                .header("cwa-authorization", tan)
                .header("cwa-fake", "0")
                .body(payload(keys, seed).encode_to_vec())
                .send()
        };
        let tan = || {
            phone
                .post(chain.proxy_url("tan"))
                .header("cwa-fake", "0")
                .json(&serde_json::json!({"registrationToken": token}))
                .send()
        };
        let first = upload(first_tan.clone(), 13, 1).await.unwrap();
        assert_eq!(first.status().as_u16(), 200, "{}", db.label());
        // The first TAN is spent.
        assert_eq!(
            upload(first_tan, 1, 9).await.unwrap().status().as_u16(),
            403
        );

        let second = tan().await.unwrap();
        assert_eq!(second.status().as_u16(), 201, "{}", db.label());
        let second: Value = second.json().await.unwrap();
        let second_tan = second["tan"].as_str().unwrap().to_owned();
        let r = upload(second_tan.clone(), 1, 2).await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "{}", db.label());
        assert_eq!(
            upload(second_tan, 1, 9).await.unwrap().status().as_u16(),
            403
        );

        let third = tan().await.unwrap();
        assert_eq!(third.status().as_u16(), 400, "{}", db.label());
        let third: Value = third.json().await.unwrap();
        assert_eq!(third["error"], "tan_already_redeemed");

        let keys = chain.streamed_keys().await;
        assert_eq!(keys.len(), 14, "{}", db.label());
        assert_eq!(keys.iter().filter(|k| k.key_data[1] == 1).count(), 13);
        assert_eq!(keys.iter().filter(|k| k.key_data[1] == 2).count(), 1);
        chain.shutdown().await;
    }
}
