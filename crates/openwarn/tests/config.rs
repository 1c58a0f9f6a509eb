//! Invalid configuration: the process exits non-zero and its message names the setting.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration test: a failure is a failed test"
)]

use std::process::Output;

fn service(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_openwarn"))
        .arg("service")
        .args(args)
        .env_remove("OPENWARN_DATABASE_URL")
        .env_remove("OPENWARN_DATABASE_URL_FILE")
        .output()
        .unwrap()
}

fn assert_refused(output: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "should fail: {stderr}");
    assert!(
        stderr.contains(needle),
        "{needle:?} not named in:\n{stderr}"
    );
}

#[test]
fn invalid_settings_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let pki =
        openwarn_mtls::DevPki::ensure(dir.path(), &["verification", "test-result", "submission"])
            .unwrap();
    let tls = |name: &str| pki.service_args(name);
    let sqlite = format!("sqlite://{}", dir.path().join("v.db").display());
    let ports = [
        "--http-addr",
        "127.0.0.1:0",
        "--grpc-addr",
        "127.0.0.1:0",
        "--admin-addr",
        "127.0.0.1:0",
    ];
    let run = |name: &str, extra: &[&str]| {
        let mut args = vec![name.to_owned()];
        args.extend(ports.iter().map(|s| (*s).to_owned()));
        args.extend(tls(name));
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        service(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };

    assert_refused(&run("verification", &[]), "OPENWARN_DATABASE_URL");
    assert_refused(
        &run("verification", &["--database-url", "mysql://x/y"]),
        "unsupported database URL",
    );
    assert_refused(
        &run(
            "verification",
            &[
                "--database-url",
                "postgres://nobody@127.0.0.1:1/x?connect_timeout=2",
            ],
        ),
        "cannot connect to PostgreSQL",
    );
    // One setting out of range each: (service, flag, value, what the error names).
    for (name, flag, value, named) in [
        ("verification", "--tan-validity", "5w", "--tan-validity"),
        (
            "verification",
            "--kv-url",
            "memcached://x",
            "OPENWARN_KV_URL",
        ),
        (
            "verification",
            "--tans-per-registration",
            "0",
            "OPENWARN_TANS_PER_REGISTRATION",
        ),
        (
            "verification",
            "--uploads-per-registration",
            "0",
            "OPENWARN_UPLOADS_PER_REGISTRATION",
        ),
        (
            "verification",
            "--tls-reload-interval",
            "0",
            "--tls-reload-interval",
        ),
        (
            "submission",
            "--commit-retry-interval",
            "0",
            "--commit-retry-interval",
        ),
    ] {
        assert_refused(&run(name, &["--database-url", &sqlite, flag, value]), named);
    }
    assert_refused(
        &run("test-result", &["--database-url", &sqlite]),
        "OPENWARN_LAB_TLS_CERT",
    );
    let lab_tls = [
        "--database-url".to_owned(),
        sqlite.clone(),
        "--lab-tls-cert".to_owned(),
        pki.cert("test-result").display().to_string(),
        "--lab-tls-key".to_owned(),
        pki.key("test-result").display().to_string(),
    ];
    let lab_tls: Vec<&str> = lab_tls.iter().map(String::as_str).collect();
    assert_refused(&run("test-result", &lab_tls), "OPENWARN_LAB_CLIENT_CA");
    let missing_ca = dir.path().join("no-such-ca.pem").display().to_string();
    assert_refused(
        &run(
            "test-result",
            &[
                &lab_tls[..],
                &[
                    "--lab-client-ca",
                    &missing_ca,
                    "--lab-client-fingerprints",
                    &"a".repeat(64),
                ],
            ]
            .concat(),
        ),
        "OPENWARN_LAB_CLIENT_CA",
    );
    assert_refused(
        &run(
            "test-result",
            &[
                "--database-url",
                &sqlite,
                "--lab-insecure-http",
                "--result-delete-after",
                "1d",
            ],
        ),
        "OPENWARN_RESULT_DELETE_AFTER",
    );

    // The portal's settings, each named (its secrets never echoed).
    let portal = |extra: &[&str]| {
        let mut args = vec![
            "portal".to_owned(),
            "--http-addr".to_owned(),
            "127.0.0.1:0".to_owned(),
            "--admin-addr".to_owned(),
            "127.0.0.1:0".to_owned(),
            "--database-url".to_owned(),
            sqlite.clone(),
        ];
        args.extend(tls("verification"));
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        service(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    assert_refused(&portal(&[]), "OPENWARN_PORTAL_PUBLIC_URL");
    assert_refused(
        &portal(&["--public-url", "portal.example.org"]),
        "OPENWARN_PORTAL_PUBLIC_URL",
    );
    let public = ["--public-url", "https://portal.example.org"];
    assert_refused(
        &portal(&[&public[..], &["--idle-timeout", "9h"]].concat()),
        "OPENWARN_PORTAL_ABSOLUTE_TIMEOUT",
    );
    assert_refused(
        &portal(&[&public[..], &["--sign-in", "oidc"]].concat()),
        "OPENWARN_OIDC_ISSUER",
    );
    let oidc = [
        "--sign-in",
        "oidc",
        "--oidc-issuer",
        "https://id.example.org/realms/health",
        "--oidc-client-id",
        "portal",
        "--oidc-client-secret",
        "s3cr3t-value",
    ];
    let output = portal(&[&public[..], &oidc[..]].concat());
    assert_refused(&output, "OPENWARN_OIDC_CA_FILE");
    assert!(!String::from_utf8_lossy(&output.stderr).contains("s3cr3t-value"));
    assert_refused(
        &portal(&[&public[..], &["--max-failed-sign-ins", "0"]].concat()),
        "OPENWARN_PORTAL_MAX_FAILED_SIGN_INS",
    );

    // Serving needs the TLS settings; migrating does not.
    assert_refused(
        &service(&["verification", "--database-url", &sqlite]),
        "OPENWARN_TLS_CA",
    );
    for name in ["verification", "test-result"] {
        let db = format!(
            "sqlite://{}",
            dir.path().join(format!("{name}-migrated.db")).display()
        );
        let output = service(&[name, "migrate", "--database-url", &db]);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(dir.path().join(format!("{name}-migrated.db")).exists());
        let again = service(&[name, "migrate", "--database-url", &db]);
        assert!(again.status.success(), "migrating twice is fine");
        assert_refused(
            &service(&[name, "--database-url", &db, "migrate"]),
            "cannot be used with",
        );
    }

    // Submission and proxy settings.
    let sub = |extra: &[&str]| {
        let mut args = vec![
            "submission".to_owned(),
            "--database-url".to_owned(),
            sqlite.clone(),
        ];
        args.extend(tls("verification"));
        args.extend(ports.iter().map(|s| (*s).to_owned()));
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        service(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    // Parsed by clap as country codes: its message names the flag (as for --tan-validity).
    assert_refused(&sub(&["--country", "Germany"]), "--country");
    assert_refused(
        &sub(&["--supported-countries", "DE,fr"]),
        "--supported-countries",
    );
    assert_refused(&sub(&["--max-keys", "31"]), "OPENWARN_MAX_KEYS");
    let proxy = |extra: &[&str]| {
        let mut args = vec![
            "proxy".to_owned(),
            "--http-addr".to_owned(),
            "127.0.0.1:0".to_owned(),
            "--admin-addr".to_owned(),
            "127.0.0.1:0".to_owned(),
        ];
        args.extend(tls("verification"));
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        service(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    assert_refused(
        &proxy(&["--verification-http-url", "http://127.0.0.1:8010"]),
        "OPENWARN_VERIFICATION_HTTP_URL",
    );
    assert_refused(
        &proxy(&["--submission-http-url", "not a url"]),
        "OPENWARN_SUBMISSION_HTTP_URL",
    );
    assert_refused(
        &proxy(&["--rate-limit-secret", "short"]),
        "OPENWARN_RATE_LIMIT_SECRET",
    );
    assert_refused(&proxy(&["--rate-limit", "0"]), "OPENWARN_RATE_LIMIT");
    assert_refused(
        &proxy(&["--client-address-header", "bad header"]),
        "OPENWARN_CLIENT_ADDRESS_HEADER",
    );

    let missing = dir.path().join("missing.pem").display().to_string();
    let output = service(&[
        "verification",
        "--tls-ca",
        &missing,
        "--tls-cert",
        &missing,
        "--tls-key",
        &missing,
        "--database-url",
        &sqlite,
    ]);
    assert_refused(&output, "OPENWARN_TLS_CA");
}

#[test]
fn invalid_sim_arguments_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let sim = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_openwarn"))
            .arg("sim")
            .args(args)
            .arg("--data-dir")
            .arg(dir.path())
            .output()
            .unwrap()
    };
    for (flag, value) in [
        ("--phones", "0"),
        ("--rate", "0"),
        ("--test-share", "1.5"),
        ("--positive-share", "-0.1"),
        ("--fake-share", "2"),
    ] {
        assert_refused(&sim(&["load", &format!("{flag}={value}")]), flag);
    }
    // Valid arguments, but no stack on that data directory.
    assert_refused(&sim(&["load"]), "is `openwarn up --data-dir");
    assert_refused(&sim(&["run"]), "is `openwarn up --data-dir");
    // A scenario with a wrong field is refused naming it, before the stack is looked for.
    let scenario = dir.path().join("scenario.json");
    std::fs::write(
        &scenario,
        r#"{"phones": [{"name": "a"}, {"name": "b"}], "encounters": [{"phones": ["a", "b"], "days_ago": 1, "at": "7 pm", "minutes": 5, "attenuation_db": 50}]}"#,
    )
    .unwrap();
    assert_refused(
        &sim(&["run", "--scenario", scenario.to_str().unwrap()]),
        "encounters[0].at",
    );
}
