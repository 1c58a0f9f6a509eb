//! Its own process (an integration test binary), so that no other test has installed the metrics
//! recorder before: a value a service records right at start must reach `/metrics`.

use openwarn_bootstrap::lifecycle::{RunningService, retention_succeeded};

#[test]
fn what_a_service_records_at_start_is_exported() {
    let _service = RunningService::new("recorder-test");
    // What a retention job does on its first tick, before any port has started.
    retention_succeeded();
    let text = openwarn_bootstrap::admin::metrics_handle().render();
    assert!(
        text.lines()
            .any(|l| l.starts_with("openwarn_retention_last_success_timestamp_seconds ")),
        "{text}"
    );
}
