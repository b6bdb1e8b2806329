//! Which of notify's events matter, and what each says ([`Seen`]): tenement.toml, and what
//! the instances directory holds as `scan` reads it (service directories, `*.toml` files in
//! them), editor temporaries and other files aside. Pure: no watching here.
//!
//! notify's inotify backend (8.2) reports `IN_OPEN` as `Access(Open(Any))` (inotify does not
//! say for what), `IN_CLOSE_WRITE` as `Access(Close(Write))`, `IN_CLOSE_NOWRITE` as
//! `Access(Close(Read))`, `IN_MODIFY` (writes, truncation) as `Modify(Data(Any))`,
//! `IN_ATTRIB` as `Modify(Metadata(Any))`, `IN_CREATE` as `Create(File | Folder)`,
//! `IN_DELETE` and a watched directory's `IN_DELETE_SELF` as `Remove(_)`, `IN_MOVED_FROM`
//! and `IN_MOVE_SELF` as `Modify(Name(From))`, `IN_MOVED_TO` as `Modify(Name(To))` followed
//! by `Modify(Name(Both))` with the two paths when both ends were watched, and a queue
//! overflow as an event flagged `need_rescan`.

use std::path::{Path, PathBuf};

use notify::EventKind;
use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind, RenameMode};

use super::settle::Seen;
use crate::desired::scan::is_ignored;

pub(super) struct Relevance {
    pub(super) config_path: PathBuf,
    pub(super) instances_dir: PathBuf,
}

impl Relevance {
    /// Whether an event `seen` at `path` can change what a reload reads: tenement.toml; the
    /// instances directory and its entries (editor temporaries aside); in a service
    /// directory, `*.toml` files and directories made or removed (a nested directory is
    /// warned about). Other files of a service directory (vim's `4913` probe, `sed -i`'s
    /// temporary) and anything deeper are never read.
    pub(super) fn matters(&self, seen: Seen, path: &Path) -> bool {
        if path == self.config_path || path == self.instances_dir {
            return true;
        }
        let Ok(inside) = path.strip_prefix(&self.instances_dir) else {
            return false;
        };
        let Some(name) = path.file_name().and_then(|name| name.to_str()) else {
            return true;
        };
        if is_ignored(name) {
            return false;
        }
        match inside.components().count() {
            1 => true,
            2 => name.ends_with(".toml") || seen == Seen::CreatedDir,
            _ => false,
        }
    }
}

/// What a notify event kind says happened to its paths; `None` for what never changes a
/// file (reads that are not opens or closes, a rename's "both ends" event, which repeats
/// its two halves).
pub(super) fn seen(kind: &EventKind) -> Option<Seen> {
    Some(match kind {
        EventKind::Access(AccessKind::Open(_)) => Seen::Opened,
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => Seen::ClosedWritten,
        EventKind::Access(AccessKind::Close(_)) => Seen::ClosedUnwritten,
        EventKind::Access(_) => return None,
        EventKind::Create(CreateKind::Folder) => Seen::CreatedDir,
        EventKind::Create(_) => Seen::Created,
        EventKind::Modify(ModifyKind::Data(_)) => Seen::Written,
        EventKind::Modify(ModifyKind::Metadata(_)) => Seen::Changed,
        EventKind::Modify(ModifyKind::Name(RenameMode::To)) => Seen::Arrived,
        EventKind::Modify(ModifyKind::Name(RenameMode::From)) => Seen::Left,
        EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => return None,
        EventKind::Remove(_) => Seen::Left,
        EventKind::Modify(_) | EventKind::Any | EventKind::Other => Seen::Unknown,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{DataChange, MetadataKind, RemoveKind};

    #[test]
    fn only_what_a_reload_reads_matters() {
        let relevance = Relevance {
            config_path: "/srv/app/tenement.toml".into(),
            instances_dir: "/srv/app/instances".into(),
        };
        let matters = |seen, path: &str| relevance.matters(seen, Path::new(path));
        assert!(matters(Seen::Written, "/srv/app/tenement.toml"));
        assert!(matters(Seen::Arrived, "/srv/app/instances"));
        assert!(matters(
            Seen::Created,
            "/srv/app/instances/notes/carol.toml"
        ));
        assert!(matters(Seen::CreatedDir, "/srv/app/instances/notes"));
        assert!(matters(Seen::Left, "/srv/app/instances/notes"));
        assert!(matters(Seen::Created, "/srv/app/instances/stray.toml"));
        assert!(matters(Seen::CreatedDir, "/srv/app/instances/notes/nested"));
        assert!(!matters(
            Seen::Created,
            "/srv/app/instances/notes/.carol.toml.swp"
        ));
        assert!(!matters(
            Seen::Arrived,
            "/srv/app/instances/notes/carol.toml~"
        ));
        assert!(!matters(Seen::Created, "/srv/app/instances/notes/4913"));
        assert!(!matters(Seen::Left, "/srv/app/instances/notes/sedX1b2c3"));
        assert!(!matters(
            Seen::Created,
            "/srv/app/instances/notes/nested/a.toml"
        ));
        assert!(!matters(Seen::Written, "/srv/app/tenement-data/state.json"));
        assert!(!matters(Seen::Written, "/srv/app/.tenement.toml.swp"));
        assert!(!matters(Seen::Arrived, "/srv/app/instances.old"));
    }

    #[test]
    fn each_inotify_event_says_what_happened() {
        let cases = [
            (
                EventKind::Access(AccessKind::Open(AccessMode::Any)),
                Some(Seen::Opened),
            ),
            (
                EventKind::Access(AccessKind::Close(AccessMode::Write)),
                Some(Seen::ClosedWritten),
            ),
            (
                EventKind::Access(AccessKind::Close(AccessMode::Read)),
                Some(Seen::ClosedUnwritten),
            ),
            (EventKind::Access(AccessKind::Read), None),
            (EventKind::Create(CreateKind::File), Some(Seen::Created)),
            (
                EventKind::Create(CreateKind::Folder),
                Some(Seen::CreatedDir),
            ),
            (
                EventKind::Modify(ModifyKind::Data(DataChange::Any)),
                Some(Seen::Written),
            ),
            (
                EventKind::Modify(ModifyKind::Metadata(MetadataKind::Any)),
                Some(Seen::Changed),
            ),
            (
                EventKind::Modify(ModifyKind::Name(RenameMode::To)),
                Some(Seen::Arrived),
            ),
            (
                EventKind::Modify(ModifyKind::Name(RenameMode::From)),
                Some(Seen::Left),
            ),
            (EventKind::Modify(ModifyKind::Name(RenameMode::Both)), None),
            (EventKind::Remove(RemoveKind::File), Some(Seen::Left)),
            (EventKind::Remove(RemoveKind::Folder), Some(Seen::Left)),
            (EventKind::Modify(ModifyKind::Any), Some(Seen::Unknown)),
            (EventKind::Other, Some(Seen::Unknown)),
        ];
        for (kind, expected) in cases {
            assert_eq!(seen(&kind), expected, "{kind:?}");
        }
    }
}
