//! `output.log`: the rotated, timestamped log of one instance, and its upkeep when a ten
//! attaches (cutting back lines that will be read again).
//!
//! Imports `line` of `logs`.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::line::{LogLine, format_line};

/// Size at which `output.log` is rotated, and how many rotated files are kept.
pub const ROTATE_BYTES: u64 = 10 * 1024 * 1024;
pub const KEEP_ROTATED: usize = 3;

/// The rotated, timestamped log of one instance.
pub(super) struct OutputLog {
    pub(super) path: PathBuf,
    pub(super) file: Option<File>,
    /// The length of the file at `path` (kept whole lines only).
    pub(super) size: u64,
}

impl OutputLog {
    /// Appends the lines (opening the file first if needed). Rotation is left to the caller,
    /// to be done after the offsets that match this append are recorded.
    pub(super) fn append(&mut self, lines: &[LogLine]) {
        if self.file.is_none() {
            self.file = OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o640)
                .open(&self.path)
                .ok();
            self.size = self
                .file
                .as_ref()
                .and_then(|f| f.metadata().ok())
                .map_or(0, |m| m.len());
        }
        let mut text = String::new();
        for line in lines {
            text.push_str(&format_line(line));
            text.push('\n');
        }
        let Some(file) = &mut self.file else {
            return;
        };
        match file.write_all(text.as_bytes()) {
            Ok(()) => self.size += text.len() as u64,
            Err(error) => {
                // These lines are lost to the file (the ring has them); what was written of
                // them goes, so the file keeps whole lines and the length we record.
                tracing::warn!(%error, path = %self.path.display(), "cannot append to the output log");
                let _ = file.set_len(self.size);
            }
        }
    }

    pub(super) fn full(&self) -> bool {
        self.size >= ROTATE_BYTES
    }

    /// Moves `output.log` to `output.log.1` (each older file one up, the oldest dropped); the
    /// next append starts a new `output.log`.
    pub(super) fn rotate(&mut self) {
        self.file = None;
        for index in (1..KEEP_ROTATED).rev() {
            let _ = fs::rename(rotated(&self.path, index), rotated(&self.path, index + 1));
        }
        if let Err(error) = fs::rename(&self.path, rotated(&self.path, 1)) {
            tracing::warn!(%error, path = %self.path.display(), "cannot rotate the output log");
        }
        // Nothing is at the path now, unless the rename failed.
        self.size = file_length(&self.path);
    }
}

/// The length of the file at `path`; 0 if there is none.
pub(super) fn file_length(path: &Path) -> u64 {
    fs::metadata(path).map_or(0, |metadata| metadata.len())
}

pub(super) fn rotated(path: &Path, index: usize) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{index}"));
    PathBuf::from(name)
}

/// Cuts `output.log` back to the recorded `length`: what is past it was appended by a ten
/// killed before it recorded the offsets of those lines, which will be read again.
pub(super) fn cut_back(path: &Path, length: u64) {
    let Ok(file) = OpenOptions::new().write(true).open(path) else {
        return;
    };
    let actual = file.metadata().map_or(0, |metadata| metadata.len());
    if actual <= length {
        return;
    }
    tracing::debug!(path = %path.display(), bytes = actual - length, "removing output log lines that are read again");
    if let Err(error) = file.set_len(length) {
        tracing::warn!(%error, path = %path.display(), "cannot cut the output log back; its last lines may repeat");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::InstanceKey;
    use crate::runtime::logs::line::Stream;

    fn key() -> InstanceKey {
        InstanceKey::parse("notes:alice").unwrap()
    }

    #[test]
    fn rotation_keeps_a_few_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut output = OutputLog {
            path: dir.path().join("output.log"),
            file: None,
            size: 0,
        };
        let line = LogLine {
            at_unix_ms: 0,
            instance: key(),
            stream: Stream::Stdout,
            text: "z".repeat(1024 * 1024),
        };
        for _ in 0..(10 * (KEEP_ROTATED + 2)) {
            output.append(std::slice::from_ref(&line));
            if output.full() {
                output.rotate();
            }
        }
        assert!(rotated(&output.path, KEEP_ROTATED).exists());
        assert!(!rotated(&output.path, KEEP_ROTATED + 1).exists());
    }
}
