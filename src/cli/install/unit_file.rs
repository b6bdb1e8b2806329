//! The unit file on disk: written atomically (mode 0644) unless the same is there, a
//! different one replaced only with `--force`, I/O errors with what to do about them, and the
//! units in a directory that `ten install` wrote. Runs no command: must not import `systemd`.

use std::path::Path;

use crate::cli::{CliError, print_stderr};

use super::unit::is_ours;

/// An I/O error on the unit file, with what to do about a permission problem.
pub(super) fn file_error(action: &str, path: &Path, error: &std::io::Error) -> CliError {
    let cli_error = CliError::new(format!("cannot {action} {}: {error}", path.display()));
    if matches!(
        error.kind(),
        std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
    ) {
        cli_error.hint("run as root, or pass --unit-dir")
    } else {
        cli_error
    }
}

/// Writes `text` to `path` atomically, mode 0644.
fn write_unit_file(path: &Path, text: &str) -> Result<(), CliError> {
    crate::files::write_atomically(path, text.as_bytes(), 0o644)
        .map_err(|error| file_error("write", path, &error))
}

/// Writes the unit unless the same is there (returns true then). A different unit is
/// replaced only with `force`; otherwise the error shows the diff.
pub(super) fn write_unless_different(
    path: &Path,
    text: &str,
    force: bool,
) -> Result<bool, CliError> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    if !dir.is_dir() {
        return Err(
            CliError::new(format!("unit directory {} does not exist", dir.display()))
                .hint("create it, or pass another --unit-dir"),
        );
    }
    let existing = match std::fs::read_to_string(path) {
        Ok(existing) => Some(existing),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
        Err(error) => return Err(file_error("read", path, &error)),
    };
    if existing.as_deref() == Some(text) {
        return Ok(true);
    }
    if let Some(existing) = &existing
        && !force
    {
        let diff = similar::TextDiff::from_lines(existing.as_str(), text)
            .unified_diff()
            .context_radius(2)
            .header(&path.display().to_string(), "ten install")
            .to_string();
        print_stderr(&diff);
        let whose = if is_ours(existing) {
            ""
        } else {
            " (that file was not written by `ten install`)"
        };
        return Err(CliError::new(format!(
            "{} exists and differs from the unit ten would write (diff above)",
            path.display()
        ))
        .hint(format!(
            "pass --force to overwrite it, or --name NAME to install another unit beside it{whose}"
        )));
    }
    write_unit_file(path, text)?;
    Ok(false)
}

/// Names of the units in `dir` that `ten install` wrote.
pub(super) fn units_of_ten(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry
                .file_name()
                .to_str()?
                .strip_suffix(".service")?
                .to_string();
            let text = std::fs::read_to_string(entry.path()).ok()?;
            is_ours(&text).then_some(name)
        })
        .collect();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_errors_say_to_run_as_root() {
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let error = file_error(
            "write",
            Path::new("/etc/systemd/system/ten.service"),
            &denied,
        );
        assert!(error.message.contains("/etc/systemd/system/ten.service"));
        assert_eq!(
            error.hint.as_deref(),
            Some("run as root, or pass --unit-dir")
        );
        let other = std::io::Error::from(std::io::ErrorKind::StorageFull);
        assert!(file_error("write", Path::new("/x"), &other).hint.is_none());
    }
}
