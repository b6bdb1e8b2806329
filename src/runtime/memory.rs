//! How much memory the tenants use together, and what the host has: the parent cgroup's
//! working set (usage less inactive file pages, what the kernel cannot simply drop), the
//! host's MemTotal and MemAvailable, ten's own cgroup limit, and memory pressure (PSI).
//! Small files, read whole; nothing is cached.

use std::fs;
use std::path::{Path, PathBuf};

/// The memory files of the cgroup all tenants of a data directory are under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryFiles {
    usage: PathBuf,
    stat: PathBuf,
    /// The inactive file pages' key in `memory.stat`.
    inactive_key: &'static str,
}

impl MemoryFiles {
    /// The files of the cgroup directory `dir` of the memory controller.
    pub fn of(dir: &Path, v2: bool) -> MemoryFiles {
        let (usage, inactive_key) = if v2 {
            ("memory.current", "inactive_file")
        } else {
            ("memory.usage_in_bytes", "total_inactive_file")
        };
        MemoryFiles {
            usage: dir.join(usage),
            stat: dir.join("memory.stat"),
            inactive_key,
        }
    }

    /// The working set of every process below: usage less the inactive file cache.
    pub fn working_set(&self) -> Option<u64> {
        let usage: u64 = fs::read_to_string(&self.usage).ok()?.trim().parse().ok()?;
        let inactive = fs::read_to_string(&self.stat)
            .ok()
            .and_then(|text| stat_value(&text, self.inactive_key))
            .unwrap_or(0);
        Some(usage.saturating_sub(inactive))
    }
}

/// The host's memory as ten sees it.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct HostMemory {
    /// What ten and its tenants may use: MemTotal, or ten's cgroup limit if lower.
    pub total: u64,
    /// MemAvailable.
    pub available: u64,
    /// `some avg10` of /proc/pressure/memory: the share of the last 10 s in which some task
    /// waited for memory, in percent. None without PSI.
    pub pressure: Option<f64>,
}

/// Reads the host's memory now.
pub fn host_memory() -> HostMemory {
    let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kib = |key: &str| meminfo_value(&meminfo, key).unwrap_or(0) * 1024;
    let total = kib("MemTotal:");
    HostMemory {
        total: own_limit().map_or(total, |limit| limit.min(total)),
        available: kib("MemAvailable:"),
        pressure: fs::read_to_string("/proc/pressure/memory")
            .ok()
            .and_then(|text| some_avg10(&text)),
    }
}

/// The memory limit of ten's own cgroup (v2 `memory.max`, v1 `memory.limit_in_bytes`), when
/// it has one.
fn own_limit() -> Option<u64> {
    let text = fs::read_to_string("/proc/self/cgroup").ok()?;
    let root = Path::new("/sys/fs/cgroup");
    text.lines().find_map(|line| {
        let mut fields = line.splitn(3, ':');
        let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        let relative = path.trim_start_matches('/');
        let file = if controllers.is_empty() {
            root.join(relative).join("memory.max")
        } else if controllers.split(',').any(|name| name == "memory") {
            root.join("memory")
                .join(relative)
                .join("memory.limit_in_bytes")
        } else {
            return None;
        };
        let limit: u64 = fs::read_to_string(file).ok()?.trim().parse().ok()?;
        // v1 says "no limit" with a huge number.
        (limit < 1 << 60).then_some(limit)
    })
}

fn stat_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (name, value) = line.split_once(' ')?;
        (name == key).then(|| value.trim().parse().ok())?
    })
}

fn meminfo_value(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(key))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn some_avg10(text: &str) -> Option<f64> {
    let line = text.lines().find(|line| line.starts_with("some "))?;
    line.split_whitespace()
        .find_map(|field| field.strip_prefix("avg10="))?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_working_set_leaves_out_inactive_file_pages() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("memory.usage_in_bytes"), "1000000\n").unwrap();
        fs::write(
            dir.path().join("memory.stat"),
            "cache 500\ninactive_file 9\ntotal_inactive_file 300000\n",
        )
        .unwrap();
        assert_eq!(
            MemoryFiles::of(dir.path(), false).working_set(),
            Some(700_000)
        );
        fs::write(dir.path().join("memory.current"), "2000\n").unwrap();
        assert_eq!(MemoryFiles::of(dir.path(), true).working_set(), Some(1991));
        assert_eq!(
            MemoryFiles::of(&dir.path().join("gone"), true).working_set(),
            None
        );
    }

    #[test]
    fn host_files_are_read() {
        assert_eq!(
            meminfo_value(
                "MemTotal:       24000000 kB\nMemAvailable:   100 kB\n",
                "MemAvailable:"
            ),
            Some(100)
        );
        assert_eq!(
            some_avg10("some avg10=1.50 avg60=0.00 avg300=0.00 total=5\nfull avg10=0.00\n"),
            Some(1.5)
        );
        let host = host_memory();
        assert!(host.total > 0 && host.available > 0, "{host:?}");
    }
}
