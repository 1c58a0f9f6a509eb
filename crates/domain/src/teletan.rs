//! teleTAN format: 10 characters from [`ALPHABET`] (31 symbols, no 0/1/I/L/O to avoid misreading
//! over the phone); the first 9 are random, the 10th is a check character.
//!
//! The check character makes the weighted sum of the symbols' positions in the alphabet zero
//! modulo 31: with `d1..d10` the alphabet indices of the 10 characters,
//! `1·d1 + 2·d2 + … + 10·d10 ≡ 0 (mod 31)`, so the check symbol is
//! `d10 = -(1·d1 + … + 9·d9) · 10⁻¹ mod 31` (10⁻¹ ≡ 28). Because 31 is prime and the weights are
//! distinct, it detects every single-character error and every transposition of two characters.
//! A teleTAN is validated (length, alphabet, check) before any database lookup.

use crate::ParseError;
use crate::secret::secret;
use rand::Rng;

pub const ALPHABET: &[u8; 31] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";
pub const LENGTH: usize = 10;
const N: u32 = 31;

fn index(c: u8) -> Option<u32> {
    ALPHABET.iter().position(|a| *a == c).map(|i| i as u32)
}

/// Weighted sum (weights 1, 2, …) of alphabet indices, modulo 31.
fn weighted_sum_of(indices: impl IntoIterator<Item = u32>) -> u32 {
    indices
        .into_iter()
        .zip(1..)
        .fold(0, |sum, (d, weight)| (sum + weight * d) % N)
}

/// Weighted sum (weights 1, 2, …) of the characters' alphabet indices, modulo 31; `None` if a
/// character is outside the alphabet.
fn weighted_sum(s: &str) -> Option<u32> {
    let indices: Option<Vec<u32>> = s.bytes().map(index).collect();
    indices.map(weighted_sum_of)
}

/// The alphabet index of the check character of a 9-character payload with weighted sum `sum`.
fn check_index(sum: u32) -> usize {
    // 10 · 28 ≡ 1 (mod 31)
    ((N - sum) % N * 28 % N) as usize
}

/// The check character for a 9-character payload of alphabet characters.
pub fn check_character(payload: &str) -> Option<char> {
    if payload.len() != LENGTH - 1 {
        return None;
    }
    let sum = weighted_sum(payload)?;
    Some(ALPHABET[check_index(sum)] as char)
}

/// Whether `s` has the teleTAN format and a correct check character.
pub fn is_valid(s: &str) -> bool {
    s.len() == LENGTH && weighted_sum(s) == Some(0)
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
        let payload: Vec<u32> = (0..LENGTH - 1).map(|_| rng.random_range(0..N)).collect();
        let check = check_index(weighted_sum_of(payload.iter().copied()));
        Self(
            payload
                .iter()
                .map(|&d| d as usize)
                .chain([check])
                .map(|d| ALPHABET[d] as char)
                .collect(),
        )
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

    #[test]
    fn a_known_value() {
        // Worked by hand: "222222222" is all zeros, so the check is ALPHABET[0] = '2'.
        assert_eq!(check_character("222222222"), Some('2'));
        assert!(is_valid("2222222222"));
        // "322222222": sum 1·1 = 1, check index (31 - 1) · 28 mod 31 = 840 mod 31 = 3 → '5'.
        assert_eq!(check_character("322222222"), Some('5'));
        assert!(is_valid("3222222225"));
        assert_eq!(
            check_character("32222222"),
            None,
            "payloads are 9 characters"
        );
        // "R2D2C3P0" style values with excluded symbols are refused.
        assert!(!is_valid("R2D2C3P0AB"));
    }

    #[test]
    fn every_single_character_error_is_detected() {
        let t = generate();
        for pos in 0..LENGTH {
            for &c in ALPHABET {
                if t.as_bytes()[pos] == c {
                    continue;
                }
                let mut changed = t.clone().into_bytes();
                changed[pos] = c;
                assert!(
                    !is_valid(std::str::from_utf8(&changed).unwrap()),
                    "{t} pos {pos}"
                );
            }
        }
    }

    #[test]
    fn every_transposition_is_detected() {
        for _ in 0..200 {
            let t = generate();
            for i in 0..LENGTH {
                for j in i + 1..LENGTH {
                    let mut swapped = t.clone().into_bytes();
                    if swapped[i] == swapped[j] {
                        continue;
                    }
                    swapped.swap(i, j);
                    assert!(
                        !is_valid(std::str::from_utf8(&swapped).unwrap()),
                        "{t} {i}<->{j}"
                    );
                }
            }
        }
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
            "3222222225".parse::<TeleTan>().unwrap().expose(),
            "3222222225"
        );
        for bad in ["3222222224", "322222222", "32222222255", "", "ÄÄÄÄÄ"] {
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
