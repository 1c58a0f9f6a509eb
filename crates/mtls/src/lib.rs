//! Mutual TLS for OpenWarn.
//!
//! - Internal gRPC is mutual TLS in every mode: [`TlsFiles::grpc_server`] requires a client
//!   certificate signed by the internal CA; [`TlsFiles::grpc_channel`] presents this service's own.
//! - Labs reach test-result over HTTPS with client certificates allow-listed by SHA-256
//!   fingerprint: [`lab_server_config`] and [`serve_https`].
//! - [`DevPki`] generates a CA and one certificate per service (rcgen), so that a local run uses the
//!   same code path as production.

pub use rustls::ServerConfig as RustlsServerConfig;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} holds no usable {what}")]
    Pem { path: PathBuf, what: &'static str },
    #[error("TLS configuration: {0}")]
    Config(String),
    #[error("generating certificates: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl TlsError {
    /// The file at fault, if the error is about one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Self::Read { path, .. } | Self::Pem { path, .. } | Self::Write { path, .. } => {
                Some(path)
            }
            Self::Config(_) | Self::Generate(_) => None,
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// This service's PEM files: the internal CA, its certificate and its key.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    ca: Vec<u8>,
    cert: Vec<u8>,
    key: Vec<u8>,
}

impl TlsFiles {
    pub fn load(ca: &Path, cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let files = Self {
            ca: read(ca)?,
            cert: read(cert)?,
            key: read(key)?,
        };
        // Parse now so that a wrong file is reported at start-up, naming the file.
        if parse_certs(&files.ca).is_empty() {
            return Err(TlsError::Pem {
                path: ca.to_owned(),
                what: "certificate",
            });
        }
        if parse_certs(&files.cert).is_empty() {
            return Err(TlsError::Pem {
                path: cert.to_owned(),
                what: "certificate",
            });
        }
        if parse_key(&files.key).is_none() {
            return Err(TlsError::Pem {
                path: key.to_owned(),
                what: "private key",
            });
        }
        Ok(files)
    }

    /// Loads the files the shared TLS settings name; an error names the setting at fault.
    pub fn from_args(
        args: &openwarn_bootstrap::config::TlsArgs,
    ) -> Result<Self, openwarn_bootstrap::config::ConfigError> {
        let (ca, cert, key) = args.paths()?;
        Self::load(ca, cert, key).map_err(|e| {
            let setting = match e.path() {
                Some(p) if p == ca => "OPENWARN_TLS_CA",
                Some(p) if p == cert => "OPENWARN_TLS_CERT",
                _ => "OPENWARN_TLS_KEY",
            };
            openwarn_bootstrap::config::ConfigError::new(setting, e.to_string())
        })
    }

    /// HTTPS server side for internal callers (the proxy): our certificate, and a client
    /// certificate signed by the internal CA required.
    pub fn https_server(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for ca in parse_certs(&self.ca) {
            roots.add(ca).map_err(|e| TlsError::Config(e.to_string()))?;
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .map_err(|e| TlsError::Config(e.to_string()))?;
        let key = parse_key(&self.key).ok_or_else(|| TlsError::Config("no private key".into()))?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(parse_certs(&self.cert), key)
            .map_err(|e| TlsError::Config(e.to_string()))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// HTTPS client side towards internal services: trust only the internal CA, present our
    /// certificate.
    pub fn https_client(&self) -> Result<rustls::ClientConfig, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for ca in parse_certs(&self.ca) {
            roots.add(ca).map_err(|e| TlsError::Config(e.to_string()))?;
        }
        let key = parse_key(&self.key).ok_or_else(|| TlsError::Config("no private key".into()))?;
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_root_certificates(roots)
            .with_client_auth_cert(parse_certs(&self.cert), key)
            .map_err(|e| TlsError::Config(e.to_string()))
    }

    /// gRPC server side: present our certificate, require a client certificate from the CA.
    pub fn grpc_server(&self) -> tonic::transport::ServerTlsConfig {
        tonic::transport::ServerTlsConfig::new()
            .identity(tonic::transport::Identity::from_pem(&self.cert, &self.key))
            .client_ca_root(tonic::transport::Certificate::from_pem(&self.ca))
            .client_auth_optional(false)
    }

    /// gRPC client side: trust only the CA, present our certificate. `server_name` is the name in
    /// the server's certificate (its service name, e.g. `test-result`).
    pub fn grpc_client(&self, server_name: &str) -> tonic::transport::ClientTlsConfig {
        tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(&self.ca))
            .identity(tonic::transport::Identity::from_pem(&self.cert, &self.key))
            .domain_name(server_name)
    }

    /// A lazily connected, reconnecting channel to an internal gRPC service. Calls fail with
    /// `UNAVAILABLE` while the service is down; the caller answers 503.
    pub fn grpc_channel(
        &self,
        endpoint: &str,
        server_name: &str,
    ) -> Result<tonic::transport::Channel, TlsError> {
        let endpoint = tonic::transport::Endpoint::from_shared(endpoint.to_owned())
            .map_err(|e| TlsError::Config(format!("endpoint {endpoint:?}: {e}")))?
            .tls_config(self.grpc_client(server_name))
            .map_err(|e| TlsError::Config(e.to_string()))?
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(10))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_while_idle(true);
        Ok(endpoint.connect_lazy())
    }
}

fn parse_certs(pem: &[u8]) -> Vec<CertificateDer<'static>> {
    rustls_pemfile::certs(&mut &pem[..])
        .filter_map(Result::ok)
        .collect()
}

fn parse_key(pem: &[u8]) -> Option<PrivateKeyDer<'static>> {
    rustls_pemfile::private_key(&mut &pem[..]).ok().flatten()
}

/// Lowercase hex SHA-256 of a DER certificate: how labs are allow-listed.
pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// Lowercase hex SHA-256 fingerprint of the first certificate in a PEM file.
pub fn fingerprint_of_pem(path: &Path) -> Result<String, TlsError> {
    let pem = read(path)?;
    parse_certs(&pem)
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

/// HTTPS server configuration for the lab endpoint: our certificate, and only allow-listed lab
/// client certificates (SHA-256 fingerprints, hex, any case, colons allowed).
pub fn lab_server_config(
    cert: &Path,
    key: &Path,
    allowed_fingerprints: &[String],
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let certs = parse_certs(&read(cert)?);
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: cert.to_owned(),
            what: "certificate",
        });
    }
    let key_der = parse_key(&read(key)?).ok_or_else(|| TlsError::Pem {
        path: key.to_owned(),
        what: "private key",
    })?;
    let allowed = allowed_fingerprints
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

/// Serves an axum router over TLS until the token is cancelled. Handshake failures (e.g. a
/// certificate that is not allow-listed) close that connection only.
pub async fn serve_https(
    listener: tokio::net::TcpListener,
    config: Arc<rustls::ServerConfig>,
    router: axum::Router,
    token: CancellationToken,
) -> std::io::Result<()> {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let connections = tokio_util::task::TaskTracker::new();
    loop {
        let (stream, _peer): (tokio::net::TcpStream, SocketAddr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = token.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let router = router.clone();
        let token = token.clone();
        connections.spawn(async move {
            let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream))
                .await
            {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::info!(error = %e, "TLS handshake refused");
                    return;
                }
                Err(_) => return,
            };
            let service = hyper_util::service::TowerToHyperService::new(router);
            let builder =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(tls), service);
            tokio::pin!(conn);
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                }
                () = token.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
    connections.close();
    connections.wait().await;
    Ok(())
}

/// A development PKI: one CA and, per name, a certificate valid for that name, `localhost` and
/// `127.0.0.1`, usable as TLS server and as TLS client.
#[derive(Debug, Clone)]
pub struct DevPki {
    dir: PathBuf,
}

impl DevPki {
    /// Uses the PKI in `dir`, generating it (again) when any of `names` lacks a certificate.
    pub fn ensure(dir: &Path, names: &[&str]) -> Result<Self, TlsError> {
        let pki = Self {
            dir: dir.to_owned(),
        };
        let complete = pki.ca().exists()
            && names
                .iter()
                .all(|n| pki.cert(n).exists() && pki.key(n).exists());
        if !complete {
            pki.generate(names)?;
        }
        Ok(pki)
    }

    fn generate(&self, names: &[&str]) -> Result<(), TlsError> {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
            KeyPair, KeyUsagePurpose,
        };
        std::fs::create_dir_all(&self.dir).map_err(|source| TlsError::Write {
            path: self.dir.clone(),
            source,
        })?;
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "OpenWarn development CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key)?;
        self.write(&self.ca(), ca_cert.pem().as_bytes())?;
        let issuer = Issuer::new(ca_params, ca_key);
        for name in names {
            let key = KeyPair::generate()?;
            let mut params = CertificateParams::new(vec![
                (*name).to_owned(),
                "localhost".to_owned(),
                "127.0.0.1".to_owned(),
            ])?;
            params.distinguished_name.push(DnType::CommonName, *name);
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            params.extended_key_usages = vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ];
            let cert = params.signed_by(&key, &issuer)?;
            self.write(&self.cert(name), cert.pem().as_bytes())?;
            self.write(&self.key(name), key.serialize_pem().as_bytes())?;
        }
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
}

/// Binds `addr` and serves `router` over TLS there as the task `what` of `service`.
pub async fn serve_https_on(
    service: &mut openwarn_bootstrap::RunningService,
    what: &'static str,
    addr: SocketAddr,
    config: Arc<rustls::ServerConfig>,
    router: axum::Router,
) -> Result<SocketAddr, openwarn_bootstrap::lifecycle::BindError> {
    use openwarn_bootstrap::lifecycle::{BindError, ServeError, bind};
    let listener = bind(what, addr).await?;
    let bound = listener
        .local_addr()
        .map_err(|source| BindError { what, addr, source })?;
    service.add_addr(what, bound);
    let token = service.token();
    service.spawn(async move {
        serve_https(listener, config, router, token)
            .await
            .map_err(|e| ServeError::new(what, e))
    });
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_pki_generates_loadable_files_once() {
        let dir = tempfile::tempdir().unwrap();
        let pki = DevPki::ensure(dir.path(), &["verification", "test-result"]).unwrap();
        let files = pki.files("verification").unwrap();
        let _ = files.grpc_server();
        let _ = files.grpc_client("test-result");
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

    #[test]
    fn broken_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.pem");
        std::fs::write(&bad, "not pem").unwrap();
        let err = TlsFiles::load(&bad, &bad, &bad).unwrap_err();
        assert!(err.to_string().contains("bad.pem"), "{err}");
        let err = TlsFiles::load(&dir.path().join("missing.pem"), &bad, &bad).unwrap_err();
        assert!(err.to_string().contains("missing.pem"), "{err}");
    }

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
}
