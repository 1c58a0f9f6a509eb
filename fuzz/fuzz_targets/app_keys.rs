//! What the app API reads from its JSON bodies: hashed GUIDs, teleTANs (format and check
//! character), registration tokens and TANs (JSON field and `cwa-authorization` header forms).
#![no_main]

use libfuzzer_sys::fuzz_target;
use openwarn_domain::{HashedGuid, RegistrationToken, Tan, TeleTan, canonical_uuid_v4, teletan};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(g) = HashedGuid::try_from(s.to_owned()) {
        assert_eq!(g.as_str().len(), 64);
    }
    if TeleTan::try_from(s).is_ok() {
        assert!(teletan::is_valid(s));
        assert_eq!(teletan::check_character(&s[..9]), s.chars().last());
    }
    let _ = teletan::check_character(s);
    let canonical = canonical_uuid_v4(s);
    assert_eq!(s.parse::<Tan>().is_ok(), canonical.is_some());
    assert_eq!(s.parse::<RegistrationToken>().is_ok(), canonical.is_some());
    if let Ok(tan) = Tan::from_authorization_header(s) {
        assert!(canonical_uuid_v4(tan.expose()).is_some());
    }
    // The same strings as the JSON bodies carry them.
    let body = serde_json::json!({ "key": s, "keyType": "TELETAN", "registrationToken": s });
    let _ = serde_json::from_value::<Option<TeleTan>>(body["key"].clone());
    let _ = serde_json::from_value::<Option<RegistrationToken>>(body["registrationToken"].clone());
});
