//! The command line without a running stack: what it says when there is none, and what `--help`
//! must not show.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration test: a failure is a failed test"
)]

use std::process::{Command, Output};

fn openwarn(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_openwarn"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn teletan_without_a_dev_pki_says_to_run_up_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for data_dir in [dir.path().to_owned(), dir.path().join("missing")] {
        let out = Command::new(env!("CARGO_BIN_EXE_openwarn"))
            .args(["teletan", "--verification-url", "https://127.0.0.1:1"])
            .arg("--data-dir")
            .arg(&data_dir)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        assert_eq!(out.stdout, b"", "no teleTAN printed");
        assert_eq!(
            stderr.matches("run `openwarn up` first").count(),
            1,
            "said once: {stderr}"
        );
        assert!(
            !data_dir.join("pki").exists(),
            "no CA was created in {}",
            data_dir.display()
        );
    }
}

#[test]
fn help_does_not_show_secrets_from_the_environment() {
    let secret = "hunter2-s3cr3t";
    let url = format!("postgres://bench:{secret}@127.0.0.1:5432/postgres");
    let redis = format!("redis://:{secret}@127.0.0.1:6379");
    for command in ["bench", "bench-distribution", "bench-polling"] {
        let out = Command::new(env!("CARGO_BIN_EXE_openwarn"))
            .args([command, "--help"])
            .env("OPENWARN_BENCH_POSTGRES_URL", &url)
            .env("OPENWARN_BENCH_REDIS_URL", &redis)
            .output()
            .unwrap();
        assert!(out.status.success());
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(help.contains("OPENWARN_BENCH_POSTGRES_URL"), "{help}");
        assert!(
            !help.contains(secret),
            "{command} --help shows a secret:\n{help}"
        );
    }
}

#[test]
fn the_subcommands_are_the_same() {
    let out = openwarn(&["--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    for command in [
        "up",
        "service",
        "teletan",
        "publish",
        "bench",
        "bench-distribution",
        "sim",
        "config-reference",
    ] {
        assert!(
            help.lines()
                .any(|l| l.trim_start().starts_with(&format!("{command} "))),
            "{command} missing:\n{help}"
        );
    }
    let out = openwarn(&["service", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    for service in [
        "test-result",
        "verification",
        "submission",
        "proxy",
        "distribution",
    ] {
        assert!(help.contains(service), "{service} missing:\n{help}");
    }
}

/// The simulator decodes the configuration it downloads and knows no service; its reference
/// configuration (what its own tests compute risks with) is what distribution publishes by
/// default.
#[test]
fn the_simulators_reference_configuration_is_distributions_default() {
    let json = include_str!("../../../services/distribution/config/app_config.json");
    let published = openwarn_distribution::appconfig::AppConfig::parse(json)
        .unwrap()
        .to_proto()
        .unwrap();
    assert_eq!(openwarn_sim::risk::seed_configuration(), published);
}
