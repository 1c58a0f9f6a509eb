//! Certificates that change under a running service.
//!
//! cert-manager (or any operator) replaces a service's certificate, key and CA bundle in place
//! before they expire. Every TLS configuration this crate builds reads them through a [`Watched`]
//! set of files: the server's certificate is chosen per handshake ([`ResolvesServerCert`]), and
//! the peer is verified per handshake against the CA bundle in use then ([`ClientCertVerifier`],
//! [`ServerCertVerifier`]). [`Reload::reload`] reads the files again and, when they changed and
//! form a usable whole (the key matches the certificate), swaps them in: established connections
//! keep going, new handshakes use the new files. A half-written rotation (a new certificate with
//! the old key) is refused and the previous files stay in use until the next attempt.

use crate::TlsError;
use crate::pem::{certs, private_key};
use arc_swap::ArcSwap;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Files a service reads again while it runs: its internal certificate, key and CA bundle
/// ([`crate::TlsFiles`]), or the lab endpoint's certificate, key and lab CAs
/// ([`crate::LabTls`]).
pub trait Reload: std::fmt::Debug + Send + Sync {
    /// Reads the files again. `Ok(true)`: they changed and new handshakes use them from now on;
    /// `Ok(false)`: unchanged. An error: they changed but cannot be used (unreadable, no
    /// certificate, a key that does not match the certificate); the previous files stay in use.
    fn reload(&self) -> Result<bool, TlsError>;

    /// When each certificate in use expires (notAfter, Unix seconds), by role: `service`, `ca`,
    /// `lab_server`, `lab_ca`. For a bundle of several CAs (two are trusted while a CA is
    /// rotated), the one that expires last.
    fn expiries(&self) -> Vec<(&'static str, i64)>;
}

/// The notAfter of a DER certificate, in Unix seconds.
pub(crate) fn not_after(der: &[u8]) -> Option<i64> {
    x509_parser::parse_x509_certificate(der)
        .ok()
        .map(|(_, cert)| cert.validity().not_after.timestamp())
}

/// The latest notAfter among `certs`.
pub(crate) fn latest_not_after(certs: &[CertificateDer<'_>]) -> Option<i64> {
    certs.iter().filter_map(|c| not_after(c)).max()
}

/// One file's path and the bytes read from it.
pub(crate) struct Read<'a> {
    pub path: &'a Path,
    pub bytes: &'a [u8],
}

impl Read<'_> {
    pub fn certs(&self) -> Result<Vec<CertificateDer<'static>>, TlsError> {
        let found = certs(self.bytes);
        if found.is_empty() {
            return Err(TlsError::Pem {
                path: self.path.to_owned(),
                what: "certificate",
            });
        }
        Ok(found)
    }

    /// `chain` with this file's key, which must match the chain's first certificate.
    pub fn certified_key(
        &self,
        chain: Vec<CertificateDer<'static>>,
        provider: &rustls::crypto::CryptoProvider,
    ) -> Result<CertifiedKey, TlsError> {
        let key = private_key(self.bytes).ok_or_else(|| TlsError::Pem {
            path: self.path.to_owned(),
            what: "private key",
        })?;
        CertifiedKey::from_der(chain, key, provider).map_err(|e| TlsError::Key {
            path: self.path.to_owned(),
            reason: e.to_string(),
        })
    }
}

type Build<T> = Box<dyn Fn(&[Read<'_>]) -> Result<T, TlsError> + Send + Sync>;

/// A set of files and what was built from them (the current version of `T`).
pub(crate) struct Watched<T> {
    paths: Vec<PathBuf>,
    /// The bytes `current` was built from (compared on each reload).
    read: Mutex<Vec<Vec<u8>>>,
    current: ArcSwap<T>,
    build: Build<T>,
}

impl<T> std::fmt::Debug for Watched<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watched")
            .field("paths", &self.paths)
            .finish_non_exhaustive()
    }
}

fn read_all(paths: &[PathBuf]) -> Result<Vec<Vec<u8>>, TlsError> {
    paths.iter().map(|p| crate::pem::read(p)).collect()
}

fn build_from<T>(build: &Build<T>, paths: &[PathBuf], bytes: &[Vec<u8>]) -> Result<T, TlsError> {
    let reads = paths
        .iter()
        .zip(bytes)
        .map(|(path, bytes)| Read { path, bytes })
        .collect::<Vec<_>>();
    build(&reads)
}

impl<T: Send + Sync> Watched<T> {
    /// Reads `paths` and builds from them; an error names the file at fault.
    pub fn load(paths: Vec<PathBuf>, build: Build<T>) -> Result<Self, TlsError> {
        let bytes = read_all(&paths)?;
        let built = build_from(&build, &paths, &bytes)?;
        Ok(Self {
            paths,
            read: Mutex::new(bytes),
            current: ArcSwap::from_pointee(built),
            build,
        })
    }

    pub fn current(&self) -> Arc<T> {
        self.current.load_full()
    }

    pub fn reload(&self) -> Result<bool, TlsError> {
        let bytes = read_all(&self.paths)?;
        let mut read = self
            .read
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if *read == bytes {
            return Ok(false);
        }
        let built = build_from(&self.build, &self.paths, &bytes)?;
        self.current.store(Arc::new(built));
        *read = bytes;
        Ok(true)
    }
}

/// The files in use at each handshake, for rustls: the server's certificate
/// ([`ResolvesServerCert`](rustls::server::ResolvesServerCert)), the client's
/// ([`ResolvesClientCert`](rustls::client::ResolvesClientCert)), and the verification of the
/// peer's against the CA bundle in use ([`ClientCertVerifier`], [`ServerCertVerifier`]). It sends
/// no CA names to clients (root hints, optional in TLS): a client presents the one certificate it
/// has.
pub(crate) struct Current<T>(pub Arc<Watched<T>>);

impl<T> std::fmt::Debug for Current<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Current").field(&self.0).finish()
    }
}

/// What a TLS server needs per handshake: its certificate and key, and the verifier of client
/// certificates.
pub(crate) trait ServerSide: Send + Sync + 'static {
    fn certified(&self) -> &Arc<CertifiedKey>;
    fn client_verifier(&self) -> &Arc<dyn ClientCertVerifier>;
}

impl<T: ServerSide> rustls::server::ResolvesServerCert for Current<T> {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current().certified().clone())
    }
}

impl<T: ServerSide> ClientCertVerifier for Current<T> {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.0
            .current()
            .client_verifier()
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0
            .current()
            .client_verifier()
            .verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0
            .current()
            .client_verifier()
            .verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0
            .current()
            .client_verifier()
            .supported_verify_schemes()
    }
}

/// A server configuration reading `watched` at each handshake, requiring a client certificate,
/// offering `alpn`. Sessions are never resumed, so that every handshake verifies the client
/// against the CA bundle in use then (internal connections are long-lived; resumption would buy
/// little).
pub(crate) fn server_config<T: ServerSide>(
    watched: &Arc<Watched<T>>,
    alpn: &[&[u8]],
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_client_cert_verifier(Arc::new(Current(watched.clone())))
        .with_cert_resolver(Arc::new(Current(watched.clone())));
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// What a TLS client needs per handshake: its certificate and key, and the verifier of server
/// certificates.
pub(crate) trait ClientSide: Send + Sync + 'static {
    fn certified(&self) -> &Arc<CertifiedKey>;
    fn server_verifier(&self) -> &Arc<dyn ServerCertVerifier>;
}

impl<T: ClientSide> rustls::client::ResolvesClientCert for Current<T> {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current().certified().clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

impl<T: ClientSide> ServerCertVerifier for Current<T> {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.0.current().server_verifier().verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0
            .current()
            .server_verifier()
            .verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0
            .current()
            .server_verifier()
            .verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0
            .current()
            .server_verifier()
            .supported_verify_schemes()
    }
}

/// A client configuration reading `watched` at each handshake, offering `alpn`.
pub(crate) fn client_config<T: ClientSide>(
    watched: &Arc<Watched<T>>,
    alpn: &[&[u8]],
) -> Result<rustls::ClientConfig, TlsError> {
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Current(watched.clone())))
        .with_client_cert_resolver(Arc::new(Current(watched.clone())));
    // New connections after a rotation must present the new certificate: no resumed sessions.
    config.resumption = rustls::client::Resumption::disabled();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}
