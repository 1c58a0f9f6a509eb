//! Every metric the services export, with its `# HELP` text and, for histograms, buckets that fit
//! what it measures. Applied when the Prometheus recorder is installed
//! ([`crate::admin::metrics_handle`]); `.ci/check_observability.py` fails when the code exports a
//! metric this list does not describe (or the list names one nobody exports).

/// What a metric is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One metric: its name, kind, help text and (histograms) buckets.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    pub name: &'static str,
    pub kind: Kind,
    pub help: &'static str,
    /// Upper bounds of the histogram's buckets (`None`: not a histogram).
    pub buckets: Option<&'static [f64]>,
}

/// Request and call latencies (seconds): 1 ms to 5 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];
/// Items in one database batch: 1 to 1000.
pub const BATCH_ITEMS_BUCKETS: &[f64] =
    &[1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0];
/// Duration of a publishing run (seconds): 0.1 s to 15 minutes.
pub const RUN_BUCKETS: &[f64] = &[
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0,
];

const fn counter(name: &'static str, help: &'static str) -> Metric {
    Metric {
        name,
        kind: Kind::Counter,
        help,
        buckets: None,
    }
}

const fn gauge(name: &'static str, help: &'static str) -> Metric {
    Metric {
        name,
        kind: Kind::Gauge,
        help,
        buckets: None,
    }
}

const fn histogram(name: &'static str, help: &'static str, buckets: &'static [f64]) -> Metric {
    Metric {
        name,
        kind: Kind::Histogram,
        help,
        buckets: Some(buckets),
    }
}

/// The catalogue, by service (shared ones first).
pub const METRICS: &[Metric] = &[
    // Every service.
    counter(
        "openwarn_http_requests_total",
        "HTTP requests answered, by route template, method and status.",
    ),
    histogram(
        "openwarn_http_request_duration_seconds",
        "Time to answer an HTTP request, by route template.",
        LATENCY_BUCKETS,
    ),
    counter(
        "openwarn_grpc_requests_total",
        "Internal gRPC calls served, by method and gRPC status code.",
    ),
    histogram(
        "openwarn_grpc_request_duration_seconds",
        "Time to answer an internal gRPC call, by method.",
        LATENCY_BUCKETS,
    ),
    counter(
        "openwarn_grpc_client_requests_total",
        "Internal gRPC calls this service made, by method and the gRPC status code it got (Unavailable when nothing answered).",
    ),
    histogram(
        "openwarn_grpc_client_request_duration_seconds",
        "Time an internal gRPC call this service made took to be answered, by method.",
        LATENCY_BUCKETS,
    ),
    counter(
        "openwarn_grpc_calls_denied_total",
        "Internal gRPC calls refused because the caller may not call the method, by caller and method.",
    ),
    histogram(
        "openwarn_db_batch_items",
        "Items written together in one database batch, by batch kind.",
        BATCH_ITEMS_BUCKETS,
    ),
    gauge(
        "openwarn_db_pool_connections",
        "Database connections of the pool, by state (in_use, idle), when last sampled.",
    ),
    gauge(
        "openwarn_db_pool_max_connections",
        "Most connections the database pool opens.",
    ),
    histogram(
        "openwarn_db_pool_wait_seconds",
        "Time waited for a pooled database connection.",
        LATENCY_BUCKETS,
    ),
    gauge(
        "openwarn_tls_certificate_expiry_timestamp_seconds",
        "When each certificate the service presents or trusts expires (Unix seconds).",
    ),
    counter(
        "openwarn_tls_reloads_total",
        "Changed TLS files read again, by result (ok, refused).",
    ),
    gauge(
        "openwarn_retention_last_success_timestamp_seconds",
        "When the service's retention job last completed (Unix seconds).",
    ),
    // A gauge (the recorder's counters hold whole numbers); it only grows, so rate() applies.
    gauge(
        "process_cpu_seconds_total",
        "CPU time the process used, user and system (seconds).",
    ),
    gauge(
        "process_resident_memory_bytes",
        "Resident memory of the process (bytes).",
    ),
    gauge("process_open_fds", "Open file descriptors of the process."),
    gauge(
        "process_max_fds",
        "Most file descriptors the process may open.",
    ),
    gauge(
        "process_start_time_seconds",
        "When the process started (Unix seconds).",
    ),
    // Proxy.
    counter(
        "openwarn_proxy_requests_total",
        "Phones' requests answered by the proxy, by route, kind (real, fake) and status.",
    ),
    histogram(
        "openwarn_proxy_request_duration_seconds",
        "Time the proxy took to answer a phone's request, by route and kind (real, fake).",
        LATENCY_BUCKETS,
    ),
    histogram(
        "openwarn_proxy_upstream_duration_seconds",
        "Time a backend took to answer a forwarded request, by backend and outcome (answered, unavailable, timeout).",
        LATENCY_BUCKETS,
    ),
    counter(
        "openwarn_proxy_refused_total",
        "Requests the proxy answered itself with an error, by reason.",
    ),
    counter(
        "openwarn_proxy_rate_limit_unavailable_total",
        "Requests let through because the rate-limit store could not be reached (failing open).",
    ),
    // Verification.
    counter(
        "openwarn_registrations_total",
        "Registration tokens issued.",
    ),
    counter("openwarn_tans_issued_total", "TANs issued to phones."),
    counter(
        "openwarn_tans_redeemed_total",
        "TANs committed for an upload.",
    ),
    counter(
        "openwarn_tan_reservations_refused_total",
        "TAN reservations refused (unknown, expired or spent TAN).",
    ),
    counter(
        "openwarn_verification_refused_total",
        "App requests verification refused, by endpoint and reason (the error answered).",
    ),
    counter("openwarn_tele_tans_issued_total", "teleTANs issued."),
    counter(
        "openwarn_tele_tans_refused_total",
        "teleTANs refused because the hourly limit was reached.",
    ),
    counter(
        "openwarn_test_result_redeem_failures_total",
        "Test results whose redeemed mark was given up after the retries.",
    ),
    counter(
        "openwarn_verification_rows_deleted_total",
        "Rows verification's retention deleted.",
    ),
    // Submission.
    counter(
        "openwarn_submissions_total",
        "Uploads answered, by outcome.",
    ),
    counter(
        "openwarn_diagnosis_keys_stored_total",
        "Diagnosis keys stored.",
    ),
    counter(
        "openwarn_diagnosis_keys_deleted_total",
        "Diagnosis keys submission's retention deleted.",
    ),
    counter(
        "openwarn_tan_commit_failures_total",
        "Uploads whose TAN commit failed at first (stored, committed later by the retry job).",
    ),
    counter(
        "openwarn_tan_commit_retries_total",
        "Retried TAN commits, by result.",
    ),
    gauge(
        "openwarn_tan_commits_pending",
        "TAN commits waiting to be retried.",
    ),
    // Test results.
    counter(
        "openwarn_lab_results_received_total",
        "Test results received from labs.",
    ),
    counter(
        "openwarn_test_results_deleted_total",
        "Test results the retention deleted.",
    ),
    counter(
        "openwarn_test_results_redeemed_by_retention_total",
        "Test results the retention marked redeemed.",
    ),
    // Portal.
    counter(
        "openwarn_portal_sign_ins_total",
        "Portal sign-ins, by outcome.",
    ),
    counter(
        "openwarn_portal_accounts_locked_total",
        "Portal accounts locked after failed sign-ins.",
    ),
    counter(
        "openwarn_portal_audit_entries_total",
        "Entries written to the portal's audit log, by action.",
    ),
    counter(
        "openwarn_portal_audit_entries_deleted_total",
        "Audit entries the portal's retention deleted.",
    ),
    counter(
        "openwarn_portal_tele_tans_issued_total",
        "teleTANs the portal issued.",
    ),
    counter(
        "openwarn_portal_tele_tans_refused_total",
        "teleTANs the portal could not issue, by reason.",
    ),
    // Distribution.
    counter(
        "openwarn_distribution_runs_total",
        "Publishing runs, by outcome.",
    ),
    histogram(
        "openwarn_distribution_run_seconds",
        "Duration of a publishing run.",
        RUN_BUCKETS,
    ),
    gauge(
        "openwarn_distribution_last_success_timestamp_seconds",
        "When a publishing run last succeeded (Unix seconds).",
    ),
    counter(
        "openwarn_distribution_packages_published_total",
        "Key packages published.",
    ),
    counter(
        "openwarn_distribution_keys_published_total",
        "Diagnosis keys published in packages.",
    ),
    counter(
        "openwarn_distribution_app_config_refused_total",
        "App configurations refused (unreadable or invalid); the previous one stays published.",
    ),
];

/// Gives every metric of the catalogue its help text (with the global recorder).
pub fn describe() {
    for metric in METRICS {
        match metric.kind {
            Kind::Counter => metrics::describe_counter!(metric.name, metric.help),
            Kind::Gauge => metrics::describe_gauge!(metric.name, metric.help),
            Kind::Histogram => metrics::describe_histogram!(metric.name, metric.help),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_named_once_and_described() {
        let mut names: Vec<&str> = METRICS.iter().map(|m| m.name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(names.len(), before, "a metric is listed twice");
        for metric in METRICS {
            assert!(!metric.help.is_empty(), "{}", metric.name);
            assert_eq!(
                metric.buckets.is_some(),
                metric.kind == Kind::Histogram,
                "{}: buckets exactly for histograms",
                metric.name
            );
            if let Some(buckets) = metric.buckets {
                assert!(
                    buckets.windows(2).all(|w| w[0] < w[1]),
                    "{}: increasing buckets",
                    metric.name
                );
            }
        }
    }

    #[test]
    fn buckets_fit_what_they_measure() {
        assert_eq!(LATENCY_BUCKETS.first(), Some(&0.001));
        assert_eq!(LATENCY_BUCKETS.last(), Some(&5.0));
        assert_eq!(BATCH_ITEMS_BUCKETS.first(), Some(&1.0));
        assert_eq!(BATCH_ITEMS_BUCKETS.last(), Some(&1000.0));
        assert_eq!(RUN_BUCKETS.first(), Some(&0.1));
        assert_eq!(RUN_BUCKETS.last(), Some(&900.0));
    }
}
