//! tenement.toml text -> [`Config`](crate::config::Config), reporting every problem of the
//! file.
//!
//! `document`: the syntax, the root and the service tables, assembling the config;
//! `settings`: `[settings]` and `[settings.tls]`; `routing`: `[instances]` and `[routing]`;
//! `groups`: `[group.NAME]`;
//! `naming`: diagnostics for invalid names and undeclared services. Service templates are
//! read by `config::service`. Pure: the caller reads the file.

mod document;
mod groups;
mod naming;
mod routing;
mod settings;
#[cfg(test)]
mod tests;

pub use document::{Outline, ParsedConfig, parse_config, parse_document};
pub use naming::{bad_name_in_file, unknown_service_hint};
pub use settings::normalize;
