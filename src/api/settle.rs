//! Waiting for an action to take effect: a started instance answering, a stopped one gone,
//! a destroyed one forgotten. Used by `apply` (progress per change) and by the commands that
//! act on one instance.

use std::time::Duration;

use crate::observed::{Health, Phase};
use crate::plan::Action;
use crate::supervisor::messages::{InstanceStatus, StatusReceiver};

/// What an action waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Goal {
    /// Running and answering health checks, with a process other than `old_pid`.
    Running {
        old_pid: Option<u32>,
    },
    /// Declared running and converged: running and answering, or sleeping (it wakes on its
    /// next request). What `spawn`, `start` and a planned create or start wait for.
    Up,
    Stopped,
    Removed,
    /// Nothing to wait for.
    Done,
}

impl Goal {
    pub(crate) fn of(action: Action, current: Option<&InstanceStatus>) -> Goal {
        match action {
            Action::Create | Action::Start => Goal::Up,
            Action::Replace => Goal::Running {
                old_pid: current.and_then(|status| status.pid),
            },
            Action::Stop => Goal::Stopped,
            Action::Destroy => Goal::Removed,
            Action::Update => Goal::Done,
        }
    }
}

/// Waits until `status` reaches `goal`; `Err` says why it did not (failed, or timed out).
pub(crate) async fn settle(
    status: Option<StatusReceiver>,
    goal: Goal,
    timeout: Duration,
) -> Result<String, String> {
    let Some(mut status) = status else {
        return match goal {
            Goal::Removed | Goal::Done => Ok("done".into()),
            // Declared stopped before it ever ran: it has no task, and no process.
            Goal::Stopped => Ok("stopped (it never ran)".into()),
            _ => Err("the instance is not known to the server".into()),
        };
    };
    if goal == Goal::Done {
        return Ok("updated in place".into());
    }
    let outcome = tokio::time::timeout(timeout, async {
        let mut first = true;
        loop {
            let verdict = {
                let current = status.borrow_and_update();
                // A restart's first look may still see the end of the run it replaces (failed,
                // exited, in backoff) until its task takes the restart: no verdict on it.
                let before = first
                    && matches!(goal, Goal::Running { .. })
                    && matches!(
                        current.phase,
                        Phase::Failed | Phase::Exited | Phase::Backoff
                    );
                if before { None } else { judge(&current, goal) }
            };
            first = false;
            if let Some(verdict) = verdict {
                return verdict;
            }
            if status.changed().await.is_err() {
                // The task ended: the instance was removed.
                return if goal == Goal::Removed {
                    Ok("stopped and removed".into())
                } else {
                    Err("the instance was removed".into())
                };
            }
        }
    })
    .await;
    outcome.unwrap_or_else(|_| {
        let current = status.borrow();
        Err(format!(
            "not done after {} (now {}{})",
            humantime::format_duration(timeout),
            current.phase,
            current
                .note
                .as_ref()
                .map(|note| format!(": {note}"))
                .unwrap_or_default()
        ))
    })
}

/// What a sleeping instance is, for people.
pub(crate) const SLEEPING: &str = "sleeping; it wakes on its next request";

fn running(status: &InstanceStatus) -> String {
    let pid = status.pid.unwrap_or(0);
    // A worker's port is 0: it has none.
    match status.port {
        0 => format!("running (pid {pid})"),
        port => format!("running (pid {pid}, port {port})"),
    }
}

fn judge(status: &InstanceStatus, goal: Goal) -> Option<Result<String, String>> {
    let note = || {
        status
            .note
            .clone()
            .unwrap_or_else(|| status.phase.to_string())
    };
    match goal {
        Goal::Running { old_pid } => match status.phase {
            Phase::Running if status.pid != old_pid && status.health != Health::Unknown => {
                Some(Ok(running(status)))
            }
            Phase::Failed | Phase::Exited | Phase::Backoff => Some(Err(note())),
            _ => None,
        },
        Goal::Up => match status.phase {
            Phase::Running if status.health != Health::Unknown => Some(Ok(running(status))),
            Phase::Sleeping => Some(Ok(SLEEPING.into())),
            Phase::Failed | Phase::Exited | Phase::Backoff => Some(Err(note())),
            _ => None,
        },
        Goal::Stopped => match status.phase {
            Phase::Stopped => Some(Ok("stopped".into())),
            Phase::Failed | Phase::Exited => Some(Ok(format!("not running ({})", note()))),
            _ => None,
        },
        Goal::Removed => status.removed.then(|| Ok("stopped and removed".into())),
        Goal::Done => Some(Ok("done".into())),
    }
}
