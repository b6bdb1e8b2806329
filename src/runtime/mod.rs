//! The only module that touches processes and the OS process table.
//!
//! `process`: starting tenants and signalling their process groups; `reaper`: the one place
//! that waits on children; `logs`: capture of tenant output; `probe`: health probes; `ports`:
//! port allocation; `proc`: facts read from /proc.
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

use std::future::Future;

pub use probe::{Probe, ProbeResult, ProbeTarget};
pub use process::{GroupSignal, Launch, SpawnError, Started};
pub use reaper::ProcessExit;

use crate::names::InstanceKey;

/// What the supervisor needs from the OS.
pub trait Runtime: Send + Sync + 'static {
    /// Starts a tenant process.
    fn start(&self, launch: Launch) -> impl Future<Output = Result<Started, SpawnError>> + Send;
    /// Sends a signal to the tenant's process group.
    fn signal(&self, pid: u32, signal: GroupSignal);
    /// Runs a health probe of `key`.
    fn probe(&self, key: &InstanceKey, probe: Probe) -> impl Future<Output = ProbeResult> + Send;
}

/// The real runtime.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsRuntime;

impl Runtime for OsRuntime {
    async fn start(&self, launch: Launch) -> Result<Started, SpawnError> {
        match tokio::task::spawn_blocking(move || process::start_process(&launch)).await {
            Ok(result) => result,
            Err(join_error) => Err(SpawnError::Exec {
                program: String::new(),
                workdir: Default::default(),
                source: std::io::Error::other(join_error.to_string()),
            }),
        }
    }

    fn signal(&self, pid: u32, signal: GroupSignal) {
        process::signal_group(pid, signal);
    }

    async fn probe(&self, _key: &InstanceKey, probe: Probe) -> ProbeResult {
        probe::run_probe(&probe).await
    }
}
