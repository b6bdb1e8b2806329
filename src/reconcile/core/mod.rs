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

mod execute;
mod handle;
mod pass;
mod schedule;
mod state;
mod stopping;
mod types;

use crate::names::InstanceKey;

pub use schedule::{FLUSH_DELAY, PASS_THROTTLE, RESYNC, RESYNC_MAX, RESYNC_SHARE};
pub use state::Core;
pub use stopping::GRACE;
pub use types::*;

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
