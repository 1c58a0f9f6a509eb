//! Scenario files: who the phones are, who tests positive and how, who met whom, when, for how
//! long and at what attenuation, and what each phone is expected to be told. Format:
//! docs/SIMULATOR.md; examples in `examples/scenarios/`.

use super::risk::Level;
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::PathBuf;

/// A scenario that cannot be played; the message names the offending field.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read the scenario {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a valid scenario", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// `field: what is wrong`.
    #[error("{0}")]
    Invalid(String),
}

macro_rules! invalid {
    ($($arg:tt)*) => {
        return Err(ScenarioError::Invalid(format!($($arg)*)))
    };
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    #[serde(default)]
    pub description: String,
    pub phones: Vec<PhoneSpec>,
    #[serde(default)]
    pub encounters: Vec<Encounter>,
    /// Fake requests each phone sends at random times during the run, as a real app does.
    #[serde(default = "default_fakes")]
    pub fakes_per_phone: u32,
}

fn default_fakes() -> u32 {
    4
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhoneSpec {
    pub name: String,
    /// How the phone proves a positive test: scanning the QR code of a lab test, or a teleTAN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub positive: Option<Positive>,
    /// The risk level the phone must end with; the run fails otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<Level>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Positive {
    Qr,
    Teletan,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Encounter {
    /// The two phones; each hears the other.
    pub phones: [String; 2],
    /// Days before today (UTC), 0 to 13.
    pub days_ago: u32,
    /// Start, UTC time of day `HH:MM`.
    pub at: String,
    /// How long the phones stayed together.
    pub minutes: u32,
    /// Signal loss between them, dB (low is close).
    pub attenuation_db: u32,
}

impl Encounter {
    /// Seconds after midnight of `at`.
    fn start_of_day(&self) -> Option<u64> {
        let (h, m) = self.at.split_once(':')?;
        let (h, m): (u64, u64) = (h.parse().ok()?, m.parse().ok()?);
        (h < 24 && m < 60 && self.at.len() == 5).then_some(h * 3600 + m * 60)
    }

    /// Unix seconds the encounter starts at, given today's midnight.
    #[must_use]
    pub fn start(&self, today_midnight: u64) -> u64 {
        today_midnight - u64::from(self.days_ago) * 86_400 + self.start_of_day().unwrap_or(0)
    }
}

impl Scenario {
    pub fn read(path: &std::path::Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.to_owned(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| ScenarioError::Parse {
            path: path.to_owned(),
            source,
        })
    }

    /// Checks the scenario against the clock: names, encounter fields, nothing in the future.
    pub fn validate(&self, now: u64) -> Result<(), ScenarioError> {
        if self.phones.is_empty() {
            invalid!("phones: at least one phone is needed");
        }
        let mut names = HashSet::new();
        for (i, p) in self.phones.iter().enumerate() {
            if p.name.is_empty() || !names.insert(p.name.as_str()) {
                invalid!("phones[{i}].name: empty or used twice: {:?}", p.name);
            }
        }
        let midnight = now / 86_400 * 86_400;
        for (i, e) in self.encounters.iter().enumerate() {
            for name in &e.phones {
                if !names.contains(name.as_str()) {
                    invalid!("encounters[{i}].phones: unknown phone {name:?}");
                }
            }
            if e.phones[0] == e.phones[1] {
                invalid!("encounters[{i}].phones: a phone cannot meet itself");
            }
            if e.days_ago > 13 {
                invalid!("encounters[{i}].days_ago: at most 13 (keys are kept 14 days)");
            }
            if e.start_of_day().is_none() {
                invalid!("encounters[{i}].at: expected HH:MM (UTC), got {:?}", e.at);
            }
            if e.minutes == 0 || e.minutes > 24 * 60 {
                invalid!("encounters[{i}].minutes: 1 to 1440");
            }
            if e.attenuation_db > 120 {
                invalid!("encounters[{i}].attenuation_db: 0 to 120");
            }
            if e.start(midnight) + u64::from(e.minutes) * 60 > now {
                invalid!("encounters[{i}]: ends in the future");
            }
        }
        Ok(())
    }

    /// A random population: `phones` phones, the first `positives` of them positive (alternately
    /// by QR code and teleTAN), each meeting about `encounters` others in the last 13 days.
    pub fn generate(
        phones: usize,
        positives: usize,
        encounters: usize,
        now: u64,
        rng: &mut impl Rng,
    ) -> Self {
        let phones_list: Vec<PhoneSpec> = (0..phones)
            .map(|i| PhoneSpec {
                name: format!("phone-{i:05}"),
                positive: (i < positives).then_some(if i % 2 == 0 {
                    Positive::Qr
                } else {
                    Positive::Teletan
                }),
                expect: None,
            })
            .collect();
        let midnight = now / 86_400 * 86_400;
        let mut list = Vec::new();
        if phones >= 2 {
            for _ in 0..phones * encounters / 2 {
                let a = rng.random_range(0..phones);
                let mut b = rng.random_range(0..phones - 1);
                if b >= a {
                    b += 1;
                }
                let days_ago = rng.random_range(1..=13u32);
                let minutes = rng.random_range(1..=90u32);
                // Start early enough that the encounter ends before midnight.
                let start = rng.random_range(0..(24 * 60 - minutes));
                let e = Encounter {
                    phones: [phones_list[a].name.clone(), phones_list[b].name.clone()],
                    days_ago,
                    at: format!("{:02}:{:02}", start / 60, start % 60),
                    minutes,
                    attenuation_db: rng.random_range(30..=85),
                };
                debug_assert!(e.start(midnight) + u64::from(minutes) * 60 <= now);
                list.push(e);
            }
        }
        Self {
            description: format!(
                "generated: {phones} phones, {positives} positive, ~{encounters} encounters each"
            ),
            phones: phones_list,
            encounters: list,
            fakes_per_phone: default_fakes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    const NOW: u64 = 1_795_000_000;

    fn scenario(json: &str) -> Scenario {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn examples_are_valid() {
        let warn = scenario(include_str!("../../../examples/scenarios/warn.json"));
        warn.validate(NOW).unwrap();
        assert_eq!(warn.phones.len(), 7);
    }

    #[test]
    fn invalid_scenarios_name_the_field() {
        let cases = [
            (r#"{"phones": []}"#, "phones"),
            (
                r#"{"phones": [{"name": "a"}, {"name": "a"}]}"#,
                "phones[1].name",
            ),
            (
                r#"{"phones": [{"name": "a"}], "encounters": [{"phones": ["a", "b"], "days_ago": 1, "at": "10:00", "minutes": 5, "attenuation_db": 50}]}"#,
                "encounters[0].phones",
            ),
            (
                r#"{"phones": [{"name": "a"}, {"name": "b"}], "encounters": [{"phones": ["a", "b"], "days_ago": 14, "at": "10:00", "minutes": 5, "attenuation_db": 50}]}"#,
                "encounters[0].days_ago",
            ),
            (
                r#"{"phones": [{"name": "a"}, {"name": "b"}], "encounters": [{"phones": ["a", "b"], "days_ago": 1, "at": "25:00", "minutes": 5, "attenuation_db": 50}]}"#,
                "encounters[0].at",
            ),
            (
                r#"{"phones": [{"name": "a"}, {"name": "b"}], "encounters": [{"phones": ["a", "b"], "days_ago": 1, "at": "10:00", "minutes": 0, "attenuation_db": 50}]}"#,
                "encounters[0].minutes",
            ),
            (
                r#"{"phones": [{"name": "a"}, {"name": "b"}], "encounters": [{"phones": ["a", "b"], "days_ago": 0, "at": "23:59", "minutes": 5, "attenuation_db": 50}]}"#,
                "in the future",
            ),
        ];
        // NOW is not 23:59 UTC, so the last case ends after it.
        const { assert!(NOW % 86_400 < 86_340) };
        for (json, field) in cases {
            let err = scenario(json).validate(NOW).unwrap_err().to_string();
            assert!(err.contains(field), "{json}: {err}");
        }
        assert!(serde_json::from_str::<Scenario>(r#"{"phones": [], "extra": 1}"#).is_err());
    }

    #[test]
    fn generated_scenarios_are_valid_and_seeded() {
        let a = Scenario::generate(50, 3, 4, NOW, &mut rand::rngs::StdRng::seed_from_u64(7));
        a.validate(NOW).unwrap();
        assert_eq!(a.encounters.len(), 100);
        assert_eq!(a.phones.iter().filter(|p| p.positive.is_some()).count(), 3);
        let b = Scenario::generate(50, 3, 4, NOW, &mut rand::rngs::StdRng::seed_from_u64(7));
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            serde_json::to_string(&b).unwrap()
        );
    }
}
