//! How the spawner starts a child of ten (`CLONE_PARENT`): sharing the spawner's memory on a
//! stack of its own ([`clone_sharing`], as `posix_spawn` does), or, into a v2 cgroup, forked
//! and created in that cgroup (`clone3` with `CLONE_INTO_CGROUP`, Linux 5.7, [`clone_child`]),
//! so it never has to move there. (glibc's `clone` gives a child its own stack, but has no
//! `clone3` argument for the cgroup; `clone3` itself leaves a child on a new stack with no
//! frame to return to.)
//!
//! Why `clone3` on v2: a process that writes itself into `cgroup.procs` takes the kernel's
//! cgroup thread-group lock for writing, which waits for an RCU grace period when no move
//! happened just before (10 to 25 ms on an idle host); a process created in its cgroup makes
//! no move at all, and the spawner need not wait for it. On v1 (or a kernel without it) the
//! child joins before its exec, as every tenant did before.
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

/// A stack for children that share the spawner's memory ([`clone_sharing`]): mapped once, with
/// a guard page below it, and used by one child at a time (the spawner waits for each).
pub(super) struct ChildStack {
    base: *mut libc::c_void,
    size: usize,
}

impl ChildStack {
    /// What a child's setup needs is a few kilobytes: system calls on prepared memory.
    const SIZE: usize = 256 << 10;
    const GUARD: usize = 4096;

    pub(super) fn new() -> io::Result<ChildStack> {
        let size = Self::SIZE + Self::GUARD;
        // SAFETY: a new private anonymous mapping; nothing else refers to it.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the lowest page of the mapping just made.
        if unsafe { libc::mprotect(base, Self::GUARD, libc::PROT_NONE) } != 0 {
            let error = io::Error::last_os_error();
            // SAFETY: the mapping made above, unused.
            unsafe { libc::munmap(base, size) };
            return Err(error);
        }
        Ok(ChildStack { base, size })
    }

    /// Its top (stacks grow down), 16-byte aligned as the ABI asks.
    fn top(&self) -> *mut libc::c_void {
        ((self.base as usize + self.size) & !15) as *mut libc::c_void
    }
}

impl Drop for ChildStack {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`; no child runs on it once its clone returned.
        unsafe { libc::munmap(self.base, self.size) };
    }
}

/// Starts a child of this process's parent (`CLONE_PARENT`) that shares this process's memory
/// (`CLONE_VM`) and runs `child(arg)` on `stack`; this process is suspended until the child
/// executes a program or exits (`CLONE_VFORK`), as `posix_spawn` does. Nothing of this
/// process's memory is copied for the child, and nothing has to be torn down at its exec:
/// a fork of the spawner copied its page tables and its written pages, which it then faulted
/// in again, and the child's exec unmapped the copy. Returns the child's pid.
///
/// # Safety
///
/// `child` must only make system calls on memory that outlives this call, and end in
/// `execve` or `_exit` (never return into this process's code with its stack); this process
/// must have one thread.
pub(super) unsafe fn clone_sharing(
    stack: &ChildStack,
    child: extern "C" fn(*mut libc::c_void) -> libc::c_int,
    arg: *mut libc::c_void,
) -> io::Result<u32> {
    // SAFETY: the caller's contract; glibc's clone switches the child to `stack` and calls
    // `child` there.
    let pid = unsafe {
        libc::clone(
            child,
            stack.top(),
            libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PARENT | libc::SIGCHLD,
            arg,
        )
    };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(pid as u32)
}
