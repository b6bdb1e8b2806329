//! Starting tenant processes (adopting them is `adopt`'s, signalling them `signal`'s).
//!
//! A tenant runs in its own process group, with exactly the environment it is given (never
//! ten's own), stdin from /dev/null and stdout/stderr appended to its capture files, as its
//! `user` if one is set. Where cgroups are available it joins a cgroup of its own between
//! fork and exec, with its limits already in force. `isolation` decides what is executed:
//! the program itself (`process`), ten's init in new PID and mount namespaces in front of it
//! (`namespace`, see `runtime::init`), or runsc (`sandbox`, see `runtime::sandbox`). It is
//! started through the reaper, which reports its exit, and noted in the process table.
//!
//! How it is started: by a spare (`spare`) when one is given, else by the spawner
//! (`spawner`: ten is not forked), else, without a spawner, by forking ten.
//!
//! `error`: why a start fails, and why a host cannot run an isolation; `placement`: the name,
//! and the spare or the cgroup a process runs in; `command`: the command line per isolation,
//! the user and the environment; `fork`: the start by forking ten; `notes`: its entry in the
//! process table. Each imports nothing of `process` but `error` and [`SpawnEnv`].
//!
//! Uses the rest of `runtime` (cgroups, spares, the spawner, the sandbox, the reaper, the
//! process table); none of what it uses imports it.

use std::io;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use crate::config::Isolation;

use super::cgroup::{Cgroups, TenantCgroup};
use super::launch::{Launch, Started};
use super::proc::process_start_time;
use super::sandbox::Sandbox;
use super::spare::{ExecRequest, Spare};
use super::spawner::{self, Spawner};
use super::storage::{megabytes, usage_bytes};

/// What the host offers for starting tenants.
#[derive(Debug, Clone, Default)]
pub struct SpawnEnv {
    /// Where live processes are noted.
    pub table: Option<PathBuf>,
    /// `None` when cgroups are not available (then no limit can be set).
    pub cgroups: Option<Cgroups>,
    /// Why cgroups are not available, for errors.
    pub cgroups_missing: Option<String>,
    /// `None` when runsc is not installed.
    pub sandbox: Option<Sandbox>,
    /// ten's own binary, run as the init of `namespace` tenants.
    pub init_program: Option<PathBuf>,
}

/// What ten keeps of a running process besides its pid: its cgroup and, for a sandbox, the
/// container to delete afterwards.
#[derive(Debug)]
pub(crate) struct Running {
    /// Names its cgroup and its sandbox container.
    pub name: String,
    pub cgroup: Option<TenantCgroup>,
    pub sandboxed: bool,
}

/// Starts the tenant and notes it in the process table, by turning `spare` into it when one
/// is given (see `runtime::spare`), else through `spawner` when there is one to ask, else by
/// fork and exec. Blocking (creates directories, measures the data directory, fork/exec):
/// call on a blocking thread.
pub(crate) fn start_process(
    launch: &Launch,
    host: &SpawnEnv,
    spare: Option<Spare>,
    spawner: Option<&Spawner>,
) -> Result<(Started, Running), SpawnError> {
    prepare_files(launch)?;
    let (program, _) = launch.argv.split_first().ok_or(SpawnError::EmptyCommand)?;
    let user = tenant_user(launch)?;
    let Placement {
        name,
        spare,
        cgroup,
    } = place(launch, host, spare)?;
    let cleanup = |error: SpawnError| {
        if let Some(cgroup) = &cgroup {
            cgroup.remove();
        }
        error
    };
    let (argv, switch_user) = command_line(launch, host, program, user, &name).map_err(cleanup)?;
    let env = program_env(launch);
    tracing::debug!(instance = %launch.key, ?argv, spare = spare.is_some(), "spawning");
    let exec_failed = |source: io::Error| {
        if launch.isolation == Isolation::Sandbox
            && let Some(sandbox) = &host.sandbox
        {
            sandbox.cleanup(&name);
        }
        SpawnError::Exec {
            program: program.clone(),
            workdir: launch.workdir.clone(),
            source,
        }
    };
    let (pid, exit, cgroup, start_time) = match spare {
        Some(spare) => {
            let request = ExecRequest {
                argv,
                env,
                cwd: launch.workdir.clone(),
                stdout: launch.stdout.clone(),
                stderr: launch.stderr.clone(),
                user: switch_user,
            };
            // Noted before it is asked to become the tenant: a ten that dies after this finds
            // the entry; one that dies before never sends the request, and the spare exits.
            if let Err(error) = note_in_table(launch, host, spare.pid, &name) {
                spare.discard();
                return Err(error);
            }
            let spare_pid = spare.pid;
            let (pid, cgroup, exit) = spare.become_tenant(&request).map_err(|source| {
                unnote(host, launch, spare_pid);
                exec_failed(source)
            })?;
            (pid, exit, Some(cgroup), None)
        }
        None => {
            let request = spawner::Request {
                argv,
                env,
                cwd: launch.workdir.clone(),
                cgroup_procs: cgroup
                    .as_ref()
                    .map(|cgroup| cgroup.procs_files())
                    .unwrap_or_default()
                    .into_iter()
                    .map(|file| PathBuf::from(std::ffi::OsString::from_vec(file.into_bytes())))
                    .collect(),
                clone_into: cgroup
                    .as_ref()
                    .and_then(|cgroup| cgroup.v2_dir())
                    .map(Path::to_path_buf),
                stdout: Some(launch.stdout.clone()),
                stderr: Some(launch.stderr.clone()),
                user: switch_user,
            };
            // The child waits before its exec until its entry is written; an entry that
            // cannot be written withdraws the go-ahead, and the command never runs.
            let noted = std::cell::RefCell::new(None);
            let noted_pid = std::cell::Cell::new(None);
            let noted_start = std::cell::Cell::new(None);
            let admit = |pid: u32| {
                note_in_table(launch, host, pid, &name)
                    .map(|start_time| {
                        noted_pid.set(Some(pid));
                        noted_start.set(start_time);
                    })
                    .map_err(|error| {
                        let io = io::Error::other(error.to_string());
                        *noted.borrow_mut() = Some(error);
                        io
                    })
            };
            let through_spawner =
                spawner.and_then(|spawner| spawner.try_spawn(&request, Some(&admit)));
            let started = match through_spawner {
                Some(started) => started,
                None => {
                    let output = open_output(launch).map_err(cleanup)?;
                    fork_exec(launch, &request, output, cgroup.as_ref()).and_then(
                        // Forked by ten, it runs before it can be noted: stopped if it
                        // cannot be.
                        |(pid, exit)| match admit(pid) {
                            Ok(()) => Ok((pid, exit)),
                            Err(error) => {
                                super::signal::signal_group(pid, super::signal::GroupSignal::Kill);
                                Err(error)
                            }
                        },
                    )
                }
            };
            let (pid, exit) = started.map_err(|source| {
                if let Some(pid) = noted_pid.get() {
                    unnote(host, launch, pid);
                }
                match noted.take() {
                    Some(table) => cleanup(table),
                    None => cleanup(exec_failed(source)),
                }
            })?;
            (pid, exit, cgroup, noted_start.get())
        }
    };
    // Read once for its table entry, when it has one.
    let start_time = start_time.or_else(|| process_start_time(pid));
    Ok((
        Started {
            pid,
            start_time,
            exit,
        },
        Running {
            name,
            cgroup,
            sandboxed: launch.isolation == Isolation::Sandbox,
        },
    ))
}

/// Creates the data directory and the capture files' directory, and refuses to start over
/// the storage quota. The capture files themselves are created by what starts the process (a
/// spare, the spawner's child, or [`open_output`] for a fork of ten), which opens them
/// anyway: ten does not open them once more for nothing.
fn prepare_files(launch: &Launch) -> Result<(), SpawnError> {
    std::fs::create_dir_all(&launch.data_dir).map_err(|source| SpawnError::DataDir {
        path: launch.data_dir.clone(),
        source,
    })?;
    if let Some(quota_mb) = launch.storage_quota_mb {
        let used = usage_bytes(&launch.data_dir).unwrap_or(0);
        if used >= quota_mb.saturating_mul(1024 * 1024) {
            return Err(SpawnError::OverQuota {
                used_mb: megabytes(used),
                quota_mb,
            });
        }
    }
    let mut made: Option<&Path> = None;
    for path in [&launch.stdout, &launch.stderr] {
        let Some(parent) = path.parent() else {
            continue;
        };
        // Usually made when its capture was attached; both files are in the same one.
        if made != Some(parent) && !parent.is_dir() {
            std::fs::create_dir_all(parent).map_err(|source| SpawnError::Logs {
                path: path.clone(),
                source,
            })?;
        }
        made = Some(parent);
    }
    Ok(())
}

mod command;
mod error;
mod fork;
mod notes;
mod placement;

use command::{command_line, program_env, tenant_user};
use fork::{fork_exec, open_output};
use notes::{note_in_table, unnote};
use placement::{Placement, place};

pub(crate) use command::resolve_user;
pub use error::SpawnError;
pub(crate) use error::host_cannot_run;
pub(crate) use placement::unique_name;

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::desired::FieldMap;
    use crate::names::InstanceKey;
    use crate::runtime::adopt::{AdoptError, adopt_process};
    use crate::runtime::cgroup::Limits;
    use crate::runtime::proc::boot_id;
    use crate::runtime::reaper::ProcessExit;
    use crate::runtime::signal::{GroupSignal, signal_group};

    fn launch(dir: &Path, argv: &[&str]) -> Launch {
        Launch {
            key: InstanceKey::parse("test:one").unwrap(),
            argv: argv.iter().map(ToString::to_string).collect(),
            workdir: dir.to_path_buf(),
            config_dir: dir.to_path_buf(),
            env: vec![
                ("ONLY".into(), "this".into()),
                ("PATH".into(), "/usr/bin:/bin".into()),
            ],
            data_dir: dir.join("data/test/one"),
            stdout: dir.join("logs/stdout.raw"),
            stderr: dir.join("logs/stderr.raw"),
            port: 30001,
            spec: Arc::new(FieldMap::new()),
            isolation: Isolation::Process,
            limits: Limits::default(),
            storage_quota_mb: None,
            user: None,
            socket_dir: None,
            uid: None,
            gid: None,
        }
    }

    fn start(launch: &Launch, table: Option<&Path>) -> Result<Started, SpawnError> {
        let host = SpawnEnv {
            table: table.map(Path::to_path_buf),
            ..SpawnEnv::default()
        };
        start_process(launch, &host, None, None).map(|(started, _)| started)
    }

    #[tokio::test]
    async fn the_environment_is_exactly_the_given_one() {
        let dir = tempfile::tempdir().unwrap();
        let started = start(
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
        let started = start(
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
        let started = start(&launch(dir.path(), &["sleep", "1000"]), Some(&table)).unwrap();
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
        let error = start(&launch(dir.path(), &["./does-not-exist"]), None).unwrap_err();
        let message = error.to_string();
        assert!(
            message.starts_with("cannot run \"./does-not-exist\" in "),
            "{message}"
        );
        assert!(message.contains("No such file"), "{message}");
    }
}
