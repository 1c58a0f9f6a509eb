//! The portal's pages, rendered on the server (maud: HTML checked at compile time, every value
//! escaped). No script at all: every action is a form, so the portal works without JavaScript and
//! the Content-Security-Policy can forbid scripts entirely. Accessibility: one `h1` per page, a
//! skip link, every input with a `label` and its hint linked by `aria-describedby`, messages in
//! `role="alert"`/`role="status"` regions, focus outlines in the style sheet, contrast at least
//! 4.5:1.

use crate::audit::{Actor, Entry};
use crate::i18n::{Lang, Text};
use crate::store::{Account, Role};
use maud::{DOCTYPE, Markup, html};

/// Who is looking at the page, for the header and the navigation.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub display_name: String,
    pub role: Role,
    pub csrf: String,
}

/// A message shown above the page's content.
#[derive(Debug, Clone, Copy)]
pub enum Notice {
    Error(&'static str),
    Info(&'static str),
}

/// The frame of every page: language, title, skip link, header with navigation and sign-out.
pub fn layout(
    lang: Lang,
    title: &str,
    viewer: Option<&Viewer>,
    notice: Option<Notice>,
    path: &str,
    content: Markup,
) -> Markup {
    let t = lang.text();
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                title { (title) " – " (t.portal_name) }
                link rel="stylesheet" href="/static/portal.css";
            }
            body {
                a.skip href="#main" { (t.skip_to_content) }
                header {
                    p.brand { (t.portal_name) }
                    @if let Some(viewer) = viewer {
                        nav aria-label=(t.portal_name) {
                            ul {
                                @for (href, label, role) in nav_items(t) {
                                    @if viewer.role == role {
                                        li { a href=(href) aria-current=[(path == href).then_some("page")] { (label) } }
                                    }
                                }
                            }
                        }
                        form.signout method="post" action="/sign-out" {
                            input type="hidden" name="csrf" value=(viewer.csrf);
                            span { (t.signed_in_as) " " strong { (viewer.display_name) } " " }
                            button type="submit" { (t.sign_out) }
                        }
                    }
                    nav.lang aria-label=(t.language) {
                        ul {
                            @for other in Lang::ALL {
                                li {
                                    @if other == lang {
                                        span aria-current="true" lang=(other.code()) { (other.name()) }
                                    } @else {
                                        a href={ (path) "?lang=" (other.code()) } lang=(other.code()) hreflang=(other.code()) { (other.name()) }
                                    }
                                }
                            }
                        }
                    }
                }
                main #main tabindex="-1" {
                    h1 { (title) }
                    @match notice {
                        Some(Notice::Error(message)) => p.notice.error role="alert" { (message) },
                        Some(Notice::Info(message)) => p.notice.info role="status" { (message) },
                        None => {},
                    }
                    (content)
                }
            }
        }
    }
}

/// The navigation: each entry for the role that may use it. A later role (authorising an
/// Immuni-style app's codes) adds its entries here.
fn nav_items(t: &Text) -> [(&'static str, &'static str, Role); 3] {
    [
        ("/issue", t.nav_issue, Role::Officer),
        ("/admin/accounts", t.nav_accounts, Role::Admin),
        ("/admin/audit", t.nav_audit, Role::Admin),
    ]
}

fn field(id: &str, label: &str, kind: &str, autocomplete: &str, hint: Option<&str>) -> Markup {
    let hint_id = format!("{id}-hint");
    html! {
        div.field {
            label for=(id) { (label) }
            @if let Some(hint) = hint {
                p.hint id=(hint_id) { (hint) }
            }
            input id=(id) name=(id) type=(kind) autocomplete=(autocomplete) required
                aria-describedby=[hint.map(|_| hint_id.as_str())];
        }
    }
}

fn csrf(token: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(token); }
}

pub fn sign_in(
    lang: Lang,
    csrf_token: &str,
    local: bool,
    oidc: bool,
    notice: Option<Notice>,
) -> Markup {
    let t = lang.text();
    let content = html! {
        p { (t.sign_in_intro) }
        @if local {
            form method="post" action="/sign-in" {
                (csrf(csrf_token))
                (field("username", t.username, "text", "username", None))
                (field("password", t.password, "password", "current-password", None))
                (field("code", t.one_time_code, "text", "one-time-code", Some(t.one_time_code_hint)))
                button type="submit" { (t.sign_in) }
            }
        }
        @if oidc {
            p { a.button href="/sign-in/oidc" { (t.sign_in_oidc) } }
        }
    };
    layout(lang, t.sign_in, None, notice, "/sign-in", content)
}

/// The enrolment page: password twice, the QR code and key of the second factor, one code.
pub struct Enrolment<'a> {
    pub token: &'a str,
    pub csrf: &'a str,
    pub username: &'a str,
    pub secret: &'a str,
    pub qr_svg: &'a str,
}

pub fn enrol(lang: Lang, e: &Enrolment<'_>, notice: Option<Notice>) -> Markup {
    let t = lang.text();
    let grouped = group(e.secret, 4);
    let content = html! {
        p { (t.enrol_intro) }
        form method="post" action={ "/enrol/" (e.token) } {
            (csrf(e.csrf))
            input type="hidden" name="secret" value=(e.secret);
            p { (t.username) ": " strong { (e.username) } }
            (field("password", t.password, "password", "new-password", Some(t.password_hint)))
            (field("password2", t.password_repeat, "password", "new-password", None))
            figure.qr {
                // The SVG is generated by the qrcode crate from our own URI, not from input.
                div role="img" aria-label=(t.enrol_qr) { (maud::PreEscaped(e.qr_svg)) }
                figcaption { (t.enrol_key) ": " code.secret { (grouped) } }
            }
            (field("code", t.one_time_code, "text", "one-time-code", Some(t.one_time_code_hint)))
            button type="submit" { (t.enrol_button) }
        }
    };
    layout(lang, t.enrol_title, None, notice, "/enrol", content)
}

pub fn issue(lang: Lang, viewer: &Viewer, notice: Option<Notice>) -> Markup {
    let t = lang.text();
    let content = html! {
        p { (t.issue_intro) }
        form method="post" action="/issue" {
            (csrf(&viewer.csrf))
            button.primary type="submit" { (t.issue_button) }
        }
    };
    layout(lang, t.issue_title, Some(viewer), notice, "/issue", content)
}

pub fn issued(lang: Lang, viewer: &Viewer, tele_tan: &str, valid_until: &str) -> Markup {
    let t = lang.text();
    let content = html! {
        // Screen readers get the characters one by one (a paragraph may not carry an
        // aria-label); the eyes get the groups.
        p.teletan {
            span.visually-hidden { (tele_tan.chars().map(String::from).collect::<Vec<_>>().join(" ")) }
            span aria-hidden="true" {
                @for part in group(tele_tan, 3).split(' ') {
                    span.group { (part) }
                    " "
                }
            }
        }
        p { (t.issued_valid_until) ": " strong { (valid_until) } }
        p { (t.issued_read_out) }
        form method="post" action="/issue" {
            (csrf(&viewer.csrf))
            button type="submit" { (t.issue_another) }
        }
    };
    layout(lang, t.issued_title, Some(viewer), None, "/issue", content)
}

/// `s` in groups of `n` characters separated by spaces, as a person reads it out.
pub fn group(s: &str, n: usize) -> String {
    s.chars()
        .collect::<Vec<_>>()
        .chunks(n)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A new enrolment link to hand over (after creating or re-enrolling an account).
pub struct NewLink<'a> {
    pub username: &'a str,
    pub url: &'a str,
}

pub fn accounts(
    lang: Lang,
    viewer: &Viewer,
    viewer_id: i64,
    accounts: &[Account],
    link: Option<NewLink<'_>>,
    notice: Option<Notice>,
    now: i64,
) -> Markup {
    let t = lang.text();
    let content = html! {
        @if let Some(link) = link {
            section.link aria-labelledby="link-heading" {
                h2 #link-heading { (t.enrolment_link_for) " " (link.username) }
                p { code.url { (link.url) } }
                p { (t.enrolment_link_hint) }
            }
        }
        table {
            caption { (t.accounts_title) }
            thead { tr {
                th scope="col" { (t.username) }
                th scope="col" { (t.display_name) }
                th scope="col" { (t.role) }
                th scope="col" { (t.status) }
                th scope="col" { (t.actions) }
            } }
            tbody {
                @for account in accounts {
                    tr {
                        th scope="row" { (account.username) }
                        td { (account.display_name) }
                        td { (account.role().map_or("–", |r| role_name(t, r))) }
                        td { (status(t, account, now)) }
                        td.actions {
                            @if account.id != viewer_id {
                                (account_actions(t, &viewer.csrf, account))
                            }
                        }
                    }
                }
            }
        }
        h2 #create { (t.create_account) }
        form method="post" action="/admin/accounts" {
            (csrf(&viewer.csrf))
            (field("username", t.username, "text", "off", Some(t.username_invalid)))
            (field("display_name", t.display_name, "text", "off", None))
            fieldset {
                legend { (t.role) }
                @for role in Role::ALL {
                    div.choice {
                        input type="radio" name="role" id={ "role-" (role.as_str()) } value=(role.as_str()) checked[role == Role::Officer];
                        label for={ "role-" (role.as_str()) } { (role_name(t, role)) }
                    }
                }
            }
            button type="submit" { (t.create_button) }
        }
    };
    layout(
        lang,
        t.accounts_title,
        Some(viewer),
        notice,
        "/admin/accounts",
        content,
    )
}

fn account_actions(t: &Text, csrf_token: &str, account: &Account) -> Markup {
    let action = |name: &str, label: &str| {
        html! {
            form.inline method="post" action={ "/admin/accounts/" (account.id) "/" (name) } {
                (csrf(csrf_token))
                button type="submit" aria-label={ (label) ": " (account.username) } { (label) }
            }
        }
    };
    html! {
        @if account.disabled_at.is_some() {
            (action("enable", t.enable))
        } @else {
            (action("disable", t.disable))
        }
        @if account.is_local() {
            (action("re-enrol", t.re_enrol))
            @match account.role() {
                Some(Role::Officer) => (action("make-admin", t.make_admin)),
                _ => (action("make-officer", t.make_officer)),
            }
        }
    }
}

fn role_name(t: &Text, role: Role) -> &'static str {
    match role {
        Role::Officer => t.role_officer,
        Role::Admin => t.role_admin,
    }
}

fn status(t: &Text, account: &Account, now: i64) -> &'static str {
    if account.disabled_at.is_some() {
        t.status_disabled
    } else if account.enrolled_at.is_none() {
        t.status_enrolling
    } else if account.is_locked(now) {
        t.status_locked
    } else {
        t.status_active
    }
}

/// The audit page's filter as the form shows it.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub actor: String,
    pub action: String,
    pub from: String,
    pub to: String,
}

pub struct AuditPage<'a> {
    pub entries: &'a [Entry],
    pub names: &'a std::collections::HashMap<i64, String>,
    pub query: &'a AuditQuery,
    /// Query string of the next (older) page, if there is one.
    pub older: Option<String>,
    pub export: String,
}

pub fn audit(
    lang: Lang,
    viewer: &Viewer,
    page: &AuditPage<'_>,
    format_time: impl Fn(i64) -> String,
) -> Markup {
    let t = lang.text();
    let who = |actor: &Actor| match actor {
        Actor::Account(id) => page
            .names
            .get(id)
            .cloned()
            .unwrap_or_else(|| format!("#{id}")),
        Actor::Unknown => t.audit_unknown.to_owned(),
        Actor::System => t.audit_system.to_owned(),
    };
    let content = html! {
        p { (t.audit_intro) }
        form.filter method="get" action="/admin/audit" {
            div.field {
                label for="actor" { (t.audit_who) }
                select id="actor" name="actor" {
                    option value="" { (t.audit_all) }
                    @for (id, name) in sorted(page.names) {
                        option value=(id) selected[page.query.actor == id.to_string()] { (name) }
                    }
                }
            }
            div.field {
                label for="action" { (t.audit_what) }
                select id="action" name="action" {
                    option value="" { (t.audit_all) }
                    @for action in crate::audit::Action::ALL {
                        option value=(action.as_str()) selected[page.query.action == action.as_str()] { (action.as_str()) }
                    }
                }
            }
            div.field {
                label for="from" { (t.audit_from) }
                input id="from" name="from" type="date" value=(page.query.from);
            }
            div.field {
                label for="to" { (t.audit_to) }
                input id="to" name="to" type="date" value=(page.query.to);
            }
            button type="submit" { (t.audit_filter) }
        }
        p { a href=(page.export) { (t.audit_export) } }
        @if page.entries.is_empty() {
            p { (t.audit_none) }
        } @else {
            table {
                caption { (t.audit_title) }
                thead { tr {
                    th scope="col" { "#" }
                    th scope="col" { (t.audit_when) }
                    th scope="col" { (t.audit_who) }
                    th scope="col" { (t.audit_what) }
                    th scope="col" { (t.audit_target) }
                    th scope="col" { (t.audit_detail) }
                } }
                tbody {
                    @for entry in page.entries {
                        tr {
                            td { (entry.id) }
                            td { (format_time(entry.at)) }
                            td { (who(&entry.actor)) }
                            td { code { (entry.action.as_str()) } }
                            td { (entry.target.map(|id| who(&Actor::Account(id))).unwrap_or_default()) }
                            td { (entry.detail.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
        }
        @if let Some(older) = &page.older {
            p { a href={ "/admin/audit?" (older) } { (t.audit_older) } }
        }
    };
    layout(
        lang,
        t.audit_title,
        Some(viewer),
        None,
        "/admin/audit",
        content,
    )
}

fn sorted(names: &std::collections::HashMap<i64, String>) -> Vec<(i64, &String)> {
    let mut all: Vec<(i64, &String)> = names.iter().map(|(id, n)| (*id, n)).collect();
    all.sort_by(|a, b| a.1.cmp(b.1));
    all
}

/// The page that sends a browser on to `path` by itself (and by a link, for a browser that does
/// not follow `refresh`).
pub fn continue_to(lang: Lang, path: &str) -> Markup {
    let t = lang.text();
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head {
                meta charset="utf-8";
                meta http-equiv="refresh" content={ "0;url=" (path) };
                title { (t.signed_in) " – " (t.portal_name) }
                link rel="stylesheet" href="/static/portal.css";
            }
            body {
                main #main {
                    h1 { (t.signed_in) }
                    p { a href=(path) { (t.continue_link) } }
                }
            }
        }
    }
}

/// A page that only says something (not found, not allowed, unavailable).
pub fn message(lang: Lang, viewer: Option<&Viewer>, title: &str, notice: Notice) -> Markup {
    layout(lang, title, viewer, Some(notice), "/", html! {})
}

/// The style sheet (served as a file: the CSP allows styles from the portal only).
pub const CSS: &str = include_str!("portal.css");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn teletans_are_read_in_groups() {
        assert_eq!(group("ABCDEFGHJK", 3), "ABC DEF GHJ K");
        assert_eq!(group("ABCD", 4), "ABCD");
    }

    #[test]
    fn values_are_escaped() {
        let viewer = Viewer {
            display_name: "<script>x</script>".into(),
            role: Role::Officer,
            csrf: "\"><b>".into(),
        };
        let page = issue(Lang::En, &viewer, None).into_string();
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("&lt;script&gt;"), "{page}");
        assert!(!page.contains("\"><b>"), "{page}");
    }

    #[test]
    fn navigation_follows_the_role() {
        let mut viewer = Viewer {
            display_name: "x".into(),
            role: Role::Officer,
            csrf: "c".into(),
        };
        let page = issue(Lang::En, &viewer, None).into_string();
        assert!(page.contains("href=\"/issue\""));
        assert!(!page.contains("/admin/accounts"));
        viewer.role = Role::Admin;
        let page = message(Lang::De, Some(&viewer), "x", Notice::Info("y")).into_string();
        assert!(page.contains("/admin/accounts") && page.contains("Prüfprotokoll"));
        assert!(!page.contains("href=\"/issue\""));
        assert!(page.contains("lang=\"de\""));
    }
}
