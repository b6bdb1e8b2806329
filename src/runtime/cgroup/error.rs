//! What can go wrong with cgroups: each message names the cgroup and what could not be done.
//!
//! Imports nothing else of `cgroup`.

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
