//! The lab endpoint's TLS: labs are onboarded by the SHA-256 fingerprint of their client
//! certificate, whatever CA issued it.

use crate::TlsError;
use crate::pem::{certs, read, read_certs, read_private_key};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

/// Lowercase hex SHA-256 of a DER certificate: how labs are allow-listed.
pub fn fingerprint(der: &[u8]) -> String {
    openwarn_domain::sha256_hex(der)
}

/// Lowercase hex SHA-256 fingerprint of the first certificate in a PEM file.
pub fn fingerprint_of_pem(path: &Path) -> Result<String, TlsError> {
    let pem = read(path)?;
    certs(&pem)
        .first()
        .map(|c| fingerprint(c))
        .ok_or_else(|| TlsError::Pem {
            path: path.to_owned(),
            what: "certificate",
        })
}

/// Accepts exactly the client certificates whose SHA-256 fingerprint is allow-listed (labs are
/// onboarded by fingerprint, whatever CA issued their certificate), after checking that the
/// client holds the certificate's private key (the handshake signature).
#[derive(Debug)]
struct FingerprintVerifier {
    allowed: HashSet<String>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ClientCertVerifier for FingerprintVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if self.allowed.contains(&fingerprint(end_entity)) {
            Ok(ClientCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The allow-list as compared: lowercase hex without colons; an error unless every entry is 64
/// hex digits.
fn allow_list(fingerprints: &[String]) -> Result<HashSet<String>, TlsError> {
    let allowed = fingerprints
        .iter()
        .map(|f| f.replace(':', "").to_ascii_lowercase())
        .collect::<HashSet<_>>();
    if allowed
        .iter()
        .any(|f| f.len() != 64 || !f.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(TlsError::Config(
            "a lab fingerprint is not 64 hex digits (SHA-256)".into(),
        ));
    }
    Ok(allowed)
}

/// HTTPS server configuration for the lab endpoint: our certificate, and only allow-listed lab
/// client certificates (SHA-256 fingerprints, hex, any case, colons allowed).
pub fn lab_server_config(
    cert: &Path,
    key: &Path,
    allowed_fingerprints: &[String],
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let certs = read_certs(cert)?;
    let key_der = read_private_key(key)?;
    let allowed = allow_list(allowed_fingerprints)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(FingerprintVerifier {
        allowed,
        provider: provider.clone(),
    });
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key_der)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DevPki;

    #[test]
    fn lab_fingerprints_must_be_sha256_hex() {
        let dir = tempfile::tempdir().unwrap();
        let pki = DevPki::ensure(dir.path(), &["test-result"]).unwrap();
        let fp = fingerprint_of_pem(&pki.cert("test-result")).unwrap();
        let with_colons = fp
            .as_bytes()
            .chunks(2)
            .map(|c| std::str::from_utf8(c).unwrap().to_ascii_uppercase())
            .collect::<Vec<_>>()
            .join(":");
        lab_server_config(
            &pki.cert("test-result"),
            &pki.key("test-result"),
            &[with_colons],
        )
        .unwrap();
        assert!(
            lab_server_config(
                &pki.cert("test-result"),
                &pki.key("test-result"),
                &["abc".into()]
            )
            .is_err()
        );
    }

    #[test]
    fn only_allow_listed_certificates_are_verified() {
        let dir = tempfile::tempdir().unwrap();
        let pki = DevPki::ensure(dir.path(), &["lab", "other"]).unwrap();
        let lab = read_certs(&pki.cert("lab")).unwrap().remove(0);
        let other = read_certs(&pki.cert("other")).unwrap().remove(0);
        let verifier = FingerprintVerifier {
            allowed: allow_list(&[fingerprint(&lab)]).unwrap(),
            provider: Arc::new(rustls::crypto::ring::default_provider()),
        };
        let now = UnixTime::now();
        assert!(verifier.verify_client_cert(&lab, &[], now).is_ok());
        assert!(verifier.verify_client_cert(&other, &[], now).is_err());
    }
}
