//! The cgroups of one data directory: finding the host's hierarchies, the parent of this data
//! directory's tenants (`ten/<8 hex of the data dir>` at the root of each hierarchy), tenant
//! cgroups made under it with their limits in force, and the removal of unused ones.
//!
//! Imports every other part of `cgroup`.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use cgroups_rs::fs::Hierarchy;
use cgroups_rs::fs::cgroup::Cgroup;

use super::error::CgroupError;
use super::limits::Limits;
use super::tenant::TenantCgroup;
use super::v1::{self, Selected};
use super::v2::{Unified, enable_v2_controllers, is_cgroup2};

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
            let missing = v1::missing_controllers();
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

    /// The memory files of the parent: what every tenant below uses.
    pub fn memory_files(&self) -> crate::runtime::memory::MemoryFiles {
        use crate::runtime::memory::MemoryFiles;
        match &self.layout {
            Layout::V1 => MemoryFiles::of(
                &Path::new("/sys/fs/cgroup/memory").join(&self.parent),
                false,
            ),
            Layout::V2 { root } => MemoryFiles::of(&root.join(&self.parent), true),
        }
    }

    fn hierarchy(&self) -> Box<dyn Hierarchy> {
        match &self.layout {
            Layout::V1 => Box::new(Selected::new()),
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
            Layout::V1 => v1::dirs_of(&self.parent),
        }
    }

    /// Removes the parent if no tenant cgroup is left in it (at shutdown).
    pub fn remove_parent_if_empty(&self) {
        for dir in self.parent_dirs() {
            let _ = fs::remove_dir(dir);
        }
    }

    /// At startup: the cgroup tree is the ground truth of what this data directory runs.
    /// Every cgroup not in `keep` (the adopted processes') is emptied — its processes killed:
    /// a spare, or a start a ten that died did not finish, that no process table entry
    /// claims — and removed. Returns the cgroups that still had processes, with their pids.
    /// Call only while holding the data directory. Blocking.
    pub fn stop_unclaimed(&self, keep: &BTreeSet<String>) -> Vec<(String, Vec<u32>)> {
        let mut stopped = Vec::new();
        for name in self.children() {
            if keep.contains(&name) {
                continue;
            }
            let cgroup = self.open(&name);
            let pids = cgroup.pids();
            if !pids.is_empty() {
                cgroup.kill_all();
                stopped.push((name, pids));
            }
            cgroup.remove();
        }
        stopped
    }

    /// Removes the empty cgroups of this data directory that are not in `keep`. Call only
    /// while holding the data directory.
    pub fn remove_unused(&self, keep: &BTreeSet<String>) {
        for name in self.children() {
            if !keep.contains(&name) {
                let cgroup = self.open(&name);
                if cgroup.pids().is_empty() {
                    cgroup.remove();
                }
            }
        }
    }

    /// The names of the cgroups under the parent, in any hierarchy: on v1 a cgroup can be left
    /// in some hierarchies only (a removal that gave up while a killed process was not reaped
    /// yet holds `pids` and `cpu`, not `memory`), and must still be found to be removed.
    fn children(&self) -> BTreeSet<String> {
        self.parent_dirs()
            .iter()
            .filter_map(|dir| fs::read_dir(dir).ok())
            .flat_map(|listing| listing.flatten())
            .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_dir()))
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::CString;
    use std::time::Duration;

    use super::*;
    use crate::runtime::cgroup::limits::shares_to_weight;
    use crate::runtime::cgroup::tenant::join_cgroup;

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
        // SAFETY: between fork and exec the child only makes system calls (writes its pid to
        // the cgroup's files), as the spawner's own pre-exec step does.
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

    #[test]
    fn a_cgroup_left_in_some_hierarchies_only_is_still_removed() {
        assert!(
            nix::unistd::geteuid().is_root(),
            "this test needs root (CI runs as root)"
        );
        let cgroups = Cgroups::detect("unit-test-partial").expect("cgroups on this machine");
        let name = format!("test.partial.{}", std::process::id());
        let cgroup = cgroups.create(&name, &Limits::default()).unwrap();
        let dirs: Vec<PathBuf> = cgroups
            .parent_dirs()
            .iter()
            .map(|dir| dir.join(&name))
            .collect();
        // Gone from the first hierarchy (on v1, `memory`), left in the others.
        fs::remove_dir(&dirs[0]).unwrap();
        cgroups.remove_unused(&BTreeSet::new());
        let left: Vec<&PathBuf> = dirs.iter().filter(|dir| dir.exists()).collect();
        if !left.is_empty() {
            cgroup.remove();
        }
        cgroups.remove_parent_if_empty();
        assert!(left.is_empty(), "left behind: {left:?}");
    }
}
