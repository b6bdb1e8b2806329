//! The reconciler's decisions, pure: `Core::handle(event, now) -> Vec<Effect>`. It owns the
//! desired state and the observed process table, holds and generations, the pass schedule and
//! the record's schedule; the actor (`super::actor`) only feeds it events and carries out its
//! effects (instance tasks, ports, blocking file work, events, the route table). Tested on
//! explicit instants, without processes, files or a runtime.
//!
//! A pass is level-triggered: it ignores what caused it, reloads the files when they may have
//! changed (an effect whose answer is `Event::Reloaded`), plans desired against observed and
//! executes the changes the files ask for (or holds them). Executing updates the observed
//! state at once, so the next plan is empty; the tasks' statuses then keep it true.
//!
//! Must not: touch a file, a process or a clock (time comes in as `now`), or await.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::{Diagnostic, InstanceFile, Settings, has_errors};
use crate::desired::{DesiredState, FieldValue, InstanceSpec, Reload};
use crate::names::InstanceKey;
use crate::observed::{Health, ObservedInstance, ObservedState, Phase};
use crate::plan::{Action, Change, Plan, ReasonKind, Target, plan};
use crate::runtime::table::ProcessEntry;
use crate::supervisor::task::{Adoption, InstanceStatus};

use super::inherit::Inheritance;

/// A full reload and pass at least this often, whatever happens.
pub const RESYNC: Duration = Duration::from_secs(30);
/// Passes caused by instance state changes run at most this often.
pub const PASS_THROTTLE: Duration = Duration::from_millis(100);
/// The record is written at most this often while things change.
pub const FLUSH_DELAY: Duration = Duration::from_millis(250);

/// What happened.
#[derive(Debug)]
pub enum Event {
    /// The files may have changed (the watcher, an API edit): reload at the next pass.
    FilesChanged,
    /// Reload now and pass, whatever the throttle (after an API edit, which waits for it).
    ReloadNow,
    /// The reload asked for by [`Effect::Reload`].
    Reloaded(Box<Reload>),
    /// Time passed: a deadline of [`Core::deadline`] may be due.
    Tick,
    /// The task of `key` was made, on `port`.
    Spawned { key: InstanceKey, port: u16 },
    /// The task of `key` (the current one, not a retiring one) has this status.
    Status {
        key: InstanceKey,
        status: InstanceStatus,
    },
    /// No task could be made for `key` (no free port).
    SpawnRefused { key: InstanceKey, error: String },
    /// What the previous ten left, before the first pass.
    TakeOver(Box<Inheritance>),
    /// `ten apply`: reload, then execute every change of the plan (drift too), if the plan
    /// still has `token` when one is given.
    Apply { token: Option<String> },
    /// `ten restart`.
    Restart(InstanceKey),
    /// ten is exiting.
    Shutdown,
}

/// What an instance's task is told.
#[derive(Debug, Clone, PartialEq)]
pub enum Order {
    Start(Arc<InstanceSpec>),
    /// Restart with a new spec.
    Replace(Arc<InstanceSpec>),
    /// A new spec that needs no restart.
    Update(Arc<InstanceSpec>),
    Stop,
    /// Stop and end the task.
    Remove,
    Restart,
}

/// How a task begins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum First {
    Start,
    /// Take over a live process left by the previous ten.
    Adopt(Adoption),
    /// It slept when the previous ten stopped: sleep on.
    Asleep,
}

/// Which port a new task gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortWish {
    /// Any free port of the range.
    Any,
    /// This one if it is free (a sleeping instance keeps its port), else any.
    Prefer(u16),
    /// This one, taken (a live process adopted listens on it).
    Reserve(u16),
}

/// What the actor does.
#[derive(Debug, Clone)]
pub enum Effect {
    /// Reload the files (on a blocking thread) and answer with [`Event::Reloaded`].
    Reload,
    /// Make the task of `key`: a port, output capture, the task, its first order. Answer
    /// with [`Event::Spawned`], or [`Event::SpawnRefused`].
    Spawn {
        key: InstanceKey,
        spec: Arc<InstanceSpec>,
        port: PortWish,
        first: First,
    },
    /// A replace: a new process on a new port next to the old one, taking the traffic once it
    /// is healthy, when `side_by_side`; else (or when no port is free) a restart in place.
    Replace {
        key: InstanceKey,
        spec: Arc<InstanceSpec>,
        side_by_side: bool,
        reason: String,
    },
    Order {
        key: InstanceKey,
        order: Order,
    },
    /// Old processes of `key` still serving after a replace: stop them now.
    RetireNow(InstanceKey),
    /// New settings for every task and the port allocator.
    Settings(Box<Settings>),
    /// The task of `key` ended: forget its output capture (on a blocking thread) and its
    /// port; with `remove_data`, remove its data directory too (on a blocking thread).
    Forget {
        key: InstanceKey,
        port: u16,
        remove_data: Option<PathBuf>,
    },
    /// Processes left by the previous ten: table entries to drop, older duplicates to stop.
    Inherited {
        stale: Vec<ProcessEntry>,
        strays: Vec<(ProcessEntry, Arc<InstanceSpec>)>,
    },
    /// A new route table, from this desired state and the tasks' gates.
    PublishRoutes(Arc<DesiredState>),
    /// Write the record (on a blocking thread).
    WriteRecord(Box<ObservedState>),
    Record(Note),
    /// `ten apply` started: what each change waits for.
    Applied(Applied),
    /// `ten apply` refused.
    ApplyRefused(Failure),
    /// Stop every task (or, `keep`, leave them running), wait, write the record.
    Exit {
        keep: bool,
        stop_timeout: Duration,
    },
}

/// An event for the event log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub instance: Option<InstanceKey>,
    pub action: String,
    pub message: String,
    pub reason: Option<String>,
    /// Needs someone's attention (logged as a warning).
    pub warning: bool,
}

/// An apply that has been executed.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    pub token: String,
    pub changes: Vec<AppliedChange>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AppliedChange {
    pub target: Target,
    pub action: Action,
    /// The longest it may take.
    pub timeout: Duration,
}

/// Why a request of the API cannot be done; the API says it in HTTP.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    NotDeclared(InstanceKey),
    /// Declared, never started.
    NeverRun(InstanceKey),
    /// The files have errors and nothing can be applied.
    Invalid(Vec<Diagnostic>),
    /// The plan is not the one the caller saw.
    PlanChanged {
        expected: String,
        now: String,
    },
}

/// What `GET /api/status` tells, before the API words it.
#[derive(Debug, Clone)]
pub struct StatusReport {
    pub config: PathBuf,
    pub valid: bool,
    pub diagnostics: Vec<Diagnostic>,
    pub frozen: Vec<InstanceKey>,
    pub held: Option<String>,
    pub settings: Settings,
    pub generation: u64,
    pub instances: usize,
}

/// The reconciler's state.
pub struct Core {
    config: PathBuf,
    desired: Arc<DesiredState>,
    files: BTreeMap<InstanceKey, InstanceFile>,
    diagnostics: Vec<Diagnostic>,
    /// The latest files are invalid; `desired` is the last valid state.
    invalid: bool,
    frozen: Vec<InstanceKey>,
    held: Option<String>,
    observed: ObservedState,
    /// Instances that have a task.
    tasks: BTreeSet<InstanceKey>,
    /// Destroys sent, not finished.
    removing: BTreeSet<InstanceKey>,
    /// Creates sent, their tasks not made yet: why (told once the port is known).
    creating: BTreeMap<InstanceKey, String>,
    routes_dirty: bool,
    files_changed: bool,
    pass_due: bool,
    last_pass: Option<Instant>,
    last_resync: Instant,
    /// The observed state changed since the record was last written.
    dirty_since: Option<Instant>,
    /// Passes run (for the actor's metrics).
    passes: u64,
    /// An apply waiting for its reload.
    apply: Option<Option<String>>,
    exiting: bool,
}

impl Core {
    /// A core serving `desired` (valid) from `files`, with the problems the files had.
    pub fn new(
        config: PathBuf,
        desired: DesiredState,
        files: BTreeMap<InstanceKey, InstanceFile>,
        diagnostics: Vec<Diagnostic>,
        boot_id: Option<String>,
        now: Instant,
    ) -> Self {
        let observed = ObservedState {
            generation: 1,
            settings: Some(desired.settings_fields()),
            instances: BTreeMap::new(),
            boot_id,
        };
        Self {
            config,
            desired: Arc::new(desired),
            files,
            invalid: has_errors(&diagnostics),
            diagnostics,
            frozen: Vec::new(),
            held: None,
            observed,
            tasks: BTreeSet::new(),
            removing: BTreeSet::new(),
            creating: BTreeMap::new(),
            routes_dirty: true,
            files_changed: false,
            pass_due: true,
            last_pass: None,
            last_resync: now,
            dirty_since: None,
            passes: 0,
            apply: None,
            exiting: false,
        }
    }

    pub fn desired(&self) -> &Arc<DesiredState> {
        &self.desired
    }

    pub fn observed(&self) -> &ObservedState {
        &self.observed
    }

    /// The instance files in effect (the last valid one of a broken file): what a reload
    /// starts from.
    pub fn files(&self) -> &BTreeMap<InstanceKey, InstanceFile> {
        &self.files
    }

    pub fn passes(&self) -> u64 {
        self.passes
    }

    /// The plan now, with the files' problems and why changes wait, if they do.
    pub fn plan(&self) -> (Plan, Vec<Diagnostic>, Option<String>) {
        (
            plan(&self.desired, &self.observed),
            self.diagnostics.clone(),
            self.held.clone(),
        )
    }

    pub fn status(&self) -> StatusReport {
        StatusReport {
            config: self.config.clone(),
            valid: !self.invalid,
            diagnostics: self.diagnostics.clone(),
            frozen: self.frozen.clone(),
            held: self.held.clone(),
            settings: self.desired.config.settings.clone(),
            generation: self.observed.generation,
            instances: self.desired.instances.len(),
        }
    }

    /// Whether `key` may be asked for its health now.
    pub fn check_health(&self, key: &InstanceKey) -> Result<(), Failure> {
        match (
            self.tasks.contains(key),
            self.desired.instances.contains_key(key),
        ) {
            (true, _) => Ok(()),
            (false, true) => Err(Failure::NeverRun(key.clone())),
            (false, false) => Err(Failure::NotDeclared(key.clone())),
        }
    }

    /// When [`Event::Tick`] is next due (at once when it is in the past).
    pub fn deadline(&self) -> Option<Instant> {
        if self.exiting {
            return None;
        }
        let pass = if self.files_changed {
            // Files that changed are read at once.
            Some(self.last_resync)
        } else if self.pass_due {
            // Passes for status changes are throttled.
            Some(
                self.last_pass
                    .map_or(self.last_resync, |last| last + PASS_THROTTLE),
            )
        } else {
            None
        };
        let flush = self.dirty_since.map(|since| since + FLUSH_DELAY);
        [pass, flush, Some(self.last_resync + RESYNC)]
            .into_iter()
            .flatten()
            .min()
    }

    pub fn handle(&mut self, event: Event, now: Instant) -> Vec<Effect> {
        let mut effects = Vec::new();
        // Exiting, only the tasks' last statuses are taken in (for the record).
        if self.exiting && !matches!(event, Event::Status { .. }) {
            return effects;
        }
        match event {
            Event::FilesChanged => self.files_changed = true,
            Event::ReloadNow => {
                self.files_changed = false;
                effects.push(Effect::Reload);
            }
            Event::Reloaded(reload) => {
                self.reloaded(*reload, &mut effects);
                match self.apply.take() {
                    Some(token) => self.apply(token, now, &mut effects),
                    None => self.pass(now, &mut effects),
                }
            }
            Event::Tick => self.tick(now, &mut effects),
            Event::Spawned { key, port } => {
                if let Some(instance) = self.observed.instances.get_mut(&key) {
                    instance.port = Some(port);
                }
                if let Some(reason) = self.creating.remove(&key) {
                    effects.push(Effect::Record(Note {
                        reason: Some(reason),
                        ..note_of(Some(&key), "create", format!("creating on port {port}"))
                    }));
                }
                self.bump(now);
            }
            Event::Status { key, status } => self.refresh(&key, status, now, &mut effects),
            Event::SpawnRefused { key, error } => {
                self.creating.remove(&key);
                self.tasks.remove(&key);
                self.observed.instances.remove(&key);
                self.routes_dirty = true;
                effects.push(note(Some(&key), "create", format!("not created: {error}")));
                self.bump(now);
            }
            Event::TakeOver(inheritance) => self.take_over(*inheritance, now, &mut effects),
            Event::Apply { token } => {
                self.apply = Some(token);
                self.files_changed = false;
                effects.push(Effect::Reload);
            }
            Event::Restart(key) => {
                if self.tasks.contains(&key) && self.desired.instances.contains_key(&key) {
                    effects.push(Effect::Order {
                        key: key.clone(),
                        order: Order::Restart,
                    });
                    effects.push(note(Some(&key), "restart", "restarting on request".into()));
                }
            }
            Event::Shutdown => {
                self.exiting = true;
                let settings = &self.desired.config.settings;
                let stop_timeout = self
                    .desired
                    .instances
                    .values()
                    .map(|spec| spec.stop_timeout)
                    .max()
                    .unwrap_or_default();
                effects.push(note(
                    None,
                    "serve",
                    if settings.keep_tenants_on_exit {
                        "exiting; tenants keep running (keep_tenants_on_exit)".into()
                    } else {
                        "exiting; stopping every tenant".into()
                    },
                ));
                effects.push(Effect::Exit {
                    keep: settings.keep_tenants_on_exit,
                    stop_timeout,
                });
            }
        }
        self.publish_routes(&mut effects);
        effects
    }

    /// Whether `ten restart KEY` can be done.
    pub fn may_restart(&self, key: &InstanceKey) -> Result<(), Failure> {
        if self.tasks.contains(key) && self.desired.instances.contains_key(key) {
            Ok(())
        } else {
            Err(Failure::NotDeclared(key.clone()))
        }
    }

    /// The record to write at exit (after the tasks stopped and reported).
    pub fn final_record(&mut self) -> ObservedState {
        self.dirty_since = None;
        self.observed.clone()
    }

    fn tick(&mut self, now: Instant, effects: &mut Vec<Effect>) {
        if now >= self.last_resync + RESYNC {
            self.last_resync = now;
            self.files_changed = true;
        }
        if self.files_changed {
            self.files_changed = false;
            self.last_pass = Some(now);
            effects.push(Effect::Reload);
        } else if self.pass_due
            && self
                .last_pass
                .is_none_or(|last| now >= last + PASS_THROTTLE)
        {
            self.pass(now, effects);
        }
        if let Some(since) = self.dirty_since
            && now >= since + FLUSH_DELAY
        {
            self.dirty_since = None;
            effects.push(Effect::WriteRecord(Box::new(self.observed.clone())));
        }
    }

    /// A pass: plan, then execute what the files ask for, or hold it.
    fn pass(&mut self, now: Instant, effects: &mut Vec<Effect>) {
        let span = tracing::info_span!("reconcile", generation = self.observed.generation);
        let _enter = span.enter();
        self.passes += 1;
        self.last_pass = Some(now);
        self.pass_due = false;
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
                effects.push(Effect::Record(Note {
                    warning: true,
                    ..note_of(None, "held", reason.clone())
                }));
            }
            self.held = held;
        }
        if self.held.is_some() {
            return;
        }
        let changes: Vec<Change> = declared.into_iter().cloned().collect();
        for change in &changes {
            self.execute(change, now, effects);
        }
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

    /// Takes in a reload: a valid desired state replaces the last; problems are told.
    fn reloaded(&mut self, loaded: Reload, effects: &mut Vec<Effect>) {
        let was_invalid = self.invalid;
        self.invalid = has_errors(&loaded.diagnostics);
        self.frozen = loaded.frozen;
        self.files = loaded.files;
        self.diagnostics = loaded.diagnostics;
        let errors: Vec<&Diagnostic> = self.diagnostics.iter().filter(|d| d.is_error()).collect();
        match (errors.first(), was_invalid) {
            (Some(first), _) => {
                let scope = if loaded.desired.is_some() {
                    format!(
                        "{} instance(s) keep their last valid declaration",
                        self.frozen.len()
                    )
                } else {
                    "keeping the last valid desired state; no tenant is touched".to_string()
                };
                for diagnostic in &errors {
                    tracing::warn!("{}: {}", diagnostic.location(), diagnostic.message);
                }
                let message = format!(
                    "{} problem(s) in the files ({scope}); first: {}: {}",
                    errors.len(),
                    first.location(),
                    first.message
                );
                effects.push(Effect::Record(Note {
                    warning: true,
                    ..note_of(None, "config", message)
                }));
            }
            (None, true) => effects.push(note(None, "config", "the files are valid again".into())),
            (None, false) => {}
        }
        if let Some(desired) = loaded.desired {
            self.desired = Arc::new(desired);
            self.routes_dirty = true;
        }
    }

    /// Executes one change: the effects for the tasks, and the observed state updated at once,
    /// so the next plan sees it.
    fn execute(&mut self, change: &Change, now: Instant, effects: &mut Vec<Effect>) {
        let reason = Some(change.reason.message.clone());
        let action = change.action.as_str();
        let key = match &change.target {
            Target::Settings => {
                self.observed.settings = Some(self.desired.settings_fields());
                effects.push(Effect::Settings(Box::new(
                    self.desired.config.settings.clone(),
                )));
                self.routes_dirty = true;
                effects.push(Effect::Record(Note {
                    reason,
                    ..note_of(None, "update", "settings updated in place".into())
                }));
                self.bump(now);
                return;
            }
            Target::Instance(key) => key.clone(),
        };
        let spec = self.desired.instances.get(&key).map(Arc::clone);
        let message = match (change.action, spec) {
            (Action::Create, Some(spec)) => {
                let mut instance = ObservedInstance::new(Phase::Starting, spec.shared_fields());
                instance.declared_in = Some(spec.declared.describe());
                self.observed.instances.insert(key.clone(), instance);
                self.tasks.insert(key.clone());
                self.creating
                    .insert(key.clone(), change.reason.message.clone());
                self.routes_dirty = true;
                effects.push(Effect::Spawn {
                    key: key.clone(),
                    spec,
                    port: PortWish::Any,
                    first: First::Start,
                });
                // Told once the actor has its port (`Event::Spawned`).
                None
            }
            (Action::Replace, Some(spec)) if self.tasks.contains(&key) => {
                let side_by_side = self.replaceable_side_by_side(&key, &spec);
                self.applied(&key, &spec, false);
                effects.push(Effect::Replace {
                    key: key.clone(),
                    spec,
                    side_by_side,
                    reason: change.reason.message.clone(),
                });
                // The actor says how it went.
                None
            }
            (Action::Start | Action::Update, Some(spec)) if self.tasks.contains(&key) => {
                let start = change.action == Action::Start;
                self.applied(&key, &spec, start);
                let (order, message) = if start {
                    (Order::Start(spec), "starting")
                } else {
                    (Order::Update(spec), "updated in place")
                };
                effects.push(Effect::Order {
                    key: key.clone(),
                    order,
                });
                Some(message)
            }
            (Action::Stop, _) if self.tasks.contains(&key) => {
                effects.push(Effect::Order {
                    key: key.clone(),
                    order: Order::Stop,
                });
                effects.push(Effect::RetireNow(key.clone()));
                self.set_phase(&key, Phase::Stopping);
                Some("stopping")
            }
            (Action::Destroy, _) => {
                if !self.removing.insert(key.clone()) {
                    return;
                }
                effects.push(Effect::RetireNow(key.clone()));
                if self.tasks.contains(&key) {
                    effects.push(Effect::Order {
                        key: key.clone(),
                        order: Order::Remove,
                    });
                    self.set_phase(&key, Phase::Stopping);
                } else {
                    self.observed.instances.remove(&key);
                    self.removing.remove(&key);
                }
                Some("stopping and forgetting it")
            }
            // A change for an instance with no task (or no spec) cannot be executed.
            _ => return,
        };
        if let Some(message) = message {
            self.routes_dirty = true;
            effects.push(Effect::Record(Note {
                reason,
                ..note_of(Some(&key), action, message.into())
            }));
        }
        self.bump(now);
    }

    /// The observed instance of `key` now runs with `spec` (and starts, with `start`).
    fn applied(&mut self, key: &InstanceKey, spec: &Arc<InstanceSpec>, start: bool) {
        self.routes_dirty = true;
        if let Some(instance) = self.observed.instances.get_mut(key) {
            instance.spec = spec.shared_fields();
            instance.declared_in = Some(spec.declared.describe());
            if start {
                instance.phase = Phase::Starting;
            }
        }
    }

    fn set_phase(&mut self, key: &InstanceKey, phase: Phase) {
        if let Some(instance) = self.observed.instances.get_mut(key) {
            instance.phase = phase;
        }
    }

    /// Whether a replace of `key` can start the new process next to the old one: it runs
    /// healthy (or not checked yet, just adopted) and the new spec has a health endpoint to
    /// tell when the new one may take the traffic.
    fn replaceable_side_by_side(&self, key: &InstanceKey, spec: &InstanceSpec) -> bool {
        self.observed.instances.get(key).is_some_and(|instance| {
            spec.health.is_some()
                && instance.phase == Phase::Running
                && matches!(instance.health, Health::Healthy | Health::Unknown)
        })
    }

    /// Takes in the status of `key`'s task.
    fn refresh(
        &mut self,
        key: &InstanceKey,
        status: InstanceStatus,
        now: Instant,
        effects: &mut Vec<Effect>,
    ) {
        if !self.tasks.contains(key) {
            return;
        }
        if status.removed {
            self.finish_removal(key, status.port, now, effects);
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
        self.bump(now);
    }

    fn finish_removal(
        &mut self,
        key: &InstanceKey,
        port: u16,
        now: Instant,
        effects: &mut Vec<Effect>,
    ) {
        self.tasks.remove(key);
        self.routes_dirty = true;
        self.removing.remove(key);
        let persist = self
            .observed
            .instances
            .remove(key)
            .and_then(|instance| instance.spec.get("storage_persist").cloned())
            .is_none_or(|value| value == FieldValue::Bool(true));
        let remove_data = (!persist).then(|| {
            crate::desired::spec::instance_data_dir(&self.desired.config.settings.data_dir, key)
        });
        effects.push(Effect::Forget {
            key: key.clone(),
            port,
            remove_data,
        });
        effects.push(note(Some(key), "destroy", "gone".into()));
        self.bump(now);
    }

    /// Takes over what the previous ten left: live processes are adopted as they are,
    /// sleeping instances sleep on, older duplicates are stopped. The first pass then plans
    /// against them like against any running instance.
    fn take_over(&mut self, inheritance: Inheritance, now: Instant, effects: &mut Vec<Effect>) {
        self.observed.generation = self.observed.generation.max(inheritance.generation + 1);
        let strays = inheritance
            .strays
            .into_iter()
            .map(|stray| {
                let spec = self.left_over(&stray.instance, Arc::clone(&stray.spec));
                (stray, spec)
            })
            .collect();
        effects.push(Effect::Inherited {
            stale: inheritance.stale,
            strays,
        });
        for process in inheritance.processes {
            let key = process.key;
            // A process that is no longer declared is supervised until the plan destroys it
            // (or holds that for `ten apply`).
            let spec = match self.desired.instances.get(&key) {
                Some(spec) => Arc::clone(spec),
                None => self.left_over(&key, Arc::clone(&process.observed.spec)),
            };
            let pid = process.adoption.pid;
            effects.push(Effect::Spawn {
                key: key.clone(),
                spec,
                port: PortWish::Reserve(process.port),
                first: First::Adopt(process.adoption),
            });
            effects.push(note(
                Some(&key),
                "adopt",
                format!(
                    "pid {pid} on port {}, left running by the previous ten",
                    process.port
                ),
            ));
            self.observed
                .instances
                .insert(key.clone(), process.observed);
            self.tasks.insert(key);
        }
        for (key, instance) in inheritance.sleeping {
            let Some(spec) = self.desired.instances.get(&key).map(Arc::clone) else {
                continue;
            };
            effects.push(Effect::Spawn {
                key: key.clone(),
                spec,
                port: instance.port.map_or(PortWish::Any, PortWish::Prefer),
                first: First::Asleep,
            });
            self.observed.instances.insert(key.clone(), instance);
            self.tasks.insert(key);
        }
        self.routes_dirty = true;
        self.bump(now);
    }

    fn left_over(
        &self,
        key: &InstanceKey,
        fields: Arc<crate::desired::FieldMap>,
    ) -> Arc<InstanceSpec> {
        Arc::new(InstanceSpec::left_over(
            key.clone(),
            fields,
            &self.desired.config.dir,
            &self.desired.config.settings.data_dir,
        ))
    }

    /// `ten apply`, after its reload: check the token, execute every change (drift included).
    fn apply(&mut self, token: Option<String>, now: Instant, effects: &mut Vec<Effect>) {
        self.last_pass = Some(now);
        if self.invalid && self.frozen.is_empty() {
            effects.push(Effect::ApplyRefused(Failure::Invalid(
                self.diagnostics.clone(),
            )));
            return;
        }
        let plan = plan(&self.desired, &self.observed);
        if let Some(expected) = token
            && expected != plan.token
        {
            effects.push(Effect::ApplyRefused(Failure::PlanChanged {
                expected,
                now: plan.token,
            }));
            return;
        }
        let mut changes = Vec::with_capacity(plan.changes.len());
        for change in &plan.changes {
            self.execute(change, now, effects);
            changes.push(AppliedChange {
                target: change.target.clone(),
                action: change.action,
                timeout: self.change_timeout(change),
            });
        }
        self.held = None;
        effects.push(Effect::Applied(Applied {
            token: plan.token,
            changes,
        }));
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

    /// Asks for a new route table when instances, weights or routing changed.
    fn publish_routes(&mut self, effects: &mut Vec<Effect>) {
        if std::mem::take(&mut self.routes_dirty) {
            effects.push(Effect::PublishRoutes(Arc::clone(&self.desired)));
        }
    }

    /// The observed state changed: a new generation, and the record is due.
    fn bump(&mut self, now: Instant) {
        self.observed.generation += 1;
        self.dirty_since.get_or_insert(now);
    }
}

fn note_of(instance: Option<&InstanceKey>, action: &str, message: String) -> Note {
    Note {
        instance: instance.cloned(),
        action: action.to_string(),
        message,
        reason: None,
        warning: false,
    }
}

fn note(instance: Option<&InstanceKey>, action: &str, message: String) -> Effect {
    Effect::Record(note_of(instance, action, message))
}

#[cfg(test)]
mod tests;
