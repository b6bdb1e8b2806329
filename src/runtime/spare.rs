//! Spare processes: a few processes started ahead of need, each already in a cgroup of its
//! own, waiting to become a tenant.
//!
//! Why: moving a process into a cgroup (writing `cgroup.procs`) takes the kernel's global
//! cgroup thread-group lock for writing, which waits for an RCU grace period when no other
//! move happened just before: 10 to 25 ms on an idle host, paid by every spawn and so by every
//! wake of a sleeping tenant. A spare pays it in the background. To become a tenant, a spare
//! gets its limits written to its cgroup (no move needed), then an exec request on its stdin:
//! it opens the tenant's output files, changes directory and user, and executes the program
//! (`ten __spare`, [`main`]). Its pid is the tenant's from then on; it is ten's child, so the
//! reaper reports its exit as for any tenant.
//!
//! Whether the exec worked comes back the way `std::process` does it: a pipe the spare gets
//! as its stdout and keeps on another descriptor, closed on exec (success), or carrying the
//! error (failure). A spare whose ten is gone reads end-of-file on stdin and exits.
//!
//! A spare is started without a step between fork and exec (so `std` uses `posix_spawn`,
//! and ten's page tables, hundreds of megabytes with thousands of instances, are not
//! copied; a fork of ten also stalls its threads' page faults while it copies), and then moved
//! into its cgroup from here, before anything is asked of it.
//!
//! Joins its cgroup through `cgroup`, opens output through `logs` and resets its signals
//! through `signal`; must not import
//! `process`, which hands it the request.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::cgroup::{TenantCgroup, move_to_cgroup};
use super::reaper::{ProcessExit, Reaper};

/// The hidden subcommand that runs [`main`].
pub(crate) const SUBCOMMAND: &str = "__spare";
/// The lowest descriptor a spare keeps its status pipe on (its stdout when it starts).
const STATUS_FD: i32 = 3;

/// What a spare is asked to become.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct ExecRequest {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
    /// Run as this user and group (no supplementary groups).
    pub user: Option<(u32, u32)>,
}

/// A spare process waiting in its cgroup.
#[derive(Debug)]
pub(crate) struct Spare {
    pub pid: u32,
    pub cgroup: TenantCgroup,
    request: ChildStdin,
    status: File,
    exit: oneshot::Receiver<ProcessExit>,
}

/// Starts a spare: `program` is ten's own binary, `cgroup` its (empty, new) cgroup, removed
/// again if the spare cannot start.
pub(crate) fn start(program: &Path, cgroup: TenantCgroup) -> io::Result<Spare> {
    match start_in(program, &cgroup) {
        Ok((pid, request, status, exit)) => Ok(Spare {
            pid,
            cgroup,
            request,
            status,
            exit,
        }),
        Err(error) => {
            cgroup.remove();
            Err(error)
        }
    }
}

#[allow(clippy::type_complexity)]
fn start_in(
    program: &Path,
    cgroup: &TenantCgroup,
) -> io::Result<(u32, ChildStdin, File, oneshot::Receiver<ProcessExit>)> {
    let (status_read, status_write) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)?;
    let mut command = Command::new(program);
    command
        .arg(SUBCOMMAND)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::from(status_write))
        .stderr(Stdio::null())
        .current_dir("/")
        .process_group(0);
    let (mut child, exit) = Reaper::global().spawn(&mut command)?;
    // Only command's copy of the write end is left; the spare has its own.
    drop(command);
    if let Err(error) = move_to_cgroup(&cgroup.procs_files(), child.id()) {
        let _ = child.kill();
        return Err(error);
    }
    let request = child
        .stdin
        .take()
        .ok_or_else(|| io::Error::other("the spare has no stdin"))?;
    Ok((child.id(), request, File::from(status_read), exit))
}

impl Spare {
    /// Makes the spare execute `request`. On success its pid runs the tenant's program;
    /// `exit` reports its end. On failure the spare exits and its cgroup is removed.
    pub(crate) fn become_tenant(
        mut self,
        request: &ExecRequest,
    ) -> io::Result<(u32, TenantCgroup, oneshot::Receiver<ProcessExit>)> {
        let sent = serde_json::to_vec(request)
            .map_err(io::Error::other)
            .and_then(|bytes| self.request.write_all(&bytes));
        drop(self.request);
        let mut failure = String::new();
        let outcome = sent.and_then(|()| self.status.read_to_string(&mut failure));
        match outcome {
            Ok(_) if failure.is_empty() => Ok((self.pid, self.cgroup, self.exit)),
            Ok(_) => {
                self.cgroup.kill_all();
                self.cgroup.remove();
                Err(io::Error::other(failure))
            }
            Err(error) => {
                self.cgroup.kill_all();
                self.cgroup.remove();
                Err(error)
            }
        }
    }

    /// Ends the spare and removes its cgroup. Blocking.
    pub(crate) fn discard(self) {
        // Its stdin closes: it exits, if the SIGKILL to its cgroup does not come first.
        drop(self.request);
        self.cgroup.kill_all();
        self.cgroup.remove();
    }
}

/// The spare's side: waits for a request, then becomes the tenant. Runs first thing in the
/// binary (no threads).
pub(crate) fn main() -> ! {
    // The status pipe came as stdout: keep it on a descriptor closed by the exec (so the exec
    // closes it when it succeeds), and make stdout /dev/null until the tenant's file.
    // SAFETY: fcntl and dup2 on our own descriptors.
    let status_fd = unsafe { nix::libc::fcntl(1, nix::libc::F_DUPFD_CLOEXEC, STATUS_FD) };
    if let Ok(null) = File::open("/dev/null") {
        // SAFETY: dup2 of an open file onto our stdout.
        unsafe {
            nix::libc::dup2(null.as_raw_fd(), 1);
        }
    }
    if status_fd < 0 {
        std::process::exit(127);
    }
    let mut bytes = Vec::new();
    let _ = io::stdin().lock().read_to_end(&mut bytes);
    if bytes.is_empty() {
        // ten let it go, or is gone.
        std::process::exit(0);
    }
    let error = match serde_json::from_slice::<ExecRequest>(&bytes) {
        Ok(request) => become_it(&request),
        Err(error) => io::Error::other(format!("bad request: {error}")),
    };
    // SAFETY: the status descriptor is ours; the message says why the exec failed.
    let mut status = unsafe { File::from(OwnedFd::from_raw_fd(status_fd)) };
    let _ = status.write_all(error.to_string().as_bytes());
    std::process::exit(127)
}

/// Sets up the tenant's process and executes it; returns only on failure.
fn become_it(request: &ExecRequest) -> io::Error {
    let attempt = || -> io::Result<std::convert::Infallible> {
        let open = |path: &Path| super::logs::open_for_tenant(path);
        let stdout = open(&request.stdout)?;
        let stderr = open(&request.stderr)?;
        let null = File::open("/dev/null")?;
        for (file, target) in [(&null, 0), (&stdout, 1), (&stderr, 2)] {
            // SAFETY: dup2 onto the standard descriptors.
            if unsafe { nix::libc::dup2(file.as_raw_fd(), target) } < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        std::env::set_current_dir(&request.cwd).map_err(|error| {
            io::Error::new(error.kind(), format!("{}: {error}", request.cwd.display()))
        })?;
        if let Some((uid, gid)) = request.user {
            nix::unistd::setgroups(&[])?;
            nix::unistd::setgid(nix::unistd::Gid::from_raw(gid))?;
            nix::unistd::setuid(nix::unistd::Uid::from_raw(uid))?;
        }
        let program = resolve_program(&request.argv[0], &request.env, &request.cwd)?;
        let argv = to_cstrings(request.argv.iter().map(String::as_bytes))?;
        let env = to_cstrings(
            request
                .env
                .iter()
                .map(|(name, value)| format!("{name}={value}").into_bytes()),
        )?;
        let program = CString::new(program.as_os_str().as_bytes()).map_err(io::Error::other)?;
        super::signal::default_signals();
        Ok(nix::unistd::execve(&program, &argv, &env)?)
    };
    match attempt() {
        Ok(never) => match never {},
        Err(error) => error,
    }
}

pub(crate) fn to_cstrings<B: AsRef<[u8]>>(
    items: impl Iterator<Item = B>,
) -> io::Result<Vec<CString>> {
    items
        .map(|item| CString::new(item.as_ref()).map_err(io::Error::other))
        .collect()
}

/// The program to execute: a path as given, or a name looked up in the tenant's `PATH` (its
/// relative entries relative to `cwd`, the directory it will run in).
pub(crate) fn resolve_program(
    program: &str,
    env: &[(String, String)],
    cwd: &Path,
) -> io::Result<PathBuf> {
    if program.contains('/') {
        return Ok(PathBuf::from(program));
    }
    let path = env
        .iter()
        .find(|(name, _)| name == "PATH")
        .map_or("/usr/local/bin:/usr/bin:/bin", |(_, value)| value.as_str());
    std::env::split_paths(path)
        .map(|dir| cwd.join(dir).join(program))
        .find(|candidate| {
            candidate.metadata().is_ok_and(|metadata| {
                metadata.is_file() && {
                    use std::os::unix::fs::PermissionsExt;
                    metadata.permissions().mode() & 0o111 != 0
                }
            })
        })
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{program}: not found in PATH"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_found_in_the_tenants_path() {
        let env = vec![("PATH".to_string(), "/nonexistent:/bin:/usr/bin".to_string())];
        let found = resolve_program("sh", &env, Path::new("/")).unwrap();
        assert!(found.ends_with("sh") && found.is_file(), "{found:?}");
        assert_eq!(
            resolve_program("./app", &env, Path::new("/")).unwrap(),
            PathBuf::from("./app")
        );
        let missing =
            resolve_program("no-such-program-anywhere", &env, Path::new("/")).unwrap_err();
        assert_eq!(
            missing.to_string(),
            "no-such-program-anywhere: not found in PATH"
        );
    }

    #[test]
    fn requests_round_trip() {
        let request = ExecRequest {
            argv: vec!["app".into(), "--port".into(), "1".into()],
            env: vec![("PORT".into(), "1".into())],
            cwd: "/srv".into(),
            stdout: "/tmp/out".into(),
            stderr: "/tmp/err".into(),
            user: Some((65534, 65534)),
        };
        let bytes = serde_json::to_vec(&request).unwrap();
        assert_eq!(
            serde_json::from_slice::<ExecRequest>(&bytes).unwrap(),
            request
        );
    }
}
