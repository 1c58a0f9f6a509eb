//! An upload's body: protobuf decode, then every submission rule. Nothing accepted may lie
//! outside the ranges the contract names (distribution would then drop the key unpublished).
#![no_main]

use libfuzzer_sys::fuzz_target;
use openwarn_protocol::Message;
use openwarn_protocol::cwa::SubmissionPayload;
use openwarn_submission::rules::{INTERVALS_PER_DAY, Rules, validate};

const NOW: i32 = 144 * 20_000 + 50;

fuzz_target!(|data: &[u8]| {
    let Ok(payload) = SubmissionPayload::decode(data) else {
        return;
    };
    let rules = Rules {
        max_keys: 14,
        country: "DE".parse().unwrap(),
        supported_countries: ["DE", "FR", "NL"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect(),
    };
    if let Ok(valid) = validate(&payload, &rules, NOW) {
        assert!(valid.keys.len() <= 14);
        for k in &valid.keys {
            assert_eq!(k.key_data.len(), 16);
            assert_eq!(k.rolling_start_interval_number % INTERVALS_PER_DAY, 0);
            assert!((1..=INTERVALS_PER_DAY).contains(&k.rolling_period));
            assert!((1..=8).contains(&k.transmission_risk_level));
            assert!((-15..=4000).contains(&k.days_since_onset_of_symptoms));
            assert!((0..=5).contains(&k.report_type));
        }
        assert!((0..=1).contains(&valid.submission_type));
    }
});
