//! The spawner's fork: a child of ten (`CLONE_PARENT`), started in its v2 cgroup when one is
//! given (`clone3` with `CLONE_INTO_CGROUP`, Linux 5.7), so it never has to move there.
//!
//! Why `clone3` on v2: a process that writes itself into `cgroup.procs` takes the kernel's
//! cgroup thread-group lock for writing, which waits for an RCU grace period when no move
//! happened just before (10 to 25 ms on an idle host); a process created in its cgroup makes
//! no move at all. On v1 (or a kernel without it) the child joins between fork and exec, as
//! every tenant did before.
//!
//! Imports nothing of ten's.

use std::io;
use std::os::fd::RawFd;

use nix::libc;

/// `CLONE_INTO_CGROUP` (linux/sched.h; not in every libc).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// The kernel's `struct clone_args` (linux/sched.h), up to `cgroup` (`CLONE_ARGS_SIZE_VER2`).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// Which side of the fork this is, and whether the child started in its cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Clone {
    Parent { pid: u32, in_cgroup: bool },
    Child { in_cgroup: bool },
}

/// Forks a child of this process's parent, into the v2 cgroup `cgroup` (an open directory)
/// if given and the kernel can; without it the child must join its cgroup itself.
///
/// # Safety
///
/// As `fork`: in a multi-threaded process the child may only make async-signal-safe calls.
pub(super) unsafe fn clone_child(cgroup: Option<RawFd>) -> io::Result<Clone> {
    if let Some(fd) = cgroup {
        let args = CloneArgs {
            flags: libc::CLONE_PARENT as u64 | CLONE_INTO_CGROUP,
            // With CLONE_PARENT the kernel gives the child the exit signal of this process
            // (SIGCHLD, as ten started it), and clone3 refuses any other (EINVAL).
            exit_signal: 0,
            cgroup: fd as u64,
            ..CloneArgs::default()
        };
        // SAFETY: clone3 with no new stack copies this process as fork does; the caller keeps
        // the child to async-signal-safe calls.
        let pid = unsafe {
            libc::syscall(
                libc::SYS_clone3,
                &args as *const CloneArgs,
                std::mem::size_of::<CloneArgs>(),
            )
        };
        match pid {
            0 => return Ok(Clone::Child { in_cgroup: true }),
            pid if pid > 0 => {
                return Ok(Clone::Parent {
                    pid: pid as u32,
                    in_cgroup: true,
                });
            }
            _ => {
                let error = io::Error::last_os_error();
                // An older kernel: no clone3 (ENOSYS), a smaller struct (E2BIG) or no
                // CLONE_INTO_CGROUP (EINVAL). Fork as before; the child joins itself.
                if !matches!(
                    error.raw_os_error(),
                    Some(libc::ENOSYS | libc::E2BIG | libc::EINVAL)
                ) {
                    return Err(error);
                }
            }
        }
    }
    // SAFETY: as above, with the older system call.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            libc::CLONE_PARENT | libc::SIGCHLD,
            0,
            0,
            0,
            0,
        )
    };
    match pid {
        0 => Ok(Clone::Child { in_cgroup: false }),
        pid if pid > 0 => Ok(Clone::Parent {
            pid: pid as u32,
            in_cgroup: false,
        }),
        _ => Err(io::Error::last_os_error()),
    }
}
