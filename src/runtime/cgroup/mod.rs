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
//!
//! `parent`: the hierarchies and this data directory's parent cgroup; `tenant`: one tenant's
//! cgroup; `limits`: what it enforces; `v1` and `v2`: what differs between the layouts;
//! `error`. Imports nothing of `runtime` outside `cgroup` (its tests use the reaper).

mod error;
mod limits;
mod parent;
mod tenant;
mod v1;
mod v2;

pub(crate) use error::CgroupError;
pub(crate) use limits::Limits;
pub(crate) use parent::Cgroups;
pub(crate) use tenant::{TenantCgroup, join_cgroup, move_to_cgroup};
