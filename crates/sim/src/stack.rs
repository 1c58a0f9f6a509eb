//! How the simulator finds a stack started by `openwarn up`: the data directory holds
//! `stack.json` (the public endpoints, written by `up`) and the public key packages verify with.
//! Also the one admin call the simulator makes: asking distribution to publish now.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The file in the data directory holding the public key that distribution's packages verify
/// with (SPKI PEM); `openwarn up` writes it.
pub const PUBLIC_KEY_FILE: &str = "distribution-public-key.pem";

/// The stack file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error("no {}: is `openwarn up --data-dir {}` running?", path.display(), data_dir.display())]
    Missing {
        path: PathBuf,
        data_dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a stack file", path.display())]
    Malformed {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// What `openwarn up` writes for other commands (`openwarn publish`, `openwarn sim`) to find the
/// stack it runs.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct StackFile {
    /// The app API (the proxy).
    pub app: String,
    /// The lab API of test-result.
    pub lab: String,
    /// The published tree (distribution's embedded server).
    pub cdn: String,
    /// Distribution's admin port (`POST /run`).
    pub distribution_admin: String,
    /// Verification's gRPC endpoint (teleTANs).
    pub verification_grpc: String,
}

impl StackFile {
    /// `<data_dir>/stack.json`.
    #[must_use]
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join("stack.json")
    }

    /// Reads the stack file of `data_dir`.
    pub fn read(data_dir: &Path) -> Result<Self, StackError> {
        let path = Self::path(data_dir);
        let text = std::fs::read_to_string(&path).map_err(|source| StackError::Missing {
            path: path.clone(),
            data_dir: data_dir.to_owned(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| StackError::Malformed { path, source })
    }

    /// Writes it as `<data_dir>/stack.json`.
    pub fn write(&self, data_dir: &Path) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(Self::path(data_dir), json)
    }
}

/// A publishing run could not be had.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Client(crate::app::ClientError),
    #[error("{admin:?} is not a URL")]
    Url {
        admin: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("distribution does not answer; is `openwarn up` running?")]
    Unreachable(#[source] reqwest::Error),
    #[error("distribution answered {status}: {body}")]
    Refused {
        status: reqwest::StatusCode,
        body: String,
    },
    #[error("distribution's report is not JSON")]
    Report(#[source] serde_json::Error),
}

/// Asks distribution (admin port of `up`, which runs it with `--manual-runs`) to publish now, or
/// as of `now` (RFC 3339); waits out a run already in progress (the hourly one holds the lease).
/// Returns the run's report.
pub async fn publish(admin: &str, now: Option<&str>) -> Result<serde_json::Value, PublishError> {
    let client = crate::app::http_client(|b| b).map_err(PublishError::Client)?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let mut request = client.post(format!("{admin}/run"));
        if let Some(now) = now {
            request = request.query(&[("now", now)]);
        }
        let request = request.build().map_err(|source| PublishError::Url {
            admin: admin.to_owned(),
            source,
        })?;
        let response = client
            .execute(request)
            .await
            .map_err(PublishError::Unreachable)?;
        let status = response.status();
        let body = response.text().await.map_err(PublishError::Unreachable)?;
        if !status.is_success() {
            return Err(PublishError::Refused { status, body });
        }
        let report: serde_json::Value =
            serde_json::from_str(&body).map_err(PublishError::Report)?;
        if report["skipped"].is_null() || Instant::now() > deadline {
            return Ok(report);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Polls `http://<admin>/readyz` until it answers 200 (true) or `within` has passed (false).
pub async fn wait_ready(admin: std::net::SocketAddr, within: Duration) -> bool {
    let Ok(client) = crate::app::http_client(|b| b.timeout(Duration::from_secs(2))) else {
        return false;
    };
    let url = format!("http://{admin}/readyz");
    let deadline = Instant::now() + within;
    loop {
        if client
            .get(&url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stack_file_round_trips_and_a_missing_one_says_what_to_run() {
        let dir = tempfile::tempdir().unwrap();
        let err = StackFile::read(dir.path()).unwrap_err().to_string();
        assert!(err.contains("is `openwarn up --data-dir"), "{err}");
        let stack = StackFile {
            app: "http://127.0.0.1:8000".into(),
            lab: "http://127.0.0.1:8030".into(),
            cdn: "http://127.0.0.1:8050".into(),
            distribution_admin: "http://127.0.0.1:8051".into(),
            verification_grpc: "https://127.0.0.1:9010".into(),
        };
        stack.write(dir.path()).unwrap();
        let read = StackFile::read(dir.path()).unwrap();
        assert_eq!(read.verification_grpc, stack.verification_grpc);
        std::fs::write(StackFile::path(dir.path()), "{}").unwrap();
        assert!(matches!(
            StackFile::read(dir.path()),
            Err(StackError::Malformed { .. })
        ));
    }
}
