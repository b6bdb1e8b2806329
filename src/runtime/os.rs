//! [`OsRuntime`], the real [`Runtime`]: starts through spares and the spawner, adoption,
//! clean-up of ended processes, signals, probes and usage, by pid; the spares kept ready and
//! when a start may take one. Uses the other parts of `runtime`; none of them imports it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::{
    AdoptError, GroupSignal, Launch, Probe, ProbeOutcome, ProbeTarget, Runtime, SpawnEnv,
    SpawnError, Started,
};
use super::{
    adopt, cgroup, exec_probe, memory, probe, proc, process, signal, spare, spawner, storage, table,
};
use crate::names::InstanceKey;
use crate::observed::Usage;

/// The real runtime.
#[derive(Debug, Default)]
pub struct OsRuntime {
    host: Arc<SpawnEnv>,
    /// Cgroups and sandboxes of the processes started or adopted, by pid.
    running: Mutex<HashMap<u32, Arc<process::Running>>>,
    /// Clean-ups after ended processes still running on blocking threads.
    cleaning: Arc<std::sync::atomic::AtomicUsize>,
    /// Spare processes, each in its own cgroup, ready to become a tenant (with cgroups only).
    spares: Arc<Spares>,
    /// Starts tenants and command checks without forking ten.
    spawner: Arc<spawner::Spawner>,
    /// Starts in progress: a start that comes while another runs (a burst) goes through the
    /// spawner and leaves the spares to single starts (wakes); the last one refills them.
    starting: std::sync::atomic::AtomicUsize,
    /// When the last start began: one within [`BURST_GAP`] of it is part of the same burst,
    /// even if the start before it is over already (a burst's starts need not overlap).
    last_start: Mutex<Option<std::time::Instant>>,
}

/// How many spare processes are kept ready.
const SPARES: usize = 2;
/// How long after a start the spares are refilled: once the started tenant is likely
/// listening (most take a few to a few tens of milliseconds).
const REFILL_AFTER: std::time::Duration = std::time::Duration::from_millis(50);
/// Starts that begin less than this apart are a burst: only the first may take a spare.
const BURST_GAP: std::time::Duration = std::time::Duration::from_millis(50);

#[derive(Debug, Default)]
struct Spares {
    ready: Mutex<Vec<spare::Spare>>,
    refilling: std::sync::atomic::AtomicBool,
    /// Set at shutdown: a refill still running dismisses what it starts.
    closed: std::sync::atomic::AtomicBool,
}

impl Spares {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<spare::Spare>> {
        self.ready
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts spares until [`SPARES`] are ready. Blocking: each start moves a process into a
    /// cgroup, which may wait for the kernel.
    fn refill(&self, host: &SpawnEnv) {
        use std::sync::atomic::Ordering;
        let (Some(cgroups), Some(program)) = (&host.cgroups, &host.init_program) else {
            return;
        };
        if self.refilling.swap(true, Ordering::AcqRel) {
            return;
        }
        while !self.closed.load(Ordering::SeqCst) && self.lock().len() < SPARES {
            let name = process::unique_name("spare");
            let started = cgroups
                .create(&name, &cgroup::Limits::default())
                .map_err(|error| error.to_string())
                .and_then(|cgroup| {
                    spare::start(program, cgroup).map_err(|error| error.to_string())
                });
            match started {
                Ok(spare) => {
                    let mut ready = self.lock();
                    if self.closed.load(Ordering::SeqCst) {
                        drop(ready);
                        spare.discard();
                        break;
                    }
                    ready.push(spare);
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot start a spare process; tenants start without one");
                    break;
                }
            }
        }
        self.refilling.store(false, Ordering::Release);
    }

    /// Lets every spare go and removes their cgroups (at shutdown); none is started after.
    fn dismiss_all(&self) {
        self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
        let spares: Vec<spare::Spare> = self.lock().drain(..).collect();
        spares.into_iter().for_each(spare::Spare::discard);
    }
}

impl OsRuntime {
    pub fn new(host: SpawnEnv) -> Self {
        Self {
            spawner: Arc::new(spawner::Spawner::new(host.init_program.clone())),
            host: Arc::new(host),
            running: Mutex::default(),
            cleaning: Arc::default(),
            spares: Arc::default(),
            starting: Default::default(),
            last_start: Mutex::default(),
        }
    }

    /// Notes that a start begins now; whether it is alone: no other start in progress, and
    /// none began within [`BURST_GAP`].
    fn start_begins(&self) -> bool {
        use std::sync::atomic::Ordering;
        let now = std::time::Instant::now();
        let previous = self
            .last_start
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .replace(now);
        let in_progress = self.starting.fetch_add(1, Ordering::AcqRel) > 0;
        !in_progress && previous.is_none_or(|previous| now - previous >= BURST_GAP)
    }

    /// Readies spare processes (with cgroups only) and the spawner in the background.
    pub fn prepare_spares(&self) {
        let (spares, host) = (Arc::clone(&self.spares), Arc::clone(&self.host));
        let spawner = Arc::clone(&self.spawner);
        let prepare = move || {
            spawner.warm_up();
            spares.refill(&host);
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => drop(handle.spawn_blocking(prepare)),
            Err(_) => prepare(),
        }
    }

    /// Refills the spares in the background (with cgroups only), [`REFILL_AFTER`] after the
    /// start that took one: a spare's start (an exec of ten, a cgroup made) would otherwise
    /// take CPU from the woken tenant's own start and its readiness probes.
    fn refill_spares(&self) {
        let (spares, host) = (Arc::clone(&self.spares), Arc::clone(&self.host));
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => drop(handle.spawn(async move {
                tokio::time::sleep(REFILL_AFTER).await;
                let _ = tokio::task::spawn_blocking(move || spares.refill(&host)).await;
            })),
            Err(_) => spares.refill(&host),
        }
    }

    /// At startup, after adopting: stops every process in this data directory's cgroups but
    /// `keep` (the adopted ones') and removes those cgroups (see `Cgroups::stop_unclaimed`).
    /// Blocking.
    pub fn stop_unclaimed_cgroups(&self, keep: &std::collections::BTreeSet<String>) {
        let Some(cgroups) = &self.host.cgroups else {
            return;
        };
        for (name, pids) in cgroups.stop_unclaimed(keep) {
            tracing::warn!(
                cgroup = %name,
                ?pids,
                "stopped processes no process table entry claims (a spare, or a start the last ten did not finish)"
            );
        }
    }

    /// Removes the cgroup parent of this data directory if no tenant is left in it (at
    /// shutdown, once the clean-ups of ended processes are done). Blocking.
    pub fn remove_cgroup_parent(&self) {
        use std::sync::atomic::Ordering;
        self.spares.dismiss_all();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while self.cleaning.load(Ordering::Acquire) > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        if let Some(cgroups) = &self.host.cgroups {
            cgroups.remove_unused(&Default::default());
            cgroups.remove_parent_if_empty();
        }
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Arc<process::Running>>> {
        self.running
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Runtime for OsRuntime {
    async fn start(&self, launch: Launch) -> Result<Started, SpawnError> {
        use std::sync::atomic::Ordering;
        let host = Arc::clone(&self.host);
        let spawner = Arc::clone(&self.spawner);
        // A single start (a wake) takes a spare, already in its cgroup; one among others (a
        // burst) goes through the spawner, whose children join their cgroups one after
        // another, so that only the first waits for the kernel.
        let alone = self.start_begins();
        let spare = if alone {
            self.spares.lock().pop()
        } else {
            None
        };
        let started = match tokio::task::spawn_blocking(move || {
            process::start_process(&launch, &host, spare, Some(&spawner))
        })
        .await
        {
            Ok(result) => result,
            Err(join_error) => Err(SpawnError::Exec {
                program: String::new(),
                workdir: Default::default(),
                source: std::io::Error::other(join_error.to_string()),
            }),
        };
        let last = self.starting.fetch_sub(1, Ordering::AcqRel) == 1;
        if last && self.host.cgroups.is_some() {
            self.refill_spares();
        }
        let (started, running) = started?;
        self.running().insert(started.pid, Arc::new(running));
        Ok(started)
    }

    fn adopt(
        &self,
        _key: &InstanceKey,
        pid: u32,
        start_time: u64,
        name: Option<&str>,
        sandboxed: bool,
    ) -> Result<Started, AdoptError> {
        let started = adopt::adopt_process(pid, start_time)?;
        if let Some(name) = name {
            let cgroup = self.host.cgroups.as_ref().map(|cgroups| cgroups.open(name));
            let running = process::Running {
                name: name.to_string(),
                cgroup,
                sandboxed,
            };
            self.running().insert(pid, Arc::new(running));
        }
        Ok(started)
    }

    fn forget(&self, key: &InstanceKey, pid: u32) {
        let running = self.running().remove(&pid);
        let host = Arc::clone(&self.host);
        let key = key.clone();
        let cleanup = move || {
            if let Some(running) = running {
                if let Some(cgroup) = &running.cgroup {
                    // Whatever it left behind (a setsid daemon, a forked worker) goes too.
                    cgroup.kill_all();
                    cgroup.remove();
                }
                if running.sandboxed
                    && let Some(sandbox) = &host.sandbox
                {
                    sandbox.cleanup(&running.name);
                }
            }
            if let Some(table) = &host.table {
                table::remove_entry(table, &key, pid);
            }
        };
        let cleaning = Arc::clone(&self.cleaning);
        cleaning.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        let counted = move || {
            cleanup();
            cleaning.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => drop(handle.spawn_blocking(counted)),
            Err(_) => counted(),
        }
    }

    fn signal(&self, pid: u32, signal: GroupSignal) {
        signal::signal_group(pid, signal);
        if signal == GroupSignal::Kill
            && let Some(running) = self.running().get(&pid).cloned()
            && running.cgroup.is_some()
        {
            let kill = move || {
                if let Some(cgroup) = &running.cgroup {
                    cgroup.kill_all();
                }
            };
            match tokio::runtime::Handle::try_current() {
                Ok(handle) => drop(handle.spawn_blocking(kill)),
                Err(_) => kill(),
            }
        }
    }

    fn out_of_memory(&self, pid: u32) -> bool {
        let running = self.running().get(&pid).cloned();
        running
            .and_then(|running| running.cgroup.as_ref()?.usage().oom_kills)
            .is_some_and(|kills| kills > 0)
    }

    async fn probe(&self, _key: &InstanceKey, probe: Probe) -> ProbeOutcome {
        match probe.target {
            ProbeTarget::Exec(exec) => {
                let cgroup = exec
                    .pid
                    .and_then(|pid| self.running().get(&pid).cloned())
                    .filter(|running| running.cgroup.is_some());
                let procs = cgroup
                    .as_ref()
                    .and_then(|running| running.cgroup.as_ref().map(|cgroup| cgroup.procs_files()))
                    .unwrap_or_default();
                let clone_into = cgroup.as_ref().and_then(|running| {
                    running
                        .cgroup
                        .as_ref()?
                        .v2_dir()
                        .map(std::path::Path::to_path_buf)
                });
                let spawner = Arc::clone(&self.spawner);
                ProbeOutcome::Done(
                    exec_probe::run_exec(exec, probe.timeout, procs, clone_into, spawner).await,
                )
            }
            _ => probe::run_probe(&probe).await,
        }
    }

    fn tenants_memory(&self) -> Option<memory::MemoryFiles> {
        self.host
            .cgroups
            .as_ref()
            .map(cgroup::Cgroups::memory_files)
    }

    async fn usage(&self, pid: u32, data_dir: Option<PathBuf>) -> Usage {
        let running = self.running().get(&pid).cloned();
        let measured =
            tokio::task::spawn_blocking(move || measure(pid, running.as_deref(), data_dir)).await;
        measured.unwrap_or_default()
    }

    /// All on one blocking thread.
    async fn usages(&self, wanted: Vec<(u32, Option<PathBuf>)>) -> Vec<Usage> {
        let count = wanted.len();
        let running: Vec<_> = {
            let running = self.running();
            wanted
                .iter()
                .map(|(pid, _)| running.get(pid).cloned())
                .collect()
        };
        let measured = tokio::task::spawn_blocking(move || {
            wanted
                .into_iter()
                .zip(running)
                .map(|((pid, data_dir), running)| measure(pid, running.as_deref(), data_dir))
                .collect()
        })
        .await;
        measured.unwrap_or_else(|_| vec![Usage::default(); count])
    }
}

/// What process `pid` (`running`, when ten started or adopted it) uses: from its cgroup, or
/// its main process without one; the size of `data_dir` when given.
fn measure(pid: u32, running: Option<&process::Running>, data_dir: Option<PathBuf>) -> Usage {
    let mut usage = match running.and_then(|running| running.cgroup.as_ref()) {
        Some(cgroup) => {
            let measured = cgroup.usage();
            Usage {
                memory_bytes: measured.memory_bytes,
                cpu_usec: measured.cpu_usec,
                tasks: measured.tasks,
                oom_kills: measured.oom_kills,
                storage_bytes: None,
            }
        }
        None => proc::usage(pid),
    };
    usage.storage_bytes = data_dir.and_then(|dir| storage::usage_bytes(&dir).ok());
    usage
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;

    #[test]
    fn a_start_soon_after_another_is_part_of_its_burst_even_when_that_one_is_over() {
        let runtime = OsRuntime::new(SpawnEnv::default());
        assert!(runtime.start_begins(), "the first start is alone");
        assert!(!runtime.start_begins(), "one while another runs is not");
        // Both are over; the next one begins at once: the same burst, no spare for it.
        runtime.starting.store(0, Ordering::SeqCst);
        assert!(!runtime.start_begins());
        runtime.starting.store(0, Ordering::SeqCst);
        // Long after the last one began, a start is alone again (a wake).
        *runtime.last_start.lock().unwrap() =
            Some(std::time::Instant::now() - BURST_GAP - std::time::Duration::from_millis(1));
        assert!(runtime.start_begins());
    }
}
