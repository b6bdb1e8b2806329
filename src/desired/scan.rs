//! Reading the instances directory: `instances/<service>/<id>.toml`.
//!
//! Hidden files, editor temporaries (`*.swp`, `*~`, `*.tmp`, `#*#`) and files not ending in
//! `.toml` are ignored. A bad service or id in a path is an error; a `.toml` file in the wrong
//! place is a warning. Reads files; does not parse them.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::config::parse::bad_name_in_file;
use crate::config::{Diagnostic, SourceFile};
use crate::names::{InstanceId, InstanceKey, ServiceName};

/// One instance file, read but not parsed.
#[derive(Debug, Clone)]
pub struct ScannedFile {
    pub key: InstanceKey,
    /// `path` is shown relative to the directory of tenement.toml.
    pub file: SourceFile,
}

#[derive(Debug, Default)]
pub struct Scan {
    /// Sorted by key.
    pub files: Vec<ScannedFile>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Whether a directory entry named `name` is skipped (hidden, editor temporary).
pub fn is_ignored(name: &str) -> bool {
    name.starts_with('.')
        || name.ends_with(".swp")
        || name.ends_with('~')
        || name.ends_with(".tmp")
        || (name.starts_with('#') && name.ends_with('#'))
}

/// Reads every instance file under `instances_dir`. A missing directory declares nothing.
pub fn scan_instances(instances_dir: &Path, config_dir: &Path) -> Scan {
    let mut scan = Scan::default();
    let shown = |path: &Path| -> PathBuf {
        path.strip_prefix(config_dir)
            .map_or_else(|_| path.to_path_buf(), Path::to_path_buf)
    };
    let entries = match read_dir_sorted(instances_dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return scan,
        Err(error) => {
            scan.diagnostics.push(Diagnostic::in_file(
                &shown(instances_dir),
                format!("cannot read the instances directory: {error}"),
            ));
            return scan;
        }
    };
    for (name, path, is_dir) in entries {
        if is_ignored(&name) {
            continue;
        }
        if !is_dir {
            if name.ends_with(".toml") {
                scan.diagnostics.push(
                    Diagnostic::in_file(
                        &shown(&path),
                        "instance file outside a service directory is ignored",
                    )
                    .with_hint(format!(
                        "move it to {}/<service>/{name}",
                        shown(instances_dir).display()
                    ))
                    .warning(),
                );
            }
            continue;
        }
        let service = match ServiceName::new(&name) {
            Ok(service) => service,
            Err(error) => {
                scan.diagnostics.push(bad_name_in_file(
                    &shown(&path),
                    "service name",
                    &name,
                    &error,
                ));
                continue;
            }
        };
        scan_service_dir(&path, &service, &shown, &mut scan);
    }
    scan.files.sort_by(|a, b| a.key.cmp(&b.key));
    scan
}

fn scan_service_dir(
    dir: &Path,
    service: &ServiceName,
    shown: &dyn Fn(&Path) -> PathBuf,
    scan: &mut Scan,
) {
    let entries = match read_dir_sorted(dir) {
        Ok(entries) => entries,
        Err(error) => {
            scan.diagnostics.push(Diagnostic::in_file(
                &shown(dir),
                format!("cannot read directory: {error}"),
            ));
            return;
        }
    };
    for (name, path, is_dir) in entries {
        if is_ignored(&name) {
            continue;
        }
        if is_dir {
            scan.diagnostics.push(
                Diagnostic::in_file(
                    &shown(&path),
                    "nested directory in a service directory is ignored",
                )
                .with_hint("instance files are instances/<service>/<id>.toml")
                .warning(),
            );
            continue;
        }
        let Some(stem) = name.strip_suffix(".toml") else {
            continue;
        };
        let id = match InstanceId::new(stem) {
            Ok(id) => id,
            Err(error) => {
                scan.diagnostics
                    .push(bad_name_in_file(&shown(&path), "instance id", stem, &error));
                continue;
            }
        };
        match fs::read(&path) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => scan.files.push(ScannedFile {
                    key: InstanceKey::new(service.clone(), id),
                    file: SourceFile {
                        path: shown(&path),
                        text,
                    },
                }),
                Err(_) => scan.diagnostics.push(
                    Diagnostic::in_file(&shown(&path), "instance file is not UTF-8 text")
                        .with_hint("instance files are TOML, which is UTF-8"),
                ),
            },
            // Deleted between listing and reading: it is simply gone.
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => scan.diagnostics.push(Diagnostic::in_file(
                &shown(&path),
                format!("cannot read: {error}"),
            )),
        }
    }
}

/// Entries of `dir` as (name, path, is a directory), sorted by name. Names that are not
/// UTF-8 cannot be valid labels and are skipped. Symlinks are followed.
fn read_dir_sorted(dir: &Path) -> io::Result<Vec<(String, PathBuf, bool)>> {
    let mut entries = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let path = entry.path();
        let file_type = entry.file_type()?;
        let is_dir = if file_type.is_symlink() {
            path.is_dir()
        } else {
            file_type.is_dir()
        };
        entries.push((name, path, is_dir));
    }
    entries.sort();
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn editor_files_are_ignored() {
        for name in [
            ".alice.toml.swp",
            "alice.toml~",
            "alice.toml.tmp",
            "#alice.toml#",
            ".hidden.toml",
        ] {
            assert!(is_ignored(name), "{name}");
        }
        assert!(!is_ignored("alice.toml"));
    }

    #[test]
    fn scans_service_directories() {
        let root = tempfile::tempdir().unwrap();
        let instances = root.path().join("instances");
        fs::create_dir_all(instances.join("notes")).unwrap();
        fs::create_dir_all(instances.join("Bad_Service")).unwrap();
        fs::write(instances.join("notes/bob.toml"), "weight = 5\n").unwrap();
        fs::write(instances.join("notes/alice.toml"), "").unwrap();
        fs::write(instances.join("notes/alice.toml.swp"), "junk").unwrap();
        fs::write(instances.join("notes/README.md"), "notes").unwrap();
        fs::write(instances.join("notes/Bad_ID.toml"), "").unwrap();
        fs::write(instances.join("stray.toml"), "").unwrap();
        let scan = scan_instances(&instances, root.path());
        let keys: Vec<String> = scan.files.iter().map(|f| f.key.to_string()).collect();
        assert_eq!(keys, ["notes:alice", "notes:bob"]);
        assert_eq!(
            scan.files[1].file.path,
            PathBuf::from("instances/notes/bob.toml")
        );
        let messages: Vec<String> = scan
            .diagnostics
            .iter()
            .map(|d| format!("{}: {}", d.file.display(), d.message))
            .collect();
        assert_eq!(
            messages,
            [
                "instances/Bad_Service: invalid service name \"Bad_Service\": it contains 'B'",
                "instances/notes/Bad_ID.toml: invalid instance id \"Bad_ID\": it contains 'B'",
                "instances/stray.toml: instance file outside a service directory is ignored",
            ]
        );
    }

    #[test]
    fn a_missing_directory_declares_nothing() {
        let root = tempfile::tempdir().unwrap();
        let scan = scan_instances(&root.path().join("instances"), root.path());
        assert!(scan.files.is_empty() && scan.diagnostics.is_empty());
    }
}
