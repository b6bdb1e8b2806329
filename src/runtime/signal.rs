//! Signals to a tenant's process group: a stop signal from its config, or SIGKILL; and the
//! signals a tenant starts with (every one at its default).
//!
//! Imports nothing else of `runtime`.

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::config::StopSignal;

/// A signal for a tenant's process group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupSignal {
    Stop(StopSignal),
    Kill,
}

pub(crate) fn nix_signal(signal: GroupSignal) -> Signal {
    match signal {
        GroupSignal::Kill => Signal::SIGKILL,
        GroupSignal::Stop(stop) => match stop {
            StopSignal::Term => Signal::SIGTERM,
            StopSignal::Int => Signal::SIGINT,
            StopSignal::Quit => Signal::SIGQUIT,
            StopSignal::Hup => Signal::SIGHUP,
            StopSignal::Kill => Signal::SIGKILL,
            StopSignal::Usr1 => Signal::SIGUSR1,
            StopSignal::Usr2 => Signal::SIGUSR2,
            StopSignal::Winch => Signal::SIGWINCH,
        },
    }
}

/// Sends `signal` to the process group led by `pid`. A group that is already gone is fine.
pub(crate) fn signal_group(pid: u32, signal: GroupSignal) {
    let Ok(raw) = i32::try_from(pid) else { return };
    match killpg(Pid::from_raw(raw), nix_signal(signal)) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
        Err(error) => tracing::warn!(pid, %error, ?signal, "cannot signal process group"),
    }
}

/// SIGKILL to `pid` and to the group it leads, if it leads one: for a process that may not
/// have made its group yet.
pub(crate) fn kill_now(pid: u32) {
    let Ok(raw) = i32::try_from(pid) else { return };
    let _ = nix::sys::signal::kill(Pid::from_raw(raw), Signal::SIGKILL);
    let _ = killpg(Pid::from_raw(raw), Signal::SIGKILL);
}

/// Puts every signal back to its default action and unblocks them all, so that a program
/// starts as from a fresh login whatever ten inherited: `ten serve &` in a script starts ten
/// with SIGINT and SIGQUIT ignored, `nohup` with SIGHUP, every Rust program ignores SIGPIPE,
/// and `posix_spawn` leaves the C library's two internal signals ignored; an ignored signal
/// stays ignored across exec (a caught one does not). With the raw system calls, which reset
/// the C library's signals too. System calls only: for use between fork and exec, in the
/// spawner's children, `process`'s forks, and a spare before it becomes a tenant.
pub(crate) fn default_signals() {
    // The kernel's `struct sigaction` with every field zero: SIG_DFL, no flags, no mask.
    let default = [0u64; 4];
    let unblocked: u64 = 0;
    // The kernel's signal sets are 64 bits.
    const SET_SIZE: usize = 8;
    for signal in 1..=64 {
        if signal == nix::libc::SIGKILL || signal == nix::libc::SIGSTOP {
            continue;
        }
        // SAFETY: rt_sigaction reads the zeroed action; a signal it refuses is left as it is.
        unsafe {
            nix::libc::syscall(
                nix::libc::SYS_rt_sigaction,
                signal,
                default.as_ptr(),
                std::ptr::null_mut::<u64>(),
                SET_SIZE,
            );
        }
    }
    // SAFETY: rt_sigprocmask reads the empty set.
    unsafe {
        nix::libc::syscall(
            nix::libc::SYS_rt_sigprocmask,
            nix::libc::SIG_SETMASK,
            &raw const unblocked,
            std::ptr::null_mut::<u64>(),
            SET_SIZE,
        );
    }
}
