//! The runtime's answer to a spawn: the process started, or could not be (retried after
//! backoff, failed at once when permanent). Must not import the task or the gate, nor read
//! the clock.

use tokio::time::Instant;

use crate::observed::Health;

use super::{Cause, Effect, Machine, State, Then};

impl Machine {
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
                // A request waits for a wake: its first check goes at once (and is answered
                // when the process listens).
                let at_once = self.waking && self.policy.readiness_connects;
                State::Starting {
                    pid,
                    since: now,
                    next_probe: if at_once { now } else { now + first_gap },
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
}
