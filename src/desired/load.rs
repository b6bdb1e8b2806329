//! Loading the desired state: tenement.toml and the instance files read (`read`), merged
//! (`resolve`) and their problems sorted as a reader goes; [`load`] for the CLI, [`reload`]
//! for the server, which keeps a broken instance file's last valid version. Must not import
//! tokio, nix, hyper or notify (the server calls these from a blocking task).

use std::collections::BTreeMap;
use std::path::Path;

use crate::config::{Diagnostic, InstanceFile, has_errors};
use crate::names::InstanceKey;

use super::DesiredState;
use super::read::{read_config, read_instance_files};
use super::resolve::resolve;

/// The outcome of loading: the desired state when there is no error, and every problem found.
#[derive(Debug)]
pub struct Loaded {
    pub desired: Option<DesiredState>,
    pub diagnostics: Vec<Diagnostic>,
    /// Number of instance files read.
    pub instance_files: usize,
}

/// Reads and validates tenement.toml at `config_path` (absolute) and the instances directory.
/// Instance files are checked even when tenement.toml has errors, so every problem shows.
pub fn load(config_path: &Path) -> Loaded {
    let mut diagnostics = Vec::new();
    let parsed = read_config(config_path, &mut diagnostics);
    let files = match &parsed.outline {
        Some(outline) => read_instance_files(outline, &mut diagnostics),
        None => Vec::new(),
    };
    let instance_files = files.len();
    let valid: Vec<InstanceFile> = files.into_iter().filter_map(|(_, file)| file).collect();
    let desired = parsed
        .config
        .map(|config| resolve(config, &valid, &mut diagnostics));
    let config_file = config_path
        .file_name()
        .map(Path::new)
        .unwrap_or(config_path);
    sort_diagnostics(&mut diagnostics, config_file);
    Loaded {
        desired: desired.filter(|_| !has_errors(&diagnostics)),
        diagnostics,
        instance_files,
    }
}

/// The outcome of a reload by the server.
#[derive(Debug)]
pub struct Reload {
    /// `None` when tenement.toml (or a check across instances) has errors: everything stays
    /// as it was.
    pub desired: Option<DesiredState>,
    /// The instance files in effect: the valid ones, and for a broken file, its last valid
    /// version. Give them to the next reload.
    pub files: BTreeMap<InstanceKey, InstanceFile>,
    /// Instances kept at their last valid declaration because their file is broken.
    pub frozen: Vec<InstanceKey>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Reloads desired state for a running server. A broken instance file freezes only its
/// instance: it keeps its declaration from `last_files`, while other changes apply. A broken
/// tenement.toml freezes everything (`desired` is `None`).
pub fn reload(config_path: &Path, last_files: &BTreeMap<InstanceKey, InstanceFile>) -> Reload {
    let mut diagnostics = Vec::new();
    let parsed = read_config(config_path, &mut diagnostics);
    let read = match &parsed.outline {
        Some(outline) => read_instance_files(outline, &mut diagnostics),
        None => Vec::new(),
    };
    let mut files = Vec::with_capacity(read.len());
    let mut frozen = Vec::new();
    for (key, file) in read {
        match file {
            Some(file) => files.push((key, file)),
            None => {
                if let Some(last) = last_files.get(&key) {
                    files.push((key.clone(), last.clone()));
                    frozen.push(key);
                }
            }
        }
    }
    // Built in bulk: its nodes are full (inserted one by one in order, they are half empty).
    let files: BTreeMap<InstanceKey, InstanceFile> = files.into_iter().collect();
    let desired = parsed.config.and_then(|config| {
        let before = diagnostics.len();
        let valid: Vec<InstanceFile> = files.values().cloned().collect();
        let desired = resolve(config, &valid, &mut diagnostics);
        (!has_errors(&diagnostics[before..])).then_some(desired)
    });
    let config_file = config_path
        .file_name()
        .map(Path::new)
        .unwrap_or(config_path);
    sort_diagnostics(&mut diagnostics, config_file);
    Reload {
        desired,
        // Without an outline (tenement.toml does not parse) no file was read: keep the last.
        files: if parsed.outline.is_some() {
            files
        } else {
            last_files.clone()
        },
        frozen,
        diagnostics,
    }
}

/// Orders diagnostics as a reader goes: tenement.toml first, then files by path, each by
/// position.
pub fn sort_diagnostics(diagnostics: &mut [Diagnostic], config_file: &Path) {
    diagnostics.sort_by(|a, b| {
        let key = |d: &Diagnostic| (d.file != config_file, d.file.clone(), d.line, d.column);
        key(a).cmp(&key(b))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> InstanceKey {
        InstanceKey::parse(text).unwrap()
    }

    #[test]
    fn a_broken_instance_file_keeps_its_last_valid_declaration() {
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("tenement.toml");
        let write = |path: &str, text: &str| {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        write("tenement.toml", "[service.notes]\ncommand = \"x\"\n");
        write("instances/notes/alice.toml", "weight = 10\n");
        write("instances/notes/bob.toml", "");
        let first = reload(&config_path, &BTreeMap::new());
        assert!(first.frozen.is_empty());
        assert_eq!(first.desired.unwrap().instances.len(), 2);

        write("instances/notes/alice.toml", "weight = \n");
        write("instances/notes/carol.toml", "");
        let second = reload(&config_path, &first.files);
        assert_eq!(second.frozen, [key("notes:alice")]);
        let desired = second.desired.unwrap();
        assert_eq!(
            desired.instances[&key("notes:alice")].weight,
            10,
            "alice keeps her last valid file"
        );
        assert!(
            desired.instances.contains_key(&key("notes:carol")),
            "other changes still apply"
        );
        assert!(has_errors(&second.diagnostics));

        write("tenement.toml", "[service.notes\n");
        let third = reload(&config_path, &second.files);
        assert!(
            third.desired.is_none(),
            "a broken tenement.toml freezes everything"
        );
        assert_eq!(third.files.len(), 3);
    }
}
