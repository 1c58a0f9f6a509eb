//! What every OpenWarn service starts with.
//!
//! - [`cli`]: the command line every service shares (`serve`, `migrate`, and its own commands).
//! - [`config`]: shared clap argument groups (listen addresses, TLS files, database, telemetry)
//!   and secrets read from the environment or from files.
//! - [`telemetry`]: JSON logs, optional OTLP trace export, W3C trace context across gRPC.
//! - [`admin`]: `/healthz`, `/readyz` and Prometheus `/metrics` on a separate port.
//! - [`catalogue`]: every metric's help text and histogram buckets; [`process`]: process metrics.
//! - [`lifecycle`]: a running service's tasks, addresses (HTTP, HTTPS via `openwarn-mtls`, gRPC)
//!   and graceful shutdown.
//! - [`http`]: small pieces every JSON endpoint shares (error bodies, padding, latency reservoirs).
//! - [`callers`]: named callers on every internal gRPC port (`PERMISSION_DENIED` for the rest).

pub mod admin;
pub mod callers;
pub mod catalogue;
pub mod cli;
pub mod config;
pub mod grpc_metrics;
pub mod http;
pub mod lifecycle;
pub mod process;
pub mod telemetry;

pub use lifecycle::{RunningService, ServeError};
