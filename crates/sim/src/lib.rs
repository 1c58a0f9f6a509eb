//! `openwarn sim`: phones with the real Exposure Notification cryptography, played against a
//! stack started by `openwarn up` — the project's end-to-end proof (`sim run`) and its load
//! generator (`sim load`). docs/SIMULATOR.md describes both.
//!
//! The simulator knows the stack only as a phone, a lab and the portal do: the app API through
//! the proxy, the lab API, the CDN's signed packages and signed application configuration
//! (decoded from its protobuf, as a phone does), and verification's gRPC for teleTANs. It links
//! no service. The commands ([`run`]) report their failures as [`anyhow::Error`]s (they end the
//! command with the message); the parts below them have their own error types.

pub mod app;
pub mod download;
pub mod load;
pub mod phone;
pub mod portal;
pub mod risk;
pub mod scenario;
pub mod stack;

use anyhow::{Context, bail};
use app::{Client, Endpoint};
use download::Downloads;
use openwarn_domain::TestResult;
use phone::Phone;
use rand::{Rng, SeedableRng};
use risk::Level;
use scenario::{Positive, Scenario};
use serde::Serialize;
use serde_json::json;
use stack::StackFile;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

#[derive(clap::Args)]
pub struct SimArgs {
    #[command(subcommand)]
    pub command: SimCommand,
}

#[derive(clap::Subcommand)]
pub enum SimCommand {
    /// Play a scenario: encounters, positive tests, uploads, fakes, publishing, downloads,
    /// signature checks, matching and risk; a report per phone.
    Run(RunArgs),
    /// Drive mixed traffic of a population of phones and report throughput and latency per
    /// endpoint.
    Load(load::LoadArgs),
}

#[derive(clap::Args)]
pub struct StackArgs {
    /// The data directory of `openwarn up` (stack.json, the dev PKI, the packages' public key).
    #[arg(long, env = "OPENWARN_DATA_DIR", default_value = "openwarn-data")]
    pub data_dir: PathBuf,
    /// The region the phones download (and upload as origin).
    #[arg(long, default_value = "DE")]
    pub country: String,
}

impl StackArgs {
    fn open(&self, pool: usize) -> anyhow::Result<(StackFile, Client, openwarn_export::Verifier)> {
        let stack = StackFile::read(&self.data_dir)?;
        let client = Client::new(&stack.app, &stack.lab, &stack.cdn, &self.country, pool)?;
        let key_path = self.data_dir.join(stack::PUBLIC_KEY_FILE);
        let pem = std::fs::read_to_string(&key_path).with_context(|| {
            format!(
                "cannot read the packages' public key {}",
                key_path.display()
            )
        })?;
        let verifier = openwarn_export::Verifier::from_public_key_pem(&pem)
            .with_context(|| format!("{} is not a public key", key_path.display()))?;
        Ok((stack, client, verifier))
    }
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Publish {
    /// After the uploads, ask distribution (admin port) to publish as of the next hour, so the
    /// keys are out at once. That closes the current hour early: keys uploaded later in it
    /// are not published.
    Ahead,
    /// Do not trigger a run; phones download what distribution's schedule published.
    No,
}

#[derive(clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub stack: StackArgs,
    /// Scenario file (docs/SIMULATOR.md, examples/scenarios/). Without it, a generated population.
    #[arg(long)]
    pub scenario: Option<PathBuf>,
    /// Generated population: phones.
    #[arg(long, default_value_t = 20, conflicts_with = "scenario")]
    pub phones: usize,
    /// Generated population: phones that test positive (alternately by QR code and teleTAN).
    #[arg(long, default_value_t = 1, conflicts_with = "scenario")]
    pub positives: usize,
    /// Generated population: encounters per phone.
    #[arg(long, default_value_t = 3, conflicts_with = "scenario")]
    pub encounters: usize,
    /// Fake requests per phone (overrides the scenario's `fakes_per_phone`).
    #[arg(long)]
    pub fakes_per_phone: Option<u32>,
    /// Seed of the generator (encounters, keys, fake traffic); random when not given.
    #[arg(long)]
    pub seed: Option<u64>,
    #[arg(long, value_enum, default_value = "ahead")]
    pub publish: Publish,
    /// Distribution's embargo (its OPENWARN_EMBARGO): with `--publish ahead`, the run is as of
    /// the hour after yesterday's keys came out of it, if that is later than the next hour.
    #[arg(long, default_value = "2h", value_parser = openwarn_bootstrap::config::parse_duration)]
    pub embargo: Duration,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `openwarn sim <command>` on a runtime of its own.
pub fn run(args: SimArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match args.command {
        SimCommand::Run(args) => runtime.block_on(run_scenario(args)),
        SimCommand::Load(args) => runtime.block_on(load::run(args)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publishing_ahead_covers_yesterdays_keys() {
        let midnight = 1_795_046_400; // a UTC midnight
        assert_eq!(midnight % 86_400, 0);
        let two_hours = Duration::from_secs(7200);
        // 14:20 → 15:01.
        assert_eq!(
            publish_ahead(midnight + 14 * 3600 + 1200, two_hours),
            midnight + 15 * 3600 + 60
        );
        // 00:20 and 01:59 → 03:01: yesterday's keys are in hour 2.
        assert_eq!(
            publish_ahead(midnight + 1200, two_hours),
            midnight + 3 * 3600 + 60
        );
        assert_eq!(
            publish_ahead(midnight + 7199, two_hours),
            midnight + 3 * 3600 + 60
        );
        // 02:30 → 03:01; 03:00 → 04:01.
        assert_eq!(
            publish_ahead(midnight + 9000, two_hours),
            midnight + 3 * 3600 + 60
        );
        assert_eq!(
            publish_ahead(midnight + 3 * 3600, two_hours),
            midnight + 4 * 3600 + 60
        );
    }
}

#[derive(Debug, Serialize)]
pub struct Upload {
    pub via: Positive,
    pub keys: usize,
    /// The status of the upload (200).
    pub status: u16,
    /// The status of the same upload sent again with the same TAN (403: refused).
    pub replayed_tan_status: u16,
}

#[derive(Debug, Serialize)]
pub struct PhoneReport {
    pub name: String,
    pub risk: Level,
    pub score: f64,
    pub max_combined_score: u32,
    pub exposure_score: f64,
    pub matched_days: Vec<String>,
    /// Minutes below, between and above the attenuation thresholds.
    pub bucket_minutes: [u32; 3],
    pub exposures: usize,
    pub packages_verified: usize,
    pub rejected_packages: Vec<download::Rejected>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upload: Option<Upload>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expect: Option<Level>,
}

#[derive(Debug, Default, Serialize)]
pub struct FakeReport {
    pub sent: usize,
    /// Fakes whose status differed from a real success of the endpoint.
    pub unexpected: usize,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub scenario: String,
    pub phones: Vec<PhoneReport>,
    pub fakes: FakeReport,
    pub published: Option<serde_json::Value>,
    /// What went wrong: unmet expectations, uploads refused, replays accepted, fakes answered
    /// differently. Empty on success.
    pub failures: Vec<String>,
}

fn now_secs() -> u64 {
    openwarn_bootstrap::lifecycle::unix_now().unsigned_abs()
}

async fn run_scenario(args: RunArgs) -> anyhow::Result<()> {
    let now = now_secs();
    let seed = args.seed.unwrap_or_else(rand::random);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let scenario = load_scenario(&args, now, &mut rng)?;
    let (stack, client, verifier) = args.stack.open(64)?;
    eprintln!(
        "sim: {} phones, {} encounters, seed {seed}",
        scenario.phones.len(),
        scenario.encounters.len()
    );
    let mut phones = prepare_phones(&scenario, now, &mut rng);
    exchange_encounters(&scenario, &mut phones, now)?;
    let phones = Arc::new(phones);

    let mut failures = Vec::new();
    let (uploads, fakes) = upload_positives_amid_fakes(
        &args,
        &stack,
        &client,
        &scenario,
        &phones,
        &mut rng,
        &mut failures,
    )
    .await?;
    let published = publish(&args, &stack, now).await?;
    let matched = download_and_match(&client, verifier, &phones, now, &mut failures).await?;
    let phone_reports = phone_reports(&scenario, uploads, &matched, &mut failures);
    let report = Report {
        scenario: scenario.description.clone(),
        phones: phone_reports,
        fakes,
        published,
        failures,
    };
    print_and_judge(&report, args.json)
}

/// The scenario file, or a population generated from `rng`; with `--fakes-per-phone` applied,
/// and validated as of `now`.
fn load_scenario(
    args: &RunArgs,
    now: u64,
    rng: &mut rand::rngs::StdRng,
) -> anyhow::Result<Scenario> {
    let mut scenario = match &args.scenario {
        Some(path) => Scenario::read(path)?,
        None => Scenario::generate(args.phones, args.positives, args.encounters, now, rng),
    };
    if let Some(f) = args.fakes_per_phone {
        scenario.fakes_per_phone = f;
    }
    scenario.validate(now)?;
    Ok(scenario)
}

/// A phone for each of the scenario's, in its order (each draws its keys from `rng`).
fn prepare_phones(scenario: &Scenario, now: u64, rng: &mut rand::rngs::StdRng) -> Vec<Phone> {
    scenario
        .phones
        .iter()
        .enumerate()
        .map(|(i, p)| Phone::new(p.name.clone(), u32::try_from(i).unwrap_or(0), now, rng))
        .collect()
}

/// Every encounter of the scenario: each of its two phones hears the other.
fn exchange_encounters(scenario: &Scenario, phones: &mut [Phone], now: u64) -> anyhow::Result<()> {
    let index = |name: &str| scenario.phones.iter().position(|p| p.name == name);
    let midnight = now / 86_400 * 86_400;
    for e in &scenario.encounters {
        let (Some(a), Some(b)) = (index(&e.phones[0]), index(&e.phones[1])) else {
            bail!("encounter of an unknown phone");
        };
        phone::encounter(phones, a, b, e.start(midnight), e.minutes, e.attenuation_db);
    }
    Ok(())
}

type UploadTask = tokio::task::JoinHandle<anyhow::Result<Upload>>;

/// Positive tests and uploads, with every phone's fake requests at random times around them:
/// each phone's upload (`None`: not positive, or failed) and the fakes' report.
async fn upload_positives_amid_fakes(
    args: &RunArgs,
    stack: &StackFile,
    client: &Client,
    scenario: &Scenario,
    phones: &Arc<Vec<Phone>>,
    rng: &mut rand::rngs::StdRng,
    failures: &mut Vec<String>,
) -> anyhow::Result<(Vec<Option<Upload>>, FakeReport)> {
    let fakes = tokio::spawn(send_fakes(
        client.clone(),
        phones.clone(),
        scenario.fakes_per_phone,
        rng.random(),
    ));
    let uploads = spawn_uploads(
        scenario,
        client,
        phones,
        &args.stack.data_dir,
        &stack.verification_grpc,
        rng,
    );
    let uploads = collect_uploads(uploads, phones, failures).await?;
    let fakes = collect_fakes(fakes, failures).await?;
    Ok((uploads, fakes))
}

/// Starts [`test_positive_and_upload`] for every positive phone (each with a seed drawn from
/// `rng`, in the scenario's order); the phone's index and its task.
fn spawn_uploads(
    scenario: &Scenario,
    client: &Client,
    phones: &Arc<Vec<Phone>>,
    data_dir: &Path,
    verification_grpc: &str,
    rng: &mut rand::rngs::StdRng,
) -> Vec<(usize, UploadTask)> {
    let mut uploads = Vec::new();
    for (i, spec) in scenario.phones.iter().enumerate() {
        if let Some(via) = spec.positive {
            let (client, phones, data_dir, grpc) = (
                client.clone(),
                phones.clone(),
                data_dir.to_path_buf(),
                verification_grpc.to_owned(),
            );
            let seed = rng.random();
            uploads.push((
                i,
                tokio::spawn(async move {
                    test_positive_and_upload(&client, &phones[i], via, &data_dir, &grpc, seed).await
                }),
            ));
        }
    }
    uploads
}

/// Waits for the uploads; each phone's upload, and a failure for each refused or failed one.
async fn collect_uploads(
    uploads: Vec<(usize, UploadTask)>,
    phones: &[Phone],
    failures: &mut Vec<String>,
) -> anyhow::Result<Vec<Option<Upload>>> {
    let mut upload_reports: Vec<Option<Upload>> = (0..phones.len()).map(|_| None).collect();
    for (i, task) in uploads {
        match task.await? {
            Ok(upload) => {
                if upload.status != 200 {
                    failures.push(format!(
                        "{}: upload answered {}",
                        phones[i].name, upload.status
                    ));
                }
                if upload.replayed_tan_status != 403 {
                    failures.push(format!(
                        "{}: the replayed TAN was answered {}, not refused",
                        phones[i].name, upload.replayed_tan_status
                    ));
                }
                eprintln!(
                    "sim: {} ({:?}) uploaded {} keys: {}",
                    phones[i].name, upload.via, upload.keys, upload.status
                );
                upload_reports[i] = Some(upload);
            }
            Err(e) => failures.push(format!("{}: {e:#}", phones[i].name)),
        }
    }
    Ok(upload_reports)
}

/// Waits for the fake requests; a failure if any was answered unlike a real success.
async fn collect_fakes(
    fakes: tokio::task::JoinHandle<anyhow::Result<FakeReport>>,
    failures: &mut Vec<String>,
) -> anyhow::Result<FakeReport> {
    let fakes = fakes.await??;
    if fakes.unexpected > 0 {
        failures.push(format!(
            "{} of {} fake requests were not answered like a real success",
            fakes.unexpected, fakes.sent
        ));
    }
    eprintln!("sim: {} fake requests sent", fakes.sent);
    Ok(fakes)
}

/// With `--publish ahead`, has distribution publish as of [`publish_ahead`]; its report.
async fn publish(
    args: &RunArgs,
    stack: &StackFile,
    now: u64,
) -> anyhow::Result<Option<serde_json::Value>> {
    if args.publish != Publish::Ahead {
        return Ok(None);
    }
    let at = chrono::DateTime::from_timestamp(i64::try_from(publish_ahead(now, args.embargo))?, 0)
        .context("time out of range")?
        .to_rfc3339();
    let report = stack::publish(&stack.distribution_admin, Some(&at)).await?;
    eprintln!("sim: published as of {at}");
    Ok(Some(report))
}

/// A downloaded key, and which phones got it.
type HeldKey = (openwarn_protocol::gaen::TemporaryExposureKey, Vec<bool>);

/// What the phones downloaded and matched.
struct Matched {
    /// Each phone's download.
    fetched: Vec<Result<download::Downloaded, download::DownloadError>>,
    /// The verified application configuration (the first phone's that has one).
    config: openwarn_protocol::config::v1::ApplicationConfiguration,
    /// Each phone's exposures.
    exposures: Vec<Vec<risk::Exposure>>,
}

/// Every phone downloads and verifies the packages and the configuration, and matches the keys
/// against what it heard; a failure for each phone whose download failed.
async fn download_and_match(
    client: &Client,
    verifier: openwarn_export::Verifier,
    phones: &[Phone],
    now: u64,
    failures: &mut Vec<String>,
) -> anyhow::Result<Matched> {
    let downloads = Downloads::new(client.clone(), verifier);
    let fetched = downloads.for_phones(phones.len(), now).await;
    let (keys, config) = gather_keys(&fetched, phones, failures);
    let Some(config) = config else {
        bail!("no phone could get a verified application configuration; failures: {failures:?}");
    };
    let exposures = phone::exposures(phones, &keys, &config, now);
    Ok(Matched {
        fetched,
        config,
        exposures,
    })
}

/// Every distinct key of the phones' packages with the phones that got it, and the first
/// verified application configuration; a failure for each failed download.
fn gather_keys(
    fetched: &[Result<download::Downloaded, download::DownloadError>],
    phones: &[Phone],
    failures: &mut Vec<String>,
) -> (
    Vec<HeldKey>,
    Option<openwarn_protocol::config::v1::ApplicationConfiguration>,
) {
    let mut keys: std::collections::HashMap<Vec<u8>, HeldKey> = std::collections::HashMap::new();
    let mut config = None;
    for (p, d) in fetched.iter().enumerate() {
        match d {
            Ok(d) => {
                for package in &d.packages {
                    for k in package.iter() {
                        let entry = keys
                            .entry(k.key_data.clone().unwrap_or_default())
                            .or_insert_with(|| (k.clone(), vec![false; phones.len()]));
                        entry.1[p] = true;
                    }
                }
                if config.is_none() {
                    config.clone_from(&d.app_config);
                }
            }
            Err(e) => failures.push(format!("{}: download failed: {e:#}", phones[p].name)),
        }
    }
    (keys.into_values().collect(), config)
}

/// Each phone's report, in the scenario's order; a failure for each unmet expectation.
fn phone_reports(
    scenario: &Scenario,
    uploads: Vec<Option<Upload>>,
    matched: &Matched,
    failures: &mut Vec<String>,
) -> Vec<PhoneReport> {
    let mut reports = Vec::new();
    for (p, (spec, upload)) in scenario.phones.iter().zip(uploads).enumerate() {
        reports.push(phone_report(p, spec, upload, matched, failures));
    }
    reports
}

/// The risk of phone `p` (of `spec`) and what it got; a failure if it is not the expected one.
fn phone_report(
    p: usize,
    spec: &scenario::PhoneSpec,
    upload: Option<Upload>,
    matched: &Matched,
    failures: &mut Vec<String>,
) -> PhoneReport {
    let exposures = &matched.exposures[p];
    let risk = risk::assess(&matched.config, exposures);
    let mut matched_days: Vec<String> = exposures.iter().map(|e| download::date(e.day)).collect();
    matched_days.dedup();
    if let Some(expect) = &spec.expect
        && *expect != risk.level
    {
        failures.push(format!(
            "{}: expected {expect} risk, got {}",
            spec.name, risk.level
        ));
    }
    let (verified, rejected) = matched.fetched[p]
        .as_ref()
        .map_or((0, Vec::new()), |d| (d.packages.len(), d.rejected.clone()));
    PhoneReport {
        name: spec.name.clone(),
        risk: risk.level,
        score: risk.score,
        max_combined_score: risk.max_combined_score,
        exposure_score: risk.exposure_score,
        matched_days,
        bucket_minutes: risk.bucket_minutes,
        exposures: exposures.len(),
        packages_verified: verified,
        rejected_packages: rejected,
        upload,
        expect: spec.expect.clone(),
    }
}

/// Prints the report (as JSON with `--json`); an error listing the failures, if any.
fn print_and_judge(report: &Report, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print_report(report);
    }
    if !report.failures.is_empty() {
        bail!(
            "{} failure(s): {}",
            report.failures.len(),
            report.failures.join("; ")
        );
    }
    Ok(())
}

/// When `--publish ahead` publishes as of: one minute into the next hour, or — right after
/// midnight — into the hour after the one yesterday's keys (expired at midnight) are embargoed
/// until, so that every uploaded key but today's is out.
fn publish_ahead(now: u64, embargo: Duration) -> u64 {
    let next_hour = (now / 3600 + 1) * 3600;
    let yesterdays_keys_out = ((now / 86_400 * 86_400 + embargo.as_secs()) / 3600 + 1) * 3600;
    next_hour.max(yesterdays_keys_out) + 60
}

fn print_report(report: &Report) {
    println!("{}", report.scenario);
    println!(
        "{:<14} {:<5} {:>8}  {:<24} {:>15}  {:>8}  notes",
        "phone", "risk", "score", "matched days", "min <lo/mid/hi", "packages"
    );
    for p in &report.phones {
        let mut notes = Vec::new();
        if let Some(u) = &p.upload {
            notes.push(format!(
                "positive ({:?}): uploaded {} keys ({}), replayed TAN {}",
                u.via,
                u.keys,
                u.status,
                if u.replayed_tan_status == 403 {
                    "refused".to_owned()
                } else {
                    format!("answered {}", u.replayed_tan_status)
                }
            ));
        }
        for r in &p.rejected_packages {
            notes.push(format!("REJECTED {} ({})", r.path, r.reason));
        }
        if let Some(e) = &p.expect {
            notes.push(format!("expected {e}"));
        }
        println!(
            "{:<14} {:<5} {:>8.1}  {:<24} {:>15}  {:>8}  {}",
            p.name,
            p.risk.to_string(),
            p.score,
            if p.matched_days.is_empty() {
                "-".to_owned()
            } else {
                p.matched_days.join(",")
            },
            format!(
                "{}/{}/{}",
                p.bucket_minutes[0], p.bucket_minutes[1], p.bucket_minutes[2]
            ),
            format!(
                "{}/{}",
                p.packages_verified,
                p.packages_verified + p.rejected_packages.len()
            ),
            notes.join("; ")
        );
    }
    println!(
        "fake requests: {} sent, {} answered unlike a real success",
        report.fakes.sent, report.fakes.unexpected
    );
    for f in &report.failures {
        println!("FAILURE: {f}");
    }
}

/// Every phone sends `per_phone` fake requests to random endpoints at random moments of the
/// next two seconds (as many at once as the concurrency limit allows).
async fn send_fakes(
    client: Client,
    phones: Arc<Vec<Phone>>,
    per_phone: u32,
    seed: u64,
) -> anyhow::Result<FakeReport> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let limit = Arc::new(tokio::sync::Semaphore::new(256));
    let mut tasks = tokio::task::JoinSet::new();
    for phone in phones.iter() {
        for _ in 0..per_phone {
            let endpoint = Endpoint::ALL[rng.random_range(0..Endpoint::ALL.len())];
            let body = app::fake_body(endpoint, &mut rng, &client.country);
            let delay = Duration::from_millis(rng.random_range(0..2000));
            let (client, limit, address) = (client.clone(), limit.clone(), phone.address);
            tasks.spawn(async move {
                tokio::time::sleep(delay).await;
                let _permit = limit.acquire().await;
                let answer = client.app(endpoint, address, body, true, None).await?;
                anyhow::Ok(answer.status == endpoint.success())
            });
        }
    }
    let mut report = FakeReport::default();
    while let Some(done) = tasks.join_next().await {
        report.sent += 1;
        if !done?? {
            report.unexpected += 1;
        }
    }
    Ok(report)
}

/// A positive test proven by QR code (the lab posts the result for the hashed GUID) or by
/// teleTAN, the TAN, a decoy fake upload carrying the real TAN, the real upload, and the same
/// upload again (which must be refused).
async fn test_positive_and_upload(
    client: &Client,
    phone: &Phone,
    via: Positive,
    data_dir: &Path,
    verification_grpc: &str,
    seed: u64,
) -> anyhow::Result<Upload> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let address = phone.address;
    let (key, key_type, guid_hash) = test_key(via, data_dir, verification_grpc, &mut rng).await?;
    let token = register_test(client, address, key, key_type).await?;
    await_positive(client, address, &token, guid_hash).await?;
    let tan = request_tan(client, address, &token).await?;
    send_decoy_upload(client, address, &tan, &mut rng).await?;
    upload_keys(client, phone, via, &tan).await
}

/// What the phone registers: the SHA-256 of a random GUID (the QR code; its hash is also what
/// the lab reports for) or a teleTAN the portal issues; its key type; the GUID's hash.
async fn test_key(
    via: Positive,
    data_dir: &Path,
    verification_grpc: &str,
    rng: &mut rand::rngs::StdRng,
) -> anyhow::Result<(String, &'static str, Option<String>)> {
    Ok(match via {
        Positive::Qr => {
            let guid = uuid::Builder::from_random_bytes(rng.random())
                .into_uuid()
                .to_string();
            let hash = openwarn_domain::sha256_hex(&guid);
            (hash.clone(), "GUID", Some(hash))
        }
        Positive::Teletan => {
            let issued = portal::issue_teletan(data_dir, verification_grpc).await?;
            (issued.tele_tan, "TELETAN", None)
        }
    })
}

/// Registers the test's key; the registration token.
async fn register_test(
    client: &Client,
    address: std::net::Ipv4Addr,
    key: String,
    key_type: &str,
) -> anyhow::Result<String> {
    let body = app::padded(
        json!({"key": key, "keyType": key_type}),
        app::JSON_REQUEST_BYTES,
    );
    let answer = client
        .app(Endpoint::RegistrationToken, address, body, false, None)
        .await?;
    if answer.status != reqwest::StatusCode::CREATED {
        bail!(
            "registration answered {}: {}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        );
    }
    Ok(answer.json()?["registrationToken"]
        .as_str()
        .context("no registrationToken")?
        .to_owned())
}

/// The body of a request carrying the registration token.
fn token_body(token: &str) -> Vec<u8> {
    app::padded(json!({"registrationToken": token}), app::JSON_REQUEST_BYTES)
}

/// Polls the test result until it is positive; when it first reads pending, the lab reports
/// the result for `guid_hash` (a teleTAN session must not read pending).
async fn await_positive(
    client: &Client,
    address: std::net::Ipv4Addr,
    token: &str,
    guid_hash: Option<String>,
) -> anyhow::Result<()> {
    let mut lab_posted = false;
    let mut polls = 0;
    loop {
        let answer = client
            .app(
                Endpoint::TestResult,
                address,
                token_body(token),
                false,
                None,
            )
            .await?;
        if answer.status != reqwest::StatusCode::OK {
            bail!("testresult answered {}", answer.status);
        }
        let code = answer.json()?["testResult"].as_i64();
        match code.map(TestResult::try_from) {
            Some(Ok(TestResult::Positive)) => break,
            Some(Ok(TestResult::Pending)) if !lab_posted => {
                // Pending: the lab reports the result now.
                let hash = guid_hash
                    .clone()
                    .context("a teleTAN session reads pending")?;
                let posted = client.lab_results(&[(hash, TestResult::Positive)]).await?;
                if !posted.status.is_success() {
                    bail!("the lab API answered {}", posted.status);
                }
                lab_posted = true;
            }
            Some(Ok(TestResult::Pending)) if polls < 50 => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            _ => bail!("unexpected test result {code:?}"),
        }
        polls += 1;
    }
    Ok(())
}

/// The TAN for the positive test.
async fn request_tan(
    client: &Client,
    address: std::net::Ipv4Addr,
    token: &str,
) -> anyhow::Result<String> {
    let answer = client
        .app(Endpoint::Tan, address, token_body(token), false, None)
        .await?;
    if answer.status != reqwest::StatusCode::CREATED {
        bail!("tan answered {}", answer.status);
    }
    Ok(answer.json()?["tan"].as_str().context("no tan")?.to_owned())
}

/// A fake upload carrying the real TAN, which must not spend it.
async fn send_decoy_upload(
    client: &Client,
    address: std::net::Ipv4Addr,
    tan: &str,
    rng: &mut rand::rngs::StdRng,
) -> anyhow::Result<()> {
    let decoy = app::fake_body(Endpoint::DiagnosisKeys, rng, &client.country);
    let answer = client
        .app(Endpoint::DiagnosisKeys, address, decoy, true, Some(tan))
        .await?;
    if answer.status != reqwest::StatusCode::OK {
        bail!("a fake upload answered {}", answer.status);
    }
    Ok(())
}

/// The phone's diagnosis keys uploaded with the TAN, then the same upload again.
async fn upload_keys(
    client: &Client,
    phone: &Phone,
    via: Positive,
    tan: &str,
) -> anyhow::Result<Upload> {
    let address = phone.address;
    let keys = phone.diagnosis_keys();
    let count = keys.len();
    let payload = app::submission(keys, &client.country);
    let status = client
        .app(
            Endpoint::DiagnosisKeys,
            address,
            payload.clone(),
            false,
            Some(tan),
        )
        .await?
        .status;
    let replayed = client
        .app(Endpoint::DiagnosisKeys, address, payload, false, Some(tan))
        .await?
        .status;
    Ok(Upload {
        via,
        keys: count,
        status: status.as_u16(),
        replayed_tan_status: replayed.as_u16(),
    })
}
