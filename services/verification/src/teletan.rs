//! The teleTAN format (alphabet, length, check character) is defined once, in
//! [`openwarn_domain::teletan`]; this module re-exports it, as the crate always offered it.

pub use openwarn_domain::teletan::{ALPHABET, LENGTH, TeleTan, check_character, is_valid};
