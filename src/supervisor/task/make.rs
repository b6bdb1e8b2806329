//! How an instance's task is made: at once ([`spawn_instance`]), or, for an instance that
//! sleeps until its first request, only when its first command comes ([`spawn_asleep`]).

use std::sync::{Arc, Weak};

use tokio::sync::mpsc;

use crate::config::Settings;
use crate::desired::InstanceSpec;
use crate::runtime::{CheckConnection, Runtime};

use super::super::gate::Gate;
use super::super::machine::{Input, Machine};
use super::super::mailbox::{Dormant, Mailbox};
use super::super::messages::{Command, InstanceStatus, StatusSender};
use super::super::usage::UsageCell;
use super::{Boxed, InstanceHandle, InstanceTask, Shared, policy};

/// Starts the task of one instance (stopped until told to start), on port `port`. With no
/// `gate`, it gets a new one, owned by this task; with one (a replace), it shares it.
pub(crate) fn spawn_instance<R: Runtime>(
    shared: Arc<Shared<R>>,
    spec: Arc<InstanceSpec>,
    settings: &Arc<Settings>,
    port: u16,
    gate: Option<Arc<Gate>>,
) -> (InstanceHandle, Arc<Gate>) {
    let (sender, receiver) = mpsc::unbounded_channel();
    let (handle, gate, parts) = prepare(shared, spec, settings, port, gate, Mailbox::new(sender));
    tokio::spawn(InstanceTask::new(parts).run(receiver));
    (handle, gate)
}

/// Makes an instance that sleeps until its first request (or command): it says at once that it
/// sleeps, as a task told [`Command::Asleep`] does, but it has no task until the first command
/// that needs one comes through its mailbox ([`Mailbox::hold`]). Until then it is what
/// making the task takes, about 100 bytes, not a task, its channel and its state (2.5 KB
/// each: with 10,000 instances asleep, 25 MB).
pub(crate) fn spawn_asleep<R: Runtime>(
    shared: Arc<Shared<R>>,
    spec: Arc<InstanceSpec>,
    settings: &Arc<Settings>,
    port: u16,
) -> (InstanceHandle, Arc<Gate>) {
    let (handle, gate, parts) = prepare(shared, spec, settings, port, None, Mailbox::unmade());
    let mut task = InstanceTask::new(parts);
    task.advance(Input::Asleep);
    let parts = task.into_parts();
    let weak = Arc::downgrade(&parts.gate);
    handle.commands.hold(Box::new(parts.with_gate(weak)));
    (handle, gate)
}

/// A sleeping instance before its task is made: what the task is made of, with its gate
/// reached only weakly (the gate holds the mailbox that holds this).
type Asleep<R> = Parts<R, Weak<Gate>>;

impl<R: Runtime> Dormant for Asleep<R> {
    fn set_settings(&mut self, settings: Arc<Settings>) {
        self.settings = settings;
    }

    fn make(self: Box<Self>) -> mpsc::UnboundedSender<Command> {
        let (sender, receiver) = mpsc::unbounded_channel();
        // The reconciler and the proxy both drop the gate with the instance: with no gate, no
        // one is left to hear the task, and the command is moot.
        let Some(gate) = self.gate.upgrade() else {
            return sender;
        };
        let parts = self.with_gate(gate);
        let tasks = parts.shared.tasks.clone();
        tasks.spawn(asleep_until_told(parts, receiver));
        sender
    }
}

/// What an instance's task is made of, before it is made; `G` is how it holds its gate.
struct Parts<R, G = Arc<Gate>> {
    spec: Arc<InstanceSpec>,
    settings: Arc<Settings>,
    port: u16,
    shared: Arc<Shared<R>>,
    status: StatusSender,
    gate: G,
    usage: UsageCell,
}

impl<R, G> Parts<R, G> {
    fn with_gate<H>(self, gate: H) -> Parts<R, H> {
        Parts {
            spec: self.spec,
            settings: self.settings,
            port: self.port,
            shared: self.shared,
            status: self.status,
            gate,
            usage: self.usage,
        }
    }
}

fn prepare<R: Runtime>(
    shared: Arc<Shared<R>>,
    spec: Arc<InstanceSpec>,
    settings: &Arc<Settings>,
    port: u16,
    gate: Option<Arc<Gate>>,
    commands: Mailbox,
) -> (InstanceHandle, Arc<Gate>, Parts<R>) {
    let (status_sender, status_receiver) =
        super::super::cell::channel(InstanceStatus::stopped(port));
    let handle = InstanceHandle {
        commands,
        status: status_receiver,
        usage: Arc::default(),
    };
    let gate =
        gate.unwrap_or_else(|| Gate::with_admission(handle.owner(), Arc::clone(&shared.admission)));
    let parts = Parts {
        spec,
        settings: Arc::clone(settings),
        port,
        shared,
        status: status_sender,
        gate: Arc::clone(&gate),
        usage: Arc::clone(&handle.usage),
    };
    (handle, gate, parts)
}

/// A sleeping instance's task until its first command: settings are only kept; anything else
/// makes the task, which is told again that it sleeps (its status does not change) and then
/// hears the command.
async fn asleep_until_told<R: Runtime>(
    mut parts: Parts<R>,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let first = loop {
        match commands.recv().await {
            Some(Command::Settings(settings)) => parts.settings = settings,
            Some(Command::Asleep) => {}
            Some(command) => break command,
            None => return,
        }
    };
    woken(parts, first, commands).await;
}

/// The task of a sleeping instance made at its first command, and its loop, in a box of its
/// own: in place, the loop's state would size the waiting future too.
fn woken<R: Runtime>(
    parts: Parts<R>,
    first: Command,
    commands: mpsc::UnboundedReceiver<Command>,
) -> Boxed<()> {
    let mut task = InstanceTask::new(parts);
    task.advance(Input::Asleep);
    if let Some(input) = task.command(first)
        && task.advance(input)
    {
        return Box::pin(std::future::ready(()));
    }
    Box::pin(task.run(commands))
}

impl<R: Runtime> InstanceTask<R> {
    fn new(parts: Parts<R>) -> Self {
        let machine = Machine::new(policy(&parts.spec, &parts.settings, parts.port));
        InstanceTask {
            key: parts.spec.key.clone(),
            spec: parts.spec,
            settings: parts.settings,
            port: parts.port,
            machine,
            shared: parts.shared,
            status: parts.status,
            gate: parts.gate,
            backend: None,
            pid_start_time: None,
            started_at_unix: None,
            last_exit_at: None,
            exit: None,
            spawning: None,
            probing: None,
            probe_counts: false,
            check_connection: CheckConnection::default(),
            sampling: None,
            usage: parts.usage,
            permit: None,
            health_waiters: Vec::new(),
            successor: None,
            out_of_memory: false,
        }
    }

    /// A task that has only been told it sleeps, back to what made it.
    fn into_parts(self) -> Parts<R> {
        Parts {
            spec: self.spec,
            settings: self.settings,
            port: self.port,
            shared: self.shared,
            status: self.status,
            gate: self.gate,
            usage: self.usage,
        }
    }
}
