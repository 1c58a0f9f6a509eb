//! The domain vocabulary of OpenWarn: every rule about what a value may look like, written once.
//!
//! Each type validates when it is parsed (`FromStr`, `TryFrom<&str>`/`TryFrom<String>`, serde
//! `Deserialize`) and cannot be built invalid, so a service parses at its edge (HTTP request, gRPC
//! message, database row) and from then on holds a value that is known to be well-formed:
//!
//! - [`HashedGuid`]: the SHA-256 of a QR-code GUID, or a date-of-birth-bound id (`x` + 63 hex),
//!   stored lowercase.
//! - [`RegistrationToken`], [`Tan`], [`TeleTan`]: the secrets. Each is stored only as its
//!   [`hash`](Tan::hash) ([`sha256_hex`]); `Debug` never shows the value (`Tan(***)`), there is no
//!   `Display`, and the value itself is reached only through `expose()`/`into_exposed()`, where it
//!   legitimately goes on the wire (an answer to the app, a call to verification).
//! - [`CountryCode`], [`VisitedCountries`]: ISO 3166 alpha-2 codes, and the set of countries a key
//!   was used in, with its one database form ([`VisitedCountries::to_db`]/[`from_db`]).
//! - [`TestResult`]: the result codes 0 to 9 (5 to 9: rapid tests), converted to numbers only at the edges (`i16` in the
//!   database, `i32` in JSON; the protobuf enum's conversions live in `openwarn-protocol`).
//!
//! The crate depends on no other OpenWarn crate.
//!
//! [`from_db`]: VisitedCountries::from_db

mod country;
mod error;
mod guid;
mod hash;
#[cfg(test)]
mod proptests;
mod secret;
pub mod teletan;
mod test_result;

pub use country::{CountryCode, VisitedCountries};
pub use error::ParseError;
pub use guid::HashedGuid;
pub use hash::{hmac_sha256, sha256_hex};
pub use secret::{RegistrationToken, Tan, canonical_uuid_v4};
pub use teletan::TeleTan;
pub use test_result::TestResult;
