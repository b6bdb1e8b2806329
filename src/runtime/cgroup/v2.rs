//! cgroup v2: one unified hierarchy; a tenant cgroup has the `memory`, `pids` and `cpu`
//! controllers, handed down from the root through `cgroup.subtree_control`. The hierarchy is
//! read at any mount point (cgroups-rs's own `V2` only knows /sys/fs/cgroup, which a test tree
//! is not).
//!
//! Imports only `error` of `cgroup`.

use std::fs;
use std::path::{Path, PathBuf};

use cgroups_rs::fs::cgroup::Cgroup;
use cgroups_rs::fs::cpu::CpuController;
use cgroups_rs::fs::memory::MemController;
use cgroups_rs::fs::pid::PidController;
use cgroups_rs::fs::{Hierarchy, Subsystem};

use super::error::CgroupError;

const V2_CONTROLLERS: [&str; 3] = ["memory", "pids", "cpu"];

/// The unified hierarchy at any mount point (cgroups-rs's own `V2` only knows
/// /sys/fs/cgroup).
#[derive(Debug, Clone)]
pub(super) struct Unified {
    pub(super) root: PathBuf,
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

pub(super) fn is_cgroup2(path: &Path) -> bool {
    nix::sys::statfs::statfs(path)
        .is_ok_and(|stat| stat.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
}

/// Hands `memory`, `pids` and `cpu` down from `dir` to its children.
pub(super) fn enable_v2_controllers(dir: &Path, parent: &str) -> Result<(), CgroupError> {
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

/// The one directory of a v2 cgroup.
pub(super) fn cgroup_v2_dir(cgroup: &Cgroup) -> PathBuf {
    // For v2 every controller's path is the one directory.
    cgroup
        .subsystems()
        .first()
        .map(|subsystem| subsystem.to_controller().path().to_path_buf())
        .unwrap_or_else(|| PathBuf::from("/sys/fs/cgroup").join(cgroup.path()))
}
