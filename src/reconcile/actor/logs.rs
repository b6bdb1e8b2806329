//! The output capture of the tasks a round of effects makes or gives a new spec: set up on a
//! blocking thread, before the tasks can write anything. A new instance with no output on
//! disk is left to its task, which attaches it at its first start.

use std::sync::Arc;

use crate::runtime::Runtime;

use super::super::core::{Effect, First, Order};
use super::Reconciler;

impl<R: Runtime> Reconciler<R> {
    /// Starts capturing the output of the tasks `effects` make, before they can write any, and
    /// points the capture of instances given a new spec at the log files it names: on a
    /// blocking thread (it reads and opens files). An instance created to start or asleep
    /// that has no output on disk yet is attached by its task at its first start instead,
    /// before the process can write: ten keeps nothing (memory, files, a directory to sweep)
    /// for instances that never ran, and a burst of new instances makes their directories
    /// as each starts, under the startup permits, rather than all of them, one after
    /// another, before the first can start. An adopted process is attached at once.
    pub(super) async fn attach_logs(&self, effects: &[Effect]) {
        let mut attach = Vec::new();
        let mut retarget = Vec::new();
        for effect in effects {
            match effect {
                Effect::Spawn {
                    key, spec, first, ..
                } => attach.push((
                    key.clone(),
                    Arc::clone(spec),
                    // Attached by its task before its first start (adopted: running now).
                    !matches!(first, First::Adopt(_)),
                )),
                Effect::Replace { key, spec, .. }
                | Effect::Order {
                    key,
                    order: Order::Start(spec) | Order::Replace(spec) | Order::Update(spec),
                } => retarget.push((key.clone(), Arc::clone(spec))),
                _ => {}
            }
        }
        if attach.is_empty() && retarget.is_empty() {
            return;
        }
        let logs = Arc::clone(&self.shared.logs);
        let attached = tokio::task::spawn_blocking(move || {
            for (key, spec) in retarget {
                logs.set_log_files(&key, &spec.log_files);
            }
            attach
                .into_iter()
                .filter(|(key, _, deferred)| !deferred || logs.paths(key).log_dir.exists())
                .filter_map(|(key, spec, _)| {
                    let error = logs.attach(&key, &spec.log_files).err()?;
                    Some((key, error))
                })
                .collect::<Vec<_>>()
        })
        .await;
        match attached {
            Ok(failed) => {
                for (key, error) in failed {
                    tracing::warn!(instance = %key, %error, "cannot capture output");
                }
            }
            Err(error) => tracing::warn!(%error, "cannot capture output"),
        }
    }
}
