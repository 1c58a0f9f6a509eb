//! The portal's commands as an operator runs them: `create-admin` prints a one-time enrolment
//! link (and nothing else on standard output), `--if-none` keeps quiet when an administrator
//! exists, a taken name fails; `verify-audit` says the chain is intact and fails once an entry
//! was edited behind the portal's back.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration test: a failure is a failed test"
)]

use diesel::RunQueryDsl;
use std::process::Output;

fn portal(db: &str, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_openwarn"))
        .args(["service", "portal"])
        .args(args)
        .args([
            "--database-url",
            db,
            "--public-url",
            "https://portal.example.org",
        ])
        .args(["--log-format", "json"])
        .env_remove("OPENWARN_DATABASE_URL")
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[tokio::test]
async fn create_admin_and_verify_audit_as_an_operator_runs_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portal.db");
    let db = format!("sqlite://{}", path.display());

    let created = portal(&db, &["create-admin", "--username", "alice"]);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let link = stdout(&created);
    let token = link
        .strip_prefix("https://portal.example.org/enrol/")
        .unwrap_or_else(|| panic!("only the link on standard output: {link:?}"));
    assert_eq!(token.len(), 64);
    // The link is a credential: not in the logs (standard error).
    assert!(!String::from_utf8_lossy(&created.stderr).contains(token));

    let quiet = portal(&db, &["create-admin", "--if-none", "--username", "bob"]);
    assert!(quiet.status.success());
    assert_eq!(stdout(&quiet), "", "an administrator exists");
    let taken = portal(&db, &["create-admin", "--username", "alice"]);
    assert!(!taken.status.success());
    assert!(String::from_utf8_lossy(&taken.stderr).contains("exists"));
    let bad = portal(&db, &["create-admin", "--username", "a b"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--username"));

    let verified = portal(&db, &["verify-audit"]);
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    assert!(
        stdout(&verified).starts_with("intact: 1 entries"),
        "{}",
        stdout(&verified)
    );

    // Someone with the database file drops the trigger and edits the entry.
    let database = openwarn_db::Database::open(&db, 1).await.unwrap();
    database
        .run(|conn| {
            diesel::sql_query("DROP TRIGGER audit_log_no_update").execute(conn)?;
            diesel::sql_query("UPDATE audit_log SET detail = 'officer'").execute(conn)
        })
        .await
        .unwrap();
    let broken = portal(&db, &["verify-audit"]);
    assert!(!broken.status.success());
    assert!(
        stdout(&broken).starts_with("BROKEN at entry #1: edited"),
        "{}",
        stdout(&broken)
    );
}
