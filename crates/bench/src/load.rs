//! A small HTTP/1.1 load client for the benchmarks: a fixed number of keep-alive connections,
//! each driven by one task sending its requests back to back, for a fixed time after a short
//! warm-up that is not counted. Plain HTTP only.
//!
//! It shares the machine's cores with the server it loads, so it is kept cheap: hyper's
//! low-level `client::conn::http1` over a `TcpStream` (no pool, no URL parsing, no redirects),
//! bodies drained frame by frame without being collected, latencies pushed onto one `Vec` per
//! connection and merged at the end. [`run_dedicated`] runs it on a thread of its own (one core
//! at most), whose CPU time is then reported apart from the process's.

use crate::cpu::CpuTimes;
use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HOST, HeaderValue};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::time::sleep_until;

/// A request still unanswered this long after the end of the measured time is given up (a server
/// that hangs does not hang the benchmark).
const GIVE_UP_AFTER_END: Duration = Duration::from_secs(10);

/// A request the load client sends.
pub type Request = hyper::Request<Full<Bytes>>;

/// Makes the `n`-th request of a run (`n` counts across all connections, from 0). Without a
/// `Host` header the client adds the server's address.
pub type Generator = Arc<dyn Fn(u64) -> Request + Send + Sync>;

/// The same request every time: `method path` with `headers` and `body`.
pub fn fixed(
    method: hyper::Method,
    path: &str,
    headers: &[(&'static str, &str)],
    body: Bytes,
) -> anyhow::Result<Generator> {
    let mut builder = hyper::Request::builder().method(method).uri(path);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let template = builder
        .body(Full::new(body.clone()))
        .context("invalid request")?;
    let (parts, _) = template.into_parts();
    Ok(Arc::new(move |_| {
        let mut request = hyper::Request::new(Full::new(body.clone()));
        *request.method_mut() = parts.method.clone();
        *request.uri_mut() = parts.uri.clone();
        *request.headers_mut() = parts.headers.clone();
        request
    }))
}

/// What to load, how hard and for how long.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The server (plain HTTP/1.1).
    pub addr: SocketAddr,
    /// Keep-alive connections, each with one request in flight at a time.
    pub connections: usize,
    /// Run before the measured time; its requests are not counted.
    pub warmup: Duration,
    /// The measured time: requests completed within it count.
    pub duration: Duration,
    /// Any other status is counted in [`Report::unexpected`].
    pub expected_status: u16,
    /// Processes (each with its direct children, e.g. nginx's workers) whose CPU time over the
    /// measured time is reported in [`Report::watched`].
    pub watch: Vec<u32>,
}

/// One run's results; counts cover the measured time only.
#[derive(Debug, Default)]
pub struct Report {
    /// Requests answered (any status) within the measured time.
    pub requests: u64,
    /// Of those, answered with another status than the expected one.
    pub unexpected: u64,
    /// Requests that got no answer (connection refused, reset, malformed response), and failed
    /// connection attempts.
    pub errors: u64,
    /// Connections opened again after the server closed one between two requests (not errors).
    pub reconnects: u64,
    /// Response body bytes received.
    pub body_bytes: u64,
    /// The measured time.
    pub elapsed: Duration,
    /// Latency of every answered request, sorted.
    pub latencies: Vec<Duration>,
    /// CPU over the measured time: this process, PostgreSQL, Redis.
    pub cpu: CpuTimes,
    /// CPU of the load client's own thread over the measured time ([`run_dedicated`] only).
    pub client_cpu: Option<Duration>,
    /// CPU of each of [`Spec::watch`] over the measured time (`None`: not measurable).
    pub watched: Vec<Option<Duration>>,
}

impl Report {
    pub fn per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    /// The latency at quantile `q` (0 to 1; nearest rank); zero without requests.
    pub fn quantile(&self, q: f64) -> Duration {
        let last = self.latencies.len().saturating_sub(1);
        self.latencies
            .get(((last as f64) * q.clamp(0.0, 1.0)).round() as usize)
            .copied()
            .unwrap_or_default()
    }

    /// `label  12345 requests  6172/s  p50 1.234 ms  p99 5.678 ms  unexpected status 0  errors 0`
    pub fn line(&self, label: &str) -> String {
        format!(
            "{label:<22} {:>8} requests {:>9.0}/s  p50 {:>7.3} ms  p99 {:>7.3} ms  unexpected status {}  errors {}",
            self.requests,
            self.per_second(),
            self.quantile(0.5).as_secs_f64() * 1000.0,
            self.quantile(0.99).as_secs_f64() * 1000.0,
            self.unexpected,
            self.errors,
        )
    }
}

/// One connection's counts.
#[derive(Default)]
struct Tally {
    requests: u64,
    unexpected: u64,
    errors: u64,
    reconnects: u64,
    body_bytes: u64,
    latencies: Vec<Duration>,
}

struct Shared {
    spec: Spec,
    host: HeaderValue,
    generator: Generator,
    next: AtomicU64,
    /// Start and end of the measured time.
    measured: Instant,
    end: Instant,
}

/// CPU times at one instant.
struct Snapshot {
    cpu: CpuTimes,
    thread: Option<Duration>,
    watched: Vec<Option<Duration>>,
}

impl Snapshot {
    fn now(watch: &[u32], thread: bool) -> Self {
        Self {
            cpu: CpuTimes::now(),
            thread: thread.then(crate::cpu::this_thread).flatten(),
            watched: watch
                .iter()
                .map(|pid| crate::cpu::process_tree(*pid))
                .collect(),
        }
    }
}

/// Runs the load on the current runtime and reports it.
pub async fn run(spec: Spec, generator: Generator) -> anyhow::Result<Report> {
    drive(spec, generator, false).await
}

/// Runs the load on a thread of its own (a single-threaded runtime: the client takes one core
/// at most), and reports the CPU time of that thread too.
pub async fn run_dedicated(spec: Spec, generator: Generator) -> anyhow::Result<Report> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("load-client".into())
        .spawn(move || {
            let result = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the load client's runtime")
                .and_then(|runtime| runtime.block_on(drive(spec, generator, true)));
            let _ = tx.send(result);
        })
        .context("cannot start the load client's thread")?;
    rx.await.context("the load client's thread died")?
}

async fn drive(spec: Spec, generator: Generator, dedicated: bool) -> anyhow::Result<Report> {
    anyhow::ensure!(
        spec.connections > 0,
        "the load needs at least one connection"
    );
    let measured = Instant::now() + spec.warmup;
    let shared = Arc::new(Shared {
        host: HeaderValue::from_str(&spec.addr.to_string())?,
        end: measured + spec.duration,
        measured,
        generator,
        next: AtomicU64::new(0),
        spec,
    });
    let workers: Vec<_> = (0..shared.spec.connections)
        .map(|_| tokio::spawn(connection(shared.clone())))
        .collect();
    // CPU times at the start and end of the measured time (on this thread: its own CPU time).
    let tasks = shared.spec.connections;
    sleep_until(measured.into()).await;
    let before = Snapshot::now(&shared.spec.watch, dedicated);
    sleep_until(shared.end.into()).await;
    let after = Snapshot::now(&shared.spec.watch, dedicated);

    let mut report = Report {
        elapsed: shared.spec.duration,
        cpu: after.cpu.since(&before.cpu),
        client_cpu: after
            .thread
            .zip(before.thread)
            .map(|(a, b)| a.saturating_sub(b)),
        watched: after
            .watched
            .iter()
            .zip(&before.watched)
            .map(|(a, b)| Some(a.as_ref()?.saturating_sub(*b.as_ref()?)))
            .collect(),
        ..Report::default()
    };
    let mut latencies = Vec::with_capacity(tasks);
    for worker in workers {
        let tally = worker.await.context("a load connection panicked")?;
        report.requests += tally.requests;
        report.unexpected += tally.unexpected;
        report.errors += tally.errors;
        report.reconnects += tally.reconnects;
        report.body_bytes += tally.body_bytes;
        latencies.push(tally.latencies);
    }
    report.latencies = latencies.concat();
    report.latencies.sort_unstable();
    Ok(report)
}

async fn connect(addr: SocketAddr) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    // Ends when the server closes the connection or the sender is dropped.
    tokio::spawn(connection);
    Ok(sender)
}

/// One connection: requests back to back until the end of the measured time, reconnecting when
/// the server closes it.
async fn connection(shared: Arc<Shared>) -> Tally {
    let mut tally = Tally::default();
    let mut sender: Option<SendRequest<Full<Bytes>>> = None;
    loop {
        if Instant::now() >= shared.end {
            return tally;
        }
        let mut current = match sender.take() {
            Some(mut s) => {
                if s.ready().await.is_ok() {
                    s
                } else {
                    tally.reconnects += 1;
                    continue;
                }
            }
            None => match connect(shared.spec.addr).await {
                Ok(s) => s,
                Err(_) => {
                    if Instant::now() >= shared.measured {
                        tally.errors += 1;
                    }
                    // Not a hot loop against a server that is not there.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let mut request = (shared.generator)(shared.next.fetch_add(1, Ordering::Relaxed));
        request
            .headers_mut()
            .entry(HOST)
            .or_insert_with(|| shared.host.clone());
        let started = Instant::now();
        let answer = tokio::time::timeout_at(
            (shared.end + GIVE_UP_AFTER_END).into(),
            exchange(&mut current, request),
        )
        .await
        .unwrap_or(Err(Failed::TimedOut));
        let done = Instant::now();
        let counted = done >= shared.measured && done < shared.end;
        match answer {
            Ok((status, bytes)) => {
                if counted {
                    tally.requests += 1;
                    tally.body_bytes += bytes;
                    tally.unexpected += u64::from(status != shared.spec.expected_status);
                    tally.latencies.push(done - started);
                }
                sender = Some(current);
            }
            // The connection is dropped; the next request opens another.
            Err(_) => tally.errors += u64::from(counted),
        }
    }
}

/// A request that got no answer.
enum Failed {
    Http,
    TimedOut,
}

impl From<hyper::Error> for Failed {
    fn from(_: hyper::Error) -> Self {
        Self::Http
    }
}

/// Sends `request`, drains the answer's body; its status and body length.
async fn exchange(
    sender: &mut SendRequest<Full<Bytes>>,
    request: Request,
) -> Result<(u16, u64), Failed> {
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let mut body = response.into_body();
    let mut bytes = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            bytes += data.len() as u64;
        }
    }
    Ok((status, bytes))
}

/// `ratio` as `1.23 x`, or `-` when the denominator is zero.
pub fn ratio(numerator: f64, denominator: f64) -> String {
    if denominator > 0.0 {
        format!("{:.2} x", numerator / denominator)
    } else {
        "-".to_owned()
    }
}

/// `d` over `requests` in microseconds (`12.3 µs`), or `-`.
pub fn per_request(d: Option<Duration>, requests: u64) -> String {
    match d {
        Some(d) if requests > 0 => format!("{:.1} µs", d.as_secs_f64() * 1e6 / requests as f64),
        _ => "-".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::body::Incoming;
    use hyper::{Method, Response, StatusCode};
    use std::convert::Infallible;

    /// A server answering `/ok` with 200 and a 5-byte body, anything else with 404 and an empty
    /// body; with `close_every`, each connection closes after that many answers.
    async fn server(close_every: Option<u64>) -> (SocketAddr, Arc<AtomicU64>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let served = Arc::new(AtomicU64::new(0));
        let total = served.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let served = served.clone();
                tokio::spawn(async move {
                    let on_this = Arc::new(AtomicU64::new(0));
                    let service =
                        hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
                            let n = on_this.fetch_add(1, Ordering::Relaxed) + 1;
                            served.fetch_add(1, Ordering::Relaxed);
                            async move {
                                assert!(request.headers().contains_key(HOST));
                                let mut response = if request.uri().path() == "/ok" {
                                    Response::new(Full::new(Bytes::from_static(b"hello")))
                                } else {
                                    let mut r = Response::new(Full::new(Bytes::new()));
                                    *r.status_mut() = StatusCode::NOT_FOUND;
                                    r
                                };
                                if close_every.is_some_and(|every| n.is_multiple_of(every)) {
                                    response
                                        .headers_mut()
                                        .insert("connection", HeaderValue::from_static("close"));
                                }
                                Ok::<_, Infallible>(response)
                            }
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (addr, total)
    }

    fn spec(addr: SocketAddr) -> Spec {
        Spec {
            addr,
            connections: 3,
            warmup: Duration::from_millis(50),
            duration: Duration::from_millis(300),
            expected_status: 200,
            watch: vec![std::process::id()],
        }
    }

    #[tokio::test]
    async fn expected_answers_are_counted_with_their_bodies() {
        let (addr, served) = server(None).await;
        let generator = fixed(Method::GET, "/ok", &[], Bytes::new()).unwrap();
        let report = run(spec(addr), generator).await.unwrap();
        assert!(report.requests > 0);
        assert_eq!(report.unexpected, 0);
        assert_eq!(report.errors, 0);
        assert_eq!(report.reconnects, 0);
        assert_eq!(report.body_bytes, 5 * report.requests);
        assert_eq!(report.latencies.len() as u64, report.requests);
        assert!(report.latencies.windows(2).all(|w| w[0] <= w[1]));
        // The warm-up's requests reached the server but are not counted.
        assert!(served.load(Ordering::Relaxed) >= report.requests);
        assert_eq!(report.watched.len(), 1);
        assert!(report.watched[0].is_some());
        assert_eq!(report.client_cpu, None);
    }

    #[tokio::test]
    async fn other_statuses_are_counted_apart() {
        let (addr, _) = server(None).await;
        // Every other request asks for a path the server does not know.
        let generator: Generator = Arc::new(|n| {
            let path = if n.is_multiple_of(2) {
                "/ok"
            } else {
                "/missing"
            };
            hyper::Request::get(path)
                .body(Full::new(Bytes::new()))
                .unwrap()
        });
        let report = run(spec(addr), generator).await.unwrap();
        assert!(report.unexpected > 0);
        assert!(report.unexpected < report.requests);
        assert_eq!(report.errors, 0);
        assert_eq!(report.body_bytes, 5 * (report.requests - report.unexpected));

        let all_missing = fixed(
            Method::POST,
            "/missing",
            &[("content-type", "application/json")],
            Bytes::from_static(b"{}"),
        )
        .unwrap();
        let mut spec = spec(addr);
        spec.expected_status = 404;
        let report = run(spec, all_missing).await.unwrap();
        assert!(report.requests > 0);
        assert_eq!(
            (report.unexpected, report.errors, report.body_bytes),
            (0, 0, 0)
        );
    }

    #[tokio::test]
    async fn connections_closed_by_the_server_are_opened_again() {
        let (addr, _) = server(Some(3)).await;
        let generator = fixed(Method::GET, "/ok", &[], Bytes::new()).unwrap();
        let report = run_dedicated(spec(addr), generator).await.unwrap();
        assert!(report.requests > 0);
        assert!(report.reconnects > 0);
        assert_eq!((report.unexpected, report.errors), (0, 0));
        assert!(report.client_cpu.is_some());
    }

    #[tokio::test]
    async fn a_server_that_is_not_there_gives_errors_only() {
        let addr = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap()
        };
        let generator = fixed(Method::GET, "/ok", &[], Bytes::new()).unwrap();
        let report = run(spec(addr), generator).await.unwrap();
        assert_eq!(report.requests, 0);
        assert!(report.errors > 0);
        assert_eq!(report.quantile(0.99), Duration::ZERO);
    }

    #[test]
    fn quantiles_are_nearest_rank_on_the_sorted_latencies() {
        let report = Report {
            requests: 101,
            elapsed: Duration::from_secs(2),
            latencies: (0..=100).map(Duration::from_millis).collect(),
            ..Report::default()
        };
        assert_eq!(report.quantile(0.5), Duration::from_millis(50));
        assert_eq!(report.quantile(0.99), Duration::from_millis(99));
        assert_eq!(report.quantile(1.0), Duration::from_millis(100));
        assert!((report.per_second() - 50.5).abs() < 1e-9);
        assert_eq!(ratio(3.0, 2.0), "1.50 x");
        assert_eq!(ratio(3.0, 0.0), "-");
        assert_eq!(per_request(Some(Duration::from_millis(1)), 10), "100.0 µs");
    }
}
