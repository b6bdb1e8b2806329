//! Where an instance's commands go: its task's channel, or, for an instance that has slept
//! since it was made, what makes its task when the first command that needs one comes.
//!
//! A task and its channel cost about 2.5 KB; an instance that sleeps until its first request
//! may never need one. So a sleeping instance starts as a [`Dormant`] kept in its mailbox:
//! settings are kept there, "sleep on" needs nothing, and any other command (a wake from the
//! proxy; a start, a stop or a removal from the reconciler) makes the task first and then goes
//! to it. The reconciler's handle and the gate send through the same mailbox, so the task is
//! made once, by whichever comes first.

use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::config::Settings;

use super::messages::Command;

/// What makes a sleeping instance's task, kept until it is needed.
pub(crate) trait Dormant: Send {
    /// Settings changed before the task was made.
    fn set_settings(&mut self, settings: Arc<Settings>);
    /// Makes the task (it says at once that it sleeps) and gives its channel.
    fn make(self: Box<Self>) -> mpsc::UnboundedSender<Command>;
}

/// The sending side of an instance's commands; clones share it.
#[derive(Clone)]
pub struct Mailbox(Arc<Mutex<Inbox>>);

enum Inbox {
    Task(mpsc::UnboundedSender<Command>),
    Dormant(Box<dyn Dormant>),
    /// Only while the task or the dormant instance is made.
    Making,
}

impl Mailbox {
    /// The mailbox of a task that is already running.
    pub fn new(sender: mpsc::UnboundedSender<Command>) -> Self {
        Mailbox(Arc::new(Mutex::new(Inbox::Task(sender))))
    }

    /// A mailbox for a dormant instance given later ([`Mailbox::hold`]): the dormant instance
    /// is made with the gate that holds this mailbox. Commands sent before are dropped.
    pub(crate) fn unmade() -> Self {
        Mailbox(Arc::new(Mutex::new(Inbox::Making)))
    }

    /// Keeps `dormant` until the first command that needs its task.
    pub(crate) fn hold(&self, dormant: Box<dyn Dormant>) {
        *self.lock() = Inbox::Dormant(dormant);
    }

    /// Sends `command`; after the task has ended (after `Remove`), it is moot and dropped.
    pub fn send(&self, command: Command) {
        let mut inbox = self.lock();
        if let Inbox::Dormant(dormant) = &mut *inbox {
            match command {
                Command::Settings(settings) => return dormant.set_settings(settings),
                Command::Asleep => return,
                _ => {}
            }
            if let Inbox::Dormant(dormant) = std::mem::replace(&mut *inbox, Inbox::Making) {
                *inbox = Inbox::Task(dormant.make());
            }
        }
        if let Inbox::Task(sender) = &*inbox {
            let _ = sender.send(command);
        }
    }

    /// Whether the task has not been made yet.
    pub fn is_dormant(&self) -> bool {
        matches!(*self.lock(), Inbox::Dormant(_))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inbox> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Made = Arc<Mutex<Option<mpsc::UnboundedReceiver<Command>>>>;

    struct Fake {
        made: Made,
        settings: Arc<Mutex<usize>>,
    }

    impl Dormant for Fake {
        fn set_settings(&mut self, _: Arc<Settings>) {
            *self.settings.lock().unwrap() += 1;
        }

        fn make(self: Box<Self>) -> mpsc::UnboundedSender<Command> {
            let (sender, receiver) = mpsc::unbounded_channel();
            *self.made.lock().unwrap() = Some(receiver);
            sender
        }
    }

    #[test]
    fn settings_and_sleep_on_make_no_task_and_the_first_other_command_makes_it() {
        let made = Made::default();
        let settings = Arc::new(Mutex::new(0));
        let mailbox = Mailbox::unmade();
        mailbox.hold(Box::new(Fake {
            made: Arc::clone(&made),
            settings: Arc::clone(&settings),
        }));
        let gate_side = mailbox.clone();
        mailbox.send(Command::Settings(Arc::new(Settings::defaults(
            std::path::Path::new("/"),
        ))));
        mailbox.send(Command::Asleep);
        assert!(mailbox.is_dormant());
        assert!(made.lock().unwrap().is_none());
        assert_eq!(*settings.lock().unwrap(), 1);

        gate_side.send(Command::Wake);
        assert!(!mailbox.is_dormant());
        mailbox.send(Command::Stop);
        let mut receiver = made.lock().unwrap().take().expect("made by the wake");
        assert!(matches!(receiver.try_recv(), Ok(Command::Wake)));
        assert!(matches!(receiver.try_recv(), Ok(Command::Stop)));
        // Once made, settings go to the task like any command.
        mailbox.send(Command::Settings(Arc::new(Settings::defaults(
            std::path::Path::new("/"),
        ))));
        assert!(matches!(receiver.try_recv(), Ok(Command::Settings(_))));
        assert_eq!(*settings.lock().unwrap(), 1);
    }

    #[test]
    fn a_command_after_the_task_ended_is_dropped() {
        let (sender, receiver) = mpsc::unbounded_channel();
        let mailbox = Mailbox::new(sender);
        drop(receiver);
        mailbox.send(Command::Wake);
        assert!(!mailbox.is_dormant());
    }
}
