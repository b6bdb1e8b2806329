//! What `ten serve` is asked ([`ServeOptions`]) and how a start fails ([`ServeError`]).
//! Plain data; imports nothing of `server` but the errors and flags of `listen` and `https`.

use std::net::IpAddr;
use std::path::PathBuf;

use super::{https, listen};
use crate::config::Diagnostic;

/// What `ten serve` was asked.
#[derive(Debug, Clone)]
pub(crate) struct ServeOptions {
    pub config_path: PathBuf,
    /// `--data-dir`, overriding `settings.data_dir`.
    pub data_dir: Option<PathBuf>,
    pub bind: IpAddr,
    /// 0 picks a free port.
    pub port: u16,
    /// `--domain`, overriding `[settings.tls] domain`; `localhost` when neither says.
    pub domain: Option<String>,
    pub tls: https::TlsFlags,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ServeError {
    #[error("the files have errors; fix them and start again")]
    Invalid(Vec<Diagnostic>),
    #[error("another ten serve{} already runs with the data directory {data_dir}{}", pid.map(|pid| format!(" (pid {pid})")).unwrap_or_default(), held_by.as_ref().map(|holders| format!(": its lock is held by {holders}")).unwrap_or_default())]
    AlreadyRunning {
        data_dir: PathBuf,
        pid: Option<u32>,
        /// The processes that hold the lock, when no live server is recorded: a process
        /// that inherited the lock outlives the server that took it.
        held_by: Option<String>,
    },
    #[error(transparent)]
    Listen(#[from] listen::ListenError),
    #[error(transparent)]
    Https(#[from] https::HttpsError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error(
        "the data directory {} is not valid UTF-8, and ten hands paths in it to tenants as text",
        .0.display()
    )]
    DataDirNotUtf8(PathBuf),
}

pub(super) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ServeError {
    let context = context.into();
    move |source| ServeError::Io { context, source }
}
