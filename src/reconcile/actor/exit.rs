//! The last of an exit: what is left of replaces stopped and waited for (at most the longest
//! stop timeout and a grace), the tasks' last statuses given to the core, the record written.
//! Must not import the API, the proxy or the server.

use std::time::Duration;

use tokio::time::Instant;

use crate::runtime::Runtime;
use crate::supervisor::messages::Command;

use super::super::core::Event;
use super::Reconciler;

impl<R: Runtime> Reconciler<R> {
    /// The last of an exit: the tenants stopped in order already (unless `keep`); what is
    /// left of replaces stops too, waited for at most the longest stop timeout and a grace.
    /// Then the tasks' last statuses go to the core and the record is written.
    pub(super) async fn exit(&mut self, keep: bool, stop_timeout: Duration) {
        if !keep {
            let mut waits = Vec::new();
            let retiring = self.retiring.iter().map(|retiring| &retiring.handle);
            for handle in self.slots.values().map(|slot| &slot.handle).chain(retiring) {
                handle.send(Command::Stop);
                waits.push(handle.status.clone());
            }
            // A task whose start is under way has no pid yet: it is done only once that
            // start has come back and what it started has stopped.
            let all_stopped = async {
                for mut status in waits {
                    let _ = status
                        .wait_for(|s| {
                            s.pid.is_none()
                                && !matches!(
                                    s.phase,
                                    crate::observed::Phase::Starting
                                        | crate::observed::Phase::Stopping
                                )
                        })
                        .await;
                }
            };
            let longest = stop_timeout + super::super::core::GRACE;
            if tokio::time::timeout(longest, all_stopped).await.is_err() {
                tracing::warn!("some tenants did not stop in time");
            }
            while let Ok(key) = self.changed.try_recv() {
                if let Some(slot) = self.slots.get(&key) {
                    let status = slot.handle.status.borrow().clone();
                    self.core
                        .handle(Event::Status { key, status }, Instant::now());
                }
            }
        }
        self.record.write_now(self.core.final_record()).await;
    }
}
