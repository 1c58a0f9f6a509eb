//! This service's internal PEM files and the TLS configurations built from them.

use crate::TlsError;
use crate::pem::{certs, private_key};
use crate::reload::{
    ClientSide, Read, Reload, ServerSide, Watched, client_config, latest_not_after, not_after,
    provider, server_config,
};
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::ServerName;
use rustls::server::danger::ClientCertVerifier;
use rustls::sign::CertifiedKey;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// This service's internal PEM files — the internal CA bundle, its certificate and its key — and
/// the TLS configurations built from them. The configurations read the files in use at each
/// handshake, so that [`Reload::reload`](crate::Reload::reload) (a new certificate from
/// cert-manager, a second CA during a CA rotation) takes effect for new connections without a
/// restart. Clones share the files.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    watched: Arc<Watched<Internal>>,
}

/// The internal identity and trust, parsed.
struct Internal {
    certified: Arc<CertifiedKey>,
    client_verifier: Arc<dyn ClientCertVerifier>,
    server_verifier: Arc<dyn ServerCertVerifier>,
    expiries: Vec<(&'static str, i64)>,
}

impl Internal {
    fn build(files: &[Read<'_>]) -> Result<Self, TlsError> {
        let [ca, cert, key] = files else {
            return Err(TlsError::Config("three files expected".into()));
        };
        let provider = provider();
        let cas = ca.certs()?;
        let mut roots = rustls::RootCertStore::empty();
        for der in &cas {
            roots.add(der.clone()).map_err(|e| TlsError::Key {
                path: ca.path.to_owned(),
                reason: e.to_string(),
            })?;
        }
        let roots = Arc::new(roots);
        let chain = cert.certs()?;
        let mut expiries = Vec::new();
        if let Some(t) = not_after(&chain[0]) {
            expiries.push(("service", t));
        }
        if let Some(t) = latest_not_after(&cas) {
            expiries.push(("ca", t));
        }
        let certified = Arc::new(key.certified_key(chain, &provider)?);
        let client_verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            roots.clone(),
            provider.clone(),
        )
        .build()
        .map_err(|e| TlsError::Config(e.to_string()))?;
        let server_verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|e| TlsError::Config(e.to_string()))?;
        Ok(Self {
            certified,
            client_verifier,
            server_verifier,
            expiries,
        })
    }
}

impl ServerSide for Internal {
    fn certified(&self) -> &Arc<CertifiedKey> {
        &self.certified
    }
    fn client_verifier(&self) -> &Arc<dyn ClientCertVerifier> {
        &self.client_verifier
    }
}

impl ClientSide for Internal {
    fn certified(&self) -> &Arc<CertifiedKey> {
        &self.certified
    }
    fn server_verifier(&self) -> &Arc<dyn ServerCertVerifier> {
        &self.server_verifier
    }
}

impl TlsFiles {
    /// Reads and checks the three files; an error names the file at fault (including a key that
    /// does not match the certificate).
    pub fn load(ca: &Path, cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let watched = Watched::load(
            vec![ca.to_owned(), cert.to_owned(), key.to_owned()],
            Box::new(Internal::build),
        )?;
        Ok(Self {
            watched: Arc::new(watched),
        })
    }

    /// HTTPS server side for internal callers (the proxy): our certificate, and a client
    /// certificate signed by the internal CA required.
    pub fn https_server(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        server_config(&self.watched, &[b"h2", b"http/1.1"])
    }

    /// gRPC server side: our certificate, a client certificate signed by the internal CA
    /// required, HTTP/2.
    pub fn grpc_server(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        server_config(&self.watched, &[b"h2"])
    }

    /// HTTPS client side towards internal services: trust only the internal CA, present our
    /// certificate.
    pub fn https_client(&self) -> Result<rustls::ClientConfig, TlsError> {
        client_config(&self.watched, &[])
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
    /// several channels (each connects lazily, on the runtime that makes it). `server_name` is
    /// the name in the server's certificate (its service name, e.g. `test-result`).
    pub fn grpc_endpoint(
        &self,
        endpoint: &str,
        server_name: &str,
    ) -> Result<GrpcEndpoint, TlsError> {
        GrpcEndpoint::new(
            endpoint,
            server_name,
            client_config(&self.watched, &[b"h2"])?,
        )
    }
}

impl Reload for TlsFiles {
    fn reload(&self) -> Result<bool, TlsError> {
        self.watched.reload()
    }

    fn expiries(&self) -> Vec<(&'static str, i64)> {
        self.watched.current().expiries.clone()
    }
}

/// An internal gRPC service's address and this service's TLS towards it: each new connection
/// makes its handshake with the files in use then (tonic's own TLS would fix them when the
/// endpoint is made).
#[derive(Clone)]
pub struct GrpcEndpoint {
    endpoint: tonic::transport::Endpoint,
    connector: TlsConnector,
}

impl std::fmt::Debug for GrpcEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcEndpoint")
            .field("uri", self.endpoint.uri())
            .finish_non_exhaustive()
    }
}

impl GrpcEndpoint {
    fn new(url: &str, server_name: &str, config: rustls::ClientConfig) -> Result<Self, TlsError> {
        let bad = |e: &dyn std::fmt::Display| TlsError::Config(format!("endpoint {url:?}: {e}"));
        let uri: http::Uri = url.parse().map_err(|e| bad(&e))?;
        if uri.scheme_str() != Some("https") {
            return Err(bad(
                &"internal gRPC is mutual TLS: the URL must be https://",
            ));
        }
        let authority = uri.authority().ok_or_else(|| bad(&"no host"))?.clone();
        let server_name = ServerName::try_from(server_name.to_owned())
            .map_err(|e| TlsError::Config(format!("server name {server_name:?}: {e}")))?;
        // tonic makes TLS itself for an https:// endpoint; the connector does it here, so the
        // endpoint it is given says http://, and requests still carry the https:// origin.
        let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{authority}"))
            .map_err(|e| bad(&e))?
            .origin(uri)
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(10))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_while_idle(true);
        Ok(Self {
            endpoint,
            connector: TlsConnector {
                tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
                server_name,
            },
        })
    }

    /// A channel that connects on first use and reconnects after failures.
    pub fn connect_lazy(&self) -> tonic::transport::Channel {
        self.endpoint
            .connect_with_connector_lazy(self.connector.clone())
    }
}

/// TCP, then TLS with the files in use, to the endpoint's address.
#[derive(Clone)]
struct TlsConnector {
    tls: tokio_rustls::TlsConnector,
    server_name: ServerName<'static>,
}

type Connecting = std::pin::Pin<
    Box<
        dyn std::future::Future<
                Output = std::io::Result<
                    hyper_util::rt::TokioIo<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>,
                >,
            > + Send,
    >,
>;

impl tower_service::Service<http::Uri> for TlsConnector {
    type Response = hyper_util::rt::TokioIo<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;
    type Error = std::io::Error;
    type Future = Connecting;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let tls = self.tls.clone();
        let server_name = self.server_name.clone();
        Box::pin(async move {
            let host = uri.host().unwrap_or_default().trim_matches(['[', ']']);
            let port = uri.port_u16().unwrap_or(443);
            let tcp = tokio::net::TcpStream::connect((host, port)).await?;
            tcp.set_nodelay(true)?;
            let stream = tls.connect(server_name, tcp).await?;
            if stream.get_ref().1.alpn_protocol() != Some(b"h2") {
                return Err(std::io::Error::other("the server does not speak HTTP/2"));
            }
            Ok(hyper_util::rt::TokioIo::new(stream))
        })
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

/// Certificates rotated under live configurations: real handshakes over TCP.
#[cfg(test)]
mod rotation_tests {
    use super::*;
    use crate::{DevPki, Reload};
    use rustls::pki_types::CertificateDer;
    use std::time::{Duration, SystemTime};

    fn der(path: &Path) -> CertificateDer<'static> {
        certs(&std::fs::read(path).unwrap()).remove(0)
    }

    /// One handshake: `client` to `server`; the server's certificate the client saw and the
    /// client's the server saw, or the handshake's error (either side).
    async fn handshake(
        server: Arc<rustls::ServerConfig>,
        client: rustls::ClientConfig,
        name: &str,
    ) -> Result<(CertificateDer<'static>, CertificateDer<'static>), String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accept = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let tls = tokio_rustls::TlsAcceptor::from(server)
                .accept(tcp)
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>(tls.get_ref().1.peer_certificates().unwrap()[0].clone())
        });
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let connected = tokio_rustls::TlsConnector::from(Arc::new(client))
            .connect(ServerName::try_from(name.to_owned()).unwrap(), tcp)
            .await
            .map_err(|e| e.to_string());
        let seen_by_server = accept.await.unwrap();
        let tls = connected?;
        let seen_by_client = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
        Ok((seen_by_client, seen_by_server?))
    }

    /// Writes `from`'s files over `to` as cert-manager does: each file replaced whole.
    fn replace(from: &Path, to: &Path) {
        let tmp = to.with_extension("tmp");
        std::fs::copy(from, &tmp).unwrap();
        std::fs::rename(&tmp, to).unwrap();
    }

    #[tokio::test]
    async fn new_handshakes_use_renewed_certificates_on_both_sides() {
        let dir = tempfile::tempdir().unwrap();
        let pki = DevPki::ensure(dir.path(), &["submission", "verification"]).unwrap();
        let server = pki.files("verification").unwrap();
        let client = pki.files("submission").unwrap();
        let (server_config, client_config) = (
            server.https_server().unwrap(),
            client.https_client().unwrap(),
        );
        let before = handshake(server_config.clone(), client_config.clone(), "verification")
            .await
            .unwrap();
        assert_eq!(before.0, der(&pki.cert("verification")));
        assert_eq!(before.1, der(&pki.cert("submission")));
        assert!(!server.reload().unwrap(), "unchanged files");

        // Renewals from the same CA, written in place; the configurations are not rebuilt.
        let now = SystemTime::now();
        let year = Duration::from_secs(365 * 86_400);
        for name in ["verification", "submission"] {
            pki.issue(name, &format!("{name}-new"), now - year, now + year)
                .unwrap();
            replace(&pki.cert(&format!("{name}-new")), &pki.cert(name));
            replace(&pki.key(&format!("{name}-new")), &pki.key(name));
        }
        assert!(server.reload().unwrap());
        assert!(client.reload().unwrap());
        let after = handshake(server_config, client_config, "verification")
            .await
            .unwrap();
        assert_eq!(after.0, der(&pki.cert("verification-new")));
        assert_eq!(after.1, der(&pki.cert("submission-new")));
        assert_ne!(after.0, before.0);
        let expiry = server.expiries();
        assert!(
            expiry.iter().any(|(role, t)| *role == "service"
                && (*t
                    - i64::try_from(
                        (now + year)
                            .duration_since(SystemTime::UNIX_EPOCH)
                            .unwrap()
                            .as_secs()
                    )
                    .unwrap())
                .abs()
                    < 2),
            "{expiry:?}"
        );
    }

    #[tokio::test]
    async fn a_certificate_written_before_its_key_is_refused_and_the_previous_one_kept() {
        let dir = tempfile::tempdir().unwrap();
        let pki = DevPki::ensure(dir.path(), &["submission", "verification"]).unwrap();
        let server = pki.files("verification").unwrap();
        let config = server.https_server().unwrap();
        let now = SystemTime::now();
        let day = Duration::from_secs(86_400);
        pki.issue("verification", "renewed", now - day, now + day)
            .unwrap();
        replace(&pki.cert("renewed"), &pki.cert("verification"));
        let err = server.reload().unwrap_err();
        assert_eq!(err.path(), Some(pki.key("verification").as_path()), "{err}");
        let client = pki.files("submission").unwrap().https_client().unwrap();
        let (served, _) = handshake(config.clone(), client.clone(), "verification")
            .await
            .unwrap();
        assert_ne!(
            served,
            der(&pki.cert("renewed")),
            "the old pair stays in use"
        );
        // The key arrives: the next reload takes both.
        replace(&pki.key("renewed"), &pki.key("verification"));
        assert!(server.reload().unwrap());
        let (served, _) = handshake(config, client, "verification").await.unwrap();
        assert_eq!(served, der(&pki.cert("renewed")));
    }

    #[tokio::test]
    async fn a_ca_rotation_trusts_both_cas_during_the_overlap_then_only_the_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let old = DevPki::ensure(&dir.path().join("old"), &["submission", "verification"]).unwrap();
        let new = DevPki::ensure(&dir.path().join("new"), &["submission", "verification"]).unwrap();
        let server = old.files("verification").unwrap();
        let config = server.https_server().unwrap();
        let old_client = old.files("submission").unwrap().https_client().unwrap();
        let new_client = || {
            // The new client trusts both CAs too (its bundle is the same overlap bundle).
            let bundle = dir.path().join("bundle.pem");
            TlsFiles::load(&bundle, &new.cert("submission"), &new.key("submission"))
                .unwrap()
                .https_client()
                .unwrap()
        };
        assert!(
            handshake(config.clone(), old_client.clone(), "verification")
                .await
                .is_ok()
        );

        // Overlap: the bundle holds both CAs, the server still presents its old certificate.
        let mut bundle = std::fs::read(old.ca()).unwrap();
        bundle.extend(std::fs::read(new.ca()).unwrap());
        std::fs::write(dir.path().join("bundle.pem"), &bundle).unwrap();
        replace(&dir.path().join("bundle.pem"), &old.ca());
        std::fs::write(dir.path().join("bundle.pem"), &bundle).unwrap();
        assert!(server.reload().unwrap());
        assert!(
            handshake(config.clone(), old_client.clone(), "verification")
                .await
                .is_ok()
        );
        assert!(
            handshake(config.clone(), new_client(), "verification")
                .await
                .is_ok()
        );

        // The old CA leaves the bundle, the server takes a certificate of the new CA: a client
        // certificate of the old CA is refused from the next handshake on.
        replace(&new.ca(), &old.ca());
        replace(&new.cert("verification"), &old.cert("verification"));
        replace(&new.key("verification"), &old.key("verification"));
        assert!(server.reload().unwrap());
        let refused = handshake(config.clone(), old_client, "verification").await;
        assert!(refused.is_err(), "{refused:?}");
        let (served, _) = handshake(config, new_client(), "verification")
            .await
            .unwrap();
        assert_eq!(served, der(&new.cert("verification")));
    }

    #[tokio::test]
    async fn grpc_endpoints_connect_with_the_files_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let pki = DevPki::ensure(dir.path(), &["submission", "verification"]).unwrap();
        let client = pki.files("submission").unwrap();
        let server = pki.files("verification").unwrap().grpc_server().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let token = tokio_util::sync::CancellationToken::new();
        let mut connections = crate::tls_connections(listener, server, token.clone());
        let endpoint = client
            .grpc_endpoint(&format!("https://{addr}"), "verification")
            .unwrap();
        let mut connector = endpoint.connector.clone();
        let now = SystemTime::now();
        let day = Duration::from_secs(86_400);
        for round in 0..2 {
            if round == 1 {
                pki.issue("submission", "renewed", now - day, now + day)
                    .unwrap();
                replace(&pki.cert("renewed"), &pki.cert("submission"));
                replace(&pki.key("renewed"), &pki.key("submission"));
                assert!(client.reload().unwrap());
            }
            let io = tower_service::Service::call(
                &mut connector,
                format!("http://{addr}").parse().unwrap(),
            )
            .await
            .unwrap();
            let accepted = connections.recv().await.unwrap();
            let presented = accepted.get_ref().1.peer_certificates().unwrap()[0].clone();
            assert_eq!(presented, der(&pki.cert("submission")), "round {round}");
            drop(io);
        }
        token.cancel();
    }

    #[test]
    fn endpoints_must_be_https() {
        let dir = tempfile::tempdir().unwrap();
        let pki = DevPki::ensure(dir.path(), &["submission"]).unwrap();
        let files = pki.files("submission").unwrap();
        let err = files
            .grpc_endpoint("http://127.0.0.1:1", "verification")
            .unwrap_err();
        assert!(err.to_string().contains("https://"), "{err}");
        assert!(files.grpc_endpoint("https://", "verification").is_err());
    }
}
