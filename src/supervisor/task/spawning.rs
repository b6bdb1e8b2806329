//! How an instance's task starts its process: the port kept (or moved when another program
//! took it), the launch built, a startup permit taken, the output capture attached at a first
//! start, and the runtime asked.

use std::sync::Arc;

use tokio::sync::OwnedSemaphorePermit;

use crate::config::Listen;
use crate::runtime::ports::port_is_free;
use crate::runtime::{Runtime, SpawnError, Started};

use super::super::launch::build_launch;
use super::{Boxed, InstanceTask};

impl<R: Runtime> InstanceTask<R> {
    pub(super) fn spawn_future(
        &mut self,
    ) -> Boxed<(Option<OwnedSemaphorePermit>, Result<Started, SpawnError>)> {
        // Keep the port unless something else took it meanwhile (a worker has none).
        let port = if self.spec.listen == Listen::None {
            Ok(0)
        } else {
            let mut ports = self
                .shared
                .ports
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            ports.allocate(&self.key, Some(self.port), port_is_free)
        };
        match port {
            Ok(port) if port != self.port => {
                self.shared.events.record(
                    Some(&self.key),
                    "lifecycle",
                    format!(
                        "port {} is taken by another program; moving to {port}",
                        self.port
                    ),
                    None,
                );
                self.port = port;
            }
            Ok(_) => {}
            Err(error) => return Box::pin(async move { (None, Err(SpawnError::NoPort(error))) }),
        }
        let capture = self.shared.logs.paths(&self.key);
        let launch = build_launch(&self.spec, self.port, &self.shared.base_env, &capture);
        let shared = Arc::clone(&self.shared);
        // An instance created asleep is attached to the capture at its first start.
        let attach = (!self.shared.logs.attached(&self.key))
            .then(|| (self.key.clone(), self.spec.log_files.clone()));
        Box::pin(async move {
            let permit = Arc::clone(&shared.startup_permits)
                .acquire_owned()
                .await
                .expect("the startup semaphore is never closed");
            if let Some((key, log_files)) = attach {
                let logs = Arc::clone(&shared.logs);
                let attached = tokio::task::spawn_blocking(move || {
                    logs.attach(&key, &log_files)
                        .err()
                        .map(|error| (key, error))
                })
                .await;
                if let Ok(Some((key, error))) = attached {
                    tracing::warn!(instance = %key, %error, "cannot capture output");
                }
            }
            let started = shared.runtime.start(launch).await;
            (Some(permit), started)
        })
    }
}
