//! What actually runs: per instance its phase, process, port, health, restart history and the
//! spec fields it was last applied with. Pure data, shared by the planner (read), the
//! server (write) and the on-disk record.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::desired::FieldMap;
use crate::names::InstanceKey;

/// Where an instance is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Spawned, not yet answering.
    Starting,
    Running,
    /// Stopped by the idle reaper; the next request wakes it.
    Sleeping,
    /// Asked to stop, not gone yet.
    Stopping,
    /// Stopped on purpose (declared `state = "stopped"`).
    Stopped,
    /// Exited or unhealthy; waiting to be restarted.
    Backoff,
    /// Exceeded `max_restarts` within `restart_window`; `restart` or `apply` retries it.
    Failed,
    /// Exited and not restarted (its restart policy, or the process vanished).
    Exited,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Running => "running",
            Phase::Sleeping => "sleeping",
            Phase::Stopping => "stopping",
            Phase::Stopped => "stopped",
            Phase::Backoff => "backoff",
            Phase::Failed => "failed",
            Phase::Exited => "exited",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    #[default]
    Unknown,
    Healthy,
    Degraded,
    Unhealthy,
    Failed,
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Health::Unknown => "unknown",
            Health::Healthy => "healthy",
            Health::Degraded => "degraded",
            Health::Unhealthy => "unhealthy",
            Health::Failed => "failed",
        })
    }
}

/// What a running instance uses: its processes' memory and CPU time (from its cgroup, or
/// its main process without one) and its data directory's size. Sampled with health checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Usage {
    pub memory_bytes: Option<u64>,
    pub cpu_usec: Option<u64>,
    /// Processes and threads.
    pub tasks: Option<u64>,
    /// Processes the kernel killed for exceeding `memory_limit_mb`, since it started.
    pub oom_kills: Option<u64>,
    pub storage_bytes: Option<u64>,
}

/// How a process ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitInfo {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub at_unix: u64,
}

impl fmt::Display for ExitInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.code, self.signal) {
            (_, Some(signal)) => match signal_name(signal) {
                Some(name) => write!(f, "killed by signal {signal} (SIG{name})"),
                None => write!(f, "killed by signal {signal}"),
            },
            (Some(code), None) => write!(f, "exited with code {code}"),
            (None, None) => write!(f, "exited"),
        }
    }
}

/// Names of the common Linux signals, for messages.
pub(crate) fn signal_name(signal: i32) -> Option<&'static str> {
    Some(match signal {
        1 => "HUP",
        2 => "INT",
        3 => "QUIT",
        4 => "ILL",
        6 => "ABRT",
        7 => "BUS",
        8 => "FPE",
        9 => "KILL",
        10 => "USR1",
        11 => "SEGV",
        12 => "USR2",
        13 => "PIPE",
        14 => "ALRM",
        15 => "TERM",
        24 => "XCPU",
        25 => "XFSZ",
        28 => "WINCH",
        _ => return None,
    })
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObservedInstance {
    pub phase: Phase,
    #[serde(default)]
    pub pid: Option<u32>,
    /// Start time of `pid` in clock ticks since boot (/proc/PID/stat field 22): with the pid,
    /// it identifies the process, so a recycled pid is never mistaken for the tenant.
    #[serde(default)]
    pub pid_start_time: Option<u64>,
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub started_at_unix: Option<u64>,
    /// The spec fields this instance was last applied with (shared with the desired spec it
    /// was applied from).
    pub spec: Arc<FieldMap>,
    /// Where it was declared when last applied (for "was removed" reasons).
    #[serde(default)]
    pub declared_in: Option<String>,
    #[serde(default)]
    pub health: Health,
    /// Restarts within the current restart window.
    #[serde(default)]
    pub restarts: u32,
    /// When they happened (Unix seconds), so a restarted ten keeps counting.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restart_times_unix: Vec<u64>,
    #[serde(default)]
    pub last_exit: Option<Box<ExitInfo>>,
    /// Why it is in its phase, when that needs saying ("process 4242 is gone").
    #[serde(default)]
    pub note: Option<String>,
    /// While `stopping`: the phase it heads for (`sleeping` when idle, `starting` or `backoff`
    /// for a restart, `failed`, `stopped`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heading_for: Option<Phase>,
}

impl ObservedInstance {
    /// A freshly applied instance in `phase` with `spec`.
    pub fn new(phase: Phase, spec: impl Into<Arc<FieldMap>>) -> Self {
        Self {
            phase,
            pid: None,
            pid_start_time: None,
            port: None,
            started_at_unix: None,
            spec: spec.into(),
            declared_in: None,
            health: Health::Unknown,
            restarts: 0,
            restart_times_unix: Vec::new(),
            last_exit: None,
            note: None,
            heading_for: None,
        }
    }
}

/// The observed process table.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ObservedState {
    /// Bumped by the server on every change of the table; part of plan tokens.
    pub generation: u64,
    /// Settings last applied; `None` when nothing was ever applied.
    #[serde(default)]
    pub settings: Option<FieldMap>,
    pub instances: BTreeMap<InstanceKey, ObservedInstance>,
    /// The boot of the machine the pids belong to (`/proc/sys/kernel/random/boot_id`); pids
    /// from another boot name other processes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
}

impl ObservedState {
    /// Marks instances whose recorded process is gone (per `alive(pid, start_time)`) as
    /// exited, so a plan shows them as drift. Returns how many were marked.
    pub fn forget_gone_processes(&mut self, alive: impl Fn(u32, Option<u64>) -> bool) -> usize {
        let mut gone = 0;
        for instance in self.instances.values_mut() {
            let Some(pid) = instance.pid else { continue };
            if alive(pid, instance.pid_start_time) {
                continue;
            }
            gone += 1;
            instance.phase = Phase::Exited;
            instance.pid = None;
            instance.pid_start_time = None;
            instance.health = Health::Unknown;
            instance.note = Some(format!("process {pid} is gone"));
        }
        gone
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exits_describe_themselves() {
        let exit = |code, signal| {
            ExitInfo {
                code,
                signal,
                at_unix: 0,
            }
            .to_string()
        };
        assert_eq!(exit(Some(1), None), "exited with code 1");
        assert_eq!(exit(None, Some(9)), "killed by signal 9 (SIGKILL)");
        assert_eq!(exit(None, Some(64)), "killed by signal 64");
    }

    #[test]
    fn gone_processes_become_exited() {
        let mut state = ObservedState::default();
        let key = |text| InstanceKey::parse(text).unwrap();
        let mut alive = ObservedInstance::new(Phase::Running, FieldMap::new());
        alive.pid = Some(10);
        let mut dead = alive.clone();
        dead.pid = Some(20);
        state.instances.insert(key("a:a"), alive);
        state.instances.insert(key("a:b"), dead);
        assert_eq!(state.forget_gone_processes(|pid, _| pid == 10), 1);
        assert_eq!(state.instances[&key("a:a")].phase, Phase::Running);
        let gone = &state.instances[&key("a:b")];
        assert_eq!(gone.phase, Phase::Exited);
        assert_eq!(gone.note.as_deref(), Some("process 20 is gone"));
    }
}
