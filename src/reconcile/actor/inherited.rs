//! What the previous ten left besides its tenants, carried out: the table entries of processes
//! that are gone forgotten, older processes of replaced instances stopped (their stop signal,
//! SIGKILL after their stop timeout). Must not import the API, the proxy or the server.

use std::sync::Arc;

use crate::desired::InstanceSpec;
use crate::runtime::Runtime;
use crate::runtime::table::ProcessEntry;

use super::Reconciler;

impl<R: Runtime> Reconciler<R> {
    /// What the previous ten left besides its tenants: table entries of processes that are
    /// gone go; older duplicates of instances are stopped.
    pub(super) fn inherited(
        &self,
        stale: Vec<ProcessEntry>,
        strays: Vec<(ProcessEntry, Arc<InstanceSpec>)>,
    ) {
        let shared = Arc::clone(&self.shared);
        if !stale.is_empty() {
            tokio::task::spawn_blocking(move || {
                for entry in &stale {
                    shared.runtime.forget(&entry.instance, entry.pid);
                }
            });
        }
        for (stray, spec) in strays {
            self.stop_stray(stray, spec);
        }
    }

    /// Stops an older process of an instance that has a newer one (left by a ten that died
    /// during a zero-downtime replace): its stop signal, SIGKILL after its stop timeout.
    fn stop_stray(&self, stray: ProcessEntry, spec: Arc<InstanceSpec>) {
        let key = stray.instance.clone();
        let shared = Arc::clone(&self.shared);
        shared.events.record(
            Some(&key),
            "stop",
            format!(
                "stopping pid {}: an older process of {key}, left by a replace the previous ten did not finish",
                stray.pid
            ),
            None,
        );
        tokio::spawn(async move {
            use crate::runtime::GroupSignal;
            let pid = stray.pid;
            let runtime = Arc::clone(&shared.runtime);
            let adopt_key = key.clone();
            let adopted = tokio::task::spawn_blocking(move || {
                runtime.adopt(
                    &adopt_key,
                    stray.pid,
                    stray.start_time,
                    stray.name.as_deref(),
                    stray.sandboxed,
                )
            })
            .await;
            let Ok(Ok(started)) = adopted else {
                shared.runtime.forget(&key, pid);
                return;
            };
            shared
                .runtime
                .signal(pid, GroupSignal::Stop(spec.stop_signal));
            if tokio::time::timeout(spec.stop_timeout, started.exit)
                .await
                .is_err()
            {
                shared.runtime.signal(pid, GroupSignal::Kill);
            }
            shared.runtime.forget(&key, pid);
        });
    }
}
