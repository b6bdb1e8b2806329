//! The inotify watch that reads new output: one watch per attached instance, on its raw
//! files' directory, for writes only (`IN_MODIFY`), read by a thread of its own. Uses `poll`
//! of `hub`; imports nothing of `runtime` outside `logs`.
//!
//! Not a recursive watch over the capture root: that one (notify's) walked each new
//! instance's directory to add its watch and woke its thread for every open, close and
//! creation of a raw file too, five events a start that need no read; during a burst of
//! 1,000 starts it took a tenth of ten's CPU.
//!
//! The thread reads one batch of each stream written to in turn, in the order of the writes,
//! and comes back for the streams that have more: a tenant writing faster than ten reads
//! holds up neither the others nor the watch's end. While writes come often, rounds are at
//! least [`ROUND_GAP`] apart unless a stream has more: a thousand tenants that each log a
//! line now and then wake the thread 20 times a second, not once a line.

use std::collections::{HashSet, VecDeque};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};

use crate::names::InstanceKey;

use super::super::line::Stream;
use super::{HubState, LogHub};

/// The inotify instance while ten watches, and which instance each watch is of.
#[derive(Default)]
pub(super) struct Watches {
    fd: Option<Arc<OwnedFd>>,
    by_wd: std::collections::HashMap<i32, InstanceKey>,
}

impl Watches {
    pub(super) fn watching(&self) -> bool {
        self.fd.is_some()
    }
}

/// The least time from one round of reads to the next while writes come often (rounds less
/// than two gaps apart): the writes that come within it are read together in the next round,
/// not each in a round (and a wake-up of the thread) of its own. A write after a quiet spell
/// is read at once. 100 tenants each logging a request a second: 20 rounds a second instead
/// of 100.
const ROUND_GAP: Duration = Duration::from_millis(50);

/// What a write to a raw file sets off: a read of that stream.
const MASK: WatchFlags = WatchFlags::MODIFY.union(WatchFlags::ONLYDIR);

/// Watching the raw files of every attached instance (and of those attached later) until
/// dropped.
pub struct CaptureWatch {
    hub: Arc<LogHub>,
    /// Its drop (closing the pipe) tells the thread to end.
    stop: Option<OwnedFd>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for CaptureWatch {
    fn drop(&mut self) {
        self.hub.lock().watches = Watches::default();
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A stream of an instance: the index of its source (0 stdout, 1 stderr).
type StreamOf = (InstanceKey, usize);

impl LogHub {
    /// Reads new output whenever inotify reports a write to a raw file, until the returned
    /// watch is dropped. Instances already attached are watched from now on (and read once
    /// at the start), as are those attached later.
    pub fn watch(self: &Arc<Self>) -> io::Result<CaptureWatch> {
        std::fs::create_dir_all(self.capture_root())?;
        let fd = Arc::new(inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK)?);
        let (stopped, stop) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        // The watches first, then the thread, whose first round reads every instance
        // attached before (anything written before its watch was in place).
        {
            let mut state = self.lock();
            let HubState {
                instances, watches, ..
            } = &mut *state;
            watches.fd = Some(Arc::clone(&fd));
            for (key, logs) in instances.iter_mut() {
                logs.wd = add(watches, &self.paths(key).dir, key);
            }
        }
        let hub = Arc::clone(self);
        let thread = std::thread::Builder::new()
            .name("ten-capture".into())
            .spawn(move || hub.read_events(&fd, &stopped))
            .inspect_err(|_| self.lock().watches = Watches::default())?;
        Ok(CaptureWatch {
            hub: Arc::clone(self),
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The watch's thread: waits for writes (or for `stopped` to close), then reads one batch
    /// of each stream written to, in the order of the first write to each, and again while
    /// one has more; after the event queue overflowed, every stream.
    fn read_events(&self, fd: &OwnedFd, stopped: &OwnedFd) {
        let mut buffer = [MaybeUninit::<u8>::uninit(); 8192];
        let mut reader = inotify::Reader::new(fd, &mut buffer);
        let mut pending: VecDeque<StreamOf> = VecDeque::new();
        let mut queued: HashSet<StreamOf> = HashSet::new();
        let mut written: Vec<(i32, usize)> = Vec::new();
        let mut gone: Vec<i32> = Vec::new();
        let mut read_all = true;
        let mut pace = Pace::new(Instant::now());
        loop {
            // Blocks only when no stream has more waiting; while writes come often, not
            // before the round's gap is over.
            let timeout = if pending.is_empty() && !read_all {
                if let Some(rest) = pace.wait(Instant::now())
                    && stopped_within(stopped, rest)
                {
                    return;
                }
                PollTimeout::NONE
            } else {
                PollTimeout::ZERO
            };
            let mut fds = [
                PollFd::new(fd.as_fd(), PollFlags::POLLIN),
                PollFd::new(stopped.as_fd(), PollFlags::POLLIN),
            ];
            match poll(&mut fds, timeout) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(error) => {
                    tracing::warn!(%error, "cannot wait for tenant output; reading all of it");
                    read_all = true;
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            if fds[1].any().unwrap_or(true) {
                return;
            }
            pace.round(Instant::now());
            loop {
                match reader.next() {
                    Ok(event) => {
                        let flags = event.events();
                        if flags.contains(ReadFlags::QUEUE_OVERFLOW) {
                            read_all = true;
                        } else if flags.contains(ReadFlags::IGNORED) {
                            gone.push(event.wd());
                        } else if flags.contains(ReadFlags::MODIFY)
                            && let Some(stream) = event.file_name().and_then(stream_of)
                            && !written.contains(&(event.wd(), stream))
                        {
                            written.push((event.wd(), stream));
                        }
                    }
                    Err(rustix::io::Errno::AGAIN) => break,
                    Err(rustix::io::Errno::INTR) => {}
                    Err(error) => {
                        tracing::warn!(%error, "cannot read the watch of tenant output; reading all of it");
                        read_all = true;
                        std::thread::sleep(Duration::from_millis(100));
                        break;
                    }
                }
            }
            let mut queue = |stream: StreamOf| {
                if queued.insert(stream.clone()) {
                    pending.push_back(stream);
                }
            };
            {
                let mut state = self.lock();
                // Everything that may have unread output first (written before it was
                // watched, or its event lost), then the writes in their order.
                if read_all {
                    read_all = false;
                    for key in state.instances.keys() {
                        queue((key.clone(), 0));
                        queue((key.clone(), 1));
                    }
                }
                for (wd, stream) in written.drain(..) {
                    if let Some(key) = state.watches.by_wd.get(&wd) {
                        queue((key.clone(), stream));
                    }
                }
                for wd in gone.drain(..) {
                    lost(&mut state, wd);
                }
            }
            // One batch of each; those with more go to the back.
            for _ in 0..pending.len() {
                let Some(stream) = pending.pop_front() else {
                    break;
                };
                if self.poll_batch(&stream.0, Some(stream.1)) {
                    pending.push_back(stream);
                } else {
                    queued.remove(&stream);
                }
            }
        }
    }
}

/// When the thread's rounds of reads began, to space them while writes come often.
#[derive(Debug, Clone, Copy)]
struct Pace {
    round: Instant,
    /// The last round began within two gaps of the one before: writes come often.
    busy: bool,
}

impl Pace {
    fn new(now: Instant) -> Self {
        Self {
            round: now,
            busy: false,
        }
    }

    /// A round begins `now`.
    fn round(&mut self, now: Instant) {
        let previous = std::mem::replace(&mut self.round, now);
        self.busy = now.saturating_duration_since(previous) < 2 * ROUND_GAP;
    }

    /// How long to wait, `now` that the round is done, before the next may begin: the rest
    /// of [`ROUND_GAP`] while writes come often (what comes meanwhile is read together),
    /// else nothing (a write after a quiet spell is read at once).
    fn wait(&self, now: Instant) -> Option<Duration> {
        if !self.busy {
            return None;
        }
        ROUND_GAP
            .checked_sub(now.saturating_duration_since(self.round))
            .filter(|rest| !rest.is_zero())
    }
}

/// Whether `stopped` closed (the watch ends) within `within`; waits that long otherwise.
fn stopped_within(stopped: &OwnedFd, within: Duration) -> bool {
    let mut fds = [PollFd::new(stopped.as_fd(), PollFlags::POLLIN)];
    let millis = u16::try_from(within.as_millis().max(1)).unwrap_or(u16::MAX);
    match poll(&mut fds, PollTimeout::from(millis)) {
        Ok(0) => false,
        Ok(_) => fds[0].any().unwrap_or(true),
        Err(_) => false,
    }
}

/// The kernel dropped the watch `wd` (its directory was removed, not by ten): that instance's
/// output is no longer watched (until it is attached again, at its next start).
fn lost(state: &mut HubState, wd: i32) {
    let Some(key) = state.watches.by_wd.remove(&wd) else {
        return;
    };
    if let Some(logs) = state.instances.get_mut(&key) {
        logs.wd = None;
    }
    tracing::warn!(
        instance = %key,
        "the directory of this instance's output was removed: its output is read again from its next start"
    );
}

/// Watches `dir`, the raw files' directory of `key`, if ten watches; the watch's descriptor.
/// A failure is a warning: that instance's output is then read from its next start, when it
/// is attached again.
pub(super) fn add(watches: &mut Watches, dir: &Path, key: &InstanceKey) -> Option<i32> {
    let fd = watches.fd.as_ref()?;
    match inotify::add_watch(&**fd, dir, MASK) {
        Ok(wd) => {
            watches.by_wd.insert(wd, key.clone());
            Some(wd)
        }
        Err(error) => {
            tracing::warn!(
                instance = %key, %error,
                "cannot watch the output of this instance: it is read from its next start \
                 (if the error is \"no space left\", raise fs.inotify.max_user_watches)"
            );
            None
        }
    }
}

/// Stops the watch `wd` (of an instance detached).
pub(super) fn remove(watches: &mut Watches, wd: i32) {
    if watches.by_wd.remove(&wd).is_some()
        && let Some(fd) = &watches.fd
    {
        let _ = inotify::remove_watch(&**fd, wd);
    }
}

/// Which stream a raw file's name is of.
fn stream_of(name: &std::ffi::CStr) -> Option<usize> {
    [Stream::Stdout, Stream::Stderr]
        .iter()
        .position(|stream| stream.raw_file().as_bytes() == name.to_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_wait_for_the_gap_only_while_writes_come_often() {
        let start = Instant::now();
        let at = |millis| start + Duration::from_millis(millis);
        let mut pace = Pace::new(start);
        // A write after a quiet spell: read at once, and nothing waited for after it.
        pace.round(at(1000));
        assert_eq!(pace.wait(at(1001)), None);
        // The next comes soon: its round waits until a gap after it began.
        pace.round(at(1010));
        assert_eq!(pace.wait(at(1011)), Some(Duration::from_millis(49)));
        // Writes keep coming: each round a gap after the last, and it waits again.
        pace.round(at(1060));
        assert_eq!(pace.wait(at(1062)), Some(Duration::from_millis(48)));
        // A round that took the whole gap waits no more.
        assert_eq!(pace.wait(at(1110)), None);
        // Quiet again for two gaps: the next write is read at once.
        pace.round(at(1200));
        assert_eq!(pace.wait(at(1201)), None);
    }
}
