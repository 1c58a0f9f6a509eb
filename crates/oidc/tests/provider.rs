//! End to end against a real, certified OpenID provider: panva's `oidc-provider` run by Node.js
//! from `tests/provider/` on loopback ([`openwarn_testkit::oidc_provider`], which also plays the
//! browser's part: redirects, the login form, the consent form, cookies); the code is read from
//! the redirect to our callback.
//!
//! Needs `node` and `tests/provider/node_modules` (`npm ci --prefix crates/oidc/tests/provider`,
//! which `.ci/run` does). Without them the test is skipped, or fails with `CI=true`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration test: a failure is a failed test"
)]

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use openwarn_oidc::{Identity, OidcError, OidcSettings, PendingLogin, RelyingParty};
use openwarn_testkit::oidc_provider::{CLIENT_ID, CLIENT_SECRET, Callback, Provider};
use openwarn_testkit::web::{WebClient, encode};
use std::time::{Duration, SystemTime};

const REDIRECT_URI: &str = "http://127.0.0.1:9/portal/callback";

async fn start() -> Option<Provider> {
    Provider::start(REDIRECT_URI).await
}

fn settings(provider: &Provider) -> OidcSettings {
    OidcSettings {
        issuer: provider.issuer.clone(),
        client_id: CLIENT_ID.into(),
        client_secret: Some(CLIENT_SECRET.into()),
        redirect_uri: REDIRECT_URI.into(),
        scopes: vec!["profile".into(), "roles".into()],
        roles_claim: "roles".into(),
    }
}

/// An HTTP client on loopback that follows no redirect.
#[allow(
    clippy::disallowed_methods,
    reason = "a test client with its own TLS configuration and redirect policy"
)]
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .tls_backend_preconfigured(
            openwarn_mtls::http_client_tls(&[], None).expect("a TLS configuration"),
        )
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("an HTTP client")
}

/// A login up to the callback: the pending login and what came back.
async fn authorize(
    provider: &Provider,
    rp: &RelyingParty,
    login: &str,
) -> (PendingLogin, Callback) {
    let (url, pending) = rp.begin();
    let mut browser = WebClient::new(&provider.issuer);
    let callback = provider.sign_in(&mut browser, &url, login).await;
    (pending, Callback::parse(&callback))
}

async fn relying_party(provider: &Provider) -> RelyingParty {
    RelyingParty::discover(settings(provider), client())
        .await
        .expect("discovery")
}

#[tokio::test]
async fn officers_and_admins_sign_in_with_their_roles() {
    let Some(provider) = start().await else {
        return;
    };
    let rp = relying_party(&provider).await;
    assert_eq!(
        rp.metadata().end_session_endpoint.as_deref(),
        Some(format!("{}/session/end", provider.issuer).as_str())
    );

    let (pending, callback) = authorize(&provider, &rp, "officer1").await;
    assert_eq!(callback.state, pending.state());
    assert_eq!(callback.iss.as_deref(), Some(provider.issuer.as_str()));
    // Stored as JSON between the two requests, as the portal does.
    let pending: PendingLogin =
        serde_json::from_str(&serde_json::to_string(&pending).unwrap()).unwrap();
    let identity = rp
        .finish(&pending, &callback.state, &callback.code, SystemTime::now())
        .await
        .expect("the officer signs in");
    assert_eq!(
        identity,
        Identity {
            subject: "officer1".into(),
            issuer: provider.issuer.clone(),
            name: Some("officer1".into()),
            roles: vec!["officer".into()],
        }
    );

    // The same code again: the provider refuses it (and revokes what it issued).
    let err = rp
        .finish(&pending, &callback.state, &callback.code, SystemTime::now())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        OidcError::TokenExchangeFailed {
            status: Some(400),
            error: Some("invalid_grant".into())
        }
    );
    assert!(!err.to_string().contains(&callback.code), "{err}");

    let (pending, callback) = authorize(&provider, &rp, "admin1").await;
    let identity = rp
        .finish(&pending, &callback.state, &callback.code, SystemTime::now())
        .await
        .expect("the admin signs in");
    assert_eq!(identity.subject, "admin1");
    assert_eq!(identity.roles, ["admin"]);

    let (pending, callback) = authorize(&provider, &rp, "visitor").await;
    let identity = rp
        .finish(&pending, &callback.state, &callback.code, SystemTime::now())
        .await
        .expect("a user without roles signs in");
    assert!(identity.roles.is_empty());
}

#[tokio::test]
async fn a_crossed_state_is_refused_before_the_token_endpoint() {
    let Some(provider) = start().await else {
        return;
    };
    let rp = relying_party(&provider).await;
    let (pending, callback) = authorize(&provider, &rp, "officer1").await;
    let (other, _) = authorize(&provider, &rp, "officer1").await;

    for state in [other.state(), "", "forged"] {
        let err = rp
            .finish(&pending, state, &callback.code, SystemTime::now())
            .await
            .unwrap_err();
        assert_eq!(err, OidcError::StateMismatch);
    }
    // Another login's pending state with this callback's state.
    let err = rp
        .finish(&other, &callback.state, &callback.code, SystemTime::now())
        .await
        .unwrap_err();
    assert_eq!(err, OidcError::StateMismatch);
    // Codes are single-use: it still works, so none of the above reached the token endpoint.
    rp.finish(&pending, &callback.state, &callback.code, SystemTime::now())
        .await
        .expect("the unspent code");
}

#[tokio::test]
async fn an_id_token_two_hours_later_is_expired() {
    let Some(provider) = start().await else {
        return;
    };
    let rp = relying_party(&provider).await;
    let (pending, callback) = authorize(&provider, &rp, "officer1").await;
    let later = SystemTime::now() + Duration::from_secs(2 * 3600);
    let err = rp
        .finish(&pending, &callback.state, &callback.code, later)
        .await
        .unwrap_err();
    assert_eq!(err, OidcError::Expired);
}

/// The real ID token of a login, fetched by the test itself (as `finish` would).
async fn real_id_token(provider: &Provider, rp: &RelyingParty) -> (String, String) {
    let (pending, callback) = authorize(provider, rp, "officer1").await;
    // The PendingLogin's JSON is what the portal stores; the test reads the verifier from it.
    let stored = serde_json::to_value(&pending).unwrap();
    let credentials = STANDARD.encode(format!(
        "{CLIENT_ID}:{}",
        encode(CLIENT_SECRET).replace("%20", "+")
    ));
    let answer: serde_json::Value = client()
        .post(&rp.metadata().token_endpoint)
        .header(
            reqwest::header::AUTHORIZATION,
            format!("Basic {credentials}"),
        )
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", callback.code.as_str()),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", stored["code_verifier"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (
        answer["id_token"].as_str().expect("an ID token").to_owned(),
        stored["nonce"].as_str().unwrap().to_owned(),
    )
}

fn resign(header: &serde_json::Value, payload: &str) -> String {
    let input = format!("{}.{payload}", URL_SAFE_NO_PAD.encode(header.to_string()));
    let key =
        ring::signature::RsaKeyPair::from_pkcs8(include_bytes!("../src/testdata/rsa-2048.pk8"))
            .unwrap();
    let mut signature = vec![0; key.public().modulus_len()];
    key.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        input.as_bytes(),
        &mut signature,
    )
    .unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

#[tokio::test]
async fn forged_id_tokens_are_refused() {
    let Some(provider) = start().await else {
        return;
    };
    let rp = relying_party(&provider).await;
    let (token, nonce) = real_id_token(&provider, &rp).await;
    let now = SystemTime::now();
    let identity = rp.validate_id_token(&token, &nonce, now).await.unwrap();
    assert_eq!(identity.roles, ["officer"], "the real token passes");

    let parts: Vec<&str> = token.split('.').collect();
    let header: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header["alg"], "RS256");
    let mut claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims["roles"] = serde_json::json!(["admin"]);
    let promoted = URL_SAFE_NO_PAD.encode(claims.to_string());

    // The payload tampered with, under the provider's signature.
    let tampered = format!("{}.{promoted}.{}", parts[0], parts[2]);
    let err = rp
        .validate_id_token(&tampered, &nonce, now)
        .await
        .unwrap_err();
    assert_eq!(err, OidcError::InvalidSignature);

    // Re-signed with a key not in the JWKS, under the provider's kid, then under another kid.
    let err = rp
        .validate_id_token(&resign(&header, &promoted), &nonce, now)
        .await
        .unwrap_err();
    assert_eq!(err, OidcError::InvalidSignature);
    let mut other_kid = header.clone();
    other_kid["kid"] = serde_json::json!("attacker");
    let err = rp
        .validate_id_token(&resign(&other_kid, &promoted), &nonce, now)
        .await
        .unwrap_err();
    assert_eq!(err, OidcError::UnknownKey);

    // alg none; and HS256 keyed with the provider's public key.
    let none = URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#);
    let err = rp
        .validate_id_token(&format!("{none}.{promoted}."), &nonce, now)
        .await
        .unwrap_err();
    assert_eq!(err, OidcError::UnsupportedAlgorithm("none".into()));
    let jwks: serde_json::Value = client()
        .get(&rp.metadata().jwks_uri)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let n = URL_SAFE_NO_PAD
        .decode(jwks["keys"][0]["n"].as_str().unwrap())
        .unwrap();
    let hs = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","kid":"test-rs256"}"#);
    let input = format!("{hs}.{promoted}");
    let tag = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &n),
        input.as_bytes(),
    );
    let err = rp
        .validate_id_token(
            &format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag)),
            &nonce,
            now,
        )
        .await
        .unwrap_err();
    assert_eq!(err, OidcError::UnsupportedAlgorithm("HS256".into()));

    // The real token for another login's nonce.
    let err = rp
        .validate_id_token(&token, "another-login", now)
        .await
        .unwrap_err();
    assert_eq!(err, OidcError::NonceMismatch);
}
