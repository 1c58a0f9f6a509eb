//! Property-based tests of the package reader (issue 19 §2), on a fixed case budget: any bytes
//! open or are refused without a panic or an unbounded allocation; a package changed anywhere is
//! never accepted by the verifier; what is built opens to the same keys.

use super::*;
use proptest::prelude::*;

const CASES: u32 = 256;
const REFERENCE_ZIP: &[u8] = include_bytes!("../tests/data/testExport-2-records-1-of-1.zip");
const REFERENCE_PEM: &str = include_str!("../tests/data/ens_example_export_public.pem");

/// Everything a reader does with a package it was handed.
fn read_all(bytes: &[u8]) {
    if let Ok(package) = Package::open(bytes) {
        let _ = package.export();
        let _ = package.signatures();
        if let Ok(verifier) = Verifier::from_public_key_pem(REFERENCE_PEM) {
            let _ = verifier.verify(&package);
            let _ = verifier.verify_content(&package);
        }
    }
}

/// Offsets of every record with `signature` in `zip`.
fn records(zip: &[u8], signature: [u8; 4]) -> Vec<usize> {
    zip.windows(4)
        .enumerate()
        .filter(|(_, w)| *w == signature)
        .map(|(i, _)| i)
        .collect()
}

/// The reference package with the uncompressed size every header declares set to `size`.
fn declaring(size: u32) -> Vec<u8> {
    let mut zip = REFERENCE_ZIP.to_vec();
    for at in records(&zip, [0x50, 0x4b, 0x03, 0x04]) {
        zip[at + 22..at + 26].copy_from_slice(&size.to_le_bytes());
    }
    for at in records(&zip, [0x50, 0x4b, 0x01, 0x02]) {
        zip[at + 24..at + 28].copy_from_slice(&size.to_le_bytes());
    }
    zip
}

#[test]
fn a_declared_size_is_not_trusted() {
    // A header that declares 4 GB must not make the reader reserve 4 GB: refused (the data ends
    // long before), with memory bounded by what is really there.
    for size in [u32::MAX - 1, 1 << 31, (MAX_FILE_BYTES + 1) as u32] {
        assert!(Package::open(&declaring(size)).is_err(), "{size}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn any_bytes_open_or_are_refused(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        read_all(&bytes);
    }

    #[test]
    fn a_changed_byte_of_the_zip_is_never_accepted_as_other_content(
        at in 0..REFERENCE_ZIP.len(), flip in 1..=255u8
    ) {
        let original = Package::open(REFERENCE_ZIP).unwrap();
        let mut zip = REFERENCE_ZIP.to_vec();
        zip[at] ^= flip;
        read_all(&zip);
        // Opened or not: whatever opens and verifies is exactly the signed content.
        if let Ok(package) = Package::open(&zip) {
            let verifier = Verifier::from_public_key_pem(REFERENCE_PEM).unwrap();
            if verifier.verify(&package).is_ok() {
                prop_assert_eq!(package, original);
            }
        }
    }

    #[test]
    fn a_changed_byte_of_either_file_is_refused(in_bin in any::<bool>(), at in any::<usize>(), flip in 1..=255u8) {
        let mut package = Package::open(REFERENCE_ZIP).unwrap();
        let file = if in_bin { &mut package.bin } else { &mut package.sig };
        let i = at % file.len();
        file[i] ^= flip;
        let verifier = Verifier::from_public_key_pem(REFERENCE_PEM).unwrap();
        prop_assert!(verifier.verify(&package).is_err());
    }

    #[test]
    fn a_built_package_opens_to_its_keys(
        keys in proptest::collection::vec((any::<[u8; 16]>(), 0..20_000i32, 1..=144i32, 1..=8i32), 0..40),
        start in any::<u32>(),
    ) {
        let keys: Vec<TemporaryExposureKey> = keys
            .into_iter()
            .map(|(data, day, period, trl)| TemporaryExposureKey {
                key_data: Some(data.to_vec()),
                transmission_risk_level: Some(trl),
                rolling_start_interval_number: Some(day * 144),
                rolling_period: Some(period),
                report_type: Some(1),
                days_since_onset_of_symptoms: None,
            })
            .collect();
        let batch = Batch {
            start_timestamp: u64::from(start),
            end_timestamp: u64::from(start) + 3600,
            region: "DE".into(),
        };
        let package = Package::build(&batch, keys.iter(), &[]);
        let opened = Package::open(&package.to_zip().unwrap()).unwrap();
        prop_assert_eq!(&opened, &package);
        prop_assert_eq!(opened.export().unwrap().keys, keys);
    }
}
