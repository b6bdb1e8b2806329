//! The only module that touches processes and the OS process table.
//!
//! `process`: starting tenants, adopting ones left by an earlier ten, signalling process
//! groups; `reaper`: the one place that waits on children; `table`: the on-disk table of live
//! tenant processes; `logs`: capture of tenant output; `probe`: health probes; `ports`: port
//! allocation; `proc`: facts read from /proc.
//!
//! The supervisor talks to the OS only through the [`Runtime`] trait: [`OsRuntime`] is the
//! real one, [`fake::FakeRuntime`] a scriptable one for tests on paused time.

pub mod fake;
pub mod logs;
pub mod ports;
pub mod probe;
pub mod proc;
pub mod process;
pub mod reaper;
pub mod table;

use std::future::Future;
use std::path::PathBuf;

pub use probe::{Probe, ProbeResult, ProbeTarget};
pub use process::{AdoptError, GroupSignal, Launch, SpawnError, Started};
pub use reaper::ProcessExit;

use crate::names::InstanceKey;

/// What the supervisor needs from the OS.
pub trait Runtime: Send + Sync + 'static {
    /// Starts a tenant process.
    fn start(&self, launch: Launch) -> impl Future<Output = Result<Started, SpawnError>> + Send;
    /// Takes over `key`'s process `pid`, left running by an earlier ten, if it is still the
    /// process that started at `start_time`.
    fn adopt(&self, key: &InstanceKey, pid: u32, start_time: u64) -> Result<Started, AdoptError>;
    /// The process `pid` of `key` is gone: forget it (its process table entry).
    fn forget(&self, key: &InstanceKey, pid: u32);
    /// Sends a signal to the tenant's process group.
    fn signal(&self, pid: u32, signal: GroupSignal);
    /// Runs a health probe of `key`.
    fn probe(&self, key: &InstanceKey, probe: Probe) -> impl Future<Output = ProbeResult> + Send;
}

/// The real runtime.
#[derive(Debug, Default, Clone)]
pub struct OsRuntime {
    /// Where live processes are noted (`{data_dir}/.ten/processes`); none in tests that do
    /// not need it.
    pub table: Option<PathBuf>,
}

impl Runtime for OsRuntime {
    async fn start(&self, launch: Launch) -> Result<Started, SpawnError> {
        let table = self.table.clone();
        match tokio::task::spawn_blocking(move || process::start_process(&launch, table.as_deref()))
            .await
        {
            Ok(result) => result,
            Err(join_error) => Err(SpawnError::Exec {
                program: String::new(),
                workdir: Default::default(),
                source: std::io::Error::other(join_error.to_string()),
            }),
        }
    }

    fn adopt(&self, _key: &InstanceKey, pid: u32, start_time: u64) -> Result<Started, AdoptError> {
        process::adopt_process(pid, start_time)
    }

    fn forget(&self, key: &InstanceKey, pid: u32) {
        if let Some(table) = &self.table {
            table::remove_entry(table, key, pid);
        }
    }

    fn signal(&self, pid: u32, signal: GroupSignal) {
        process::signal_group(pid, signal);
    }

    async fn probe(&self, _key: &InstanceKey, probe: Probe) -> ProbeResult {
        probe::run_probe(&probe).await
    }
}
