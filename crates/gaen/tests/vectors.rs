//! Every field of the published GAEN crypto test vectors (tests/data/crypto-vectors.json).
#![allow(
    clippy::unwrap_used,
    reason = "integration test: a failure is a failed test"
)]

use openwarn_gaen::{
    TEK_ROLLING_PERIOD, Tek, en_interval_number, metadata, rolling_start, tx_power,
};
use serde_json::Value;

const VECTORS: &str = include_str!("data/crypto-vectors.json");

fn bytes<const N: usize>(v: &Value) -> [u8; N] {
    hex::decode(v.as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap()
}

#[test]
fn published_vectors() {
    let v: Value = serde_json::from_str(VECTORS).unwrap();
    let start = u32::try_from(v["tek_rolling_start_interval_number"].as_u64().unwrap()).unwrap();
    let generated = v["key_generation_unix_seconds"].as_u64().unwrap();
    assert_eq!(en_interval_number(generated), start);
    assert_eq!(rolling_start(start), start);
    assert_eq!(
        u64::from(TEK_ROLLING_PERIOD),
        v["tek_rolling_period"].as_u64().unwrap()
    );

    let tek = Tek(bytes(&v["tek"]));
    let rpik = tek.rpik();
    let aemk = tek.aemk();
    assert_eq!(hex::encode(rpik.as_bytes()), v["rpik"].as_str().unwrap());
    assert_eq!(hex::encode(aemk.0), v["aemk"].as_str().unwrap());

    let ble: [u8; 4] = bytes(&v["ble_metadata"]);
    assert_eq!(metadata(tx_power(ble).unwrap()), ble);
    let advertised = v["advertised"].as_array().unwrap();
    assert!(!advertised.is_empty());
    for (i, a) in advertised.iter().enumerate() {
        let interval = u32::try_from(a["interval_number"].as_u64().unwrap()).unwrap();
        assert_eq!(interval, start + u32::try_from(i).unwrap());
        let rpi = rpik.rpi(interval);
        assert_eq!(hex::encode(rpi), a["rpi"].as_str().unwrap(), "rpi {i}");
        let aem = aemk.apply(&rpi, ble);
        assert_eq!(hex::encode(aem), a["aem"].as_str().unwrap(), "aem {i}");
        assert_eq!(aemk.apply(&rpi, aem), ble);
    }
}
