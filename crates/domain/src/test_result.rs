//! The result of a test, as the app, labs, verification and test-result all know it.

use crate::ParseError;

/// A test's result, with the codes of the CWA contract (the app reads these numbers). Converted
/// to a number only at the edges: `i16` in test-result's database, `i32` in JSON and in the
/// protobuf enum (whose conversions are in `openwarn-protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TestResult {
    /// No lab result yet.
    Pending = 0,
    Negative = 1,
    Positive = 2,
    /// The sample could not be evaluated.
    Invalid = 3,
    /// Its TAN was used: keys were submitted. From then on no lab can change it.
    Redeemed = 4,
    /// Rapid antigen test (CWA's `QUICK_*` codes, posted to `/api/v1/quicktest/results`): no
    /// result yet.
    QuickPending = 5,
    QuickNegative = 6,
    QuickPositive = 7,
    QuickInvalid = 8,
    QuickRedeemed = 9,
}

impl TestResult {
    pub const ALL: [Self; 10] = [
        Self::Pending,
        Self::Negative,
        Self::Positive,
        Self::Invalid,
        Self::Redeemed,
        Self::QuickPending,
        Self::QuickNegative,
        Self::QuickPositive,
        Self::QuickInvalid,
        Self::QuickRedeemed,
    ];

    /// The contract's code (0 to 9).
    pub const fn code(self) -> i16 {
        self as i16
    }

    /// Whether a lab may post this result: negative, positive or invalid (never pending or
    /// redeemed).
    pub const fn is_lab_result(self) -> bool {
        matches!(self, Self::Negative | Self::Positive | Self::Invalid)
    }

    /// Whether this is a rapid antigen test's result (codes 5 to 9).
    pub const fn is_rapid_test(self) -> bool {
        matches!(
            self,
            Self::QuickPending
                | Self::QuickNegative
                | Self::QuickPositive
                | Self::QuickInvalid
                | Self::QuickRedeemed
        )
    }

    /// Whether a TAN may be issued for it: positive, PCR or rapid test (as CWA's TAN controller
    /// decides).
    pub const fn is_positive(self) -> bool {
        matches!(self, Self::Positive | Self::QuickPositive)
    }

    /// What this result reads once its TAN was used: redeemed, of the same kind of test.
    pub const fn redeemed(self) -> Self {
        if self.is_rapid_test() {
            Self::QuickRedeemed
        } else {
            Self::Redeemed
        }
    }
}

impl From<TestResult> for i16 {
    fn from(r: TestResult) -> i16 {
        r.code()
    }
}

impl From<TestResult> for i32 {
    fn from(r: TestResult) -> i32 {
        i32::from(r.code())
    }
}

impl From<TestResult> for i64 {
    fn from(r: TestResult) -> i64 {
        i64::from(r.code())
    }
}

impl TryFrom<i64> for TestResult {
    type Error = ParseError;

    fn try_from(code: i64) -> Result<Self, ParseError> {
        Self::ALL
            .into_iter()
            .find(|r| i64::from(r.code()) == code)
            .ok_or(ParseError::TestResult(code))
    }
}

impl TryFrom<i32> for TestResult {
    type Error = ParseError;

    fn try_from(code: i32) -> Result<Self, ParseError> {
        Self::try_from(i64::from(code))
    }
}

impl TryFrom<i16> for TestResult {
    type Error = ParseError;

    fn try_from(code: i16) -> Result<Self, ParseError> {
        Self::try_from(i64::from(code))
    }
}

/// As its code.
impl serde::Serialize for TestResult {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i16(self.code())
    }
}

impl<'de> serde::Deserialize<'de> for TestResult {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let code = <i64 as serde::Deserialize>::deserialize(d)?;
        Self::try_from(code).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_codes_of_the_contract() {
        assert_eq!(i16::from(TestResult::Pending), 0);
        assert_eq!(i16::from(TestResult::Negative), 1);
        assert_eq!(i16::from(TestResult::Positive), 2);
        assert_eq!(i16::from(TestResult::Invalid), 3);
        assert_eq!(i16::from(TestResult::Redeemed), 4);
        assert_eq!(i32::from(TestResult::Positive), 2);
        assert_eq!(i64::from(TestResult::Redeemed), 4);
    }

    #[test]
    fn every_code_round_trips_and_others_are_refused() {
        for r in TestResult::ALL {
            assert_eq!(TestResult::try_from(i16::from(r)), Ok(r));
            assert_eq!(TestResult::try_from(i32::from(r)), Ok(r));
            assert_eq!(TestResult::try_from(i64::from(r)), Ok(r));
        }
        for bad in [-1i64, 10, 100, i64::MAX, i64::MIN] {
            assert_eq!(TestResult::try_from(bad), Err(ParseError::TestResult(bad)));
        }
        assert!(TestResult::try_from(-1i16).is_err());
        assert!(TestResult::try_from(10i32).is_err());
    }

    #[test]
    fn labs_post_negative_positive_or_invalid() {
        let lab: Vec<TestResult> = TestResult::ALL
            .into_iter()
            .filter(|r| r.is_lab_result())
            .collect();
        assert_eq!(
            lab,
            [
                TestResult::Negative,
                TestResult::Positive,
                TestResult::Invalid
            ]
        );
    }

    #[test]
    fn rapid_tests_have_cwas_quick_codes() {
        assert_eq!(i16::from(TestResult::QuickPending), 5);
        assert_eq!(i16::from(TestResult::QuickRedeemed), 9);
        let positive: Vec<TestResult> = TestResult::ALL
            .into_iter()
            .filter(|r| r.is_positive())
            .collect();
        assert_eq!(positive, [TestResult::Positive, TestResult::QuickPositive]);
        assert_eq!(
            TestResult::QuickPositive.redeemed(),
            TestResult::QuickRedeemed
        );
        assert_eq!(TestResult::Positive.redeemed(), TestResult::Redeemed);
        assert_eq!(TestResult::Pending.redeemed(), TestResult::Redeemed);
        assert!(!TestResult::QuickNegative.is_lab_result());
    }

    #[test]
    fn serde_uses_the_code() {
        assert_eq!(serde_json::to_string(&TestResult::Positive).unwrap(), "2");
        assert_eq!(
            serde_json::from_str::<TestResult>("4").unwrap(),
            TestResult::Redeemed
        );
        assert!(serde_json::from_str::<TestResult>("10").is_err());
        assert!(serde_json::from_str::<TestResult>("\"2\"").is_err());
    }
}
