//! A process ending: its exit (restarted per the restart policy), a stop for being over
//! storage quota, and what follows once a stopped process is gone. Must not import the task or
//! the gate, nor read the clock.

use tokio::time::Instant;

use crate::config::RestartPolicy;
use crate::observed::Health;
use crate::runtime::{GroupSignal, ProcessExit};

use super::{Cause, Effect, Machine, State, Then, describe_exit};

impl Machine {
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
                // A run that got past its start and ended cleanly is no failure: with
                // `restart = "always"` (supervisord's `autorestart = true`) it starts again
                // after the base backoff, uncounted, however often (a worker that recycles
                // itself). A crash, or an end before it was up, counts.
                let recycled = restart
                    && exit.is_clean()
                    && matches!(state, State::Running { .. })
                    && self.policy.restart == RestartPolicy::Always;
                if self.waking {
                    self.wake_failed(what, effects)
                } else if recycled {
                    let delay = self.policy.backoff_base;
                    effects.push(Effect::Event(format!(
                        "{what}; restarting in {} (restart = \"always\"; not counted: it ran)",
                        humantime::format_duration(delay)
                    )));
                    effects.push(Effect::Setback {
                        cause: Cause::Exited,
                        failed: false,
                    });
                    self.health = Health::Unknown;
                    self.note = Some(what);
                    State::Backoff { until: now + delay }
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
}
