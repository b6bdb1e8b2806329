//! The core's effects carried out: an event handed to the core and its effects round by round
//! (a reload on a blocking thread, orders to the tasks, the route table, the record, events),
//! what they find out handed back to it, and what a large reload freed given back. Decides
//! nothing; must not import the API, the proxy or the server.

use std::sync::Arc;

use tokio::time::Instant;

use crate::desired::reload;
use crate::runtime::Runtime;
use crate::supervisor::messages::Command;

use super::super::core::{Effect, Event, Note, Order};
use super::super::{ApplyStarted, PendingChange};
use super::Reconciler;

/// From this many declared instances on, the memory a reload freed is given back after it.
const TRIM_FROM_INSTANCES: usize = 1_000;
/// How long after a reload its memory is given back: after the record that follows it.
const TRIM_AFTER_RELOAD: std::time::Duration = std::time::Duration::from_secs(2);

/// From this many tasks made in one event on, the slots are rebuilt after it.
const COMPACT_FROM_SPAWNS: usize = 256;

impl<R: Runtime> Reconciler<R> {
    /// Hands `event` to the core and carries out what it decides, and what follows from it:
    /// round by round, in order, each round's output capture set up at once before its tasks
    /// are made (one blocking call for a burst of thousands).
    pub(super) async fn event(&mut self, event: Event) {
        let passes = self.core.passes();
        let began = std::time::Instant::now();
        let mut reloaded = false;
        let mut spawned = 0;
        let mut round = self.core.handle(event, Instant::now());
        while !round.is_empty() {
            self.attach_logs(&round).await;
            let mut next = Vec::new();
            for effect in round {
                reloaded |= matches!(effect, Effect::Reload);
                spawned += usize::from(matches!(effect, Effect::Spawn { .. }));
                if let Some(found) = self.carry_out(effect).await {
                    next.extend(self.core.handle(found, Instant::now()));
                }
            }
            round = next;
        }
        if self.core.passes() != passes {
            crate::metrics::global().reconcile_pass(began.elapsed());
        }
        if spawned >= COMPACT_FROM_SPAWNS {
            // Filled one key at a time in key order, a B-tree's nodes stay half empty; built
            // at once, they are full (with 10,000 instances, about 70 bytes less each).
            self.slots = std::mem::take(&mut self.slots).into_iter().collect();
        }
        // A reload and what follows allocate in proportion to the instances (their files
        // read in parallel, the plan, the route table, the record written after
        // `FLUSH_DELAY`): what they freed goes back to the system once they are done.
        if reloaded && self.core.desired().instances.len() >= TRIM_FROM_INSTANCES {
            tokio::spawn(async {
                tokio::time::sleep(TRIM_AFTER_RELOAD).await;
                crate::runtime::allocator::give_back();
            });
        }
        // The pass after a reload has ended: the changes it read are taken in.
        crate::metrics::global().lag().pass_ended();
        for note in self.durable.news() {
            self.record_note(note);
        }
    }

    /// Carries out one effect; what it found out, as an event for the core.
    async fn carry_out(&mut self, effect: Effect) -> Option<Event> {
        match effect {
            Effect::Reload => {
                crate::metrics::global().lag().reload_started();
                // Changes from here on are not surely in what is read: one more reload.
                self.unread.reading();
                let config_path = self.config_path.clone();
                let files = self.core.files().clone();
                match tokio::task::spawn_blocking(move || reload(&config_path, &files)).await {
                    Ok(loaded) => return Some(Event::Reloaded(Box::new(loaded))),
                    Err(error) => {
                        tracing::error!(%error, "reload failed; keeping the last valid desired state")
                    }
                }
            }
            Effect::Spawn {
                key,
                spec,
                port,
                first,
            } => return Some(self.spawn(key, spec, port, first)),
            Effect::Replace {
                key,
                spec,
                side_by_side,
                reason,
            } => self.replace(key, spec, side_by_side, reason),
            Effect::Order { key, order } => {
                if let Some(slot) = self.slots.get(&key) {
                    slot.handle.send(match order {
                        Order::Start(spec) => Command::Start(spec),
                        Order::Replace(spec) => Command::Replace(spec),
                        Order::Update(spec) => Command::Update(spec),
                        Order::Stop => Command::Stop,
                        Order::Remove => Command::Remove,
                        Order::Restart => Command::Restart,
                        Order::ForceRestart => Command::ForceRestart,
                    });
                }
            }
            Effect::RetireNow(key) => {
                for retiring in self.retiring.iter().filter(|retiring| retiring.key == key) {
                    retiring.handle.send(Command::Remove);
                }
            }
            Effect::Settings(settings) => {
                self.shared
                    .ports
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .set_range(settings.port_range);
                let settings = self.settings();
                for slot in self.slots.values() {
                    slot.handle.send(Command::Settings(Arc::clone(&settings)));
                }
            }
            Effect::Forget {
                key,
                port,
                remove_data,
            } => self.forget(key, port, remove_data),
            Effect::Inherited { stale, strays } => self.inherited(stale, strays),
            Effect::PublishRoutes(desired) => {
                let slots = &self.slots;
                (self.publish)(&desired, &|key| {
                    slots.get(key).map(|slot| Arc::clone(&slot.gate))
                });
            }
            Effect::WriteRecord(observed) => self.record.write(*observed),
            Effect::Record(note) => self.record_note(note),
            Effect::Applied(applied) => {
                let changes = applied
                    .changes
                    .into_iter()
                    .map(|change| PendingChange {
                        status: change
                            .target
                            .instance()
                            .and_then(|key| self.slots.get(key))
                            .map(|slot| slot.handle.status.clone()),
                        target: change.target.to_string(),
                        action: change.action,
                        timeout: change.timeout,
                    })
                    .collect();
                if let Some(reply) = self.applying.take() {
                    let _ = reply.send(Ok(ApplyStarted {
                        token: applied.token,
                        changes,
                    }));
                }
            }
            Effect::ApplyRefused(failure) => {
                if let Some(reply) = self.applying.take() {
                    let _ = reply.send(Err(failure));
                }
            }
            Effect::Exit { keep, stop_timeout } => {
                self.exit(keep, stop_timeout).await;
                if let Some(done) = self.exited.take() {
                    let _ = done.send(());
                }
                self.finished = true;
            }
        }
        None
    }
    pub(super) fn record_note(&self, note: Note) {
        let events = &self.shared.events;
        let reason = note.reason.as_deref();
        if note.warning {
            events.warn(note.instance.as_ref(), &note.action, note.message, reason);
        } else {
            events.record(note.instance.as_ref(), &note.action, note.message, reason);
        }
    }
}
