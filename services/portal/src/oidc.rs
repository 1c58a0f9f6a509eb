//! Signing in through the health authority's OpenID Connect provider (the production way; CWA's
//! portal uses Keycloak): authorization code flow with PKCE, `state` and `nonce`
//! ([`openwarn_oidc`]). The sign-in under way is kept server-side for [`PENDING_VALIDITY`] under
//! the hash of its state together with a random token in a cookie of the browser that started it
//! ([`BINDING_COOKIE`]): a callback URL is good only in that browser, so nobody can sign someone
//! else in to their own account by sending them a callback URL of a sign-in they started (login
//! CSRF; RFC 6749 10.12 asks for the state to be bound to the browser). The role comes from a
//! configurable claim of the ID token; each person
//! gets an account row on first sign-in (so that the audit log names them and an administrator
//! can disable them), with the role the provider gives at every sign-in.

use crate::audit::{Action, Actor};
use crate::auth;
use crate::i18n::Lang;
use crate::pages::{self, Notice};
use crate::store::Role;
use crate::web::{Landing, Portal, audit, lang, page, see_other, start_session, unavailable};
use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use openwarn_bootstrap::lifecycle::unix_now;
use openwarn_oidc::{OidcError, OidcSettings, PendingLogin, RelyingParty};
use serde::Deserialize;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::OnceCell;

/// How long a sign-in at the provider may take, from the redirect to the callback.
pub const PENDING_VALIDITY: Duration = Duration::from_secs(10 * 60);

/// The cookie binding a sign-in under way to the browser that started it. `SameSite=Lax`, not
/// `Strict` as the portal's other cookies: the callback is a top-level navigation coming from
/// the provider's site, which a browser sends `Lax` cookies with (and `Strict` ones not).
pub const BINDING_COOKIE: &str = "portal_oidc";
const BINDING_PATH: &str = "/sign-in/oidc";

fn binding_cookie(value: String, secure: bool) -> Cookie<'static> {
    Cookie::build(BINDING_COOKIE, value)
        .path(BINDING_PATH)
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .max_age(actix_web::cookie::time::Duration::seconds(
            crate::web::secs(PENDING_VALIDITY),
        ))
        .finish()
}

/// Where a sign-in under way is kept: the hash of the browser's binding token and the state.
fn pending_key(binding: &str, state: &str) -> String {
    auth::token_hash(&format!("{binding}.{state}"))
}

/// The provider, discovered on first use (a provider that is down when the portal starts makes
/// OIDC sign-ins answer 503 until it is back, not the portal fail).
pub struct OidcLogin {
    settings: OidcSettings,
    http: reqwest::Client,
    relying_party: OnceCell<RelyingParty>,
    pub officer_role: String,
    pub admin_role: String,
}

impl OidcLogin {
    pub fn new(
        settings: OidcSettings,
        http: reqwest::Client,
        officer_role: String,
        admin_role: String,
    ) -> Self {
        Self {
            settings,
            http,
            relying_party: OnceCell::new(),
            officer_role,
            admin_role,
        }
    }

    async fn relying_party(&self) -> Result<&RelyingParty, OidcError> {
        self.relying_party
            .get_or_try_init(|| RelyingParty::discover(self.settings.clone(), self.http.clone()))
            .await
    }

    /// The portal role of the provider's roles: administrator wins over officer; none, `None`.
    pub fn role(&self, roles: &[String]) -> Option<Role> {
        if roles.contains(&self.admin_role) {
            Some(Role::Admin)
        } else if roles.contains(&self.officer_role) {
            Some(Role::Officer)
        } else {
            None
        }
    }
}

type State = web::Data<Arc<Portal>>;

fn failed(
    lang: Lang,
    status: StatusCode,
    reason: &'static str,
    message: &'static str,
) -> HttpResponse {
    let t = lang.text();
    page(
        status,
        Some(reason),
        pages::message(lang, None, t.sign_in, Notice::Error(message)),
    )
}

/// `GET /sign-in/oidc`: to the provider.
pub async fn start(state: State, req: HttpRequest) -> HttpResponse {
    let lang = lang(&req);
    let Some(oidc) = &state.oidc else {
        return failed(
            lang,
            StatusCode::NOT_FOUND,
            "not_found",
            lang.text().not_found,
        );
    };
    let rp = match oidc.relying_party().await {
        Ok(rp) => rp,
        Err(e) => {
            tracing::warn!(reason = e.reason(), "OpenID provider unavailable");
            return unavailable(lang);
        }
    };
    let (url, pending) = rp.begin();
    let Ok(json) = serde_json::to_string(&pending) else {
        return unavailable(lang);
    };
    let binding = auth::random_token();
    if state
        .store
        .save_oidc_login(&pending_key(&binding, pending.state()), &json, unix_now())
        .await
        .is_err()
    {
        return unavailable(lang);
    }
    let mut response = see_other(&url);
    let _ = response.add_cookie(&binding_cookie(binding, state.settings.secure()));
    response
}

#[derive(Deserialize)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    /// RFC 9207: the provider names itself; checked against the discovered issuer.
    iss: Option<String>,
    error: Option<String>,
}

/// `GET /sign-in/oidc/callback`: the provider sends the browser back with a code. Whatever the
/// outcome, the binding cookie is spent.
pub async fn callback(state: State, req: HttpRequest) -> HttpResponse {
    let mut response = callback_answer(&state, &req).await;
    let mut removal = binding_cookie(String::new(), state.settings.secure());
    removal.make_removal();
    let _ = response.add_cookie(&removal);
    response
}

async fn callback_answer(state: &Portal, req: &HttpRequest) -> HttpResponse {
    let lang = lang(req);
    let t = lang.text();
    let Some(oidc) = &state.oidc else {
        return failed(lang, StatusCode::NOT_FOUND, "not_found", t.not_found);
    };
    let Ok(query) = web::Query::<Callback>::from_query(req.query_string()) else {
        return failed(
            lang,
            StatusCode::BAD_REQUEST,
            "invalid_callback",
            t.oidc_failed,
        );
    };
    let Some(returned_state) = query.state.as_deref() else {
        return failed(
            lang,
            StatusCode::BAD_REQUEST,
            "invalid_callback",
            t.oidc_failed,
        );
    };
    // Only the browser that started the sign-in has its binding token.
    let Some(binding) = req.cookie(BINDING_COOKIE) else {
        return refuse(state, lang, "no_binding_cookie").await;
    };
    // A state is taken once: a replayed callback finds nothing.
    let pending = match state
        .store
        .take_oidc_login(
            &pending_key(binding.value(), returned_state),
            unix_now() - crate::web::secs(PENDING_VALIDITY),
        )
        .await
    {
        Ok(Some(json)) => serde_json::from_str::<PendingLogin>(&json).ok(),
        Ok(None) => None,
        Err(_) => return unavailable(lang),
    };
    let Some(pending) = pending else {
        return refuse(state, lang, "unknown_state").await;
    };
    if query.error.is_some() {
        return refuse(state, lang, "provider_refused").await;
    }
    let rp = match oidc.relying_party().await {
        Ok(rp) => rp,
        Err(_) => return unavailable(lang),
    };
    if query
        .iss
        .as_deref()
        .is_some_and(|iss| iss != rp.metadata().issuer)
    {
        return refuse(state, lang, "wrong_issuer").await;
    }
    let Some(code) = query.code.as_deref() else {
        return refuse(state, lang, "invalid_callback").await;
    };
    let identity = match rp
        .finish(&pending, returned_state, code, SystemTime::now())
        .await
    {
        Ok(identity) => identity,
        Err(e) if e.is_provider_failure() => {
            tracing::warn!(reason = e.reason(), "OpenID provider unavailable");
            return unavailable(lang);
        }
        Err(e) => return refuse(state, lang, e.reason()).await,
    };
    let Some(role) = oidc.role(&identity.roles) else {
        metrics::counter!("openwarn_portal_sign_ins_total", "outcome" => "refused").increment(1);
        if audit(
            state,
            Actor::Unknown,
            Action::SignInFailed,
            None,
            Some("no_portal_role"),
        )
        .await
        .is_err()
        {
            return unavailable(lang);
        }
        return failed(
            lang,
            StatusCode::FORBIDDEN,
            "no_portal_role",
            t.oidc_no_role,
        );
    };
    // One account per (issuer, subject); its username is derived, so it never collides with a
    // local account's (those cannot contain ':').
    let key = format!("{}|{}", identity.issuer, identity.subject);
    let username = format!("oidc:{}", &auth::token_hash(&key)[..16]);
    let display_name: String = identity
        .name
        .clone()
        .unwrap_or_else(|| username.clone())
        .chars()
        .filter(|c| !c.is_control())
        .take(128)
        .collect();
    let now = unix_now();
    let account = match state
        .store
        .oidc_account(&key, &username, &display_name, role, now)
        .await
    {
        Ok(account) => account,
        Err(_) => return unavailable(lang),
    };
    if account.disabled_at.is_some() {
        metrics::counter!("openwarn_portal_sign_ins_total", "outcome" => "refused").increment(1);
        if audit(
            state,
            Actor::Account(account.id),
            Action::SignInFailed,
            None,
            Some("account_disabled"),
        )
        .await
        .is_err()
        {
            return unavailable(lang);
        }
        return failed(
            lang,
            StatusCode::UNAUTHORIZED,
            "sign_in_failed",
            t.oidc_failed,
        );
    }
    start_session(state, req, &account, now, Landing::Page).await
}

async fn refuse(portal: &Portal, lang: Lang, reason: &'static str) -> HttpResponse {
    metrics::counter!("openwarn_portal_sign_ins_total", "outcome" => "refused").increment(1);
    if audit(
        portal,
        Actor::Unknown,
        Action::SignInFailed,
        None,
        Some(reason),
    )
    .await
    .is_err()
    {
        return unavailable(lang);
    }
    failed(
        lang,
        StatusCode::UNAUTHORIZED,
        "sign_in_failed",
        lang.text().oidc_failed,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::disallowed_methods, reason = "its own TLS configuration")]
    fn administrator_wins_and_no_role_is_no_access() {
        let login = OidcLogin::new(
            OidcSettings {
                issuer: "http://127.0.0.1:1".into(),
                client_id: "portal".into(),
                client_secret: None,
                redirect_uri: "http://127.0.0.1:2/sign-in/oidc/callback".into(),
                scopes: vec![],
                roles_claim: "roles".into(),
            },
            reqwest::Client::builder()
                .tls_backend_preconfigured(openwarn_mtls::http_client_tls(&[], None).unwrap())
                .build()
                .unwrap(),
            "teletan-officer".into(),
            "portal-admin".into(),
        );
        let roles = |r: &[&str]| r.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            login.role(&roles(&["teletan-officer"])),
            Some(Role::Officer)
        );
        assert_eq!(
            login.role(&roles(&["teletan-officer", "portal-admin"])),
            Some(Role::Admin)
        );
        assert_eq!(login.role(&roles(&["officer", "admin"])), None);
        assert_eq!(login.role(&[]), None);
    }

    #[test]
    fn a_sign_in_under_way_is_bound_to_the_browser() {
        let cookie = binding_cookie("token".into(), true);
        assert_eq!(cookie.same_site(), Some(SameSite::Lax));
        assert_eq!(cookie.http_only(), Some(true));
        assert_eq!(cookie.secure(), Some(true));
        assert_eq!(cookie.path(), Some("/sign-in/oidc"));
        // The same state from another browser is another key.
        assert_ne!(pending_key("a", "state"), pending_key("b", "state"));
        assert_ne!(pending_key("a", "state"), pending_key("a", "other"));
        assert_eq!(pending_key("a", "state"), pending_key("a", "state"));
    }
}
