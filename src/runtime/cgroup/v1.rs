//! cgroup v1: one hierarchy per controller; a tenant cgroup is made in the `memory`, `pids`,
//! `cpu` and `cpuacct` hierarchies.
//!
//! Imports nothing else of `cgroup`.

use std::path::{Path, PathBuf};

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
pub(super) struct Selected(V1);

impl Hierarchy for Selected {
    fn subsystems(&self) -> Vec<Subsystem> {
        self.0
            .subsystems()
            .into_iter()
            .filter(|subsystem| {
                let name = subsystem.controller_name();
                CONTROLLERS.iter().any(|(_, used)| *used == name)
            })
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

impl Selected {
    pub(super) fn new() -> Selected {
        Selected(V1::new())
    }
}

/// The controllers ten needs that have no v1 hierarchy mounted.
pub(super) fn missing_controllers() -> Vec<&'static str> {
    let v1 = V1::new();
    CONTROLLERS
        .into_iter()
        .filter(|(controller, _)| v1.get_mount_point(controller.clone()).is_none())
        .map(|(_, name)| name)
        .collect()
}

/// The directories of `path` (relative to each hierarchy's root) in every mounted hierarchy
/// ten uses.
pub(super) fn dirs_of(path: &str) -> Vec<PathBuf> {
    let v1 = V1::new();
    CONTROLLERS
        .into_iter()
        .filter_map(|(controller, _)| v1.get_mount_point(controller))
        .map(|(mount, _)| mount.join(path))
        .collect()
}
