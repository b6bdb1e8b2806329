//! Reconcile lag: how long a change of the files waits before a pass has taken it in.
//!
//! A change is *noticed* when the file watcher reports it (once the file is whole); it is *taken
//! in* when the pass that follows the reload that read it has ended (applied, or held for
//! `ten apply`: the plan then shows it). Two views of it:
//! - the lag of each change taken in (a histogram): from the first notice since the last
//!   reload to the end of that pass;
//! - the age of the oldest change noticed and not yet taken in (a gauge, 0 when none): the
//!   one to alert on, since a stuck reconciler observes no histogram value at all.
//!
//! Times are nanoseconds of the process's monotonic clock plus one (0: none), in atomics:
//! the watcher notes without waiting for the reconciler.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::histogram::Histogram;
use super::service::nanos_since_start;

/// Lag buckets, in seconds.
pub(crate) const LAG_BUCKETS: [f64; 10] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0];

pub(crate) struct Lag {
    /// The first change noticed and not yet being read.
    noticed: AtomicU64,
    /// The first change of those the reload under way reads.
    reading: AtomicU64,
    pub(super) taken_in: Histogram<10>,
}

impl Lag {
    pub(crate) const fn new() -> Self {
        Self {
            noticed: AtomicU64::new(0),
            reading: AtomicU64::new(0),
            taken_in: Histogram::new(LAG_BUCKETS),
        }
    }

    /// The watcher reports that the files changed (the first report since the last reload
    /// counts).
    pub(crate) fn files_changed(&self) {
        let now = nanos_since_start() + 1;
        let _ = self
            .noticed
            .compare_exchange(0, now, Ordering::AcqRel, Ordering::Acquire);
    }

    /// A reload starts: it reads every change noticed so far.
    pub(crate) fn reload_started(&self) {
        let noticed = self.noticed.swap(0, Ordering::AcqRel);
        if noticed != 0 {
            // A reload whose pass has not ended yet keeps its older notice.
            let _ = self
                .reading
                .compare_exchange(0, noticed, Ordering::AcqRel, Ordering::Acquire);
        }
    }

    /// The pass after a reload has ended: what it read is taken in.
    pub(crate) fn pass_ended(&self) {
        let reading = self.reading.swap(0, Ordering::AcqRel);
        if reading != 0 {
            self.taken_in.observe(Duration::from_nanos(
                (nanos_since_start() + 1).saturating_sub(reading),
            ));
        }
    }

    /// The age of the oldest change noticed and not yet taken in; zero when there is none.
    pub(crate) fn pending(&self) -> Duration {
        let oldest = [&self.reading, &self.noticed]
            .iter()
            .map(|at| at.load(Ordering::Acquire))
            .filter(|at| *at != 0)
            .min();
        oldest.map_or(Duration::ZERO, |at| {
            Duration::from_nanos((nanos_since_start() + 1).saturating_sub(at))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_is_pending_until_the_pass_after_its_reload() {
        let lag = Lag::new();
        assert_eq!(lag.pending(), Duration::ZERO);
        lag.pass_ended();
        assert_eq!(lag.taken_in.count(), 0, "nothing was noticed");
        lag.files_changed();
        std::thread::sleep(Duration::from_millis(5));
        lag.files_changed();
        let first = lag.pending();
        assert!(
            first >= Duration::from_millis(5),
            "{first:?}: the first notice counts"
        );
        lag.reload_started();
        // A change noticed while the reload reads is pending still, behind the older one.
        lag.files_changed();
        assert!(lag.pending() >= first);
        lag.pass_ended();
        assert_eq!(lag.taken_in.count(), 1);
        assert!(lag.pending() < first, "only the later change is pending");
        assert_ne!(lag.pending(), Duration::ZERO);
        lag.reload_started();
        lag.pass_ended();
        assert_eq!(lag.pending(), Duration::ZERO);
        assert_eq!(lag.taken_in.count(), 2);
        // A reload nobody noticed a change for (the periodic one) observes nothing.
        lag.reload_started();
        lag.pass_ended();
        assert_eq!(lag.taken_in.count(), 2);
    }
}
