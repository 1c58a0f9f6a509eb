//! The relying party against a scripted provider on loopback: discovery, `begin`, ID token
//! signatures and keys, the token request. (The claims alone: `claims.rs`; a real provider:
//! `tests/provider.rs`.)

use super::*;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, RsaKeyPair};
use serde_json::json;
use std::collections::HashMap;
use std::time::UNIX_EPOCH;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CLIENT_ID: &str = "portal";
const NONCE: &str = "the-nonce";

/// A provider that answers each path with a fixed JSON body, and counts and records requests.
#[derive(Default)]
struct Script {
    routes: HashMap<String, (u16, String)>,
    hits: HashMap<String, usize>,
    /// The last request to each path: its head and body.
    last: HashMap<String, (String, String)>,
}

struct Provider {
    issuer: String,
    script: Arc<Mutex<Script>>,
}

impl Provider {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let script = Arc::new(Mutex::new(Script::default()));
        let shared = script.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, shared.clone()));
            }
        });
        let provider = Self { issuer, script };
        provider.route(
            "/.well-known/openid-configuration",
            200,
            provider.discovery(),
        );
        provider
    }

    fn discovery(&self) -> serde_json::Value {
        json!({
            "issuer": self.issuer,
            "authorization_endpoint": format!("{}/auth?kc_idp_hint=x", self.issuer),
            "token_endpoint": format!("{}/token", self.issuer),
            "jwks_uri": format!("{}/jwks", self.issuer),
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        })
    }

    fn route(&self, path: &str, status: u16, body: serde_json::Value) {
        self.script
            .lock()
            .unwrap()
            .routes
            .insert(path.into(), (status, body.to_string()));
    }

    fn jwks(&self, keys: &[serde_json::Value]) {
        self.route("/jwks", 200, json!({ "keys": keys }));
    }

    fn hits(&self, path: &str) -> usize {
        self.script
            .lock()
            .unwrap()
            .hits
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    fn last(&self, path: &str) -> (String, String) {
        self.script.lock().unwrap().last[path].clone()
    }

    fn settings(&self) -> OidcSettings {
        OidcSettings {
            issuer: self.issuer.clone(),
            client_id: CLIENT_ID.into(),
            client_secret: Some("s3cret:+/ é".into()),
            redirect_uri: "http://127.0.0.1:1/callback".into(),
            scopes: vec!["profile".into(), "openid".into(), "roles profile".into()],
            roles_claim: "roles".into(),
        }
    }

    async fn relying_party(&self) -> RelyingParty {
        RelyingParty::discover(self.settings(), http())
            .await
            .unwrap()
    }

    fn claims(&self, now: u64) -> serde_json::Value {
        json!({
            "iss": self.issuer,
            "sub": "officer1",
            "aud": CLIENT_ID,
            "exp": now + 300,
            "iat": now,
            "nonce": NONCE,
            "roles": ["officer"],
        })
    }
}

async fn serve(mut stream: tokio::net::TcpStream, script: Arc<Mutex<Script>>) {
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        let n = stream.read(&mut buf).await.unwrap();
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
        let n = stream.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        request.extend_from_slice(&buf[..n]);
    }
    let body = String::from_utf8_lossy(&request[head_end..]).to_string();
    let target = head.split_whitespace().nth(1).unwrap_or("/");
    let path = target.split('?').next().unwrap_or("/").to_owned();
    let (status, answer) = {
        let mut script = script.lock().unwrap();
        *script.hits.entry(path.clone()).or_default() += 1;
        script.last.insert(path.clone(), (head.clone(), body));
        script
            .routes
            .get(&path)
            .cloned()
            .unwrap_or((404, "{}".into()))
    };
    let response = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
        answer.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
}

#[allow(
    clippy::disallowed_methods,
    reason = "a test client with its own TLS configuration"
)]
fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .tls_backend_preconfigured(openwarn_mtls::http_client_tls(&[], None).unwrap())
        .build()
        .unwrap()
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A key that signs tokens, with its public JWK.
enum Signer {
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair, &'static dyn ring::signature::RsaEncoding),
}

struct TestKey {
    kid: String,
    alg: &'static str,
    signer: Signer,
}

impl TestKey {
    fn es256(kid: &str) -> Self {
        let rng = SystemRandom::new();
        let alg = &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        Self {
            kid: kid.into(),
            alg: "ES256",
            signer: Signer::Ec(EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap()),
        }
    }

    /// The 2048-bit RSA key of `testdata/` (ring cannot make RSA keys), for RS256 or PS256.
    fn rsa(kid: &str, alg: &'static str) -> Self {
        let encoding: &'static dyn ring::signature::RsaEncoding = match alg {
            "RS256" => &ring::signature::RSA_PKCS1_SHA256,
            "PS256" => &ring::signature::RSA_PSS_SHA256,
            _ => unreachable!(),
        };
        let pair = RsaKeyPair::from_pkcs8(include_bytes!("testdata/rsa-2048.pk8")).unwrap();
        Self {
            kid: kid.into(),
            alg,
            signer: Signer::Rsa(pair, encoding),
        }
    }

    fn jwk(&self) -> serde_json::Value {
        match &self.signer {
            Signer::Ec(pair) => {
                let point = pair.public_key().as_ref();
                json!({
                    "kty": "EC", "crv": "P-256", "kid": self.kid, "use": "sig", "alg": self.alg,
                    "x": b64(&point[1..33]), "y": b64(&point[33..65]),
                })
            }
            Signer::Rsa(pair, _) => {
                let public = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(pair.public());
                json!({
                    "kty": "RSA", "kid": self.kid, "use": "sig",
                    "n": b64(public.n), "e": b64(public.e),
                })
            }
        }
    }

    fn sign_with_header(&self, header: serde_json::Value, claims: &serde_json::Value) -> String {
        let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
        let rng = SystemRandom::new();
        let signature = match &self.signer {
            Signer::Ec(pair) => pair.sign(&rng, input.as_bytes()).unwrap().as_ref().to_vec(),
            Signer::Rsa(pair, encoding) => {
                let mut signature = vec![0; pair.public().modulus_len()];
                pair.sign(*encoding, &rng, input.as_bytes(), &mut signature)
                    .unwrap();
                signature
            }
        };
        format!("{input}.{}", b64(signature))
    }

    fn sign(&self, claims: &serde_json::Value) -> String {
        self.sign_with_header(
            json!({ "alg": self.alg, "kid": self.kid, "typ": "JWT" }),
            claims,
        )
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

#[test]
fn pkce_s256_matches_rfc_7636_appendix_b() {
    assert_eq!(
        pkce_s256_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    );
}

#[test]
fn the_issuer_must_be_https_or_loopback_http() {
    for ok in [
        "https://id.example.org/realms/openwarn",
        "http://127.0.0.1:8080",
        "http://127.9.0.1",
        "http://[::1]:80/x",
        "http://localhost:3000",
    ] {
        assert!(secure_url(ok), "{ok}");
    }
    for bad in [
        "http://id.example.org",
        "http://10.0.0.1",
        "http://localhost.evil.example",
        "ftp://id.example.org",
        "id.example.org",
        "",
    ] {
        assert!(!secure_url(bad), "{bad}");
    }
}

#[tokio::test]
async fn discovery_checks_the_issuer_and_the_endpoints() {
    let provider = Provider::start().await;
    let key = TestKey::es256("k1");
    provider.jwks(&[key.jwk()]);
    let rp = provider.relying_party().await;
    assert_eq!(rp.metadata().issuer, provider.issuer);
    assert_eq!(rp.client_auth, ClientAuth::Basic);
    assert_eq!(rp.scope, "openid profile roles");

    // A discovery document that names another issuer (even by a trailing slash).
    let mut other = provider.discovery();
    other["issuer"] = json!(format!("{}/", provider.issuer));
    provider.route("/.well-known/openid-configuration", 200, other);
    let err = RelyingParty::discover(provider.settings(), http())
        .await
        .unwrap_err();
    assert_eq!(err, OidcError::WrongIssuer);

    let mut plain = provider.discovery();
    plain["token_endpoint"] = json!("http://id.example.org/token");
    provider.route("/.well-known/openid-configuration", 200, plain);
    let err = RelyingParty::discover(provider.settings(), http())
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "invalid_provider_metadata", "{err}");

    let mut no_s256 = provider.discovery();
    no_s256["code_challenge_methods_supported"] = json!(["plain"]);
    provider.route("/.well-known/openid-configuration", 200, no_s256);
    let err = RelyingParty::discover(provider.settings(), http())
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "invalid_provider_metadata", "{err}");

    let mut post_only = provider.discovery();
    post_only["token_endpoint_auth_methods_supported"] = json!(["client_secret_post"]);
    provider.route("/.well-known/openid-configuration", 200, post_only);
    let rp = provider.relying_party().await;
    assert_eq!(rp.client_auth, ClientAuth::Post);

    provider.route("/.well-known/openid-configuration", 503, json!({}));
    let err = RelyingParty::discover(provider.settings(), http())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        OidcError::ProviderUnavailable("discovery: HTTP 503".into())
    );
    assert!(err.is_provider_failure());

    let mut settings = provider.settings();
    settings.issuer = "http://id.example.org".into();
    let err = RelyingParty::discover(settings, http()).await.unwrap_err();
    assert_eq!(err.reason(), "invalid_settings");
}

#[tokio::test]
async fn begin_makes_a_fresh_login_with_a_pkce_challenge() {
    let provider = Provider::start().await;
    provider.jwks(&[TestKey::es256("k1").jwk()]);
    let rp = provider.relying_party().await;
    let (url, pending) = rp.begin();
    let url = url::Url::parse(&url).unwrap();
    assert_eq!(url.path(), "/auth");
    let query: HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(
        query["kc_idp_hint"], "x",
        "the endpoint's own query is kept"
    );
    assert_eq!(query["response_type"], "code");
    assert_eq!(query["client_id"], CLIENT_ID);
    assert_eq!(query["redirect_uri"], "http://127.0.0.1:1/callback");
    assert_eq!(query["scope"], "openid profile roles");
    assert_eq!(query["state"], pending.state());
    assert_eq!(query["nonce"], pending.nonce);
    assert_eq!(query["code_challenge_method"], "S256");
    assert_eq!(
        query["code_challenge"],
        pkce_s256_challenge(&pending.code_verifier)
    );
    assert_eq!(pending.code_verifier.len(), 43);
    assert!(!query.contains_key("code_verifier"));

    let (_, again) = rp.begin();
    assert_ne!(again.state, pending.state);
    assert_ne!(again.nonce, pending.nonce);
    assert_ne!(again.code_verifier, pending.code_verifier);

    // Stored as JSON by the portal; printed without a value.
    let stored = serde_json::to_string(&pending).unwrap();
    assert_eq!(
        serde_json::from_str::<PendingLogin>(&stored).unwrap(),
        pending
    );
    let debug = format!("{pending:?} {:?}", rp);
    for secret in [
        &pending.state,
        &pending.nonce,
        &pending.code_verifier,
        &"s3cret".to_owned(),
    ] {
        assert!(!debug.contains(secret.as_str()), "{debug}");
    }
}

#[tokio::test]
async fn tokens_signed_by_a_provider_key_pass() {
    let provider = Provider::start().await;
    let es = TestKey::es256("ec-1");
    let rs = TestKey::rsa("rsa-1", "RS256");
    let ps = TestKey::rsa("rsa-1", "PS256");
    provider.jwks(&[es.jwk(), rs.jwk()]);
    let rp = provider.relying_party().await;
    let now = now();
    for key in [&es, &rs, &ps] {
        let identity = rp
            .validate_id_token(&key.sign(&provider.claims(now)), NONCE, at(now))
            .await
            .unwrap();
        assert_eq!(identity.subject, "officer1", "{}", key.alg);
        assert_eq!(identity.roles, ["officer"]);
        assert_eq!(identity.issuer, provider.issuer);
    }
    // Without a kid, the one key that fits the algorithm.
    let token = es.sign_with_header(json!({ "alg": "ES256" }), &provider.claims(now));
    rp.validate_id_token(&token, NONCE, at(now)).await.unwrap();
    // The claims are checked after the signature.
    let token = es.sign(&provider.claims(now));
    let err = rp
        .validate_id_token(&token, NONCE, at(now + 7200))
        .await
        .unwrap_err();
    assert_eq!(err, OidcError::Expired);
    let err = rp
        .validate_id_token(&token, "another-nonce", at(now))
        .await
        .unwrap_err();
    assert_eq!(err, OidcError::NonceMismatch);
    assert_eq!(provider.hits("/jwks"), 1, "no refetch for known keys");
}

#[tokio::test]
async fn alg_none_and_hmac_are_refused() {
    let provider = Provider::start().await;
    let rs = TestKey::rsa("rsa-1", "RS256");
    provider.jwks(&[rs.jwk()]);
    let rp = provider.relying_party().await;
    let now = now();
    let claims = b64(provider.claims(now).to_string());

    for alg in ["none", "None", "NONE"] {
        let header = b64(json!({ "alg": alg, "kid": "rsa-1" }).to_string());
        for token in [format!("{header}.{claims}."), format!("{header}.{claims}")] {
            let err = rp
                .validate_id_token(&token, NONCE, at(now))
                .await
                .unwrap_err();
            assert!(
                matches!(
                    err,
                    OidcError::UnsupportedAlgorithm(_) | OidcError::MalformedToken(_)
                ),
                "{alg}: {err}"
            );
        }
    }

    // HS256 with the provider's public key as the HMAC secret: the classic key confusion.
    let public_n = URL_SAFE_NO_PAD
        .decode(rs.jwk()["n"].as_str().unwrap())
        .unwrap();
    for alg in ["HS256", "HS384", "HS512"] {
        let header = b64(json!({ "alg": alg, "kid": "rsa-1" }).to_string());
        let input = format!("{header}.{claims}");
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &public_n);
        let tag = ring::hmac::sign(&key, input.as_bytes());
        let err = rp
            .validate_id_token(&format!("{input}.{}", b64(tag)), NONCE, at(now))
            .await
            .unwrap_err();
        assert_eq!(err, OidcError::UnsupportedAlgorithm(alg.into()));
        assert_eq!(err.reason(), "unsupported_algorithm");
    }
    assert_eq!(provider.hits("/jwks"), 1);
}

#[tokio::test]
async fn forged_and_tampered_tokens_are_refused() {
    let provider = Provider::start().await;
    let real = TestKey::es256("k1");
    provider.jwks(&[real.jwk(), TestKey::rsa("rsa-1", "RS256").jwk()]);
    let rp = provider.relying_party().await;
    let now = now();

    // Another key, presenting the provider's kid.
    let forger = TestKey::es256("k1");
    let err = rp
        .validate_id_token(&forger.sign(&provider.claims(now)), NONCE, at(now))
        .await
        .unwrap_err();
    assert_eq!(err, OidcError::InvalidSignature);

    // The provider's signature over other claims.
    let token = real.sign(&provider.claims(now));
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut claims = provider.claims(now);
    claims["roles"] = json!(["admin"]);
    parts[1] = b64(claims.to_string());
    let err = rp
        .validate_id_token(&parts.join("."), NONCE, at(now))
        .await
        .unwrap_err();
    assert_eq!(err, OidcError::InvalidSignature);

    // An ES256 header naming the RSA key.
    let token = real.sign_with_header(
        json!({ "alg": "ES256", "kid": "rsa-1" }),
        &provider.claims(now),
    );
    let err = rp
        .validate_id_token(&token, NONCE, at(now))
        .await
        .unwrap_err();
    assert_eq!(err, OidcError::InvalidSignature);

    // Extensions we do not understand; encrypted or broken tokens.
    let token = real.sign_with_header(
        json!({ "alg": "ES256", "kid": "k1", "crit": ["b64"], "b64": false }),
        &provider.claims(now),
    );
    let err = rp
        .validate_id_token(&token, NONCE, at(now))
        .await
        .unwrap_err();
    assert_eq!(err, OidcError::MalformedToken("crit"));
    for broken in ["", "a.b", "a.b.c.d.e", "!!.!!.!!", &format!("{token}=")] {
        let err = rp
            .validate_id_token(broken, NONCE, at(now))
            .await
            .unwrap_err();
        assert_eq!(err.reason(), "malformed_token", "{broken}: {err}");
    }
    assert_eq!(provider.hits("/jwks"), 1);
}

#[tokio::test]
async fn an_unknown_kid_fetches_the_jwks_again_once() {
    let provider = Provider::start().await;
    let old = TestKey::es256("2024");
    provider.jwks(&[old.jwk()]);
    let mut rp = provider.relying_party().await;
    rp.refetch_interval = Duration::ZERO;
    let now = now();

    // The provider rotates its key.
    let new = TestKey::es256("2025");
    provider.jwks(&[new.jwk()]);
    let identity = rp
        .validate_id_token(&new.sign(&provider.claims(now)), NONCE, at(now))
        .await
        .unwrap();
    assert_eq!(identity.subject, "officer1");
    assert_eq!(provider.hits("/jwks"), 2);
    // The new set is cached.
    rp.validate_id_token(&new.sign(&provider.claims(now)), NONCE, at(now))
        .await
        .unwrap();
    assert_eq!(provider.hits("/jwks"), 2);

    // A kid the provider does not have either: one fetch, then unknown_key.
    let stranger = TestKey::es256("nobody");
    let err = rp
        .validate_id_token(&stranger.sign(&provider.claims(now)), NONCE, at(now))
        .await
        .unwrap_err();
    assert_eq!(err, OidcError::UnknownKey);
    assert_eq!(provider.hits("/jwks"), 3);

    // With the default interval, made-up kids do not each cost a fetch.
    rp.refetch_interval = JWKS_REFETCH_INTERVAL;
    for _ in 0..3 {
        let err = rp
            .validate_id_token(&stranger.sign(&provider.claims(now)), NONCE, at(now))
            .await
            .unwrap_err();
        assert_eq!(err, OidcError::UnknownKey);
    }
    assert_eq!(provider.hits("/jwks"), 3);
}

#[tokio::test]
async fn finish_checks_the_state_then_exchanges_the_code() {
    let provider = Provider::start().await;
    let key = TestKey::es256("k1");
    provider.jwks(&[key.jwk()]);
    let rp = provider.relying_party().await;
    let (_, pending) = rp.begin();
    let now = now();
    let mut claims = provider.claims(now);
    claims["nonce"] = json!(pending.nonce);
    provider.route(
        "/token",
        200,
        json!({ "access_token": "at", "token_type": "Bearer", "id_token": key.sign(&claims) }),
    );

    let err = rp
        .finish(&pending, "forged-state", "the-code", at(now))
        .await
        .unwrap_err();
    assert_eq!(err, OidcError::StateMismatch);
    let err = rp
        .finish(&pending, "", "the-code", at(now))
        .await
        .unwrap_err();
    assert_eq!(err, OidcError::StateMismatch);
    assert_eq!(
        provider.hits("/token"),
        0,
        "no token request on a bad state"
    );

    let identity = rp
        .finish(&pending, pending.state(), "the-code", at(now))
        .await
        .unwrap();
    assert_eq!(identity.subject, "officer1");
    let (head, body) = provider.last("/token");
    assert!(head.starts_with("POST /token "), "{head}");
    let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    assert_eq!(form["grant_type"], "authorization_code");
    assert_eq!(form["code"], "the-code");
    assert_eq!(form["code_verifier"], pending.code_verifier);
    assert_eq!(form["redirect_uri"], "http://127.0.0.1:1/callback");
    assert!(!form.contains_key("client_secret"));
    // client_secret_basic: id and secret form-encoded, then Base64 (RFC 6749, 2.3.1).
    let basic = STANDARD.encode("portal:s3cret%3A%2B%2F+%C3%A9");
    assert!(
        head.lines()
            .any(|l| l.eq_ignore_ascii_case(&format!("authorization: Basic {basic}"))),
        "{head}"
    );

    // The nonce of another login.
    let (_, other) = rp.begin();
    let err = rp
        .finish(&other, other.state(), "the-code", at(now))
        .await
        .unwrap_err();
    assert_eq!(err, OidcError::NonceMismatch);

    provider.route(
        "/token",
        400,
        json!({ "error": "invalid_grant", "error_description": "grant request is invalid" }),
    );
    let err = rp
        .finish(&pending, pending.state(), "the-code", at(now))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        OidcError::TokenExchangeFailed {
            status: Some(400),
            error: Some("invalid_grant".into())
        }
    );
    provider.route("/token", 200, json!({ "access_token": "at" }));
    let err = rp
        .finish(&pending, pending.state(), "the-code", at(now))
        .await
        .unwrap_err();
    assert_eq!(err, OidcError::MissingIdToken);
}

#[tokio::test]
async fn client_secret_post_and_public_clients() {
    let provider = Provider::start().await;
    let key = TestKey::es256("k1");
    provider.jwks(&[key.jwk()]);
    let mut discovery = provider.discovery();
    discovery["token_endpoint_auth_methods_supported"] = json!(["client_secret_post"]);
    provider.route("/.well-known/openid-configuration", 200, discovery);
    provider.route("/token", 400, json!({ "error": "invalid_client" }));

    let rp = provider.relying_party().await;
    let (_, pending) = rp.begin();
    let err = rp
        .finish(&pending, pending.state(), "c", at(now()))
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "token_exchange_failed");
    let (head, body) = provider.last("/token");
    assert!(
        !head.to_ascii_lowercase().contains("authorization:"),
        "{head}"
    );
    let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    assert_eq!(form["client_id"], CLIENT_ID);
    assert_eq!(form["client_secret"], "s3cret:+/ é");

    let mut settings = provider.settings();
    settings.client_secret = None;
    let rp = RelyingParty::discover(settings, http()).await.unwrap();
    let (_, pending) = rp.begin();
    rp.finish(&pending, pending.state(), "c", at(now()))
        .await
        .unwrap_err();
    let (_, body) = provider.last("/token");
    let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    assert_eq!(form["client_id"], CLIENT_ID);
    assert!(!form.contains_key("client_secret"));
}
