//! Administrators' pages: accounts (create, disable, enable, re-enrol, change role) and the
//! audit log (list, filter, export as JSON lines). Every action is audited; reading the log is
//! too.

use crate::audit::{Action, Actor, Filter};
use crate::auth;
use crate::i18n::Lang;
use crate::pages::{self, AuditQuery, NewLink, Notice};
use crate::store::{NewAccount, Role};
use crate::web::{
    CsrfForm, Portal, Session, audit, csrf_ok, csrf_refused, lang, page, require, secs, unavailable,
};
use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use openwarn_bootstrap::lifecycle::unix_now;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;

type State = web::Data<Arc<Portal>>;

/// Entries per audit page.
const AUDIT_PAGE: usize = 100;
/// Most entries in one export.
const EXPORT_LIMIT: usize = 100_000;

/// Usernames: 3–64 of letters, digits, `.`, `-`, `_`.
pub fn valid_username(s: &str) -> bool {
    (3..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// Names shown on pages: 1–128 characters, no control characters.
pub fn valid_display_name(s: &str) -> bool {
    let n = s.chars().count();
    (1..=128).contains(&n) && !s.chars().any(char::is_control)
}

/// The enrolment link of `token`.
pub fn enrolment_url(public_url: &str, token: &str) -> String {
    format!("{}/enrol/{token}", public_url.trim_end_matches('/'))
}

async fn render_accounts(
    portal: &Portal,
    lang: Lang,
    session: &Session,
    status: StatusCode,
    reason: Option<&'static str>,
    link: Option<NewLink<'_>>,
    notice: Option<Notice>,
) -> HttpResponse {
    let Ok(accounts) = portal.store.accounts().await else {
        return unavailable(lang);
    };
    page(
        status,
        reason,
        pages::accounts(
            lang,
            &session.viewer(),
            session.account.id,
            &accounts,
            link,
            notice,
            unix_now(),
        ),
    )
}

pub async fn accounts_page(state: State, req: HttpRequest) -> HttpResponse {
    let session = match require(&state, &req, Role::Admin).await {
        Ok(session) => session,
        Err(answer) => return answer,
    };
    render_accounts(
        &state,
        lang(&req),
        &session,
        StatusCode::OK,
        None,
        None,
        None,
    )
    .await
}

#[derive(Deserialize)]
pub struct CreateForm {
    csrf: String,
    username: String,
    display_name: String,
    role: String,
}

pub async fn create_account(
    state: State,
    req: HttpRequest,
    form: web::Form<CreateForm>,
) -> HttpResponse {
    let lang = lang(&req);
    let t = lang.text();
    let session = match require(&state, &req, Role::Admin).await {
        Ok(session) => session,
        Err(answer) => return answer,
    };
    if !csrf_ok(&session, &form.csrf) {
        return csrf_refused(lang, Some(&session.viewer()));
    }
    let username = form.username.trim();
    let display_name = form.display_name.trim();
    let refuse = |reason, message| {
        render_accounts(
            &state,
            lang,
            &session,
            StatusCode::BAD_REQUEST,
            Some(reason),
            None,
            Some(Notice::Error(message)),
        )
    };
    if !valid_username(username) {
        return refuse("invalid_username", t.username_invalid).await;
    }
    if !valid_display_name(display_name) {
        return refuse("invalid_display_name", t.display_name_invalid).await;
    }
    let Some(role) = Role::parse(&form.role) else {
        return refuse("invalid_role", t.bad_request).await;
    };
    let created = create(
        &state,
        username,
        display_name,
        role,
        Actor::Account(session.account.id),
    )
    .await;
    match created {
        Ok(Some(url)) => {
            render_accounts(
                &state,
                lang,
                &session,
                StatusCode::OK,
                None,
                Some(NewLink {
                    username,
                    url: &url,
                }),
                Some(Notice::Info(t.done)),
            )
            .await
        }
        Ok(None) => refuse("username_taken", t.username_taken).await,
        Err(()) => unavailable(lang),
    }
}

/// Creates a local account waiting for enrolment and audits it; its enrolment link, or `None`
/// when the username is taken. Shared with the `create-admin` command.
pub async fn create(
    portal: &Portal,
    username: &str,
    display_name: &str,
    role: Role,
    actor: Actor,
) -> Result<Option<String>, ()> {
    create_in(
        &portal.store,
        &portal.audit,
        &portal.settings.public_url,
        portal.settings.enrolment_validity,
        username,
        display_name,
        role,
        actor,
    )
    .await
}

#[allow(
    clippy::too_many_arguments,
    reason = "the command has no running portal to pass"
)]
pub async fn create_in(
    store: &crate::Store,
    audit_log: &crate::audit::AuditLog,
    public_url: &str,
    validity: std::time::Duration,
    username: &str,
    display_name: &str,
    role: Role,
    actor: Actor,
) -> Result<Option<String>, ()> {
    let token = auth::random_token();
    let now = unix_now();
    let id = store
        .create_account(
            NewAccount {
                username,
                display_name,
                role,
                enrolment_hash: &auth::token_hash(&token),
                enrolment_expires_at: now + secs(validity),
            },
            now,
        )
        .await
        .map_err(drop)?;
    let Some(id) = id else {
        return Ok(None);
    };
    audit_log
        .append(
            now,
            actor,
            Action::AccountCreated,
            Some(id),
            Some(role.as_str()),
        )
        .await
        .map_err(drop)?;
    Ok(Some(enrolment_url(public_url, &token)))
}

pub async fn account_action(
    state: State,
    req: HttpRequest,
    path: web::Path<(i64, String)>,
    form: web::Form<CsrfForm>,
) -> HttpResponse {
    let lang = lang(&req);
    let t = lang.text();
    let session = match require(&state, &req, Role::Admin).await {
        Ok(session) => session,
        Err(answer) => return answer,
    };
    if !csrf_ok(&session, &form.csrf) {
        return csrf_refused(lang, Some(&session.viewer()));
    }
    let (id, action) = path.into_inner();
    let admin = Actor::Account(session.account.id);
    let refuse = |status, reason, message| {
        render_accounts(
            &state,
            lang,
            &session,
            status,
            Some(reason),
            None,
            Some(Notice::Error(message)),
        )
    };
    if id == session.account.id {
        return refuse(
            StatusCode::BAD_REQUEST,
            "not_on_own_account",
            t.not_yourself,
        )
        .await;
    }
    let account = match state.store.account(id).await {
        Ok(Some(account)) => account,
        Ok(None) => return refuse(StatusCode::NOT_FOUND, "no_such_account", t.not_found).await,
        Err(_) => return unavailable(lang),
    };
    let now = unix_now();
    let outcome: Result<(Action, Option<&str>, Option<String>), &'static str> =
        match action.as_str() {
            "disable" => state
                .store
                .set_disabled(id, Some(now))
                .await
                .map(|_| (Action::AccountDisabled, None, None))
                .map_err(|_| "unavailable"),
            "enable" => state
                .store
                .set_disabled(id, None)
                .await
                .map(|_| (Action::AccountEnabled, None, None))
                .map_err(|_| "unavailable"),
            "re-enrol" if account.is_local() => {
                let token = auth::random_token();
                state
                    .store
                    .reset_enrolment(
                        id,
                        &auth::token_hash(&token),
                        now + secs(state.settings.enrolment_validity),
                    )
                    .await
                    .map(|_| {
                        (
                            Action::SecondFactorReset,
                            None,
                            Some(crate::admin::enrolment_url(
                                &state.settings.public_url,
                                &token,
                            )),
                        )
                    })
                    .map_err(|_| "unavailable")
            }
            "make-admin" | "make-officer" if account.is_local() => {
                let role = if action == "make-admin" {
                    Role::Admin
                } else {
                    Role::Officer
                };
                state
                    .store
                    .set_role(id, role)
                    .await
                    .map(|_| (Action::RoleChanged, Some(role.as_str()), None))
                    .map_err(|_| "unavailable")
            }
            _ => Err("no_such_action"),
        };
    match outcome {
        Ok((action, detail, link)) => {
            if audit(&state, admin, action, Some(id), detail)
                .await
                .is_err()
            {
                return unavailable(lang);
            }
            render_accounts(
                &state,
                lang,
                &session,
                StatusCode::OK,
                None,
                link.as_deref().map(|url| NewLink {
                    username: &account.username,
                    url,
                }),
                Some(Notice::Info(t.done)),
            )
            .await
        }
        Err("no_such_action") => refuse(StatusCode::NOT_FOUND, "no_such_action", t.not_found).await,
        Err(_) => unavailable(lang),
    }
}

#[derive(Deserialize, Default)]
pub struct AuditParams {
    actor: Option<String>,
    action: Option<String>,
    from: Option<String>,
    to: Option<String>,
    before: Option<i64>,
}

/// A date (`YYYY-MM-DD`) as the Unix time its day starts, in the portal's time zone.
fn day_start(date: &str) -> Option<i64> {
    use chrono::TimeZone;
    let day = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
    chrono::Local
        .from_local_datetime(&day.and_hms_opt(0, 0, 0)?)
        .earliest()
        .map(|t| t.timestamp())
}

fn nonempty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// The filter of the query, or the reason it is refused.
fn filter(params: &AuditParams, limit: usize) -> Result<Filter, &'static str> {
    let actor = match nonempty(&params.actor) {
        Some(s) => Some(s.parse::<i64>().map_err(|_| "invalid_actor")?),
        None => None,
    };
    let action = match nonempty(&params.action) {
        Some(s) => Some(Action::parse(s).ok_or("invalid_action")?),
        None => None,
    };
    let from = match nonempty(&params.from) {
        Some(s) => Some(day_start(s).ok_or("invalid_date")?),
        None => None,
    };
    // Up to the end of the day given.
    let to = match nonempty(&params.to) {
        Some(s) => Some(day_start(s).ok_or("invalid_date")? + 86_400),
        None => None,
    };
    Ok(Filter {
        actor,
        action,
        from,
        to,
        before_id: params.before,
        limit,
    })
}

fn query_string(params: &AuditParams, before: Option<i64>) -> String {
    let mut parts = Vec::new();
    for (name, value) in [
        ("actor", &params.actor),
        ("action", &params.action),
        ("from", &params.from),
        ("to", &params.to),
    ] {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            parts.push(format!("{name}={}", url_encode(v)));
        }
    }
    if let Some(before) = before {
        parts.push(format!("before={before}"));
    }
    parts.join("&")
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn audit_params(req: &HttpRequest) -> Result<AuditParams, HttpResponse> {
    web::Query::<AuditParams>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .map_err(|_| bad_query(lang(req), "invalid_query"))
}

fn bad_query(lang: Lang, reason: &'static str) -> HttpResponse {
    let t = lang.text();
    page(
        StatusCode::BAD_REQUEST,
        Some(reason),
        pages::message(lang, None, t.audit_title, Notice::Error(t.bad_request)),
    )
}

/// An administrator's request to read the log: the session, the query and its filter, once
/// the reading is in the log (as `action`).
async fn audit_request(
    portal: &Portal,
    req: &HttpRequest,
    lang: Lang,
    limit: usize,
    action: Action,
) -> Result<(Session, AuditParams, Filter), HttpResponse> {
    let session = require(portal, req, Role::Admin).await?;
    let params = audit_params(req).await?;
    let filter = filter(&params, limit).map_err(|reason| bad_query(lang, reason))?;
    audit(
        portal,
        Actor::Account(session.account.id),
        action,
        None,
        None,
    )
    .await
    .map_err(|_| unavailable(lang))?;
    Ok((session, params, filter))
}

pub async fn audit_page(state: State, req: HttpRequest) -> HttpResponse {
    let lang = lang(&req);
    // Reading the log is itself an entry, written before the page is shown.
    let (session, params, filter) =
        match audit_request(&state, &req, lang, AUDIT_PAGE + 1, Action::AuditViewed).await {
            Ok(parts) => parts,
            Err(answer) => return answer,
        };
    let (Ok(mut entries), Ok(accounts)) = (
        state.audit.list(&filter).await,
        state.store.accounts().await,
    ) else {
        return unavailable(lang);
    };
    let older = (entries.len() > AUDIT_PAGE).then(|| {
        entries.truncate(AUDIT_PAGE);
        query_string(&params, entries.last().map(|e| e.id))
    });
    let names: HashMap<i64, String> = accounts
        .into_iter()
        .map(|a| (a.id, format!("{} ({})", a.display_name, a.username)))
        .collect();
    let query = AuditQuery {
        actor: params.actor.clone().unwrap_or_default(),
        action: params.action.clone().unwrap_or_default(),
        from: params.from.clone().unwrap_or_default(),
        to: params.to.clone().unwrap_or_default(),
    };
    let export = format!("/admin/audit/export?{}", query_string(&params, None));
    page(
        StatusCode::OK,
        None,
        pages::audit(
            lang,
            &session.viewer(),
            &pages::AuditPage {
                entries: &entries,
                names: &names,
                query: &query,
                older,
                export,
            },
            |at| crate::web::local_time(lang, at),
        ),
    )
}

pub async fn audit_export(state: State, req: HttpRequest) -> HttpResponse {
    let lang = lang(&req);
    let (_, _, filter) =
        match audit_request(&state, &req, lang, EXPORT_LIMIT, Action::AuditExported).await {
            Ok(parts) => parts,
            Err(answer) => return answer,
        };
    let mut body = Vec::new();
    if state.audit.export_jsonl(&filter, &mut body).await.is_err() {
        return unavailable(lang);
    }
    HttpResponse::Ok()
        .content_type("application/jsonl; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            "attachment; filename=\"openwarn-portal-audit.jsonl\"",
        ))
        .body(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_and_names() {
        assert!(valid_username("alice.m-1_x"));
        assert!(!valid_username("al"));
        assert!(!valid_username("alice smith"));
        assert!(!valid_username("ålice"));
        assert!(!valid_username(&"a".repeat(65)));
        assert!(valid_display_name("Dr. Jürgen Müller"));
        assert!(!valid_display_name(""));
        assert!(!valid_display_name("a\u{0007}b"));
        assert!(!valid_display_name(&"a".repeat(129)));
    }

    #[test]
    fn audit_filters_are_parsed_or_refused() {
        let params = AuditParams {
            actor: Some("7".into()),
            action: Some("teletan_issued".into()),
            from: Some("2026-11-01".into()),
            to: Some("".into()),
            before: Some(40),
        };
        let f = filter(&params, 10).unwrap();
        assert_eq!(f.actor, Some(7));
        assert_eq!(f.action, Some(Action::TeleTanIssued));
        assert!(f.from.is_some() && f.to.is_none());
        assert_eq!((f.before_id, f.limit), (Some(40), 10));
        let bad = |p: AuditParams| filter(&p, 1).err();
        assert_eq!(
            bad(AuditParams {
                actor: Some("x".into()),
                ..Default::default()
            }),
            Some("invalid_actor")
        );
        assert_eq!(
            bad(AuditParams {
                action: Some("drop table".into()),
                ..Default::default()
            }),
            Some("invalid_action")
        );
        assert_eq!(
            bad(AuditParams {
                from: Some("2026-13-01".into()),
                ..Default::default()
            }),
            Some("invalid_date")
        );
    }

    #[test]
    fn paging_links_keep_the_filter() {
        let params = AuditParams {
            action: Some("sign_in_failed".into()),
            from: Some("2026-11-01".into()),
            ..Default::default()
        };
        assert_eq!(
            query_string(&params, Some(9)),
            "action=sign_in_failed&from=2026-11-01&before=9"
        );
        assert_eq!(url_encode("a b&c"), "a%20b%26c");
    }
}
