//! Writing the observed-state record (`{data_dir}/state.json`) for `ten diff --offline` and
//! for a restarted ten: off the async runtime, and never an older state over a newer one.
//! When to write is the core's decision (`Effect::WriteRecord`).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::observed::{ObservedState, write_record};

pub(super) struct RecordWriter {
    data_dir: PathBuf,
    /// The generation last written; a write of an older one is skipped.
    written: Arc<Mutex<u64>>,
}

impl RecordWriter {
    pub(super) fn new(data_dir: PathBuf) -> Self {
        Self {
            data_dir,
            written: Arc::default(),
        }
    }

    /// Writes in the background.
    pub(super) fn write(&self, observed: ObservedState) {
        tokio::task::spawn_blocking(self.write_task(observed));
    }

    /// Writes and waits (at shutdown).
    pub(super) async fn write_now(&self, observed: ObservedState) {
        let _ = tokio::task::spawn_blocking(self.write_task(observed)).await;
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
