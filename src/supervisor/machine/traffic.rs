//! What requests decide: a running instance idle for its `idle_timeout` falls asleep, a stop
//! with requests in flight holds its signal until they are done, and a process being replaced
//! goes once its replacement runs healthy.
//!
//! The machine cannot see requests: the task tells it what the gate says ([`Traffic`]) and how
//! the replacement is doing. The end of a request is noted at the gate, never announced, so
//! the machine looks again on its own deadlines (`IDLE_RECHECK`, `DRAIN_CHECK`).

use tokio::time::Instant;

use crate::observed::{Health, Phase};
use crate::runtime::GroupSignal;

use super::{DRAIN_CHECK, Effect, IDLE_RECHECK, Input, InstanceStatus, Machine, State, Then};

impl Machine {
    /// Requests in flight on the process, as last seen.
    pub(super) fn in_flight(&self) -> u32 {
        self.traffic.map_or(0, |(traffic, _)| traffic.in_flight)
    }

    /// When a process running since `since` will have been idle for its idle timeout; while
    /// requests are in flight, when to look again. None when it does not sleep: no idle
    /// timeout, or a replacement on its way. (Given `since` rather than reading the state,
    /// which a step has taken out while it decides.)
    pub(super) fn idle_deadline(&self, since: Instant) -> Option<Instant> {
        let timeout = self.policy.idle_timeout;
        if timeout.is_zero() || self.retiring {
            return None;
        }
        let Some((traffic, seen_at)) = self.traffic else {
            return Some(since + timeout);
        };
        if traffic.in_flight > 0 {
            // Busy: the end of a request is its activity, and only the next look sees it.
            return Some(seen_at + timeout.min(IDLE_RECHECK));
        }
        // A request before this process started says nothing about this process.
        Some(traffic.last_activity.max(since) + timeout)
    }

    /// Whether a process running since `since` is idle at `now`: nothing in flight, and no
    /// request ended within its idle timeout.
    pub(super) fn idle(&self, since: Instant, now: Instant) -> bool {
        self.in_flight() == 0 && self.idle_deadline(since).is_some_and(|at| at <= now)
    }

    /// Idle for its idle timeout: stop until a request comes.
    pub(super) fn fall_asleep(
        &mut self,
        pid: u32,
        now: Instant,
        effects: &mut Vec<Effect>,
    ) -> State {
        effects.push(Effect::Event("idle: going to sleep".into()));
        self.stop(pid, Then::Sleep, now, effects)
    }

    /// Put to sleep from outside (memory pressure): only a running process with nothing in
    /// flight that is not being replaced; anything else stays as it is.
    pub(super) fn evict(
        &mut self,
        state: State,
        reason: String,
        now: Instant,
        effects: &mut Vec<Effect>,
    ) -> State {
        match state {
            State::Running { pid, .. } if self.in_flight() == 0 && !self.retiring => {
                effects.push(Effect::Event(format!("{reason}: going to sleep")));
                self.stop(pid, Then::Sleep, now, effects)
            }
            state => state,
        }
    }

    /// When a stop holding its signal looks again at the requests in flight.
    pub(super) fn drain_deadline(&self) -> Option<Instant> {
        self.traffic.map(|(_, seen_at)| seen_at + DRAIN_CHECK)
    }

    /// A stop holding its signal: sent once the requests in flight are done.
    pub(super) fn drain(
        &mut self,
        pid: u32,
        kill_at: Option<Instant>,
        then: Then,
        effects: &mut Vec<Effect>,
    ) -> State {
        let drained = self.in_flight() == 0;
        if drained {
            effects.push(Effect::Signal {
                pid,
                signal: GroupSignal::Stop(self.policy.stop_signal),
            });
        }
        State::Stopping {
            pid,
            kill_at,
            then,
            draining: !drained,
        }
    }

    /// Whether a stop holds its signal for requests in flight (the task keeps the process's
    /// backend meanwhile, to see them end).
    pub(crate) fn draining(&self) -> bool {
        matches!(self.state, State::Stopping { draining: true, .. })
    }

    /// How the replacement is doing: this process goes once it runs healthy (as if removed),
    /// and stays if the replacement is gone first.
    pub(super) fn successor(
        &mut self,
        state: State,
        status: Option<InstanceStatus>,
        now: Instant,
        effects: &mut Vec<Effect>,
    ) -> State {
        let Some(status) = status.filter(|status| !status.removed) else {
            self.retiring = false;
            return state;
        };
        if status.phase != Phase::Running || status.health != Health::Healthy {
            self.retiring = true;
            return state;
        }
        self.retiring = false;
        effects.push(Effect::Event(format!(
            "the replacement (pid {}) is healthy; retiring this process",
            status.pid.unwrap_or(0)
        )));
        self.asked(state, Input::Remove, now, effects)
    }
}
