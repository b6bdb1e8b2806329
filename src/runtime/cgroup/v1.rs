//! cgroup v1: one hierarchy per controller; a tenant cgroup is made in the `memory`, `pids`,
//! `cpu` and `cpuacct` hierarchies. Where they are mounted is read from
//! `/proc/self/mountinfo` once, the first time it is needed, not at every start (hierarchies
//! are mounted at boot; ten does not follow a hierarchy mounted or moved while it runs).
//!
//! Imports nothing else of `cgroup`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use cgroups_rs::fs::cgroup::Cgroup;
use cgroups_rs::fs::hierarchies::V1;
use cgroups_rs::fs::{Controllers, Hierarchy, Subsystem};

/// The controllers ten uses, as cgroups-rs names them and as messages do.
const CONTROLLERS: [(Controllers, &str); 4] = [
    (Controllers::Mem, "memory"),
    (Controllers::Pids, "pids"),
    (Controllers::Cpu, "cpu"),
    (Controllers::CpuAcct, "cpuacct"),
];

/// The v1 hierarchies, limited to the controllers ten uses.
#[derive(Debug)]
pub(super) struct Selected;

impl Hierarchy for Selected {
    /// A copy of those found the first time (cgroups-rs would look for each controller's
    /// mount again, formatting names, at every cgroup made).
    fn subsystems(&self) -> Vec<Subsystem> {
        static SUBSYSTEMS: OnceLock<Vec<Subsystem>> = OnceLock::new();
        SUBSYSTEMS
            .get_or_init(|| {
                mounts()
                    .subsystems()
                    .into_iter()
                    .filter(|subsystem| {
                        let name = subsystem.controller_name();
                        CONTROLLERS.iter().any(|(_, used)| *used == name)
                    })
                    .collect()
            })
            .clone()
    }

    fn root(&self) -> PathBuf {
        mounts().root()
    }

    fn root_control_group(&self) -> Cgroup {
        Cgroup::load(Box::new(Selected::new()), "")
    }

    fn parent_control_group(&self, path: &str) -> Cgroup {
        let parent = Path::new(path)
            .parent()
            .map(|parent| parent.to_string_lossy().into_owned())
            .unwrap_or_default();
        Cgroup::load(Box::new(Selected::new()), parent)
    }

    fn v2(&self) -> bool {
        false
    }
}

impl Selected {
    pub(super) fn new() -> Selected {
        Selected
    }
}

/// The v1 hierarchies as mounted when first asked.
fn mounts() -> &'static V1 {
    static MOUNTS: OnceLock<V1> = OnceLock::new();
    MOUNTS.get_or_init(V1::new)
}

/// The controllers ten needs that have no v1 hierarchy mounted.
pub(super) fn missing_controllers() -> Vec<&'static str> {
    let v1 = mounts();
    CONTROLLERS
        .into_iter()
        .filter(|(controller, _)| v1.get_mount_point(controller.clone()).is_none())
        .map(|(_, name)| name)
        .collect()
}

/// The directories of `path` (relative to each hierarchy's root) in every mounted hierarchy
/// ten uses.
pub(super) fn dirs_of(path: &str) -> Vec<PathBuf> {
    let v1 = mounts();
    CONTROLLERS
        .into_iter()
        .filter_map(|(controller, _)| v1.get_mount_point(controller))
        .map(|(mount, _)| mount.join(path))
        .collect()
}
