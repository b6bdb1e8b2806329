//! Command checks (`health_check = { exec = [...] }`): the command runs as the instance runs
//! (its environment, working directory, user and cgroup), in a process group of its own,
//! started through the reaper like every child (so none is left a zombie) and killed, group
//! and all, when it outlasts `health_timeout`. Only its exit status counts. The fork happens
//! on a blocking thread and the wait is a future: a slow check never holds up another.

use std::ffi::CString;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use super::cgroup::join_cgroup;
use super::probe::{ExecProbe, ProbeResult};
use super::reaper::{ProcessExit, Reaper};

/// Runs `probe`, its command joining the cgroup whose `cgroup.procs` files are `procs`.
pub(crate) async fn run_exec(
    probe: ExecProbe,
    timeout: Duration,
    procs: Vec<CString>,
) -> ProbeResult {
    let shown = shell_words::join(&probe.argv);
    let started = tokio::task::spawn_blocking(move || spawn(&probe, procs))
        .await
        .map_err(|error| format!("`{shown}` could not be started: {error}"))?;
    let (pid, exit) =
        started.map_err(|error| format!("`{shown}` could not be started: {error}"))?;
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

/// Forks and execs the check. Blocking.
fn spawn(
    probe: &ExecProbe,
    procs: Vec<CString>,
) -> io::Result<(u32, tokio::sync::oneshot::Receiver<ProcessExit>)> {
    let user = match &probe.user {
        Some(user) => Some(
            super::process::resolve_user(user)
                .map_err(|error| io::Error::other(error.to_string()))?,
        ),
        None => None,
    };
    let mut command = Command::new(&probe.argv[0]);
    command
        .args(&probe.argv[1..])
        .env_clear()
        .envs(probe.env.iter().map(|(name, value)| (name, value)))
        .current_dir(&probe.workdir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    // SAFETY: the closure only makes system calls (no allocation, no locks).
    unsafe {
        command.pre_exec(move || {
            join_cgroup(&procs)?;
            if let Some((uid, gid)) = user {
                super::process::become_user(uid, gid)?;
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
            run_exec(check("test \"$MARK\" = x"), second, Vec::new()).await,
            Ok(())
        );
        let error = run_exec(check("exit 3"), second, Vec::new())
            .await
            .unwrap_err();
        assert!(error.ends_with("exited with 3"), "{error}");
    }

    #[tokio::test]
    async fn a_check_that_takes_too_long_is_killed_with_its_children() {
        let dir = tempfile::tempdir().unwrap();
        let pids = dir.path().join("pids");
        let script = format!("sleep 30 & echo $! > {}; wait", pids.display());
        let error = run_exec(check(&script), Duration::from_millis(300), Vec::new())
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
