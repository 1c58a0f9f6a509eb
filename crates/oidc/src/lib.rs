//! OpenID Connect relying party for the officers' portal: the authorization code flow with PKCE
//! (S256), `state` and `nonce` (OpenID Connect Core 1.0, RFC 6749, RFC 7636).
//!
//! ```text
//! start-up   RelyingParty::discover(settings, http)     GET {issuer}/.well-known/openid-configuration,
//!                                                       its issuer must be ours; GET jwks_uri
//! /login     let (url, pending) = rp.begin();           store `pending` server-side under
//!                                                       pending.state() (a few minutes), 302 to url
//! /callback  rp.finish(&pending, state, code, now)      state (constant time), code → token endpoint
//!                                                       (with the PKCE verifier), ID token checked
//!            → Identity { subject, issuer, name, roles }
//! ```
//!
//! The ID token is verified with ring (already under rustls): its signature with a key of the
//! provider's JWKS (fetched again once when a `kid` is unknown, for key rotation), its `alg` in an
//! allow-list (RS256/384/512, PS256/384/512, ES256/384, EdDSA; never `none`, never `HS*`), `iss`,
//! `aud` (and `azp`), `exp`/`nbf`/`iat` with [`CLOCK_LEEWAY`], and `nonce`. Every claim has its
//! type checked: a string where a number belongs makes the token malformed.
//!
//! Errors ([`OidcError`]) carry a short [`reason`](OidcError::reason) and never a token, code or
//! secret; [`PendingLogin`] and [`ClientSecret`] print as `***` in `Debug`.

mod claims;
mod error;
mod jose;

pub use claims::{CLOCK_LEEWAY, roles};
pub use error::OidcError;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jose::{JwkSet, Jws, Lookup};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// How long one request to the provider may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest discovery document, JWKS or token answer read.
const MAX_BODY: usize = 512 * 1024;
/// The JWKS is fetched again for an unknown `kid` at most this often (a flood of tokens with
/// made-up `kid`s does not become a flood of requests to the provider).
const JWKS_REFETCH_INTERVAL: Duration = Duration::from_secs(10);

/// The client secret. `Debug` prints `ClientSecret(***)`; the value is reached only through
/// [`expose`](Self::expose), for the token request.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientSecret(String);

impl ClientSecret {
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself, for the token request. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientSecret(***)")
    }
}

impl From<String> for ClientSecret {
    fn from(secret: String) -> Self {
        Self(secret)
    }
}

impl From<&str> for ClientSecret {
    fn from(secret: &str) -> Self {
        Self(secret.to_owned())
    }
}

/// How the portal is registered at its OpenID provider.
#[derive(Debug, Clone)]
pub struct OidcSettings {
    /// The issuer identifier, exactly as the provider writes it in its discovery document and its
    /// tokens (e.g. `https://id.example.org/realms/openwarn` for Keycloak). `https://`, or
    /// `http://` on a loopback address (127.0.0.0/8, `[::1]`, `localhost`) for tests.
    pub issuer: String,
    pub client_id: String,
    /// `None` for a public client (PKCE alone). With a secret, the client authenticates with
    /// `client_secret_basic` if the provider offers it, else `client_secret_post`.
    pub client_secret: Option<ClientSecret>,
    /// The portal's callback URL, registered at the provider.
    pub redirect_uri: String,
    /// Scopes to ask for besides `openid`, which is always asked for (e.g. `profile`, `roles`).
    pub scopes: Vec<String>,
    /// Where the roles are in the ID token's claims: a claim name (`roles`) or a dot path
    /// (`realm_access.roles` for Keycloak's realm roles); see [`roles`]. Empty: no roles.
    pub roles_claim: String,
}

/// The parts of the provider's discovery document this crate uses.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ProviderMetadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    /// RP-initiated logout, for the portal's "sign out" (not used by this crate).
    #[serde(default)]
    pub end_session_endpoint: Option<String>,
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
    #[serde(default)]
    pub code_challenge_methods_supported: Option<Vec<String>>,
}

/// A login under way, between [`RelyingParty::begin`] and [`RelyingParty::finish`]: the `state`,
/// the `nonce` and the PKCE verifier. The portal keeps it server-side (it is serde, e.g. JSON)
/// under [`state`](Self::state), for a few minutes, and uses it once: take it out of the store
/// before calling `finish`. `Debug` prints no value.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingLogin {
    state: String,
    nonce: String,
    code_verifier: String,
}

impl PendingLogin {
    /// The `state` sent with the browser: the key under which the portal stores this login. It
    /// comes back as the callback's `state` parameter.
    pub fn state(&self) -> &str {
        &self.state
    }
}

impl std::fmt::Debug for PendingLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PendingLogin(***)")
    }
}

/// Who signed in, from a verified ID token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// `sub`: the provider's stable id of the user (unique per issuer).
    pub subject: String,
    /// `iss`: always the configured issuer.
    pub issuer: String,
    /// `preferred_username`, else `name`, if the token has one.
    pub name: Option<String>,
    /// The roles at [`OidcSettings::roles_claim`]; empty if there are none.
    pub roles: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientAuth {
    Basic,
    Post,
    /// A public client: `client_id` in the body, no secret.
    None,
}

#[derive(Debug)]
struct Jwks {
    keys: Arc<JwkSet>,
    fetched: Instant,
}

/// The relying party: the settings, the provider's metadata and a cache of its keys. Made once at
/// start-up by [`discover`](Self::discover), shared (e.g. in an `Arc`) by every request.
#[derive(Debug)]
pub struct RelyingParty {
    settings: OidcSettings,
    metadata: ProviderMetadata,
    client_auth: ClientAuth,
    scope: String,
    http: reqwest::Client,
    jwks: Mutex<Jwks>,
    /// Held while the JWKS is fetched again, so that concurrent logins fetch it once.
    refetch: tokio::sync::Mutex<()>,
    refetch_interval: Duration,
}

/// `https`, or `http` on a loopback host.
fn secure_url(url: &str) -> bool {
    let Ok(url) = url::Url::parse(url) else {
        return false;
    };
    match url.scheme() {
        "https" => url.host().is_some(),
        "http" => match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(domain)) => domain == "localhost",
            None => false,
        },
        _ => false,
    }
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The PKCE `code_challenge` of a verifier with the S256 method (RFC 7636, 4.2).
pub fn pkce_s256_challenge(code_verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        code_verifier.as_bytes(),
    ))
}

/// `application/x-www-form-urlencoded`, as RFC 6749 (2.3.1) wants the client id and secret before
/// they go into HTTP Basic.
fn form_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn read_limited(mut response: reqwest::Response, what: &str) -> Result<Vec<u8>, OidcError> {
    let unavailable = |e: reqwest::Error| OidcError::ProviderUnavailable(format!("{what}: {e}"));
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(unavailable)? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(OidcError::InvalidProviderMetadata(format!(
                "{what}: answer over {MAX_BODY} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// GET a JSON document of the provider (discovery, JWKS).
async fn get(http: &reqwest::Client, url: &str, what: &str) -> Result<Vec<u8>, OidcError> {
    let response = http
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .timeout(REQUEST_TIMEOUT)
        .send()
        .await
        .map_err(|e| OidcError::ProviderUnavailable(format!("{what}: {}", e.without_url())))?;
    if !response.status().is_success() {
        return Err(OidcError::ProviderUnavailable(format!(
            "{what}: HTTP {}",
            response.status().as_u16()
        )));
    }
    read_limited(response, what).await
}

async fn fetch_jwks(http: &reqwest::Client, jwks_uri: &str) -> Result<Jwks, OidcError> {
    let keys = JwkSet::parse(&get(http, jwks_uri, "JWKS").await?)?;
    Ok(Jwks {
        keys: Arc::new(keys),
        fetched: Instant::now(),
    })
}

impl RelyingParty {
    /// Fetches the provider's discovery document (`{issuer}/.well-known/openid-configuration`),
    /// checks that its `issuer` is the configured one exactly and that its endpoints are `https`
    /// (or loopback `http`), chooses the client authentication, and fetches the JWKS.
    ///
    /// `http` is the caller's client (TLS from `openwarn_mtls::http_client_tls`); it should not
    /// follow redirects to other hosts. Each request here has a 10 s timeout.
    pub async fn discover(
        settings: OidcSettings,
        http: reqwest::Client,
    ) -> Result<Self, OidcError> {
        if !secure_url(&settings.issuer) {
            return Err(OidcError::InvalidSettings(
                "the issuer must be an https URL (http only on loopback)",
            ));
        }
        if settings.client_id.is_empty() {
            return Err(OidcError::InvalidSettings("empty client id"));
        }
        if url::Url::parse(&settings.redirect_uri).is_err() {
            return Err(OidcError::InvalidSettings("the redirect URI is not a URL"));
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            settings.issuer.trim_end_matches('/')
        );
        let body = get(&http, &url, "discovery").await?;
        let metadata: ProviderMetadata = serde_json::from_slice(&body)
            .map_err(|e| OidcError::InvalidProviderMetadata(format!("discovery: {e}")))?;
        if metadata.issuer != settings.issuer {
            return Err(OidcError::WrongIssuer);
        }
        for (name, endpoint) in [
            ("authorization_endpoint", &metadata.authorization_endpoint),
            ("token_endpoint", &metadata.token_endpoint),
            ("jwks_uri", &metadata.jwks_uri),
        ] {
            if !secure_url(endpoint) {
                return Err(OidcError::InvalidProviderMetadata(format!(
                    "{name} is not an https URL"
                )));
            }
        }
        if let Some(methods) = &metadata.code_challenge_methods_supported
            && !methods.iter().any(|m| m == "S256")
        {
            return Err(OidcError::InvalidProviderMetadata(
                "no S256 in code_challenge_methods_supported".into(),
            ));
        }
        let client_auth = if settings.client_secret.is_some() {
            // Absent, the specification's default: client_secret_basic only.
            let methods = metadata
                .token_endpoint_auth_methods_supported
                .clone()
                .unwrap_or_else(|| vec!["client_secret_basic".into()]);
            if methods.iter().any(|m| m == "client_secret_basic") {
                ClientAuth::Basic
            } else if methods.iter().any(|m| m == "client_secret_post") {
                ClientAuth::Post
            } else {
                return Err(OidcError::InvalidProviderMetadata(
                    "neither client_secret_basic nor client_secret_post supported".into(),
                ));
            }
        } else {
            ClientAuth::None
        };
        let mut scopes = vec!["openid"];
        for scope in settings.scopes.iter().flat_map(|s| s.split_whitespace()) {
            if !scopes.contains(&scope) {
                scopes.push(scope);
            }
        }
        let scope = scopes.join(" ");
        let jwks = fetch_jwks(&http, &metadata.jwks_uri).await?;
        Ok(Self {
            settings,
            metadata,
            client_auth,
            scope,
            http,
            jwks: Mutex::new(jwks),
            refetch: tokio::sync::Mutex::new(()),
            refetch_interval: JWKS_REFETCH_INTERVAL,
        })
    }

    /// The provider's metadata, as discovered.
    pub fn metadata(&self) -> &ProviderMetadata {
        &self.metadata
    }

    /// The settings this relying party was made with.
    pub fn settings(&self) -> &OidcSettings {
        &self.settings
    }

    /// Starts a login: the authorization URL to redirect the browser to (`response_type=code`,
    /// our scopes, a fresh random `state` and `nonce`, the S256 PKCE challenge), and the
    /// [`PendingLogin`] the portal keeps until the callback.
    pub fn begin(&self) -> (String, PendingLogin) {
        let pending = PendingLogin {
            state: random_token(),
            nonce: random_token(),
            // 32 random bytes: 43 characters, the shortest verifier RFC 7636 allows.
            code_verifier: random_token(),
        };
        let challenge = pkce_s256_challenge(&pending.code_verifier);
        let params = [
            ("response_type", "code"),
            ("client_id", self.settings.client_id.as_str()),
            ("redirect_uri", self.settings.redirect_uri.as_str()),
            ("scope", self.scope.as_str()),
            ("state", pending.state.as_str()),
            ("nonce", pending.nonce.as_str()),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ];
        let url = match url::Url::parse(&self.metadata.authorization_endpoint) {
            Ok(mut url) => {
                url.query_pairs_mut().extend_pairs(params);
                url.to_string()
            }
            // Checked by `discover`; kept total all the same.
            Err(_) => {
                let query: String = url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(params)
                    .finish();
                format!("{}?{query}", self.metadata.authorization_endpoint)
            }
        };
        (url, pending)
    }

    /// Finishes a login at the callback with the `state` and `code` the browser brought back.
    ///
    /// Checks `returned_state` against the pending one (in constant time; on a mismatch nothing
    /// is sent to the provider), exchanges the code at the token endpoint with the PKCE verifier,
    /// and validates the ID token as [`validate_id_token`](Self::validate_id_token) does, at
    /// `now`. An error callback (`error=access_denied`, ...) has no code: the portal answers it
    /// without calling this.
    pub async fn finish(
        &self,
        pending: &PendingLogin,
        returned_state: &str,
        code: &str,
        now: SystemTime,
    ) -> Result<Identity, OidcError> {
        if !claims::constant_time_eq(&pending.state, returned_state) {
            return Err(OidcError::StateMismatch);
        }
        let id_token = self.exchange(code, &pending.code_verifier).await?;
        self.validate_id_token(&id_token, &pending.nonce, now).await
    }

    /// POSTs the code to the token endpoint; the ID token of the answer.
    async fn exchange(&self, code: &str, code_verifier: &str) -> Result<String, OidcError> {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", self.settings.redirect_uri.as_str()),
            ("code_verifier", code_verifier),
        ];
        let mut request = self
            .http
            .post(&self.metadata.token_endpoint)
            .header(reqwest::header::ACCEPT, "application/json")
            .timeout(REQUEST_TIMEOUT);
        let secret = self
            .settings
            .client_secret
            .as_ref()
            .map(ClientSecret::expose);
        match (self.client_auth, secret) {
            (ClientAuth::Basic, Some(secret)) => {
                let credentials = format!(
                    "{}:{}",
                    form_encode(&self.settings.client_id),
                    form_encode(secret)
                );
                request = request.header(
                    reqwest::header::AUTHORIZATION,
                    format!("Basic {}", STANDARD.encode(credentials)),
                );
            }
            (ClientAuth::Post, Some(secret)) => {
                form.push(("client_id", self.settings.client_id.as_str()));
                form.push(("client_secret", secret));
            }
            _ => form.push(("client_id", self.settings.client_id.as_str())),
        }
        let response = request.form(&form).send().await.map_err(|e| {
            OidcError::ProviderUnavailable(format!("token endpoint: {}", e.without_url()))
        })?;
        let status = response.status();
        let body = read_limited(response, "token endpoint").await?;

        #[derive(Deserialize)]
        struct TokenAnswer {
            #[serde(default)]
            id_token: Option<String>,
        }
        #[derive(Deserialize)]
        struct ErrorAnswer {
            error: String,
        }
        if !status.is_success() {
            let error = serde_json::from_slice::<ErrorAnswer>(&body)
                .ok()
                .map(|e| error::sanitize(&e.error, |c| c.is_ascii_alphanumeric() || c == '_'));
            return Err(OidcError::TokenExchangeFailed {
                status: Some(status.as_u16()),
                error,
            });
        }
        let answer: TokenAnswer =
            serde_json::from_slice(&body).map_err(|_| OidcError::TokenExchangeFailed {
                status: Some(status.as_u16()),
                error: Some("unreadable_answer".into()),
            })?;
        answer.id_token.ok_or(OidcError::MissingIdToken)
    }

    fn keys(&self) -> Arc<JwkSet> {
        let jwks = self.jwks.lock().unwrap_or_else(|e| e.into_inner());
        jwks.keys.clone()
    }

    /// The JWKS fetched again, unless it was fetched less than `refetch_interval` ago (then the
    /// cached one).
    async fn refetched_keys(&self) -> Result<Arc<JwkSet>, OidcError> {
        let _single = self.refetch.lock().await;
        let fetched = self.jwks.lock().unwrap_or_else(|e| e.into_inner()).fetched;
        if fetched.elapsed() < self.refetch_interval {
            return Ok(self.keys());
        }
        let jwks = fetch_jwks(&self.http, &self.metadata.jwks_uri).await?;
        let keys = jwks.keys.clone();
        *self.jwks.lock().unwrap_or_else(|e| e.into_inner()) = jwks;
        Ok(keys)
    }

    /// Validates a raw ID token (compact JWS) for a login whose nonce was `nonce`, at `now`:
    /// the algorithm (allow-list), the signature with the provider's key named by `kid` (the
    /// JWKS is fetched again once if no key has it, at most every 10 s), then `iss`, `aud`/`azp`,
    /// `exp`/`nbf`/`iat` with [`CLOCK_LEEWAY`], `nonce`, and `sub`. [`finish`](Self::finish) calls
    /// it; it is public for tests and for a portal that gets ID tokens another way.
    pub async fn validate_id_token(
        &self,
        raw: &str,
        nonce: &str,
        now: SystemTime,
    ) -> Result<Identity, OidcError> {
        let jws = Jws::parse(raw)?;
        let mut keys = self.keys();
        if matches!(keys.lookup(jws.kid.as_deref(), jws.alg), Lookup::Unknown) {
            keys = self.refetched_keys().await?;
        }
        let payload = match keys.lookup(jws.kid.as_deref(), jws.alg) {
            Lookup::Key(key) => jws.verify(key)?,
            Lookup::Unknown => return Err(OidcError::UnknownKey),
            Lookup::Mismatch => return Err(OidcError::InvalidSignature),
        };
        claims::validate(
            payload,
            &claims::Expected {
                issuer: &self.metadata.issuer,
                client_id: &self.settings.client_id,
                nonce,
                roles_claim: &self.settings.roles_claim,
                now,
            },
        )
    }
}

#[cfg(test)]
mod tests;
