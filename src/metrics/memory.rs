//! The memory budget's metrics: instances put to sleep for memory, by reason; wakes refused
//! for want of room; the tenants' memory as last measured. Atomics, no lock.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Why an instance was put to sleep for memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SleepReason {
    /// The tenants' memory passed `memory_target`.
    Target,
    /// The host's memory ran short (MemAvailable, or its use past a `memory_target` share).
    Host,
    /// The host's memory pressure (PSI) was high.
    Pressure,
    /// A wake needed room under `memory_limit_total`.
    Room,
}

impl SleepReason {
    const ALL: [SleepReason; 4] = [
        SleepReason::Target,
        SleepReason::Host,
        SleepReason::Pressure,
        SleepReason::Room,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SleepReason::Target => "target",
            SleepReason::Host => "host",
            SleepReason::Pressure => "pressure",
            SleepReason::Room => "room",
        }
    }
}

pub(crate) struct MemoryMetrics {
    sleeps: [AtomicU64; 4],
    refused: AtomicU64,
    tenants_bytes: AtomicU64,
}

impl MemoryMetrics {
    pub(crate) const fn new() -> Self {
        Self {
            sleeps: [const { AtomicU64::new(0) }; 4],
            refused: AtomicU64::new(0),
            tenants_bytes: AtomicU64::new(0),
        }
    }

    pub(crate) fn put_to_sleep(&self, reason: SleepReason) {
        let index = SleepReason::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(0);
        self.sleeps[index].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn wake_refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn measured(&self, bytes: u64) {
        self.tenants_bytes.store(bytes, Ordering::Relaxed);
    }

    pub(crate) fn render(&self, out: &mut String) {
        super::header(
            out,
            "ten_memory_sleeps_total",
            "Idle on-demand instances put to sleep to keep memory within its budget, by reason.",
            "counter",
        );
        for (reason, counter) in SleepReason::ALL.iter().zip(&self.sleeps) {
            let _ = writeln!(
                out,
                "ten_memory_sleeps_total{{reason=\"{}\"}} {}",
                reason.as_str(),
                counter.load(Ordering::Relaxed)
            );
        }
        super::counter(
            out,
            "ten_memory_wakes_refused_total",
            "Wakes answered 503 because memory_limit_total had no room and no idle instance could be put to sleep.",
            &self.refused,
        );
        super::gauge(
            out,
            "ten_memory_tenants_bytes",
            "The tenants' memory (working set) at the last look, with memory_target or memory_limit_total set.",
            self.tenants_bytes.load(Ordering::Relaxed),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleeps_are_counted_by_reason() {
        let metrics = MemoryMetrics::new();
        metrics.put_to_sleep(SleepReason::Room);
        metrics.put_to_sleep(SleepReason::Room);
        metrics.wake_refused();
        metrics.measured(5 << 20);
        let mut out = String::new();
        metrics.render(&mut out);
        assert!(
            out.contains("ten_memory_sleeps_total{reason=\"room\"} 2\n"),
            "{out}"
        );
        assert!(
            out.contains("ten_memory_sleeps_total{reason=\"target\"} 0\n"),
            "{out}"
        );
        assert!(out.contains("ten_memory_wakes_refused_total 1\n"), "{out}");
        assert!(out.contains("ten_memory_tenants_bytes 5242880\n"), "{out}");
    }
}
