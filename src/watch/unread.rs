//! Whether the files changed since they were last read: what makes the watcher's reads
//! coalesce. The watcher raises it and tells the reader only when it was down; the reader
//! lowers it just before it reads. So every change seen while a reload runs makes exactly
//! one more reload, however many events it took.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Shared by the watcher (which notes changes) and the reconciler (which reads the files).
#[derive(Debug, Clone, Default)]
pub struct Unread(Arc<AtomicBool>);

impl Unread {
    /// Notes a change; whether the reader must be told (the first change since it last
    /// began to read).
    pub fn note(&self) -> bool {
        !self.0.swap(true, Ordering::AcqRel)
    }

    /// The reader is about to read the files: every change noted so far will be in what it
    /// reads.
    pub fn reading(&self) {
        self.0.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_during_a_read_make_one_more_read() {
        let unread = Unread::default();
        assert!(unread.note(), "the first change is told");
        assert!(!unread.note(), "later ones are in the same read");
        unread.reading();
        assert!(unread.note(), "a change during the read is told once");
        assert!(!unread.note());
        assert!(!unread.note());
        unread.reading();
        unread.reading();
        assert!(unread.note());
    }
}
