//! Telling the operator, as events, when ten's durable writes (the record, the process
//! table) start failing and when they are written again (see `runtime::durable`).

use crate::runtime::durable::{self, Kind};

use super::super::core::Note;

/// What was last told.
#[derive(Debug, Default)]
pub(super) struct Told {
    seen: u64,
    failing: Vec<Kind>,
}

impl Told {
    /// The events due since the last call: one per kind that started or stopped failing.
    pub(super) fn news(&mut self) -> Vec<Note> {
        let changes = durable::changes();
        if changes == self.seen {
            return Vec::new();
        }
        self.seen = changes;
        let now = durable::failing();
        let mut notes = Vec::new();
        for failing in &now {
            if !self.failing.contains(&failing.kind) {
                notes.push(Note {
                    instance: None,
                    action: "storage".into(),
                    message: format!(
                        "cannot write {}: {}; ten tries again, and starts no tenant it cannot note",
                        failing.kind.describe(),
                        failing.error
                    ),
                    reason: None,
                    warning: true,
                });
            }
        }
        for kind in &self.failing {
            if now.iter().all(|failing| failing.kind != *kind) {
                notes.push(Note {
                    instance: None,
                    action: "storage".into(),
                    message: format!("{} is written again", kind.describe()),
                    reason: None,
                    warning: false,
                });
            }
        }
        self.failing = now.iter().map(|failing| failing.kind).collect();
        notes
    }
}
