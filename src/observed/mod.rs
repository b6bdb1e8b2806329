//! Observed state: the process table as the server sees it, and its on-disk record.
//!
//! `model` is pure data; `record` reads and writes `{data_dir}/state.json`. Must not import
//! tokio, nix, hyper or notify.

pub(crate) mod model;
pub(crate) mod record;

pub use model::{ExitInfo, Health, ObservedInstance, ObservedState, Phase, Usage};
pub use record::{Record, RecordError, read_record, record_path, write_record};
