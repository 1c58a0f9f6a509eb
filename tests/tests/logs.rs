//! Logs never contain GUIDs or their hashes, registration tokens, TANs, teleTANs (or their
//! hashes) or client addresses — checked on everything the verification chain and the portal
//! log at debug level. The portal adds its own secrets: passwords, TOTP secrets and codes,
//! session ids, CSRF tokens, enrolment links, and the teleTANs it shows.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration test: a failure is a failed test"
)]

use openwarn_e2e::portal::{PASSWORD, PortalStack, admin_and_officer, issue, shown_tele_tan};
use openwarn_e2e::{Chain, sha256_hex};
use openwarn_protocol::verification::v1::{IssueTeleTanRequest, ReserveTanRequest, TeleTanType};
use serde_json::{Value, json};
use std::io::Write;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn post(chain: &Chain, url: &str, body: Value) -> Value {
    chain
        .app
        .post(url)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn no_secret_or_address_reaches_the_logs() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || writer.clone())
        .init();

    let db = openwarn_testkit::TestDatabase::sqlite();
    let stack = PortalStack::start(&db, "memory://", &[], &[]).await;
    let chain = &stack.chain;
    // Every address a service of the chain listens on (its own log of binding is no client's).
    let server_ports: Vec<u16> = [
        &chain.test_result,
        &chain.verification,
        &chain.submission,
        &chain.proxy,
        &stack.portal,
    ]
    .into_iter()
    .flatten()
    .flat_map(|service| service.addrs().values().map(std::net::SocketAddr::port))
    .collect();
    let guid = uuid::Uuid::new_v4().to_string();
    let hashed = sha256_hex(&guid);
    let lab = chain.lab_client(Some("lab"));
    lab.post(chain.lab_url())
        .json(&json!({"labId": "lab-logs", "testResults": [{"id": hashed, "result": 2}]}))
        .send()
        .await
        .unwrap();
    let token = post(
        chain,
        &chain.app_url("registrationToken"),
        json!({"key": hashed, "keyType": "GUID"}),
    )
    .await["registrationToken"]
        .as_str()
        .unwrap()
        .to_owned();
    post(
        chain,
        &chain.app_url("testresult"),
        json!({"registrationToken": token}),
    )
    .await;
    let tan = post(
        chain,
        &chain.app_url("tan"),
        json!({"registrationToken": token}),
    )
    .await["tan"]
        .as_str()
        .unwrap()
        .to_owned();
    chain.spend_tan(&tan).await;
    // The portal: enrolment, sign-in, a teleTAN, a failed sign-in with a wrong password.
    let (admin, mut officer) = admin_and_officer(&stack).await;
    let page = issue(&mut officer).await;
    let portal_tele_tan = shown_tele_tan(&page.body).expect("a teleTAN");
    let wrong_password = "not the password at all";
    let code = officer.next_code().await;
    officer.sign_in_with(wrong_password, &code).await;
    let mut portal_secrets = vec![
        ("password", PASSWORD.to_owned()),
        ("wrong password", wrong_password.to_owned()),
        ("teleTAN shown by the portal", portal_tele_tan.clone()),
        ("hash of that teleTAN", sha256_hex(&portal_tele_tan)),
    ];
    for person in [&admin, &officer] {
        portal_secrets.push(("TOTP secret", person.secret.clone()));
        // Session ids and CSRF tokens (a 6-digit TOTP code is left out: log timestamps are full
        // of six-digit runs).
        for (name, value) in person.web.cookies.iter().filter(|(_, v)| v.len() >= 32) {
            portal_secrets.push(("cookie", format!("{name}={value}")));
            portal_secrets.push(("cookie value", value.clone()));
            portal_secrets.push(("hash of a cookie value", sha256_hex(value)));
        }
    }
    let mut grpc = chain.verification_grpc("submission");
    let tele_tan = chain
        .verification_grpc("portal")
        .issue_tele_tan(IssueTeleTanRequest {
            r#type: TeleTanType::Test as i32,
        })
        .await
        .unwrap()
        .into_inner()
        .tele_tan;
    post(
        chain,
        &chain.app_url("registrationToken"),
        json!({"key": tele_tan, "keyType": "TELETAN"}),
    )
    .await;
    // Errors are logged too: a refused TAN and a malformed request.
    let _ = grpc
        .reserve_tan(ReserveTanRequest { tan: tan.clone() })
        .await;
    post(
        chain,
        &chain.app_url("tan"),
        json!({"registrationToken": uuid::Uuid::new_v4().to_string()}),
    )
    .await;
    stack.shutdown().await;

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("lab results saved"),
        "the capture works:\n{logs}"
    );
    // Refusals are answers, not failures: a refused TAN is no ERROR in an operator's log.
    let errors: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains(r#""level":"ERROR""#))
        .collect();
    assert!(errors.is_empty(), "errors logged:\n{}", errors.join("\n"));
    for (what, secret) in [
        ("GUID", guid.clone()),
        ("hashed GUID", hashed.clone()),
        ("hash of the hashed GUID", sha256_hex(&hashed)),
        ("registration token", token.clone()),
        ("hash of the registration token", sha256_hex(&token)),
        ("TAN", tan.clone()),
        ("hash of the TAN", sha256_hex(&tan)),
        ("teleTAN", tele_tan.clone()),
        ("hash of the teleTAN", sha256_hex(&tele_tan)),
    ]
    .into_iter()
    .chain(portal_secrets)
    {
        assert!(!logs.contains(&secret), "the {what} is in the logs");
    }
    // Outgoing connections name the server they connect to; any other address would be a
    // client's (a peer's ephemeral port).
    let client_addresses: Vec<&str> = logs
        .lines()
        .filter(|line| {
            line.match_indices("127.0.0.1:").any(|(at, m)| {
                let port: String = line[at + m.len()..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                port.parse::<u16>()
                    .map_or(true, |p| !server_ports.contains(&p))
            })
        })
        .collect();
    assert!(
        client_addresses.is_empty(),
        "client addresses in the logs:\n{}",
        client_addresses.join("\n")
    );
}
