//! ten's own directory in the data directory (`.ten/`) and its lock, held while a server
//! runs so that two never supervise the same tenants; who holds it when no live server is
//! recorded, and which server runs with a data directory. Imports `info` (the pid a running
//! server recorded); must not import `prepare` or `run`.

use std::path::{Path, PathBuf};

use super::info::read_serve_info;
use super::options::{ServeError, io};

/// ten's own files in the data directory: `.ten/` (a tenant's directory is a DNS label, so
/// it can never be called that). `lock`: held by the running server; `processes/`: the
/// process table; `capture/` and `logs/`: tenant output.
pub(super) fn ten_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(".ten")
}

/// Holds `{data_dir}/.ten/lock` while the server runs, so two servers never supervise the
/// same tenants. Released by the kernel however ten ends (even kill -9).
pub(super) fn lock_data_dir(
    data_dir: &Path,
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
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io(format!("cannot open {}", path.display())))?;
    Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(file, errno)| {
        if errno == nix::errno::Errno::EWOULDBLOCK {
            let pid = read_serve_info(data_dir).map(|info| info.pid);
            ServeError::AlreadyRunning {
                data_dir: data_dir.to_path_buf(),
                pid,
                held_by: pid.is_none().then(|| lock_holders(&file)).flatten(),
            }
        } else {
            ServeError::Io {
                context: format!("cannot lock {}", path.display()),
                source: std::io::Error::from(errno),
            }
        }
    })
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

    #[test]
    fn a_lock_held_without_a_live_server_names_its_holder() {
        let dir = tempfile::tempdir().unwrap();
        let lock = ten_dir(dir.path()).join("lock");
        std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
        std::fs::write(&lock, "").unwrap();
        // A process that is no ten serve holds the lock (as a child that inherited it would).
        use std::os::unix::process::CommandExt;
        // `--close`: only flock holds it, not the sleep it runs; a group of their own, so
        // both are killed together.
        let holder = std::process::Command::new("flock")
            .args(["--exclusive", "--close"])
            .arg(&lock)
            .args(["sleep", "30"])
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = holder.id();
        /// Kills the holder's group and reaps it, even when an assertion fails first.
        struct Holder(std::process::Child);
        impl Drop for Holder {
            fn drop(&mut self) {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(self.0.id() as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
                let _ = self.0.wait();
            }
        }
        let holder = Holder(holder);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let refused = loop {
            match lock_data_dir(dir.path()) {
                Err(error) => break error.to_string(),
                Ok(taken) => {
                    drop(taken);
                    assert!(
                        std::time::Instant::now() < deadline,
                        "flock never took the lock"
                    );
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
            }
        };
        drop(holder);
        assert!(refused.contains("already runs"), "{refused}");
        assert!(
            refused.contains(&format!(
                "its lock is held by pid {pid} (flock --exclusive --close"
            )),
            "{refused}"
        );
        assert!(
            lock_data_dir(dir.path()).is_ok(),
            "the lock is free once its holder is gone"
        );
    }
}
