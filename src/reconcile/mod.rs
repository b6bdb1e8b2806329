//! The reconcile loop: the one owner of the process table.
//!
//! An actor: it receives a closed set of [`Message`]s (files changed, API calls, shutdown),
//! status changes of instance tasks, and periodic resync ticks. A pass is level-triggered: it
//! ignores what woke it, reloads desired state if files changed, plans desired against
//! observed and executes the plan (or holds it). Instance tasks do the slow work (spawning,
//! stopping, probing), so a pass never waits on a process; many instances start at once,
//! bounded by the startup permits.
//!
//! Invalid desired state never touches a tenant: a broken tenement.toml keeps the last valid
//! desired state; a broken instance file keeps that instance's last valid declaration.

pub mod inherit;
mod record;
mod views;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::api::types::{InstanceView, PlanView, StatusView};
use crate::config::{Diagnostic, InstanceFile, has_errors};
use crate::desired::InstanceSpec;
use crate::desired::{DesiredState, reload};
use crate::names::InstanceKey;
use crate::observed::{Health, ObservedInstance, ObservedState, Phase};
use crate::plan::{Action, Change, Plan, ReasonKind, Target, plan};
use crate::proxy::routes::RouteTable;
use crate::runtime::ports::port_is_free;
use crate::runtime::{ProbeResult, Runtime};
use crate::supervisor::gate::Gate;
use crate::supervisor::task::{Command, InstanceHandle, InstanceStatus, Shared, spawn_instance};

pub use inherit::{Inheritance, inherit};
pub use record::RecordWriter;

/// A full reload and pass at least this often, whatever happens.
const RESYNC: Duration = Duration::from_secs(30);
/// Passes caused by instance state changes run at most this often.
const PASS_THROTTLE: Duration = Duration::from_millis(100);

pub enum Message {
    /// Files of the desired state changed (debounced by the watcher).
    FilesChanged,
    Call(Call),
    /// Stop (tenants too, unless `keep_tenants_on_exit`), write the record, answer.
    Shutdown {
        done: oneshot::Sender<()>,
    },
}

/// Requests of the control API.
pub enum Call {
    Status(oneshot::Sender<StatusView>),
    Plan(oneshot::Sender<PlanView>),
    /// Reload the files now and run a pass (after the API edited a file).
    Reload(oneshot::Sender<StatusView>),
    Apply {
        token: Option<String>,
        reply: oneshot::Sender<Result<ApplyStarted, CallError>>,
    },
    Instances(oneshot::Sender<Vec<InstanceView>>),
    /// Follow one instance's status.
    Watch {
        key: InstanceKey,
        reply: oneshot::Sender<Option<watch::Receiver<InstanceStatus>>>,
    },
    Restart {
        key: InstanceKey,
        reply: oneshot::Sender<Result<watch::Receiver<InstanceStatus>, CallError>>,
    },
    CheckHealth {
        key: InstanceKey,
        reply: oneshot::Sender<Result<oneshot::Receiver<ProbeResult>, CallError>>,
    },
}

/// An API error: an HTTP status and what to tell the user.
#[derive(Debug, Clone)]
pub struct CallError {
    pub status: u16,
    pub message: String,
    pub hint: Option<String>,
    pub diagnostics: Vec<Diagnostic>,
}

impl CallError {
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            hint: None,
            diagnostics: Vec::new(),
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    fn not_declared(key: &InstanceKey) -> Self {
        Self::new(404, format!("{key} is not declared"))
            .hint(format!("declare it with `ten spawn {key}`, then try again"))
    }
}

/// An apply that has been executed; the caller waits on each change.
pub struct ApplyStarted {
    pub token: String,
    pub changes: Vec<PendingChange>,
}

/// What one change waits for.
pub struct PendingChange {
    pub target: String,
    pub action: Action,
    pub status: Option<watch::Receiver<InstanceStatus>>,
    /// The longest it may take.
    pub timeout: Duration,
}

/// What the reconciler needs to start.
pub struct ReconcilerParts<R> {
    pub config_path: PathBuf,
    pub data_dir: PathBuf,
    pub shared: Arc<Shared<R>>,
    /// A valid desired state and the instance files it came from.
    pub desired: DesiredState,
    pub files: BTreeMap<InstanceKey, InstanceFile>,
    pub diagnostics: Vec<Diagnostic>,
    pub changed: mpsc::UnboundedReceiver<InstanceKey>,
    /// Where the proxy reads its routes.
    pub routes: Arc<ArcSwap<RouteTable>>,
    pub domain: String,
}

/// An applied instance: its task and its gate.
struct Slot {
    handle: InstanceHandle,
    gate: Arc<Gate>,
}

/// The old process of a zero-downtime replace.
struct Retiring {
    key: InstanceKey,
    handle: InstanceHandle,
    port: u16,
}

pub struct Reconciler<R> {
    config_path: PathBuf,
    shared: Arc<Shared<R>>,
    desired: Arc<DesiredState>,
    files: BTreeMap<InstanceKey, InstanceFile>,
    diagnostics: Vec<Diagnostic>,
    /// The latest files are invalid; `desired` is the last valid state.
    invalid: bool,
    frozen: Vec<InstanceKey>,
    observed: ObservedState,
    /// The task (and gate) of every applied instance.
    slots: BTreeMap<InstanceKey, Slot>,
    /// Old processes of zero-downtime replaces, serving until their successor is healthy.
    retiring: Vec<Retiring>,
    /// The proxy's route table; republished when instances or routing change.
    routes: Arc<ArcSwap<RouteTable>>,
    routes_dirty: bool,
    domain: String,
    /// Destroys sent, not finished.
    removing: BTreeSet<InstanceKey>,
    held: Option<String>,
    files_changed: bool,
    pass_due: bool,
    last_pass: Instant,
    record: RecordWriter,
    changed: mpsc::UnboundedReceiver<InstanceKey>,
}

impl<R: Runtime> Reconciler<R> {
    pub fn new(parts: ReconcilerParts<R>) -> Self {
        let settings = parts.desired.settings_fields();
        Self {
            config_path: parts.config_path,
            shared: parts.shared,
            desired: Arc::new(parts.desired),
            files: parts.files,
            invalid: has_errors(&parts.diagnostics),
            diagnostics: parts.diagnostics,
            frozen: Vec::new(),
            observed: ObservedState {
                generation: 1,
                settings: Some(settings),
                instances: BTreeMap::new(),
                boot_id: Some(crate::runtime::proc::boot_id().to_string()),
            },
            slots: BTreeMap::new(),
            retiring: Vec::new(),
            routes: parts.routes,
            routes_dirty: true,
            domain: parts.domain,
            removing: BTreeSet::new(),
            held: None,
            files_changed: false,
            pass_due: true,
            // The first pass runs at once.
            last_pass: Instant::now()
                .checked_sub(PASS_THROTTLE)
                .unwrap_or_else(Instant::now),
            record: RecordWriter::new(parts.data_dir),
            changed: parts.changed,
        }
    }

    /// Takes over what the previous ten left (see [`inherit`]), before the first pass: live
    /// processes are adopted as they are, sleeping instances sleep on, older duplicates are
    /// stopped. The first pass then plans against them like against any running instance.
    pub fn take_over(&mut self, inheritance: Inheritance) {
        self.observed.generation = self.observed.generation.max(inheritance.generation + 1);
        for entry in &inheritance.stale {
            self.shared.runtime.forget(&entry.instance, entry.pid);
        }
        for stray in inheritance.strays {
            self.stop_stray(stray);
        }
        let settings = self.desired.config.settings.clone();
        for process in inheritance.processes {
            let key = process.key;
            // A process that is no longer declared is supervised until the plan destroys it
            // (or holds that for `ten apply`).
            let spec = match self.desired.instances.get(&key) {
                Some(spec) => Arc::clone(spec),
                None => Arc::new(InstanceSpec::left_over(
                    key.clone(),
                    Arc::clone(&process.observed.spec),
                    &self.desired.config.dir,
                    &settings.data_dir,
                )),
            };
            self.shared
                .ports
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .reserve(&key, process.port);
            if let Err(error) = self.shared.logs.attach(&key) {
                tracing::warn!(instance = %key, %error, "cannot capture output");
            }
            let (handle, gate) = spawn_instance(
                Arc::clone(&self.shared),
                spec,
                &settings,
                process.port,
                None,
            );
            let pid = process.adoption.pid;
            handle.send(Command::Adopt(process.adoption));
            self.observed
                .instances
                .insert(key.clone(), process.observed);
            self.slots.insert(key.clone(), Slot { handle, gate });
            self.shared.events.record(
                Some(&key),
                "adopt",
                format!(
                    "pid {pid} on port {}, left running by the previous ten",
                    process.port
                ),
                None,
            );
        }
        for (key, instance) in inheritance.sleeping {
            let Some(spec) = self.desired.instances.get(&key).map(Arc::clone) else {
                continue;
            };
            let port = {
                let mut ports = self.shared.ports.lock().unwrap_or_else(|p| p.into_inner());
                match ports.allocate(&key, instance.port, port_is_free) {
                    Ok(port) => port,
                    Err(_) => continue,
                }
            };
            if let Err(error) = self.shared.logs.attach(&key) {
                tracing::warn!(instance = %key, %error, "cannot capture output");
            }
            let (handle, gate) =
                spawn_instance(Arc::clone(&self.shared), spec, &settings, port, None);
            handle.send(Command::Asleep);
            let mut instance = instance;
            instance.port = Some(port);
            self.observed.instances.insert(key.clone(), instance);
            self.slots.insert(key, Slot { handle, gate });
        }
        self.routes_dirty = true;
        self.bump();
    }

    /// Stops an older process of an instance that has a newer one (left by a ten that died
    /// during a zero-downtime replace): its stop signal, SIGKILL after its stop timeout.
    fn stop_stray(&self, stray: crate::runtime::table::ProcessEntry) {
        let key = stray.instance.clone();
        let Ok(started) = self.shared.runtime.adopt(
            &key,
            stray.pid,
            stray.start_time,
            stray.name.as_deref(),
            stray.sandboxed,
        ) else {
            self.shared.runtime.forget(&key, stray.pid);
            return;
        };
        let spec = InstanceSpec::left_over(
            key.clone(),
            stray.spec,
            &self.desired.config.dir,
            &self.desired.config.settings.data_dir,
        );
        let shared = Arc::clone(&self.shared);
        shared.events.record(
            Some(&key),
            "stop",
            format!(
                "stopping pid {}: an older process of {key}, left by a replace the previous ten did not finish",
                stray.pid
            ),
            None,
        );
        let pid = stray.pid;
        tokio::spawn(async move {
            use crate::runtime::GroupSignal;
            shared
                .runtime
                .signal(pid, GroupSignal::Stop(spec.stop_signal));
            if tokio::time::timeout(spec.stop_timeout, started.exit)
                .await
                .is_err()
            {
                shared.runtime.signal(pid, GroupSignal::Kill);
            }
            shared.runtime.forget(&key, pid);
        });
    }

    pub async fn run(mut self, mut messages: mpsc::Receiver<Message>) {
        let mut resync = tokio::time::interval_at(Instant::now() + RESYNC, RESYNC);
        loop {
            if self.pass_due || self.files_changed {
                let wait = PASS_THROTTLE.saturating_sub(self.last_pass.elapsed());
                if self.files_changed || wait.is_zero() {
                    let began = std::time::Instant::now();
                    self.pass().await;
                    crate::metrics::global().reconcile_pass(began.elapsed());
                }
            }
            let pass_at = self.pass_due.then(|| self.last_pass + PASS_THROTTLE);
            let flush_at = self.record.due();
            tokio::select! {
                message = messages.recv() => match message {
                    Some(Message::Shutdown { done }) => {
                        let keep_tenants = self.desired.config.settings.keep_tenants_on_exit;
                        self.shutdown(keep_tenants).await;
                        let _ = done.send(());
                        return;
                    }
                    Some(Message::FilesChanged) => self.files_changed = true,
                    Some(Message::Call(call)) => self.call(call).await,
                    None => return,
                },
                Some(key) = self.changed.recv() => {
                    self.refresh(&key);
                    while let Ok(key) = self.changed.try_recv() {
                        self.refresh(&key);
                    }
                }
                _ = resync.tick() => self.files_changed = true,
                () = sleep_until(pass_at), if pass_at.is_some() => {}
                () = sleep_until(flush_at), if flush_at.is_some() => self.record.flush(&self.observed),
            }
        }
    }

    /// A level-triggered pass: reload if files changed, plan, apply what the files ask for.
    async fn pass(&mut self) {
        let span = tracing::info_span!("reconcile", generation = self.observed.generation);
        let _enter = span.enter();
        self.last_pass = Instant::now();
        self.pass_due = false;
        if std::mem::take(&mut self.files_changed) {
            self.reload().await;
        }
        let plan = plan(&self.desired, &self.observed);
        let declared: Vec<&Change> = plan
            .changes
            .iter()
            .filter(|change| change.reason.kind == ReasonKind::Declared)
            .collect();
        let held = if declared.is_empty() {
            None
        } else {
            self.hold_reason(&plan, &declared)
        };
        if held != self.held {
            if let Some(reason) = &held {
                self.shared.events.warn(None, "held", reason.clone(), None);
            }
            self.held = held;
        }
        if self.held.is_some() {
            self.publish_routes();
            return;
        }
        let changes: Vec<Change> = declared.into_iter().cloned().collect();
        for change in &changes {
            self.execute(change);
        }
        self.publish_routes();
    }

    /// Swaps in a new route table when instances, weights or routing changed.
    fn publish_routes(&mut self) {
        if !std::mem::take(&mut self.routes_dirty) {
            return;
        }
        let table = RouteTable::build(&self.domain, &self.desired, |key| {
            self.slots.get(key).map(|slot| Arc::clone(&slot.gate))
        });
        self.routes.store(Arc::new(table));
    }

    /// Why the declared changes of `plan` wait for a human, if they do.
    fn hold_reason(&self, plan: &Plan, declared: &[&Change]) -> Option<String> {
        let settings = &self.desired.config.settings;
        if !settings.auto_apply {
            return Some(format!(
                "auto_apply = false: {} change{} wait for `ten apply`",
                declared.len(),
                if declared.len() == 1 { "" } else { "s" }
            ));
        }
        let destroys = declared
            .iter()
            .filter(|c| c.action == Action::Destroy)
            .count();
        let total = self.observed.instances.len().max(1);
        let percent = destroys * 100 / total;
        if destroys > 1 && percent > usize::from(settings.max_destroy_percent) {
            return Some(format!(
                "the files now declare {destroys} fewer instances ({percent}% of {total}), more than max_destroy_percent = {}; \
                 if that is intended, run `ten apply` (plan token {})",
                settings.max_destroy_percent, plan.token
            ));
        }
        None
    }

    async fn reload(&mut self) {
        let config_path = self.config_path.clone();
        let files = self.files.clone();
        let loaded = match tokio::task::spawn_blocking(move || reload(&config_path, &files)).await {
            Ok(loaded) => loaded,
            Err(error) => {
                tracing::error!(%error, "reload panicked; keeping the last valid desired state");
                return;
            }
        };
        let was_invalid = self.invalid;
        self.invalid = has_errors(&loaded.diagnostics);
        self.frozen = loaded.frozen;
        self.files = loaded.files;
        let first_error = loaded
            .diagnostics
            .iter()
            .find(|d| d.is_error())
            .map(|d| format!("{}: {}", d.location(), d.message));
        self.diagnostics = loaded.diagnostics;
        match (&first_error, was_invalid) {
            (Some(error), _) => {
                let count = self.diagnostics.iter().filter(|d| d.is_error()).count();
                let scope = if loaded.desired.is_some() {
                    format!(
                        "{} instance(s) keep their last valid declaration",
                        self.frozen.len()
                    )
                } else {
                    "keeping the last valid desired state; no tenant is touched".to_string()
                };
                for diagnostic in self.diagnostics.iter().filter(|d| d.is_error()) {
                    tracing::warn!("{}: {}", diagnostic.location(), diagnostic.message);
                }
                self.shared.events.warn(
                    None,
                    "config",
                    format!("{count} problem(s) in the files ({scope}); first: {error}"),
                    None,
                );
            }
            (None, true) => {
                self.shared
                    .events
                    .record(None, "config", "the files are valid again", None)
            }
            (None, false) => {}
        }
        if let Some(desired) = loaded.desired {
            self.desired = Arc::new(desired);
            self.routes_dirty = true;
        }
    }

    /// Executes one change and updates the observed state at once, so the next plan sees it.
    fn execute(&mut self, change: &Change) -> Option<watch::Receiver<InstanceStatus>> {
        let reason = Some(change.reason.message.as_str());
        let key = match &change.target {
            Target::Settings => {
                let settings = &self.desired.config.settings;
                self.observed.settings = Some(self.desired.settings_fields());
                self.shared
                    .ports
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .set_range(settings.port_range);
                for slot in self.slots.values() {
                    slot.handle
                        .send(Command::Settings(Box::new(settings.clone())));
                }
                self.routes_dirty = true;
                self.shared
                    .events
                    .record(None, "update", "settings updated in place", reason);
                self.bump();
                return None;
            }
            Target::Instance(key) => key.clone(),
        };
        let action = change.action.as_str();
        match change.action {
            Action::Create => {
                let spec = Arc::clone(self.desired.instances.get(&key)?);
                let port = {
                    let mut ports = self.shared.ports.lock().unwrap_or_else(|p| p.into_inner());
                    match ports.allocate(&key, None, port_is_free) {
                        Ok(port) => port,
                        Err(error) => {
                            self.shared.events.record(
                                Some(&key),
                                action,
                                format!("not created: {error}"),
                                reason,
                            );
                            return None;
                        }
                    }
                };
                if let Err(error) = self.shared.logs.attach(&key) {
                    tracing::warn!(instance = %key, %error, "cannot capture output");
                }
                let (handle, gate) = spawn_instance(
                    Arc::clone(&self.shared),
                    Arc::clone(&spec),
                    &self.desired.config.settings,
                    port,
                    None,
                );
                handle.send(Command::Start(Arc::clone(&spec)));
                let mut instance = ObservedInstance::new(Phase::Starting, spec.shared_fields());
                instance.port = Some(port);
                instance.declared_in = Some(spec.declared.describe());
                self.observed.instances.insert(key.clone(), instance);
                self.slots.insert(key.clone(), Slot { handle, gate });
                self.routes_dirty = true;
                self.shared.events.record(
                    Some(&key),
                    action,
                    format!("creating on port {port}"),
                    reason,
                );
            }
            Action::Start | Action::Replace | Action::Update => {
                let spec = Arc::clone(self.desired.instances.get(&key)?);
                let message = if change.action == Action::Replace
                    && self.replace_side_by_side(&key, &spec)
                {
                    "starting the new process next to the old one, which serves until it is healthy"
                } else {
                    let handle = &self.slots.get(&key)?.handle;
                    let (command, message) = match change.action {
                        Action::Start => (Command::Start(Arc::clone(&spec)), "starting"),
                        Action::Replace => (
                            Command::Replace(Arc::clone(&spec)),
                            "restarting with the new spec",
                        ),
                        _ => (Command::Update(Arc::clone(&spec)), "updated in place"),
                    };
                    handle.send(command);
                    message
                };
                self.routes_dirty = true;
                let instance = self.observed.instances.get_mut(&key)?;
                instance.spec = spec.shared_fields();
                instance.declared_in = Some(spec.declared.describe());
                if change.action == Action::Start {
                    instance.phase = Phase::Starting;
                }
                self.shared
                    .events
                    .record(Some(&key), action, message, reason);
            }
            Action::Stop => {
                self.slots.get(&key)?.handle.send(Command::Stop);
                self.retire_now(&key);
                if let Some(instance) = self.observed.instances.get_mut(&key) {
                    instance.phase = Phase::Stopping;
                }
                self.shared
                    .events
                    .record(Some(&key), action, "stopping", reason);
            }
            Action::Destroy => {
                if !self.removing.insert(key.clone()) {
                    return self.slots.get(&key).map(|slot| slot.handle.status.clone());
                }
                self.retire_now(&key);
                match self.slots.get(&key) {
                    Some(slot) => slot.handle.send(Command::Remove),
                    None => {
                        self.observed.instances.remove(&key);
                        self.removing.remove(&key);
                    }
                }
                if let Some(instance) = self.observed.instances.get_mut(&key) {
                    instance.phase = Phase::Stopping;
                }
                self.shared
                    .events
                    .record(Some(&key), action, "stopping and forgetting it", reason);
            }
        }
        self.bump();
        self.slots.get(&key).map(|slot| slot.handle.status.clone())
    }

    /// A replace of a healthy instance with a health endpoint: the new process starts on a
    /// new port next to the old one and takes the traffic when healthy; the old one then
    /// finishes its requests in flight and stops. Returns false when a plain restart is due.
    fn replace_side_by_side(&mut self, key: &InstanceKey, spec: &Arc<InstanceSpec>) -> bool {
        let Some(slot) = self.slots.get(key) else {
            return false;
        };
        let current = slot.handle.status.borrow().clone();
        // Unknown health: just adopted, not checked yet; it serves until the new one is
        // healthy like any running process.
        if spec.health.is_none()
            || current.phase != Phase::Running
            || !matches!(current.health, Health::Healthy | Health::Unknown)
        {
            return false;
        }
        let port = {
            let mut ports = self.shared.ports.lock().unwrap_or_else(|p| p.into_inner());
            match ports.allocate(key, None, port_is_free) {
                Ok(port) => port,
                Err(_) => return false,
            }
        };
        let (handle, gate) = spawn_instance(
            Arc::clone(&self.shared),
            Arc::clone(spec),
            &self.desired.config.settings,
            port,
            Some(Arc::clone(&slot.gate)),
        );
        handle.send(Command::Start(Arc::clone(spec)));
        gate.set_owner(handle.owner());
        let Some(slot) = self.slots.get_mut(key) else {
            return false;
        };
        let old = std::mem::replace(&mut slot.handle, handle);
        old.send(Command::RetireAfter(slot.handle.status.clone()));
        self.retiring.push(Retiring {
            key: key.clone(),
            handle: old,
            port: current.port,
        });
        true
    }

    /// Old processes of `key` still serving after a replace go now (a stop or destroy).
    fn retire_now(&mut self, key: &InstanceKey) {
        for retiring in self.retiring.iter().filter(|retiring| retiring.key == *key) {
            retiring.handle.send(Command::Remove);
        }
    }

    /// Takes in the new status of one instance task.
    fn refresh(&mut self, key: &InstanceKey) {
        // Retired processes that are gone give their port back.
        let mut ports = Vec::new();
        self.retiring.retain(|retiring| {
            let gone = retiring.key == *key && retiring.handle.status.borrow().removed;
            if gone {
                ports.push(retiring.port);
            }
            !gone
        });
        if !ports.is_empty() {
            let mut allocator = self.shared.ports.lock().unwrap_or_else(|p| p.into_inner());
            for port in ports {
                allocator.release(port);
            }
        }
        let Some(slot) = self.slots.get(key) else {
            return;
        };
        let status = slot.handle.status.borrow().clone();
        if status.removed {
            self.finish_removal(key, status.port);
            return;
        }
        let Some(instance) = self.observed.instances.get_mut(key) else {
            return;
        };
        let phase_changed = instance.phase != status.phase;
        instance.phase = status.phase;
        instance.pid = status.pid;
        instance.pid_start_time = status.pid_start_time;
        instance.port = Some(status.port);
        instance.health = status.health;
        instance.restarts = status.restarts;
        instance.restart_times_unix = status.restart_times_unix;
        instance.started_at_unix = status.started_at_unix;
        instance.last_exit = status.last_exit;
        instance.note = status.note;
        instance.heading_for = status.heading_for;
        if phase_changed {
            self.pass_due = true;
        }
        self.bump();
    }

    fn finish_removal(&mut self, key: &InstanceKey, port: u16) {
        self.slots.remove(key);
        self.routes_dirty = true;
        self.removing.remove(key);
        let persist = self
            .observed
            .instances
            .remove(key)
            .and_then(|instance| instance.spec.get("storage_persist").cloned())
            .is_none_or(|value| value == crate::desired::FieldValue::Bool(true));
        self.shared
            .ports
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .release(port);
        self.shared.logs.detach(key, true);
        if !persist {
            let dir = crate::desired::spec::instance_data_dir(
                &self.desired.config.settings.data_dir,
                key,
            );
            if let Err(error) = std::fs::remove_dir_all(&dir)
                && error.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(instance = %key, %error, "cannot remove the data directory");
            }
        }
        self.shared
            .events
            .record(Some(key), "destroy", "gone", None);
        self.bump();
    }

    fn bump(&mut self) {
        self.observed.generation += 1;
        self.record.mark_dirty();
    }

    async fn call(&mut self, call: Call) {
        match call {
            Call::Status(reply) => {
                let _ = reply.send(self.status_view());
            }
            Call::Plan(reply) => {
                let _ = reply.send(PlanView {
                    plan: plan(&self.desired, &self.observed),
                    diagnostics: self.diagnostics.clone(),
                    held: self.held.clone(),
                });
            }
            Call::Reload(reply) => {
                self.files_changed = true;
                self.pass().await;
                let _ = reply.send(self.status_view());
            }
            Call::Apply { token, reply } => {
                let _ = reply.send(self.apply(token).await);
            }
            Call::Instances(reply) => {
                let usage = |key: &InstanceKey| {
                    let slot = self.slots.get(key)?;
                    slot.handle.usage.load_full().map(|usage| *usage)
                };
                let _ = reply.send(views::instance_views(&self.desired, &self.observed, usage));
            }
            Call::Watch { key, reply } => {
                let _ = reply.send(self.slots.get(&key).map(|slot| slot.handle.status.clone()));
            }
            Call::Restart { key, reply } => {
                let result = match self.slots.get(&key) {
                    Some(Slot { handle, .. }) if self.desired.instances.contains_key(&key) => {
                        handle.send(Command::Restart);
                        self.shared.events.record(
                            Some(&key),
                            "restart",
                            "restarting on request",
                            None,
                        );
                        Ok(handle.status.clone())
                    }
                    _ => Err(CallError::not_declared(&key)),
                };
                let _ = reply.send(result);
            }
            Call::CheckHealth { key, reply } => {
                let result = match self.slots.get(&key) {
                    Some(Slot { handle, .. }) => {
                        let (sender, receiver) = oneshot::channel();
                        handle.send(Command::CheckHealth(sender));
                        Ok(receiver)
                    }
                    None if self.desired.instances.contains_key(&key) => {
                        Err(CallError::new(409, format!("{key} has never run"))
                            .hint(format!("start it with `ten start {key}`")))
                    }
                    None => Err(CallError::not_declared(&key)),
                };
                let _ = reply.send(result);
            }
        }
    }

    /// `ten apply`: reload, plan, check the token, execute every change (drift included).
    async fn apply(&mut self, token: Option<String>) -> Result<ApplyStarted, CallError> {
        self.files_changed = true;
        self.last_pass = Instant::now();
        self.reload().await;
        if self.invalid && self.frozen.is_empty() {
            return Err(CallError {
                status: 409,
                message: "the files have errors; nothing was applied".into(),
                hint: Some("fix them (`ten validate` shows where) and apply again".into()),
                diagnostics: self.diagnostics.clone(),
            });
        }
        let plan = plan(&self.desired, &self.observed);
        if let Some(expected) = token
            && expected != plan.token
        {
            return Err(CallError::new(
                409,
                format!(
                    "the plan changed since it was shown (token {expected}, now {})",
                    plan.token
                ),
            )
            .hint("run `ten diff` to see the current plan, then apply again"));
        }
        let mut changes = Vec::with_capacity(plan.changes.len());
        for change in &plan.changes {
            let status = self.execute(change);
            let timeout = self.change_timeout(change);
            changes.push(PendingChange {
                target: change.target.to_string(),
                action: change.action,
                status,
                timeout,
            });
        }
        self.held = None;
        Ok(ApplyStarted {
            token: plan.token,
            changes,
        })
    }

    fn change_timeout(&self, change: &Change) -> Duration {
        let spec = change
            .target
            .instance()
            .and_then(|key| self.desired.instances.get(key));
        let (startup, stop) = spec
            .map_or((Duration::from_secs(10), Duration::from_secs(10)), |spec| {
                (spec.startup_timeout, spec.stop_timeout)
            });
        startup + stop + Duration::from_secs(5)
    }

    fn status_view(&self) -> StatusView {
        let settings = &self.desired.config.settings;
        StatusView {
            api_version: crate::api::types::API_VERSION,
            ten_version: env!("CARGO_PKG_VERSION").to_string(),
            config: self.config_path.display().to_string(),
            valid: !self.invalid,
            diagnostics: self.diagnostics.clone(),
            frozen: self.frozen.clone(),
            held: self.held.clone(),
            auto_apply: settings.auto_apply,
            generation: self.observed.generation,
            instances: self.desired.instances.len(),
            instances_dir: settings.instances_dir.display().to_string(),
            data_dir: settings.data_dir.display().to_string(),
        }
    }

    async fn shutdown(&mut self, keep_tenants: bool) {
        if keep_tenants {
            self.shared.events.record(
                None,
                "serve",
                "exiting; tenants keep running (keep_tenants_on_exit)",
                None,
            );
        } else {
            self.shared
                .events
                .record(None, "serve", "exiting; stopping every tenant", None);
            let mut waits = Vec::new();
            let retiring = self.retiring.iter().map(|retiring| &retiring.handle);
            for handle in self.slots.values().map(|slot| &slot.handle).chain(retiring) {
                handle.send(Command::Stop);
                waits.push(handle.status.clone());
            }
            let longest = self
                .desired
                .instances
                .values()
                .map(|spec| spec.stop_timeout)
                .max()
                .unwrap_or_default()
                + Duration::from_secs(5);
            let all_stopped = async {
                for mut status in waits {
                    let _ = status.wait_for(|s| s.pid.is_none()).await;
                }
            };
            if tokio::time::timeout(longest, all_stopped).await.is_err() {
                tracing::warn!("some tenants did not stop in time");
            }
            while let Ok(key) = self.changed.try_recv() {
                self.refresh(&key);
            }
        }
        self.record.flush_now(&self.observed).await;
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
