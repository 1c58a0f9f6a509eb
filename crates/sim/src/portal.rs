//! teleTANs as the portal will issue them: over verification's gRPC, with the portal's
//! certificate from the dev PKI `openwarn up` generated.

use openwarn_mtls::{DevPki, TlsError};
use std::path::{Path, PathBuf};

/// The certificate the teleTAN is requested with.
const PORTAL: &str = "portal";

/// A teleTAN could not be issued.
#[derive(Debug, thiserror::Error)]
pub enum TeleTanError {
    #[error("no dev PKI in {} (missing {}); run `openwarn up` first", dir.display(), missing.join(", "))]
    NoPki { dir: PathBuf, missing: Vec<String> },
    #[error("the dev PKI in {} is unusable", dir.display())]
    Tls {
        dir: PathBuf,
        #[source]
        source: TlsError,
    },
    #[error("verification refused: {code:?}: {message}")]
    Refused { code: tonic::Code, message: String },
}

/// An issued teleTAN.
#[derive(Debug, Clone)]
pub struct TeleTan {
    pub tele_tan: String,
    /// Unix seconds.
    pub expires_at: i64,
}

/// The files of the dev PKI the portal's calls need: the CA and the portal's certificate and key
/// (the layout of `openwarn_mtls::DevPki`).
fn portal_files(pki_dir: &Path) -> [(&'static str, PathBuf); 3] {
    [
        ("ca.pem", pki_dir.join("ca.pem")),
        ("portal.pem", pki_dir.join(format!("{PORTAL}.pem"))),
        ("portal-key.pem", pki_dir.join(format!("{PORTAL}-key.pem"))),
    ]
}

/// The dev PKI of `data_dir` (`<data_dir>/pki`), only if `openwarn up` made it: this never
/// creates a CA (which `DevPki::ensure` would when files are missing).
pub fn existing_pki(data_dir: &Path) -> Result<DevPki, TeleTanError> {
    let dir = data_dir.join("pki");
    let missing: Vec<String> = portal_files(&dir)
        .into_iter()
        .filter(|(_, path)| !path.is_file())
        .map(|(name, _)| name.to_owned())
        .collect();
    if !missing.is_empty() {
        return Err(TeleTanError::NoPki { dir, missing });
    }
    // Every file the portal needs exists, so this only loads.
    DevPki::ensure(&dir, &[PORTAL]).map_err(|source| TeleTanError::Tls { dir, source })
}

/// Issues a TEST teleTAN over verification's gRPC with the portal's dev certificate (as the
/// portal will).
pub async fn issue_teletan(
    data_dir: &Path,
    verification_url: &str,
) -> Result<TeleTan, TeleTanError> {
    use openwarn_protocol::verification::v1::verification_service_client::VerificationServiceClient;
    use openwarn_protocol::verification::v1::{IssueTeleTanRequest, TeleTanType};
    let pki = existing_pki(data_dir)?;
    let tls = |source| TeleTanError::Tls {
        dir: pki.dir().to_owned(),
        source,
    };
    let channel = pki
        .files(PORTAL)
        .map_err(tls)?
        .grpc_channel(verification_url, "verification")
        .map_err(tls)?;
    let issued = VerificationServiceClient::new(channel)
        .issue_tele_tan(IssueTeleTanRequest {
            r#type: TeleTanType::Test as i32,
        })
        .await
        .map_err(|s| TeleTanError::Refused {
            code: s.code(),
            message: s.message().to_owned(),
        })?
        .into_inner();
    Ok(TeleTan {
        tele_tan: issued.tele_tan,
        expires_at: issued.expires_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_pki_is_named_and_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let err = existing_pki(dir.path()).unwrap_err().to_string();
        assert_eq!(err.matches("run `openwarn up` first").count(), 1, "{err}");
        assert!(err.contains("ca.pem"), "{err}");
        assert!(!dir.path().join("pki").exists(), "no CA was created");
    }

    #[test]
    fn the_files_checked_are_the_ones_the_dev_pki_writes() {
        let dir = tempfile::tempdir().unwrap();
        let made = DevPki::ensure(&dir.path().join("pki"), &[PORTAL]).unwrap();
        let ca = std::fs::read(made.ca()).unwrap();
        let pki = existing_pki(dir.path()).unwrap();
        assert_eq!(
            std::fs::read(pki.ca()).unwrap(),
            ca,
            "loaded, not regenerated"
        );
        let expected = [made.ca(), made.cert(PORTAL), made.key(PORTAL)];
        let checked = portal_files(&dir.path().join("pki")).map(|(_, p)| p);
        assert_eq!(checked, expected);
    }
}
