use super::*;

const REFERENCE_ZIP: &[u8] = include_bytes!("../tests/data/testExport-2-records-1-of-1.zip");
const REFERENCE_PEM: &str = include_str!("../tests/data/ens_example_export_public.pem");

fn generated_signer(id: &str, version: &str) -> Signer {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    Signer::from_pkcs8_pem(
        &pair.serialize_pem(),
        &KeyInfo {
            verification_key_id: id.into(),
            verification_key_version: version.into(),
            ..KeyInfo::default()
        },
    )
    .unwrap()
}

fn key(first: u8, rsin: i32) -> TemporaryExposureKey {
    TemporaryExposureKey {
        key_data: Some(vec![first; 16]),
        transmission_risk_level: Some(5),
        rolling_start_interval_number: Some(rsin),
        rolling_period: Some(144),
        report_type: Some(1),
        days_since_onset_of_symptoms: Some(-1),
    }
}

#[test]
fn the_reference_package_verifies_with_its_public_key() {
    let package = Package::open(REFERENCE_ZIP).unwrap();
    let verifier = Verifier::from_public_key_pem(REFERENCE_PEM).unwrap();
    verifier.verify(&package).unwrap();
    let export = package.export().unwrap();
    assert_eq!(export.region(), "US");
    assert_eq!(export.keys.len(), 2);
    assert_eq!(
        export.signature_infos[0].signature_algorithm(),
        ALGORITHM_OID
    );
}

#[test]
fn any_flipped_byte_of_the_reference_package_is_refused() {
    let package = Package::open(REFERENCE_ZIP).unwrap();
    let verifier = Verifier::from_public_key_pem(REFERENCE_PEM).unwrap();
    for mask in [0x01u8, 0x80, 0xff] {
        for i in 0..package.bin.len() {
            let mut bad = package.clone();
            bad.bin[i] ^= mask;
            assert!(
                verifier.verify(&bad).is_err(),
                "export.bin byte {i} ^ {mask:#x} accepted"
            );
        }
        for i in 0..package.sig.len() {
            let mut bad = package.clone();
            bad.sig[i] ^= mask;
            assert!(
                verifier.verify(&bad).is_err(),
                "export.sig byte {i} ^ {mask:#x} accepted"
            );
        }
    }
}

#[test]
fn a_package_we_build_verifies_with_every_rotation_key_and_no_other() {
    let old = generated_signer("262", "v1");
    let new = generated_signer("262", "v2");
    let keys = [key(1, 2_880_000), key(2, 2_880_144)];
    let batch = Batch {
        start_timestamp: 1_700_000_000,
        end_timestamp: 1_700_003_600,
        region: "DE".into(),
    };
    let package = Package::build(&batch, keys.iter(), &[old.clone(), new.clone()]);
    let reopened = Package::open(&package.to_zip().unwrap()).unwrap();
    assert_eq!(reopened, package);
    old.verifier().verify(&reopened).unwrap();
    new.verifier().verify(&reopened).unwrap();
    let stranger = generated_signer("262", "v1");
    assert!(matches!(
        stranger.verifier().verify(&reopened),
        Err(ExportError::BadSignature)
    ));
    let signatures = reopened.signatures().unwrap().signatures;
    assert_eq!(signatures.len(), 2);
    assert_eq!(
        signatures[1]
            .signature_info
            .as_ref()
            .unwrap()
            .verification_key_version(),
        "v2"
    );

    let export = reopened.export().unwrap();
    assert_eq!(export.keys, keys);
    assert_eq!((export.batch_num(), export.batch_size()), (1, 1));
    assert_eq!(export.start_timestamp(), 1_700_000_000);
}

#[test]
fn export_bin_uses_the_contract_field_numbers() {
    let signer = generated_signer("262", "v1");
    let batch = Batch {
        start_timestamp: 0x0102,
        end_timestamp: 0x0304,
        region: "DE".into(),
    };
    let package = Package::build(&batch, [key(9, 144)].iter(), &[signer]);
    let body = &package.bin[16..];
    assert_eq!(&package.bin[..16], b"EK Export v1    ");
    // start_timestamp = 1 (fixed64), end_timestamp = 2 (fixed64), region = 3, batch_num = 4,
    // batch_size = 5, signature_infos = 6, keys = 7.
    assert_eq!(body[0], (1 << 3) | 1);
    assert_eq!(&body[1..9], &0x0102u64.to_le_bytes());
    assert_eq!(body[9], (2 << 3) | 1);
    assert_eq!(&body[18..22], &[(3 << 3) | 2, 2, b'D', b'E']);
    assert_eq!(&body[22..26], &[4 << 3, 1, 5 << 3, 1]);
    assert_eq!(body[26], (6 << 3) | 2);
    let key_at = 28 + usize::from(body[27]);
    assert_eq!(body[key_at], (7 << 3) | 2);
    // SignatureInfo: version = 3, id = 4, algorithm = 5; bundle ids (1, 2) absent when unset.
    let info = &body[28..key_at];
    assert_eq!(info[0], (3 << 3) | 2);
    assert!(!info.contains(&((1 << 3) | 2)));
}

#[test]
fn signing_is_deterministic_and_zips_are_byte_identical() {
    let signer = generated_signer("262", "v1");
    let batch = Batch::default();
    let a = Package::build(&batch, [key(3, 144)].iter(), std::slice::from_ref(&signer));
    let b = Package::build(&batch, [key(3, 144)].iter(), std::slice::from_ref(&signer));
    assert_eq!(a.to_zip().unwrap(), b.to_zip().unwrap());
}

#[test]
fn garbage_is_not_a_package() {
    assert!(matches!(
        Package::open(b"not a zip"),
        Err(ExportError::Zip(_))
    ));
    let no_header = Package {
        bin: b"hello".to_vec(),
        sig: Vec::new(),
    };
    assert!(matches!(no_header.export(), Err(ExportError::Header)));
    assert!(Signer::from_pkcs8_pem("nope", &KeyInfo::default()).is_err());
    assert!(Verifier::from_public_key_pem("nope").is_err());
}

#[test]
fn signed_content_without_header_verifies_as_content_only() {
    let signer = generated_signer("262", "v1");
    let package = Package::signed(
        b"config bytes".to_vec(),
        std::slice::from_ref(&signer),
        1,
        1,
    );
    let reopened = Package::open(&package.to_zip().unwrap()).unwrap();
    signer.verifier().verify_content(&reopened).unwrap();
    let mut bad = reopened.clone();
    bad.bin[0] ^= 1;
    assert!(signer.verifier().verify_content(&bad).is_err());
    assert!(
        generated_signer("262", "v1")
            .verifier()
            .verify_content(&reopened)
            .is_err()
    );
}
