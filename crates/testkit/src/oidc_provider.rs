//! A real, certified OpenID provider for tests: panva's `oidc-provider`, run by Node.js from
//! `crates/oidc/tests/provider/provider.mjs` on a free loopback port, and the browser's part of
//! signing in at it (its development login form, then its consent form) played by a
//! [`WebClient`].
//!
//! One confidential client, [`CLIENT_ID`] with [`CLIENT_SECRET`] (`client_secret_basic`, PKCE
//! required), may use the redirect URI given to [`Provider::start`]. Any login works: `officer1`
//! has the roles `["officer"]`, `admin1` `["admin"]`, any other none. ID tokens carry `roles` and
//! `preferred_username` (scopes `roles` and `profile`), signed RS256 with a key made at start.
//!
//! Needs `node` on `PATH` and the provider's `node_modules` (`npm ci --prefix
//! crates/oidc/tests/provider`, which `.ci/run` does). Without them [`Provider::start`] answers
//! `None` (the test skips), except under `CI=true`, where it fails the test.
//!
//! For what a real provider never does (an ID token with a bad signature, or expired), a small
//! scripted provider: [`FakeProvider`].

use crate::web::WebClient;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

/// The one client the provider knows.
pub const CLIENT_ID: &str = "portal";
/// Its secret (with characters that need form-encoding in `client_secret_basic`).
pub const CLIENT_SECRET: &str = "a test secret: not+a/real=one";
/// The scopes that put `preferred_username` and `roles` in the ID token.
pub const SCOPES: &str = "profile,roles";

/// The provider's directory in this workspace, `crates/oidc/tests/provider`.
///
/// Found from the running test's `CARGO_MANIFEST_DIR` (which `cargo test` sets to the tested
/// package's directory, so a binary built from another copy of the workspace still finds the
/// checkout it runs in), else from where this crate was compiled.
pub fn provider_dir() -> PathBuf {
    const IN_WORKSPACE: &str = "crates/oidc/tests/provider";
    #[allow(
        clippy::disallowed_methods,
        reason = "test support: cargo's CARGO_MANIFEST_DIR of the running test, not a setting"
    )]
    let running = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from);
    let compiled = Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf();
    running
        .iter()
        .chain(std::iter::once(&compiled))
        .flat_map(|dir| dir.ancestors())
        .map(|dir| dir.join(IN_WORKSPACE))
        .find(|dir| dir.join("provider.mjs").is_file())
        .unwrap_or_else(|| compiled.join("../..").join(IN_WORKSPACE))
}

/// Why the provider cannot run here, if it cannot.
pub fn missing() -> Option<String> {
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

/// The provider's process; killed when dropped (or by [`Provider::stop`]).
#[derive(Debug)]
pub struct Provider {
    /// `http://127.0.0.1:PORT`, as in its discovery document and its tokens.
    pub issuer: String,
    /// The one redirect URI its client may use.
    pub redirect_uri: String,
    child: tokio::process::Child,
}

/// What the provider sent the browser back to the redirect URI with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callback {
    pub code: String,
    pub state: String,
    /// RFC 9207's `iss`.
    pub iss: Option<String>,
}

impl Callback {
    /// Reads a callback URL's query (panics without `code` and `state`).
    pub fn parse(url: &str) -> Self {
        let url = reqwest::Url::parse(url).expect("a callback URL");
        let query: std::collections::HashMap<String, String> =
            url.query_pairs().into_owned().collect();
        Self {
            code: query.get("code").expect("a code").clone(),
            state: query.get("state").expect("a state").clone(),
            iss: query.get("iss").cloned(),
        }
    }
}

impl Provider {
    /// Starts the provider for a client redirected to `redirect_uri`. `None` when node or the
    /// provider's packages are missing (the caller skips), except under `CI=true`, where that
    /// fails the test.
    pub async fn start(redirect_uri: &str) -> Option<Self> {
        if let Some(why) = missing() {
            assert!(
                !crate::ci(),
                "CI=true and the OpenID provider cannot run: {why}"
            );
            eprintln!("skipped: {why}");
            return None;
        }
        let mut child = tokio::process::Command::new("node")
            .arg("provider.mjs")
            .arg(redirect_uri)
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
        // Usually under a second; generous, since a machine busy building can starve node (a CI
        // run once waited over 30 s for it while two builds shared the two cores).
        let issuer = tokio::time::timeout(Duration::from_secs(120), async {
            while let Some(line) = lines.next_line().await.expect("read the provider") {
                if let Some(issuer) = line.strip_prefix("issuer ") {
                    return issuer.to_owned();
                }
            }
            panic!("the provider stopped without serving");
        })
        .await
        .expect("the provider serves within 120 s");
        // Keep reading its stdout so that it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Some(Self {
            issuer,
            redirect_uri: redirect_uri.to_owned(),
            child,
        })
    }

    /// Ends the provider now (kill and wait): its port refuses connections afterwards.
    pub async fn stop(&mut self) {
        let _ = self.child.kill().await;
    }

    /// The browser's part of a sign-in as `login`: from `authorization_url` through the
    /// provider's login form and consent form (cookies in `web`), following each redirect
    /// until the one to the redirect URI, whose full URL it returns (not visited). Panics if the
    /// provider sends an `error` there instead of a code.
    pub async fn sign_in(
        &self,
        web: &mut WebClient,
        authorization_url: &str,
        login: &str,
    ) -> String {
        let mut url = reqwest::Url::parse(authorization_url).expect("the authorization URL");
        let mut page = web.get(url.as_str()).await;
        for _ in 0..20 {
            if (300..400).contains(&page.status) {
                let location = page.location.as_deref().expect("a redirect's Location");
                url = url.join(location).expect("a location URL");
                if url.as_str().starts_with(&self.redirect_uri) {
                    assert!(
                        !url.query_pairs().any(|(k, _)| k == "error"),
                        "the provider refused: {url}"
                    );
                    return url.to_string();
                }
                page = web.get(url.as_str()).await;
                continue;
            }
            assert_eq!(page.status, 200, "at {url}: {}", page.body);
            let html = &page.body;
            let action = attribute(html, "<form autocomplete=\"off\" action=\"")
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
                    "neither login nor consent at {url}: {html}"
                );
                vec![("prompt", "consent")]
            };
            page = web.post(form_url.as_str(), &form).await;
        }
        panic!("no redirect to {} after 20 steps", self.redirect_uri);
    }
}

fn attribute<'a>(html: &'a str, before: &str) -> Option<&'a str> {
    let start = html.find(before)? + before.len();
    let end = html[start..].find('"')? + start;
    Some(&html[start..end])
}

/// The ID tokens a [`FakeProvider`] issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FakeToken {
    /// Signed with the key of its JWKS, valid for five minutes.
    Valid,
    /// Signed, then its claims changed (`roles` made `["admin"]`) under the same signature.
    BadSignature,
    /// Signed with the right key, but it expired an hour ago.
    Expired,
}

struct FakeState {
    issuer: String,
    key: ring::signature::EcdsaKeyPair,
    token: FakeToken,
    login: String,
    roles: Vec<String>,
    /// Codes handed out, with the nonce of their authorization request.
    codes: std::collections::HashMap<String, String>,
}

/// A small scripted OpenID provider on loopback, for what a real one never does: ID tokens with
/// a bad signature or already expired ([`FakeToken`]). It serves discovery, a JWKS (one ES256
/// key made at start), an authorization endpoint that signs in [`FakeProvider::set_login`]'s user
/// at once (no form) and redirects to the request's `redirect_uri` with a code, and a token
/// endpoint that answers any code it handed out (no client authentication or PKCE checks: it
/// tests the relying party's checks of the ID token, not its own). Stops when dropped.
pub struct FakeProvider {
    /// `http://127.0.0.1:PORT`.
    pub issuer: String,
    state: std::sync::Arc<std::sync::Mutex<FakeState>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeProvider {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake provider");
        let issuer = format!("http://{}", listener.local_addr().expect("its address"));
        let rng = ring::rand::SystemRandom::new();
        let alg = &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(alg, &rng).expect("a key");
        let key =
            ring::signature::EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).expect("the key");
        let state = std::sync::Arc::new(std::sync::Mutex::new(FakeState {
            issuer: issuer.clone(),
            key,
            token: FakeToken::Valid,
            login: "officer1".into(),
            roles: vec!["officer".into()],
            codes: std::collections::HashMap::new(),
        }));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(fake_serve(stream, shared.clone()));
            }
        });
        Self {
            issuer,
            state,
            task,
        }
    }

    /// The ID tokens issued from now on.
    pub fn set_token(&self, token: FakeToken) {
        self.state.lock().expect("the fake's state").token = token;
    }

    /// Who signs in from now on, with which roles (at start: `officer1`, `["officer"]`).
    pub fn set_login(&self, login: &str, roles: &[&str]) {
        let mut state = self.state.lock().expect("the fake's state");
        state.login = login.to_owned();
        state.roles = roles.iter().map(|r| (*r).to_owned()).collect();
    }
}

impl Drop for FakeProvider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl FakeState {
    fn discovery(&self) -> serde_json::Value {
        serde_json::json!({
            "issuer": self.issuer,
            "authorization_endpoint": format!("{}/auth", self.issuer),
            "token_endpoint": format!("{}/token", self.issuer),
            "jwks_uri": format!("{}/jwks", self.issuer),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic"],
        })
    }

    fn jwks(&self) -> serde_json::Value {
        use ring::signature::KeyPair;
        let point = self.key.public_key().as_ref();
        serde_json::json!({ "keys": [{
            "kty": "EC", "crv": "P-256", "kid": "fake-es256", "use": "sig", "alg": "ES256",
            "x": b64(&point[1..33]), "y": b64(&point[33..65]),
        }]})
    }

    fn id_token(&self, nonce: &str) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs();
        let (iat, exp) = match self.token {
            FakeToken::Expired => (now - 7200, now - 3600),
            _ => (now, now + 300),
        };
        let mut claims = serde_json::json!({
            "iss": self.issuer,
            "sub": self.login,
            "aud": CLIENT_ID,
            "iat": iat,
            "exp": exp,
            "nonce": nonce,
            "preferred_username": self.login,
            "roles": self.roles,
        });
        let header = serde_json::json!({"alg": "ES256", "kid": "fake-es256", "typ": "JWT"});
        let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
        let signature = self
            .key
            .sign(&ring::rand::SystemRandom::new(), input.as_bytes())
            .expect("sign");
        if self.token == FakeToken::BadSignature {
            claims["roles"] = serde_json::json!(["admin"]);
            let (header, _) = input.split_once('.').expect("two parts");
            return format!(
                "{header}.{}.{}",
                b64(claims.to_string()),
                b64(signature.as_ref())
            );
        }
        format!("{input}.{}", b64(signature.as_ref()))
    }

    /// The answer to one request: status, extra headers, JSON body.
    fn answer(&mut self, method: &str, target: &str, body: &str) -> (u16, Vec<String>, String) {
        let url = reqwest::Url::parse(&format!("http://fake{target}")).expect("a target");
        let query: std::collections::HashMap<String, String> =
            url.query_pairs().into_owned().collect();
        match (method, url.path()) {
            ("GET", "/.well-known/openid-configuration") => {
                (200, vec![], self.discovery().to_string())
            }
            ("GET", "/jwks") => (200, vec![], self.jwks().to_string()),
            ("GET", "/auth") => {
                let code = hex_token();
                self.codes.insert(
                    code.clone(),
                    query.get("nonce").cloned().unwrap_or_default(),
                );
                let mut redirect =
                    reqwest::Url::parse(query.get("redirect_uri").map_or("", String::as_str))
                        .expect("a redirect_uri");
                redirect
                    .query_pairs_mut()
                    .append_pair("code", &code)
                    .append_pair("state", query.get("state").map_or("", String::as_str))
                    .append_pair("iss", &self.issuer);
                (303, vec![format!("location: {redirect}")], String::new())
            }
            ("POST", "/token") => {
                let form = reqwest::Url::parse(&format!("http://fake/?{body}")).expect("a form");
                let code = form
                    .query_pairs()
                    .find(|(k, _)| k == "code")
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default();
                match self.codes.remove(&code) {
                    Some(nonce) => (
                        200,
                        vec![],
                        serde_json::json!({
                            "access_token": "fake",
                            "token_type": "Bearer",
                            "expires_in": 300,
                            "id_token": self.id_token(&nonce),
                        })
                        .to_string(),
                    ),
                    None => (
                        400,
                        vec![],
                        serde_json::json!({"error": "invalid_grant"}).to_string(),
                    ),
                }
            }
            _ => (404, vec![], "{}".into()),
        }
    }
}

fn hex_token() -> String {
    let mut bytes = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).expect("random");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn fake_serve(
    mut stream: tokio::net::TcpStream,
    state: std::sync::Arc<std::sync::Mutex<FakeState>>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        let Ok(n) = stream.read(&mut buf).await else {
            return;
        };
        if n == 0 {
            return;
        }
        request.extend_from_slice(&buf[..n]);
        if let Some(at) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&request[..head_end]).to_string();
    let length = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    while request.len() < head_end + length {
        match stream.read(&mut buf).await {
            Ok(n) if n > 0 => request.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    let body = String::from_utf8_lossy(&request[head_end..]).to_string();
    let mut words = head.split_whitespace();
    let method = words.next().unwrap_or("GET").to_owned();
    let target = words.next().unwrap_or("/").to_owned();
    let (status, headers, answer) = state
        .lock()
        .expect("the fake's state")
        .answer(&method, &target, &body);
    let mut response = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        answer.len()
    );
    for header in headers {
        response.push_str(&header);
        response.push_str("\r\n");
    }
    response.push_str("\r\n");
    response.push_str(&answer);
    let _ = stream.write_all(response.as_bytes()).await;
}
