//! Signed JWTs (compact JWS, RFC 7515) and the provider's public keys (JWK, RFC 7517), verified
//! with ring.

use crate::OidcError;
use crate::error::sanitize;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use serde::Deserialize;

/// The signature algorithms an ID token may use. Never `none`; never `HS*` (an HMAC "verified"
/// with a public key is the classic forgery, and we do not use the client secret as a key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(clippy::upper_case_acronyms)]
pub(crate) enum Alg {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
}

impl Alg {
    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "RS256" => Self::RS256,
            "RS384" => Self::RS384,
            "RS512" => Self::RS512,
            "PS256" => Self::PS256,
            "PS384" => Self::PS384,
            "PS512" => Self::PS512,
            "ES256" => Self::ES256,
            "ES384" => Self::ES384,
            "EdDSA" => Self::EdDSA,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::RS384 => "RS384",
            Self::RS512 => "RS512",
            Self::PS256 => "PS256",
            Self::PS384 => "PS384",
            Self::PS512 => "PS512",
            Self::ES256 => "ES256",
            Self::ES384 => "ES384",
            Self::EdDSA => "EdDSA",
        }
    }

    /// The JWK `kty` (and for EC and OKP the `crv`) of a key for this algorithm.
    fn key_type(self) -> (&'static str, Option<&'static str>) {
        match self {
            Self::RS256 | Self::RS384 | Self::RS512 | Self::PS256 | Self::PS384 | Self::PS512 => {
                ("RSA", None)
            }
            Self::ES256 => ("EC", Some("P-256")),
            Self::ES384 => ("EC", Some("P-384")),
            Self::EdDSA => ("OKP", Some("Ed25519")),
        }
    }

    fn verification(self) -> &'static dyn VerificationAlgorithm {
        match self {
            // ring refuses RSA moduli under 2048 bits.
            Self::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            Self::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
            Self::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
            Self::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
            Self::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
            Self::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
            // JWS carries ECDSA signatures as r || s, ring's "fixed" encoding.
            Self::ES256 => &signature::ECDSA_P256_SHA256_FIXED,
            Self::ES384 => &signature::ECDSA_P384_SHA384_FIXED,
            Self::EdDSA => &signature::ED25519,
        }
    }
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    /// Extensions the token says we must understand: we understand none.
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

/// A compact JWS, split and decoded but not yet verified.
pub(crate) struct Jws<'a> {
    pub(crate) alg: Alg,
    pub(crate) kid: Option<String>,
    signing_input: &'a str,
    signature: Vec<u8>,
    payload: Vec<u8>,
}

fn b64(part: &str, what: &'static str) -> Result<Vec<u8>, OidcError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| OidcError::MalformedToken(what))
}

impl<'a> Jws<'a> {
    /// Splits `header.payload.signature`, decodes them and checks the header: an algorithm of the
    /// allow-list, no `crit`. Encrypted tokens (JWE, five parts) are refused as malformed.
    pub(crate) fn parse(raw: &'a str) -> Result<Self, OidcError> {
        let mut parts = raw.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(OidcError::MalformedToken("not a compact JWS"));
        };
        let header: Header = serde_json::from_slice(&b64(header, "header")?)
            .map_err(|_| OidcError::MalformedToken("header"))?;
        let alg = Alg::from_name(&header.alg).ok_or_else(|| {
            OidcError::UnsupportedAlgorithm(sanitize(&header.alg, |c| c.is_ascii_alphanumeric()))
        })?;
        if header.crit.is_some() {
            return Err(OidcError::MalformedToken("crit"));
        }
        Ok(Self {
            alg,
            kid: header.kid,
            signing_input: &raw[..raw.len() - signature.len() - 1],
            signature: b64(signature, "signature")?,
            payload: b64(payload, "payload")?,
        })
    }

    /// The payload, once [`verify`](Self::verify) has passed.
    pub(crate) fn verify(&self, key: &Jwk) -> Result<&[u8], OidcError> {
        key.verify(self.alg, self.signing_input.as_bytes(), &self.signature)?;
        Ok(&self.payload)
    }
}

/// One key of the provider's JWKS. Only the public parts are read.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Jwk {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default, rename = "use")]
    use_: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
}

/// The provider's signing keys: those of its JWKS that are for signatures (keys for encryption,
/// and entries that are not keys at all, are left out).
#[derive(Debug, Clone, Default)]
pub(crate) struct JwkSet {
    keys: Vec<Jwk>,
}

/// What the JWKS holds for a token's `kid` and algorithm.
pub(crate) enum Lookup<'a> {
    Key(&'a Jwk),
    /// No key has that `kid` (or, without a `kid`, not exactly one key fits): perhaps a rotation.
    Unknown,
    /// A key has that `kid` but is not for the token's algorithm.
    Mismatch,
}

impl JwkSet {
    pub(crate) fn parse(body: &[u8]) -> Result<Self, OidcError> {
        #[derive(Deserialize)]
        struct Raw {
            keys: Vec<serde_json::Value>,
        }
        let raw: Raw = serde_json::from_slice(body)
            .map_err(|e| OidcError::InvalidProviderMetadata(format!("JWKS: {e}")))?;
        let keys = raw
            .keys
            .into_iter()
            .filter_map(|key| serde_json::from_value::<Jwk>(key).ok())
            .filter(|key| key.use_.as_deref().is_none_or(|u| u == "sig"))
            .collect();
        Ok(Self { keys })
    }

    pub(crate) fn lookup(&self, kid: Option<&str>, alg: Alg) -> Lookup<'_> {
        match kid {
            Some(kid) => {
                let mut named = self.keys.iter().filter(|k| k.kid.as_deref() == Some(kid));
                let mut any = false;
                for key in named.by_ref() {
                    any = true;
                    if key.fits(alg) {
                        return Lookup::Key(key);
                    }
                }
                if any {
                    Lookup::Mismatch
                } else {
                    Lookup::Unknown
                }
            }
            None => {
                let mut fitting = self.keys.iter().filter(|k| k.fits(alg));
                match (fitting.next(), fitting.next()) {
                    (Some(key), None) => Lookup::Key(key),
                    _ => Lookup::Unknown,
                }
            }
        }
    }
}

impl Jwk {
    fn fits(&self, alg: Alg) -> bool {
        let (kty, crv) = alg.key_type();
        self.kty == kty
            && crv.is_none_or(|crv| self.crv.as_deref() == Some(crv))
            && self.alg.as_deref().is_none_or(|a| a == alg.name())
    }

    fn verify(&self, alg: Alg, message: &[u8], sig: &[u8]) -> Result<(), OidcError> {
        let part = |p: &Option<String>| {
            p.as_deref()
                .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
                .ok_or(OidcError::InvalidSignature)
        };
        let verified = match alg.key_type() {
            ("RSA", _) => signature::RsaPublicKeyComponents {
                n: part(&self.n)?,
                e: part(&self.e)?,
            }
            .verify(
                // The RSA algorithms of `verification` are all `RsaParameters`.
                rsa_parameters(alg).ok_or(OidcError::InvalidSignature)?,
                message,
                sig,
            ),
            ("EC", _) => {
                let (x, y) = (part(&self.x)?, part(&self.y)?);
                let size = if alg == Alg::ES256 { 32 } else { 48 };
                if x.len() != size || y.len() != size {
                    return Err(OidcError::InvalidSignature);
                }
                let mut point = Vec::with_capacity(1 + 2 * size);
                point.push(0x04);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                UnparsedPublicKey::new(alg.verification(), point).verify(message, sig)
            }
            _ => UnparsedPublicKey::new(alg.verification(), part(&self.x)?).verify(message, sig),
        };
        verified.map_err(|_| OidcError::InvalidSignature)
    }
}

fn rsa_parameters(alg: Alg) -> Option<&'static signature::RsaParameters> {
    Some(match alg {
        Alg::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        Alg::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
        Alg::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
        Alg::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
        Alg::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
        Alg::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
        _ => return None,
    })
}
