//! The task that supervises one instance: runs its [`Machine`], executes its effects through
//! the [`Runtime`], publishes its status and keeps the instance's [`Gate`] current.
//!
//! One task per instance, so supervision of one instance never waits on another: a slow
//! probe, a long backoff or a stuck stop only ever delays its own instance. The reconciler
//! talks to it with [`Command`]s and reads its [`InstanceStatus`] from a watch channel; it is
//! told which instance changed over one shared channel. The proxy talks to it through the gate
//! (wake requests); the task tells the machine what the gate says of traffic (last activity,
//! requests in flight) and how a replacement is doing, and the machine decides when to sleep,
//! when a held stop signal goes and when to retire.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::time::Instant;

use crate::config::{Listen, Settings};
use crate::desired::InstanceSpec;
use crate::events::EventLog;
use crate::names::InstanceKey;
use crate::observed::{ExitInfo, Health, Usage};
use crate::runtime::logs::LogHub;
use crate::runtime::ports::PortAllocator;
use crate::runtime::{
    CheckConnection, ProbeOutcome, ProbeResult, ProcessExit, Runtime, SpawnError, Started,
};

use super::gate::{Backend, Gate, Owner, Target};
use super::launch::BaseEnv;
use super::machine::{Cause, Effect, Input, Machine, State, Traffic};
use super::mailbox::Mailbox;
use super::messages::{Adoption, Command, InstanceStatus, StatusReceiver, StatusSender};
use super::usage::UsageCell;

/// What every instance task shares.
pub struct Shared<R> {
    pub runtime: Arc<R>,
    pub logs: Arc<LogHub>,
    pub events: EventLog,
    pub ports: Arc<Mutex<PortAllocator>>,
    pub base_env: BaseEnv,
    /// Instances starting at once (spawned, not yet healthy): bounds the load of mass starts.
    pub startup_permits: Arc<Semaphore>,
    /// Where a task says "my status changed".
    pub changed: mpsc::UnboundedSender<InstanceKey>,
    /// What wakes ask under `memory_limit_total`.
    pub admission: Arc<super::admission::Admission>,
    /// The runtime the tasks run on. A sleeping instance's task is made by its first command,
    /// which may come from a proxy worker, on a runtime of its own.
    pub tasks: tokio::runtime::Handle,
}

/// The reconciler's handle on one instance task.
pub(crate) struct InstanceHandle {
    pub commands: Mailbox,
    pub status: StatusReceiver,
    /// What it used at the last sample (kept out of the status: it changes with every
    /// sample and is no part of the observed state), taken when asked for
    /// ([`super::usage`]).
    pub usage: UsageCell,
}

impl InstanceHandle {
    pub(crate) fn send(&self, command: Command) {
        self.commands.send(command);
    }

    /// What a gate needs to reach this task.
    pub(crate) fn owner(&self) -> Owner {
        Owner {
            commands: self.commands.clone(),
            status: self.status.clone(),
        }
    }
}

type Boxed<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A spawn in progress: the startup permit it holds, and the runtime's answer.
type Spawning = Boxed<(Option<OwnedSemaphorePermit>, Result<Started, SpawnError>)>;

struct InstanceTask<R> {
    key: InstanceKey,
    spec: Arc<InstanceSpec>,
    settings: Arc<Settings>,
    port: u16,
    machine: Machine,
    shared: Arc<Shared<R>>,
    status: StatusSender,
    gate: Arc<Gate>,
    /// This task's process as a backend of the gate, while it answers (and while a stop
    /// waits for its requests in flight).
    backend: Option<Arc<Backend>>,
    pid_start_time: Option<u64>,
    started_at_unix: Option<u64>,
    last_exit_at: Option<u64>,
    exit: Option<oneshot::Receiver<ProcessExit>>,
    spawning: Option<Spawning>,
    probing: Option<Boxed<(Option<u32>, ProbeOutcome)>>,
    /// Whether the machine asked for the probe in flight: a probe only a user asked for
    /// (`ten health`) answers them and counts for nothing (looking must not restart it).
    probe_counts: bool,
    /// The connection HTTP checks of the process keep between checks; closed when it ends.
    check_connection: CheckConnection,
    /// A usage sample of this process in progress, its data directory measured (taken with
    /// each periodic health check when a storage quota is to be enforced).
    sampling: Option<Boxed<(u32, Usage)>>,
    usage: UsageCell,
    /// Held from spawn until the instance answers (or gives up).
    permit: Option<OwnedSemaphorePermit>,
    /// `ten health` callers waiting for an explicit probe.
    health_waiters: Vec<oneshot::Sender<ProbeResult>>,
    /// The replacement whose health this task waits for before leaving (while the machine is
    /// retiring).
    successor: Option<StatusReceiver>,
    /// The kernel killed the last process that ended over its memory limit: a crash that
    /// follows counts as `out_of_memory`.
    out_of_memory: bool,
}

impl<R: Runtime> InstanceTask<R> {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        // The last deadline the machine was ticked for.
        let mut ticked: Option<Instant> = None;
        loop {
            let deadline = self.machine.deadline();
            // A deadline already due (a wake's first check) is not left to the runtime's
            // timers, which fire at their next millisecond tick at best; once per deadline,
            // so a machine that kept it would still wait on the timers.
            if let Some(due) = deadline
                && ticked != Some(due)
                && due <= Instant::now()
            {
                ticked = Some(due);
                if self.advance(Input::Tick) {
                    return;
                }
                continue;
            }
            let input = tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => match self.command(command) {
                        Some(input) => input,
                        None => continue,
                    },
                    // The reconciler is gone (ten is exiting): leave the process as it is.
                    None => return,
                },
                exit = async { self.exit.as_mut().expect("guarded").await }, if self.exit.is_some() => {
                    self.exit = None;
                    // The reaper dropped it: the process is gone without a status.
                    self.ended(exit.unwrap_or(ProcessExit { code: None, signal: None }))
                }
                (permit, started) = async { self.spawning.as_mut().expect("guarded").await }, if self.spawning.is_some() => {
                    self.spawning = None;
                    self.spawned(permit, started)
                }
                (pid, usage) = async { self.sampling.as_mut().expect("guarded").await }, if self.sampling.is_some() => {
                    self.sampling = None;
                    match self.sampled(pid, usage) {
                        Some(input) => input,
                        None => continue,
                    }
                }
                (pid, outcome) = async { self.probing.as_mut().expect("guarded").await }, if self.probing.is_some() => {
                    self.probing = None;
                    let input = self.probed(pid, outcome);
                    if !std::mem::take(&mut self.probe_counts) {
                        continue;
                    }
                    input
                }
                () = sleep_until(deadline), if deadline.is_some() => {
                    ticked = deadline;
                    Input::Tick
                }
                changed = async { self.successor.as_mut().expect("guarded").changed().await }, if self.successor.is_some() => {
                    Input::Successor(self.successor_status(changed.is_ok()))
                }
            };
            if self.advance(input) {
                return;
            }
        }
    }

    /// Runs one input through the machine and carries out what follows; true once the task
    /// is done (removed, its process gone).
    fn advance(&mut self, input: Input) -> bool {
        let now = Instant::now();
        // Idleness and drains are decided on what the gate says now.
        let mut effects = self.machine.step(Input::Traffic(self.traffic()), now);
        effects.extend(self.machine.step(input, now));
        for effect in effects {
            self.execute(effect);
        }
        if !matches!(
            self.machine.state,
            State::Spawning { .. } | State::Starting { .. }
        ) {
            // Starting is over (answering, or given up): let another instance start.
            self.permit = None;
        }
        if !self.machine.retiring {
            // Retired, or the replacement is gone: nothing more to hear from it.
            self.successor = None;
        }
        self.sync_gate();
        if self.machine.state == State::Removed
            && self.machine.pid().is_none()
            && self.spawning.is_none()
        {
            self.finish();
            return true;
        }
        self.publish();
        false
    }

    /// The process ended: says so if the kernel killed it over its memory limit, lets the
    /// runtime clean up after it.
    fn ended(&mut self, exit: ProcessExit) -> Input {
        self.last_exit_at = Some(crate::observed::record::unix_now());
        self.out_of_memory = false;
        if let Some(pid) = self.machine.pid() {
            self.check_connection.process_ended(pid);
            if self.shared.runtime.out_of_memory(pid) {
                self.out_of_memory = true;
                let limit = self
                    .spec
                    .memory_limit_mb
                    .map_or_else(String::new, |mb| format!(" (memory_limit_mb = {mb})"));
                self.shared.events.record(
                    Some(&self.key),
                    "lifecycle",
                    format!(
                        "out of memory: the kernel killed a process over its memory limit{limit}"
                    ),
                    None,
                );
            }
            self.shared.runtime.forget(&self.key, pid);
        }
        Input::Exited(exit)
    }

    /// The runtime's answer to a spawn.
    fn spawned(
        &mut self,
        permit: Option<OwnedSemaphorePermit>,
        started: Result<Started, SpawnError>,
    ) -> Input {
        match started {
            Ok(started) => {
                crate::metrics::global().spawned();
                self.permit = permit;
                self.exit = Some(started.exit);
                self.pid_start_time = started.start_time;
                self.started_at_unix = Some(crate::observed::record::unix_now());
                Input::Spawned { pid: started.pid }
            }
            Err(error) => {
                crate::metrics::global().spawn_failed();
                Input::SpawnFailed {
                    permanent: error.is_permanent(),
                    error: error.to_string(),
                }
            }
        }
    }

    /// What the gate says of this instance's requests: the last activity, and the requests in
    /// flight on this task's process (none without a backend).
    fn traffic(&self) -> Traffic {
        Traffic {
            last_activity: self.gate.last_activity(),
            in_flight: self
                .backend
                .as_ref()
                .map_or(0, |backend| backend.in_flight()),
        }
    }

    /// The replacement's status; `None` once its task is gone.
    fn successor_status(&self, alive: bool) -> Option<InstanceStatus> {
        let successor = self.successor.as_ref().filter(|_| alive)?;
        Some(successor.borrow().clone())
    }

    /// Applies a command to the task's own state; returns what the machine must hear.
    fn command(&mut self, command: Command) -> Option<Input> {
        match command {
            Command::Start(spec) => {
                self.set_spec(spec);
                Some(Input::Start)
            }
            Command::Replace(spec) => {
                self.set_spec(spec);
                Some(Input::Restart)
            }
            Command::Update(spec) => {
                self.set_spec(spec);
                self.publish();
                None
            }
            Command::Restart => Some(Input::Restart),
            Command::ForceRestart => Some(Input::ForceRestart),
            Command::Stop => Some(Input::Stop),
            Command::Remove => Some(Input::Remove),
            Command::Wake => {
                self.gate.wake_taken();
                Some(Input::Wake)
            }
            Command::RetireAfter(successor) => {
                self.successor = Some(successor);
                // It may be healthy already.
                Some(Input::Successor(self.successor_status(true)))
            }
            Command::Settings(settings) => {
                self.settings = settings;
                self.machine.policy = policy(&self.spec, &self.settings, self.port);
                None
            }
            Command::Adopt(adoption) => self.adopt(*adoption),
            Command::Asleep => Some(Input::Asleep),
            Command::Sleep(reason) => Some(Input::Evict(reason)),
            Command::CheckHealth(reply) => {
                if self.machine.pid().is_none() {
                    let _ = reply.send(Err(format!(
                        "{} is not running ({})",
                        self.key,
                        self.machine.phase()
                    )));
                } else if let Some(start_seconds) = self.machine.policy.liveness {
                    // No check and no port: healthy is having stayed up start_seconds.
                    let _ = reply.send(if self.machine.health == Health::Healthy {
                        Ok(())
                    } else {
                        Err(format!(
                            "{} has not stayed up {} (start_seconds) yet",
                            self.key,
                            humantime::format_duration(start_seconds)
                        ))
                    });
                } else {
                    self.health_waiters.push(reply);
                    if self.probing.is_none() {
                        self.probing = Some(self.probe_future());
                    }
                }
                None
            }
        }
    }

    /// Takes over a process an earlier ten left. If it is gone (or its pid is another
    /// process now) since the reconciler looked, nothing is signalled: the instance stays
    /// stopped and the plan starts it.
    fn adopt(&mut self, adoption: Adoption) -> Option<Input> {
        let now = Instant::now();
        let unix_now = crate::observed::record::unix_now();
        self.machine.restarts = adoption
            .restart_times_unix
            .iter()
            .filter_map(|at| now.checked_sub(Duration::from_secs(unix_now.saturating_sub(*at))))
            .collect();
        match self.shared.runtime.adopt(
            &self.key,
            adoption.pid,
            adoption.start_time,
            adoption.name.as_deref(),
            adoption.sandboxed,
        ) {
            Ok(started) => {
                self.exit = Some(started.exit);
                self.pid_start_time = started.start_time;
                self.started_at_unix = Some(adoption.started_at_unix);
                Some(Input::Adopted { pid: started.pid })
            }
            Err(error) => {
                self.shared.runtime.forget(&self.key, adoption.pid);
                self.shared.events.record(
                    Some(&self.key),
                    "lifecycle",
                    format!("not adopted: {error}"),
                    None,
                );
                None
            }
        }
    }

    /// Keeps a usage sample of process `pid`, its data directory measured; past the storage
    /// quota, the instance must stop.
    fn sampled(&mut self, pid: u32, usage: Usage) -> Option<Input> {
        super::usage::store(&self.usage, pid, usage, true, Instant::now());
        let quota_mb = self.spec.storage_quota_mb?;
        let used = usage.storage_bytes?;
        if self.machine.pid().is_none() || used < quota_mb.saturating_mul(1024 * 1024) {
            return None;
        }
        Some(Input::OverQuota {
            reason: format!(
                "over storage quota: {} MB used of storage_quota_mb = {quota_mb}",
                crate::runtime::storage::megabytes(used)
            ),
        })
    }

    fn set_spec(&mut self, spec: Arc<InstanceSpec>) {
        self.spec = spec;
        self.machine.policy = policy(&self.spec, &self.settings, self.port);
    }

    fn execute(&mut self, effect: Effect) {
        match effect {
            Effect::Spawn => self.spawning = Some(self.spawn_future()),
            Effect::Signal { pid, signal } => self.shared.runtime.signal(pid, signal),
            Effect::Probe => {
                if self.probing.is_none() {
                    self.probing = Some(self.probe_future());
                }
                self.probe_counts = true;
                // A storage quota is enforced at the periodic checks of a running instance:
                // its data directory is measured with each. Without one, nothing is sampled
                // here: usage is taken when asked for (`super::usage`).
                if let (State::Running { pid, .. }, None, Some(_)) = (
                    &self.machine.state,
                    &self.sampling,
                    self.spec.storage_quota_mb,
                ) {
                    let runtime = Arc::clone(&self.shared.runtime);
                    let data_dir = Some(self.spec.data_dir().to_path_buf());
                    let pid = *pid;
                    self.sampling = Some(Box::pin(async move {
                        (pid, runtime.usage(pid, data_dir).await)
                    }));
                }
            }
            Effect::Event(message) => {
                self.shared
                    .events
                    .record(Some(&self.key), "lifecycle", message, None)
            }
            Effect::WakeFailed(error) => self.gate.fail_wake(error),
            Effect::Setback { cause, failed } => {
                let cause = match cause {
                    Cause::Crashed if self.out_of_memory => Cause::OutOfMemory,
                    cause => cause,
                };
                // An instance of a service no longer declared counts nowhere (no series).
                if let Some(counters) = crate::metrics::services().get(self.key.service.as_str()) {
                    if failed {
                        counters.failed(cause);
                    } else {
                        counters.restarting(cause);
                    }
                }
            }
        }
    }

    /// Opens the gate while the process answers; closes it (for this backend) otherwise.
    fn sync_gate(&mut self) {
        // A worker answers no request: its gate never opens.
        let answering =
            matches!(self.machine.state, State::Running { .. }) && self.spec.listen != Listen::None;
        match (&self.backend, answering) {
            (None, true) => {
                let target = match self.spec.listen {
                    Listen::Port | Listen::None => Target::Tcp(self.port),
                    Listen::Socket => Target::Unix(self.spec.socket().to_path_buf()),
                };
                let backend = Backend::new(target);
                self.gate.touch();
                // During a replace, this takes the traffic over from the retiring process.
                self.gate.open(Arc::clone(&backend));
                self.backend = Some(backend);
            }
            (Some(backend), false) => {
                self.gate.close(backend);
                // Kept while a stop waits for the requests in flight on it.
                if !self.machine.draining() {
                    self.backend = None;
                }
            }
            _ => {}
        }
    }

    fn current_status(&self) -> InstanceStatus {
        let pid = self.machine.pid();
        InstanceStatus {
            phase: self.machine.phase(),
            pid,
            pid_start_time: pid.and(self.pid_start_time),
            port: self.port,
            health: self.machine.health,
            restarts: self.machine.restarts.len() as u32,
            restart_times_unix: {
                let now = Instant::now();
                let unix_now = crate::observed::record::unix_now();
                self.machine
                    .restarts
                    .iter()
                    .map(|at| unix_now.saturating_sub(now.duration_since(*at).as_secs()))
                    .collect()
            },
            started_at_unix: self.machine.running_since().and(self.started_at_unix),
            last_exit: self.machine.last_exit.map(|exit| {
                Box::new(ExitInfo {
                    code: exit.code,
                    signal: exit.signal,
                    at_unix: self.last_exit_at.unwrap_or(0),
                })
            }),
            note: self.machine.note.clone(),
            heading_for: self.machine.heading_for(),
            removed: false,
        }
    }

    fn publish(&self) {
        let status = self.current_status();
        let changed = self.status.send_if_modified(|current| {
            if *current == status {
                false
            } else {
                *current = status;
                true
            }
        });
        if changed {
            let _ = self.shared.changed.send(self.key.clone());
            // Requests held for a restart or a wake look at the phase again (a restart that
            // ends in `failed` changes no backend).
            self.gate.notify();
        }
    }

    fn finish(&mut self) {
        let mut status = self.current_status();
        status.removed = true;
        self.status.send_replace(status);
        let _ = self.shared.changed.send(self.key.clone());
    }
}

mod make;
mod probing;
mod spawning;
mod timers;
pub(crate) use make::{spawn_asleep, spawn_instance};
use timers::sleep_until;
#[cfg(test)]
use timers::{COALESCE_FROM, COARSE_FROM, COARSE_GRAIN, TIMER_GRAIN, coalesce, grain};
mod policy;
pub(crate) use policy::policy;

#[cfg(test)]
mod tests;
