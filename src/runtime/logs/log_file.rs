//! A log file a service names (`stdout_log`, `stderr_log`): the lines an instance wrote, as
//! it wrote them, rotated by size. ten is the file's only writer (the hub keeps one
//! [`LogFile`] per path, shared by every instance and stream that names it), so rotating it
//! is a rename between two writes, and every line is written whole to one file.
//!
//! Imports `output` of `logs` (the names of rotated files).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::PathBuf;

use super::output::rotated;
use crate::config::LogRotation;

/// One log file and its rotation.
pub(super) struct LogFile {
    path: PathBuf,
    rotation: LogRotation,
    file: Option<File>,
    /// Device and inode of the open file: a file moved or removed by someone else is opened
    /// again at `path`.
    identity: (u64, u64),
    /// The length of the open file, as written (whole lines).
    size: u64,
    /// Only a regular file is rotated (not `/dev/stdout`, a pipe or a terminal).
    regular: bool,
    /// A failure was reported, not to be repeated for every line until writing works again.
    failing: bool,
    /// How many instance streams write here (the hub drops the file at 0).
    pub(super) users: usize,
}

impl LogFile {
    pub(super) fn new(path: PathBuf, rotation: LogRotation) -> Self {
        Self {
            path,
            rotation,
            file: None,
            identity: (0, 0),
            size: 0,
            regular: true,
            failing: false,
            users: 0,
        }
    }

    pub(super) fn set_rotation(&mut self, rotation: LogRotation) {
        self.rotation = rotation;
    }

    /// About how many bytes of lines the file and its backups keep (everything, when it is
    /// never rotated).
    pub(super) fn keeps(&self) -> u64 {
        match self.rotation.max_bytes {
            0 => u64::MAX,
            max => max.saturating_mul(u64::from(self.rotation.backups) + 1),
        }
    }

    /// Appends `lines`, each followed by a newline. A line that would take the file past
    /// `max_bytes` goes to a new file after a rotation (unless the file is empty: a line
    /// longer than `max_bytes` gets a file to itself).
    pub(super) fn write_lines<'a>(&mut self, lines: impl IntoIterator<Item = &'a str>) {
        if !self.open() {
            return;
        }
        let mut buffer = Vec::new();
        for text in lines {
            let length = text.len() as u64 + 1;
            let pending = self.size + buffer.len() as u64;
            let max = self.rotation.max_bytes;
            if max > 0 && self.regular && pending > 0 && pending + length > max {
                self.write(&buffer);
                buffer.clear();
                self.rotate();
                if !self.open() {
                    return;
                }
            }
            buffer.extend_from_slice(text.as_bytes());
            buffer.push(b'\n');
        }
        self.write(&buffer);
    }

    /// Opens the file for appending (creating it and its directories) unless it is open and
    /// still at `path`. Whether it is open.
    fn open(&mut self) -> bool {
        if self.file.is_some() {
            let moved = fs::metadata(&self.path).map_or(true, |metadata| {
                (metadata.dev(), metadata.ino()) != self.identity
            });
            if !moved {
                return true;
            }
            self.file = None;
        }
        let opened = self
            .path
            .parent()
            .map_or(Ok(()), fs::create_dir_all)
            .and_then(|()| {
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .mode(0o640)
                    .open(&self.path)
            })
            .and_then(|file| file.metadata().map(|metadata| (file, metadata)));
        match opened {
            Ok((file, metadata)) => {
                self.identity = (metadata.dev(), metadata.ino());
                self.regular = metadata.is_file();
                self.size = metadata.len();
                self.file = Some(file);
                if self.failing {
                    tracing::info!(path = %self.path.display(), "writing the log file again");
                    self.failing = false;
                }
                true
            }
            Err(error) => {
                if !self.failing {
                    tracing::warn!(%error, path = %self.path.display(), "cannot open the log file; its lines are only in `ten logs`");
                    self.failing = true;
                }
                false
            }
        }
    }

    fn write(&mut self, bytes: &[u8]) {
        let Some(file) = &mut self.file else {
            return;
        };
        if bytes.is_empty() {
            return;
        }
        match file.write_all(bytes) {
            Ok(()) => self.size += bytes.len() as u64,
            Err(error) => {
                if !self.failing {
                    tracing::warn!(%error, path = %self.path.display(), "cannot write to the log file; its lines are only in `ten logs`");
                    self.failing = true;
                }
                // What was written of these lines goes, so the file keeps whole lines.
                if self.regular {
                    let _ = file.set_len(self.size);
                }
            }
        }
    }

    /// `file.log` becomes `file.log.1`, each older one moves up, the oldest kept is
    /// `file.log.N` (`N = log_backups`; older ones are removed); the next write starts a new
    /// `file.log`. With no backups, the file is emptied instead.
    fn rotate(&mut self) {
        let backups = self.rotation.backups as usize;
        if backups == 0 {
            if let Some(file) = &self.file {
                match file.set_len(0) {
                    Ok(()) => self.size = 0,
                    Err(error) => {
                        tracing::warn!(%error, path = %self.path.display(), "cannot empty the log file")
                    }
                }
            }
            return;
        }
        self.file = None;
        for index in (1..backups).rev() {
            let _ = fs::rename(rotated(&self.path, index), rotated(&self.path, index + 1));
        }
        if let Err(error) = fs::rename(&self.path, rotated(&self.path, 1)) {
            tracing::warn!(%error, path = %self.path.display(), "cannot rotate the log file");
        }
        // Backups beyond those kept (log_backups was lowered) go.
        let mut index = backups + 1;
        while fs::remove_file(rotated(&self.path, index)).is_ok() {
            index += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn rotation(max_bytes: u64, backups: u32) -> LogRotation {
        LogRotation { max_bytes, backups }
    }

    fn read(path: &Path) -> String {
        fs::read_to_string(path).unwrap_or_default()
    }

    /// Lines "line 0" ... written in batches of `batch`.
    fn write_numbered(file: &mut LogFile, count: usize, batch: usize) {
        let lines: Vec<String> = (0..count).map(|n| format!("line {n}")).collect();
        for chunk in lines.chunks(batch) {
            file.write_lines(chunk.iter().map(String::as_str));
        }
    }

    #[test]
    fn a_line_that_would_pass_the_size_starts_the_next_file_and_none_is_lost() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/web.log");
        let mut file = LogFile::new(path.clone(), rotation(100, 3));
        write_numbered(&mut file, 200, 7);
        let files: Vec<PathBuf> = [
            rotated(&path, 3),
            rotated(&path, 2),
            rotated(&path, 1),
            path.clone(),
        ]
        .into();
        let mut numbers = Vec::new();
        for kept in &files {
            let text = read(kept);
            assert!(
                !text.is_empty() && text.len() <= 100,
                "{}: {} bytes",
                kept.display(),
                text.len()
            );
            assert!(text.ends_with('\n'));
            for line in text.lines() {
                let number: usize = line.strip_prefix("line ").unwrap().parse().unwrap();
                numbers.push(number);
            }
        }
        assert!(!rotated(&path, 4).exists());
        let first = numbers[0];
        assert_eq!(numbers, (first..200).collect::<Vec<_>>());
        // Each rotated file holds as many whole lines as fit: the next line would not have.
        for pair in files.windows(2) {
            let next_line = read(&pair[1]).lines().next().unwrap().len() + 1;
            assert!(read(&pair[0]).len() + next_line > 100);
        }
    }

    #[test]
    fn with_no_backups_the_file_is_emptied() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.log");
        let mut file = LogFile::new(path.clone(), rotation(50, 0));
        write_numbered(&mut file, 20, 1);
        assert!(!rotated(&path, 1).exists());
        let text = read(&path);
        assert!(text.len() <= 50 && text.ends_with("line 19\n"), "{text:?}");
    }

    #[test]
    fn a_line_longer_than_the_size_gets_a_file_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.log");
        let mut file = LogFile::new(path.clone(), rotation(10, 2));
        let long = "x".repeat(30);
        file.write_lines(["a", long.as_str(), "b"]);
        assert_eq!(read(&rotated(&path, 2)), "a\n");
        assert_eq!(read(&rotated(&path, 1)), format!("{long}\n"));
        assert_eq!(read(&path), "b\n");
    }

    #[test]
    fn zero_never_rotates_and_lowering_backups_removes_the_older_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.log");
        let mut file = LogFile::new(path.clone(), rotation(0, 3));
        write_numbered(&mut file, 100, 3);
        assert_eq!(read(&path).lines().count(), 100);
        file.set_rotation(rotation(20, 5));
        write_numbered(&mut file, 60, 1);
        assert!(rotated(&path, 5).exists());
        file.set_rotation(rotation(20, 2));
        write_numbered(&mut file, 10, 1);
        assert!(rotated(&path, 2).exists());
        assert!(!rotated(&path, 3).exists() && !rotated(&path, 5).exists());
    }

    #[test]
    fn a_file_removed_by_someone_else_is_made_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.log");
        let mut file = LogFile::new(path.clone(), rotation(0, 1));
        file.write_lines(["before"]);
        fs::remove_file(&path).unwrap();
        file.write_lines(["after"]);
        assert_eq!(read(&path), "after\n");
    }

    #[test]
    fn a_path_that_is_a_directory_is_reported_and_written_once_it_is_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.log");
        fs::create_dir(&path).unwrap();
        let mut file = LogFile::new(path.clone(), rotation(0, 1));
        file.write_lines(["lost"]);
        assert!(file.failing);
        fs::remove_dir(&path).unwrap();
        file.write_lines(["kept"]);
        assert_eq!(read(&path), "kept\n");
        assert!(!file.failing);
    }

    #[test]
    fn a_device_is_written_and_never_rotated() {
        let mut file = LogFile::new(PathBuf::from("/dev/null"), rotation(10, 2));
        write_numbered(&mut file, 50, 1);
        assert!(!file.regular);
        assert!(!Path::new("/dev/null.1").exists());
    }
}
