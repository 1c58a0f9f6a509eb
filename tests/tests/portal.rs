//! The portal over real sockets, in front of a real verification service: enrolment with a real
//! TOTP authenticator, signing in, issuing teleTANs a phone then redeems through the proxy,
//! lockout, session timeouts, CSRF, roles on every route, limits, the audit log and its chain.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration test: a failure is a failed test"
)]

use openwarn_e2e::portal::{
    PASSWORD, Person, PortalStack, admin_and_officer, create_account, enrolment_link, issue,
    shown_tele_tan,
};
use openwarn_portal::audit::{Action, Actor};
use openwarn_portal::{REASON_HEADER, SESSION_COOKIE};
use openwarn_testkit::TestDatabase;
use openwarn_testkit::web::WebPage;
use std::time::Duration;

fn reason(page: &WebPage) -> Option<&str> {
    page.header(REASON_HEADER)
}

async fn actions(stack: &PortalStack) -> Vec<Action> {
    stack
        .audit_log()
        .await
        .into_iter()
        .map(|(_, a, _)| a)
        .collect()
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
        let tan = stack.phone_gets_a_tan(&tele_tan).await;
        stack.chain.spend_tan(&tan).await;

        // Audited without the teleTAN; the chain verifies.
        let log = stack.audit_log().await;
        assert!(
            log.iter()
                .any(|(actor, action, _)| *action == Action::TeleTanIssued
                    && matches!(actor, Actor::Account(_))),
            "{label}: {log:?}"
        );
        assert!(!format!("{log:?}").contains(&tele_tan));
        assert!(stack.audit_is_intact().await);
        stack.shutdown().await;
    }
}

/// Wrong password, wrong code, unknown account, locked account: one answer (status, reason,
/// words), so that nobody learns which accounts exist. The fifth failure locks; the lock is
/// audited; the right credentials are refused while it lasts and work after it.
#[tokio::test]
async fn five_failures_lock_an_account_and_no_answer_tells_why() {
    let db = TestDatabase::sqlite();
    let stack = PortalStack::start(&db, "memory://", &["--lockout", "10s"], &[]).await;
    let (_admin, mut officer) = admin_and_officer(&stack).await;
    let answer = |page: &WebPage| {
        let body = page.body.clone();
        // The sign-in form's CSRF token is the only part that may differ.
        let csrf = page.input("csrf").unwrap_or_default();
        (
            page.status,
            reason(page).map(str::to_owned),
            body.replace(&csrf, "CSRF"),
        )
    };
    let unknown = {
        let mut stranger = Person {
            web: stack.client(),
            username: "nobody.here".into(),
            password: PASSWORD.into(),
            secret: officer.secret.clone(),
            last_step: 0,
        };
        let code = stranger.next_code().await;
        answer(&stranger.sign_in_with(PASSWORD, &code).await)
    };
    assert_eq!(unknown.0, 401);
    assert_eq!(unknown.1.as_deref(), Some("sign_in_failed"));
    let mut answers = vec![unknown];
    // A valid code for later (TOTP codes may have to wait for a step not used yet).
    let code = officer.next_code().await;
    // Four wrong passwords and a wrong code: the fifth failure locks.
    for _ in 0..4 {
        answers.push(answer(
            &officer.sign_in_with("wrong password!!", "000000").await,
        ));
    }
    answers.push(answer(&officer.sign_in_with(PASSWORD, "000000").await));
    // Locked: the right password and a fresh code are refused alike.
    answers.push(answer(&officer.sign_in_with(PASSWORD, &code).await));
    let first = answers[0].clone();
    for (i, a) in answers.iter().enumerate() {
        assert_eq!(*a, first, "answer {i} differs");
    }
    let log = stack.audit_log().await;
    let failures: Vec<&str> = log
        .iter()
        .filter(|(_, a, _)| *a == Action::SignInFailed)
        .filter_map(|(_, _, d)| d.as_deref())
        .collect();
    assert_eq!(
        failures,
        [
            "unknown_account",
            "wrong_password",
            "wrong_password",
            "wrong_password",
            "wrong_password",
            "wrong_code",
            "account_locked"
        ]
    );
    assert_eq!(
        log.iter()
            .filter(|(_, a, _)| *a == Action::AccountLocked)
            .count(),
        1
    );
    // After the lock: the right credentials work again (a code of a step not used yet).
    tokio::time::sleep(Duration::from_secs(11)).await;
    let page = officer.sign_in().await;
    assert_eq!(page.status, 200, "{}", page.body);
    stack.shutdown().await;
}

/// Idle and absolute timeouts end sessions server-side; sign-out too: the old cookie is
/// worthless afterwards.
#[tokio::test]
async fn sessions_end_when_idle_too_long_after_the_absolute_timeout_and_at_sign_out() {
    let db = TestDatabase::sqlite();
    let stack = PortalStack::start(
        &db,
        "memory://",
        &["--idle-timeout", "3s", "--absolute-timeout", "8s"],
        &[],
    )
    .await;
    let (mut admin, mut officer) = admin_and_officer(&stack).await;

    // Idle: nothing for 4 s.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let page = officer.web.get("/issue").await;
    assert_eq!(page.location.as_deref(), Some("/sign-in?ended=1"));
    let page = officer.web.get("/issue").await;
    assert_eq!(page.location.as_deref(), Some("/sign-in"), "ended for good");

    // Absolute: busy every second, still ended after 8 s.
    officer.sign_in().await;
    let mut ended = false;
    for _ in 0..12 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let page = officer.web.get("/issue").await;
        if page.location.as_deref() == Some("/sign-in?ended=1") {
            ended = true;
            break;
        }
        assert_eq!(page.status, 200);
    }
    assert!(ended, "the absolute timeout ended the busy session");
    let details: Vec<String> = stack
        .audit_log()
        .await
        .into_iter()
        .filter(|(_, a, _)| *a == Action::SessionExpired)
        .filter_map(|(_, _, d)| d)
        .collect();
    assert_eq!(details, ["idle_timeout", "absolute_timeout"]);

    // Sign-out ends the session on the server: the same cookie, replayed, is no session.
    let page = admin.sign_in().await;
    assert_eq!(page.status, 200);
    let cookie = admin.web.cookies[SESSION_COOKIE].clone();
    let csrf = admin.csrf("/admin/accounts").await;
    let page = admin.web.post("/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!(page.location.as_deref(), Some("/sign-in?out=1"));
    assert!(!admin.web.cookies.contains_key(SESSION_COOKIE));
    admin.web.cookies.insert(SESSION_COOKIE.into(), cookie);
    let page = admin.web.get("/admin/accounts").await;
    assert_eq!(page.location.as_deref(), Some("/sign-in"));
    assert!(actions(&stack).await.contains(&Action::SignedOut));
    stack.shutdown().await;
}

/// Every form refuses a missing or wrong CSRF token (403, nothing changes).
#[tokio::test]
async fn every_form_refuses_a_missing_or_wrong_csrf_token() {
    let db = TestDatabase::sqlite();
    let stack = PortalStack::start(&db, "memory://", &[], &[]).await;
    let (mut admin, mut officer) = admin_and_officer(&stack).await;
    let before = stack.audit_log().await.len();
    let forged = "f".repeat(64);
    for token in ["", forged.as_str()] {
        let page = officer.web.post("/issue", &[("csrf", token)]).await;
        assert_eq!(
            (page.status, reason(&page)),
            (403, Some("csrf_token_invalid"))
        );
        let page = admin
            .web
            .post(
                "/admin/accounts",
                &[
                    ("csrf", token),
                    ("username", "mallory"),
                    ("display_name", "Mallory"),
                    ("role", "admin"),
                ],
            )
            .await;
        assert_eq!(
            (page.status, reason(&page)),
            (403, Some("csrf_token_invalid"))
        );
        let page = admin
            .web
            .post("/admin/accounts/2/disable", &[("csrf", token)])
            .await;
        assert_eq!(
            (page.status, reason(&page)),
            (403, Some("csrf_token_invalid"))
        );
        let page = admin.web.post("/sign-out", &[("csrf", token)]).await;
        assert_eq!(
            (page.status, reason(&page)),
            (403, Some("csrf_token_invalid"))
        );
    }
    // Another session's token is wrong too.
    let officers_token = officer.csrf("/issue").await;
    let page = admin
        .web
        .post("/admin/accounts/2/disable", &[("csrf", &officers_token)])
        .await;
    assert_eq!(page.status, 403);
    // The anonymous forms: sign-in and enrolment without the cookie's token.
    let mut stranger = stack.client();
    let page = stranger
        .post(
            "/sign-in",
            &[
                ("csrf", &forged),
                ("username", "admin"),
                ("password", PASSWORD),
                ("code", "123456"),
            ],
        )
        .await;
    assert_eq!(
        (page.status, reason(&page)),
        (403, Some("csrf_token_invalid"))
    );
    assert_eq!(stack.audit_log().await.len(), before, "nothing happened");
    let page = officer.web.get("/issue").await;
    assert_eq!(
        page.status, 200,
        "the officer is still signed in and enabled"
    );
    stack.shutdown().await;
}

/// Each route for its role only: officers cannot reach administration, administrators cannot
/// issue, nobody signed out reaches anything.
#[tokio::test]
async fn every_route_checks_the_role() {
    let db = TestDatabase::sqlite();
    let stack = PortalStack::start(&db, "memory://", &[], &[]).await;
    let (mut admin, mut officer) = admin_and_officer(&stack).await;
    let officer_csrf = officer.csrf("/issue").await;
    let admin_csrf = admin.csrf("/admin/accounts").await;
    let admin_routes = [
        ("GET", "/admin/accounts"),
        ("POST", "/admin/accounts"),
        ("POST", "/admin/accounts/1/disable"),
        ("POST", "/admin/accounts/1/re-enrol"),
        ("POST", "/admin/accounts/1/make-officer"),
        ("GET", "/admin/audit"),
        ("GET", "/admin/audit/export"),
    ];
    let officer_routes = [("GET", "/issue"), ("POST", "/issue")];
    let form = |csrf: &str| {
        vec![
            ("csrf".to_owned(), csrf.to_owned()),
            ("username".to_owned(), "eve.x".to_owned()),
            ("display_name".to_owned(), "Eve".to_owned()),
            ("role".to_owned(), "admin".to_owned()),
        ]
    };
    async fn call(
        web: &mut openwarn_testkit::web::WebClient,
        method: &str,
        path: &str,
        form: &[(String, String)],
    ) -> WebPage {
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        if method == "GET" {
            web.get(path).await
        } else {
            web.post(path, &form).await
        }
    }
    for (method, path) in admin_routes {
        let page = call(&mut officer.web, method, path, &form(&officer_csrf)).await;
        assert_eq!(
            (page.status, reason(&page)),
            (403, Some("role_not_allowed")),
            "officer {method} {path}"
        );
    }
    for (method, path) in officer_routes {
        let page = call(&mut admin.web, method, path, &form(&admin_csrf)).await;
        assert_eq!(
            (page.status, reason(&page)),
            (403, Some("role_not_allowed")),
            "admin {method} {path}"
        );
    }
    let mut anonymous = stack.client();
    for (method, path) in admin_routes.iter().chain(officer_routes.iter()) {
        let page = call(&mut anonymous, method, path, &form("x")).await;
        assert_eq!(
            page.location.as_deref(),
            Some("/sign-in"),
            "{method} {path}"
        );
    }
    let log = stack.audit_log().await;
    assert_eq!(
        log.iter()
            .filter(|(_, a, _)| *a == Action::AccountCreated)
            .count(),
        2,
        "only the two accounts of the set-up: {log:?}"
    );
    assert!(!log.iter().any(|(_, a, _)| *a == Action::TeleTanIssued));
    stack.shutdown().await;
}

/// The officer's hourly limit and verification's global limit: each refusal explained, audited,
/// counted; verification down is 503 and issues nothing.
#[tokio::test]
async fn limits_are_explained_and_audited_and_an_outage_is_503() {
    let db = TestDatabase::sqlite();
    let mut stack = PortalStack::start(
        &db,
        "memory://",
        &["--tele-tans-per-officer-per-hour", "2"],
        &["--teletans-per-hour", "3"],
    )
    .await;
    let (mut admin, mut officer) = admin_and_officer(&stack).await;
    for _ in 0..2 {
        assert_eq!(issue(&mut officer).await.status, 200);
    }
    let page = issue(&mut officer).await;
    assert_eq!(
        (page.status, reason(&page)),
        (429, Some("per_officer_limit"))
    );
    assert!(
        page.body.contains("(20)") || page.body.contains("in an hour"),
        "{}",
        page.body
    );
    assert!(shown_tele_tan(&page.body).is_none());

    // A second officer gets the one teleTAN left of verification's 3, then the global limit.
    let link = create_account(&mut admin, "officer.two", "officer").await;
    let mut second = Person::enrol(&stack, &link, "officer.two").await;
    second.sign_in().await;
    assert_eq!(issue(&mut second).await.status, 200);
    let page = issue(&mut second).await;
    assert_eq!((page.status, reason(&page)), (429, Some("global_limit")));
    assert!(page.body.contains("all officers together"), "{}", page.body);

    // Verification gone: 503, nothing issued, the officer's slot given back.
    stack.chain.stop_verification().await;
    let page = issue(&mut second).await;
    assert_eq!(
        (page.status, reason(&page)),
        (503, Some("verification_unavailable"))
    );
    let refused: Vec<String> = stack
        .audit_log()
        .await
        .into_iter()
        .filter(|(_, a, _)| *a == Action::TeleTanRefused)
        .filter_map(|(_, _, d)| d)
        .collect();
    assert_eq!(
        refused,
        [
            "per_officer_limit",
            "global_limit",
            "verification_unavailable"
        ]
    );
    let metrics = stack.metrics().await;
    for reason in [
        "per_officer_limit",
        "global_limit",
        "verification_unavailable",
    ] {
        assert!(
            metrics.contains(&format!(
                "openwarn_portal_tele_tans_refused_total{{reason=\"{reason}\"}} 1"
            )),
            "{reason}: {metrics}"
        );
    }
    stack.shutdown().await;
}

/// Security headers on every page; cookies `HttpOnly`, `SameSite=Strict`, and `Secure` with
/// HSTS when the public URL is HTTPS (not in development).
#[tokio::test]
async fn pages_carry_security_headers_and_cookies_are_strict() {
    let db = TestDatabase::sqlite();
    for (public, secure) in [(None, false), (Some("https://portal.example.org"), true)] {
        let extra: Vec<&str> = public
            .map(|url| vec!["--public-url", url])
            .unwrap_or_default();
        let stack = PortalStack::start(&db, "memory://", &extra, &[]).await;
        let mut web = stack.client();
        for path in ["/sign-in", "/no-such-page", "/static/portal.css"] {
            let page = web.get(path).await;
            let csp = page.header("content-security-policy").unwrap_or_default();
            assert!(csp.contains("default-src 'none'"), "{path}: {csp}");
            assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
            assert!(
                !csp.contains("script-src"),
                "no script allowed at all: {csp}"
            );
            assert_eq!(page.header("x-frame-options"), Some("DENY"));
            assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
            assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
            assert_eq!(
                page.header("strict-transport-security").is_some(),
                secure,
                "{path}"
            );
        }
        let page = web.get("/no-such-page").await;
        assert_eq!((page.status, reason(&page)), (404, Some("not_found")));
        let page = web.get("/sign-in").await;
        assert!(!page.body.contains("<script"), "{}", page.body);
        let set = page.set_cookies().join("\n");
        assert!(
            set.contains("HttpOnly") && set.contains("SameSite=Strict"),
            "{set}"
        );
        assert_eq!(set.contains("Secure"), secure, "{set}");
        stack.shutdown().await;
    }
}

/// Administrators disable, enable, re-enrol and change roles; each is audited; a disabled
/// officer's session ends at once; a re-enrolled officer's old password is void.
#[tokio::test]
async fn administrators_manage_accounts_and_read_the_audit_log() {
    for (db, kv) in openwarn_testkit::backends() {
        let stack = PortalStack::start(&db, &kv, &[], &[]).await;
        let (mut admin, mut officer) = admin_and_officer(&stack).await;
        let officer_id = 2;
        let csrf = admin.csrf("/admin/accounts").await;

        // Not on their own account.
        let page = admin
            .web
            .post("/admin/accounts/1/disable", &[("csrf", &csrf)])
            .await;
        assert_eq!(
            (page.status, reason(&page)),
            (400, Some("not_on_own_account"))
        );
        // Bad input is refused with its reason and changes nothing.
        for (username, name, role, why) in [
            ("x", "X", "officer", "invalid_username"),
            ("valid.name", "", "officer", "invalid_display_name"),
            ("valid.name", "Valid", "root", "invalid_role"),
            ("officer.one", "Again", "officer", "username_taken"),
        ] {
            let page = admin
                .web
                .post(
                    "/admin/accounts",
                    &[
                        ("csrf", &csrf),
                        ("username", username),
                        ("display_name", name),
                        ("role", role),
                    ],
                )
                .await;
            assert_eq!((page.status, reason(&page)), (400, Some(why)), "{username}");
        }

        // Disabled: the officer's open session ends now; enabled again: they sign in.
        let page = admin
            .web
            .post(
                &format!("/admin/accounts/{officer_id}/disable"),
                &[("csrf", &csrf)],
            )
            .await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(page.body.contains("Disabled"));
        let page = officer.web.get("/issue").await;
        assert_eq!(page.location.as_deref(), Some("/sign-in"));
        let code = officer.next_code().await;
        assert_eq!(officer.sign_in_with(PASSWORD, &code).await.status, 401);
        admin
            .web
            .post(
                &format!("/admin/accounts/{officer_id}/enable"),
                &[("csrf", &csrf)],
            )
            .await;
        officer.sign_in().await;

        // Re-enrolment: a new link, the old password and second factor are void.
        let page = admin
            .web
            .post(
                &format!("/admin/accounts/{officer_id}/re-enrol"),
                &[("csrf", &csrf)],
            )
            .await;
        let link = enrolment_link(&page.body).expect("a new link");
        let page = officer.web.get("/issue").await;
        assert_eq!(page.location.as_deref(), Some("/sign-in"), "sessions ended");
        let code = officer.next_code().await;
        assert_eq!(officer.sign_in_with(PASSWORD, &code).await.status, 401);
        let mut officer = Person::enrol(&stack, &link, "officer.one").await;
        officer.sign_in().await;

        // Role change: the officer becomes an administrator at the next sign-in.
        admin
            .web
            .post(
                &format!("/admin/accounts/{officer_id}/make-admin"),
                &[("csrf", &csrf)],
            )
            .await;
        let page = officer.sign_in().await;
        assert!(page.body.contains("/admin/audit"), "{}", page.body);

        // The audit page lists and filters; reading it is audited; export is JSON lines.
        let page = admin.web.get("/admin/audit?action=role_changed").await;
        assert_eq!(page.status, 200);
        assert!(page.body.contains("role_changed"), "{}", page.body);
        assert!(
            !page.body.contains("<code>sign_in_succeeded</code>"),
            "filtered"
        );
        let page = admin.web.get("/admin/audit?action=drop+table").await;
        assert_eq!((page.status, reason(&page)), (400, Some("invalid_action")));
        let page = admin.web.get("/admin/audit/export").await;
        assert_eq!(
            page.header("content-type"),
            Some("application/jsonl; charset=utf-8")
        );
        let lines: Vec<serde_json::Value> = page
            .body
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect();
        assert!(lines.len() > 10, "{}", page.body);
        let log = actions(&stack).await;
        for action in [
            Action::AccountDisabled,
            Action::AccountEnabled,
            Action::SecondFactorReset,
            Action::RoleChanged,
            Action::AuditViewed,
            Action::AuditExported,
            Action::AccountEnrolled,
        ] {
            assert!(log.contains(&action), "{action:?} in {log:?}");
        }
        assert!(stack.audit_is_intact().await);
        stack.shutdown().await;
    }
}

/// Enrolment refuses a wrong code, a weak password and a used link; a link works once.
#[tokio::test]
async fn enrolment_needs_a_valid_code_and_a_link_works_once() {
    let db = TestDatabase::sqlite();
    let stack = PortalStack::start(&db, "memory://", &[], &[]).await;
    let link = stack.create_admin("admin").await;
    let path = link.strip_prefix(&stack.public_url).unwrap().to_owned();
    let mut web = stack.client();
    let page = web.get(&path).await;
    assert!(page.body.contains("<svg"), "a QR code");
    let secret = page.input("secret").unwrap();
    let csrf = page.input("csrf").unwrap();
    let now = openwarn_bootstrap::lifecycle::unix_now();
    let good = openwarn_e2e::portal::totp_code(&secret, now);
    let wrong = if good == "000000" { "111111" } else { "000000" };
    for (password, code, why) in [
        (PASSWORD, wrong, "wrong_code"),
        ("too short", good.as_str(), "password_too_short"),
    ] {
        let page = web
            .post(
                &path,
                &[
                    ("csrf", &csrf),
                    ("secret", &secret),
                    ("password", password),
                    ("password2", password),
                    ("code", code),
                ],
            )
            .await;
        assert_eq!((page.status, reason(&page)), (400, Some(why)));
        assert_eq!(
            page.input("secret").as_deref(),
            Some(secret.as_str()),
            "same secret again"
        );
    }
    let page = web
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("secret", &secret),
                ("password", PASSWORD),
                ("password2", "other password!"),
                ("code", &good),
            ],
        )
        .await;
    assert_eq!(reason(&page), Some("password_mismatch"));
    let page = web
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("secret", &secret),
                ("password", PASSWORD),
                ("password2", PASSWORD),
                ("code", &good),
            ],
        )
        .await;
    assert_eq!(page.status, 303);
    // Used: the link is gone.
    let page = web.get(&path).await;
    assert_eq!(
        (page.status, reason(&page)),
        (404, Some("enrolment_link_invalid"))
    );
    let page = web.get(&format!("/enrol/{}", "0".repeat(64))).await;
    assert_eq!(page.status, 404);
    // Metrics name the route's template, never the link's token.
    let metrics = stack.metrics().await;
    assert!(metrics.contains("route=\"/enrol/{token}\""), "{metrics}");
    let token = path.rsplit('/').next().unwrap();
    assert!(!metrics.contains(token), "{metrics}");
    stack.shutdown().await;
}

/// German from the browser's languages, or chosen with `?lang=` and kept.
#[tokio::test]
async fn pages_speak_german_when_asked() {
    let db = TestDatabase::sqlite();
    let stack = PortalStack::start(&db, "memory://", &[], &[]).await;
    let mut web = stack.client();
    web.accept_language = Some("de-DE,de;q=0.9,en;q=0.5".into());
    let page = web.get("/sign-in").await;
    assert!(page.body.contains("<html lang=\"de\">"), "{}", page.body);
    assert!(page.body.contains("Anmelden"));
    let mut web = stack.client();
    let page = web.get("/sign-in").await;
    assert!(page.body.contains("<html lang=\"en\">"));
    web.get("/sign-in?lang=de").await;
    let page = web.get("/sign-in").await;
    assert!(page.body.contains("Einmalcode"), "the choice is kept");
    stack.shutdown().await;
}
