//! Probe results: readiness probes of a starting process, the periodic health checks of a
//! running one, and a probe that could not be run. Must not import the task or the gate, nor
//! read the clock.

use tokio::time::Instant;

use crate::observed::Health;
use crate::runtime::ProbeResult;

use super::{Cause, Effect, Machine, State, Then, round_ms};

impl Machine {
    /// A probe answered (or failed).
    pub(super) fn probed(
        &mut self,
        state: State,
        result: ProbeResult,
        now: Instant,
        effects: &mut Vec<Effect>,
    ) -> State {
        match (state, result) {
            (State::Starting { pid, since, .. }, Ok(())) => {
                effects.push(Effect::Event(format!(
                    "healthy after {}",
                    humantime::format_duration(round_ms(now - since))
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
            (
                State::Starting {
                    pid,
                    since,
                    probe_gap,
                    ..
                },
                Err(error),
            ) => {
                self.last_probe_error = Some(error);
                let probe_gap = (probe_gap * 6 / 5).min(self.policy.probe_gaps.1);
                State::Starting {
                    pid,
                    since,
                    next_probe: now + probe_gap,
                    probe_gap,
                }
            }
            (
                State::Running {
                    pid,
                    since,
                    failures,
                    ..
                },
                result,
            ) => self.checked(pid, since, failures, result, now, effects),
            (state, _) => state,
        }
    }

    /// A probe that ten could not run: the next one at its usual time, health and failures
    /// as they were.
    pub(super) fn probe_not_run(&mut self, state: State, now: Instant) -> State {
        match state {
            State::Starting {
                pid,
                since,
                probe_gap,
                ..
            } => State::Starting {
                pid,
                since,
                next_probe: now + probe_gap,
                probe_gap,
            },
            State::Running {
                pid,
                since,
                failures,
                ..
            } => State::Running {
                pid,
                since,
                failures,
                next_probe: now + self.policy.check_interval,
            },
            state => state,
        }
    }

    /// A periodic health check of a running process answered (or failed).
    fn checked(
        &mut self,
        pid: u32,
        since: Instant,
        failures: u32,
        result: ProbeResult,
        now: Instant,
        effects: &mut Vec<Effect>,
    ) -> State {
        let next_probe = now + self.policy.check_interval;
        let error = match result {
            Ok(()) => {
                if failures > 0 {
                    effects.push(Effect::Event("healthy again".into()));
                }
                self.health = Health::Healthy;
                self.note = None;
                return State::Running {
                    pid,
                    since,
                    failures: 0,
                    next_probe,
                };
            }
            Err(error) => error,
        };
        if now < since + self.policy.start_period {
            // Still starting up, as the service says: a failure does not count yet.
            self.note = Some(format!(
                "health check failed during health_start_period: {error}"
            ));
            return State::Running {
                pid,
                since,
                failures,
                next_probe,
            };
        }
        let failures = failures + 1;
        let retries = self.policy.retries;
        if failures >= retries {
            self.health = Health::Unhealthy;
            let reason = format!("unhealthy after {failures} failed checks: {error}");
            effects.push(Effect::Event(format!("{reason}; stopping it")));
            self.note = Some(reason);
            self.cause = Some(Cause::Unhealthy);
            return self.stop(pid, Then::Retry, now, effects);
        }
        self.health = Health::Degraded;
        effects.push(Effect::Event(format!(
            "health check failed ({failures} of {retries}): {error}"
        )));
        self.note = Some(error);
        State::Running {
            pid,
            since,
            failures,
            next_probe,
        }
    }
}
