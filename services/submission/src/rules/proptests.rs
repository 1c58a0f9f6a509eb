//! Property-based tests of the upload path's parsing (issue 19 §2), on a fixed case budget: any
//! bytes decode or are refused without a panic; whatever passes the rules is inside every range
//! the contract names (so an accepted key is one distribution publishes); a payload of valid
//! keys passes; one field moved out of its range is refused with its own reason.

use super::*;
use openwarn_protocol::Message;
use openwarn_protocol::gaen::TemporaryExposureKey;
use proptest::prelude::*;

const CASES: u32 = 256;
const NOW: i32 = 144 * 20_000 + 50;
const TODAY: i32 = 144 * 20_000;

fn rules() -> Rules {
    Rules {
        max_keys: 14,
        country: "DE".parse().unwrap(),
        supported_countries: ["DE", "FR", "NL"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect(),
    }
}

/// Every accepted key is inside the ranges of the contract and of the export format.
fn assert_in_range(valid: &ValidSubmission) -> Result<(), TestCaseError> {
    for k in &valid.keys {
        prop_assert_eq!(k.key_data.len(), 16);
        prop_assert_eq!(k.rolling_start_interval_number % INTERVALS_PER_DAY, 0);
        prop_assert!(k.rolling_start_interval_number <= NOW);
        prop_assert!(
            k.rolling_start_interval_number >= TODAY - MAX_KEY_AGE_DAYS * INTERVALS_PER_DAY
        );
        prop_assert!((1..=INTERVALS_PER_DAY).contains(&k.rolling_period));
        prop_assert!((1..=8).contains(&k.transmission_risk_level));
        prop_assert!(
            (MIN_DAYS_SINCE_ONSET..=MAX_DAYS_SINCE_ONSET).contains(&k.days_since_onset_of_symptoms)
        );
        prop_assert!(
            ReportType::try_from(k.report_type).is_ok(),
            "{}",
            k.report_type
        );
    }
    prop_assert!(SubmissionType::try_from(valid.submission_type).is_ok());
    prop_assert_eq!(valid.origin.as_str(), "DE");
    prop_assert!(valid.keys.len() <= 14);
    Ok(())
}

prop_compose! {
    fn valid_key()(
        data in any::<[u8; 16]>(),
        days_back in 0..=MAX_KEY_AGE_DAYS,
        period in proptest::option::of(1..=INTERVALS_PER_DAY),
        trl in proptest::option::of(1..=8i32),
        dsos in proptest::option::of(MIN_DAYS_SINCE_ONSET..=MAX_DAYS_SINCE_ONSET),
        report_type in proptest::option::of(0..=5i32),
    ) -> TemporaryExposureKey {
        // At least one of risk and onset.
        let trl = if trl.is_none() && dsos.is_none() { Some(6) } else { trl };
        TemporaryExposureKey {
            key_data: Some(data.to_vec()),
            transmission_risk_level: trl,
            rolling_start_interval_number: Some(TODAY - days_back * INTERVALS_PER_DAY),
            rolling_period: period,
            report_type,
            days_since_onset_of_symptoms: dsos,
        }
    }
}

prop_compose! {
    fn valid_payload()(
        keys in proptest::collection::vec(valid_key(), 1..=14),
        visited in proptest::sample::subsequence(vec!["DE", "FR", "NL"], 0..=3),
        origin in proptest::sample::select(vec![None, Some(""), Some("DE")]),
        consent in any::<Option<bool>>(),
        submission_type in proptest::option::of(0..=1i32),
        padding in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)),
    ) -> SubmissionPayload {
        SubmissionPayload {
            keys,
            request_padding: padding,
            visited_countries: visited.into_iter().map(str::to_owned).collect(),
            origin: origin.map(str::to_owned),
            consent_to_federation: consent,
            submission_type,
        }
    }
}

/// An out-of-range value for a field, and the reason its refusal must carry.
#[derive(Debug, Clone)]
enum Break {
    KeyLength(usize),
    Start(i32),
    Period(i32),
    Risk(i32),
    Onset(i32),
    Report(i32),
    Submission(i32),
    Origin(String),
    Visited(String),
}

fn outside(range: std::ops::RangeInclusive<i32>) -> impl Strategy<Value = i32> {
    any::<i32>().prop_filter("outside the range", move |v| !range.contains(v))
}

fn a_break() -> impl Strategy<Value = Break> {
    prop_oneof![
        (0usize..64)
            .prop_filter("not 16", |n| *n != 16)
            .prop_map(Break::KeyLength),
        any::<i32>()
            .prop_filter("not aligned", |s| *s < 0 || s % INTERVALS_PER_DAY != 0)
            .prop_map(Break::Start),
        outside(1..=INTERVALS_PER_DAY).prop_map(Break::Period),
        outside(1..=8).prop_map(Break::Risk),
        outside(MIN_DAYS_SINCE_ONSET..=MAX_DAYS_SINCE_ONSET).prop_map(Break::Onset),
        outside(0..=5).prop_map(Break::Report),
        outside(0..=1).prop_map(Break::Submission),
        "[A-Z]{2}|\\PC{0,4}"
            .prop_filter("not ours", |o| !o.is_empty() && o != "DE")
            .prop_map(Break::Origin),
        "[A-Z]{2}|\\PC{0,4}"
            .prop_filter("not supported", |c| !["DE", "FR", "NL"]
                .contains(&c.as_str()))
            .prop_map(Break::Visited),
    ]
}

impl Break {
    fn apply(&self, p: &mut SubmissionPayload, at: usize) -> Refusal {
        let at = at % p.keys.len();
        let key = &mut p.keys[at];
        match self {
            Self::KeyLength(n) => {
                key.key_data = Some(vec![7; *n]);
                Refusal::InvalidKeyData
            }
            Self::Start(s) => {
                key.rolling_start_interval_number = Some(*s);
                Refusal::MisalignedRollingStart
            }
            Self::Period(v) => {
                key.rolling_period = Some(*v);
                Refusal::InvalidRollingPeriod
            }
            Self::Risk(v) => {
                key.transmission_risk_level = Some(*v);
                Refusal::InvalidTransmissionRisk
            }
            Self::Onset(v) => {
                key.days_since_onset_of_symptoms = Some(*v);
                Refusal::InvalidDaysSinceOnset
            }
            Self::Report(v) => {
                key.report_type = Some(*v);
                Refusal::InvalidReportType
            }
            Self::Submission(v) => {
                p.submission_type = Some(*v);
                Refusal::InvalidSubmissionType
            }
            Self::Origin(o) => {
                p.origin = Some(o.clone());
                Refusal::UnsupportedOrigin
            }
            Self::Visited(c) => {
                p.visited_countries.push(c.clone());
                Refusal::UnsupportedCountry
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn any_bytes_decode_or_are_refused_and_what_passes_is_in_range(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(payload) = SubmissionPayload::decode(bytes.as_slice())
            && let Ok(valid) = validate(&payload, &rules(), NOW)
        {
            assert_in_range(&valid)?;
        }
    }

    #[test]
    fn a_mangled_valid_payload_never_passes_out_of_range(
        p in valid_payload(), at in any::<usize>(), flip in any::<u8>()
    ) {
        // One byte of a valid encoding changed: decoded or refused, never out of range.
        let mut bytes = p.encode_to_vec();
        let i = at % bytes.len();
        bytes[i] ^= flip;
        if let Ok(payload) = SubmissionPayload::decode(bytes.as_slice())
            && let Ok(valid) = validate(&payload, &rules(), NOW)
        {
            assert_in_range(&valid)?;
        }
    }

    #[test]
    fn a_payload_of_valid_keys_passes_with_every_distinct_key(p in valid_payload()) {
        let valid = validate(&p, &rules(), NOW).expect("valid");
        assert_in_range(&valid)?;
        let distinct: std::collections::HashSet<_> = p
            .keys
            .iter()
            .map(|k| (k.key_data.clone(), k.rolling_start_interval_number))
            .collect();
        prop_assert_eq!(valid.keys.len(), distinct.len());
        // The decoded form of the encoding passes the same way.
        let again = SubmissionPayload::decode(p.encode_to_vec().as_slice()).expect("decodes");
        prop_assert_eq!(validate(&again, &rules(), NOW), Ok(valid));
    }

    #[test]
    fn one_field_out_of_range_is_refused_with_its_reason(p in valid_payload(), b in a_break(), at in any::<usize>()) {
        let mut p = p;
        let expected = b.apply(&mut p, at);
        let got = validate(&p, &rules(), NOW);
        // Key checks run key by key in order; another key cannot fail (all valid), so the reason
        // is the broken field's — unless the broken key is also a missing-risk-and-onset one.
        prop_assert_eq!(got, Err(expected), "{:?}", b);
    }

    #[test]
    fn too_many_keys_are_refused(keys in proptest::collection::vec(valid_key(), 15..40)) {
        let p = SubmissionPayload { keys, ..SubmissionPayload::default() };
        prop_assert_eq!(validate(&p, &rules(), NOW), Err(Refusal::TooManyKeys));
    }
}
