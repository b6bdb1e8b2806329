//! Reading the instances directory: `instances/<service>/<id>.toml`.
//!
//! Hidden files and editor temporaries (`*.swp`, `*.swx`, `*~`, `*.tmp`, `#*#`) are skipped
//! quietly. A bad service or id in a path is an error; a `.toml` file in the wrong place, and
//! any other file in a service directory (`b`, `c.TOML`, `d.yaml`: it declares nothing), is a
//! warning. Reads files; does not parse them.
//!
//! Nothing below the instances directory is reached through a symbolic link (the directory
//! itself may be one: its path is the config's choice). Service directories are opened with
//! `O_NOFOLLOW` and listed from their descriptor, and instance files are opened relative to
//! it with `O_NOFOLLOW | O_NONBLOCK` (`config::file_text`), so no link swapped in after a
//! check is followed, and a FIFO never blocks the scan. Every problem with an entry named
//! like an instance file (`<id>.toml`: a link, a directory, a FIFO, a socket, a device, too
//! big, unreadable, not UTF-8) is an error that carries its instance's key, so the instance is
//! known to be declared by a broken file rather than undeclared.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};

use crate::config::file_text::{FileTextError, INSTANCE_FILE_LIMIT, read_text_at};
use crate::config::parse::bad_name_in_file;
use crate::config::{Diagnostic, SourceFile};
use crate::names::{InstanceId, InstanceKey, ServiceName};

use rayon::prelude::*;

/// One entry named like an instance file: its text, or the error that it could not be read
/// (an error diagnostic naming the instance).
#[derive(Debug, Clone)]
pub(crate) struct ScannedFile {
    pub key: InstanceKey,
    /// `path` is shown relative to the directory of tenement.toml.
    pub file: Result<SourceFile, Diagnostic>,
}

/// What the scan could not list, so whose instances it cannot know: they are not undeclared.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unlisted {
    /// The instances directory itself exists but cannot be listed (or is not a directory).
    pub everything: bool,
    /// Service directories that are links or cannot be listed.
    pub services: Vec<ServiceName>,
}

#[derive(Debug, Default)]
pub(crate) struct Scan {
    /// Sorted by key.
    pub files: Vec<ScannedFile>,
    pub diagnostics: Vec<Diagnostic>,
    pub unlisted: Unlisted,
}

/// Whether a directory entry named `name` is skipped (hidden, editor temporary).
pub(crate) fn is_ignored(name: &str) -> bool {
    name.starts_with('.')
        || name.ends_with(".swp")
        || name.ends_with(".swx")
        || name.ends_with('~')
        || name.ends_with(".tmp")
        || (name.starts_with('#') && name.ends_with('#'))
}

/// How paths are shown: relative to the directory of tenement.toml.
type Shown<'a> = &'a (dyn Fn(&Path) -> PathBuf + Sync);

/// Reads every instance file under `instances_dir`. A missing directory declares nothing.
pub(crate) fn scan_instances(instances_dir: &Path, config_dir: &Path) -> Scan {
    let mut scan = Scan::default();
    let shown = |path: &Path| -> PathBuf {
        path.strip_prefix(config_dir)
            .map_or_else(|_| path.to_path_buf(), Path::to_path_buf)
    };
    // The instances directory itself is followed if it is a link.
    let listed = rustix::fs::open(instances_dir, directory_flags(), Mode::empty())
        .map_err(io::Error::from)
        .and_then(|fd| Ok((list_dir(&fd)?, fd)));
    let (entries, dir_fd) = match listed {
        Ok(listed) => listed,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return scan,
        Err(error) => {
            scan.diagnostics.push(Diagnostic::in_file(
                &shown(instances_dir),
                format!("cannot read the instances directory: {error}"),
            ));
            scan.unlisted.everything = true;
            return scan;
        }
    };
    for entry in entries {
        if is_ignored(&entry.name) {
            continue;
        }
        let path = instances_dir.join(&entry.name);
        let file_type = match entry.file_type(&dir_fd) {
            Ok(file_type) => file_type,
            Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
            Err(error) => {
                scan.diagnostics.push(Diagnostic::in_file(
                    &shown(&path),
                    format!("cannot read: {error}"),
                ));
                continue;
            }
        };
        if entry.name.ends_with(".toml") && file_type != FileType::Directory {
            scan.diagnostics.push(
                Diagnostic::in_file(
                    &shown(&path),
                    "instance file outside a service directory is ignored",
                )
                .with_hint(format!(
                    "move it to {}/<service>/{}",
                    shown(instances_dir).display(),
                    entry.name
                ))
                .warning(),
            );
            continue;
        }
        if !matches!(file_type, FileType::Directory | FileType::Symlink) {
            continue;
        }
        let service = match ServiceName::new(&entry.name) {
            // Not followed: whatever it points at, its instances are unknown.
            Ok(service) if file_type == FileType::Symlink => {
                scan.diagnostics
                    .push(linked_service_dir(&shown(&path), &service));
                scan.unlisted.services.push(service);
                continue;
            }
            Ok(service) => service,
            // A link with a name no service can have looks like no service directory.
            Err(_) if file_type == FileType::Symlink => continue,
            Err(error) => {
                scan.diagnostics.push(bad_name_in_file(
                    &shown(&path),
                    "service name",
                    &entry.name,
                    &error,
                ));
                continue;
            }
        };
        scan_service_dir(&dir_fd, &entry, &path, &service, &shown, &mut scan);
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
    parent: &OwnedFd,
    entry: &Entry,
    dir: &Path,
    service: &ServiceName,
    shown: Shown<'_>,
    scan: &mut Scan,
) {
    // Opened without following a link, so a link put in place since the listing is refused
    // too; its entries are then opened relative to this descriptor.
    let opened = rustix::fs::openat(
        parent,
        &entry.c_name,
        directory_flags() | OFlags::NOFOLLOW,
        Mode::empty(),
    );
    let listed = match opened {
        Ok(fd) => list_dir(&fd).map(|entries| (fd, entries)),
        // Replaced since the listing: by a link (refused), or by a file or nothing (no
        // service directory any more).
        Err(rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR | rustix::io::Errno::NOENT) => {
            let now = rustix::fs::statat(parent, &entry.c_name, AtFlags::SYMLINK_NOFOLLOW);
            if now.is_ok_and(|stat| FileType::from_raw_mode(stat.st_mode) == FileType::Symlink) {
                scan.diagnostics
                    .push(linked_service_dir(&shown(dir), service));
                scan.unlisted.services.push(service.clone());
            }
            return;
        }
        Err(error) => Err(io::Error::from(error)),
    };
    let (fd, entries) = match listed {
        Ok(listed) => listed,
        Err(error) => {
            scan.diagnostics.push(
                Diagnostic::in_file(&shown(dir), format!("cannot read directory: {error}"))
                    .with_hint(format!(
                        "the instances of service {service} are unknown until ten can list it"
                    )),
            );
            scan.unlisted.services.push(service.clone());
            return;
        }
    };
    // Each entry costs a stat and maybe a read: thousands of them go faster on every core.
    let outcomes: Vec<Outcome> = entries
        .into_par_iter()
        .map(|entry| scan_entry(&fd, dir, entry, service, shown))
        .collect();
    for outcome in outcomes {
        match outcome {
            Outcome::File(file) => scan.files.push(file),
            Outcome::Problem(diagnostic) => scan.diagnostics.push(diagnostic),
            Outcome::Skipped => {}
        }
    }
}

fn linked_service_dir(shown_dir: &Path, service: &ServiceName) -> Diagnostic {
    let instances = shown_dir.parent().unwrap_or(Path::new("instances"));
    Diagnostic::in_file(
        shown_dir,
        format!(
            "service directory of {service} is a symbolic link; ten does not follow links in {}/",
            instances.display()
        ),
    )
    .with_hint(format!(
        "make {} a directory holding the instance files (move or copy them there); to keep the instances elsewhere, point `instances_dir` in [settings] at that directory",
        shown_dir.display()
    ))
}

fn scan_entry(
    dir_fd: &OwnedFd,
    dir: &Path,
    entry: Entry,
    service: &ServiceName,
    shown: Shown<'_>,
) -> Outcome {
    if is_ignored(&entry.name) {
        return Outcome::Skipped;
    }
    let path = shown(&dir.join(&entry.name));
    let Some(stem) = entry.name.strip_suffix(".toml") else {
        return match entry.file_type(dir_fd) {
            Ok(FileType::Directory) => Outcome::Problem(
                Diagnostic::in_file(&path, "nested directory in a service directory is ignored")
                    .with_hint("instance files are instances/<service>/<id>.toml")
                    .warning(),
            ),
            // Gone since the listing.
            Err(error) if error.kind() == io::ErrorKind::NotFound => Outcome::Skipped,
            _ => Outcome::Problem(not_an_instance_file(&path, &entry.name, service)),
        };
    };
    let id = match InstanceId::new(stem) {
        Ok(id) => id,
        Err(error) => {
            return Outcome::Problem(bad_name_in_file(&path, "instance id", stem, &error));
        }
    };
    let key = InstanceKey::new(service.clone(), id);
    // A stat relative to the directory, not following a link, is cheaper than an open; it
    // tells the type and size, so an empty file (the common case: it just declares an
    // instance) is never opened, nor is anything but a regular file.
    let stat = match rustix::fs::statat(dir_fd, &entry.c_name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) => stat,
        Err(rustix::io::Errno::NOENT) => return Outcome::Skipped,
        Err(error) => {
            let problem = FileTextError::Io(error.into());
            return keyed_problem(key, &path, &problem);
        }
    };
    match read_text_at(dir_fd, &entry.c_name, Some(&stat), INSTANCE_FILE_LIMIT) {
        Ok(text) => Outcome::File(ScannedFile {
            key,
            file: Ok(SourceFile { path, text }),
        }),
        // Deleted between listing and reading: it is simply gone.
        Err(problem) if problem.is_not_found() => Outcome::Skipped,
        Err(problem) => keyed_problem(key, &path, &problem),
    }
}

/// The warning for a file of a service directory that does not end in `.toml` (as shown at
/// `path`): it declares nothing. The hint names the instance file it may have been meant as.
fn not_an_instance_file(path: &Path, name: &str, service: &ServiceName) -> Diagnostic {
    let dir = path.parent().unwrap_or(Path::new(""));
    let (stem, extension) = match name.rsplit_once('.') {
        Some((stem, extension)) if !stem.is_empty() => (stem, Some(extension)),
        _ => (name, None),
    };
    let hint = match InstanceId::new(stem) {
        Ok(id) if extension.is_some_and(|extension| extension.eq_ignore_ascii_case("toml")) => {
            format!(
                "ten reads only a lower-case .toml: rename it to {}/{id}.toml to declare {service}:{id}",
                dir.display()
            )
        }
        Ok(id) => format!(
            "to declare {service}:{id}, rename it to {}/{id}.toml; otherwise move it out of {}",
            dir.display(),
            dir.display()
        ),
        Err(_) => format!(
            "instance files are {}/<id>.toml; move it out of {}",
            dir.display(),
            dir.display()
        ),
    };
    Diagnostic::in_file(
        path,
        "not an instance file (an instance file ends in .toml); ignored",
    )
    .with_hint(hint)
    .warning()
}

/// The error of an instance file that cannot be read: carried with its key.
fn keyed_problem(key: InstanceKey, path: &Path, problem: &FileTextError) -> Outcome {
    let diagnostic = file_problem(&key, path, problem);
    Outcome::File(ScannedFile {
        key,
        file: Err(diagnostic),
    })
}

/// What to say of the instance file of `key` at `path` (as shown) that cannot be read.
fn file_problem(key: &InstanceKey, path: &Path, problem: &FileTextError) -> Diagnostic {
    let instances = path
        .parent()
        .and_then(Path::parent)
        .unwrap_or(Path::new("instances"));
    match problem {
        FileTextError::Link => Diagnostic::in_file(
            path,
            format!(
                "instance file of {key} is a symbolic link; ten does not follow links in {}/",
                instances.display()
            ),
        )
        .with_hint(format!(
            "copy the file instead: replace the link with a regular file ({})",
            path.display()
        )),
        FileTextError::NotRegular("a directory") => Diagnostic::in_file(
            path,
            format!("instance file of {key} is a directory"),
        )
        .with_hint(format!(
            "an instance is declared by a file: remove the directory (or move it elsewhere), then create {} as a file",
            path.display()
        )),
        FileTextError::NotRegular(kind) => Diagnostic::in_file(
            path,
            format!("instance file of {key} is {kind}, not a regular file; ten does not read it"),
        )
        .with_hint(format!("replace {} with a regular file", path.display())),
        FileTextError::TooBig { size, limit } => Diagnostic::in_file(
            path,
            format!(
                "instance file of {key} is {size} bytes; ten reads instance files of at most {limit} bytes ({} MiB)",
                limit / (1024 * 1024)
            ),
        )
        .with_hint("an instance file holds a few keys (state, weight, env...): keep data elsewhere"),
        FileTextError::NotUtf8 => Diagnostic::in_file(
            path,
            format!("instance file of {key} is not UTF-8 text"),
        )
        .with_hint("instance files are TOML, which is UTF-8"),
        FileTextError::Io(error) => Diagnostic::in_file(
            path,
            format!("instance file of {key} cannot be read: {error}"),
        )
        .with_hint("ten must be able to read it (check its permissions and those of its directory)"),
    }
}

fn directory_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC
}

/// A directory entry with what listing the directory tells for free.
struct Entry {
    name: String,
    c_name: CString,
    /// From the listing; `Unknown` on file systems that do not say.
    listed_type: FileType,
}

impl Entry {
    /// What the entry is, not following a link.
    fn file_type(&self, dir: impl AsFd) -> io::Result<FileType> {
        if self.listed_type != FileType::Unknown {
            return Ok(self.listed_type);
        }
        let stat = rustix::fs::statat(dir, &self.c_name, AtFlags::SYMLINK_NOFOLLOW)?;
        Ok(FileType::from_raw_mode(stat.st_mode))
    }
}

/// The entries of the directory open as `dir`, sorted by name. Names that are not UTF-8
/// cannot be valid labels and are skipped.
fn list_dir(dir: &OwnedFd) -> io::Result<Vec<Entry>> {
    let mut entries = Vec::new();
    for dir_entry in rustix::fs::Dir::read_from(dir)? {
        let dir_entry = dir_entry?;
        let c_name: &CStr = dir_entry.file_name();
        let Ok(name) = c_name.to_str() else {
            continue;
        };
        if name == "." || name == ".." {
            continue;
        }
        entries.push(Entry {
            name: name.to_string(),
            c_name: c_name.to_owned(),
            listed_type: dir_entry.file_type(),
        });
    }
    entries.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn editor_files_are_ignored() {
        for name in [
            ".alice.toml.swp",
            ".alice.toml.swx",
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
            scan.files[1].file.as_ref().unwrap().path,
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
                "instances/notes/README.md: not an instance file (an instance file ends in .toml); ignored",
                "instances/stray.toml: instance file outside a service directory is ignored",
            ]
        );
    }

    /// The keys the scan found, each with its text or its error message.
    fn outcomes(scan: &Scan) -> Vec<String> {
        scan.files
            .iter()
            .map(|scanned| match &scanned.file {
                Ok(file) => format!("{}: ok {:?}", scanned.key, file.text),
                Err(problem) => {
                    assert!(problem.is_error(), "{problem:?}");
                    format!("{}: {}", scanned.key, problem.message)
                }
            })
            .collect()
    }

    fn project() -> (tempfile::TempDir, PathBuf) {
        let root = tempfile::tempdir().unwrap();
        let instances = root.path().join("instances");
        fs::create_dir_all(instances.join("notes")).unwrap();
        (root, instances)
    }

    #[test]
    fn links_below_the_instances_directory_are_refused_with_their_key() {
        let (root, instances) = project();
        let outside = tempfile::tempdir().unwrap();
        let secret = outside.path().join("shadow");
        fs::write(&secret, "root:$6$secret-looking-hash:19000\n").unwrap();
        std::os::unix::fs::symlink(&secret, instances.join("notes/alice.toml")).unwrap();
        // A link that stays inside is refused as well: one rule, no resolving.
        fs::write(instances.join("notes/bob.toml"), "weight = 5\n").unwrap();
        std::os::unix::fs::symlink("bob.toml", instances.join("notes/carol.toml")).unwrap();
        // A dangling link declares a broken instance too.
        std::os::unix::fs::symlink("/nowhere", instances.join("notes/dave.toml")).unwrap();
        let scan = scan_instances(&instances, root.path());
        assert_eq!(
            outcomes(&scan),
            [
                "notes:alice: instance file of notes:alice is a symbolic link; ten does not follow links in instances/",
                "notes:bob: ok \"weight = 5\\n\"",
                "notes:carol: instance file of notes:carol is a symbolic link; ten does not follow links in instances/",
                "notes:dave: instance file of notes:dave is a symbolic link; ten does not follow links in instances/",
            ]
        );
        let alice = scan.files[0].file.as_ref().unwrap_err();
        assert_eq!(alice.file, PathBuf::from("instances/notes/alice.toml"));
        assert!(alice.snippet.is_none());
        assert!(
            alice
                .hint
                .as_deref()
                .unwrap()
                .contains("copy the file instead")
        );
        assert!(!format!("{scan:?}").contains("secret-looking"));
    }

    #[test]
    fn a_linked_service_directory_is_refused_and_its_instances_unknown() {
        let (root, instances) = project();
        let elsewhere = tempfile::tempdir().unwrap();
        fs::write(elsewhere.path().join("alice.toml"), "").unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), instances.join("blog")).unwrap();
        // A link with a name no service can have, and a link to a file, are not directories.
        std::os::unix::fs::symlink(elsewhere.path(), instances.join("README")).unwrap();
        let scan = scan_instances(&instances, root.path());
        assert!(scan.files.is_empty(), "{:?}", outcomes(&scan));
        let messages: Vec<String> = scan
            .diagnostics
            .iter()
            .map(|d| format!("{}: {}", d.file.display(), d.message))
            .collect();
        assert_eq!(
            messages,
            [
                "instances/blog: service directory of blog is a symbolic link; ten does not follow links in instances/"
            ]
        );
        assert!(scan.diagnostics[0].is_error());
        assert_eq!(
            scan.unlisted,
            Unlisted {
                everything: false,
                services: vec![ServiceName::new("blog").unwrap()],
            }
        );
    }

    #[test]
    fn the_instances_directory_itself_may_be_a_link() {
        let root = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        fs::create_dir_all(elsewhere.path().join("notes")).unwrap();
        fs::write(elsewhere.path().join("notes/alice.toml"), "weight = 1\n").unwrap();
        let instances = root.path().join("instances");
        std::os::unix::fs::symlink(elsewhere.path(), &instances).unwrap();
        let scan = scan_instances(&instances, root.path());
        assert_eq!(outcomes(&scan), ["notes:alice: ok \"weight = 1\\n\""]);
        assert!(scan.diagnostics.is_empty(), "{:?}", scan.diagnostics);
    }

    #[test]
    fn fifos_directories_big_files_and_bad_text_are_errors_of_their_instance() {
        let (root, instances) = project();
        let notes = instances.join("notes");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            notes.join("pipe.toml"),
            FileType::Fifo,
            Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        fs::create_dir(notes.join("alice.toml")).unwrap();
        let big = fs::File::create(notes.join("big.toml")).unwrap();
        big.set_len(256 * 1024 * 1024).unwrap();
        fs::write(notes.join("latin.toml"), b"x = \"\xe9\"\n").unwrap();
        let just = fs::File::create(notes.join("just.toml")).unwrap();
        just.set_len(INSTANCE_FILE_LIMIT).unwrap();
        // A nested directory not named like an instance file is still only a warning.
        fs::create_dir(notes.join("backup")).unwrap();
        let scan = scan_instances(&instances, root.path());
        let found = outcomes(&scan);
        assert_eq!(found.len(), 5, "{found:?}");
        assert_eq!(
            found[0],
            "notes:alice: instance file of notes:alice is a directory"
        );
        assert_eq!(
            found[1],
            "notes:big: instance file of notes:big is 268435456 bytes; ten reads instance files of at most 1048576 bytes (1 MiB)"
        );
        assert!(
            found[2].starts_with("notes:just: ok"),
            "a file of exactly the limit is read"
        );
        assert_eq!(
            found[3],
            "notes:latin: instance file of notes:latin is not UTF-8 text"
        );
        assert_eq!(
            found[4],
            "notes:pipe: instance file of notes:pipe is a FIFO (named pipe), not a regular file; ten does not read it"
        );
        let warnings: Vec<String> = scan
            .diagnostics
            .iter()
            .map(|d| format!("{:?} {}: {}", d.severity, d.file.display(), d.message))
            .collect();
        assert_eq!(
            warnings,
            ["Warning instances/notes/backup: nested directory in a service directory is ignored"]
        );
    }

    #[test]
    fn an_instances_directory_that_is_a_file_leaves_everything_unknown() {
        let root = tempfile::tempdir().unwrap();
        fs::write(root.path().join("plain"), "").unwrap();
        let scan = scan_instances(&root.path().join("plain"), root.path());
        assert!(scan.unlisted.everything);
        assert!(
            scan.diagnostics[0]
                .message
                .starts_with("cannot read the instances directory")
        );
    }

    #[test]
    fn a_missing_directory_declares_nothing() {
        let root = tempfile::tempdir().unwrap();
        let scan = scan_instances(&root.path().join("instances"), root.path());
        assert!(scan.files.is_empty() && scan.diagnostics.is_empty());
    }
}
