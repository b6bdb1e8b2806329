//! Format-preserving edits of instance files (`ten spawn`, `stop`, `start`, `rm`, `weight`):
//! toml_edit keeps comments and layout; files are replaced atomically (a hidden temporary file
//! in the same directory, renamed over the old one), so a watcher never reads half a file.
//! Nothing invalid is written: every new text passes the caller's [`Check`] (the same one
//! `ten validate` makes of the file) first.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use toml_edit::{DocumentMut, value};

use crate::names::InstanceKey;

use super::diag::Diagnostic;
use super::file_text::{FileTextError, INSTANCE_FILE_LIMIT, read_text_no_follow};
use super::model::RunState;

/// The error diagnostics an instance file's new text would have; none: it may be written.
pub(crate) type Check<'a> = &'a CheckFn;
pub(crate) type CheckFn = dyn Fn(&str) -> Vec<Diagnostic>;

#[derive(Debug, thiserror::Error)]
pub(crate) enum EditError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path} is not valid TOML ({message}); fix it before changing it with ten")]
    Invalid { path: PathBuf, message: String },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error(
        "{path} {problem}: ten edits only regular instance files; replace it with one (`ten validate` says what is wrong)"
    )]
    NotEditable {
        path: PathBuf,
        problem: FileTextError,
    },
    #[error("{path} would not be valid, so nothing was written")]
    Refused {
        path: PathBuf,
        diagnostics: Vec<Diagnostic>,
    },
}

/// The instance file of `key` under `instances_dir`.
pub(crate) fn instance_file_path(instances_dir: &Path, key: &InstanceKey) -> PathBuf {
    instances_dir
        .join(key.service.as_str())
        .join(format!("{}.toml", key.id))
}

/// Declares `key`: creates its (empty) instance file. Returns false if it existed.
pub(crate) fn create_instance_file(path: &Path, check: Check<'_>) -> Result<bool, EditError> {
    if path.exists() {
        return Ok(false);
    }
    checked(path, "", check)?;
    write_atomically(path, "")?;
    Ok(true)
}

/// Sets `state` in the instance file (creating it if needed). Returns false when it already
/// said so (a file without `state` says "running", the default).
pub(crate) fn set_state(path: &Path, state: RunState, check: Check<'_>) -> Result<bool, EditError> {
    edit(path, check, |document| {
        let current = document.get("state").and_then(|item| item.as_str());
        if current.unwrap_or(RunState::Running.as_str()) == state.as_str() {
            return false;
        }
        document["state"] = value(state.as_str());
        true
    })
}

/// Sets `weight` in the instance file (creating it if needed).
pub(crate) fn set_weight(path: &Path, weight: u8, check: Check<'_>) -> Result<bool, EditError> {
    edit(path, check, |document| {
        if document.get("weight").and_then(|item| item.as_integer()) == Some(i64::from(weight)) {
            return false;
        }
        document["weight"] = value(i64::from(weight));
        true
    })
}

/// Undeclares: removes the instance file. Returns false if there was none.
pub(crate) fn remove_instance_file(path: &Path) -> Result<bool, EditError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(EditError::Write {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Refuses `text` for `path` if `check` finds errors in it.
fn checked(path: &Path, text: &str, check: Check<'_>) -> Result<(), EditError> {
    let diagnostics = check(text);
    if diagnostics.iter().any(Diagnostic::is_error) {
        return Err(EditError::Refused {
            path: path.to_path_buf(),
            diagnostics,
        });
    }
    Ok(())
}

fn edit(
    path: &Path,
    check: Check<'_>,
    change: impl FnOnce(&mut DocumentMut) -> bool,
) -> Result<bool, EditError> {
    // Read as the scan reads it: never through a link, never a FIFO or device, bounded.
    let text = match read_text_no_follow(path, INSTANCE_FILE_LIMIT) {
        Ok(text) => text,
        Err(error) if error.is_not_found() => String::new(),
        Err(FileTextError::Io(source)) => {
            return Err(EditError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
        Err(problem) => {
            return Err(EditError::NotEditable {
                path: path.to_path_buf(),
                problem,
            });
        }
    };
    let mut document: DocumentMut =
        text.parse()
            .map_err(|error: toml_edit::TomlError| EditError::Invalid {
                path: path.to_path_buf(),
                message: error.message().to_string(),
            })?;
    // A file of comments only holds them as trailing text; keep them above the first key.
    let header = document
        .is_empty()
        .then(|| document.trailing().as_str().unwrap_or("").to_string());
    if !change(&mut document) {
        return Ok(false);
    }
    if let Some(header) = header.filter(|header| !header.trim().is_empty()) {
        let moved = match document.as_table_mut().iter_mut().next() {
            Some((mut first, _)) => {
                first.leaf_decor_mut().set_prefix(header);
                true
            }
            None => false,
        };
        if moved {
            document.set_trailing("");
        }
    }
    let text = document.to_string();
    checked(path, &text, check)?;
    write_atomically(path, &text)?;
    Ok(true)
}

fn write_atomically(path: &Path, text: &str) -> Result<(), EditError> {
    let failed = |source| EditError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(failed)?;
    crate::files::write_atomically(path, text.as_bytes(), 0o644).map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A check that accepts everything.
    const ANY: Check<'static> = &|_| Vec::new();

    #[test]
    fn state_edits_keep_comments_and_layout() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notes/alice.toml");
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        let original = "# Alice's notes: the first customer.\nweight = 50 # half the traffic\n\n[env]\n# verbose for now\nLOG_LEVEL = \"debug\"\n";
        fs::write(&path, original).unwrap();
        assert!(set_state(&path, RunState::Stopped, ANY).unwrap());
        let edited = fs::read_to_string(&path).unwrap();
        assert_eq!(
            edited,
            "# Alice's notes: the first customer.\nweight = 50 # half the traffic\nstate = \"stopped\"\n\n[env]\n# verbose for now\nLOG_LEVEL = \"debug\"\n"
        );
        assert!(
            !set_state(&path, RunState::Stopped, ANY).unwrap(),
            "already stopped"
        );
        assert!(set_state(&path, RunState::Running, ANY).unwrap());
        assert!(
            fs::read_to_string(&path)
                .unwrap()
                .contains("state = \"running\"\n")
        );
        let leftovers: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file is left");
    }

    #[test]
    fn a_header_comment_stays_on_top() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alice.toml");
        fs::write(&path, "# Alice: declared with the defaults.\n").unwrap();
        set_state(&path, RunState::Stopped, ANY).unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "# Alice: declared with the defaults.\nstate = \"stopped\"\n"
        );
    }

    #[test]
    fn create_and_remove_declare_and_undeclare() {
        let dir = tempfile::tempdir().unwrap();
        let key = InstanceKey::parse("notes:carol").unwrap();
        let path = instance_file_path(dir.path(), &key);
        assert_eq!(path, dir.path().join("notes/carol.toml"));
        assert!(create_instance_file(&path, ANY).unwrap());
        assert!(!create_instance_file(&path, ANY).unwrap());
        assert_eq!(fs::read_to_string(&path).unwrap(), "");
        assert!(set_weight(&path, 25, ANY).unwrap());
        assert_eq!(fs::read_to_string(&path).unwrap(), "weight = 25\n");
        assert!(remove_instance_file(&path).unwrap());
        assert!(!remove_instance_file(&path).unwrap());
    }

    #[test]
    fn a_link_is_neither_read_nor_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("secret.toml");
        fs::write(&outside, "token = \"s3cret\"\n").unwrap();
        let path = dir.path().join("instances/notes/alice.toml");
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(&outside, &path).unwrap();
        let error = set_weight(&path, 5, &|_| Vec::new()).unwrap_err();
        assert!(
            matches!(
                error,
                EditError::NotEditable {
                    problem: FileTextError::Link,
                    ..
                }
            ),
            "{error}"
        );
        assert!(
            fs::symlink_metadata(&path)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(
            fs::read_to_string(&outside).unwrap(),
            "token = \"s3cret\"\n"
        );
    }

    #[test]
    fn a_broken_file_is_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.toml");
        fs::write(&path, "state = \n").unwrap();
        let error = set_state(&path, RunState::Stopped, ANY).unwrap_err();
        assert!(
            error.to_string().contains("fix it before changing it"),
            "{error}"
        );
        assert_eq!(fs::read_to_string(&path).unwrap(), "state = \n");
    }

    #[test]
    fn a_text_the_check_refuses_is_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.toml");
        let refuse: Check<'_> = &|text| {
            vec![Diagnostic::in_file(
                Path::new("x.toml"),
                format!("no: {text:?}"),
            )]
        };
        assert!(matches!(
            create_instance_file(&path, refuse),
            Err(EditError::Refused { .. })
        ));
        assert!(!path.exists());
        fs::write(&path, "weight = 5\n").unwrap();
        let error = set_weight(&path, 7, refuse).unwrap_err();
        let EditError::Refused { diagnostics, .. } = &error else {
            panic!("{error}");
        };
        assert_eq!(diagnostics[0].message, "no: \"weight = 7\\n\"");
        assert_eq!(fs::read_to_string(&path).unwrap(), "weight = 5\n");
        // An unchanged file is not written, so not checked either.
        assert!(!set_weight(&path, 5, refuse).unwrap());
        assert!(!set_state(&path, RunState::Running, refuse).unwrap());
    }
}
