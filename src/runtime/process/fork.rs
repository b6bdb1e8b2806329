//! The start without a spawner: ten forked, the capture files opened for the child, and what
//! the child does between fork and exec (only system calls: no allocation, no locks). Imports
//! only `error` of `process`; must not import what imports `process` (`os`, `exec_probe`).

use std::fs::File;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use tokio::sync::oneshot;

use super::super::cgroup::{TenantCgroup, join_cgroup};
use super::super::launch::Launch;
use super::super::logs::open_for_tenant;
use super::super::reaper::{ProcessExit, Reaper};
use super::super::spawner;
use super::error::SpawnError;

/// Opens the capture files the tenant's stdout and stderr append to, for a fork of ten.
pub(super) fn open_output(launch: &Launch) -> Result<(File, File), SpawnError> {
    let open = |path: &Path| {
        open_for_tenant(path).map_err(|source| SpawnError::Logs {
            path: path.to_path_buf(),
            source,
        })
    };
    Ok((open(&launch.stdout)?, open(&launch.stderr)?))
}

/// Forks ten and executes the request's `argv` with exactly its `env`, in a process group of
/// its own, stdin from /dev/null and `output` as stdout and stderr, joining `cgroup` and
/// becoming its `user` between fork and exec; through the reaper, which reports its exit.
/// The way without a spawner.
pub(super) fn fork_exec(
    launch: &Launch,
    request: &spawner::Request,
    output: (File, File),
    cgroup: Option<&TenantCgroup>,
) -> io::Result<(u32, oneshot::Receiver<ProcessExit>)> {
    crate::metrics::global().forked();
    let (stdout, stderr) = output;
    let user = request.user;
    let mut command = Command::new(&request.argv[0]);
    command
        .args(&request.argv[1..])
        .current_dir(&launch.workdir)
        .env_clear()
        .envs(request.env.iter().map(|(name, value)| (name, value)))
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0);
    let procs = cgroup.map(TenantCgroup::procs_files).unwrap_or_default();
    // SAFETY: the closure only makes system calls (no allocation, no locks).
    unsafe {
        command.pre_exec(move || {
            crate::runtime::signal::default_signals();
            join_cgroup(&procs)?;
            if let Some((uid, gid)) = user {
                super::spawner::serve::become_user(uid, gid)?;
            }
            Ok(())
        });
    }
    let (child, exit) = Reaper::global().spawn(&mut command)?;
    Ok((child.id(), exit))
}
