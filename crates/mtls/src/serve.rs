//! The proxy's accept loop: HTTP/1.1 and HTTP/2 on hyper, over TLS or in the clear.

use hyper::body::{Body, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Time a client has to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after a failed `accept` (e.g. out of file descriptors) before the next.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// Connections served at once unless [`HttpServer::max_connections`] says otherwise; past it, new
/// connections wait in the listen backlog until one ends (so many idle or slow clients cannot
/// exhaust file descriptors and memory).
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// Serves the connections accepted on a listener until a token is cancelled; connections still
/// open then finish their requests gracefully, and serving returns once they have. A failed TLS
/// handshake (e.g. a certificate that is not allow-listed) closes that connection only.
#[derive(Clone, Default)]
pub struct HttpServer {
    tls: Option<tokio_rustls::TlsAcceptor>,
    header_read_timeout: Option<Duration>,
    max_connections: Option<usize>,
}

impl std::fmt::Debug for HttpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpServer")
            .field("tls", &self.tls.is_some())
            .field("header_read_timeout", &self.header_read_timeout)
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

impl HttpServer {
    /// In the clear (behind a TLS-terminating ingress).
    pub fn plain() -> Self {
        Self::default()
    }

    /// Over TLS with `config` (which decides whether and which client certificates are required).
    pub fn tls(config: Arc<rustls::ServerConfig>) -> Self {
        Self {
            tls: Some(tokio_rustls::TlsAcceptor::from(config)),
            header_read_timeout: None,
            max_connections: None,
        }
    }

    /// Closes an HTTP/1 connection whose request headers take longer than `timeout` to arrive
    /// (by default there is no limit).
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = Some(timeout);
        self
    }

    /// Serves at most `n` connections at once (default [`DEFAULT_MAX_CONNECTIONS`]); the next is
    /// accepted when one ends.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = Some(n.max(1));
        self
    }

    /// Serves `make_service(peer address)` on each accepted connection.
    pub async fn serve<M, S, B>(
        self,
        listener: TcpListener,
        mut make_service: M,
        token: CancellationToken,
    ) -> std::io::Result<()>
    where
        M: FnMut(SocketAddr) -> S,
        S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let connections = TaskTracker::new();
        let permits = Arc::new(tokio::sync::Semaphore::new(
            self.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS),
        ));
        loop {
            let permit = tokio::select! {
                permit = permits.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
                () = token.cancelled() => break,
            };
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        continue;
                    }
                },
                () = token.cancelled() => break,
            };
            let _ = stream.set_nodelay(true);
            let service = make_service(peer);
            let connection = self.clone().connection(stream, service, token.clone());
            connections.spawn(async move {
                connection.await;
                drop(permit);
            });
        }
        connections.close();
        connections.wait().await;
        Ok(())
    }

    /// One connection: the TLS handshake (if any), then HTTP until it ends or the token is
    /// cancelled.
    async fn connection<S, B>(self, stream: TcpStream, service: S, token: CancellationToken)
    where
        S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let Some(acceptor) = &self.tls else {
            return self.http(stream, service, token).await;
        };
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => self.http(tls, service, token).await,
            Ok(Err(e)) => tracing::info!(error = %e, "TLS handshake refused"),
            Err(_) => {}
        }
    }

    async fn http<I, S, B>(&self, io: I, service: S, token: CancellationToken)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        if let Some(timeout) = self.header_read_timeout {
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(timeout);
        }
        let conn = builder.serve_connection(TokioIo::new(io), service);
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
    }
}

/// The TLS connections made on `listener` with `config`, handshake done, until `token` is
/// cancelled (then the receiver ends). Each handshake runs apart, within
/// the handshake timeout (10 s), so a slow or refused client holds up nobody; a refused handshake (a
/// certificate from another CA, an expired one) closes that connection only. For servers that
/// take a stream of connections (tonic's `serve_with_incoming`).
pub fn tls_connections(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    token: CancellationToken,
) -> tokio::sync::mpsc::Receiver<tokio_rustls::server::TlsStream<TcpStream>> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        continue;
                    }
                },
                () = token.cancelled() => break,
                () = tx.closed() => break,
            };
            let _ = stream.set_nodelay(true);
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => {
                        let _ = tx.send(tls).await;
                    }
                    Ok(Err(e)) => tracing::info!(error = %e, "TLS handshake refused"),
                    Err(_) => {}
                }
            });
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DevPki;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(mut stream: impl AsyncRead + AsyncWrite + Unpin) -> String {
        stream
            .write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        answer
    }

    /// Serves `hello` on every connection accepted on `listener` until `token` is cancelled.
    async fn hello(
        server: HttpServer,
        listener: TcpListener,
        token: CancellationToken,
    ) -> std::io::Result<()> {
        let hello = |_peer| {
            hyper::service::service_fn(|_request| async {
                Ok::<_, std::convert::Infallible>(Response::new(http_body_util::Full::new(
                    hyper::body::Bytes::from_static(b"hello"),
                )))
            })
        };
        server.serve(listener, hello, token).await
    }

    #[tokio::test]
    async fn plain_connections_are_served_until_cancelled() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let token = CancellationToken::new();
        let server = tokio::spawn(hello(
            HttpServer::plain().header_read_timeout(Duration::from_secs(1)),
            listener,
            token.clone(),
        ));
        let answer = get(TcpStream::connect(addr).await.unwrap()).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("hello"), "{answer}");
        token.cancel();
        server.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn connections_past_the_limit_wait_until_one_ends() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let token = CancellationToken::new();
        let server = tokio::spawn(hello(
            HttpServer::plain().max_connections(1),
            listener,
            token.clone(),
        ));
        // An idle client holds the only place.
        let idle = TcpStream::connect(addr).await.unwrap();
        let waiting = tokio::spawn(get(TcpStream::connect(addr).await.unwrap()));
        // Served at once without the limit; with it, not while the idle client stays.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !waiting.is_finished(),
            "a connection past the limit was served"
        );
        drop(idle);
        assert!(waiting.await.unwrap().ends_with("hello"));
        token.cancel();
        server.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn tls_requires_a_client_certificate_from_the_ca() {
        let dir = tempfile::tempdir().unwrap();
        let pki = DevPki::ensure(dir.path(), &["server", "client"]).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let token = CancellationToken::new();
        let config = pki.files("server").unwrap().https_server().unwrap();
        let server = tokio::spawn(hello(HttpServer::tls(config), listener, token.clone()));
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();

        let mut client = pki.files("client").unwrap().https_client().unwrap();
        client.alpn_protocols = vec![b"http/1.1".to_vec()];
        let tls = tokio_rustls::TlsConnector::from(Arc::new(client))
            .connect(name.clone(), TcpStream::connect(addr).await.unwrap())
            .await
            .unwrap();
        assert!(get(tls).await.ends_with("hello"));

        // Without a client certificate the handshake fails; the server keeps serving.
        let mut roots = rustls::RootCertStore::empty();
        for ca in crate::pem::read_certs(&pki.ca()).unwrap() {
            roots.add(ca).unwrap();
        }
        let anonymous = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let refused = async {
            let mut tls = tokio_rustls::TlsConnector::from(Arc::new(anonymous))
                .connect(name, TcpStream::connect(addr).await?)
                .await?;
            tls.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await?;
            let mut answer = Vec::new();
            tls.read_to_end(&mut answer).await?;
            Ok::<_, std::io::Error>(answer)
        };
        assert!(refused.await.is_err());

        token.cancel();
        server.await.unwrap().unwrap();
    }
}
