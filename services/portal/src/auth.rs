//! Credentials of local accounts: argon2id password hashes, TOTP second factors (RFC 6238:
//! HMAC-SHA-1, 6 digits, 30-second steps, one step of clock skew either way, each step accepted
//! once), and the random tokens behind sessions, CSRF fields and enrolment links.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use sha2::{Digest, Sha256};
use std::sync::LazyLock;
use totp_rs::{Secret, Totp};

/// Passwords shorter than this are refused at enrolment (NIST SP 800-63B: at least 8; officers'
/// accounts guard a health system, so 12).
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longer passwords are refused: argon2 would hash them, but there is no reason to accept a
/// megabyte as a password.
pub const MAX_PASSWORD_CHARS: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("password hashing failed")]
    Hash,
    #[error("the stored second factor is unusable")]
    Totp,
}

/// An argon2id hash (PHC string) of `password`, with a fresh random salt. Slow on purpose
/// (argon2's default cost: 19 MiB, 2 passes): run it off the async workers.
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|_| AuthError::Hash)
}

/// Whether `password` matches `hash`. A hash that cannot be parsed matches nothing.
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// A hash no password matches, checked when the account named does not exist, so that an
/// unknown name costs as much time as a wrong password (timing must not tell which).
static DUMMY_HASH: LazyLock<Option<String>> = LazyLock::new(|| hash_password(&random_token()).ok());

/// Spends the time of one password check without an account.
pub fn verify_nothing(password: &str) {
    if let Some(hash) = DUMMY_HASH.as_deref() {
        let _ = verify_password(password, hash);
    }
}

/// Why a password cannot be used, as a message key of the page.
pub fn password_problem(password: &str, repeated: &str) -> Option<&'static str> {
    let chars = password.chars().count();
    if password != repeated {
        Some("password_mismatch")
    } else if chars < MIN_PASSWORD_CHARS {
        Some("password_too_short")
    } else if chars > MAX_PASSWORD_CHARS {
        Some("password_too_long")
    } else {
        None
    }
}

/// A new TOTP secret (160 random bits, as RFC 4226 recommends), Base32 as authenticator apps
/// show it.
pub fn new_totp_secret() -> String {
    Secret::from(rand::random::<[u8; 20]>().to_vec()).to_base32()
}

fn totp(secret_base32: &str, account: &str, issuer: &str) -> Result<Totp, AuthError> {
    let secret = Secret::try_from_base32(secret_base32).map_err(|_| AuthError::Totp)?;
    totp_rs::Builder::new()
        .with_secret(secret)
        .with_account_name(account.replace(':', "_"))
        .with_issuer(Some(issuer.replace(':', "_")))
        .build()
        .map_err(|_| AuthError::Totp)
}

/// The TOTP step (`unix time / 30`) `code` is valid for at `now`, if any (the previous, current
/// or next step). Callers refuse a step not after the last one used.
pub fn check_totp(secret_base32: &str, code: &str, now: i64) -> Result<Option<i64>, AuthError> {
    let totp = totp(secret_base32, "account", "OpenWarn")?;
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    let now = u64::try_from(now).unwrap_or(0);
    Ok(totp
        .check(&code, now)
        .and_then(|step| i64::try_from(step).ok()))
}

/// The `otpauth://` URI an authenticator app reads from the enrolment QR code.
pub fn otpauth_url(secret_base32: &str, account: &str, issuer: &str) -> Result<String, AuthError> {
    totp(secret_base32, account, issuer)?
        .to_url()
        .map_err(|_| AuthError::Totp)
}

/// `data` as a QR code in SVG (inline in the page: no script, no image request).
pub fn qr_svg(data: &str) -> Result<String, AuthError> {
    let code = qrcode::QrCode::new(data.as_bytes()).map_err(|_| AuthError::Totp)?;
    Ok(code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(220, 220)
        .quiet_zone(true)
        .build())
}

/// 256 random bits, hex: session ids, CSRF tokens, enrolment links.
pub fn random_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// How a token is stored: its SHA-256, hex. A copy of the table does not let anyone in.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Constant-time comparison of two tokens.
pub fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("correct horse batterz", &hash));
        assert!(!verify_password("correct horse battery", "not a hash"));
        assert_ne!(
            hash,
            hash_password("correct horse battery").unwrap(),
            "salted"
        );
    }

    #[test]
    fn password_rules() {
        assert_eq!(password_problem("a", "b"), Some("password_mismatch"));
        assert_eq!(
            password_problem("short pw", "short pw"),
            Some("password_too_short")
        );
        let long = "x".repeat(MAX_PASSWORD_CHARS + 1);
        assert_eq!(password_problem(&long, &long), Some("password_too_long"));
        assert_eq!(password_problem("twelve chars", "twelve chars"), None);
    }

    /// RFC 6238 appendix B (SHA-1 rows; the RFC's codes have 8 digits, ours the last 6).
    #[test]
    fn totp_matches_rfc_6238_test_vectors() {
        let secret = Secret::from(b"12345678901234567890".to_vec()).to_base32();
        for (time, code) in [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_111_111_111, "050471"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
        ] {
            assert_eq!(
                check_totp(&secret, code, time).unwrap(),
                Some(time / 30),
                "{time}"
            );
        }
    }

    #[test]
    fn totp_accepts_one_step_of_skew_and_no_more() {
        let secret = new_totp_secret();
        let t = totp(&secret, "a", "b").unwrap();
        let now = 1_800_000_000_i64;
        let code = t.generate(u64::try_from(now).unwrap()).to_string();
        assert_eq!(check_totp(&secret, &code, now).unwrap(), Some(now / 30));
        assert_eq!(
            check_totp(&secret, &code, now + 30).unwrap(),
            Some(now / 30)
        );
        assert_eq!(
            check_totp(&secret, &code, now - 30).unwrap(),
            Some(now / 30)
        );
        assert_eq!(check_totp(&secret, &code, now + 90).unwrap(), None);
        assert_eq!(check_totp(&secret, "12345", now).unwrap(), None);
        assert_eq!(check_totp(&secret, "abcdef", now).unwrap(), None);
    }

    #[test]
    fn enrolment_qr_carries_the_otpauth_uri() {
        let secret = new_totp_secret();
        let url = otpauth_url(&secret, "alice", "OpenWarn portal").unwrap();
        assert!(url.starts_with("otpauth://totp/"), "{url}");
        assert!(url.contains(&format!("secret={secret}")), "{url}");
        let svg = qr_svg(&url).unwrap();
        assert!(svg.contains("<svg"), "{svg}");
    }

    #[test]
    fn tokens_are_random_and_stored_hashed() {
        let (a, b) = (random_token(), random_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert_eq!(token_hash(&a).len(), 64);
        assert_ne!(token_hash(&a), a);
        assert!(same_token(&a, &a.clone()));
        assert!(!same_token(&a, &b));
        assert!(!same_token(&a, &a[1..]));
    }
}
