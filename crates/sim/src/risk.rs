//! The risk model of the seed architecture (Exposure Notification API v1 with the CWA 1.x
//! calculation), computed from the published application configuration:
//!
//! - per exposure, the combined risk score is the product of the transmission-risk, duration,
//!   days-since-exposure and attenuation scores (0–8 each); below `min_risk_score` it counts as 0;
//! - the minutes spent in each attenuation bucket (below the lower threshold, between, above the
//!   upper one; each capped at 30 as the API does) are weighted and summed with the bucket offset
//!   into the exposure score;
//! - total risk = highest combined score / normalisation divisor × exposure score, and the risk
//!   score classes (`[min, max)`) turn it into low or high. No matched key at all is "none".

use openwarn_protocol::config::v1::ApplicationConfiguration;
use openwarn_protocol::config::v1::risk_score_parameters as params;
use openwarn_protocol::gaen::TemporaryExposureKey;
use openwarn_protocol::gaen::temporary_exposure_key::ReportType;

/// The transmission risk level of a published key as a CWA app with Exposure Notification v2
/// computes it: it never reads the key's `transmission_risk_level` (ENF v2 does not pass it on),
/// only what distribution encoded into `days_since_onset_of_symptoms` and `report_type`.
///
/// - ENF maps days since onset to an infectiousness with the app configuration's
///   `daysSinceOnsetToInfectiousness` (CWA: 1 → standard, 2 → high; every other value → none;
///   a key without the field: `infectiousnessWhenDaysSinceOnsetMissing`, CWA 0 = none). A key
///   of infectiousness none is dropped: it matches nothing.
/// - A key without a report type gets `reportTypeWhenMissing` (CWA 1, confirmed test); a revoked
///   key is dropped.
/// - The app adds the offsets of its `trlEncoding` (CWA: infectiousness standard 1, high 2;
///   report type recursive 0, self report 2, clinical diagnosis 4, confirmed test 6).
///
/// The values are CWA's published ones (cwa-server `main-config/v2/diagnosis-keys-data-mapping
/// .yaml` and `risk-calculation-parameters.yaml`); they decode distribution's default encoding
/// (`openwarn_protocol::metadata::TrlEncoding::CWA`) back to the submitted level. `None`: the
/// key is dropped.
#[must_use]
pub fn transmission_risk_level(key: &TemporaryExposureKey) -> Option<i32> {
    let infectiousness_offset = match key.days_since_onset_of_symptoms? {
        1 => 1,
        2 => 2,
        _ => return None,
    };
    let report_type =
        ReportType::try_from(key.report_type.unwrap_or(ReportType::ConfirmedTest as i32)).ok()?;
    let report_type_offset = match report_type {
        ReportType::Recursive => 0,
        ReportType::SelfReport => 2,
        ReportType::ConfirmedClinicalDiagnosis => 4,
        ReportType::ConfirmedTest | ReportType::Unknown => 6,
        ReportType::Revoked => return None,
    };
    Some(infectiousness_offset + report_type_offset)
}

/// Minutes one scan stands for: phones scan about every 5 minutes.
pub const SCAN_MINUTES: u32 = 5;
/// The API caps each attenuation bucket at 30 minutes.
pub const BUCKET_CAP_MINUTES: u32 = 30;

/// One matched diagnosis key on one phone: what the API's ExposureInfo carries.
#[derive(Debug, Clone, PartialEq)]
pub struct Exposure {
    /// Days since the epoch of the exposure (from the scans).
    pub day: i64,
    /// Whole days between the exposure and the day the risk is computed.
    pub days_since: i64,
    /// Scans × 5 minutes.
    pub minutes: u32,
    /// Mean attenuation of the scans, dB.
    pub attenuation: u32,
    /// Transmission risk level of the diagnosis key (1–8).
    pub transmission_risk_level: i32,
    /// Minutes below the lower threshold, between the thresholds, at or above the upper one.
    pub bucket_minutes: [u32; 3],
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// No key matched.
    None,
    Low,
    High,
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::None => "none",
            Self::Low => "low",
            Self::High => "high",
        })
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Risk {
    pub level: Level,
    /// Total risk score.
    pub score: f64,
    /// Highest combined (product) score of one exposure, 0 if below the minimum.
    pub max_combined_score: u32,
    /// Attenuation-bucket minutes over all exposures (each capped at 30).
    pub bucket_minutes: [u32; 3],
    /// Exposure score: weighted bucket minutes plus the offset.
    pub exposure_score: f64,
}

/// The default configuration of the seed architecture, as distribution publishes it from
/// `services/distribution/config/app_config.json` — what a phone decodes from the signed
/// `app_config` package. The simulator itself always uses the configuration it downloaded; this
/// one is for tests and examples (a test of the `openwarn` CLI checks that the two agree).
#[must_use]
pub fn seed_configuration() -> ApplicationConfiguration {
    use openwarn_protocol::config::v1 as pb;
    pb::ApplicationConfiguration {
        min_risk_score: 11,
        risk_score_classes: Some(pb::RiskScoreClassification {
            risk_classes: vec![
                pb::RiskScoreClass {
                    label: "LOW".into(),
                    min: 0.0,
                    max: 15.0,
                    url: String::new(),
                },
                pb::RiskScoreClass {
                    label: "HIGH".into(),
                    min: 15.0,
                    max: 9999.0,
                    url: String::new(),
                },
            ],
        }),
        exposure_config: Some(pb::RiskScoreParameters {
            transmission: Some(params::TransmissionRiskParameters {
                app_defined_1: 1,
                app_defined_2: 2,
                app_defined_3: 3,
                app_defined_4: 4,
                app_defined_5: 5,
                app_defined_6: 6,
                app_defined_7: 7,
                app_defined_8: 8,
            }),
            transmission_weight: 50.0,
            duration: Some(params::DurationRiskParameters {
                eq_0_min: 0,
                gt_0_le_5_min: 0,
                gt_5_le_10_min: 0,
                gt_10_le_15_min: 1,
                gt_15_le_20_min: 1,
                gt_20_le_25_min: 1,
                gt_25_le_30_min: 1,
                gt_30_min: 1,
            }),
            duration_weight: 50.0,
            days_since_last_exposure: Some(params::DaysSinceLastExposureRiskParameters {
                ge_14_days: 5,
                ge_12_lt_14_days: 5,
                ge_10_lt_12_days: 5,
                ge_8_lt_10_days: 5,
                ge_6_lt_8_days: 5,
                ge_4_lt_6_days: 5,
                ge_2_lt_4_days: 5,
                ge_0_lt_2_days: 5,
            }),
            days_weight: 20.0,
            attenuation: Some(params::AttenuationRiskParameters {
                gt_73_dbm: 0,
                gt_63_le_73_dbm: 5,
                gt_51_le_63_dbm: 5,
                gt_33_le_51_dbm: 5,
                gt_27_le_33_dbm: 5,
                gt_15_le_27_dbm: 5,
                gt_10_le_15_dbm: 5,
                lt_10_dbm: 5,
            }),
            attenuation_weight: 50.0,
        }),
        attenuation_duration: Some(pb::AttenuationDuration {
            thresholds: Some(pb::Thresholds {
                lower: 55,
                upper: 63,
            }),
            weights: Some(pb::Weights {
                low: 1.0,
                mid: 0.5,
                high: 0.0,
            }),
            default_bucket_offset: 0,
            risk_score_normalization_divisor: 25,
        }),
    }
}

/// The attenuation bucket (0 low, 1 mid, 2 high) of one scan.
#[must_use]
pub fn bucket(config: &ApplicationConfiguration, attenuation: u32) -> usize {
    let t = config
        .attenuation_duration
        .as_ref()
        .and_then(|a| a.thresholds.as_ref());
    let (lower, upper) = t.map_or((55, 63), |t| (t.lower, t.upper));
    let a = i64::from(attenuation);
    if a < i64::from(lower) {
        0
    } else if a < i64::from(upper) {
        1
    } else {
        2
    }
}

fn transmission_score(p: &params::TransmissionRiskParameters, level: i32) -> i32 {
    match level {
        1 => p.app_defined_1,
        2 => p.app_defined_2,
        3 => p.app_defined_3,
        4 => p.app_defined_4,
        5 => p.app_defined_5,
        6 => p.app_defined_6,
        7 => p.app_defined_7,
        8 => p.app_defined_8,
        _ => 0,
    }
}

fn duration_score(p: &params::DurationRiskParameters, minutes: u32) -> i32 {
    match minutes {
        0 => p.eq_0_min,
        1..=5 => p.gt_0_le_5_min,
        6..=10 => p.gt_5_le_10_min,
        11..=15 => p.gt_10_le_15_min,
        16..=20 => p.gt_15_le_20_min,
        21..=25 => p.gt_20_le_25_min,
        26..=30 => p.gt_25_le_30_min,
        _ => p.gt_30_min,
    }
}

fn days_score(p: &params::DaysSinceLastExposureRiskParameters, days: i64) -> i32 {
    match days {
        14.. => p.ge_14_days,
        12..=13 => p.ge_12_lt_14_days,
        10..=11 => p.ge_10_lt_12_days,
        8..=9 => p.ge_8_lt_10_days,
        6..=7 => p.ge_6_lt_8_days,
        4..=5 => p.ge_4_lt_6_days,
        2..=3 => p.ge_2_lt_4_days,
        _ => p.ge_0_lt_2_days,
    }
}

fn attenuation_score(p: &params::AttenuationRiskParameters, db: u32) -> i32 {
    match db {
        74.. => p.gt_73_dbm,
        64..=73 => p.gt_63_le_73_dbm,
        52..=63 => p.gt_51_le_63_dbm,
        34..=51 => p.gt_33_le_51_dbm,
        28..=33 => p.gt_27_le_33_dbm,
        16..=27 => p.gt_15_le_27_dbm,
        11..=15 => p.gt_10_le_15_dbm,
        _ => p.lt_10_dbm,
    }
}

/// The combined score of one exposure (0 when below the minimum risk score).
#[must_use]
pub fn combined_score(config: &ApplicationConfiguration, exposure: &Exposure) -> u32 {
    let Some(p) = config.exposure_config.as_ref() else {
        return 0;
    };
    let scores = [
        p.transmission.as_ref().map_or(0, |t| {
            transmission_score(t, exposure.transmission_risk_level)
        }),
        p.duration
            .as_ref()
            .map_or(0, |d| duration_score(d, exposure.minutes)),
        p.days_since_last_exposure
            .as_ref()
            .map_or(0, |d| days_score(d, exposure.days_since)),
        p.attenuation
            .as_ref()
            .map_or(0, |a| attenuation_score(a, exposure.attenuation)),
    ];
    let product: u32 = scores
        .iter()
        .map(|s| u32::try_from(*s).unwrap_or(0))
        .product();
    if i64::from(product) < i64::from(config.min_risk_score) {
        0
    } else {
        product
    }
}

/// The risk of one phone from its exposures.
#[must_use]
pub fn assess(config: &ApplicationConfiguration, exposures: &[Exposure]) -> Risk {
    let mut bucket_minutes = [0u32; 3];
    for e in exposures {
        for (sum, m) in bucket_minutes.iter_mut().zip(e.bucket_minutes) {
            *sum = sum.saturating_add(m);
        }
    }
    for m in &mut bucket_minutes {
        *m = (*m).min(BUCKET_CAP_MINUTES);
    }
    let max_combined_score = exposures
        .iter()
        .map(|e| combined_score(config, e))
        .max()
        .unwrap_or(0);
    let ad = config.attenuation_duration.unwrap_or_default();
    let w = ad.weights.unwrap_or_default();
    let exposure_score = f64::from(bucket_minutes[0]) * w.low
        + f64::from(bucket_minutes[1]) * w.mid
        + f64::from(bucket_minutes[2]) * w.high
        + f64::from(ad.default_bucket_offset);
    let divisor = f64::from(ad.risk_score_normalization_divisor.max(1));
    let score = f64::from(max_combined_score) / divisor * exposure_score;
    let level = if exposures.is_empty() {
        Level::None
    } else {
        classify(config, score)
    };
    Risk {
        level,
        score,
        max_combined_score,
        bucket_minutes,
        exposure_score,
    }
}

/// The class whose `[min, max)` holds the score (the last class includes its max): a class
/// labelled HIGH (any case) is high risk, anything else low.
fn classify(config: &ApplicationConfiguration, score: f64) -> Level {
    let classes = config
        .risk_score_classes
        .as_ref()
        .map(|c| c.risk_classes.as_slice())
        .unwrap_or_default();
    let last = classes.len().saturating_sub(1);
    let class = classes
        .iter()
        .enumerate()
        .find(|(i, c)| score >= c.min && (score < c.max || (*i == last && score <= c.max)))
        .or_else(|| {
            classes
                .iter()
                .enumerate()
                .next_back()
                .filter(|(_, c)| score > c.max)
        });
    match class {
        Some((_, c)) if c.label.eq_ignore_ascii_case("high") => Level::High,
        _ => Level::Low,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The defaults distribution publishes.
    fn config() -> ApplicationConfiguration {
        seed_configuration()
    }

    fn exposure(minutes: u32, attenuation: u32, days_since: i64, trl: i32) -> Exposure {
        let c = config();
        let mut bucket_minutes = [0; 3];
        bucket_minutes[bucket(&c, attenuation)] = minutes;
        Exposure {
            day: 0,
            days_since,
            minutes,
            attenuation,
            transmission_risk_level: trl,
            bucket_minutes,
        }
    }

    #[test]
    fn close_and_long_is_high() {
        // TRL 6 → 6, 60 min → 1, 2 days → 5, 40 dB → 5: 150 ≥ 11; 150/25 × (30 min × 1) = 180.
        let risk = assess(&config(), &[exposure(60, 40, 2, 6)]);
        assert_eq!(risk.max_combined_score, 150);
        assert_eq!(risk.bucket_minutes, [30, 0, 0]);
        assert!((risk.score - 180.0).abs() < 1e-9, "{risk:?}");
        assert_eq!(risk.level, Level::High);
    }

    #[test]
    fn brief_or_far_is_low_and_nothing_is_none() {
        // 10 minutes scores 0 for duration: the product is 0, below the minimum.
        let brief = assess(&config(), &[exposure(10, 40, 2, 6)]);
        assert_eq!(brief.max_combined_score, 0);
        assert_eq!(brief.level, Level::Low);
        // 75 dB scores 0 for attenuation and its minutes weigh 0.
        let far = assess(&config(), &[exposure(60, 75, 2, 6)]);
        assert_eq!((far.score, far.level.clone()), (0.0, Level::Low));
        assert_eq!(assess(&config(), &[]).level, Level::None);
    }

    #[test]
    fn mid_bucket_weighs_half_and_the_buckets_are_capped() {
        // 60 dB (bucket mid, weight 0.5): 150/25 × 0.5 × 30 = 90 → high.
        let mid = assess(&config(), &[exposure(40, 60, 3, 6)]);
        assert_eq!(mid.bucket_minutes, [0, 30, 0]);
        assert!((mid.exposure_score - 15.0).abs() < 1e-9);
        // Low score exposures: TRL 1 (score 1) × 1 × 5 × 5 = 25; 25/25 × 10 min = 10 < 15 → low.
        let low = assess(&config(), &[exposure(20, 40, 1, 1)]);
        assert_eq!(low.max_combined_score, 25);
        assert!((low.score - 20.0).abs() < 1e-9, "{low:?}");
        let two = assess(&config(), &[exposure(10, 40, 1, 1), exposure(5, 40, 1, 1)]);
        assert_eq!(two.bucket_minutes, [15, 0, 0]);
    }

    /// The app's decoding inverts distribution's default encoding for every level (cwa-server
    /// `EnfParameterAdapterComponentTest`'s table, read the other way): TRL 1 is published as
    /// (1, RECURSIVE) and read back as 1, TRL 8 as (2, CONFIRMED_TEST) and read back as 8.
    #[test]
    fn trl_is_decoded_from_days_since_onset_and_report_type_as_the_cwa_app_does() {
        use openwarn_protocol::metadata::TrlEncoding;
        for trl in 1..=8 {
            let (dsos, report_type) = TrlEncoding::CWA.encode(trl).unwrap();
            let published = TemporaryExposureKey {
                // What the phone submitted is not what the app reads.
                transmission_risk_level: Some(1),
                days_since_onset_of_symptoms: Some(dsos),
                report_type: Some(report_type),
                ..TemporaryExposureKey::default()
            };
            assert_eq!(transmission_risk_level(&published), Some(trl), "TRL {trl}");
        }
    }

    /// Keys published with the values the phone submitted (a confirmed test, days since onset
    /// as submission derives them from the level, e.g. 3997 for TRL 8, or none at all) are
    /// dropped by the app: a distribution that did not encode would warn nobody.
    #[test]
    fn keys_published_with_the_submitted_values_are_dropped() {
        for dsos in [None, Some(3997), Some(3986), Some(-1), Some(0), Some(3)] {
            let raw = TemporaryExposureKey {
                transmission_risk_level: Some(8),
                days_since_onset_of_symptoms: dsos,
                report_type: Some(1),
                ..TemporaryExposureKey::default()
            };
            assert_eq!(transmission_risk_level(&raw), None, "{dsos:?}");
        }
        let revoked = TemporaryExposureKey {
            days_since_onset_of_symptoms: Some(2),
            report_type: Some(ReportType::Revoked as i32),
            ..TemporaryExposureKey::default()
        };
        assert_eq!(transmission_risk_level(&revoked), None);
        let no_report_type = TemporaryExposureKey {
            days_since_onset_of_symptoms: Some(2),
            ..TemporaryExposureKey::default()
        };
        assert_eq!(transmission_risk_level(&no_report_type), Some(8));
    }

    #[test]
    fn score_tables_follow_the_api_buckets() {
        let c = config();
        let p = c.exposure_config.as_ref().unwrap();
        let d = p.duration.as_ref().unwrap();
        assert_eq!(duration_score(d, 15), d.gt_10_le_15_min);
        assert_eq!(duration_score(d, 16), d.gt_15_le_20_min);
        assert_eq!(duration_score(d, 31), d.gt_30_min);
        let a = p.attenuation.as_ref().unwrap();
        assert_eq!(attenuation_score(a, 73), a.gt_63_le_73_dbm);
        assert_eq!(attenuation_score(a, 74), a.gt_73_dbm);
        assert_eq!(attenuation_score(a, 10), a.lt_10_dbm);
        assert_eq!(bucket(&c, 54), 0);
        assert_eq!(bucket(&c, 55), 1);
        assert_eq!(bucket(&c, 63), 2);
        let t = p.transmission.as_ref().unwrap();
        assert_eq!(transmission_score(t, 0), 0);
        assert_eq!(transmission_score(t, 8), t.app_defined_8);
    }
}
