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

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::time::Instant;

use crate::names::InstanceKey;
use crate::observed::Phase;

use super::{Core, Effect, Note, Order, note_of};

/// How long past its `stop_timeout` a stop under way holds the later orders.
pub const GRACE: Duration = Duration::from_secs(5);

/// The stops the core keeps in order, indexed so that each event costs O(log n) however
/// many instances stop (10,000 at a shutdown are common).
#[derive(Debug, Default)]
pub(super) struct Stops {
    /// Decided, waiting for the lower orders: by order, each with why (for the event).
    queued: BTreeMap<i32, BTreeMap<InstanceKey, Option<String>>>,
    /// The order of each queued stop.
    queued_order: BTreeMap<InstanceKey, i32>,
    /// Told to the task: the order, and until when it holds later orders.
    under_way: BTreeMap<InstanceKey, (i32, Instant)>,
    /// How many stops of each order are under way.
    under_way_count: BTreeMap<i32, usize>,
    /// The deadlines of the stops under way.
    deadlines: BTreeSet<(Instant, InstanceKey)>,
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
        if let Some(order) = self.queued_order.remove(key)
            && let Some(wave) = self.queued.get_mut(&order)
        {
            wave.remove(key);
            if wave.is_empty() {
                self.queued.remove(&order);
            }
        }
        self.end(key);
    }

    fn contains(&self, key: &InstanceKey) -> bool {
        self.queued_order.contains_key(key) || self.under_way.contains_key(key)
    }

    fn queue(&mut self, key: InstanceKey, order: i32, reason: Option<String>) {
        self.queued_order.insert(key.clone(), order);
        self.queued.entry(order).or_default().insert(key, reason);
    }

    /// The queued stops of the lowest order, if none under way has a lower one.
    fn next_wave(&mut self) -> Option<(i32, BTreeMap<InstanceKey, Option<String>>)> {
        let (&order, _) = self.queued.first_key_value()?;
        if self
            .under_way_count
            .first_key_value()
            .is_some_and(|(&busy, _)| busy < order)
        {
            return None;
        }
        let wave = self.queued.remove(&order)?;
        for key in wave.keys() {
            self.queued_order.remove(key);
        }
        Some((order, wave))
    }

    fn start(&mut self, key: InstanceKey, order: i32, until: Instant) {
        *self.under_way_count.entry(order).or_default() += 1;
        self.deadlines.insert((until, key.clone()));
        self.under_way.insert(key, (order, until));
    }

    /// The stop of `key` is no longer under way.
    fn end(&mut self, key: &InstanceKey) {
        let Some((order, until)) = self.under_way.remove(key) else {
            return;
        };
        self.deadlines.remove(&(until, key.clone()));
        if let Some(count) = self.under_way_count.get_mut(&order) {
            *count -= 1;
            if *count == 0 {
                self.under_way_count.remove(&order);
            }
        }
    }

    /// When an under-way stop stops holding the later orders, if any waits for it.
    pub(super) fn deadline(&self) -> Option<Instant> {
        if self.queued.is_empty() {
            return None;
        }
        self.deadlines.first().map(|(until, _)| *until)
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
        if self.stops.contains(key) {
            return false;
        }
        let order = self.stop_order(key);
        self.stops.queue(key.clone(), order, reason);
        true
    }

    /// On shutdown: every task's stop, in order.
    pub(super) fn queue_every_stop(&mut self) {
        let keys: Vec<InstanceKey> = self.tasks.iter().cloned().collect();
        for key in keys {
            self.queue_stop(&key, None);
        }
    }

    /// The task of `key` reported: its stop ends if its process is gone.
    pub(super) fn stop_reported(&mut self, key: &InstanceKey) {
        if self.stops.under_way.contains_key(key) && self.stopped(key) {
            self.stops.end(key);
        }
    }

    /// Ends the stops that waited too long, then tells the tasks of the lowest order waiting
    /// to stop. Exiting, the exit follows the last stop.
    pub(super) fn release_stops(&mut self, now: Instant, effects: &mut Vec<Effect>) {
        self.expire_stops(now, effects);
        while let Some((order, wave)) = self.stops.next_wave() {
            if self.exit.is_some() {
                effects.push(Effect::Record(note_of(
                    None,
                    "stop",
                    format!(
                        "stopping {} instance{} of stop_order {order}",
                        wave.len(),
                        if wave.len() == 1 { "" } else { "s" }
                    ),
                )));
            }
            for (key, reason) in wave {
                self.tell_stop(&key, order, reason, now, effects);
            }
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

    /// Tells the task of `key` to stop; the stop is under way until its process is gone
    /// (at once for one that has none).
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
        if !self.stopped(key) {
            self.stops
                .start(key.clone(), order, now + stop_timeout + GRACE);
        }
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

    /// Whether `key` has no process (and none on its way).
    fn stopped(&self, key: &InstanceKey) -> bool {
        !self.tasks.contains(key)
            || self
                .observed
                .instances
                .get(key)
                .is_none_or(|instance| instance.pid.is_none() && instance.phase != Phase::Starting)
    }

    /// Stops under way past their deadline no longer hold the later orders (said when a
    /// later order waits for them).
    fn expire_stops(&mut self, now: Instant, effects: &mut Vec<Effect>) {
        while let Some((until, key)) = self.stops.deadlines.first().cloned()
            && until <= now
        {
            self.stops.end(&key);
            if !self.stops.queued.is_empty() {
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
