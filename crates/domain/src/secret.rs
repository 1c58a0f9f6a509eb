//! The UUID secrets: registration tokens and TANs. (teleTANs: [`crate::teletan`].)
//!
//! A secret is stored only as its [`sha256_hex`](crate::sha256_hex). `Debug` shows `Name(***)`,
//! there is no `Display`, and the value is reached only through `expose()`/`into_exposed()`: where
//! it goes on the wire (the answer that hands it to the app, a call to verification).

use crate::ParseError;

/// The canonical form (lowercase, hyphenated) of a version-4 UUID written in its 36-character
/// hyphenated form, in either case; `None` for anything else (other versions, the simple,
/// braced or URN forms). The rule for registration tokens, TANs and reservation ids.
pub fn canonical_uuid_v4(s: &str) -> Option<String> {
    let uuid = uuid::Uuid::try_parse(s).ok()?;
    (s.len() == 36 && uuid.get_version_num() == 4).then(|| uuid.hyphenated().to_string())
}

/// The common part of a secret newtype `$name(String)` whose valid values `$parse` canonicalises
/// (or refuses with `$error`): redacted `Debug`, `hash`, `expose`, `FromStr`, `TryFrom`, serde.
macro_rules! secret {
    ($name:ident, $error:expr, $parse:expr) => {
        impl $name {
            /// Lowercase hex SHA-256 of the value: the only form in which it is stored.
            pub fn hash(&self) -> String {
                $crate::sha256_hex(&self.0)
            }

            /// The secret itself, for where it goes on the wire. Never log it.
            pub fn expose(&self) -> &str {
                &self.0
            }

            /// The secret itself, for where it goes on the wire. Never log it.
            pub fn into_exposed(self) -> String {
                self.0
            }
        }

        impl ::std::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(concat!(stringify!($name), "(***)"))
            }
        }

        impl TryFrom<&str> for $name {
            type Error = $crate::ParseError;

            fn try_from(s: &str) -> Result<Self, $crate::ParseError> {
                let parse: fn(&str) -> Option<String> = $parse;
                parse(s).map(Self).ok_or($error)
            }
        }

        impl TryFrom<String> for $name {
            type Error = $crate::ParseError;

            fn try_from(s: String) -> Result<Self, $crate::ParseError> {
                Self::try_from(s.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::ParseError;

            fn from_str(s: &str) -> Result<Self, $crate::ParseError> {
                Self::try_from(s)
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <String as ::serde::Deserialize>::deserialize(d)?;
                Self::try_from(s).map_err(::serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use secret;

/// What the app holds after registering: a version-4 UUID, canonical lowercase hyphenated.
#[derive(Clone, PartialEq, Eq)]
pub struct RegistrationToken(String);

secret!(
    RegistrationToken,
    ParseError::RegistrationToken,
    canonical_uuid_v4
);

impl RegistrationToken {
    /// A new random token.
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().hyphenated().to_string())
    }
}

/// A transaction number: a version-4 UUID, canonical lowercase hyphenated, that pays for one
/// upload of keys.
#[derive(Clone, PartialEq, Eq)]
pub struct Tan(String);

secret!(Tan, ParseError::Tan, canonical_uuid_v4);

impl Tan {
    /// A new random TAN.
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().hyphenated().to_string())
    }

    /// A TAN from submission's `cwa-authorization` header, which has always taken every textual
    /// form of a version-4 UUID the `uuid` crate reads (hyphenated, simple, braced, URN; any
    /// case), canonicalised. Everywhere else ([`FromStr`](std::str::FromStr)) only the
    /// 36-character hyphenated form is a TAN.
    pub fn from_authorization_header(s: &str) -> Result<Self, ParseError> {
        uuid::Uuid::try_parse(s)
            .ok()
            .filter(|u| u.get_version_num() == 4)
            .map(|u| Self(u.hyphenated().to_string()))
            .ok_or(ParseError::Tan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sha256_hex;

    #[test]
    fn uuids_must_be_v4_in_the_hyphenated_form() {
        let v4 = uuid::Uuid::new_v4().to_string();
        assert_eq!(canonical_uuid_v4(&v4).as_deref(), Some(v4.as_str()));
        assert_eq!(
            canonical_uuid_v4(&v4.to_uppercase()).as_deref(),
            Some(v4.as_str()),
            "case is normalized"
        );
        assert_eq!(
            canonical_uuid_v4("6ba7b810-9dad-11d1-80b4-00c04fd430c8"),
            None,
            "version 1"
        );
        assert_eq!(canonical_uuid_v4(&v4.replace('-', "")), None, "simple form");
        assert_eq!(canonical_uuid_v4(&format!("{{{v4}}}")), None, "braced form");
        assert_eq!(canonical_uuid_v4("nope"), None);
        assert_eq!(canonical_uuid_v4(""), None);
    }

    #[test]
    fn tokens_and_tans_parse_canonicalised_and_hash_their_canonical_form() {
        let v4 = uuid::Uuid::new_v4().to_string();
        let token: RegistrationToken = v4.to_uppercase().parse().unwrap();
        assert_eq!(token.expose(), v4);
        assert_eq!(token.hash(), sha256_hex(&v4));
        let tan = Tan::try_from(v4.clone()).unwrap();
        assert_eq!(tan.hash(), sha256_hex(&v4));
        assert_eq!(tan.into_exposed(), v4);
        assert_eq!(
            "6ba7b810-9dad-11d1-80b4-00c04fd430c8".parse::<Tan>(),
            Err(ParseError::Tan)
        );
        assert_eq!(
            RegistrationToken::try_from("x"),
            Err(ParseError::RegistrationToken)
        );
    }

    #[test]
    fn generated_secrets_parse_back() {
        let token = RegistrationToken::generate();
        assert_eq!(token.expose().parse::<RegistrationToken>().unwrap(), token);
        let tan = Tan::generate();
        assert_eq!(tan.expose().parse::<Tan>().unwrap(), tan);
        assert_ne!(Tan::generate(), tan);
    }

    #[test]
    fn the_authorization_header_takes_every_form_of_a_v4_uuid() {
        let v4 = uuid::Uuid::new_v4();
        let canonical = v4.hyphenated().to_string();
        for form in [
            canonical.clone(),
            canonical.to_uppercase(),
            v4.simple().to_string(),
            v4.braced().to_string(),
            v4.urn().to_string(),
        ] {
            assert_eq!(
                Tan::from_authorization_header(&form).unwrap().expose(),
                canonical,
                "{form}"
            );
        }
        assert_eq!(
            Tan::from_authorization_header("6ba7b810-9dad-11d1-80b4-00c04fd430c8"),
            Err(ParseError::Tan),
            "version 1"
        );
        assert_eq!(Tan::from_authorization_header(""), Err(ParseError::Tan));
    }

    #[test]
    fn debug_never_shows_a_secret() {
        let tan = Tan::generate();
        let token = RegistrationToken::generate();
        assert_eq!(format!("{tan:?}"), "Tan(***)");
        assert_eq!(format!("{token:?}"), "RegistrationToken(***)");
        assert_eq!(format!("{tan:#?}"), "Tan(***)");
        let nested = format!("{:?}", (Some(&tan), vec![&token]));
        assert!(!nested.contains(tan.expose()), "{nested}");
        assert!(!nested.contains(token.expose()), "{nested}");
        assert!(!nested.contains(&tan.hash()), "{nested}");
    }

    #[test]
    fn errors_do_not_repeat_the_value() {
        let almost = "6ba7b810-9dad-11d1-80b4-00c04fd430c8";
        let message = almost.parse::<Tan>().unwrap_err().to_string();
        assert!(!message.contains(almost), "{message}");
    }

    #[test]
    fn deserializes_only_valid_values() {
        let v4 = uuid::Uuid::new_v4().to_string();
        let tan: Tan = serde_json::from_str(&format!("\"{v4}\"")).unwrap();
        assert_eq!(tan.expose(), v4);
        let err = serde_json::from_str::<RegistrationToken>("\"secret-ish\"").unwrap_err();
        assert!(!err.to_string().contains("secret-ish"), "{err}");
    }
}
