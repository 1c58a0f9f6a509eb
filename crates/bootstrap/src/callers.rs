//! Named callers on every internal gRPC port: a call is answered only when the client
//! certificate (already checked against the internal CA by mutual TLS) names a service the
//! table allows for the method; every other call gets `PERMISSION_DENIED` before it reaches the
//! service, is counted (`openwarn_grpc_calls_denied_total{caller, method}`) and logged with the
//! caller's identity and the method — nothing else.
//!
//! The identity is the DNS name in the certificate's subject alternative names, checked with
//! webpki's name matching (the same rule a TLS client applies to a server).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// `(gRPC path, allowed callers)`, as `openwarn_protocol::callers::CALLERS`.
pub type CallerTable = &'static [(&'static str, &'static [&'static str])];

/// The layer for [`crate::lifecycle::grpc_server`].
#[derive(Debug, Clone, Copy)]
pub struct CallerLayer {
    table: CallerTable,
    identities: &'static [&'static str],
}

impl CallerLayer {
    /// `identities`: every name a caller may have (for logs and metrics: a certificate naming
    /// none of them is `unknown`).
    pub fn new(table: CallerTable, identities: &'static [&'static str]) -> Self {
        Self { table, identities }
    }
}

impl<S> tower_layer::Layer<S> for CallerLayer {
    type Service = CallerCheck<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CallerCheck {
            inner,
            layer: *self,
        }
    }
}

/// The service [`CallerLayer`] wraps around a gRPC router.
#[derive(Debug, Clone)]
pub struct CallerCheck<S> {
    inner: S,
    layer: CallerLayer,
}

/// Whether the end-entity certificate `der` names `identity` (a DNS subject alternative name).
pub fn certificate_names(der: &[u8], identity: &str) -> bool {
    let der = rustls::pki_types::CertificateDer::from(der);
    let Ok(cert) = webpki::EndEntityCert::try_from(&der) else {
        return false;
    };
    let Ok(name) = rustls::pki_types::ServerName::try_from(identity) else {
        return false;
    };
    cert.verify_is_valid_for_subject_name(&name).is_ok()
}

impl CallerLayer {
    /// `Ok` when a certificate in `peer` names a caller allowed for `path`; otherwise the
    /// caller's name for the log (`unknown`, `none`) and the method's (`unlisted` for a path
    /// outside the table, so that invented paths add no metric series).
    fn decide(
        &self,
        path: &str,
        peer: Option<&[rustls::pki_types::CertificateDer<'static>]>,
    ) -> Result<(), (&'static str, &'static str)> {
        let leaf = peer.and_then(|certs| certs.first());
        let allowed = self
            .table
            .iter()
            .find(|(p, _)| *p == path)
            .map(|(p, callers)| (*p, *callers));
        if let (Some(leaf), Some((_, callers))) = (leaf, allowed)
            && callers.iter().any(|c| certificate_names(leaf, c))
        {
            return Ok(());
        }
        let caller = match leaf {
            None => "none",
            Some(leaf) => self
                .identities
                .iter()
                .find(|i| certificate_names(leaf, i))
                .copied()
                .unwrap_or("unknown"),
        };
        Err((caller, allowed.map_or("unlisted", |(p, _)| p)))
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> tower_service::Service<http::Request<B>> for CallerCheck<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
        let peer: Option<Arc<Vec<rustls::pki_types::CertificateDer<'static>>>> = request
            .extensions()
            .get::<TlsConnectInfo<TcpConnectInfo>>()
            .and_then(TlsConnectInfo::peer_certs);
        match self
            .layer
            .decide(request.uri().path(), peer.as_deref().map(Vec::as_slice))
        {
            Ok(()) => Box::pin(self.inner.call(request)),
            Err((caller, method)) => {
                metrics::counter!("openwarn_grpc_calls_denied_total", "caller" => caller, "method" => method)
                    .increment(1);
                tracing::warn!(caller, method, "internal call refused: caller not allowed");
                let response = tonic::Status::permission_denied("caller not allowed").into_http();
                Box::pin(async move { Ok(response) })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: CallerTable = &[("/a.A/Call", &["submission"]), ("/a.A/Other", &["portal"])];
    const IDENTITIES: &[&str] = &["submission", "portal", "proxy"];

    #[test]
    fn only_the_named_caller_is_let_through() {
        let dir = tempfile::tempdir().unwrap();
        let pki = openwarn_mtls::DevPki::ensure(dir.path(), &["submission", "portal"]).unwrap();
        let der = |name: &str| {
            use rustls::pki_types::pem::PemObject;
            rustls::pki_types::CertificateDer::from_pem_file(pki.cert(name)).unwrap()
        };
        let layer = CallerLayer::new(TABLE, IDENTITIES);
        let submission = [der("submission")];
        let portal = [der("portal")];
        assert_eq!(layer.decide("/a.A/Call", Some(&submission)), Ok(()));
        assert_eq!(
            layer.decide("/a.A/Call", Some(&portal)),
            Err(("portal", "/a.A/Call"))
        );
        assert_eq!(layer.decide("/a.A/Other", Some(&portal)), Ok(()));
        assert_eq!(
            layer.decide("/a.A/Invented", Some(&submission)),
            Err(("submission", "unlisted"))
        );
        assert_eq!(layer.decide("/a.A/Call", None), Err(("none", "/a.A/Call")));
        assert!(!certificate_names(b"not a certificate", "submission"));
    }
}
