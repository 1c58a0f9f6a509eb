//! Our API descriptions against the Corona-Warn-App's (tests/reference/cwa), and against our
//! running services.
//!
//! - Conformance: the app APIs (verification, submission, the CDN tree of distribution) and the
//!   lab API of test-result are compared with the matching CWA file — operations, header and
//!   path parameters, request media types, request body fields and their JSON types, required
//!   fields, response statuses and success media types. Every difference found must be a row of
//!   the table in docs/API-COMPATIBILITY.md, and every row must be a difference found.
//! - Examples: each request example of the verification and lab descriptions, fetched from the
//!   running service's admin `/openapi.json`, is sent to the running service and must get the
//!   status (and `error` reason) its name starts with.
//! - Each service serves its description (OpenAPI 3.x) at `/openapi.json` on its admin port, and
//!   what the table claims about behaviour holds: what it says we do not serve answers 404, every
//!   other CWA operation is routed, a `405` it leaves out is still answered, a CWA request field
//!   we do not take is accepted and ignored, and what the CDN description lists is published.
//!
//! Runs on SQLite + in-memory store, and on PostgreSQL + Redis when configured.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration test: a failure is a failed test"
)]

use openwarn_bootstrap::RunningService;
use openwarn_e2e::{Chain, sha256_hex};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// The table of deliberate differences (and known gaps).
const TABLE: &str = include_str!("../../docs/API-COMPATIBILITY.md");

/// Stands, in the verification examples, for the token a registration example returned.
const PLACEHOLDER_TOKEN: &str = "3fa85f64-5717-4562-b3fc-2c963f66afa6";

/// What a row's `kind` may say. The `what differs` cell of each kind has one canonical form
/// (see [`Difference`] and docs/API-COMPATIBILITY.md).
const KINDS: &[&str] = &[
    "not served",
    "not in CWA",
    "parameter",
    "request media type",
    "request field",
    "request type",
    "request required",
    "success status",
    "extra status",
    "missing status",
    "response media type",
];

/// The compared APIs: our name for it, and the CWA file describing it.
const APIS: [(&str, &str); 4] = [
    (
        "verification",
        include_str!("../reference/cwa/cwa-verification-server_api-docs.json"),
    ),
    (
        "submission",
        include_str!("../reference/cwa/cwa-server_submission_api_v1.json"),
    ),
    (
        "lab",
        include_str!("../reference/cwa/cwa-testresult-server_openapi.json"),
    ),
    (
        "CDN",
        include_str!("../reference/cwa/cwa-server_distribution_api_v1.json"),
    ),
];

fn cwa(api: &str) -> Value {
    let (_, text) = APIS
        .iter()
        .find(|(name, _)| *name == api)
        .unwrap_or_else(|| panic!("no API {api}"));
    serde_json::from_str(text).unwrap()
}

/// Our description of `api`, as the service builds it.
fn ours(api: &str) -> Value {
    match api {
        "verification" => serde_json::to_value(openwarn_verification::api()),
        "submission" => serde_json::to_value(openwarn_submission::api()),
        "lab" => serde_json::to_value(openwarn_test_result::api()),
        "CDN" => serde_json::to_value(openwarn_distribution::api()),
        _ => panic!("no API {api}"),
    }
    .unwrap()
}

// ---------------------------------------------------------------------------------------------
// Comparing two descriptions
// ---------------------------------------------------------------------------------------------

/// One difference between the CWA file and our description: a row of the table.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Difference {
    api: String,
    /// `METHOD /path`, with `{version}` read as `v1`.
    operation: String,
    /// The canonical text of the `what differs` cell.
    what: String,
    kind: String,
}

impl fmt::Display for Difference {
    /// As a row of the table (with an empty `why`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "| {} | `{}` | {} | {} | |",
            self.api, self.operation, self.what, self.kind
        )
    }
}

struct Differences<'a> {
    api: &'a str,
    found: BTreeSet<Difference>,
}

impl Differences<'_> {
    fn add(&mut self, operation: &str, kind: &str, what: String) {
        assert!(KINDS.contains(&kind), "unknown kind {kind}");
        self.found.insert(Difference {
            api: self.api.to_owned(),
            operation: operation.to_owned(),
            what,
            kind: kind.to_owned(),
        });
    }
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// The object a local `$ref` (`#/…`) points to; other values as they are.
fn deref<'a>(doc: &'a Value, mut value: &'a Value) -> &'a Value {
    for _ in 0..32 {
        match value.get("$ref").and_then(Value::as_str) {
            Some(reference) => {
                let pointer = reference
                    .strip_prefix('#')
                    .unwrap_or_else(|| panic!("only local references are supported: {reference}"));
                value = doc
                    .pointer(pointer)
                    .unwrap_or_else(|| panic!("dangling reference {reference}"));
            }
            None => return value,
        }
    }
    panic!("reference cycle")
}

/// `{version}` is `v1`: our services serve `v1` under a fixed path where CWA's files write
/// `{version}` (and CWA serves `v1` too).
fn normalise_path(path: &str) -> String {
    path.replace("{version}", "v1")
}

/// Every operation of a description: `METHOD /path` → (path-level parameters, operation).
fn operations(doc: &Value) -> BTreeMap<String, (Vec<&Value>, &Value)> {
    let mut out = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        let item = deref(doc, item);
        let shared: Vec<&Value> = item["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .collect();
        for method in METHODS {
            if let Some(operation) = item.get(method) {
                let key = format!("{} {}", method.to_uppercase(), normalise_path(path));
                assert!(
                    out.insert(key.clone(), (shared.clone(), operation))
                        .is_none(),
                    "{key} twice"
                );
            }
        }
    }
    out
}

/// `(name, in)` → required, for the parameters of an operation. The `version` path parameter is
/// left out: the path already reads it as `v1`. Header names are case-insensitive.
fn parameters(
    doc: &Value,
    shared: &[&Value],
    operation: &Value,
) -> BTreeMap<(String, String), bool> {
    let mut out = BTreeMap::new();
    let own = operation["parameters"].as_array().into_iter().flatten();
    for parameter in shared.iter().copied().chain(own) {
        let parameter = deref(doc, parameter);
        let location = parameter["in"].as_str().unwrap_or_default().to_owned();
        let mut name = parameter["name"].as_str().unwrap_or_default().to_owned();
        if location == "header" {
            name = name.to_ascii_lowercase();
        }
        if location == "path" && name == "version" {
            continue;
        }
        out.insert(
            (name, location),
            parameter["required"].as_bool().unwrap_or(false),
        );
    }
    out
}

/// Media type → schema (`null` when none) of a request body or a response.
fn contents<'a>(doc: &'a Value, holder: Option<&'a Value>) -> BTreeMap<String, &'a Value> {
    let Some(holder) = holder else {
        return BTreeMap::new();
    };
    let holder = deref(doc, holder);
    holder["content"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(media, content)| (media.clone(), &content["schema"]))
        .collect()
}

/// A schema's JSON type, after `$ref`s, single-member `allOf`s and the ways OpenAPI 3.0
/// (`nullable: true`) and 3.1 (`type: [T, "null"]`, `oneOf: [{type: null}, S]`) say "or null"
/// are seen through: `string`, `integer`, `number`, `boolean`, `object`, `array` or `any`.
fn shape<'a>(doc: &'a Value, schema: &'a Value) -> (String, &'a Value) {
    let mut schema = deref(doc, schema);
    loop {
        let members = ["allOf", "oneOf", "anyOf"]
            .iter()
            .find_map(|k| schema.get(*k).and_then(Value::as_array));
        let Some(members) = members else { break };
        let not_null: Vec<&Value> = members
            .iter()
            .map(|m| deref(doc, m))
            .filter(|m| m["type"] != "null")
            .collect();
        match not_null.as_slice() {
            [one] => schema = one,
            _ => break,
        }
    }
    let ty = match &schema["type"] {
        Value::String(t) => t.clone(),
        Value::Array(types) => {
            let types: BTreeSet<&str> = types
                .iter()
                .filter_map(Value::as_str)
                .filter(|t| *t != "null")
                .collect();
            types.into_iter().collect::<Vec<_>>().join("|")
        }
        _ if schema.get("properties").is_some() => "object".to_owned(),
        _ if schema.get("items").is_some() => "array".to_owned(),
        _ => "any".to_owned(),
    };
    (ty, schema)
}

fn field_name(path: &str) -> &str {
    if path.is_empty() { "(body)" } else { path }
}

/// Compares two request schemas field by field (JSON types and required fields; formats,
/// patterns and bounds are not compared).
fn compare_schemas(
    (cwa_doc, cwa): (&Value, &Value),
    (our_doc, ours): (&Value, &Value),
    path: &str,
    operation: &str,
    out: &mut Differences,
) {
    let (cwa_type, cwa) = shape(cwa_doc, cwa);
    let (our_type, ours) = shape(our_doc, ours);
    if cwa_type != our_type {
        out.add(
            operation,
            "request type",
            format!(
                "`{}`: CWA `{cwa_type}`, ours `{our_type}`",
                field_name(path)
            ),
        );
        return;
    }
    match cwa_type.as_str() {
        "object" => {
            let properties = |s: &Value| s["properties"].as_object().cloned().unwrap_or_default();
            let required = |s: &Value| -> BTreeSet<String> {
                s["required"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            };
            let (cwa_fields, our_fields) = (properties(cwa), properties(ours));
            let (cwa_required, our_required) = (required(cwa), required(ours));
            let names: BTreeSet<&String> = cwa_fields.keys().chain(our_fields.keys()).collect();
            for name in names {
                let field = if path.is_empty() {
                    name.clone()
                } else {
                    format!("{path}.{name}")
                };
                match (cwa_fields.get(name), our_fields.get(name)) {
                    (Some(_), None) => {
                        out.add(operation, "request field", format!("`{field}`: CWA only"));
                    }
                    (None, Some(_)) => {
                        out.add(operation, "request field", format!("`{field}`: ours only"));
                    }
                    (Some(c), Some(o)) => {
                        match (cwa_required.contains(name), our_required.contains(name)) {
                            (true, false) => out.add(
                                operation,
                                "request required",
                                format!("`{field}`: required in CWA, optional in ours"),
                            ),
                            (false, true) => out.add(
                                operation,
                                "request required",
                                format!("`{field}`: optional in CWA, required in ours"),
                            ),
                            _ => {}
                        }
                        compare_schemas((cwa_doc, c), (our_doc, o), &field, operation, out);
                    }
                    (None, None) => unreachable!(),
                }
            }
        }
        "array" => compare_schemas(
            (cwa_doc, &cwa["items"]),
            (our_doc, &ours["items"]),
            &format!("{path}[]"),
            operation,
            out,
        ),
        _ => {}
    }
}

/// Every difference between the CWA file and our description of `api`.
fn differences(api: &str, cwa: &Value, ours: &Value) -> BTreeSet<Difference> {
    let mut out = Differences {
        api,
        found: BTreeSet::new(),
    };
    let (cwa_ops, our_ops) = (operations(cwa), operations(ours));
    for operation in cwa_ops.keys().filter(|k| !our_ops.contains_key(*k)) {
        out.add(operation, "not served", "CWA only".into());
    }
    for operation in our_ops.keys().filter(|k| !cwa_ops.contains_key(*k)) {
        out.add(operation, "not in CWA", "ours only".into());
    }
    for (operation, (cwa_shared, cwa_op)) in &cwa_ops {
        let Some((our_shared, our_op)) = our_ops.get(operation) else {
            continue;
        };

        let cwa_params = parameters(cwa, cwa_shared, cwa_op);
        let our_params = parameters(ours, our_shared, our_op);
        let keys: BTreeSet<&(String, String)> =
            cwa_params.keys().chain(our_params.keys()).collect();
        for key @ (name, location) in keys {
            let what = match (cwa_params.get(key), our_params.get(key)) {
                (Some(_), None) => "CWA only",
                (None, Some(_)) => "ours only",
                (Some(true), Some(false)) => "required in CWA, optional in ours",
                (Some(false), Some(true)) => "optional in CWA, required in ours",
                _ => continue,
            };
            out.add(
                operation,
                "parameter",
                format!("`{name}` ({location}): {what}"),
            );
        }

        let cwa_body = contents(cwa, cwa_op.get("requestBody"));
        let our_body = contents(ours, our_op.get("requestBody"));
        for (media, cwa_schema) in &cwa_body {
            match our_body.get(media) {
                None => out.add(
                    operation,
                    "request media type",
                    format!("`{media}`: CWA only"),
                ),
                Some(our_schema) => {
                    compare_schemas(
                        (cwa, cwa_schema),
                        (ours, our_schema),
                        "",
                        operation,
                        &mut out,
                    );
                }
            }
        }
        for media in our_body.keys().filter(|m| !cwa_body.contains_key(*m)) {
            out.add(
                operation,
                "request media type",
                format!("`{media}`: ours only"),
            );
        }

        let statuses = |op: &Value| -> BTreeSet<String> {
            op["responses"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(s, _)| s.clone())
                .collect()
        };
        let (cwa_statuses, our_statuses) = (statuses(cwa_op), statuses(our_op));
        let success = |s: &str| s.starts_with('2');
        for status in cwa_statuses.difference(&our_statuses) {
            if success(status) {
                out.add(operation, "success status", format!("`{status}`: CWA only"));
            } else {
                out.add(operation, "missing status", format!("`{status}`"));
            }
        }
        for status in our_statuses.difference(&cwa_statuses) {
            if success(status) {
                out.add(
                    operation,
                    "success status",
                    format!("`{status}`: ours only"),
                );
            } else {
                out.add(operation, "extra status", format!("`{status}`"));
            }
        }
        for status in cwa_statuses
            .intersection(&our_statuses)
            .filter(|s| success(s))
        {
            let cwa_media = contents(cwa, cwa_op["responses"].get(status));
            let our_media = contents(ours, our_op["responses"].get(status));
            for media in cwa_media.keys().filter(|m| !our_media.contains_key(*m)) {
                out.add(
                    operation,
                    "response media type",
                    format!("`{status}` `{media}`: CWA only"),
                );
            }
            for media in our_media.keys().filter(|m| !cwa_media.contains_key(*m)) {
                out.add(
                    operation,
                    "response media type",
                    format!("`{status}` `{media}`: ours only"),
                );
            }
        }
    }
    out.found
}

// ---------------------------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------------------------

/// A row of the table: the difference it documents, its line (1-based) and its reason.
#[derive(Debug, Clone)]
struct Row {
    line: usize,
    difference: Difference,
    why: String,
}

/// The rows of the table whose header starts with `| API | method and path |` in `markdown`. A malformed row, an
/// unknown API or kind, or a row without a reason panics.
fn table(markdown: &str) -> Vec<Row> {
    let lines: Vec<&str> = markdown.lines().collect();
    let header = lines
        .iter()
        .position(|l| l.trim_start().starts_with("| API | method and path |"))
        .expect("docs/API-COMPATIBILITY.md has a table with an `| API | method and path |` header");
    let cells = |line: &str| -> Vec<String> {
        let line = line.trim();
        let inner = line.strip_prefix('|').and_then(|l| l.strip_suffix('|'));
        inner
            .unwrap_or_else(|| panic!("not a table row: {line}"))
            .split('|')
            .map(|c| c.trim().to_owned())
            .collect()
    };
    let columns = cells(lines[header]);
    assert_eq!(
        columns,
        ["API", "method and path", "what differs", "kind", "why"],
        "the table's columns"
    );
    let mut rows = Vec::new();
    for (i, line) in lines.iter().enumerate().skip(header + 2) {
        if !line.trim_start().starts_with('|') {
            break;
        }
        let n = i + 1;
        let c = cells(line);
        assert_eq!(c.len(), 5, "line {n}: 5 cells expected: {line}");
        assert!(
            APIS.iter().any(|(api, _)| *api == c[0]),
            "line {n}: unknown API {:?} (one of {:?})",
            c[0],
            APIS.map(|(a, _)| a)
        );
        assert!(
            KINDS.contains(&c[3].as_str()),
            "line {n}: unknown kind {:?} (one of {KINDS:?})",
            c[3]
        );
        assert!(!c[4].is_empty(), "line {n}: no reason given");
        let operation = c[1]
            .strip_prefix('`')
            .and_then(|o| o.strip_suffix('`'))
            .unwrap_or_else(|| panic!("line {n}: method and path in backticks: {}", c[1]));
        rows.push(Row {
            line: n,
            difference: Difference {
                api: c[0].clone(),
                operation: operation.to_owned(),
                what: c[2].clone(),
                kind: c[3].clone(),
            },
            why: c[4].clone(),
        });
    }
    assert!(!rows.is_empty(), "the table has rows");
    rows
}

/// `Err` listing the differences no row documents and the rows of `api` no difference matches.
fn check(api: &str, found: &BTreeSet<Difference>, rows: &[Row]) -> Result<(), String> {
    let rows: Vec<&Row> = rows.iter().filter(|r| r.difference.api == api).collect();
    let documented: BTreeSet<&Difference> = rows.iter().map(|r| &r.difference).collect();
    let mut problems = String::new();
    let undocumented: Vec<&Difference> = found.iter().filter(|d| !documented.contains(d)).collect();
    if !undocumented.is_empty() {
        problems.push_str(&format!(
            "{} difference(s) from CWA's {api} file not in docs/API-COMPATIBILITY.md (add a row \
             with a reason, or fix our description):\n",
            undocumented.len()
        ));
        for d in undocumented {
            problems.push_str(&format!("  {d}\n"));
        }
    }
    let stale: Vec<&&Row> = rows
        .iter()
        .filter(|r| !found.contains(&r.difference))
        .collect();
    if !stale.is_empty() {
        problems.push_str(&format!(
            "{} row(s) of docs/API-COMPATIBILITY.md match no difference (stale: remove or correct):\n",
            stale.len()
        ));
        for r in stale {
            problems.push_str(&format!("  line {}: {}\n", r.line, r.difference));
        }
    }
    let mut seen = BTreeSet::new();
    for r in &rows {
        if !seen.insert(&r.difference) {
            problems.push_str(&format!(
                "line {}: duplicate row {}\n",
                r.line, r.difference
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

fn conforms(api: &str) {
    let found = differences(api, &cwa(api), &ours(api));
    if let Err(problems) = check(api, &found, &table(TABLE)) {
        panic!("{problems}");
    }
}

#[test]
fn verification_matches_cwa_but_for_the_table() {
    conforms("verification");
}

#[test]
fn submission_matches_cwa_but_for_the_table() {
    conforms("submission");
}

#[test]
fn lab_api_matches_cwa_but_for_the_table() {
    conforms("lab");
}

#[test]
fn cdn_tree_matches_cwa_but_for_the_table() {
    conforms("CDN");
}

#[test]
fn every_row_of_the_table_is_well_formed_and_unique() {
    let rows = table(TABLE);
    let mut seen = BTreeMap::new();
    for row in &rows {
        if let Some(first) = seen.insert(row.difference.clone(), row.line) {
            panic!("line {} repeats line {first}: {}", row.line, row.difference);
        }
        assert!(
            row.why.len() > 20,
            "line {}: a real reason, please",
            row.line
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Each rule, failing on a doctored description
// ---------------------------------------------------------------------------------------------

fn diff(operation: &str, what: &str, kind: &str) -> Difference {
    Difference {
        api: "verification".into(),
        operation: operation.into(),
        what: what.into(),
        kind: kind.into(),
    }
}

/// Doctoring our verification description adds exactly the `expected` differences, and the
/// table check then fails naming each of them.
fn assert_reported(doctor: impl FnOnce(&mut Value), expected: &[Difference]) {
    let cwa = cwa("verification");
    let mut ours = ours("verification");
    let before = differences("verification", &cwa, &ours);
    doctor(&mut ours);
    let after = differences("verification", &cwa, &ours);
    let added: Vec<Difference> = after.difference(&before).cloned().collect();
    assert_eq!(added, expected);
    let problems = check("verification", &after, &table(TABLE)).unwrap_err();
    for d in expected {
        assert!(problems.contains(&d.to_string()), "{d} not in:\n{problems}");
    }
}

fn schemas(doc: &mut Value) -> &mut Map<String, Value> {
    doc["components"]["schemas"].as_object_mut().unwrap()
}

#[test]
fn a_removed_path_is_reported_as_not_served() {
    assert_reported(
        |o| {
            o["paths"]
                .as_object_mut()
                .unwrap()
                .remove("/version/v1/tan");
        },
        &[diff("POST /version/v1/tan", "CWA only", "not served")],
    );
}

#[test]
fn an_added_operation_is_reported_as_not_in_cwa() {
    assert_reported(
        |o| {
            let op = o["paths"]["/version/v1/tan"]["post"].clone();
            o["paths"]["/version/v1/tan"]["get"] = op;
        },
        &[diff("GET /version/v1/tan", "ours only", "not in CWA")],
    );
}

#[test]
fn a_changed_field_type_is_reported_through_references() {
    // `RegistrationToken` is the body of both `testresult` and `tan`, by reference.
    assert_reported(
        |o| {
            schemas(o)["RegistrationToken"]["properties"]["registrationToken"]["type"] =
                json!(["integer", "null"]);
        },
        &[
            diff(
                "POST /version/v1/tan",
                "`registrationToken`: CWA `string`, ours `integer`",
                "request type",
            ),
            diff(
                "POST /version/v1/testresult",
                "`registrationToken`: CWA `string`, ours `integer`",
                "request type",
            ),
        ],
    );
}

#[test]
fn removed_and_added_fields_are_reported() {
    assert_reported(
        |o| {
            let schema = &mut schemas(o)["RegistrationTokenRequest"];
            schema["properties"]
                .as_object_mut()
                .unwrap()
                .remove("keyType");
            schema["properties"]["teleTanType"] = json!({"type": "string"});
        },
        &[
            diff(
                "POST /version/v1/registrationToken",
                "`keyType`: CWA only",
                "request field",
            ),
            diff(
                "POST /version/v1/registrationToken",
                "`teleTanType`: ours only",
                "request field",
            ),
        ],
    );
}

#[test]
fn a_field_no_longer_required_is_reported() {
    assert_reported(
        |o| {
            schemas(o)["RegistrationTokenRequest"]["required"] = json!(["keyType"]);
        },
        &[diff(
            "POST /version/v1/registrationToken",
            "`key`: required in CWA, optional in ours",
            "request required",
        )],
    );
}

#[test]
fn a_changed_success_status_is_reported() {
    assert_reported(
        |o| {
            let responses = o["paths"]["/version/v1/tan"]["post"]["responses"]
                .as_object_mut()
                .unwrap();
            let created = responses.remove("201").unwrap();
            responses.insert("200".into(), created);
        },
        &[
            diff("POST /version/v1/tan", "`200`: ours only", "success status"),
            diff("POST /version/v1/tan", "`201`: CWA only", "success status"),
        ],
    );
}

#[test]
fn extra_and_missing_error_statuses_are_reported() {
    assert_reported(
        |o| {
            let responses = o["paths"]["/version/v1/tan"]["post"]["responses"]
                .as_object_mut()
                .unwrap();
            responses.remove("415");
            responses.insert("429".into(), json!({"description": "rate limited"}));
        },
        &[
            diff("POST /version/v1/tan", "`415`", "missing status"),
            diff("POST /version/v1/tan", "`429`", "extra status"),
        ],
    );
}

#[test]
fn parameters_and_media_types_are_reported() {
    assert_reported(
        |o| {
            let op = &mut o["paths"]["/version/v1/tan"]["post"];
            op["parameters"][0]["required"] = json!(true);
            let body = op["requestBody"]["content"].as_object_mut().unwrap();
            let json = body.remove("application/json").unwrap();
            body.insert("application/cbor".into(), json);
            let ok = op["responses"]["201"]["content"].as_object_mut().unwrap();
            let json = ok.remove("application/json").unwrap();
            ok.insert("text/plain".into(), json);
        },
        &[
            diff(
                "POST /version/v1/tan",
                "`201` `application/json`: CWA only",
                "response media type",
            ),
            diff(
                "POST /version/v1/tan",
                "`201` `text/plain`: ours only",
                "response media type",
            ),
            diff(
                "POST /version/v1/tan",
                "`application/cbor`: ours only",
                "request media type",
            ),
            diff(
                "POST /version/v1/tan",
                "`application/json`: CWA only",
                "request media type",
            ),
            diff(
                "POST /version/v1/tan",
                "`cwa-fake` (header): optional in CWA, required in ours",
                "parameter",
            ),
        ],
    );
}

#[test]
fn openapi_3_0_and_3_1_spellings_of_the_same_contract_compare_equal() {
    let cwa = json!({
        "openapi": "3.0.1",
        "paths": {"/version/{version}/x": {"post": {
            "parameters": [{"name": "version", "in": "path", "required": true, "schema": {"type": "string"}},
                           {"name": "CWA-Fake", "in": "header", "schema": {"type": "string"}}],
            "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/X"}}}},
            "responses": {"200": {"description": "ok"}}
        }}},
        "components": {"schemas": {
            "X": {"type": "object", "required": ["a"], "properties": {
                "a": {"type": "string", "nullable": true},
                "b": {"type": "array", "items": {"$ref": "#/components/schemas/Y"}}
            }},
            "Y": {"type": "object", "properties": {"n": {"type": "integer", "format": "int32"}}}
        }}
    });
    let ours = json!({
        "openapi": "3.1.0",
        "paths": {"/version/v1/x": {"post": {
            "parameters": [{"name": "cwa-fake", "in": "header", "required": false, "schema": {"type": "string"}}],
            "requestBody": {"content": {"application/json": {"schema": {
                "type": "object", "required": ["a"], "properties": {
                    "a": {"type": ["string", "null"]},
                    "b": {"type": ["array", "null"], "items": {"oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/Y"}]}}
                }
            }}}},
            "responses": {"200": {"description": "ok"}}
        }}},
        "components": {"schemas": {
            "Y": {"allOf": [{"type": "object", "properties": {"n": {"type": ["integer", "null"], "format": "int64"}}}]}
        }}
    });
    assert_eq!(differences("t", &cwa, &ours), BTreeSet::new());

    // …and a nested change is found under its path.
    let mut changed = ours.clone();
    changed["components"]["schemas"]["Y"]["allOf"][0]["properties"]["n"]["type"] = json!("string");
    let found: Vec<String> = differences("t", &cwa, &changed)
        .into_iter()
        .map(|d| format!("{} {} {}", d.operation, d.kind, d.what))
        .collect();
    assert_eq!(
        found,
        ["POST /version/v1/x request type `b[].n`: CWA `integer`, ours `string`"]
    );
}

#[test]
fn a_row_matching_no_difference_is_reported_as_stale() {
    let found = differences("verification", &cwa("verification"), &ours("verification"));
    let mut rows = table(TABLE);
    rows.push(Row {
        line: 9999,
        difference: diff("POST /version/v1/tan", "`418`", "extra status"),
        why: "a teapot".into(),
    });
    let problems = check("verification", &found, &rows).unwrap_err();
    assert!(problems.contains("stale"), "{problems}");
    assert!(problems.contains("line 9999"), "{problems}");
}

#[test]
fn a_malformed_table_is_refused() {
    let header = "| API | method and path | what differs | kind | why |\n|---|---|---|---|---|\n";
    for (bad, message) in [
        (
            "| verification | `POST /x` | `1` | odd | because of this and that |",
            "unknown kind",
        ),
        (
            "| portal | `POST /x` | `1` | extra status | because of this and that |",
            "unknown API",
        ),
        (
            "| verification | `POST /x` | `1` | extra status | |",
            "no reason",
        ),
        (
            "| verification | POST /x | `1` | extra status | because of this and that |",
            "backticks",
        ),
    ] {
        let text = format!("{header}{bad}\n");
        let panic = std::panic::catch_unwind(|| table(&text)).unwrap_err();
        let panic = panic.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(panic.contains(message), "{bad}: {panic}");
    }
}

// ---------------------------------------------------------------------------------------------
// Against running services
// ---------------------------------------------------------------------------------------------

/// Distribution serving a tree in `dir`, with keys from the chain's submission, publishing on
/// `POST /run` (admin) only.
async fn start_distribution(chain: &Chain, dir: &std::path::Path) -> RunningService {
    let mut args: Vec<String> = ["--http-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"]
        .map(str::to_owned)
        .to_vec();
    args.extend(chain.pki.service_args("distribution"));
    args.extend([
        format!("--store-url={}", dir.display()),
        format!("--submission-url=https://{}", chain.submission_addr("grpc")),
        // The dev PKI's keys are P-256 PKCS#8, as the export signature wants.
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

async fn served_description(admin: std::net::SocketAddr) -> Value {
    let response = openwarn_testkit::http_client()
        .get(format!("http://{admin}/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200, "{admin}/openapi.json");
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let doc: Value = response.json().await.unwrap();
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "{admin}: openapi {}",
        doc["openapi"]
    );
    doc
}

/// What an example's name says: `201 registered with a GUID` → (201, None, None);
/// `400 invalid_request (labId)` → (400, Some("invalid_request"), Some("labId")).
fn expectation(name: &str) -> (u16, Option<&str>, Option<&str>) {
    let mut words = name.split_whitespace();
    let status: u16 = words
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("example {name:?} does not start with a status"));
    if status < 400 {
        return (status, None, None);
    }
    let reason = words
        .next()
        .filter(|w| w.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
    let field = name
        .split_once('(')
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(f, _)| f)
        .filter(|f| !f.contains(' '));
    (status, reason, field)
}

#[test]
fn example_names_are_read_as_status_reason_and_field() {
    assert_eq!(expectation("201 registered with a GUID"), (201, None, None));
    assert_eq!(
        expectation("400 invalid_key_type"),
        (400, Some("invalid_key_type"), None)
    );
    assert_eq!(
        expectation("400 invalid_request (labId)"),
        (400, Some("invalid_request"), Some("labId"))
    );
}

/// The last segment of a lab error's `field`: `testResults[0].id` → `id`.
fn last_segment(field: &str) -> &str {
    let last = field.rsplit('.').next().unwrap_or(field);
    last.split('[').next().unwrap_or(last)
}

/// An operation's request examples: (name, value), sorted by name (successes first).
fn examples(operation: &Value) -> Vec<(String, Value)> {
    let content = &operation["requestBody"]["content"]["application/json"];
    let mut out: Vec<(String, Value)> = content["examples"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, example)| (name.clone(), example["value"].clone()))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

struct Reply {
    status: u16,
    body: Value,
}

async fn post_json(client: &reqwest::Client, url: &str, body: &str) -> Reply {
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    Reply { status, body }
}

/// Checks a reply against what the example's name says.
fn check_reply(what: &str, name: &str, reply: &Reply) {
    let (status, reason, field) = expectation(name);
    assert_eq!(
        reply.status, status,
        "{what}, example {name:?}: status (reply {})",
        reply.body
    );
    if let Some(reason) = reason {
        assert_eq!(
            reply.body["error"], reason,
            "{what}, example {name:?}: reason (reply {})",
            reply.body
        );
    }
    if let Some(field) = field {
        let got = reply.body["field"].as_str().unwrap_or_default();
        assert_eq!(
            last_segment(got),
            field,
            "{what}, example {name:?}: field (reply {})",
            reply.body
        );
    }
}

/// Every operation of `doc` has a success example, and every example's status is one the
/// operation documents.
fn assert_examples_documented(doc: &Value) {
    for (operation, (_, op)) in operations(doc) {
        let examples = examples(op);
        assert!(
            examples.iter().any(|(name, _)| name.starts_with('2')),
            "{operation}: no success example"
        );
        for (name, _) in &examples {
            let (status, _, _) = expectation(name);
            assert!(
                op["responses"].get(status.to_string()).is_some(),
                "{operation}: example {name:?} leads to a status the operation does not document"
            );
        }
    }
}

#[tokio::test]
async fn every_request_example_gets_the_status_its_name_says() {
    for (db, kv) in openwarn_testkit::backends() {
        let chain = Chain::start(&db, &kv, &[]).await;
        let label = db.label();

        // Lab examples first, from the description the running service serves.
        let lab_doc = served_description(chain.test_result_addr("admin")).await;
        assert_examples_documented(&lab_doc);
        let lab = chain.lab_client(Some("lab"));
        let lab_base = format!("https://{}", chain.test_result_addr("http"));
        for (operation, (_, op)) in operations(&lab_doc) {
            let path = operation.split_once(' ').unwrap().1;
            for (name, value) in examples(op) {
                let reply = post_json(&lab, &format!("{lab_base}{path}"), &value.to_string()).await;
                check_reply(&format!("{label}: lab {operation}"), &name, &reply);
            }
        }

        let app_doc = served_description(chain.verification_addr("admin")).await;
        assert_examples_documented(&app_doc);
        assert!(
            app_doc["info"]["description"]
                .as_str()
                .unwrap_or_default()
                .contains(PLACEHOLDER_TOKEN),
            "the description explains the placeholder token"
        );
        let ops = operations(&app_doc);

        // The registration examples that should succeed register a GUID whose test is positive:
        // the lab posts that result first, so that the result and TAN examples succeed too.
        for (_, op) in ops.values() {
            for (name, value) in examples(op) {
                if name.starts_with('2') && value["keyType"] == "GUID" {
                    let reply = post_json(
                        &lab,
                        &chain.lab_url(),
                        &json!({"labId": "lab-e2e", "testResults": [{"id": value["key"], "result": 2}]})
                            .to_string(),
                    )
                    .await;
                    assert_eq!(reply.status, 204, "{label}: {}", reply.body);
                }
            }
        }

        // Operations whose examples need a registration token after the others.
        let mut order: Vec<(&String, &Value)> = ops.iter().map(|(k, (_, op))| (k, *op)).collect();
        order.sort_by_key(|(operation, op)| {
            let needs_token = examples(op)
                .iter()
                .any(|(_, v)| v.to_string().contains(PLACEHOLDER_TOKEN));
            (needs_token, (*operation).clone())
        });
        let app_base = format!("https://{}", chain.verification_addr("http"));
        let mut token: Option<String> = None;
        for (operation, op) in order {
            let path = operation.split_once(' ').unwrap().1;
            for (name, value) in examples(op) {
                let mut body = value.to_string();
                if body.contains(PLACEHOLDER_TOKEN) {
                    let real = token.as_deref().unwrap_or_else(|| {
                        panic!("{operation} {name:?}: no registration example returned a token")
                    });
                    body = body.replace(PLACEHOLDER_TOKEN, real);
                }
                let reply = post_json(&chain.app, &format!("{app_base}{path}"), &body).await;
                check_reply(&format!("{label}: {operation}"), &name, &reply);
                if let Some(t) = reply.body["registrationToken"].as_str() {
                    token = Some(t.to_owned());
                }
            }
        }
        assert!(token.is_some(), "{label}: a registration example succeeded");
        chain.shutdown().await;
    }
}

/// A concrete request path for an operation's path template (`{country}` → `DE`).
fn concrete(path: &str) -> Option<String> {
    let path = path.replace("{version}", "v1").replace("{country}", "DE");
    (!path.contains('{')).then_some(path)
}

#[tokio::test]
async fn every_service_serves_its_description_and_does_what_the_table_says() {
    for (db, kv) in openwarn_testkit::backends() {
        let chain = Chain::start(&db, &kv, &[]).await;
        let label = db.label();
        let cdn_dir = tempfile::tempdir().unwrap();
        let distribution = start_distribution(&chain, cdn_dir.path()).await;

        // Each service serves, on its admin port, the description the conformance tests read.
        for (api, admin) in [
            ("verification", chain.verification_addr("admin")),
            ("submission", chain.submission_addr("admin")),
            ("lab", chain.test_result_addr("admin")),
            ("CDN", distribution.addr("admin")),
        ] {
            assert_eq!(served_description(admin).await, ours(api), "{label}: {api}");
        }

        // Publish once, so that the tree has its indexes and configuration.
        let run = openwarn_testkit::http_client()
            .post(format!("http://{}/run", distribution.addr("admin")))
            .send()
            .await
            .unwrap();
        assert_eq!(
            run.status().as_u16(),
            200,
            "{label}: {}",
            run.text().await.unwrap()
        );

        let lab = chain.lab_client(Some("lab"));
        let plain = openwarn_testkit::http_client();
        let base = |api: &str| match api {
            "verification" => format!("https://{}", chain.verification_addr("http")),
            "submission" => format!("https://{}", chain.submission_addr("http")),
            "lab" => format!("https://{}", chain.test_result_addr("http")),
            _ => format!("http://{}", distribution.addr("http")),
        };
        let client = |api: &str| match api {
            "lab" => &lab,
            "CDN" => &plain,
            _ => &chain.app,
        };
        let send = |api: &str, method: &str, path: &str| {
            let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let request = client(api).request(method.clone(), format!("{}{path}", base(api)));
            if method == reqwest::Method::POST {
                request
                    .header("content-type", "application/json")
                    .body("{}")
            } else {
                request
            }
        };

        let rows = table(TABLE);
        let not_served: BTreeSet<(&str, &str)> = rows
            .iter()
            .filter(|r| r.difference.kind == "not served")
            .map(|r| (r.difference.api.as_str(), r.difference.operation.as_str()))
            .collect();
        for row in &rows {
            let d = &row.difference;
            let (method, path) = d.operation.split_once(' ').unwrap();
            let what = format!("{label}: line {}: {}", row.line, d);
            match d.kind.as_str() {
                // What we do not serve answers 404.
                "not served" => {
                    let Some(path) = concrete(path) else { continue };
                    let r = send(&d.api, method, &path).send().await.unwrap();
                    assert_eq!(r.status().as_u16(), 404, "{what}");
                }
                // A 405 left out of our description is still answered, to a method the path
                // does not have.
                "missing status" if d.what == "`405`" => {
                    let r = send(&d.api, "GET", path).send().await.unwrap();
                    assert_eq!(r.status().as_u16(), 405, "{what}");
                }
                _ => {}
            }
        }

        // Every other operation of the CWA files is routed (an empty JSON body gets a refusal,
        // not a 404 or 405); what needs a date or an hour aside.
        for (api, _) in APIS {
            for operation in operations(&cwa(api)).keys() {
                if not_served.contains(&(api, operation.as_str())) {
                    continue;
                }
                let (method, path) = operation.split_once(' ').unwrap();
                let Some(path) = concrete(path) else { continue };
                let status = send(api, method, &path)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16();
                assert!(
                    status != 404 && status != 405,
                    "{label}: {api} {operation} ({path}): {status}"
                );
            }
        }

        // What the CDN description lists is published (what needs a date or an hour aside).
        for operation in operations(&ours("CDN")).keys() {
            let (method, path) = operation.split_once(' ').unwrap();
            let Some(path) = concrete(path) else { continue };
            let r = send("CDN", method, &path).send().await.unwrap();
            assert_eq!(r.status().as_u16(), 200, "{label}: {operation} ({path})");
        }

        // A field of a CWA request we do not take is accepted and ignored: the operation's
        // success example with the field added (and the `requestPadding` the CWA app adds to
        // every request) still succeeds, a fresh positive GUID and its registration token
        // standing in for the example's.
        let app_doc = ours("verification");
        let app_ops = operations(&app_doc);
        let positive_guid = || async {
            let hashed = sha256_hex(uuid::Uuid::new_v4().to_string());
            let reply = post_json(
                &lab,
                &chain.lab_url(),
                &json!({"labId": "lab-e2e", "testResults": [{"id": hashed, "result": 2}]})
                    .to_string(),
            )
            .await;
            assert_eq!(reply.status, 204, "{}", reply.body);
            hashed
        };
        let registered = post_json(
            &chain.app,
            &chain.app_url("registrationToken"),
            &json!({"keyType": "GUID", "key": positive_guid().await}).to_string(),
        )
        .await;
        let token = registered.body["registrationToken"]
            .as_str()
            .unwrap()
            .to_owned();
        for row in rows.iter().filter(|r| {
            r.difference.api == "verification"
                && r.difference.kind == "request field"
                && r.difference.what.ends_with(": CWA only")
        }) {
            let d = &row.difference;
            let field = d.what.split('`').nth(1).unwrap();
            assert!(
                !field.contains(['.', '[']),
                "line {}: top-level fields only",
                row.line
            );
            let (_, op) = app_ops[&d.operation];
            let (name, mut example) = examples(op)
                .into_iter()
                .find(|(name, _)| name.starts_with('2'))
                .unwrap();
            if example["keyType"] == "GUID" {
                example["key"] = json!(positive_guid().await);
            }
            example[field] = json!("0".repeat(64));
            example["requestPadding"] = json!("0".repeat(64));
            let body = example.to_string().replace(PLACEHOLDER_TOKEN, &token);
            let path = d.operation.split_once(' ').unwrap().1;
            let reply = post_json(
                &chain.app,
                &format!("{}{path}", base("verification")),
                &body,
            )
            .await;
            check_reply(&format!("{label}: line {}: {d}", row.line), &name, &reply);
        }

        distribution.shutdown().await.unwrap();
        chain.shutdown().await;
    }
}
