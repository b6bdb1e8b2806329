//! [`Launch`]: everything needed to start one tenant process, as the supervisor builds it;
//! [`Started`]: what a start (or an adoption) gives back.
//!
//! A module of its own so that what executes a launch in part (`sandbox` writes a bundle
//! from it) depends on the description, not on `process`, which executes it whole and
//! depends on them. Imports no other part of `runtime` but `cgroup` (for [`Limits`]) and
//! `reaper` (for [`ProcessExit`]).

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::oneshot;

use crate::config::Isolation;
use crate::desired::FieldMap;
use crate::names::InstanceKey;

use super::cgroup::Limits;
use super::reaper::ProcessExit;

/// Everything needed to start one tenant process. Built by the supervisor (pure); executed
/// by `runtime::process`.
#[derive(Debug, Clone, PartialEq)]
pub struct Launch {
    pub key: InstanceKey,
    /// Program and arguments, all templates resolved.
    pub argv: Vec<String>,
    pub workdir: PathBuf,
    /// The directory of tenement.toml (for a sandbox: what the argv names in it is shown).
    pub config_dir: PathBuf,
    /// The complete environment.
    pub env: Vec<(String, String)>,
    /// Created before the process starts.
    pub data_dir: PathBuf,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
    /// Its port, and the spec fields it runs with: noted in the process table.
    pub port: u16,
    pub spec: Arc<FieldMap>,
    pub isolation: Isolation,
    pub limits: Limits,
    pub storage_quota_mb: Option<u64>,
    /// Run as this user (name or uid) instead of ten's.
    pub user: Option<String>,
    /// The directory of its Unix socket, for `listen = "socket"`.
    pub socket_dir: Option<PathBuf>,
    /// Resolved from `user` when starting.
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

/// A started (or adopted) process: its pid, its start time (with the pid, its identity)
/// and the report of its exit.
#[derive(Debug)]
pub struct Started {
    pub pid: u32,
    pub start_time: Option<u64>,
    pub exit: oneshot::Receiver<ProcessExit>,
}
