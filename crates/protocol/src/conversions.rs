//! Conversions between wire enums and the domain types of `openwarn-domain`.

use crate::testresult::v1::TestResult as Wire;
use openwarn_domain::TestResult;

impl From<TestResult> for Wire {
    fn from(r: TestResult) -> Self {
        match r {
            TestResult::Pending => Self::Pending,
            TestResult::Negative => Self::Negative,
            TestResult::Positive => Self::Positive,
            TestResult::Invalid => Self::Invalid,
            TestResult::Redeemed => Self::Redeemed,
            TestResult::QuickPending => Self::QuickPending,
            TestResult::QuickNegative => Self::QuickNegative,
            TestResult::QuickPositive => Self::QuickPositive,
            TestResult::QuickInvalid => Self::QuickInvalid,
            TestResult::QuickRedeemed => Self::QuickRedeemed,
        }
    }
}

impl From<Wire> for TestResult {
    fn from(r: Wire) -> Self {
        match r {
            Wire::Pending => Self::Pending,
            Wire::Negative => Self::Negative,
            Wire::Positive => Self::Positive,
            Wire::Invalid => Self::Invalid,
            Wire::Redeemed => Self::Redeemed,
            Wire::QuickPending => Self::QuickPending,
            Wire::QuickNegative => Self::QuickNegative,
            Wire::QuickPositive => Self::QuickPositive,
            Wire::QuickInvalid => Self::QuickInvalid,
            Wire::QuickRedeemed => Self::QuickRedeemed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_results_keep_their_numbers_on_the_wire() {
        for r in TestResult::ALL {
            let wire = Wire::from(r);
            assert_eq!(wire as i32, i32::from(r), "{r:?}");
            assert_eq!(TestResult::from(wire), r);
            assert_eq!(Wire::try_from(i32::from(r)), Ok(wire));
        }
        assert!(Wire::try_from(10).is_err());
    }
}
