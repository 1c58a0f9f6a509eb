//! Why a value was refused. The messages never repeat the value: it may be a secret.

/// A value that is not what its type requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("not a hashed GUID (64 lowercase hex characters)")]
    HashedGuid,
    #[error("not a registration token (a version-4 UUID)")]
    RegistrationToken,
    #[error("not a TAN (a version-4 UUID)")]
    Tan,
    #[error("not a teleTAN (10 characters of the teleTAN alphabet, the last a check character)")]
    TeleTan,
    #[error("not a country code (ISO 3166 alpha-2: two upper-case letters)")]
    CountryCode,
    /// Result codes are not secret: the number is kept for the message.
    #[error("{0} is not a test result code (0 to 4)")]
    TestResult(i64),
}
