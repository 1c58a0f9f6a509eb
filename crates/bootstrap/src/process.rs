//! Process metrics (`process_cpu_seconds_total`, `process_resident_memory_bytes`,
//! `process_open_fds`, `process_max_fds`, `process_start_time_seconds`), read from `/proc` on
//! Linux when `/metrics` is scraped. Elsewhere nothing is reported.

/// Clock ticks per second of `/proc/<pid>/stat` (`USER_HZ`: 100 on every Linux architecture;
/// the kernel converts to it for user space whatever its internal tick rate).
const USER_HZ: f64 = 100.0;

/// What `/proc/self/stat` says of the process: CPU seconds and start (seconds after boot).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Stat {
    cpu_seconds: f64,
    started_after_boot: f64,
}

/// Parses `/proc/self/stat`: fields after the command name (which may hold spaces and
/// parentheses, so the text after the last `)`), utime and stime (fields 14 and 15) and starttime
/// (field 22), in clock ticks.
fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    // `rest` starts with field 3 (state).
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> Option<f64> { fields.get(n - 3)?.parse::<f64>().ok() };
    Some(Stat {
        cpu_seconds: (field(14)? + field(15)?) / USER_HZ,
        started_after_boot: field(22)? / USER_HZ,
    })
}

/// `VmRSS` of `/proc/self/status`, in bytes.
fn parse_rss(status: &str) -> Option<f64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024.0)
}

/// The soft limit of `Max open files` in `/proc/self/limits`.
fn parse_max_fds(limits: &str) -> Option<f64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// `btime` of `/proc/stat`: when the machine booted (Unix seconds).
fn parse_boot_time(stat: &str) -> Option<f64> {
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

/// Samples the process metrics now (cheap: a few small reads of `/proc`).
pub fn sample() {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    if let Some(stat) = read("/proc/self/stat").as_deref().and_then(parse_stat) {
        // A gauge: a counter holds whole numbers, CPU time has hundredths of seconds.
        metrics::gauge!("process_cpu_seconds_total").set(stat.cpu_seconds);
        if let Some(boot) = read("/proc/stat").as_deref().and_then(parse_boot_time) {
            metrics::gauge!("process_start_time_seconds").set(boot + stat.started_after_boot);
        }
    }
    if let Some(rss) = read("/proc/self/status").as_deref().and_then(parse_rss) {
        metrics::gauge!("process_resident_memory_bytes").set(rss);
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        #[allow(
            clippy::cast_precision_loss,
            reason = "a count of file descriptors fits an f64 exactly"
        )]
        metrics::gauge!("process_open_fds").set(fds.count() as f64);
    }
    if let Some(max) = read("/proc/self/limits").as_deref().and_then(parse_max_fds) {
        metrics::gauge!("process_max_fds").set(max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_are_parsed() {
        let stat = "4242 (open warn) (x)) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 9 0 12345 1000000 2000 18446744073709551615";
        assert_eq!(
            parse_stat(stat),
            Some(Stat {
                cpu_seconds: 3.0,
                started_after_boot: 123.45
            })
        );
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(
            parse_rss("Name:\topenwarn\nVmRSS:\t   2048 kB\nThreads:\t9\n"),
            Some(2048.0 * 1024.0)
        );
        assert_eq!(
            parse_max_fds(
                "Limit                     Soft Limit           Hard Limit           Units     \n\
                 Max open files            1024                 524288               files     \n"
            ),
            Some(1024.0)
        );
        assert_eq!(
            parse_boot_time("cpu  1 2 3\nbtime 1700000000\nprocesses 5\n"),
            Some(1_700_000_000.0)
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_is_read() {
        let stat = parse_stat(&std::fs::read_to_string("/proc/self/stat").unwrap()).unwrap();
        assert!(stat.started_after_boot > 0.0);
        assert!(parse_rss(&std::fs::read_to_string("/proc/self/status").unwrap()).unwrap() > 0.0);
        assert!(
            parse_max_fds(&std::fs::read_to_string("/proc/self/limits").unwrap()).unwrap() > 0.0
        );
        assert!(parse_boot_time(&std::fs::read_to_string("/proc/stat").unwrap()).unwrap() > 0.0);
    }
}
