//! The portal's words, in English and German. Every text a page shows comes from here; the
//! language is the officer's choice (`?lang=`, kept in a cookie) or else the browser's
//! `Accept-Language`.

/// A language of the portal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    De,
}

impl Lang {
    pub const ALL: [Lang; 2] = [Lang::En, Lang::De];

    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::De => "de",
        }
    }

    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.code() == code)
    }

    /// The first supported language of an `Accept-Language` header, by quality; English when
    /// none is supported.
    pub fn from_accept_language(header: &str) -> Self {
        let mut best: Option<(f32, Lang)> = None;
        for part in header.split(',') {
            let mut pieces = part.trim().split(';');
            let tag = pieces.next().unwrap_or("").trim().to_ascii_lowercase();
            let quality = pieces
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            let primary = tag.split('-').next().unwrap_or("");
            if let Some(lang) = Lang::parse(primary)
                && quality > 0.0
                && best.is_none_or(|(q, _)| quality > q)
            {
                best = Some((quality, lang));
            }
        }
        best.map_or(Lang::En, |(_, lang)| lang)
    }

    pub fn text(self) -> &'static Text {
        match self {
            Lang::En => &EN,
            Lang::De => &DE,
        }
    }

    /// The language's own name, for the switcher.
    pub fn name(self) -> &'static str {
        match self {
            Lang::En => "English",
            Lang::De => "Deutsch",
        }
    }
}

macro_rules! texts {
    ($($field:ident: $en:expr, $de:expr;)*) => {
        /// Every text of the portal in one language.
        #[derive(Debug)]
        pub struct Text {
            $(pub $field: &'static str,)*
        }
        pub static EN: Text = Text { $($field: $en,)* };
        pub static DE: Text = Text { $($field: $de,)* };
        /// Every text: its name, English, German.
        #[cfg(test)]
        pub(crate) const ALL_TEXTS: &[(&str, &str, &str)] = &[$((stringify!($field), $en, $de),)*];
    };
}

texts! {
    portal_name: "OpenWarn portal", "OpenWarn-Portal";
    skip_to_content: "Skip to content", "Zum Inhalt springen";
    language: "Language", "Sprache";
    nav_issue: "Issue teleTAN", "teleTAN ausgeben";
    nav_accounts: "Accounts", "Konten";
    nav_audit: "Audit log", "Prüfprotokoll";
    signed_in_as: "Signed in as", "Angemeldet als";
    sign_out: "Sign out", "Abmelden";
    sign_in: "Sign in", "Anmelden";
    signed_in: "Signed in", "Angemeldet";
    continue_link: "Continue", "Weiter";
    sign_in_intro: "Public health officers sign in with their account and the one-time code from their authenticator app.", "Mitarbeitende des Gesundheitsamts melden sich mit ihrem Konto und dem Einmalcode ihrer Authenticator-App an.";
    sign_in_oidc: "Sign in with the health authority's account", "Mit dem Konto der Gesundheitsbehörde anmelden";
    username: "Username", "Benutzername";
    password: "Password", "Passwort";
    password_repeat: "Repeat the password", "Passwort wiederholen";
    password_hint: "At least 12 characters.", "Mindestens 12 Zeichen.";
    one_time_code: "One-time code", "Einmalcode";
    one_time_code_hint: "6 digits from your authenticator app.", "6 Ziffern aus Ihrer Authenticator-App.";
    sign_in_failed: "Sign-in failed. Check your username, password and one-time code. After 5 failed attempts an account is locked for 15 minutes.", "Anmeldung fehlgeschlagen. Prüfen Sie Benutzername, Passwort und Einmalcode. Nach 5 Fehlversuchen wird ein Konto für 15 Minuten gesperrt.";
    session_ended: "Your session has ended. Please sign in again.", "Ihre Sitzung ist beendet. Bitte melden Sie sich erneut an.";
    signed_out: "You are signed out.", "Sie sind abgemeldet.";
    form_expired: "This form has expired or was not sent by this portal. Please try again.", "Dieses Formular ist abgelaufen oder stammt nicht von diesem Portal. Bitte versuchen Sie es erneut.";
    not_allowed: "Your role does not allow this page.", "Ihre Rolle erlaubt diese Seite nicht.";
    not_found: "This page does not exist.", "Diese Seite gibt es nicht.";
    unavailable: "The portal cannot reach a service it needs. Nothing was changed; please try again in a few minutes.", "Das Portal erreicht einen benötigten Dienst nicht. Es wurde nichts geändert; bitte versuchen Sie es in einigen Minuten erneut.";
    oidc_failed: "Sign-in with the identity provider failed. Please try again.", "Die Anmeldung beim Identitätsanbieter ist fehlgeschlagen. Bitte versuchen Sie es erneut.";
    oidc_no_role: "Your account at the identity provider has no role in this portal. Ask your administrator.", "Ihr Konto beim Identitätsanbieter hat keine Rolle in diesem Portal. Wenden Sie sich an Ihre Administration.";
    issue_title: "Issue a teleTAN", "teleTAN ausgeben";
    issue_intro: "Issue a teleTAN only to a person whose positive test result you have confirmed. Read it out to them; they enter it in the app. It is shown once and never stored here.", "Geben Sie eine teleTAN nur an eine Person aus, deren positives Testergebnis Sie bestätigt haben. Lesen Sie sie vor; die Person gibt sie in der App ein. Sie wird nur einmal angezeigt und hier nicht gespeichert.";
    issue_button: "Issue teleTAN", "teleTAN ausgeben";
    issued_title: "teleTAN issued", "teleTAN ausgegeben";
    issued_valid_until: "Valid until", "Gültig bis";
    issued_read_out: "Read it out in groups. It cannot be shown again; if it is lost, issue a new one.", "Lesen Sie sie in Gruppen vor. Sie kann nicht erneut angezeigt werden; geht sie verloren, geben Sie eine neue aus.";
    issue_another: "Issue another teleTAN", "Weitere teleTAN ausgeben";
    limit_officer: "You have issued the most teleTANs one officer may issue in an hour (20). You can issue more next hour. This limit protects against misuse of a single account.", "Sie haben die Höchstzahl an teleTANs ausgegeben, die eine Person pro Stunde ausgeben darf (20). In der nächsten Stunde können Sie weitere ausgeben. Diese Grenze schützt vor dem Missbrauch eines einzelnen Kontos.";
    limit_global: "The system has issued the most teleTANs allowed in this hour for all officers together. Please try again next hour; if this happens often, tell your administrator.", "Das System hat in dieser Stunde die Höchstzahl an teleTANs für alle Mitarbeitenden zusammen ausgegeben. Bitte versuchen Sie es in der nächsten Stunde erneut; passiert das häufig, informieren Sie Ihre Administration.";
    accounts_title: "Accounts", "Konten";
    create_account: "Create an account", "Konto anlegen";
    display_name: "Full name", "Vollständiger Name";
    role: "Role", "Rolle";
    role_officer: "Officer (issues teleTANs)", "Sachbearbeitung (gibt teleTANs aus)";
    role_admin: "Administrator (accounts, audit log)", "Administration (Konten, Prüfprotokoll)";
    create_button: "Create account", "Konto anlegen";
    status: "Status", "Status";
    status_active: "Active", "Aktiv";
    status_enrolling: "Waiting for enrolment", "Wartet auf Einrichtung";
    status_disabled: "Disabled", "Deaktiviert";
    status_locked: "Locked after failed sign-ins", "Nach Fehlversuchen gesperrt";
    actions: "Actions", "Aktionen";
    disable: "Disable", "Deaktivieren";
    enable: "Enable", "Aktivieren";
    re_enrol: "Reset password and second factor", "Passwort und zweiten Faktor zurücksetzen";
    make_officer: "Make officer", "Zur Sachbearbeitung machen";
    make_admin: "Make administrator", "Zur Administration machen";
    enrolment_link_for: "One-time enrolment link for", "Einmaliger Einrichtungslink für";
    enrolment_link_hint: "Give this link to the person over a trusted channel. It works once and expires in 72 hours.", "Geben Sie diesen Link über einen vertrauenswürdigen Weg weiter. Er funktioniert einmal und läuft nach 72 Stunden ab.";
    username_taken: "This username is taken.", "Dieser Benutzername ist vergeben.";
    username_invalid: "Usernames have 3 to 64 characters: letters, digits, dot, dash, underscore.", "Benutzernamen haben 3 bis 64 Zeichen: Buchstaben, Ziffern, Punkt, Bindestrich, Unterstrich.";
    display_name_invalid: "Give a name of 1 to 128 characters.", "Geben Sie einen Namen mit 1 bis 128 Zeichen an.";
    not_yourself: "You cannot do this to your own account.", "Das können Sie nicht mit Ihrem eigenen Konto tun.";
    done: "Done.", "Erledigt.";
    enrol_title: "Set up your account", "Konto einrichten";
    enrol_intro: "Choose a password, then add this portal to an authenticator app (scan the QR code or type the key) and enter the code it shows.", "Wählen Sie ein Passwort, fügen Sie dieses Portal dann einer Authenticator-App hinzu (QR-Code scannen oder Schlüssel eingeben) und geben Sie den angezeigten Code ein.";
    enrol_key: "Key for manual entry", "Schlüssel zur manuellen Eingabe";
    enrol_qr: "QR code for your authenticator app", "QR-Code für Ihre Authenticator-App";
    enrol_button: "Finish setting up", "Einrichtung abschließen";
    enrol_invalid: "This enrolment link is invalid, used or expired. Ask an administrator for a new one.", "Dieser Einrichtungslink ist ungültig, benutzt oder abgelaufen. Bitten Sie die Administration um einen neuen.";
    enrol_wrong_code: "The one-time code does not match. Check that the app's clock is right and enter the current code.", "Der Einmalcode passt nicht. Prüfen Sie, ob die Uhr stimmt, und geben Sie den aktuellen Code ein.";
    enrolled: "Your account is ready. Sign in with your password and a one-time code.", "Ihr Konto ist eingerichtet. Melden Sie sich mit Passwort und Einmalcode an.";
    password_mismatch: "The two passwords differ.", "Die beiden Passwörter unterscheiden sich.";
    password_too_short: "The password is too short: at least 12 characters.", "Das Passwort ist zu kurz: mindestens 12 Zeichen.";
    password_too_long: "The password is too long: at most 256 characters.", "Das Passwort ist zu lang: höchstens 256 Zeichen.";
    audit_title: "Audit log", "Prüfprotokoll";
    audit_intro: "Every sign-in, teleTAN issued or refused, and change to an account. Entries are chained by hash: an edited or deleted entry is detected.", "Jede Anmeldung, jede ausgegebene oder verweigerte teleTAN und jede Kontoänderung. Die Einträge sind per Hash verkettet: ein geänderter oder gelöschter Eintrag wird erkannt.";
    audit_when: "When", "Wann";
    audit_who: "Who", "Wer";
    audit_what: "What", "Was";
    audit_target: "Account acted on", "Betroffenes Konto";
    audit_detail: "Detail", "Detail";
    audit_filter: "Filter", "Filtern";
    audit_all: "All", "Alle";
    audit_from: "From (date)", "Von (Datum)";
    audit_to: "To (date)", "Bis (Datum)";
    audit_export: "Export as JSON lines", "Als JSON Lines exportieren";
    audit_older: "Older entries", "Ältere Einträge";
    audit_none: "No entries.", "Keine Einträge.";
    audit_unknown: "unknown", "unbekannt";
    audit_system: "system", "System";
    bad_request: "The request could not be understood.", "Die Anfrage war nicht verständlich.";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_picks_the_best_supported_language() {
        assert_eq!(
            Lang::from_accept_language("de-DE,de;q=0.9,en;q=0.8"),
            Lang::De
        );
        assert_eq!(
            Lang::from_accept_language("fr-FR, en;q=0.5, de;q=0.7"),
            Lang::De
        );
        assert_eq!(Lang::from_accept_language("fr"), Lang::En);
        assert_eq!(Lang::from_accept_language("de;q=0"), Lang::En);
        assert_eq!(Lang::from_accept_language(""), Lang::En);
        assert_eq!(Lang::from_accept_language("EN-gb"), Lang::En);
    }

    #[test]
    fn every_text_is_translated() {
        // The same words in both languages only where German uses the same word (Status,
        // Detail).
        let same: Vec<&str> = ALL_TEXTS
            .iter()
            .filter(|(_, en, de)| en == de || en.is_empty() || de.is_empty())
            .map(|(name, _, _)| *name)
            .collect();
        assert_eq!(same, ["status", "audit_detail"], "untranslated");
    }
}
