//! The only module that touches processes and the OS process table.
//!
//! `process`: starting tenants, adopting ones left by an earlier ten, signalling process
//! groups; `adopt`: taking over a process left by an earlier ten; `signal`: signals to a
//! process group; `launch`: what a start is asked for and gives; `spare`: processes started ahead, waiting in
//! their cgroup to become a tenant; `cgroup`: limits and membership; `init`: the PID 1 of
//! `namespace` tenants; `sandbox`: gVisor for `sandbox` tenants; `spawner`: the process that
//! forks tenants and command checks so ten is not forked; `reaper`: the one place
//! that waits on children; `table`: the on-disk table of live tenant processes; `logs`:
//! capture of tenant output; `probe`: health probes; `storage`: disk usage; `ports`: port
//! allocation; `proc`: facts read from /proc; `daemon`: detaching `ten serve --daemon`;
//! `pidfile`: its locked pidfile, and stopping the server that holds one; `os`: [`OsRuntime`],
//! with its spares, and what it measures of a process. No file that `process` uses imports
//! `process` back.
//!
//! The supervisor talks to the OS only through the [`Runtime`] trait: [`OsRuntime`] is the
//! real one, [`fake::FakeRuntime`] a scriptable one for tests on paused time.

pub(crate) mod adopt;
pub(crate) mod allocator;
pub(crate) mod cgroup;
pub(crate) mod daemon;
pub mod durable;
pub(crate) mod exec_probe;
#[cfg(test)]
pub(crate) mod fake;
pub(crate) mod init;
pub(crate) mod launch;
pub mod logs;
pub mod memory;
mod os;
pub(crate) mod pidfile;
pub(crate) mod ports;
pub(crate) mod probe;
pub mod proc;
pub(crate) mod process;
pub(crate) mod reaper;
pub(crate) mod sandbox;
pub(crate) mod signal;
pub(crate) mod spare;
pub(crate) mod spawner;
pub(crate) mod storage;
pub mod table;

use std::future::Future;
use std::path::PathBuf;

pub use adopt::AdoptError;
pub use launch::{Launch, Started};
pub use os::OsRuntime;
pub use probe::{
    CheckConnection, ExecProbe, KeepAlive, Probe, ProbeOutcome, ProbeResult, ProbeTarget,
};
pub use process::{SpawnEnv, SpawnError};
pub use reaper::ProcessExit;
pub use signal::GroupSignal;

use crate::names::InstanceKey;
use crate::observed::Usage;

/// What the supervisor needs from the OS.
pub trait Runtime: Send + Sync + 'static {
    /// Starts a tenant process.
    fn start(&self, launch: Launch) -> impl Future<Output = Result<Started, SpawnError>> + Send;
    /// Takes over `key`'s process `pid`, left running by an earlier ten, if it is still the
    /// process that started at `start_time`; `name` is its cgroup and sandbox, if any.
    fn adopt(
        &self,
        key: &InstanceKey,
        pid: u32,
        start_time: u64,
        name: Option<&str>,
        sandboxed: bool,
    ) -> Result<Started, AdoptError>;
    /// The process `pid` of `key` has ended: kill whatever is left of it (its cgroup), and
    /// forget it (cgroup, sandbox, process table entry).
    fn forget(&self, key: &InstanceKey, pid: u32);
    /// Sends a signal to the tenant's process group; SIGKILL also to its whole cgroup.
    fn signal(&self, pid: u32, signal: GroupSignal);
    /// Whether the kernel killed a process of `pid`'s cgroup for exceeding its memory limit
    /// (asked when it has ended, before [`Runtime::forget`]).
    fn out_of_memory(&self, pid: u32) -> bool;
    /// Runs a health probe of `key`.
    fn probe(&self, key: &InstanceKey, probe: Probe) -> impl Future<Output = ProbeOutcome> + Send;
    /// What the process `pid` (and everything it started) uses, and, when `data_dir` is
    /// given, the size of that directory (a walk of the tree).
    fn usage(&self, pid: u32, data_dir: Option<PathBuf>) -> impl Future<Output = Usage> + Send;
    /// The memory files of the cgroup every tenant is under (with cgroups only): what they
    /// use together, in one read.
    fn tenants_memory(&self) -> Option<memory::MemoryFiles> {
        None
    }
    /// [`Runtime::usage`] of each of `wanted` (a process and the data directory to measure),
    /// in order: what `ten ps` asks for many instances at once.
    fn usages(
        &self,
        wanted: Vec<(u32, Option<PathBuf>)>,
    ) -> impl Future<Output = Vec<Usage>> + Send {
        async move {
            let mut measured = Vec::with_capacity(wanted.len());
            for (pid, data_dir) in wanted {
                measured.push(self.usage(pid, data_dir).await);
            }
            measured
        }
    }
}
