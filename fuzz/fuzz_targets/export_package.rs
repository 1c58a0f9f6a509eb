//! A downloaded package: zip, export.bin and export.sig decoded, signatures checked. What
//! verifies must be exactly the signed content of the reference package.
#![no_main]

use libfuzzer_sys::fuzz_target;
use openwarn_export::{Package, Verifier};

const REFERENCE_ZIP: &[u8] =
    include_bytes!("../../crates/export/tests/data/testExport-2-records-1-of-1.zip");
const REFERENCE_PEM: &str =
    include_str!("../../crates/export/tests/data/ens_example_export_public.pem");

fuzz_target!(|data: &[u8]| {
    let Ok(package) = Package::open(data) else {
        return;
    };
    let _ = package.export();
    let _ = package.signatures();
    let verifier = Verifier::from_public_key_pem(REFERENCE_PEM).unwrap();
    let _ = verifier.verify_content(&package);
    if verifier.verify(&package).is_ok() {
        assert_eq!(package, Package::open(REFERENCE_ZIP).unwrap());
    }
});
