//! The memory budget, carried out: every second (with `memory_target` or
//! `memory_limit_total` set) and whenever a wake asks for room, the actor measures the
//! tenants' memory and the host's, keeps the admission of wakes up to date, and puts the
//! instances `pressure` chooses to sleep (their tasks decide again that nothing is in
//! flight). An instance on its way to sleep counts as freed for 10 s.

use std::time::Duration;

use tokio::time::Instant;

use crate::config::{MemoryAmount, StartMode};
use crate::observed::Phase;
use crate::runtime::Runtime;
use crate::runtime::memory::host_memory;
use crate::supervisor::messages::Command;

use super::super::core::Note;
use super::super::pressure::{Budget, Candidate, choose, need};
use super::Reconciler;

/// How long an instance put to sleep counts as freeing its memory.
const SLEEP_GRACE: Duration = Duration::from_secs(10);
/// How often the memory is looked at, with a budget set.
pub(super) const LOOK_EVERY: Duration = Duration::from_secs(1);
/// How old the running instances' usage samples may be at a look, with a budget set (older
/// ones are taken again, for the next look).
const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// A refused wake of an instance is an event at most this often (a client retrying after
/// `Retry-After: 5`, or many clients at once, make one event, not one each).
const REFUSAL_QUIET: Duration = Duration::from_secs(30);

impl<R: Runtime> Reconciler<R> {
    /// Whether a memory budget is set (or was, and the admission still has its limit: the
    /// next look lifts it).
    pub(super) fn memory_watched(&self) -> bool {
        let settings = &self.core.desired().config.settings;
        settings.memory_target.is_some()
            || settings.memory_limit_total.is_some()
            || self.shared.admission.limit().is_some()
    }

    /// Measures, updates the admission, and puts instances to sleep if the budget asks.
    pub(super) fn relieve_memory(&mut self, now: Instant) {
        self.note_refusals(now);
        let settings = &self.core.desired().config.settings;
        let (target, limit) = (settings.memory_target, settings.memory_limit_total);
        let admission = &self.shared.admission;
        let host = host_memory();
        let budget = Budget {
            target: target.map(|amount| amount.bytes(host.total)),
            limit: limit.map(|amount| amount.bytes(host.total)),
            host_share: matches!(target, Some(MemoryAmount::Percent(_))),
        };
        admission.set_limit(budget.limit);
        if target.is_none() && limit.is_none() {
            self.evicting.clear();
            admission.take_wanted();
            return;
        }
        self.evicting.retain(|key, (since, _)| {
            now.duration_since(*since) < SLEEP_GRACE
                && self.slots.get(key).is_some_and(|slot| {
                    matches!(
                        slot.handle.status.borrow().phase,
                        Phase::Running | Phase::Stopping
                    )
                })
        });
        let stale = self.stale_usage(SAMPLE_EVERY, now);
        if !stale.is_empty() {
            let runtime = std::sync::Arc::clone(&self.shared.runtime);
            tokio::spawn(async move { super::usage::sample(&*runtime, stale).await });
        }
        let mut summed = 0u64;
        let mut candidates = Vec::new();
        for (key, slot) in &self.slots {
            let memory = slot
                .handle
                .usage
                .load()
                .as_ref()
                .and_then(|sample| sample.usage.memory_bytes);
            if let Some(bytes) = memory {
                slot.gate.set_expected_memory(bytes);
            }
            if slot.handle.status.borrow().phase != Phase::Running {
                continue;
            }
            summed = summed.saturating_add(memory.unwrap_or(0));
            let on_demand = self
                .core
                .desired()
                .instances
                .get(key)
                .is_some_and(|spec| spec.start == StartMode::OnDemand);
            if on_demand && slot.gate.in_flight() == 0 && !self.evicting.contains_key(key) {
                candidates.push(Candidate {
                    key: key.clone(),
                    last_activity: slot.gate.last_activity(),
                    memory,
                });
            }
        }
        admission.set_summed(summed);
        admission.set_evictable(!candidates.is_empty());
        let used = admission.used();
        crate::metrics::global().memory().measured(used);
        let pending = self.evicting.values().map(|(_, bytes)| *bytes).sum();
        let Some(need) = need(budget, used, host, pending, admission.take_wanted()) else {
            return;
        };
        for chosen in choose(candidates, need.bytes) {
            let Some(slot) = self.slots.get(&chosen.key) else {
                continue;
            };
            slot.handle.send(Command::Sleep(need.message.clone()));
            crate::metrics::global().memory().put_to_sleep(need.reason);
            self.evicting
                .insert(chosen.key.clone(), (now, chosen.memory.unwrap_or(0)));
            self.record_note(Note {
                instance: Some(chosen.key),
                action: "sleep".into(),
                message: "put to sleep, least recently used of the idle on-demand instances".into(),
                reason: Some(need.message.clone()),
                warning: false,
            });
        }
    }

    /// The wakes refused for want of room since the last look, as events of their
    /// instances: one per instance per `REFUSAL_QUIET`.
    fn note_refusals(&mut self, now: Instant) {
        self.refusals_noted
            .retain(|_, noted| now.duration_since(*noted) < REFUSAL_QUIET);
        for (instance, why) in self.shared.admission.take_refused() {
            if self.refusals_noted.contains_key(&instance) {
                continue;
            }
            self.refusals_noted.insert(instance.clone(), now);
            self.record_note(Note {
                instance: Some(instance),
                action: "refused".into(),
                message: format!("{why}: answered 503 with a Retry-After"),
                reason: None,
                warning: true,
            });
        }
    }
}
