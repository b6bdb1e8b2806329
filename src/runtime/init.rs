//! The init of `isolation = "namespace"`: ten runs itself as `ten __init -- PROGRAM ARGS...`
//! (the way `unshare --fork --pid --mount-proc` works, plus a tini-style init), so the tenant
//! gets a PID namespace of its own with a working init and a private /proc:
//!
//! ```text
//! ten ─ shim (host pid, the process ten supervises)      unshare(PID | mount namespace)
//!         └─ init (PID 1 inside)                          private mounts, fresh /proc,
//!              └─ tenant (PID 2, its own session)         reaps orphans, forwards signals
//! ```
//!
//! `unshare(CLONE_NEWPID)` alone in the tenant's pre-exec is the known trap: the caller stays
//! outside, its first child becomes PID 1 and when that one exits no process can fork any
//! more. Here the tenant is never PID 1: the init is, and a PID 1 without signal handlers
//! ignores SIGTERM, so the init forwards every stop signal to the tenant's process group.
//!
//! ten signals the shim's process group, which holds the shim and the init (the tenant has
//! its own session): the shim ignores stop signals, the init forwards them once. SIGKILL
//! ends the shim and the init, and with the init the whole namespace (the kernel kills
//! every process of a PID namespace whose init dies). The init also dies with the shim
//! (parent-death signal). The shim exits the way the tenant did: with its exit code, or by
//! the same signal, so ten reports the tenant's own exit.
//!
//! Runs before anything else in the binary (no runtime, no threads): fork is safe here.

use std::convert::Infallible;
use std::ffi::{CString, OsString};
use std::io::Write as _;
use std::os::unix::ffi::OsStringExt;

use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};
use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal, kill, signal, sigprocmask};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, execvp, fork, getppid, read, setsid, write};

/// The signals the init passes on to the tenant.
const FORWARDED: [Signal; 8] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
    Signal::SIGCONT,
];

/// The hidden subcommand that runs [`main`].
pub(crate) const SUBCOMMAND: &str = "__init";

/// Exit code when the namespace cannot be set up or the program cannot run.
const SETUP_FAILED: i32 = 127;

fn fail(what: &str, error: impl std::fmt::Display) -> ! {
    // Not `eprintln!`, which panics when stderr is gone.
    let _ = writeln!(std::io::stderr(), "ten init: {what}: {error}");
    std::process::exit(SETUP_FAILED)
}

/// `ten __init [--uid=N --gid=N] -- PROGRAM [ARGS...]`: the arguments after `__init`.
pub(crate) fn main(args: Vec<OsString>) -> ! {
    let mut user = (None, None);
    let mut rest = args.into_iter();
    for arg in rest.by_ref() {
        let text = arg.to_string_lossy();
        if text == "--" {
            break;
        }
        match text.split_once('=') {
            Some(("--uid", value)) => user.0 = value.parse::<u32>().ok(),
            Some(("--gid", value)) => user.1 = value.parse::<u32>().ok(),
            _ => fail("usage", "ten __init [--uid=N --gid=N] -- PROGRAM [ARGS...]"),
        }
    }
    run(rest.collect(), user.0.zip(user.1))
}

/// The shim: sets up the namespaces, starts the init, and exits as the tenant did. The
/// tenant runs as `user` (uid, gid) when given.
fn run(argv: Vec<OsString>, user: Option<(u32, u32)>) -> ! {
    if argv.is_empty() {
        fail("usage", "ten __init -- PROGRAM [ARGS...]");
    }
    let argv: Vec<CString> = argv
        .into_iter()
        .map(|arg| CString::new(arg.into_vec()).unwrap_or_else(|error| fail("argument", error)))
        .collect();
    if let Err(error) = unshare(CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNS) {
        fail(
            "cannot create the PID and mount namespaces (ten must run as root)",
            error,
        );
    }
    let (status_read, status_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .unwrap_or_else(|error| fail("pipe", error));
    // The shim lets stop signals reach the init (same process group) and waits.
    for forwarded in FORWARDED {
        if forwarded != Signal::SIGCONT {
            // SAFETY: installing SIG_IGN runs no code of ours in a handler.
            let _ = unsafe { signal(forwarded, SigHandler::SigIgn) };
        }
    }
    // SAFETY: single-threaded (nothing else runs before this in the binary).
    let init = match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            drop(status_read);
            init(&argv, user, status_write)
        }
        Ok(ForkResult::Parent { child }) => child,
        Err(error) => fail("cannot start the init", error),
    };
    drop(status_write);
    let init_status = loop {
        match waitpid(init, None) {
            Ok(status) => break status,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(error) => fail("wait for the init", error),
        }
    };
    let mut report = [0u8; 8];
    let tenant = match read(&status_read, &mut report) {
        Ok(8) => decode(report),
        // The init died before the tenant ended (SIGKILL): report that.
        _ => match init_status {
            WaitStatus::Signaled(_, signal, _) => Ended::Signal(signal as i32),
            WaitStatus::Exited(_, code) => Ended::Code(code),
            _ => Ended::Code(SETUP_FAILED),
        },
    };
    exit_as(tenant)
}

/// How the tenant ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    Code(i32),
    Signal(i32),
}

fn encode(ended: Ended) -> [u8; 8] {
    let (kind, value) = match ended {
        Ended::Code(code) => (0i32, code),
        Ended::Signal(signal) => (1, signal),
    };
    let mut bytes = [0u8; 8];
    bytes[..4].copy_from_slice(&kind.to_le_bytes());
    bytes[4..].copy_from_slice(&value.to_le_bytes());
    bytes
}

fn decode(bytes: [u8; 8]) -> Ended {
    let kind = i32::from_le_bytes(bytes[..4].try_into().unwrap_or_default());
    let value = i32::from_le_bytes(bytes[4..].try_into().unwrap_or_default());
    if kind == 1 {
        Ended::Signal(value)
    } else {
        Ended::Code(value)
    }
}

/// Exits with the tenant's code, or dies of the tenant's signal.
fn exit_as(ended: Ended) -> ! {
    match ended {
        Ended::Code(code) => std::process::exit(code),
        Ended::Signal(number) => {
            if let Ok(signal) = Signal::try_from(number) {
                // SAFETY: restoring the default action runs no code of ours.
                let _ = unsafe { nix::sys::signal::signal(signal, SigHandler::SigDfl) };
                let mut set = SigSet::empty();
                set.add(signal);
                let _ = sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&set), None);
                let _ = kill(Pid::this(), signal);
            }
            std::process::exit(128 + number)
        }
    }
}

/// PID 1 of the new namespace: mounts a private /proc, starts the tenant, reaps, forwards.
fn init(argv: &[CString], user: Option<(u32, u32)>, status: std::os::fd::OwnedFd) -> ! {
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    // The shim ignores stop signals; the init takes them (blocked and waited for below).
    for forwarded in FORWARDED {
        // SAFETY: restoring the default action runs no code of ours.
        let _ = unsafe { signal(forwarded, SigHandler::SigDfl) };
    }
    if getppid() == Pid::from_raw(1) {
        // The shim is already gone.
        std::process::exit(SETUP_FAILED);
    }
    if let Err(error) = mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    ) {
        fail("cannot make the mounts private", error);
    }
    if let Err(error) = mount(
        Some("proc"),
        "/proc",
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    ) {
        fail("cannot mount /proc", error);
    }
    // Signals are taken synchronously: blocked here, waited for below.
    let mut handled = SigSet::empty();
    handled.add(Signal::SIGCHLD);
    for forwarded in FORWARDED {
        handled.add(forwarded);
    }
    let mut previous = SigSet::empty();
    if let Err(error) = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&handled), Some(&mut previous)) {
        fail("cannot block signals", error);
    }
    // SAFETY: still single-threaded.
    let tenant = match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&previous), None);
            for forwarded in FORWARDED {
                // SAFETY: restoring the default action runs no code of ours.
                let _ = unsafe { signal(forwarded, SigHandler::SigDfl) };
            }
            let _ = setsid();
            if let Some((uid, gid)) = user {
                let switched = nix::unistd::setgroups(&[])
                    .and_then(|()| nix::unistd::setgid(nix::unistd::Gid::from_raw(gid)))
                    .and_then(|()| nix::unistd::setuid(nix::unistd::Uid::from_raw(uid)));
                if let Err(error) = switched {
                    fail(&format!("cannot become user {uid}"), error);
                }
            }
            let error: Result<Infallible, _> = execvp(&argv[0], argv);
            let program = argv[0].to_string_lossy();
            match error {
                Err(error) => fail(&format!("cannot run {program}"), error),
                Ok(never) => match never {},
            }
        }
        Ok(ForkResult::Parent { child }) => child,
        Err(error) => fail("cannot start the tenant", error),
    };
    loop {
        let Ok(signal) = handled.wait() else { continue };
        if signal != Signal::SIGCHLD {
            // To the tenant's whole process group (its session leader's group).
            let _ = kill(Pid::from_raw(-tenant.as_raw()), signal);
            continue;
        }
        // Reap every child that ended: the tenant, and orphans re-parented to us.
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) if pid == tenant => {
                    report(&status, Ended::Code(code))
                }
                Ok(WaitStatus::Signaled(pid, signal, _)) if pid == tenant => {
                    report(&status, Ended::Signal(signal as i32))
                }
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => continue,
            }
        }
    }
}

/// Tells the shim how the tenant ended and ends the namespace (the kernel kills whatever is
/// left in it when its init exits).
fn report(status: &std::os::fd::OwnedFd, ended: Ended) -> ! {
    let _ = write(status, &encode(ended));
    std::process::exit(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tenants_end_crosses_the_pipe_intact() {
        for ended in [
            Ended::Code(0),
            Ended::Code(3),
            Ended::Signal(15),
            Ended::Signal(9),
        ] {
            assert_eq!(decode(encode(ended)), ended);
        }
    }
}
