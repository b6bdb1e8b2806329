//! Command checks (`health_check = { exec = [...] }`): the command runs as the instance runs
//! (its environment, working directory, user and cgroup), in a process group of its own,
//! started by the spawner (ten is not forked for it) and reaped by the reaper like every child
//! (so none is left a zombie), and killed, group and all, when it outlasts `health_timeout`.
//! Only its exit status counts. The start happens on a blocking thread and the wait is a
//! future: a slow check never holds up another.

use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use super::probe::{ExecProbe, ProbeResult};
use super::reaper::ProcessExit;
use super::spawner::{Request, Spawner};

/// Runs `probe` through `spawner`, its command in the cgroup whose `cgroup.procs` files are
/// `procs` (created there when the cgroup is a v2 one, whose directory is `clone_into`).
pub(crate) async fn run_exec(
    probe: ExecProbe,
    timeout: Duration,
    procs: Vec<CString>,
    clone_into: Option<PathBuf>,
    spawner: Arc<Spawner>,
) -> ProbeResult {
    let shown = shell_words::join(&probe.argv);
    let not_started = |error: String| format!("`{shown}` could not be started: {error}");
    let request = request(probe, procs, clone_into).map_err(not_started)?;
    let (pid, exit) = tokio::task::spawn_blocking(move || spawner.spawn(&request))
        .await
        .map_err(|error| not_started(error.to_string()))?
        .map_err(|error| not_started(error.to_string()))?;
    match tokio::time::timeout(timeout, exit).await {
        Ok(Ok(exit)) if exit.is_clean() => Ok(()),
        Ok(Ok(exit)) => Err(format!("`{shown}` {}", ended(exit))),
        Ok(Err(_)) => Err(format!("`{shown}`: its exit status was lost")),
        Err(_) => {
            // Its whole group: a shell's children too. The reaper reaps them.
            let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
            Err(format!(
                "`{shown}` did not finish within health_timeout ({})",
                humantime::format_duration(timeout)
            ))
        }
    }
}

fn ended(exit: ProcessExit) -> String {
    match (exit.code, exit.signal) {
        (Some(code), _) => format!("exited with {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        (None, None) => "ended".into(),
    }
}

/// What the spawner is asked to start for `probe`.
fn request(
    probe: ExecProbe,
    procs: Vec<CString>,
    clone_into: Option<PathBuf>,
) -> Result<Request, String> {
    let user = match &probe.user {
        Some(user) => Some(super::process::resolve_user(user).map_err(|error| error.to_string())?),
        None => None,
    };
    Ok(Request {
        argv: probe.argv,
        env: probe.env,
        cwd: probe.workdir,
        cgroup_procs: procs
            .into_iter()
            .map(|file| PathBuf::from(OsString::from_vec(file.into_bytes())))
            .collect(),
        clone_into,
        stdout: None,
        stderr: None,
        user,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(script: &str) -> ExecProbe {
        ExecProbe {
            argv: vec!["sh".into(), "-c".into(), script.into()],
            env: vec![
                ("PATH".into(), "/usr/bin:/bin".into()),
                ("MARK".into(), "x".into()),
            ],
            workdir: std::env::temp_dir(),
            pid: None,
            user: None,
        }
    }

    #[tokio::test]
    async fn a_check_passes_on_exit_0_in_the_environment_it_is_given() {
        let second = Duration::from_secs(5);
        assert_eq!(
            run_exec(
                check("test \"$MARK\" = x"),
                second,
                Vec::new(),
                None,
                Arc::default()
            )
            .await,
            Ok(())
        );
        let error = run_exec(check("exit 3"), second, Vec::new(), None, Arc::default())
            .await
            .unwrap_err();
        assert!(error.ends_with("exited with 3"), "{error}");
    }

    #[tokio::test]
    async fn a_check_that_takes_too_long_is_killed_with_its_children() {
        let dir = tempfile::tempdir().unwrap();
        let pids = dir.path().join("pids");
        let script = format!("sleep 30 & echo $! > {}; wait", pids.display());
        let error = run_exec(
            check(&script),
            Duration::from_millis(300),
            Vec::new(),
            None,
            Arc::default(),
        )
        .await
        .unwrap_err();
        assert!(
            error.contains("did not finish within health_timeout"),
            "{error}"
        );
        let child: i32 = std::fs::read_to_string(&pids)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // The group was killed: the shell's background child is gone too (reaped, or an
        // orphan that the reaper of this test process will not see; either way not alive).
        let gone = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(10));
            !std::path::Path::new(&format!("/proc/{child}")).exists()
                || std::fs::read_to_string(format!("/proc/{child}/stat"))
                    .is_ok_and(|stat| stat.split_whitespace().nth(2) == Some("Z"))
        });
        assert!(gone, "the check's child {child} still runs");
    }
}
