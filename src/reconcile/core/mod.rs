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

use crate::config::{Diagnostic, InstanceFile, has_errors};
use crate::desired::{DesiredState, Reload, keep_undeclared, share_unchanged};
use crate::names::InstanceKey;
use crate::observed::{ObservedState, Phase};
use crate::plan::{Action, Change, Plan, ReasonKind, Shown, plan_key, plan_showing};

/// A full reload and pass at least this often, whatever happens.
pub const RESYNC: Duration = Duration::from_secs(30);
/// The resync's reload takes at most one part in this many of the time between two (with
/// 10,000 instance files a reload takes about 0.2 s: then every 200 s instead of 30). The
/// reload reads files on every core and the pass, the record and the memory given back come
/// after it: a resync of 10,000 sleeping instances cost about 0.4 s of CPU, 0.5 % of a core
/// when it came every 80 s (`bench/density.rs`). The watcher sees changes as they happen; the
/// resync is only the net under it.
pub const RESYNC_SHARE: u32 = 1000;
/// The longest time between two resyncs, however long a reload took.
pub const RESYNC_MAX: Duration = Duration::from_secs(300);
/// Passes caused by instance state changes run at most this often.
pub const PASS_THROTTLE: Duration = Duration::from_millis(100);
/// From this many instances created in one pass on, the tables are rebuilt after it
/// ([`Core::compact`]).
pub(super) const COMPACT_FROM_CREATES: usize = 256;

/// The record is written at most this often while things change.
pub const FLUSH_DELAY: Duration = Duration::from_millis(250);

/// The reconciler's state.
pub struct Core {
    config: PathBuf,
    desired: Arc<DesiredState>,
    /// Shared with the reload under way (read on another thread), not copied for it.
    files: Arc<BTreeMap<InstanceKey, InstanceFile>>,
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
    /// A whole pass is due (throttled, see [`PASS_THROTTLE`]).
    pass_due: bool,
    /// Instances whose phase changed, or that are gone, since the last pass: planned alone
    /// (see [`Core::narrow_pass`]).
    narrow: BTreeSet<InstanceKey>,
    last_pass: Option<Instant>,
    last_resync: Instant,
    /// How often the resync comes: [`RESYNC`], or longer when a reload takes long.
    resync_every: Duration,
    /// When the reload under way was asked for.
    reload_started: Option<Instant>,
    /// The observed state changed since the record was last written.
    dirty_since: Option<Instant>,
    /// Passes run (for the actor's metrics).
    passes: u64,
    /// An apply waiting for its reload.
    apply: Option<Option<String>>,
    /// Stops kept in `stop_order`.
    stops: stopping::Stops,
    /// ten is exiting.
    exit: Option<stopping::Exit>,
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
            files: Arc::new(files),
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
            narrow: BTreeSet::new(),
            last_pass: None,
            last_resync: now,
            resync_every: RESYNC,
            reload_started: None,
            dirty_since: None,
            passes: 0,
            apply: None,
            stops: stopping::Stops::default(),
            exit: None,
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
    pub fn files(&self) -> &Arc<BTreeMap<InstanceKey, InstanceFile>> {
        &self.files
    }

    pub fn passes(&self) -> u64 {
        self.passes
    }

    /// The plan now, with the files' problems and why changes wait, if they do.
    pub fn plan(&self) -> (Plan, Vec<Diagnostic>, Option<String>) {
        (
            self.planned(Shown::Fields),
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
        if self.exit.is_some() {
            return self.stops.deadline();
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
        [
            pass,
            flush,
            self.stops.deadline(),
            Some(self.last_resync + self.resync_every),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub fn handle(&mut self, event: Event, now: Instant) -> Vec<Effect> {
        let mut effects = Vec::new();
        // Exiting, only the tasks' statuses are taken in (for the stops in order and the
        // record), and time, which ends stops that take too long.
        if self.exit.is_some() {
            match event {
                Event::Status { key, status } => {
                    self.refresh(&key, status, now, &mut effects);
                    self.stop_reported(&key);
                }
                Event::Tick => {}
                _ => return effects,
            }
            self.release_stops(now, &mut effects);
            return effects;
        }
        match event {
            Event::FilesChanged => self.files_changed = true,
            Event::ReloadNow => {
                self.files_changed = false;
                effects.push(Effect::Reload);
            }
            Event::Reloaded(reload) => {
                if let Some(started) = self.reload_started.take() {
                    let took = now.saturating_duration_since(started);
                    self.resync_every = (took * RESYNC_SHARE).clamp(RESYNC, RESYNC_MAX);
                }
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
                    let asleep = self
                        .observed
                        .instances
                        .get(&key)
                        .is_some_and(|instance| instance.phase == Phase::Sleeping);
                    // Its reason says it sleeps until its first request: the message is
                    // short (of the 5,000 events kept, these are most after a bulk create).
                    let message = if asleep {
                        format!("asleep on port {port}")
                    } else {
                        format!("creating on port {port}")
                    };
                    effects.push(Effect::Record(Note {
                        reason: Some(reason),
                        ..note_of(Some(&key), "create", message)
                    }));
                }
                self.bump(now);
            }
            Event::Status { key, status } => {
                self.refresh(&key, status, now, &mut effects);
                self.stop_reported(&key);
                self.narrow_pass();
            }
            Event::SpawnRefused { key, error } => {
                self.creating.remove(&key);
                self.tasks.remove(&key);
                self.stops.forget(&key);
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
            Event::Restart { key, force } => {
                if self.tasks.contains(&key) && self.desired.instances.contains_key(&key) {
                    self.stops.forget(&key);
                    let (order, message) = if force {
                        (Order::ForceRestart, "restarting on request, with SIGKILL")
                    } else {
                        (Order::Restart, "restarting on request")
                    };
                    effects.push(Effect::Order {
                        key: key.clone(),
                        order,
                    });
                    effects.push(note(Some(&key), "restart", message.into()));
                }
            }
            Event::Shutdown => self.shutdown(&mut effects),
        }
        self.release_stops(now, &mut effects);
        self.publish_routes(&mut effects);
        effects
    }

    /// ten is exiting: every tenant stops, in `stop_order` (see `stopping`), unless
    /// `keep_tenants_on_exit`.
    fn shutdown(&mut self, effects: &mut Vec<Effect>) {
        let keep = self.desired.config.settings.keep_tenants_on_exit;
        effects.push(note(
            None,
            "serve",
            if keep {
                "exiting; tenants keep running (keep_tenants_on_exit)".into()
            } else {
                "exiting; stopping every tenant, lowest stop_order first".into()
            },
        ));
        self.exit = Some(stopping::Exit { told: keep });
        if keep {
            effects.push(Effect::Exit {
                keep,
                stop_timeout: Duration::ZERO,
            });
        } else {
            self.queue_every_stop();
        }
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
        if now >= self.last_resync + self.resync_every {
            self.last_resync = now;
            self.files_changed = true;
        }
        if self.files_changed {
            self.files_changed = false;
            self.last_pass = Some(now);
            self.reload_started = Some(now);
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
        self.narrow.clear();
        let plan = self.planned(Shown::Bare);
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
        for change in &declared {
            self.execute(change, now, effects);
        }
        let created = declared
            .iter()
            .filter(|change| change.action == Action::Create)
            .count();
        if created >= COMPACT_FROM_CREATES {
            self.compact();
        }
    }

    /// Rebuilds the per-instance tables in bulk. Filled one key at a time in key order (as a
    /// pass creates), a B-tree's nodes stay half empty; built at once, they are full: with
    /// 10,000 instances, about 150 bytes less each.
    pub(super) fn compact(&mut self) {
        self.observed.instances = std::mem::take(&mut self.observed.instances)
            .into_iter()
            .collect();
        self.tasks = std::mem::take(&mut self.tasks).into_iter().collect();
    }

    /// Plans the instances whose phase changed alone, at once: a whole pass (throttled) is
    /// due only when one of them has a declared change, so a wake or a restart costs a plan
    /// of one instance, not of every declared one. The whole plan's other changes are the same
    /// as at the last pass, which executed what it could (each instance is planned from its own
    /// spec and observed state); a held plan, or files with errors, always get a whole pass.
    fn narrow_pass(&mut self) {
        if self.narrow.is_empty() || self.pass_due {
            return;
        }
        let narrow = std::mem::take(&mut self.narrow);
        if self.held.is_some() || self.invalid {
            self.pass_due = true;
            return;
        }
        let mut drift = Vec::new();
        self.pass_due = narrow.iter().any(|key| {
            plan_key(&self.desired, &self.observed, key, Shown::Bare, &mut drift)
                .is_some_and(|change| change.reason.kind == ReasonKind::Declared)
        });
    }

    /// The plan of desired against observed. While the files have errors, the planner does
    /// not see the instances that run but are not declared: an invalid desired state never
    /// removes one (after a reload they are kept by [`keep_undeclared`]; this covers a ten
    /// that started on broken files, when the last valid declaration is not known).
    fn planned(&self, shown: Shown) -> Plan {
        let declared = |key: &InstanceKey| self.desired.instances.contains_key(key);
        if self.invalid && self.observed.instances.keys().any(|key| !declared(key)) {
            let mut observed = self.observed.clone();
            observed.instances.retain(|key, _| declared(key));
            return plan_showing(&self.desired, &observed, shown);
        }
        plan_showing(&self.desired, &self.observed, shown)
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
        let mut frozen: BTreeSet<InstanceKey> = loaded.frozen.into_iter().collect();
        let mut next = loaded.desired;
        // The planner's input: only a valid desired state removes an instance.
        if self.invalid
            && let Some(next) = &mut next
        {
            frozen.extend(keep_undeclared(&self.desired, next));
        }
        self.frozen = frozen.into_iter().collect();
        self.files = Arc::new(loaded.files);
        self.diagnostics = loaded.diagnostics;
        let errors: Vec<&Diagnostic> = self.diagnostics.iter().filter(|d| d.is_error()).collect();
        match (errors.first(), was_invalid) {
            (Some(first), _) => {
                let scope = if next.is_some() {
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
        if let Some(mut desired) = next {
            share_unchanged(&self.desired, &mut desired);
            self.desired = Arc::new(desired);
            self.routes_dirty = true;
        }
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

mod execute;
mod stopping;
mod types;

pub use stopping::GRACE;
pub use types::*;

#[cfg(test)]
mod tests;
