//! A deadline passed: a probe due, the startup timeout, a worker's `start_seconds`, sleep when
//! idle, a held stop signal, SIGKILL, the end of a backoff. Must not import the task or the
//! gate, nor read the clock.

use tokio::time::Instant;

use crate::observed::Health;
use crate::runtime::GroupSignal;

use super::{Cause, Effect, Machine, State, Then};

impl Machine {
    /// A deadline passed: whatever is due (a probe, the startup timeout, sleep when idle, a
    /// held stop signal, SIGKILL, a restart). Early ticks change nothing.
    pub(super) fn tick(&mut self, state: State, now: Instant, effects: &mut Vec<Effect>) -> State {
        match state {
            State::Starting { pid, since, .. } if self.policy.liveness.is_some() => {
                self.started_alive(pid, since, now, effects)
            }
            State::Running { since, .. }
                if self.policy.liveness.is_some() && !self.idle(since, now) =>
            {
                // Nothing to check: it runs while it runs.
                state
            }
            State::Starting {
                pid,
                since,
                next_probe,
                probe_gap,
            } => {
                if now >= since + self.policy.startup_timeout {
                    let reason = self.not_ready();
                    effects.push(Effect::Event(format!("{reason}; stopping it")));
                    self.note = Some(reason);
                    self.cause = Some(Cause::StartTimeout);
                    return self.stop(pid, Then::Retry, now, effects);
                }
                self.probe_if_due(next_probe, now, effects);
                State::Starting {
                    pid,
                    since,
                    next_probe,
                    probe_gap,
                }
            }
            State::Running { pid, since, .. } if self.idle(since, now) => {
                self.fall_asleep(pid, now, effects)
            }
            State::Running { next_probe, .. } => {
                self.probe_if_due(next_probe, now, effects);
                state
            }
            State::Stopping {
                pid,
                kill_at: Some(kill_at),
                then,
                ..
            } if now >= kill_at => {
                effects.push(Effect::Event(format!(
                    "still running {} after {}; sending SIGKILL",
                    humantime::format_duration(self.policy.stop_timeout),
                    self.policy.stop_signal
                )));
                effects.push(Effect::Signal {
                    pid,
                    signal: GroupSignal::Kill,
                });
                // Requests still in flight are cut off: the signal held for them is moot.
                State::Stopping {
                    pid,
                    kill_at: None,
                    then,
                    draining: false,
                }
            }
            State::Stopping {
                pid,
                kill_at,
                then,
                draining: true,
            } => self.drain(pid, kill_at, then, effects),
            State::Backoff { until } if now >= until => self.spawn(effects),
            state => state,
        }
    }

    /// A process nothing checks has run for `start_seconds` (or not yet): its start counts.
    fn started_alive(
        &mut self,
        pid: u32,
        since: Instant,
        now: Instant,
        effects: &mut Vec<Effect>,
    ) -> State {
        let up = self.policy.liveness.unwrap_or_default();
        if now < since + up {
            return State::Starting {
                pid,
                since,
                next_probe: since + up,
                probe_gap: up,
            };
        }
        effects.push(Effect::Event(format!(
            "running (up {}, its start_seconds)",
            humantime::format_duration(up)
        )));
        self.health = Health::Healthy;
        self.waking = false;
        State::Running {
            pid,
            since,
            failures: 0,
            next_probe: now + self.policy.check_offset,
        }
    }

    fn probe_if_due(&mut self, next_probe: Instant, now: Instant, effects: &mut Vec<Effect>) {
        if now >= next_probe && !self.probe_in_flight {
            self.probe_in_flight = true;
            effects.push(Effect::Probe);
        }
    }
}
