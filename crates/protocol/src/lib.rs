//! Wire types of OpenWarn, generated from the workspace's `proto/` directory.
//!
//! - [`gaen`]: the Apple/Google Exposure Notification export format (`export.bin`, `export.sig`).
//! - [`cwa`]: the app's `SubmissionPayload`, wire-compatible with the Corona-Warn-App backend.
//! - [`testresult::v1`], [`verification::v1`], [`submission::v1`]: internal gRPC APIs.
//! - [`config::v1`]: the signed application configuration phones download.
//!
//! The protobuf `TestResult` enum converts to and from `openwarn_domain::TestResult` (`From`
//! both ways); services hold the domain type and meet the enum only here.

#![allow(clippy::doc_markdown, clippy::large_enum_variant, missing_docs)]

pub mod gaen {
    include!(concat!(env!("OUT_DIR"), "/gaen.rs"));
}

pub mod cwa {
    include!(concat!(env!("OUT_DIR"), "/cwa.rs"));
}

pub mod testresult {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/openwarn.testresult.v1.rs"));
    }
}

pub mod verification {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/openwarn.verification.v1.rs"));
    }
}

pub mod submission {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/openwarn.submission.v1.rs"));
    }
}

pub mod config {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/openwarn.config.v1.rs"));
    }
}

/// The documented mapping between the two key metadata fields a report may lack: submission
/// derives the missing one, distribution uses it for the padding of hours without real keys.
pub mod metadata {
    /// Transmission risk level (1..8) for days since onset of symptoms, where a report has no risk
    /// level: highest around the onset, lower the further from it.
    ///
    /// | days since onset | ≤ -5 | -4..-3 | -2..-1 | 0..2 | 3..4 | 5..6 | 7..9 | 10..14 | > 14 |
    /// |---|---|---|---|---|---|---|---|---|---|
    /// | risk level | 1 | 3 | 6 | 8 | 7 | 5 | 4 | 2 | 1 |
    pub fn trl_from_dsos(dsos: i32) -> i32 {
        match dsos {
            i32::MIN..=-5 => 1,
            -4..=-3 => 3,
            -2..=-1 => 6,
            0..=2 => 8,
            3..=4 => 7,
            5..=6 => 5,
            7..=9 => 4,
            10..=14 => 2,
            _ => 1,
        }
    }

    /// Days since onset for a risk level, where a report has no days since onset: a representative
    /// day of that level's [`trl_from_dsos`] band, so that deriving back gives the same level.
    ///
    /// | risk level | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 |
    /// |---|---|---|---|---|---|---|---|---|
    /// | days since onset | 15 | 12 | -3 | 8 | 5 | -1 | 3 | 1 |
    pub fn dsos_from_trl(trl: i32) -> i32 {
        match trl {
            1 => 15,
            2 => 12,
            3 => -3,
            4 => 8,
            5 => 5,
            6 => -1,
            7 => 3,
            _ => 1,
        }
    }
}

mod conversions;

pub use prost;
pub use prost::Message;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn submission_payload_field_numbers_match_the_contract() {
        let payload = cwa::SubmissionPayload {
            keys: vec![gaen::TemporaryExposureKey {
                key_data: Some(vec![7; 16]),
                transmission_risk_level: Some(3),
                rolling_start_interval_number: Some(144 * 19_000),
                rolling_period: Some(144),
                report_type: Some(gaen::temporary_exposure_key::ReportType::ConfirmedTest as i32),
                days_since_onset_of_symptoms: Some(-2),
            }],
            request_padding: Some(vec![0; 3]),
            visited_countries: vec!["DE".into()],
            origin: Some("DE".into()),
            consent_to_federation: Some(true),
            submission_type: Some(cwa::submission_payload::SubmissionType::RapidTest as i32),
        };
        let bytes = payload.encode_to_vec();
        // keys = 1 (length-delimited), requestPadding = 2, visitedCountries = 3, origin = 4,
        // consentToFederation = 5 (varint), submissionType = 7 (varint).
        assert_eq!(bytes[0], (1 << 3) | 2);
        for tag in [(2u8 << 3) | 2, (3 << 3) | 2, (4 << 3) | 2, 5 << 3, 7 << 3] {
            assert!(bytes.contains(&tag), "tag {tag:#x} missing");
        }
        let decoded = cwa::SubmissionPayload::decode(bytes.as_slice()).unwrap();
        assert_eq!(decoded, payload);
        // days_since_onset is sint32 (zigzag): -2 encodes as 3.
        let key = &decoded.keys[0];
        let key_bytes = key.encode_to_vec();
        let pos = key_bytes.iter().position(|b| *b == 6 << 3).unwrap();
        assert_eq!(key_bytes[pos + 1], 3);
    }

    #[test]
    fn rolling_period_defaults_to_144() {
        let key = gaen::TemporaryExposureKey::default();
        assert_eq!(key.rolling_period(), 144);
    }
}
