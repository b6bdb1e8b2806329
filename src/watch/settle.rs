//! When a change of the files may be read: the pure decision of the watcher. Events go in
//! with the instant they were seen; out comes "read now", "wait until T" or "nothing to
//! read". No notify, no clock, no tokio here (the watcher feeds it).
//!
//! A change is read at once unless a file of the watched set may still be incomplete:
//! - a file created and not yet opened (its creator's open follows the create at once, in
//!   the same system call): [`QUIET`] for the open, which a hard link or a symbolic link
//!   never brings;
//! - a file written by a process that holds it open: until that process closes it (a close
//!   after writing), at most [`WRITER_PATIENCE`] (a close that was never reported, as when a
//!   watch was lost);
//! - a file written by a process whose open was not seen, or changed by an event that does
//!   not say what happened, and a directory just made (files made in it before its own watch
//!   is in place are reported by no event): [`QUIET`] after the last such event, at most
//!   [`MAX_DELAY`] after the first;
//! - a file or directory that went away (removed, renamed elsewhere): [`QUIET`], because an
//!   editor saves by moving the old file aside and writing a new one, and a `git checkout`
//!   removes a file before it writes it again; if it comes back it is followed as new.
//!
//! Opens are counted per path, because inotify does not say whether an open is for reading
//! or writing: a write while some open is counted waits for a close after writing. Reads
//! (ten's own reloads among them) open and close files without changing anything, so they
//! never make a change to read.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long an event that does not say whether a file is complete is waited on, after the
/// last one; also how long a file created and not opened, or gone, is given.
pub const QUIET: Duration = Duration::from_millis(100);
/// The longest wait, after the first, under a stream of such events.
pub const MAX_DELAY: Duration = Duration::from_secs(1);
/// The longest wait for a writer holding a file open to close it.
pub const WRITER_PATIENCE: Duration = Duration::from_secs(10);

/// What an event says happened to one path (see `relevance::seen` for notify's events).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Opened, for reading or writing (inotify does not say which).
    Opened,
    /// Closed by a process that had it open for writing.
    ClosedWritten,
    /// Closed by a process that had it open for reading only.
    ClosedUnwritten,
    /// A file was made (by an open that creates it, a link, a `mknod`).
    Created,
    /// A directory was made.
    CreatedDir,
    /// Data was written (or the file truncated).
    Written,
    /// Its metadata changed (mode, owner, times): complete in itself.
    Changed,
    /// Something changed that the event does not describe.
    Unknown,
    /// Renamed into place: whole.
    Arrived,
    /// Removed, or renamed away.
    Left,
    /// Events were lost (the kernel's queue overflowed): everything may have changed.
    Rescan,
}

/// What the watcher should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Tell the reader: the files changed and nothing is known to be incomplete.
    Read,
    /// A change waits for a file that may be incomplete; look again at this instant, or
    /// sooner if an event comes.
    WaitUntil(Instant),
    /// Nothing changed since the last [`Next::Read`].
    Idle,
}

/// Why a path holds back a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// Made, and its maker's open not seen yet.
    Created { at: Instant },
    /// Written while opened: until a close after writing.
    Writing { since: Instant },
    /// Changed in a way that does not say when it is done.
    Unsure { first: Instant, last: Instant },
    /// Went away; may come back at once.
    Gone { at: Instant },
}

impl Wait {
    fn until(self) -> Instant {
        match self {
            Wait::Created { at } | Wait::Gone { at } => at + QUIET,
            Wait::Writing { since } => since + WRITER_PATIENCE,
            Wait::Unsure { first, last } => (last + QUIET).min(first + MAX_DELAY),
        }
    }

    /// When the path began to hold a read back.
    fn since(self) -> Instant {
        match self {
            Wait::Created { at } | Wait::Gone { at } => at,
            Wait::Writing { since } => since,
            Wait::Unsure { first, .. } => first,
        }
    }
}

#[derive(Debug, Default)]
struct PathState {
    /// Opens not closed yet, as far as events told.
    opens: u32,
    wait: Option<Wait>,
}

/// The watcher's state: which paths hold a read back, and whether a change waits.
#[derive(Debug, Default)]
pub struct Settle {
    /// Only paths that are open or hold a read back.
    paths: HashMap<PathBuf, PathState>,
    /// Whether a change was seen since the last [`Next::Read`].
    changed: bool,
}

impl Settle {
    /// Takes in what an event says of `path`. Returns whether the decision may have
    /// changed (an open or a read-only close of a file that holds nothing back changes
    /// nothing, and these are most events: ten's own reads).
    pub fn observe(&mut self, seen: Seen, path: &Path, now: Instant) -> bool {
        if seen == Seen::Rescan {
            self.paths.clear();
            self.changed = true;
            return true;
        }
        if seen == Seen::Left {
            // What was below a directory that went away will report nothing more.
            self.paths
                .retain(|other, _| other == path || !other.starts_with(path));
        }
        if seen == Seen::ClosedUnwritten && !self.paths.contains_key(path) {
            // A read's close of a file that holds nothing back (ten's own reloads).
            return false;
        }
        let changed_before = self.changed;
        let state = self.paths.entry(path.to_path_buf()).or_default();
        let before = state.wait;
        match seen {
            Seen::Opened => {
                state.opens += 1;
                if let Some(Wait::Created { at }) = state.wait {
                    // The maker's open: it writes, then closes.
                    state.wait = Some(Wait::Writing { since: at });
                }
            }
            Seen::ClosedWritten => {
                state.opens = state.opens.saturating_sub(1);
                self.changed = true;
                if !matches!(state.wait, Some(Wait::Gone { .. })) {
                    state.wait = None;
                }
            }
            Seen::ClosedUnwritten => {
                state.opens = state.opens.saturating_sub(1);
                if let Some(Wait::Writing { since }) = state.wait
                    && state.opens == 0
                {
                    // No open left, and no close after writing: the writer is unknown.
                    state.wait = Some(Wait::Unsure {
                        first: since,
                        last: now,
                    });
                }
            }
            Seen::Created => {
                self.changed = true;
                state.wait = Some(Wait::Created { at: now });
            }
            Seen::CreatedDir => {
                self.changed = true;
                state.wait = Some(Wait::Unsure {
                    first: now,
                    last: now,
                });
            }
            Seen::Written | Seen::Unknown => {
                self.changed = true;
                let first = state
                    .wait
                    .filter(|wait| !matches!(wait, Wait::Gone { .. }))
                    .map_or(now, Wait::since);
                state.wait = Some(if state.opens > 0 {
                    Wait::Writing { since: first }
                } else {
                    Wait::Unsure { first, last: now }
                });
            }
            Seen::Changed => self.changed = true,
            Seen::Arrived => {
                self.changed = true;
                state.wait = None;
            }
            Seen::Left => {
                self.changed = true;
                state.opens = 0;
                state.wait = Some(Wait::Gone { at: now });
            }
            Seen::Rescan => unreachable!("handled above"),
        }
        let after = state.wait;
        if state.opens == 0 && state.wait.is_none() {
            self.paths.remove(path);
        }
        before != after || self.changed != changed_before
    }

    /// What to do at `now`. [`Next::Read`] forgets the change: the caller tells the reader.
    pub fn next(&mut self, now: Instant) -> Next {
        if !self.changed {
            return Next::Idle;
        }
        let latest = self
            .paths
            .values()
            .filter_map(|state| state.wait.map(Wait::until))
            .filter(|until| *until > now)
            .max();
        if let Some(until) = latest {
            return Next::WaitUntil(until);
        }
        // Every wait is over: what is still open holds nothing back any more.
        self.paths.retain(|_, state| {
            state.wait = None;
            state.opens > 0
        });
        self.changed = false;
        Next::Read
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "/srv/instances/web/a.toml";
    const OTHER: &str = "/srv/instances/web/b.toml";

    /// Feeds `events` (milliseconds after `t0`, what, path) and returns the decision at each
    /// given instant.
    struct Case {
        settle: Settle,
        t0: Instant,
    }

    impl Case {
        fn new() -> Case {
            Case {
                settle: Settle::default(),
                t0: Instant::now(),
            }
        }

        fn at(&self, ms: u64) -> Instant {
            self.t0 + Duration::from_millis(ms)
        }

        fn see(&mut self, ms: u64, seen: Seen, path: &str) -> &mut Case {
            let now = self.at(ms);
            self.settle.observe(seen, Path::new(path), now);
            self
        }

        fn next(&mut self, ms: u64) -> Next {
            let now = self.at(ms);
            self.settle.next(now)
        }

        fn wait_until(&self, ms: u64) -> Next {
            Next::WaitUntil(self.at(ms))
        }
    }

    #[test]
    fn nothing_changed_is_idle_and_reads_change_nothing() {
        let mut case = Case::new();
        assert_eq!(case.next(0), Next::Idle);
        case.see(0, Seen::Opened, FILE)
            .see(1, Seen::ClosedUnwritten, FILE);
        assert_eq!(case.next(1), Next::Idle);
        assert!(case.settle.paths.is_empty(), "{:?}", case.settle.paths);
    }

    #[test]
    fn a_file_written_and_closed_is_read_at_once_and_only_once() {
        // `cp`, `echo > file`, a program's write: create, open, write, close.
        let mut case = Case::new();
        case.see(0, Seen::Created, FILE);
        assert_eq!(
            case.next(0),
            case.wait_until(100),
            "the maker's open follows"
        );
        case.see(0, Seen::Opened, FILE);
        assert_eq!(case.next(0), case.wait_until(10_000), "written while open");
        case.see(1, Seen::Written, FILE)
            .see(2, Seen::ClosedWritten, FILE);
        assert_eq!(case.next(2), Next::Read);
        assert_eq!(case.next(3), Next::Idle);
        assert!(case.settle.paths.is_empty());
    }

    #[test]
    fn a_writer_that_pauses_with_the_file_open_is_waited_for() {
        let mut case = Case::new();
        case.see(0, Seen::Created, FILE)
            .see(0, Seen::Opened, FILE)
            .see(1, Seen::Written, FILE);
        assert_eq!(case.next(1), case.wait_until(10_000));
        assert_eq!(case.next(300), case.wait_until(10_000), "half written");
        case.see(301, Seen::Written, FILE);
        assert_eq!(case.next(301), case.wait_until(10_000));
        case.see(302, Seen::ClosedWritten, FILE);
        assert_eq!(case.next(302), Next::Read);
    }

    #[test]
    fn an_existing_file_rewritten_in_place_waits_for_its_close() {
        // nano, an editor writing in place, `>` in a shell: open (truncating), write, close.
        let mut case = Case::new();
        case.see(0, Seen::Opened, FILE);
        assert_eq!(case.next(0), Next::Idle, "an open alone changes nothing");
        case.see(0, Seen::Written, FILE);
        assert_eq!(case.next(20), case.wait_until(10_000));
        case.see(40, Seen::Written, FILE)
            .see(41, Seen::ClosedWritten, FILE);
        assert_eq!(case.next(41), Next::Read);
    }

    #[test]
    fn a_reader_of_the_file_does_not_end_the_wait_for_its_writer() {
        let mut case = Case::new();
        case.see(0, Seen::Opened, FILE)
            .see(1, Seen::Written, FILE)
            .see(2, Seen::Opened, FILE)
            .see(3, Seen::ClosedUnwritten, FILE);
        assert_eq!(case.next(3), case.wait_until(10_001));
        case.see(4, Seen::ClosedWritten, FILE);
        assert_eq!(case.next(4), Next::Read);
    }

    #[test]
    fn a_writer_that_never_closes_is_given_up_on() {
        let mut case = Case::new();
        case.see(0, Seen::Opened, FILE).see(5, Seen::Written, FILE);
        assert_eq!(case.next(9_000), case.wait_until(10_005));
        assert_eq!(case.next(10_005), Next::Read);
        assert_eq!(case.next(10_006), Next::Idle);
        // Its open is still counted: a later write waits for its close again.
        case.see(11_000, Seen::Written, FILE);
        assert_eq!(case.next(11_000), case.wait_until(21_000));
    }

    #[test]
    fn a_rename_into_place_is_read_at_once() {
        // An editor's save: write a temporary file (ignored), rename it over the file.
        let mut case = Case::new();
        case.see(0, Seen::Arrived, FILE);
        assert_eq!(case.next(0), Next::Read);
    }

    #[test]
    fn a_file_that_goes_away_is_given_time_to_come_back() {
        let mut case = Case::new();
        case.see(0, Seen::Left, FILE);
        assert_eq!(case.next(0), case.wait_until(100));
        assert_eq!(case.next(100), Next::Read, "`rm`: read after the grace");

        // vim's save: the file renamed aside, a new one written in its place.
        case.see(1_000, Seen::Left, FILE)
            .see(1_010, Seen::Created, FILE)
            .see(1_010, Seen::Opened, FILE)
            .see(1_011, Seen::Written, FILE);
        assert_eq!(case.next(1_011), case.wait_until(11_010));
        case.see(1_012, Seen::ClosedWritten, FILE);
        assert_eq!(case.next(1_012), Next::Read, "one read, of the new file");
    }

    #[test]
    fn a_close_of_a_file_that_went_away_does_not_end_its_grace() {
        let mut case = Case::new();
        case.see(0, Seen::Opened, FILE)
            .see(1, Seen::Left, FILE)
            .see(2, Seen::ClosedWritten, FILE);
        assert_eq!(case.next(2), case.wait_until(101));
    }

    #[test]
    fn a_directory_that_goes_away_forgets_what_was_open_below_it() {
        let mut case = Case::new();
        case.see(0, Seen::Opened, FILE).see(1, Seen::Written, FILE);
        case.see(2, Seen::Left, "/srv/instances/web");
        assert_eq!(case.next(2), case.wait_until(102));
        assert_eq!(case.next(102), Next::Read);
        assert!(case.settle.paths.is_empty(), "{:?}", case.settle.paths);
    }

    #[test]
    fn a_link_is_read_after_quiet_time() {
        // A hard or symbolic link: a create with no open after it.
        let mut case = Case::new();
        case.see(0, Seen::Created, FILE);
        assert_eq!(case.next(50), case.wait_until(100));
        assert_eq!(case.next(100), Next::Read);
    }

    #[test]
    fn writes_whose_open_was_not_seen_wait_for_quiet_time_at_most_max_delay() {
        let mut case = Case::new();
        case.see(0, Seen::Written, FILE);
        assert_eq!(case.next(0), case.wait_until(100));
        for ms in (50..=950).step_by(50) {
            case.see(ms, Seen::Written, FILE);
        }
        assert_eq!(case.next(950), case.wait_until(1_000), "at most MAX_DELAY");
        assert_eq!(case.next(1_000), Next::Read);
    }

    #[test]
    fn a_new_directory_waits_for_quiet_time() {
        let mut case = Case::new();
        case.see(0, Seen::CreatedDir, "/srv/instances/api");
        assert_eq!(case.next(0), case.wait_until(100));
        assert_eq!(case.next(100), Next::Read);
    }

    #[test]
    fn one_incomplete_file_holds_back_a_complete_one() {
        let mut case = Case::new();
        case.see(0, Seen::Opened, FILE).see(0, Seen::Written, FILE);
        case.see(1, Seen::Arrived, OTHER);
        assert_eq!(case.next(1), case.wait_until(10_000));
        case.see(300, Seen::ClosedWritten, FILE);
        assert_eq!(case.next(300), Next::Read, "both in one read");
    }

    #[test]
    fn a_burst_of_complete_files_reads_as_each_closes() {
        // Each close is a read; the reader's flag makes those that come during a reload
        // one more reload (`Unread`).
        let mut case = Case::new();
        for n in 0..3u64 {
            let path = format!("/srv/instances/web/t{n}.toml");
            case.see(n, Seen::Created, &path)
                .see(n, Seen::Opened, &path)
                .see(n, Seen::ClosedWritten, &path);
            assert_eq!(case.next(n), Next::Read);
        }
        assert!(case.settle.paths.is_empty());
    }

    #[test]
    fn metadata_changes_are_read_at_once_unless_a_writer_is_at_work() {
        let mut case = Case::new();
        case.see(0, Seen::Changed, FILE);
        assert_eq!(case.next(0), Next::Read);
        // `touch` of a new file: create, open, attributes, close.
        case.see(10, Seen::Created, FILE)
            .see(10, Seen::Opened, FILE)
            .see(10, Seen::Changed, FILE);
        assert_eq!(case.next(10), case.wait_until(10_010));
        case.see(11, Seen::ClosedWritten, FILE);
        assert_eq!(case.next(11), Next::Read);
    }

    #[test]
    fn an_overflow_forgets_the_opens_and_reads_everything() {
        let mut case = Case::new();
        case.see(0, Seen::Opened, FILE).see(0, Seen::Written, FILE);
        case.see(1, Seen::Rescan, "/srv/instances");
        assert_eq!(case.next(1), Next::Read);
        assert!(case.settle.paths.is_empty());
    }

    #[test]
    fn the_answer_says_whether_to_look_again() {
        let mut settle = Settle::default();
        let now = Instant::now();
        let path = Path::new(FILE);
        assert!(!settle.observe(Seen::Opened, path, now), "a read's open");
        assert!(!settle.observe(Seen::ClosedUnwritten, path, now));
        assert!(settle.observe(Seen::Created, path, now));
        assert!(
            settle.observe(Seen::Opened, path, now),
            "created -> writing"
        );
        assert!(settle.observe(Seen::ClosedWritten, path, now));
    }
}
