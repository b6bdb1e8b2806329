//! Desired state: tenement.toml + `[instances]` + `instances/<service>/<id>.toml`, merged into
//! the effective spec of every declared instance.
//!
//! Reading files happens in `load` ([`load`], [`reload`]), `read` and `scan`; merging
//! ([`resolve`]) is pure. Must not import tokio, nix, hyper or notify (the server calls
//! [`load`] from a blocking task).

pub(crate) mod fields;
mod keep;
mod load;
mod read;
mod resolve;
pub(crate) mod scan;
pub mod select;
mod settings;
pub(crate) mod spec;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::Config;
use crate::names::InstanceKey;

pub use fields::{FieldMap, FieldValue};
pub use keep::{keep_undeclared, share_unchanged};
pub use load::{Loaded, Reload, load, reload, sort_diagnostics};
pub use read::{instance_file_check, read_config, read_instance_files, scan_instance_files};
pub use resolve::resolve;
pub use scan::Unlisted;
pub use select::{Selection, Selector, select};
pub use settings::settings_fields;
pub use spec::{Common, Declaration, InstanceSpec, SpecContext, effective_spec};

/// Every declared instance with its effective spec.
#[derive(Debug, Clone)]
pub struct DesiredState {
    pub config: Config,
    /// Shared: specs are immutable, and the server hands them to per-instance tasks.
    pub instances: BTreeMap<InstanceKey, Arc<InstanceSpec>>,
}

impl DesiredState {
    pub fn settings_fields(&self) -> FieldMap {
        settings_fields(&self.config)
    }
}
