//! This service's internal PEM files and the TLS configurations built from them.

use crate::TlsError;
use crate::pem::{certs, private_key, read};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

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
        if certs(&files.ca).is_empty() {
            return Err(TlsError::Pem {
                path: ca.to_owned(),
                what: "certificate",
            });
        }
        if certs(&files.cert).is_empty() {
            return Err(TlsError::Pem {
                path: cert.to_owned(),
                what: "certificate",
            });
        }
        if private_key(&files.key).is_none() {
            return Err(TlsError::Pem {
                path: key.to_owned(),
                what: "private key",
            });
        }
        Ok(files)
    }

    fn roots(&self) -> Result<rustls::RootCertStore, TlsError> {
        let mut roots = rustls::RootCertStore::empty();
        for ca in certs(&self.ca) {
            roots.add(ca).map_err(|e| TlsError::Config(e.to_string()))?;
        }
        Ok(roots)
    }

    fn private_key(&self) -> Result<rustls::pki_types::PrivateKeyDer<'static>, TlsError> {
        private_key(&self.key).ok_or_else(|| TlsError::Config("no private key".into()))
    }

    /// HTTPS server side for internal callers (the proxy): our certificate, and a client
    /// certificate signed by the internal CA required.
    pub fn https_server(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(self.roots()?),
            provider.clone(),
        )
        .build()
        .map_err(|e| TlsError::Config(e.to_string()))?;
        let key = self.private_key()?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs(&self.cert), key)
            .map_err(|e| TlsError::Config(e.to_string()))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// HTTPS client side towards internal services: trust only the internal CA, present our
    /// certificate.
    pub fn https_client(&self) -> Result<rustls::ClientConfig, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = self.roots()?;
        let key = self.private_key()?;
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_root_certificates(roots)
            .with_client_auth_cert(certs(&self.cert), key)
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
        Ok(self.grpc_endpoint(endpoint, server_name)?.connect_lazy())
    }

    /// The endpoint [`grpc_channel`](Self::grpc_channel) connects to, for a caller that makes
    /// several channels (each connects lazily, on the runtime that makes it).
    pub fn grpc_endpoint(
        &self,
        endpoint: &str,
        server_name: &str,
    ) -> Result<tonic::transport::Endpoint, TlsError> {
        let endpoint = tonic::transport::Endpoint::from_shared(endpoint.to_owned())
            .map_err(|e| TlsError::Config(format!("endpoint {endpoint:?}: {e}")))?
            .tls_config(self.grpc_client(server_name))
            .map_err(|e| TlsError::Config(e.to_string()))?
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(10))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_while_idle(true);
        Ok(endpoint)
    }
}

/// The TLS configuration of an HTTP client (reqwest takes it whole, so the process needs no
/// default TLS provider): ring, trusting the certificates in `ca` (PEM; empty: no server, for a
/// client that speaks plain HTTP only), presenting `identity` (PEM certificate chain, PEM key)
/// if given, offering HTTP/1.1.
pub fn http_client_tls(
    ca: &[u8],
    identity: Option<(&[u8], &[u8])>,
) -> Result<rustls::ClientConfig, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs(ca) {
        roots
            .add(cert)
            .map_err(|e| TlsError::Config(e.to_string()))?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| TlsError::Config(e.to_string()))?
    .with_root_certificates(roots);
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let key = private_key(key).ok_or_else(|| TlsError::Config("no private key".into()))?;
            builder
                .with_client_auth_cert(certs(cert), key)
                .map_err(|e| TlsError::Config(e.to_string()))?
        }
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn loaded_files_build_every_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let pki = crate::DevPki::ensure(dir.path(), &["verification"]).unwrap();
        let files = pki.files("verification").unwrap();
        let server = files.https_server().unwrap();
        assert_eq!(
            server.alpn_protocols,
            [b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        files.https_client().unwrap();
    }

    #[test]
    fn http_clients_get_a_ring_configuration_with_or_without_an_identity() {
        let dir = tempfile::tempdir().unwrap();
        let pki = crate::DevPki::ensure(dir.path(), &["lab"]).unwrap();
        let read = |p: std::path::PathBuf| std::fs::read(p).unwrap();
        let (ca, cert, key) = (read(pki.ca()), read(pki.cert("lab")), read(pki.key("lab")));

        let plain = http_client_tls(&[], None).unwrap();
        assert_eq!(plain.alpn_protocols, [b"http/1.1".to_vec()]);
        assert!(!plain.client_auth_cert_resolver.has_certs());
        let lab = http_client_tls(&ca, Some((&cert, &key))).unwrap();
        assert!(lab.client_auth_cert_resolver.has_certs());
        assert!(http_client_tls(&ca, Some((&cert, b"not a key"))).is_err());
    }
}
