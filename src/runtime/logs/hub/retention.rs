//! The retention of the kept files: set from the settings, and the sweep of what it no
//! longer keeps, at once and periodically (a rotation enforces it too). Uses `searches` of
//! `hub` (the log directories); imports nothing of `runtime` outside `logs`.

use std::fs;
use std::sync::Arc;

use crate::config::LogRetention;

use super::super::line::unix_millis;
use super::super::store::{OUTPUT_LOG, age_cutoff, enforce, modified_ms};
use super::LogHub;
use super::searches::instance_of;

impl LogHub {
    /// Keeps `retention` of each instance's output from now on (files are removed at the next
    /// rotation or [`LogHub::sweep`]).
    pub fn set_retention(&self, retention: LogRetention) {
        self.lock().retention = retention;
    }

    pub fn retention(&self) -> LogRetention {
        self.lock().retention
    }

    /// Removes what `log_retention` no longer keeps, of every instance with output on disk
    /// (attached or not): rotated files beyond its size or older than its age. An attached
    /// instance's `output.log` last written before the age is rotated first (then removed
    /// with the others); a detached one's is removed. Blocking: the directories are listed.
    pub fn sweep(&self) {
        let now = unix_millis();
        for log_dir in self.log_dirs(None) {
            let key = instance_of(&log_dir);
            let mut state = self.lock();
            let retention = state.retention;
            let cutoff = age_cutoff(&retention, now);
            let output = log_dir.join(OUTPUT_LOG);
            let stale = cutoff.is_some_and(|cutoff| {
                modified_ms(&output).is_some_and(|modified| modified < cutoff)
            });
            match key.and_then(|key| state.instances.get_mut(&key)) {
                Some(logs) if stale && logs.output.size > 0 => {
                    logs.output.rotate();
                    logs.record();
                }
                Some(_) => {}
                None if stale => {
                    let _ = fs::remove_file(&output);
                }
                None => {}
            }
            drop(state);
            enforce(&log_dir, &retention, now);
        }
    }

    /// Sweeps (see [`LogHub::sweep`]) at once and then every [`store::sweep_interval`] of the
    /// retention of the moment, on a blocking thread, for as long as the task runs.
    pub async fn sweep_forever(self: Arc<Self>) {
        loop {
            let hub = Arc::clone(&self);
            let _ = tokio::task::spawn_blocking(move || hub.sweep()).await;
            tokio::time::sleep(super::super::store::sweep_interval(&self.retention())).await;
        }
    }
}

#[cfg(test)]
mod tests;
