//! The inotify watch that reads new output: one watch per attached instance, on its raw
//! files' directory, for writes only (`IN_MODIFY`), read by a thread of its own. Uses `poll`
//! of `hub`; imports nothing of `runtime` outside `logs`.
//!
//! Not a recursive watch over the capture root: that one (notify's) walked each new
//! instance's directory to add its watch and woke its thread for every open, close and
//! creation of a raw file too, five events a start that need no read; during a burst of
//! 1,000 starts it took a tenth of ten's CPU.

use std::collections::HashMap;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};

use crate::names::InstanceKey;

use super::super::line::Stream;
use super::{HubState, LogHub};

/// The inotify instance while ten watches, and which instance each watch is of.
#[derive(Default)]
pub(super) struct Watches {
    fd: Option<Arc<OwnedFd>>,
    by_wd: HashMap<i32, InstanceKey>,
}

/// What a write to a raw file sets off: a read of that stream.
const MASK: WatchFlags = WatchFlags::MODIFY.union(WatchFlags::ONLYDIR);

/// Watching the raw files of every attached instance (and of those attached later) until
/// dropped.
pub struct CaptureWatch {
    hub: Arc<LogHub>,
    fd: Arc<OwnedFd>,
    /// The capture root's watch: removed at the drop, which wakes the thread (`IN_IGNORED`).
    root: i32,
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for CaptureWatch {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::Release);
        let mut state = self.hub.lock();
        state.watches = Watches::default();
        drop(state);
        if inotify::remove_watch(&*self.fd, self.root).is_ok()
            && let Some(thread) = self.thread.take()
        {
            let _ = thread.join();
        }
    }
}

impl LogHub {
    /// Reads new output whenever inotify reports a write to a raw file, until the returned
    /// watch is dropped. Instances already attached are watched from now on, as are those
    /// attached later.
    pub fn watch(self: &Arc<Self>) -> io::Result<CaptureWatch> {
        let capture = self.capture_root();
        std::fs::create_dir_all(&capture)?;
        let fd = Arc::new(inotify::init(CreateFlags::CLOEXEC)?);
        let root = inotify::add_watch(&*fd, &capture, WatchFlags::ONLYDIR)?;
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
        let stopping = Arc::new(AtomicBool::new(false));
        let thread = {
            let (hub, fd, stopping) = (Arc::clone(self), Arc::clone(&fd), Arc::clone(&stopping));
            std::thread::Builder::new()
                .name("ten-capture".into())
                .spawn(move || hub.read_events(&fd, &stopping))?
        };
        // Anything written before the watches were in place.
        self.poll_all();
        Ok(CaptureWatch {
            hub: Arc::clone(self),
            fd,
            root,
            stopping,
            thread: Some(thread),
        })
    }

    /// The watch's thread: reads events until told to stop; each batch read at once is
    /// answered with one read per stream written to (however many writes it holds), or, after
    /// the queue overflowed, a read of everything.
    fn read_events(&self, fd: &OwnedFd, stopping: &AtomicBool) {
        let mut buffer = [MaybeUninit::<u8>::uninit(); 8192];
        let mut reader = inotify::Reader::new(fd, &mut buffer);
        let mut written: Vec<(i32, usize)> = Vec::new();
        loop {
            let mut overflowed = false;
            loop {
                match reader.next() {
                    Ok(event) => {
                        let flags = event.events();
                        if flags.contains(ReadFlags::QUEUE_OVERFLOW) {
                            overflowed = true;
                        } else if flags.contains(ReadFlags::MODIFY)
                            && let Some(stream) = event.file_name().and_then(stream_of)
                        {
                            written.push((event.wd(), stream));
                        }
                    }
                    Err(rustix::io::Errno::INTR) => {}
                    Err(error) => {
                        if !stopping.load(Ordering::Acquire) {
                            tracing::warn!(%error, "cannot read the output watch; output is read no more");
                        }
                        return;
                    }
                }
                if reader.is_buffer_empty() {
                    break;
                }
            }
            if stopping.load(Ordering::Acquire) {
                return;
            }
            if overflowed {
                written.clear();
                self.poll_all();
                continue;
            }
            written.sort_unstable();
            written.dedup();
            for (wd, stream) in written.drain(..) {
                let key = self.lock().watches.by_wd.get(&wd).cloned();
                if let Some(key) = key {
                    self.poll_stream(&key, stream);
                }
            }
        }
    }
}

/// Watches `dir`, the raw files' directory of `key`, if ten watches; the watch's descriptor.
/// A failure is a warning: that instance's new output is then read only when it is attached
/// again.
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
                "cannot watch the output of this instance: its new output is not read \
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
