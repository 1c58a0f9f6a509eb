//! End to end against a real, certified OpenID provider: panva's `oidc-provider` run by Node.js
//! from `tests/provider/` on loopback. The browser's part (redirects, the login form, the consent
//! form, cookies) is played with reqwest; the code is read from the redirect to our callback.
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
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncBufReadExt, BufReader};

const REDIRECT_URI: &str = "http://127.0.0.1:9/portal/callback";
const CLIENT_SECRET: &str = "a test secret: not+a/real=one";

#[allow(
    clippy::disallowed_methods,
    reason = "test support: CI is the test environment's switch, not a service setting for clap"
)]
fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

fn provider_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/provider")
}

/// Why the provider cannot run here, if it cannot.
fn missing() -> Option<String> {
    let node = std::process::Command::new("node").arg("--version").output();
    if !node.is_ok_and(|o| o.status.success()) {
        return Some("`node` is not on PATH".into());
    }
    if !provider_dir().join("node_modules/oidc-provider").is_dir() {
        return Some(
            "crates/oidc/tests/provider/node_modules is missing: run \
             `npm ci --prefix crates/oidc/tests/provider`"
                .into(),
        );
    }
    None
}

/// The provider's process, ended when dropped.
struct Provider {
    issuer: String,
    _child: tokio::process::Child,
}

impl Provider {
    async fn start() -> Option<Self> {
        if let Some(why) = missing() {
            assert!(!ci(), "CI=true and the OpenID provider cannot run: {why}");
            eprintln!("skipped: {why}");
            return None;
        }
        let mut child = tokio::process::Command::new("node")
            .arg("provider.mjs")
            .arg(REDIRECT_URI)
            .arg(CLIENT_SECRET)
            .current_dir(provider_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start node");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let issuer = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.expect("read the provider") {
                if let Some(issuer) = line.strip_prefix("issuer ") {
                    return issuer.to_owned();
                }
            }
            panic!("the provider stopped without serving");
        })
        .await
        .expect("the provider serves within 30 s");
        // Keep reading its stdout so that it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Some(Self {
            issuer,
            _child: child,
        })
    }

    fn settings(&self) -> OidcSettings {
        OidcSettings {
            issuer: self.issuer.clone(),
            client_id: "portal".into(),
            client_secret: Some(CLIENT_SECRET.into()),
            redirect_uri: REDIRECT_URI.into(),
            scopes: vec!["profile".into(), "roles".into()],
            roles_claim: "roles".into(),
        }
    }
}

/// An HTTP client on loopback; the browser's does not follow redirects (we read each one).
#[allow(
    clippy::disallowed_methods,
    reason = "a test client with its own TLS configuration and redirect policy"
)]
fn client(follow_redirects: bool) -> reqwest::Client {
    let policy = if follow_redirects {
        reqwest::redirect::Policy::default()
    } else {
        reqwest::redirect::Policy::none()
    };
    reqwest::Client::builder()
        .tls_backend_preconfigured(
            openwarn_mtls::http_client_tls(&[], None).expect("a TLS configuration"),
        )
        .redirect(policy)
        .build()
        .expect("an HTTP client")
}

/// The browser: a client that stops at each redirect, and its cookies (one host, so no domain or
/// path matching).
struct Browser {
    http: reqwest::Client,
    cookies: HashMap<String, String>,
}

/// Where the browser landed at our callback: its query.
struct Callback {
    code: String,
    state: String,
    iss: Option<String>,
}

fn attribute<'a>(html: &'a str, before: &str) -> Option<&'a str> {
    let start = html.find(before)? + before.len();
    let end = html[start..].find('"')? + start;
    Some(&html[start..end])
}

impl Browser {
    fn new() -> Self {
        Self {
            http: client(false),
            cookies: HashMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep_cookies(&mut self, response: &reqwest::Response) {
        for set in response.headers().get_all(reqwest::header::SET_COOKIE) {
            let set = set.to_str().expect("an ASCII cookie");
            let (pair, attributes) = set.split_once(';').unwrap_or((set, ""));
            let (name, value) = pair.split_once('=').expect("name=value");
            let attributes = attributes.to_ascii_lowercase();
            if value.is_empty()
                || attributes.contains("expires=thu, 01 jan 1970")
                || attributes.contains("max-age=0")
            {
                self.cookies.remove(name.trim());
            } else {
                self.cookies
                    .insert(name.trim().to_owned(), value.trim().to_owned());
            }
        }
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> reqwest::Response {
        let response = request
            .header(reqwest::header::COOKIE, self.cookie_header())
            .send()
            .await
            .expect("the provider answers");
        self.keep_cookies(&response);
        response
    }

    /// Goes to `url` and through the provider's pages as a user `login` would: the login form,
    /// then the consent form, following each redirect, until the redirect to our callback.
    async fn sign_in(&mut self, url: &str, login: &str) -> Callback {
        let mut url = reqwest::Url::parse(url).expect("the authorization URL");
        let mut response = self.send(self.http.get(url.clone())).await;
        for _ in 0..20 {
            if response.status().is_redirection() {
                let location = response.headers()[reqwest::header::LOCATION]
                    .to_str()
                    .expect("an ASCII location");
                url = url.join(location).expect("a location URL");
                if url.as_str().starts_with(REDIRECT_URI) {
                    let query: HashMap<String, String> = url.query_pairs().into_owned().collect();
                    assert!(
                        !query.contains_key("error"),
                        "the provider refused: {query:?}"
                    );
                    return Callback {
                        code: query["code"].clone(),
                        state: query["state"].clone(),
                        iss: query.get("iss").cloned(),
                    };
                }
                response = self.send(self.http.get(url.clone())).await;
                continue;
            }
            assert_eq!(response.status(), 200, "at {url}");
            let html = response.text().await.expect("a page");
            let action = attribute(&html, "<form autocomplete=\"off\" action=\"")
                .unwrap_or_else(|| panic!("no form at {url}: {html}"))
                .replace("&#x2F;", "/")
                .replace("&#47;", "/")
                .replace("&amp;", "&");
            let form_url = url.join(&action).expect("the form's URL");
            let form: Vec<(&str, &str)> = if html.contains("name=\"login\"") {
                vec![("prompt", "login"), ("login", login), ("password", "any")]
            } else {
                assert!(
                    html.contains("value=\"consent\""),
                    "neither login nor consent: {html}"
                );
                vec![("prompt", "consent")]
            };
            let body = form
                .iter()
                .map(|(k, v)| format!("{k}={}", url_encode(v)))
                .collect::<Vec<_>>()
                .join("&");
            response = self
                .send(
                    self.http
                        .post(form_url)
                        .header(
                            reqwest::header::CONTENT_TYPE,
                            "application/x-www-form-urlencoded",
                        )
                        .body(body),
                )
                .await;
        }
        panic!("no redirect to the callback after 20 steps");
    }
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A login up to the callback: the pending login and what came back.
async fn authorize(rp: &RelyingParty, login: &str) -> (PendingLogin, Callback) {
    let (url, pending) = rp.begin();
    let callback = Browser::new().sign_in(&url, login).await;
    (pending, callback)
}

async fn relying_party(provider: &Provider) -> RelyingParty {
    RelyingParty::discover(provider.settings(), client(false))
        .await
        .expect("discovery")
}

#[tokio::test]
async fn officers_and_admins_sign_in_with_their_roles() {
    let Some(provider) = Provider::start().await else {
        return;
    };
    let rp = relying_party(&provider).await;
    assert_eq!(
        rp.metadata().end_session_endpoint.as_deref(),
        Some(format!("{}/session/end", provider.issuer).as_str())
    );

    let (pending, callback) = authorize(&rp, "officer1").await;
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

    let (pending, callback) = authorize(&rp, "admin1").await;
    let identity = rp
        .finish(&pending, &callback.state, &callback.code, SystemTime::now())
        .await
        .expect("the admin signs in");
    assert_eq!(identity.subject, "admin1");
    assert_eq!(identity.roles, ["admin"]);

    let (pending, callback) = authorize(&rp, "visitor").await;
    let identity = rp
        .finish(&pending, &callback.state, &callback.code, SystemTime::now())
        .await
        .expect("a user without roles signs in");
    assert!(identity.roles.is_empty());
}

#[tokio::test]
async fn a_crossed_state_is_refused_before_the_token_endpoint() {
    let Some(provider) = Provider::start().await else {
        return;
    };
    let rp = relying_party(&provider).await;
    let (pending, callback) = authorize(&rp, "officer1").await;
    let (other, _) = authorize(&rp, "officer1").await;

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
    let Some(provider) = Provider::start().await else {
        return;
    };
    let rp = relying_party(&provider).await;
    let (pending, callback) = authorize(&rp, "officer1").await;
    let later = SystemTime::now() + Duration::from_secs(2 * 3600);
    let err = rp
        .finish(&pending, &callback.state, &callback.code, later)
        .await
        .unwrap_err();
    assert_eq!(err, OidcError::Expired);
}

/// The real ID token of a login, fetched by the test itself (as `finish` would).
async fn real_id_token(provider: &Provider, rp: &RelyingParty) -> (String, String) {
    let (pending, callback) = authorize(rp, "officer1").await;
    // The PendingLogin's JSON is what the portal stores; the test reads the verifier from it.
    let stored = serde_json::to_value(&pending).unwrap();
    let credentials = STANDARD.encode(format!(
        "portal:{}",
        url_encode(CLIENT_SECRET).replace("%20", "+")
    ));
    let answer: serde_json::Value = client(false)
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
    let _ = provider;
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
    let Some(provider) = Provider::start().await else {
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
    let jwks: serde_json::Value = client(false)
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
