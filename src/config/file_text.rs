//! Reading the text of a desired-state file (tenement.toml, an instance file) without being
//! led astray by what the file system holds: only a regular file is read, never a FIFO,
//! socket or device (opened with `O_NONBLOCK`, so not even the open waits for a writer), at
//! most a limit of bytes (decided from `fstat` before reading, then read through a bounded
//! reader, so a file that grows meanwhile is still not read whole), and an instance file never
//! through a symbolic link (`O_NOFOLLOW`, opened relative to its directory's descriptor, so
//! no link can be swapped in between the check and the open).
//!
//! The one place that opens these files (`desired::scan`, `desired::read_config`,
//! `config::edit`). std and rustix only: must not import tokio, nix, hyper or notify.

use std::ffi::CStr;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags, Stat};

/// Largest instance file ten reads. An instance file holds a few keys; a bigger one is a
/// mistake (or an attack on ten's memory), and is an error of its instance.
pub(crate) const INSTANCE_FILE_LIMIT: u64 = 1024 * 1024;

/// Largest tenement.toml ten reads: room for tens of thousands of instances in `[instances]`.
pub(crate) const CONFIG_FILE_LIMIT: u64 = 4 * 1024 * 1024;

/// Why a file's text was not read. Each message completes "PATH ...".
#[derive(Debug, thiserror::Error)]
pub(crate) enum FileTextError {
    #[error("is a symbolic link")]
    Link,
    #[error("is {0}, not a regular file")]
    NotRegular(&'static str),
    #[error("is {size} bytes, more than the {limit} bytes ten reads")]
    TooBig { size: u64, limit: u64 },
    #[error("is not UTF-8 text")]
    NotUtf8,
    #[error("cannot be read: {0}")]
    Io(#[from] io::Error),
}

impl FileTextError {
    /// The file is not there (deleted since it was listed, or never there).
    pub(crate) fn is_not_found(&self) -> bool {
        matches!(self, FileTextError::Io(error) if error.kind() == io::ErrorKind::NotFound)
    }
}

/// What a file of `file_type` is, in words; `None` for a regular file.
pub(crate) fn kind_in_words(file_type: FileType) -> Option<&'static str> {
    match file_type {
        FileType::RegularFile => None,
        FileType::Directory => Some("a directory"),
        FileType::Symlink => Some("a symbolic link"),
        FileType::Fifo => Some("a FIFO (named pipe)"),
        FileType::Socket => Some("a socket"),
        FileType::CharacterDevice => Some("a character device"),
        FileType::BlockDevice => Some("a block device"),
        FileType::Unknown => Some("a file of unknown type"),
    }
}

/// The text of tenement.toml at `path`. A link is followed (the config's path is the
/// operator's choice; a managed `/etc` is often links), but what it names must be a regular
/// file of at most `limit` bytes.
pub(crate) fn read_config_text(path: &Path, limit: u64) -> Result<String, FileTextError> {
    let fd = rustix::fs::open(path, read_flags(), Mode::empty()).map_err(io::Error::from)?;
    read_opened(fd, limit)
}

/// The text of the file `name` in the directory open as `dir`, never through a link: a
/// link is [`FileTextError::Link`]. `stat` is what a `statat` without following links said
/// of it just before, when known: only a regular file is opened at all (so a device is never
/// opened), and an empty one is not opened.
pub(crate) fn read_text_at(
    dir: impl AsFd,
    name: &CStr,
    stat: Option<&Stat>,
    limit: u64,
) -> Result<String, FileTextError> {
    if let Some(stat) = stat {
        refuse_unless_regular(stat, limit)?;
        if stat.st_size == 0 {
            return Ok(String::new());
        }
    }
    let fd = rustix::fs::openat(dir, name, read_flags() | OFlags::NOFOLLOW, Mode::empty())
        .map_err(|error| match error {
            rustix::io::Errno::LOOP => FileTextError::Link,
            error => FileTextError::Io(error.into()),
        })?;
    read_opened(fd, limit)
}

/// The text of the file at `path`, never through a link in its last component (an
/// instance file an edit changes). A missing file is an `Io` error of kind `NotFound`.
pub(crate) fn read_text_no_follow(path: &Path, limit: u64) -> Result<String, FileTextError> {
    let stat = rustix::fs::statat(CWD, path, AtFlags::SYMLINK_NOFOLLOW).map_err(io::Error::from)?;
    refuse_unless_regular(&stat, limit)?;
    let fd = rustix::fs::open(path, read_flags() | OFlags::NOFOLLOW, Mode::empty()).map_err(
        |error| match error {
            rustix::io::Errno::LOOP => FileTextError::Link,
            error => FileTextError::Io(error.into()),
        },
    )?;
    read_opened(fd, limit)
}

/// Read-only, non-blocking (a FIFO opens at once, and is then refused), not inherited, never
/// a controlling terminal.
fn read_flags() -> OFlags {
    OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY
}

fn refuse_unless_regular(stat: &Stat, limit: u64) -> Result<(), FileTextError> {
    let file_type = FileType::from_raw_mode(stat.st_mode);
    if file_type == FileType::Symlink {
        return Err(FileTextError::Link);
    }
    if let Some(kind) = kind_in_words(file_type) {
        return Err(FileTextError::NotRegular(kind));
    }
    let size = u64::try_from(stat.st_size).unwrap_or(0);
    if size > limit {
        return Err(FileTextError::TooBig { size, limit });
    }
    Ok(())
}

/// Checks the open file (the check that counts: it is of what was opened) and reads at most
/// `limit` bytes of it.
fn read_opened(fd: OwnedFd, limit: u64) -> Result<String, FileTextError> {
    let stat = rustix::fs::fstat(&fd).map_err(io::Error::from)?;
    refuse_unless_regular(&stat, limit)?;
    let size = u64::try_from(stat.st_size).unwrap_or(0);
    read_bounded(File::from(fd), size, limit)
}

/// Reads at most `limit` bytes of `reader`, which said it had `size`: one byte more than the
/// limit tells a file that grew past it since.
fn read_bounded(reader: impl Read, size: u64, limit: u64) -> Result<String, FileTextError> {
    let mut bytes = Vec::with_capacity(usize::try_from(size.min(limit)).unwrap_or(0));
    reader.take(limit + 1).read_to_end(&mut bytes)?;
    let read = bytes.len() as u64;
    if read > limit {
        return Err(FileTextError::TooBig { size: read, limit });
    }
    String::from_utf8(bytes).map_err(|_| FileTextError::NotUtf8)
}

#[cfg(test)]
mod tests {
    use std::ffi::CString;
    use std::os::unix::fs::symlink;

    use super::*;

    fn open_dir(path: &Path) -> OwnedFd {
        rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .unwrap()
    }

    fn name(text: &str) -> CString {
        CString::new(text).unwrap()
    }

    #[test]
    fn reads_a_regular_file_and_refuses_a_link_to_one() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.toml"), "weight = 5\n").unwrap();
        symlink(dir.path().join("a.toml"), dir.path().join("b.toml")).unwrap();
        let fd = open_dir(dir.path());
        let text = read_text_at(&fd, &name("a.toml"), None, INSTANCE_FILE_LIMIT).unwrap();
        assert_eq!(text, "weight = 5\n");
        let refused = read_text_at(&fd, &name("b.toml"), None, INSTANCE_FILE_LIMIT);
        assert!(matches!(refused, Err(FileTextError::Link)), "{refused:?}");
        let refused = read_text_no_follow(&dir.path().join("b.toml"), INSTANCE_FILE_LIMIT);
        assert!(matches!(refused, Err(FileTextError::Link)), "{refused:?}");
        // tenement.toml may be a link.
        let followed = read_config_text(&dir.path().join("b.toml"), CONFIG_FILE_LIMIT).unwrap();
        assert_eq!(followed, "weight = 5\n");
    }

    #[test]
    fn a_fifo_without_a_writer_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pipe.toml");
        rustix::fs::mknodat(CWD, &path, FileType::Fifo, Mode::from_raw_mode(0o600), 0).unwrap();
        // A blocking open would never return: the test would hang, not pass.
        let fd = open_dir(dir.path());
        for refused in [
            read_text_at(&fd, &name("pipe.toml"), None, INSTANCE_FILE_LIMIT),
            read_text_no_follow(&path, INSTANCE_FILE_LIMIT),
            read_config_text(&path, CONFIG_FILE_LIMIT),
        ] {
            assert!(
                matches!(
                    refused,
                    Err(FileTextError::NotRegular("a FIFO (named pipe)"))
                ),
                "{refused:?}"
            );
        }
    }

    #[test]
    fn a_file_over_the_limit_is_refused_without_reading_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.toml");
        let file = File::create(&path).unwrap();
        file.set_len(INSTANCE_FILE_LIMIT + 1).unwrap();
        let refused = read_text_no_follow(&path, INSTANCE_FILE_LIMIT);
        assert!(
            matches!(refused, Err(FileTextError::TooBig { size, limit: INSTANCE_FILE_LIMIT }) if size == INSTANCE_FILE_LIMIT + 1),
            "{refused:?}"
        );
        // Exactly the limit is fine (NUL bytes are UTF-8).
        file.set_len(INSTANCE_FILE_LIMIT).unwrap();
        assert_eq!(
            read_text_no_follow(&path, INSTANCE_FILE_LIMIT)
                .unwrap()
                .len() as u64,
            INSTANCE_FILE_LIMIT
        );
    }

    #[test]
    fn a_file_that_grows_past_the_limit_is_read_only_to_it() {
        // Said 1 byte at the fstat, holds 100 when read: the read stops one past the limit.
        let grown = io::Cursor::new(vec![b'x'; 100]);
        let refused = read_bounded(grown, 1, 10);
        assert!(
            matches!(
                refused,
                Err(FileTextError::TooBig {
                    size: 11,
                    limit: 10
                })
            ),
            "{refused:?}"
        );
        assert_eq!(read_bounded(io::Cursor::new("ab"), 2, 10).unwrap(), "ab");
    }

    #[test]
    fn directories_and_bad_text_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("alice.toml")).unwrap();
        std::fs::write(dir.path().join("bytes.toml"), b"a = \"\xff\"\n").unwrap();
        let fd = open_dir(dir.path());
        let refused = read_text_at(&fd, &name("alice.toml"), None, INSTANCE_FILE_LIMIT);
        assert!(
            matches!(refused, Err(FileTextError::NotRegular("a directory"))),
            "{refused:?}"
        );
        let refused = read_text_at(&fd, &name("bytes.toml"), None, INSTANCE_FILE_LIMIT);
        assert!(
            matches!(refused, Err(FileTextError::NotUtf8)),
            "{refused:?}"
        );
        let missing = read_text_at(&fd, &name("gone.toml"), None, INSTANCE_FILE_LIMIT);
        assert!(missing.unwrap_err().is_not_found());
    }
}
