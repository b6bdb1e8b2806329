//! Configuration: tenement.toml and instance files, from text to a validated model.
//!
//! Owns the config model, its parsing with every problem reported at once, templates and
//! config discovery. Must not import tokio, nix, hyper or notify: it is pure apart from
//! `discover`, which looks for files.

pub mod diag;
pub mod discover;
pub mod edit;
pub mod instance_file;
pub mod model;
pub mod parse;
pub mod reader;
pub mod service;
pub mod template;

pub use diag::{Diagnostic, Severity, SourceFile, has_errors, other_files_with_errors};
pub use discover::{CONFIG_FILE, find_config};
pub use instance_file::{INSTANCE_KEYS, parse_instance_file};
pub use model::*;
pub use parse::{Outline, ParsedConfig, parse_config};
pub use service::SERVICE_KEYS;
pub use template::{Template, Var};
