//! CPU time spent by the processes a benchmark loads — this process, its finished children
//! (pgbench), and the local PostgreSQL and Redis servers — so a run can report CPU per request
//! next to requests per second. Throughput on a shared VM moves with its disk and neighbours; CPU
//! per request moves only with the work done, so it is what tells two builds apart.
//!
//! Linux only: the servers' times come from `/proc/<pid>/stat` (every process with that command
//! name, including the times of children they reaped, so PostgreSQL backends that exited still
//! count). Elsewhere, or when nothing is found, a server's time is `None`.

use std::time::Duration;

#[derive(Clone, Copy, Debug, Default)]
pub struct CpuTimes {
    /// This process (all its threads), user + system.
    pub this: Duration,
    /// Children this process has waited for (pgbench), user + system.
    pub children: Duration,
    /// Every `postgres` process, user + system, with the times of the children it reaped.
    pub postgres: Option<Duration>,
    /// Every `redis-server` process.
    pub redis: Option<Duration>,
}

impl CpuTimes {
    pub fn now() -> Self {
        let rusage = |who| {
            nix::sys::resource::getrusage(who).map_or(Duration::ZERO, |u| {
                timeval(u.user_time()) + timeval(u.system_time())
            })
        };
        Self {
            this: rusage(nix::sys::resource::UsageWho::RUSAGE_SELF),
            children: rusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN),
            postgres: processes_named("postgres"),
            redis: processes_named("redis-server"),
        }
    }

    /// The CPU time spent since `earlier`.
    pub fn since(&self, earlier: &Self) -> Self {
        let delta = |a: Option<Duration>, b: Option<Duration>| Some(a?.saturating_sub(b?));
        Self {
            this: self.this.saturating_sub(earlier.this),
            children: self.children.saturating_sub(earlier.children),
            postgres: delta(self.postgres, earlier.postgres),
            redis: delta(self.redis, earlier.redis),
        }
    }
}

fn timeval(t: nix::sys::time::TimeVal) -> Duration {
    Duration::from_secs(u64::try_from(t.tv_sec()).unwrap_or(0))
        + Duration::from_micros(u64::try_from(t.tv_usec()).unwrap_or(0))
}

/// Sum of user, system and reaped children's time of every process whose command is `name`.
fn processes_named(name: &str) -> Option<Duration> {
    let ticks_per_second = ticks_per_second()?;
    let mut found = false;
    let mut ticks = 0u64;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        if let Some(t) = stat_ticks(&stat, name) {
            found = true;
            ticks += t;
        }
    }
    found.then(|| Duration::from_secs_f64(ticks as f64 / ticks_per_second as f64))
}

/// utime + stime + cutime + cstime from one `/proc/<pid>/stat` line, if its command is `name`.
fn stat_ticks(stat: &str, name: &str) -> Option<u64> {
    let stat = Stat::parse(stat)?;
    (stat.comm == name).then_some(stat.ticks)
}

/// What a benchmark reads from one `/proc/<pid>/stat` line.
struct Stat<'a> {
    comm: &'a str,
    ppid: u32,
    /// utime + stime + cutime + cstime.
    ticks: u64,
}

impl<'a> Stat<'a> {
    fn parse(stat: &'a str) -> Option<Self> {
        let (head, rest) = stat.rsplit_once(')')?;
        let (_, comm) = head.split_once('(')?;
        // After the command: state(3) ppid(4) … utime(14) stime(15) cutime(16) cstime(17).
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = fields
            .get(11..15)?
            .iter()
            .map(|f| f.parse::<i64>().ok().and_then(|v| u64::try_from(v).ok()))
            .sum::<Option<u64>>()?;
        Some(Self {
            comm,
            ppid: fields.get(1)?.parse().ok()?,
            ticks,
        })
    }
}

/// CPU time (user + system, with reaped children's) of the process `pid` and of its direct
/// children: a server started by a benchmark, e.g. nginx's master and its workers. `None` when
/// `pid` is gone or `/proc` cannot be read (not Linux).
pub fn process_tree(pid: u32) -> Option<Duration> {
    let ticks_per_second = ticks_per_second()?;
    let own = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut ticks = Stat::parse(&own)?.ticks;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        if let Some(child) = Stat::parse(&stat).filter(|s| s.ppid == pid) {
            ticks += child.ticks;
        }
    }
    Some(Duration::from_secs_f64(
        ticks as f64 / ticks_per_second as f64,
    ))
}

/// CPU time (user + system) of the calling thread; `None` where the system cannot tell.
pub fn this_thread() -> Option<Duration> {
    #[cfg(target_os = "linux")]
    {
        nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_THREAD)
            .ok()
            .map(|u| timeval(u.user_time()) + timeval(u.system_time()))
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

fn ticks_per_second() -> Option<u64> {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .and_then(|t| u64::try_from(t).ok())
        .filter(|t| *t > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_gives_its_four_times_when_the_command_matches() {
        let line = "4242 (postgres) S 1 4242 4242 0 -1 4194560 1 0 0 0 150 25 7 3 20 0 1 0 1 0 0";
        assert_eq!(stat_ticks(line, "postgres"), Some(185));
        assert_eq!(stat_ticks(line, "redis-server"), None);
    }

    #[test]
    fn a_command_with_spaces_and_parentheses_is_read_whole() {
        let line = "7 (a) b (c)) R 1 7 7 0 -1 0 0 0 0 0 10 20 30 40 20 0 1 0 1 0 0";
        assert_eq!(stat_ticks(line, "a) b (c)"), Some(100));
    }

    #[test]
    fn a_stat_line_gives_its_parent() {
        let line = "4242 (nginx) S 4200 4242 4242 0 -1 4194560 1 0 0 0 150 25 7 3 20 0 1 0 1 0 0";
        let stat = Stat::parse(line).unwrap();
        assert_eq!((stat.comm, stat.ppid, stat.ticks), ("nginx", 4200, 185));
    }

    #[test]
    fn this_process_tree_and_thread_are_measured() {
        assert!(process_tree(std::process::id()).is_some());
        assert!(this_thread().is_some());
    }

    #[test]
    fn this_process_is_measured_and_time_only_moves_forward() {
        let before = CpuTimes::now();
        let mut x = 0u64;
        for i in 0..50_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        std::hint::black_box(x);
        let spent = CpuTimes::now().since(&before);
        assert!(spent.this > Duration::ZERO);
    }
}
