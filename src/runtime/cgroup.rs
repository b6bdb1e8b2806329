//! Control groups: every tenant process runs in a cgroup of its own, under a parent that
//! belongs to this data directory (`ten/<8 hex of the data dir>` at the root of each
//! hierarchy), with its limits in force before it runs a single instruction of its own.
//!
//! cgroup v2 (one unified hierarchy, the usual case on production hosts) and v1 (one
//! hierarchy per controller, as on this machine) are both supported: on v2 a tenant cgroup
//! has the `memory`, `pids` and `cpu` controllers; on v1 it is created in the `memory`,
//! `pids`, `cpu` and `cpuacct` hierarchies. Limits and statistics go through cgroups-rs; the
//! v2 cgroup itself is created here (cgroups-rs assumes v2 is mounted at /sys/fs/cgroup,
//! which a test tree is not), and so is killing every member (v2 `cgroup.kill`, or SIGKILL to
//! each member until none is left on v1).
//!
//! A limit that cannot be enforced is an error, never a warning: a missing controller, or a
//! value the kernel refuses, fails the spawn with a message that says which.
//!
//! The process joins its cgroup between fork and exec ([`TenantCgroup::procs_files`] are
//! written by the child itself), so nothing it starts can escape, not even with `setsid`.

use std::collections::BTreeSet;
use std::ffi::CString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cgroups_rs::fs::cgroup::Cgroup;
use cgroups_rs::fs::cpu::CpuController;
use cgroups_rs::fs::cpuacct::CpuAcctController;
use cgroups_rs::fs::hierarchies::V1;
use cgroups_rs::fs::memory::MemController;
use cgroups_rs::fs::pid::PidController;
use cgroups_rs::fs::{Controllers, Hierarchy, MaxValue, Resources, Subsystem};

/// The pids limit of a tenant that does not set `pids_limit` (threads count too).
pub const DEFAULT_PIDS_LIMIT: u64 = 1024;
const V1_CONTROLLERS: [&str; 4] = ["memory", "pids", "cpu", "cpuacct"];
const V2_CONTROLLERS: [&str; 3] = ["memory", "pids", "cpu"];

/// What a tenant's cgroup enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    pub memory_mb: Option<u64>,
    pub cpu_shares: Option<u64>,
    /// `None`: [`DEFAULT_PIDS_LIMIT`].
    pub pids: Option<u64>,
}

impl Limits {
    /// Whether the config asks for any limit (without cgroups, that is an error).
    pub fn any(&self) -> bool {
        self.memory_mb.is_some() || self.cpu_shares.is_some() || self.pids.is_some()
    }
}

/// What a tenant's cgroup has used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CgroupUsage {
    pub memory_bytes: Option<u64>,
    pub cpu_usec: Option<u64>,
    pub tasks: Option<u64>,
    /// Processes killed by the OOM killer for exceeding the memory limit.
    pub oom_kills: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cgroups are not available: {0}")]
    Unavailable(String),
    #[error("cannot create the cgroup {path}: {message}")]
    Create { path: String, message: String },
    #[error("cannot enforce {what} in the cgroup {path}: {message}")]
    Limit {
        what: String,
        path: String,
        message: String,
    },
}

/// Which cgroup hierarchy layout the host has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    V1,
    /// The unified hierarchy, mounted at `root`.
    V2 {
        root: PathBuf,
    },
}

/// The cgroups of one data directory's tenants.
#[derive(Debug, Clone)]
pub struct Cgroups {
    layout: Layout,
    /// Relative to each hierarchy's root: `ten/<hash>`.
    parent: String,
}

/// The unified hierarchy at any mount point (cgroups-rs's own `V2` only knows
/// /sys/fs/cgroup).
#[derive(Debug, Clone)]
struct Unified {
    root: PathBuf,
}

impl Hierarchy for Unified {
    fn subsystems(&self) -> Vec<Subsystem> {
        let controllers =
            fs::read_to_string(self.root.join("cgroup.controllers")).unwrap_or_default();
        let mut subsystems = Vec::new();
        for name in controllers.split_whitespace() {
            let root = self.root.clone();
            let base = PathBuf::new();
            match name {
                "memory" => subsystems.push(Subsystem::Mem(MemController::new(root, base, true))),
                "pids" => subsystems.push(Subsystem::Pid(PidController::new(root, base, true))),
                "cpu" => subsystems.push(Subsystem::Cpu(CpuController::new(root, base, true))),
                _ => {}
            }
        }
        subsystems
    }

    fn root(&self) -> PathBuf {
        self.root.clone()
    }

    fn root_control_group(&self) -> Cgroup {
        Cgroup::load(Box::new(self.clone()), "")
    }

    fn parent_control_group(&self, path: &str) -> Cgroup {
        let parent = Path::new(path)
            .parent()
            .map(|parent| parent.to_string_lossy().into_owned())
            .unwrap_or_default();
        Cgroup::load(Box::new(self.clone()), parent)
    }

    fn v2(&self) -> bool {
        true
    }
}

/// The v1 hierarchies, limited to the controllers ten uses.
#[derive(Debug)]
struct Selected(V1);

impl Hierarchy for Selected {
    fn subsystems(&self) -> Vec<Subsystem> {
        self.0
            .subsystems()
            .into_iter()
            .filter(|subsystem| V1_CONTROLLERS.contains(&subsystem.controller_name().as_str()))
            .collect()
    }

    fn root(&self) -> PathBuf {
        self.0.root()
    }

    fn root_control_group(&self) -> Cgroup {
        Cgroup::load(Box::new(Selected(V1::new())), "")
    }

    fn parent_control_group(&self, path: &str) -> Cgroup {
        let parent = Path::new(path)
            .parent()
            .map(|parent| parent.to_string_lossy().into_owned())
            .unwrap_or_default();
        Cgroup::load(Box::new(Selected(V1::new())), parent)
    }

    fn v2(&self) -> bool {
        false
    }
}

fn is_cgroup2(path: &Path) -> bool {
    nix::sys::statfs::statfs(path)
        .is_ok_and(|stat| stat.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
}

impl Cgroups {
    /// Finds the host's cgroup hierarchies and makes the parent of this data directory's
    /// tenants (`owner` names it). Needs root (or a delegated hierarchy).
    pub fn detect(owner: &str) -> Result<Cgroups, CgroupError> {
        let root = Path::new("/sys/fs/cgroup");
        let layout = if is_cgroup2(root) {
            Layout::V2 {
                root: root.to_path_buf(),
            }
        } else {
            let v1 = V1::new();
            let missing: Vec<&str> = [
                (Controllers::Mem, "memory"),
                (Controllers::Pids, "pids"),
                (Controllers::Cpu, "cpu"),
                (Controllers::CpuAcct, "cpuacct"),
            ]
            .into_iter()
            .filter(|(controller, _)| v1.get_mount_point(controller.clone()).is_none())
            .map(|(_, name)| name)
            .collect();
            if !missing.is_empty() {
                return Err(CgroupError::Unavailable(format!(
                    "no cgroup v2 at /sys/fs/cgroup and no v1 hierarchy for {}",
                    missing.join(", ")
                )));
            }
            Layout::V1
        };
        let cgroups = Cgroups::with_layout(layout, owner);
        cgroups.ensure_parent()?;
        Ok(cgroups)
    }

    /// Cgroups in a given layout (tests use a v2 tree in a temporary directory).
    pub fn with_layout(layout: Layout, owner: &str) -> Cgroups {
        Cgroups {
            layout,
            parent: format!("ten/{owner}"),
        }
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    fn hierarchy(&self) -> Box<dyn Hierarchy> {
        match &self.layout {
            Layout::V1 => Box::new(Selected(V1::new())),
            Layout::V2 { root } => Box::new(Unified { root: root.clone() }),
        }
    }

    /// Creates the parent (and on v2 hands the controllers down to it).
    fn ensure_parent(&self) -> Result<(), CgroupError> {
        match &self.layout {
            Layout::V1 => {
                let parent = Cgroup::load(self.hierarchy(), &self.parent);
                parent.create().map_err(|error| CgroupError::Create {
                    path: self.parent.clone(),
                    message: error.to_string(),
                })
            }
            Layout::V2 { root } => {
                let mut dir = root.clone();
                enable_v2_controllers(&dir, &self.parent)?;
                for part in self.parent.split('/') {
                    dir.push(part);
                    fs::create_dir_all(&dir).map_err(|error| CgroupError::Create {
                        path: dir.display().to_string(),
                        message: error.to_string(),
                    })?;
                    enable_v2_controllers(&dir, &self.parent)?;
                }
                Ok(())
            }
        }
    }

    fn path_of(&self, name: &str) -> String {
        format!("{}/{name}", self.parent)
    }

    /// Creates the cgroup `name` with `limits` in force. On any failure nothing is left
    /// behind.
    pub fn create(&self, name: &str, limits: &Limits) -> Result<TenantCgroup, CgroupError> {
        let path = self.path_of(name);
        let created = match &self.layout {
            Layout::V1 => {
                let cgroup = Cgroup::load(self.hierarchy(), &path);
                cgroup
                    .create()
                    .map(|()| cgroup)
                    .map_err(|error| error.to_string())
            }
            Layout::V2 { root } => fs::create_dir_all(root.join(&path))
                .map(|()| Cgroup::load(self.hierarchy(), &path))
                .map_err(|error| error.to_string()),
        };
        let cgroup = created.map_err(|message| CgroupError::Create {
            path: path.clone(),
            message,
        })?;
        let tenant = TenantCgroup::new(name.to_string(), path, cgroup);
        if let Err(error) = tenant.apply(limits) {
            tenant.remove();
            return Err(error);
        }
        Ok(tenant)
    }

    /// The cgroup `name` as it is (of a process adopted from an earlier ten).
    pub fn open(&self, name: &str) -> TenantCgroup {
        let path = self.path_of(name);
        TenantCgroup::new(
            name.to_string(),
            path.clone(),
            Cgroup::load(self.hierarchy(), &path),
        )
    }

    /// The parent's directory in each hierarchy.
    fn parent_dirs(&self) -> Vec<PathBuf> {
        match &self.layout {
            Layout::V2 { root } => vec![root.join(&self.parent)],
            Layout::V1 => {
                let v1 = V1::new();
                [
                    Controllers::Mem,
                    Controllers::Pids,
                    Controllers::Cpu,
                    Controllers::CpuAcct,
                ]
                .into_iter()
                .filter_map(|controller| v1.get_mount_point(controller))
                .map(|(mount, _)| mount.join(&self.parent))
                .collect()
            }
        }
    }

    /// Removes the parent if no tenant cgroup is left in it (at shutdown).
    pub fn remove_parent_if_empty(&self) {
        for dir in self.parent_dirs() {
            let _ = fs::remove_dir(dir);
        }
    }

    /// Removes the empty cgroups of this data directory that are not in `keep` (left by a
    /// ten that died). Call only while holding the data directory.
    pub fn remove_unused(&self, keep: &BTreeSet<String>) {
        let Some(dir) = self.parent_dirs().into_iter().next() else {
            return;
        };
        let Ok(listing) = fs::read_dir(&dir) else {
            return;
        };
        for entry in listing.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.path().is_dir() && !keep.contains(&name) {
                let cgroup = self.open(&name);
                if cgroup.pids().is_empty() {
                    cgroup.remove();
                }
            }
        }
    }
}

/// Hands `memory`, `pids` and `cpu` down from `dir` to its children.
fn enable_v2_controllers(dir: &Path, parent: &str) -> Result<(), CgroupError> {
    let available = fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
    let enabled = fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap_or_default();
    for controller in V2_CONTROLLERS {
        if enabled.split_whitespace().any(|c| c == controller) {
            continue;
        }
        if !available.split_whitespace().any(|c| c == controller) {
            return Err(CgroupError::Unavailable(format!(
                "the {controller} controller is not available in {} (needed for {parent})",
                dir.display()
            )));
        }
        fs::write(dir.join("cgroup.subtree_control"), format!("+{controller}")).map_err(
            |error| CgroupError::Create {
                path: dir.display().to_string(),
                message: format!("cannot enable the {controller} controller: {error}"),
            },
        )?;
    }
    Ok(())
}

/// The cgroup of one tenant process.
#[derive(Debug)]
pub struct TenantCgroup {
    name: String,
    path: String,
    cgroup: Cgroup,
    /// Its directory in each hierarchy.
    dirs: Vec<PathBuf>,
}

impl TenantCgroup {
    fn new(name: String, path: String, cgroup: Cgroup) -> TenantCgroup {
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

    /// Puts `limits` in force (read back); for a spare's cgroup, before it becomes a tenant.
    pub fn set_limits(&self, limits: &Limits) -> Result<(), CgroupError> {
        self.apply(limits)
    }

    fn apply(&self, limits: &Limits) -> Result<(), CgroupError> {
        let v2 = self.cgroup.v2();
        let mut resources = Resources::default();
        let require = |what: &str, present: bool| {
            if present {
                Ok(())
            } else {
                Err(CgroupError::Limit {
                    what: what.to_string(),
                    path: self.path.clone(),
                    message: "the controller is missing".into(),
                })
            }
        };
        if let Some(mb) = limits.memory_mb {
            require(
                "memory_limit_mb",
                self.cgroup.controller_of::<MemController>().is_some(),
            )?;
            let bytes = i64::try_from(mb.saturating_mul(1024 * 1024)).unwrap_or(i64::MAX);
            resources.memory.memory_hard_limit = Some(bytes);
            // No swapping past the limit: over it, the tenant is OOM-killed.
            if v2 {
                resources
                    .memory
                    .attrs
                    .insert("memory.swap.max".into(), "0".into());
            } else if self
                .dirs
                .iter()
                .any(|dir| dir.join("memory.memsw.limit_in_bytes").exists())
            {
                resources.memory.memory_swap_limit = Some(bytes);
            }
        }
        if let Some(shares) = limits.cpu_shares {
            require(
                "cpu_shares",
                self.cgroup.controller_of::<CpuController>().is_some(),
            )?;
            resources.cpu.shares = Some(if v2 { shares_to_weight(shares) } else { shares });
        }
        let pids = limits.pids.unwrap_or(DEFAULT_PIDS_LIMIT);
        require(
            "pids_limit",
            self.cgroup.controller_of::<PidController>().is_some(),
        )?;
        resources.pid.maximum_number_of_processes =
            Some(MaxValue::Value(i64::try_from(pids).unwrap_or(i64::MAX)));
        self.cgroup
            .apply(&resources)
            .map_err(|error| CgroupError::Limit {
                what: "limits".into(),
                path: self.path.clone(),
                message: error.to_string(),
            })?;
        self.verify(limits, pids)
    }

    /// Reads the limits back: a kernel that silently ignored one is caught here.
    fn verify(&self, limits: &Limits, pids: u64) -> Result<(), CgroupError> {
        let mismatch = |what: &str, expected: String, found: String| CgroupError::Limit {
            what: what.to_string(),
            path: self.path.clone(),
            message: format!("set {expected}, but it reads {found}"),
        };
        if let Some(mb) = limits.memory_mb
            && let Some(memory) = self.cgroup.controller_of::<MemController>()
        {
            let expected = mb * 1024 * 1024;
            let found = memory.memory_stat().limit_in_bytes;
            if u64::try_from(found).ok() != Some(expected) {
                return Err(mismatch(
                    "memory_limit_mb",
                    expected.to_string(),
                    found.to_string(),
                ));
            }
        }
        if let Some(controller) = self.cgroup.controller_of::<PidController>() {
            match controller.get_pid_max() {
                Ok(MaxValue::Value(found)) if u64::try_from(found).ok() == Some(pids) => {}
                found => {
                    return Err(mismatch(
                        "pids_limit",
                        pids.to_string(),
                        format!("{found:?}"),
                    ));
                }
            }
        }
        Ok(())
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

/// Joins the cgroup whose `cgroup.procs` files are `files` ([`TenantCgroup::procs_files`]):
/// for use between fork and exec (only system calls, no allocation).
pub fn join_cgroup(files: &[CString]) -> io::Result<()> {
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

fn cgroup_v2_dir(cgroup: &Cgroup) -> PathBuf {
    // For v2 every controller's path is the one directory.
    cgroup
        .subsystems()
        .first()
        .map(|subsystem| subsystem.to_controller().path().to_path_buf())
        .unwrap_or_else(|| PathBuf::from("/sys/fs/cgroup").join(cgroup.path()))
}

/// `KEY VALUE` lines (memory.events, cpu.stat): the value of `key`.
fn read_key(path: &Path, key: &str) -> Option<u64> {
    fs::read_to_string(path).ok()?.lines().find_map(|line| {
        let (name, value) = line.split_once(' ')?;
        (name == key).then(|| value.trim().parse().ok())?
    })
}

/// cgroup v1 `cpu.shares` (2..262144, default 1024) as v2 `cpu.weight` (1..10000, default
/// 100), the conversion runc and systemd use.
pub fn shares_to_weight(shares: u64) -> u64 {
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cgroup v2 tree as the kernel shows one, in a temporary directory: `cgroup.controllers`
    /// and `cgroup.subtree_control` at each level, and the files the controllers write.
    fn fake_v2_tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("cgroup.controllers"),
            "cpuset cpu io memory hugetlb pids rdma misc\n",
        )
        .unwrap();
        fs::write(dir.path().join("cgroup.subtree_control"), "").unwrap();
        dir
    }

    /// What the kernel would create in a new v2 cgroup directory.
    fn populate(dir: &Path) {
        for (file, content) in [
            ("cgroup.controllers", "cpu memory pids\n"),
            ("cgroup.subtree_control", ""),
            ("cgroup.procs", ""),
            ("memory.max", "max\n"),
            ("memory.swap.max", "max\n"),
            ("memory.current", "4096\n"),
            ("memory.events", "low 0\nhigh 0\nmax 2\noom 1\noom_kill 1\n"),
            ("pids.max", "max\n"),
            ("pids.current", "3\n"),
            ("cpu.weight", "100\n"),
            (
                "cpu.stat",
                "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n",
            ),
        ] {
            fs::write(dir.join(file), content).unwrap();
        }
    }

    #[test]
    fn the_v2_path_creates_the_parent_hands_down_controllers_and_sets_limits() {
        let tree = fake_v2_tree();
        let cgroups = Cgroups::with_layout(
            Layout::V2 {
                root: tree.path().to_path_buf(),
            },
            "0123abcd",
        );
        // The kernel creates the interface files of a new cgroup; the fake tree needs them
        // before the parent's controllers are read.
        fs::create_dir_all(tree.path().join("ten/0123abcd")).unwrap();
        populate(&tree.path().join("ten"));
        populate(&tree.path().join("ten/0123abcd"));
        cgroups.ensure_parent().unwrap();
        for dir in ["", "ten", "ten/0123abcd"] {
            let enabled =
                fs::read_to_string(tree.path().join(dir).join("cgroup.subtree_control")).unwrap();
            // Each write of "+controller" replaces the fake file: the last one is left.
            assert_eq!(enabled, "+cpu", "{dir}");
        }

        let tenant_dir = tree.path().join("ten/0123abcd/web.a.1");
        fs::create_dir_all(&tenant_dir).unwrap();
        populate(&tenant_dir);
        let limits = Limits {
            memory_mb: Some(64),
            cpu_shares: Some(512),
            pids: Some(50),
        };
        // The fake tree cannot read back what it was given like the kernel does for
        // memory.max ("67108864"), so check the files directly.
        let cgroup = Cgroups::with_layout(
            Layout::V2 {
                root: tree.path().to_path_buf(),
            },
            "0123abcd",
        )
        .open("web.a.1");
        cgroup.apply(&limits).unwrap();
        let read = |file: &str| fs::read_to_string(tenant_dir.join(file)).unwrap();
        assert_eq!(read("memory.max"), "67108864");
        assert_eq!(read("memory.swap.max"), "0");
        assert_eq!(read("pids.max"), "50");
        assert_eq!(read("cpu.weight"), shares_to_weight(512).to_string());
        assert_eq!(
            cgroup.procs_files(),
            [CString::new(
                tenant_dir
                    .join("cgroup.procs")
                    .into_os_string()
                    .into_encoded_bytes()
            )
            .unwrap()]
        );
        fs::write(tenant_dir.join("cgroup.procs"), "41\n42\n").unwrap();
        assert_eq!(cgroup.pids(), [41, 42]);
        let usage = cgroup.usage();
        assert_eq!(usage.memory_bytes, Some(4096));
        assert_eq!(usage.cpu_usec, Some(1500));
        assert_eq!(usage.tasks, Some(3));
        assert_eq!(usage.oom_kills, Some(1));
    }

    #[test]
    fn a_missing_v2_controller_is_an_error_not_a_warning() {
        let tree = tempfile::tempdir().unwrap();
        fs::write(tree.path().join("cgroup.controllers"), "cpu pids\n").unwrap();
        fs::write(tree.path().join("cgroup.subtree_control"), "").unwrap();
        let cgroups = Cgroups::with_layout(
            Layout::V2 {
                root: tree.path().to_path_buf(),
            },
            "x",
        );
        let error = cgroups.ensure_parent().unwrap_err().to_string();
        assert!(
            error.contains("the memory controller is not available"),
            "{error}"
        );
    }

    #[test]
    fn shares_become_weights_like_runc_does() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(0), 1);
    }

    /// The real hierarchy of this machine (v1 here, v2 on most hosts); needs root, as CI
    /// runs.
    #[test]
    fn a_real_cgroup_enforces_its_limits_and_kills_every_member() {
        assert!(
            nix::unistd::geteuid().is_root(),
            "this test needs root (CI runs as root)"
        );
        let cgroups = Cgroups::detect("unit-test").expect("cgroups on this machine");
        let name = format!("test.limits.{}", std::process::id());
        let cgroup = cgroups
            .create(
                &name,
                &Limits {
                    memory_mb: Some(32),
                    cpu_shares: Some(256),
                    pids: Some(20),
                },
            )
            .unwrap();
        // A process that joins before exec, as the spawner does, with a setsid grandchild.
        let files = cgroup.procs_files();
        let mut command = std::process::Command::new("sh");
        command.args(["-c", "setsid sleep 1000 & sleep 1000"]);
        unsafe {
            use std::os::unix::process::CommandExt;
            command.pre_exec(move || join_cgroup(&files));
        }
        // Through the reaper, which other tests of this binary keep running: a wait of our
        // own would race its `waitpid(-1)`.
        let (child, exit) = crate::runtime::reaper::Reaper::global()
            .spawn(&mut command)
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while cgroup.pids().len() < 3 {
            assert!(
                std::time::Instant::now() < deadline,
                "members: {:?}",
                cgroup.pids()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(cgroup.pids().contains(&child.id()));
        let usage = cgroup.usage();
        assert_eq!(usage.tasks, Some(3));
        assert!(
            usage.memory_bytes.is_some_and(|bytes| bytes > 0),
            "{usage:?}"
        );
        assert!(usage.cpu_usec.is_some(), "{usage:?}");
        assert_eq!(usage.oom_kills, Some(0));
        cgroup.kill_all();
        exit.blocking_recv().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !cgroup.pids().is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "survivors: {:?}",
                cgroup.pids()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(cgroup.remove());
        cgroups.remove_parent_if_empty();
    }
}
