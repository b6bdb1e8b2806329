//! The event log: every reconcile action and lifecycle transition, with time, instance,
//! action, message and reason. A bounded ring for `ten events` and a broadcast for
//! `ten events -f`; each event is also a tracing line.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::names::InstanceKey;
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
    /// Why, when the action was planned (`because instances/notes/carol.toml was added`).
    pub reason: Option<Box<str>>,
}

/// The ring and the broadcast share each event (the broadcast keeps its last 1,024 for
/// slow followers: as copies, 200 KB more with the ring full).
#[derive(Clone)]
pub struct EventLog {
    ring: Arc<Mutex<VecDeque<Arc<Event>>>>,
    sender: broadcast::Sender<Arc<Event>>,
}

impl Default for EventLog {
    fn default() -> Self {
        let (sender, _) = broadcast::channel(1024);
        Self {
            // Its full size at once: grown by doubling, it would end at 8,192 places for
            // 5,000 events. Pages not yet written take no memory.
            ring: Arc::new(Mutex::new(VecDeque::with_capacity(KEPT_EVENTS))),
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
        {
            let mut ring = self
                .ring
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if ring.len() == KEPT_EVENTS {
                ring.pop_front();
            }
            ring.push_back(Arc::clone(&event));
        }
        let _ = self.sender.send(event);
    }

    /// The last `limit` events (of `instance`, when given), oldest first.
    pub fn recent(&self, instance: Option<&InstanceKey>, limit: usize) -> Vec<Event> {
        let ring = self
            .ring
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut events: Vec<Event> = ring
            .iter()
            .rev()
            .filter(|event| instance.is_none_or(|key| event.instance.as_ref() == Some(key)))
            .take(limit)
            .map(|event| Event::clone(event))
            .collect();
        events.reverse();
        events
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.sender.subscribe()
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
            Some("because instances/notes/alice.toml was added"),
        );
        log.record(Some(&bob), "create", "started", None);
        log.record(None, "config", "reloaded", None);
        log.record(Some(&alice), "exit", "exited with code 1", None);
        let messages: Vec<String> = log
            .recent(Some(&alice), 10)
            .into_iter()
            .map(|e| e.message.into())
            .collect();
        assert_eq!(messages, ["started", "exited with code 1"]);
        assert_eq!(log.recent(None, 2).len(), 2);
        assert_eq!(&*log.recent(None, 2)[0].message, "reloaded");
    }
}
