//! The submission rules of the contract, as a pure function of the payload and the clock.
//!
//! Checked in order, each with its own machine-readable reason: 1 to `max_keys` keys; `key_data`
//! exactly 16 bytes; no key twice; `rolling_start_interval_number` a multiple of 144 (UTC
//! midnight); `rolling_period` 1..144 (144 when absent); transmission risk 1..8 and days since
//! onset -15..4000 (CWA's `DiagnosisKey` bounds), at least one of the two present;
//! `report_type`, when present, one of the export format's report types (0..5);
//! `submission_type`, when present, PCR (0) or rapid test (1); `origin` empty or our country;
//! every visited country supported (the origin is added to them, as CWA does). Keys whose start
//! lies in the future or more than 14 days back are then dropped silently. The missing one of transmission risk and days since onset is derived with
//! [`trl_from_dsos`] / [`dsos_from_trl`].

use openwarn_domain::{CountryCode, VisitedCountries};
use openwarn_protocol::cwa::SubmissionPayload;
use openwarn_protocol::cwa::submission_payload::SubmissionType;
use openwarn_protocol::gaen::temporary_exposure_key::ReportType;
use std::collections::HashSet;

/// Rolling intervals (10 minutes) per day.
pub const INTERVALS_PER_DAY: i32 = 144;
/// Keys may reach back this many days.
pub const MAX_KEY_AGE_DAYS: i32 = 14;
/// Days since onset of symptoms accepted (CWA's `DiagnosisKey.MIN_DAYS_SINCE_ONSET_OF_SYMPTOMS`
/// and `MAX_DAYS_SINCE_ONSET_OF_SYMPTOMS`).
pub const MIN_DAYS_SINCE_ONSET: i32 = -15;
pub const MAX_DAYS_SINCE_ONSET: i32 = 4000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    pub max_keys: usize,
    /// This backend's country, e.g. `DE`.
    pub country: CountryCode,
    /// Countries a key may have been used in (includes `country`).
    pub supported_countries: HashSet<CountryCode>,
}

/// Why a payload is refused (400), as its machine-readable reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    NoKeys,
    TooManyKeys,
    InvalidKeyData,
    MisalignedRollingStart,
    InvalidRollingPeriod,
    InvalidTransmissionRisk,
    InvalidDaysSinceOnset,
    MissingRiskAndOnset,
    InvalidReportType,
    InvalidSubmissionType,
    UnsupportedOrigin,
    UnsupportedCountry,
}

impl Refusal {
    pub fn reason(self) -> &'static str {
        match self {
            Self::NoKeys => "no_keys",
            Self::TooManyKeys => "too_many_keys",
            Self::InvalidKeyData => "invalid_key_data",
            Self::MisalignedRollingStart => "misaligned_rolling_start",
            Self::InvalidRollingPeriod => "invalid_rolling_period",
            Self::InvalidTransmissionRisk => "invalid_transmission_risk",
            Self::InvalidDaysSinceOnset => "invalid_days_since_onset",
            Self::MissingRiskAndOnset => "missing_transmission_risk_and_days_since_onset",
            Self::InvalidReportType => "invalid_report_type",
            Self::InvalidSubmissionType => "invalid_submission_type",
            Self::UnsupportedOrigin => "unsupported_origin",
            Self::UnsupportedCountry => "unsupported_country",
        }
    }
}

/// One key ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidKey {
    pub key_data: Vec<u8>,
    pub rolling_start_interval_number: i32,
    pub rolling_period: i32,
    pub transmission_risk_level: i32,
    pub report_type: i32,
    pub days_since_onset_of_symptoms: i32,
}

/// A payload that passed every rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidSubmission {
    /// The keys to store: possibly fewer than submitted (too old or future keys are dropped).
    pub keys: Vec<ValidKey>,
    pub origin: CountryCode,
    pub visited_countries: VisitedCountries,
    pub consent_to_federation: bool,
    pub submission_type: i32,
}

pub use openwarn_protocol::metadata::{dsos_from_trl, trl_from_dsos};

/// Checks a payload against every rule; `now_interval` is the current 10-minute interval number.
pub fn validate(
    payload: &SubmissionPayload,
    rules: &Rules,
    now_interval: i32,
) -> Result<ValidSubmission, Refusal> {
    if payload.keys.is_empty() {
        return Err(Refusal::NoKeys);
    }
    if payload.keys.len() > rules.max_keys {
        return Err(Refusal::TooManyKeys);
    }
    let mut seen = HashSet::with_capacity(payload.keys.len());
    let mut checked = Vec::with_capacity(payload.keys.len());
    for key in &payload.keys {
        let key_data = key.key_data.clone().unwrap_or_default();
        if key_data.len() != 16 {
            return Err(Refusal::InvalidKeyData);
        }
        let start = key
            .rolling_start_interval_number
            .ok_or(Refusal::MisalignedRollingStart)?;
        if start < 0 || start % INTERVALS_PER_DAY != 0 {
            return Err(Refusal::MisalignedRollingStart);
        }
        let period = key.rolling_period();
        if !(1..=INTERVALS_PER_DAY).contains(&period) {
            return Err(Refusal::InvalidRollingPeriod);
        }
        let trl = key.transmission_risk_level;
        let dsos = key.days_since_onset_of_symptoms;
        if trl.is_some_and(|t| !(1..=8).contains(&t)) {
            return Err(Refusal::InvalidTransmissionRisk);
        }
        if dsos.is_some_and(|d| !(MIN_DAYS_SINCE_ONSET..=MAX_DAYS_SINCE_ONSET).contains(&d)) {
            return Err(Refusal::InvalidDaysSinceOnset);
        }
        let (trl, dsos) = match (trl, dsos) {
            (Some(t), Some(d)) => (t, d),
            (Some(t), None) => (t, dsos_from_trl(t)),
            (None, Some(d)) => (trl_from_dsos(d), d),
            (None, None) => return Err(Refusal::MissingRiskAndOnset),
        };
        // A value outside the enum would be stored and then never published (distribution
        // converts known report types only): refused instead.
        let report_type = key.report_type.unwrap_or(1);
        if ReportType::try_from(report_type).is_err() {
            return Err(Refusal::InvalidReportType);
        }
        // The same key data at the same rolling start is one key, kept once; at another rolling
        // start it is another key (CWA accepts both, its tests upload such payloads).
        if !seen.insert((key_data.clone(), start)) {
            continue;
        }
        checked.push(ValidKey {
            key_data,
            rolling_start_interval_number: start,
            rolling_period: period,
            transmission_risk_level: trl,
            report_type,
            days_since_onset_of_symptoms: dsos,
        });
    }
    let submission_type = payload.submission_type.unwrap_or(0);
    if SubmissionType::try_from(submission_type).is_err() {
        return Err(Refusal::InvalidSubmissionType);
    }
    let origin = match payload.origin.as_deref() {
        None | Some("") => rules.country.clone(),
        Some(o) if rules.country == o => rules.country.clone(),
        Some(_) => return Err(Refusal::UnsupportedOrigin),
    };
    // A code that does not parse is not a supported country either.
    let visited: Vec<CountryCode> = payload
        .visited_countries
        .iter()
        .map(|c| CountryCode::try_from(c.as_str()))
        .collect::<Result<_, _>>()
        .map_err(|_| Refusal::UnsupportedCountry)?;
    if visited
        .iter()
        .any(|c| !rules.supported_countries.contains(c))
    {
        return Err(Refusal::UnsupportedCountry);
    }
    // Sorted, each once, the origin among them: as CWA (`DiagnosisKeyBuilder`
    // `enhanceVisitedCountriesWithOriginCountry`), a key is relevant where it was submitted.
    let visited_countries: VisitedCountries = visited.into_iter().chain([origin.clone()]).collect();

    // Silently drop keys that start in the future or more than 14 days back.
    let today = now_interval - now_interval.rem_euclid(INTERVALS_PER_DAY);
    let oldest = today - MAX_KEY_AGE_DAYS * INTERVALS_PER_DAY;
    checked.retain(|k| {
        k.rolling_start_interval_number <= now_interval && k.rolling_start_interval_number >= oldest
    });

    Ok(ValidSubmission {
        keys: checked,
        origin,
        visited_countries,
        consent_to_federation: payload.consent_to_federation.unwrap_or(false),
        submission_type,
    })
}

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;
    use openwarn_protocol::gaen::TemporaryExposureKey;

    const NOW: i32 = 144 * 20_000 + 50; // 50 intervals into day 20000
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

    fn key(n: u8, days_back: i32) -> TemporaryExposureKey {
        TemporaryExposureKey {
            key_data: Some(vec![n; 16]),
            transmission_risk_level: Some(5),
            rolling_start_interval_number: Some(TODAY - days_back * 144),
            rolling_period: Some(144),
            report_type: Some(1),
            days_since_onset_of_symptoms: Some(2),
        }
    }

    fn payload(keys: Vec<TemporaryExposureKey>) -> SubmissionPayload {
        SubmissionPayload {
            keys,
            origin: Some("DE".into()),
            visited_countries: vec!["FR".into()],
            ..Default::default()
        }
    }

    fn refused(p: SubmissionPayload) -> Refusal {
        validate(&p, &rules(), NOW).unwrap_err()
    }

    #[test]
    fn report_and_submission_types_outside_their_enums_are_refused() {
        for bad in [99, 200, -1, 6, 7] {
            let mut k = key(1, 1);
            k.report_type = Some(bad);
            assert_eq!(
                refused(payload(vec![k])),
                Refusal::InvalidReportType,
                "{bad}"
            );
        }
        for good in 0..=5 {
            let mut k = key(1, 1);
            k.report_type = Some(good);
            let valid = validate(&payload(vec![k]), &rules(), NOW).unwrap();
            assert_eq!(valid.keys[0].report_type, good);
        }
        for bad in [2, 7, -1, 99] {
            let mut p = payload(vec![key(1, 1)]);
            p.submission_type = Some(bad);
            assert_eq!(refused(p), Refusal::InvalidSubmissionType, "{bad}");
        }
        for good in [0, 1] {
            let mut p = payload(vec![key(1, 1)]);
            p.submission_type = Some(good);
            assert_eq!(validate(&p, &rules(), NOW).unwrap().submission_type, good);
        }
        assert_eq!(Refusal::InvalidReportType.reason(), "invalid_report_type");
        assert_eq!(
            Refusal::InvalidSubmissionType.reason(),
            "invalid_submission_type"
        );
    }

    fn with_key(f: impl FnOnce(&mut TemporaryExposureKey)) -> SubmissionPayload {
        let mut k = key(1, 1);
        f(&mut k);
        payload(vec![k])
    }

    #[test]
    fn a_valid_payload_passes() {
        let valid = validate(
            &payload((0..14).map(|i| key(i, i32::from(i))).collect()),
            &rules(),
            NOW,
        )
        .unwrap();
        assert_eq!(valid.keys.len(), 14);
        assert_eq!(valid.origin, "DE");
        assert_eq!(valid.visited_countries.to_strings(), vec!["DE", "FR"]);
        assert_eq!(valid.keys[3].rolling_start_interval_number, TODAY - 3 * 144);
    }

    #[test]
    fn one_to_max_keys() {
        assert_eq!(refused(payload(vec![])), Refusal::NoKeys);
        assert_eq!(
            refused(payload((0..15).map(|i| key(i, 0)).collect())),
            Refusal::TooManyKeys
        );
        let mut more = rules();
        more.max_keys = 30;
        assert!(validate(&payload((0..15).map(|i| key(i, 0)).collect()), &more, NOW).is_ok());
    }

    #[test]
    fn key_data_is_16_bytes() {
        assert_eq!(
            refused(with_key(|k| k.key_data = Some(vec![1; 15]))),
            Refusal::InvalidKeyData
        );
        assert_eq!(
            refused(with_key(|k| k.key_data = Some(vec![1; 17]))),
            Refusal::InvalidKeyData
        );
        assert_eq!(
            refused(with_key(|k| k.key_data = None)),
            Refusal::InvalidKeyData
        );
    }

    #[test]
    fn a_key_repeated_is_kept_once_per_rolling_start() {
        // Key 1 twice at one rolling start, and once more a day earlier.
        let submission = validate(
            &payload(vec![key(1, 1), key(1, 1), key(1, 2)]),
            &rules(),
            NOW,
        )
        .unwrap();
        let kept: Vec<(Vec<u8>, i32)> = submission
            .keys
            .iter()
            .map(|k| (k.key_data.clone(), k.rolling_start_interval_number))
            .collect();
        assert_eq!(kept.len(), 2, "{kept:?}");
        assert_eq!(kept[0].0, kept[1].0);
        assert_ne!(kept[0].1, kept[1].1);
    }

    #[test]
    fn rolling_start_is_a_utc_midnight() {
        assert_eq!(
            refused(with_key(
                |k| k.rolling_start_interval_number = Some(TODAY - 144 + 1)
            )),
            Refusal::MisalignedRollingStart
        );
        assert_eq!(
            refused(with_key(|k| k.rolling_start_interval_number = None)),
            Refusal::MisalignedRollingStart
        );
        assert_eq!(
            refused(with_key(|k| k.rolling_start_interval_number = Some(-144))),
            Refusal::MisalignedRollingStart
        );
    }

    #[test]
    fn rolling_period_is_1_to_144_defaulting_to_144() {
        assert_eq!(
            refused(with_key(|k| k.rolling_period = Some(0))),
            Refusal::InvalidRollingPeriod
        );
        assert_eq!(
            refused(with_key(|k| k.rolling_period = Some(145))),
            Refusal::InvalidRollingPeriod
        );
        let valid = validate(&with_key(|k| k.rolling_period = None), &rules(), NOW).unwrap();
        assert_eq!(valid.keys[0].rolling_period, 144);
        assert!(validate(&with_key(|k| k.rolling_period = Some(1)), &rules(), NOW).is_ok());
    }

    #[test]
    fn transmission_risk_is_1_to_8() {
        assert_eq!(
            refused(with_key(|k| k.transmission_risk_level = Some(0))),
            Refusal::InvalidTransmissionRisk
        );
        assert_eq!(
            refused(with_key(|k| k.transmission_risk_level = Some(9))),
            Refusal::InvalidTransmissionRisk
        );
    }

    #[test]
    fn days_since_onset_is_minus_15_to_4000() {
        assert_eq!(
            refused(with_key(|k| k.days_since_onset_of_symptoms = Some(-16))),
            Refusal::InvalidDaysSinceOnset
        );
        assert_eq!(
            refused(with_key(|k| k.days_since_onset_of_symptoms = Some(4001))),
            Refusal::InvalidDaysSinceOnset
        );
        assert!(
            validate(
                &with_key(|k| k.days_since_onset_of_symptoms = Some(4000)),
                &rules(),
                NOW
            )
            .is_ok()
        );
        assert!(
            validate(
                &with_key(|k| k.days_since_onset_of_symptoms = Some(-15)),
                &rules(),
                NOW
            )
            .is_ok()
        );
    }

    #[test]
    fn at_least_one_of_risk_and_onset_and_the_other_is_derived() {
        assert_eq!(
            refused(with_key(|k| {
                k.transmission_risk_level = None;
                k.days_since_onset_of_symptoms = None;
            })),
            Refusal::MissingRiskAndOnset
        );
        let only_dsos = validate(
            &with_key(|k| k.transmission_risk_level = None),
            &rules(),
            NOW,
        )
        .unwrap();
        assert_eq!(only_dsos.keys[0].transmission_risk_level, trl_from_dsos(2));
        let only_trl = validate(
            &with_key(|k| k.days_since_onset_of_symptoms = None),
            &rules(),
            NOW,
        )
        .unwrap();
        assert_eq!(
            only_trl.keys[0].days_since_onset_of_symptoms,
            dsos_from_trl(5)
        );
    }

    /// CWA's maps, as CWA applies them: every derived value is one this service accepts. (They do
    /// not round-trip: CWA derives days since onset 3997 for risk 8, and risk 7 for 3997.)
    #[test]
    fn derivations_stay_in_range() {
        for dsos in MIN_DAYS_SINCE_ONSET..=MAX_DAYS_SINCE_ONSET {
            assert!((1..=8).contains(&trl_from_dsos(dsos)));
        }
        for trl in 1..=8 {
            assert!(
                (MIN_DAYS_SINCE_ONSET..=MAX_DAYS_SINCE_ONSET).contains(&dsos_from_trl(trl)),
                "trl {trl}"
            );
        }
    }

    #[test]
    fn origin_is_empty_or_our_country() {
        let mut p = payload(vec![key(1, 1)]);
        p.origin = Some("FR".into());
        assert_eq!(refused(p.clone()), Refusal::UnsupportedOrigin);
        p.origin = Some(String::new());
        assert_eq!(validate(&p, &rules(), NOW).unwrap().origin, "DE");
        p.origin = None;
        assert_eq!(validate(&p, &rules(), NOW).unwrap().origin, "DE");
    }

    #[test]
    fn visited_countries_are_supported() {
        let mut p = payload(vec![key(1, 1)]);
        p.visited_countries = vec!["FR".into(), "XX".into()];
        assert_eq!(refused(p.clone()), Refusal::UnsupportedCountry);
        p.visited_countries = vec!["NL".into(), "FR".into(), "NL".into()];
        assert_eq!(
            validate(&p, &rules(), NOW)
                .unwrap()
                .visited_countries
                .to_strings(),
            vec!["DE", "FR", "NL"],
            "the origin added, each once"
        );
        p.visited_countries = vec![];
        p.origin = None;
        assert_eq!(
            validate(&p, &rules(), NOW)
                .unwrap()
                .visited_countries
                .to_strings(),
            vec!["DE"]
        );
    }

    #[test]
    fn future_and_too_old_keys_are_dropped_silently() {
        let mut future = key(1, 0);
        future.rolling_start_interval_number = Some(TODAY + 144);
        let valid = validate(
            &payload(vec![future, key(2, 14), key(3, 15), key(4, 0)]),
            &rules(),
            NOW,
        )
        .unwrap();
        let kept: Vec<u8> = valid.keys.iter().map(|k| k.key_data[0]).collect();
        assert_eq!(kept, vec![2, 4]);
        // All dropped is still a valid submission (200, nothing stored).
        let valid = validate(&payload(vec![key(5, 20)]), &rules(), NOW).unwrap();
        assert!(valid.keys.is_empty());
    }
}
