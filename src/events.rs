//! The event log: every reconcile action and lifecycle transition, with time, instance,
//! action, message and reason. A bounded ring for `ten events` and a broadcast for
//! `ten events -f` ([`Follower`]: a follower that falls behind the broadcast catches up from
//! the ring); each event is also a tracing line.

use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::names::{InstanceKey, ServiceName};
use crate::runtime::logs::unix_millis;

/// Events kept in memory.
pub(crate) const KEPT_EVENTS: usize = 5000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub at_unix_ms: u64,
    /// `None` for events about ten itself (config reloads, held plans).
    pub instance: Option<InstanceKey>,
    /// What happened: `create`, `replace`, `stop`, ... for reconcile actions; `lifecycle`,
    /// `health`, `exit` for what the supervisor saw; `config`, `apply`, `serve` for ten.
    pub action: Box<str>,
    pub message: Box<str>,
    /// Why, when the action was planned (`because instances/notes/carol.toml declares it`).
    pub reason: Option<Box<str>>,
}

/// Which events a reader asks for: those of one instance, of the instances of some services
/// (`ten events SERVICE`, `ten events group:NAME`), both, or, with neither, every event
/// (those about ten itself too).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    pub instance: Option<InstanceKey>,
    pub services: Option<BTreeSet<ServiceName>>,
}

impl EventFilter {
    /// Only the events of `key`.
    pub fn instance(key: InstanceKey) -> EventFilter {
        EventFilter {
            instance: Some(key),
            services: None,
        }
    }

    pub fn matches(&self, event: &Event) -> bool {
        match (&event.instance, &self.instance, &self.services) {
            (_, None, None) => true,
            (None, _, _) => false,
            (Some(key), instance, services) => {
                instance.as_ref().is_none_or(|wanted| wanted == key)
                    && services
                        .as_ref()
                        .is_none_or(|services| services.contains(&key.service))
            }
        }
    }
}

/// The ring and the broadcast share each event (the broadcast keeps its last 1,024 for
/// slow followers).
#[derive(Clone)]
pub struct EventLog {
    ring: Arc<Mutex<Ring>>,
    sender: broadcast::Sender<Arc<Event>>,
}

/// The events kept, and the number of the oldest: the `n`th event ever recorded is
/// `events[n - first]` while it is kept.
struct Ring {
    events: VecDeque<Arc<Event>>,
    first: u64,
}

impl Ring {
    /// The number the next event recorded gets.
    fn end(&self) -> u64 {
        self.first + self.events.len() as u64
    }
}

impl Default for EventLog {
    fn default() -> Self {
        let (sender, _) = broadcast::channel(1024);
        Self {
            ring: Arc::new(Mutex::new(Ring {
                // Its full size at once: grown by doubling, it would end at 8,192 places for
                // 5,000 events. Pages not yet written take no memory.
                events: VecDeque::with_capacity(KEPT_EVENTS),
                first: 0,
            })),
            sender,
        }
    }
}

impl EventLog {
    pub fn record(
        &self,
        instance: Option<&InstanceKey>,
        action: &str,
        message: impl Into<String>,
        reason: Option<&str>,
    ) {
        self.push(instance, action, message.into(), reason, false);
    }

    /// Records an event that needs someone's attention (files with errors, changes held):
    /// logged as a warning.
    pub fn warn(
        &self,
        instance: Option<&InstanceKey>,
        action: &str,
        message: impl Into<String>,
        reason: Option<&str>,
    ) {
        self.push(instance, action, message.into(), reason, true);
    }

    fn push(
        &self,
        instance: Option<&InstanceKey>,
        action: &str,
        message: String,
        reason: Option<&str>,
        warning: bool,
    ) {
        // Texts without spare room: 64 bytes an event (the ring keeps 5,000) less than as
        // `String`s, most of it the room `format!` leaves.
        let event = Arc::new(Event {
            at_unix_ms: unix_millis(),
            instance: instance.cloned(),
            action: action.into(),
            message: message.into_boxed_str(),
            reason: reason.map(Box::from),
        });
        match (&event.instance, warning) {
            (Some(key), false) => {
                tracing::info!(instance = %key, action, reason, "{}", event.message)
            }
            (None, false) => tracing::info!(action, "{}", event.message),
            (Some(key), true) => {
                tracing::warn!(instance = %key, action, reason, "{}", event.message)
            }
            (None, true) => tracing::warn!(action, "{}", event.message),
        }
        let mut ring = self.lock();
        if ring.events.len() == KEPT_EVENTS {
            ring.events.pop_front();
            ring.first += 1;
        }
        ring.events.push_back(Arc::clone(&event));
        // Sent under the ring's lock: the broadcast has the ring's order, which a follower's
        // catch-up relies on.
        let _ = self.sender.send(event);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Ring> {
        lock(&self.ring)
    }

    /// The last `limit` events that `filter` keeps, oldest first.
    pub fn recent(&self, filter: &EventFilter, limit: usize) -> Vec<Event> {
        let ring = self.lock();
        let mut events: Vec<Event> = ring
            .events
            .iter()
            .rev()
            .filter(|event| filter.matches(event))
            .take(limit)
            .map(|event| Event::clone(event))
            .collect();
        events.reverse();
        events
    }

    /// Every event recorded from now on, in order.
    pub fn follow(&self) -> Follower {
        let ring = self.lock();
        Follower {
            receiver: self.sender.subscribe(),
            ring: Arc::clone(&self.ring),
            lagging: false,
            next: ring.end(),
            backlog: VecDeque::new(),
        }
    }
}

/// The ring, locked (poisoned or not: nothing that changes it can panic midway).
fn lock(ring: &Mutex<Ring>) -> std::sync::MutexGuard<'_, Ring> {
    ring.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What a [`Follower`] gets next.
#[derive(Debug)]
pub enum Followed {
    Event(Arc<Event>),
    /// It fell more than the ring (5,000 events) behind: this many were lost before the next.
    Skipped(u64),
    /// ten is shutting down.
    Closed,
}

/// A follower of the events recorded since it began ([`EventLog::follow`]): each once, in
/// order. One that falls behind the broadcast (a bulk create of 1,000 instances sends more
/// than it keeps, before a follower on the same runtime is polled) catches up from the ring;
/// only one more than the ring behind loses events, and is told how many.
pub struct Follower {
    receiver: broadcast::Receiver<Arc<Event>>,
    /// The ring only, not the log: a follower must not keep the broadcast open (it ends when
    /// ten's event log goes).
    ring: Arc<Mutex<Ring>>,
    /// The broadcast lagged and the event it resumes with is not received yet (kept across a
    /// `next` dropped while it waits, which would lose the lag).
    lagging: bool,
    /// The number of the next event to give.
    next: u64,
    /// Events taken from the ring, to give before the broadcast's next.
    backlog: VecDeque<Arc<Event>>,
}

impl Follower {
    /// The next event. Cancel-safe: dropped while it waits, nothing is lost.
    pub async fn next(&mut self) -> Followed {
        use broadcast::error::RecvError;
        loop {
            if let Some(event) = self.backlog.pop_front() {
                self.next += 1;
                return Followed::Event(event);
            }
            let received = self.receiver.recv().await;
            match (received, self.lagging) {
                (Ok(event), false) => {
                    self.next += 1;
                    return Followed::Event(event);
                }
                // The broadcast's oldest, after a lag; the ring holds what came before.
                (Ok(resume), true) => {
                    self.lagging = false;
                    if let Some(lost) = self.catch_up(resume) {
                        return Followed::Skipped(lost);
                    }
                }
                (Err(RecvError::Lagged(_)), _) => self.lagging = true,
                (Err(RecvError::Closed), _) => return Followed::Closed,
            }
        }
    }

    /// Queues the events the broadcast dropped from the ring, then `resume`, the broadcast's
    /// next. How many are lost, if any: those the ring no longer keeps either.
    fn catch_up(&mut self, resume: Arc<Event>) -> Option<u64> {
        let ring = lock(&self.ring);
        // Nothing is sent while the ring is locked: what the receiver has yet to receive after
        // `resume` is the ring's newest, which numbers `resume`.
        let number = (ring.end() - 1).saturating_sub(self.receiver.len() as u64);
        let from = self.next.max(ring.first).min(number);
        if number >= ring.first {
            debug_assert!(Arc::ptr_eq(
                &ring.events[(number - ring.first) as usize],
                &resume
            ));
            let kept = (from - ring.first) as usize..(number - ring.first) as usize;
            self.backlog.extend(ring.events.range(kept).cloned());
        }
        drop(ring);
        self.backlog.push_back(resume);
        let lost = from.saturating_sub(self.next);
        self.next = from;
        (lost > 0).then_some(lost)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_events_filter_by_instance_and_keep_order() {
        let log = EventLog::default();
        let alice = InstanceKey::parse("notes:alice").unwrap();
        let bob = InstanceKey::parse("notes:bob").unwrap();
        log.record(
            Some(&alice),
            "create",
            "started",
            Some("because instances/notes/alice.toml declares it"),
        );
        log.record(Some(&bob), "create", "started", None);
        log.record(None, "config", "reloaded", None);
        log.record(Some(&alice), "exit", "exited with code 1", None);
        let messages: Vec<String> = log
            .recent(&EventFilter::instance(alice), 10)
            .into_iter()
            .map(|e| e.message.into())
            .collect();
        assert_eq!(messages, ["started", "exited with code 1"]);
        let all = EventFilter::default();
        assert_eq!(log.recent(&all, 2).len(), 2);
        assert_eq!(&*log.recent(&all, 2)[0].message, "reloaded");
    }

    /// The events of a service's (or a group's services') instances: none about ten itself,
    /// none of another service's.
    #[test]
    fn events_filter_by_services() {
        let event = |instance: Option<&str>| Event {
            at_unix_ms: 0,
            instance: instance.map(|key| InstanceKey::parse(key).unwrap()),
            action: "create".into(),
            message: "started".into(),
            reason: None,
        };
        let services = |names: &[&str]| {
            Some(
                names
                    .iter()
                    .map(|name| ServiceName::new(name).unwrap())
                    .collect(),
            )
        };
        let worker = EventFilter {
            instance: None,
            services: services(&["worker"]),
        };
        assert!(worker.matches(&event(Some("worker:0"))));
        assert!(!worker.matches(&event(Some("web:a"))));
        assert!(!worker.matches(&event(None)));
        let jobs = EventFilter {
            instance: None,
            services: services(&["worker", "cron"]),
        };
        assert!(jobs.matches(&event(Some("cron:x"))) && jobs.matches(&event(Some("worker:1"))));
        assert!(!jobs.matches(&event(Some("web:a"))));
        // A tenant's token narrows a service's events to its own instance.
        let own = EventFilter {
            instance: Some(InstanceKey::parse("worker:0").unwrap()),
            services: services(&["worker"]),
        };
        assert!(own.matches(&event(Some("worker:0"))));
        assert!(!own.matches(&event(Some("worker:1"))));
        assert!(EventFilter::default().matches(&event(None)));
    }

    fn numbered(log: &EventLog, from: usize, to: usize) {
        for number in from..to {
            log.record(None, "test", number.to_string(), None);
        }
    }

    /// The next `count` messages (fewer if nothing comes within a second).
    async fn messages(follower: &mut Follower, count: usize) -> Vec<String> {
        let mut got = Vec::new();
        while got.len() < count {
            let next = tokio::time::timeout(std::time::Duration::from_secs(1), follower.next());
            match next.await {
                Ok(Followed::Event(event)) => got.push(event.message.to_string()),
                Ok(Followed::Skipped(lost)) => got.push(format!("skipped {lost}")),
                Ok(Followed::Closed) | Err(_) => break,
            }
        }
        got
    }

    /// A bulk create records more events than the broadcast keeps before a follower runs:
    /// it still gets every one, once, in order, from the ring. (Before, its stream ended.)
    #[tokio::test]
    async fn a_follower_that_falls_behind_the_broadcast_catches_up_from_the_ring() {
        let log = EventLog::default();
        numbered(&log, 0, 10);
        let mut follower = log.follow();
        numbered(&log, 10, 3010);
        let expected: Vec<String> = (10..3010).map(|n| n.to_string()).collect();
        assert_eq!(messages(&mut follower, 3000).await, expected);
        // And goes on with the broadcast.
        numbered(&log, 3010, 3012);
        assert_eq!(messages(&mut follower, 2).await, ["3010", "3011"]);
    }

    /// More than the ring behind: told how many it lost, then the rest in order.
    #[tokio::test]
    async fn a_follower_more_than_the_ring_behind_is_told_how_many_it_lost() {
        let log = EventLog::default();
        let mut follower = log.follow();
        numbered(&log, 0, KEPT_EVENTS + 1000);
        let got = messages(&mut follower, KEPT_EVENTS + 1).await;
        assert_eq!(got[0], "skipped 1000");
        let expected: Vec<String> = (1000..KEPT_EVENTS + 1000).map(|n| n.to_string()).collect();
        assert_eq!(got[1..], expected);
        // Behind again, within the ring this time: nothing lost, nothing twice.
        let end = KEPT_EVENTS + 1000;
        numbered(&log, end, end + 3000);
        let expected: Vec<String> = (end..end + 3000).map(|n| n.to_string()).collect();
        assert_eq!(messages(&mut follower, 3001).await, expected);
    }

    /// A follower does not keep the event log's broadcast open: when ten's log goes, its
    /// followers end (their streams close).
    #[tokio::test]
    async fn a_follower_ends_when_the_log_goes() {
        let log = EventLog::default();
        let mut follower = log.follow();
        numbered(&log, 0, 1);
        drop(log);
        assert_eq!(messages(&mut follower, 1).await, ["0"]);
        let next = tokio::time::timeout(std::time::Duration::from_secs(1), follower.next());
        assert!(matches!(next.await, Ok(Followed::Closed)));
    }
}
