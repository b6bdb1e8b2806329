//! The pidfile of a `ten serve` (`--pidfile`, `{data_dir}/ten.pid` for a daemon): it names the
//! server's pid and is locked (flock) by the server for its whole life, so that a second
//! server is refused and a stop signals only the process that holds it — never a process that
//! got a dead server's pid.
//!
//! The pid is written atomically: a new file, locked before it is renamed over the path, while
//! the lock of the file it replaces is held. Whichever file a reader opens at the path is
//! locked by the server, and a server that locked a file that was renamed over or removed
//! meanwhile sees it (the path no longer leads to its file) and tries again.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

#[derive(Debug, thiserror::Error)]
pub(crate) enum PidfileError {
    #[error("another ten serve{} holds the pidfile {}", pid.map(|pid| format!(" (pid {pid})")).unwrap_or_default(), path.display())]
    Held { path: PathBuf, pid: Option<u32> },
    #[error("no ten serve runs with the pidfile {}: it does not exist", path.display())]
    Missing { path: PathBuf },
    #[error("no ten serve runs with the pidfile {}: nothing holds it (left by a server that ended without removing it{})", path.display(), pid.map(|pid| format!("; pid {pid} was not signalled")).unwrap_or_default())]
    Stale { path: PathBuf, pid: Option<u32> },
    #[error("the pidfile {} names {}, which does not hold it; nothing was signalled", path.display(), pid.map_or("no pid".to_string(), |pid| format!("pid {pid}")))]
    NotHolder { path: PathBuf, pid: Option<u32> },
    #[error("ten serve (pid {pid}) did not exit within {} s", waited.as_secs())]
    Timeout { pid: u32, waited: Duration },
    #[error("{context} {}: {source}", path.display())]
    Io {
        context: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

fn io_error(context: &'static str, path: &Path) -> impl FnOnce(io::Error) -> PidfileError {
    let path = path.to_path_buf();
    move |source| PidfileError::Io {
        context,
        path,
        source,
    }
}

/// A pidfile held by this process. Dropping it removes the file (when the path still leads to
/// it) and releases the lock.
#[derive(Debug)]
pub(crate) struct Pidfile {
    path: PathBuf,
    lock: Flock<File>,
}

impl Pidfile {
    /// Takes `path` for this process, or says which process holds it.
    pub(crate) fn acquire(path: &Path) -> Result<Pidfile, PidfileError> {
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        std::fs::create_dir_all(dir).map_err(io_error("cannot create the directory of", path))?;
        for _ in 0..100 {
            let current = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o644)
                .open(path)
                .map_err(io_error("cannot open", path))?;
            let current = match Flock::lock(current, FlockArg::LockExclusiveNonblock) {
                Ok(locked) => locked,
                Err((_, Errno::EWOULDBLOCK)) => {
                    return Err(PidfileError::Held {
                        path: path.to_path_buf(),
                        pid: read_pid(path),
                    });
                }
                Err((_, errno)) => return Err(io_error("cannot lock", path)(errno.into())),
            };
            if !leads_to(path, &current) {
                continue; // replaced or removed since it was opened
            }
            let name = path
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mut new = tempfile::Builder::new()
                .prefix(&format!(".{name}."))
                .suffix(".tmp")
                .permissions(std::fs::Permissions::from_mode(0o644))
                .tempfile_in(dir)
                .map_err(io_error("cannot write", path))?;
            writeln!(new, "{}", std::process::id()).map_err(io_error("cannot write", path))?;
            let handle = new
                .as_file()
                .try_clone()
                .map_err(io_error("cannot write", path))?;
            let lock = Flock::lock(handle, FlockArg::LockExclusiveNonblock)
                .map_err(|(_, errno)| io_error("cannot lock", path)(errno.into()))?;
            new.persist(path)
                .map_err(|error| io_error("cannot write", path)(error.error))?;
            drop(current);
            return Ok(Pidfile {
                path: path.to_path_buf(),
                lock,
            });
        }
        Err(io_error("cannot take", path)(io::Error::other(
            "it keeps being replaced",
        )))
    }
}

impl Drop for Pidfile {
    fn drop(&mut self) {
        if leads_to(&self.path, &self.lock) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Whether `path` leads to the file open as `file`.
fn leads_to(path: &Path, file: &File) -> bool {
    match (std::fs::metadata(path), file.metadata()) {
        (Ok(at_path), Ok(open)) => at_path.dev() == open.dev() && at_path.ino() == open.ino(),
        _ => false,
    }
}

/// The pid a pidfile names, if it names one.
pub(crate) fn read_pid(path: &Path) -> Option<u32> {
    let mut text = String::new();
    File::open(path).ok()?.read_to_string(&mut text).ok()?;
    text.trim().parse().ok().filter(|pid| *pid > 0)
}

/// The server that holds the pidfile at `path`: the pid it names, if that process holds the
/// file locked and open (a process that merely got a dead server's pid has not).
pub(crate) fn holder(path: &Path) -> Result<u32, PidfileError> {
    let file = File::open(path).map_err(|error| match error.kind() {
        io::ErrorKind::NotFound => PidfileError::Missing {
            path: path.to_path_buf(),
        },
        _ => io_error("cannot open", path)(error),
    })?;
    let pid = read_pid(path);
    match Flock::lock(file, FlockArg::LockSharedNonblock) {
        Ok(_unlocked_when_dropped) => Err(PidfileError::Stale {
            path: path.to_path_buf(),
            pid,
        }),
        Err((file, Errno::EWOULDBLOCK)) => {
            let metadata = file.metadata().map_err(io_error("cannot read", path))?;
            match pid {
                Some(pid) if super::proc::has_open(pid, &metadata) => Ok(pid),
                _ => Err(PidfileError::NotHolder {
                    path: path.to_path_buf(),
                    pid,
                }),
            }
        }
        Err((_, errno)) => Err(io_error("cannot lock", path)(errno.into())),
    }
}

/// Sends SIGTERM to the server holding the pidfile at `path` and waits until it is gone (it
/// stops its tenants first), at most `timeout`. Its pid.
pub(crate) fn stop(path: &Path, timeout: Duration) -> Result<u32, PidfileError> {
    let pid = holder(path)?;
    // A pidfd holds on to the process that has the pid now; checked again after it is opened,
    // the signal and the wait are for the server, whatever happens to the pid meanwhile.
    let pidfd = match pidfd_open(pid) {
        Ok(pidfd) => pidfd,
        Err(error) if error.raw_os_error() == Some(nix::libc::ESRCH) => return Ok(pid),
        Err(error) => return Err(io_error("cannot watch the server of", path)(error)),
    };
    if holder(path)? != pid {
        return Err(PidfileError::NotHolder {
            path: path.to_path_buf(),
            pid: Some(pid),
        });
    }
    pidfd_send_signal(&pidfd, nix::sys::signal::Signal::SIGTERM)
        .map_err(io_error("cannot signal the server of", path))?;
    let started = Instant::now();
    loop {
        let left = timeout.saturating_sub(started.elapsed());
        let mut fds = [nix::poll::PollFd::new(
            std::os::fd::AsFd::as_fd(&pidfd),
            nix::poll::PollFlags::POLLIN,
        )];
        let wait = nix::poll::PollTimeout::try_from(left).unwrap_or(nix::poll::PollTimeout::MAX);
        match nix::poll::poll(&mut fds, wait) {
            Ok(0) => {
                return Err(PidfileError::Timeout {
                    pid,
                    waited: timeout,
                });
            }
            Ok(_) => return Ok(pid),
            Err(Errno::EINTR) => continue,
            Err(errno) => {
                return Err(io_error("cannot wait for the server of", path)(
                    errno.into(),
                ));
            }
        }
    }
}

/// A pidfd of process `pid`: it stays the same process whatever becomes of the pid, and
/// becomes readable when that process ends.
fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    let raw = i32::try_from(pid).map_err(|_| io::Error::from_raw_os_error(nix::libc::ESRCH))?;
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, raw, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the syscall returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn pidfd_send_signal(pidfd: &OwnedFd, signal: nix::sys::signal::Signal) -> io::Result<()> {
    // SAFETY: the descriptor is a live pidfd; no siginfo (NULL) and no flags.
    let result = unsafe {
        nix::libc::syscall(
            nix::libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal as nix::libc::c_int,
            std::ptr::null::<nix::libc::siginfo_t>(),
            0,
        )
    };
    if result < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_pidfile_names_this_process_and_refuses_another() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/ten.pid");
        let held = Pidfile::acquire(&path).unwrap();
        assert_eq!(read_pid(&path), Some(std::process::id()));
        assert_eq!(holder(&path).unwrap(), std::process::id());
        // Another open file description of the same path: the lock is on it already.
        match Pidfile::acquire(&path) {
            Err(PidfileError::Held { pid, .. }) => assert_eq!(pid, Some(std::process::id())),
            other => panic!("{other:?}"),
        }
        // Only the file and the lock: no temporary file is left.
        let names: Vec<_> = std::fs::read_dir(dir.path().join("run"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, ["ten.pid"]);
        drop(held);
        assert!(!path.exists());
    }

    #[test]
    fn a_pidfile_nobody_holds_is_stale_and_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ten.pid");
        std::fs::write(&path, "1\n").unwrap();
        // pid 1 runs, but does not hold the file: it is not signalled.
        assert!(matches!(
            holder(&path),
            Err(PidfileError::Stale { pid: Some(1), .. })
        ));
        let held = Pidfile::acquire(&path).unwrap();
        assert_eq!(read_pid(&path), Some(std::process::id()));
        drop(held);
        assert!(matches!(holder(&path), Err(PidfileError::Missing { .. })));
    }

    #[test]
    fn a_locked_pidfile_naming_another_process_is_not_its_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ten.pid");
        let held = Pidfile::acquire(&path).unwrap();
        // The file now names pid 1 (written in place: the lock stays on it).
        std::fs::write(&path, "1\n").unwrap();
        assert!(matches!(
            holder(&path),
            Err(PidfileError::NotHolder { pid: Some(1), .. })
        ));
        drop(held);
    }
}
