//! The spawner: a small single-threaded process (`ten __spawner`, [`serve::main`]) that forks
//! and executes tenants and command checks for ten, so that ten itself is not forked for them.
//!
//! Why: ten has many threads, hundreds of descriptors (two pipes per tenant) and megabytes of
//! page tables. Forking it copies all of that, stalls its threads' page faults while it does
//! and flushes their TLBs; the child then closes every inherited descriptor at exec. With 200
//! command checks a second that cost 1.7 ms of ten's CPU per check (a third of a core) and as
//! much again in the children; a burst of 1,000 tenant starts spent most of its time there.
//! The spawner is a fresh process with a handful of descriptors and no threads: its fork
//! costs a fraction of that.
//!
//! How: ten sends a [`Request`] as one message on a `SOCK_SEQPACKET` socket (the spawner's
//! stdin), with the write end of a close-on-exec pipe. The spawner starts the child with
//! `CLONE_PARENT`, so the child is ten's child (reaped by ten's reaper, killed by ten like any
//! process), and the pid, or why no child could be made, is the answer at once; ten then
//! reads from the pipe how the child's setup and exec went (end-of-file: it executed). The
//! child shares the spawner's memory (`CLONE_VM | CLONE_VFORK`, as `posix_spawn`) and answers
//! with its own pid; the spawner, suspended until the child executed or exited, then serves
//! the next request. Into a v2 cgroup (`clone3` with `CLONE_INTO_CGROUP`) it forks instead,
//! answers itself and serves the next request while the child sets itself up (see `clone`).
//!
//! ten runs up to [`MAX_SPAWNERS`] spawners, more only while all are busy, each serving one
//! request at a time. The pid is registered with the reaper as the answer comes
//! ([`Reaper::spawn_claimed`]): an exit reaped before is kept for it, so no lock is held
//! while a spawner is asked; a child whose exec failed exits, and the reaper reaps it like
//! any. A spawner that is gone is started again on the next request; while none can be
//! started, the caller forks ten, as before ([`Spawner::try_spawn`] says so). A spawner reads
//! end-of-file when ten is gone, and exits.
//!
//! Imports `reaper`, `cgroup` (joining), `spare` (program lookup), `logs` (opening output
//! files) and `signal` (a child's signals reset); must not import `process`.

mod clone;
pub(crate) mod serve;

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::cgroup::join_cgroup;
use super::reaper::{ProcessExit, Reaper};

/// The hidden subcommand that runs [`serve::main`].
pub(crate) const SUBCOMMAND: &str = "__spawner";
/// The largest request the spawner reads (well within a socket's buffer); a larger one is
/// started by forking ten.
const MAX_REQUEST: usize = 64 << 10;
/// How long ten waits for a spawner's answer before it takes the spawner for stuck.
const ANSWER_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);
/// The largest reply (a pid, or an error message, cut to fit).
const MAX_REPLY: usize = 4096;

/// A command to start: stdin on `/dev/null`, in a process group of its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Request {
    pub argv: Vec<String>,
    /// Its whole environment.
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
    /// The `cgroup.procs` files of the cgroup it runs in (none: the spawner's), joined
    /// between fork and exec unless it starts there (`clone_into`).
    pub cgroup_procs: Vec<PathBuf>,
    /// The same cgroup's directory when it is a v2 one: the child is created in it
    /// (`clone3` with `CLONE_INTO_CGROUP`) where the kernel can.
    pub clone_into: Option<PathBuf>,
    /// Files its stdout and stderr append to, created if missing (none: `/dev/null`).
    pub stdout: Option<PathBuf>,
    pub stderr: Option<PathBuf>,
    /// The uid and gid it runs as (none: root's, as ten).
    pub user: Option<(u32, u32)>,
}

#[derive(Debug, Serialize, Deserialize)]
enum Reply {
    /// The child exists (its exec's outcome is on the caller's pipe), or, for a request sent
    /// without a pipe, it executed.
    Started { pid: u32 },
    /// `pid`: the child that failed before or at exec, a zombie of ten's to reap.
    Failed { pid: Option<u32>, error: String },
}

/// Why a request through the spawner gave no process.
enum Failure {
    /// The command could not be started (as a fork would have failed): the caller's error.
    Command(io::Error),
    /// The spawner is gone or answered nonsense: start another, and fork this time.
    Spawner(io::Error),
}

/// The most spawners ten runs at once. One spawner serves one request at a time, and a child
/// sharing its memory holds it until its exec, so through its go-ahead too (ten noting the
/// pid): in a burst of 1,000 starts the blocking threads queued for a single spawner, 1.4 ms
/// a start. More are started only while all are busy.
const MAX_SPAWNERS: usize = 4;

/// ten's end of the spawners, each started on first use.
#[derive(Debug, Default)]
pub(crate) struct Spawner {
    /// ten's own program; none: always fork (unit tests, which have no `ten` binary).
    program: Option<PathBuf>,
    connections: [Mutex<Option<Connection>>; MAX_SPAWNERS],
    /// Where a request that finds every spawner busy waits (round robin).
    next: std::sync::atomic::AtomicUsize,
}

#[derive(Debug)]
struct Connection {
    socket: File,
    pid: u32,
}

impl Spawner {
    pub(crate) fn new(program: Option<PathBuf>) -> Spawner {
        Spawner {
            program,
            ..Spawner::default()
        }
    }

    fn lock(&self, index: usize) -> MutexGuard<'_, Option<Connection>> {
        self.connections[index]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A spawner to ask: the first one running and free; else one not started yet (started
    /// by the caller); else, all busy, the next in turn, waited for.
    fn free(&self) -> MutexGuard<'_, Option<Connection>> {
        use std::sync::TryLockError;
        let mut unstarted = None;
        for connection in &self.connections {
            match connection.try_lock() {
                Ok(guard) if guard.is_some() => return guard,
                Err(TryLockError::Poisoned(poisoned)) => return poisoned.into_inner(),
                Ok(guard) => {
                    if unstarted.is_none() {
                        unstarted = Some(guard);
                    }
                }
                Err(TryLockError::WouldBlock) => {}
            }
        }
        if let Some(guard) = unstarted {
            return guard;
        }
        let next = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.lock(next % MAX_SPAWNERS)
    }

    /// Starts `request`'s command and registers it with the reaper; the receiver gets its exit
    /// status. Blocking (a round trip to the spawner, or a fork): call on a blocking thread.
    pub(crate) fn spawn(
        &self,
        request: &Request,
    ) -> io::Result<(u32, oneshot::Receiver<ProcessExit>)> {
        self.try_spawn(request, None)
            .unwrap_or_else(|| fork(request))
    }

    /// Starts `request`'s command through the spawner (started on first use) and registers
    /// it with the reaper, as [`Spawner::spawn`]; `None` when there is no spawner to ask
    /// (no program, a request too large, a spawner that cannot start or just died): then the
    /// caller starts it its own way. With `admit`, the child exists (its pid given to
    /// `admit`) but executes the command only once `admit` succeeded: an error of `admit` is
    /// the outcome, and the command never runs. Blocking.
    #[allow(clippy::type_complexity)]
    pub(crate) fn try_spawn(
        &self,
        request: &Request,
        admit: Option<&dyn Fn(u32) -> io::Result<()>>,
    ) -> Option<io::Result<(u32, oneshot::Receiver<ProcessExit>)>> {
        let program = self.program.as_ref()?;
        let message = match serde_json::to_vec(request) {
            Ok(message) if message.len() <= MAX_REQUEST => message,
            _ => return None,
        };
        let mut connection = self.free();
        if connection.is_none() {
            match Connection::start(program) {
                Ok(started) => *connection = Some(started),
                Err(error) => {
                    tracing::warn!(%error, "cannot start the spawner; ten forks itself");
                    return None;
                }
            }
        }
        let spawner = connection.as_mut()?;
        let mut pipes = None;
        let asked = Reaper::global().spawn_claimed(|| {
            let (pid, status, go) = spawner.ask(&message, admit.is_some())?;
            pipes = Some((status, go));
            Ok(pid)
        });
        match asked {
            Ok(started) => {
                let (mut status, go) = pipes.expect("a started child has a status pipe");
                let admitted = admit.map_or(Ok(()), |admit| admit(started.0));
                if let (Ok(()), Some(mut go)) = (&admitted, go) {
                    // A child that died meanwhile says so on the status pipe.
                    let _ = go.write_all(&[1]);
                }
                // The spawner waits for a child that shares its memory until its exec (which
                // follows the go-ahead at once), not for the exec's outcome: the next request
                // need not wait for that.
                drop(connection);
                let mut message = Vec::new();
                let read = status.read_to_end(&mut message);
                Some(admitted.and_then(|()| {
                    read.and_then(|_| serve::outcome(&message))
                        .map(|()| started)
                }))
            }
            Err(Failure::Command(error)) => Some(Err(error)),
            Err(Failure::Spawner(error)) => {
                if matches!(
                    error.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) {
                    // Alive but stuck: not a process that could have been reaped (and its pid
                    // reused) yet.
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(spawner.pid as i32),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
                tracing::warn!(pid = spawner.pid, %error, "the spawner is gone or stuck; a new one starts on the next request");
                *connection = None;
                None
            }
        }
    }

    /// Starts the spawner now if it is not running, so that the first start does not wait
    /// for it. Blocking.
    pub(crate) fn warm_up(&self) {
        let Some(program) = &self.program else { return };
        let mut connection = self.lock(0);
        if connection.is_none() {
            match Connection::start(program) {
                Ok(started) => *connection = Some(started),
                Err(error) => tracing::warn!(%error, "cannot start the spawner; ten forks itself"),
            }
        }
    }
}

impl Connection {
    /// Starts a spawner: `program __spawner`, its stdin a socket. ten is not forked for it
    /// either (no code runs between fork and exec, so the standard library uses
    /// `posix_spawn`).
    fn start(program: &std::path::Path) -> io::Result<Connection> {
        use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(io::Error::from)?;
        // An answer comes at once (a child answers before its setup): a spawner silent for
        // this long is stuck (a child stopped before it answered) and is replaced.
        nix::sys::socket::setsockopt(
            &ours,
            nix::sys::socket::sockopt::ReceiveTimeout,
            &nix::sys::time::TimeVal::new(ANSWER_PATIENCE.as_secs() as i64, 0),
        )
        .map_err(io::Error::from)?;
        let mut command = Command::new(program);
        command
            .arg(SUBCOMMAND)
            .env_clear()
            .stdin(Stdio::from(theirs))
            .stdout(Stdio::null())
            .current_dir("/")
            .process_group(0);
        // Its exit is of no interest: a broken socket says it is gone.
        let (child, _exit) = Reaper::global().spawn(&mut command)?;
        tracing::debug!(pid = child.id(), "started the spawner");
        Ok(Connection {
            socket: File::from(ours),
            pid: child.id(),
        })
    }

    /// Sends one request with the write end of a new status pipe (and, with `go`, the read
    /// end of a go-ahead pipe), and reads its reply: the child's pid, the status pipe's read
    /// end and the go-ahead's write end. Called while the reaper keeps exits for it.
    #[allow(clippy::type_complexity)]
    fn ask(&mut self, message: &[u8], go: bool) -> Result<(u32, File, Option<File>), Failure> {
        use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
        use std::os::fd::AsRawFd;
        let pipe = || {
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
                .map_err(|error| Failure::Command(error.into()))
        };
        let (status_read, status_write) = pipe()?;
        let (go_read, go_write) = match go {
            true => {
                let (read, write) = pipe()?;
                (Some(read), Some(File::from(write)))
            }
            false => (None, None),
        };
        let mut fds = vec![status_write.as_raw_fd()];
        fds.extend(go_read.as_ref().map(AsRawFd::as_raw_fd));
        let sent = sendmsg::<()>(
            self.socket.as_raw_fd(),
            &[io::IoSlice::new(message)],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            None,
        );
        // Only the child keeps a write end of the status pipe: end-of-file comes with its
        // exec (or exit); and only it reads the go-ahead.
        drop((status_write, go_read));
        match sent {
            Ok(length) if length == message.len() => {}
            Ok(_) => return Err(Failure::Spawner(io::ErrorKind::WriteZero.into())),
            Err(error) => return Err(Failure::Spawner(error.into())),
        }
        let mut reply = vec![0; MAX_REPLY];
        let length = self.socket.read(&mut reply).map_err(Failure::Spawner)?;
        if length == 0 {
            return Err(Failure::Spawner(io::ErrorKind::UnexpectedEof.into()));
        }
        match serde_json::from_slice(&reply[..length]) {
            Ok(Reply::Started { pid }) => Ok((pid, File::from(status_read), go_write)),
            // A child that ended before it answered (`pid`) is ten's: the reaper reaps it.
            Ok(Reply::Failed { error, .. }) => Err(Failure::Command(io::Error::other(error))),
            Err(error) => Err(Failure::Spawner(io::Error::other(format!(
                "a reply that is not one: {error}"
            )))),
        }
    }
}

/// Starts `request`'s command by forking ten: the way without a spawner.
fn fork(request: &Request) -> io::Result<(u32, oneshot::Receiver<ProcessExit>)> {
    crate::metrics::global().forked();
    let procs = request
        .cgroup_procs
        .iter()
        .map(|path| CString::new(path.as_os_str().as_encoded_bytes()).map_err(io::Error::other))
        .collect::<io::Result<Vec<CString>>>()?;
    let user = request.user;
    let output = |path: &Option<PathBuf>| match path {
        Some(path) => super::logs::open_for_tenant(path).map(Stdio::from),
        None => Ok(Stdio::null()),
    };
    let mut command = Command::new(&request.argv[0]);
    command
        .args(&request.argv[1..])
        .env_clear()
        .envs(request.env.iter().map(|(name, value)| (name, value)))
        .current_dir(&request.cwd)
        .stdin(Stdio::null())
        .stdout(output(&request.stdout)?)
        .stderr(output(&request.stderr)?)
        .process_group(0);
    // SAFETY: the closure only makes system calls (no allocation, no locks).
    unsafe {
        command.pre_exec(move || {
            join_cgroup(&procs)?;
            if let Some((uid, gid)) = user {
                serve::become_user(uid, gid)?;
            }
            Ok(())
        });
    }
    let (child, exit) = Reaper::global().spawn(&mut command)?;
    Ok((child.id(), exit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_replies_survive_their_encoding() {
        let request = Request {
            argv: vec!["pg_isready".into(), "-q".into()],
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
            cwd: "/srv/app".into(),
            cgroup_procs: vec!["/sys/fs/cgroup/ten/x/cgroup.procs".into()],
            clone_into: Some("/sys/fs/cgroup/ten/x".into()),
            stdout: Some("/srv/app/out.raw".into()),
            stderr: None,
            user: Some((1000, 1000)),
        };
        let bytes = serde_json::to_vec(&request).unwrap();
        assert_eq!(serde_json::from_slice::<Request>(&bytes).unwrap(), request);
    }

    #[test]
    fn without_a_program_the_command_is_forked_and_its_exit_reported() {
        let spawner = Spawner::new(None);
        let request = Request {
            argv: vec![
                "sh".into(),
                "-c".into(),
                "test \"$MARK\" = x && exit 4".into(),
            ],
            env: vec![
                ("PATH".into(), "/usr/bin:/bin".into()),
                ("MARK".into(), "x".into()),
            ],
            cwd: std::env::temp_dir(),
            cgroup_procs: Vec::new(),
            clone_into: None,
            stdout: None,
            stderr: None,
            user: None,
        };
        let (_pid, exit) = spawner.spawn(&request).unwrap();
        assert_eq!(exit.blocking_recv().unwrap().code, Some(4));
    }
}
