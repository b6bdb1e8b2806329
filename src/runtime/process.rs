//! Starting and signalling tenant processes (isolation = "process").
//!
//! A tenant runs in its own process group, with exactly the environment it is given (never
//! ten's own), stdin from /dev/null and stdout/stderr appended to its capture files. It is
//! started through the reaper, which reports its exit. Stopping signals the whole group.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::sync::oneshot;

use crate::config::StopSignal;
use crate::desired::FieldMap;
use crate::names::InstanceKey;

use super::logs::open_for_tenant;
use super::proc::{boot_id, process_start_time};
use super::reaper::{ProcessExit, Reaper};
use super::table::{ProcessEntry, write_entry};

/// Everything needed to start one tenant process. Built by the supervisor (pure); executed
/// here.
#[derive(Debug, Clone, PartialEq)]
pub struct Launch {
    pub key: InstanceKey,
    /// Program and arguments, all templates resolved.
    pub argv: Vec<String>,
    pub workdir: PathBuf,
    /// The complete environment.
    pub env: Vec<(String, String)>,
    /// Created before the process starts.
    pub data_dir: PathBuf,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
    /// Its port, and the spec fields it runs with: noted in the process table.
    pub port: u16,
    pub spec: Arc<FieldMap>,
}

/// A started process.
#[derive(Debug)]
pub struct Started {
    pub pid: u32,
    pub start_time: Option<u64>,
    pub exit: oneshot::Receiver<ProcessExit>,
}

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
    NoPort(#[from] super::ports::PortsExhausted),
}

/// Starts the tenant and notes it in the process table in `table` (if given). Blocking
/// (creates directories, fork/exec): call on a blocking thread.
pub fn start_process(launch: &Launch, table: Option<&Path>) -> Result<Started, SpawnError> {
    std::fs::create_dir_all(&launch.data_dir).map_err(|source| SpawnError::DataDir {
        path: launch.data_dir.clone(),
        source,
    })?;
    let open = |path: &Path| {
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        open_for_tenant(path).map_err(|source| SpawnError::Logs {
            path: path.to_path_buf(),
            source,
        })
    };
    let stdout = open(&launch.stdout)?;
    let stderr = open(&launch.stderr)?;
    let (program, args) = launch.argv.split_first().ok_or(SpawnError::EmptyCommand)?;
    // A relative program with a slash is relative to the workdir, not to ten's.
    let program_path = if program.contains('/') && !program.starts_with('/') {
        launch.workdir.join(program).into_os_string()
    } else {
        program.into()
    };
    let mut command = Command::new(program_path);
    command
        .args(args)
        .current_dir(&launch.workdir)
        .env_clear()
        .envs(launch.env.iter().map(|(name, value)| (name, value)))
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0);
    tracing::debug!(instance = %launch.key, argv = ?launch.argv, "spawning");
    let (child, exit) =
        Reaper::global()
            .spawn(&mut command)
            .map_err(|source| SpawnError::Exec {
                program: program.clone(),
                workdir: launch.workdir.clone(),
                source,
            })?;
    let pid = child.id();
    let start_time = process_start_time(pid);
    if let (Some(table), Some(start_time)) = (table, start_time) {
        let entry = ProcessEntry {
            instance: launch.key.clone(),
            pid,
            start_time,
            boot_id: boot_id().to_string(),
            port: launch.port,
            started_at_unix: crate::observed::record::unix_now(),
            spec: Arc::clone(&launch.spec),
        };
        if let Err(error) = write_entry(table, &entry) {
            tracing::warn!(instance = %launch.key, pid, %error, "cannot note the process in the process table; a restarted ten will not adopt it");
        }
    }
    Ok(Started {
        pid,
        start_time,
        exit,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum AdoptError {
    #[error("process {pid} is gone")]
    Gone { pid: u32 },
    #[error("process {pid} is another process now (its start time differs)")]
    Recycled { pid: u32 },
    #[error("cannot watch process {pid}: {source}")]
    Watch { pid: u32, source: io::Error },
}

/// Takes over a running tenant that is not our child (left by a ten that died or was
/// upgraded): checks it is the same process (pid and start time), and reports its exit
/// through a pidfd, which becomes readable when the process ends. The exit status of a
/// process that is not our child cannot be known.
pub fn adopt_process(pid: u32, start_time: u64) -> Result<Started, AdoptError> {
    let raw_pid = i32::try_from(pid).map_err(|_| AdoptError::Gone { pid })?;
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, raw_pid, 0) };
    if fd < 0 {
        let error = io::Error::last_os_error();
        return Err(match error.raw_os_error() {
            Some(nix::libc::ESRCH) => AdoptError::Gone { pid },
            _ => AdoptError::Watch { pid, source: error },
        });
    }
    // SAFETY: the syscall returned a new descriptor that nothing else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    // Checked after opening: the pidfd holds on to whatever process had the pid, so if that
    // is still the one we recorded, it is the one we watch.
    match process_start_time(pid) {
        Some(actual) if actual == start_time => {}
        Some(_) => return Err(AdoptError::Recycled { pid }),
        None => return Err(AdoptError::Gone { pid }),
    }
    // SAFETY: the AsyncFd owns the OwnedFd, which stays open and the same until it is dropped.
    let watched = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(pidfd, tokio::io::Interest::READABLE)
    }
    .map_err(|error| AdoptError::Watch {
        pid,
        source: error.into(),
    })?;
    let (sender, exit) = oneshot::channel();
    tokio::spawn(async move {
        let _ = watched.readable().await;
        let _ = sender.send(ProcessExit {
            code: None,
            signal: None,
        });
    });
    Ok(Started {
        pid,
        start_time: Some(start_time),
        exit,
    })
}

/// A signal for a tenant's process group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupSignal {
    Stop(StopSignal),
    Kill,
}

pub fn nix_signal(signal: GroupSignal) -> Signal {
    match signal {
        GroupSignal::Kill => Signal::SIGKILL,
        GroupSignal::Stop(stop) => match stop {
            StopSignal::Term => Signal::SIGTERM,
            StopSignal::Int => Signal::SIGINT,
            StopSignal::Quit => Signal::SIGQUIT,
            StopSignal::Hup => Signal::SIGHUP,
            StopSignal::Kill => Signal::SIGKILL,
            StopSignal::Usr1 => Signal::SIGUSR1,
            StopSignal::Usr2 => Signal::SIGUSR2,
            StopSignal::Winch => Signal::SIGWINCH,
        },
    }
}

/// Sends `signal` to the process group led by `pid`. A group that is already gone is fine.
pub fn signal_group(pid: u32, signal: GroupSignal) {
    let Ok(raw) = i32::try_from(pid) else { return };
    match killpg(Pid::from_raw(raw), nix_signal(signal)) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
        Err(error) => tracing::warn!(pid, %error, ?signal, "cannot signal process group"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn launch(dir: &Path, argv: &[&str]) -> Launch {
        Launch {
            key: InstanceKey::parse("test:one").unwrap(),
            argv: argv.iter().map(ToString::to_string).collect(),
            workdir: dir.to_path_buf(),
            env: vec![
                ("ONLY".into(), "this".into()),
                ("PATH".into(), "/usr/bin:/bin".into()),
            ],
            data_dir: dir.join("data/test/one"),
            stdout: dir.join("logs/stdout.raw"),
            stderr: dir.join("logs/stderr.raw"),
            port: 30001,
            spec: Arc::new(FieldMap::new()),
        }
    }

    #[tokio::test]
    async fn the_environment_is_exactly_the_given_one() {
        let dir = tempfile::tempdir().unwrap();
        let started = start_process(
            &launch(dir.path(), &["sh", "-c", "env; pwd; echo oops >&2"]),
            None,
        )
        .unwrap();
        assert!(started.exit.await.unwrap().is_clean());
        let output = std::fs::read_to_string(dir.path().join("logs/stdout.raw")).unwrap();
        let mut lines: Vec<&str> = output.lines().collect();
        let cwd = lines.pop().unwrap();
        assert_eq!(cwd, dir.path().to_str().unwrap());
        lines.retain(|line| {
            !line.starts_with("PWD=") && !line.starts_with("SHLVL=") && !line.starts_with('_')
        });
        lines.sort();
        assert_eq!(lines, ["ONLY=this", "PATH=/usr/bin:/bin"]);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("logs/stderr.raw")).unwrap(),
            "oops\n"
        );
        assert!(dir.path().join("data/test/one").is_dir());
    }

    #[tokio::test]
    async fn a_group_signal_reaches_every_process_of_the_group() {
        let dir = tempfile::tempdir().unwrap();
        let started = start_process(
            &launch(dir.path(), &["sh", "-c", "sleep 1000 & echo $!; wait"]),
            None,
        )
        .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let child_pid = loop {
            let text =
                std::fs::read_to_string(dir.path().join("logs/stdout.raw")).unwrap_or_default();
            if let Some(line) = text.lines().next() {
                break line.parse::<u32>().unwrap();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the shell never printed"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        };
        signal_group(started.pid, GroupSignal::Kill);
        started.exit.await.unwrap();
        // The background sleep was in the group too (reaped by its parent's death -> us).
        for _ in 0..100 {
            if !crate::runtime::proc::process_alive(child_pid, None) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("process {child_pid} of the group survived");
    }

    #[tokio::test]
    async fn a_started_process_is_noted_and_can_be_adopted_by_pid_and_start_time() {
        let dir = tempfile::tempdir().unwrap();
        let table = dir.path().join("processes");
        let started = start_process(&launch(dir.path(), &["sleep", "1000"]), Some(&table)).unwrap();
        let (entries, _) = super::super::table::scan(&table);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].pid, started.pid);
        assert_eq!(Some(entries[0].start_time), started.start_time);
        assert_eq!(entries[0].boot_id, boot_id());
        assert_eq!(entries[0].port, 30001);

        let start_time = started.start_time.unwrap();
        assert!(matches!(
            adopt_process(started.pid, start_time + 1),
            Err(AdoptError::Recycled { .. })
        ));
        let adopted = adopt_process(started.pid, start_time).unwrap();
        signal_group(started.pid, GroupSignal::Kill);
        let exit = tokio::time::timeout(std::time::Duration::from_secs(10), adopted.exit)
            .await
            .expect("the pidfd reports the exit")
            .unwrap();
        assert_eq!(
            exit,
            ProcessExit {
                code: None,
                signal: None
            }
        );
        started.exit.await.unwrap();
        assert!(matches!(
            adopt_process(started.pid, start_time),
            Err(AdoptError::Gone { .. }) | Err(AdoptError::Recycled { .. })
        ));
    }

    #[test]
    fn a_missing_program_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let error = start_process(&launch(dir.path(), &["./does-not-exist"]), None).unwrap_err();
        let message = error.to_string();
        assert!(
            message.starts_with("cannot run \"./does-not-exist\" in "),
            "{message}"
        );
        assert!(message.contains("No such file"), "{message}");
    }
}
