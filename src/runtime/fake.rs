//! A scriptable runtime for tests of supervision on paused time: processes are pids in a
//! table, exits are sent by the test (or follow a signal), probes answer what the test says.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

use crate::names::InstanceKey;

use super::{
    AdoptError, GroupSignal, Launch, Probe, ProbeOutcome, ProcessExit, Runtime, SpawnError, Started,
};

#[derive(Default)]
struct FakeState {
    next_pid: u32,
    running: HashMap<u32, (InstanceKey, oneshot::Sender<ProcessExit>)>,
    launches: Vec<Launch>,
    signals: Vec<(u32, GroupSignal)>,
    /// Processes "left by an earlier ten": pid -> (instance, start time).
    leftovers: HashMap<u32, (InstanceKey, u64)>,
    forgotten: Vec<u32>,
    unhealthy: HashSet<InstanceKey>,
    failing_spawns: HashSet<InstanceKey>,
    /// Instances that ignore their stop signal (only SIGKILL ends them).
    stubborn: HashSet<InstanceKey>,
    /// What [`Runtime::usage`] reports.
    usage: crate::observed::Usage,
    /// Every probe asked for, in order, with when.
    probes: Vec<(InstanceKey, Probe, tokio::time::Instant)>,
    /// Instances whose probes wait for [`FakeRuntime::release_probes`].
    held: HashSet<InstanceKey>,
}

#[derive(Clone, Default)]
pub(crate) struct FakeRuntime {
    state: Arc<Mutex<FakeState>>,
    /// Told when held probes are released.
    released: Arc<tokio::sync::Notify>,
}

impl FakeRuntime {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, FakeState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Ends process `pid` with `exit`, as if it exited by itself.
    pub(crate) fn exit(&self, pid: u32, exit: ProcessExit) {
        if let Some((_, sender)) = self.lock().running.remove(&pid) {
            let _ = sender.send(exit);
        }
    }

    /// The pid of `key`'s running process, if any.
    pub(crate) fn pid_of(&self, key: &InstanceKey) -> Option<u32> {
        self.lock()
            .running
            .iter()
            .find(|(_, (owner, _))| owner == key)
            .map(|(pid, _)| *pid)
    }

    pub(crate) fn launches(&self) -> Vec<Launch> {
        self.lock().launches.clone()
    }

    /// A process of `key` that an earlier ten left running, for [`Runtime::adopt`].
    pub(crate) fn leave_running(&self, key: &InstanceKey, pid: u32, start_time: u64) {
        self.lock().leftovers.insert(pid, (key.clone(), start_time));
    }

    /// Pids whose end was reported with [`Runtime::forget`].
    pub(crate) fn forgotten(&self) -> Vec<u32> {
        self.lock().forgotten.clone()
    }

    /// Every probe asked for so far, in order, with its instance and when it was asked.
    pub(crate) fn probes(&self) -> Vec<(InstanceKey, Probe, tokio::time::Instant)> {
        self.lock().probes.clone()
    }

    pub(crate) fn signals(&self) -> Vec<(u32, GroupSignal)> {
        self.lock().signals.clone()
    }

    pub(crate) fn set_healthy(&self, key: &InstanceKey, healthy: bool) {
        let mut state = self.lock();
        if healthy {
            state.unhealthy.remove(key);
        } else {
            state.unhealthy.insert(key.clone());
        }
    }

    pub(crate) fn fail_spawns(&self, key: &InstanceKey) {
        self.lock().failing_spawns.insert(key.clone());
    }

    /// Every process reports `usage` from now on.
    pub(crate) fn set_usage(&self, usage: crate::observed::Usage) {
        self.lock().usage = usage;
    }

    pub(crate) fn ignore_stop_signal(&self, key: &InstanceKey) {
        self.lock().stubborn.insert(key.clone());
    }

    /// Probes of `key` asked for from now on wait until [`Self::release_probes`], and then
    /// answer as things are then.
    pub(crate) fn hold_probes(&self, key: &InstanceKey) {
        self.lock().held.insert(key.clone());
    }

    pub(crate) fn release_probes(&self, key: &InstanceKey) {
        self.lock().held.remove(key);
        self.released.notify_waiters();
    }
}

impl Runtime for FakeRuntime {
    async fn start(&self, launch: Launch) -> Result<Started, SpawnError> {
        let mut state = self.lock();
        if state.failing_spawns.contains(&launch.key) {
            return Err(SpawnError::Exec {
                program: launch.argv.first().cloned().unwrap_or_default(),
                workdir: launch.workdir.clone(),
                source: std::io::Error::other("fake spawn failure"),
            });
        }
        state.next_pid += 1;
        let pid = 1000 + state.next_pid;
        let (sender, exit) = oneshot::channel();
        state.running.insert(pid, (launch.key.clone(), sender));
        state.launches.push(launch);
        Ok(Started {
            pid,
            start_time: Some(u64::from(pid)),
            exit,
        })
    }

    fn adopt(
        &self,
        key: &InstanceKey,
        pid: u32,
        start_time: u64,
        _name: Option<&str>,
        _sandboxed: bool,
    ) -> Result<Started, AdoptError> {
        let mut state = self.lock();
        match state.leftovers.remove(&pid) {
            Some((owner, started)) if owner == *key && started == start_time => {
                let (sender, exit) = oneshot::channel();
                state.running.insert(pid, (key.clone(), sender));
                Ok(Started {
                    pid,
                    start_time: Some(start_time),
                    exit,
                })
            }
            Some(_) => Err(AdoptError::Recycled { pid }),
            None => Err(AdoptError::Gone { pid }),
        }
    }

    fn forget(&self, _key: &InstanceKey, pid: u32) {
        self.lock().forgotten.push(pid);
    }

    fn signal(&self, pid: u32, signal: GroupSignal) {
        let mut state = self.lock();
        state.signals.push((pid, signal));
        let stubborn = state
            .running
            .get(&pid)
            .is_some_and(|(key, _)| state.stubborn.contains(key));
        if stubborn && signal != GroupSignal::Kill {
            return;
        }
        if let Some((_, sender)) = state.running.remove(&pid) {
            let number = super::signal::nix_signal(signal) as i32;
            let _ = sender.send(ProcessExit {
                code: None,
                signal: Some(number),
            });
        }
    }

    fn out_of_memory(&self, _pid: u32) -> bool {
        false
    }

    async fn usage(
        &self,
        _pid: u32,
        _data_dir: Option<std::path::PathBuf>,
    ) -> crate::observed::Usage {
        self.lock().usage
    }

    async fn probe(&self, key: &InstanceKey, probe: Probe) -> ProbeOutcome {
        self.lock()
            .probes
            .push((key.clone(), probe, tokio::time::Instant::now()));
        loop {
            // Made before the look, so that a release right after it is not missed.
            let released = self.released.notified();
            if !self.lock().held.contains(key) {
                break;
            }
            released.await;
        }
        let state = self.lock();
        let running = state.running.values().any(|(owner, _)| owner == key);
        ProbeOutcome::Done(if running && !state.unhealthy.contains(key) {
            Ok(())
        } else {
            Err("fake probe failed".to_string())
        })
    }
}
