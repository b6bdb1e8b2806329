//! What a tenant's cgroup enforces, and putting it in force: written through cgroups-rs,
//! then read back, so a value the kernel ignored or refused fails the spawn.
//!
//! Imports `error` and `tenant` of `cgroup`.

use cgroups_rs::fs::cpu::CpuController;
use cgroups_rs::fs::memory::MemController;
use cgroups_rs::fs::pid::PidController;
use cgroups_rs::fs::{Controller, MaxValue, Resources};

use super::error::CgroupError;
use super::tenant::TenantCgroup;

/// The pids limit of a tenant that does not set `pids_limit` (threads count too).
pub(super) const DEFAULT_PIDS_LIMIT: u64 = 1024;

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

impl TenantCgroup {
    /// Puts `limits` in force (read back); for a spare's cgroup, before it becomes a tenant.
    pub fn set_limits(&self, limits: &Limits) -> Result<(), CgroupError> {
        self.apply(limits)
    }

    pub(super) fn apply(&self, limits: &Limits) -> Result<(), CgroupError> {
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
        let pid_controller = self.cgroup.controller_of::<PidController>();
        require("pids_limit", pid_controller.is_some())?;
        let failed = |what: &str, error: &dyn std::fmt::Display| CgroupError::Limit {
            what: what.into(),
            path: self.path.clone(),
            message: error.to_string(),
        };
        self.cgroup
            .apply(&resources)
            .map_err(|error| failed("limits", &error))?;
        // Written here, not through cgroups-rs, which reads it back itself: `verify` reads
        // it once (every start sets it).
        if let Some(controller) = pid_controller {
            std::fs::write(controller.path().join("pids.max"), pids.to_string())
                .map_err(|error| failed("pids_limit", &error))?;
        }
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
}

/// cgroup v1 `cpu.shares` (2..262144, default 1024) as v2 `cpu.weight` (1..10000, default
/// 100), the conversion runc and systemd use.
pub(super) fn shares_to_weight(shares: u64) -> u64 {
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_become_weights_like_runc_does() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(0), 1);
    }
}
