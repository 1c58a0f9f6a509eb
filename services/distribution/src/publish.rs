//! One publishing run: build what is missing, update the indexes, apply retention.
//!
//! The run's state is the published tree itself: it lists what is there, builds every closed hour
//! and day inside the retention windows that is missing, then rewrites the indexes from what now
//! exists and deletes what has aged out. Packages are written with create-only puts, so nothing
//! published is ever rewritten; every package is a deterministic function of the keys, the hour,
//! the padding secret and the signing keys, so a run killed half-way and started again produces
//! exactly the missing files. Two runs never publish at once: a run first takes a lease in the
//! key-value store (Redis in production), and a run that cannot get it does nothing.

use crate::appconfig::AppConfig;
use crate::keys::{self, Key};
use crate::source::{KeySource, SourceError};
use crate::tree::{Created, Tree, TreeError};
use futures::StreamExt;
use openwarn_domain::CountryCode;
use openwarn_export::{Batch, Package, Signer};
use openwarn_kv::{KvError, KvStore};
use openwarn_protocol::metadata::TrlEncoding;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The lease every run takes.
pub const LEASE: &str = "distribution-run";

/// The common package beside the origin country's (CWA's `eu-package-name`): its own date and
/// hour packages with the union of every country's keys, listed in the country index. OpenWarn
/// receives keys only from its own submission service, so the union holds the same keys as the
/// country's packages (region `EUR` in their headers); an unchanged CWA app downloads it.
pub const EU_PACKAGE: &str = "EUR";

/// The API versions the tree serves (`/version`).
pub const VERSIONS: [&str; 1] = ["v1"];

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Tree(#[from] TreeError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("key-value store: {0}")]
    Lease(#[from] KvError),
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// The region of every package and the `{CC}` of every path.
    pub country: CountryCode,
    /// An hour with fewer real keys is padded up to this many.
    pub min_keys_per_hour: usize,
    /// A day with more keys gets no day package (its hour packages serve instead).
    pub max_keys_per_package: usize,
    /// A key still valid when submitted waits until it has been expired this long.
    pub embargo: Duration,
    pub hour_retention: Duration,
    pub day_retention: Duration,
    /// Keys the fake padding keys are derived from (a rerun pads identically).
    pub padding_secret: Vec<u8>,
    /// How long a run may hold the lease before another may take over (a crashed run's lease).
    pub lease_ttl: Duration,
    /// How each key's risk level is encoded into its report type and days since onset.
    pub trl_encoding: TrlEncoding,
}

/// Where the application configuration comes from: read again at every run, so an edited file
/// is published by the next run (or refused, leaving the previous one published).
#[derive(Debug, Clone)]
pub enum AppConfigSource {
    Default,
    File(PathBuf),
}

impl AppConfigSource {
    pub fn load(&self) -> Result<AppConfig, crate::appconfig::InvalidConfig> {
        match self {
            Self::Default => AppConfig::parse(crate::appconfig::DEFAULT_JSON),
            Self::File(path) => {
                let json =
                    std::fs::read_to_string(path).map_err(|e| crate::appconfig::InvalidConfig {
                        field: "(file)".into(),
                        reason: format!("cannot read {}: {e}", path.display()),
                    })?;
                AppConfig::parse(&json)
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome", content = "reason")]
pub enum AppConfigOutcome {
    Published,
    Unchanged,
    /// Invalid; the previous configuration stays published.
    Refused(String),
}

/// What a run did.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The time the run published as of (seconds since the epoch).
    pub now: i64,
    /// Set when the run did nothing because another run held the lease.
    pub skipped: Option<String>,
    /// `YYYY-MM-DD/H` of every hour package written.
    pub hours_published: Vec<String>,
    pub days_published: Vec<String>,
    /// Closed days above the package cap: no day package, their hour packages serve instead.
    pub days_over_cap: Vec<String>,
    pub hours_deleted: usize,
    pub days_deleted: usize,
    /// Real keys read from submission.
    pub keys_streamed: u64,
    /// Keys in the packages written (real and padding).
    pub keys_published: u64,
    pub app_config: Option<AppConfigOutcome>,
    pub seconds: f64,
}

impl Report {
    fn new(now: i64) -> Self {
        Self {
            now,
            skipped: None,
            hours_published: Vec::new(),
            days_published: Vec::new(),
            days_over_cap: Vec::new(),
            hours_deleted: 0,
            days_deleted: 0,
            keys_streamed: 0,
            keys_published: 0,
            app_config: None,
            seconds: 0.0,
        }
    }
}

/// `YYYY-MM-DD` of a day number (days since the epoch).
pub fn date(day: i64) -> String {
    (chrono::DateTime::UNIX_EPOCH + chrono::TimeDelta::days(day))
        .format("%Y-%m-%d")
        .to_string()
}

fn parse_date(s: &str) -> Option<i64> {
    let d = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    // Only the canonical spelling counts (no "2026-1-5").
    (d.format("%Y-%m-%d").to_string() == s)
        .then(|| (d - chrono::DateTime::UNIX_EPOCH.date_naive()).num_days())
}

/// What the tree holds now.
#[derive(Debug, Default)]
struct Published {
    days: BTreeSet<i64>,
    /// Hours since the epoch.
    hours: BTreeSet<i64>,
    /// Days that have an hour index.
    hour_indexes: BTreeSet<i64>,
}

/// The hours and days a run as of some time publishes and keeps.
#[derive(Debug, Clone, Copy)]
struct Window {
    /// The current (open) hour, in hours since the epoch.
    now_hour: i64,
    /// The current (open) day, in days since the epoch.
    today: i64,
    /// The first hour inside the hour retention window.
    first_hour: i64,
    /// The first day inside the day retention window.
    first_day: i64,
}

impl Window {
    fn new(now: i64, s: &Settings) -> Self {
        let now_hour = now.div_euclid(3600);
        let today = now_hour.div_euclid(24);
        Self {
            now_hour,
            today,
            first_hour: now_hour - secs(s.hour_retention) / 3600,
            first_day: today - secs(s.day_retention) / 86_400,
        }
    }

    /// Closed hours inside the hour window, and closed days inside the day window, not yet
    /// published. (A day above the cap has no day package: it is rebuilt, found above the cap
    /// again and left out again; its hour packages are kept for the whole day window.)
    fn missing(&self, published: &Published) -> (BTreeSet<i64>, Vec<i64>) {
        let hours = (self.first_hour.max(self.first_day * 24)..self.now_hour)
            .filter(|h| !published.hours.contains(h))
            .collect();
        let days = (self.first_day..self.today)
            .filter(|d| !published.days.contains(d))
            .collect();
        (hours, days)
    }
}

pub struct Publisher {
    tree: Tree,
    source: Arc<dyn KeySource>,
    signers: Vec<Signer>,
    settings: Settings,
    kv: Arc<dyn KvStore>,
    app_config: AppConfigSource,
}

impl Publisher {
    pub fn new(
        tree: Tree,
        source: Arc<dyn KeySource>,
        signers: Vec<Signer>,
        settings: Settings,
        kv: Arc<dyn KvStore>,
        app_config: AppConfigSource,
    ) -> Self {
        Self {
            tree,
            source,
            signers,
            settings,
            kv,
            app_config,
        }
    }

    pub fn tree(&self) -> &Tree {
        &self.tree
    }

    /// The regions packages are published for, in the order of the country index: the origin
    /// country and the common package [`EU_PACKAGE`] (as CWA's index, sorted).
    pub fn regions(&self) -> [String; 2] {
        [self.settings.country.to_string(), EU_PACKAGE.to_owned()]
    }

    fn base(region: &str) -> String {
        format!("version/v1/diagnosis-keys/country/{region}")
    }

    pub fn day_path(region: &str, day: i64) -> String {
        format!("{}/date/{}", Self::base(region), date(day))
    }

    pub fn hour_index_path(region: &str, day: i64) -> String {
        format!("{}/hour", Self::day_path(region, day))
    }

    pub fn hour_path(region: &str, hour: i64) -> String {
        format!(
            "{}/{}",
            Self::hour_index_path(region, hour.div_euclid(24)),
            hour.rem_euclid(24)
        )
    }

    pub fn date_index_path(region: &str) -> String {
        format!("{}/date", Self::base(region))
    }

    /// The app configuration of the origin country, where the app reads it.
    pub fn app_config_path(&self) -> String {
        format!(
            "version/v1/configuration/country/{}/app_config",
            self.settings.country
        )
    }

    /// The same configuration without a country (CWA's `configuration/app_config`).
    pub const APP_CONFIG_PATH: &str = "version/v1/configuration/app_config";
    /// The countries with an app configuration (`["DE"]`; the common package has none).
    pub const APP_CONFIG_INDEX_PATH: &str = "version/v1/configuration/country";
    /// The API versions (`["v1"]`).
    pub const VERSION_INDEX_PATH: &str = "version";
    /// The description of API version 1: the OpenAPI document of the tree ([`mod@crate::api`]).
    pub const VERSION_V1_PATH: &str = "version/v1";

    /// Publishes as of `now` (seconds since the epoch), unless another run holds the lease.
    #[tracing::instrument(name = "distribution.run", skip(self))]
    pub async fn run(&self, now: i64) -> Result<Report, PublishError> {
        let holder = uuid::Uuid::new_v4().to_string();
        let leased = self
            .kv
            .try_lease(LEASE, &holder, self.settings.lease_ttl)
            .await
            .inspect_err(|e| {
                // A failed run, as any other: counted and logged (the store may be restarting).
                metrics::counter!("openwarn_distribution_runs_total", "outcome" => "error")
                    .increment(1);
                tracing::error!(error = %e, "cannot take the run lease; the next run resumes");
            })?;
        if !leased {
            let mut report = Report::new(now);
            report.skipped = Some("another run holds the lease".into());
            tracing::info!("another distribution run is in progress; skipped");
            return Ok(report);
        }
        let started = Instant::now();
        let result = self.run_holding_lease(now).await;
        if let Err(e) = self.kv.release_lease(LEASE, &holder).await {
            tracing::warn!(error = %e, "cannot release the run lease; it lapses by itself");
        }
        let elapsed = started.elapsed().as_secs_f64();
        metrics::histogram!("openwarn_distribution_run_seconds").record(elapsed);
        match &result {
            Ok(report) => {
                metrics::counter!("openwarn_distribution_runs_total", "outcome" => "ok")
                    .increment(1);
                metrics::gauge!("openwarn_distribution_last_success_timestamp_seconds")
                    .set(crate::now_f64());
                tracing::info!(
                    hours = report.hours_published.len(),
                    days = report.days_published.len(),
                    keys_streamed = report.keys_streamed,
                    keys_published = report.keys_published,
                    hours_deleted = report.hours_deleted,
                    days_deleted = report.days_deleted,
                    seconds = elapsed,
                    "published"
                );
            }
            Err(e) => {
                metrics::counter!("openwarn_distribution_runs_total", "outcome" => "error")
                    .increment(1);
                tracing::error!(error = %e, "publishing failed; the next run resumes");
            }
        }
        result.map(|mut r| {
            r.seconds = elapsed;
            r
        })
    }

    async fn published(&self, region: &str) -> Result<Published, TreeError> {
        let prefix = format!("{}/date/", Self::base(region));
        let mut published = Published::default();
        for path in self.tree.list(&prefix).await? {
            let Some(rest) = path.strip_prefix(&prefix) else {
                continue;
            };
            let parts: Vec<&str> = rest.split('/').collect();
            let Some(day) = parts.first().and_then(|d| parse_date(d)) else {
                continue;
            };
            match parts[1..] {
                [] => {
                    published.days.insert(day);
                }
                ["hour"] => {
                    published.hour_indexes.insert(day);
                }
                ["hour", h] => {
                    // Only canonical names count ("5", not "05").
                    if let Ok(n) = h.parse::<i64>()
                        && (0..24).contains(&n)
                        && n.to_string() == h
                    {
                        published.hours.insert(day * 24 + n);
                    }
                }
                _ => {}
            }
        }
        Ok(published)
    }

    async fn run_holding_lease(&self, now: i64) -> Result<Report, PublishError> {
        let mut report = Report::new(now);
        let window = Window::new(now, &self.settings);
        // Each region's packages are a function of the same keys: what one region misses is
        // built from the keys streamed once for all.
        let regions = self.regions();
        let mut states = Vec::with_capacity(regions.len());
        let mut needed = BTreeSet::new();
        for region in &regions {
            let published = self.published(region).await?;
            let (want_hours, want_days) = window.missing(&published);
            needed.extend(want_hours.iter().copied());
            for day in &want_days {
                needed.extend(day * 24..day * 24 + 24);
            }
            states.push((published, want_hours, want_days));
        }

        let mut hours = self.collect(&needed, &mut report).await?;
        self.pad(&mut hours);
        let mut over_cap = BTreeSet::new();
        let mut written = Vec::with_capacity(regions.len());
        for (region, (published, want_hours, want_days)) in regions.iter().zip(&mut states) {
            let day_packages =
                self.days_under_cap(want_days, &hours, published, want_hours, &mut over_cap);
            let hours_written = self
                .write_hour_packages(region, want_hours, &hours, &mut report)
                .await?;
            let days_written = self
                .write_day_packages(region, &day_packages, &hours, &mut report)
                .await?;
            written.push((hours_written, days_written));
        }
        drop(hours);
        report.days_over_cap = over_cap.into_iter().map(date).collect();

        report.app_config = Some(self.publish_app_config().await?);
        for (region, ((published, _, _), (hours_written, days_written))) in
            regions.iter().zip(states.iter().zip(&written))
        {
            self.apply_retention(
                region,
                &window,
                published,
                days_written,
                hours_written,
                &mut report,
            )
            .await?;
        }
        self.write_top_indexes().await?;
        Ok(report)
    }

    /// The report's name of a package: `YYYY-MM-DD[/H]` for the origin country, prefixed with
    /// the region for the others (`EUR/YYYY-MM-DD/H`).
    fn report_name(&self, region: &str, name: String) -> String {
        if region == self.settings.country.as_str() {
            name
        } else {
            format!("{region}/{name}")
        }
    }

    /// Pads every hour with fake keys up to the minimum, deterministically.
    fn pad(&self, hours: &mut BTreeMap<i64, Vec<Key>>) {
        let s = &self.settings;
        for (hour, keys) in hours {
            keys::sort_and_dedup(keys);
            keys::pad(
                keys,
                *hour,
                s.min_keys_per_hour,
                &s.padding_secret,
                &s.trl_encoding,
            );
            keys::sort_and_dedup(keys);
        }
    }

    /// The wanted days that get a day package (closed days); a day above the cap keeps its hours
    /// instead: it is added to `over_cap`, and its hours not yet published become wanted.
    fn days_under_cap(
        &self,
        want_days: &[i64],
        hours: &BTreeMap<i64, Vec<Key>>,
        published: &Published,
        want_hours: &mut BTreeSet<i64>,
        over_cap: &mut BTreeSet<i64>,
    ) -> Vec<i64> {
        let mut day_packages = Vec::new();
        for &day in want_days {
            let count: usize = (day * 24..day * 24 + 24).map(|h| hours[&h].len()).sum();
            if count > self.settings.max_keys_per_package {
                over_cap.insert(day);
                want_hours
                    .extend((day * 24..day * 24 + 24).filter(|h| !published.hours.contains(h)));
                continue;
            }
            day_packages.push(day);
        }
        day_packages
    }

    /// The batch of a package covering `[start, end)` (seconds since the epoch).
    fn batch(region: &str, start: i64, end: i64) -> Batch {
        Batch {
            start_timestamp: u64::try_from(start).unwrap_or(0),
            end_timestamp: u64::try_from(end).unwrap_or(0),
            region: region.to_owned(),
        }
    }

    /// Writes the package of every wanted hour; the hours that exist now.
    async fn write_hour_packages(
        &self,
        region: &str,
        want_hours: &BTreeSet<i64>,
        hours: &BTreeMap<i64, Vec<Key>>,
        report: &mut Report,
    ) -> Result<BTreeSet<i64>, TreeError> {
        let mut written = BTreeSet::new();
        for &hour in want_hours {
            let keys = &hours[&hour];
            let batch = Self::batch(region, hour * 3600, (hour + 1) * 3600);
            if self
                .write_package(&Self::hour_path(region, hour), &batch, keys)
                .await?
                == Created::New
            {
                report.hours_published.push(self.report_name(
                    region,
                    format!("{}/{}", date(hour.div_euclid(24)), hour.rem_euclid(24)),
                ));
                report.keys_published += keys.len() as u64;
            }
            written.insert(hour);
        }
        Ok(written)
    }

    /// Writes the package of every day given, from its 24 hours; the days that exist now.
    async fn write_day_packages(
        &self,
        region: &str,
        days: &[i64],
        hours: &BTreeMap<i64, Vec<Key>>,
        report: &mut Report,
    ) -> Result<BTreeSet<i64>, TreeError> {
        let mut written = BTreeSet::new();
        for &day in days {
            let mut keys: Vec<Key> = Vec::new();
            for h in day * 24..day * 24 + 24 {
                keys.extend_from_slice(&hours[&h]);
            }
            keys::sort_and_dedup(&mut keys);
            let batch = Self::batch(region, day * 86_400, (day + 1) * 86_400);
            if self
                .write_package(&Self::day_path(region, day), &batch, &keys)
                .await?
                == Created::New
            {
                report
                    .days_published
                    .push(self.report_name(region, date(day)));
                report.keys_published += keys.len() as u64;
            }
            written.insert(day);
        }
        Ok(written)
    }

    /// Rewrites the indexes from what exists now, minus what retention removes; then removes it.
    async fn apply_retention(
        &self,
        region: &str,
        window: &Window,
        published: &Published,
        days_written: &BTreeSet<i64>,
        hours_written: &BTreeSet<i64>,
        report: &mut Report,
    ) -> Result<(), TreeError> {
        let mut all_days: BTreeSet<i64> = published.days.union(days_written).copied().collect();
        let mut all_hours: BTreeSet<i64> = published.hours.union(hours_written).copied().collect();
        let expired_days: Vec<i64> = all_days
            .iter()
            .copied()
            .filter(|d| *d < window.first_day)
            .collect();
        let expired_hours: Vec<i64> = all_hours
            .iter()
            .copied()
            .filter(|h| {
                let day = h.div_euclid(24);
                *h < window.first_hour && (day < window.first_day || all_days.contains(&day))
            })
            .collect();
        for d in &expired_days {
            all_days.remove(d);
        }
        for h in &expired_hours {
            all_hours.remove(h);
        }
        self.write_indexes(region, &all_days, &all_hours, &published.hour_indexes)
            .await?;
        for h in &expired_hours {
            self.tree.delete(&Self::hour_path(region, *h)).await?;
        }
        for d in &expired_days {
            self.tree.delete(&Self::day_path(region, *d)).await?;
        }
        report.hours_deleted += expired_hours.len();
        report.days_deleted += expired_days.len();
        Ok(())
    }

    /// Streams the keys whose distribution hour is in `needed`, bucketed by that hour (every
    /// needed hour gets a bucket, empty or not).
    async fn collect(
        &self,
        needed: &BTreeSet<i64>,
        report: &mut Report,
    ) -> Result<BTreeMap<i64, Vec<Key>>, PublishError> {
        let mut hours: BTreeMap<i64, Vec<Key>> = needed.iter().map(|h| (*h, Vec::new())).collect();
        let (Some(&first), Some(&last)) = (needed.first(), needed.last()) else {
            return Ok(hours);
        };
        let embargo = secs(self.settings.embargo);
        let from = (first - keys::max_lag_hours(embargo)).max(0);
        // Several streams over consecutive hour ranges at once: submission reads their pages in
        // parallel (one database query each), and keys arrive while others are being read.
        let ranges = split_hours(from, last + 1, STREAMS);
        let streams =
            futures::future::try_join_all(ranges.iter().map(|&(a, b)| self.source.stream(a, b)))
                .await?;
        let mut stream = futures::stream::select_all(streams);
        while let Some(batch) = stream.next().await {
            for wire in batch? {
                report.keys_streamed += 1;
                let Some(key) = Key::from_wire(&wire, &self.settings.trl_encoding) else {
                    continue;
                };
                let hour = key.distribution_hour(wire.submission_hour, embargo);
                if let Some(bucket) = hours.get_mut(&hour) {
                    bucket.push(key);
                }
            }
        }
        Ok(hours)
    }

    async fn write_package(
        &self,
        path: &str,
        batch: &Batch,
        keys: &[Key],
    ) -> Result<Created, TreeError> {
        let exports: Vec<_> = keys.iter().map(Key::to_export).collect();
        let zip = Package::build(batch, exports.iter(), &self.signers).to_zip()?;
        let created = self.tree.create(path, zip).await?;
        if created == Created::AlreadyThere {
            // Only a concurrent writer that got past the lease (an expired lease) gets here.
            tracing::warn!(path, "package already published; left as it is");
        } else {
            metrics::counter!("openwarn_distribution_packages_published_total").increment(1);
            metrics::counter!("openwarn_distribution_keys_published_total")
                .increment(keys.len() as u64);
        }
        Ok(created)
    }

    async fn publish_app_config(&self) -> Result<AppConfigOutcome, TreeError> {
        let config = match self.app_config.load().and_then(|c| c.encode()) {
            Ok(bytes) => bytes,
            Err(e) => {
                metrics::counter!("openwarn_distribution_app_config_refused_total").increment(1);
                tracing::error!(error = %e, "application configuration refused; the previous one stays published");
                return Ok(AppConfigOutcome::Refused(e.to_string()));
            }
        };
        let zip = Package::signed(config, &self.signers, 1, 1).to_zip()?;
        // The country-less copy first: the country's path (the one the app reads) decides
        // whether the next run finds the configuration published.
        let copied = self
            .replace_if_changed(Self::APP_CONFIG_PATH, zip.clone())
            .await?;
        if self
            .replace_if_changed(&self.app_config_path(), zip)
            .await?
            || copied
        {
            Ok(AppConfigOutcome::Published)
        } else {
            Ok(AppConfigOutcome::Unchanged)
        }
    }

    /// Writes `bytes` unless the object already holds them (keeps ETags stable); true if written.
    async fn replace_if_changed(&self, path: &str, bytes: Vec<u8>) -> Result<bool, TreeError> {
        if self
            .tree
            .get(path)
            .await?
            .is_some_and(|o| o.bytes.as_ref() == bytes.as_slice())
        {
            return Ok(false);
        }
        self.tree.replace(path, bytes).await?;
        Ok(true)
    }

    /// The indexes above the regions: the country index (the origin country and the common
    /// package, sorted as CWA sorts it), the countries with an app configuration, the API
    /// versions and the description of version 1.
    async fn write_top_indexes(&self) -> Result<(), TreeError> {
        let json = |v: serde_json::Value| v.to_string().into_bytes();
        let mut regions = self.regions();
        regions.sort();
        self.replace_if_changed(
            "version/v1/diagnosis-keys/country",
            json(serde_json::json!(regions)),
        )
        .await?;
        self.replace_if_changed(
            Self::APP_CONFIG_INDEX_PATH,
            json(serde_json::json!([self.settings.country])),
        )
        .await?;
        self.replace_if_changed(Self::VERSION_INDEX_PATH, json(serde_json::json!(VERSIONS)))
            .await?;
        let description = serde_json::to_vec(&crate::api::api())
            .map_err(|e| TreeError::Config(format!("API description: {e}")))?;
        self.replace_if_changed(Self::VERSION_V1_PATH, description)
            .await?;
        Ok(())
    }

    async fn write_indexes(
        &self,
        region: &str,
        days: &BTreeSet<i64>,
        hours: &BTreeSet<i64>,
        had_hour_index: &BTreeSet<i64>,
    ) -> Result<(), TreeError> {
        let json = |v: serde_json::Value| v.to_string().into_bytes();
        let mut by_day: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
        for h in hours {
            by_day
                .entry(h.div_euclid(24))
                .or_default()
                .push(h.rem_euclid(24));
        }
        for (day, list) in &by_day {
            self.replace_if_changed(
                &Self::hour_index_path(region, *day),
                json(serde_json::json!(list)),
            )
            .await?;
        }
        let dates: Vec<String> = days.iter().map(|d| date(*d)).collect();
        self.replace_if_changed(
            &Self::date_index_path(region),
            json(serde_json::json!(dates)),
        )
        .await?;
        for day in had_hour_index.iter().filter(|d| !by_day.contains_key(d)) {
            self.tree
                .delete(&Self::hour_index_path(region, *day))
                .await?;
        }
        Ok(())
    }
}

/// Streams from submission at once during a run.
const STREAMS: i64 = 4;

/// `[from, until)` cut into at most `parts` consecutive non-empty ranges of (nearly) equal
/// length.
fn split_hours(from: i64, until: i64, parts: i64) -> Vec<(i64, i64)> {
    let len = (until - from).max(0);
    let parts = parts.clamp(1, len.max(1));
    (0..parts)
        .map(|i| (from + len * i / parts, from + len * (i + 1) / parts))
        .filter(|(a, b)| a < b || len == 0)
        .collect()
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::split_hours;

    #[test]
    fn hour_ranges_cover_the_span_once() {
        for (from, until, parts) in [(0, 1, 4), (10, 13, 4), (100, 436, 4), (5, 9, 1)] {
            let ranges = split_hours(from, until, parts);
            assert!(ranges.len() as i64 <= parts);
            assert_eq!(ranges.first().unwrap().0, from);
            assert_eq!(ranges.last().unwrap().1, until);
            for pair in ranges.windows(2) {
                assert_eq!(pair[0].1, pair[1].0);
            }
            assert!(ranges.iter().all(|(a, b)| a < b), "{ranges:?}");
        }
        assert_eq!(split_hours(0, 8, 4), [(0, 2), (2, 4), (4, 6), (6, 8)]);
    }
}
