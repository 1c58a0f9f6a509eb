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

/// Serves an axum router on a bound listener until the token is cancelled.
pub async fn serve_http(
    task: &'static str,
    listener: tokio::net::TcpListener,
    router: axum::Router,
    token: CancellationToken,
) -> Result<(), ServeError> {
    axum::serve(listener, router)
        .with_graceful_shutdown(token.cancelled_owned())
        .await
        .map_err(|e| ServeError::new(task, e))
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

    /// Binds `addr` and serves `router` there as the task `what`; records the bound address.
    pub async fn serve_http_on(
        &mut self,
        what: &'static str,
        addr: SocketAddr,
        router: axum::Router,
    ) -> Result<SocketAddr, BindError> {
        let (listener, bound) = self.bind_recorded(what, addr).await?;
        let token = self.token();
        self.spawn(serve_http(what, listener, router, token));
        Ok(bound)
    }

    /// Binds `addr` and serves `router` there over TLS with `tls` as the task `what`; records
    /// the bound address. Failed handshakes close that connection only.
    pub async fn serve_https_on(
        &mut self,
        what: &'static str,
        addr: SocketAddr,
        tls: std::sync::Arc<openwarn_mtls::RustlsServerConfig>,
        router: axum::Router,
    ) -> Result<SocketAddr, BindError> {
        let (listener, bound) = self.bind_recorded(what, addr).await?;
        let token = self.token();
        self.spawn(async move {
            openwarn_mtls::serve_https(listener, tls, router, token)
                .await
                .map_err(|e| ServeError::new(what, e))
        });
        Ok(bound)
    }

    /// Serves the admin endpoints (`/healthz`, `/readyz`, `/metrics`) on `addr`.
    pub async fn serve_admin_on(
        &mut self,
        addr: SocketAddr,
        ready: crate::admin::ReadinessCheck,
    ) -> Result<SocketAddr, BindError> {
        self.serve_http_on("admin", addr, crate::admin::router(ready))
            .await
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

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The layers every internal gRPC server runs with (trace context continuation).
pub type GrpcLayers = tower_layer::Stack<crate::telemetry::GrpcTraceLayer, tower_layer::Identity>;

/// A gRPC server builder with mutual TLS and the standard layers; add services, then pass the
/// router to [`RunningService::serve_grpc_on`].
pub fn grpc_server(
    tls: tonic::transport::ServerTlsConfig,
) -> Result<tonic::transport::Server<GrpcLayers>, tonic::transport::Error> {
    Ok(tonic::transport::Server::builder()
        .tls_config(tls)?
        .layer(crate::telemetry::grpc_trace_layer()))
}

impl RunningService {
    /// Binds `addr` and serves the gRPC router there until the service stops.
    pub async fn serve_grpc_on(
        &mut self,
        addr: SocketAddr,
        router: tonic::transport::server::Router<GrpcLayers>,
    ) -> Result<SocketAddr, BindError> {
        let (listener, bound) = self.bind_recorded("grpc", addr).await?;
        let token = self.token();
        self.spawn(async move {
            router
                .serve_with_incoming_shutdown(
                    tokio_stream::wrappers::TcpListenerStream::new(listener),
                    token.cancelled_owned(),
                )
                .await
                .map_err(|e| ServeError::new("grpc", e))
        });
        Ok(bound)
    }
}
