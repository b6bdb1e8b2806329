//! What the machine is asked: to run, stop, restart (also with `--force`) or go away, to wake
//! for a request, to take over a process an earlier ten left running. Must not import the task
//! or the gate, nor read the clock.

use tokio::time::Instant;

use crate::observed::Health;
use crate::runtime::GroupSignal;

use super::{Effect, Input, Machine, State, Then};

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
}
