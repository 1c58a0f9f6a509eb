//! A lab API request body, read as the lab API reads it (strict JSON, then every check).
#![no_main]

use libfuzzer_sys::fuzz_target;

const NOW: i64 = 1_800_000_000;

fuzz_target!(|data: &[u8]| {
    if let Ok((lab_id, results)) = openwarn_test_result::read_batch(data, NOW, 1000, openwarn_test_result::Kind::Pcr) {
        assert!(!results.is_empty() && results.len() <= 1000);
        if let Some(id) = lab_id {
            assert!(!id.trim().is_empty() && id.len() <= 64);
            assert!(!id.chars().any(char::is_control));
        }
        for r in results {
            assert!(r.result.is_lab_result());
            assert!(
                r.sample_collected_at
                    .is_none_or(|sc| (0..=NOW + 300).contains(&sc))
            );
        }
    }
});
