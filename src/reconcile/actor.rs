//! The reconciler's actor: it owns the instance tasks (their handles and gates) and carries
//! out what the core decides. It receives messages, the tasks' status changes and its timer,
//! hands each to `Core::handle` and executes the effects; what an effect finds out (a reload,
//! a port, a refused spawn) goes back to the core as an event. Blocking file work runs on
//! blocking threads; nothing here decides what to do.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::config::{Diagnostic, InstanceFile, Settings};
use crate::desired::DesiredState;
use crate::names::InstanceKey;
use crate::runtime::Runtime;
use crate::supervisor::gate::Gate;
use crate::supervisor::task::{InstanceHandle, Shared};
use crate::watch::Unread;

use super::core::{Core, Event};
use super::record::RecordWriter;
use super::{ApplyStarted, Failure, Message};

/// Publishes a route table made from a desired state and the tasks' gates (the server's
/// proxy reads it).
pub type Publish =
    Box<dyn Fn(&DesiredState, &dyn Fn(&InstanceKey) -> Option<Arc<Gate>>) + Send + Sync>;

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
    pub publish: Publish,
    /// Lowered as each reload begins (the file watcher raises it; see `watch::Unread`).
    pub unread: Unread,
}

/// An instance's task and its gate.
struct Slot {
    handle: InstanceHandle,
    gate: Arc<Gate>,
}

/// The old process of a zero-downtime replace, serving until its successor is healthy.
struct Retiring {
    key: InstanceKey,
    handle: InstanceHandle,
    port: u16,
}

pub struct Reconciler<R> {
    core: Core,
    config_path: PathBuf,
    shared: Arc<Shared<R>>,
    slots: BTreeMap<InstanceKey, Slot>,
    retiring: Vec<Retiring>,
    publish: Publish,
    record: RecordWriter,
    changed: mpsc::UnboundedReceiver<InstanceKey>,
    unread: Unread,
    /// The caller of an apply under way.
    applying: Option<oneshot::Sender<Result<ApplyStarted, Failure>>>,
    /// Exiting: told once the tenants stopped and the record is written.
    exited: Option<oneshot::Sender<()>>,
    /// The exit is done: the loop ends.
    finished: bool,
    /// Instances put to sleep for memory: since when, and what they used.
    evicting: BTreeMap<InstanceKey, (Instant, u64)>,
    /// Instances whose refused wake was last an event: when (one event per quiet spell).
    refusals_noted: BTreeMap<InstanceKey, Instant>,
    /// What the events said of failing durable writes.
    durable: durable::Told,
    /// The settings the tasks share (one copy, not one per task).
    settings: Arc<Settings>,
}

impl<R: Runtime> Reconciler<R> {
    pub fn new(parts: ReconcilerParts<R>) -> Self {
        let settings = Arc::new(parts.desired.config.settings.clone());
        Self {
            core: Core::new(
                parts.config_path.clone(),
                parts.desired,
                parts.files,
                parts.diagnostics,
                Some(crate::runtime::proc::boot_id().to_string()),
                Instant::now(),
            ),
            config_path: parts.config_path,
            shared: parts.shared,
            slots: BTreeMap::new(),
            retiring: Vec::new(),
            publish: parts.publish,
            record: RecordWriter::new(parts.data_dir),
            changed: parts.changed,
            unread: parts.unread,
            applying: None,
            exited: None,
            finished: false,
            evicting: BTreeMap::new(),
            refusals_noted: BTreeMap::new(),
            durable: durable::Told::default(),
            settings,
        }
    }

    /// The current settings, shared by the tasks made with them.
    fn settings(&mut self) -> Arc<Settings> {
        let current = &self.core.desired().config.settings;
        if *self.settings != *current {
            self.settings = Arc::new(current.clone());
        }
        Arc::clone(&self.settings)
    }

    /// Takes over what the previous ten left (see `inherit`), before the first pass.
    pub async fn take_over(&mut self, inheritance: super::Inheritance) {
        self.event(Event::TakeOver(Box::new(inheritance))).await;
    }

    /// Runs until ten exits: after `Message::Shutdown`, the tenants stop in `stop_order` as
    /// their statuses come in, then the record is written and the shutdown answered.
    pub async fn run(mut self, mut messages: mpsc::Receiver<Message>) {
        let admission = std::sync::Arc::clone(&self.shared.admission);
        let mut memory_look = tokio::time::interval(pressure::LOOK_EVERY);
        memory_look.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !self.finished {
            let deadline = self.core.deadline();
            let watched = self.memory_watched();
            tokio::select! {
                _ = memory_look.tick(), if watched => self.relieve_memory(Instant::now()),
                () = admission.room_asked() => self.relieve_memory(Instant::now()),
                () = crate::runtime::durable::changed() => {
                    for note in self.durable.news() {
                        self.record_note(note);
                    }
                }
                message = messages.recv() => match message {
                    Some(Message::Shutdown { done }) => {
                        self.exited = Some(done);
                        self.event(Event::Shutdown).await;
                    }
                    // Exiting, calls are dropped: their callers hear that ten is shutting down.
                    Some(_) if self.exited.is_some() => {}
                    Some(Message::FilesChanged) => self.event(Event::FilesChanged).await,
                    Some(Message::Call(call)) => self.call(call).await,
                    None => return,
                },
                Some(key) = self.changed.recv() => {
                    self.refresh(&key).await;
                    while let Ok(key) = self.changed.try_recv() {
                        self.refresh(&key).await;
                    }
                }
                () = sleep_until(deadline) => self.event(Event::Tick).await,
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

mod calls;
mod durable;
mod effects;
mod exit;
mod inherited;
mod logs;
mod pressure;
mod tasks;
mod usage;

#[cfg(test)]
mod tests;
