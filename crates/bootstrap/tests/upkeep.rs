//! The metrics recorder's upkeep runs in a process of its own (an integration test binary).

/// Histogram samples are folded into their buckets by a thread of their own, whether or not
/// anything scrapes `/metrics` (without it, every sample was kept until a scrape: memory grew with
/// every request; docs/PERFORMANCE.md, the soak).
#[cfg(target_os = "linux")]
#[test]
fn the_recorder_is_kept_up_without_scrapes() {
    let _ = openwarn_bootstrap::admin::metrics_handle();
    // A new thread names itself once it runs: look again for a while.
    let threads = || -> Vec<String> {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(Result::ok)
            .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
            .map(|name| name.trim().to_owned())
            .collect()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !threads().iter().any(|name| name == "metrics-upkeep") {
        assert!(std::time::Instant::now() < deadline, "{:?}", threads());
        #[allow(
            clippy::disallowed_methods,
            reason = "a synchronous test waiting for another thread to start"
        )]
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}
