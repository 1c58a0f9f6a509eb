//! Keys as distribution holds them (compact: 28 bytes each), when each one may be published, and
//! the padding that hides how many real keys an hour had.
//!
//! A key is held as it is published: its transmission risk level as stored, its report type and
//! days since onset encoded from that level ([`TrlEncoding`], CWA's `EnfParameterAdapter`), so
//! an ENF v2 app computes the risk from them. Padding keys are built the same way.

use openwarn_protocol::gaen::TemporaryExposureKey;
use openwarn_protocol::metadata::TrlEncoding;
use openwarn_protocol::submission::v1::DiagnosisKey;

/// Seconds of one ENIntervalNumber.
pub const INTERVAL_SECONDS: i64 = 600;
/// Intervals of one day.
pub const INTERVALS_PER_DAY: i32 = 144;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub data: [u8; 16],
    pub rolling_start: i32,
    pub rolling_period: i32,
    pub transmission_risk: i8,
    /// Encoded from the transmission risk level.
    pub report_type: i8,
    /// Encoded from the transmission risk level.
    pub days_since_onset: i16,
}

impl Key {
    /// The key as published: report type and days since onset encoded from its risk level.
    /// `None` for a key the submission service could not have stored, or whose level has no
    /// encoding (outside 1..=8; CWA refuses to publish those too): such a key is skipped rather
    /// than published.
    pub fn from_wire(key: &DiagnosisKey, encoding: &TrlEncoding) -> Option<Self> {
        let (days_since_onset, report_type) = encoding.encode(key.transmission_risk_level)?;
        Some(Self {
            data: key.key_data.as_slice().try_into().ok()?,
            rolling_start: key.rolling_start_interval_number,
            rolling_period: key.rolling_period,
            transmission_risk: i8::try_from(key.transmission_risk_level).ok()?,
            report_type: i8::try_from(report_type).ok()?,
            days_since_onset: i16::try_from(days_since_onset).ok()?,
        })
    }

    pub fn to_export(&self) -> TemporaryExposureKey {
        TemporaryExposureKey {
            key_data: Some(self.data.to_vec()),
            transmission_risk_level: Some(i32::from(self.transmission_risk)),
            rolling_start_interval_number: Some(self.rolling_start),
            rolling_period: Some(self.rolling_period),
            report_type: Some(i32::from(self.report_type)),
            days_since_onset_of_symptoms: Some(i32::from(self.days_since_onset)),
        }
    }

    /// The hour (since the epoch) whose package carries this key: the hour it was submitted, or,
    /// for a key still valid then, the hour in which it has been expired for `embargo_seconds`.
    pub fn distribution_hour(&self, submission_hour: i64, embargo_seconds: i64) -> i64 {
        let expires =
            (i64::from(self.rolling_start) + i64::from(self.rolling_period)) * INTERVAL_SECONDS;
        submission_hour.max((expires + embargo_seconds).div_euclid(3600))
    }
}

/// Hours a key may wait between submission and distribution: a key submitted today expires at the
/// next midnight at the latest (24 h), plus the embargo, plus one for rounding.
pub fn max_lag_hours(embargo_seconds: i64) -> i64 {
    24 + embargo_seconds.div_euclid(3600) + 2
}

/// Pads `real` (the keys of hour `hour`) with fake keys up to `minimum`. Fake key bytes are
/// HMAC-SHA256(secret, "openwarn-padding" ‖ hour ‖ i) cut to 16 bytes, so a rerun derives the same
/// keys; their metadata copies the real keys' round-robin, so a fake looks like its neighbours.
/// An hour without real keys gets metadata drawn from the same HMAC: a start 1 to 14 days back, a
/// full day's period, a transmission risk 1..8, and its report type and days since onset encoded
/// as a real key's are.
pub fn pad(real: &mut Vec<Key>, hour: i64, minimum: usize, secret: &[u8], encoding: &TrlEncoding) {
    let originals = real.len();
    for i in 0..minimum.saturating_sub(originals) {
        let bytes = openwarn_domain::hmac_sha256(
            secret,
            &[
                b"openwarn-padding",
                &hour.to_be_bytes(),
                &(i as u64).to_be_bytes(),
            ],
        );
        let mut data = [0u8; 16];
        data.copy_from_slice(&bytes[..16]);
        let key = if originals > 0 {
            Key {
                data,
                ..real[i % originals]
            }
        } else {
            let day_start = i32::try_from(hour.div_euclid(24) * i64::from(INTERVALS_PER_DAY))
                .unwrap_or(i32::MAX);
            let days_back = 1 + i32::from(bytes[16] % 14);
            let transmission_risk = 1 + (bytes[17] % 8) as i8;
            // Every level 1..=8 has an encoding (checked when the encoding is built).
            let (days_since_onset, report_type) = encoding
                .encode(i32::from(transmission_risk))
                .unwrap_or((1, 1));
            Key {
                data,
                rolling_start: day_start - days_back * INTERVALS_PER_DAY,
                rolling_period: INTERVALS_PER_DAY,
                transmission_risk,
                report_type: i8::try_from(report_type).unwrap_or(1),
                days_since_onset: i16::try_from(days_since_onset).unwrap_or(1),
            }
        };
        real.push(key);
    }
}

/// Orders keys by their bytes (then rolling start) and drops repeats (the same key stored under
/// two submission types). The same bytes at two rolling starts are two keys, as in CWA.
pub fn sort_and_dedup(keys: &mut Vec<Key>) {
    keys.sort_unstable_by_key(|k| (k.data, k.rolling_start));
    keys.dedup_by(|a, b| (a.data, a.rolling_start) == (b.data, b.rolling_start));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(first: u8, rolling_start: i32, trl: i8) -> Key {
        Key {
            data: [first; 16],
            rolling_start,
            rolling_period: 144,
            transmission_risk: trl,
            report_type: 1,
            days_since_onset: 0,
        }
    }

    #[test]
    fn an_expired_key_goes_out_in_its_submission_hour() {
        // Day 20_000 starts at interval 2_880_000 = hour 480_000.
        let k = key(1, 2_880_000 - 144, 5); // expired at hour 480_000
        assert_eq!(k.distribution_hour(480_005, 7200), 480_005);
    }

    #[test]
    fn a_key_still_valid_waits_for_expiry_plus_the_embargo() {
        let today = key(1, 2_880_000, 5); // valid until hour 480_024
        assert_eq!(today.distribution_hour(480_010, 7200), 480_026);
        // A partial day: expires at interval 2_880_000 + 60 = hour 480_010.
        let partial = Key {
            rolling_period: 60,
            ..today
        };
        assert_eq!(partial.distribution_hour(480_003, 7200), 480_012);
        // Just expired before the embargo ends: still waits.
        assert_eq!(partial.distribution_hour(480_011, 7200), 480_012);
        assert!(today.distribution_hour(480_000, 7200) - 480_000 <= max_lag_hours(7200));
    }

    #[test]
    fn padding_fills_up_deterministically_with_metadata_of_real_keys() {
        let secret = b"secret";
        let reals = vec![key(1, 2_880_000, 3), key(2, 2_879_856, 7)];
        let mut a = reals.clone();
        pad(&mut a, 480_005, 140, secret, &TrlEncoding::CWA);
        let mut b = reals.clone();
        pad(&mut b, 480_005, 140, secret, &TrlEncoding::CWA);
        assert_eq!(a.len(), 140);
        assert_eq!(a, b, "same secret and hour, same padding");
        for (i, fake) in a[2..].iter().enumerate() {
            let model = reals[i % 2];
            assert_eq!(
                (
                    fake.rolling_start,
                    fake.transmission_risk,
                    fake.days_since_onset
                ),
                (
                    model.rolling_start,
                    model.transmission_risk,
                    model.days_since_onset
                )
            );
            assert_ne!(fake.data, model.data);
        }
        let mut other_hour = reals.clone();
        pad(&mut other_hour, 480_006, 140, secret, &TrlEncoding::CWA);
        assert_ne!(a[2].data, other_hour[2].data);
        let mut other_secret = reals;
        pad(&mut other_secret, 480_005, 140, b"other", &TrlEncoding::CWA);
        assert_ne!(a[2].data, other_secret[2].data);
    }

    #[test]
    fn a_full_hour_is_not_padded_and_an_empty_one_gets_plausible_keys() {
        let mut full: Vec<Key> = (0..150).map(|i| key(i, 2_880_000, 5)).collect();
        pad(&mut full, 480_005, 140, b"s", &TrlEncoding::CWA);
        assert_eq!(full.len(), 150);

        let mut empty = Vec::new();
        pad(&mut empty, 480_005, 140, b"s", &TrlEncoding::CWA);
        assert_eq!(empty.len(), 140);
        for k in &empty {
            assert_eq!(k.rolling_start % 144, 0);
            assert!((2_880_000 - 14 * 144..2_880_000).contains(&k.rolling_start));
            assert!((1..=8).contains(&k.transmission_risk));
            assert_eq!(k.rolling_period, 144);
            // Report type and days since onset are encoded from the level, as a real key's.
            assert_eq!(
                Some((i32::from(k.days_since_onset), i32::from(k.report_type))),
                TrlEncoding::CWA.encode(i32::from(k.transmission_risk))
            );
        }
    }

    #[test]
    fn keys_submission_could_not_have_stored_are_skipped() {
        let good = DiagnosisKey {
            key_data: vec![1; 16],
            rolling_start_interval_number: 2_880_000,
            rolling_period: 144,
            transmission_risk_level: 5,
            report_type: 1,
            days_since_onset_of_symptoms: -2,
            ..DiagnosisKey::default()
        };
        let key = Key::from_wire(&good, &TrlEncoding::CWA).unwrap();
        assert_eq!(key.to_export().transmission_risk_level, Some(5));
        for bad in [
            DiagnosisKey {
                key_data: vec![1; 15],
                ..good.clone()
            },
            DiagnosisKey {
                transmission_risk_level: 1000,
                ..good.clone()
            },
            DiagnosisKey {
                transmission_risk_level: 0,
                ..good.clone()
            },
            DiagnosisKey {
                transmission_risk_level: 9,
                ..good.clone()
            },
        ] {
            assert!(Key::from_wire(&bad, &TrlEncoding::CWA).is_none(), "{bad:?}");
        }
    }

    /// cwa-server `EnfParameterAdapterUnitTest.dsosAndReportTypeOfKeysShouldBeAdapted`: keys
    /// submitted with any report type and days since onset are published with both encoded from
    /// their risk level (here the test's own table), the level itself unchanged.
    #[test]
    fn enf_parameter_adapter_unit_test_dsos_and_report_type_of_keys_should_be_adapted() {
        let table = TrlEncoding::new(&[1, 2, 2, 2, 2, 1, 2, 1], &[1, 2, 3, 4, 1, 2, 3, 4]).unwrap();
        for (trl, dsos, report_type) in [(1, 1, 1), (3, 2, 3), (5, 2, 1), (8, 1, 4)] {
            let submitted = DiagnosisKey {
                key_data: vec![6; 16],
                rolling_start_interval_number: 51 * 144,
                rolling_period: 144,
                transmission_risk_level: trl,
                // CONFIRMED_CLINICAL_DIAGNOSIS, 10 days since onset, as in CWA's test.
                report_type: 2,
                days_since_onset_of_symptoms: 10,
                ..DiagnosisKey::default()
            };
            let published = Key::from_wire(&submitted, &table).unwrap().to_export();
            assert_eq!(
                (
                    published.transmission_risk_level,
                    published.days_since_onset_of_symptoms,
                    published.report_type
                ),
                (Some(trl), Some(dsos), Some(report_type)),
                "TRL {trl}"
            );
        }
    }

    /// cwa-server `EnfParameterAdapterComponentTest.dsosAndReportTypeOfKeysShouldBeAdapted`:
    /// with CWA's default table, e.g. TRL 1 → (1, RECURSIVE), TRL 8 → (2, CONFIRMED_TEST).
    #[test]
    fn enf_parameter_adapter_encodes_trl_1_as_dsos_1_report_type_4() {
        for (trl, dsos, report_type) in [
            (1, 1, 4),
            (2, 2, 4),
            (3, 1, 3),
            (4, 2, 3),
            (5, 1, 2),
            (6, 2, 2),
            (7, 1, 1),
            (8, 2, 1),
        ] {
            let submitted = DiagnosisKey {
                key_data: vec![6; 16],
                transmission_risk_level: trl,
                report_type: 1,
                days_since_onset_of_symptoms: 3997,
                ..DiagnosisKey::default()
            };
            let published = Key::from_wire(&submitted, &TrlEncoding::CWA)
                .unwrap()
                .to_export();
            assert_eq!(
                (
                    published.days_since_onset_of_symptoms,
                    published.report_type
                ),
                (Some(dsos), Some(report_type)),
                "TRL {trl}"
            );
        }
    }

    #[test]
    fn sorting_orders_by_bytes_and_drops_repeats() {
        let mut keys = vec![
            key(3, 144, 1),
            key(1, 0, 1),
            key(3, 0, 2),
            key(2, 0, 1),
            key(3, 0, 1),
        ];
        sort_and_dedup(&mut keys);
        let order: Vec<(u8, i32)> = keys.iter().map(|k| (k.data[0], k.rolling_start)).collect();
        assert_eq!(
            order,
            [(1, 0), (2, 0), (3, 0), (3, 144)],
            "the same bytes at another rolling start is another key"
        );
    }
}
