//! The health of ten's durable writes: the state record (`state.json`) and the process
//! table. A write that fails (the disk is full, an I/O error) is not only a line in ten's log:
//! it is kept here until the same kind of write succeeds again, for `ten ps`, the API, events
//! and the metrics (`ten_durable_write_failures_total`, `ten_durable_write_failing`).
//!
//! Process-wide, like the metrics: every writer reports each outcome with [`report`].
//! Imports nothing else of `runtime`.

use std::io;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// What was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `state.json`, the observed-state record.
    Record,
    /// An entry of the process table (`.ten/processes/`).
    ProcessTable,
}

impl Kind {
    pub const ALL: [Kind; 2] = [Kind::Record, Kind::ProcessTable];

    /// The metrics' `file` label.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Record => "record",
            Kind::ProcessTable => "process_table",
        }
    }

    /// What an operator reads.
    pub fn describe(self) -> &'static str {
        match self {
            Kind::Record => "the state record (state.json)",
            Kind::ProcessTable => "the process table (.ten/processes)",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A kind of write that fails, since when and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failing {
    pub kind: Kind,
    /// The last error.
    pub error: String,
    pub since_unix: u64,
    /// Writes failed since the last success.
    pub failures: u64,
}

static FAILING: Mutex<[Option<Failing>; 2]> = Mutex::new([None, None]);
/// Changes whenever a kind starts or stops failing (for whoever tells the operator).
static CHANGES: AtomicU64 = AtomicU64::new(0);
/// Wakes the one who tells the operator (a permit is kept if it is not waiting).
static CHANGED: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Takes in the outcome of a write of `kind`.
pub fn report(kind: Kind, outcome: &io::Result<()>) {
    let metrics = crate::metrics::global();
    let mut failing = FAILING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let slot = &mut failing[kind.index()];
    match outcome {
        Ok(()) => {
            if slot.take().is_some() {
                metrics.durable_write_recovered(kind.index());
                CHANGES.fetch_add(1, Ordering::Relaxed);
                CHANGED.notify_one();
                tracing::info!(file = kind.label(), "{} is written again", kind.describe());
            }
        }
        Err(error) => {
            metrics.durable_write_failed(kind.index());
            match slot {
                Some(failing) => {
                    failing.failures += 1;
                    failing.error = error.to_string();
                }
                None => {
                    *slot = Some(Failing {
                        kind,
                        error: error.to_string(),
                        since_unix: crate::observed::record::unix_now(),
                        failures: 1,
                    });
                    CHANGES.fetch_add(1, Ordering::Relaxed);
                    CHANGED.notify_one();
                    tracing::error!(file = kind.label(), %error, "cannot write {}", kind.describe());
                }
            }
        }
    }
}

/// The kinds of write that fail now.
pub fn failing() -> Vec<Failing> {
    let failing = FAILING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    failing.iter().flatten().cloned().collect()
}

/// Returns when a kind started or stopped failing since the last call returned (for the one
/// task that tells the operator).
pub async fn changed() {
    CHANGED.notified().await;
}

/// A number that changes whenever a kind starts or stops failing.
pub fn changes() -> u64 {
    CHANGES.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_is_kept_until_the_next_success_of_its_kind() {
        let before = changes();
        report(Kind::ProcessTable, &Err(io::Error::from_raw_os_error(28)));
        report(Kind::ProcessTable, &Err(io::Error::from_raw_os_error(28)));
        let now = failing();
        let table = now
            .iter()
            .find(|failing| failing.kind == Kind::ProcessTable)
            .unwrap();
        assert_eq!(table.failures, 2);
        assert!(table.error.contains("No space left on device"), "{table:?}");
        assert_eq!(changes(), before + 1, "one change: it started failing");
        report(Kind::Record, &Ok(()));
        assert!(failing().iter().any(|f| f.kind == Kind::ProcessTable));
        report(Kind::ProcessTable, &Ok(()));
        assert!(failing().iter().all(|f| f.kind != Kind::ProcessTable));
        assert_eq!(changes(), before + 2);
    }
}
