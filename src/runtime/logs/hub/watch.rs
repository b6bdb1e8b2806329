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
//! holds up neither the others nor the watch's end.

use std::collections::{HashSet, VecDeque};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

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
        loop {
            // Blocks only when no stream has more waiting.
            let timeout = if pending.is_empty() && !read_all {
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
