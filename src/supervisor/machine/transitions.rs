//! The machine's transitions, one method per family of inputs: what the reconciler asks,
//! wakes, the runtime's answers to spawns, exits, probe results and timers.

use tokio::time::Instant;

use crate::config::RestartPolicy;
use crate::observed::Health;
use crate::runtime::{GroupSignal, ProbeResult, ProcessExit};

use super::{Cause, Effect, Input, Machine, State, Then, describe_exit, round_ms};

impl Machine {
    /// Asked to run, to stop or to go away (by the reconciler, or `ten restart`).
    pub(super) fn asked(
        &mut self,
        state: State,
        input: Input,
        now: Instant,
        effects: &mut Vec<Effect>,
    ) -> State {
        match (state, input) {
            // A sleeping instance runs when a request comes; a restart wakes it at once.
            (State::Sleeping, Input::Start) => State::Sleeping,
            (State::Sleeping, Input::Restart) => self.spawn(effects),
            (State::Sleeping, Input::Stop) => State::Stopped,
            (State::Sleeping, Input::Remove) => State::Removed,

            // Asked to run.
            (State::Stopped | State::Failed | State::Exited, Input::Start | Input::Restart)
            | (State::Backoff { .. }, Input::Restart) => {
                self.restarts.clear();
                self.spawn(effects)
            }
            (
                state @ (State::Backoff { .. } | State::Spawning { then: None }),
                Input::Start | Input::Restart,
            ) => state,
            (State::Spawning { .. }, Input::Start | Input::Restart) => {
                State::Spawning { then: None }
            }

            // Asked to stop or to go away.
            (
                State::Stopped | State::Failed | State::Exited | State::Backoff { .. },
                Input::Stop,
            ) => {
                self.health = Health::Unknown;
                self.note = None;
                State::Stopped
            }
            (
                State::Stopped
                | State::Failed
                | State::Exited
                | State::Backoff { .. }
                | State::Removed,
                Input::Remove,
            ) => State::Removed,
            (State::Spawning { .. }, Input::Stop) => State::Spawning {
                then: Some(Then::Stop),
            },
            (State::Spawning { .. }, Input::Remove) => State::Spawning {
                then: Some(Then::Remove),
            },
            (
                State::Starting { pid, .. } | State::Running { pid, .. },
                input @ (Input::Stop | Input::Restart | Input::Remove),
            ) => {
                let then = match input {
                    Input::Stop => Then::Stop,
                    Input::Restart => Then::Restart,
                    _ => Then::Remove,
                };
                self.stop(pid, then, now, effects)
            }
            (
                State::Stopping {
                    pid,
                    kill_at,
                    then,
                    draining,
                },
                input,
            ) => {
                let then = match (input, then) {
                    (Input::Stop, _) => Then::Stop,
                    (Input::Remove, _) => Then::Remove,
                    (Input::Restart, _) | (Input::Start, Then::Stop) => Then::Restart,
                    (_, then) => then,
                };
                State::Stopping {
                    pid,
                    kill_at,
                    then,
                    draining,
                }
            }
            (state, _) => state,
        }
    }

    /// `ten restart --force`: a process (also one stopping) gets SIGKILL now and starts again
    /// once it is gone, without waiting for requests in flight or `stop_timeout`; anything
    /// else restarts as with [`Input::Restart`].
    pub(super) fn force_restart(
        &mut self,
        state: State,
        now: Instant,
        effects: &mut Vec<Effect>,
    ) -> State {
        match state {
            State::Starting { pid, .. }
            | State::Running { pid, .. }
            | State::Stopping { pid, .. } => {
                effects.push(Effect::Event("restarting with SIGKILL (--force)".into()));
                effects.push(Effect::Signal {
                    pid,
                    signal: GroupSignal::Kill,
                });
                State::Stopping {
                    pid,
                    kill_at: None,
                    then: Then::Restart,
                    draining: false,
                }
            }
            state => self.asked(state, Input::Restart, now, effects),
        }
    }

    /// A request came: a sleeping instance starts; one falling asleep starts again once it
    /// is down.
    pub(super) fn wake(&mut self, state: State, effects: &mut Vec<Effect>) -> State {
        match state {
            State::Sleeping => {
                self.waking = true;
                self.note = None;
                effects.push(Effect::Event("waking for a request".into()));
                self.spawn(effects)
            }
            State::Stopping {
                pid,
                kill_at,
                then: Then::Sleep,
                draining,
            } => {
                self.waking = true;
                State::Stopping {
                    pid,
                    kill_at,
                    then: Then::Restart,
                    draining,
                }
            }
            state => state,
        }
    }

    /// Taking over a process from an earlier ten (only into a fresh machine).
    pub(super) fn adopted(
        &mut self,
        state: State,
        pid: u32,
        now: Instant,
        effects: &mut Vec<Effect>,
    ) -> State {
        let State::Stopped = state else {
            return state;
        };
        effects.push(Effect::Event(format!(
            "adopted (pid {pid}), left running by the previous ten"
        )));
        self.health = Health::Unknown;
        self.note = None;
        State::Running {
            pid,
            since: now,
            failures: 0,
            next_probe: now + self.policy.check_offset,
        }
    }

    /// The runtime started the process.
    pub(super) fn spawned(
        &mut self,
        state: State,
        pid: u32,
        now: Instant,
        effects: &mut Vec<Effect>,
    ) -> State {
        let State::Spawning { then } = state else {
            return state;
        };
        effects.push(Effect::Event(format!("started (pid {pid})")));
        self.note = None;
        self.last_probe_error = None;
        match then {
            Some(then) => self.stop(pid, then, now, effects),
            None => {
                let first_gap = self.policy.probe_gaps.0;
                State::Starting {
                    pid,
                    since: now,
                    next_probe: now + first_gap,
                    probe_gap: first_gap,
                }
            }
        }
    }

    /// The runtime could not start the process.
    pub(super) fn spawn_failed(
        &mut self,
        state: State,
        error: String,
        permanent: bool,
        now: Instant,
        effects: &mut Vec<Effect>,
    ) -> State {
        let State::Spawning { then } = state else {
            return state;
        };
        match then {
            Some(Then::Stop) => State::Stopped,
            Some(Then::Remove) => State::Removed,
            _ if self.waking => self.wake_failed(format!("could not start: {error}"), effects),
            _ if permanent => {
                let message = format!("could not start: {error}");
                effects.push(Effect::Event(format!(
                    "{message}; `ten restart` or `ten apply` tries again once that is fixed"
                )));
                effects.push(Effect::Setback {
                    cause: Cause::SpawnFailed,
                    failed: true,
                });
                self.health = Health::Failed;
                self.note = Some(message);
                State::Failed
            }
            _ => self.retry(
                now,
                format!("could not start: {error}"),
                Cause::SpawnFailed,
                effects,
            ),
        }
    }

    /// Over storage quota: stopped, failed, until someone acts.
    pub(super) fn over_quota(
        &mut self,
        state: State,
        reason: String,
        now: Instant,
        effects: &mut Vec<Effect>,
    ) -> State {
        match state {
            State::Starting { pid, .. } | State::Running { pid, .. } => {
                effects.push(Effect::Event(format!("{reason}; stopping")));
                self.note = Some(reason);
                self.cause = Some(Cause::StorageQuota);
                self.stop(pid, Then::Fail, now, effects)
            }
            state => state,
        }
    }

    /// The process ended.
    pub(super) fn exited(
        &mut self,
        state: State,
        exit: ProcessExit,
        now: Instant,
        effects: &mut Vec<Effect>,
    ) -> State {
        match state {
            State::Starting { pid, .. } | State::Running { pid, .. } => {
                self.last_exit = Some(exit);
                effects.push(Effect::Signal {
                    pid,
                    signal: GroupSignal::Kill,
                });
                let restart = match self.policy.restart {
                    RestartPolicy::Always => true,
                    RestartPolicy::OnFailure => !exit.is_clean(),
                    RestartPolicy::Never => false,
                };
                let what = describe_exit(exit);
                if self.waking {
                    self.wake_failed(what, effects)
                } else if restart {
                    let cause = if exit.is_clean() {
                        Cause::Exited
                    } else {
                        Cause::Crashed
                    };
                    self.retry(now, what, cause, effects)
                } else {
                    effects.push(Effect::Event(format!(
                        "{what}; not restarted (restart = \"{}\")",
                        self.policy.restart
                    )));
                    self.health = Health::Unknown;
                    self.note = Some(what);
                    State::Exited
                }
            }
            State::Stopping { pid, then, .. } => {
                self.last_exit = Some(exit);
                // Whatever of its group is left goes too.
                effects.push(Effect::Signal {
                    pid,
                    signal: GroupSignal::Kill,
                });
                self.health = Health::Unknown;
                self.stopped(then, now, effects)
            }
            state => state,
        }
    }

    /// The process being stopped is gone: on to what the stop was for.
    fn stopped(&mut self, then: Then, now: Instant, effects: &mut Vec<Effect>) -> State {
        match then {
            Then::Stop => {
                effects.push(Effect::Event("stopped".into()));
                self.note = None;
                State::Stopped
            }
            Then::Restart => self.spawn(effects),
            Then::Retry => {
                let reason = self.note.clone().unwrap_or_else(|| "restarting".into());
                let cause = self.cause.take().unwrap_or(Cause::Unhealthy);
                if self.waking {
                    self.wake_failed(reason, effects)
                } else {
                    self.retry(now, reason, cause, effects)
                }
            }
            Then::Remove => State::Removed,
            Then::Fail => {
                let reason = self.note.clone().unwrap_or_else(|| "failed".into());
                effects.push(Effect::Event(format!(
                    "failed: {reason}; `ten restart` or `ten apply` tries again"
                )));
                effects.push(Effect::Setback {
                    cause: self.cause.take().unwrap_or(Cause::StorageQuota),
                    failed: true,
                });
                self.health = Health::Failed;
                State::Failed
            }
            Then::Sleep => {
                effects.push(Effect::Event("sleeping".into()));
                self.note = None;
                State::Sleeping
            }
        }
    }

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
            effects.push(Effect::Event(format!("{reason}; restarting")));
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
                    effects.push(Effect::Event(format!("{reason}; restarting")));
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
