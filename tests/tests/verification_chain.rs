//! The verification chain over real sockets: lab → test-result ← verification ← app, and TAN
//! reservation over gRPC with mutual TLS. Runs on SQLite + in-memory store, and on PostgreSQL +
//! Redis when configured (required with CI=true).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration test: a failure is a failed test"
)]

use openwarn_e2e::{Chain, sha256_hex};
use openwarn_protocol::testresult::v1::MarkRedeemedRequest;
use openwarn_protocol::verification::v1::{
    CommitTanRequest, IssueTeleTanRequest, ReleaseTanRequest, ReserveTanRequest, TanSource,
    TeleTanType, VerifyTanRequest,
};
use serde_json::{Value, json};

struct Reply {
    status: u16,
    len: usize,
    body: Value,
}

async fn post(chain: &Chain, url: &str, body: &Value, fake: bool) -> Reply {
    let response = chain
        .app
        .post(url)
        .header("content-type", "application/json")
        .header("cwa-fake", if fake { "1" } else { "0" })
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let bytes = response.bytes().await.unwrap();
    Reply {
        status,
        len: bytes.len(),
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

async fn lab_post(chain: &Chain, hashed_guid: &str, result: u8) {
    let response = chain
        .lab_client(Some("lab"))
        .post(chain.lab_url())
        .json(&json!({"labId": "lab-e2e", "testResults": [{"id": hashed_guid, "result": result, "sc": 1_700_000_000}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 204);
}

/// As CWA: a lab result may come without a lab id and without a sample time; it gets the time it
/// arrived, and the app's poll answers it (without a lab id).
#[tokio::test]
async fn a_result_without_lab_id_or_sample_time_is_accepted() {
    let db = openwarn_testkit::TestDatabase::sqlite();
    let chain = Chain::start(&db, "memory://", &[]).await;
    let hashed = sha256_hex(uuid::Uuid::new_v4().to_string());
    let before = openwarn_bootstrap::lifecycle::unix_now();
    let response = chain
        .lab_client(Some("lab"))
        .post(chain.lab_url())
        .json(&json!({"testResults": [{"id": hashed, "result": 1}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 204);
    let after = openwarn_bootstrap::lifecycle::unix_now();
    let reg = post(
        &chain,
        &chain.app_url("registrationToken"),
        &json!({"key": hashed, "keyType": "GUID"}),
        false,
    )
    .await;
    let poll = post(
        &chain,
        &chain.app_url("testresult"),
        &json!({"registrationToken": reg.body["registrationToken"]}),
        false,
    )
    .await;
    assert_eq!(poll.body["testResult"], 1);
    let sc = poll.body["sc"].as_i64().expect("sc in the answer");
    assert!(
        (before..=after).contains(&sc),
        "{sc} not in {before}..={after}"
    );
    chain.shutdown().await;
}

#[tokio::test]
async fn guid_and_tele_tan_paths_end_to_end() {
    for (db, kv) in openwarn_testkit::backends() {
        let chain = Chain::start(&db, &kv, &[]).await;
        let label = db.label();
        let guid = uuid::Uuid::new_v4().to_string();
        let hashed = sha256_hex(&guid);

        // The app registers the GUID hash and polls: pending.
        let reg = post(
            &chain,
            &chain.app_url("registrationToken"),
            &json!({"key": hashed, "keyType": "GUID"}),
            false,
        )
        .await;
        assert_eq!(reg.status, 201, "{label}: {:?}", reg.body);
        let token = reg.body["registrationToken"].as_str().unwrap().to_owned();
        assert!(uuid::Uuid::parse_str(&token).unwrap().get_version_num() == 4);
        let poll = post(
            &chain,
            &chain.app_url("testresult"),
            &json!({"registrationToken": token}),
            false,
        )
        .await;
        assert_eq!(
            (poll.status, poll.body["testResult"].as_i64()),
            (200, Some(0)),
            "{label}"
        );

        // No TAN while pending.
        let early = post(
            &chain,
            &chain.app_url("tan"),
            &json!({"registrationToken": token}),
            false,
        )
        .await;
        assert_eq!(
            (early.status, early.body["error"].as_str()),
            (400, Some("result_not_positive"))
        );

        // The lab posts positive; the app sees it.
        lab_post(&chain, &hashed, 2).await;
        let poll = post(
            &chain,
            &chain.app_url("testresult"),
            &json!({"registrationToken": token}),
            false,
        )
        .await;
        assert_eq!(poll.status, 200);
        assert_eq!(poll.body["testResult"], 2);
        assert_eq!(poll.body["sc"], 1_700_000_000);
        assert_eq!(poll.body["labId"], "lab-e2e");

        // A second registration of the same GUID is refused.
        let again = post(
            &chain,
            &chain.app_url("registrationToken"),
            &json!({"key": hashed, "keyType": "GUID"}),
            false,
        )
        .await;
        assert_eq!(
            (again.status, again.body["error"].as_str()),
            (400, Some("already_registered"))
        );

        // A TAN; submission reserves it, a concurrent reservation loses, commit spends it.
        let tan_reply = post(
            &chain,
            &chain.app_url("tan"),
            &json!({"registrationToken": token}),
            false,
        )
        .await;
        assert_eq!(tan_reply.status, 201, "{label}: {:?}", tan_reply.body);
        let tan = tan_reply.body["tan"].as_str().unwrap().to_owned();
        let mut grpc = chain.verification_grpc("submission");
        let verified = grpc
            .verify_tan(VerifyTanRequest { tan: tan.clone() })
            .await
            .unwrap()
            .into_inner();
        assert!(verified.valid);
        assert_eq!(verified.source, TanSource::Guid as i32);
        let reservation = grpc
            .reserve_tan(ReserveTanRequest { tan: tan.clone() })
            .await
            .unwrap()
            .into_inner();
        let busy = grpc
            .reserve_tan(ReserveTanRequest { tan: tan.clone() })
            .await
            .unwrap_err();
        assert_eq!(busy.code(), tonic::Code::FailedPrecondition);
        grpc.commit_tan(CommitTanRequest {
            tan: tan.clone(),
            reservation_id: reservation.reservation_id.clone(),
        })
        .await
        .unwrap();
        let spent = grpc
            .reserve_tan(ReserveTanRequest { tan: tan.clone() })
            .await
            .unwrap_err();
        assert_eq!(
            spent.code(),
            tonic::Code::FailedPrecondition,
            "{label}: the same TAN is refused"
        );
        // The session has one upload left (the day's key, the next day): one more TAN, without
        // asking the lab again; after that upload, none. The result is redeemed at test-result.
        let second = post(
            &chain,
            &chain.app_url("tan"),
            &json!({"registrationToken": token}),
            false,
        )
        .await;
        assert_eq!(second.status, 201, "{label}: the second upload's TAN");
        chain.spend_tan(second.body["tan"].as_str().unwrap()).await;
        let more = post(
            &chain,
            &chain.app_url("tan"),
            &json!({"registrationToken": token}),
            false,
        )
        .await;
        assert_eq!(more.status, 400);
        assert_eq!(more.body["error"], "tan_already_redeemed");
        let poll = post(
            &chain,
            &chain.app_url("testresult"),
            &json!({"registrationToken": token}),
            false,
        )
        .await;
        assert_eq!(poll.body["testResult"], 4, "{label}: redeemed");
        // test-result is told off the submission's path: once it has been, a lab can no longer
        // change the result.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            if chain.stored_result(&hashed).await == 4 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{label}: test-result never marked redeemed"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        lab_post(&chain, &hashed, 1).await;
        assert_eq!(
            chain.stored_result(&hashed).await,
            4,
            "{label}: a lab changed a redeemed result"
        );
        let poll = post(
            &chain,
            &chain.app_url("testresult"),
            &json!({"registrationToken": token}),
            false,
        )
        .await;
        assert_eq!(poll.body["testResult"], 4);

        // The teleTAN path: issued over gRPC, registered once, always positive.
        let issued = chain
            .verification_grpc("portal")
            .issue_tele_tan(IssueTeleTanRequest {
                r#type: TeleTanType::Test as i32,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(openwarn_verification::teletan::is_valid(&issued.tele_tan));
        let reg = post(
            &chain,
            &chain.app_url("registrationToken"),
            &json!({"key": issued.tele_tan, "keyType": "TELETAN"}),
            false,
        )
        .await;
        assert_eq!(reg.status, 201, "{label}: {:?}", reg.body);
        let used = post(
            &chain,
            &chain.app_url("registrationToken"),
            &json!({"key": issued.tele_tan, "keyType": "TELETAN"}),
            false,
        )
        .await;
        assert_eq!(
            (used.status, used.body["error"].as_str()),
            (400, Some("teletan_invalid_expired_or_used"))
        );
        let tele_token = reg.body["registrationToken"].as_str().unwrap().to_owned();
        let poll = post(
            &chain,
            &chain.app_url("testresult"),
            &json!({"registrationToken": tele_token}),
            false,
        )
        .await;
        assert_eq!(poll.body["testResult"], 2);
        let tan = post(
            &chain,
            &chain.app_url("tan"),
            &json!({"registrationToken": tele_token}),
            false,
        )
        .await
        .body["tan"]
            .as_str()
            .unwrap()
            .to_owned();

        // A released TAN can be used again (the upload failed; the user retries).
        let first = grpc
            .reserve_tan(ReserveTanRequest { tan: tan.clone() })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(first.source, TanSource::Teletan as i32);
        grpc.release_tan(ReleaseTanRequest {
            tan: tan.clone(),
            reservation_id: first.reservation_id.clone(),
        })
        .await
        .unwrap();
        // Reserved again and spent (a commit spends the TAN: submission commits only after
        // storing keys, and never after giving a reservation back).
        chain.spend_tan(&tan).await;

        chain.shutdown().await;
    }
}

#[tokio::test]
async fn fake_requests_change_nothing_and_look_like_real_ones() {
    for (db, kv) in openwarn_testkit::backends() {
        let chain = Chain::start(&db, &kv, &[]).await;
        let label = db.label();
        let hashed = sha256_hex(uuid::Uuid::new_v4().to_string());
        lab_post(&chain, &hashed, 2).await;

        // Real requests, one per endpoint.
        let real_reg = post(
            &chain,
            &chain.app_url("registrationToken"),
            &json!({"key": hashed, "keyType": "GUID"}),
            false,
        )
        .await;
        let token = real_reg.body["registrationToken"]
            .as_str()
            .unwrap()
            .to_owned();
        let real_poll = post(
            &chain,
            &chain.app_url("testresult"),
            &json!({"registrationToken": token}),
            false,
        )
        .await;
        let real_tan = post(
            &chain,
            &chain.app_url("tan"),
            &json!({"registrationToken": token}),
            false,
        )
        .await;
        let before = chain.tables().await;

        // Fakes: what an app sends, including bodies that would fail if they were real.
        let other = sha256_hex("never registered");
        let fakes = [
            (
                "registrationToken",
                json!({"key": other, "keyType": "GUID"}),
                &real_reg,
            ),
            (
                "registrationToken",
                json!({"key": hashed, "keyType": "GUID"}),
                &real_reg,
            ),
            (
                "testresult",
                json!({"registrationToken": uuid::Uuid::new_v4().to_string()}),
                &real_poll,
            ),
            (
                "testresult",
                json!({"registrationToken": token}),
                &real_poll,
            ),
            ("tan", json!({"registrationToken": token}), &real_tan),
            (
                "tan",
                json!({"registrationToken": uuid::Uuid::new_v4().to_string()}),
                &real_tan,
            ),
        ];
        for (path, body, real) in fakes {
            let fake = post(&chain, &chain.app_url(path), &body, true).await;
            assert_eq!(
                (fake.status, fake.len),
                (real.status, real.len),
                "{label}: fake {path} vs real"
            );
        }
        assert_eq!(
            chain.tables().await,
            before,
            "{label}: fakes changed a table"
        );

        // Errors are padded to the same length as successes.
        let unknown = post(
            &chain,
            &chain.app_url("testresult"),
            &json!({"registrationToken": uuid::Uuid::new_v4().to_string()}),
            false,
        )
        .await;
        assert_eq!((unknown.status, unknown.len), (400, real_poll.len));
        assert_eq!(unknown.body["error"], "unknown_token");
        chain.shutdown().await;
    }
}

#[tokio::test]
async fn bad_requests_get_clear_errors_and_change_nothing() {
    for (db, kv) in openwarn_testkit::backends() {
        let chain = Chain::start(&db, &kv, &[]).await;
        let before = chain.tables().await;
        let client = &chain.app;
        let cases: Vec<(&str, &str, String, u16, &str)> = vec![
            (
                "registrationToken",
                "application/json",
                "{".into(),
                400,
                "malformed_json",
            ),
            (
                "registrationToken",
                "text/plain",
                "{}".into(),
                415,
                "unsupported_media_type",
            ),
            (
                "registrationToken",
                "application/json",
                json!({"key": "x".repeat(11_000), "keyType": "GUID"}).to_string(),
                413,
                "payload_too_large",
            ),
            (
                "registrationToken",
                "application/json",
                json!({"keyType": "GUID"}).to_string(),
                400,
                "missing_key",
            ),
            (
                "registrationToken",
                "application/json",
                json!({"key": "ABC", "keyType": "GUID"}).to_string(),
                400,
                "invalid_key",
            ),
            (
                "registrationToken",
                "application/json",
                json!({"key": "a".repeat(64), "keyType": "QR"}).to_string(),
                400,
                "invalid_key_type",
            ),
            (
                "registrationToken",
                "application/json",
                json!({"key": "2222222222", "keyType": "TELETAN"}).to_string(),
                400,
                "invalid_teletan",
            ),
            (
                "registrationToken",
                "application/json",
                // CWA's check character of 222222222 is 3: well-formed, never issued.
                json!({"key": "2222222223", "keyType": "TELETAN"}).to_string(),
                400,
                "teletan_invalid_expired_or_used",
            ),
            (
                "testresult",
                "application/json",
                json!({"registrationToken": "not-a-uuid"}).to_string(),
                400,
                "invalid_token",
            ),
            (
                "testresult",
                "application/json",
                json!({}).to_string(),
                400,
                "invalid_token",
            ),
            (
                "tan",
                "application/json",
                json!({"registrationToken": uuid::Uuid::new_v4().to_string()}).to_string(),
                400,
                "unknown_token",
            ),
        ];
        for (path, content_type, body, status, reason) in cases {
            let response = client
                .post(chain.app_url(path))
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), status, "{path} {reason}");
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"], reason, "{path}");
        }
        assert_eq!(
            chain.tables().await,
            before,
            "{}: bad requests changed a table",
            db.label()
        );

        // Bad gRPC arguments.
        let mut grpc = chain.verification_grpc("submission");
        let e = grpc
            .reserve_tan(ReserveTanRequest { tan: "nope".into() })
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        let e = grpc
            .commit_tan(CommitTanRequest {
                tan: uuid::Uuid::new_v4().to_string(),
                reservation_id: "x".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        let e = chain
            .verification_grpc("portal")
            .issue_tele_tan(IssueTeleTanRequest { r#type: 0 })
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        chain.shutdown().await;
    }
}

#[tokio::test]
async fn the_lab_api_takes_only_allow_listed_certificates_and_valid_batches() {
    for (db, kv) in openwarn_testkit::backends() {
        let chain = Chain::start(&db, &kv, &[]).await;
        let ok = json!({"labId": "l", "testResults": [{"id": "a".repeat(64), "result": 1}]});
        let r = chain
            .lab_client(Some("lab"))
            .post(chain.lab_url())
            .json(&ok)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 204);
        assert!(
            chain
                .lab_client(Some("rogue-lab"))
                .post(chain.lab_url())
                .json(&ok)
                .send()
                .await
                .is_err(),
            "not allow-listed"
        );
        assert!(
            chain
                .lab_client(None)
                .post(chain.lab_url())
                .json(&ok)
                .send()
                .await
                .is_err(),
            "no certificate"
        );

        let lab = chain.lab_client(Some("lab"));
        let bad = json!({"labId": "l", "testResults": [{"id": format!("y{}", "a".repeat(63)), "result": 1}]});
        let r = lab.post(chain.lab_url()).json(&bad).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 400);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["field"], "testResults[0].id");
        let r = lab
            .post(chain.lab_url())
            .header("content-type", "text/csv")
            .body("x")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 415);
        let huge = json!({"labId": "l", "testResults": vec![json!({"id": "a".repeat(64), "result": 1}); 4000]});
        let r = lab.post(chain.lab_url()).json(&huge).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 413);
        let many = json!({"labId": "l", "testResults": (0..1001).map(|i| json!({"id": sha256_hex(i.to_string()), "result": 1})).collect::<Vec<_>>()});
        let r = lab.post(chain.lab_url()).json(&many).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 400, "over the batch limit");
        chain.shutdown().await;
    }
}

#[tokio::test]
async fn tele_tan_issuance_is_limited_per_hour() {
    for (db, kv) in openwarn_testkit::backends() {
        let chain = Chain::start(&db, &kv, &["--teletans-per-hour", "2"]).await;
        let mut grpc = chain.verification_grpc("portal");
        let request = || IssueTeleTanRequest {
            r#type: TeleTanType::Test as i32,
        };
        grpc.issue_tele_tan(request()).await.unwrap();
        grpc.issue_tele_tan(request()).await.unwrap();
        let e = grpc.issue_tele_tan(request()).await.unwrap_err();
        assert_eq!(
            e.code(),
            tonic::Code::ResourceExhausted,
            "{} / {kv}",
            db.label()
        );
        chain.shutdown().await;
    }
}

#[tokio::test]
async fn a_down_test_result_service_is_a_503_not_a_crash() {
    for (db, kv) in openwarn_testkit::backends() {
        let mut chain = Chain::start(&db, &kv, &[]).await;
        let hashed = sha256_hex(uuid::Uuid::new_v4().to_string());
        let reg = post(
            &chain,
            &chain.app_url("registrationToken"),
            &json!({"key": hashed, "keyType": "GUID"}),
            false,
        )
        .await;
        let token = reg.body["registrationToken"].as_str().unwrap().to_owned();
        chain.stop_test_result().await;
        for path in ["testresult", "tan"] {
            let r = post(
                &chain,
                &chain.app_url(path),
                &json!({"registrationToken": token}),
                false,
            )
            .await;
            assert_eq!(
                (r.status, r.body["error"].as_str()),
                (503, Some("dependency_unavailable")),
                "{path}"
            );
        }
        chain.shutdown().await;
    }
}

#[tokio::test]
async fn internal_grpc_requires_a_client_certificate_from_the_ca() {
    let db = openwarn_testkit::TestDatabase::sqlite();
    let chain = Chain::start(&db, "memory://", &[]).await;
    // Trusts the CA but presents no certificate.
    let ca = tonic::transport::Certificate::from_pem(std::fs::read(chain.pki.ca()).unwrap());
    let channel = tonic::transport::Endpoint::from_shared(format!(
        "https://{}",
        chain.verification_addr("grpc")
    ))
    .unwrap()
    .tls_config(
        tonic::transport::ClientTlsConfig::new()
            .ca_certificate(ca)
            .domain_name("verification"),
    )
    .unwrap()
    .connect_lazy();
    let mut client = openwarn_protocol::verification::v1::verification_service_client::VerificationServiceClient::new(channel);
    assert!(
        client
            .verify_tan(VerifyTanRequest {
                tan: uuid::Uuid::new_v4().to_string()
            })
            .await
            .is_err()
    );
    // Another CA's certificate is refused too.
    let (_dir, other) = openwarn_testkit::dev_pki(&["submission"]);
    let channel = other
        .files("submission")
        .unwrap()
        .grpc_channel(
            &format!("https://{}", chain.verification_addr("grpc")),
            "verification",
        )
        .unwrap();
    let mut client = openwarn_protocol::verification::v1::verification_service_client::VerificationServiceClient::new(channel);
    assert!(
        client
            .verify_tan(VerifyTanRequest {
                tan: uuid::Uuid::new_v4().to_string()
            })
            .await
            .is_err()
    );
    // The right one works.
    let mut grpc = chain.verification_grpc("submission");
    let ok = grpc
        .verify_tan(VerifyTanRequest {
            tan: uuid::Uuid::new_v4().to_string(),
        })
        .await
        .unwrap();
    assert!(!ok.into_inner().valid);
    chain.shutdown().await;
}

#[tokio::test]
async fn admin_endpoints_answer() {
    let db = openwarn_testkit::TestDatabase::sqlite();
    let chain = Chain::start(&db, "memory://", &[]).await;
    for addr in [
        chain.verification_addr("admin"),
        chain.test_result_addr("admin"),
    ] {
        for (path, status) in [("healthz", 200), ("readyz", 200), ("metrics", 200)] {
            let r = openwarn_testkit::http_client()
                .get(format!("http://{addr}/{path}"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), status, "{addr}/{path}");
        }
    }
    // Traffic shows up in the metrics, labelled by route template only.
    post(
        &chain,
        &chain.app_url("testresult"),
        &json!({"registrationToken": uuid::Uuid::new_v4().to_string()}),
        false,
    )
    .await;
    let metrics = openwarn_testkit::http_client()
        .get(format!(
            "http://{}/metrics",
            chain.verification_addr("admin")
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("openwarn_http_requests_total"),
        "{metrics}"
    );
    assert!(metrics.contains("route=\"/version/v1/testresult\""));
    chain.shutdown().await;
}

#[tokio::test]
async fn a_redeemed_session_reads_redeemed_without_asking_test_result() {
    for (db, kv) in openwarn_testkit::backends() {
        let mut chain = Chain::start(&db, &kv, &[]).await;
        let label = db.label();
        let (redeemed, tan) = chain
            .positive_session(&chain.app, |e| chain.app_url(e))
            .await;
        let (open, _) = chain
            .positive_session(&chain.app, |e| chain.app_url(e))
            .await;
        // test-result goes away before the TAN is committed: its mark cannot happen.
        chain.test_result.take().unwrap().shutdown().await.unwrap();
        chain.spend_tan(&tan).await;
        let poll = |token: String| {
            let chain = &chain;
            async move {
                post(
                    chain,
                    &chain.app_url("testresult"),
                    &json!({"registrationToken": token}),
                    false,
                )
                .await
            }
        };
        let read = poll(redeemed).await;
        assert_eq!(
            (read.status, &read.body["testResult"]),
            (200, &json!(4)),
            "{label}"
        );
        // The session not yet redeemed needs test-result, which is down.
        assert_eq!(poll(open).await.status, 503, "{label}");
    }
}

/// `MarkRedeemed` takes many ids in one call (verification sends its queued marks together), all
/// or nothing: one malformed id, none at all or too many fail the call and mark nothing.
#[tokio::test]
async fn mark_redeemed_marks_many_results_in_one_call_or_none() {
    for (db, kv) in openwarn_testkit::backends() {
        let chain = Chain::start(&db, &kv, &[]).await;
        let label = db.label();
        let hashed: Vec<String> = (0..4)
            .map(|_| sha256_hex(uuid::Uuid::new_v4().to_string()))
            .collect();
        for id in &hashed {
            lab_post(&chain, id, 2).await;
        }
        let mut grpc = chain.test_result_grpc();
        let mark = |hashed_guid: &str, hashed_guids: Vec<String>| MarkRedeemedRequest {
            hashed_guid: hashed_guid.to_owned(),
            hashed_guids,
        };

        grpc.mark_redeemed(mark("", hashed[..2].to_vec()))
            .await
            .unwrap();
        grpc.mark_redeemed(mark(&hashed[1], vec![hashed[1].clone()]))
            .await
            .expect("marking again is harmless");
        let refused = [
            mark("", vec![hashed[2].clone(), "not-a-hash".into()]),
            mark("not-a-hash", vec![hashed[2].clone()]),
            mark("", vec![]),
            mark("", vec![hashed[2].clone(); 1001]),
        ];
        for request in refused {
            let status = grpc.mark_redeemed(request).await.unwrap_err();
            assert_eq!(status.code(), tonic::Code::InvalidArgument, "{label}");
        }

        let mut stored = Vec::new();
        for id in &hashed {
            stored.push(chain.stored_result(id).await);
        }
        assert_eq!(
            stored,
            vec![4, 4, 2, 2],
            "{label}: only the first call marked"
        );
        chain.shutdown().await;
    }
}
