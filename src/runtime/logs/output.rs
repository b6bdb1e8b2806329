//! `output.log`: the rotated, timestamped log of one instance, and its upkeep when a ten
//! attaches (cutting back lines that will be read again).
//!
//! Imports `line` and `store` of `logs`.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::line::{LogLine, format_time};
use super::store::rotated_name;

/// The rotated, timestamped log of one instance.
pub(super) struct OutputLog {
    pub(super) path: PathBuf,
    pub(super) file: Option<File>,
    /// The length of the file at `path` (kept whole lines only).
    pub(super) size: u64,
}

impl OutputLog {
    /// Appends `text` (lines [`format_lines`] wrote), opening the file first if needed.
    /// Rotation is left to the caller, to be done before an append that would take the file
    /// past its size, after the offsets of the last append are recorded.
    pub(super) fn append(&mut self, text: &str) {
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

    /// Moves `output.log` to `output.log.<time of its first line>`; the next append starts a
    /// new `output.log`. Removing old files is left to the caller (`store::enforce`).
    pub(super) fn rotate(&mut self) {
        self.file = None;
        if let Err(error) = fs::rename(&self.path, rotated_name(&self.path)) {
            tracing::warn!(%error, path = %self.path.display(), "cannot rotate the output log");
        }
        // Nothing is at the path now, unless the rename failed.
        self.size = file_length(&self.path);
    }
}

/// The lines as `output.log` holds them (as `format_line` writes each, the time formatted once
/// for the lines that share it: those of one read do).
pub(super) fn format_lines(lines: &[LogLine]) -> String {
    let mut text = String::with_capacity(lines.iter().map(|line| line.text.len() + 33).sum());
    let mut stamp: Option<(u64, String)> = None;
    for line in lines {
        if stamp.as_ref().is_none_or(|(at, _)| *at != line.at_unix_ms) {
            stamp = Some((line.at_unix_ms, format_time(line.at_unix_ms)));
        }
        if let Some((_, time)) = &stamp {
            text.push_str(time);
        }
        text.push(' ');
        text.push_str(line.stream.as_str());
        text.push(' ');
        text.push_str(&line.text);
        text.push('\n');
    }
    text
}

/// The length of the file at `path`; 0 if there is none.
pub(super) fn file_length(path: &Path) -> u64 {
    fs::metadata(path).map_or(0, |metadata| metadata.len())
}

/// `path.N`: the name of a rotated log file a service names (`log_file`).
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
    use crate::runtime::logs::store::kept_files;

    #[test]
    fn lines_are_written_as_format_line_writes_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut output = OutputLog {
            path: dir.path().join("output.log"),
            file: None,
            size: 0,
        };
        let lines: Vec<LogLine> = [
            (5, Stream::Stdout, "a"),
            (5, Stream::Stderr, ""),
            (9, Stream::Stdout, "b c"),
        ]
        .into_iter()
        .map(|(at, stream, text)| LogLine {
            at_unix_ms: 1_765_000_000_000 + at,
            instance: InstanceKey::parse("notes:alice").unwrap(),
            stream,
            text: text.into(),
        })
        .collect();
        output.append(&format_lines(&lines));
        let expected: String = lines
            .iter()
            .map(|line| format!("{}\n", crate::runtime::logs::line::format_line(line)))
            .collect();
        assert_eq!(fs::read_to_string(&output.path).unwrap(), expected);
        assert_eq!(output.size, expected.len() as u64);
    }

    #[test]
    fn a_rotated_file_is_named_after_its_first_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut output = OutputLog {
            path: dir.path().join("output.log"),
            file: None,
            size: 0,
        };
        let line = |at_unix_ms| LogLine {
            at_unix_ms,
            instance: InstanceKey::parse("notes:alice").unwrap(),
            stream: Stream::Stdout,
            text: "z".repeat(1000),
        };
        for at in 0..50 {
            output.append(&format_lines(&[line(1_765_000_000_000 + at)]));
            if output.size >= 10_000 {
                output.rotate();
            }
        }
        let names: Vec<String> = kept_files(dir.path())
            .iter()
            .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "output.log.1765000000000",
                "output.log.1765000000010",
                "output.log.1765000000020",
                "output.log.1765000000030",
                "output.log.1765000000040",
            ]
        );
        assert!(!output.path.exists());
    }
}
