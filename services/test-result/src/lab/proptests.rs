//! Property-based tests of the lab API's parsing (issue 19 §2), on a fixed case budget: any bytes
//! parse or are refused without a panic; whatever passes names only well-formed ids, results the
//! lab may post and no sample time ahead of the clock; a valid batch passes whole; a repeated
//! field is refused wherever it is; a lab id never carries an invisible or bidi control.

use super::*;
use proptest::prelude::*;

const CASES: u32 = 256;
const NOW: i64 = 1_800_000_000;
const MAX_BATCH: usize = 50;

/// Every character Unicode lists as `Bidi_Control`, and the invisible ones a lab id must not hide.
const HIDDEN: &[char] = &[
    '\u{00AD}',
    '\u{061C}',
    '\u{180E}',
    '\u{200B}',
    '\u{200C}',
    '\u{200D}',
    '\u{200E}',
    '\u{200F}',
    '\u{202A}',
    '\u{202B}',
    '\u{202C}',
    '\u{202D}',
    '\u{202E}',
    '\u{2060}',
    '\u{2061}',
    '\u{2062}',
    '\u{2063}',
    '\u{2064}',
    '\u{2066}',
    '\u{2067}',
    '\u{2068}',
    '\u{2069}',
    '\u{FEFF}',
    '\u{FFF9}',
    '\u{FFFA}',
    '\u{FFFB}',
    '\u{E0001}',
    '\u{E0041}',
    '\u{E007F}',
];

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,70}|[0-9a-f]{64}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("labId".to_owned()),
                    Just("testResults".to_owned()),
                    Just("id".to_owned()),
                    Just("result".to_owned()),
                    Just("sc".to_owned()),
                    "\\PC{0,8}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn entry() -> impl Strategy<Value = (String, i64, Option<i64>)> {
    (
        "[0-9a-f]{64}",
        1..=3i64,
        proptest::option::of(0..=NOW + SC_CLOCK_SKEW_SECS),
    )
}

fn assert_sound(lab_id: Option<&str>, results: &[LabResult]) -> Result<(), TestCaseError> {
    if let Some(id) = lab_id {
        prop_assert!(!id.trim().is_empty() && id.len() <= MAX_LAB_ID_LEN);
        prop_assert!(
            !id.chars().any(|c| c.is_control() || HIDDEN.contains(&c)),
            "{id:?}"
        );
    }
    prop_assert!(!results.is_empty() && results.len() <= MAX_BATCH);
    let mut ids = HashSet::new();
    for r in results {
        prop_assert!(r.result.is_lab_result());
        prop_assert!(ids.insert(r.hashed_guid.clone()));
        if let Some(sc) = r.sample_collected_at {
            prop_assert!((0..=NOW + SC_CLOCK_SKEW_SECS).contains(&sc));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn any_bytes_parse_or_are_refused(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(value) = parse_strict(&bytes)
            && let Ok((lab_id, results)) = validate(&value, NOW, MAX_BATCH, Kind::Pcr)
        {
            assert_sound(lab_id.as_deref(), &results)?;
        }
    }

    #[test]
    fn any_json_is_validated_or_refused_soundly(value in json()) {
        if let Ok((lab_id, results)) = validate(&value, NOW, MAX_BATCH, Kind::Pcr) {
            assert_sound(lab_id.as_deref(), &results)?;
        }
        // What serde_json writes, the strict parser reads back the same (no key is repeated).
        let text = serde_json::to_vec(&value).unwrap();
        prop_assert_eq!(parse_strict(&text).ok(), serde_json::from_slice::<Value>(&text).ok());
    }

    #[test]
    fn a_valid_batch_passes_whole(
        entries in proptest::collection::btree_map("[0-9a-f]{64}", (1..=3i64, proptest::option::of(0..=NOW)), 1..MAX_BATCH),
        lab_id in proptest::option::of("[A-Za-z0-9 ._-]{0,63}[a-z]"),
    ) {
        let body = serde_json::json!({
            "labId": lab_id,
            "testResults": entries
                .iter()
                .map(|(id, (result, sc))| serde_json::json!({"id": id, "result": result, "sc": sc}))
                .collect::<Vec<_>>(),
        });
        let parsed = parse_strict(&serde_json::to_vec(&body).unwrap()).unwrap();
        let (got_lab, results) = validate(&parsed, NOW, MAX_BATCH, Kind::Pcr).expect("valid");
        prop_assert_eq!(got_lab, lab_id);
        prop_assert_eq!(results.len(), entries.len());
        assert_sound(None, &results)?;
    }

    #[test]
    fn a_repeated_field_is_refused_wherever_it_is(
        e in entry(), which in 0..4usize, first in 1..=3i64
    ) {
        let (id, result, _) = e;
        let body = match which {
            0 => format!(r#"{{"labId":"a","labId":"b","testResults":[{{"id":"{id}","result":{result}}}]}}"#),
            1 => format!(r#"{{"testResults":[],"testResults":[{{"id":"{id}","result":{result}}}]}}"#),
            2 => format!(r#"{{"testResults":[{{"id":"{id}","result":{first},"result":{result}}}]}}"#),
            _ => format!(r#"{{"testResults":[{{"id":"{id}","id":"{id}","result":{result}}}]}}"#),
        };
        let refused = parse_strict(body.as_bytes()).expect_err("a repeated field");
        prop_assert_eq!(refused.reason, "appears more than once in its object");
    }

    #[test]
    fn a_lab_id_with_a_hidden_character_is_refused(
        before in "[a-z]{0,20}", after in "[a-z]{1,20}", hidden in proptest::sample::select(HIDDEN)
    ) {
        let body = serde_json::json!({
            "labId": format!("{before}{hidden}{after}"),
            "testResults": [{"id": "a".repeat(64), "result": 2}],
        });
        let refused = validate(&body, NOW, MAX_BATCH, Kind::Pcr).expect_err("refused");
        prop_assert_eq!(refused.field, "labId");
    }

    #[test]
    fn a_sample_time_ahead_of_the_clock_is_refused(e in entry(), ahead in SC_CLOCK_SKEW_SECS + 1..i64::MAX - NOW) {
        let (id, result, _) = e;
        let body = serde_json::json!({"testResults": [{"id": id, "result": result, "sc": NOW + ahead}]});
        let refused = validate(&body, NOW, MAX_BATCH, Kind::Pcr).expect_err("refused");
        prop_assert_eq!(refused.field, "testResults[0].sc");
    }
}
