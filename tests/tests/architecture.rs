//! The structural invariants of docs/ARCHITECTURE.md, checked against the real workspace:
//!
//! 1. crates never depend on services;
//! 2. no service depends on another service;
//! 3. only the CLI, the benchmarks and the tests depend on services;
//! 4. each database is touched by one service: every diesel table and every migration lives in
//!    exactly one service, and no table name is declared by two services;
//! 5. one web framework: no package depends on a web framework other than actix-web (tonic
//!    brings axum along for its gRPC router; none of ours uses it).
//!
//! The rules are pure functions over the dependency graph (from `cargo metadata`) and the source
//! tree, so the tests below also show that each rule fails when it is broken.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration test: a failure is a failed test"
)]

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The packages allowed to depend on services, and why.
const ABOVE_SERVICES: &[(&str, &str)] = &[
    (
        "openwarn",
        "the CLI wires every service into one binary for `up` and `service`",
    ),
    ("openwarn-bench", "the benchmarks start services in-process"),
    (
        "openwarn-e2e",
        "the cross-service tests start services in-process",
    ),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Service,
    Crate,
    Tests,
}

#[derive(Debug)]
struct Package {
    kind: Kind,
    /// Workspace packages this one depends on, in any section (normal, dev, build).
    deps: BTreeSet<String>,
    /// Every package it depends on directly, ours and others.
    all_deps: BTreeSet<String>,
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lies in the workspace root")
        .to_path_buf()
}

/// The workspace's packages from `cargo metadata`, classified by where they live.
fn workspace() -> BTreeMap<String, Package> {
    let root = workspace_root();
    #[allow(
        clippy::disallowed_methods,
        reason = "integration test: CARGO is the cargo binary running this test, not a service \
                  setting"
    )]
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(&root)
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON");
    let packages = meta["packages"].as_array().expect("packages");
    let names: BTreeSet<String> = packages
        .iter()
        .map(|p| p["name"].as_str().expect("name").to_owned())
        .collect();
    packages
        .iter()
        .map(|p| {
            let name = p["name"].as_str().expect("name").to_owned();
            let manifest = PathBuf::from(p["manifest_path"].as_str().expect("manifest_path"));
            let dir = manifest
                .parent()
                .expect("manifest in a directory")
                .strip_prefix(&root)
                .expect("package inside the workspace")
                .to_path_buf();
            let kind = match dir.components().next().and_then(|c| c.as_os_str().to_str()) {
                Some("services") => Kind::Service,
                Some("crates") => Kind::Crate,
                Some("tests") => Kind::Tests,
                other => {
                    panic!("package {name} lives outside services/, crates/, tests/: {other:?}")
                }
            };
            let all_deps: BTreeSet<String> = p["dependencies"]
                .as_array()
                .expect("dependencies")
                .iter()
                .map(|d| d["name"].as_str().expect("dependency name").to_owned())
                .collect();
            let deps = all_deps
                .iter()
                .filter(|d| names.contains(*d) && **d != name)
                .cloned()
                .collect();
            (
                name,
                Package {
                    kind,
                    deps,
                    all_deps,
                },
            )
        })
        .collect()
}

/// Every broken dependency rule, as a sentence; empty when the graph is sound.
fn dependency_violations(packages: &BTreeMap<String, Package>) -> Vec<String> {
    let allowed_above: BTreeSet<&str> = ABOVE_SERVICES.iter().map(|(n, _)| *n).collect();
    let mut violations = Vec::new();
    for (name, package) in packages {
        for dep in &package.deps {
            let Some(target) = packages.get(dep) else {
                continue;
            };
            if target.kind != Kind::Service {
                continue;
            }
            match package.kind {
                Kind::Service => violations.push(format!(
                    "service {name} depends on service {dep}: services talk over gRPC, never link each other"
                )),
                _ if allowed_above.contains(name.as_str()) => {}
                Kind::Crate => violations.push(format!(
                    "crate {name} depends on service {dep}: crates never depend on services"
                )),
                Kind::Tests => violations.push(format!(
                    "{name} depends on service {dep} but is not listed in ABOVE_SERVICES"
                )),
            }
        }
    }
    for (name, _) in ABOVE_SERVICES {
        if !packages.contains_key(*name) {
            violations.push(format!(
                "ABOVE_SERVICES names {name}, which is not a workspace package"
            ));
        }
    }
    violations
}

/// Web frameworks other than the one the project chose.
const OTHER_WEB_FRAMEWORKS: &[&str] = &["axum", "warp", "rocket", "poem", "tide", "salvo"];

/// Every package that depends on a web framework other than actix-web.
fn framework_violations(packages: &BTreeMap<String, Package>) -> Vec<String> {
    packages
        .iter()
        .flat_map(|(name, package)| {
            package
                .all_deps
                .iter()
                .filter(|d| OTHER_WEB_FRAMEWORKS.contains(&d.as_str()))
                .map(move |d| {
                    format!("{name} depends on {d}: every REST surface runs on actix-web")
                })
        })
        .collect()
}

#[test]
fn one_web_framework() {
    assert_eq!(framework_violations(&workspace()), Vec::<String>::new());
}

#[test]
fn a_second_web_framework_is_reported() {
    let mut packages = workspace();
    packages
        .get_mut("openwarn-submission")
        .expect("submission is a workspace package")
        .all_deps
        .insert("axum".into());
    assert_eq!(
        framework_violations(&packages),
        ["openwarn-submission depends on axum: every REST surface runs on actix-web"]
    );
}

#[test]
fn the_dependency_graph_runs_from_services_down_to_crates() {
    let packages = workspace();
    assert!(
        packages
            .values()
            .filter(|p| p.kind == Kind::Service)
            .count()
            >= 5,
        "the services were not found: {packages:?}"
    );
    let violations = dependency_violations(&packages);
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn a_forbidden_dependency_is_reported() {
    let mut packages = workspace();
    let service = |p: &BTreeMap<String, Package>, skip: &str| {
        p.iter()
            .find(|(n, p)| p.kind == Kind::Service && n.as_str() != skip)
            .map(|(n, _)| n.clone())
            .expect("a service")
    };
    let first = service(&packages, "");
    let second = service(&packages, &first);
    // A service linking another service.
    packages
        .get_mut(&first)
        .expect("first")
        .deps
        .insert(second.clone());
    // A small crate linking a service.
    packages
        .get_mut("openwarn-mtls")
        .expect("openwarn-mtls is a workspace crate")
        .deps
        .insert(first.clone());
    let violations = dependency_violations(&packages);
    assert!(
        violations
            .iter()
            .any(|v| v.contains(&format!("service {first} depends on service {second}"))),
        "{violations:?}"
    );
    assert!(
        violations
            .iter()
            .any(|v| v.contains(&format!("crate openwarn-mtls depends on service {first}"))),
        "{violations:?}"
    );
}

/// Where each diesel table is declared and where each migration lives: `(file, table)` pairs.
fn table_declarations(root: &Path) -> Vec<(PathBuf, String)> {
    let mut found = Vec::new();
    for top in ["crates", "services"] {
        visit(&root.join(top), &mut |path| {
            if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(path).expect("read source");
                let mut rest = text.as_str();
                while let Some(i) = rest.find("table! {") {
                    rest = &rest[i + "table! {".len()..];
                    let name: String = rest
                        .trim_start()
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    found.push((path.to_path_buf(), name));
                }
            }
        });
    }
    found
}

fn migration_dirs(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for top in ["crates", "services", "tests"] {
        visit(&root.join(top), &mut |path| {
            if path.ends_with("up.sql") {
                found.push(path.to_path_buf());
            }
        });
    }
    found
}

fn visit(dir: &Path, f: &mut dyn FnMut(&Path)) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.file_name().is_some_and(|n| n == "target") {
            continue;
        }
        if path.is_dir() {
            visit(&path, f);
        } else {
            f(&path);
        }
    }
}

/// The service a path belongs to (`services/<name>/…`), if any.
fn owning_service(root: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(root).ok()?;
    let mut parts = rel.components();
    (parts.next()?.as_os_str() == "services")
        .then(|| parts.next())
        .flatten()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
}

/// Every broken storage rule; empty when each table and migration belongs to one service.
fn storage_violations(
    root: &Path,
    tables: &[(PathBuf, String)],
    migrations: &[PathBuf],
) -> Vec<String> {
    let mut violations = Vec::new();
    let mut owners: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for (path, table) in tables {
        match owning_service(root, path) {
            Some(service) => {
                owners.entry(table).or_default().insert(service);
            }
            None => violations.push(format!(
                "table {table} is declared outside a service ({}): each database belongs to one service",
                path.display()
            )),
        }
    }
    for (table, services) in owners {
        if services.len() > 1 {
            violations.push(format!(
                "table {table} is declared by several services: {services:?}"
            ));
        }
    }
    for path in migrations {
        if owning_service(root, path).is_none() {
            violations.push(format!("migration outside a service: {}", path.display()));
        }
    }
    violations
}

#[test]
fn each_database_is_touched_by_one_service() {
    let root = workspace_root();
    let tables = table_declarations(&root);
    let migrations = migration_dirs(&root);
    assert!(tables.len() >= 3, "no diesel tables found: {tables:?}");
    assert!(!migrations.is_empty(), "no migrations found");
    let violations = storage_violations(&root, &tables, &migrations);
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn a_table_shared_by_two_services_is_reported() {
    let root = workspace_root();
    let tables = vec![
        (root.join("services/a/src/store.rs"), "tans".to_owned()),
        (root.join("services/b/src/store.rs"), "tans".to_owned()),
        (root.join("crates/db/src/lib.rs"), "keys".to_owned()),
    ];
    let migrations = vec![root.join("crates/db/migrations/1/up.sql")];
    let violations = storage_violations(&root, &tables, &migrations);
    assert_eq!(violations.len(), 3, "{violations:?}");
}

/// Paths in the workspace's sources that reach outside the repository for data: the reference
/// folder beside our checkouts (absent from a user's clone) in any source, build file or script. Compile-time includes are also caught by CI building a copy with nothing beside it;
/// this catches files read at run time too.
fn outside_references(root: &Path) -> Vec<String> {
    // Built at run time so that this file does not match itself.
    let needles = [
        format!("shared{}reference", '/'),
        format!("shared{}CONTRACT", '/'),
    ];
    let mut found = Vec::new();
    for top in [
        "crates", "services", "tests", ".ci", "deploy", "k8s", "proto", "examples",
    ] {
        visit(&root.join(top), &mut |path| {
            let scanned = path.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                ["rs", "toml", "py", "sh", "yaml", "yml", "json", "proto"].contains(&e)
            }) || path
                .file_name()
                .is_some_and(|n| n == "run" || n == "Dockerfile");
            if !scanned {
                return;
            }
            let Ok(text) = std::fs::read_to_string(path) else {
                return;
            };
            for (n, line) in text.lines().enumerate() {
                if needles.iter().any(|needle| line.contains(needle.as_str())) {
                    found.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                }
            }
        });
    }
    for file in ["Cargo.toml", "build.rs"] {
        if let Ok(text) = std::fs::read_to_string(root.join(file))
            && needles.iter().any(|needle| text.contains(needle.as_str()))
        {
            found.push(file.to_owned());
        }
    }
    found
}

#[test]
fn nothing_reads_outside_the_repository() {
    let found = outside_references(&workspace_root());
    assert!(
        found.is_empty(),
        "the repository must stand alone; copy the data into it:\n{}",
        found.join("\n")
    );
}

#[test]
fn a_reference_outside_the_repository_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let tests = dir.path().join("crates/x/tests");
    std::fs::create_dir_all(&tests).unwrap();
    std::fs::write(
        tests.join("data.rs"),
        format!(
            "const D: &[u8] = include_bytes!(\"../../../shared{}reference/x.bin\");",
            '/'
        ),
    )
    .unwrap();
    let found = outside_references(dir.path());
    assert_eq!(found.len(), 1, "{found:?}");
}

/// The caller table as docs/ARCHITECTURE.md shows it: one row per caller and service, the
/// methods in the code's order.
fn caller_table(table: &[(&str, &[&str])]) -> String {
    let mut rows: Vec<(String, String, Vec<String>)> = Vec::new();
    for (path, callers) in table {
        let (service, method) = path
            .trim_start_matches('/')
            .split_once('/')
            .expect("a gRPC path is /package.Service/Method");
        let service = service.rsplit('.').next().unwrap_or(service).to_owned();
        for caller in *callers {
            match rows
                .iter_mut()
                .find(|(c, s, _)| c == caller && *s == service)
            {
                Some(row) => row.2.push(format!("`{method}`")),
                None => rows.push((
                    (*caller).to_owned(),
                    service.clone(),
                    vec![format!("`{method}`")],
                )),
            }
        }
    }
    let mut out = String::from("| caller | service | may call |\n|---|---|---|\n");
    for (caller, service, methods) in rows {
        out.push_str(&format!(
            "| `{caller}` | {service} | {} |\n",
            methods.join(", ")
        ));
    }
    out
}

/// docs/ARCHITECTURE.md with each line's indentation removed (the table sits in a list item).
fn architecture_doc() -> String {
    std::fs::read_to_string(workspace_root().join("docs/ARCHITECTURE.md"))
        .unwrap()
        .lines()
        .map(|l| format!("{}\n", l.trim_start()))
        .collect()
}

#[test]
fn the_documented_caller_table_is_the_codes() {
    let docs = architecture_doc();
    let table = caller_table(openwarn_protocol::callers::CALLERS);
    assert!(
        docs.contains(&table),
        "docs/ARCHITECTURE.md must show the caller table of openwarn_protocol::callers:\n{table}"
    );
}

#[test]
fn a_caller_the_docs_do_not_show_is_reported() {
    let docs = architecture_doc();
    let mut doctored: Vec<(&str, &[&str])> = openwarn_protocol::callers::CALLERS.to_vec();
    doctored.push((
        "/openwarn.testresult.v1.TestResultService/GetTestResult",
        &["proxy"],
    ));
    assert!(!docs.contains(&caller_table(&doctored)));
}
