//! The document of tenement.toml: its syntax, its root keys, the `[service.NAME]` tables
//! (read by `config::service`), and the [`Config`] assembled from every section when no
//! section has an error, or else the [`Outline`] that instance files are checked against.
//!
//! Imports `settings`, `routing` and `naming` of `parse`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use toml_edit::{Document, Item};

use super::groups::parse_groups;
use super::naming::bad_name;
use super::routing::{parse_instances_table, parse_routing};
use super::settings::{SETTINGS_KEYS, parse_settings};
use crate::config::diag::{Diagnostic, SourceFile, has_errors};
use crate::config::model::{Config, ServiceTemplate};
use crate::config::reader::Fields;
use crate::config::service::{SERVICE_KEYS, parse_service};
use crate::names::ServiceName;

const ROOT_KEYS: &[&str] = &[
    "settings",
    "service",
    "process",
    "instances",
    "routing",
    "group",
];

/// What is known of a config even when it has errors: enough to check instance files too,
/// so that every problem is reported at once.
#[derive(Debug, Clone)]
pub struct Outline {
    /// Every service declared with a valid name, whether or not its table is valid.
    pub services: BTreeSet<ServiceName>,
    /// The declared services whose table says `listen = "none"` (workers): their instance
    /// files are checked for keys a worker cannot honour.
    pub workers: BTreeSet<ServiceName>,
    /// Absolute; the default when `instances_dir` itself is invalid.
    pub instances_dir: PathBuf,
    pub dir: PathBuf,
}

/// The outcome of parsing tenement.toml.
#[derive(Debug)]
pub struct ParsedConfig {
    /// Present when there is no error.
    pub config: Option<Config>,
    /// Present unless the TOML syntax itself is broken.
    pub outline: Option<Outline>,
}

/// Parses tenement.toml. `path` is its absolute path; problems are pushed to `diagnostics`
/// and the config is returned only when there are no errors.
pub fn parse_config(path: &Path, text: String, diagnostics: &mut Vec<Diagnostic>) -> ParsedConfig {
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let display = PathBuf::from(path.file_name().unwrap_or(path.as_os_str()));
    let file = SourceFile {
        path: display,
        text,
    };
    let document = match parse_document(&file) {
        Ok(document) => document,
        Err(diagnostic) => {
            diagnostics.push(*diagnostic);
            return ParsedConfig {
                config: None,
                outline: None,
            };
        }
    };
    let before = diagnostics.len();
    let root = Fields::new(&file, document.as_table(), "tenement.toml", 0..0);
    root.reject_unknown(
        ROOT_KEYS,
        |key| {
            SERVICE_KEYS
                .contains(&key)
                .then(|| format!("`{key}` belongs in a service: [service.NAME]"))
                .or_else(|| {
                    SETTINGS_KEYS
                        .contains(&key)
                        .then(|| format!("`{key}` belongs in [settings]"))
                })
        },
        diagnostics,
    );

    if dir.to_str().is_none() {
        // Paths reach tenants (their environment, templates) and ten's records as text: a
        // lossy copy would name another directory.
        diagnostics.push(
            Diagnostic::in_file(
                &file.path,
                format!(
                    "the config's directory {} is not valid UTF-8, and ten hands paths to tenants as text",
                    dir.display()
                ),
            )
            .with_hint("move the project to a directory whose path is UTF-8"),
        );
    }
    let settings = parse_settings(&root, &dir, diagnostics);
    let (services, declared, workers) = parse_services(&root, diagnostics);
    let data_dir = settings
        .as_ref()
        .map(|settings| settings.data_dir.as_path());
    crate::config::log_files::check_directories(&root, &dir, data_dir, diagnostics);
    let instances = parse_instances_table(&root, &declared, diagnostics);
    let routing = parse_routing(&root, &declared, diagnostics);
    let groups = parse_groups(&root, &declared, diagnostics);
    let outline = Outline {
        services: declared,
        workers,
        instances_dir: settings.as_ref().map_or_else(
            || dir.join(crate::config::model::DEFAULT_INSTANCES_DIR),
            |settings| settings.instances_dir.clone(),
        ),
        dir: dir.clone(),
    };
    if services.is_empty() && !has_errors(&diagnostics[before..]) {
        diagnostics.push(
            Diagnostic::in_file(&file.path, "no services are declared")
                .with_hint("add a service template, e.g. [service.notes] with command = \"python3 app.py\"")
                .warning(),
        );
    }
    let config = match settings {
        Some(settings) if !has_errors(&diagnostics[before..]) => Some(Config {
            path: path.to_path_buf(),
            dir,
            settings,
            services,
            instances,
            routing,
            groups,
        }),
        _ => None,
    };
    ParsedConfig {
        config,
        outline: Some(outline),
    }
}

/// Parses TOML syntax; the one syntax error becomes a diagnostic.
pub fn parse_document(file: &SourceFile) -> Result<Document<String>, Box<Diagnostic>> {
    Document::parse(file.text.clone()).map_err(|error| {
        let span = error.span().unwrap_or(0..0);
        let message = error.message().trim().trim_end_matches('.').to_string();
        Box::new(
            Diagnostic::at(file, span, format!("invalid TOML: {message}"))
                .with_label(message)
                .with_hint("fix the TOML syntax here; ten changes nothing until the file parses"),
        )
    })
}

/// `[service.NAME]` tables (and the original's older spelling `[process.NAME]`).
/// Returns the valid services, the names of all declared ones (valid or not), so that
/// references to a service with errors do not add "not declared" errors, and the names of
/// the declared ones that say `listen = "none"` (valid or not).
fn parse_services(
    root: &Fields<'_>,
    diagnostics: &mut Vec<Diagnostic>,
) -> (
    BTreeMap<ServiceName, ServiceTemplate>,
    BTreeSet<ServiceName>,
    BTreeSet<ServiceName>,
) {
    let mut services = BTreeMap::new();
    let mut declared = BTreeSet::new();
    let mut workers = BTreeSet::new();
    let mut seen: BTreeMap<String, &str> = BTreeMap::new();
    for section in ["service", "process"] {
        let Some(table) = root.table(section, diagnostics) else {
            continue;
        };
        let fields = Fields::new(
            root.file,
            table,
            format!("[{section}]"),
            root.key_span(section),
        );
        for (name, item) in table.iter() {
            let key_span = fields.key_span(name);
            if let Some(first) = seen.insert(name.to_string(), section) {
                diagnostics.push(
                    Diagnostic::at(
                        root.file,
                        key_span.clone(),
                        format!("service `{name}` is declared twice: [{first}.{name}] and [{section}.{name}]"),
                    )
                    .with_label("second declaration")
                    .with_hint("keep one of them; [process.NAME] is the older spelling of [service.NAME]"),
                );
                continue;
            }
            let service_name = match ServiceName::new(name) {
                Ok(service_name) => {
                    declared.insert(service_name.clone());
                    Some(service_name)
                }
                Err(error) => {
                    diagnostics.push(bad_name(
                        root.file,
                        key_span.clone(),
                        "service name",
                        name,
                        &error,
                    ));
                    None
                }
            };
            let Some(table) = item.as_table_like() else {
                diagnostics.push(
                    Diagnostic::at(
                        root.file,
                        fields.value_span(name),
                        format!("[{section}.{name}] must be a table"),
                    )
                    .with_label("expected a table")
                    .with_hint(format!(
                        "write it as a section: [{section}.{name}] followed by command = \"...\""
                    )),
                );
                continue;
            };
            if let Some(service_name) = &service_name
                && table.get("listen").and_then(Item::as_str) == Some("none")
            {
                workers.insert(service_name.clone());
            }
            let section_name = format!("[{section}.{name}]");
            let service_fields = Fields::new(root.file, table, section_name, key_span);
            if let Some(template) =
                parse_service(&service_fields, service_name.clone(), diagnostics)
                && let Some(service_name) = service_name
            {
                services.insert(service_name, template);
            }
        }
    }
    (services, declared, workers)
}
