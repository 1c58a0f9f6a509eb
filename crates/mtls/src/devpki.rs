//! A development PKI, so that a local run takes the same mutual-TLS code path as production.

use crate::{TlsError, TlsFiles};
use std::path::{Path, PathBuf};

/// A development PKI: one CA and, per name, a certificate valid for that name, `localhost` and
/// `127.0.0.1`, usable as TLS server and as TLS client.
#[derive(Debug, Clone)]
pub struct DevPki {
    dir: PathBuf,
}

/// The development CA's parameters (the same each time, so that a certificate issued later with
/// the stored key names the same issuer).
fn ca_params() -> Result<rcgen::CertificateParams, TlsError> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyUsagePurpose};
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "OpenWarn development CA");
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(params)
}

impl DevPki {
    /// Uses the PKI in `dir`, generating it (again) when any of `names` lacks a certificate.
    pub fn ensure(dir: &Path, names: &[&str]) -> Result<Self, TlsError> {
        let pki = Self {
            dir: dir.to_owned(),
        };
        let complete = pki.ca().exists()
            && pki.ca_key().exists()
            && names
                .iter()
                .all(|n| pki.cert(n).exists() && pki.key(n).exists());
        if !complete {
            pki.generate(names)?;
        }
        Ok(pki)
    }

    fn generate(&self, names: &[&str]) -> Result<(), TlsError> {
        std::fs::create_dir_all(&self.dir).map_err(|source| TlsError::Write {
            path: self.dir.clone(),
            source,
        })?;
        let ca_key = rcgen::KeyPair::generate()?;
        let ca_cert = ca_params()?.self_signed(&ca_key)?;
        self.write(&self.ca(), ca_cert.pem().as_bytes())?;
        self.write(&self.ca_key(), ca_key.serialize_pem().as_bytes())?;
        let issuer = rcgen::Issuer::new(ca_params()?, ca_key);
        for name in names {
            self.sign(&issuer, name, name, None)?;
        }
        Ok(())
    }

    /// Issues another certificate for `name` from this PKI's CA, valid from `not_before` to
    /// `not_after`, written as `<stem>.pem` and `<stem>-key.pem` (a certificate that expired or is
    /// not valid yet, for tests; a renewal).
    pub fn issue(
        &self,
        name: &str,
        stem: &str,
        not_before: std::time::SystemTime,
        not_after: std::time::SystemTime,
    ) -> Result<(), TlsError> {
        let key = crate::pem::read(&self.ca_key())?;
        let key = std::str::from_utf8(&key)
            .ok()
            .and_then(|pem| rcgen::KeyPair::from_pem(pem).ok())
            .ok_or_else(|| TlsError::Pem {
                path: self.ca_key(),
                what: "private key",
            })?;
        let issuer = rcgen::Issuer::new(ca_params()?, key);
        self.sign(&issuer, name, stem, Some((not_before, not_after)))
    }

    fn sign(
        &self,
        issuer: &rcgen::Issuer<'_, rcgen::KeyPair>,
        name: &str,
        stem: &str,
        validity: Option<(std::time::SystemTime, std::time::SystemTime)>,
    ) -> Result<(), TlsError> {
        use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose};
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(vec![
            name.to_owned(),
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
        ])?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        if let Some((not_before, not_after)) = validity {
            params.not_before = not_before.into();
            params.not_after = not_after.into();
        }
        let cert = params.signed_by(&key, issuer)?;
        self.write(&self.cert(stem), cert.pem().as_bytes())?;
        self.write(&self.key(stem), key.serialize_pem().as_bytes())?;
        Ok(())
    }

    fn write(&self, path: &Path, contents: &[u8]) -> Result<(), TlsError> {
        std::fs::write(path, contents).map_err(|source| TlsError::Write {
            path: path.to_owned(),
            source,
        })?;
        #[cfg(unix)]
        if path.extension().is_some_and(|e| e == "pem")
            && path.to_string_lossy().ends_with("-key.pem")
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        }
        Ok(())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
    /// The CA's key (a development PKI keeps it, to issue renewals and test certificates).
    pub fn ca_key(&self) -> PathBuf {
        self.dir.join("ca-key.pem")
    }
    pub fn cert(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.pem"))
    }
    pub fn key(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}-key.pem"))
    }
    /// The files for `name`, loaded.
    pub fn files(&self, name: &str) -> Result<TlsFiles, TlsError> {
        TlsFiles::load(&self.ca(), &self.cert(name), &self.key(name))
    }
    /// `--tls-ca <ca> --tls-cert <name's certificate> --tls-key <name's key>`: the command-line
    /// arguments that give the service (or caller) `name` its internal mutual-TLS identity.
    pub fn service_args(&self, name: &str) -> Vec<String> {
        vec![
            "--tls-ca".to_owned(),
            self.ca().display().to_string(),
            "--tls-cert".to_owned(),
            self.cert(name).display().to_string(),
            "--tls-key".to_owned(),
            self.key(name).display().to_string(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fingerprint_of_pem;

    #[test]
    fn dev_pki_generates_loadable_files_once() {
        let dir = tempfile::tempdir().unwrap();
        let pki = DevPki::ensure(dir.path(), &["verification", "test-result"]).unwrap();
        let files = pki.files("verification").unwrap();
        files.grpc_server().unwrap();
        files
            .grpc_endpoint("https://127.0.0.1:1", "test-result")
            .unwrap();
        let before = std::fs::read(pki.ca()).unwrap();
        let again = DevPki::ensure(dir.path(), &["verification"]).unwrap();
        assert_eq!(
            std::fs::read(again.ca()).unwrap(),
            before,
            "an existing PKI is reused"
        );
        let grown = DevPki::ensure(dir.path(), &["verification", "portal"]).unwrap();
        assert!(grown.cert("portal").exists());
        assert_eq!(fingerprint_of_pem(&pki.cert("portal")).unwrap().len(), 64);
    }
}
