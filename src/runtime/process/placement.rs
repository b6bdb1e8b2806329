//! Where a new process runs: the name of its cgroup and sandbox, and the spare it becomes
//! (given the tenant's limits) or the cgroup of its own it joins. Imports only `error` and
//! [`SpawnEnv`] of `process`; must not import what imports `process` (`os`, `exec_probe`).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::names::InstanceKey;

use super::super::cgroup::TenantCgroup;
use super::super::launch::Launch;
use super::super::spare::Spare;
use super::SpawnEnv;
use super::error::SpawnError;

/// A name unique to one process of `key`, for its cgroup and sandbox.
fn process_name(key: &InstanceKey) -> String {
    unique_name(&format!("{}.{}", key.service, key.id))
}

/// `prefix.` and a suffix unique to this process of ten and over time.
pub(crate) fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let serial = NEXT.fetch_add(1, Ordering::Relaxed);
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_micros());
    format!("{prefix}.{micros:x}{serial:x}")
}

/// Where a new process runs: its name, and the spare it becomes or the cgroup it joins.
pub(super) struct Placement {
    /// Names its cgroup and its sandbox container.
    pub(super) name: String,
    /// A spare in its cgroup, with the tenant's limits in force.
    pub(super) spare: Option<Spare>,
    /// A new cgroup of its own (with no spare, when cgroups are available).
    pub(super) cgroup: Option<TenantCgroup>,
}

/// Takes `spare` (giving its cgroup the tenant's limits) when cgroups are available, else
/// creates a cgroup with them; limits without cgroups are an error.
pub(super) fn place(
    launch: &Launch,
    host: &SpawnEnv,
    spare: Option<Spare>,
) -> Result<Placement, SpawnError> {
    let spare = spare.filter(|_| host.cgroups.is_some());
    let name = spare.as_ref().map_or_else(
        || process_name(&launch.key),
        |spare| spare.cgroup.name().to_string(),
    );
    let spare = match spare {
        Some(spare) => match spare.cgroup.set_limits(&launch.limits) {
            Ok(()) => Some(spare),
            Err(error) => {
                spare.discard();
                return Err(error.into());
            }
        },
        None => None,
    };
    let cgroup = match (&host.cgroups, launch.limits.any(), &spare) {
        (Some(_), _, Some(_)) => None,
        (Some(cgroups), _, None) => Some(cgroups.create(&name, &launch.limits)?),
        (None, true, _) => {
            return Err(SpawnError::NoCgroups(
                host.cgroups_missing
                    .clone()
                    .unwrap_or_else(|| "not root".into()),
            ));
        }
        (None, false, _) => None,
    };
    Ok(Placement {
        name,
        spare,
        cgroup,
    })
}
