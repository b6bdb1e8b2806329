//! ten's own directory in the data directory (`.ten/`) and its lock, held while a server
//! runs so that two never supervise the same tenants; who holds it when no live server is
//! recorded, and which server runs with a data directory. Imports `info` (the pid a running
//! server recorded); must not import `prepare` or `run`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::info::read_serve_info;
use super::options::{ServeError, io};

/// ten's own files in the data directory: `.ten/` (a tenant's directory is a DNS label, so
/// it can never be called that). `lock`: held by the running server; `processes/`: the
/// process table; `capture/` and `logs/`: tenant output.
pub(super) fn ten_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(".ten")
}

/// How long a start waits for the data directory's lock when no live server is recorded:
/// the lock outlives a server killed with kill -9 for as long as a process it was forking
/// when it died (the lock's descriptor closes at the child's exec) takes to get there.
const RELEASE_PATIENCE: Duration = Duration::from_secs(5);

/// Holds `{data_dir}/.ten/lock` while the server runs, so two servers never supervise the
/// same tenants. Released by the kernel however ten ends (even kill -9), once every process
/// that shares its descriptor closed it.
pub(super) fn lock_data_dir(
    data_dir: &Path,
) -> Result<nix::fcntl::Flock<std::fs::File>, ServeError> {
    lock_data_dir_within(data_dir, RELEASE_PATIENCE)
}

/// As [`lock_data_dir`]: refused at once while a live server is recorded; otherwise the lock
/// is tried again for `patience` (the holder is likely going) before the start is refused,
/// naming who holds it.
fn lock_data_dir_within(
    data_dir: &Path,
    patience: Duration,
) -> Result<nix::fcntl::Flock<std::fs::File>, ServeError> {
    use nix::fcntl::{Flock, FlockArg};
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let dir = ten_dir(data_dir);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .and_then(|()| std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)))
        .map_err(io(format!("cannot create {}", dir.display())))?;
    let path = dir.join("lock");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io(format!("cannot open {}", path.display())))?;
    let began = Instant::now();
    let mut told = false;
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Ok(lock),
            Err((_, errno)) if errno != nix::errno::Errno::EWOULDBLOCK => {
                return Err(ServeError::Io {
                    context: format!("cannot lock {}", path.display()),
                    source: std::io::Error::from(errno),
                });
            }
            Err((busy, _)) => file = busy,
        }
        let pid = read_serve_info(data_dir).map(|info| info.pid);
        if pid.is_some() || began.elapsed() >= patience {
            return Err(ServeError::AlreadyRunning {
                data_dir: data_dir.to_path_buf(),
                pid,
                held_by: pid.is_none().then(|| lock_holders(&file)).flatten(),
            });
        }
        if !told {
            told = true;
            tracing::info!(
                data_dir = %data_dir.display(),
                "the data directory's lock is held though no live server is recorded; waiting up to {}s for it to be released",
                patience.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The server that runs with `data_dir`, as its pid: the one its `serve.json` names, if that
/// process has the data directory's lock open (a process that got a dead server's pid has
/// not). Takes no lock, so a server starting meanwhile is never refused for it.
pub(crate) fn data_dir_server(data_dir: &Path) -> Option<u32> {
    let info = read_serve_info(data_dir)?;
    let lock = std::fs::File::open(ten_dir(data_dir).join("lock")).ok()?;
    let metadata = lock.metadata().ok()?;
    crate::runtime::proc::has_open(info.pid, &metadata).then_some(info.pid)
}

/// The processes that hold `file` open besides this one, as `pid N (command line)`,
/// comma-separated: who holds the data directory's lock when no live server is recorded.
fn lock_holders(file: &std::fs::File) -> Option<String> {
    let holders: Vec<String> = crate::runtime::proc::processes_holding(file)
        .into_iter()
        .map(|(pid, command)| format!("pid {pid} ({command})"))
        .collect();
    (!holders.is_empty()).then(|| holders.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A process that is no ten serve holding the lock of a fresh data directory (as a child
    /// that inherited it would) for `seconds`; its group is killed and reaped when dropped,
    /// even when an assertion fails first.
    struct Holder {
        child: Option<std::process::Child>,
        dir: tempfile::TempDir,
    }

    impl Holder {
        /// Returns once the holder has the lock.
        fn start(seconds: &str) -> Holder {
            use std::os::unix::process::CommandExt;
            let dir = tempfile::tempdir().unwrap();
            let lock = ten_dir(dir.path()).join("lock");
            std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
            std::fs::write(&lock, "").unwrap();
            // `--close`: only flock holds it, not the sleep it runs; a group of their own, so
            // both are killed together.
            let child = std::process::Command::new("flock")
                .args(["--exclusive", "--close"])
                .arg(&lock)
                .args(["sleep", seconds])
                .process_group(0)
                .spawn()
                .unwrap();
            let holder = Holder {
                child: Some(child),
                dir,
            };
            let deadline = Instant::now() + Duration::from_secs(10);
            while let Ok(taken) = lock_data_dir_within(holder.dir.path(), Duration::ZERO) {
                drop(taken);
                assert!(Instant::now() < deadline, "flock never took the lock");
                std::thread::sleep(Duration::from_millis(5));
            }
            holder
        }

        fn pid(&self) -> u32 {
            self.child.as_ref().map_or(0, std::process::Child::id)
        }

        /// Kills the holder's group and reaps it.
        fn stop(&mut self) {
            if let Some(mut child) = self.child.take() {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(child.id() as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
                let _ = child.wait();
            }
        }
    }

    impl Drop for Holder {
        fn drop(&mut self) {
            self.stop();
        }
    }

    #[test]
    fn a_lock_held_without_a_live_server_names_its_holder() {
        let mut holder = Holder::start("30");
        let pid = holder.pid();
        let dir = holder.dir.path().to_path_buf();
        let refused = lock_data_dir_within(&dir, Duration::from_millis(100))
            .expect_err("the lock is held")
            .to_string();
        holder.stop();
        assert!(refused.contains("already runs"), "{refused}");
        assert!(
            refused.contains(&format!(
                "its lock is held by pid {pid} (flock --exclusive --close"
            )),
            "{refused}"
        );
        assert!(
            lock_data_dir_within(&dir, Duration::ZERO).is_ok(),
            "the lock is free once its holder is gone"
        );
    }

    /// A server killed while it forked leaves the lock with the child until its exec: the
    /// next start waits for that rather than refusing (seen in CI after kill -9).
    #[test]
    fn a_lock_released_soon_after_without_a_live_server_is_waited_for() {
        let holder = Holder::start("0.4");
        let began = Instant::now();
        let taken = lock_data_dir(holder.dir.path());
        assert!(
            taken.is_ok(),
            "refused after {:?}: {}",
            began.elapsed(),
            taken
                .err()
                .map(|error| error.to_string())
                .unwrap_or_default()
        );
    }
}
