//! The reaper: one thread per process reaps every child (`waitid` on all of them), handing exit
//! statuses to whoever registered the pid. ten is a child subreaper, so orphans of tenants
//! are reparented to it and reaped here too.
//!
//! Invariant: nothing else in ten waits on children (no `std::process::Child::wait`,
//! `Command::status` or `output`, no `tokio::process`): every child is started through
//! [`Reaper::spawn`], helper commands ten runs to their end (`runsc delete`) through
//! [`run_helper`]. Spawning holds the reaper's lock, and the reaper reaps under it (it learns
//! of an exit with `WNOWAIT` first): a child that exits at once is not reaped before its owner
//! is known, and a child whose exec failed is left to `Command::spawn`, which reaps it itself.
//! A child made by another process (a spawner's) is registered without the lock
//! ([`Reaper::spawn_claimed`]): an exit reaped while such a start is under way is kept until
//! the start that gets its pid takes it, if it was reaped after that start began.
//! The reaper is a thread blocked in `waitid`, not a signal handler: it needs no runtime and
//! costs nothing while no child exits.

use std::collections::HashMap;
use std::io;
use std::process::{Child, Command};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};

use nix::errno::Errno;
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid, waitpid};
use tokio::sync::oneshot;

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessExit {
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

impl ProcessExit {
    /// Exited by itself with code 0.
    pub fn is_clean(&self) -> bool {
        self.code == Some(0) && self.signal.is_none()
    }
}

#[derive(Default)]
struct Waiters {
    waiting: HashMap<u32, oneshot::Sender<ProcessExit>>,
    /// Children spawned and not reaped yet; the thread sleeps while there are none.
    live: usize,
    /// Starts under way without the lock ([`Reaper::spawn_claimed`]): while there are any, an
    /// exit nobody waits for may be theirs, and is kept for them.
    claiming: usize,
    /// Exits reaped so far: a start takes a kept exit only if it was reaped after the start
    /// began (an older one was another process's that had the same pid).
    reaped: u64,
    /// Exits reaped while starts were under way, by pid, with the count of exits reaped when
    /// each was, until their start claims them (or the last start under way ends: then they
    /// were orphans', or of children whose start failed).
    unclaimed: HashMap<u32, (u64, ProcessExit)>,
}

pub(crate) struct Reaper {
    waiters: Mutex<Waiters>,
    children_exist: Condvar,
}

static REAPER: OnceLock<Reaper> = OnceLock::new();

impl Reaper {
    /// The reaper of this process, started on first use.
    pub(crate) fn global() -> &'static Reaper {
        REAPER.get_or_init(|| {
            std::thread::Builder::new()
                .name("ten-reaper".into())
                .spawn(|| Reaper::global().run())
                .expect("start the reaper thread");
            Reaper {
                waiters: Mutex::default(),
                children_exist: Condvar::new(),
            }
        })
    }

    /// Makes this process a child subreaper: orphans of its children become its children.
    pub(crate) fn become_subreaper() {
        if let Err(error) = nix::sys::prctl::set_child_subreaper(true) {
            tracing::warn!(%error, "cannot become a child subreaper; orphans of tenants will be reaped by init");
        }
    }

    fn lock(&self) -> MutexGuard<'_, Waiters> {
        self.waiters
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Spawns `command` and registers its pid; the receiver gets its exit status.
    /// A blocking call (fork/exec): async callers run it on a blocking thread.
    pub(crate) fn spawn(
        &self,
        command: &mut Command,
    ) -> io::Result<(Child, oneshot::Receiver<ProcessExit>)> {
        let mut child = None;
        let (_, receiver) = self.spawn_with(|| {
            let spawned = command.spawn()?;
            let pid = spawned.id();
            child = Some(spawned);
            io::Result::Ok(pid)
        })?;
        Ok((child.expect("spawned"), receiver))
    }

    /// Registers the child that `start` makes (a child of this process, by whatever means:
    /// the spawner's) and returns its pid; the receiver gets its exit status. `start` runs
    /// under the reaper's lock, so the child is not reaped before it is registered; a child
    /// it makes and gives up on, it reaps itself. Blocking.
    pub(crate) fn spawn_with<E>(
        &self,
        start: impl FnOnce() -> Result<u32, E>,
    ) -> Result<(u32, oneshot::Receiver<ProcessExit>), E> {
        let mut waiters = self.lock();
        let pid = start()?;
        let (sender, receiver) = oneshot::channel();
        waiters.waiting.insert(pid, sender);
        waiters.live += 1;
        self.children_exist.notify_one();
        Ok((pid, receiver))
    }

    /// Registers the child that `start` makes, as [`Reaper::spawn_with`], without holding the
    /// reaper's lock while `start` runs: for a start that waits on another process (the
    /// spawner), so that starts through several spawners do not wait for each other. An exit
    /// reaped meanwhile is kept until its start claims it. Only for children whose exec
    /// `Command::spawn` does not reap itself.
    pub(crate) fn spawn_claimed<E>(
        &self,
        start: impl FnOnce() -> Result<u32, E>,
    ) -> Result<(u32, oneshot::Receiver<ProcessExit>), E> {
        let began = {
            let mut waiters = self.lock();
            waiters.claiming += 1;
            waiters.reaped
        };
        // The claim ends however `start` does (a panic included).
        struct Claim<'a>(&'a Reaper);
        impl Drop for Claim<'_> {
            fn drop(&mut self) {
                let mut waiters = self.0.lock();
                waiters.claiming -= 1;
                if waiters.claiming == 0 {
                    waiters.unclaimed.clear();
                }
            }
        }
        let claim = Claim(self);
        let started = start();
        let mut waiters = self.lock();
        let registered = started.map(|pid| {
            let (sender, receiver) = oneshot::channel();
            match waiters.unclaimed.remove(&pid) {
                Some((when, exit)) if when > began => {
                    let _ = sender.send(exit);
                }
                _ => {
                    waiters.waiting.insert(pid, sender);
                    waiters.live += 1;
                    self.children_exist.notify_one();
                }
            }
            (pid, receiver)
        });
        drop(waiters);
        drop(claim);
        registered
    }

    fn run(&self) {
        loop {
            let idle = {
                let waiters = self.lock();
                if waiters.live == 0 {
                    // Sleep until a child is spawned; now and then, sweep up orphans that
                    // outlived their tenant.
                    let (waiters, _) = self
                        .children_exist
                        .wait_timeout(waiters, std::time::Duration::from_secs(1))
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                    waiters.live == 0
                } else {
                    false
                }
            };
            // Learn which child exited without reaping it yet (WNOWAIT), then reap it under
            // the lock: a spawn in progress holds the lock, and `Command::spawn` reaps a child
            // whose exec failed itself (and panics if it was reaped elsewhere first).
            let mut flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT;
            if idle {
                flags |= WaitPidFlag::WNOHANG;
            }
            let exited = match waitid(Id::All, flags) {
                Ok(WaitStatus::StillAlive) => continue,
                Ok(status) => status.pid(),
                Err(Errno::EINTR) => continue,
                Err(Errno::ECHILD) if idle => continue,
                Err(Errno::ECHILD) => {
                    // Our registered children are gone without a status we saw (cannot happen
                    // unless someone else waited on them): forget them rather than spin.
                    let mut waiters = self.lock();
                    tracing::warn!(
                        lost = waiters.waiting.len(),
                        "children were reaped elsewhere"
                    );
                    waiters.waiting.clear();
                    waiters.live = 0;
                    continue;
                }
                Err(error) => {
                    tracing::warn!(%error, "waitid failed");
                    std::thread::sleep(std::time::Duration::from_millis(100));
                    continue;
                }
            };
            let Some(exited) = exited else { continue };
            let mut waiters = self.lock();
            let status = match waitpid(exited, Some(WaitPidFlag::WNOHANG)) {
                Ok(status) => status,
                // A failed spawn reaped it while we waited for the lock.
                Err(_) => continue,
            };
            let (pid, exit) = match status {
                WaitStatus::Exited(pid, code) => (
                    pid,
                    ProcessExit {
                        code: Some(code),
                        signal: None,
                    },
                ),
                WaitStatus::Signaled(pid, signal, _) => (
                    pid,
                    ProcessExit {
                        code: None,
                        signal: Some(signal as i32),
                    },
                ),
                _ => continue,
            };
            let pid = pid.as_raw() as u32;
            waiters.reaped += 1;
            let waiter = waiters.waiting.remove(&pid);
            if waiter.is_some() {
                waiters.live -= 1;
            } else if waiters.claiming > 0 {
                let reaped = waiters.reaped;
                waiters.unclaimed.insert(pid, (reaped, exit));
            }
            drop(waiters);
            match waiter {
                Some(waiter) => {
                    tracing::debug!(pid, ?exit, "child exited");
                    let _ = waiter.send(exit);
                }
                None => tracing::debug!(pid, ?exit, "reaped an orphan"),
            }
        }
    }
}

/// Runs a helper command ten needs (`runsc delete`) to its end and returns how it ended,
/// through the reaper like any child: a `Command::status()` would race the reaper's
/// `waitpid(-1)` for the status while tenants live. Blocking: call it on a blocking thread,
/// never on the async runtime.
pub(crate) fn run_helper(command: &mut Command) -> io::Result<ProcessExit> {
    let (_child, exit) = Reaper::global().spawn(command)?;
    exit.blocking_recv()
        .map_err(|_| io::Error::other("the reaper lost the exit status"))
}

#[cfg(test)]
mod tests {
    use nix::unistd::Pid;

    use super::*;

    #[tokio::test]
    async fn an_exit_reaped_before_its_start_claimed_it_reaches_its_owner() {
        let reaper = Reaper::global();
        // A live child keeps the reaper reaping (it sleeps while it has none).
        let (keeper, keeper_exit) = reaper.spawn(Command::new("sleep").arg("30")).unwrap();
        let (pid, exit) = reaper
            .spawn_claimed(|| {
                // Started outside the reaper, as the spawner starts a child of ten's; it
                // exits, and is reaped, before it is claimed.
                let child = Command::new("sh").args(["-c", "exit 3"]).spawn()?;
                let pid = child.id();
                std::mem::forget(child);
                // Until the reaper reaped it (a zombie still has its /proc entry).
                let proc = std::path::PathBuf::from(format!("/proc/{pid}"));
                for _ in 0..500 {
                    if !proc.exists() {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                assert!(!proc.exists(), "{pid} was not reaped while unclaimed");
                io::Result::Ok(pid)
            })
            .unwrap();
        assert!(pid > 0);
        let exit = tokio::time::timeout(std::time::Duration::from_secs(10), exit)
            .await
            .expect("the exit reaped before the claim is kept for it");
        assert_eq!(
            exit.unwrap(),
            ProcessExit {
                code: Some(3),
                signal: None
            }
        );
        nix::sys::signal::kill(
            Pid::from_raw(keeper.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        keeper_exit.await.unwrap();
    }

    #[test]
    fn a_kept_exit_reaped_before_a_start_began_is_not_that_starts() {
        // A reaper of its own, no thread: what a claim takes is decided under the lock.
        let reaper = Reaper {
            waiters: Mutex::default(),
            children_exist: Condvar::new(),
        };
        let old = ProcessExit {
            code: Some(9),
            signal: None,
        };
        {
            let mut waiters = reaper.lock();
            waiters.claiming = 1;
            waiters.reaped = 5;
            // Reaped as the 5th, while another start was under way: an orphan with pid 4242.
            waiters.unclaimed.insert(4242, (5, old));
        }
        // A start that began after it gets pid 4242 again: the old exit is not its own.
        let (pid, mut exit) = reaper.spawn_claimed(|| io::Result::Ok(4242)).unwrap();
        assert_eq!(pid, 4242);
        assert!(exit.try_recv().is_err(), "the old exit was handed over");
        let waiters = reaper.lock();
        assert!(waiters.waiting.contains_key(&4242));
        assert_eq!(waiters.claiming, 1, "only the claim it made is ended");
        // One reaped after the start began is its own.
        drop(waiters);
        let (_, mut exit) = reaper
            .spawn_claimed(|| {
                let mut waiters = reaper.lock();
                waiters.reaped += 1;
                let reaped = waiters.reaped;
                waiters.unclaimed.insert(4343, (reaped, old));
                io::Result::Ok(4343)
            })
            .unwrap();
        assert_eq!(exit.try_recv().unwrap(), old);
    }

    #[tokio::test]
    async fn exit_statuses_reach_their_owner() {
        let reaper = Reaper::global();
        let (_child, exit) = reaper
            .spawn(Command::new("sh").args(["-c", "exit 7"]))
            .unwrap();
        assert_eq!(
            exit.await.unwrap(),
            ProcessExit {
                code: Some(7),
                signal: None
            }
        );
        let (child, exit) = reaper.spawn(Command::new("sleep").arg("30")).unwrap();
        nix::sys::signal::kill(
            Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        assert_eq!(
            exit.await.unwrap(),
            ProcessExit {
                code: None,
                signal: Some(9)
            }
        );
    }

    #[test]
    fn a_child_that_exits_at_once_is_not_lost() {
        let reaper = Reaper::global();
        for _ in 0..50 {
            let (_child, exit) = reaper.spawn(&mut Command::new("true")).unwrap();
            assert!(exit.blocking_recv().unwrap().is_clean());
        }
    }

    /// Kills a process when dropped, so a failing test leaves none behind.
    struct KillOnDrop(u32);

    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = nix::sys::signal::kill(
                Pid::from_raw(self.0 as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }

    /// While a tenant lives the reaper is blocked in `waitpid(-1)`: a helper command (runsc
    /// delete) run then must still get its own exit status, every time.
    #[test]
    fn a_helper_run_while_a_child_lives_gets_its_own_exit_status() {
        let reaper = Reaper::global();
        let (tenant, tenant_exit) = reaper.spawn(Command::new("sleep").arg("1000")).unwrap();
        let tenant = KillOnDrop(tenant.id());
        for round in 1..=20 {
            let exit = run_helper(Command::new("sh").args(["-c", "exit 3"]));
            assert!(
                matches!(
                    exit,
                    Ok(ProcessExit {
                        code: Some(3),
                        signal: None
                    })
                ),
                "round {round}: {exit:?}"
            );
        }
        drop(tenant);
        assert_eq!(tenant_exit.blocking_recv().unwrap().signal, Some(9));
    }

    /// `Command::spawn` (fork and exec) waits itself for a child whose exec failed: the reaper
    /// must not reap that child first, or the spawning thread panics.
    #[test]
    fn a_program_that_cannot_start_is_an_error_while_children_live() {
        let reaper = Reaper::global();
        let (tenant, tenant_exit) = reaper.spawn(Command::new("sleep").arg("1000")).unwrap();
        let tenant = KillOnDrop(tenant.id());
        for round in 1..=200 {
            let mut command = Command::new("/nonexistent/ten-test-program");
            // As tenants are spawned (they join their cgroup before exec): fork and exec,
            // where std waits for a failed child itself (posix_spawn's C library does too,
            // but tolerates losing it).
            // SAFETY: does nothing between fork and exec.
            unsafe {
                std::os::unix::process::CommandExt::pre_exec(&mut command, || Ok(()));
            }
            let spawned = reaper.spawn(&mut command);
            assert!(
                matches!(&spawned, Err(error) if error.kind() == io::ErrorKind::NotFound),
                "round {round}: {:?}",
                spawned.map(|(child, _)| child.id())
            );
        }
        drop(tenant);
        assert_eq!(tenant_exit.blocking_recv().unwrap().signal, Some(9));
    }
}
