//! Why a start fails ([`SpawnError`]) and whether trying again can help; why a host cannot
//! run an isolation at all, for `ten validate` before any start. Imports no other part of
//! `process`; must not import what imports `process` (`os`, `exec_probe`).

use std::io;
use std::path::{Path, PathBuf};

use crate::config::Isolation;

use super::super::cgroup::CgroupError;
use super::super::sandbox::Sandbox;

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("cannot create the data directory {path}: {source}")]
    DataDir { path: PathBuf, source: io::Error },
    #[error("cannot open the log file {path}: {source}")]
    Logs { path: PathBuf, source: io::Error },
    #[error("cannot run {program:?} in {workdir}: {source}")]
    Exec {
        program: String,
        workdir: PathBuf,
        source: io::Error,
    },
    #[error("the command is empty")]
    EmptyCommand,
    #[error(transparent)]
    NoPort(#[from] super::super::ports::PortsExhausted),
    #[error("over storage quota: {used_mb} MB used of storage_quota_mb = {quota_mb}")]
    OverQuota { used_mb: u64, quota_mb: u64 },
    #[error("isolation = \"{isolation}\" needs ten to run as root")]
    NeedsRoot { isolation: &'static str },
    #[error(
        "isolation = \"sandbox\" needs gVisor's runsc, which is not installed (Debian: apt-get install runsc)"
    )]
    NoRunsc,
    #[error("cannot find ten's own program for isolation = \"namespace\"")]
    NoInit,
    #[error("{0}")]
    Cgroup(#[from] CgroupError),
    #[error(
        "the limits need cgroups, which are not available here ({0}); run ten as root on a host with cgroups, or remove the limits"
    )]
    NoCgroups(String),
    #[error("user {user:?} does not exist")]
    NoSuchUser { user: String },
    #[error("cannot prepare the sandbox: {0}")]
    Sandbox(io::Error),
    #[error(
        "not started: cannot note it in the process table in {dir}: {source} (a tenant never runs unrecorded; free space there, ten tries again)"
    )]
    Table { dir: PathBuf, source: io::Error },
}

impl SpawnError {
    /// Whether trying again cannot help until something is changed (config, host or disk).
    pub fn is_permanent(&self) -> bool {
        match self {
            SpawnError::DataDir { .. }
            | SpawnError::Logs { .. }
            | SpawnError::Exec { .. }
            | SpawnError::NoPort(_)
            | SpawnError::Sandbox(_)
            | SpawnError::Table { .. } => false,
            SpawnError::EmptyCommand
            | SpawnError::OverQuota { .. }
            | SpawnError::NeedsRoot { .. }
            | SpawnError::NoRunsc
            | SpawnError::NoInit
            | SpawnError::Cgroup(_)
            | SpawnError::NoCgroups(_)
            | SpawnError::NoSuchUser { .. } => true,
        }
    }
}

/// Why this host cannot run tenants with `isolation` (and limits, if `limited`), if it
/// cannot: for `ten validate`, before any spawn fails.
pub(crate) fn host_cannot_run(isolation: Isolation, limited: bool) -> Option<String> {
    let root = nix::unistd::geteuid().is_root();
    match isolation {
        Isolation::Namespace | Isolation::Sandbox if !root => Some(format!(
            "isolation = \"{}\" needs ten to run as root",
            isolation.as_str()
        )),
        Isolation::Sandbox if Sandbox::find(Path::new("/")).is_none() => Some(
            "isolation = \"sandbox\" needs gVisor's runsc, which is not installed (Debian: apt-get install runsc)"
                .into(),
        ),
        _ if limited && !root => Some(
            "memory_limit_mb, cpu_shares and pids_limit need cgroups, so ten must run as root".into(),
        ),
        _ => None,
    }
}
