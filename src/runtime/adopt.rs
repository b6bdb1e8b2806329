//! Adopting a tenant left running by an earlier ten: the same process (pid and start time)
//! is watched through a pidfd, since it is not ten's child and the reaper cannot wait on it.
//!
//! Imports `launch`, `proc` and `reaper`; must not import `process`.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

use tokio::sync::oneshot;

use super::launch::Started;
use super::proc::process_start_time;
use super::reaper::ProcessExit;

#[derive(Debug, thiserror::Error)]
pub enum AdoptError {
    #[error("process {pid} is gone")]
    Gone { pid: u32 },
    #[error("process {pid} is another process now (its start time differs)")]
    Recycled { pid: u32 },
    #[error("cannot watch process {pid}: {source}")]
    Watch { pid: u32, source: io::Error },
}

/// Takes over a running tenant that is not our child (left by a ten that died or was
/// upgraded): checks it is the same process (pid and start time), and reports its exit
/// through a pidfd, which becomes readable when the process ends. The exit status of a
/// process that is not our child cannot be known.
pub(crate) fn adopt_process(pid: u32, start_time: u64) -> Result<Started, AdoptError> {
    let raw_pid = i32::try_from(pid).map_err(|_| AdoptError::Gone { pid })?;
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, raw_pid, 0) };
    if fd < 0 {
        let error = io::Error::last_os_error();
        return Err(match error.raw_os_error() {
            Some(nix::libc::ESRCH) => AdoptError::Gone { pid },
            _ => AdoptError::Watch { pid, source: error },
        });
    }
    // SAFETY: the syscall returned a new descriptor that nothing else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    // Checked after opening: the pidfd holds on to whatever process had the pid, so if that
    // is still the one we recorded, it is the one we watch.
    match process_start_time(pid) {
        Some(actual) if actual == start_time => {}
        Some(_) => return Err(AdoptError::Recycled { pid }),
        None => return Err(AdoptError::Gone { pid }),
    }
    // SAFETY: the AsyncFd owns the OwnedFd, which stays open and the same until it is dropped.
    let watched = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(pidfd, tokio::io::Interest::READABLE)
    }
    .map_err(|error| AdoptError::Watch {
        pid,
        source: error.into(),
    })?;
    let (sender, exit) = oneshot::channel();
    tokio::spawn(async move {
        let _ = watched.readable().await;
        let _ = sender.send(ProcessExit {
            code: None,
            signal: None,
        });
    });
    Ok(Started {
        pid,
        start_time: Some(start_time),
        exit,
    })
}
