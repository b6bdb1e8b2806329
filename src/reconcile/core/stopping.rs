//! Stops in `stop_order`: on shutdown and whenever several stops are due (a bulk
//! `ten stop`, files edited at once), the instances of the lowest order stop first, all of
//! them at once, and the next order waits until they are gone. A stop is *queued* when it is
//! decided and *under way* once its task was told; a queued stop is released when no queued or
//! under-way stop has a lower order. An under-way stop ends when its process is gone, or
//! holds the later orders at most its `stop_timeout` and [`GRACE`] (the task sends SIGKILL at
//! `stop_timeout`; this only bounds a process that outlives even that).
//!
//! On shutdown every task is queued; once nothing is queued or under way the core asks the
//! actor to exit ([`Effect::Exit`]).

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::names::InstanceKey;
use crate::observed::Phase;

use super::{Core, Effect, Note, Order, note_of};

/// How long past its `stop_timeout` a stop under way holds the later orders.
pub const GRACE: Duration = Duration::from_secs(5);

/// The stops the core keeps in order.
#[derive(Debug, Default)]
pub(super) struct Stops {
    /// Decided, waiting for the lower orders: the order, and why (for the event).
    queued: BTreeMap<InstanceKey, (i32, Option<String>)>,
    /// Told to the task: the order, and until when it holds later orders.
    under_way: BTreeMap<InstanceKey, (i32, Instant)>,
}

/// ten is exiting.
#[derive(Debug)]
pub(super) struct Exit {
    /// The actor was asked to exit (after the last stop, or at once to keep the tenants).
    pub told: bool,
}

impl Stops {
    /// Forgets `key`'s stop: it was started, replaced, restarted or removed meanwhile.
    pub(super) fn forget(&mut self, key: &InstanceKey) {
        self.queued.remove(key);
        self.under_way.remove(key);
    }

    fn lowest(&self) -> Option<i32> {
        self.queued
            .values()
            .map(|(order, _)| *order)
            .chain(self.under_way.values().map(|(order, _)| *order))
            .min()
    }

    /// When an under-way stop stops holding the later orders, if any waits for it.
    pub(super) fn deadline(&self) -> Option<Instant> {
        if self.queued.is_empty() {
            return None;
        }
        self.under_way.values().map(|(_, until)| *until).min()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.queued.is_empty() && self.under_way.is_empty()
    }
}

impl Core {
    /// The stop_order of `key` (0 for an instance no longer declared).
    fn stop_order(&self, key: &InstanceKey) -> i32 {
        self.desired
            .instances
            .get(key)
            .map_or(0, |spec| spec.stop_order)
    }

    /// Decides to stop `key`: queued, released in order by [`Core::release_stops`]. False when
    /// its stop is queued or under way already.
    pub(super) fn queue_stop(&mut self, key: &InstanceKey, reason: Option<String>) -> bool {
        if self.stops.queued.contains_key(key) || self.stops.under_way.contains_key(key) {
            return false;
        }
        let order = self.stop_order(key);
        self.stops.queued.insert(key.clone(), (order, reason));
        true
    }

    /// On shutdown: every task's stop, in order.
    pub(super) fn queue_every_stop(&mut self) {
        let keys: Vec<InstanceKey> = self.tasks.iter().cloned().collect();
        for key in keys {
            self.queue_stop(&key, None);
        }
    }

    /// Ends the stops that are done (or waited for long enough), then tells the tasks of
    /// the lowest order waiting to stop. Exiting, the exit follows the last stop.
    pub(super) fn release_stops(&mut self, now: Instant, effects: &mut Vec<Effect>) {
        self.end_stops(now, effects);
        while let Some(lowest) = self.stops.lowest() {
            let wave: Vec<(InstanceKey, Option<String>)> = self
                .stops
                .queued
                .iter()
                .filter(|(_, (order, _))| *order == lowest)
                .map(|(key, (_, reason))| (key.clone(), reason.clone()))
                .collect();
            if wave.is_empty() {
                break;
            }
            if self.exit.is_some() {
                effects.push(Effect::Record(note_of(
                    None,
                    "stop",
                    format!(
                        "stopping {} instance{} of stop_order {lowest}",
                        wave.len(),
                        if wave.len() == 1 { "" } else { "s" }
                    ),
                )));
            }
            for (key, reason) in wave {
                self.stops.queued.remove(&key);
                self.tell_stop(&key, lowest, reason, now, effects);
            }
            // Stops of processes already gone end at once: the next order may follow.
            self.end_stops(now, effects);
        }
        if let Some(exit) = &mut self.exit
            && !exit.told
            && self.stops.is_empty()
        {
            exit.told = true;
            effects.push(Effect::Exit {
                keep: false,
                stop_timeout: self.longest_stop_timeout(),
            });
        }
    }

    fn tell_stop(
        &mut self,
        key: &InstanceKey,
        order: i32,
        reason: Option<String>,
        now: Instant,
        effects: &mut Vec<Effect>,
    ) {
        if !self.tasks.contains(key) {
            return;
        }
        effects.push(Effect::Order {
            key: key.clone(),
            order: Order::Stop,
        });
        effects.push(Effect::RetireNow(key.clone()));
        let stop_timeout = self
            .desired
            .instances
            .get(key)
            .map_or(Duration::from_secs(10), |spec| spec.stop_timeout);
        self.stops
            .under_way
            .insert(key.clone(), (order, now + stop_timeout + GRACE));
        if let Some(instance) = self.observed.instances.get_mut(key) {
            // A spawn under way keeps its phase: the stop ends once it is gone.
            if !(instance.phase == Phase::Starting && instance.pid.is_none()) {
                instance.phase = Phase::Stopping;
            }
        }
        if self.exit.is_none() {
            self.routes_dirty = true;
            effects.push(Effect::Record(Note {
                reason,
                ..note_of(Some(key), "stop", "stopping".into())
            }));
        }
        self.bump(now);
    }

    /// Ends the stops under way whose process is gone (or whose time is up).
    fn end_stops(&mut self, now: Instant, effects: &mut Vec<Effect>) {
        let waiting = !self.stops.queued.is_empty();
        let observed = &self.observed.instances;
        let tasks = &self.tasks;
        let mut late = Vec::new();
        self.stops.under_way.retain(|key, (_, until)| {
            let gone = !tasks.contains(key)
                || observed.get(key).is_none_or(|instance| {
                    instance.pid.is_none() && instance.phase != Phase::Starting
                });
            if !gone && now >= *until {
                late.push(key.clone());
                return false;
            }
            !gone
        });
        if waiting {
            for key in late {
                effects.push(Effect::Record(Note {
                    warning: true,
                    ..note_of(
                        Some(&key),
                        "stop",
                        "still not stopped; the next stop_order does not wait for it any longer"
                            .into(),
                    )
                }));
            }
        }
    }

    fn longest_stop_timeout(&self) -> Duration {
        self.desired
            .instances
            .values()
            .map(|spec| spec.stop_timeout)
            .max()
            .unwrap_or_default()
    }
}
