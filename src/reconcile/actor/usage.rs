//! Usage sampled on demand: when the instances are asked for, the running instances whose
//! last sample is stale ([`crate::supervisor::usage::wanted`]) are measured then, all in one
//! call of the runtime (one blocking thread), by a task of its own so that the reconciler's
//! loop does not wait; the answer goes out once they are measured.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::desired::DesiredState;
use crate::names::InstanceKey;
use crate::runtime::Runtime;
use crate::supervisor::usage::{UsageCell, store, wanted};

use super::Reconciler;

impl<R: Runtime> Reconciler<R> {
    /// The running instances whose last sample is older than `fresh` at `now`.
    pub(super) fn stale_usage(&self, fresh: Duration, now: Instant) -> Vec<Stale> {
        stale(
            self.slots
                .iter()
                .map(|(key, slot)| (key, slot.handle.status.borrow().pid, &slot.handle.usage)),
            self.core.desired(),
            fresh,
            now,
        )
    }
}

/// A running instance to measure.
pub(super) struct Stale {
    pid: u32,
    /// Its data directory, when it is to be walked too.
    data_dir: Option<PathBuf>,
    cell: UsageCell,
}

/// The running instances of `instances` (each its pid and usage cell) whose last sample is
/// older than `fresh` at `now`.
fn stale<'a>(
    instances: impl Iterator<Item = (&'a InstanceKey, Option<u32>, &'a UsageCell)>,
    desired: &DesiredState,
    fresh: Duration,
    now: Instant,
) -> Vec<Stale> {
    instances
        .filter_map(|(key, pid, cell)| {
            let pid = pid?;
            let walk = wanted(cell.load().as_deref(), pid, fresh, now)?;
            let data_dir = walk
                .then(|| {
                    desired
                        .instances
                        .get(key)
                        .map(|spec| spec.data_dir().to_path_buf())
                })
                .flatten();
            Some(Stale {
                pid,
                data_dir,
                cell: Arc::clone(cell),
            })
        })
        .collect()
}

/// Measures `stale` and keeps each sample in its instance's cell.
pub(super) async fn sample<R: Runtime>(runtime: &R, stale: Vec<Stale>) {
    if stale.is_empty() {
        return;
    }
    let wanted = stale
        .iter()
        .map(|stale| (stale.pid, stale.data_dir.clone()))
        .collect();
    let measured = runtime.usages(wanted).await;
    let now = Instant::now();
    for (stale, usage) in stale.iter().zip(measured) {
        store(&stale.cell, stale.pid, usage, stale.data_dir.is_some(), now);
    }
}
