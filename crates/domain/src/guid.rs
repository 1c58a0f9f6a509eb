//! The hashed GUID: what the app sends for the GUID of its QR code, and what labs post results for.

use crate::ParseError;
use std::fmt;
use std::str::FromStr;

/// The SHA-256 of a QR-code GUID, as 64 lowercase hex characters (upper-case hex is refused, not
/// normalised: the app and labs send lowercase). Linkable to one person's test, so `Debug` does
/// not show it; [`Self::as_str`] gives it where it goes to the database or over gRPC.
#[derive(Clone, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct HashedGuid(String);

fn is_hashed_guid(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl HashedGuid {
    /// The 64 hex characters, for the database and the wire.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Debug for HashedGuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HashedGuid(***)")
    }
}

impl TryFrom<String> for HashedGuid {
    type Error = ParseError;

    fn try_from(s: String) -> Result<Self, ParseError> {
        if is_hashed_guid(&s) {
            Ok(Self(s))
        } else {
            Err(ParseError::HashedGuid)
        }
    }
}

impl TryFrom<&str> for HashedGuid {
    type Error = ParseError;

    fn try_from(s: &str) -> Result<Self, ParseError> {
        if is_hashed_guid(s) {
            Ok(Self(s.to_owned()))
        } else {
            Err(ParseError::HashedGuid)
        }
    }
}

impl FromStr for HashedGuid {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, ParseError> {
        Self::try_from(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashed_guids_are_64_lowercase_hex() {
        let ok = "ab".repeat(32);
        assert_eq!(ok.parse::<HashedGuid>().unwrap().as_str(), ok);
        assert_eq!(
            HashedGuid::try_from("0123456789abcdef".repeat(4))
                .unwrap()
                .as_str(),
            "0123456789abcdef".repeat(4)
        );
        for bad in [
            "AB".repeat(32),
            "ab".repeat(31),
            "ab".repeat(33),
            "zz".repeat(32),
            format!("{} ", "a".repeat(63)),
            String::new(),
        ] {
            assert_eq!(
                bad.parse::<HashedGuid>(),
                Err(ParseError::HashedGuid),
                "{bad}"
            );
            assert!(HashedGuid::try_from(bad).is_err());
        }
    }

    #[test]
    fn debug_does_not_show_it() {
        let guid: HashedGuid = "ab".repeat(32).parse().unwrap();
        assert_eq!(format!("{guid:?}"), "HashedGuid(***)");
        assert!(!format!("{:?}", Some(&guid)).contains("abab"));
    }

    #[test]
    fn deserializes_only_valid_values() {
        let guid: HashedGuid = serde_json::from_str(&format!("\"{}\"", "ab".repeat(32))).unwrap();
        assert_eq!(guid.as_str(), "ab".repeat(32));
        assert!(serde_json::from_str::<HashedGuid>("\"AB\"").is_err());
    }
}
