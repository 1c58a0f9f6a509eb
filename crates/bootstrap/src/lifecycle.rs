//! A running service: its tasks (servers, background jobs), the addresses it bound, and one
//! cancellation token that stops them all gracefully.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Why a service task stopped.
#[derive(Debug, thiserror::Error)]
#[error("{task}: {source}")]
pub struct ServeError {
    pub task: &'static str,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl ServeError {
    pub fn new(
        task: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self {
            task,
            source: source.into(),
        }
    }
}

pub struct RunningService {
    name: &'static str,
    addrs: BTreeMap<&'static str, SocketAddr>,
    token: CancellationToken,
    tasks: JoinSet<Result<(), ServeError>>,
}

impl RunningService {
    pub fn new(name: &'static str) -> Self {
        // The metrics recorder before anything can record: the admin port's app (which would
        // install it) is built when its worker starts, and a value recorded before — such as the
        // retention job's first success, right at start — would be lost until the next one.
        let _ = crate::admin::metrics_handle();
        Self {
            name,
            addrs: BTreeMap::new(),
            token: CancellationToken::new(),
            tasks: JoinSet::new(),
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Cancelled when the service stops; every task watches it.
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }

    pub fn add_addr(&mut self, label: &'static str, addr: SocketAddr) {
        self.addrs.insert(label, addr);
    }

    /// The address bound for `label` (`http`, `grpc`, `admin`, …).
    pub fn addr(&self, label: &str) -> SocketAddr {
        *self
            .addrs
            .get(label)
            .unwrap_or_else(|| panic!("{} has no {label} address", self.name))
    }

    pub fn addrs(&self) -> &BTreeMap<&'static str, SocketAddr> {
        &self.addrs
    }

    pub fn spawn<F>(&mut self, task: F)
    where
        F: Future<Output = Result<(), ServeError>> + Send + 'static,
    {
        self.tasks.spawn(task);
    }

    /// Waits until any task ends (or the token is cancelled), then stops the rest.
    pub async fn wait(mut self) -> Result<(), ServeError> {
        let first = tokio::select! {
            joined = self.tasks.join_next() => joined,
            () = self.token.cancelled() => None,
        };
        self.token.cancel();
        let mut result = flatten(first);
        while let Some(joined) = self.tasks.join_next().await {
            if result.is_ok() {
                result = flatten(Some(joined));
            }
        }
        result
    }

    /// Stops every task gracefully and waits for them.
    pub async fn shutdown(self) -> Result<(), ServeError> {
        self.token.cancel();
        self.wait().await
    }

    /// Runs until SIGINT/SIGTERM or until a task fails.
    pub async fn run_until_signal(self) -> Result<(), ServeError> {
        let token = self.token();
        tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("shutdown signal received");
            token.cancel();
        });
        self.wait().await
    }
}

fn flatten(
    joined: Option<Result<Result<(), ServeError>, tokio::task::JoinError>>,
) -> Result<(), ServeError> {
    match joined {
        None | Some(Ok(Ok(()))) => Ok(()),
        Some(Ok(Err(e))) => Err(e),
        Some(Err(e)) => Err(ServeError::new("task", e)),
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failing_task_stops_the_others_and_is_reported() {
        let mut service = RunningService::new("t");
        let token = service.token();
        service.spawn(async move {
            token.cancelled().await;
            Ok(())
        });
        service.spawn(async { Err(ServeError::new("job", std::io::Error::other("boom"))) });
        let err = service.wait().await.unwrap_err();
        assert_eq!(err.to_string(), "job: boom");
    }

    #[tokio::test]
    async fn shutdown_cancels_every_task() {
        let mut service = RunningService::new("t");
        for _ in 0..3 {
            let token = service.token();
            service.spawn(async move {
                token.cancelled().await;
                Ok(())
            });
        }
        service.shutdown().await.unwrap();
    }
}

/// A listener that could not be bound; names the setting's purpose and the address.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr} for {what}: {source}")]
pub struct BindError {
    pub what: &'static str,
    pub addr: SocketAddr,
    #[source]
    pub source: std::io::Error,
}

/// Binds a TCP listener (port 0 picks a free port; the bound address is on the listener).
pub async fn bind(
    what: &'static str,
    addr: SocketAddr,
) -> Result<tokio::net::TcpListener, BindError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| BindError { what, addr, source })
}

impl RunningService {
    /// Binds `addr` for the task `what` and records the bound address under that label.
    pub async fn listen(
        &mut self,
        what: &'static str,
        addr: SocketAddr,
    ) -> Result<tokio::net::TcpListener, BindError> {
        Ok(self.bind_recorded(what, addr).await?.0)
    }

    async fn bind_recorded(
        &mut self,
        what: &'static str,
        addr: SocketAddr,
    ) -> Result<(tokio::net::TcpListener, SocketAddr), BindError> {
        let listener = bind(what, addr).await?;
        let bound = listener
            .local_addr()
            .map_err(|source| BindError { what, addr, source })?;
        self.add_addr(what, bound);
        Ok((listener, bound))
    }

    /// Binds `addr` and serves `routes` there in the clear as the task `what` (requests counted
    /// in metrics by route); records the bound address.
    pub async fn serve_http_on(
        &mut self,
        what: &'static str,
        addr: SocketAddr,
        routes: Routes,
    ) -> Result<SocketAddr, BindError> {
        self.serve_web(what, addr, WebPort::api(routes)).await
    }

    /// Binds `addr` and serves `routes` there over TLS with `tls` as the task `what`; records
    /// the bound address. A failed handshake (e.g. a client certificate that is not accepted)
    /// closes that connection only; the client's certificate reaches handlers as
    /// [`PeerCertificate`] connection data.
    pub async fn serve_https_on(
        &mut self,
        what: &'static str,
        addr: SocketAddr,
        tls: std::sync::Arc<openwarn_mtls::RustlsServerConfig>,
        routes: Routes,
    ) -> Result<SocketAddr, BindError> {
        let mut port = WebPort::api(routes);
        port.tls = Some(tls);
        self.serve_web(what, addr, port).await
    }

    /// Like [`Self::serve_https_on`] for a port only internal services call (mutual TLS with the
    /// internal CA): each request's span continues the caller's trace (`traceparent`), where an
    /// internet-facing port starts a new one.
    pub async fn serve_internal_https_on(
        &mut self,
        what: &'static str,
        addr: SocketAddr,
        tls: std::sync::Arc<openwarn_mtls::RustlsServerConfig>,
        routes: Routes,
    ) -> Result<SocketAddr, BindError> {
        let mut port = WebPort::api(routes);
        port.tls = Some(tls);
        port.origin = crate::telemetry::TraceOrigin::Continue;
        self.serve_web(what, addr, port).await
    }

    /// Serves the admin endpoints (`/healthz`, `/readyz`, `/metrics`, and what `admin` adds) on
    /// `addr`.
    pub async fn serve_admin_on(
        &mut self,
        addr: SocketAddr,
        admin: crate::admin::Admin,
    ) -> Result<SocketAddr, BindError> {
        let routes = Routes::new(move |config| admin.configure(config));
        let port = WebPort {
            routes,
            tls: None,
            tracked: false,
            origin: crate::telemetry::TraceOrigin::New,
            workers: 1,
        };
        self.serve_web("admin", addr, port).await
    }

    async fn serve_web(
        &mut self,
        what: &'static str,
        addr: SocketAddr,
        port: WebPort,
    ) -> Result<SocketAddr, BindError> {
        let (listener, bound) = self.bind_recorded(what, addr).await?;
        let server = port
            .server(listener, self.token())
            .map_err(|source| BindError { what, addr, source })?;
        self.spawn(async move { server.await.map_err(|e| ServeError::new(what, e)) });
        Ok(bound)
    }
    /// Runs `job` every `every` (first run right away) until the service stops.
    pub fn spawn_periodic<F, Fut>(&mut self, every: std::time::Duration, mut job: F)
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send,
    {
        let token = self.token();
        self.spawn(async move {
            let mut ticker = tokio::time::interval(every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticker.tick() => job().await,
                    () = token.cancelled() => return Ok(()),
                }
            }
        });
    }
}

/// Records that this service's retention job just completed
/// (`openwarn_retention_last_success_timestamp_seconds`, for the alert on a job that stopped).
pub fn retention_succeeded() {
    #[allow(
        clippy::cast_precision_loss,
        reason = "Unix seconds fit an f64 exactly"
    )]
    metrics::gauge!("openwarn_retention_last_success_timestamp_seconds").set(unix_now() as f64);
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The layers every internal gRPC server runs with: metrics by method and status code, trace
/// context continuation, then the named callers' check.
pub type GrpcLayers = tower_layer::Stack<
    crate::callers::CallerLayer,
    tower_layer::Stack<
        crate::telemetry::GrpcTraceLayer,
        tower_layer::Stack<crate::grpc_metrics::GrpcMetricsLayer, tower_layer::Identity>,
    >,
>;

/// A gRPC server builder with the standard layers, answering each method only for the callers
/// `openwarn_protocol::callers::CALLERS` names; add services, then pass the router to
/// [`RunningService::serve_grpc_on`] with the mutual-TLS configuration.
pub fn grpc_server() -> tonic::transport::Server<GrpcLayers> {
    tonic::transport::Server::builder()
        .layer(crate::grpc_metrics::GrpcMetricsLayer::new(
            openwarn_protocol::callers::CALLERS,
        ))
        .layer(crate::telemetry::grpc_trace_layer())
        .layer(crate::callers::CallerLayer::new(
            openwarn_protocol::callers::CALLERS,
            openwarn_protocol::callers::IDENTITIES,
        ))
}

impl RunningService {
    /// Binds `addr` and serves the gRPC router there over TLS with `tls` (from
    /// [`openwarn_mtls::TlsFiles::grpc_server`]: a client certificate from the internal CA
    /// required) until the service stops.
    pub async fn serve_grpc_on(
        &mut self,
        addr: SocketAddr,
        tls: std::sync::Arc<openwarn_mtls::RustlsServerConfig>,
        router: tonic::transport::server::Router<GrpcLayers>,
    ) -> Result<SocketAddr, BindError> {
        let (listener, bound) = self.bind_recorded("grpc", addr).await?;
        let token = self.token();
        let mut connections = openwarn_mtls::tls_connections(listener, tls, token.clone());
        let incoming = futures::stream::poll_fn(move |cx| {
            connections
                .poll_recv(cx)
                .map(|c| c.map(Ok::<_, std::io::Error>))
        });
        self.spawn(async move {
            router
                .serve_with_incoming_shutdown(incoming, token.cancelled_owned())
                .await
                .map_err(|e| ServeError::new("grpc", e))
        });
        Ok(bound)
    }

    /// Reads `files` again every `every` while the service runs, so that renewed certificates
    /// (cert-manager writes them in place) serve new handshakes without a restart. Files that
    /// changed but cannot be used (e.g. a certificate written before its key) are logged and
    /// counted, and the previous ones stay in use until the next attempt. Exports each
    /// certificate's expiry as `openwarn_tls_certificate_expiry_timestamp_seconds{certificate}`.
    pub fn watch_tls(
        &mut self,
        files: Vec<std::sync::Arc<dyn openwarn_mtls::Reload>>,
        every: std::time::Duration,
    ) {
        let report = |files: &[std::sync::Arc<dyn openwarn_mtls::Reload>]| {
            for f in files {
                for (certificate, not_after) in f.expiries() {
                    #[allow(
                        clippy::cast_precision_loss,
                        reason = "Unix seconds fit an f64 exactly"
                    )]
                    metrics::gauge!(
                        "openwarn_tls_certificate_expiry_timestamp_seconds",
                        "certificate" => certificate
                    )
                    .set(not_after as f64);
                }
            }
        };
        report(&files);
        let token = self.token();
        self.spawn(async move {
            let mut ticker = tokio::time::interval(every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker.tick().await;
            loop {
                tokio::select! {
                    _ = ticker.tick() => {}
                    () = token.cancelled() => return Ok(()),
                }
                for f in &files {
                    match f.reload() {
                        Ok(false) => {}
                        Ok(true) => {
                            tracing::info!("TLS files changed; new connections use them");
                            metrics::counter!("openwarn_tls_reloads_total", "result" => "ok")
                                .increment(1);
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "TLS files changed but cannot be used; the previous ones stay in use");
                            metrics::counter!("openwarn_tls_reloads_total", "result" => "refused")
                                .increment(1);
                        }
                    }
                }
                report(&files);
            }
        });
    }
}

/// The routes of one REST port, added to the app of each of its workers (actix-web builds one
/// app per worker thread).
#[derive(Clone)]
pub struct Routes(std::sync::Arc<dyn Fn(&mut actix_web::web::ServiceConfig) + Send + Sync>);

impl Routes {
    pub fn new(
        configure: impl Fn(&mut actix_web::web::ServiceConfig) + Send + Sync + 'static,
    ) -> Self {
        Self(std::sync::Arc::new(configure))
    }

    /// Adds the routes to an app (or a scope).
    pub fn configure(&self, config: &mut actix_web::web::ServiceConfig) {
        (self.0)(config);
    }
}

impl std::fmt::Debug for Routes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Routes")
    }
}

/// The client certificate of a TLS connection (its end-entity certificate, DER), for handlers
/// to read with `HttpRequest::conn_data`.
#[derive(Debug, Clone)]
pub struct PeerCertificate(pub rustls::pki_types::CertificateDer<'static>);

/// Time a client has for the TLS handshake, and for its request head.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Time requests in flight get to finish once the service stops.
const SHUTDOWN_GRACE_SECS: u64 = 10;
/// How long a stopping service lets requests in flight finish, and queued work drain, before it
/// exits (within a pod's termination grace period, 30 s by default).
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(SHUTDOWN_GRACE_SECS);

struct WebPort {
    routes: Routes,
    tls: Option<std::sync::Arc<openwarn_mtls::RustlsServerConfig>>,
    /// Counts requests by route in metrics (`openwarn_http_*`); the admin port is not counted.
    tracked: bool,
    /// Whether requests continue the caller's trace or start new ones.
    origin: crate::telemetry::TraceOrigin,
    workers: usize,
}

impl WebPort {
    fn api(routes: Routes) -> Self {
        Self {
            routes,
            tls: None,
            tracked: true,
            origin: crate::telemetry::TraceOrigin::New,
            workers: std::thread::available_parallelism().map_or(2, usize::from),
        }
    }

    /// An actix-web server on `listener`: `workers` threads, each with its own single-threaded
    /// runtime and its own app, stopping gracefully (requests in flight finish) when `token` is
    /// cancelled. Signals are the process's business, not the server's.
    fn server(
        self,
        listener: tokio::net::TcpListener,
        token: CancellationToken,
    ) -> std::io::Result<actix_web::dev::Server> {
        use actix_web::middleware::{Condition, from_fn};
        use actix_web::{App, ResponseError};
        let routes = self.routes;
        let tracked = self.tracked;
        let internal = self.origin == crate::telemetry::TraceOrigin::Continue;
        let server = actix_web::HttpServer::new(move || {
            let routes = routes.clone();
            App::new()
                .wrap(Condition::new(
                    tracked && internal,
                    from_fn(crate::admin::track_http),
                ))
                .wrap(Condition::new(
                    tracked && !internal,
                    from_fn(crate::admin::track_public_http),
                ))
                // Before the routes: a port that serves by path (distribution's tree) sets its own.
                .default_service(actix_web::web::to(|| async {
                    crate::http::ApiError::not_found().error_response()
                }))
                .configure(move |config| routes.configure(config))
        })
        .workers(self.workers)
        .tcp_nodelay(true)
        .shutdown_signal(token.cancelled_owned())
        .shutdown_timeout(SHUTDOWN_GRACE_SECS)
        .tls_handshake_timeout(HANDSHAKE_TIMEOUT)
        .on_connect(|connection, data| {
            use actix_tls::accept::rustls_0_23::TlsStream;
            if let Some(tls) = connection.downcast_ref::<TlsStream<actix_web::rt::net::TcpStream>>()
                && let Some(cert) = tls.get_ref().1.peer_certificates().and_then(|c| c.first())
            {
                data.insert(PeerCertificate(cert.clone().into_owned()));
            }
        });
        let listener = listener.into_std()?;
        let server = match self.tls {
            Some(tls) => {
                let mut config = std::sync::Arc::unwrap_or_clone(tls);
                // actix-web adds the protocols it speaks (h2, http/1.1) itself.
                config.alpn_protocols.clear();
                server.listen_rustls_0_23(listener, config)?
            }
            None => server.listen(listener)?,
        };
        Ok(server.run())
    }
}
