//! Replacing a file atomically: a reader sees its old content or its new content, never a
//! mix, and a crash of ten leaves one of the two (a crash of the machine too, unless the file
//! is one for this boot only). The one way ten replaces a file it writes for itself: the record
//! (`state.json`), the token store and `api_token`, instance files edited by the CLI,
//! `serve.json`, the systemd unit, the process table.
//!
//! std and tempfile only: `config` uses it, and imports no tokio, nix, hyper or notify.

use std::io::{self, Write};
use std::path::Path;

/// Replaces `path` with `bytes`, durably: once it returns, the new content survives a crash of
/// the machine.
///
/// The bytes go to a temporary file in the same directory, named `.NAME.XXXXXX.tmp` (hidden,
/// ending in `.tmp`: the watcher, the instance scan and the process table pass it over),
/// created with `mode` (less what the umask removes, as any new file), so it is never readable
/// by more than `mode` allows, not even before it is renamed. It is written, fsynced, renamed
/// over `path`, and the directory is fsynced, so that the rename itself is on disk. On an
/// error the temporary file is removed and `path` is as it was. The directory must exist.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    replace(path, bytes, mode, true)
}

/// [`write_atomically`] without the fsyncs, for a file whose content means nothing after a
/// reboot (the process table: its entries name processes of this boot). A crash of ten still
/// leaves the old content or the new; a crash of the machine may leave neither. An fsync would
/// add to every spawn, and so to every wake, for nothing (measured on a 2-vCPU VM with ext4: an
/// fsync of the file and of its directory took 0.5 ms at the median, 6–8 ms at the 90th
/// percentile, against a wake's 2 ms).
pub(crate) fn write_atomically_for_this_boot(
    path: &Path,
    bytes: &[u8],
    mode: u32,
) -> io::Result<()> {
    replace(path, bytes, mode, false)
}

/// [`write_atomically`] of what `write` writes, streamed (a large record is never whole in
/// memory).
pub(crate) fn write_atomically_with(
    path: &Path,
    mode: u32,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<()> {
    replace_with(path, mode, true, write)
}

fn replace(path: &Path, bytes: &[u8], mode: u32, sync: bool) -> io::Result<()> {
    replace_with(path, mode, sync, |file| file.write_all(bytes))
}

fn replace_with(
    path: &Path,
    mode: u32,
    sync: bool,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut temporary = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .permissions(std::fs::Permissions::from_mode(mode))
        .tempfile_in(dir)?;
    {
        let mut buffered = io::BufWriter::with_capacity(64 * 1024, temporary.as_file_mut());
        write(&mut buffered)?;
        buffered.flush()?;
    }
    if sync {
        temporary.as_file().sync_all()?;
    }
    // A failed rename gives the temporary file back, and dropping it removes it.
    temporary.persist(path).map_err(|error| error.error)?;
    if sync {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// `mode` as a new file gets it here: less what this process's umask removes.
    fn as_created(mode: u32) -> u32 {
        let status = fs::read_to_string("/proc/self/status").unwrap();
        let umask = status
            .lines()
            .find_map(|line| line.strip_prefix("Umask:"))
            .map(|value| u32::from_str_radix(value.trim(), 8).unwrap())
            .unwrap();
        mode & !umask
    }

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    /// The names in `dir`, sorted.
    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_new_file_has_its_content_and_mode_and_nothing_else_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let private = dir.path().join("api_token");
        write_atomically(&private, b"secret\n", 0o600).unwrap();
        assert_eq!(fs::read(&private).unwrap(), b"secret\n");
        assert_eq!(mode_of(&private), 0o600);
        let shared = dir.path().join("alice.toml");
        write_atomically_for_this_boot(&shared, b"weight = 5\n", 0o644).unwrap();
        assert_eq!(fs::read(&shared).unwrap(), b"weight = 5\n");
        assert_eq!(mode_of(&shared), as_created(0o644));
        assert_eq!(listing(dir.path()), ["alice.toml", "api_token"]);
    }

    #[test]
    fn a_replaced_file_holds_the_new_content_whole_with_the_new_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        fs::write(&path, "a much longer old content than the new one\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        write_atomically(&path, b"new\n", 0o600).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "new\n");
        assert_eq!(mode_of(&path), 0o600, "not the old file's mode");
        write_atomically_for_this_boot(&path, b"", 0o600).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "");
        assert_eq!(listing(dir.path()), ["tokens.json"]);
    }

    #[test]
    fn a_failed_write_leaves_no_temporary_file_and_the_target_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        // A directory in the way: the rename over it fails, after the bytes were written.
        let path = dir.path().join("state.json");
        fs::create_dir(&path).unwrap();
        fs::write(path.join("kept"), "kept").unwrap();
        for sync in [true, false] {
            let written = replace(&path, b"{}", 0o600, sync);
            assert!(written.is_err(), "{written:?}");
            assert_eq!(listing(dir.path()), ["state.json"], "sync: {sync}");
            assert_eq!(fs::read_to_string(path.join("kept")).unwrap(), "kept");
        }
        // No directory to write in: nothing is made.
        let missing = dir.path().join("missing/state.json");
        let error = write_atomically(&missing, b"{}", 0o600).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::NotFound);
        assert_eq!(listing(dir.path()), ["state.json"]);
    }
}
