//! The reconcile loop: the one owner of the process table.
//!
//! A pure core (`core`: `Core::handle(event, now) -> Vec<Effect>`, the decisions, tested on
//! explicit instants) and a thin actor (`actor`) that receives a closed set of [`Message`]s
//! (files changed, API calls, shutdown) and the instance tasks' status changes, feeds them to
//! the core and carries out its effects. Instance tasks do the slow work (spawning, stopping,
//! probing), so a pass never waits on a process; blocking file work runs on blocking threads.
//!
//! Invalid desired state never touches a tenant: a broken tenement.toml keeps the last valid
//! desired state; a broken instance file keeps that instance's last valid declaration.
//!
//! Must not import the API, the proxy or the server: it answers in its own terms
//! ([`Failure`], [`StatusReport`], [`Snapshot`]), and publishes routes through the function
//! it is given.

mod actor;
pub mod core;
pub mod inherit;
mod pressure;
mod record;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::config::Diagnostic;
use crate::desired::DesiredState;
use crate::names::InstanceKey;
use crate::observed::{ObservedState, Usage};
use crate::plan::{Action, Plan};
use crate::runtime::ProbeResult;
use crate::supervisor::messages::StatusReceiver;

pub use self::core::{Failure, StatusReport};
pub use actor::{Publish, Reconciler, ReconcilerParts};
pub use inherit::{Inheritance, inherit};

pub enum Message {
    /// Files of the desired state changed (told by the watcher once they are whole).
    FilesChanged,
    Call(Call),
    /// Stop (tenants too, unless `keep_tenants_on_exit`), write the record, answer.
    Shutdown {
        done: oneshot::Sender<()>,
    },
}

/// Requests of the control API.
pub enum Call {
    Status(oneshot::Sender<StatusReport>),
    Plan(oneshot::Sender<PlanReport>),
    /// Reload the files now and run a pass (after the API edited a file).
    Reload(oneshot::Sender<StatusReport>),
    Apply {
        token: Option<String>,
        reply: oneshot::Sender<Result<ApplyStarted, Failure>>,
    },
    Instances(oneshot::Sender<Snapshot>),
    /// Follow one instance's status.
    Watch {
        key: InstanceKey,
        reply: oneshot::Sender<Option<StatusReceiver>>,
    },
    Restart {
        key: InstanceKey,
        /// SIGKILL instead of the stop signal.
        force: bool,
        reply: oneshot::Sender<Result<StatusReceiver, Failure>>,
    },
    CheckHealth {
        key: InstanceKey,
        reply: oneshot::Sender<Result<oneshot::Receiver<ProbeResult>, Failure>>,
    },
}

/// The plan now, the files' problems, and why changes wait, if they do.
pub struct PlanReport {
    pub plan: Plan,
    pub diagnostics: Vec<Diagnostic>,
    pub held: Option<String>,
}

/// What the instances are: the desired and observed states and the last usage samples.
pub struct Snapshot {
    pub desired: Arc<DesiredState>,
    pub observed: ObservedState,
    pub usage: BTreeMap<InstanceKey, Usage>,
    /// How long the last request that waited for each instance (to wake) waited.
    pub waits: BTreeMap<InstanceKey, std::time::Duration>,
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
    pub status: Option<StatusReceiver>,
    /// The longest it may take.
    pub timeout: Duration,
}
