//! The application configuration phones download signed: the risk-score parameters of the seed
//! architecture. Read from a JSON file (format: `config/app_config.json`, the embedded default),
//! validated field by field, and encoded as `openwarn.config.v1.ApplicationConfiguration`.

use openwarn_protocol::Message;
use openwarn_protocol::config::v1 as pb;
use pb::risk_score_parameters as rsp;
use serde::Deserialize;

/// The default configuration (what `openwarn up` publishes).
pub const DEFAULT_JSON: &str = include_str!("../config/app_config.json");

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InvalidConfig {
    /// The offending field, as a JSON path (`exposureConfig.duration[3]`).
    pub field: String,
    pub reason: String,
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> InvalidConfig {
    InvalidConfig {
        field: field.into(),
        reason: reason.into(),
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppConfig {
    pub min_risk_score: i32,
    pub risk_score_classes: Vec<RiskClass>,
    pub exposure_config: ExposureConfig,
    pub attenuation_duration: AttenuationDuration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RiskClass {
    pub label: String,
    pub min: f64,
    pub max: f64,
    #[serde(default)]
    pub url: String,
}

/// Scores 0..8, eight per parameter, in the order of the proto fields (transmission risk levels
/// 1..8; durations =0, ≤5, ≤10, … >30 min; days ≥14, 12–13, … 0–1; attenuation >73, 64–73, …
/// <10 dB).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExposureConfig {
    pub transmission: Vec<i32>,
    pub duration: Vec<i32>,
    pub days_since_last_exposure: Vec<i32>,
    pub attenuation: Vec<i32>,
    pub weights: ParameterWeights,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ParameterWeights {
    pub transmission: f64,
    pub duration: f64,
    pub days: f64,
    pub attenuation: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AttenuationDuration {
    pub thresholds: Thresholds,
    pub weights: BucketWeights,
    pub default_bucket_offset: i32,
    pub risk_score_normalization_divisor: i32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    pub lower: i32,
    pub upper: i32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketWeights {
    pub low: f64,
    pub mid: f64,
    pub high: f64,
}

fn scores(field: &str, values: &[i32]) -> Result<[i32; 8], InvalidConfig> {
    let array: [i32; 8] = values
        .try_into()
        .map_err(|_| invalid(field, format!("needs 8 scores, has {}", values.len())))?;
    if let Some(i) = array.iter().position(|s| !(0..=8).contains(s)) {
        return Err(invalid(format!("{field}[{i}]"), "a score is 0..8"));
    }
    Ok(array)
}

fn weight(field: &str, value: f64, max: f64) -> Result<f64, InvalidConfig> {
    if value.is_finite() && (0.0..=max).contains(&value) {
        Ok(value)
    } else {
        Err(invalid(field, format!("must be 0..{max}")))
    }
}

/// Risk classes: labelled, each `min < max`, the first from 0, each starting where the previous
/// ends.
fn risk_score_classes(classes: &[RiskClass]) -> Result<pb::RiskScoreClassification, InvalidConfig> {
    if classes.is_empty() {
        return Err(invalid("riskScoreClasses", "needs at least one class"));
    }
    for (i, class) in classes.iter().enumerate() {
        let field = format!("riskScoreClasses[{i}]");
        if class.label.trim().is_empty() {
            return Err(invalid(format!("{field}.label"), "must not be empty"));
        }
        if !(class.min.is_finite() && class.max.is_finite() && class.min < class.max) {
            return Err(invalid(format!("{field}.max"), "must be above min"));
        }
        match i {
            0 if class.min != 0.0 => {
                return Err(invalid(
                    format!("{field}.min"),
                    "the first class starts at 0",
                ));
            }
            0 => {}
            _ if class.min != classes[i - 1].max => {
                return Err(invalid(
                    format!("{field}.min"),
                    "classes must be contiguous: min = the previous class's max",
                ));
            }
            _ => {}
        }
    }
    Ok(pb::RiskScoreClassification {
        risk_classes: classes
            .iter()
            .map(|c| pb::RiskScoreClass {
                label: c.label.clone(),
                min: c.min,
                max: c.max,
                url: c.url.clone(),
            })
            .collect(),
    })
}

/// The four checked score arrays of [`ExposureConfig`].
struct Scores {
    transmission: [i32; 8],
    duration: [i32; 8],
    days: [i32; 8],
    attenuation: [i32; 8],
}

impl Scores {
    fn of(e: &ExposureConfig) -> Result<Self, InvalidConfig> {
        Ok(Self {
            transmission: scores("exposureConfig.transmission", &e.transmission)?,
            duration: scores("exposureConfig.duration", &e.duration)?,
            days: scores(
                "exposureConfig.daysSinceLastExposure",
                &e.days_since_last_exposure,
            )?,
            attenuation: scores("exposureConfig.attenuation", &e.attenuation)?,
        })
    }

    /// The risk-score parameters, once each weight is checked.
    fn with_weights(self, w: &ParameterWeights) -> Result<pb::RiskScoreParameters, InvalidConfig> {
        Ok(pb::RiskScoreParameters {
            transmission: Some(transmission(self.transmission)),
            transmission_weight: weight(
                "exposureConfig.weights.transmission",
                w.transmission,
                100.0,
            )?,
            duration: Some(duration(self.duration)),
            duration_weight: weight("exposureConfig.weights.duration", w.duration, 100.0)?,
            days_since_last_exposure: Some(days_since_last_exposure(self.days)),
            days_weight: weight("exposureConfig.weights.days", w.days, 100.0)?,
            attenuation: Some(attenuation(self.attenuation)),
            attenuation_weight: weight("exposureConfig.weights.attenuation", w.attenuation, 100.0)?,
        })
    }
}

/// Transmission risk levels 1..8.
fn transmission([t1, t2, t3, t4, t5, t6, t7, t8]: [i32; 8]) -> rsp::TransmissionRiskParameters {
    rsp::TransmissionRiskParameters {
        app_defined_1: t1,
        app_defined_2: t2,
        app_defined_3: t3,
        app_defined_4: t4,
        app_defined_5: t5,
        app_defined_6: t6,
        app_defined_7: t7,
        app_defined_8: t8,
    }
}

/// Exposure durations =0, ≤5, ≤10, … >30 min.
fn duration([d1, d2, d3, d4, d5, d6, d7, d8]: [i32; 8]) -> rsp::DurationRiskParameters {
    rsp::DurationRiskParameters {
        eq_0_min: d1,
        gt_0_le_5_min: d2,
        gt_5_le_10_min: d3,
        gt_10_le_15_min: d4,
        gt_15_le_20_min: d5,
        gt_20_le_25_min: d6,
        gt_25_le_30_min: d7,
        gt_30_min: d8,
    }
}

/// Days since the last exposure ≥14, 12–13, … 0–1.
fn days_since_last_exposure(
    [s1, s2, s3, s4, s5, s6, s7, s8]: [i32; 8],
) -> rsp::DaysSinceLastExposureRiskParameters {
    rsp::DaysSinceLastExposureRiskParameters {
        ge_14_days: s1,
        ge_12_lt_14_days: s2,
        ge_10_lt_12_days: s3,
        ge_8_lt_10_days: s4,
        ge_6_lt_8_days: s5,
        ge_4_lt_6_days: s6,
        ge_2_lt_4_days: s7,
        ge_0_lt_2_days: s8,
    }
}

/// Attenuation >73, 64–73, … <10 dB.
fn attenuation([a1, a2, a3, a4, a5, a6, a7, a8]: [i32; 8]) -> rsp::AttenuationRiskParameters {
    rsp::AttenuationRiskParameters {
        gt_73_dbm: a1,
        gt_63_le_73_dbm: a2,
        gt_51_le_63_dbm: a3,
        gt_33_le_51_dbm: a4,
        gt_27_le_33_dbm: a5,
        gt_15_le_27_dbm: a6,
        gt_10_le_15_dbm: a7,
        lt_10_dbm: a8,
    }
}

impl AttenuationDuration {
    /// Checks the thresholds, the default bucket offset and the divisor (not the weights).
    fn check(&self) -> Result<(), InvalidConfig> {
        let t = &self.thresholds;
        if !(0..=255).contains(&t.lower) {
            return Err(invalid(
                "attenuationDuration.thresholds.lower",
                "must be 0..255 dB",
            ));
        }
        if !(t.lower < t.upper && t.upper <= 255) {
            return Err(invalid(
                "attenuationDuration.thresholds.upper",
                "must be above lower and at most 255 dB",
            ));
        }
        if !(0..=1440).contains(&self.default_bucket_offset) {
            return Err(invalid(
                "attenuationDuration.defaultBucketOffset",
                "must be 0..1440",
            ));
        }
        if !(1..=1000).contains(&self.risk_score_normalization_divisor) {
            return Err(invalid(
                "attenuationDuration.riskScoreNormalizationDivisor",
                "must be 1..1000",
            ));
        }
        Ok(())
    }

    /// The wire message, once the weights are checked.
    fn to_proto(&self) -> Result<pb::AttenuationDuration, InvalidConfig> {
        let w = &self.weights;
        Ok(pb::AttenuationDuration {
            thresholds: Some(pb::Thresholds {
                lower: self.thresholds.lower,
                upper: self.thresholds.upper,
            }),
            weights: Some(pb::Weights {
                low: weight("attenuationDuration.weights.low", w.low, 10.0)?,
                mid: weight("attenuationDuration.weights.mid", w.mid, 10.0)?,
                high: weight("attenuationDuration.weights.high", w.high, 10.0)?,
            }),
            default_bucket_offset: self.default_bucket_offset,
            risk_score_normalization_divisor: self.risk_score_normalization_divisor,
        })
    }
}

impl AppConfig {
    /// Parses and validates; the error names the first offending field.
    pub fn parse(json: &str) -> Result<Self, InvalidConfig> {
        let config: Self = serde_json::from_str(json).map_err(|e| {
            // serde names unknown/missing fields in its message; keep it, without the input.
            invalid("(file)", e.to_string())
        })?;
        config.to_proto()?;
        Ok(config)
    }

    /// The wire message, after checking every field (in the order of the file, except that
    /// every score and threshold is checked before the weights).
    pub fn to_proto(&self) -> Result<pb::ApplicationConfiguration, InvalidConfig> {
        if !(0..=4096).contains(&self.min_risk_score) {
            return Err(invalid(
                "minRiskScore",
                "must be 0..4096 (the largest product of four scores)",
            ));
        }
        let risk_score_classes = risk_score_classes(&self.risk_score_classes)?;
        let scores = Scores::of(&self.exposure_config)?;
        self.attenuation_duration.check()?;
        Ok(pb::ApplicationConfiguration {
            min_risk_score: self.min_risk_score,
            risk_score_classes: Some(risk_score_classes),
            exposure_config: Some(scores.with_weights(&self.exposure_config.weights)?),
            attenuation_duration: Some(self.attenuation_duration.to_proto()?),
        })
    }

    /// The bytes signed and published as `export.bin` of `app_config`.
    pub fn encode(&self) -> Result<Vec<u8>, InvalidConfig> {
        Ok(self.to_proto()?.encode_to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(edit: impl FnOnce(&mut serde_json::Value)) -> Result<AppConfig, InvalidConfig> {
        let mut value: serde_json::Value = serde_json::from_str(DEFAULT_JSON).unwrap();
        edit(&mut value);
        AppConfig::parse(&value.to_string())
    }

    #[test]
    fn the_default_is_valid_and_round_trips() {
        let config = AppConfig::parse(DEFAULT_JSON).unwrap();
        let decoded =
            pb::ApplicationConfiguration::decode(config.encode().unwrap().as_slice()).unwrap();
        assert_eq!(decoded.min_risk_score, 11);
        assert_eq!(
            decoded.risk_score_classes.unwrap().risk_classes[1].label,
            "HIGH"
        );
        let exposure = decoded.exposure_config.unwrap();
        assert_eq!(exposure.transmission.unwrap().app_defined_8, 8);
        assert_eq!(exposure.attenuation.unwrap().gt_73_dbm, 0);
        let attenuation = decoded.attenuation_duration.unwrap();
        assert_eq!(attenuation.thresholds.unwrap().upper, 63);
        assert_eq!(attenuation.risk_score_normalization_divisor, 25);
    }

    #[test]
    fn the_kubernetes_config_map_is_valid() {
        AppConfig::parse(include_str!("../../../k8s/app_config.json")).unwrap();
    }

    #[test]
    fn every_invalid_field_is_named() {
        type Edit = Box<dyn FnOnce(&mut serde_json::Value)>;
        let cases: Vec<(&str, Edit)> = vec![
            (
                "minRiskScore",
                Box::new(|v| v["minRiskScore"] = (-1).into()),
            ),
            (
                "exposureConfig.duration[3]",
                Box::new(|v| v["exposureConfig"]["duration"][3] = 9.into()),
            ),
            (
                "exposureConfig.attenuation",
                Box::new(|v| v["exposureConfig"]["attenuation"] = serde_json::json!([1, 2])),
            ),
            (
                "exposureConfig.weights.days",
                Box::new(|v| v["exposureConfig"]["weights"]["days"] = (-5.0).into()),
            ),
            (
                "attenuationDuration.thresholds.upper",
                Box::new(|v| v["attenuationDuration"]["thresholds"]["upper"] = 40.into()),
            ),
            (
                "attenuationDuration.riskScoreNormalizationDivisor",
                Box::new(|v| v["attenuationDuration"]["riskScoreNormalizationDivisor"] = 0.into()),
            ),
            (
                "attenuationDuration.weights.mid",
                Box::new(|v| v["attenuationDuration"]["weights"]["mid"] = 11.0.into()),
            ),
            (
                "riskScoreClasses[1].min",
                Box::new(|v| v["riskScoreClasses"][1]["min"] = 16.into()),
            ),
            (
                "riskScoreClasses[0].label",
                Box::new(|v| v["riskScoreClasses"][0]["label"] = "".into()),
            ),
            (
                "riskScoreClasses",
                Box::new(|v| v["riskScoreClasses"] = serde_json::json!([])),
            ),
            (
                "riskScoreClasses[0].min",
                Box::new(|v| v["riskScoreClasses"][0]["min"] = 1.into()),
            ),
            (
                "riskScoreClasses[1].max",
                Box::new(|v| v["riskScoreClasses"][1]["max"] = 10.into()),
            ),
            (
                "attenuationDuration.thresholds.lower",
                Box::new(|v| v["attenuationDuration"]["thresholds"]["lower"] = (-1).into()),
            ),
            (
                "attenuationDuration.defaultBucketOffset",
                Box::new(|v| v["attenuationDuration"]["defaultBucketOffset"] = 2000.into()),
            ),
            (
                "exposureConfig.weights.transmission",
                Box::new(|v| v["exposureConfig"]["weights"]["transmission"] = 101.into()),
            ),
            (
                "exposureConfig.transmission[0]",
                Box::new(|v| v["exposureConfig"]["transmission"][0] = (-1).into()),
            ),
        ];
        for (field, edit) in cases {
            let err = with(edit).unwrap_err();
            assert_eq!(err.field, field, "{err}");
        }
        let unknown = with(|v| v["surprise"] = 1.into()).unwrap_err();
        assert!(unknown.reason.contains("surprise"), "{unknown}");
        let missing = with(|v| {
            v.as_object_mut().unwrap().remove("minRiskScore");
        })
        .unwrap_err();
        assert!(missing.reason.contains("minRiskScore"), "{missing}");
    }
}
