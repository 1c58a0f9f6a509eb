//! cwa-server's submission tests, ported: `PayloadValidationTest`, `SubmissionControllerTest`,
//! `SubmissionPersistenceIT` and the externally visible cases of the persistence tests
//! (`DiagnosisKeyServiceTest`, `DiagnosisKeyBuilderTest`). Each case is posted to a running
//! submission (`POST /version/v1/diagnosis-keys`, as the proxy forwards it) with a real TAN from a
//! running verification (CWA's tests mock the TAN check; here a lab posts a positive result, the
//! app registers and gets a TAN), and what is stored is read back as distribution reads it (the
//! gRPC stream). Each test is named after the CWA test it comes from. Runs on SQLite, and on
//! PostgreSQL when configured (required with CI=true).
//!
//! Submission runs with the most keys per upload it allows (30; CWA's test configuration allows
//! 100, its production 14, as our default); everything else as in production. Where we
//! deliberately differ, the test reads the row of the behaviour table in
//! docs/API-COMPATIBILITY.md and checks that we do what it says.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration test: a failure is a failed test"
)]

use openwarn_e2e::Chain;
use openwarn_protocol::Message;
use openwarn_protocol::cwa::SubmissionPayload;
use openwarn_protocol::gaen::TemporaryExposureKey;
use openwarn_protocol::submission::v1::DiagnosisKey;
use serde_json::Value;
use std::collections::BTreeSet;

const DOCS: &str = include_str!("../../docs/API-COMPATIBILITY.md");

/// (days back, rolling period) of each key of a case.
type Days = Vec<(i32, i32)>;
/// Request headers: (name, value).
type Headers<'a> = Vec<(&'a str, &'a str)>;
/// Visited countries, origin, consent, submission type → the visited countries stored.
type CountriesCase<'a> = (
    Vec<&'a str>,
    Option<&'a str>,
    Option<bool>,
    i32,
    Vec<&'a str>,
);
/// Case, visited countries, origin, request padding.
type ValidCase<'a> = (&'a str, Vec<&'a str>, Option<&'a str>, Option<&'a [u8]>);
/// CWA test, case, check-ins as (start, end, TRL).
type CheckInCase<'a> = (&'a str, &'a str, &'a [(u8, u8, u8)]);

/// The rows of the behaviour table this file reads: (CWA test, case).
const ROWS: &[(&str, &str)] = &[
    (PADDING, PADDING_CASE),
    (CHECK_OUT, CHECK_OUT_CASE),
    (CHECK_IN_TRL, CHECK_IN_TRL_CASE),
    (SRS, SRS_CASE),
    (KEY_PADDING, KEY_PADDING_CASE),
    (NINETY_NINE, NINETY_NINE_CASE),
    (VERIFICATION_DOWN, VERIFICATION_DOWN_CASE),
];
const VERIFICATION_DOWN: &str = "TanVerifierTest.checkInternalServerError";
const VERIFICATION_DOWN_CASE: &str = "verification cannot check the TAN";
const NINETY_NINE: &str =
    "PayloadValidationTest.check200ResponseStatusFor99KeysPayloadWithDifferentDays";
const NINETY_NINE_CASE: &str = "99 keys (CWA's test configuration: `max-number-of-keys` 100)";
const PADDING: &str = "SubmissionControllerTest.testInvalidPaddingSubmissionPayload";
const PADDING_CASE: &str = "`requestPadding` of twice the size limit";
const CHECK_OUT: &str = "SubmissionControllerTest.testInvalidCheckOutTime";
const CHECK_OUT_CASE: &str = "a check-in that ends before it starts";
const CHECK_IN_TRL: &str = "SubmissionControllerTest.testInvalidTransmissionRiskLevelInCheckinData";
const CHECK_IN_TRL_CASE: &str = "check-ins with transmission risk 0 and 4";
const SRS: &str = "SubmissionControllerTest.testSrsKeysTruncated";
const SRS_CASE: &str = "a self-report (submission type 3) with `cwa-otp` instead of a TAN";
const KEY_PADDING: &str =
    "SubmissionControllerTest.checkSaveOperationCallAndFakeDelayUpdateForValidParameters";
const KEY_PADDING_CASE: &str =
    "stored rows for 3 keys (CWA's test configuration: `random-key-padding-multiplier` 10)";

/// The behaviour table's rows: (CWA test, case) → (CWA, ours), without backticks.
fn behaviour_table() -> Vec<((String, String), (String, String))> {
    let lines: Vec<&str> = DOCS.lines().collect();
    let header = lines
        .iter()
        .position(|l| l.starts_with("| CWA test | case | CWA | ours | why |"))
        .expect("docs/API-COMPATIBILITY.md has the behaviour table");
    let unquote = |c: &str| c.trim().trim_matches('`').to_owned();
    lines[header + 2..]
        .iter()
        .take_while(|l| l.starts_with('|'))
        .map(|line| {
            let cells: Vec<&str> = line
                .trim()
                .strip_prefix('|')
                .and_then(|l| l.strip_suffix('|'))
                .expect("a table row")
                .split(" | ")
                .collect();
            assert_eq!(cells.len(), 5, "5 cells: {line}");
            assert!(!cells[4].trim().is_empty(), "a reason: {line}");
            (
                (unquote(cells[0]), cells[1].trim().to_owned()),
                (unquote(cells[2]), unquote(cells[3])),
            )
        })
        .collect()
}

/// Checks `observed` against the row for `test` and `case`: it is what `ours` says, and that
/// differs from CWA.
fn as_documented(test: &str, case: &str, observed: &str) {
    let rows = behaviour_table();
    let found: Vec<&(String, String)> = rows
        .iter()
        .filter(|((t, c), _)| t == test && c == case)
        .map(|(_, v)| v)
        .collect();
    assert_eq!(found.len(), 1, "one row for {test} / {case}");
    let (cwa, ours) = found[0];
    assert_eq!(observed, ours, "{test} / {case}: as the row says");
    assert_ne!(cwa, ours, "{test} / {case}: a row documents a difference");
}

/// Every submission row of the behaviour table is one this file checks, and the other way round.
#[test]
fn every_submission_row_of_the_behaviour_table_is_checked() {
    let documented: BTreeSet<(String, String)> = behaviour_table()
        .into_iter()
        .map(|(k, _)| k)
        .filter(|(t, _)| {
            [
                "SubmissionControllerTest.",
                "PayloadValidationTest.",
                "SubmissionPersistenceIT.",
                "TanVerifierTest.",
            ]
            .iter()
            .any(|p| t.starts_with(p))
        })
        .collect();
    let checked: BTreeSet<(String, String)> = ROWS
        .iter()
        .map(|(t, c)| ((*t).to_owned(), (*c).to_owned()))
        .collect();
    assert_eq!(documented, checked);
}

/// Runs `case` against a fresh chain on every configured backend.
async fn on_every_backend<F, Fut>(case: F)
where
    F: Fn(Chain, String) -> Fut,
    Fut: std::future::Future<Output = Chain>,
{
    for (db, kv) in openwarn_testkit::backends() {
        let chain = Chain::start_with(&db, &kv, &[], &["--max-keys", "30"]).await;
        case(chain, db.label().to_owned()).await.shutdown().await;
    }
}

/// CWA `SubmissionPayloadMockData.createRollingStartIntervalNumber(daysAgo)`: UTC midnight
/// `days_ago` days back, in 10-minute intervals.
fn rsin(days_ago: i32) -> i32 {
    let today = i32::try_from(openwarn_bootstrap::lifecycle::unix_now() / 86_400).unwrap();
    (today - days_ago) * 144
}

/// CWA's `VALID_KEY_DATA_n` (`testKey111111111`, …), its last byte replaced by `tag` so that each
/// case's keys are its own.
fn data(n: u8, tag: u8) -> Vec<u8> {
    let mut d = format!("testKey{}", n.to_string().repeat(9)).into_bytes();
    d[15] = tag;
    d
}

/// CWA `buildTemporaryExposureKey`: report type CONFIRMED_TEST, rolling period unset (144).
fn key(data: Vec<u8>, rsin: i32, trl: Option<i32>, dsos: Option<i32>) -> TemporaryExposureKey {
    TemporaryExposureKey {
        key_data: Some(data),
        rolling_start_interval_number: Some(rsin),
        transmission_risk_level: trl,
        report_type: Some(1),
        days_since_onset_of_symptoms: dsos,
        rolling_period: None,
    }
}

/// CWA `buildTemporaryExposureKeyWithFlexibleRollingPeriod`: no report type, no DSOS.
fn flexible(data: Vec<u8>, rsin: i32, trl: i32, period: i32) -> TemporaryExposureKey {
    TemporaryExposureKey {
        key_data: Some(data),
        rolling_start_interval_number: Some(rsin),
        transmission_risk_level: Some(trl),
        report_type: None,
        days_since_onset_of_symptoms: None,
        rolling_period: Some(period),
    }
}

/// CWA `RequestExecutor.executePost(keys)`: origin DE, visited DE.
fn payload(keys: Vec<TemporaryExposureKey>) -> SubmissionPayload {
    SubmissionPayload {
        keys,
        origin: Some("DE".into()),
        visited_countries: vec!["DE".into()],
        ..Default::default()
    }
}

/// CWA `SubmissionPayloadMockData.buildPayload(keys)`: origin DE, visited DE and FR.
fn mock_payload(keys: Vec<TemporaryExposureKey>) -> SubmissionPayload {
    SubmissionPayload {
        keys,
        origin: Some("DE".into()),
        visited_countries: vec!["DE".into(), "FR".into()],
        ..Default::default()
    }
}

/// CWA `SubmissionPayloadMockData.buildMultipleKeys`: three keys from 13 days back (retention
/// 14 − 1), TRL 3, 6 and 8, DSOS 1.
fn multiple_keys(tag: u8) -> Vec<TemporaryExposureKey> {
    let first = rsin(13);
    vec![
        key(data(1, tag), first, Some(3), Some(1)),
        key(data(2, tag), first + 2 * 144, Some(6), Some(1)),
        key(data(3, tag), first + 144, Some(8), Some(1)),
    ]
}

/// CWA `SubmissionPayloadMockData.buildPayloadWithOneKey`.
fn one_key(tag: u8) -> Vec<TemporaryExposureKey> {
    vec![key(data(1, tag), rsin(1), Some(3), Some(1))]
}

/// An answer: status and `error` reason, rendered as the behaviour table writes them.
#[derive(Debug, PartialEq, Eq)]
struct Answer(String);

async fn post(chain: &Chain, headers: &[(&str, &str)], body: Vec<u8>) -> Answer {
    let mut request = chain.app.post(chain.submission_url()).body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    Answer(match body["error"].as_str() {
        Some(reason) => format!("{status} {reason}"),
        None => status.to_string(),
    })
}

/// CWA `RequestExecutor.buildDefaultHeader`, with `tan`.
async fn upload_bytes(chain: &Chain, tan: &str, body: Vec<u8>) -> Answer {
    post(
        chain,
        &[
            ("content-type", "application/x-protobuf"),
            ("cwa-fake", "0"),
            ("cwa-authorization", tan),
        ],
        body,
    )
    .await
}

async fn upload(chain: &Chain, tan: &str, p: &SubmissionPayload) -> Answer {
    upload_bytes(chain, tan, p.encode_to_vec()).await
}

/// Uploads `p` with a fresh TAN.
async fn upload_fresh(chain: &Chain, p: &SubmissionPayload) -> Answer {
    let tan = chain.fresh_tan().await;
    upload(chain, &tan, p).await
}

fn ok() -> Answer {
    Answer("200".into())
}

fn refused(reason: &str) -> Answer {
    Answer(format!("400 {reason}"))
}

/// The stored keys of the case `tag`, as distribution reads them, by key data and rolling start.
async fn stored(chain: &Chain, tag: u8) -> Vec<DiagnosisKey> {
    let mut keys: Vec<DiagnosisKey> = chain
        .streamed_keys()
        .await
        .into_iter()
        .filter(|k| k.key_data.get(15) == Some(&tag))
        .collect();
    keys.sort_by(|a, b| {
        (
            &a.key_data,
            a.rolling_start_interval_number,
            a.submission_type,
        )
            .cmp(&(
                &b.key_data,
                b.rolling_start_interval_number,
                b.submission_type,
            ))
    });
    keys
}

/// Nothing of the case `tag` is stored, and `tan` still uploads (refusals spend nothing).
async fn nothing_stored_and_tan_unspent(chain: &Chain, tan: &str, tag: u8, label: &str) {
    assert!(
        stored(chain, tag).await.is_empty(),
        "{label}: nothing stored"
    );
    assert_eq!(
        upload(chain, tan, &payload(one_key(tag))).await,
        ok(),
        "{label}: the TAN is still valid"
    );
}

/// Each case is refused with its reason (400); then nothing of the case `tag` is stored and `tan`
/// still uploads.
async fn all_refused<'a>(
    chain: &Chain,
    tan: &str,
    tag: u8,
    label: &str,
    cases: impl IntoIterator<Item = (String, SubmissionPayload, &'a str)>,
) {
    for (case, p, reason) in cases {
        assert_eq!(
            upload(chain, tan, &p).await,
            refused(reason),
            "{label}: {case}"
        );
    }
    nothing_stored_and_tan_unspent(chain, tan, tag, label).await;
}

/// CWA `PayloadValidationTest`: `check400ResponseStatusForMissingKeys`,
/// `…ForTooManyKeys` (101 keys), `…ForDaysSinceSymptomsFieldNotInRange` (-16, -100, 4001),
/// `…ForTransmissionRiskLevelNotAccepted` (-1, 9, 12),
/// `…ForMissingTransmissionRiskLevelAndDaysSinceSymptoms` and
/// `…ForOverlappingTimeIntervals` (its three data sets: a key starting at noon). 400 with our
/// reason each, nothing stored, the TAN unspent.
#[tokio::test]
async fn check_400_response_status_for_invalid_payloads() {
    on_every_backend(|chain, label| async move {
        let tag = 1;
        let tan = chain.fresh_tan().await;
        let d = |n| data(n, tag);
        let two_days = rsin(2);
        let with_dsos = |dsos| {
            vec![
                key(d(1), two_days, Some(3), Some(dsos)),
                key(d(1), two_days + 144, Some(3), None),
            ]
        };
        let with_trl = |trl| {
            vec![
                key(d(1), two_days, Some(trl), Some(1)),
                key(d(1), two_days + 144, None, Some(1)),
            ]
        };
        let six = rsin(6);
        let noon = six + 72;
        let mut cases: Vec<(String, Vec<TemporaryExposureKey>, &str)> = vec![
            ("missing keys".into(), vec![], "no_keys"),
            (
                "too many keys".into(),
                (0..101).map(|_| flexible(d(1), rsin(4), 3, 100)).collect(),
                "too_many_keys",
            ),
            (
                "missing transmission risk level and days since symptoms".into(),
                vec![
                    key(d(1), two_days, None, None),
                    key(d(1), two_days + 144, None, None),
                ],
                "missing_transmission_risk_and_days_since_onset",
            ),
            (
                "overlapping, fixed periods".into(),
                vec![
                    key(d(1), six, Some(1), Some(1)),
                    key(d(2), noon, Some(3), Some(1)),
                ],
                "misaligned_rolling_start",
            ),
            (
                "overlapping, flexible periods".into(),
                vec![
                    flexible(d(1), six, 1, 54),
                    flexible(d(1), six, 1, 90),
                    flexible(d(2), noon, 3, 133),
                ],
                "misaligned_rolling_start",
            ),
            (
                "overlapping, mixed".into(),
                vec![
                    flexible(d(1), six, 1, 54),
                    flexible(d(1), six, 1, 90),
                    key(d(2), noon, Some(2), Some(1)),
                ],
                "misaligned_rolling_start",
            ),
        ];
        for dsos in [-16, -100, 4001] {
            cases.push((
                format!("days since symptoms {dsos}"),
                with_dsos(dsos),
                "invalid_days_since_onset",
            ));
        }
        for trl in [-1, 9, 12] {
            cases.push((
                format!("transmission risk level {trl}"),
                with_trl(trl),
                "invalid_transmission_risk",
            ));
        }
        let cases = cases
            .into_iter()
            .map(|(case, keys, reason)| (case, payload(keys), reason));
        all_refused(&chain, &tan, tag, &label, cases).await;
        chain
    })
    .await;
}

/// CWA `PayloadValidationTest`: `check200ResponseStatusForDaysSinceSymptomsFieldInRange` (-15,
/// -9, 0, 3986), `…ForTransmissionRiskLevelAccepted` (1, 3, 5, 6, 8) and
/// `check200ResponseStatusForValidSubmissionPayload` (its three data sets); the keys are stored.
#[tokio::test]
async fn check_200_response_status_for_valid_submission_payload() {
    on_every_backend(|chain, label| async move {
        let two_days = rsin(2);
        let mut tag = 10;
        for dsos in [-15, -9, 0, 3986] {
            tag += 1;
            let keys = vec![
                key(data(1, tag), two_days, Some(3), Some(dsos)),
                key(data(1, tag), two_days + 144, Some(3), None),
            ];
            assert_eq!(
                upload_fresh(&chain, &payload(keys)).await,
                ok(),
                "{label}: dsos {dsos}"
            );
            let kept = stored(&chain, tag).await;
            assert_eq!(
                kept.len(),
                2,
                "{label}: dsos {dsos}: the same key on two days"
            );
            assert_eq!(kept[0].days_since_onset_of_symptoms, dsos);
        }
        for trl in [1, 3, 5, 6, 8] {
            tag += 1;
            let keys = vec![
                key(data(1, tag), two_days, Some(trl), Some(1)),
                key(data(1, tag), two_days + 144, None, Some(1)),
            ];
            assert_eq!(
                upload_fresh(&chain, &payload(keys)).await,
                ok(),
                "{label}: trl {trl}"
            );
            assert_eq!(stored(&chain, tag).await[0].transmission_risk_level, trl);
        }
        let six = rsin(6);
        let (two, three) = (six + 144, six + 288);
        let datasets = |tag| {
            let d = |n| data(n, tag);
            [
                vec![
                    key(d(3), six, Some(3), Some(1)),
                    key(d(3), three, Some(3), Some(1)),
                    key(d(2), two, Some(3), Some(1)),
                ],
                vec![
                    flexible(d(1), six, 3, 54),
                    flexible(d(1), six, 3, 90),
                    flexible(d(3), three, 3, 133),
                    flexible(d(3), three, 1, 11),
                    flexible(d(2), two, 1, 100),
                ],
                vec![
                    flexible(d(1), six, 3, 54),
                    flexible(d(1), six, 3, 90),
                    key(d(3), three, Some(3), Some(1)),
                    key(d(2), two, Some(3), Some(1)),
                ],
            ]
        };
        for (i, expected) in [3, 3, 3].into_iter().enumerate() {
            tag += 1;
            let keys = datasets(tag)[i].clone();
            assert_eq!(
                upload_fresh(&chain, &payload(keys)).await,
                ok(),
                "{label}: data set {i}"
            );
            // Each (key, rolling start) once: the first of a repeated one is kept.
            let kept = stored(&chain, tag).await;
            assert_eq!(kept.len(), expected, "{label}: data set {i}: {kept:?}");
            if i > 0 {
                assert_eq!(kept[0].rolling_period, 54, "the first one kept");
            }
        }
        chain
    })
    .await;
}

/// CWA `PayloadValidationTest`: `check200ResponseStatusWithTwoKeysOnDifferentDays`,
/// `…WithOneValidKey`, `…WithTwoKeyFromToday`, `…WithKeysInFuture`,
/// `…WithTwoKeysOneTodayOneYesterday`, `…WithOutdatedKeys` and
/// `check200ResponseStatusFor99KeysPayloadWithDifferentDays` (with the 30 keys we allow at most;
/// 99 are refused: the behaviour table's row): all accepted; stored are the keys neither in the
/// future nor older than 14 days, each (key, rolling start) once.
#[tokio::test]
async fn check_200_response_status_with_keys_on_different_days() {
    on_every_backend(|chain, label| async move {
        let cases: Vec<(&str, Days, usize)> = vec![
            ("two keys on different days", vec![(2, 100), (3, 144)], 2),
            ("one valid key", vec![(1, 100)], 1),
            ("two keys from today", vec![(0, 100), (0, 144)], 1),
            ("keys in the future", vec![(-1, 100), (-2, 144)], 0),
            ("one today, one yesterday", vec![(0, 100), (1, 144)], 2),
            ("outdated keys", vec![(15, 100), (30, 144)], 0),
            (
                "30 keys: 10 today, 10 tomorrow, 10 four days back",
                std::iter::repeat_n((0, 100), 10)
                    .chain(std::iter::repeat_n((-1, 100), 10))
                    .chain(std::iter::repeat_n((4, 100), 10))
                    .collect(),
                2,
            ),
        ];
        for (i, (case, days, expected)) in cases.into_iter().enumerate() {
            let tag = 30 + u8::try_from(i).unwrap();
            let keys = days
                .iter()
                .map(|(days_ago, period)| flexible(data(1, tag), rsin(*days_ago), 3, *period))
                .collect();
            assert_eq!(
                upload_fresh(&chain, &payload(keys)).await,
                ok(),
                "{label}: {case}"
            );
            let kept = stored(&chain, tag).await;
            assert_eq!(kept.len(), expected, "{label}: {case}: {kept:?}");
            let today = rsin(0);
            assert!(
                kept.iter()
                    .all(|k| (rsin(14)..=today).contains(&k.rolling_start_interval_number)),
                "{label}: {case}"
            );
        }
        // CWA's 99 keys: 30 today, 20 tomorrow, 49 four days back.
        let tag = 39;
        let tan = chain.fresh_tan().await;
        let keys = std::iter::repeat_n(0, 30)
            .chain(std::iter::repeat_n(-1, 20))
            .chain(std::iter::repeat_n(4, 49))
            .map(|days_ago| flexible(data(1, tag), rsin(days_ago), 3, 100))
            .collect();
        let answer = upload(&chain, &tan, &payload(keys)).await;
        as_documented(NINETY_NINE, NINETY_NINE_CASE, &answer.0);
        nothing_stored_and_tan_unspent(&chain, &tan, tag, &label).await;
        chain
    })
    .await;
}

/// CWA `SubmissionControllerTest.badRequestIfCwaHeadersMissing` (no headers; only the content
/// type; without `cwa-fake`… as CWA's builder names it, i.e. `cwa-fake: 0` without a TAN; a TAN
/// without `cwa-fake`) and `SubmissionPersistenceIT.testBadRequest0` (neither
/// `cwa-authorization` nor `cwa-otp`): 400, nothing stored.
#[tokio::test]
async fn bad_request_if_cwa_headers_missing() {
    on_every_backend(|chain, label| async move {
        let tag = 40;
        let tan = chain.fresh_tan().await;
        let body = payload(one_key(tag)).encode_to_vec();
        let proto = ("content-type", "application/x-protobuf");
        let cases: Vec<(&str, Headers, &str)> = vec![
            ("no headers", vec![], "missing_fake_header"),
            ("only the content type", vec![proto], "missing_fake_header"),
            (
                "cwa-fake 0, no TAN",
                vec![proto, ("cwa-fake", "0")],
                "missing_authorization",
            ),
            (
                "a TAN, no cwa-fake",
                vec![proto, ("cwa-authorization", tan.as_str())],
                "missing_fake_header",
            ),
        ];
        for (case, headers, reason) in cases {
            assert_eq!(
                post(&chain, &headers, body.clone()).await,
                refused(reason),
                "{label}: {case}"
            );
        }
        nothing_stored_and_tan_unspent(&chain, &tan, tag, &label).await;
        chain
    })
    .await;
}

/// CWA `SubmissionControllerTest.checkOnlyPostAllowed`: every other method is refused with one
/// of the statuses CWA's test allows (403, 405, 500): 405.
#[tokio::test]
async fn check_only_post_allowed() {
    on_every_backend(|chain, label| async move {
        for method in ["GET", "PUT", "DELETE", "OPTIONS", "TRACE", "HEAD"] {
            let response = chain
                .app
                .request(
                    reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                    chain.submission_url(),
                )
                .header("cwa-fake", "0")
                .send()
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), 405, "{label}: {method}");
        }
        chain
    })
    .await;
}

/// CWA `SubmissionControllerTest.check400ResponseStatusForInvalidKeys` (TRL 999) and
/// `checkErrorIsThrownWhenKeysAreMissingDSOSAndTRL`, `DiagnosisKeyBuilderTest`
/// `keyDataMustHaveValidLength` (15 and 17 bytes) and `rollingPeriodMustBeExpectedValue`, and
/// `SubmissionPersistenceIT.testDiagnosisKeyRollingPeriodIsZeroShouldNotBeSaved`: refused,
/// nothing stored; the same TAN then uploads a valid payload.
#[tokio::test]
async fn check_400_response_status_for_invalid_keys() {
    on_every_backend(|chain, label| async move {
        let tag = 50;
        let tan = chain.fresh_tan().await;
        let mut short = data(1, tag);
        short.pop();
        let mut long = data(1, tag);
        long.push(tag);
        let cases: Vec<(&str, Vec<TemporaryExposureKey>, &str)> = vec![
            (
                "transmission risk level 999",
                vec![key(data(1, tag), rsin(2), Some(999), Some(1))],
                "invalid_transmission_risk",
            ),
            (
                "keys missing DSOS and TRL",
                (1..=3)
                    .map(|n| key(data(n, tag), rsin(13) + 144 * i32::from(n), None, None))
                    .collect(),
                "missing_transmission_risk_and_days_since_onset",
            ),
            (
                "15 bytes of key data",
                vec![key(short, rsin(1), Some(3), Some(1))],
                "invalid_key_data",
            ),
            (
                "17 bytes of key data",
                vec![key(long, rsin(1), Some(3), Some(1))],
                "invalid_key_data",
            ),
            (
                "rolling period 0",
                vec![flexible(data(1, tag), rsin(1), 3, 0)],
                "invalid_rolling_period",
            ),
            (
                "rolling period 145",
                vec![flexible(data(1, tag), rsin(1), 3, 145)],
                "invalid_rolling_period",
            ),
        ];
        let cases = cases
            .into_iter()
            .map(|(case, keys, reason)| (case.to_owned(), mock_payload(keys), reason));
        all_refused(&chain, &tan, tag, &label, cases).await;
        chain
    })
    .await;
}

/// CWA `SubmissionControllerTest.invalidTanHandling` and `checkInvalidTanHandlingIsMonitored`:
/// an unknown TAN (and a spent one) is 403, nothing stored; `TanTest.invalidTanShouldThrowException`
/// and `TanVerifierTest.checkTooLongTan`: a TAN that is not a UUID is 403 too (CWA's verifier
/// refuses it unasked), an empty one 400 as a missing one.
#[tokio::test]
async fn invalid_tan_handling() {
    on_every_backend(|chain, label| async move {
        let tag = 60;
        let body = payload(one_key(tag)).encode_to_vec();
        for tan in [
            "ANY SYNTAX".as_bytes(),
            b"123456",
            b"ABCD23X",
            b"ZZZZZZZ",
            b"Bearer 3123fe",
            "&%$§&%&$%/%&".as_bytes(),
            b"LOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOONG",
            b"",
        ] {
            let response = chain
                .app
                .post(chain.submission_url())
                .header("content-type", "application/x-protobuf")
                .header("cwa-fake", "0")
                .header(
                    "cwa-authorization",
                    reqwest::header::HeaderValue::from_bytes(tan).unwrap(),
                )
                .body(body.clone())
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let reason: Value = response.json().await.unwrap();
            let expected = if tan.is_empty() {
                (400, "missing_authorization")
            } else {
                (403, "tan_not_valid")
            };
            assert_eq!(
                (status, reason["error"].as_str().unwrap()),
                expected,
                "{label}: {}",
                String::from_utf8_lossy(tan)
            );
        }
        let unknown = uuid::Uuid::new_v4().to_string();
        assert_eq!(
            upload(&chain, &unknown, &payload(one_key(tag))).await,
            Answer("403 tan_not_valid".into()),
            "{label}"
        );
        let spent = chain.fresh_tan().await;
        assert_eq!(
            upload(&chain, &spent, &payload(one_key(tag + 1))).await,
            ok()
        );
        assert_eq!(
            upload(&chain, &spent, &payload(one_key(tag))).await,
            Answer("403 tan_not_valid".into()),
            "{label}: spent"
        );
        assert!(stored(&chain, tag).await.is_empty(), "{label}");
        chain
    })
    .await;
}

/// CWA `SubmissionControllerTest.checkSaveOperationCallAndFakeDelayUpdateForValidParameters`,
/// `checkResponseStatusForValidParameters` and `submissionPayloadWithConsentIsPersistedCorrectly`
/// / `…WithoutConsent…`: each key stored as submitted, with the payload's consent, origin and
/// visited countries. CWA's test configuration stores 10 rows per key (random padding); we
/// store the real keys (the behaviour table's row).
#[tokio::test]
async fn check_save_operation_call_and_fake_delay_update_for_valid_parameters() {
    on_every_backend(|chain, label| async move {
        for (tag, consent) in [(70, true), (71, false)] {
            let submitted = multiple_keys(tag);
            let mut p = mock_payload(submitted.clone());
            p.consent_to_federation = Some(consent);
            assert_eq!(upload_fresh(&chain, &p).await, ok(), "{label}");
            let kept = stored(&chain, tag).await;
            if consent {
                as_documented(
                    KEY_PADDING,
                    KEY_PADDING_CASE,
                    &format!("{} rows stored", kept.len()),
                );
            }
            let mut expected: Vec<(Vec<u8>, i32, i32, i32)> = submitted
                .iter()
                .map(|k| {
                    (
                        k.key_data.clone().unwrap(),
                        k.rolling_start_interval_number(),
                        k.rolling_period(),
                        k.transmission_risk_level(),
                    )
                })
                .collect();
            expected.sort();
            let got: Vec<(Vec<u8>, i32, i32, i32)> = kept
                .iter()
                .map(|k| {
                    (
                        k.key_data.clone(),
                        k.rolling_start_interval_number,
                        k.rolling_period,
                        k.transmission_risk_level,
                    )
                })
                .collect();
            assert_eq!(got, expected, "{label}");
            for k in &kept {
                assert_eq!(k.consent_to_federation, consent);
                assert_eq!(k.origin, "DE");
                assert_eq!(k.visited_countries, ["DE", "FR"]);
                assert_eq!((k.report_type, k.days_since_onset_of_symptoms), (1, 1));
            }
        }
        chain
    })
    .await;
}

/// CWA `SubmissionControllerTest.keysWithOutdatedRollingStartIntervalNumberDoNotGetSaved`,
/// `singleKeyWithOutdatedRollingStartIntervalNumberDoesNotGetSaved` and
/// `submmissionPayloadWithInvalidIntervalItemsIsFilteredCorrectly`: accepted; a key older than
/// the retention (15 days back) or 5 days in the future is not stored, the others are.
#[tokio::test]
async fn keys_with_outdated_rolling_start_interval_number_do_not_get_saved() {
    on_every_backend(|chain, label| async move {
        let outdated = |tag| flexible(data(2, tag), rsin(15), 5, 144);
        let future = |tag| key(data(4, tag), rsin(-5), Some(3), Some(1));
        for (tag, extra) in [(80, outdated(80)), (81, future(81))] {
            let mut keys = multiple_keys(tag);
            let rejected = extra.rolling_start_interval_number();
            keys.push(extra);
            assert_eq!(upload_fresh(&chain, &mock_payload(keys)).await, ok());
            let kept = stored(&chain, tag).await;
            assert_eq!(kept.len(), 3, "{label}: {kept:?}");
            assert!(
                kept.iter()
                    .all(|k| k.rolling_start_interval_number != rejected)
            );
        }
        assert_eq!(
            upload_fresh(&chain, &mock_payload(vec![outdated(82)])).await,
            ok(),
            "{label}: a single outdated key"
        );
        assert!(stored(&chain, 82).await.is_empty());
        chain
    })
    .await;
}

/// CWA `SubmissionControllerTest.checkTRLIsPersistedForKeysWithDSOSOnly`: TRL derived from DSOS
/// by CWA's `trl-from-dsos` map — DSOS 8, 10 and 14 are not in it: CWA's default TRL 1.
#[tokio::test]
async fn check_trl_is_persisted_for_keys_with_dsos_only() {
    on_every_backend(|chain, label| async move {
        let tag = 90;
        let first = rsin(13);
        let keys = vec![
            key(data(1, tag), first, None, Some(8)),
            key(data(2, tag), first + 288, None, Some(10)),
            key(data(3, tag), first + 144, None, Some(14)),
            key(data(4, tag), first + 432, None, Some(0)),
            key(data(5, tag), first + 576, None, Some(-5)),
        ];
        assert_eq!(upload_fresh(&chain, &mock_payload(keys)).await, ok());
        let derived: Vec<(i32, i32)> = stored(&chain, tag)
            .await
            .iter()
            .map(|k| (k.days_since_onset_of_symptoms, k.transmission_risk_level))
            .collect();
        assert_eq!(
            derived,
            vec![(8, 1), (10, 1), (14, 1), (0, 8), (-5, 2)],
            "{label}"
        );
        chain
    })
    .await;
}

/// CWA `SubmissionControllerTest.checkDSOSIsPersistedForKeysWithTRLOnly`: DSOS derived from TRL
/// by CWA's `dsos-from-trl` map (3 → 3993, 6 → 3995, 8 → 3997).
#[tokio::test]
async fn check_dsos_is_persisted_for_keys_with_trl_only() {
    on_every_backend(|chain, label| async move {
        let tag = 91;
        let keys = multiple_keys(tag)
            .into_iter()
            .map(|mut k| {
                k.days_since_onset_of_symptoms = None;
                k
            })
            .collect();
        assert_eq!(upload_fresh(&chain, &mock_payload(keys)).await, ok());
        let derived: Vec<(i32, i32)> = stored(&chain, tag)
            .await
            .iter()
            .map(|k| (k.transmission_risk_level, k.days_since_onset_of_symptoms))
            .collect();
        assert_eq!(derived, vec![(3, 3993), (6, 3995), (8, 3997)], "{label}");
        chain
    })
    .await;
}

/// CWA `SubmissionControllerTest.submissionPayloadAddMissingOriginCountryAsVisitedCountry` and
/// `SubmissionPersistenceIT.okKeyInsertionWithMobileClientProtoBuf` (visited countries and
/// origin absent or given, consent absent or given, PCR or rapid test): the origin (DE when
/// absent or empty) is stored among the visited countries.
#[tokio::test]
async fn submission_payload_add_missing_origin_country_as_visited_country() {
    on_every_backend(|chain, label| async move {
        let cases: Vec<CountriesCase> = vec![
            (vec!["FR"], Some("DE"), None, 0, vec!["DE", "FR"]),
            (vec![], None, None, 0, vec!["DE"]),
            (vec![], None, None, 1, vec!["DE"]),
            (vec![], None, Some(true), 1, vec!["DE"]),
            (vec![], Some("DE"), Some(false), 0, vec!["DE"]),
            (vec!["DE", "FR"], Some(""), Some(true), 1, vec!["DE", "FR"]),
            (
                vec!["NL", "FR"],
                Some("DE"),
                Some(true),
                0,
                vec!["DE", "FR", "NL"],
            ),
        ];
        for (i, (visited, origin, consent, submission_type, expected)) in
            cases.into_iter().enumerate()
        {
            let tag = 100 + u8::try_from(i).unwrap();
            let p = SubmissionPayload {
                keys: multiple_keys(tag),
                visited_countries: visited.iter().map(|c| (*c).to_owned()).collect(),
                origin: origin.map(str::to_owned),
                consent_to_federation: consent,
                submission_type: Some(submission_type),
                ..Default::default()
            };
            assert_eq!(upload_fresh(&chain, &p).await, ok(), "{label}: case {i}");
            let kept = stored(&chain, tag).await;
            assert_eq!(kept.len(), 3, "{label}: case {i}");
            for k in kept {
                assert_eq!(k.visited_countries, expected, "{label}: case {i}");
                assert_eq!(k.origin, "DE");
                assert_eq!(k.consent_to_federation, consent.unwrap_or(false));
                assert_eq!(k.submission_type, submission_type);
            }
        }
        chain
    })
    .await;
}

/// CWA `SubmissionControllerTest.testInvalidVisitedCountriesSubmissionPayload` ("", "D", "FRE",
/// DE+XX, DE+FRE), `testInvalidOriginCountrySubmissionPayload` (IT) and
/// `SubmissionPersistenceIT.failKeyInsertionWithMobileClientProtoBuf` (XX, RU, an empty visited
/// country, origin IT or RU, with and without consent), and `ValidSubmissionPayloadTest`'s
/// expression-language injections as origin and as visited country: 400, nothing stored.
#[tokio::test]
async fn test_invalid_visited_countries_submission_payload() {
    on_every_backend(|chain, label| async move {
        let tag = 110;
        let tan = chain.fresh_tan().await;
        let mut cases: Vec<(Vec<&str>, Option<&str>, &str)> = vec![
            (vec![""], Some("DE"), "unsupported_country"),
            (vec!["D"], Some("DE"), "unsupported_country"),
            (vec!["FRE"], Some("DE"), "unsupported_country"),
            (vec!["DE", "XX"], Some("DE"), "unsupported_country"),
            (vec!["DE", "FRE"], Some("DE"), "unsupported_country"),
            (vec!["DE", "FR"], Some("IT"), "unsupported_origin"),
        ];
        for (visited, origin) in [
            (vec!["XX"], None),
            (vec!["XX"], Some("DE")),
            (vec!["DE", "XX"], None),
            (vec![""], Some("")),
            (vec!["RU"], None),
        ] {
            cases.push((visited, origin, "unsupported_country"));
        }
        // CWA `ValidSubmissionPayloadTest.test…ConstraintViolationInterpolationIsTurnedOff`: an
        // expression in a country is a refused country, nothing else.
        let injection = "java.lang.Runtime.getRuntime().exec('%s');//${''.getClass().forName('x')}";
        cases.push((vec![injection], Some("DE"), "unsupported_country"));
        cases.push((vec!["DE", "FR"], Some(injection), "unsupported_origin"));
        for (visited, origin) in [
            (vec![], Some("RU")),
            (vec!["RU"], Some("RU")),
            (vec!["XX"], Some("IT")),
            (vec!["IT"], Some("RU")),
        ] {
            // CWA checks the origin first, then the visited countries; so do we.
            cases.push((visited, origin, "unsupported_origin"));
        }
        let all = [None, Some(true), Some(false)]
            .into_iter()
            .flat_map(|consent| {
                cases.iter().map(move |(visited, origin, reason)| {
                    let p = SubmissionPayload {
                        keys: multiple_keys(tag),
                        visited_countries: visited.iter().map(|c| (*c).to_owned()).collect(),
                        origin: origin.map(str::to_owned),
                        consent_to_federation: consent,
                        ..Default::default()
                    };
                    (
                        format!("{visited:?} from {origin:?}, consent {consent:?}"),
                        p,
                        *reason,
                    )
                })
            });
        all_refused(&chain, &tan, tag, &label, all).await;
        chain
    })
    .await;
}

/// CWA `SubmissionControllerTest.testValidVisitedCountriesSubmissionPayload` (DE; DE and FR),
/// `testEmptyOriginCountrySubmissionPayload`, `testMissingOriginCountrySubmissionPayload` and
/// `checkResponseStatusForValidParametersWithPadding`: accepted.
#[tokio::test]
async fn test_valid_visited_countries_submission_payload() {
    on_every_backend(|chain, label| async move {
        let cases: Vec<ValidCase> = vec![
            ("visited DE", vec!["DE"], Some("DE"), None),
            ("visited DE, FR", vec!["DE", "FR"], Some("DE"), None),
            ("empty origin", vec!["DE", "FR"], Some(""), None),
            ("missing origin", vec!["DE", "FR"], None, None),
            (
                "with padding",
                vec!["DE", "FR"],
                Some("DE"),
                Some(b"PaddingString".as_slice()),
            ),
        ];
        for (i, (case, visited, origin, padding)) in cases.into_iter().enumerate() {
            let tag = 120 + u8::try_from(i).unwrap();
            let p = SubmissionPayload {
                keys: multiple_keys(tag),
                visited_countries: visited.iter().map(|c| (*c).to_owned()).collect(),
                origin: origin.map(str::to_owned),
                request_padding: padding.map(<[u8]>::to_vec),
                ..Default::default()
            };
            assert_eq!(upload_fresh(&chain, &p).await, ok(), "{label}: {case}");
            assert_eq!(stored(&chain, tag).await.len(), 3, "{label}: {case}");
        }
        chain
    })
    .await;
}

/// CWA `SubmissionControllerTest.testInvalidPaddingSubmissionPayload`: padding of twice the
/// maximum request size. CWA answers 400; we refuse it by its size (the behaviour table's row).
#[tokio::test]
async fn test_invalid_padding_submission_payload() {
    on_every_backend(|chain, label| async move {
        let tag = 130;
        let tan = chain.fresh_tan().await;
        let mut p = mock_payload(multiple_keys(tag));
        p.request_padding = Some(vec![0; 2 * 100 * 1024]);
        let answer = upload(&chain, &tan, &p).await;
        as_documented(PADDING, PADDING_CASE, &answer.0);
        nothing_stored_and_tan_unspent(&chain, &tan, tag, &label).await;
        chain
    })
    .await;
}

/// A `SubmissionPayload` with `keys` and CWA's check-ins (field 6, `CheckIn` {locationId = 1,
/// startIntervalNumber = 2, endIntervalNumber = 3, transmissionRiskLevel = 4}), which our
/// `SubmissionPayload` does not have: (start, end, TRL) each.
fn with_check_ins(keys: Vec<TemporaryExposureKey>, check_ins: &[(u8, u8, u8)]) -> Vec<u8> {
    let mut body = payload(keys).encode_to_vec();
    for (start, end, trl) in check_ins {
        body.extend([0x32, 8, 0x0a, 0, 0x10, *start, 0x18, *end, 0x20, *trl]);
    }
    body
}

/// CWA `SubmissionControllerTest.testInvalidCheckOutTime` and
/// `testInvalidTransmissionRiskLevelInCheckinData`: CWA refuses the check-ins; we have none to
/// check (the behaviour table's rows): the keys are stored.
#[tokio::test]
async fn test_invalid_check_out_time() {
    on_every_backend(|chain, label| async move {
        let cases: [CheckInCase; 2] = [
            (CHECK_OUT, CHECK_OUT_CASE, &[(4, 3, 2)]),
            (CHECK_IN_TRL, CHECK_IN_TRL_CASE, &[(1, 2, 0), (1, 1, 4)]),
        ];
        for (i, (test, case, check_ins)) in cases.into_iter().enumerate() {
            let tag = 140 + u8::try_from(i).unwrap();
            let tan = chain.fresh_tan().await;
            let answer = upload_bytes(&chain, &tan, with_check_ins(one_key(tag), check_ins)).await;
            as_documented(test, case, &answer.0);
            assert_eq!(stored(&chain, tag).await.len(), 1, "{label}: {case}");
        }
        chain
    })
    .await;
}

/// CWA `SubmissionControllerTest.testSrsKeysTruncated` (a self-report with `cwa-otp`: the
/// behaviour table's row), `testInvalidOtp`, and `SubmissionPersistenceIT.testBadRequest2` (both
/// headers), `testBadRequest3` (`cwa-otp` with a type that is no self-report) and
/// `testBadRequest4` (a self-report type with a TAN, types 3 to 9): 400, nothing stored.
#[tokio::test]
async fn test_srs_keys_truncated() {
    on_every_backend(|chain, label| async move {
        let tag = 150;
        let tan = chain.fresh_tan().await;
        let otp = uuid::Uuid::new_v4().to_string();
        let srs = |submission_type| {
            let mut p = payload(multiple_keys(tag));
            p.submission_type = Some(submission_type);
            p.encode_to_vec()
        };
        let headers = |extra: Vec<(&'static str, String)>| {
            let mut h = vec![
                ("content-type", "application/x-protobuf".to_owned()),
                ("cwa-fake", "0".to_owned()),
            ];
            h.extend(extra);
            h
        };
        let send = |h: Vec<(&'static str, String)>, body: Vec<u8>| {
            let chain = &chain;
            async move {
                let h: Vec<(&str, &str)> = h.iter().map(|(n, v)| (*n, v.as_str())).collect();
                post(chain, &h, body).await
            }
        };
        let answer = send(headers(vec![("cwa-otp", otp.clone())]), srs(3)).await;
        as_documented(SRS, SRS_CASE, &answer.0);
        assert_eq!(
            send(
                headers(vec![("cwa-otp", "this isn't an UUID".into())]),
                srs(3)
            )
            .await,
            refused("missing_authorization"),
            "{label}: testInvalidOtp"
        );
        assert!(
            send(
                headers(vec![
                    ("cwa-otp", otp.clone()),
                    ("cwa-authorization", tan.clone())
                ]),
                srs(8)
            )
            .await
            .0
            .starts_with("400 "),
            "{label}: testBadRequest2"
        );
        for submission_type in [0, 1, 2] {
            assert_eq!(
                send(
                    headers(vec![("cwa-otp", otp.clone())]),
                    srs(submission_type)
                )
                .await,
                refused("missing_authorization"),
                "{label}: testBadRequest3 {submission_type}"
            );
        }
        for submission_type in 3..=9 {
            assert_eq!(
                upload_bytes(&chain, &tan, srs(submission_type)).await,
                refused("invalid_submission_type"),
                "{label}: testBadRequest4 {submission_type}"
            );
        }
        nothing_stored_and_tan_unspent(&chain, &tan, tag, &label).await;
        chain
    })
    .await;
}

/// CWA `SubmissionPersistenceIT.defaultsToPcrIfSubmissionTypeIsUndefined`.
#[tokio::test]
async fn defaults_to_pcr_if_submission_type_is_undefined() {
    on_every_backend(|chain, label| async move {
        let tag = 160;
        let p = SubmissionPayload {
            keys: multiple_keys(tag),
            origin: Some("DE".into()),
            consent_to_federation: Some(true),
            ..Default::default()
        };
        assert_eq!(upload_fresh(&chain, &p).await, ok());
        let kept = stored(&chain, tag).await;
        assert_eq!(kept.len(), 3, "{label}");
        assert!(kept.iter().all(|k| k.submission_type == 0), "{label}");
        chain
    })
    .await;
}

/// CWA `DiagnosisKeyServiceTest.shouldNotUpdateExistingKeyWithSameSubmissionType` (PCR and
/// rapid test): the same key at the same rolling start twice — in one payload, and again in a
/// later upload — is stored once, as first submitted (TRL 2, not 3).
#[tokio::test]
async fn should_not_update_existing_key_with_same_submission_type() {
    on_every_backend(|chain, label| async move {
        for submission_type in [0, 1] {
            let tag = 170 + u8::try_from(submission_type).unwrap();
            let start = rsin(3);
            let mut p = payload(vec![
                key(data(1, tag), start, Some(2), Some(1)),
                key(data(1, tag), start, Some(3), Some(1)),
            ]);
            p.submission_type = Some(submission_type);
            assert_eq!(upload_fresh(&chain, &p).await, ok());
            p.keys.reverse();
            assert_eq!(upload_fresh(&chain, &p).await, ok(), "a later upload");
            let kept = stored(&chain, tag).await;
            assert_eq!(kept.len(), 1, "{label}: {submission_type}");
            assert_eq!(kept[0].transmission_risk_level, 2, "{label}");
        }
        chain
    })
    .await;
}

/// CWA `DiagnosisKeyServiceTest.ignoresRapidTestDiagnosisKeysWhenPcrTestIsPresent` and
/// `insertsPcrTestDiagnosisKeysWhenRapidTestIsPresent`: a key uploaded from a PCR test and then
/// from a rapid test is stored once, as PCR; uploaded from a rapid test and then from a PCR test
/// it is stored for both.
#[tokio::test]
async fn ignores_rapid_test_diagnosis_keys_when_pcr_test_is_present() {
    on_every_backend(|chain, label| async move {
        for (tag, order, expected) in [(180, [0, 1], vec![0]), (181, [1, 0], vec![0, 1])] {
            for submission_type in order {
                let mut p = payload(one_key(tag));
                p.submission_type = Some(submission_type);
                assert_eq!(upload_fresh(&chain, &p).await, ok());
            }
            let types: Vec<i32> = stored(&chain, tag)
                .await
                .iter()
                .map(|k| k.submission_type)
                .collect();
            assert_eq!(types, expected, "{label}: {order:?}");
        }
        chain
    })
    .await;
}

/// The app's upload through the proxy, as the app sends it (`cwa-fake` `0` or `1`).
async fn through_proxy(chain: &Chain, fake: &str, tan: &str, tag: u8) -> reqwest::Response {
    openwarn_testkit::http_client()
        .post(chain.proxy_url("diagnosis-keys"))
        .header("content-type", "application/x-protobuf")
        .header("cwa-fake", fake)
        .header("cwa-authorization", tan)
        .body(payload(one_key(tag)).encode_to_vec())
        .send()
        .await
        .unwrap()
}

/// CWA `FakeRequestControllerTest.fakeRequestHandling` and
/// `checkResponseToFakeContainsSameHeadersAsActual`, through the proxy as the app reaches
/// submission: a fake upload is answered 200 with the same headers (and body length) as a real
/// one, stores nothing and spends no TAN.
#[tokio::test]
async fn check_response_to_fake_contains_same_headers_as_actual() {
    on_every_backend(|chain, label| async move {
        let tag = 190;
        let tan = chain.fresh_tan().await;
        let fake = through_proxy(&chain, "1", &tan, tag).await;
        assert_eq!(fake.status().as_u16(), 200, "{label}");
        let fake_headers: BTreeSet<String> = fake
            .headers()
            .keys()
            .map(|k| k.as_str().to_owned())
            .collect();
        let fake_len = fake.bytes().await.unwrap().len();
        assert!(
            stored(&chain, tag).await.is_empty(),
            "{label}: a fake stores nothing"
        );
        let real = through_proxy(&chain, "0", &tan, tag).await;
        assert_eq!(
            real.status().as_u16(),
            200,
            "{label}: the TAN was not spent"
        );
        let real_headers: BTreeSet<String> = real
            .headers()
            .keys()
            .map(|k| k.as_str().to_owned())
            .collect();
        assert_eq!(fake_headers, real_headers, "{label}");
        assert_eq!(fake_len, real.bytes().await.unwrap().len(), "{label}");
        assert_eq!(stored(&chain, tag).await.len(), 1, "{label}");
        chain
    })
    .await;
}

/// CWA `TanVerifierTest.checkInternalServerError` and `checkTimeout`: verification cannot check
/// the TAN. CWA's submission fails with 500; ours answers 503 `dependency_unavailable` (the
/// behaviour table's row): nothing stored, the app retries later.
#[tokio::test]
async fn check_internal_server_error() {
    on_every_backend(|mut chain, label| async move {
        let tag = 200;
        let tan = chain.fresh_tan().await;
        chain.stop_verification().await;
        let answer = upload(&chain, &tan, &payload(one_key(tag))).await;
        as_documented(VERIFICATION_DOWN, VERIFICATION_DOWN_CASE, &answer.0);
        assert!(stored(&chain, tag).await.is_empty(), "{label}");
        chain
    })
    .await;
}
