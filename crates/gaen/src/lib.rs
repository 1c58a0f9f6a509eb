//! Apple/Google Exposure Notification cryptography (specification v1.2), as a phone does it:
//! daily Temporary Exposure Keys, the Rolling Proximity Identifier Key and the Associated
//! Encrypted Metadata Key derived from them with HKDF-SHA256, the Rolling Proximity Identifiers
//! broadcast every 10-minute interval (AES-128 of a padded interval number), and the metadata
//! encrypted with AES-128-CTR under the identifier.
//!
//! Checked field by field against the published test vectors (`tests/vectors.rs`).

use aes::Aes128;
use aes::cipher::{BlockCipherEncrypt, KeyInit};
use ctr::cipher::{KeyIvInit, StreamCipher};

/// Seconds per Exposure Notification interval (an identifier is broadcast for one interval).
pub const INTERVAL_SECONDS: u64 = 600;
/// Intervals a TEK is valid for: one day.
pub const TEK_ROLLING_PERIOD: u32 = 144;

/// The ENIntervalNumber of a moment: 10-minute intervals since the Unix epoch.
#[must_use]
pub fn en_interval_number(unix_seconds: u64) -> u32 {
    u32::try_from(unix_seconds / INTERVAL_SECONDS).unwrap_or(u32::MAX)
}

/// The first interval of the TEK that covers `interval` (UTC midnight).
#[must_use]
pub fn rolling_start(interval: u32) -> u32 {
    interval / TEK_ROLLING_PERIOD * TEK_ROLLING_PERIOD
}

/// A Rolling Proximity Identifier: what a phone broadcasts during one interval.
pub type Rpi = [u8; 16];

/// A Temporary Exposure Key: 16 random bytes, one per day.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Tek(pub [u8; 16]);

impl Tek {
    /// A fresh key from the operating system's CSPRNG (through `rand`'s thread generator).
    #[must_use]
    pub fn generate() -> Self {
        Self(rand::random())
    }

    /// A key from a caller's generator (seeded simulations).
    pub fn from_rng(rng: &mut impl rand::Rng) -> Self {
        Self(rng.random())
    }

    /// `RPIK = HKDF-SHA256(TEK, salt = none, info = "EN-RPIK", 16 bytes)`.
    #[must_use]
    pub fn rpik(&self) -> Rpik {
        Rpik::from_bytes(hkdf(&self.0, b"EN-RPIK"))
    }

    /// `AEMK = HKDF-SHA256(TEK, salt = none, info = "EN-AEMK", 16 bytes)`.
    #[must_use]
    pub fn aemk(&self) -> Aemk {
        Aemk(hkdf(&self.0, b"EN-AEMK"))
    }
}

#[allow(
    clippy::expect_used,
    reason = "HKDF-SHA256 expands to any length up to 255 * 32 bytes; 16 always fits"
)]
fn hkdf(ikm: &[u8; 16], info: &[u8]) -> [u8; 16] {
    let mut okm = [0; 16];
    hkdf::Hkdf::<sha2::Sha256>::new(None, ikm)
        .expand(info, &mut okm)
        .expect("16 bytes is a valid HKDF-SHA256 output length");
    okm
}

/// The Rolling Proximity Identifier Key, with its AES key schedule ready (deriving the 144
/// identifiers of a key costs 144 block encryptions).
#[derive(Clone)]
pub struct Rpik {
    bytes: [u8; 16],
    cipher: Aes128,
}

impl std::fmt::Debug for Rpik {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rpik(..)")
    }
}

impl Rpik {
    #[must_use]
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self {
            bytes,
            cipher: Aes128::new(&bytes.into()),
        }
    }

    #[must_use]
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.bytes
    }

    /// `RPI = AES-128(RPIK, "EN-RPI" || 6 zero bytes || ENIntervalNumber as u32 little-endian)`.
    #[must_use]
    pub fn rpi(&self, interval: u32) -> Rpi {
        let mut block = [0u8; 16];
        block[..6].copy_from_slice(b"EN-RPI");
        block[12..].copy_from_slice(&interval.to_le_bytes());
        let mut block = block.into();
        self.cipher.encrypt_block(&mut block);
        block.into()
    }
}

/// The Associated Encrypted Metadata Key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Aemk(pub [u8; 16]);

impl std::fmt::Debug for Aemk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Aemk(..)")
    }
}

impl Aemk {
    /// `AEM = AES-128-CTR(AEMK, IV = RPI, metadata)`; the same call decrypts.
    #[must_use]
    pub fn apply(&self, rpi: &Rpi, metadata: [u8; 4]) -> [u8; 4] {
        let mut out = metadata;
        ctr::Ctr128BE::<Aes128>::new(&self.0.into(), &(*rpi).into()).apply_keystream(&mut out);
        out
    }
}

/// Bluetooth metadata of spec v1.2: version byte `0x40` (major 1, minor 0), then the transmit
/// power in dBm, then two reserved bytes.
#[must_use]
pub fn metadata(tx_power_dbm: i8) -> [u8; 4] {
    [0x40, tx_power_dbm.to_le_bytes()[0], 0, 0]
}

/// The transmit power a metadata block carries (`None` for an unknown major version).
#[must_use]
pub fn tx_power(metadata: [u8; 4]) -> Option<i8> {
    (metadata[0] >> 6 == 1).then(|| i8::from_le_bytes([metadata[1]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_numbers_and_rolling_start() {
        assert_eq!(en_interval_number(0), 0);
        assert_eq!(en_interval_number(599), 0);
        assert_eq!(en_interval_number(600), 1);
        assert_eq!(rolling_start(2_642_976 + 143), 2_642_976);
        assert_eq!(rolling_start(2_642_976 + 144), 2_642_976 + 144);
    }

    #[test]
    fn metadata_round_trips_through_the_aem() {
        let tek = Tek::generate();
        let rpi = tek.rpik().rpi(5);
        let aem = tek.aemk().apply(&rpi, metadata(-12));
        assert_ne!(aem, metadata(-12));
        assert_eq!(tx_power(tek.aemk().apply(&rpi, aem)), Some(-12));
        // Another interval's identifier as IV does not decrypt it.
        let other = tek.rpik().rpi(6);
        assert_ne!(tek.aemk().apply(&other, aem), metadata(-12));
        assert_eq!(tx_power([0x80, 0, 0, 0]), None);
    }

    #[test]
    fn identifiers_differ_per_interval_and_per_key() {
        let a = Tek::generate().rpik();
        let b = Tek::generate().rpik();
        assert_ne!(a.rpi(1), a.rpi(2));
        assert_ne!(a.rpi(1), b.rpi(1));
        assert_eq!(a.rpi(7), Rpik::from_bytes(*a.as_bytes()).rpi(7));
    }
}
