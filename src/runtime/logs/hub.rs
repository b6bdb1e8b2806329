//! The capture of every instance's output: attaching and detaching instances, polling their
//! raw files (on inotify events), appending to `output.log` and recording offsets in the
//! crash-safe order, the ring of recent lines per instance and queries over it, new lines as
//! a broadcast, and the log files services name (`stdout_log`, `stderr_log`), one writer per
//! path however many instances and streams name it; the retention of the kept files (after
//! each rotation, and in a sweep) and searches over them.
//!
//! `attach`: attaching and detaching an instance; `poll`: reading new output in batches, in
//! the crash-safe order; `watch`: the inotify watch of the attached instances' raw files, and
//! its thread, which polls; `ring`: the recent lines in memory and queries
//! over them; `log_files`: the log files services name; `retention`: the sweep of what
//! `log_retention` no longer keeps; `searches`: searches over the kept files.
//!
//! Imports `line`, `record`, `source`, `output`, `log_file`, `store` and `search` of `logs`.

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::broadcast;

use crate::config::LogRetention;
use crate::names::InstanceKey;

use super::line::{LogLine, Stream};
use super::log_file::LogFile;
use super::output::OutputLog;
use super::record::{Recorded, encode_record};
use super::source::Source;

/// Lines kept in memory per instance.
pub const RING_LINES: usize = 2000;
/// The most text kept in memory per instance (lines of `MAX_LINE` would otherwise take
/// 32 MiB): the ring holds fewer than [`RING_LINES`] lines when they are long.
pub(super) const RING_BYTES: usize = 2 * 1024 * 1024;
/// New lines waiting for the slowest follower (`ten logs -f`, the dashboard); a follower
/// further behind is told how many it missed.
const BROADCAST_LINES: usize = 1024;

/// The most one stream's poll reads before it writes it out: bytes, plus
/// `source::LINE_COST` a line (what a line costs in memory and in `output.log` besides its
/// text).
pub(super) const POLL_BYTES: u64 = 1024 * 1024;

/// Where an instance's capture files are.
#[derive(Debug, Clone)]
pub struct CapturePaths {
    /// The raw files' directory (watched).
    pub dir: PathBuf,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
    /// The directory of `output.log` and `offsets` (not watched).
    pub log_dir: PathBuf,
    pub output: PathBuf,
    pub offsets: PathBuf,
}

struct InstanceLogs {
    sources: [Source; 2],
    ring: VecDeque<LogLine>,
    /// The bytes of the texts in `ring` (at most [`RING_BYTES`], or one line).
    ring_bytes: usize,
    output: OutputLog,
    /// Where the read offsets are kept; opened on first write.
    offsets_path: PathBuf,
    offsets_file: Option<File>,
    /// The log files of stdout and stderr (keys of [`HubState::files`]; the same one twice
    /// when merged).
    targets: Targets,
    /// The inotify watch of its raw files' directory, while ten watches.
    wd: Option<i32>,
}

type Targets = [Option<PathBuf>; 2];

impl InstanceLogs {
    /// Records how far the lines of the raw files reached `output.log`, and its length then:
    /// one positioned write of a fixed-width text, after every append and rotation.
    fn record(&mut self) {
        if self.offsets_file.is_none() {
            self.offsets_file = OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(false)
                .mode(0o640)
                .open(&self.offsets_path)
                .ok();
        }
        if let Some(file) = &self.offsets_file {
            let bytes = encode_record(Recorded {
                offsets: [self.sources[0].line_start(), self.sources[1].line_start()],
                log_length: Some(self.output.size),
            });
            if let Err(error) = file.write_all_at(&bytes, 0) {
                tracing::debug!(%error, path = %self.offsets_path.display(), "cannot record log offsets");
            }
        }
    }
}

#[derive(Default)]
struct HubState {
    instances: HashMap<InstanceKey, InstanceLogs>,
    watches: watch::Watches,
    /// The log files named by the instances' targets.
    files: HashMap<PathBuf, LogFile>,
    /// How much of each instance's output is kept on disk.
    retention: LogRetention,
}

/// The capture of every instance's output.
pub struct LogHub {
    /// `{data_dir}/.ten`: raw files under `capture/`, output logs under `logs/`.
    root: PathBuf,
    state: Mutex<HubState>,
    lines: broadcast::Sender<LogLine>,
}

impl LogHub {
    /// `root` is ten's own directory, `{data_dir}/.ten`.
    pub fn new(root: PathBuf) -> Arc<LogHub> {
        let (lines, _) = broadcast::channel(BROADCAST_LINES);
        Arc::new(LogHub {
            root,
            state: Mutex::default(),
            lines,
        })
    }

    /// The watched directory of the raw files.
    fn capture_root(&self) -> PathBuf {
        self.root.join("capture")
    }

    fn lock(&self) -> MutexGuard<'_, HubState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn paths(&self, key: &InstanceKey) -> CapturePaths {
        let dir = self
            .capture_root()
            .join(key.service.as_str())
            .join(key.id.as_str());
        let log_dir = self
            .root
            .join("logs")
            .join(key.service.as_str())
            .join(key.id.as_str());
        CapturePaths {
            stdout: dir.join(Stream::Stdout.raw_file()),
            stderr: dir.join(Stream::Stderr.raw_file()),
            dir,
            output: log_dir.join("output.log"),
            offsets: log_dir.join("offsets"),
            log_dir,
        }
    }

    /// New lines as they are captured.
    pub fn subscribe(&self) -> broadcast::Receiver<LogLine> {
        self.lines.subscribe()
    }
}

mod attach;
mod log_files;
mod poll;
mod retention;
mod ring;
mod searches;
mod watch;

#[cfg(test)]
mod tests;
