//! The lab endpoint's TLS: labs are onboarded by the SHA-256 fingerprint of their client
//! certificate, and that certificate must also chain to a lab CA the operator trusts, be within
//! its validity period and be meant for client authentication (webpki's checks, as for any TLS
//! client certificate).

use crate::TlsError;
use crate::pem::{certs, read};
use crate::reload::{
    Read, Reload, ServerSide, Watched, latest_not_after, not_after, provider, server_config,
};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::sign::CertifiedKey;
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
/// onboarded by fingerprint) and that pass webpki's checks against the lab CAs: chain, validity
/// period at the handshake, extended key usage for client authentication, and the handshake
/// signature (the client holds the key).
#[derive(Debug)]
struct FingerprintVerifier {
    allowed: HashSet<String>,
    chain: Arc<dyn ClientCertVerifier>,
}

impl ClientCertVerifier for FingerprintVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.chain.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if !self.allowed.contains(&fingerprint(end_entity)) {
            return Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ));
        }
        self.chain
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.chain.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.chain.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.chain.supported_verify_schemes()
    }
}

/// The lab client verifier: `lab_cas` (DER) are the CAs lab certificates must chain to.
fn lab_verifier(
    lab_cas: Vec<CertificateDer<'static>>,
    allowed: HashSet<String>,
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Result<FingerprintVerifier, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for ca in lab_cas {
        roots
            .add(ca)
            .map_err(|e| TlsError::Config(format!("a lab CA certificate is unusable: {e}")))?;
    }
    let chain =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| TlsError::Config(format!("lab CAs: {e}")))?;
    Ok(FingerprintVerifier { allowed, chain })
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

/// The lab endpoint's TLS: our certificate and key, and only allow-listed lab client
/// certificates (SHA-256 fingerprints, hex, any case, colons allowed) that chain to a CA of the
/// lab CA bundle (PEM), are valid at the handshake and are meant for client authentication. The
/// three files are read again on [`Reload::reload`]; the allow-list is configuration.
#[derive(Debug, Clone)]
pub struct LabTls {
    watched: Arc<Watched<Lab>>,
}

struct Lab {
    certified: Arc<CertifiedKey>,
    verifier: Arc<dyn ClientCertVerifier>,
    expiries: Vec<(&'static str, i64)>,
}

impl ServerSide for Lab {
    fn certified(&self) -> &Arc<CertifiedKey> {
        &self.certified
    }
    fn client_verifier(&self) -> &Arc<dyn ClientCertVerifier> {
        &self.verifier
    }
}

impl LabTls {
    /// Reads and checks the files and the allow-list; an error names the file at fault, or says
    /// the allow-list or a lab CA is unusable.
    pub fn load(
        cert: &Path,
        key: &Path,
        lab_cas: &Path,
        allowed_fingerprints: &[String],
    ) -> Result<Self, TlsError> {
        let allowed = allow_list(allowed_fingerprints)?;
        let build = move |files: &[Read<'_>]| -> Result<Lab, TlsError> {
            let [cert, key, cas] = files else {
                return Err(TlsError::Config("three files expected".into()));
            };
            let provider = provider();
            let chain = cert.certs()?;
            let lab_cas = cas.certs()?;
            let mut expiries = Vec::new();
            if let Some(t) = not_after(&chain[0]) {
                expiries.push(("lab_server", t));
            }
            if let Some(t) = latest_not_after(&lab_cas) {
                expiries.push(("lab_ca", t));
            }
            let certified = Arc::new(key.certified_key(chain, &provider)?);
            let verifier = Arc::new(lab_verifier(lab_cas, allowed.clone(), provider)?);
            Ok(Lab {
                certified,
                verifier,
                expiries,
            })
        };
        let watched = Watched::load(
            vec![cert.to_owned(), key.to_owned(), lab_cas.to_owned()],
            Box::new(build),
        )?;
        Ok(Self {
            watched: Arc::new(watched),
        })
    }

    /// The HTTPS server configuration (HTTP/2 and HTTP/1.1).
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        server_config(&self.watched, &[b"h2", b"http/1.1"])
    }
}

impl Reload for LabTls {
    fn reload(&self) -> Result<bool, TlsError> {
        self.watched.reload()
    }

    fn expiries(&self) -> Vec<(&'static str, i64)> {
        self.watched.current().expiries.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DevPki;
    use crate::pem::read_certs;

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
        LabTls::load(
            &pki.cert("test-result"),
            &pki.key("test-result"),
            &pki.ca(),
            &[with_colons],
        )
        .unwrap();
        assert!(
            LabTls::load(
                &pki.cert("test-result"),
                &pki.key("test-result"),
                &pki.ca(),
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
        let verifier = lab_verifier(
            read_certs(&pki.ca()).unwrap(),
            allow_list(&[fingerprint(&lab)]).unwrap(),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .unwrap();
        let now = UnixTime::now();
        assert!(verifier.verify_client_cert(&lab, &[], now).is_ok());
        assert!(verifier.verify_client_cert(&other, &[], now).is_err());
    }

    /// A lab CA and certificates it issues with the given validity and usages.
    struct LabCa {
        ca: CertificateDer<'static>,
        issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    }

    impl LabCa {
        fn new() -> Self {
            let key = rcgen::KeyPair::generate().unwrap();
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            params.key_usages = vec![
                rcgen::KeyUsagePurpose::KeyCertSign,
                rcgen::KeyUsagePurpose::DigitalSignature,
            ];
            let ca = params.self_signed(&key).unwrap().der().clone();
            Self {
                ca,
                issuer: rcgen::Issuer::new(params, key),
            }
        }

        fn issue(
            &self,
            not_before: i64,
            not_after: i64,
            usage: rcgen::ExtendedKeyUsagePurpose,
        ) -> CertificateDer<'static> {
            let key = rcgen::KeyPair::generate().unwrap();
            let mut params = rcgen::CertificateParams::new(vec!["lab.example".to_owned()]).unwrap();
            params.not_before = rcgen::date_time_ymd(2026, 1, 1) + time_offset(not_before);
            params.not_after = rcgen::date_time_ymd(2026, 1, 1) + time_offset(not_after);
            params.extended_key_usages = vec![usage];
            params.signed_by(&key, &self.issuer).unwrap().der().clone()
        }
    }

    fn time_offset(days: i64) -> std::time::Duration {
        std::time::Duration::from_secs(u64::try_from(days).unwrap() * 86_400)
    }

    #[test]
    fn an_allow_listed_lab_certificate_must_chain_be_valid_now_and_be_for_clients() {
        let ca = LabCa::new();
        let client = rcgen::ExtendedKeyUsagePurpose::ClientAuth;
        let valid = ca.issue(0, 400, client.clone());
        let expired = ca.issue(0, 30, client.clone());
        let not_yet = ca.issue(300, 400, client.clone());
        let server_only = ca.issue(0, 400, rcgen::ExtendedKeyUsagePurpose::ServerAuth);
        let stranger = LabCa::new().issue(0, 400, client);
        let all = [&valid, &expired, &not_yet, &server_only, &stranger];
        let verifier = lab_verifier(
            vec![ca.ca.clone()],
            allow_list(&all.map(|c| fingerprint(c))).unwrap(),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .unwrap();
        // 2026-03-02: 60 days after the start of the year.
        let now = UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_772_409_600));
        assert!(verifier.verify_client_cert(&valid, &[], now).is_ok());
        for (what, cert) in [
            ("expired", &expired),
            ("not yet valid", &not_yet),
            ("for servers only", &server_only),
            ("from another CA", &stranger),
        ] {
            assert!(
                verifier.verify_client_cert(cert, &[], now).is_err(),
                "{what}"
            );
        }
    }
}
