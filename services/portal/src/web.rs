//! The portal's routes: signing in and out, enrolment, issuing teleTANs, accounts and the audit
//! log. Every page answer carries the security headers (CSP without script, no framing, no
//! referrer, no caching, HSTS outside development); every refusal a status and a short
//! machine-readable reason in `x-portal-reason`, besides the words on the page.

use crate::audit::{Action, Actor, AuditLog};
use crate::auth;
use crate::i18n::Lang;
use crate::pages::{self, Notice, Viewer};
use crate::store::{Account, Role, Store};
use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::middleware::DefaultHeaders;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::Markup;
use openwarn_bootstrap::lifecycle::{Routes, unix_now};
use openwarn_db::DbError;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

pub const SESSION_COOKIE: &str = "portal_session";
pub const CSRF_COOKIE: &str = "portal_csrf";
pub const LANG_COOKIE: &str = "portal_lang";
pub const REASON_HEADER: &str = "x-portal-reason";

/// Largest form the portal reads (the longest is enrolment: two passwords and a code).
const MAX_FORM_BYTES: usize = 8 * 1024;

/// The portal's rules, from its configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where officers reach the portal (links, cookies' `Secure`, HSTS).
    pub public_url: String,
    pub idle_timeout: Duration,
    pub absolute_timeout: Duration,
    pub max_failed_sign_ins: i32,
    pub lockout: Duration,
    pub tele_tans_per_officer_per_hour: i32,
    pub enrolment_validity: Duration,
    pub local_accounts: bool,
}

impl Settings {
    /// HTTPS in front of the portal: cookies are `Secure` and HSTS is sent. Only a plain-HTTP
    /// public URL (local development) turns both off.
    pub fn secure(&self) -> bool {
        self.public_url.starts_with("https://")
    }
}

/// Everything a handler needs.
pub struct Portal {
    pub store: Store,
    pub audit: AuditLog,
    pub issuer: crate::teletan::Issuer,
    pub settings: Settings,
    pub oidc: Option<crate::oidc::OidcLogin>,
}

type State = web::Data<Arc<Portal>>;

/// The routes, with the security headers on every answer.
pub fn routes(portal: Arc<Portal>) -> Routes {
    Routes::new(move |config| {
        let secure = portal.settings.secure();
        let mut headers = DefaultHeaders::new()
            .add((
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; \
                 frame-ancestors 'none'; base-uri 'none'",
            ))
            .add((header::X_FRAME_OPTIONS, "DENY"))
            .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
            .add((header::REFERRER_POLICY, "no-referrer"))
            .add((header::CACHE_CONTROL, "no-store"));
        if secure {
            headers = headers.add((
                header::STRICT_TRANSPORT_SECURITY,
                "max-age=31536000; includeSubDomains",
            ));
        }
        config
            .app_data(web::Data::new(portal.clone()))
            .app_data(
                web::FormConfig::default()
                    .limit(MAX_FORM_BYTES)
                    .error_handler(unreadable_form),
            )
            .service(
                web::scope("")
                    .wrap(headers)
                    .service(web::resource("/").route(web::get().to(home)))
                    .service(
                        web::resource("/sign-in")
                            .route(web::get().to(sign_in_page))
                            .route(web::post().to(sign_in)),
                    )
                    .service(
                        web::resource("/sign-in/oidc").route(web::get().to(crate::oidc::start)),
                    )
                    .service(
                        web::resource("/sign-in/oidc/callback")
                            .route(web::get().to(crate::oidc::callback)),
                    )
                    .service(web::resource("/sign-out").route(web::post().to(sign_out)))
                    .service(
                        web::resource("/enrol/{token}")
                            .route(web::get().to(enrol_page))
                            .route(web::post().to(enrol)),
                    )
                    .service(
                        web::resource("/issue")
                            .route(web::get().to(issue_page))
                            .route(web::post().to(issue)),
                    )
                    .service(
                        web::resource("/admin/accounts")
                            .route(web::get().to(crate::admin::accounts_page))
                            .route(web::post().to(crate::admin::create_account)),
                    )
                    .service(
                        web::resource("/admin/accounts/{id}/{action}")
                            .route(web::post().to(crate::admin::account_action)),
                    )
                    .service(
                        web::resource("/admin/audit")
                            .route(web::get().to(crate::admin::audit_page)),
                    )
                    .service(
                        web::resource("/admin/audit/export")
                            .route(web::get().to(crate::admin::audit_export)),
                    )
                    .service(web::resource("/static/portal.css").route(web::get().to(css)))
                    .default_service(web::to(not_found)),
            );
    })
}

/// A page answer: status, machine-readable reason (for refusals) and the page.
pub fn page(status: StatusCode, reason: Option<&'static str>, markup: Markup) -> HttpResponse {
    let mut response = HttpResponse::build(status);
    response.content_type("text/html; charset=utf-8");
    if let Some(reason) = reason {
        response.insert_header((REASON_HEADER, reason));
    }
    response.body(markup.into_string())
}

/// A form that cannot be read (over the size limit, not URL-encoded, a field missing or of the
/// wrong type): refused like every other form, with a page and a machine-readable reason, before
/// any session or CSRF check runs.
fn unreadable_form(
    error: actix_web::error::UrlencodedError,
    req: &HttpRequest,
) -> actix_web::Error {
    use actix_web::error::UrlencodedError;
    let (status, reason) = match error {
        UrlencodedError::Overflow { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "form_too_large"),
        UrlencodedError::ContentType => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "form_not_urlencoded"),
        _ => (StatusCode::BAD_REQUEST, "form_unreadable"),
    };
    let lang = lang(req);
    let t = lang.text();
    let response = page(
        status,
        Some(reason),
        pages::message(lang, None, t.bad_request, Notice::Error(t.form_expired)),
    );
    actix_web::error::InternalError::from_response(error, response).into()
}

/// A redirect after a form (303: the browser follows with GET).
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

/// The page language: `?lang=`, else the cookie, else `Accept-Language`.
pub fn lang(req: &HttpRequest) -> Lang {
    query_lang(req)
        .or_else(|| req.cookie(LANG_COOKIE).and_then(|c| Lang::parse(c.value())))
        .unwrap_or_else(|| {
            req.headers()
                .get(header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok())
                .map_or(Lang::En, Lang::from_accept_language)
        })
}

fn query_lang(req: &HttpRequest) -> Option<Lang> {
    web::Query::<LangQuery>::from_query(req.query_string())
        .ok()
        .and_then(|q| q.lang.as_deref().and_then(Lang::parse))
}

#[derive(Deserialize)]
struct LangQuery {
    lang: Option<String>,
}

/// Keeps a language chosen with `?lang=` for the next pages.
fn remember_lang(req: &HttpRequest, response: &mut HttpResponse, secure: bool) {
    if let Some(lang) = query_lang(req) {
        let _ = response.add_cookie(&cookie(LANG_COOKIE, lang.code().to_owned(), secure));
    }
}

/// A cookie as the portal sets them: `HttpOnly`, `SameSite=Strict`, whole site, `Secure` outside
/// development, ending with the browser session.
pub fn cookie(name: &'static str, value: String, secure: bool) -> Cookie<'static> {
    Cookie::build(name, value)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .finish()
}

fn removal(name: &'static str, secure: bool) -> Cookie<'static> {
    let mut c = cookie(name, String::new(), secure);
    c.make_removal();
    c
}

/// A signed-in officer or administrator.
#[derive(Debug, Clone)]
pub struct Session {
    pub id_hash: String,
    pub account: Account,
    pub role: Role,
    pub csrf: String,
}

impl Session {
    pub fn viewer(&self) -> Viewer {
        Viewer {
            display_name: self.account.display_name.clone(),
            role: self.role,
            csrf: self.csrf.clone(),
        }
    }
}

/// Why a request has no usable session.
pub enum NoSession {
    /// No cookie, or one the portal does not know: go and sign in.
    Absent,
    /// Timed out (idle or absolute) or the account was disabled: ended now.
    Ended,
    Unavailable,
}

/// The request's session, checked against both timeouts and the account's state; ended (and
/// audited) when it has timed out. A session used within the idle timeout is kept alive.
pub async fn session(portal: &Portal, req: &HttpRequest) -> Result<Session, NoSession> {
    let Some(cookie) = req.cookie(SESSION_COOKIE) else {
        return Err(NoSession::Absent);
    };
    let id_hash = auth::token_hash(cookie.value());
    let row = portal
        .store
        .session(&id_hash)
        .await
        .map_err(|_| NoSession::Unavailable)?
        .ok_or(NoSession::Absent)?;
    let now = unix_now();
    let settings = &portal.settings;
    let idle = now - row.last_seen_at > secs(settings.idle_timeout);
    let expired = now - row.created_at > secs(settings.absolute_timeout);
    let role = row.account.role();
    if idle || expired || row.account.disabled_at.is_some() || role.is_none() {
        portal
            .store
            .delete_session(&id_hash)
            .await
            .map_err(|_| NoSession::Unavailable)?;
        let detail = if expired {
            "absolute_timeout"
        } else if idle {
            "idle_timeout"
        } else {
            "account_disabled"
        };
        audit(
            portal,
            Actor::Account(row.account.id),
            Action::SessionExpired,
            None,
            Some(detail),
        )
        .await
        .map_err(|_| NoSession::Unavailable)?;
        return Err(NoSession::Ended);
    }
    // One write a minute at most per session, not one per request (more often only when the
    // idle timeout is shorter than a few minutes).
    if now - row.last_seen_at >= (secs(settings.idle_timeout) / 4).clamp(1, 60) {
        portal
            .store
            .touch_session(&id_hash, now)
            .await
            .map_err(|_| NoSession::Unavailable)?;
    }
    Ok(Session {
        id_hash,
        role: role.unwrap_or(Role::Officer),
        account: row.account,
        csrf: row.csrf_token,
    })
}

/// The session of a request that needs `role`; otherwise the answer to give (sign-in page,
/// 403, 503).
pub async fn require(
    portal: &Portal,
    req: &HttpRequest,
    role: Role,
) -> Result<Session, HttpResponse> {
    let lang = lang(req);
    match session(portal, req).await {
        Ok(session) if session.role == role => Ok(session),
        Ok(session) => Err(page(
            StatusCode::FORBIDDEN,
            Some("role_not_allowed"),
            pages::message(
                lang,
                Some(&session.viewer()),
                lang.text().not_allowed,
                Notice::Error(lang.text().not_allowed),
            ),
        )),
        Err(NoSession::Absent) => Err(see_other("/sign-in")),
        Err(NoSession::Ended) => Err(see_other("/sign-in?ended=1")),
        Err(NoSession::Unavailable) => Err(unavailable(lang)),
    }
}

/// A form from a session: its CSRF field must be the session's token.
pub fn csrf_ok(session: &Session, field: &str) -> bool {
    auth::same_token(&session.csrf, field)
}

pub fn csrf_refused(lang: Lang, viewer: Option<&Viewer>) -> HttpResponse {
    page(
        StatusCode::FORBIDDEN,
        Some("csrf_token_invalid"),
        pages::message(
            lang,
            viewer,
            lang.text().bad_request,
            Notice::Error(lang.text().form_expired),
        ),
    )
}

pub fn unavailable(lang: Lang) -> HttpResponse {
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        Some("dependency_unavailable"),
        pages::message(
            lang,
            None,
            lang.text().portal_name,
            Notice::Error(lang.text().unavailable),
        ),
    )
}

/// Appends to the audit log now.
pub async fn audit(
    portal: &Portal,
    actor: Actor,
    action: Action,
    target: Option<i64>,
    detail: Option<&str>,
) -> Result<(), DbError> {
    portal
        .audit
        .append(unix_now(), actor, action, target, detail)
        .await
        .map(drop)
        .inspect_err(
            |e| tracing::warn!(error = %e, action = action.as_str(), "audit log unavailable"),
        )
}

pub fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 4)
}

async fn home(state: State, req: HttpRequest) -> HttpResponse {
    match session(&state, &req).await {
        Ok(session) => see_other(start_page(session.role)),
        Err(NoSession::Unavailable) => unavailable(lang(&req)),
        Err(_) => see_other("/sign-in"),
    }
}

/// Where a role starts after signing in.
pub fn start_page(role: Role) -> &'static str {
    match role {
        Role::Officer => "/issue",
        Role::Admin => "/admin/accounts",
    }
}

async fn css() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .body(pages::CSS)
}

async fn not_found(req: HttpRequest) -> HttpResponse {
    let lang = lang(&req);
    let t = lang.text();
    page(
        StatusCode::NOT_FOUND,
        Some("not_found"),
        pages::message(lang, None, t.not_found, Notice::Error(t.not_found)),
    )
}

/// The anonymous forms' CSRF token (sign-in, enrolment): a random value in a `SameSite=Strict`
/// cookie that the form must repeat (double submit). Reused while the cookie lives.
fn anonymous_csrf(req: &HttpRequest) -> String {
    req.cookie(CSRF_COOKIE)
        .map(|c| c.value().to_owned())
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
        .unwrap_or_else(auth::random_token)
}

/// A page with an anonymous form: its CSRF cookie set (and a language chosen with `?lang=`
/// kept).
fn anonymous_page(
    portal: &Portal,
    req: &HttpRequest,
    status: StatusCode,
    reason: Option<&'static str>,
    markup: Markup,
    csrf: String,
) -> HttpResponse {
    let mut response = page(status, reason, markup);
    let secure = portal.settings.secure();
    let _ = response.add_cookie(&cookie(CSRF_COOKIE, csrf, secure));
    remember_lang(req, &mut response, secure);
    response
}

fn anonymous_csrf_ok(req: &HttpRequest, field: &str) -> bool {
    req.cookie(CSRF_COOKIE)
        .is_some_and(|c| auth::same_token(c.value(), field))
}

#[derive(Deserialize)]
struct EndedQuery {
    ended: Option<String>,
    out: Option<String>,
    enrolled: Option<String>,
}

async fn sign_in_page(state: State, req: HttpRequest) -> HttpResponse {
    let lang = lang(&req);
    let t = lang.text();
    if let Ok(session) = session(&state, &req).await {
        return see_other(start_page(session.role));
    }
    let query = web::Query::<EndedQuery>::from_query(req.query_string()).ok();
    let notice = query.and_then(|q| {
        if q.ended.is_some() {
            Some(Notice::Info(t.session_ended))
        } else if q.out.is_some() {
            Some(Notice::Info(t.signed_out))
        } else if q.enrolled.is_some() {
            Some(Notice::Info(t.enrolled))
        } else {
            None
        }
    });
    sign_in_response(&state, &req, lang, StatusCode::OK, None, notice)
}

fn sign_in_response(
    portal: &Portal,
    req: &HttpRequest,
    lang: Lang,
    status: StatusCode,
    reason: Option<&'static str>,
    notice: Option<Notice>,
) -> HttpResponse {
    let csrf = anonymous_csrf(req);
    let markup = pages::sign_in(
        lang,
        &csrf,
        portal.settings.local_accounts,
        portal.oidc.is_some(),
        notice,
    );
    anonymous_page(portal, req, status, reason, markup, csrf)
}

#[derive(Deserialize)]
pub struct SignInForm {
    csrf: String,
    username: String,
    password: String,
    code: String,
}

/// What the check of a local sign-in found (each refusal answers the same to the client).
enum Checked {
    Ok {
        account: Box<Account>,
        step: i64,
    },
    Refused {
        account: Option<i64>,
        detail: &'static str,
    },
}

async fn sign_in(state: State, req: HttpRequest, form: web::Form<SignInForm>) -> HttpResponse {
    let lang = lang(&req);
    let t = lang.text();
    if !state.settings.local_accounts {
        return not_found(req).await;
    }
    if !anonymous_csrf_ok(&req, &form.csrf) {
        return sign_in_response(
            &state,
            &req,
            lang,
            StatusCode::FORBIDDEN,
            Some("csrf_token_invalid"),
            Some(Notice::Error(t.form_expired)),
        );
    }
    let now = unix_now();
    let checked = match check_local(&state, &form, now).await {
        Ok(checked) => checked,
        Err(_) => return unavailable(lang),
    };
    match checked {
        Checked::Ok { account, step } => {
            match state.store.record_success(account.id, Some(step)).await {
                Ok(true) => {}
                // The code was used meanwhile (a replay racing this sign-in).
                Ok(false) => {
                    return refuse_sign_in(
                        &state,
                        &req,
                        lang,
                        Some(account.id),
                        "code_reused",
                        now,
                    )
                    .await;
                }
                Err(_) => return unavailable(lang),
            }
            start_session(&state, &req, &account, now, Landing::Redirect).await
        }
        Checked::Refused { account, detail } => {
            refuse_sign_in(&state, &req, lang, account, detail, now).await
        }
    }
}

async fn check_local(portal: &Portal, form: &SignInForm, now: i64) -> Result<Checked, DbError> {
    // A name no account can have (every local account is created with a valid one) is unknown
    // without asking the database, which may refuse what it cannot store (PostgreSQL: a NUL
    // byte) — a refusal, not an outage.
    let username = form.username.trim();
    let account = if crate::admin::valid_username(username) {
        portal
            .store
            .account_by_username(username)
            .await?
            .filter(|a| a.is_local())
    } else {
        None
    };
    let password = form.password.clone();
    let Some(account) = account else {
        // As slow as a wrong password, so that timing does not tell that the name is unknown.
        let _ = tokio::task::spawn_blocking(move || auth::verify_nothing(&password)).await;
        return Ok(Checked::Refused {
            account: None,
            detail: "unknown_account",
        });
    };
    let hash = account.password_hash.clone();
    let password_ok = tokio::task::spawn_blocking(move || match hash {
        Some(hash) => auth::verify_password(&password, &hash),
        None => {
            auth::verify_nothing(&password);
            false
        }
    })
    .await
    .unwrap_or(false);
    let refused = |detail| {
        Ok(Checked::Refused {
            account: Some(account.id),
            detail,
        })
    };
    if account.disabled_at.is_some() {
        return refused("account_disabled");
    }
    if account.enrolled_at.is_none() {
        return refused("not_enrolled");
    }
    if account.is_locked(now) {
        return refused("account_locked");
    }
    if !password_ok {
        return refused("wrong_password");
    }
    let step = account
        .totp_secret
        .as_deref()
        .and_then(|secret| auth::check_totp(secret, &form.code, now).ok().flatten());
    match step {
        Some(step) if account.last_totp_step.is_none_or(|last| step > last) => Ok(Checked::Ok {
            account: Box::new(account),
            step,
        }),
        Some(_) => refused("code_reused"),
        None => refused("wrong_code"),
    }
}

/// Every refused sign-in answers alike (401, the same words) whatever the cause: whether an
/// account exists, is locked or disabled is not told. The cause goes to the audit log; a
/// wrong password or code counts towards the lock.
async fn refuse_sign_in(
    portal: &Portal,
    req: &HttpRequest,
    lang: Lang,
    account: Option<i64>,
    detail: &'static str,
    now: i64,
) -> HttpResponse {
    let actor = account.map_or(Actor::Unknown, Actor::Account);
    if audit(portal, actor, Action::SignInFailed, None, Some(detail))
        .await
        .is_err()
    {
        return unavailable(lang);
    }
    metrics::counter!("openwarn_portal_sign_ins_total", "outcome" => "refused").increment(1);
    if let (Some(id), "wrong_password" | "wrong_code" | "code_reused") = (account, detail) {
        let lock_until = now + secs(portal.settings.lockout);
        match portal
            .store
            .record_failure(id, portal.settings.max_failed_sign_ins, now, lock_until)
            .await
        {
            Ok(true) => {
                metrics::counter!("openwarn_portal_accounts_locked_total").increment(1);
                if audit(
                    portal,
                    Actor::Account(id),
                    Action::AccountLocked,
                    Some(id),
                    None,
                )
                .await
                .is_err()
                {
                    return unavailable(lang);
                }
            }
            Ok(false) => {}
            Err(_) => return unavailable(lang),
        }
    }
    sign_in_response(
        portal,
        req,
        lang,
        StatusCode::UNAUTHORIZED,
        Some("sign_in_failed"),
        Some(Notice::Error(lang.text().sign_in_failed)),
    )
}

/// How a new session's browser is sent on to its start page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Landing {
    /// A 303 (after the portal's own sign-in form: a same-site request).
    Redirect,
    /// A page that moves on by itself (`<meta http-equiv="refresh">`, and a link): after the
    /// identity provider's redirect, the request is cross-site, and a browser may not send the
    /// new `SameSite=Strict` cookie on a redirect that continues that chain; a navigation the
    /// portal's own page starts is same-site.
    Page,
}

/// Opens a session for `account` (a new id every time: no fixation), audits it and sends the
/// browser to the role's start page.
pub async fn start_session(
    portal: &Portal,
    req: &HttpRequest,
    account: &Account,
    now: i64,
    landing: Landing,
) -> HttpResponse {
    let lang = lang(req);
    let Some(role) = account.role() else {
        return unavailable(lang);
    };
    // From now, not from when the request came: checking a password takes a while.
    let now = now.max(unix_now());
    let id = auth::random_token();
    let csrf = auth::random_token();
    if portal
        .store
        .create_session(&auth::token_hash(&id), account.id, &csrf, now)
        .await
        .is_err()
        || audit(
            portal,
            Actor::Account(account.id),
            Action::SignInSucceeded,
            None,
            None,
        )
        .await
        .is_err()
    {
        return unavailable(lang);
    }
    metrics::counter!("openwarn_portal_sign_ins_total", "outcome" => "succeeded").increment(1);
    // An old session cookie of this browser ends with the new one.
    if let Some(old) = req.cookie(SESSION_COOKIE) {
        let _ = portal
            .store
            .delete_session(&auth::token_hash(old.value()))
            .await;
    }
    let secure = portal.settings.secure();
    let mut response = match landing {
        Landing::Redirect => see_other(start_page(role)),
        Landing::Page => page(
            StatusCode::OK,
            None,
            pages::continue_to(lang, start_page(role)),
        ),
    };
    let _ = response.add_cookie(&cookie(SESSION_COOKIE, id, secure));
    let _ = response.add_removal_cookie(&removal(CSRF_COOKIE, secure));
    response
}

#[derive(Deserialize)]
pub struct CsrfForm {
    pub csrf: String,
}

async fn sign_out(state: State, req: HttpRequest, form: web::Form<CsrfForm>) -> HttpResponse {
    let lang = lang(&req);
    let session = match session(&state, &req).await {
        Ok(session) => session,
        Err(NoSession::Unavailable) => return unavailable(lang),
        Err(_) => return see_other("/sign-in"),
    };
    if !csrf_ok(&session, &form.csrf) {
        return csrf_refused(lang, Some(&session.viewer()));
    }
    if state.store.delete_session(&session.id_hash).await.is_err()
        || audit(
            &state,
            Actor::Account(session.account.id),
            Action::SignedOut,
            None,
            None,
        )
        .await
        .is_err()
    {
        return unavailable(lang);
    }
    let mut response = see_other("/sign-in?out=1");
    let _ = response.add_removal_cookie(&removal(SESSION_COOKIE, state.settings.secure()));
    response
}

async fn enrol_page(state: State, req: HttpRequest, token: web::Path<String>) -> HttpResponse {
    let lang = lang(&req);
    let account = match enrolling(&state, &token).await {
        Ok(Some(account)) => account,
        Ok(None) => return enrol_invalid(lang),
        Err(_) => return unavailable(lang),
    };
    enrol_response(
        &state,
        &req,
        lang,
        &token,
        &account,
        &auth::new_totp_secret(),
        StatusCode::OK,
        None,
        None,
    )
}

async fn enrolling(portal: &Portal, token: &str) -> Result<Option<Account>, DbError> {
    if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    portal
        .store
        .account_by_enrolment(&auth::token_hash(token), unix_now())
        .await
}

fn enrol_invalid(lang: Lang) -> HttpResponse {
    let t = lang.text();
    page(
        StatusCode::NOT_FOUND,
        Some("enrolment_link_invalid"),
        pages::message(lang, None, t.enrol_title, Notice::Error(t.enrol_invalid)),
    )
}

#[allow(clippy::too_many_arguments, reason = "one page's parts, each needed")]
fn enrol_response(
    portal: &Portal,
    req: &HttpRequest,
    lang: Lang,
    token: &str,
    account: &Account,
    secret: &str,
    status: StatusCode,
    reason: Option<&'static str>,
    notice: Option<Notice>,
) -> HttpResponse {
    let t = lang.text();
    let qr = auth::otpauth_url(secret, &account.username, t.portal_name)
        .and_then(|url| auth::qr_svg(&url));
    let Ok(qr) = qr else {
        return unavailable(lang);
    };
    let csrf = anonymous_csrf(req);
    let markup = pages::enrol(
        lang,
        &pages::Enrolment {
            token,
            csrf: &csrf,
            username: &account.username,
            secret,
            qr_svg: &qr,
        },
        notice,
    );
    anonymous_page(portal, req, status, reason, markup, csrf)
}

#[derive(Deserialize)]
pub struct EnrolForm {
    csrf: String,
    secret: String,
    password: String,
    password2: String,
    code: String,
}

async fn enrol(
    state: State,
    req: HttpRequest,
    token: web::Path<String>,
    form: web::Form<EnrolForm>,
) -> HttpResponse {
    let lang = lang(&req);
    let t = lang.text();
    let account = match enrolling(&state, &token).await {
        Ok(Some(account)) => account,
        Ok(None) => return enrol_invalid(lang),
        Err(_) => return unavailable(lang),
    };
    // The secret travels in the form (the page showed it; nothing is stored before the first
    // valid code): it must be one the portal could have made.
    let secret_ok = form.secret.len() == 32
        && form
            .secret
            .bytes()
            .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b));
    let secret = if secret_ok {
        form.secret.clone()
    } else {
        auth::new_totp_secret()
    };
    let again = |status, reason, message| {
        enrol_response(
            &state,
            &req,
            lang,
            &token,
            &account,
            &secret,
            status,
            Some(reason),
            Some(Notice::Error(message)),
        )
    };
    if !anonymous_csrf_ok(&req, &form.csrf) {
        return again(StatusCode::FORBIDDEN, "csrf_token_invalid", t.form_expired);
    }
    if !secret_ok {
        return again(
            StatusCode::BAD_REQUEST,
            "invalid_secret",
            t.enrol_wrong_code,
        );
    }
    if let Some(problem) = auth::password_problem(&form.password, &form.password2) {
        let message = match problem {
            "password_mismatch" => t.password_mismatch,
            "password_too_long" => t.password_too_long,
            _ => t.password_too_short,
        };
        return again(StatusCode::BAD_REQUEST, problem, message);
    }
    let now = unix_now();
    let Ok(Some(step)) = auth::check_totp(&secret, &form.code, now) else {
        return again(StatusCode::BAD_REQUEST, "wrong_code", t.enrol_wrong_code);
    };
    let password = form.password.clone();
    let Ok(Ok(hash)) = tokio::task::spawn_blocking(move || auth::hash_password(&password)).await
    else {
        return unavailable(lang);
    };
    match state
        .store
        .complete_enrolment(
            account.id,
            &auth::token_hash(&token),
            &hash,
            &secret,
            step,
            now,
        )
        .await
    {
        Ok(true) => {}
        Ok(false) => return enrol_invalid(lang),
        Err(_) => return unavailable(lang),
    }
    if audit(
        &state,
        Actor::Account(account.id),
        Action::AccountEnrolled,
        Some(account.id),
        None,
    )
    .await
    .is_err()
    {
        return unavailable(lang);
    }
    see_other("/sign-in?enrolled=1")
}

async fn issue_page(state: State, req: HttpRequest) -> HttpResponse {
    let session = match require(&state, &req, Role::Officer).await {
        Ok(session) => session,
        Err(answer) => return answer,
    };
    let mut response = page(
        StatusCode::OK,
        None,
        pages::issue(lang(&req), &session.viewer(), None),
    );
    remember_lang(&req, &mut response, state.settings.secure());
    response
}

async fn issue(state: State, req: HttpRequest, form: web::Form<CsrfForm>) -> HttpResponse {
    let lang = lang(&req);
    let t = lang.text();
    let session = match require(&state, &req, Role::Officer).await {
        Ok(session) => session,
        Err(answer) => return answer,
    };
    let viewer = session.viewer();
    if !csrf_ok(&session, &form.csrf) {
        return csrf_refused(lang, Some(&viewer));
    }
    let officer = session.account.id;
    let hour = unix_now() / 3600;
    match state
        .store
        .take_issue_slot(officer, hour, state.settings.tele_tans_per_officer_per_hour)
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            return refuse_issue(
                &state,
                lang,
                &viewer,
                officer,
                "per_officer_limit",
                StatusCode::TOO_MANY_REQUESTS,
                t.limit_officer,
            )
            .await;
        }
        Err(_) => return unavailable(lang),
    }
    let issued = state.issuer.issue().await;
    let issued = match issued {
        Ok(issued) => issued,
        Err(e) => {
            let _ = state.store.return_issue_slot(officer, hour).await;
            return match e {
                crate::teletan::IssueError::GlobalLimit => {
                    refuse_issue(
                        &state,
                        lang,
                        &viewer,
                        officer,
                        "global_limit",
                        StatusCode::TOO_MANY_REQUESTS,
                        t.limit_global,
                    )
                    .await
                }
                crate::teletan::IssueError::Unavailable => {
                    refuse_issue(
                        &state,
                        lang,
                        &viewer,
                        officer,
                        "verification_unavailable",
                        StatusCode::SERVICE_UNAVAILABLE,
                        t.unavailable,
                    )
                    .await
                }
            };
        }
    };
    // No teleTAN is shown that is not in the audit log (the entry never holds the teleTAN).
    if audit(
        &state,
        Actor::Account(officer),
        Action::TeleTanIssued,
        None,
        None,
    )
    .await
    .is_err()
    {
        return unavailable(lang);
    }
    metrics::counter!("openwarn_portal_tele_tans_issued_total").increment(1);
    let until = local_time(lang, issued.expires_at);
    page(
        StatusCode::OK,
        None,
        pages::issued(lang, &viewer, issued.tele_tan.expose(), &until),
    )
}

/// A refused teleTAN: counted, audited, explained on the page.
#[allow(
    clippy::too_many_arguments,
    reason = "one refusal's parts, each needed"
)]
async fn refuse_issue(
    portal: &Portal,
    lang: Lang,
    viewer: &Viewer,
    officer: i64,
    reason: &'static str,
    status: StatusCode,
    message: &'static str,
) -> HttpResponse {
    metrics::counter!("openwarn_portal_tele_tans_refused_total", "reason" => reason).increment(1);
    if audit(
        portal,
        Actor::Account(officer),
        Action::TeleTanRefused,
        None,
        Some(reason),
    )
    .await
    .is_err()
    {
        return unavailable(lang);
    }
    page(
        status,
        Some(reason),
        pages::issue(lang, viewer, Some(Notice::Error(message))),
    )
}

/// A time as officers read it: the portal's local time zone (`TZ`), with its offset.
pub fn local_time(lang: Lang, unix: i64) -> String {
    use chrono::TimeZone;
    let Some(time) = chrono::Local.timestamp_opt(unix, 0).single() else {
        return unix.to_string();
    };
    match lang {
        Lang::En => time.format("%Y-%m-%d %H:%M (UTC%:z)").to_string(),
        Lang::De => time.format("%d.%m.%Y, %H:%M Uhr (UTC%:z)").to_string(),
    }
}
