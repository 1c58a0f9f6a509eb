//! The checks of an ID token's claims (OpenID Connect Core 1.0, 3.1.3.7) and the roles in it.

use crate::{Identity, OidcError};
use serde::Deserialize;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use subtle::ConstantTimeEq;

/// How far the provider's clock may be from ours for `exp`, `nbf` and `iat`.
pub const CLOCK_LEEWAY: Duration = Duration::from_secs(60);

/// `aud`: one string or an array of strings.
#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

/// The claims every ID token has, with their types enforced: an `exp` that is a string, not a
/// number, makes the token malformed instead of "without expiry".
#[derive(Deserialize)]
struct Required {
    iss: String,
    sub: String,
    aud: Audience,
    exp: f64,
    iat: f64,
    #[serde(default)]
    nbf: Option<f64>,
    #[serde(default)]
    nonce: Option<String>,
    #[serde(default)]
    azp: Option<String>,
    #[serde(default)]
    preferred_username: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

/// What a verified ID token must be for this login.
pub(crate) struct Expected<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub nonce: &'a str,
    pub roles_claim: &'a str,
    pub now: SystemTime,
}

pub(crate) fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Checks the (signature-verified) payload and makes the identity from it.
pub(crate) fn validate(payload: &[u8], expected: &Expected<'_>) -> Result<Identity, OidcError> {
    let claims: serde_json::Value =
        serde_json::from_slice(payload).map_err(|_| OidcError::MalformedToken("claims"))?;
    let required: Required =
        serde_json::from_value(claims.clone()).map_err(|_| OidcError::MalformedToken("claims"))?;

    if required.iss != expected.issuer {
        return Err(OidcError::WrongIssuer);
    }
    let audiences = match &required.aud {
        Audience::One(aud) => std::slice::from_ref(aud),
        Audience::Many(auds) => auds.as_slice(),
    };
    if !audiences.iter().any(|a| a == expected.client_id) {
        return Err(OidcError::WrongAudience);
    }
    match &required.azp {
        Some(azp) if azp != expected.client_id => return Err(OidcError::WrongAudience),
        None if audiences.len() > 1 => return Err(OidcError::WrongAudience),
        _ => {}
    }

    let now = expected
        .now
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let leeway = CLOCK_LEEWAY.as_secs_f64();
    if now >= required.exp + leeway {
        return Err(OidcError::Expired);
    }
    if required.nbf.is_some_and(|nbf| nbf > now + leeway) || required.iat > now + leeway {
        return Err(OidcError::NotYetValid);
    }

    match &required.nonce {
        Some(nonce) if !expected.nonce.is_empty() && constant_time_eq(nonce, expected.nonce) => {}
        _ => return Err(OidcError::NonceMismatch),
    }
    if required.sub.is_empty() {
        return Err(OidcError::MalformedToken("sub"));
    }

    Ok(Identity {
        roles: roles(&claims, expected.roles_claim),
        subject: required.sub,
        issuer: required.iss,
        name: required.preferred_username.or(required.name),
    })
}

/// The roles at `path` in the claims: a top-level claim of that exact name (namespaced claims
/// such as `https://example.org/roles` contain dots), else the dot path through nested objects
/// (`realm_access.roles`, Keycloak's realm roles; `resource_access.portal.roles`, its client
/// roles). An array gives its strings (other elements are skipped), a string its
/// whitespace-separated words; anything else, or nothing there, gives no roles.
pub fn roles(claims: &serde_json::Value, path: &str) -> Vec<String> {
    if path.is_empty() {
        return Vec::new();
    }
    let value = claims.get(path).or_else(|| {
        path.split('.')
            .try_fold(claims, |value, key| value.as_object()?.get(key))
    });
    match value {
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .filter_map(|item| item.as_str())
            .map(str::to_owned)
            .collect(),
        Some(serde_json::Value::String(words)) => {
            words.split_whitespace().map(str::to_owned).collect()
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: u64 = 1_700_000_000;

    fn expected(now: u64) -> Expected<'static> {
        Expected {
            issuer: "https://id.example.org/realms/openwarn",
            client_id: "portal",
            nonce: "n-0S6_WzA2Mj",
            roles_claim: "realm_access.roles",
            now: UNIX_EPOCH + Duration::from_secs(now),
        }
    }

    fn claims() -> serde_json::Value {
        json!({
            "iss": "https://id.example.org/realms/openwarn",
            "sub": "248289761001",
            "aud": "portal",
            "exp": NOW + 300,
            "iat": NOW,
            "nonce": "n-0S6_WzA2Mj",
            "preferred_username": "officer1",
            "name": "Officer One",
            "realm_access": { "roles": ["officer", "default-roles"] },
        })
    }

    fn check(claims: serde_json::Value, now: u64) -> Result<Identity, OidcError> {
        validate(claims.to_string().as_bytes(), &expected(now))
    }

    fn with(
        mut claims: serde_json::Value,
        key: &str,
        value: serde_json::Value,
    ) -> serde_json::Value {
        claims[key] = value;
        claims
    }

    fn without(mut claims: serde_json::Value, key: &str) -> serde_json::Value {
        claims.as_object_mut().unwrap().remove(key);
        claims
    }

    #[test]
    fn a_valid_token_gives_the_identity() {
        let identity = check(claims(), NOW).unwrap();
        assert_eq!(
            identity,
            Identity {
                subject: "248289761001".into(),
                issuer: "https://id.example.org/realms/openwarn".into(),
                name: Some("officer1".into()),
                roles: vec!["officer".into(), "default-roles".into()],
            }
        );
        let identity = check(without(claims(), "preferred_username"), NOW).unwrap();
        assert_eq!(identity.name.as_deref(), Some("Officer One"));
    }

    #[test]
    fn expiry_is_checked_with_the_leeway() {
        let exp = NOW + 300;
        check(claims(), exp + 59).unwrap();
        assert_eq!(check(claims(), exp + 60), Err(OidcError::Expired));
        assert_eq!(check(claims(), exp + 7200), Err(OidcError::Expired));
    }

    #[test]
    fn tokens_not_yet_valid_are_refused() {
        let nbf = with(
            with(claims(), "nbf", json!(NOW + 600)),
            "exp",
            json!(NOW + 3600),
        );
        assert_eq!(check(nbf.clone(), NOW), Err(OidcError::NotYetValid));
        check(nbf, NOW + 600 - 60).unwrap();
        let future_iat = with(claims(), "iat", json!(NOW + 120));
        assert_eq!(check(future_iat, NOW), Err(OidcError::NotYetValid));
        check(with(claims(), "iat", json!(NOW + 30)), NOW).unwrap();
    }

    #[test]
    fn claims_of_the_wrong_type_make_the_token_malformed() {
        // jsonwebtoken < 10.3 skipped a check whose claim did not parse (CVE-2026-25537).
        for (key, value) in [
            ("exp", json!("99999999999")),
            ("nbf", json!("99999999999")),
            ("iat", json!(null)),
            ("aud", json!(7)),
            ("nonce", json!(["n-0S6_WzA2Mj"])),
        ] {
            assert_eq!(
                check(with(claims(), key, value), NOW),
                Err(OidcError::MalformedToken("claims")),
                "{key}"
            );
        }
        for key in ["iss", "sub", "aud", "exp", "iat"] {
            assert_eq!(
                check(without(claims(), key), NOW),
                Err(OidcError::MalformedToken("claims")),
                "{key}"
            );
        }
        assert_eq!(
            check(with(claims(), "sub", json!("")), NOW),
            Err(OidcError::MalformedToken("sub"))
        );
        assert_eq!(
            validate(b"not json", &expected(NOW)),
            Err(OidcError::MalformedToken("claims"))
        );
    }

    #[test]
    fn the_issuer_must_match_exactly() {
        for iss in [
            "https://evil.example.org/realms/openwarn",
            "https://id.example.org/realms/openwarn/",
            "https://ID.example.org/realms/openwarn",
        ] {
            assert_eq!(
                check(with(claims(), "iss", json!(iss)), NOW),
                Err(OidcError::WrongIssuer),
                "{iss}"
            );
        }
    }

    #[test]
    fn the_audience_must_be_us_and_azp_with_several() {
        assert_eq!(
            check(with(claims(), "aud", json!("another-client")), NOW),
            Err(OidcError::WrongAudience)
        );
        assert_eq!(
            check(with(claims(), "aud", json!(["another-client"])), NOW),
            Err(OidcError::WrongAudience)
        );
        check(with(claims(), "aud", json!(["portal"])), NOW).unwrap();
        let several = with(claims(), "aud", json!(["portal", "account"]));
        assert_eq!(check(several.clone(), NOW), Err(OidcError::WrongAudience));
        check(with(several.clone(), "azp", json!("portal")), NOW).unwrap();
        assert_eq!(
            check(with(several, "azp", json!("account")), NOW),
            Err(OidcError::WrongAudience)
        );
        assert_eq!(
            check(with(claims(), "azp", json!("another-client")), NOW),
            Err(OidcError::WrongAudience)
        );
    }

    #[test]
    fn the_nonce_must_be_the_one_of_this_login() {
        assert_eq!(
            check(with(claims(), "nonce", json!("n-0S6_WzA2Mk")), NOW),
            Err(OidcError::NonceMismatch)
        );
        assert_eq!(
            check(without(claims(), "nonce"), NOW),
            Err(OidcError::NonceMismatch)
        );
        assert_eq!(
            check(with(claims(), "nonce", json!("")), NOW),
            Err(OidcError::NonceMismatch)
        );
    }

    #[test]
    fn roles_come_from_a_dot_path_an_array_or_a_string() {
        let claims = json!({
            "roles": ["officer", 7, "admin"],
            "scope_roles": "officer  admin\tlab",
            "realm_access": { "roles": ["officer"] },
            "resource_access": { "portal": { "roles": ["admin"] } },
            "https://openwarn.example/roles": ["namespaced"],
            "nested": { "not_roles": { "a": 1 } },
        });
        assert_eq!(roles(&claims, "roles"), ["officer", "admin"]);
        assert_eq!(roles(&claims, "scope_roles"), ["officer", "admin", "lab"]);
        assert_eq!(roles(&claims, "realm_access.roles"), ["officer"]);
        assert_eq!(roles(&claims, "resource_access.portal.roles"), ["admin"]);
        assert_eq!(
            roles(&claims, "https://openwarn.example/roles"),
            ["namespaced"]
        );
        assert!(roles(&claims, "nested.not_roles").is_empty());
        assert!(roles(&claims, "realm_access.missing").is_empty());
        assert!(roles(&claims, "roles.deeper").is_empty());
        assert!(roles(&claims, "missing").is_empty());
        assert!(roles(&claims, "").is_empty());
    }

    #[test]
    fn constant_time_eq_compares_whole_strings() {
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "abcd"));
        assert!(!constant_time_eq("", "a"));
    }
}
