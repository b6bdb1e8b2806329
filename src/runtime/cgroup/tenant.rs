//! The cgroup of one tenant process: joining it (between fork and exec), its members,
//! killing them all, removing it, and what it has used.
//!
//! Imports `v2` of `cgroup`; putting limits in force is `limits`' part.

use std::ffi::CString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cgroups_rs::fs::cgroup::Cgroup;
use cgroups_rs::fs::cpuacct::CpuAcctController;
use cgroups_rs::fs::memory::MemController;
use cgroups_rs::fs::pid::PidController;

use super::v2::cgroup_v2_dir;

/// What a tenant's cgroup has used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CgroupUsage {
    pub memory_bytes: Option<u64>,
    pub cpu_usec: Option<u64>,
    pub tasks: Option<u64>,
    /// Processes killed by the OOM killer for exceeding the memory limit.
    pub oom_kills: Option<u64>,
}

/// The cgroup of one tenant process.
#[derive(Debug)]
pub struct TenantCgroup {
    name: String,
    pub(super) path: String,
    pub(super) cgroup: Cgroup,
    /// Its directory in each hierarchy.
    pub(super) dirs: Vec<PathBuf>,
}

impl TenantCgroup {
    pub(super) fn new(name: String, path: String, cgroup: Cgroup) -> TenantCgroup {
        let mut dirs: Vec<PathBuf> = cgroup
            .subsystems()
            .iter()
            .map(|subsystem| subsystem.to_controller().path().to_path_buf())
            .collect();
        if cgroup.v2() && dirs.is_empty() {
            // No controller at all: the cgroup is still a place to track processes.
            dirs.push(cgroup_v2_dir(&cgroup));
        }
        dirs.sort();
        dirs.dedup();
        TenantCgroup {
            name,
            path,
            cgroup,
            dirs,
        }
    }

    /// Its name under the data directory's parent (recorded in the process table).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The `cgroup.procs` files a process writes `0` to, to join this cgroup (in every
    /// hierarchy), ready for use between fork and exec.
    pub fn procs_files(&self) -> Vec<CString> {
        self.dirs
            .iter()
            .filter_map(|dir| {
                CString::new(
                    dir.join("cgroup.procs")
                        .into_os_string()
                        .into_encoded_bytes(),
                )
                .ok()
            })
            .collect()
    }

    /// Its directory when it is a v2 cgroup: a process can be created in it (`clone3` with
    /// `CLONE_INTO_CGROUP`) instead of moving there.
    pub fn v2_dir(&self) -> Option<&Path> {
        if self.cgroup.v2() {
            self.dirs.first().map(PathBuf::as_path)
        } else {
            None
        }
    }

    /// The processes in it (from its first hierarchy; every process is in all of them).
    pub fn pids(&self) -> Vec<u32> {
        self.dirs
            .first()
            .and_then(|dir| fs::read_to_string(dir.join("cgroup.procs")).ok())
            .map(|text| {
                text.lines()
                    .filter_map(|line| line.trim().parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Kills every process in it, however it got there and whatever session it made for
    /// itself. Blocking (at most a few milliseconds while members fork).
    pub fn kill_all(&self) {
        if self.cgroup.v2() {
            let kill = cgroup_v2_dir(&self.cgroup).join("cgroup.kill");
            if kill.exists() && fs::write(&kill, "1").is_ok() {
                return;
            }
        }
        // SIGKILL to each member until none is left (new ones may fork meanwhile, bounded
        // by the pids limit).
        for _ in 0..1000 {
            let pids = self.pids();
            if pids.is_empty() {
                return;
            }
            for pid in pids {
                if let Ok(pid) = i32::try_from(pid) {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        tracing::warn!(cgroup = %self.path, "processes are still alive after repeated SIGKILL");
    }

    /// Removes the cgroup once its processes are gone (they may take a moment to be reaped).
    /// Returns whether it is gone.
    pub fn remove(&self) -> bool {
        for _ in 0..200 {
            if self.dirs.iter().all(|dir| !dir.exists()) {
                return true;
            }
            let _ = self.cgroup.delete();
            for dir in &self.dirs {
                let _ = fs::remove_dir(dir);
            }
            if self.dirs.iter().all(|dir| !dir.exists()) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        tracing::warn!(cgroup = %self.path, "cannot remove the cgroup");
        false
    }

    /// What its processes use now. Reads only the few files it needs (cgroups-rs's statistics
    /// read a dozen files per controller): this runs for every tenant at every health check.
    pub fn usage(&self) -> CgroupUsage {
        use cgroups_rs::fs::Controller;
        let v2 = self.cgroup.v2();
        let mut usage = CgroupUsage::default();
        if let Some(memory) = self.cgroup.controller_of::<MemController>() {
            let dir = memory.path();
            let (current, events, key) = if v2 {
                ("memory.current", "memory.events", "oom_kill")
            } else {
                ("memory.usage_in_bytes", "memory.oom_control", "oom_kill")
            };
            usage.memory_bytes = read_number(&dir.join(current));
            usage.oom_kills = Some(read_key(&dir.join(events), key).unwrap_or(0));
        }
        usage.cpu_usec = if v2 {
            read_key(&cgroup_v2_dir(&self.cgroup).join("cpu.stat"), "usage_usec")
        } else {
            self.cgroup
                .controller_of::<CpuAcctController>()
                .and_then(|cpuacct| read_number(&cpuacct.path().join("cpuacct.usage")))
                .map(|nanos| nanos / 1000)
        };
        usage.tasks = self
            .cgroup
            .controller_of::<PidController>()
            .and_then(|pids| read_number(&pids.path().join("pids.current")));
        usage
    }
}

/// Moves the process `pid` into the cgroup whose `cgroup.procs` files are `files`.
pub(crate) fn move_to_cgroup(files: &[CString], pid: u32) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    for file in files {
        let path = std::path::Path::new(std::ffi::OsStr::from_bytes(file.as_bytes()));
        fs::write(path, pid.to_string())?;
    }
    Ok(())
}

/// Joins the cgroup whose `cgroup.procs` files are `files` ([`TenantCgroup::procs_files`]):
/// for use between fork and exec (only system calls, no allocation).
pub(crate) fn join_cgroup(files: &[CString]) -> io::Result<()> {
    for file in files {
        // SAFETY: plain system calls on a NUL-terminated path and a static buffer.
        unsafe {
            let fd = nix::libc::open(file.as_ptr(), nix::libc::O_WRONLY | nix::libc::O_CLOEXEC);
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            let written = nix::libc::write(fd, b"0".as_ptr().cast(), 1);
            let error = io::Error::last_os_error();
            nix::libc::close(fd);
            if written != 1 {
                return Err(error);
            }
        }
    }
    Ok(())
}

/// A file holding one number.
fn read_number(path: &Path) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// `KEY VALUE` lines (memory.events, cpu.stat): the value of `key`.
fn read_key(path: &Path, key: &str) -> Option<u64> {
    fs::read_to_string(path).ok()?.lines().find_map(|line| {
        let (name, value) = line.split_once(' ')?;
        (name == key).then(|| value.trim().parse().ok())?
    })
}
