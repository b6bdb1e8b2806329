//! The last usage sample of an instance (what its processes use, the size of its data
//! directory) and when it was taken: shared by the instance's task, which measures the data
//! directory at every health check when a storage quota is to be enforced, and the
//! reconciler, which samples on demand when someone asks for the instances (`ten ps`, the
//! API, the dashboard, metrics) and the last sample is older than [`FRESH`]. Nothing is
//! sampled while no one looks: an idle ten does not read four cgroup files per tenant every
//! check interval. Pure: the decisions take the time as an argument; imports nothing of
//! `runtime`.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use tokio::time::Instant;

use crate::observed::Usage;

/// A sample younger than this is shown as it is; an older one is taken again when asked for.
pub(crate) const FRESH: Duration = Duration::from_secs(2);

/// A data directory measured less than this long ago is not walked again (a walk reads the
/// whole tree) unless a storage quota is to be enforced.
pub(crate) const WALK_FRESH: Duration = Duration::from_secs(60);

/// A usage sample of one process of the instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sample {
    pub usage: Usage,
    /// The process it measured (a sample of an earlier process is no sample of this one).
    pub pid: u32,
    pub at: Instant,
    /// When `usage.storage_bytes` was measured (carried over from an earlier sample since).
    pub walked_at: Option<Instant>,
}

/// The last sample of an instance, shared between its task and the reconciler.
pub(crate) type UsageCell = Arc<ArcSwapOption<Sample>>;

/// What a sample of process `pid` must read, given the last one: `None` when the last one
/// is of that process and younger than `fresh` ([`FRESH`] for what is shown); else whether
/// the data directory is to be walked too (it belongs to the instance, whatever its
/// process).
pub(crate) fn wanted(
    last: Option<&Sample>,
    pid: u32,
    fresh: Duration,
    now: Instant,
) -> Option<bool> {
    let Some(last) = last else {
        return Some(true);
    };
    if last.pid == pid && now.saturating_duration_since(last.at) < fresh {
        return None;
    }
    Some(
        last.walked_at
            .is_none_or(|walked| now.saturating_duration_since(walked) >= WALK_FRESH),
    )
}

/// Keeps `usage`, just measured of process `pid` (its data directory too when `walked`);
/// a directory size not measured now is the last sample's.
pub(crate) fn store(cell: &UsageCell, pid: u32, mut usage: Usage, walked: bool, now: Instant) {
    let last = cell.load();
    let last = last.as_deref();
    let walked_at = if walked {
        Some(now)
    } else {
        usage.storage_bytes = last.and_then(|last| last.usage.storage_bytes);
        last.and_then(|last| last.walked_at)
    };
    cell.store(Some(Arc::new(Sample {
        usage,
        pid,
        at: now,
        walked_at,
    })));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(memory: u64, storage: Option<u64>) -> Usage {
        Usage {
            memory_bytes: Some(memory),
            storage_bytes: storage,
            ..Usage::default()
        }
    }

    #[test]
    fn a_sample_is_taken_again_once_stale_and_the_directory_walked_less_often() {
        let start = Instant::now();
        let cell = UsageCell::default();
        assert_eq!(
            wanted(None, 7, FRESH, start),
            Some(true),
            "never sampled: all of it"
        );
        store(&cell, 7, usage(1, Some(100)), true, start);
        let last = cell.load_full().unwrap();
        assert_eq!(
            wanted(Some(&last), 7, FRESH, start + FRESH / 2),
            None,
            "fresh"
        );
        assert_eq!(
            wanted(Some(&last), 7, FRESH, start + FRESH),
            Some(false),
            "memory is stale, the directory size is not"
        );
        assert_eq!(
            wanted(Some(&last), 7, FRESH, start + WALK_FRESH),
            Some(true)
        );
        assert_eq!(
            wanted(Some(&last), 8, FRESH, start + FRESH / 2),
            Some(false),
            "a sample of another process counts for nothing, but the directory is the same"
        );
    }

    #[test]
    fn a_sample_without_a_walk_keeps_the_last_directory_size() {
        let start = Instant::now();
        let cell = UsageCell::default();
        store(&cell, 7, usage(1, Some(100)), true, start);
        store(&cell, 7, usage(2, None), false, start + FRESH);
        let last = cell.load_full().unwrap();
        assert_eq!(last.usage, usage(2, Some(100)));
        assert_eq!((last.at, last.walked_at), (start + FRESH, Some(start)));
        // A new process of the instance: the same data directory.
        store(&cell, 9, usage(3, None), false, start + FRESH);
        let last = cell.load_full().unwrap();
        assert_eq!(last.usage, usage(3, Some(100)));
        assert_eq!((last.pid, last.walked_at), (9, Some(start)));
    }
}
