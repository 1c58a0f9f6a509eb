//! Signing in to the portal through a real OpenID provider (panva's `oidc-provider`, see
//! [`openwarn_testkit::oidc_provider`]), over real sockets, in front of a real verification
//! service: officers and administrators land on their pages and work; a login without a portal
//! role, a replayed or forged callback, a callback opened in another browser than the one that
//! started the sign-in, and a tampered code are refused and audited; a disabled account stays
//! out; an unreachable provider is a 503.
//!
//! A browser cannot hand the portal an ID token, only a code the portal redeems at the provider
//! itself; so a token with a bad signature or an expired one comes from a scripted provider
//! ([`FakeProvider`]) here. The ID token's checks in detail (algorithms, keys, nonce, audience)
//! are tested in `crates/oidc`, also against the real provider.
//!
//! Needs `node` and the provider's `node_modules` (`npm ci --prefix crates/oidc/tests/provider`);
//! without them the tests that need the provider are skipped, or fail with `CI=true`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration test: a failure is a failed test"
)]

use openwarn_e2e::portal::{PortalStack, continues_to, shown_tele_tan};
use openwarn_portal::REASON_HEADER;
use openwarn_portal::audit::{Action, Actor, AuditLog};
use openwarn_testkit::TestDatabase;
use openwarn_testkit::oidc_provider::{
    CLIENT_ID, CLIENT_SECRET, Callback, FakeProvider, FakeToken, Provider, SCOPES,
};
use openwarn_testkit::web::{WebClient, WebPage};

const BINDING_COOKIE: &str = "portal_oidc";
const SESSION_COOKIE: &str = "portal_session";

fn reason(page: &WebPage) -> Option<&str> {
    page.header(REASON_HEADER)
}

/// The portal's OIDC arguments for `issuer`.
fn oidc_args(issuer: &str) -> Vec<&str> {
    vec![
        "--sign-in",
        "oidc",
        "--oidc-issuer",
        issuer,
        "--oidc-client-id",
        CLIENT_ID,
        "--oidc-client-secret",
        CLIENT_SECRET,
        "--oidc-scopes",
        SCOPES,
    ]
}

/// The provider, with the portal's callback as its redirect URI, and the portal using it.
async fn start(db: &TestDatabase, kv: &str) -> Option<(Provider, PortalStack)> {
    let port = openwarn_testkit::free_port();
    let public_url = PortalStack::public_url_on(port);
    let provider = Provider::start(&format!("{public_url}/sign-in/oidc/callback")).await?;
    let stack = PortalStack::start_on(port, db, kv, &oidc_args(&provider.issuer), &[]).await;
    assert_eq!(stack.public_url, public_url);
    Some((provider, stack))
}

/// From the portal's "sign in" button to the provider, signed in there as `login`: the URL of
/// the callback the provider sends the browser to (not visited yet).
async fn at_provider(provider: &Provider, web: &mut WebClient, login: &str) -> String {
    let page = web.get("/sign-in/oidc").await;
    assert_eq!(page.status, 303, "{}", page.body);
    let location = page.location.clone().expect("to the provider");
    assert!(
        location.starts_with(&format!("{}/", provider.issuer)),
        "{location}"
    );
    assert!(
        web.cookies.contains_key(BINDING_COOKIE),
        "{:?}",
        page.set_cookies()
    );
    provider.sign_in(web, &location, login).await
}

/// A whole sign-in as `login` in a new browser: the browser and the callback's answer.
async fn sign_in(stack: &PortalStack, provider: &Provider, login: &str) -> (WebClient, WebPage) {
    let mut web = stack.client();
    let callback = at_provider(provider, &mut web, login).await;
    let page = web.get(&callback).await;
    (web, page)
}

/// The reasons of the failed sign-ins in the audit log, oldest first.
async fn refusals(stack: &PortalStack) -> Vec<String> {
    stack
        .audit_log()
        .await
        .into_iter()
        .filter(|(_, action, _)| *action == Action::SignInFailed)
        .map(|(_, _, detail)| detail.expect("a failed sign-in's reason"))
        .collect()
}

/// Asserts the callback's answer is the portal's generic refusal (401 `sign_in_failed`) and that
/// the audit log's latest refusal names `why`.
async fn assert_refused(stack: &PortalStack, page: &WebPage, why: &str) {
    assert_eq!(
        (page.status, reason(page)),
        (401, Some("sign_in_failed")),
        "{why}: {}",
        page.body
    );
    assert!(
        !page.body.contains(why),
        "the page does not tell why: {}",
        page.body
    );
    assert_eq!(
        refusals(stack).await.last().map(String::as_str),
        Some(why),
        "the audit log names why"
    );
}

#[tokio::test]
async fn officers_and_administrators_sign_in_through_the_provider() {
    for (db, kv) in openwarn_testkit::backends() {
        let Some((mut provider, stack)) = start(&db, &kv).await else {
            return;
        };

        // The sign-in page offers the provider, and no password form.
        let page = stack.client().get("/sign-in").await;
        assert_eq!(page.status, 200);
        assert!(
            page.body.contains("href=\"/sign-in/oidc\""),
            "{}",
            page.body
        );
        assert!(!page.body.contains("name=\"password\""), "{}", page.body);

        // An officer: to the provider and back, with a session; they issue a teleTAN.
        let mut officer = stack.client();
        let callback = at_provider(&provider, &mut officer, "officer1").await;
        let binding = officer.cookies[BINDING_COOKIE].clone();
        let page = officer.get(&callback).await;
        assert_eq!(
            (page.status, continues_to(&page)),
            (200, Some("/issue")),
            "{}",
            page.body
        );
        assert!(officer.cookies.contains_key(SESSION_COOKIE));
        assert!(
            !officer.cookies.contains_key(BINDING_COOKIE),
            "the binding cookie is spent: {:?}",
            page.set_cookies()
        );
        let page = officer.get("/issue").await;
        assert_eq!(page.status, 200, "{}", page.body);
        let csrf = page.input("csrf").expect("a CSRF field");
        let page = officer.post("/issue", &[("csrf", &csrf)]).await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(shown_tele_tan(&page.body).is_some(), "{}", page.body);
        let log = stack.audit_log().await;
        let officer_id = log
            .iter()
            .find_map(|(actor, action, _)| match (actor, action) {
                (Actor::Account(id), Action::SignInSucceeded) => Some(*id),
                _ => None,
            })
            .expect("the officer's sign-in is audited");
        assert!(
            log.iter()
                .any(|(actor, action, _)| *actor == Actor::Account(officer_id)
                    && *action == Action::TeleTanIssued),
            "{log:?}"
        );

        // The same callback again, with the binding cookie back: its state was taken.
        officer.cookies.insert(BINDING_COOKIE.into(), binding);
        let page = officer.get(&callback).await;
        assert_refused(&stack, &page, "unknown_state").await;
        // The officer's session is untouched by the refusal.
        assert_eq!(officer.get("/issue").await.status, 200);

        // A callback of a sign-in someone else started, opened in another browser (login CSRF):
        // refused there, with or without a sign-in of that browser's own under way; it still
        // works in the browser that started it.
        let mut attacker = stack.client();
        let attackers_callback = at_provider(&provider, &mut attacker, "officer1").await;
        let page = stack.client().get(&attackers_callback).await;
        assert_refused(&stack, &page, "no_binding_cookie").await;
        let mut victim = stack.client();
        let _ = at_provider(&provider, &mut victim, "admin1").await;
        let page = victim.get(&attackers_callback).await;
        assert_refused(&stack, &page, "unknown_state").await;
        assert!(!victim.cookies.contains_key(SESSION_COOKIE));
        let page = attacker.get(&attackers_callback).await;
        assert_eq!(continues_to(&page), Some("/issue"), "{}", page.body);

        // A forged state, in a browser with a sign-in under way.
        let mut web = stack.client();
        let real = Callback::parse(&at_provider(&provider, &mut web, "officer1").await);
        let page = web
            .get(&format!(
                "/sign-in/oidc/callback?code={}&state=forged",
                real.code
            ))
            .await;
        assert_refused(&stack, &page, "unknown_state").await;

        // A tampered code: the state is right, the provider refuses the code.
        let mut web = stack.client();
        let real = Callback::parse(&at_provider(&provider, &mut web, "officer1").await);
        let page = web
            .get(&format!(
                "/sign-in/oidc/callback?code={}x&state={}&iss={}",
                real.code,
                real.state,
                openwarn_testkit::web::encode(&provider.issuer)
            ))
            .await;
        assert_refused(&stack, &page, "token_exchange_failed").await;
        // Another issuer named in the callback (RFC 9207).
        let mut web = stack.client();
        let real = Callback::parse(&at_provider(&provider, &mut web, "officer1").await);
        let page = web
            .get(&format!(
                "/sign-in/oidc/callback?code={}&state={}&iss=http%3A%2F%2F127.0.0.1%3A1",
                real.code, real.state
            ))
            .await;
        assert_refused(&stack, &page, "wrong_issuer").await;
        // The provider's error answer.
        let mut web = stack.client();
        let real = Callback::parse(&at_provider(&provider, &mut web, "officer1").await);
        let page = web
            .get(&format!(
                "/sign-in/oidc/callback?error=access_denied&state={}",
                real.state
            ))
            .await;
        assert_refused(&stack, &page, "provider_refused").await;

        // An administrator lands on the accounts page.
        let (mut admin, page) = sign_in(&stack, &provider, "admin1").await;
        assert_eq!(
            (page.status, continues_to(&page)),
            (200, Some("/admin/accounts")),
            "{}",
            page.body
        );
        let page = admin.get("/admin/accounts").await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(page.body.contains("officer1"), "{}", page.body);

        // Someone the provider knows but who has no portal role.
        let (visitor, page) = sign_in(&stack, &provider, "visitor").await;
        assert_eq!((page.status, reason(&page)), (403, Some("no_portal_role")));
        assert!(!visitor.cookies.contains_key(SESSION_COOKIE));
        assert_eq!(refusals(&stack).await.last().unwrap(), "no_portal_role");

        // The administrator disables the officer: their session ends and the provider's
        // sign-in no longer lets them in.
        let csrf = page_csrf(&mut admin, "/admin/accounts").await;
        let page = admin
            .post(
                &format!("/admin/accounts/{officer_id}/disable"),
                &[("csrf", &csrf)],
            )
            .await;
        assert_eq!(page.status, 200, "{}", page.body);
        let page = officer.get("/issue").await;
        assert_eq!(page.location.as_deref(), Some("/sign-in"));
        let (_, page) = sign_in(&stack, &provider, "officer1").await;
        assert_refused(&stack, &page, "account_disabled").await;
        let log = stack.audit_log().await;
        assert!(log.contains(&(
            Actor::Account(officer_id),
            Action::SignInFailed,
            Some("account_disabled".into())
        )));
        assert_eq!(
            log.iter()
                .filter(|(actor, action, _)| *actor == Actor::Account(officer_id)
                    && *action == Action::SignInSucceeded)
                .count(),
            2,
            "the officer's two sign-ins (theirs and the one started by 'the attacker'): {log:?}"
        );

        // The provider goes away mid-sign-in: the code cannot be redeemed, 503. The discovery
        // document is cached, so the portal still sends browsers to the (dead) provider.
        let mut web = stack.client();
        let callback = at_provider(&provider, &mut web, "admin1").await;
        provider.stop().await;
        let page = web.get(&callback).await;
        assert_eq!(
            (page.status, reason(&page)),
            (503, Some("dependency_unavailable")),
            "{}",
            page.body
        );
        let page = stack.client().get("/sign-in/oidc").await;
        assert_eq!(page.status, 303, "discovery is cached: {}", page.body);
        assert!(
            page.location
                .as_deref()
                .unwrap()
                .starts_with(&provider.issuer)
        );

        {
            let db = openwarn_db::Database::open(stack.portal_db.url(), 1)
                .await
                .unwrap();
            assert!(AuditLog::new(db).verify().await.unwrap().is_intact());
        }
        stack.shutdown().await;
    }
}

async fn page_csrf(web: &mut WebClient, path: &str) -> String {
    web.get(path).await.input("csrf").expect("a CSRF field")
}

/// A provider that cannot be reached when the first officer comes: the portal started anyway
/// (it discovers the provider on first use), answers 503 until the provider is back, and its
/// sign-in page still shows.
#[tokio::test]
async fn a_provider_unreachable_at_first_use_is_503() {
    let db = TestDatabase::sqlite();
    // Nothing listens there.
    let issuer = format!("http://127.0.0.1:{}", openwarn_testkit::free_port());
    let stack = PortalStack::start(&db, "memory://", &oidc_args(&issuer), &[]).await;
    let mut web = stack.client();
    assert_eq!(web.get("/sign-in").await.status, 200);
    for _ in 0..2 {
        let page = web.get("/sign-in/oidc").await;
        assert_eq!(
            (page.status, reason(&page)),
            (503, Some("dependency_unavailable")),
            "{}",
            page.body
        );
        assert!(!web.cookies.contains_key(BINDING_COOKIE));
    }
    // A callback without a sign-in under way is refused before the provider is needed.
    let page = web.get("/sign-in/oidc/callback?code=c&state=s").await;
    assert_eq!((page.status, reason(&page)), (401, Some("sign_in_failed")));
    stack.shutdown().await;
}

/// A sign-in through the fake provider that issues `token`: the browser and the callback's
/// answer.
async fn through(
    stack: &PortalStack,
    provider: &FakeProvider,
    token: FakeToken,
) -> (WebClient, WebPage) {
    provider.set_token(token);
    let mut web = stack.client();
    let page = web.get("/sign-in/oidc").await;
    assert_eq!(page.status, 303, "{}", page.body);
    let page = web.get(page.location.as_deref().unwrap()).await;
    assert_eq!(
        page.status, 303,
        "the fake provider signs in: {}",
        page.body
    );
    let callback = page.location.clone().unwrap();
    assert!(callback.starts_with(&format!("{}/sign-in/oidc/callback?", stack.public_url)));
    let page = web.get(&callback).await;
    (web, page)
}

/// ID tokens with a bad signature (claims changed under the provider's signature) or expired,
/// from a scripted provider: refused and audited with the reason; a good one from the same
/// provider signs in.
#[tokio::test]
async fn an_id_token_with_a_bad_signature_or_expired_is_refused() {
    let db = TestDatabase::sqlite();
    let provider = FakeProvider::start().await;
    let stack = PortalStack::start(&db, "memory://", &oidc_args(&provider.issuer), &[]).await;
    let (_, page) = through(&stack, &provider, FakeToken::BadSignature).await;
    assert_refused(&stack, &page, "invalid_signature").await;
    let (_, page) = through(&stack, &provider, FakeToken::Expired).await;
    assert_refused(&stack, &page, "expired").await;
    let (web, page) = through(&stack, &provider, FakeToken::Valid).await;
    assert_eq!(
        (page.status, continues_to(&page)),
        (200, Some("/issue")),
        "{}",
        page.body
    );
    assert!(web.cookies.contains_key(SESSION_COOKIE));
    provider.set_login("admin1", &["admin"]);
    let (_, page) = through(&stack, &provider, FakeToken::Valid).await;
    assert_eq!(continues_to(&page), Some("/admin/accounts"));
    stack.shutdown().await;
}
