//! What the reconciler, the proxy's gate and an instance's task say to each other: the
//! [`Command`]s a task takes, the [`InstanceStatus`] it publishes, and the [`Adoption`] of a
//! process an earlier ten left.
//!
//! Both the task and the gate speak these, so they live apart from either: neither imports
//! the other for them. Plain data; imports nothing else of `supervisor` but the `cell` a status
//! is published in.

use std::sync::Arc;

use tokio::sync::oneshot;

use crate::config::Settings;
use crate::desired::InstanceSpec;
use crate::observed::{ExitInfo, Health, Phase};
use crate::runtime::ProbeResult;

/// An instance's status as its task last published it, and a wait for its next change.
pub type StatusReceiver = super::cell::Receiver<InstanceStatus>;
/// What the task publishes its status through.
pub type StatusSender = super::cell::Sender<InstanceStatus>;

/// What the reconciler (and the proxy) ask of an instance.
#[derive(Debug)]
pub enum Command {
    /// Run, with this spec.
    Start(Arc<InstanceSpec>),
    /// Restart with this spec (a field that forces a restart changed).
    Replace(Arc<InstanceSpec>),
    /// Use this spec from now on, without a restart (in-place fields changed).
    Update(Arc<InstanceSpec>),
    /// Restart now with the current spec (`ten restart`; also retries a failed instance).
    Restart,
    /// The same, with SIGKILL instead of the stop signal (`ten restart --force`).
    ForceRestart,
    Stop,
    /// Stop and forget the instance; the task ends.
    Remove,
    /// A request came for this sleeping instance (sent by the proxy through the gate).
    Wake,
    /// Remove this instance once its successor (a replace) runs healthy; until then, keep
    /// serving.
    RetireAfter(StatusReceiver),
    /// Settings changed (restart limits, backoff, check interval).
    Settings(Arc<Settings>),
    /// Run a health probe now and answer.
    CheckHealth(oneshot::Sender<ProbeResult>),
    /// Take over a process left running by an earlier ten (instead of starting one). Boxed:
    /// the largest variant sizes every slot of every task's channel (tokio allocates 32 slots
    /// per channel at once, so 72-byte commands made 2.3 KB per instance, asleep or not).
    Adopt(Box<Adoption>),
    /// It was asleep when the last ten stopped: sleep on (instead of starting).
    Asleep,
    /// Go to sleep now if idle (nothing in flight), for this reason (memory pressure).
    Sleep(String),
}

/// A process left running by an earlier ten, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adoption {
    pub pid: u32,
    pub start_time: u64,
    pub started_at_unix: u64,
    /// When it was restarted within the restart window (Unix seconds), so restart limits
    /// carry over.
    pub restart_times_unix: Vec<u64>,
    /// Its cgroup and sandbox container, if it has them.
    pub name: Option<String>,
    pub sandboxed: bool,
}

/// What the reconciler sees of an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceStatus {
    pub phase: Phase,
    pub pid: Option<u32>,
    pub pid_start_time: Option<u64>,
    pub port: u16,
    pub health: Health,
    /// Restarts within the restart window.
    pub restarts: u32,
    /// When they happened (Unix seconds), oldest first.
    pub restart_times_unix: Vec<u64>,
    pub started_at_unix: Option<u64>,
    pub last_exit: Option<Box<ExitInfo>>,
    pub note: Option<String>,
    /// While stopping: the phase it heads for.
    pub heading_for: Option<Phase>,
    /// The task ended (after `Remove`).
    pub removed: bool,
}

impl InstanceStatus {
    /// A task that was never started, on `port`.
    pub fn stopped(port: u16) -> Self {
        Self {
            phase: Phase::Stopped,
            pid: None,
            pid_start_time: None,
            port,
            health: Health::Unknown,
            restarts: 0,
            restart_times_unix: Vec::new(),
            started_at_unix: None,
            last_exit: None,
            note: None,
            heading_for: None,
            removed: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_stays_small() {
        // Each task's channel allocates 32 slots at once, asleep or not: 10,000 instances pay
        // 320 KB for each 1 byte here.
        assert!(
            std::mem::size_of::<Command>() <= 32,
            "{}",
            std::mem::size_of::<Command>()
        );
    }
}
