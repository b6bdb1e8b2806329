//! Events in, effects out: what each [`Event`] does to the core, ten's shutdown, and the
//! route table asked for after an event. Must not touch a file, a process or a clock, or
//! import tokio beyond its `Instant`.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::observed::Phase;

use super::schedule::{RESYNC, RESYNC_MAX, RESYNC_SHARE};
use super::{Core, Effect, Event, Note, Order, note, note_of, stopping};

impl Core {
    pub fn handle(&mut self, event: Event, now: Instant) -> Vec<Effect> {
        let mut effects = Vec::new();
        // Exiting, only the tasks' statuses are taken in (for the stops in order and the
        // record), and time, which ends stops that take too long.
        if self.exit.is_some() {
            match event {
                Event::Status { key, status } => {
                    self.refresh(&key, status, now, &mut effects);
                    self.stop_reported(&key);
                }
                Event::Tick => {}
                _ => return effects,
            }
            self.release_stops(now, &mut effects);
            return effects;
        }
        match event {
            Event::FilesChanged => self.files_changed = true,
            Event::ReloadNow => {
                self.files_changed = false;
                effects.push(Effect::Reload);
            }
            Event::Reloaded(reload) => {
                if let Some(started) = self.reload_started.take() {
                    let took = now.saturating_duration_since(started);
                    self.resync_every = (took * RESYNC_SHARE).clamp(RESYNC, RESYNC_MAX);
                }
                self.reloaded(*reload, &mut effects);
                match self.apply.take() {
                    Some(token) => self.apply(token, now, &mut effects),
                    None => self.pass(now, &mut effects),
                }
            }
            Event::Tick => self.tick(now, &mut effects),
            Event::Spawned { key, port } => {
                if let Some(instance) = self.observed.instances.get_mut(&key) {
                    instance.port = Some(port);
                }
                if let Some(reason) = self.creating.remove(&key) {
                    let asleep = self
                        .observed
                        .instances
                        .get(&key)
                        .is_some_and(|instance| instance.phase == Phase::Sleeping);
                    // Its reason says it sleeps until its first request: the message is
                    // short (of the 5,000 events kept, these are most after a bulk create).
                    // A worker's task reports port 0: it has none.
                    let message = match (asleep, port) {
                        (true, 0) => "asleep".to_string(),
                        (false, 0) => "creating".to_string(),
                        (true, port) => format!("asleep on port {port}"),
                        (false, port) => format!("creating on port {port}"),
                    };
                    effects.push(Effect::Record(Note {
                        reason: Some(reason),
                        ..note_of(Some(&key), "create", message)
                    }));
                }
                self.bump(now);
            }
            Event::Status { key, status } => {
                self.refresh(&key, status, now, &mut effects);
                self.stop_reported(&key);
                self.narrow_pass();
            }
            Event::SpawnRefused { key, error } => {
                self.creating.remove(&key);
                self.tasks.remove(&key);
                self.stops.forget(&key);
                self.observed.instances.remove(&key);
                self.routes_dirty = true;
                effects.push(note(Some(&key), "create", format!("not created: {error}")));
                self.bump(now);
            }
            Event::TakeOver(inheritance) => self.take_over(*inheritance, now, &mut effects),
            Event::Apply { token } => {
                self.apply = Some(token);
                self.files_changed = false;
                effects.push(Effect::Reload);
            }
            Event::Restart { key, force } => {
                if self.tasks.contains(&key) && self.desired.instances.contains_key(&key) {
                    self.stops.forget(&key);
                    let (order, message) = if force {
                        (Order::ForceRestart, "restarting on request, with SIGKILL")
                    } else {
                        (Order::Restart, "restarting on request")
                    };
                    effects.push(Effect::Order {
                        key: key.clone(),
                        order,
                    });
                    effects.push(note(Some(&key), "restart", message.into()));
                }
            }
            Event::Shutdown => self.shutdown(&mut effects),
        }
        self.release_stops(now, &mut effects);
        self.publish_routes(&mut effects);
        effects
    }

    /// ten is exiting: every tenant stops, in `stop_order` (see `stopping`), unless
    /// `keep_tenants_on_exit`.
    fn shutdown(&mut self, effects: &mut Vec<Effect>) {
        let keep = self.desired.config.settings.keep_tenants_on_exit;
        effects.push(note(
            None,
            "serve",
            if keep {
                "exiting; tenants keep running (keep_tenants_on_exit)".into()
            } else {
                "exiting; stopping every tenant, lowest stop_order first".into()
            },
        ));
        self.exit = Some(stopping::Exit { told: keep });
        if keep {
            effects.push(Effect::Exit {
                keep,
                stop_timeout: Duration::ZERO,
            });
        } else {
            self.queue_every_stop();
        }
    }

    /// Asks for a new route table when instances, weights or routing changed. While changes
    /// are held, the instances whose destroy waits keep their routes: a held destroy (an
    /// accidental delete of most of instances/, or any with `auto_apply = false`) must not
    /// take tenants off the network before it is applied.
    fn publish_routes(&mut self, effects: &mut Vec<Effect>) {
        if !std::mem::take(&mut self.routes_dirty) {
            return;
        }
        let held_destroys = self.held.is_some()
            && self
                .applied
                .instances
                .keys()
                .any(|key| !self.desired.instances.contains_key(key));
        let routed = if held_destroys {
            let mut routed = (*self.desired).clone();
            crate::desired::keep_undeclared(&self.applied, &mut routed);
            Arc::new(routed)
        } else {
            Arc::clone(&self.desired)
        };
        effects.push(Effect::PublishRoutes(routed));
    }
}
