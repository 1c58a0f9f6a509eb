//! The metrics recorder's upkeep runs in a process of its own (an integration test binary).

/// Histogram samples are folded into their buckets by a thread of their own, whether or not
/// anything scrapes `/metrics` (without it, every sample was kept until a scrape: memory grew with
/// every request; docs/PERFORMANCE.md, the soak).
#[cfg(target_os = "linux")]
#[test]
fn the_recorder_is_kept_up_without_scrapes() {
    let _ = openwarn_bootstrap::admin::metrics_handle();
    let threads: Vec<String> = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
        .map(|name| name.trim().to_owned())
        .collect();
    assert!(
        threads.iter().any(|name| name == "metrics-upkeep"),
        "{threads:?}"
    );
}
