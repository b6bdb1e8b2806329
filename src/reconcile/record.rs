//! Writing the observed-state record (`{data_dir}/state.json`) for `ten diff --offline` and
//! for a restarted ten: off the async runtime, and never an older state over a newer one.
//! When to write is the core's decision (`Effect::WriteRecord`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::observed::{ObservedState, write_record};
use crate::runtime::durable;

pub(super) struct RecordWriter {
    data_dir: PathBuf,
    /// The generation last written; a write of an older one is skipped.
    written: Arc<Mutex<u64>>,
    /// The newest generation asked for: a failed write is tried again until it is written or
    /// a newer one is asked for (which then tries).
    asked: Arc<AtomicU64>,
}

/// How long a failed write waits before it is tried again.
const RETRY: Duration = Duration::from_secs(1);

impl RecordWriter {
    pub(super) fn new(data_dir: PathBuf) -> Self {
        Self {
            data_dir,
            written: Arc::default(),
            asked: Arc::default(),
        }
    }

    /// Writes in the background, trying again every [`RETRY`] while it fails (a full disk):
    /// see `runtime::durable` for how the failure is told.
    pub(super) fn write(&self, observed: ObservedState) {
        self.asked.fetch_max(observed.generation, Ordering::AcqRel);
        let task = self.write_task(observed);
        tokio::spawn(async move {
            while let Ok(Attempt::Failed) = tokio::task::spawn_blocking(task.clone()).await {
                tokio::time::sleep(RETRY).await;
            }
        });
    }

    /// Writes and waits (at shutdown): one try.
    pub(super) async fn write_now(&self, observed: ObservedState) {
        self.asked.fetch_max(observed.generation, Ordering::AcqRel);
        let _ = tokio::task::spawn_blocking(self.write_task(observed)).await;
    }

    fn write_task(&self, observed: ObservedState) -> impl Fn() -> Attempt + Clone + Send + 'static {
        let data_dir = self.data_dir.clone();
        let written = Arc::clone(&self.written);
        let asked = Arc::clone(&self.asked);
        let observed = Arc::new(observed);
        move || {
            let mut last = written
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if observed.generation <= *last || observed.generation < asked.load(Ordering::Acquire) {
                return Attempt::Done;
            }
            let outcome = write_record(&data_dir, &observed);
            let attempt = match &outcome {
                Ok(()) => {
                    *last = observed.generation;
                    Attempt::Done
                }
                Err(_) => Attempt::Failed,
            };
            durable::report(durable::Kind::Record, &outcome);
            attempt
        }
    }
}

/// How one try went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempt {
    Done,
    Failed,
}
