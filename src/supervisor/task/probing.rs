//! How an instance's task checks its process: the probe its spec asks for (an HTTP GET over
//! the kept connection, a TCP connect, a command as the instance runs), and what the outcome
//! tells the machine and whoever asked for a check.

use std::sync::Arc;

use crate::config::Listen;
use crate::config::Template;
use crate::config::checks::{Check, TcpPort};
use crate::runtime::{ExecProbe, KeepAlive, Probe, ProbeOutcome, ProbeTarget, Runtime};

use super::super::launch::build_launch;
use super::super::machine::{Input, State};
use super::{Boxed, InstanceTask};

/// The longest a wake's check waits for the process to listen (then it is refused, and the
/// next check waits again).
pub(super) const WAKE_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

impl<R: Runtime> InstanceTask<R> {
    /// The check the spec asks for, of the current process; the future gives that process's
    /// pid back with the outcome.
    pub(super) fn probe_future(&self) -> Boxed<(Option<u32>, ProbeOutcome)> {
        let (target, http_path) = match &self.spec.check {
            Some(Check::Tcp(TcpPort::Own)) => (ProbeTarget::Tcp { port: self.port }, None),
            Some(Check::Tcp(TcpPort::Fixed(port))) => (ProbeTarget::Tcp { port: *port }, None),
            Some(Check::Exec(words)) => (ProbeTarget::Exec(self.exec_probe(words)), None),
            None => {
                let target = match self.spec.listen {
                    Listen::Port | Listen::None => ProbeTarget::Tcp { port: self.port },
                    Listen::Socket => ProbeTarget::Unix {
                        socket: self.spec.socket().to_path_buf(),
                    },
                };
                (target, self.spec.health.clone())
            }
        };
        let probe = Probe {
            target,
            http_path,
            timeout: self.spec.timing.timeout,
            keep: self.machine.pid().map(|pid| KeepAlive {
                connection: self.check_connection.clone(),
                pid,
            }),
            // A request waits for this start: served as soon as the instance listens, not
            // at the next tick of the runtime's timers (about 2 ms later at best). For a
            // while only: a start that does not listen is told as refused, well within both
            // the check's timeout and the start's.
            listening_within: (self.machine.waking
                && matches!(self.machine.state, State::Starting { .. }))
            .then(|| (self.spec.timing.timeout / 2).min(WAKE_WAIT)),
        };
        let shared = Arc::clone(&self.shared);
        let key = self.key.clone();
        let pid = self.machine.pid();
        Box::pin(async move { (pid, shared.runtime.probe(&key, probe).await) })
    }

    /// What a probe found, for the machine and whoever asked for it. A probe that ten could
    /// not run for want of file descriptors is no check of the instance: the machine hears
    /// `ProbeNotRun` (nothing counted), ten a warning event and a metric.
    /// A check of a process that is gone (it ended while a wake's check waited for it to
    /// listen, and another start began) is not counted for the next one either.
    pub(super) fn probed(&mut self, pid: Option<u32>, outcome: ProbeOutcome) -> Input {
        let result = match outcome {
            ProbeOutcome::Done(result) => result,
            ProbeOutcome::TenOutOfDescriptors(error) => {
                crate::metrics::global()
                    .connections()
                    .descriptors_exhausted();
                let message = format!(
                    "ten has no file descriptor left, so it could not check {} ({error}); the check is not counted against the instance: raise ten's open files limit (LimitNOFILE)",
                    self.key
                );
                self.shared
                    .events
                    .warn(Some(&self.key), "descriptors", message.clone(), None);
                for waiter in self.health_waiters.drain(..) {
                    let _ = waiter.send(Err(message.clone()));
                }
                return Input::ProbeNotRun;
            }
        };
        for waiter in self.health_waiters.drain(..) {
            let _ = waiter.send(result.clone());
        }
        if pid != self.machine.pid() {
            return Input::ProbeNotRun;
        }
        Input::ProbeDone(result)
    }

    /// The command check `words`, as the instance runs: its environment and directory (as
    /// its launch has them), user and cgroup (its process's).
    fn exec_probe(&self, words: &[Template]) -> ExecProbe {
        let capture = self.shared.logs.paths(&self.key);
        let launch = build_launch(&self.spec, self.port, &self.shared.base_env, &capture);
        ExecProbe {
            argv: words
                .iter()
                .map(|word| word.resolve_port(self.port))
                .collect(),
            env: launch.env,
            workdir: launch.workdir,
            pid: self.machine.pid(),
            user: self.spec.user.clone(),
        }
    }
}
