//! Reading new output: a stream's batches appended to `output.log` and the log files and
//! recorded in the crash-safe order, kept in the ring and sent to followers. Uses `ring` and `log_files` of `hub`; imports nothing of `runtime`
//! outside `logs`.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::config::LogRetention;
use crate::names::InstanceKey;

use super::super::line::{LogLine, unix_millis};
use super::super::log_file::LogFile;
use super::super::output::format_lines;
use super::super::source::ReadLimits;
use super::super::store::{enforce, rotate_bytes};
use super::log_files::{distinct, write_log_files};
use super::{HubState, LogHub, POLL_BYTES, RING_LINES, Targets};

impl LogHub {
    /// Reads new output of `key`: in batches of at most [`POLL_BYTES`] of each stream (a
    /// quarter of the rotation size if that is less), each
    /// appended and recorded before the next is read, the lock released in between (a tenant
    /// writing faster than ten reads neither grows ten's memory nor holds up the others).
    pub fn poll(&self, key: &InstanceKey) {
        while self.poll_batch(key, None) {}
    }

    /// Reads one batch of new output of `key` (of its stream `only`, or of both); whether
    /// more is waiting.
    pub(super) fn poll_batch(&self, key: &InstanceKey, only: Option<usize>) -> bool {
        let mut state = self.lock();
        let HubState {
            instances,
            files,
            retention,
            ..
        } = &mut *state;
        let Some(logs) = instances.get_mut(key) else {
            return false;
        };
        let now = unix_millis();
        let rotate_at = rotate_bytes(retention);
        let limits = ReadLimits {
            // Small enough next to the rotation size that a batch fits in a file.
            budget: POLL_BYTES.min(rotate_at / 4).max(1),
            backlog: backlog_limit(retention, &logs.targets, files),
        };
        let mut new_lines = Vec::new();
        let mut more = false;
        for (index, source) in logs.sources.iter_mut().enumerate() {
            if only.is_some_and(|only| only != index) {
                continue;
            }
            let (texts, left) = source.read_new(limits);
            more |= left;
            for text in texts {
                new_lines.push(LogLine {
                    at_unix_ms: now,
                    instance: key.clone(),
                    stream: source.stream,
                    text,
                });
            }
        }
        if new_lines.is_empty() {
            return more;
        }
        // Crash-safe in this order: a ten killed before the record truncates output.log back
        // to the recorded length when it attaches, then reads those lines again. A rotation
        // comes before an append that would take output.log past its size (so no file ever
        // holds more, and the files of an instance never more than `log_retention`), after
        // the record of the last append, and is recorded itself: a ten killed before that
        // record finds no output.log longer than recorded (the length is the rotated file's).
        // The log files are written before the record: a ten killed in between writes these
        // lines to them again (a repeat rather than a loss).
        let text = format_lines(&new_lines);
        if logs.output.size > 0 && logs.output.size + text.len() as u64 > rotate_at {
            logs.output.rotate();
            logs.record();
            if let Some(log_dir) = logs.output.path.parent() {
                enforce(log_dir, retention, now);
            }
        }
        logs.output.append(&text);
        drop(text);
        write_log_files(files, &logs.targets, &new_lines);
        logs.record();
        // Only the lines the ring keeps are copied into it; lines are sent only to listeners.
        let listened = self.lines.receiver_count() > 0;
        let kept_from = new_lines.len().saturating_sub(RING_LINES);
        for (index, line) in new_lines.into_iter().enumerate() {
            if index >= kept_from {
                if listened {
                    logs.keep(line.clone());
                } else {
                    logs.keep(line);
                    continue;
                }
            }
            if listened {
                let _ = self.lines.send(line);
            }
        }
        more
    }

    /// Reads new output of `key`'s stream `index` (0: stdout, 1: stderr) only.
    #[cfg(test)]
    pub(super) fn poll_stream(&self, key: &InstanceKey, index: usize) {
        while self.poll_batch(key, Some(index)) {}
    }

    pub fn poll_all(&self) {
        let keys: Vec<InstanceKey> = self.lock().instances.keys().cloned().collect();
        for key in keys {
            self.poll(&key);
        }
    }
}

/// How far a stream of an instance may fall behind its tenant before the oldest of what is
/// waiting is skipped: what `log_retention` keeps of it (more could not be kept: lines
/// read would push older ones out), or what the log files it names keep, if more (a file
/// never rotated keeps everything: nothing is skipped).
fn backlog_limit(
    retention: &LogRetention,
    targets: &Targets,
    files: &HashMap<PathBuf, LogFile>,
) -> u64 {
    distinct(targets)
        .filter_map(|path| files.get(path))
        .map(LogFile::keeps)
        .fold(retention.max_bytes, u64::max)
        .max(4 * POLL_BYTES.min(rotate_bytes(retention)))
}
