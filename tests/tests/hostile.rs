//! Hostile input at every door (issue 19 §2): a table of bad requests against every externally
//! reachable surface of a running stack — the app API through the proxy, the lab API, the
//! portal's forms, the CDN tree (distribution's embedded server), the admin ports — and raw
//! bytes on the sockets (conflicting framing, NUL bytes, huge heads, traversal in every encoding,
//! slow heads and bodies).
//!
//! Every case names its door, what is sent, and the status (and machine-readable reason) it must
//! get. Around the whole table: no answer is a 5xx, every service still answers afterwards, and
//! nothing was stored — the rows of test-result's and verification's databases are unchanged,
//! submission holds no key, and the TAN every refused upload carried still uploads once (then
//! never again). Invented HTTP methods never become metric labels.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration test: a failure is a failed test"
)]

use openwarn_bootstrap::RunningService;
use openwarn_e2e::portal::PortalStack;
use openwarn_e2e::{Chain, payload, sha256_hex};
use openwarn_protocol::Message;
use openwarn_protocol::cwa::SubmissionPayload;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The surfaces a request can be sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Door {
    /// The app API through the proxy (plain HTTP: the ingress terminates TLS).
    App,
    /// The lab API of test-result (HTTPS with the allow-listed lab's certificate).
    Lab,
    /// The published tree, as the CDN serves it.
    Cdn,
    /// An admin port (`/healthz`, `/readyz`, `/metrics`).
    Admin,
    /// The officers' portal, by requests no browser of it sends (its forms: [`portal_cases`]).
    Portal,
}

/// One request and what it must get.
struct Case {
    door: Door,
    what: String,
    method: &'static str,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    status: u16,
    /// The machine-readable reason (`error` of a JSON answer, the portal's reason header).
    reason: Option<&'static str>,
}

fn case(door: Door, what: impl Into<String>, method: &'static str, path: &str) -> Case {
    Case {
        door,
        what: what.into(),
        method,
        path: path.to_owned(),
        headers: Vec::new(),
        body: Vec::new(),
        status: 0,
        reason: None,
    }
}

impl Case {
    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
    fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }
    fn json(self, body: impl Into<Vec<u8>>) -> Self {
        self.header("content-type", "application/json").body(body)
    }
    fn expect(mut self, status: u16, reason: Option<&'static str>) -> Self {
        self.status = status;
        self.reason = reason;
        self
    }
    fn refused(self, status: u16, reason: &'static str) -> Self {
        self.expect(status, Some(reason))
    }
}

/// A JSON body to one of verification's endpoints through the proxy, as a real (not fake) call.
fn app(endpoint: &str, what: impl Into<String>, body: impl Into<Vec<u8>>) -> Case {
    case(Door::App, what, "POST", &format!("/version/v1/{endpoint}"))
        .header("cwa-fake", "0")
        .json(body)
}

/// An upload through the proxy with `tan` and `payload` as protobuf.
fn upload(what: impl Into<String>, tan: &str, body: Vec<u8>) -> Case {
    case(Door::App, what, "POST", "/version/v1/diagnosis-keys")
        .header("cwa-fake", "0")
        .header("cwa-authorization", tan)
        .header("content-type", "application/x-protobuf")
        .body(body)
}

/// A payload of one valid key, changed by `f`.
fn one_key(f: impl FnOnce(&mut SubmissionPayload)) -> Vec<u8> {
    let mut p = payload(1, 0x5a);
    f(&mut p);
    p.encode_to_vec()
}

fn lab(what: impl Into<String>, body: impl Into<Vec<u8>>) -> Case {
    case(Door::Lab, what, "POST", "/api/v1/lab/results").json(body)
}

/// A lab batch of one result with `result` and the rest of the entry as given.
fn lab_result(what: &str, entry: &str) -> Case {
    lab(
        what,
        format!(r#"{{"labId":"lab","testResults":[{entry}]}}"#),
    )
}

fn guid() -> String {
    sha256_hex(uuid::Uuid::new_v4().to_string())
}

/// A teleTAN with a correct check character that no officer issued.
fn unissued_tele_tan() -> String {
    openwarn_domain::TeleTan::generate().expose().to_owned()
}

/// The catalogue against the app API through the proxy. `tan` is valid and must survive.
fn app_cases(tan: &str) -> Vec<Case> {
    let v4 = uuid::Uuid::new_v4().to_string();
    let mut cases = Vec::new();
    let json_garbage: [(&str, &[u8]); 11] = [
        ("empty body", b""),
        ("truncated object", b"{"),
        ("truncated string", br#"{"key":"ab"#),
        ("null", b"null"),
        ("array", b"[]"),
        ("a string", br#""GUID""#),
        ("a number past f64", b"1e999"),
        ("a byte order mark first", b"\xef\xbb\xbf{}"),
        ("trailing garbage", br#"{"registrationToken":"x"} x"#),
        ("a NUL byte between tokens", b"{\0}"),
        ("JSON nested 100 deep", &[b'['; 100]),
    ];
    for endpoint in ["registrationToken", "testresult", "tan"] {
        for (what, body) in json_garbage {
            cases.push(
                app(endpoint, format!("{endpoint}: {what}"), body).refused(400, "malformed_json"),
            );
        }
        let field = if endpoint == "registrationToken" {
            "key"
        } else {
            "registrationToken"
        };
        let mut invalid_utf8 = format!(r#"{{"{field}":""#).into_bytes();
        invalid_utf8.extend_from_slice(b"\xff\xfe\"}");
        cases.push(
            app(endpoint, format!("{endpoint}: invalid UTF-8"), invalid_utf8)
                .refused(400, "malformed_json"),
        );
        // Wrong content types.
        for ct in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "application/jsonx",
            "",
        ] {
            cases.push(
                case(
                    Door::App,
                    format!("{endpoint}: content type {ct:?}"),
                    "POST",
                    &format!("/version/v1/{endpoint}"),
                )
                .header("cwa-fake", "0")
                .header("content-type", ct)
                .body(r#"{"registrationToken":"x"}"#)
                .refused(415, "unsupported_media_type"),
            );
        }
        cases.push(
            app(
                endpoint,
                format!("{endpoint}: body over the size limit"),
                format!(r#"{{"key":"{}"}}"#, "a".repeat(64 * 1024)),
            )
            .refused(413, "payload_too_large"),
        );
        // Method confusion.
        for method in [
            "GET", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "PROPFIND",
        ] {
            cases.push(
                case(
                    Door::App,
                    format!("{endpoint}: {method}"),
                    method,
                    &format!("/version/v1/{endpoint}"),
                )
                .refused(405, "method_not_allowed"),
            );
        }
    }

    let reg = |what: &str, body: String| app("registrationToken", what, body);
    let by_key = |what: &str, key: &str, key_type: &str| {
        reg(
            what,
            serde_json::json!({"key": key, "keyType": key_type}).to_string(),
        )
    };
    let g = guid();
    cases.extend([
        reg("no key", r#"{"keyType":"GUID"}"#.into()).refused(400, "missing_key"),
        reg("key a number", r#"{"key":12,"keyType":"GUID"}"#.into()).refused(400, "malformed_json"),
        reg("key an array", r#"{"key":["a"],"keyType":"GUID"}"#.into())
            .refused(400, "malformed_json"),
        reg(
            "keyType a bool",
            format!(r#"{{"key":"{g}","keyType":true}}"#),
        )
        .refused(400, "malformed_json"),
        reg(
            "key named twice",
            format!(r#"{{"key":"{g}","key":"{}","keyType":"GUID"}}"#, guid()),
        )
        .refused(400, "malformed_json"),
        reg("no keyType", format!(r#"{{"key":"{g}"}}"#)).refused(400, "invalid_key_type"),
        by_key("keyType lowercase", &g, "guid").refused(400, "invalid_key_type"),
        by_key("keyType unknown", &g, "QR").refused(400, "invalid_key_type"),
        by_key("keyType with a NUL", &g, "GUID\0").refused(400, "invalid_key_type"),
        // An upper-case GUID hash is CWA's pattern too (issue 17): valid, not hostile.
        by_key(
            "GUID with a non-hex letter",
            &format!("{}g", &g[..63]),
            "GUID",
        )
        .refused(400, "invalid_key"),
        by_key("GUID 63 characters", &g[..63], "GUID").refused(400, "invalid_key"),
        by_key("GUID 65 characters", &format!("{g}a"), "GUID").refused(400, "invalid_key"),
        by_key("GUID not hex", &"g".repeat(64), "GUID").refused(400, "invalid_key"),
        by_key("GUID with a NUL", &format!("{}\0", &g[..63]), "GUID").refused(400, "invalid_key"),
        by_key("GUID of full-width digits", &"０".repeat(64), "GUID").refused(400, "invalid_key"),
        by_key("GUID empty", "", "GUID").refused(400, "invalid_key"),
        by_key(
            "GUID padded with spaces",
            &format!(" {} ", &g[..62]),
            "GUID",
        )
        .refused(400, "invalid_key"),
        by_key("teleTAN too short", "R3ZNUEV9J", "TELETAN").refused(400, "invalid_teletan"),
        by_key("teleTAN lower case", "r3znuev9jb", "TELETAN").refused(400, "invalid_teletan"),
        by_key("teleTAN outside the alphabet", "0123456789", "TELETAN")
            .refused(400, "invalid_teletan"),
        by_key("teleTAN with a NUL", "R3ZNUEV9J\0", "TELETAN").refused(400, "invalid_teletan"),
        by_key("a GUID as teleTAN", &g, "TELETAN").refused(400, "invalid_teletan"),
        by_key("teleTAN never issued", &unissued_tele_tan(), "TELETAN")
            .refused(400, "teletan_invalid_expired_or_used"),
        by_key(
            "teleTAN never issued (again)",
            &unissued_tele_tan(),
            "TELETAN",
        )
        .refused(400, "teletan_invalid_expired_or_used"),
    ]);
    // A teleTAN with each wrong check character.
    let good = unissued_tele_tan();
    let wrong = if good.ends_with('G') { 'H' } else { 'G' };
    cases.push(
        by_key(
            "teleTAN with a wrong check character",
            &format!("{}{wrong}", &good[..9]),
            "TELETAN",
        )
        .refused(400, "invalid_teletan"),
    );

    for endpoint in ["testresult", "tan"] {
        let token = |what: &str, body: String| app(endpoint, format!("{endpoint}: {what}"), body);
        let by_token = |what: &str, t: &str| {
            token(
                what,
                serde_json::json!({"registrationToken": t}).to_string(),
            )
        };
        cases.extend([
            token("no token", "{}".into()).refused(400, "invalid_token"),
            token("token a number", r#"{"registrationToken":7}"#.into())
                .refused(400, "malformed_json"),
            token("token null", r#"{"registrationToken":null}"#.into())
                .refused(400, "invalid_token"),
            token(
                "token named twice",
                format!(r#"{{"registrationToken":"{v4}","registrationToken":"{v4}"}}"#),
            )
            .refused(400, "malformed_json"),
            by_token("token not a UUID", "not-a-uuid").refused(400, "invalid_token"),
            by_token("token a UUID v1", "6ba7b810-9dad-11d1-80b4-00c04fd430c8")
                .refused(400, "invalid_token"),
            by_token("token with a NUL", &format!("{}\0", &v4[..35])).refused(400, "invalid_token"),
            by_token("token of 10,000 characters", &"a".repeat(10_000))
                .refused(400, "invalid_token"),
            by_token("token unknown", &uuid::Uuid::new_v4().to_string())
                .refused(400, "unknown_token"),
            by_token("a TAN as token", tan).refused(400, "unknown_token"),
        ]);
    }

    // Uploads: every refusal leaves `tan` usable.
    let keys = |what: &str, f: fn(&mut SubmissionPayload), reason: &'static str| {
        upload(what, tan, one_key(f)).refused(400, reason)
    };
    cases.extend([
        upload("garbage bytes", tan, vec![0xff; 64]).refused(400, "invalid_payload"),
        upload("truncated protobuf", tan, {
            let bytes = payload(3, 1).encode_to_vec();
            bytes[..bytes.len() - 5].to_vec()
        })
        .refused(400, "invalid_payload"),
        upload(
            "a length past the end",
            tan,
            vec![0x0a, 0xff, 0xff, 0xff, 0x0f, 0x01],
        )
        .refused(400, "invalid_payload"),
        upload("wrong wire type for keys", tan, vec![0x08, 0x01]).refused(400, "invalid_payload"),
        upload("a JSON body as protobuf", tan, br#"{"keys":[]}"#.to_vec())
            .refused(400, "invalid_payload"),
        upload("empty payload", tan, Vec::new()).refused(400, "no_keys"),
        upload("no keys", tan, one_key(|p| p.keys.clear())).refused(400, "no_keys"),
        upload("1,000 keys", tan, payload(200, 1).encode_to_vec()).refused(400, "too_many_keys"),
        upload("body over the size limit", tan, vec![0; 512 * 1024])
            .refused(413, "payload_too_large"),
        keys(
            "key data empty",
            |p| p.keys[0].key_data = Some(vec![]),
            "invalid_key_data",
        ),
        keys(
            "key data absent",
            |p| p.keys[0].key_data = None,
            "invalid_key_data",
        ),
        keys(
            "key data 1 byte",
            |p| p.keys[0].key_data = Some(vec![1]),
            "invalid_key_data",
        ),
        keys(
            "key data 15 bytes",
            |p| p.keys[0].key_data = Some(vec![1; 15]),
            "invalid_key_data",
        ),
        keys(
            "key data 17 bytes",
            |p| p.keys[0].key_data = Some(vec![1; 17]),
            "invalid_key_data",
        ),
        keys(
            "key data 32 bytes",
            |p| p.keys[0].key_data = Some(vec![1; 32]),
            "invalid_key_data",
        ),
        keys(
            "rolling start absent",
            |p| p.keys[0].rolling_start_interval_number = None,
            "misaligned_rolling_start",
        ),
        keys(
            "rolling start not at midnight",
            |p| {
                p.keys[0].rolling_start_interval_number =
                    p.keys[0].rolling_start_interval_number.map(|s| s + 1)
            },
            "misaligned_rolling_start",
        ),
        keys(
            "rolling start negative",
            |p| p.keys[0].rolling_start_interval_number = Some(-144),
            "misaligned_rolling_start",
        ),
        keys(
            "rolling start i32::MIN",
            |p| p.keys[0].rolling_start_interval_number = Some(i32::MIN),
            "misaligned_rolling_start",
        ),
        keys(
            "rolling start i32::MAX",
            |p| p.keys[0].rolling_start_interval_number = Some(i32::MAX),
            "misaligned_rolling_start",
        ),
        keys(
            "rolling period 0",
            |p| p.keys[0].rolling_period = Some(0),
            "invalid_rolling_period",
        ),
        keys(
            "rolling period -1",
            |p| p.keys[0].rolling_period = Some(-1),
            "invalid_rolling_period",
        ),
        keys(
            "rolling period 145",
            |p| p.keys[0].rolling_period = Some(145),
            "invalid_rolling_period",
        ),
        keys(
            "rolling period i32::MAX",
            |p| p.keys[0].rolling_period = Some(i32::MAX),
            "invalid_rolling_period",
        ),
        keys(
            "transmission risk 0",
            |p| p.keys[0].transmission_risk_level = Some(0),
            "invalid_transmission_risk",
        ),
        keys(
            "transmission risk 9",
            |p| p.keys[0].transmission_risk_level = Some(9),
            "invalid_transmission_risk",
        ),
        keys(
            "transmission risk i32::MIN",
            |p| p.keys[0].transmission_risk_level = Some(i32::MIN),
            "invalid_transmission_risk",
        ),
        keys(
            "days since onset -16 (CWA's lowest is -15)",
            |p| p.keys[0].days_since_onset_of_symptoms = Some(-16),
            "invalid_days_since_onset",
        ),
        keys(
            "days since onset 4001",
            |p| p.keys[0].days_since_onset_of_symptoms = Some(4001),
            "invalid_days_since_onset",
        ),
        keys(
            "days since onset i32::MAX",
            |p| p.keys[0].days_since_onset_of_symptoms = Some(i32::MAX),
            "invalid_days_since_onset",
        ),
        keys(
            "neither risk nor onset",
            |p| p.keys[0].transmission_risk_level = None,
            "missing_transmission_risk_and_days_since_onset",
        ),
        keys(
            "report type 99",
            |p| p.keys[0].report_type = Some(99),
            "invalid_report_type",
        ),
        keys(
            "report type 200",
            |p| p.keys[0].report_type = Some(200),
            "invalid_report_type",
        ),
        keys(
            "report type -1",
            |p| p.keys[0].report_type = Some(-1),
            "invalid_report_type",
        ),
        keys(
            "report type 7",
            |p| p.keys[0].report_type = Some(7),
            "invalid_report_type",
        ),
        keys(
            "submission type 2",
            |p| p.submission_type = Some(2),
            "invalid_submission_type",
        ),
        keys(
            "submission type 99",
            |p| p.submission_type = Some(99),
            "invalid_submission_type",
        ),
        keys(
            "submission type -1",
            |p| p.submission_type = Some(-1),
            "invalid_submission_type",
        ),
        keys(
            "submission type 200",
            |p| p.submission_type = Some(200),
            "invalid_submission_type",
        ),
        keys(
            "origin unknown",
            |p| p.origin = Some("XX".into()),
            "unsupported_origin",
        ),
        keys(
            "origin another country",
            |p| p.origin = Some("FR".into()),
            "unsupported_origin",
        ),
        keys(
            "origin three letters",
            |p| p.origin = Some("DEU".into()),
            "unsupported_origin",
        ),
        keys(
            "origin NUL bytes",
            |p| p.origin = Some("\0\0".into()),
            "unsupported_origin",
        ),
        keys(
            "visited country unknown",
            |p| p.visited_countries = vec!["ZZ".into()],
            "unsupported_country",
        ),
        keys(
            "visited country a path",
            |p| p.visited_countries = vec!["../".into()],
            "unsupported_country",
        ),
        keys(
            "visited country with a NUL",
            |p| p.visited_countries = vec!["F\0".into()],
            "unsupported_country",
        ),
        keys(
            "visited country right-to-left override",
            |p| p.visited_countries = vec!["\u{202e}RF".into()],
            "unsupported_country",
        ),
    ]);
    let valid = payload(1, 0x5a).encode_to_vec();
    let with_tan =
        |what: &str, t: &str| upload(what, t, valid.clone()).refused(403, "tan_not_valid");
    cases.extend([
        with_tan("TAN unknown", &uuid::Uuid::new_v4().to_string()),
        with_tan("TAN not a UUID", "not-a-tan"),
        // (Any textual form of a version-4 UUID is read as that TAN, as CWA's header always took:
        // the canonical form of `tan` in upper case would spend it.)
        with_tan("TAN a UUID v7", "01890a5d-ac96-774b-bcce-b302099a8057"),
        with_tan(
            "TAN an unknown one in URN form",
            &format!("urn:uuid:{}", uuid::Uuid::new_v4()),
        ),
        with_tan("TAN a UUID v1", "6ba7b810-9dad-11d1-80b4-00c04fd430c8"),
        with_tan("TAN of 4,000 characters", &"a".repeat(4000)),
        with_tan("TAN with trailing garbage", &format!("{tan}x")),
        // Two authorizations: the first one counts, and it is not valid.
        upload(
            "two TAN headers, an unknown one first",
            &uuid::Uuid::new_v4().to_string(),
            valid.clone(),
        )
        .header("cwa-authorization", tan)
        .refused(403, "tan_not_valid"),
        // Two content types: the first counts, at the proxy and at submission alike.
        case(
            Door::App,
            "two content types, JSON first",
            "POST",
            "/version/v1/diagnosis-keys",
        )
        .header("cwa-fake", "0")
        .header("cwa-authorization", tan)
        .header("content-type", "application/json")
        .header("content-type", "application/x-protobuf")
        .body(valid.clone())
        .refused(415, "unsupported_media_type"),
        upload("no TAN", "", valid.clone()).refused(400, "missing_authorization"),
        case(
            Door::App,
            "no cwa-fake header",
            "POST",
            "/version/v1/diagnosis-keys",
        )
        .header("cwa-authorization", tan)
        .header("content-type", "application/x-protobuf")
        .body(valid.clone())
        .refused(400, "missing_fake_header"),
        case(
            Door::App,
            "upload as JSON",
            "POST",
            "/version/v1/diagnosis-keys",
        )
        .header("cwa-fake", "0")
        .header("cwa-authorization", tan)
        .json(r#"{"keys":[]}"#)
        .refused(415, "unsupported_media_type"),
        case(Door::App, "upload GET", "GET", "/version/v1/diagnosis-keys")
            .refused(405, "method_not_allowed"),
    ]);
    // Paths that are not routes.
    for path in [
        "/",
        "/version/v1/tan/",
        "/version/v1/TAN",
        "/version/v2/tan",
        "/version/v1/%74an",
        "/version/v1/tan%00",
        "/version/v1/registrationToken.json",
        "/api/v1/lab/results",
        "/metrics",
        "/healthz",
    ] {
        cases.push(
            case(Door::App, format!("path {path}"), "POST", path)
                .header("cwa-fake", "0")
                .json("{}")
                .refused(404, "not_found"),
        );
    }
    cases
}

fn lab_cases() -> Vec<Case> {
    let g = guid();
    let mut cases = vec![
        lab("empty body", "").refused(400, "malformed_json"),
        lab("truncated", "{").refused(400, "malformed_json"),
        lab("null", "null").refused(400, "invalid_request"),
        lab("an array", "[]").refused(400, "invalid_request"),
        lab("a number", "1").refused(400, "invalid_request"),
        lab("no results", r#"{"labId":"lab"}"#).refused(400, "invalid_request"),
        lab("results empty", r#"{"labId":"lab","testResults":[]}"#)
            .refused(400, "invalid_request"),
        lab("results an object", r#"{"labId":"lab","testResults":{}}"#)
            .refused(400, "invalid_request"),
        lab("a byte order mark first", b"\xef\xbb\xbf{}".to_vec())
            .refused(400, "malformed_json"),
        lab("invalid UTF-8", b"{\"labId\":\"\xff\"}".to_vec()).refused(400, "malformed_json"),
        lab("trailing garbage", format!(r#"{{"testResults":[{{"id":"{g}","result":2}}]}} x"#))
            .refused(400, "malformed_json"),
        lab("nested 200 deep", "[".repeat(200)).refused(400, "malformed_json"),
        lab(
            "labId twice",
            format!(r#"{{"labId":"lab","labId":"other","testResults":[{{"id":"{g}","result":2}}]}}"#),
        )
        .refused(400, "invalid_request"),
        lab(
            "testResults twice",
            format!(r#"{{"testResults":[{{"id":"{g}","result":1}}],"testResults":[{{"id":"{g}","result":2}}]}}"#),
        )
        .refused(400, "invalid_request"),
        lab_result("result twice in one entry", &format!(r#"{{"id":"{g}","result":1,"result":2}}"#))
            .refused(400, "invalid_request"),
        lab(
            "one id twice in the batch",
            format!(r#"{{"testResults":[{{"id":"{g}","result":1}},{{"id":"{g}","result":2}}]}}"#),
        )
        .refused(400, "invalid_request"),
        lab(
            "a valid result then an invalid one",
            format!(r#"{{"testResults":[{{"id":"{}","result":2}},{{"id":"x","result":2}}]}}"#, guid()),
        )
        .refused(400, "invalid_request"),
        lab(
            "1,001 results",
            format!(
                r#"{{"testResults":[{}]}}"#,
                (0..1001)
                    .map(|i| format!(r#"{{"id":"{:064x}","result":2}}"#, i + 1))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        )
        .refused(400, "invalid_request"),
        lab("body over the size limit", format!(r#"{{"labId":"{}"}}"#, "a".repeat(2 << 20)))
            .refused(413, "payload_too_large"),
    ];
    for (what, entry) in [
        // An upper-case id is CWA's pattern too (issue 17): valid, not hostile.
        (
            "id with a non-hex letter",
            format!(r#"{{"id":"{}z","result":2}}"#, &g[..63]),
        ),
        (
            "id 63 characters",
            format!(r#"{{"id":"{}","result":2}}"#, &g[..63]),
        ),
        ("id 65 characters", format!(r#"{{"id":"{g}0","result":2}}"#)),
        (
            "id not hex",
            format!(r#"{{"id":"{}","result":2}}"#, "z".repeat(64)),
        ),
        ("id a number", r#"{"id":12345,"result":2}"#.to_owned()),
        ("id null", r#"{"id":null,"result":2}"#.to_owned()),
        (
            "id with a NUL",
            format!(r#"{{"id":"{}\u0000","result":2}}"#, &g[..63]),
        ),
        (
            "id a path",
            r#"{"id":"../../../../etc/passwd","result":2}"#.to_owned(),
        ),
        ("no id", r#"{"result":2}"#.to_owned()),
        (
            "result 0 (pending)",
            format!(r#"{{"id":"{g}","result":0}}"#),
        ),
        (
            "result 4 (redeemed)",
            format!(r#"{{"id":"{g}","result":4}}"#),
        ),
        ("result -1", format!(r#"{{"id":"{g}","result":-1}}"#)),
        (
            "result 2^40",
            format!(r#"{{"id":"{g}","result":1099511627776}}"#),
        ),
        ("result 2.5", format!(r#"{{"id":"{g}","result":2.5}}"#)),
        ("result a string", format!(r#"{{"id":"{g}","result":"2"}}"#)),
        ("result null", format!(r#"{{"id":"{g}","result":null}}"#)),
        ("no result", format!(r#"{{"id":"{g}"}}"#)),
        (
            "sample time in the future",
            format!(r#"{{"id":"{g}","result":2,"sc":99999999999}}"#),
        ),
        (
            "sample time a string",
            format!(r#"{{"id":"{g}","result":2,"sc":"yesterday"}}"#),
        ),
        (
            "sample time past i64",
            format!(r#"{{"id":"{g}","result":2,"sc":1e30}}"#),
        ),
        (
            "sample time negative",
            format!(r#"{{"id":"{g}","result":2,"sc":-1}}"#),
        ),
        ("entry an array", format!(r#"["{g}",2]"#)),
    ] {
        cases.push(lab_result(what, &entry).refused(400, "invalid_request"));
    }
    for (what, lab_id) in [
        ("labId empty", r#""""#.to_owned()),
        ("labId blank", r#""   ""#.to_owned()),
        ("labId 65 characters", format!(r#""{}""#, "l".repeat(65))),
        ("labId with a NUL", r#""lab\u0000""#.to_owned()),
        ("labId with a newline", r#""lab\nX-Injected: 1""#.to_owned()),
        (
            "labId with a right-to-left override",
            "\"lab\u{202e}evil\"".to_owned(),
        ),
        (
            "labId with a zero-width space",
            "\"l\u{200b}ab\"".to_owned(),
        ),
        ("labId with a byte order mark", "\"\u{feff}lab\"".to_owned()),
        (
            "labId with an Arabic letter mark",
            "\"lab\u{061c}1\"".to_owned(),
        ),
        ("labId with a soft hyphen", "\"la\u{ad}b\"".to_owned()),
        ("labId a number", "42".to_owned()),
        ("labId an object", "{}".to_owned()),
    ] {
        cases.push(
            lab(
                what,
                format!(r#"{{"labId":{lab_id},"testResults":[{{"id":"{g}","result":2}}]}}"#),
            )
            .refused(400, "invalid_request"),
        );
    }
    cases.push(
        lab_result("result 1e400", &format!(r#"{{"id":"{g}","result":1e400}}"#))
            .refused(400, "malformed_json"),
    );
    for ct in ["text/plain", "application/x-www-form-urlencoded", ""] {
        cases.push(
            case(
                Door::Lab,
                format!("content type {ct:?}"),
                "POST",
                "/api/v1/lab/results",
            )
            .header("content-type", ct)
            .body(format!(r#"{{"testResults":[{{"id":"{g}","result":2}}]}}"#))
            .refused(415, "unsupported_media_type"),
        );
    }
    for method in ["GET", "PUT", "DELETE", "PATCH", "FROBNICATE"] {
        cases.push(
            case(
                Door::Lab,
                format!("{method} on the results"),
                method,
                "/api/v1/lab/results",
            )
            .expect(405, None),
        );
    }
    for path in [
        "/",
        "/api/v1/lab/results/",
        "/api/v2/lab/results",
        "/version/v1/tan",
        "/metrics",
    ] {
        cases.push(
            case(Door::Lab, format!("path {path}"), "POST", path)
                .json("{}")
                .refused(404, "not_found"),
        );
    }
    cases
}

fn cdn_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for path in [
        "/",
        "/etc/passwd",
        "/version/",
        "/version//v1",
        "/version/v1/%2e%2e/%2e%2e/etc/passwd",
        "/version/v1/%252e%252e/etc/passwd",
        "/version/v1/..%2f..%2fetc%2fpasswd",
        "/version/v1/..%5c..%5cetc%5cpasswd",
        "/version/v1/%c0%ae%c0%ae/etc/passwd",
        "/version/v1/%e2%80%a4%e2%80%a4/etc",
        "/version/v1/diagnosis-keys/country/DE/date/%00",
        "/version/v1/diagnosis-keys/country/DE/date/2026-13-45",
        "/version/v1/diagnosis-keys/country/../../../../etc/passwd",
        "/version/v1/_object",
        "/version/v1/.hidden",
        "/version/v1/configuration/country/DE/app_config%3f",
        "/version/v1/diagnosis-keys/country/XX/date",
    ] {
        cases.push(case(Door::Cdn, format!("path {path}"), "GET", path).refused(404, "not_found"));
    }
    for digits in [300, 5000] {
        let path = format!(
            "/version/v1/diagnosis-keys/country/DE/date/{}",
            "2".repeat(digits)
        );
        cases.push(
            case(Door::Cdn, format!("a {digits}-digit date"), "GET", &path)
                .refused(404, "not_found"),
        );
    }
    for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "FOO", "SEARCH"] {
        cases.push(
            case(
                Door::Cdn,
                format!("{method} on the country index"),
                method,
                "/version/v1/diagnosis-keys/country",
            )
            .refused(405, "method_not_allowed"),
        );
    }
    cases.push(
        case(
            Door::Cdn,
            "a range past the end",
            "GET",
            "/version/v1/diagnosis-keys/country",
        )
        .header("range", "bytes=999999999-")
        .expect(416, None),
    );
    cases.push(
        case(
            Door::Cdn,
            "a malformed range is ignored",
            "GET",
            "/version/v1/diagnosis-keys/country",
        )
        .header("range", "bytes=zz-!!")
        .expect(200, None),
    );
    cases
}

fn portal_requests() -> Vec<Case> {
    vec![
        case(Door::Portal, "sign-in as JSON", "POST", "/sign-in")
            .json(r#"{"username":"x","password":"x","code":"1"}"#)
            .refused(415, "form_not_urlencoded"),
        case(Door::Portal, "sign-in as multipart", "POST", "/sign-in")
            .header("content-type", "multipart/form-data; boundary=x")
            .body("--x--")
            .refused(415, "form_not_urlencoded"),
        case(Door::Portal, "a sign-in form of 100 KB", "POST", "/sign-in")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("username={}", "a".repeat(100 * 1024)))
            .refused(413, "form_too_large"),
        case(
            Door::Portal,
            "a sign-in form of invalid UTF-8",
            "POST",
            "/sign-in",
        )
        .header("content-type", "application/x-www-form-urlencoded")
        .body(b"username=%ff%fe&password=x&code=1&csrf=x".to_vec())
        .refused(403, "csrf_token_invalid"),
        case(
            Door::Portal,
            "a sign-in form without the CSRF field",
            "POST",
            "/sign-in",
        )
        .header("content-type", "application/x-www-form-urlencoded")
        .body("username=x&password=x&code=1")
        .refused(400, "form_unreadable"),
        case(
            Door::Portal,
            "traversal",
            "GET",
            "/static/%2e%2e/%2e%2e/etc/passwd",
        )
        .refused(404, "not_found"),
        case(Door::Portal, "issue as JSON", "POST", "/issue")
            .json("{}")
            .refused(415, "form_not_urlencoded"),
    ]
}

fn admin_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for (what, method, path, status) in [
        ("unknown path", "GET", "/nope", 404),
        ("traversal", "GET", "/%2e%2e/%2e%2e/etc/passwd", 404),
        ("healthz POST", "POST", "/healthz", 404),
        ("metrics DELETE", "DELETE", "/metrics", 404),
        ("readyz invented method", "BREW", "/readyz", 404),
        (
            "metrics with a 4 KB path",
            "GET",
            &format!("/metrics/{}", "m".repeat(4096)),
            404,
        ),
    ] {
        cases.push(case(Door::Admin, what, method, path).expect(status, None));
    }
    cases
}

/// A form of the portal, sent by an anonymous visitor: what, where, the fields, whether the
/// visitor's CSRF token is added, the status and the reason header it must get (`""`: none).
type Form = (
    String,
    &'static str,
    Vec<(String, String)>,
    bool,
    u16,
    &'static str,
);

fn portal_cases() -> Vec<Form> {
    let long = "u".repeat(10_000);
    let mut out = Vec::new();
    for (what, username, code, status, reason) in [
        ("unknown user", "nobody", "123456", 401, "sign_in_failed"),
        (
            "NUL in the user name",
            "offi\0cer",
            "123456",
            401,
            "sign_in_failed",
        ),
        (
            "a 10,000-character user name",
            long.as_str(),
            "123456",
            413,
            "form_too_large",
        ),
        (
            "a right-to-left override in the user name",
            "\u{202e}nimda",
            "123456",
            401,
            "sign_in_failed",
        ),
        (
            "SQL in the user name",
            "' OR 1=1 --",
            "123456",
            401,
            "sign_in_failed",
        ),
        (
            "a code of letters",
            "nobody",
            "abcdef",
            401,
            "sign_in_failed",
        ),
        (
            "a code of 50 digits",
            "nobody",
            "12345678901234567890123456789012345678901234567890",
            401,
            "sign_in_failed",
        ),
        ("empty fields", "", "", 401, "sign_in_failed"),
    ] {
        out.push((
            format!("sign-in: {what}"),
            "/sign-in",
            vec![
                ("username".to_owned(), username.to_owned()),
                ("password".to_owned(), "password".to_owned()),
                ("code".to_owned(), code.to_owned()),
            ],
            true,
            status,
            reason,
        ));
    }
    let fields = |names: &[&str]| -> Vec<(String, String)> {
        names
            .iter()
            .map(|n| ((*n).to_owned(), "x".to_owned()))
            .collect()
    };
    let enrol = ["secret", "password", "password2", "code"];
    let unknown = "/enrol/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    for (what, path, form, csrf, status, reason) in [
        (
            "sign-in with a wrong CSRF token",
            "/sign-in",
            fields(&["username", "password", "code"]),
            false,
            403,
            "csrf_token_invalid",
        ),
        (
            "sign-in with fields missing",
            "/sign-in",
            fields(&["username"]),
            true,
            400,
            "form_unreadable",
        ),
        (
            "enrolment with an unknown token",
            unknown,
            fields(&enrol),
            true,
            404,
            "enrolment_link_invalid",
        ),
        (
            "enrolment with fields missing",
            unknown,
            fields(&["password"]),
            true,
            400,
            "form_unreadable",
        ),
        (
            "enrolment with a traversal token",
            "/enrol/..%2f..%2fadmin",
            fields(&enrol),
            true,
            404,
            "enrolment_link_invalid",
        ),
        (
            "issue a teleTAN without a session",
            "/issue",
            vec![],
            true,
            303,
            "",
        ),
        (
            "create an account without a session",
            "/admin/accounts",
            fields(&["username", "display_name", "role"]),
            true,
            303,
            "",
        ),
        (
            "disable an account without a session",
            "/admin/accounts/1/disable",
            vec![],
            true,
            303,
            "",
        ),
    ] {
        out.push((what.to_owned(), path, form, csrf, status, reason));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Raw bytes on the sockets
// ---------------------------------------------------------------------------------------------

/// What a raw exchange must end with: a status, or the connection closed without an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ends {
    Status(u16),
    Closed,
}

/// Writes `bytes` and reads until the peer closes or a whole head arrived; the status line's
/// code, or `Closed`. `None` if nothing happened within `wait`.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    bytes: &[u8],
    wait: Duration,
) -> Option<Ends> {
    // A peer may answer and close before reading everything: a failed write is not a failure.
    let _ = stream.write_all(bytes).await;
    let _ = stream.flush().await;
    let mut got = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    got.extend_from_slice(&buf[..n]);
                    if got.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            }
        }
    };
    tokio::time::timeout(wait, read).await.ok()?;
    let line = String::from_utf8_lossy(&got);
    Some(
        line.split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .map_or(Ends::Closed, Ends::Status),
    )
}

async fn raw(addr: SocketAddr, bytes: &[u8]) -> Option<Ends> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    exchange(stream, bytes, Duration::from_secs(15)).await
}

fn raw_cases(host: &str) -> Vec<(String, Vec<u8>, &'static [Ends])> {
    let h = |s: &str| format!("{s}Host: {host}\r\n");
    const BAD: &[Ends] = &[Ends::Status(400)];
    let mut out: Vec<(String, Vec<u8>, &'static [Ends])> = vec![
        (
            "Content-Length and Transfer-Encoding both".into(),
            format!("POST /version/v1/tan HTTP/1.1\r\n{}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", h("")).into_bytes(),
            // Refused, or framed by Transfer-Encoding alone (RFC 9112 §6.3) and then refused for
            // what it is (no content type): never read as two requests.
            &[Ends::Status(400), Ends::Status(415)],
        ),
        (
            "two different Content-Lengths".into(),
            format!("POST /version/v1/tan HTTP/1.1\r\n{}Content-Length: 2\r\nContent-Length: 40\r\n\r\n{{}}", h("")).into_bytes(),
            BAD,
        ),
        (
            "a negative Content-Length".into(),
            format!("POST /version/v1/tan HTTP/1.1\r\n{}Content-Length: -1\r\n\r\n", h("")).into_bytes(),
            BAD,
        ),
        (
            "a Content-Length of letters".into(),
            format!("POST /version/v1/tan HTTP/1.1\r\n{}Content-Length: ten\r\n\r\n", h("")).into_bytes(),
            BAD,
        ),
        (
            "a Content-Length past u64".into(),
            format!("POST /version/v1/tan HTTP/1.1\r\n{}Content-Length: 99999999999999999999999\r\n\r\n", h("")).into_bytes(),
            BAD,
        ),
        (
            "a malformed chunk size".into(),
            format!("POST /version/v1/tan HTTP/1.1\r\n{}Content-Type: application/json\r\ncwa-fake: 0\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{{}}\r\n0\r\n\r\n", h("")).into_bytes(),
            // A port that answers by route without reading a body (the CDN, an admin port).
            &[Ends::Status(400), Ends::Status(404), Ends::Status(405)],
        ),
        (
            "an unknown transfer coding".into(),
            format!("POST /version/v1/tan HTTP/1.1\r\n{}Transfer-Encoding: gzip, rot13\r\n\r\n", h("")).into_bytes(),
            BAD,
        ),
        (
            "a NUL byte in a header value".into(),
            format!("GET /version HTTP/1.1\r\n{}X-A: a\0b\r\n\r\n", h("")).into_bytes(),
            BAD,
        ),
        (
            "a space in a header name".into(),
            format!("GET /version HTTP/1.1\r\n{}Bad Header: x\r\n\r\n", h("")).into_bytes(),
            BAD,
        ),
        (
            "a NUL byte in the path".into(),
            format!("GET /version/\0/x HTTP/1.1\r\n{}\r\n", h("")).into_bytes(),
            BAD,
        ),
        (
            "a header of 1 MB".into(),
            format!("GET /version HTTP/1.1\r\n{}X-Big: {}\r\n\r\n", h(""), "b".repeat(1 << 20)).into_bytes(),
            &[Ends::Status(431), Ends::Closed],
        ),
        (
            "a garbage request line".into(),
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n".to_vec(),
            BAD,
        ),
        (
            "an unknown protocol version".into(),
            format!("GET /version HTTP/9.9\r\n{}\r\n", h("")).into_bytes(),
            BAD,
        ),
    ];
    for (what, path) in [
        ("dot segments", "/version/v1/../../../etc/passwd"),
        (
            "encoded dot segments",
            "/version/v1/%2e%2e/%2e%2e/etc/passwd",
        ),
        (
            "double-encoded dot segments",
            "/version/v1/%252e%252e/%252e%252e/etc/passwd",
        ),
        ("encoded slashes", "/version/v1/..%2f..%2f..%2fetc%2fpasswd"),
        ("backslashes", "/version/v1/..\\..\\etc\\passwd"),
        (
            "overlong UTF-8 dots",
            "/version/v1/%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd",
        ),
        (
            "a NUL before an extension",
            "/version/v1/configuration%00.json",
        ),
        (
            "an absolute URI of another host",
            "http://evil.example/etc/passwd",
        ),
    ] {
        out.push((
            format!("traversal: {what}"),
            format!("GET {path} HTTP/1.1\r\n{}\r\n", h("")).into_bytes(),
            &[Ends::Status(404)],
        ));
    }
    out
}

/// Connections that send slowly: each must be answered 408 or closed within 15 s.
async fn slow_head(addr: SocketAddr) -> Option<Ends> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    exchange(
        stream,
        b"GET /version HTTP/1.1\r\nX-Slow: ",
        Duration::from_secs(15),
    )
    .await
}

async fn slow_body<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    path: &str,
    ct: &str,
) -> Option<Ends> {
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {ct}\r\ncwa-fake: 0\r\nContent-Length: 100\r\n\r\n{{"
    );
    exchange(stream, head.as_bytes(), Duration::from_secs(15)).await
}

async fn lab_tls(
    chain: &Chain,
    name: Option<&str>,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let ca = std::fs::read(chain.pki.ca()).unwrap();
    let identity = name.map(|n| {
        (
            std::fs::read(chain.pki.cert(n)).unwrap(),
            std::fs::read(chain.pki.key(n)).unwrap(),
        )
    });
    let config = openwarn_mtls::http_client_tls(
        &ca,
        identity.as_ref().map(|(c, k)| (c.as_slice(), k.as_slice())),
    )
    .unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(chain.test_result_addr("http")).await?;
    connector
        .connect("test-result".try_into().unwrap(), tcp)
        .await
}

// ---------------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------------

struct Answer {
    status: u16,
    reason: Option<String>,
}

async fn send(client: &reqwest::Client, base: &str, c: &Case) -> Answer {
    let method = reqwest::Method::from_bytes(c.method.as_bytes()).unwrap();
    let mut request = client.request(method, format!("{base}{}", c.path));
    for (name, value) in &c.headers {
        request = request.header(*name, value.as_bytes());
    }
    let response = request
        .body(c.body.clone())
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!("{:?} {}: no answer: {e}", c.door, c.what);
        });
    let status = response.status().as_u16();
    let portal_reason = response
        .headers()
        .get(openwarn_portal::REASON_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body: serde_json::Value = response.json().await.unwrap_or(serde_json::Value::Null);
    Answer {
        status,
        reason: body["error"].as_str().map(str::to_owned).or(portal_reason),
    }
}

async fn start_distribution(chain: &Chain, dir: &std::path::Path) -> RunningService {
    let mut args: Vec<String> = ["--http-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"]
        .map(str::to_owned)
        .to_vec();
    args.extend(chain.pki.service_args("distribution"));
    args.extend([
        format!("--store-url={}", dir.display()),
        format!("--submission-url=https://{}", chain.submission_addr("grpc")),
        format!(
            "--signing-keys=v1={}",
            chain.pki.key("distribution").display()
        ),
        "--padding-secret=0123456789abcdef0123".to_owned(),
        "--schedule=false".to_owned(),
        "--manual-runs=true".to_owned(),
    ]);
    openwarn_distribution::start(openwarn_testkit::config(&args))
        .await
        .expect("distribution starts")
}

async fn publish(distribution: &RunningService) {
    let run = openwarn_testkit::http_client()
        .post(format!("http://{}/run", distribution.addr("admin")))
        .send()
        .await
        .unwrap();
    assert_eq!(run.status().as_u16(), 200);
}

async fn metrics(admin: SocketAddr) -> String {
    openwarn_testkit::http_client()
        .get(format!("http://{admin}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn submission_rows(chain: &Chain) -> i64 {
    let db = openwarn_db::Database::open(chain.submission_db.url(), 1)
        .await
        .unwrap();
    openwarn_submission::Store::new(db).count().await.unwrap()
}

#[tokio::test]
async fn every_door_refuses_hostile_input_with_a_reason_and_stores_nothing() {
    for (db, kv) in openwarn_testkit::backends() {
        let stack = PortalStack::start(&db, &kv, &[], &[]).await;
        let chain = &stack.chain;
        let label = db.label();
        let cdn_dir = tempfile::tempdir().unwrap();
        let distribution = start_distribution(chain, cdn_dir.path()).await;
        publish(&distribution).await;

        // The TAN every refused upload carries: it must stay usable through the whole table.
        let (_token, tan) = chain
            .positive_session(&chain.app, |e| chain.proxy_url(e))
            .await;
        let before = chain.tables().await;
        let proxy = chain.proxy.as_ref().unwrap().addr("http");
        let cdn = distribution.addr("http");

        // Slow clients first, in the background: each must be cut off, not held forever.
        let lab_slow = lab_tls(chain, Some("lab")).await.unwrap();
        let slow = {
            let admin = chain.test_result_addr("admin");
            tokio::spawn(async move {
                // All at once: each waits for its server's timeout.
                let proxy_body = tokio::net::TcpStream::connect(proxy).await.unwrap();
                let (a, b, c, d, e) = tokio::join!(
                    slow_head(proxy),
                    slow_head(cdn),
                    slow_head(admin),
                    slow_body(proxy_body, "/version/v1/tan", "application/json"),
                    slow_body(lab_slow, "/api/v1/lab/results", "application/json"),
                );
                vec![
                    ("proxy: slow head", a),
                    ("CDN: slow head", b),
                    ("admin: slow head", c),
                    ("proxy: slow body", d),
                    ("lab: slow body", e),
                ]
            })
        };

        let mut cases = app_cases(&tan);
        cases.extend(lab_cases());
        cases.extend(cdn_cases());
        cases.extend(admin_cases());
        cases.extend(portal_requests());
        let lab_client = chain.lab_client(Some("lab"));
        let plain = openwarn_testkit::http_client();
        let admins = [
            chain.test_result_addr("admin"),
            chain.verification_addr("admin"),
            chain.submission_addr("admin"),
            chain.proxy.as_ref().unwrap().addr("admin"),
            distribution.addr("admin"),
            stack.portal.as_ref().unwrap().addr("admin"),
        ];
        let mut count = 0;
        let mut wrong = Vec::new();
        for c in &cases {
            let bases: Vec<(String, &reqwest::Client)> = match c.door {
                Door::App => vec![(format!("http://{proxy}"), &plain)],
                Door::Lab => vec![(
                    format!("https://{}", chain.test_result_addr("http")),
                    &lab_client,
                )],
                Door::Cdn => vec![(format!("http://{cdn}"), &plain)],
                Door::Admin => admins
                    .iter()
                    .map(|a| (format!("http://{a}"), &plain))
                    .collect(),
                Door::Portal => vec![(stack.url(), &plain)],
            };
            for (base, client) in bases {
                let answer = send(client, &base, c).await;
                count += 1;
                assert!(
                    answer.status < 500,
                    "{label}: {:?} {} at {base}: {}",
                    c.door,
                    c.what,
                    answer.status
                );
                if (answer.status, answer.reason.as_deref()) != (c.status, c.reason)
                    && !(c.reason.is_none() && answer.status == c.status)
                {
                    wrong.push(format!(
                        "{:?} {} at {base}: {} {:?}, expected {} {:?}",
                        c.door, c.what, answer.status, answer.reason, c.status, c.reason
                    ));
                }
            }
        }

        // The portal's forms.
        for (what, path, form, with_csrf, status, reason) in portal_cases() {
            let mut web = stack.client();
            let page = web.get("/sign-in").await;
            let mut fields: Vec<(String, String)> = form;
            let csrf = if with_csrf {
                page.input("csrf").unwrap()
            } else {
                "not-the-token".to_owned()
            };
            fields.push(("csrf".into(), csrf));
            let borrowed: Vec<(&str, &str)> = fields
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let page = web.post(path, &borrowed).await;
            count += 1;
            assert!(page.status < 500, "{label}: portal {what}: {}", page.status);
            let got = page.header(openwarn_portal::REASON_HEADER).unwrap_or("");
            if page.status != status || got != reason {
                wrong.push(format!(
                    "portal {what}: {} {got:?}, expected {status} {reason:?}",
                    page.status
                ));
            }
        }

        // Raw bytes on the proxy, the CDN and an admin port.
        for (door, addr) in [
            ("proxy", proxy),
            ("CDN", cdn),
            ("admin", chain.verification_addr("admin")),
        ] {
            for (what, bytes, ends) in raw_cases(&addr.to_string()) {
                let got = raw(addr, &bytes).await;
                count += 1;
                if let Some(Ends::Status(s)) = got {
                    assert!(s < 500, "{label}: {door} raw {what}: {s}");
                }
                if !got.is_some_and(|g| ends.contains(&g)) {
                    wrong.push(format!("{door} raw {what}: {got:?}, expected {ends:?}"));
                }
            }
        }

        // TLS without a certificate, and with one not allow-listed: refused in the handshake.
        for name in [None, Some("rogue-lab")] {
            let refused = match lab_tls(chain, name).await {
                Err(_) => true,
                Ok(tls) => {
                    let got = exchange(
                        tls,
                        b"POST /api/v1/lab/results HTTP/1.1\r\nHost: x\r\n\r\n",
                        Duration::from_secs(5),
                    )
                    .await;
                    got == Some(Ends::Closed)
                }
            };
            count += 1;
            assert!(refused, "{label}: lab with {name:?}: not refused");
        }

        for (what, got) in slow.await.unwrap() {
            count += 1;
            if !matches!(got, Some(Ends::Status(408) | Ends::Closed)) {
                wrong.push(format!(
                    "{what}: {got:?}, expected 408 or closed within 15 s"
                ));
            }
        }

        assert!(
            wrong.is_empty(),
            "{label}: {} of {count} cases:\n{}",
            wrong.len(),
            wrong.join("\n")
        );
        assert!(count >= 150, "{label}: {count} cases");

        // Invented methods never became metric labels.
        for admin in [chain.test_result_addr("admin"), distribution.addr("admin")] {
            let text = metrics(admin).await;
            for invented in ["FROBNICATE", "FOO", "SEARCH", "BREW", "PROPFIND"] {
                assert!(
                    !text.contains(invented),
                    "{label}: {invented} in the metrics of {admin}"
                );
            }
        }

        // Nothing stored: both databases as before, no key in submission or its stream.
        assert_eq!(chain.tables().await, before, "{label}");
        assert_eq!(submission_rows(chain).await, 0, "{label}");
        assert!(chain.streamed_keys().await.is_empty(), "{label}");

        // Every service still answers, and the TAN every refused upload carried still uploads
        // once — then never again.
        for admin in admins {
            let r = plain
                .get(format!("http://{admin}/healthz"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 200, "{label}: {admin}");
        }
        let valid = payload(14, 0x42).encode_to_vec();
        let ok = send(
            &plain,
            &format!("http://{proxy}"),
            &upload("the valid upload", &tan, valid.clone()),
        )
        .await;
        assert_eq!(ok.status, 200, "{label}: {:?}", ok.reason);
        let again = send(
            &plain,
            &format!("http://{proxy}"),
            &upload("replayed", &tan, payload(14, 0x43).encode_to_vec()),
        )
        .await;
        assert_eq!(
            (again.status, again.reason.as_deref()),
            (403, Some("tan_not_valid")),
            "{label}"
        );
        assert_eq!(submission_rows(chain).await, 14, "{label}");
        assert_eq!(chain.streamed_keys().await.len(), 14, "{label}");

        distribution.shutdown().await.unwrap();
        stack.shutdown().await;
    }
}

/// Guessing at the edge (issue 19 §3): teleTAN guesses through the proxy are answered until the
/// client's quota is spent, then refused `429 rate_limited` with `Retry-After` until the window
/// ends; nothing of the guesses is stored, and the count is kept only under a keyed hash of the
/// client's network — never its address.
#[tokio::test]
async fn guessing_at_the_edge_is_refused_at_the_documented_rate_and_leaves_no_address() {
    const SECRET: &str = "a-rate-limit-secret-of-the-test";
    const LIMIT: u64 = 5;
    for (db, kv) in openwarn_testkit::backends() {
        let label = db.label();
        let chain = Chain::start(&db, &kv, &[]).await;
        let namespace = format!("openwarn-e2e-guess-{}", uuid::Uuid::new_v4().simple());
        let limit = LIMIT.to_string();
        let proxy = openwarn_e2e::start_proxy_in(
            &chain.pki,
            &format!("https://{}", chain.verification_addr("http")),
            &format!("https://{}", chain.submission_addr("http")),
            &kv,
            &namespace,
            &[
                "--rate-limit",
                &limit,
                "--rate-limit-window",
                "1h",
                "--rate-limit-secret",
                SECRET,
            ],
        )
        .await;
        let before = chain.tables().await;
        let refused_guesses = || async {
            let metrics = openwarn_testkit::scrape(chain.verification_addr("admin")).await;
            metrics
                .lines()
                .find(|l| {
                    l.starts_with("openwarn_verification_refused_total{")
                        && l.contains("endpoint=\"registrationToken\"")
                        && l.contains("reason=\"teletan_invalid_expired_or_used\"")
                })
                .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let refused_before = refused_guesses().await;
        let client = openwarn_testkit::http_client();
        let url = format!("http://{}/version/v1/registrationToken", proxy.addr("http"));
        let guess = || {
            client
                .post(&url)
                .header("content-type", "application/json")
                .header("cwa-fake", "0")
                .body(
                    serde_json::json!({"key": unissued_tele_tan(), "keyType": "TELETAN"})
                        .to_string(),
                )
                .send()
        };
        for _ in 0..LIMIT {
            let r = guess().await.unwrap();
            assert_eq!(r.status().as_u16(), 400, "{label}");
            let body: serde_json::Value = r.json().await.unwrap();
            assert_eq!(body["error"], "teletan_invalid_expired_or_used", "{label}");
        }
        for _ in 0..3 {
            let r = guess().await.unwrap();
            assert_eq!(r.status().as_u16(), 429, "{label}");
            let retry: u64 = r.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=3600).contains(&retry), "{label}: {retry}");
            let body: serde_json::Value = r.json().await.unwrap();
            assert_eq!(body["error"], "rate_limited", "{label}");
        }
        assert_eq!(
            chain.tables().await,
            before,
            "{label}: a guess stored something"
        );
        // Every guess that reached verification is counted for the guessing alert (the metrics
        // are the process's: other tests' refusals may add to them, never take away).
        assert!(
            refused_guesses().await >= refused_before + LIMIT,
            "{label}: refused guesses are not counted"
        );

        // The counter: under HMAC(day key, network), in the store the proxy shares. (A
        // `memory://` store lives inside the proxy; only Redis can be read from here.)
        let limiter = openwarn_proxy::ratelimit::Limiter::new(
            openwarn_kv::open(&kv, &namespace).await.unwrap(),
            SECRET.as_bytes().to_vec(),
            LIMIT,
            Duration::from_secs(3600),
            Duration::from_secs(86_400),
        );
        let now = u64::try_from(openwarn_bootstrap::lifecycle::unix_now()).unwrap();
        let ip: std::net::IpAddr = "127.0.0.1".parse().unwrap();
        let key = limiter.key(ip, now);
        for trace in ["127.0.0.1", "7f000001", "7f00:1", "2130706433"] {
            assert!(!key.contains(trace), "{label}: {key}");
        }
        if kv.starts_with("redis") {
            let store = openwarn_kv::open(&kv, &namespace).await.unwrap();
            assert_eq!(
                store.get(&key).await.unwrap(),
                LIMIT + 3,
                "{label}: every guess counted under the keyed hash"
            );
            let window = now / 3600;
            for plain in [
                format!("rl:127.0.0.1:{window}"),
                format!("rl:7f000001:{window}"),
            ] {
                assert_eq!(store.get(&plain).await.unwrap(), 0, "{label}: {plain}");
            }
        }
        proxy.shutdown().await.unwrap();
        chain.shutdown().await;
    }
}

/// A JSON value shaped like the app API's bodies: their field names, strings in their formats
/// (hashed GUIDs, teleTANs, UUIDs, key types) and anything else.
fn app_json() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
    use proptest::prelude::*;
    use serde_json::Value;
    let string = prop_oneof![
        "[0-9a-f]{64}",
        "[0-9a-fA-F]{60,68}",
        "[2-9A-HJKMNP-Z]{10}",
        "[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
        Just("GUID".to_owned()),
        Just("TELETAN".to_owned()),
        "\\PC{0,40}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        string.clone().prop_map(Value::String),
    ];
    let key = prop_oneof![
        Just("key".to_owned()),
        Just("keyType".to_owned()),
        Just("registrationToken".to_owned()),
        Just("responsePadding".to_owned()),
        "\\PC{0,8}",
    ];
    let value = leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map("\\PC{0,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    proptest::collection::btree_map(key, value, 0..4)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
        .boxed()
}

/// Property test of the app API's JSON bodies (issue 19 §2) against a running verification, on
/// a fixed budget: whatever the body, the answer is a success or a 4xx with a machine-readable
/// reason, never a 5xx, and every answer of an endpoint has the same length (padding), so the
/// length tells an observer nothing.
#[test]
fn any_app_body_gets_a_success_or_a_reason_in_the_endpoints_one_length() {
    use proptest::test_runner::{Config, TestCaseError, TestRunner};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (db, kv) = openwarn_testkit::backends().remove(0);
    let chain = rt.block_on(Chain::start(&db, &kv, &[]));
    for (endpoint, success) in [
        ("registrationToken", 201),
        ("testresult", 200),
        ("tan", 201),
    ] {
        let length = std::cell::Cell::new(None::<usize>);
        let mut runner = TestRunner::new(Config::with_cases(64));
        runner
            .run(&app_json(), |body| {
                let (status, text) = rt.block_on(async {
                    let r = chain
                        .app
                        .post(chain.app_url(endpoint))
                        .header("content-type", "application/json")
                        .header("cwa-fake", "0")
                        .body(body.to_string())
                        .send()
                        .await
                        .unwrap();
                    (r.status().as_u16(), r.text().await.unwrap())
                });
                let answer: serde_json::Value = serde_json::from_str(&text)
                    .map_err(|e| TestCaseError::fail(format!("{status}: not JSON: {e}")))?;
                if status != success {
                    proptest::prop_assert!((400..500).contains(&status), "{endpoint}: {status}");
                    let reason = answer["error"].as_str().unwrap_or_default();
                    proptest::prop_assert!(
                        !reason.is_empty()
                            && reason.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                        "{endpoint}: {status} {text}"
                    );
                }
                match length.get() {
                    None => length.set(Some(text.len())),
                    Some(n) => proptest::prop_assert_eq!(n, text.len(), "{}: {}", endpoint, text),
                }
                Ok(())
            })
            .unwrap();
    }
    rt.block_on(chain.shutdown());
}
