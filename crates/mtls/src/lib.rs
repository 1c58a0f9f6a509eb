//! Mutual TLS for OpenWarn.
//!
//! - Internal gRPC is mutual TLS in every mode: [`TlsFiles::grpc_server`] requires a client
//!   certificate signed by the internal CA; [`TlsFiles::grpc_channel`] presents this service's own.
//! - Certificates rotate under a running service: every configuration reads the files in use at
//!   each handshake, and [`Reload::reload`] swaps in changed files (see `reload.rs`).
//! - Labs reach test-result over HTTPS with client certificates allow-listed by SHA-256
//!   fingerprint: [`LabTls`].
//! - [`HttpServer`]: the proxy's accept loop (hyper, HTTP/1.1 and HTTP/2, over TLS or in the
//!   clear behind a TLS-terminating ingress). The other services' REST ports run on actix-web.
//! - [`http_client_tls`]: the TLS configuration of our HTTP (reqwest) clients, on ring.
//! - [`DevPki`] generates a CA and one certificate per service (rcgen), so that a local run uses the
//!   same code path as production.
//!
//! This crate knows nothing of service start-up: the service lifecycle builds on it, not the
//! reverse.

mod devpki;
mod files;
mod lab;
mod pem;
mod reload;
mod serve;

pub use devpki::DevPki;
pub use files::{GrpcEndpoint, TlsFiles, http_client_tls};
pub use lab::{LabTls, fingerprint, fingerprint_of_pem};
pub use reload::Reload;
pub use rustls::ServerConfig as RustlsServerConfig;
pub use serve::{DEFAULT_MAX_CONNECTIONS, HttpServer, tls_connections};

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} holds no usable {what}")]
    Pem { path: PathBuf, what: &'static str },
    #[error("{path}: {reason}")]
    Key { path: PathBuf, reason: String },
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
            Self::Read { path, .. }
            | Self::Pem { path, .. }
            | Self::Key { path, .. }
            | Self::Write { path, .. } => Some(path),
            Self::Config(_) | Self::Generate(_) => None,
        }
    }
}
