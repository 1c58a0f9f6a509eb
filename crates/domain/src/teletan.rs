//! teleTAN format: 10 characters from [`ALPHABET`] (31 symbols, no 0/1/I/L/O to avoid misreading
//! over the phone); the first 9 are random, the 10th is a check character computed exactly as the
//! Corona-Warn-App verification server computes it (`HashingService.getCheckDigit`), because an
//! unchanged CWA app recomputes it and refuses a teleTAN whose check character differs:
//!
//! the first hex digit of SHA-256 over the 9 characters, upper case, with `0` written `G` and `1`
//! written `H` (so that it stays inside the alphabet).
//!
//! 16 possible check characters: a single mistyped character is caught with probability 15/16. A
//! teleTAN is validated (length, alphabet, check) before any database lookup.

use crate::ParseError;
use crate::secret::secret;
use rand::Rng;

pub const ALPHABET: &[u8; 31] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";
pub const LENGTH: usize = 10;

/// The check character for a 9-character payload of alphabet characters (CWA's rule).
pub fn check_character(payload: &str) -> Option<char> {
    if payload.len() != LENGTH - 1 || !payload.bytes().all(|c| ALPHABET.contains(&c)) {
        return None;
    }
    let first = crate::sha256_hex(payload).chars().next()?;
    Some(match first.to_ascii_uppercase() {
        '0' => 'G',
        '1' => 'H',
        c => c,
    })
}

/// Whether `s` has the teleTAN format and a correct check character.
pub fn is_valid(s: &str) -> bool {
    s.len() == LENGTH
        && s.is_char_boundary(LENGTH - 1)
        && check_character(&s[..LENGTH - 1]).is_some_and(|c| s.ends_with(c))
}

/// A teleTAN: [`LENGTH`] characters of [`ALPHABET`], the last the check character. Parsing checks
/// the format and the check character (case-sensitive: lowercase is outside the alphabet).
#[derive(Clone, PartialEq, Eq)]
pub struct TeleTan(String);

secret!(TeleTan, ParseError::TeleTan, |s| is_valid(s)
    .then(|| s.to_owned()));

impl TeleTan {
    /// A new random teleTAN.
    pub fn generate() -> Self {
        let mut rng = rand::rng();
        let payload: String = (0..LENGTH - 1)
            .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
            .collect();
        let check = check_character(&payload).unwrap_or('G');
        Self(payload + &check.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generate() -> String {
        TeleTan::generate().into_exposed()
    }

    #[test]
    fn generated_teletans_are_valid() {
        for _ in 0..1000 {
            let t = generate();
            assert_eq!(t.len(), LENGTH);
            assert!(is_valid(&t), "{t}");
            assert_eq!(check_character(&t[..LENGTH - 1]), t.chars().last(), "{t}");
        }
    }

    #[test]
    fn generation_uses_the_whole_alphabet() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            seen.extend(generate().bytes());
        }
        assert_eq!(seen.len(), ALPHABET.len());
    }

    /// CWA's own published cases (cwa-verification-server, `HashingServiceTest.getCheckDigit`).
    #[test]
    fn check_characters_are_cwas() {
        for (payload, check) in [
            ("FE9A5MAK6", 'C'),
            ("WPHSATMHD", '4'),
            ("9N4UTTACE", '6'),
            ("S3HHJJYJD", '3'),
            ("W3M75DUD7", 'C'),
            ("BBA3M8UVU", 'C'),
            ("MNSHDZAEJ", '2'),
            ("WS732AR8Q", 'B'),
            // Their special cases: a hash starting with 1 or 0.
            ("FE9A5MAK9", 'H'),
            ("FE9A5MAKW", 'G'),
        ] {
            assert_eq!(check_character(payload), Some(check), "{payload}");
            assert!(is_valid(&format!("{payload}{check}")), "{payload}{check}");
        }
        assert_eq!(
            check_character("FE9A5MAK"),
            None,
            "payloads are 9 characters"
        );
        assert_eq!(
            check_character("FE9A5MAK0"),
            None,
            "0 is outside the alphabet"
        );
    }

    #[test]
    fn almost_every_single_character_error_is_detected() {
        // 16 possible check characters: 1 in 16 single-character errors slips through.
        let (mut detected, mut tried) = (0u32, 0u32);
        for _ in 0..50 {
            let t = generate();
            for pos in 0..LENGTH {
                for &c in ALPHABET {
                    if t.as_bytes()[pos] == c {
                        continue;
                    }
                    let mut changed = t.clone().into_bytes();
                    changed[pos] = c;
                    tried += 1;
                    if !is_valid(std::str::from_utf8(&changed).unwrap()) {
                        detected += 1;
                    }
                }
            }
        }
        let rate = f64::from(detected) / f64::from(tried);
        assert!(rate > 0.9, "{detected} of {tried} detected");
    }

    #[test]
    fn wrong_length_case_or_symbols_are_invalid() {
        let t = generate();
        assert!(!is_valid(&t[..9]));
        assert!(!is_valid(&format!("{t}2")));
        if t.bytes().any(|b| b.is_ascii_alphabetic()) {
            assert!(
                !is_valid(&t.to_ascii_lowercase()),
                "lowercase is outside the alphabet"
            );
        }
        assert!(!is_valid("0000000000"));
        assert!(!is_valid("ÄÄÄÄÄ"));
    }

    #[test]
    fn the_type_parses_exactly_the_valid_teletans() {
        let t = generate();
        let parsed: TeleTan = t.parse().unwrap();
        assert_eq!(parsed.expose(), t);
        assert_eq!(parsed.hash(), crate::sha256_hex(&t));
        assert_eq!(
            "FE9A5MAK6C".parse::<TeleTan>().unwrap().expose(),
            "FE9A5MAK6C"
        );
        for bad in [
            "FE9A5MAK6D",
            "FE9A5MAK6",
            "FE9A5MAK6CC",
            "",
            "ÄÄÄÄÄ",
            "fe9a5mak6c",
        ] {
            assert_eq!(bad.parse::<TeleTan>(), Err(ParseError::TeleTan), "{bad}");
        }
    }

    #[test]
    fn debug_never_shows_a_teletan() {
        let t = TeleTan::generate();
        assert_eq!(format!("{t:?}"), "TeleTan(***)");
        assert!(!format!("{:?}", [Some(&t)]).contains(t.expose()));
    }
}
