//! The reconciler's actor: it owns the instance tasks (their handles and gates) and carries
//! out what the core decides. It receives messages, the tasks' status changes and its timer,
//! hands each to `Core::handle` and executes the effects; what an effect finds out (a reload,
//! a port, a refused spawn) goes back to the core as an event. Blocking file work runs on
//! blocking threads; nothing here decides what to do.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::config::{Diagnostic, InstanceFile, Settings};
use crate::desired::{DesiredState, InstanceSpec, reload};
use crate::names::InstanceKey;
use crate::runtime::Runtime;
use crate::runtime::ports::port_is_free;
use crate::runtime::table::ProcessEntry;
use crate::supervisor::gate::Gate;
use crate::supervisor::messages::Command;
use crate::supervisor::task::{InstanceHandle, Shared, spawn_asleep, spawn_instance};
use crate::watch::Unread;

use super::core::{Core, Effect, Event, First, Note, Order, PortWish};
use super::record::RecordWriter;
use super::{ApplyStarted, Call, Failure, Message, PendingChange, PlanReport, Snapshot};

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

/// From this many declared instances on, the memory a reload freed is given back after it.
const TRIM_FROM_INSTANCES: usize = 1_000;
/// How long after a reload its memory is given back: after the record that follows it.
const TRIM_AFTER_RELOAD: std::time::Duration = std::time::Duration::from_secs(2);

/// From this many tasks made in one event on, the slots are rebuilt after it.
const COMPACT_FROM_SPAWNS: usize = 256;

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

    /// Hands `event` to the core and carries out what it decides, and what follows from it:
    /// round by round, in order, each round's output capture set up at once before its tasks
    /// are made (one blocking call for a burst of thousands).
    async fn event(&mut self, event: Event) {
        let passes = self.core.passes();
        let began = std::time::Instant::now();
        let mut reloaded = false;
        let mut spawned = 0;
        let mut round = self.core.handle(event, Instant::now());
        while !round.is_empty() {
            self.attach_logs(&round).await;
            let mut next = Vec::new();
            for effect in round {
                reloaded |= matches!(effect, Effect::Reload);
                spawned += usize::from(matches!(effect, Effect::Spawn { .. }));
                if let Some(found) = self.carry_out(effect).await {
                    next.extend(self.core.handle(found, Instant::now()));
                }
            }
            round = next;
        }
        if self.core.passes() != passes {
            crate::metrics::global().reconcile_pass(began.elapsed());
        }
        if spawned >= COMPACT_FROM_SPAWNS {
            // Filled one key at a time in key order, a B-tree's nodes stay half empty; built
            // at once, they are full (with 10,000 instances, about 70 bytes less each).
            self.slots = std::mem::take(&mut self.slots).into_iter().collect();
        }
        // A reload and what follows allocate in proportion to the instances (their files
        // read in parallel, the plan, the route table, the record written after
        // `FLUSH_DELAY`): what they freed goes back to the system once they are done.
        if reloaded && self.core.desired().instances.len() >= TRIM_FROM_INSTANCES {
            tokio::spawn(async {
                tokio::time::sleep(TRIM_AFTER_RELOAD).await;
                crate::runtime::allocator::give_back();
            });
        }
        // The pass after a reload has ended: the changes it read are taken in.
        crate::metrics::global().lag().pass_ended();
        for note in self.durable.news() {
            self.record_note(note);
        }
    }

    /// Carries out one effect; what it found out, as an event for the core.
    async fn carry_out(&mut self, effect: Effect) -> Option<Event> {
        match effect {
            Effect::Reload => {
                crate::metrics::global().lag().reload_started();
                // Changes from here on are not surely in what is read: one more reload.
                self.unread.reading();
                let config_path = self.config_path.clone();
                let files = self.core.files().clone();
                match tokio::task::spawn_blocking(move || reload(&config_path, &files)).await {
                    Ok(loaded) => return Some(Event::Reloaded(Box::new(loaded))),
                    Err(error) => {
                        tracing::error!(%error, "reload failed; keeping the last valid desired state")
                    }
                }
            }
            Effect::Spawn {
                key,
                spec,
                port,
                first,
            } => return Some(self.spawn(key, spec, port, first)),
            Effect::Replace {
                key,
                spec,
                side_by_side,
                reason,
            } => self.replace(key, spec, side_by_side, reason),
            Effect::Order { key, order } => {
                if let Some(slot) = self.slots.get(&key) {
                    slot.handle.send(match order {
                        Order::Start(spec) => Command::Start(spec),
                        Order::Replace(spec) => Command::Replace(spec),
                        Order::Update(spec) => Command::Update(spec),
                        Order::Stop => Command::Stop,
                        Order::Remove => Command::Remove,
                        Order::Restart => Command::Restart,
                        Order::ForceRestart => Command::ForceRestart,
                    });
                }
            }
            Effect::RetireNow(key) => {
                for retiring in self.retiring.iter().filter(|retiring| retiring.key == key) {
                    retiring.handle.send(Command::Remove);
                }
            }
            Effect::Settings(settings) => {
                self.shared
                    .ports
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .set_range(settings.port_range);
                let settings = self.settings();
                for slot in self.slots.values() {
                    slot.handle.send(Command::Settings(Arc::clone(&settings)));
                }
            }
            Effect::Forget {
                key,
                port,
                remove_data,
            } => self.forget(key, port, remove_data),
            Effect::Inherited { stale, strays } => self.inherited(stale, strays),
            Effect::PublishRoutes(desired) => {
                let slots = &self.slots;
                (self.publish)(&desired, &|key| {
                    slots.get(key).map(|slot| Arc::clone(&slot.gate))
                });
            }
            Effect::WriteRecord(observed) => self.record.write(*observed),
            Effect::Record(note) => self.record_note(note),
            Effect::Applied(applied) => {
                let changes = applied
                    .changes
                    .into_iter()
                    .map(|change| PendingChange {
                        status: change
                            .target
                            .instance()
                            .and_then(|key| self.slots.get(key))
                            .map(|slot| slot.handle.status.clone()),
                        target: change.target.to_string(),
                        action: change.action,
                        timeout: change.timeout,
                    })
                    .collect();
                if let Some(reply) = self.applying.take() {
                    let _ = reply.send(Ok(ApplyStarted {
                        token: applied.token,
                        changes,
                    }));
                }
            }
            Effect::ApplyRefused(failure) => {
                if let Some(reply) = self.applying.take() {
                    let _ = reply.send(Err(failure));
                }
            }
            Effect::Exit { keep, stop_timeout } => {
                self.exit(keep, stop_timeout).await;
                if let Some(done) = self.exited.take() {
                    let _ = done.send(());
                }
                self.finished = true;
            }
        }
        None
    }

    /// Makes the task of `key`: its port, the task and its first command (its output capture
    /// was set up with its round, see `event`).
    fn spawn(
        &mut self,
        key: InstanceKey,
        spec: Arc<InstanceSpec>,
        wish: PortWish,
        first: First,
    ) -> Event {
        let port = if spec.listen == crate::config::Listen::None {
            // A worker listens nowhere: it takes no port of port_range.
            Ok(0)
        } else {
            let mut ports = self.shared.ports.lock().unwrap_or_else(|p| p.into_inner());
            match wish {
                PortWish::Any => ports.allocate(&key, None, port_is_free),
                PortWish::Prefer(port) => ports.allocate(&key, Some(port), port_is_free),
                PortWish::Reserve(port) => {
                    ports.reserve(&key, port);
                    Ok(port)
                }
            }
        };
        let port = match port {
            Ok(port) => port,
            Err(error) => {
                return Event::SpawnRefused {
                    key,
                    error: error.to_string(),
                };
            }
        };
        let settings = self.settings();
        let shared = Arc::clone(&self.shared);
        let (handle, gate) = match first {
            First::Asleep => spawn_asleep(shared, spec, &settings, port),
            first => {
                let (handle, gate) =
                    spawn_instance(shared, Arc::clone(&spec), &settings, port, None);
                handle.send(match first {
                    First::Adopt(adoption) => Command::Adopt(Box::new(adoption)),
                    _ => Command::Start(spec),
                });
                (handle, gate)
            }
        };
        self.slots.insert(key.clone(), Slot { handle, gate });
        Event::Spawned { key, port }
    }

    /// A replace: next to the old process when the core says it can and a port is free (the
    /// new one takes the traffic when healthy, the old one then drains and stops), else a
    /// restart in place.
    fn replace(
        &mut self,
        key: InstanceKey,
        spec: Arc<InstanceSpec>,
        side_by_side: bool,
        reason: String,
    ) {
        let beside = side_by_side && self.replace_side_by_side(&key, &spec);
        let message = if beside {
            "starting the new process next to the old one, which serves until it is healthy"
        } else {
            if let Some(slot) = self.slots.get(&key) {
                slot.handle.send(Command::Replace(spec));
            }
            "restarting with the new spec"
        };
        self.record_note(Note {
            instance: Some(key),
            action: "replace".into(),
            message: message.into(),
            reason: Some(reason),
            warning: false,
        });
    }

    /// The new process of a replace, on a new port, sharing the old one's gate. False when no
    /// port is free.
    fn replace_side_by_side(&mut self, key: &InstanceKey, spec: &Arc<InstanceSpec>) -> bool {
        let settings = self.settings();
        let Some(slot) = self.slots.get(key) else {
            return false;
        };
        let old_port = slot.handle.status.borrow().port;
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
            &settings,
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
            port: old_port,
        });
        true
    }

    /// A task ended: its slot, port and output capture go; its data too if asked.
    fn forget(&mut self, key: InstanceKey, port: u16, remove_data: Option<PathBuf>) {
        self.slots.remove(&key);
        self.shared
            .ports
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .release(port);
        let logs = Arc::clone(&self.shared.logs);
        tokio::task::spawn_blocking(move || {
            logs.detach(&key, true);
            if let Some(dir) = remove_data
                && let Err(error) = std::fs::remove_dir_all(&dir)
                && error.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(instance = %key, %error, "cannot remove the data directory");
            }
        });
    }

    /// What the previous ten left besides its tenants: table entries of processes that are
    /// gone go; older duplicates of instances are stopped.
    fn inherited(&self, stale: Vec<ProcessEntry>, strays: Vec<(ProcessEntry, Arc<InstanceSpec>)>) {
        let shared = Arc::clone(&self.shared);
        if !stale.is_empty() {
            tokio::task::spawn_blocking(move || {
                for entry in &stale {
                    shared.runtime.forget(&entry.instance, entry.pid);
                }
            });
        }
        for (stray, spec) in strays {
            self.stop_stray(stray, spec);
        }
    }

    /// Stops an older process of an instance that has a newer one (left by a ten that died
    /// during a zero-downtime replace): its stop signal, SIGKILL after its stop timeout.
    fn stop_stray(&self, stray: ProcessEntry, spec: Arc<InstanceSpec>) {
        let key = stray.instance.clone();
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
        tokio::spawn(async move {
            use crate::runtime::GroupSignal;
            let pid = stray.pid;
            let runtime = Arc::clone(&shared.runtime);
            let adopt_key = key.clone();
            let adopted = tokio::task::spawn_blocking(move || {
                runtime.adopt(
                    &adopt_key,
                    stray.pid,
                    stray.start_time,
                    stray.name.as_deref(),
                    stray.sandboxed,
                )
            })
            .await;
            let Ok(Ok(started)) = adopted else {
                shared.runtime.forget(&key, pid);
                return;
            };
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

    fn record_note(&self, note: Note) {
        let events = &self.shared.events;
        let reason = note.reason.as_deref();
        if note.warning {
            events.warn(note.instance.as_ref(), &note.action, note.message, reason);
        } else {
            events.record(note.instance.as_ref(), &note.action, note.message, reason);
        }
    }

    /// Takes in the new status of `key`'s tasks: a retired process that is gone gives its
    /// port back; the current task's status goes to the core.
    async fn refresh(&mut self, key: &InstanceKey) {
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
        let Some(status) = self
            .slots
            .get(key)
            .map(|slot| slot.handle.status.borrow().clone())
        else {
            return;
        };
        self.event(Event::Status {
            key: key.clone(),
            status,
        })
        .await;
    }

    async fn call(&mut self, call: Call) {
        match call {
            Call::Status(reply) => {
                let _ = reply.send(self.core.status());
            }
            Call::Plan(reply) => {
                let (plan, diagnostics, held) = self.core.plan();
                let _ = reply.send(PlanReport {
                    plan,
                    diagnostics,
                    held,
                });
            }
            Call::Reload(reply) => {
                self.event(Event::ReloadNow).await;
                let _ = reply.send(self.core.status());
            }
            Call::Apply { token, reply } => {
                self.applying = Some(reply);
                self.event(Event::Apply { token }).await;
            }
            Call::Instances(reply) => {
                // What the running instances use is measured now if their last sample is
                // stale, off this loop; the answer follows.
                let stale = self.stale_usage(crate::supervisor::usage::FRESH, Instant::now());
                let cells: Vec<_> = self
                    .slots
                    .iter()
                    .map(|(key, slot)| (key.clone(), Arc::clone(&slot.handle.usage)))
                    .collect();
                let waits = self
                    .slots
                    .iter()
                    .filter_map(|(key, slot)| Some((key.clone(), slot.gate.last_wait()?)))
                    .collect();
                let (desired, observed) = (
                    Arc::clone(self.core.desired()),
                    self.core.observed().clone(),
                );
                let runtime = Arc::clone(&self.shared.runtime);
                tokio::spawn(async move {
                    usage::sample(&*runtime, stale).await;
                    let usage = cells
                        .into_iter()
                        .filter_map(|(key, cell)| Some((key, cell.load_full()?.usage)))
                        .collect();
                    let _ = reply.send(Snapshot {
                        desired,
                        observed,
                        usage,
                        waits,
                    });
                });
            }
            Call::Watch { key, reply } => {
                let _ = reply.send(self.slots.get(&key).map(|slot| slot.handle.status.clone()));
            }
            Call::Restart { key, force, reply } => {
                let result = self
                    .core
                    .may_restart(&key)
                    .map(|()| self.slots.get(&key).map(|slot| slot.handle.status.clone()));
                self.event(Event::Restart {
                    key: key.clone(),
                    force,
                })
                .await;
                let result = match result {
                    Ok(Some(status)) => Ok(status),
                    Ok(None) => Err(Failure::NotDeclared(key)),
                    Err(failure) => Err(failure),
                };
                let _ = reply.send(result);
            }
            Call::CheckHealth { key, reply } => {
                let result = self.core.check_health(&key).and_then(|()| {
                    let slot = self
                        .slots
                        .get(&key)
                        .ok_or_else(|| Failure::NeverRun(key.clone()))?;
                    let (sender, receiver) = oneshot::channel();
                    slot.handle.send(Command::CheckHealth(sender));
                    Ok(receiver)
                });
                let _ = reply.send(result);
            }
        }
    }

    /// The last of an exit: the tenants stopped in order already (unless `keep`); what is
    /// left of replaces stops too, waited for at most the longest stop timeout and a grace.
    /// Then the tasks' last statuses go to the core and the record is written.
    async fn exit(&mut self, keep: bool, stop_timeout: Duration) {
        if !keep {
            let mut waits = Vec::new();
            let retiring = self.retiring.iter().map(|retiring| &retiring.handle);
            for handle in self.slots.values().map(|slot| &slot.handle).chain(retiring) {
                handle.send(Command::Stop);
                waits.push(handle.status.clone());
            }
            // A task whose start is under way has no pid yet: it is done only once that
            // start has come back and what it started has stopped.
            let all_stopped = async {
                for mut status in waits {
                    let _ = status
                        .wait_for(|s| {
                            s.pid.is_none()
                                && !matches!(
                                    s.phase,
                                    crate::observed::Phase::Starting
                                        | crate::observed::Phase::Stopping
                                )
                        })
                        .await;
                }
            };
            let longest = stop_timeout + super::core::GRACE;
            if tokio::time::timeout(longest, all_stopped).await.is_err() {
                tracing::warn!("some tenants did not stop in time");
            }
            while let Ok(key) = self.changed.try_recv() {
                if let Some(slot) = self.slots.get(&key) {
                    let status = slot.handle.status.borrow().clone();
                    self.core
                        .handle(Event::Status { key, status }, Instant::now());
                }
            }
        }
        self.record.write_now(self.core.final_record()).await;
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

mod durable;
mod logs;
mod pressure;
mod usage;

#[cfg(test)]
mod tests;
