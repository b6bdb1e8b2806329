//! The lifecycle of one instance as a state machine: `step(input, now) -> effects`.
//!
//! Deterministic and free of I/O: time is an input, timers are derived from the state
//! ([`Machine::deadline`]), and everything that touches the world is an [`Effect`] the task
//! executes. Tests drive it with explicit instants.
//!
//! Rules: a started process is probed quickly until it answers (or `startup_timeout` passes),
//! then every check interval; failed probes are `degraded` until `health_retries` in a row
//! make it `unhealthy` and restart it (failures within `health_start_period` of the start do
//! not count). A process nothing checks (a worker) is started once it has run
//! `start_seconds`, and is never probed. An exit is restarted per the restart policy after `backoff_base * 2^n` (capped
//! at `backoff_max`), n counting restarts within `restart_window`; more than `max_restarts` in
//! the window is `failed`. A stop sends the stop signal, then SIGKILL after `stop_timeout`; a
//! stop cancels a pending restart.
//!
//! What requests do matters too, and the machine hears it as observations ([`Traffic`], the
//! replacement's status) that it decides on (`traffic`): a running instance idle for its
//! `idle_timeout` with nothing in flight falls asleep; a stop holds its signal until the
//! requests in flight on the process are done (SIGKILL still comes at `stop_timeout`); a
//! process being replaced serves until its replacement runs healthy, then goes.
//!
//! The transitions are in `asked`, `spawns`, `exits`, `probes` and `ticks` (the lifecycle, by
//! the kind of input) and `traffic` (idle, drain, retire); what governs them is in `policy`.
//! The machine imports nothing of the task or the gate: the task feeds it what they say.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

pub(crate) use crate::metrics::Cause;
use crate::observed::{Health, Phase};
use crate::runtime::{GroupSignal, ProbeResult, ProcessExit};

use super::messages::InstanceStatus;

mod asked;
mod exits;
mod policy;
mod probes;
mod spawns;
mod ticks;
mod traffic;

use policy::backoff;
pub(crate) use policy::{FIRST_PROBE_GAP, MAX_PROBE_GAP, Policy, Readiness};

/// How long a stop holding its signal for requests in flight waits before it looks again.
pub(crate) const DRAIN_CHECK: Duration = Duration::from_millis(5);
/// How long a running instance with requests in flight waits before it looks again whether it
/// became idle: the end of a request is only noted, never announced.
pub(crate) const IDLE_RECHECK: Duration = Duration::from_secs(1);

/// What to do once the process being stopped is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Then {
    /// Stay stopped.
    Stop,
    /// Start again now (a restart asked for, or a replace): not counted as a failure.
    Restart,
    /// Start again after backoff (it was unhealthy or did not start in time): counted.
    Retry,
    /// Forget the instance.
    Remove,
    /// Sleep until a request wakes it.
    Sleep,
    /// Failed, with the note already set (over storage quota): `ten restart` or `ten apply`
    /// tries again.
    Fail,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum State {
    Stopped,
    /// A start was asked of the runtime; `then` is a stop or removal asked meanwhile.
    Spawning {
        then: Option<Then>,
    },
    /// Running, not answering yet.
    Starting {
        pid: u32,
        since: Instant,
        next_probe: Instant,
        probe_gap: Duration,
    },
    Running {
        pid: u32,
        since: Instant,
        failures: u32,
        next_probe: Instant,
    },
    /// Stop signal sent (or held while `draining`); SIGKILL at `kill_at` unless it exits
    /// first.
    Stopping {
        pid: u32,
        kill_at: Option<Instant>,
        then: Then,
        /// The stop signal waits for the requests in flight on the process to end.
        draining: bool,
    },
    Backoff {
        until: Instant,
    },
    Failed,
    /// Exited and not restarted, per its restart policy.
    Exited,
    /// Stopped for being idle; a request wakes it.
    Sleeping,
    Removed,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Input {
    Start,
    Stop,
    Restart,
    /// Restart at once: SIGKILL to the process instead of the stop signal.
    ForceRestart,
    Remove,
    Spawned {
        pid: u32,
    },
    SpawnFailed {
        error: String,
        /// Trying again cannot help until something changes (a limit that cannot be
        /// enforced, over storage quota, no runsc): failed at once, no retries.
        permanent: bool,
    },
    /// Its data directory reached `storage_quota_mb`: stop it, failed, with this reason.
    OverQuota {
        reason: String,
    },
    Exited(ProcessExit),
    ProbeDone(ProbeResult),
    /// A probe could not be run at all (ten had no file descriptor left): nothing is known
    /// of the instance, nothing is counted; the next probe comes at its usual time.
    ProbeNotRun,
    /// A deadline passed.
    Tick,
    /// What the gate says of the requests for this instance, now. The task looks before every
    /// other input, so idleness and drains are decided on a fresh look.
    Traffic(Traffic),
    /// How this process's replacement (a zero-downtime replace) is doing; `None` once its
    /// task is gone. The first one starts the wait: this process serves until the
    /// replacement runs healthy, then goes; if the replacement goes first, it stays.
    Successor(Option<InstanceStatus>),
    /// A request came for a sleeping (or falling asleep) instance.
    Wake,
    /// A process left running by an earlier ten was taken over: it runs and is checked at
    /// once. Not a start: nothing is spawned and no restart is counted.
    Adopted {
        pid: u32,
    },
    /// It was asleep when the last ten stopped: it sleeps on until a request comes.
    Asleep,
    /// Fall asleep now if nothing is in flight, for this reason (memory pressure); a request
    /// wakes it again.
    Evict(String),
}

/// The requests for an instance, as its task saw them at the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Traffic {
    /// When the last request ended (or the backend opened).
    pub last_activity: Instant,
    /// Requests in flight on this machine's process.
    pub in_flight: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Effect {
    Spawn,
    Signal {
        pid: u32,
        signal: GroupSignal,
    },
    Probe,
    /// Something worth an event line.
    Event(String),
    /// A wake did not work out: whoever waits for it must hear so at once.
    WakeFailed(String),
    /// A restart after a backoff (`failed: false`), or the end of restarts (`failed: true`:
    /// the instance is failed), for `cause`: counted in the service's metrics.
    Setback {
        cause: Cause,
        failed: bool,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct Machine {
    pub state: State,
    pub policy: Policy,
    /// Times of restarts within the restart window, oldest first.
    pub restarts: VecDeque<Instant>,
    pub last_exit: Option<ProcessExit>,
    pub probe_in_flight: bool,
    pub health: Health,
    /// Why it is in its phase, when that needs saying.
    pub note: Option<String>,
    /// The current start is a wake: if it fails, back to sleep (the next request tries again)
    /// rather than restarts with backoff.
    pub waking: bool,
    /// Why the last probe of the current start failed.
    pub last_probe_error: Option<String>,
    /// The last look at the instance's requests, and when it was taken (none yet: nothing
    /// in flight, no activity since the process started).
    pub traffic: Option<(Traffic, Instant)>,
    /// A replacement is on its way: this process goes once it runs healthy, and does not fall
    /// asleep meanwhile.
    pub retiring: bool,
    /// Why the process being stopped is stopped, when that is a setback (unhealthy, not ready
    /// in time, over storage quota): what the restart or failure that follows counts as.
    pub cause: Option<Cause>,
}

impl Machine {
    pub(crate) fn new(policy: Policy) -> Self {
        Self {
            state: State::Stopped,
            policy,
            restarts: VecDeque::new(),
            last_exit: None,
            probe_in_flight: false,
            health: Health::Unknown,
            note: None,
            waking: false,
            last_probe_error: None,
            traffic: None,
            retiring: false,
            cause: None,
        }
    }

    /// Why a start did not count as one: what it waited for, the last check's answer and
    /// the likely fix.
    fn not_ready(&self) -> String {
        let mut reason = format!(
            "did not answer within startup_timeout ({})",
            humantime::format_duration(self.policy.startup_timeout)
        );
        let readiness = &self.policy.readiness;
        if !readiness.waits_for.is_empty() {
            reason.push_str(&format!(": waited for {}", readiness.waits_for));
        }
        if let Some(error) = &self.last_probe_error {
            reason.push_str(&format!(" (last check: {error})"));
        }
        if !readiness.hint.is_empty() {
            reason.push_str(&format!("; {}", readiness.hint));
        }
        reason
    }

    /// While stopping: the phase it heads for once the process is gone.
    pub(crate) fn heading_for(&self) -> Option<Phase> {
        let State::Stopping { then, .. } = &self.state else {
            return None;
        };
        Some(match then {
            Then::Stop | Then::Remove => Phase::Stopped,
            Then::Restart => Phase::Starting,
            Then::Retry => Phase::Backoff,
            Then::Sleep => Phase::Sleeping,
            Then::Fail => Phase::Failed,
        })
    }

    pub(crate) fn phase(&self) -> Phase {
        match self.state {
            State::Stopped => Phase::Stopped,
            State::Spawning { .. } | State::Starting { .. } => Phase::Starting,
            State::Running { .. } => Phase::Running,
            State::Stopping { .. } | State::Removed => Phase::Stopping,
            State::Backoff { .. } => Phase::Backoff,
            State::Failed => Phase::Failed,
            State::Exited => Phase::Exited,
            State::Sleeping => Phase::Sleeping,
        }
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        match self.state {
            State::Starting { pid, .. }
            | State::Running { pid, .. }
            | State::Stopping { pid, .. } => Some(pid),
            _ => None,
        }
    }

    /// Since when the current process runs.
    pub(crate) fn running_since(&self) -> Option<Instant> {
        match self.state {
            State::Starting { since, .. } | State::Running { since, .. } => Some(since),
            _ => None,
        }
    }

    /// When the machine wants a [`Input::Tick`].
    pub(crate) fn deadline(&self) -> Option<Instant> {
        match &self.state {
            State::Starting { since, .. } if self.policy.liveness.is_some() => {
                self.policy.liveness.map(|up| *since + up)
            }
            State::Running { since, .. } if self.policy.liveness.is_some() => {
                self.idle_deadline(*since)
            }
            State::Starting {
                since, next_probe, ..
            } => {
                let timeout = *since + self.policy.startup_timeout;
                Some(if self.probe_in_flight {
                    timeout
                } else {
                    (*next_probe).min(timeout)
                })
            }
            State::Running {
                next_probe, since, ..
            } => {
                let probe = (!self.probe_in_flight).then_some(*next_probe);
                earliest(probe, self.idle_deadline(*since))
            }
            State::Stopping {
                kill_at, draining, ..
            } => {
                let drain = if *draining {
                    self.drain_deadline()
                } else {
                    None
                };
                earliest(*kill_at, drain)
            }
            State::Backoff { until } => Some(*until),
            _ => None,
        }
    }

    pub(crate) fn step(&mut self, input: Input, now: Instant) -> Vec<Effect> {
        let mut effects = Vec::new();
        let state = std::mem::replace(&mut self.state, State::Stopped);
        self.state = match input {
            Input::Start | Input::Stop | Input::Restart | Input::Remove => {
                self.asked(state, input, now, &mut effects)
            }
            Input::ForceRestart => self.force_restart(state, now, &mut effects),
            Input::Wake => self.wake(state, &mut effects),
            Input::Adopted { pid } => self.adopted(state, pid, now, &mut effects),
            Input::Asleep => match state {
                State::Stopped => State::Sleeping,
                state => state,
            },
            Input::Evict(reason) => self.evict(state, reason, now, &mut effects),
            Input::Spawned { pid } => self.spawned(state, pid, now, &mut effects),
            Input::SpawnFailed { error, permanent } => {
                self.spawn_failed(state, error, permanent, now, &mut effects)
            }
            Input::OverQuota { reason } => self.over_quota(state, reason, now, &mut effects),
            Input::Exited(exit) => self.exited(state, exit, now, &mut effects),
            Input::ProbeDone(result) => {
                self.probe_in_flight = false;
                self.probed(state, result, now, &mut effects)
            }
            Input::ProbeNotRun => {
                self.probe_in_flight = false;
                self.probe_not_run(state, now)
            }
            Input::Tick => self.tick(state, now, &mut effects),
            Input::Traffic(traffic) => {
                self.traffic = Some((traffic, now));
                state
            }
            Input::Successor(status) => self.successor(state, status, now, &mut effects),
        };
        effects
    }

    /// A wake that did not work out: back to sleep, and say so to whoever waits.
    fn wake_failed(&mut self, reason: String, effects: &mut Vec<Effect>) -> State {
        self.waking = false;
        self.health = Health::Unknown;
        let message = format!("wake failed: {reason}");
        effects.push(Effect::Event(format!(
            "{message}; the next request tries again"
        )));
        effects.push(Effect::WakeFailed(message.clone()));
        self.note = Some(message);
        State::Sleeping
    }

    fn spawn(&mut self, effects: &mut Vec<Effect>) -> State {
        effects.push(Effect::Spawn);
        self.health = Health::Unknown;
        State::Spawning { then: None }
    }

    /// Stops the process: the stop signal now, or, with requests in flight on it, once they
    /// are done (bounded by `stop_timeout`: SIGKILL comes at its deadline whatever happens).
    fn stop(&mut self, pid: u32, then: Then, now: Instant, effects: &mut Vec<Effect>) -> State {
        let draining = self.in_flight() > 0;
        if !draining {
            effects.push(Effect::Signal {
                pid,
                signal: GroupSignal::Stop(self.policy.stop_signal),
            });
        }
        State::Stopping {
            pid,
            kill_at: Some(now + self.policy.stop_timeout),
            then,
            draining,
        }
    }

    /// Restart after backoff, or fail when it restarted too often within the window.
    fn retry(
        &mut self,
        now: Instant,
        reason: String,
        cause: Cause,
        effects: &mut Vec<Effect>,
    ) -> State {
        let window = self.policy.restart_window;
        while self
            .restarts
            .front()
            .is_some_and(|at| now.duration_since(*at) >= window)
        {
            self.restarts.pop_front();
        }
        let count = self.restarts.len() as u32;
        if count >= self.policy.max_restarts {
            let message = format!(
                "failed: {reason}, after {count} restarts within {}",
                humantime::format_duration(window)
            );
            effects.push(Effect::Event(format!(
                "{message}; `ten restart` or `ten apply` tries again"
            )));
            self.health = Health::Failed;
            self.note = Some(message);
            effects.push(Effect::Setback {
                cause,
                failed: true,
            });
            return State::Failed;
        }
        let delay = backoff(&self.policy, count);
        self.restarts.push_back(now);
        effects.push(Effect::Event(format!(
            "{reason}; restarting in {}",
            humantime::format_duration(delay)
        )));
        effects.push(Effect::Setback {
            cause,
            failed: false,
        });
        self.health = Health::Unknown;
        self.note = Some(reason);
        State::Backoff { until: now + delay }
    }
}

pub(crate) fn describe_exit(exit: ProcessExit) -> String {
    crate::observed::ExitInfo {
        code: exit.code,
        signal: exit.signal,
        at_unix: 0,
    }
    .to_string()
}

fn round_ms(duration: Duration) -> Duration {
    Duration::from_millis(duration.as_millis() as u64)
}

/// The earlier of two deadlines, either of which may be missing.
fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests;
