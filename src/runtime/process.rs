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
//! Uses the rest of `runtime` (cgroups, spares, the spawner, the sandbox, the reaper, the
//! process table); none of what it uses imports it.

use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::oneshot;

use crate::config::Isolation;
use crate::names::InstanceKey;

use super::cgroup::{CgroupError, Cgroups, TenantCgroup, join_cgroup};
use super::launch::{Launch, Started};
use super::logs::open_for_tenant;
use super::proc::{boot_id, process_start_time};
use super::reaper::{ProcessExit, Reaper};
use super::sandbox::Sandbox;
use super::spare::{ExecRequest, Spare};
use super::spawner::{self, Spawner};
use super::storage::{megabytes, usage_bytes};
use super::table::{ProcessEntry, write_entry};

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

/// A name unique to one process of `key`, for its cgroup and sandbox.
fn process_name(key: &InstanceKey) -> String {
    unique_name(&format!("{}.{}", key.service, key.id))
}

/// `prefix.` and a suffix unique to this process of ten and over time.
pub(crate) fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let serial = NEXT.fetch_add(1, Ordering::Relaxed);
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_micros());
    format!("{prefix}.{micros:x}{serial:x}")
}

pub(crate) fn resolve_user(user: &str) -> Result<(u32, u32), SpawnError> {
    let found = match user.parse::<u32>() {
        Ok(uid) => nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)),
        Err(_) => nix::unistd::User::from_name(user),
    };
    match found {
        Ok(Some(found)) => Ok((found.uid.as_raw(), found.gid.as_raw())),
        _ => Err(SpawnError::NoSuchUser {
            user: user.to_string(),
        }),
    }
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

/// Opens the capture files the tenant's stdout and stderr append to, for a fork of ten.
fn open_output(launch: &Launch) -> Result<(File, File), SpawnError> {
    let open = |path: &Path| {
        open_for_tenant(path).map_err(|source| SpawnError::Logs {
            path: path.to_path_buf(),
            source,
        })
    };
    Ok((open(&launch.stdout)?, open(&launch.stderr)?))
}

/// The uid and gid of the tenant's `user`, if it has one; an isolation other than `process`
/// needs ten to run as root.
fn tenant_user(launch: &Launch) -> Result<Option<UserIds>, SpawnError> {
    let root = nix::unistd::geteuid().is_root();
    if launch.isolation != Isolation::Process && !root {
        return Err(SpawnError::NeedsRoot {
            isolation: launch.isolation.as_str(),
        });
    }
    launch.user.as_deref().map(resolve_user).transpose()
}

/// A user's uid and gid.
type UserIds = (u32, u32);

/// Where a new process runs: its name, and the spare it becomes or the cgroup it joins.
struct Placement {
    /// Names its cgroup and its sandbox container.
    name: String,
    /// A spare in its cgroup, with the tenant's limits in force.
    spare: Option<Spare>,
    /// A new cgroup of its own (with no spare, when cgroups are available).
    cgroup: Option<TenantCgroup>,
}

/// Takes `spare` (giving its cgroup the tenant's limits) when cgroups are available, else
/// creates a cgroup with them; limits without cgroups are an error.
fn place(launch: &Launch, host: &SpawnEnv, spare: Option<Spare>) -> Result<Placement, SpawnError> {
    let spare = spare.filter(|_| host.cgroups.is_some());
    let name = spare.as_ref().map_or_else(
        || process_name(&launch.key),
        |spare| spare.cgroup.name().to_string(),
    );
    let spare = match spare {
        Some(spare) => match spare.cgroup.set_limits(&launch.limits) {
            Ok(()) => Some(spare),
            Err(error) => {
                spare.discard();
                return Err(error.into());
            }
        },
        None => None,
    };
    let cgroup = match (&host.cgroups, launch.limits.any(), &spare) {
        (Some(_), _, Some(_)) => None,
        (Some(cgroups), _, None) => Some(cgroups.create(&name, &launch.limits)?),
        (None, true, _) => {
            return Err(SpawnError::NoCgroups(
                host.cgroups_missing
                    .clone()
                    .unwrap_or_else(|| "not root".into()),
            ));
        }
        (None, false, _) => None,
    };
    Ok(Placement {
        name,
        spare,
        cgroup,
    })
}

/// The command line executed for `isolation`, and the user to become between fork and exec:
/// the tenant's program as that user (`process`), ten's init in front of it (`namespace`),
/// or runsc with a bundle written for process `name` (`sandbox`); the init and the sandbox
/// make the tenant its user themselves.
fn command_line(
    launch: &Launch,
    host: &SpawnEnv,
    program: &str,
    user: Option<UserIds>,
    name: &str,
) -> Result<(Vec<String>, Option<UserIds>), SpawnError> {
    // A relative program with a slash is relative to the workdir, not to ten's.
    let program_path = if program.contains('/') && !program.starts_with('/') {
        launch.workdir.join(program).display().to_string()
    } else {
        program.to_string()
    };
    let mut tenant_argv = launch.argv.clone();
    tenant_argv[0] = program_path;
    match launch.isolation {
        Isolation::Process => Ok((tenant_argv, user)),
        Isolation::Namespace => {
            let init = host.init_program.as_ref().ok_or(SpawnError::NoInit)?;
            let mut argv = vec![init.display().to_string(), super::init::SUBCOMMAND.into()];
            if let Some((uid, gid)) = user {
                argv.extend([format!("--uid={uid}"), format!("--gid={gid}")]);
            }
            argv.push("--".into());
            argv.extend(tenant_argv);
            // The init needs root for the namespaces; the tenant becomes the user.
            Ok((argv, None))
        }
        Isolation::Sandbox => {
            let sandbox = host.sandbox.as_ref().ok_or(SpawnError::NoRunsc)?;
            let mut inside = launch.clone();
            inside.argv = tenant_argv;
            inside.uid = user.map(|(uid, _)| uid);
            inside.gid = user.map(|(_, gid)| gid);
            let argv = sandbox
                .prepare(&inside, name)
                .map_err(SpawnError::Sandbox)?;
            Ok((argv, None))
        }
    }
}

/// The environment of what is executed: the tenant's own, except for a sandbox, whose
/// tenant environment is in the bundle while runsc gets a plain one.
fn program_env(launch: &Launch) -> Vec<(String, String)> {
    if launch.isolation == Isolation::Sandbox {
        vec![(
            "PATH".into(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        )]
    } else {
        launch.env.clone()
    }
}

/// Forks ten and executes the request's `argv` with exactly its `env`, in a process group of
/// its own, stdin from /dev/null and `output` as stdout and stderr, joining `cgroup` and
/// becoming its `user` between fork and exec; through the reaper, which reports its exit.
/// The way without a spawner.
fn fork_exec(
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

/// Removes the entry of process `pid`, noted for a start that failed.
fn unnote(host: &SpawnEnv, launch: &Launch, pid: u32) {
    if let Some(table) = &host.table {
        super::table::remove_entry(table, &launch.key, pid);
    }
}

/// Notes process `pid` in the process table, for a restarted ten to adopt it: before it can
/// become the tenant (a spare before its request, a child of the spawner before its exec).
/// A process already gone is not noted. Returns the start time it read, if it did.
fn note_in_table(
    launch: &Launch,
    host: &SpawnEnv,
    pid: u32,
    name: &str,
) -> Result<Option<u64>, SpawnError> {
    let Some(table) = &host.table else {
        return Ok(None);
    };
    let Some(start_time) = process_start_time(pid) else {
        return Ok(None);
    };
    let entry = ProcessEntry {
        instance: launch.key.clone(),
        pid,
        start_time,
        boot_id: boot_id().to_string(),
        port: launch.port,
        started_at_unix: crate::observed::record::unix_now(),
        spec: Arc::clone(&launch.spec),
        name: Some(name.to_string()),
        sandboxed: launch.isolation == Isolation::Sandbox,
    };
    let written = write_entry(table, &entry);
    super::durable::report(super::durable::Kind::ProcessTable, &written);
    written
        .map(|()| Some(start_time))
        .map_err(|source| SpawnError::Table {
            dir: table.clone(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::FieldMap;
    use crate::runtime::adopt::{AdoptError, adopt_process};
    use crate::runtime::cgroup::Limits;
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
