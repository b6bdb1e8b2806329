//! One import: what goes in (`Source`) and what comes out (`Imported`: the files, a summary
//! of the services, the report) or why not (`ImportError`); the format's reader run, then
//! what holds for every format. Pure: must not do I/O.

use std::collections::BTreeMap;

use serde::Serialize;

use super::ini::{self, IniError};
use super::model::{Format, Project};
use super::report::{Item, Report};
use super::{json, pm2, process_compose, procfile, supervisord, text, writer};

/// The file to import, and what supervisord's expansions may ask of the machine it is read
/// on (`%(here)s`, `%(host_node_name)s`, `%(ENV_X)s`).
#[derive(Clone, Copy)]
pub struct Source<'a> {
    pub text: &'a str,
    /// The file's name, as the report and comments cite it (`supervisord.conf`).
    pub name: &'a str,
    /// The file's directory, absolute.
    pub dir: &'a str,
    pub host: &'a str,
    pub env: &'a BTreeMap<String, String>,
    /// Whether the file at a path (absolute, or relative to `dir`) is a binary program, as
    /// pm2 looks before it picks node; `None` when it cannot be read. The CLI looks at the
    /// file (the import itself does no I/O).
    pub is_binary: &'a dyn Fn(&str) -> Option<bool>,
}

/// A file the import would write, relative to the output directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutputFile {
    pub path: String,
    pub text: String,
}

/// What became of one process definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceSummary {
    pub name: String,
    pub from: String,
    /// `web:0`, or `worker:0 ... worker:3`.
    pub instances: String,
    /// `listen = "none"`.
    pub worker: bool,
}

/// The outcome of an import: the files and the report.
#[derive(Debug, Clone, Serialize)]
pub struct Imported {
    pub format: Format,
    pub source: String,
    /// A dialect of the format (`Supervice`), if the file is one.
    pub dialect: Option<&'static str>,
    pub services: Vec<ServiceSummary>,
    pub files: Vec<OutputFile>,
    pub report: Report,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    #[error("cannot tell which supervisor {name} is for")]
    UnknownFormat { name: String },
    #[error("{name} is pm2's JavaScript form, which ten does not run; only the JSON form is read")]
    Pm2JavaScript { name: String },
    #[error("{name} is not INI that supervisord reads: {error}")]
    Ini { name: String, error: IniError },
    #[error("{name} is not valid JSON: {message}")]
    Json { name: String, message: String },
    #[error("{name} is not valid YAML: {message}")]
    Yaml { name: String, message: String },
}

/// Imports `source` as `format`.
pub fn import(source: &Source<'_>, format: Format) -> Result<Imported, ImportError> {
    let name = source.name.to_string();
    let mut project = match format {
        Format::Supervisord => {
            let ini = ini::parse(source.text).map_err(|error| ImportError::Ini {
                name: name.clone(),
                error,
            })?;
            supervisord::read(&ini, source)
        }
        Format::Procfile => procfile::read(source),
        Format::ProcessCompose => {
            let document = json::from_yaml(source.text).map_err(|message| ImportError::Yaml {
                name: name.clone(),
                message,
            })?;
            process_compose::read(&document, source)
        }
        Format::Pm2 => {
            let document: serde_json::Value =
                serde_json::from_str(source.text).map_err(|error| ImportError::Json {
                    name: name.clone(),
                    message: error.to_string(),
                })?;
            pm2::read(&document, source)
        }
    };
    // In the order of the source where it tells lines (a stable sort: the rest keeps its order).
    project
        .report
        .items
        .sort_by_key(|item| item.line.unwrap_or(usize::MAX));
    unsettable_env(&mut project);
    add_general_notes(&mut project);
    let services = project
        .services
        .iter()
        .map(|service| {
            let ids = writer::instance_ids(service);
            let instances = match ids.as_slice() {
                [only] => format!("{}:{only}", service.name),
                [first, .., last] => format!("{0}:{first} ... {0}:{last}", service.name),
                [] => String::new(),
            };
            ServiceSummary {
                name: service.name.clone(),
                from: service.origin.clone(),
                instances,
                worker: service.worker,
            }
        })
        .collect();
    let files = writer::write(&project);
    Ok(Imported {
        format: project.format,
        source: project.source,
        dialect: project.dialect,
        services,
        files,
        report: project.report,
    })
}

/// Environment variables ten cannot set: the ones it sets itself for every instance, and
/// names it refuses. (Each format has made an HTTP service of one that sets `PORT`.)
fn unsettable_env(project: &mut Project) {
    for service in &mut project.services {
        let refused: Vec<String> = service
            .env
            .iter()
            .map(|(name, _)| name.clone())
            .filter(|name| name == "PORT" || name == "SOCKET_PATH" || !text::is_env_name(name))
            .collect();
        for name in refused {
            let value = service.remove_env(&name).unwrap_or_default();
            let message = if text::is_env_name(&name) {
                format!("{name} is set by ten for every instance")
            } else {
                "not a name ten can set in env (letters, digits and '_', not starting with a digit)"
                    .to_string()
            };
            project.report.push(
                Item::not_imported(&service.origin, message)
                    .key(&format!("env {name}"), &value)
                    .service(&service.name),
            );
        }
    }
}

/// What holds for every import: ten's clean environment, and relative paths.
fn add_general_notes(project: &mut Project) {
    if project.services.is_empty() {
        return;
    }
    let inherits = match project.format {
        Format::Procfile => None,
        Format::Supervisord => Some(project.dialect.unwrap_or("supervisord")),
        Format::ProcessCompose => Some("process-compose"),
        Format::Pm2 => Some("pm2"),
    };
    if let Some(supervisor) = inherits {
        project.report.push(Item::note(
            "every service",
            format!("{supervisor} passes its own environment to its processes; ten starts them with a clean one (PATH, HOME, LANG, PORT and each service's env): add what they need to env"),
        ));
    }
    let relative = project.services.iter().any(|service| {
        [&service.workdir, &service.stdout_log, &service.stderr_log]
            .into_iter()
            .flatten()
            .any(|path| !path.starts_with('/'))
    });
    if relative {
        project.report.push(Item::note(
            "every service",
            "relative paths (workdir, log files) are relative to the directory of tenement.toml",
        ));
    }
}
