//! What goes into the core and what comes out: events, effects, and the answers the API
//! words.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Diagnostic, Settings};
use crate::desired::{DesiredState, InstanceSpec, Reload};
use crate::names::InstanceKey;
use crate::observed::ObservedState;
use crate::plan::{Action, Target};
use crate::runtime::table::ProcessEntry;
use crate::supervisor::messages::{Adoption, InstanceStatus};

use super::super::inherit::Inheritance;

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
    /// `ten restart` (with `force`: SIGKILL instead of the stop signal).
    Restart { key: InstanceKey, force: bool },
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
    /// Restart now, with SIGKILL instead of the stop signal (`ten restart --force`).
    ForceRestart,
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
    /// Every stop is done (or, `keep`, the tenants keep running): stop what is left of
    /// replaces (waiting at most `stop_timeout` and a grace), write the record, end.
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
