//! Detaching `ten serve --daemon` from the terminal: fork, `setsid`, fork again (the daemon is
//! no session leader, so it can never get a controlling terminal back), stdin from /dev/null,
//! stdout and stderr to the log file, and the working directory `/`.
//!
//! Forking copies only the calling thread, so this must run before any other thread exists
//! (before the async runtime, rayon's pool, anything): [`daemonize`] checks it, and refuses
//! otherwise. The parent learns how the start went through a pipe: the daemon writes its pid,
//! then, once it listens, what it says when ready.

use std::fs::File;
use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::unistd::{ForkResult, Pid};

/// Which side of the fork this is.
pub(crate) enum Forked {
    /// The process that was started: it waits for the daemon's [`Report`].
    Parent(Report),
    /// The daemon: it tells the parent through [`ReadyPipe`].
    Daemon(ReadyPipe),
}

/// Forks the daemon. Only the calling process must exist as a thread.
pub(crate) fn daemonize() -> io::Result<Forked> {
    let threads = thread_count()?;
    if threads != 1 {
        return Err(io::Error::other(format!(
            "cannot detach: {threads} threads run already (forking copies only one)"
        )));
    }
    let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    // SAFETY: the process has one thread (checked above), so the child is a full copy of it
    // and may do anything the parent could.
    match unsafe { nix::unistd::fork() }? {
        ForkResult::Parent { child } => {
            drop(write);
            // The intermediate process exits as soon as it has forked the daemon.
            let _ = nix::sys::wait::waitpid(child, None);
            Ok(Forked::Parent(Report {
                pipe: File::from(read),
            }))
        }
        ForkResult::Child => {
            drop(read);
            // A session of its own: no controlling terminal, no SIGHUP when it closes.
            if nix::unistd::setsid().is_err() {
                exit_now(1);
            }
            // SAFETY: still one thread, as in the parent.
            match unsafe { nix::unistd::fork() } {
                Ok(ForkResult::Parent { .. }) => exit_now(0),
                Ok(ForkResult::Child) => {}
                Err(_) => exit_now(1),
            }
            let mut pipe = File::from(write);
            let _ = writeln!(pipe, "pid {}", std::process::id());
            Ok(Forked::Daemon(ReadyPipe { pipe: Some(pipe) }))
        }
    }
}

/// Ends the intermediate process without running anything of the parent's (atexit handlers,
/// buffered output, destructors).
fn exit_now(code: i32) -> ! {
    // SAFETY: _exit ends the process at once; it is always safe to call.
    unsafe { nix::libc::_exit(code) }
}

/// The number of threads of this process.
fn thread_count() -> io::Result<usize> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .and_then(|count| count.trim().parse().ok())
        .ok_or_else(|| io::Error::other("no thread count in /proc/self/status"))
}

/// Makes the daemon's standard streams /dev/null (stdin) and `log` (stdout, stderr), and its
/// working directory `/` (so that it keeps no directory busy). Paths it uses must be absolute
/// by then.
pub(crate) fn detach_streams(log: &File) -> io::Result<()> {
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    nix::unistd::dup2_stdin(&null)?;
    nix::unistd::dup2_stdout(log)?;
    nix::unistd::dup2_stderr(log)?;
    nix::unistd::chdir("/")?;
    Ok(())
}

/// The daemon's end of the pipe to the parent.
pub(crate) struct ReadyPipe {
    pipe: Option<File>,
}

impl ReadyPipe {
    /// Tells the parent the daemon is ready, with what it says then; the parent exits 0. Once:
    /// the pipe is closed after.
    pub(crate) fn ready(&mut self, message: &str) {
        if let Some(mut pipe) = self.pipe.take() {
            let _ = write!(pipe, "ready\n{message}");
        }
    }
}

/// How the daemon's start went, as the parent learns it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// It listens; what it said.
    Ready { pid: u32, message: String },
    /// It ended before it was ready (its pid, if it said it).
    Failed { pid: Option<u32> },
    /// It said nothing more within the time given.
    Silent { pid: Option<u32> },
}

/// The parent's end of the pipe.
pub(crate) struct Report {
    pipe: File,
}

impl Report {
    /// Waits until the daemon is ready or gone, at most `timeout`.
    pub(crate) fn wait(mut self, timeout: Duration) -> Outcome {
        let started = Instant::now();
        let mut received = Vec::new();
        let mut buffer = [0u8; 4096];
        let ended = loop {
            let left = timeout.saturating_sub(started.elapsed());
            let mut fds = [nix::poll::PollFd::new(
                std::os::fd::AsFd::as_fd(&self.pipe),
                nix::poll::PollFlags::POLLIN,
            )];
            let wait =
                nix::poll::PollTimeout::try_from(left).unwrap_or(nix::poll::PollTimeout::MAX);
            match nix::poll::poll(&mut fds, wait) {
                Ok(0) => break false,
                Ok(_) => {}
                Err(Errno::EINTR) => continue,
                Err(_) => break true,
            }
            match self.pipe.read(&mut buffer) {
                Ok(0) => break true,
                Ok(read) => received.extend_from_slice(&buffer[..read]),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break true,
            }
        };
        parse_report(&String::from_utf8_lossy(&received), ended)
    }
}

/// What the daemon wrote: `pid N` on the first line, then `ready` and its message.
fn parse_report(text: &str, ended: bool) -> Outcome {
    let (first, rest) = text.split_once('\n').unwrap_or((text, ""));
    let pid = first
        .strip_prefix("pid ")
        .and_then(|pid| pid.trim().parse::<u32>().ok());
    match (pid, rest.strip_prefix("ready\n")) {
        (Some(pid), Some(message)) if ended => Outcome::Ready {
            pid,
            message: message.to_string(),
        },
        _ if ended => Outcome::Failed { pid },
        _ => Outcome::Silent { pid },
    }
}

/// Whether `pid` is alive, for a parent that waited in vain.
pub(crate) fn alive(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    nix::sys::signal::kill(Pid::from_raw(raw), None).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The parent's end of a pipe the daemon wrote `text` to and closed.
    fn report_from(text: &str) -> Report {
        let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).unwrap();
        let mut write = File::from(write);
        write.write_all(text.as_bytes()).unwrap();
        drop(write);
        Report {
            pipe: File::from(read),
        }
    }

    #[test]
    fn a_process_with_threads_is_not_forked() {
        // The test harness runs this test on a thread of its own: two threads at least.
        let _other = std::thread::spawn(std::thread::park);
        match daemonize() {
            Err(error) => assert!(error.to_string().contains("threads run already"), "{error}"),
            Ok(_) => panic!("forked a threaded process"),
        }
    }

    #[test]
    fn the_parent_reads_the_pid_and_the_ready_message() {
        assert_eq!(
            report_from("pid 42\nready\nlistening on http://127.0.0.1:1\n")
                .wait(Duration::from_secs(5)),
            Outcome::Ready {
                pid: 42,
                message: "listening on http://127.0.0.1:1\n".into()
            }
        );
        assert_eq!(
            report_from("pid 42\n").wait(Duration::from_secs(5)),
            Outcome::Failed { pid: Some(42) }
        );
        assert_eq!(
            report_from("").wait(Duration::from_secs(5)),
            Outcome::Failed { pid: None }
        );
    }

    #[test]
    fn a_daemon_that_says_nothing_more_is_waited_for_only_so_long() {
        // The pipe stays open and silent: the wait ends at its timeout (50 ms, real time).
        let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).unwrap();
        let mut write = File::from(write);
        write.write_all(b"pid 7\n").unwrap();
        let report = Report {
            pipe: File::from(read),
        };
        assert_eq!(
            report.wait(Duration::from_millis(50)),
            Outcome::Silent { pid: Some(7) }
        );
        drop(write);
    }
}
