//! Reading the files: tenement.toml, and every instance file parsed and checked against the
//! services tenement.toml declares, each problem a diagnostic; the check an edit of an
//! instance file must pass. Must not import tokio, nix, hyper or notify.

use std::path::Path;

use rayon::prelude::*;

use crate::config::file_text::{CONFIG_FILE_LIMIT, FileTextError, read_config_text};
use crate::config::parse::unknown_service_hint;
use crate::config::{
    Diagnostic, InstanceFile, Outline, ParsedConfig, SourceFile, parse_config, parse_instance_file,
};
use crate::names::InstanceKey;

use super::scan::{self, Unlisted};

/// Reads and parses tenement.toml: a regular file (a link to one is followed) of at most
/// [`CONFIG_FILE_LIMIT`] bytes, read without blocking on a FIFO.
pub fn read_config(config_path: &Path, diagnostics: &mut Vec<Diagnostic>) -> ParsedConfig {
    match read_config_text(config_path, CONFIG_FILE_LIMIT) {
        Ok(text) => parse_config(config_path, text, diagnostics),
        Err(error) => {
            diagnostics.push(
                Diagnostic::in_file(config_path, format!("the config file {error}"))
                    .with_hint_opt(config_file_hint(&error)),
            );
            ParsedConfig {
                config: None,
                outline: None,
            }
        }
    }
}

fn config_file_hint(error: &FileTextError) -> Option<String> {
    match error {
        FileTextError::TooBig { .. } => Some(
            "tenement.toml holds templates and settings; declare many instances with files in instances/".to_string(),
        ),
        FileTextError::NotRegular(_) | FileTextError::Link => {
            Some("--config (or TENEMENT_CONFIG) must name a regular file or a directory holding tenement.toml".to_string())
        }
        FileTextError::NotUtf8 => Some("tenement.toml is TOML, which is UTF-8".to_string()),
        FileTextError::Io(_) => None,
    }
}

/// Reads and parses every instance file; `None` for a file with errors (reported), so that
/// a broken file can keep its instance's last valid declaration. An entry named like an
/// instance file that cannot be read at all (a link, a directory, a FIFO, too big, not UTF-8,
/// unreadable) is such a file too: its instance comes with `None`.
pub fn read_instance_files(
    outline: &Outline,
    diagnostics: &mut Vec<Diagnostic>,
) -> Vec<(InstanceKey, Option<InstanceFile>)> {
    scan_instance_files(outline, diagnostics).0
}

/// [`read_instance_files`], and what could not be listed at all (a service directory that is
/// a link or unreadable, an instances directory that cannot be listed): the instances there
/// are unknown, not undeclared.
pub fn scan_instance_files(
    outline: &Outline,
    diagnostics: &mut Vec<Diagnostic>,
) -> (Vec<(InstanceKey, Option<InstanceFile>)>, Unlisted) {
    let scan = scan::scan_instances(&outline.instances_dir, &outline.dir);
    diagnostics.extend(scan.diagnostics);
    let parsed: Vec<(InstanceKey, Option<InstanceFile>, Vec<Diagnostic>)> = scan
        .files
        .into_par_iter()
        .map(|scanned| match scanned.file {
            Ok(file) => {
                let mut problems = Vec::new();
                let parsed = parse_file(outline, &scanned.key, &file, &mut problems);
                (scanned.key, parsed, problems)
            }
            Err(problem) => (scanned.key, None, vec![problem]),
        })
        .collect();
    let files = parsed
        .into_iter()
        .map(|(key, file, problems)| {
            diagnostics.extend(problems);
            (key, file)
        })
        .collect();
    (files, scan.unlisted)
}

/// The check an edit of `key`'s instance file must pass before it is written (see
/// `config::edit`): what `ten validate` would say of the file with that text, against
/// tenement.toml at `config_path` as it is now (its services). When tenement.toml cannot be
/// read as TOML, only the file's own keys are checked.
pub fn instance_file_check(
    config_path: &Path,
    key: &InstanceKey,
) -> impl Fn(&str) -> Vec<Diagnostic> + use<> {
    let mut ignored = Vec::new();
    let outline = read_config(config_path, &mut ignored).outline;
    let key = key.clone();
    move |text: &str| {
        // Shown relative to the config's directory, as `ten validate` shows it.
        let path = match &outline {
            Some(outline) => {
                let path = crate::config::edit::instance_file_path(&outline.instances_dir, &key);
                path.strip_prefix(&outline.dir)
                    .map_or_else(|_| path.clone(), Path::to_path_buf)
            }
            None => crate::config::edit::instance_file_path(Path::new("instances"), &key),
        };
        let file = SourceFile {
            path,
            text: text.to_string(),
        };
        let mut diagnostics = Vec::new();
        match &outline {
            Some(outline) => {
                parse_file(outline, &key, &file, &mut diagnostics);
            }
            None => {
                parse_instance_file(&file, key.service.as_str(), false, &mut diagnostics);
            }
        }
        diagnostics
    }
}

fn parse_file(
    outline: &Outline,
    key: &InstanceKey,
    file: &SourceFile,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<InstanceFile> {
    if !outline.services.contains(&key.service) {
        let service = key.service.as_str();
        diagnostics.push(
            Diagnostic::in_file(
                &file.path,
                format!(
                    "instance file for service `{service}`, which is not declared in tenement.toml"
                ),
            )
            .with_hint(unknown_service_hint(service, &outline.services)),
        );
        return None;
    }
    let worker = outline.workers.contains(&key.service);
    let overrides = parse_instance_file(file, key.service.as_str(), worker, diagnostics)?;
    Some(InstanceFile::new(key.clone(), file.path.clone(), overrides))
}
