//! CPU time of processes, from `/proc/PID/stat`.

use std::fs;

/// Linux's USER_HZ, the unit of the CPU times in `/proc/PID/stat` (100 on every architecture
/// ten runs on).
pub(crate) const TICKS_PER_SECOND: f64 = 100.0;

/// `pid` and its children: an nginx master and its workers.
pub(crate) fn with_children(pid: u32) -> Vec<u32> {
    let children = fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"));
    let mut all = vec![pid];
    all.extend(
        children
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|child| child.parse::<u32>().ok()),
    );
    all
}

/// User and system CPU time (ticks) of `processes`, all their threads.
pub(crate) fn cpu_ticks(processes: &[u32]) -> (u64, u64) {
    processes.iter().fold((0, 0), |(user, system), pid| {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // The fields after the command's closing parenthesis: state is the first, utime the
        // 12th and stime the 13th.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map_or("", |(_, rest)| rest)
            .split_whitespace()
            .collect();
        let field = |index: usize| fields.get(index).and_then(|v| v.parse().ok()).unwrap_or(0);
        (user + field(11), system + field(12))
    })
}

/// TCP connections accepted so far in this network namespace (`PassiveOpens` in
/// `/proc/net/snmp`): every process's, so a count over a run is at least the server's.
pub(crate) fn tcp_passive_opens() -> u64 {
    let snmp = fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let mut tcp = snmp.lines().filter(|line| line.starts_with("Tcp:"));
    let (Some(names), Some(values)) = (tcp.next(), tcp.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(name, _)| *name == "PassiveOpens")
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or(0)
}

/// A load run (`load` returns its requests per second, p50 and p99 latency in ms) of
/// `seconds`, with the CPU time of `processes` over it, per request.
pub(crate) fn measure(
    seconds: u32,
    processes: &[u32],
    load: impl FnOnce() -> (f64, f64, f64),
) -> super::stats::Run {
    let before = cpu_ticks(processes);
    let (rps, p50_ms, p99_ms) = load();
    let after = cpu_ticks(processes);
    let requests = rps * f64::from(seconds);
    let per_request = |ticks: u64| ticks as f64 * 1e6 / TICKS_PER_SECOND / requests;
    super::stats::Run {
        rps,
        p50_ms,
        p99_ms,
        user_us: per_request(after.0 - before.0),
        system_us: per_request(after.1 - before.1),
    }
}
