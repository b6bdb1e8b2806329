//! Configuration: tenement.toml and instance files, from text to a validated model.
//!
//! Owns the config model, its parsing with every problem reported at once, templates and
//! config discovery. Must not import tokio, nix, hyper or notify: it is pure apart from
//! `discover`, which looks for files, `log_files::check_directories`, which sees whether
//! a log path is a directory, and `file_text`, the one reader of desired-state files.

pub mod checks;
pub(crate) mod connections;
pub(crate) mod diag;
pub(crate) mod discover;
pub(crate) mod edit;
pub(crate) mod file_text;
pub(crate) mod instance_file;
pub(crate) mod ip_range;
pub(crate) mod log_files;
pub(crate) mod log_retention;
pub(crate) mod memory;
pub(crate) mod model;
pub mod parse;
pub(crate) mod reader;
pub(crate) mod service;
pub(crate) mod stop_order;
pub(crate) mod template;

pub use connections::ConnectionLimits;
pub use diag::{Diagnostic, Severity, SourceFile, has_errors, other_files_with_errors};
pub use discover::{CONFIG_FILE, find_config};
pub use instance_file::{INSTANCE_KEYS, parse_instance_file};
pub use ip_range::{IpRange, IpRangeError};
pub use log_retention::{DEFAULT_LOG_RETENTION_BYTES, LogRetention, MIN_LOG_RETENTION_BYTES};
pub use memory::MemoryAmount;
pub use model::*;
pub use parse::{Outline, ParsedConfig, parse_config};
pub use service::SERVICE_KEYS;
pub use template::{Template, Var};
