//! Property-based tests of every parser of this crate (issue 19 §2), on a fixed case budget:
//! whatever the input, parsing never panics, accepts exactly the documented format, and what it
//! accepts comes back canonical.

use crate::teletan::{self, ALPHABET, LENGTH};
use crate::{CountryCode, HashedGuid, RegistrationToken, Tan, TeleTan, canonical_uuid_v4};
use proptest::prelude::*;

/// Cases per property: small enough for CI, with a fixed seed per run set by proptest's default
/// source (failures are persisted as regressions next to this file).
const CASES: u32 = 256;

fn alphabet_char() -> impl Strategy<Value = char> {
    proptest::sample::select(ALPHABET.to_vec()).prop_map(char::from)
}

fn payload() -> impl Strategy<Value = String> {
    proptest::collection::vec(alphabet_char(), LENGTH - 1).prop_map(|c| c.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn a_check_character_exists_for_every_payload_and_lies_in_the_alphabet(p in payload()) {
        let c = teletan::check_character(&p).expect("a check character");
        prop_assert!(ALPHABET.contains(&(c as u8)), "{c}");
        let full = format!("{p}{c}");
        prop_assert!(teletan::is_valid(&full));
        prop_assert!(TeleTan::try_from(full.as_str()).is_ok());
    }

    #[test]
    fn a_wrong_check_character_is_refused(p in payload(), wrong in alphabet_char()) {
        let right = teletan::check_character(&p).expect("a check character");
        prop_assume!(wrong != right);
        let full = format!("{p}{wrong}");
        prop_assert!(!teletan::is_valid(&full));
    }

    #[test]
    fn a_teletan_with_one_character_changed_is_refused_or_still_checks(
        p in payload(), at in 0..LENGTH - 1, to in alphabet_char()
    ) {
        let c = teletan::check_character(&p).expect("a check character");
        let mut changed: Vec<char> = p.chars().collect();
        changed[at] = to;
        let changed: String = changed.into_iter().collect();
        // Either the change is caught, or the check character of the new payload is the old one
        // (1 in 16): never anything else.
        prop_assert_eq!(
            teletan::is_valid(&format!("{changed}{c}")),
            teletan::check_character(&changed) == Some(c)
        );
    }

    #[test]
    fn any_string_is_a_teletan_only_in_the_documented_format(s in "\\PC{0,12}|[2-9A-Z]{10}") {
        let valid = teletan::is_valid(&s);
        prop_assert_eq!(TeleTan::try_from(s.as_str()).is_ok(), valid);
        if valid {
            prop_assert_eq!(s.len(), LENGTH);
            prop_assert!(s.bytes().all(|b| ALPHABET.contains(&b)));
            prop_assert_eq!(teletan::check_character(&s[..LENGTH - 1]), s.chars().last());
        }
    }

    #[test]
    fn generated_teletans_are_valid(_n in 0..8u8) {
        let t = TeleTan::generate();
        prop_assert!(teletan::is_valid(t.expose()));
    }

    /// CWA's pattern `^[XxA-Fa-f0-9]([A-Fa-f0-9]{63})$` (a SHA-256, or a date-of-birth-bound id
    /// `x` + 63 hex), either case, kept lowercase.
    #[test]
    fn a_hashed_guid_is_cwas_pattern_kept_lowercase(
        s in "[0-9a-f]{64}|[xX][0-9a-fA-F]{63}|[0-9a-fA-FxX]{60,68}|\\PC{0,70}"
    ) {
        let hex = |b: u8| b.is_ascii_hexdigit();
        let expected = s.len() == 64
            && s.bytes().next().is_some_and(|b| hex(b) || b == b'x' || b == b'X')
            && s.bytes().skip(1).all(hex);
        let parsed = HashedGuid::try_from(s.clone());
        prop_assert_eq!(parsed.is_ok(), expected);
        if let Ok(g) = parsed {
            prop_assert_eq!(g.as_str(), s.to_ascii_lowercase());
        }
    }

    #[test]
    fn a_uuid_secret_is_canonical_or_refused(s in "[0-9a-fA-F-]{30,40}|\\PC{0,40}") {
        match canonical_uuid_v4(&s) {
            Some(c) => {
                prop_assert_eq!(c.len(), 36);
                prop_assert_eq!(c.to_lowercase(), c.clone());
                prop_assert_eq!(canonical_uuid_v4(&c), Some(c.clone()));
                prop_assert_eq!(s.to_lowercase(), c.clone());
                prop_assert!(c.parse::<Tan>().is_ok());
                prop_assert!(c.parse::<RegistrationToken>().is_ok());
            }
            None => {
                prop_assert!(s.parse::<Tan>().is_err());
                prop_assert!(s.parse::<RegistrationToken>().is_err());
            }
        }
    }

    #[test]
    fn every_form_of_a_v4_uuid_in_the_header_is_the_same_tan(bytes in any::<[u8; 16]>(), upper in any::<bool>()) {
        let uuid = uuid::Builder::from_random_bytes(bytes).into_uuid();
        let canonical = uuid.hyphenated().to_string();
        for form in [
            canonical.clone(),
            uuid.simple().to_string(),
            uuid.braced().to_string(),
            uuid.urn().to_string(),
        ] {
            let form = if upper { form.to_uppercase() } else { form };
            let tan = Tan::from_authorization_header(&form).expect("a TAN");
            prop_assert_eq!(tan.expose(), canonical.as_str());
        }
    }

    #[test]
    fn the_authorization_header_never_takes_another_uuid_version(s in "\\PC{0,45}", bytes in any::<[u8; 16]>(), version in 0u8..16) {
        if let Ok(tan) = Tan::from_authorization_header(&s) {
            prop_assert!(canonical_uuid_v4(tan.expose()).is_some());
        }
        prop_assume!(version != 4);
        let mut b = bytes;
        b[6] = (b[6] & 0x0f) | (version << 4);
        let other = uuid::Uuid::from_bytes(b).hyphenated().to_string();
        prop_assert!(Tan::from_authorization_header(&other).is_err());
    }

    #[test]
    fn a_country_is_two_upper_case_letters(s in "[A-Z]{2}|\\PC{0,4}") {
        let expected = s.len() == 2 && s.bytes().all(|b| b.is_ascii_uppercase());
        prop_assert_eq!(s.parse::<CountryCode>().is_ok(), expected);
    }
}
