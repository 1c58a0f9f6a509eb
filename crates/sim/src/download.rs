//! What a phone downloads: the indexes, every day package of the last 14 days (the hour
//! packages of days without one: today, and days over the package cap) of its country and of the
//! common package `EUR` when the country index lists it (a CWA app downloads `EUR`), and the
//! application configuration — each verified with the published public key before anything in
//! it is used.

use super::app::{Client, ClientError};
use openwarn_export::{Package, Verifier};
use openwarn_protocol::Message;
use openwarn_protocol::config::v1::ApplicationConfiguration;
use openwarn_protocol::gaen::TemporaryExposureKey;
use reqwest::StatusCode;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// A package a phone refused, and why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Rejected {
    pub path: String,
    pub reason: String,
}

/// What one phone got.
#[derive(Debug, Default)]
pub struct Downloaded {
    /// The keys of each verified package.
    pub packages: Vec<Arc<Vec<TemporaryExposureKey>>>,
    pub rejected: Vec<Rejected>,
    /// The verified application configuration (`None`: missing or refused, see `rejected`).
    pub app_config: Option<ApplicationConfiguration>,
}

type Verified = Result<Arc<Vec<TemporaryExposureKey>>, String>;

/// CWA's common package: every country's keys, what a CWA app downloads.
pub const COMMON_PACKAGE: &str = "EUR";

/// A phone's download that could not go on (a package that fails verification is not an error:
/// it is [`Rejected`]).
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("the country index {countries:?} does not list {country}")]
    CountryNotListed {
        countries: Vec<String>,
        country: String,
    },
}

/// Downloads for many phones. Every phone fetches every file itself; a verification outcome is
/// remembered by the SHA-256 of the bytes, since the same bytes verify the same way.
pub struct Downloads {
    client: Client,
    verifier: Verifier,
    verified: Mutex<HashMap<[u8; 32], Verified>>,
}

/// `YYYY-MM-DD` of days since the epoch.
#[must_use]
pub fn date(day: i64) -> String {
    chrono::DateTime::from_timestamp(day * 86_400, 0)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

impl Downloads {
    pub fn new(client: Client, verifier: Verifier) -> Arc<Self> {
        Arc::new(Self {
            client,
            verifier,
            verified: Mutex::new(HashMap::new()),
        })
    }

    /// `phones` phones download at once (16 in flight); progress on stderr.
    pub async fn for_phones(
        self: &Arc<Self>,
        phones: usize,
        now: u64,
    ) -> Vec<Result<Downloaded, DownloadError>> {
        use futures::StreamExt;
        let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        futures::stream::iter(0..phones)
            .map(|_| {
                let (this, done) = (self.clone(), done.clone());
                async move {
                    let result = this.phone(now).await;
                    let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                    if n % 100 == 0 || n == phones {
                        eprintln!("sim: downloads {n}/{phones} phones");
                    }
                    result
                }
            })
            .buffered(16)
            .collect()
            .await
    }

    /// One phone's download, as of `now`.
    pub async fn phone(&self, now: u64) -> Result<Downloaded, DownloadError> {
        let cc = self.client.country.clone();
        let countries: Vec<String> = self
            .client
            .index("diagnosis-keys/country")
            .await?
            .unwrap_or_default();
        if !countries.contains(&cc) {
            return Err(DownloadError::CountryNotListed {
                countries,
                country: cc,
            });
        }
        let today = i64::try_from(now / 86_400).unwrap_or(i64::MAX);
        let mut paths = Vec::new();
        let mut regions = vec![cc.clone()];
        if countries.iter().any(|c| c == COMMON_PACKAGE) {
            regions.push(COMMON_PACKAGE.to_owned());
        }
        for region in regions {
            let base = format!("diagnosis-keys/country/{region}/date");
            let days: Vec<String> = self.client.index(&base).await?.unwrap_or_default();
            for day in (today - 13..=today).map(date) {
                if days.contains(&day) {
                    paths.push(format!("{base}/{day}"));
                } else {
                    let hours: Vec<u32> = self
                        .client
                        .index(&format!("{base}/{day}/hour"))
                        .await?
                        .unwrap_or_default();
                    paths.extend(hours.iter().map(|h| format!("{base}/{day}/hour/{h}")));
                }
            }
        }
        let mut got = Downloaded::default();
        for path in paths {
            match self.package(&path).await? {
                Ok(keys) => got.packages.push(keys),
                Err(reason) => got.rejected.push(Rejected { path, reason }),
            }
        }
        let path = format!("configuration/country/{cc}/app_config");
        let answer = self.client.cdn(&path).await?;
        let config = if answer.status == StatusCode::OK {
            Package::open(&answer.body)
                .and_then(|p| self.verifier.verify_content(&p).map(|()| p))
                .map_err(|e| e.to_string())
                .and_then(|p| {
                    ApplicationConfiguration::decode(p.bin.as_slice()).map_err(|e| e.to_string())
                })
        } else {
            Err(format!("status {}", answer.status))
        };
        match config {
            Ok(c) => got.app_config = Some(c),
            Err(reason) => got.rejected.push(Rejected { path, reason }),
        }
        Ok(got)
    }

    /// Fetches a package: its keys if it verifies, else why not.
    async fn package(&self, path: &str) -> Result<Verified, ClientError> {
        let answer = self.client.cdn(path).await?;
        if answer.status != StatusCode::OK {
            return Ok(Err(format!("status {}", answer.status)));
        }
        let digest: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(&answer.body).into();
        // A poisoned cache still holds whole entries (each is one insert): keep using it.
        if let Some(known) = self
            .verified
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&digest)
        {
            return Ok(known.clone());
        }
        let outcome = Package::open(&answer.body)
            .and_then(|p| {
                self.verifier.verify(&p)?;
                p.export()
            })
            .map(|export| Arc::new(export.keys))
            .map_err(|e| format!("verification failed: {e}"));
        self.verified
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(digest, outcome.clone());
        Ok(outcome)
    }
}
