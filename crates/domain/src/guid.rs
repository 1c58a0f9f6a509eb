//! The hashed GUID: what the app sends for the GUID of its QR code, and what labs post results for.

use crate::ParseError;
use std::fmt;
use std::str::FromStr;

/// The id of a test: the SHA-256 of a QR-code GUID (64 hex characters), or a date-of-birth-bound
/// id (`x` and the last 63 hex characters of the SHA-256 of the GUID and the date of birth), as
/// CWA's pattern `^[XxA-Fa-f0-9]([A-Fa-f0-9]{63})$` allows. Either case is accepted and stored
/// lowercase, so a result posted in one case is found by a poll in the other. Linkable to one
/// person's test, so `Debug` does not show it; [`Self::as_str`] gives it where it goes to the
/// database or over gRPC.
#[derive(Clone, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct HashedGuid(String);

fn is_hashed_guid(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .enumerate()
            .all(|(i, b)| b.is_ascii_hexdigit() || (i == 0 && (b == b'x' || b == b'X')))
}

impl HashedGuid {
    /// The 64 hex characters, for the database and the wire.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }

    /// Whether this is a date-of-birth-bound id (`x` + 63 hex), not a plain SHA-256.
    pub fn is_dob_bound(&self) -> bool {
        self.0.starts_with('x')
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
            Ok(Self(s.to_ascii_lowercase()))
        } else {
            Err(ParseError::HashedGuid)
        }
    }
}

impl TryFrom<&str> for HashedGuid {
    type Error = ParseError;

    fn try_from(s: &str) -> Result<Self, ParseError> {
        if is_hashed_guid(s) {
            Ok(Self(s.to_ascii_lowercase()))
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
    fn cwas_pattern_in_either_case_is_stored_lowercase() {
        let upper: HashedGuid = "AB".repeat(32).parse().unwrap();
        assert_eq!(upper.as_str(), "ab".repeat(32));
        assert!(!upper.is_dob_bound());
        for dob in [
            format!("x{}", "b".repeat(63)),
            format!("X{}", "B".repeat(63)),
        ] {
            let id: HashedGuid = dob.parse().unwrap();
            assert_eq!(id.as_str(), format!("x{}", "b".repeat(63)));
            assert!(id.is_dob_bound());
        }
        for bad in [
            format!("bx{}", "b".repeat(62)),
            format!("y{}", "b".repeat(63)),
            format!("x{}", "b".repeat(62)),
            format!("xx{}", "b".repeat(62)),
        ] {
            assert!(bad.parse::<HashedGuid>().is_err(), "{bad}");
        }
    }

    #[test]
    fn hashed_guids_are_64_hex() {
        let ok = "ab".repeat(32);
        assert_eq!(ok.parse::<HashedGuid>().unwrap().as_str(), ok);
        assert_eq!(
            HashedGuid::try_from("0123456789abcdef".repeat(4))
                .unwrap()
                .as_str(),
            "0123456789abcdef".repeat(4)
        );
        for bad in [
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
