//! `ten import`: another supervisor's configuration -> ten's files. Reads supervisord's INI
//! (and Supervice's), Procfiles, process-compose's YAML and pm2's ecosystem JSON into one
//! model (`model`: services, instances, groups), and writes tenement.toml and instance
//! files from it (`writer`), with a report of everything that did not map (`report`). Nothing
//! is dropped silently: a key with no equivalent is an item of the report and a
//! `# not imported:` comment at its service.
//!
//! PURE: text in, text out; no I/O (the CLI reads and writes the files). One file per format
//! (`supervisord`, `procfile`, `process_compose`, `pm2`), with the INI reader (`ini`), JSON
//! and YAML values (`json`) and text helpers (`text`) they share. Uses `names`, `config`
//! (the file name, signals, template escaping) and `render` (styles); must not import tokio,
//! nix, hyper or notify.

mod convert;
mod detect;
mod ini;
mod json;
mod model;
mod pm2;
mod process_compose;
mod procfile;
mod report;
mod supervisord;
mod text;
mod writer;

pub use convert::{ImportError, Imported, OutputFile, ServiceSummary, Source, import};
pub use detect::detect_format;
pub use ini::IniError;
pub use model::Format;
pub use report::{Item, ItemKind, Report, render_file_diff, render_report};
pub(crate) use text::needs_shell;
