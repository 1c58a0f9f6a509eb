//! Why a login or a discovery failed.

/// Why discovery, a login or an ID token failed.
///
/// Each variant has a short machine-usable [`reason`](OidcError::reason) (`state_mismatch`,
/// `expired`, ...), which is also the start of its `Display`. No message ever contains a token, an
/// authorization code, a PKCE verifier, a nonce, a state or the client secret: what follows the
/// reason is only a status code, an OAuth error code, an algorithm name or a field name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OidcError {
    /// The [`OidcSettings`](crate::OidcSettings) are unusable (an issuer that is neither `https`
    /// nor loopback `http`, an empty client id, a redirect URI that is not a URL).
    #[error("invalid_settings: {0}")]
    InvalidSettings(&'static str),
    /// The provider could not be reached, timed out, or answered discovery or the JWKS with an
    /// error status.
    #[error("provider_unavailable: {0}")]
    ProviderUnavailable(String),
    /// The discovery document or the JWKS is not what the specifications require (a missing
    /// field, an endpoint that is not `https`, no `S256` PKCE, no client authentication we can
    /// do).
    #[error("invalid_provider_metadata: {0}")]
    InvalidProviderMetadata(String),
    /// The `state` that came back with the browser is not the one of this login: a forged or
    /// crossed callback. The token endpoint was not called.
    #[error("state_mismatch")]
    StateMismatch,
    /// The token endpoint refused the code (`error` is the provider's OAuth error code, e.g.
    /// `invalid_grant` for a code used twice or expired) or answered with something unreadable.
    #[error("token_exchange_failed: {}", token_failure(*.status, .error.as_deref()))]
    TokenExchangeFailed {
        /// The HTTP status of the token endpoint's answer, if there was one.
        status: Option<u16>,
        /// The OAuth `error` code of the answer, if it had one.
        error: Option<String>,
    },
    /// The token endpoint's answer had no `id_token` (the `openid` scope was not granted).
    #[error("missing_id_token")]
    MissingIdToken,
    /// The ID token is not a well-formed signed JWT (compact JWS), or a claim has the wrong type.
    #[error("malformed_token: {0}")]
    MalformedToken(&'static str),
    /// The token's `alg` is not one we accept (`none`, any `HS*`, or unknown). The algorithm name
    /// is reduced to at most 16 ASCII letters and digits.
    #[error("unsupported_algorithm: {0}")]
    UnsupportedAlgorithm(String),
    /// No key of the provider's JWKS (fetched again once) has the token's `kid`.
    #[error("unknown_key")]
    UnknownKey,
    /// The signature does not verify with the provider's key, or the key named by `kid` is not
    /// one for the token's algorithm.
    #[error("invalid_signature")]
    InvalidSignature,
    /// The discovery document or the ID token names another issuer than the configured one.
    #[error("wrong_issuer")]
    WrongIssuer,
    /// The ID token's `aud` does not contain our client id, or `azp` is not our client id (or is
    /// missing while there are several audiences).
    #[error("wrong_audience")]
    WrongAudience,
    /// The ID token's `exp` has passed (beyond the leeway).
    #[error("expired")]
    Expired,
    /// The ID token's `nbf` or `iat` is in the future (beyond the leeway).
    #[error("not_yet_valid")]
    NotYetValid,
    /// The ID token's `nonce` is missing or not the one of this login: a replayed token.
    #[error("nonce_mismatch")]
    NonceMismatch,
}

fn token_failure(status: Option<u16>, error: Option<&str>) -> String {
    match (status, error) {
        (Some(status), Some(error)) => format!("HTTP {status} {error}"),
        (Some(status), None) => format!("HTTP {status}"),
        (None, Some(error)) => error.to_owned(),
        (None, None) => "no answer".to_owned(),
    }
}

impl OidcError {
    /// The short machine-usable reason, e.g. for a metric label or the portal's error page.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::InvalidSettings(_) => "invalid_settings",
            Self::ProviderUnavailable(_) => "provider_unavailable",
            Self::InvalidProviderMetadata(_) => "invalid_provider_metadata",
            Self::StateMismatch => "state_mismatch",
            Self::TokenExchangeFailed { .. } => "token_exchange_failed",
            Self::MissingIdToken => "missing_id_token",
            Self::MalformedToken(_) => "malformed_token",
            Self::UnsupportedAlgorithm(_) => "unsupported_algorithm",
            Self::UnknownKey => "unknown_key",
            Self::InvalidSignature => "invalid_signature",
            Self::WrongIssuer => "wrong_issuer",
            Self::WrongAudience => "wrong_audience",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::NonceMismatch => "nonce_mismatch",
        }
    }

    /// Whether the provider (or the way to it) failed, rather than the login: the portal answers
    /// 503 for these and 400/401 for the others.
    pub fn is_provider_failure(&self) -> bool {
        matches!(
            self,
            Self::ProviderUnavailable(_) | Self::InvalidProviderMetadata(_)
        )
    }
}

/// An OAuth error code or algorithm name from a remote party, reduced to what is safe to log.
pub(crate) fn sanitize(s: &str, allow: fn(char) -> bool) -> String {
    s.chars().filter(|c| allow(*c)).take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_starts_with_the_reason() {
        let errors = [
            OidcError::InvalidSettings("x"),
            OidcError::ProviderUnavailable("x".into()),
            OidcError::InvalidProviderMetadata("x".into()),
            OidcError::StateMismatch,
            OidcError::TokenExchangeFailed {
                status: Some(400),
                error: Some("invalid_grant".into()),
            },
            OidcError::MissingIdToken,
            OidcError::MalformedToken("x"),
            OidcError::UnsupportedAlgorithm("none".into()),
            OidcError::UnknownKey,
            OidcError::InvalidSignature,
            OidcError::WrongIssuer,
            OidcError::WrongAudience,
            OidcError::Expired,
            OidcError::NotYetValid,
            OidcError::NonceMismatch,
        ];
        for e in errors {
            assert!(e.to_string().starts_with(e.reason()), "{e}");
        }
        assert_eq!(
            OidcError::TokenExchangeFailed {
                status: Some(400),
                error: Some("invalid_grant".into())
            }
            .to_string(),
            "token_exchange_failed: HTTP 400 invalid_grant"
        );
    }
}
