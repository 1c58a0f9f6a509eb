//! The portal over real sockets, in front of a real verification service: enrolment with a real
//! TOTP authenticator, signing in, issuing teleTANs a phone then redeems through the proxy,
//! lockout, session timeouts, CSRF, roles on every route, limits, the audit log and its chain.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration test: a failure is a failed test"
)]

use openwarn_e2e::portal::{
    PASSWORD, Person, PortalStack, create_account, enrolment_link, shown_tele_tan,
};
use openwarn_portal::audit::{Action, Actor, AuditLog, Filter};
use openwarn_portal::{REASON_HEADER, SESSION_COOKIE};
use openwarn_testkit::TestDatabase;
use openwarn_testkit::web::WebPage;
use serde_json::json;
use std::time::Duration;

fn reason(page: &WebPage) -> Option<&str> {
    page.header(REASON_HEADER)
}

async fn audit_log(stack: &PortalStack) -> Vec<(Actor, Action, Option<String>)> {
    let db = openwarn_db::Database::open(stack.portal_db.url(), 1)
        .await
        .unwrap();
    let mut entries = AuditLog::new(db)
        .list(&Filter {
            limit: 1000,
            ..Filter::default()
        })
        .await
        .unwrap();
    entries.reverse();
    entries
        .into_iter()
        .map(|e| (e.actor, e.action, e.detail))
        .collect()
}

async fn actions(stack: &PortalStack) -> Vec<Action> {
    audit_log(stack)
        .await
        .into_iter()
        .map(|(_, a, _)| a)
        .collect()
}

/// An administrator enrolled from `create-admin`'s link, and an officer they created, enrolled
/// and signed in.
async fn admin_and_officer(stack: &PortalStack) -> (Person, Person) {
    let link = stack.create_admin("admin").await;
    let mut admin = Person::enrol(stack, &link, "admin").await;
    let page = admin.sign_in().await;
    assert!(page.body.contains("/admin/accounts"), "{}", page.body);
    let link = create_account(&mut admin, "officer.one", "officer").await;
    let mut officer = Person::enrol(stack, &link, "officer.one").await;
    let page = officer.sign_in().await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("action=\"/issue\""), "{}", page.body);
    (admin, officer)
}

async fn issue(officer: &mut Person) -> WebPage {
    let csrf = officer.csrf("/issue").await;
    officer.web.post("/issue", &[("csrf", &csrf)]).await
}

#[tokio::test]
async fn an_officer_issues_a_tele_tan_that_a_phone_redeems() {
    for (db, kv) in openwarn_testkit::backends() {
        let label = db.label();
        let stack = PortalStack::start(&db, &kv, &[], &[]).await;
        let (_admin, mut officer) = admin_and_officer(&stack).await;
        let page = issue(&mut officer).await;
        assert_eq!(page.status, 200, "{label}: {}", page.body);
        assert_eq!(page.header("cache-control"), Some("no-store"));
        let tele_tan = shown_tele_tan(&page.body).expect("a teleTAN on the page");
        assert!(page.body.contains("Valid until"), "{}", page.body);

        // The phone registers the teleTAN through the proxy, gets a TAN and uploads.
        let proxy = openwarn_testkit::http_client();
        let reply: serde_json::Value = proxy
            .post(stack.chain.proxy_url("registrationToken"))
            .header("cwa-fake", "0")
            .json(&json!({"key": tele_tan, "keyType": "TELETAN"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = reply["registrationToken"].as_str().expect("registered");
        let reply: serde_json::Value = proxy
            .post(stack.chain.proxy_url("tan"))
            .header("cwa-fake", "0")
            .json(&json!({"registrationToken": token}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let tan = reply["tan"].as_str().expect("a TAN");
        stack.chain.spend_tan(tan).await;

        // Audited without the teleTAN; the chain verifies.
        let log = audit_log(&stack).await;
        assert!(
            log.iter()
                .any(|(actor, action, _)| *action == Action::TeleTanIssued
                    && matches!(actor, Actor::Account(_))),
            "{label}: {log:?}"
        );
        assert!(!format!("{log:?}").contains(&tele_tan));
        let db = openwarn_db::Database::open(stack.portal_db.url(), 1)
            .await
            .unwrap();
        assert!(AuditLog::new(db).verify().await.unwrap().is_intact());
        stack.shutdown().await;
    }
}
