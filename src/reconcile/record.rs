//! Writing the observed-state record (`{data_dir}/state.json`) for `ten diff --offline` and
//! for a restarted ten: at most every [`FLUSH_DELAY`] while things change, off the async
//! runtime, and never an older state over a newer one.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::observed::{ObservedState, write_record};

pub const FLUSH_DELAY: Duration = Duration::from_millis(250);

pub struct RecordWriter {
    data_dir: PathBuf,
    dirty_since: Option<Instant>,
    /// The generation last written; a write of an older one is skipped.
    written: Arc<Mutex<u64>>,
}

impl RecordWriter {
    pub fn new(data_dir: PathBuf) -> Self {
        Self {
            data_dir,
            dirty_since: None,
            written: Arc::default(),
        }
    }

    pub fn mark_dirty(&mut self) {
        self.dirty_since.get_or_insert_with(Instant::now);
    }

    /// When the next write is due, if one is.
    pub fn due(&self) -> Option<Instant> {
        self.dirty_since.map(|since| since + FLUSH_DELAY)
    }

    /// Writes in the background.
    pub fn flush(&mut self, observed: &ObservedState) {
        self.dirty_since = None;
        let task = self.write_task(observed.clone());
        tokio::task::spawn_blocking(task);
    }

    /// Writes and waits (at shutdown).
    pub async fn flush_now(&mut self, observed: &ObservedState) {
        self.dirty_since = None;
        let task = self.write_task(observed.clone());
        let _ = tokio::task::spawn_blocking(task).await;
    }

    fn write_task(&self, observed: ObservedState) -> impl FnOnce() + Send + 'static {
        let data_dir = self.data_dir.clone();
        let written = Arc::clone(&self.written);
        move || {
            let mut last = written
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if observed.generation <= *last {
                return;
            }
            match write_record(&data_dir, &observed) {
                Ok(()) => *last = observed.generation,
                Err(error) => {
                    tracing::error!(%error, dir = %data_dir.display(), "cannot write the state record")
                }
            }
        }
    }
}
