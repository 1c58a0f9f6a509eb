//! A simulated phone: 14 daily TEKs, the identifiers it broadcasts, the scans it records, and
//! matching published diagnosis keys against them.

use super::risk::{self, Exposure, SCAN_MINUTES};
use openwarn_gaen::{Rpi, TEK_ROLLING_PERIOD, Tek, en_interval_number, metadata, rolling_start};
use openwarn_protocol::config::v1::ApplicationConfiguration;
use openwarn_protocol::gaen::TemporaryExposureKey;
use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;

/// Seconds between two scans.
const SCAN_SECONDS: u64 = SCAN_MINUTES as u64 * 60;
/// A scan matches an identifier derived for an interval at most this many intervals away (the
/// API's ±2 h tolerance for clock drift).
const INTERVAL_TOLERANCE: u32 = 12;

/// One advertisement a phone heard.
#[derive(Debug, Clone)]
pub struct Scan {
    pub time: u64,
    pub rpi: Rpi,
    pub aem: [u8; 4],
    /// Received signal strength, dBm.
    pub rssi: i32,
}

#[derive(Debug)]
pub struct Phone {
    pub name: String,
    /// The address its requests come from (each phone its own).
    pub address: Ipv4Addr,
    /// Transmit power it advertises in its metadata, dBm.
    pub tx_power: i8,
    /// (rolling start interval, key), oldest first, one per day of the last 14 days.
    pub teks: Vec<(u32, Tek)>,
    pub heard: Vec<Scan>,
}

impl Phone {
    pub fn new(name: String, index: u32, now: u64, rng: &mut impl rand::Rng) -> Self {
        let today = rolling_start(en_interval_number(now));
        Self {
            name,
            address: Ipv4Addr::from(0x0A00_0001 + index),
            tx_power: rng.random_range(-20..=10),
            teks: (0..14)
                .rev()
                .map(|age| (today - age * TEK_ROLLING_PERIOD, Tek::from_rng(rng)))
                .collect(),
            heard: Vec::new(),
        }
    }

    /// What it broadcasts at `time`: the identifier of that interval and the encrypted metadata.
    #[must_use]
    pub fn advertisement(&self, time: u64) -> Option<(Rpi, [u8; 4])> {
        let interval = en_interval_number(time);
        let start = rolling_start(interval);
        let (_, tek) = self.teks.iter().find(|(s, _)| *s == start)?;
        let rpi = tek.rpik().rpi(interval);
        Some((rpi, tek.aemk().apply(&rpi, metadata(self.tx_power))))
    }

    /// The keys it uploads after a positive test: all 14 days, today's included.
    #[must_use]
    pub fn diagnosis_keys(&self) -> Vec<TemporaryExposureKey> {
        let today = self.teks.last().map_or(0, |(s, _)| *s);
        self.teks
            .iter()
            .map(|(start, tek)| TemporaryExposureKey {
                key_data: Some(tek.0.to_vec()),
                transmission_risk_level: Some(super::app::transmission_risk_level(
                    (today - start) / TEK_ROLLING_PERIOD,
                )),
                rolling_start_interval_number: i32::try_from(*start).ok(),
                rolling_period: Some(i32::try_from(TEK_ROLLING_PERIOD).unwrap_or(144)),
                report_type: Some(1),
                days_since_onset_of_symptoms: None,
            })
            .collect()
    }
}

/// Phones `a` and `b` stay together from `start` for `minutes` at `attenuation` dB: each scans
/// the other every 5 minutes.
pub fn encounter(
    phones: &mut [Phone],
    a: usize,
    b: usize,
    start: u64,
    minutes: u32,
    attenuation: u32,
) {
    let attenuation = i32::try_from(attenuation).unwrap_or(i32::MAX);
    for k in 0..u64::from(minutes.div_ceil(SCAN_MINUTES)) {
        let time = start + k * SCAN_SECONDS;
        for (from, to) in [(a, b), (b, a)] {
            if let Some((rpi, aem)) = phones[from].advertisement(time) {
                let rssi = i32::from(phones[from].tx_power) - attenuation;
                phones[to].heard.push(Scan {
                    time,
                    rpi,
                    aem,
                    rssi,
                });
            }
        }
    }
}

/// The exposures of every phone: each key of `keys` that phone `p` accepted (`accepted[p]`) is
/// expanded into its identifiers once, and matched against what each phone heard. Each
/// exposure's risk level is the one the CWA app reads from the published key
/// ([`risk::transmission_risk_level`]); a key the app drops matches nothing.
#[must_use]
pub fn exposures(
    phones: &[Phone],
    keys: &[(TemporaryExposureKey, Vec<bool>)],
    config: &ApplicationConfiguration,
    now: u64,
) -> Vec<Vec<Exposure>> {
    let heard = Heard::of(phones);
    let mut result = vec![Vec::new(); phones.len()];
    if heard.by_rpi.is_empty() {
        return result;
    }
    let today = i64::try_from(now / 86_400).unwrap_or(0);
    for (key, accepted) in keys {
        let Some((tek, intervals)) = heard_intervals_of(key, &heard.intervals) else {
            continue;
        };
        // As the CWA app reads it: from the encoded days since onset and report type.
        let Some(trl) = risk::transmission_risk_level(key) else {
            continue;
        };
        for (p, scans) in matching_scans(phones, &heard, accepted, &tek, intervals) {
            result[p].push(exposure(&scans, trl, config, today));
        }
    }
    for list in &mut result {
        list.sort_by_key(|e| e.day);
    }
    result
}

/// What the phones heard, indexed for matching.
struct Heard {
    /// Who heard each identifier: (phone, scan) indexes.
    by_rpi: HashMap<Rpi, Vec<(usize, usize)>>,
    /// The intervals anything was heard in.
    intervals: BTreeSet<u32>,
}

impl Heard {
    fn of(phones: &[Phone]) -> Self {
        let mut by_rpi: HashMap<Rpi, Vec<(usize, usize)>> = HashMap::new();
        for (p, phone) in phones.iter().enumerate() {
            for (s, scan) in phone.heard.iter().enumerate() {
                by_rpi.entry(scan.rpi).or_default().push((p, s));
            }
        }
        // Every phone here shares one clock, so an identifier can only have been heard in the
        // interval it was derived for: derive just those (a real phone derives all 144).
        let intervals = phones
            .iter()
            .flat_map(|p| p.heard.iter().map(|s| en_interval_number(s.time)))
            .collect();
        Self { by_rpi, intervals }
    }
}

/// A published key and the heard intervals its validity covers; `None` for a malformed key or
/// one valid when nothing was heard.
fn heard_intervals_of(
    key: &TemporaryExposureKey,
    heard_intervals: &BTreeSet<u32>,
) -> Option<(Tek, Vec<u32>)> {
    let Some(Ok(data)) = key.key_data.as_deref().map(<[u8; 16]>::try_from) else {
        return None;
    };
    let start = key
        .rolling_start_interval_number
        .and_then(|s| u32::try_from(s).ok())?;
    let period = key
        .rolling_period
        .and_then(|p| u32::try_from(p).ok())
        .unwrap_or(144);
    let intervals: Vec<u32> = heard_intervals
        .range(start..start.saturating_add(period))
        .copied()
        .collect();
    (!intervals.is_empty()).then_some((Tek(data), intervals))
}

/// The scans of `tek`'s identifiers in `intervals`, per phone that accepted the key:
/// (attenuation, time) each.
fn matching_scans(
    phones: &[Phone],
    heard: &Heard,
    accepted: &[bool],
    tek: &Tek,
    intervals: Vec<u32>,
) -> HashMap<usize, Vec<(u32, u64)>> {
    let rpik = tek.rpik();
    let aemk = tek.aemk();
    let mut matched: HashMap<usize, Vec<(u32, u64)>> = HashMap::new();
    for interval in intervals {
        let rpi = rpik.rpi(interval);
        let Some(hits) = heard.by_rpi.get(&rpi) else {
            continue;
        };
        for &(p, s) in hits {
            let scan = &phones[p].heard[s];
            if !accepted.get(p).copied().unwrap_or(false)
                || en_interval_number(scan.time).abs_diff(interval) > INTERVAL_TOLERANCE
            {
                continue;
            }
            let Some(tx) = openwarn_gaen::tx_power(aemk.apply(&rpi, scan.aem)) else {
                continue;
            };
            let attenuation = u32::try_from(i32::from(tx) - scan.rssi).unwrap_or(0);
            matched.entry(p).or_default().push((attenuation, scan.time));
        }
    }
    matched
}

/// One phone's exposure to one key, from its matching scans (attenuation, time).
fn exposure(
    scans: &[(u32, u64)],
    transmission_risk_level: i32,
    config: &ApplicationConfiguration,
    today: i64,
) -> Exposure {
    let count = u32::try_from(scans.len()).unwrap_or(u32::MAX);
    let mut bucket_minutes = [0u32; 3];
    for (attenuation, _) in scans {
        bucket_minutes[risk::bucket(config, *attenuation)] += SCAN_MINUTES;
    }
    let day = scans
        .iter()
        .map(|(_, t)| i64::try_from(*t / 86_400).unwrap_or(0))
        .min()
        .unwrap_or(0);
    Exposure {
        day,
        days_since: today - day,
        minutes: count * SCAN_MINUTES,
        attenuation: scans.iter().map(|(a, _)| a).sum::<u32>() / count.max(1),
        transmission_risk_level,
        bucket_minutes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    const NOW: u64 = 1_795_000_000;

    fn config() -> ApplicationConfiguration {
        risk::seed_configuration()
    }

    /// Keys as distribution publishes them: report type and days since onset encoded from the
    /// risk level (CWA's table).
    fn published(keys: Vec<TemporaryExposureKey>) -> Vec<(TemporaryExposureKey, Vec<bool>)> {
        keys.into_iter()
            .map(|mut k| {
                let (dsos, report_type) = openwarn_protocol::metadata::TrlEncoding::CWA
                    .encode(k.transmission_risk_level.unwrap_or(0))
                    .unwrap();
                k.days_since_onset_of_symptoms = Some(dsos);
                k.report_type = Some(report_type);
                (k, vec![true; 3])
            })
            .collect()
    }

    fn phones() -> Vec<Phone> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        (0..3)
            .map(|i| Phone::new(format!("p{i}"), i, NOW, &mut rng))
            .collect()
    }

    #[test]
    fn a_published_key_matches_what_was_heard_with_the_attenuation_from_the_metadata() {
        let mut phones = phones();
        let start = NOW / 86_400 * 86_400 - 2 * 86_400 + 12 * 3600;
        encounter(&mut phones, 0, 1, start, 60, 40);
        encounter(&mut phones, 0, 2, start + 7200, 10, 70);
        assert_eq!(phones[1].heard.len(), 12);
        let keys = published(phones[0].diagnosis_keys());
        let found = exposures(&phones, &keys, &config(), NOW);
        assert!(found[0].is_empty(), "a phone does not match its own keys");
        assert_eq!(found[1].len(), 1);
        let e = &found[1][0];
        assert_eq!((e.minutes, e.attenuation, e.days_since), (60, 40, 2));
        assert_eq!(e.bucket_minutes, [60, 0, 0]);
        // The key of two days ago: TRL of CWA's vector for age 2.
        assert_eq!(e.transmission_risk_level, 8);
        assert_eq!(found[2][0].minutes, 10);
        assert_eq!(found[2][0].bucket_minutes, [0, 0, 10]);

        // A phone that rejected the package does not use its keys.
        let keys: Vec<_> = keys
            .into_iter()
            .map(|(k, _)| (k, vec![true, false, true]))
            .collect();
        let found = exposures(&phones, &keys, &config(), NOW);
        assert!(found[1].is_empty());
        assert_eq!(found[2].len(), 1);
    }

    #[test]
    fn other_keys_match_nothing() {
        let mut phones = phones();
        encounter(&mut phones, 0, 1, NOW - 86_400, 30, 40);
        let keys = published(phones[2].diagnosis_keys());
        assert!(
            exposures(&phones, &keys, &config(), NOW)
                .iter()
                .all(Vec::is_empty)
        );
    }

    /// What makes the simulator show that risk comes from the encoded fields: the same keys
    /// published with the values the phone submitted (confirmed test, no days since onset) are
    /// dropped as the CWA app drops them, and warn nobody.
    #[test]
    fn keys_published_with_the_submitted_values_warn_nobody() {
        let mut phones = phones();
        let start = NOW / 86_400 * 86_400 - 2 * 86_400 + 12 * 3600;
        encounter(&mut phones, 0, 1, start, 60, 40);
        let raw: Vec<_> = phones[0]
            .diagnosis_keys()
            .into_iter()
            .map(|k| (k, vec![true; 3]))
            .collect();
        assert!(exposures(&phones, &raw, &config(), NOW)[1].is_empty());
        let encoded = published(phones[0].diagnosis_keys());
        let found = exposures(&phones, &encoded, &config(), NOW);
        assert_eq!(found[1].len(), 1);
        assert_eq!(found[1][0].transmission_risk_level, 8);
        assert_eq!(risk::assess(&config(), &found[1]).level, risk::Level::High);
    }
}
