//! Signals to a tenant's process group: a stop signal from its config, or SIGKILL.
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
