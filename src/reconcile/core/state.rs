//! The core's state: what it keeps (the desired state and the files it came from, the
//! observed process table, tasks, holds, the schedules) and what it answers without a change
//! (status, plan, whether a restart or a health check may be asked). Must not touch a file, a
//! process or a clock, or import tokio beyond its `Instant`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::{Diagnostic, InstanceFile, has_errors};
use crate::desired::DesiredState;
use crate::names::InstanceKey;
use crate::observed::ObservedState;
use crate::plan::{Plan, Shown};

use super::schedule::RESYNC;
use super::{Failure, StatusReport, stopping};

/// The reconciler's state.
pub struct Core {
    pub(super) config: PathBuf,
    pub(super) desired: Arc<DesiredState>,
    /// The desired state of the last pass carried out (or apply): while changes are held,
    /// the instances it has and the files no longer declare keep their routes, as they keep
    /// running, until the destroy is applied.
    pub(super) applied: Arc<DesiredState>,
    /// Shared with the reload under way (read on another thread), not copied for it.
    pub(super) files: Arc<BTreeMap<InstanceKey, InstanceFile>>,
    pub(super) diagnostics: Vec<Diagnostic>,
    /// The latest files are invalid; `desired` is the last valid state.
    pub(super) invalid: bool,
    pub(super) frozen: Vec<InstanceKey>,
    pub(super) held: Option<String>,
    /// What the last ten had and no process is left of, with the spec each last ran with:
    /// the first pass after the take-over starts those still declared so (a restart of ten
    /// is no change, even with `auto_apply = false`), then forgets them.
    pub(super) restorable: BTreeMap<InstanceKey, Arc<crate::desired::FieldMap>>,
    pub(super) observed: ObservedState,
    /// Instances that have a task.
    pub(super) tasks: BTreeSet<InstanceKey>,
    /// Destroys sent, not finished.
    pub(super) removing: BTreeSet<InstanceKey>,
    /// Creates sent, their tasks not made yet: why (told once the port is known).
    pub(super) creating: BTreeMap<InstanceKey, String>,
    pub(super) routes_dirty: bool,
    pub(super) files_changed: bool,
    /// A whole pass is due (throttled, see [`PASS_THROTTLE`](super::PASS_THROTTLE)).
    pub(super) pass_due: bool,
    /// Instances whose phase changed, or that are gone, since the last pass: planned alone
    /// (see [`Core::narrow_pass`]).
    pub(super) narrow: BTreeSet<InstanceKey>,
    pub(super) last_pass: Option<Instant>,
    pub(super) last_resync: Instant,
    /// How often the resync comes: [`RESYNC`], or longer when a reload takes long.
    pub(super) resync_every: Duration,
    /// When the reload under way was asked for.
    pub(super) reload_started: Option<Instant>,
    /// The observed state changed since the record was last written.
    pub(super) dirty_since: Option<Instant>,
    /// Passes run (for the actor's metrics).
    pub(super) passes: u64,
    /// An apply waiting for its reload.
    pub(super) apply: Option<Option<String>>,
    /// Stops kept in `stop_order`.
    pub(super) stops: stopping::Stops,
    /// ten is exiting.
    pub(super) exit: Option<stopping::Exit>,
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
        let desired = Arc::new(desired);
        Self {
            config,
            applied: Arc::clone(&desired),
            desired,
            files: Arc::new(files),
            invalid: has_errors(&diagnostics),
            diagnostics,
            frozen: Vec::new(),
            held: None,
            restorable: BTreeMap::new(),
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
}
