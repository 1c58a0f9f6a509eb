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

/// Who may call which internal RPC.
pub mod callers;

pub mod config {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/openwarn.config.v1.rs"));
    }
}

/// The mapping between the two key metadata fields a report may lack, exactly CWA's: submission
/// derives the missing one. And [`metadata::TrlEncoding`]: how distribution encodes the risk
/// level into the fields an ENF v2 app reads.
pub mod metadata {
    /// CWA's `trl-from-dsos` map (cwa-server, `common/persistence/src/main/resources/
    /// derivation-maps.yaml`), copied unchanged: days since onset of symptoms → transmission
    /// risk level. Its value ranges encode the symptom status as well (e.g. 1986..2000, 3986..4000);
    /// sorted by days since onset.
    const TRL_FROM_DSOS: [(i32, i32); 274] = [
        (-5, 2),
        (-4, 4),
        (-3, 6),
        (-2, 7),
        (-1, 8),
        (0, 8),
        (1, 8),
        (2, 6),
        (3, 5),
        (4, 3),
        (5, 2),
        (6, 2),
        (194, 2),
        (195, 3),
        (196, 5),
        (197, 7),
        (198, 8),
        (199, 8),
        (200, 8),
        (201, 7),
        (202, 5),
        (203, 4),
        (204, 3),
        (205, 2),
        (294, 3),
        (295, 4),
        (296, 5),
        (297, 8),
        (298, 8),
        (299, 8),
        (300, 7),
        (301, 7),
        (302, 6),
        (303, 5),
        (304, 3),
        (305, 2),
        (306, 2),
        (393, 2),
        (394, 4),
        (395, 5),
        (396, 7),
        (397, 8),
        (398, 8),
        (399, 7),
        (400, 6),
        (401, 5),
        (402, 4),
        (403, 3),
        (404, 2),
        (492, 2),
        (493, 3),
        (494, 5),
        (495, 6),
        (496, 8),
        (497, 8),
        (498, 7),
        (499, 7),
        (500, 5),
        (501, 4),
        (502, 3),
        (503, 2),
        (504, 2),
        (591, 2),
        (592, 3),
        (593, 4),
        (594, 6),
        (595, 7),
        (596, 8),
        (597, 7),
        (598, 7),
        (599, 6),
        (600, 4),
        (601, 4),
        (602, 3),
        (603, 2),
        (690, 2),
        (691, 3),
        (692, 4),
        (693, 5),
        (694, 6),
        (695, 7),
        (696, 7),
        (697, 7),
        (698, 6),
        (699, 5),
        (700, 4),
        (701, 3),
        (702, 2),
        (703, 2),
        (790, 2),
        (791, 4),
        (792, 5),
        (793, 6),
        (794, 7),
        (795, 7),
        (796, 7),
        (797, 6),
        (798, 5),
        (799, 4),
        (800, 3),
        (801, 3),
        (802, 2),
        (803, 2),
        (889, 2),
        (890, 3),
        (891, 4),
        (892, 5),
        (893, 6),
        (894, 7),
        (895, 7),
        (896, 6),
        (897, 5),
        (898, 5),
        (899, 4),
        (900, 3),
        (901, 2),
        (902, 2),
        (988, 2),
        (989, 3),
        (990, 4),
        (991, 5),
        (992, 6),
        (993, 6),
        (994, 6),
        (995, 6),
        (996, 6),
        (997, 5),
        (998, 4),
        (999, 3),
        (1000, 3),
        (1001, 2),
        (1002, 2),
        (1087, 2),
        (1088, 3),
        (1089, 4),
        (1090, 5),
        (1091, 5),
        (1092, 6),
        (1093, 6),
        (1094, 6),
        (1095, 5),
        (1096, 5),
        (1097, 4),
        (1098, 4),
        (1099, 3),
        (1100, 2),
        (1101, 2),
        (1102, 2),
        (1186, 2),
        (1187, 3),
        (1188, 4),
        (1189, 4),
        (1190, 5),
        (1191, 6),
        (1192, 6),
        (1193, 6),
        (1194, 5),
        (1195, 5),
        (1196, 4),
        (1197, 4),
        (1198, 3),
        (1199, 3),
        (1200, 2),
        (1201, 2),
        (1286, 2),
        (1287, 3),
        (1288, 4),
        (1289, 5),
        (1290, 5),
        (1291, 5),
        (1292, 5),
        (1293, 5),
        (1294, 5),
        (1295, 5),
        (1296, 4),
        (1297, 3),
        (1298, 3),
        (1299, 2),
        (1300, 2),
        (1301, 2),
        (1386, 3),
        (1387, 4),
        (1388, 5),
        (1389, 5),
        (1390, 5),
        (1391, 5),
        (1392, 5),
        (1393, 5),
        (1394, 5),
        (1395, 4),
        (1396, 4),
        (1397, 3),
        (1398, 3),
        (1399, 2),
        (1400, 2),
        (1486, 4),
        (1487, 4),
        (1488, 5),
        (1489, 5),
        (1490, 5),
        (1491, 5),
        (1492, 5),
        (1493, 4),
        (1494, 4),
        (1495, 4),
        (1496, 3),
        (1497, 3),
        (1498, 2),
        (1499, 2),
        (1500, 2),
        (1586, 4),
        (1587, 4),
        (1588, 5),
        (1589, 5),
        (1590, 5),
        (1591, 5),
        (1592, 4),
        (1593, 4),
        (1594, 4),
        (1595, 3),
        (1596, 3),
        (1597, 3),
        (1598, 2),
        (1599, 2),
        (1686, 4),
        (1687, 4),
        (1688, 5),
        (1689, 5),
        (1690, 4),
        (1691, 4),
        (1692, 4),
        (1693, 4),
        (1694, 4),
        (1695, 3),
        (1696, 3),
        (1697, 2),
        (1698, 2),
        (1699, 2),
        (1786, 4),
        (1787, 4),
        (1788, 4),
        (1789, 4),
        (1790, 4),
        (1791, 4),
        (1792, 4),
        (1793, 4),
        (1794, 3),
        (1795, 3),
        (1796, 3),
        (1797, 2),
        (1798, 2),
        (1799, 2),
        (1992, 2),
        (1993, 3),
        (1994, 5),
        (1995, 7),
        (1996, 8),
        (1997, 8),
        (1998, 8),
        (1999, 6),
        (2000, 5),
        (2997, 2),
        (2998, 3),
        (2999, 4),
        (3000, 4),
        (3992, 2),
        (3993, 3),
        (3994, 4),
        (3995, 6),
        (3996, 7),
        (3997, 7),
        (3998, 7),
        (3999, 6),
        (4000, 5),
    ];

    /// CWA's default transmission risk level for days since onset its map does not list.
    pub const DEFAULT_TRL: i32 = 1;

    /// Transmission risk level (1..8) for days since onset of symptoms, where a report has no risk
    /// level: exactly as CWA derives it (its map, and its default [`DEFAULT_TRL`] for values
    /// the map does not list).
    pub fn trl_from_dsos(dsos: i32) -> i32 {
        TRL_FROM_DSOS
            .binary_search_by_key(&dsos, |(d, _)| *d)
            .ok()
            .and_then(|i| TRL_FROM_DSOS.get(i))
            .map_or(DEFAULT_TRL, |(_, trl)| *trl)
    }

    /// Days since onset for a risk level, where a report has no days since onset: CWA's
    /// `dsos-from-trl` map, copied unchanged.
    ///
    /// | risk level | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 |
    /// |---|---|---|---|---|---|---|---|---|
    /// | days since onset | 3986 | 3992 | 3993 | 3994 | 4000 | 3995 | 3996 | 3997 |
    pub fn dsos_from_trl(trl: i32) -> i32 {
        match trl {
            2 => 3992,
            3 => 3993,
            4 => 3994,
            5 => 4000,
            6 => 3995,
            7 => 3996,
            8 => 3997,
            _ => 3986,
        }
    }

    /// How distribution encodes a key's transmission risk level into the two fields an app with
    /// Exposure Notification v2 reads (CWA's `EnfParameterAdapter` with its
    /// `TransmissionRiskLevelEncoding`, cwa-server `services/distribution`): every published key
    /// carries, for its risk level, this days-since-onset value and this report type. The stored
    /// key is unchanged; only the published copy is encoded.
    ///
    /// The app turns them back into the level (CWA's `trlEncoding` of the app configuration):
    /// days since onset → infectiousness (1 standard, 2 high), level = infectiousness offset
    /// (standard 1, high 2) + report type offset (recursive 0, self report 2, clinical
    /// diagnosis 4, confirmed test 6).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct TrlEncoding {
        /// Days since onset of symptoms for levels 1..=8 (index 0 is level 1): 1 or 2.
        days_since_onset: [i32; 8],
        /// Report type (`gaen.TemporaryExposureKey.ReportType`) for levels 1..=8.
        report_type: [i32; 8],
    }

    /// Why an encoding is refused.
    #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
    pub enum InvalidEncoding {
        #[error("needs one value for each transmission risk level 1 to 8, got {0}")]
        Levels(usize),
        #[error(
            "days since onset must be 1 or 2 (the values ENF v2 maps to an infectiousness), got {0}"
        )]
        DaysSinceOnset(i32),
        #[error("{0} is not a report type (0 to 5)")]
        ReportType(i32),
    }

    impl TrlEncoding {
        /// CWA's table (cwa-server `main-config/transmission-risk-encoding.yaml`), unchanged:
        ///
        /// | risk level | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 |
        /// |---|---|---|---|---|---|---|---|---|
        /// | days since onset | 1 | 2 | 1 | 2 | 1 | 2 | 1 | 2 |
        /// | report type | 4 | 4 | 3 | 3 | 2 | 2 | 1 | 1 |
        pub const CWA: Self = Self {
            days_since_onset: [1, 2, 1, 2, 1, 2, 1, 2],
            report_type: [4, 4, 3, 3, 2, 2, 1, 1],
        };

        /// An encoding from the values for levels 1 to 8, in order; checked as CWA checks it
        /// (every level mapped, days since onset 1 or 2, report types of the enum).
        pub fn new(days_since_onset: &[i32], report_type: &[i32]) -> Result<Self, InvalidEncoding> {
            let days_since_onset: [i32; 8] = days_since_onset
                .try_into()
                .map_err(|_| InvalidEncoding::Levels(days_since_onset.len()))?;
            let report_type: [i32; 8] = report_type
                .try_into()
                .map_err(|_| InvalidEncoding::Levels(report_type.len()))?;
            if let Some(bad) = days_since_onset.iter().find(|d| !(1..=2).contains(*d)) {
                return Err(InvalidEncoding::DaysSinceOnset(*bad));
            }
            if let Some(bad) = report_type
                .iter()
                .find(|r| crate::gaen::temporary_exposure_key::ReportType::try_from(**r).is_err())
            {
                return Err(InvalidEncoding::ReportType(*bad));
            }
            Ok(Self {
                days_since_onset,
                report_type,
            })
        }

        /// (days since onset, report type) published for a key of risk level `trl`; `None` for
        /// a level outside 1..=8 (CWA refuses to publish such a key).
        pub fn encode(&self, trl: i32) -> Option<(i32, i32)> {
            let i = usize::try_from(trl.checked_sub(1)?).ok()?;
            Some((*self.days_since_onset.get(i)?, *self.report_type.get(i)?))
        }
    }

    impl Default for TrlEncoding {
        fn default() -> Self {
            Self::CWA
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn the_map_is_sorted_and_its_levels_are_1_to_8() {
            assert!(TRL_FROM_DSOS.windows(2).all(|w| w[0].0 < w[1].0));
            assert!(TRL_FROM_DSOS.iter().all(|(_, t)| (1..=8).contains(t)));
        }

        /// CWA's own cases, and the gaps of its map (issue 17: 8, 10 and 14 have no entry, so
        /// CWA uses its default 1).
        #[test]
        fn levels_are_cwas() {
            for (dsos, trl) in [
                (-5, 2),
                (-1, 8),
                (0, 8),
                (2, 6),
                (4, 3),
                (6, 2),
                (196, 5),
                (4000, 5),
            ] {
                assert_eq!(trl_from_dsos(dsos), trl, "dsos {dsos}");
            }
            for dsos in [8, 10, 14, -14, 7, 1999 + 2, 4001, i32::MIN, i32::MAX] {
                assert_eq!(trl_from_dsos(dsos), DEFAULT_TRL, "dsos {dsos}");
            }
            assert_eq!(dsos_from_trl(1), 3986);
            assert_eq!(dsos_from_trl(5), 4000);
            assert_eq!(dsos_from_trl(8), 3997);
        }

        /// cwa-server `EnfParameterAdapterComponentTest.dsosAndReportTypeOfKeysShouldBeAdapted`:
        /// CWA's default table.
        #[test]
        fn enf_parameter_adapter_component_test_dsos_and_report_type_of_keys_should_be_adapted() {
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
                assert_eq!(
                    TrlEncoding::CWA.encode(trl),
                    Some((dsos, report_type)),
                    "TRL {trl}"
                );
            }
            assert_eq!(TrlEncoding::default(), TrlEncoding::CWA);
        }

        /// cwa-server `EnfParameterAdapterUnitTest.dsosAndReportTypeOfKeysShouldBeAdapted` and
        /// `TransmissionRiskLevelEncodingTest.shouldDeriveDsosBasedOnMappingWhenProvided` /
        /// `shouldDeriveReportTypeBasedOnMappingWhenProvided`: another table is used as given,
        /// and a level it does not map has no encoding.
        #[test]
        fn transmission_risk_level_encoding_test_should_derive_based_on_mapping_when_provided() {
            let table =
                TrlEncoding::new(&[1, 2, 2, 2, 2, 1, 2, 1], &[1, 2, 3, 4, 1, 2, 3, 4]).unwrap();
            for (trl, dsos, report_type) in [(1, 1, 1), (3, 2, 3), (5, 2, 1), (8, 1, 4)] {
                assert_eq!(table.encode(trl), Some((dsos, report_type)), "TRL {trl}");
            }
            assert_eq!(table.encode(6).map(|e| e.0), Some(1));
            assert_eq!(table.encode(5).map(|e| e.1), Some(1));
            for trl in [9, 0, -1, i32::MIN, i32::MAX] {
                assert_eq!(table.encode(trl), None, "TRL {trl}");
            }
        }

        /// cwa-server `TransmissionRiskLevelEncodingTest.shouldValidateTransmissionRiskLevelKeys`,
        /// `shouldValidateDaysSinceSymptomsValues` and `shouldValidateReportTypeValues`.
        #[test]
        fn transmission_risk_level_encoding_test_should_validate_levels_dsos_and_report_types() {
            let dsos = [1, 2, 2, 2, 2, 1, 2, 1];
            let report_types = [1, 2, 3, 4, 1, 2, 3, 4];
            assert_eq!(
                TrlEncoding::new(&[1, 3], &[3]),
                Err(InvalidEncoding::Levels(2)),
                "not every level mapped"
            );
            assert_eq!(
                TrlEncoding::new(&[3, 4, 2, 2, 2, 1, 2, 1], &report_types),
                Err(InvalidEncoding::DaysSinceOnset(3))
            );
            assert_eq!(
                TrlEncoding::new(&dsos, &[-2, 6, 2, 2, 2, 1, 2, 1]),
                Err(InvalidEncoding::ReportType(-2))
            );
            assert_eq!(
                TrlEncoding::new(&dsos, &[1, 6, 2, 2, 2, 1, 2, 1]),
                Err(InvalidEncoding::ReportType(6))
            );
            assert!(TrlEncoding::new(&dsos, &report_types).is_ok());
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
