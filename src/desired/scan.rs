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

use rayon::prelude::*;

/// One instance file, read but not parsed.
#[derive(Debug, Clone)]
pub(crate) struct ScannedFile {
    pub key: InstanceKey,
    /// `path` is shown relative to the directory of tenement.toml.
    pub file: SourceFile,
}

#[derive(Debug, Default)]
pub(crate) struct Scan {
    /// Sorted by key.
    pub files: Vec<ScannedFile>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Whether a directory entry named `name` is skipped (hidden, editor temporary).
pub(crate) fn is_ignored(name: &str) -> bool {
    name.starts_with('.')
        || name.ends_with(".swp")
        || name.ends_with('~')
        || name.ends_with(".tmp")
        || (name.starts_with('#') && name.ends_with('#'))
}

/// Reads every instance file under `instances_dir`. A missing directory declares nothing.
pub(crate) fn scan_instances(instances_dir: &Path, config_dir: &Path) -> Scan {
    let mut scan = Scan::default();
    let shown = |path: &Path| -> PathBuf {
        path.strip_prefix(config_dir)
            .map_or_else(|_| path.to_path_buf(), Path::to_path_buf)
    };
    let entries = match list_dir(instances_dir) {
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
    for entry in entries {
        if is_ignored(&entry.name) {
            continue;
        }
        if !entry.is_dir() {
            if entry.name.ends_with(".toml") {
                scan.diagnostics.push(
                    Diagnostic::in_file(
                        &shown(&entry.path),
                        "instance file outside a service directory is ignored",
                    )
                    .with_hint(format!(
                        "move it to {}/<service>/{}",
                        shown(instances_dir).display(),
                        entry.name
                    ))
                    .warning(),
                );
            }
            continue;
        }
        let service = match ServiceName::new(&entry.name) {
            Ok(service) => service,
            Err(error) => {
                scan.diagnostics.push(bad_name_in_file(
                    &shown(&entry.path),
                    "service name",
                    &entry.name,
                    &error,
                ));
                continue;
            }
        };
        scan_service_dir(&entry.path, &service, &shown, &mut scan);
    }
    scan.files.sort_by(|a, b| a.key.cmp(&b.key));
    scan
}

/// What one entry of a service directory turned out to be.
enum Outcome {
    File(ScannedFile),
    Problem(Diagnostic),
    Skipped,
}

fn scan_service_dir(
    dir: &Path,
    service: &ServiceName,
    shown: &(dyn Fn(&Path) -> PathBuf + Sync),
    scan: &mut Scan,
) {
    let entries = match list_dir(dir) {
        Ok(entries) => entries,
        Err(error) => {
            scan.diagnostics.push(Diagnostic::in_file(
                &shown(dir),
                format!("cannot read directory: {error}"),
            ));
            return;
        }
    };
    // Each entry costs a stat and maybe a read: thousands of them go faster on every core.
    let outcomes: Vec<Outcome> = entries
        .into_par_iter()
        .map(|entry| scan_entry(entry, service, shown))
        .collect();
    for outcome in outcomes {
        match outcome {
            Outcome::File(file) => scan.files.push(file),
            Outcome::Problem(diagnostic) => scan.diagnostics.push(diagnostic),
            Outcome::Skipped => {}
        }
    }
}

fn scan_entry(entry: Entry, service: &ServiceName, shown: &dyn Fn(&Path) -> PathBuf) -> Outcome {
    if is_ignored(&entry.name) {
        return Outcome::Skipped;
    }
    // A stat relative to the directory is cheaper than an open; it also tells the size, so
    // an empty file (the common case: it just declares an instance) is never opened.
    let metadata = match entry.metadata() {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Outcome::Skipped,
        Err(error) => {
            return Outcome::Problem(Diagnostic::in_file(
                &shown(&entry.path),
                format!("cannot read: {error}"),
            ));
        }
    };
    if metadata.is_dir() {
        return Outcome::Problem(
            Diagnostic::in_file(
                &shown(&entry.path),
                "nested directory in a service directory is ignored",
            )
            .with_hint("instance files are instances/<service>/<id>.toml")
            .warning(),
        );
    }
    let Some(stem) = entry.name.strip_suffix(".toml") else {
        return Outcome::Skipped;
    };
    let id = match InstanceId::new(stem) {
        Ok(id) => id,
        Err(error) => {
            return Outcome::Problem(bad_name_in_file(
                &shown(&entry.path),
                "instance id",
                stem,
                &error,
            ));
        }
    };
    match read_text(&entry.path, metadata.len()) {
        Ok(text) => Outcome::File(ScannedFile {
            key: InstanceKey::new(service.clone(), id),
            file: SourceFile {
                path: shown(&entry.path),
                text,
            },
        }),
        // Deleted between listing and reading: it is simply gone.
        Err(error) if error.kind() == io::ErrorKind::NotFound => Outcome::Skipped,
        Err(error) if error.kind() == io::ErrorKind::InvalidData => Outcome::Problem(
            Diagnostic::in_file(&shown(&entry.path), "instance file is not UTF-8 text")
                .with_hint("instance files are TOML, which is UTF-8"),
        ),
        Err(error) => Outcome::Problem(Diagnostic::in_file(
            &shown(&entry.path),
            format!("cannot read: {error}"),
        )),
    }
}

/// The text of a file of `size` bytes; an empty file is not opened.
fn read_text(path: &Path, size: u64) -> io::Result<String> {
    if size == 0 {
        return Ok(String::new());
    }
    let bytes = fs::read(path)?;
    String::from_utf8(bytes).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not UTF-8"))
}

/// A directory entry with what listing the directory tells for free.
struct Entry {
    name: String,
    path: PathBuf,
    dir_entry: fs::DirEntry,
    file_type: fs::FileType,
}

impl Entry {
    fn is_dir(&self) -> bool {
        self.file_type.is_dir() || (self.file_type.is_symlink() && self.path.is_dir())
    }

    /// Follows symlinks to what they point at.
    fn metadata(&self) -> io::Result<fs::Metadata> {
        if self.file_type.is_symlink() {
            fs::metadata(&self.path)
        } else {
            self.dir_entry.metadata()
        }
    }
}

/// The entries of `dir`, sorted by name. Names that are not UTF-8 cannot be valid labels and
/// are skipped.
fn list_dir(dir: &Path) -> io::Result<Vec<Entry>> {
    let mut entries = Vec::new();
    for dir_entry in fs::read_dir(dir)? {
        let dir_entry = dir_entry?;
        let Ok(name) = dir_entry.file_name().into_string() else {
            continue;
        };
        entries.push(Entry {
            name,
            path: dir_entry.path(),
            file_type: dir_entry.file_type()?,
            dir_entry,
        });
    }
    entries.sort_unstable_by(|a, b| a.name.cmp(&b.name));
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
