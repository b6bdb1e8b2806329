//! The control API's calls answered: status, plan, reload, apply, the instances with their
//! usage measured when stale, a status to follow, restarts and health checks. Must not import
//! the API: the answers are the reconciler's own types.

use std::sync::Arc;

use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::runtime::Runtime;
use crate::supervisor::messages::Command;

use super::super::core::Event;
use super::super::{Call, Failure, PlanReport, Snapshot};
use super::{Reconciler, usage};

impl<R: Runtime> Reconciler<R> {
    pub(super) async fn call(&mut self, call: Call) {
        match call {
            Call::Status(reply) => {
                let _ = reply.send(self.core.status());
            }
            Call::Plan(reply) => {
                let (plan, diagnostics, held) = self.core.plan();
                let _ = reply.send(PlanReport {
                    plan,
                    diagnostics,
                    held,
                });
            }
            Call::Reload(reply) => {
                self.event(Event::ReloadNow).await;
                let _ = reply.send(self.core.status());
            }
            Call::Apply { token, reply } => {
                self.applying = Some(reply);
                self.event(Event::Apply { token }).await;
            }
            Call::Instances(reply) => {
                // What the running instances use is measured now if their last sample is
                // stale, off this loop; the answer follows.
                let stale = self.stale_usage(crate::supervisor::usage::FRESH, Instant::now());
                let cells: Vec<_> = self
                    .slots
                    .iter()
                    .map(|(key, slot)| (key.clone(), Arc::clone(&slot.handle.usage)))
                    .collect();
                let waits = self
                    .slots
                    .iter()
                    .filter_map(|(key, slot)| Some((key.clone(), slot.gate.last_wait()?)))
                    .collect();
                let (desired, observed) = (
                    Arc::clone(self.core.desired()),
                    self.core.observed().clone(),
                );
                let runtime = Arc::clone(&self.shared.runtime);
                tokio::spawn(async move {
                    usage::sample(&*runtime, stale).await;
                    let usage = cells
                        .into_iter()
                        .filter_map(|(key, cell)| Some((key, cell.load_full()?.usage)))
                        .collect();
                    let _ = reply.send(Snapshot {
                        desired,
                        observed,
                        usage,
                        waits,
                    });
                });
            }
            Call::Watch { key, reply } => {
                let _ = reply.send(self.slots.get(&key).map(|slot| slot.handle.status.clone()));
            }
            Call::Restart { key, force, reply } => {
                let result = self
                    .core
                    .may_restart(&key)
                    .map(|()| self.slots.get(&key).map(|slot| slot.handle.status.clone()));
                self.event(Event::Restart {
                    key: key.clone(),
                    force,
                })
                .await;
                let result = match result {
                    Ok(Some(status)) => Ok(status),
                    Ok(None) => Err(Failure::NotDeclared(key)),
                    Err(failure) => Err(failure),
                };
                let _ = reply.send(result);
            }
            Call::CheckHealth { key, reply } => {
                let result = self.core.check_health(&key).and_then(|()| {
                    let slot = self
                        .slots
                        .get(&key)
                        .ok_or_else(|| Failure::NeverRun(key.clone()))?;
                    let (sender, receiver) = oneshot::channel();
                    slot.handle.send(Command::CheckHealth(sender));
                    Ok(receiver)
                });
                let _ = reply.send(result);
            }
        }
    }
}
