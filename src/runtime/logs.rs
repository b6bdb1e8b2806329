//! Capture of tenant output.
//!
//! A tenant's stdout and stderr are files it appends to directly
//! (`{data_dir}/.ten/capture/<service>/<id>/stdout.raw`, `stderr.raw`): no pipe, so a tenant
//! never gets EPIPE from us and keeps running if ten dies. ten tails them (inotify events on
//! the capture directory, no polling), cuts the bytes into lines (invalid UTF-8 shown lossily,
//! lines longer than [`MAX_LINE`] cut), timestamps them, keeps the last lines of each instance
//! in memory for `ten logs`, and appends them to a rotated
//! `{data_dir}/.ten/logs/<service>/<id>/output.log`. Bytes already read are released from the
//! raw files by punching holes, so they take no disk space.
//!
//! Each line reaches `output.log` exactly once, even across a kill -9 of ten. After every
//! append to `output.log`, `offsets` next to it records (one positioned write of a fixed-width
//! `"STDOUT STDERR LOG_LENGTH"`) where the first line not yet in `output.log` begins in each
//! raw file (an unfinished line is read again whole, so its bytes are not counted as read) and
//! the length of `output.log` that holds exactly the lines before. A ten killed after an append
//! and before its record left lines past the recorded length: the next ten cuts `output.log`
//! back to it when it attaches (before loading its tail into memory) and reads those bytes
//! again, and it captures what was written while no ten ran. A rotation comes after the record
//! of the append that filled the file and is followed by a record of its own, so a ten killed
//! in between finds no `output.log` (the recorded length is `output.log.1`'s) and cuts nothing.
//! An `offsets` of an earlier version (two numbers, no length) is resumed from with nothing
//! cut. Nothing is fsynced: a machine crash may lose the last lines. (Only the capture
//! directory is watched, so ten's own writes cause no events.)

use std::collections::{HashMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::names::InstanceKey;

/// Longest line kept; the rest of a longer line is dropped and counted.
pub const MAX_LINE: usize = 16 * 1024;
/// Lines kept in memory per instance.
pub const RING_LINES: usize = 2000;
/// Size at which `output.log` is rotated, and how many rotated files are kept.
pub const ROTATE_BYTES: u64 = 10 * 1024 * 1024;
pub const KEEP_ROTATED: usize = 3;
/// Read bytes are released from a raw file in steps of this size.
const PUNCH_STEP: u64 = 1024 * 1024;
const READ_CHUNK: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }

    fn raw_file(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout.raw",
            Stream::Stderr => "stderr.raw",
        }
    }

    pub fn parse(text: &str) -> Option<Stream> {
        match text {
            "stdout" => Some(Stream::Stdout),
            "stderr" => Some(Stream::Stderr),
            _ => None,
        }
    }
}

/// One captured line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    pub at_unix_ms: u64,
    pub instance: InstanceKey,
    pub stream: Stream,
    pub text: String,
}

/// Which lines to return.
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    pub instance: Option<InstanceKey>,
    pub stream: Option<Stream>,
    /// Case-insensitive substring.
    pub search: Option<String>,
    /// The last `limit` matching lines.
    pub limit: Option<usize>,
}

impl LogQuery {
    pub fn matches(&self, line: &LogLine) -> bool {
        self.instance
            .as_ref()
            .is_none_or(|key| *key == line.instance)
            && self.stream.is_none_or(|stream| stream == line.stream)
            && self
                .search
                .as_ref()
                .is_none_or(|search| line.text.to_lowercase().contains(&search.to_lowercase()))
    }
}

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

/// What `offsets` records: how far the lines of stdout and stderr reached `output.log`, and
/// how long `output.log` was then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    /// Where the first line not yet in `output.log` begins, in each raw file.
    pub offsets: [u64; 2],
    /// The length of `output.log` that holds exactly the lines before `offsets`; `None` in
    /// the format of earlier versions, which did not record it.
    pub log_length: Option<u64>,
}

const RECORD_WIDTH: usize = 64;

/// `"STDOUT STDERR LOG_LENGTH\n"`, padded to a fixed width so one positioned write replaces
/// the old text whole (and one page holds it: a killed ten leaves the old or the new record).
fn encode_record(record: Recorded) -> [u8; RECORD_WIDTH] {
    let mut bytes = [b' '; RECORD_WIDTH];
    let text = format!(
        "{} {} {}",
        record.offsets[0],
        record.offsets[1],
        record.log_length.unwrap_or(0)
    );
    bytes[..text.len()].copy_from_slice(text.as_bytes());
    bytes[RECORD_WIDTH - 1] = b'\n';
    bytes
}

/// Reads both formats: `"STDOUT STDERR LOG_LENGTH"` and the earlier `"STDOUT STDERR"`.
fn decode_record(text: &str) -> Option<Recorded> {
    let numbers: Vec<u64> = text
        .split_whitespace()
        .map(|number| number.parse().ok())
        .collect::<Option<_>>()?;
    match numbers[..] {
        [stdout, stderr] => Some(Recorded {
            offsets: [stdout, stderr],
            log_length: None,
        }),
        [stdout, stderr, log_length] => Some(Recorded {
            offsets: [stdout, stderr],
            log_length: Some(log_length),
        }),
        _ => None,
    }
}

/// The record of an instance's capture, if any.
pub fn read_record(path: &Path) -> Option<Recorded> {
    decode_record(&fs::read_to_string(path).ok()?)
}

/// Opens (creating) a raw capture file for the tenant to append to.
pub fn open_for_tenant(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
}

/// One raw file being tailed.
struct Source {
    stream: Stream,
    path: PathBuf,
    file: Option<File>,
    /// How far the file was read.
    offset: u64,
    /// Bytes before this are released from disk.
    punched: u64,
    /// Released bytes cut off an unfinished line end here.
    punched_cut: u64,
    pending: Vec<u8>,
    /// Bytes of the current line dropped past [`MAX_LINE`].
    dropped: usize,
}

impl Source {
    fn new(stream: Stream, path: PathBuf, offset: u64) -> Self {
        Self {
            stream,
            path,
            file: None,
            offset,
            punched: offset - offset % PUNCH_STEP,
            punched_cut: 0,
            pending: Vec::new(),
            dropped: 0,
        }
    }

    /// Where the unfinished line begins: every byte before it is in a line already returned.
    /// This, not the read offset, is what is recorded, so a restarted ten reads the
    /// unfinished line again from its start.
    fn line_start(&self) -> u64 {
        self.offset - (self.pending.len() + self.dropped) as u64
    }

    /// Reads what was appended since the last read; returns the complete lines.
    fn read_new(&mut self) -> Vec<String> {
        if self.file.is_none() {
            // Writable only to punch holes into what was read; ten never writes to it.
            self.file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&self.path)
                .ok();
        }
        let Some(file) = self.file.take() else {
            return Vec::new();
        };
        let size = file.metadata().map_or(u64::MAX, |metadata| metadata.len());
        if size < self.offset {
            // Truncated by someone: start again from the beginning.
            self.offset = 0;
            self.punched = 0;
            self.punched_cut = 0;
            self.pending.clear();
            self.dropped = 0;
        }
        let mut lines = Vec::new();
        // Sized to what was appended (usually one short line), not a fixed large chunk.
        let appended = size.saturating_sub(self.offset).clamp(1, READ_CHUNK as u64);
        let mut buffer = vec![0; appended as usize];
        loop {
            let read = match file.read_at(&mut buffer, self.offset) {
                Ok(0) | Err(_) => break,
                Ok(read) => read,
            };
            self.offset += read as u64;
            self.split_lines(&buffer[..read], &mut lines);
        }
        self.release_read_bytes(&file);
        self.file = Some(file);
        lines
    }

    fn split_lines(&mut self, mut bytes: &[u8], lines: &mut Vec<String>) {
        while !bytes.is_empty() {
            match bytes.iter().position(|&byte| byte == b'\n') {
                Some(end) => {
                    self.take(&bytes[..end]);
                    lines.push(self.finish_line());
                    bytes = &bytes[end + 1..];
                }
                None => {
                    self.take(bytes);
                    break;
                }
            }
        }
    }

    fn take(&mut self, bytes: &[u8]) {
        let room = MAX_LINE.saturating_sub(self.pending.len());
        let kept = bytes.len().min(room);
        self.pending.extend_from_slice(&bytes[..kept]);
        self.dropped += bytes.len() - kept;
    }

    fn finish_line(&mut self) -> String {
        if self.pending.last() == Some(&b'\r') {
            self.pending.pop();
        }
        let mut text = String::from_utf8_lossy(&self.pending).into_owned();
        if self.dropped > 0 {
            text.push_str(&format!(" [line cut: {} more bytes]", self.dropped));
        }
        self.pending.clear();
        self.dropped = 0;
        text
    }

    /// Frees the disk blocks of what was read and is not needed again (the file keeps its
    /// size: the tenant's append offset and ours stay valid). An unfinished line may be read
    /// again by a restarted ten, so its kept bytes stay; the bytes cut off it past
    /// [`MAX_LINE`] are only counted and hold no newline, so reading zeros in their place
    /// gives the same line: they are freed too (an endless line takes no disk space).
    fn release_read_bytes(&mut self, file: &File) {
        let line_start = self.line_start();
        let end = line_start - line_start % PUNCH_STEP;
        if end > self.punched && self.punch(file, self.punched, end) {
            self.punched = end;
        }
        if self.dropped > 0 {
            let cut_from = (line_start + MAX_LINE as u64).next_multiple_of(PUNCH_STEP);
            let start = cut_from.max(self.punched).max(self.punched_cut);
            let end = self.offset - self.offset % PUNCH_STEP;
            if end > start && self.punch(file, start, end) {
                self.punched_cut = end;
            }
        }
    }

    fn punch(&self, file: &File, start: u64, end: u64) -> bool {
        let flags = nix::fcntl::FallocateFlags::FALLOC_FL_PUNCH_HOLE
            | nix::fcntl::FallocateFlags::FALLOC_FL_KEEP_SIZE;
        match nix::fcntl::fallocate(file, flags, start as i64, (end - start) as i64) {
            Ok(()) => true,
            Err(error) => {
                tracing::debug!(%error, path = %self.path.display(), "cannot release read log bytes");
                false
            }
        }
    }
}

/// The rotated, timestamped log of one instance.
struct OutputLog {
    path: PathBuf,
    file: Option<File>,
    /// The length of the file at `path` (kept whole lines only).
    size: u64,
}

impl OutputLog {
    /// Appends the lines (opening the file first if needed). Rotation is left to the caller,
    /// to be done after the offsets that match this append are recorded.
    fn append(&mut self, lines: &[LogLine]) {
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

    fn full(&self) -> bool {
        self.size >= ROTATE_BYTES
    }

    /// Moves `output.log` to `output.log.1` (each older file one up, the oldest dropped); the
    /// next append starts a new `output.log`.
    fn rotate(&mut self) {
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
fn file_length(path: &Path) -> u64 {
    fs::metadata(path).map_or(0, |metadata| metadata.len())
}

fn rotated(path: &Path, index: usize) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{index}"));
    PathBuf::from(name)
}

/// `2026-11-24T15:00:00.123Z stdout text`
fn format_line(line: &LogLine) -> String {
    let time = UNIX_EPOCH + std::time::Duration::from_millis(line.at_unix_ms);
    format!(
        "{} {} {}",
        humantime::format_rfc3339_millis(time),
        line.stream.as_str(),
        line.text
    )
}

/// Parses a line written by [`format_line`] back.
fn parse_line(instance: &InstanceKey, text: &str) -> Option<LogLine> {
    let (time, rest) = text.split_once(' ')?;
    let (stream, text) = rest.split_once(' ').unwrap_or((rest, ""));
    let at = humantime::parse_rfc3339(time).ok()?;
    Some(LogLine {
        at_unix_ms: at.duration_since(UNIX_EPOCH).ok()?.as_millis() as u64,
        instance: instance.clone(),
        stream: Stream::parse(stream)?,
        text: text.to_string(),
    })
}

struct InstanceLogs {
    sources: [Source; 2],
    ring: VecDeque<LogLine>,
    output: OutputLog,
    /// Where the read offsets are kept; opened on first write.
    offsets_path: PathBuf,
    offsets_file: Option<File>,
}

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
    by_path: HashMap<PathBuf, (InstanceKey, usize)>,
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
        let (lines, _) = broadcast::channel(4096);
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

    /// Starts capturing `key`: creates its directories and resumes where the last ten's lines
    /// stopped (its recorded offsets), or, with none recorded, at the current end of the raw
    /// files. Lines in `output.log` past the recorded length (appended by a ten killed before
    /// it recorded their offsets) are removed first: they are read again. Then loads the tail
    /// of `output.log` into memory.
    pub fn attach(&self, key: &InstanceKey) -> io::Result<CapturePaths> {
        let paths = self.paths(key);
        if self.lock().instances.contains_key(key) {
            return Ok(paths);
        }
        fs::create_dir_all(&paths.dir)?;
        fs::create_dir_all(&paths.log_dir)?;
        let recorded = read_record(&paths.offsets);
        if let Some(length) = recorded.and_then(|recorded| recorded.log_length) {
            cut_back(&paths.output, length);
        }
        let offsets = recorded.map_or_else(
            || [&paths.stdout, &paths.stderr].map(|path| file_length(path)),
            |recorded| recorded.offsets,
        );
        let ring = read_tail(key, &paths.output);
        let mut logs = InstanceLogs {
            sources: [
                Source::new(Stream::Stdout, paths.stdout.clone(), offsets[0]),
                Source::new(Stream::Stderr, paths.stderr.clone(), offsets[1]),
            ],
            ring,
            output: OutputLog {
                path: paths.output.clone(),
                file: None,
                size: file_length(&paths.output),
            },
            offsets_path: paths.offsets.clone(),
            offsets_file: None,
        };
        // The record now says where this ten starts, in this version's format, with the
        // length of the output.log it appends to (after a ten killed between a rotation and
        // the record that follows it, the recorded length was the rotated file's).
        let current = Recorded {
            offsets,
            log_length: Some(logs.output.size),
        };
        if recorded != Some(current) {
            logs.record();
        }
        let mut state = self.lock();
        state.by_path.insert(paths.stdout.clone(), (key.clone(), 0));
        state.by_path.insert(paths.stderr.clone(), (key.clone(), 1));
        state.instances.insert(key.clone(), logs);
        drop(state);
        // Anything written before we attached.
        self.poll(key);
        Ok(paths)
    }

    /// Stops capturing `key` (after reading what is left); removes its files when asked.
    pub fn detach(&self, key: &InstanceKey, remove_files: bool) {
        self.poll(key);
        let mut state = self.lock();
        if let Some(logs) = state.instances.remove(key) {
            for source in &logs.sources {
                state.by_path.remove(&source.path);
            }
        }
        drop(state);
        if remove_files {
            let paths = self.paths(key);
            let _ = fs::remove_dir_all(paths.dir);
            let _ = fs::remove_dir_all(paths.log_dir);
        }
    }

    /// Reads new output of `key`.
    pub fn poll(&self, key: &InstanceKey) {
        let mut state = self.lock();
        let Some(logs) = state.instances.get_mut(key) else {
            return;
        };
        let now = unix_millis();
        let mut new_lines = Vec::new();
        for source in &mut logs.sources {
            for text in source.read_new() {
                new_lines.push(LogLine {
                    at_unix_ms: now,
                    instance: key.clone(),
                    stream: source.stream,
                    text,
                });
            }
        }
        if new_lines.is_empty() {
            return;
        }
        // Crash-safe in this order: a ten killed before the record truncates output.log back
        // to the recorded length when it attaches, then reads those lines again; a rotation
        // comes after the record, so the recorded length is the rotated file's, and a ten
        // killed before the record that follows finds no output.log longer than recorded.
        logs.output.append(&new_lines);
        logs.record();
        if logs.output.full() {
            logs.output.rotate();
            logs.record();
        }
        for line in new_lines {
            if logs.ring.len() == RING_LINES {
                logs.ring.pop_front();
            }
            logs.ring.push_back(line.clone());
            let _ = self.lines.send(line);
        }
    }

    /// Reads new output of the instance whose raw file is `path`.
    pub fn poll_path(&self, path: &Path) {
        let key = self.lock().by_path.get(path).map(|(key, _)| key.clone());
        if let Some(key) = key {
            self.poll(&key);
        }
    }

    pub fn poll_all(&self) {
        let keys: Vec<InstanceKey> = self.lock().instances.keys().cloned().collect();
        for key in keys {
            self.poll(&key);
        }
    }

    /// The last matching lines, oldest first.
    pub fn query(&self, query: &LogQuery) -> Vec<LogLine> {
        let state = self.lock();
        let mut lines: Vec<LogLine> = match &query.instance {
            Some(key) => state
                .instances
                .get(key)
                .map(|logs| {
                    logs.ring
                        .iter()
                        .filter(|l| query.matches(l))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default(),
            None => {
                let mut all: Vec<LogLine> = state
                    .instances
                    .values()
                    .flat_map(|logs| logs.ring.iter().filter(|l| query.matches(l)).cloned())
                    .collect();
                all.sort_by_key(|line| line.at_unix_ms);
                all
            }
        };
        if let Some(limit) = query.limit
            && lines.len() > limit
        {
            lines.drain(..lines.len() - limit);
        }
        lines
    }

    /// New lines as they are captured.
    pub fn subscribe(&self) -> broadcast::Receiver<LogLine> {
        self.lines.subscribe()
    }

    /// Tails the raw files: reads whenever inotify reports a write. The watcher must be kept
    /// alive by the caller.
    pub fn watch(self: &Arc<Self>) -> notify::Result<notify::RecommendedWatcher> {
        use notify::{EventKind, RecursiveMode, Watcher};
        let capture = self.capture_root();
        fs::create_dir_all(&capture).map_err(notify::Error::io)?;
        let hub = Arc::clone(self);
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
                Ok(event) if event.need_rescan() => hub.poll_all(),
                Ok(event) => {
                    if matches!(event.kind, EventKind::Modify(_) | EventKind::Create(_)) {
                        for path in &event.paths {
                            hub.poll_path(path);
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "log watcher error; reading all logs");
                    hub.poll_all();
                }
            })?;
        watcher.watch(&capture, RecursiveMode::Recursive)?;
        Ok(watcher)
    }
}

/// Cuts `output.log` back to the recorded `length`: what is past it was appended by a ten
/// killed before it recorded the offsets of those lines, which will be read again.
fn cut_back(path: &Path, length: u64) {
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

/// The last [`RING_LINES`] lines of an `output.log` (reads at most its last 1 MiB).
fn read_tail(key: &InstanceKey, path: &Path) -> VecDeque<LogLine> {
    let mut ring = VecDeque::new();
    let Ok(mut file) = File::open(path) else {
        return ring;
    };
    let size = file.metadata().map_or(0, |m| m.len());
    let start = size.saturating_sub(1024 * 1024);
    if file.seek(SeekFrom::Start(start)).is_err() {
        return ring;
    }
    let mut reader = BufReader::new(file);
    if start > 0 {
        let mut partial = Vec::new();
        let _ = reader.read_until(b'\n', &mut partial);
    }
    for line in reader.lines().map_while(Result::ok) {
        if let Some(line) = parse_line(key, &line) {
            if ring.len() == RING_LINES {
                ring.pop_front();
            }
            ring.push_back(line);
        }
    }
    ring
}

pub fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> InstanceKey {
        InstanceKey::parse("notes:alice").unwrap()
    }

    fn append(path: &Path, bytes: &[u8]) {
        open_for_tenant(path).unwrap().write_all(bytes).unwrap();
    }

    #[test]
    fn lines_are_cut_decoded_and_timestamped() {
        let dir = tempfile::tempdir().unwrap();
        let hub = LogHub::new(dir.path().join(".ten"));
        let paths = hub.attach(&key()).unwrap();
        append(&paths.stdout, b"hello\r\nbad \xff\xfe bytes\npartial");
        append(&paths.stderr, b"oops\n");
        let mut long = vec![b'x'; MAX_LINE + 1000];
        long.push(b'\n');
        append(&paths.stdout, &long);
        hub.poll(&key());
        let texts: Vec<(Stream, String)> = hub
            .query(&LogQuery::default())
            .into_iter()
            .map(|line| (line.stream, line.text))
            .collect();
        assert_eq!(texts[0], (Stream::Stdout, "hello".to_string()));
        assert_eq!(
            texts[1],
            (Stream::Stdout, "bad \u{fffd}\u{fffd} bytes".to_string())
        );
        assert_eq!(texts[2].0, Stream::Stdout);
        assert!(texts[2].1.starts_with("partialxxx"));
        assert!(
            texts[2].1.ends_with(" [line cut: 1007 more bytes]"),
            "{}",
            &texts[2].1[MAX_LINE - 10..]
        );
        assert_eq!(texts[3], (Stream::Stderr, "oops".to_string()));
        let stored = fs::read_to_string(&paths.output).unwrap();
        assert_eq!(stored.lines().count(), 4);
        assert!(stored.lines().next().unwrap().ends_with(" stdout hello"));
    }

    #[test]
    fn queries_filter_and_limit() {
        let dir = tempfile::tempdir().unwrap();
        let hub = LogHub::new(dir.path().join(".ten"));
        let paths = hub.attach(&key()).unwrap();
        append(&paths.stdout, b"GET /a\nGET /b\nPOST /c\n");
        append(&paths.stderr, b"warning: get\n");
        hub.poll(&key());
        let query = |search: &str, stream, limit| {
            hub.query(&LogQuery {
                instance: Some(key()),
                stream,
                search: Some(search.to_string()),
                limit,
            })
            .into_iter()
            .map(|line| line.text)
            .collect::<Vec<_>>()
        };
        assert_eq!(
            query("get", None, None),
            ["GET /a", "GET /b", "warning: get"]
        );
        assert_eq!(query("get", Some(Stream::Stdout), Some(1)), ["GET /b"]);
    }

    #[test]
    fn output_survives_in_output_log_and_is_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let hub = LogHub::new(dir.path().join(".ten"));
        let paths = hub.attach(&key()).unwrap();
        append(&paths.stdout, b"before restart\n");
        hub.poll(&key());
        // The server dies here (no detach); its offsets are on disk.
        drop(hub);
        assert_eq!(
            read_record(&paths.offsets),
            Some(Recorded {
                offsets: [15, 0],
                log_length: Some(fs::metadata(&paths.output).unwrap().len()),
            })
        );
        append(&paths.stdout, b"while away\n");
        let hub = LogHub::new(dir.path().join(".ten"));
        hub.attach(&key()).unwrap();
        let texts: Vec<String> = hub
            .query(&LogQuery::default())
            .into_iter()
            .map(|l| l.text)
            .collect();
        assert_eq!(texts, ["before restart", "while away"]);
    }

    #[test]
    fn records_round_trip_and_shrinking_numbers_leave_no_old_digits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("offsets");
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(&path)
            .unwrap();
        let record = |stdout, stderr, log_length| Recorded {
            offsets: [stdout, stderr],
            log_length,
        };
        file.write_all_at(&encode_record(record(123456789, 42, Some(987654321))), 0)
            .unwrap();
        file.write_all_at(&encode_record(record(7, 0, Some(3))), 0)
            .unwrap();
        assert_eq!(read_record(&path), Some(record(7, 0, Some(3))));
        let largest = record(u64::MAX, u64::MAX, Some(u64::MAX));
        let text = encode_record(largest);
        assert_eq!(
            decode_record(std::str::from_utf8(&text).unwrap()),
            Some(largest)
        );
        // The format of earlier versions: no length of output.log.
        assert_eq!(decode_record("12 34"), Some(record(12, 34, None)));
        assert_eq!(decode_record("12"), None);
        assert_eq!(decode_record("1 2 3 4"), None);
        assert_eq!(decode_record("1 x 3"), None);
    }

    #[test]
    fn offsets_recorded_by_an_earlier_version_are_resumed_from() {
        let dir = tempfile::tempdir().unwrap();
        let hub = LogHub::new(dir.path().join(".ten"));
        let paths = hub.paths(&key());
        // An earlier ten captured "before" and recorded two numbers, padded to 42 bytes.
        fs::create_dir_all(&paths.dir).unwrap();
        fs::create_dir_all(&paths.log_dir).unwrap();
        append(&paths.stdout, b"before\nwhile away\n");
        let line = LogLine {
            at_unix_ms: 0,
            instance: key(),
            stream: Stream::Stdout,
            text: "before".to_string(),
        };
        fs::write(&paths.output, format!("{}\n", format_line(&line))).unwrap();
        fs::write(&paths.offsets, format!("{:<41}\n", "7 0")).unwrap();
        hub.attach(&key()).unwrap();
        assert_eq!(stored_texts(&paths), ["before", "while away"]);
        assert_eq!(ring_texts(&hub), ["before", "while away"]);
        assert_eq!(
            read_record(&paths.offsets),
            Some(Recorded {
                offsets: [18, 0],
                log_length: Some(fs::metadata(&paths.output).unwrap().len()),
            })
        );
    }

    #[test]
    fn read_bytes_are_released_from_disk() {
        let dir = tempfile::tempdir().unwrap();
        let hub = LogHub::new(dir.path().join(".ten"));
        let paths = hub.attach(&key()).unwrap();
        let line = vec![b'y'; 1023];
        let mut chunk = Vec::new();
        for _ in 0..4096 {
            chunk.extend_from_slice(&line);
            chunk.push(b'\n');
        }
        append(&paths.stdout, &chunk);
        hub.poll(&key());
        let metadata = fs::metadata(&paths.stdout).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!(metadata.len(), 4 * 1024 * 1024, "the size stays");
        assert!(
            metadata.blocks() * 512 < 1024 * 1024,
            "the blocks are freed: {}",
            metadata.blocks()
        );
    }

    /// The texts of an instance's output.log (and its rotated files), oldest first.
    fn stored_texts(paths: &CapturePaths) -> Vec<String> {
        let mut files: Vec<PathBuf> = (1..=KEEP_ROTATED)
            .rev()
            .map(|index| rotated(&paths.output, index))
            .collect();
        files.push(paths.output.clone());
        files
            .iter()
            .flat_map(|file| {
                let text = fs::read_to_string(file).unwrap_or_default();
                text.lines()
                    .map(|line| parse_line(&key(), line).unwrap().text)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn ring_texts(hub: &LogHub) -> Vec<String> {
        hub.query(&LogQuery::default())
            .into_iter()
            .map(|line| line.text)
            .collect()
    }

    /// Polls as a ten killed between appending to output.log and recording the offsets would
    /// have: the lines are in output.log (the last of them cut short: the write was cut off
    /// too), the offsets file is as before.
    fn poll_and_crash_before_the_offsets_write(hub: &LogHub, paths: &CapturePaths) {
        let recorded = fs::read(&paths.offsets).unwrap();
        let before = fs::metadata(&paths.output).map_or(0, |m| m.len());
        hub.poll(&key());
        let after = fs::metadata(&paths.output).unwrap().len();
        assert!(after > before + 3, "the poll appended lines");
        fs::write(&paths.offsets, recorded).unwrap();
        File::options()
            .write(true)
            .open(&paths.output)
            .unwrap()
            .set_len(after - 3)
            .unwrap();
    }

    #[test]
    fn a_crash_between_appending_and_recording_the_offsets_duplicates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let hub = LogHub::new(dir.path().join(".ten"));
        let paths = hub.attach(&key()).unwrap();
        append(&paths.stdout, b"one\n");
        append(&paths.stderr, b"oops\n");
        hub.poll(&key());
        append(&paths.stdout, b"two\nthree\n");
        append(&paths.stderr, b"again\n");
        poll_and_crash_before_the_offsets_write(&hub, &paths);
        drop(hub);
        append(&paths.stdout, b"four\n");
        let hub = LogHub::new(dir.path().join(".ten"));
        hub.attach(&key()).unwrap();
        // (A poll takes stdout's lines, then stderr's.)
        let expected = ["one", "oops", "two", "three", "four", "again"];
        assert_eq!(stored_texts(&paths), expected);
        assert_eq!(ring_texts(&hub), expected);
    }

    #[test]
    fn a_crash_around_a_rotation_duplicates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let hub = LogHub::new(dir.path().join(".ten"));
        let paths = hub.attach(&key()).unwrap();
        let mut expected: Vec<String> = (0..10_300)
            .map(|index| format!("{index:05} {}", "r".repeat(994)))
            .collect();
        let mut raw = expected.join("\n");
        raw.push('\n');
        append(&paths.stdout, raw.as_bytes());
        hub.poll(&key());
        let rotated_length = fs::metadata(rotated(&paths.output, 1)).unwrap().len();
        assert!(rotated_length >= ROTATE_BYTES);
        assert!(!paths.output.exists());
        // Killed after output.log became output.log.1, before the record that follows: the
        // record still has the length of the file now called output.log.1.
        let offsets = read_record(&paths.offsets).unwrap().offsets;
        fs::write(
            &paths.offsets,
            encode_record(Recorded {
                offsets,
                log_length: Some(rotated_length),
            }),
        )
        .unwrap();
        drop(hub);
        append(&paths.stdout, b"after rotation\n");
        let hub = LogHub::new(dir.path().join(".ten"));
        hub.attach(&key()).unwrap();
        expected.push("after rotation".to_string());
        assert_eq!(stored_texts(&paths), expected);
        // Killed after the first append to the new output.log, before its record.
        append(&paths.stdout, b"more\n");
        poll_and_crash_before_the_offsets_write(&hub, &paths);
        drop(hub);
        append(&paths.stdout, b"last\n");
        let hub = LogHub::new(dir.path().join(".ten"));
        hub.attach(&key()).unwrap();
        expected.extend(["more".to_string(), "last".to_string()]);
        assert_eq!(stored_texts(&paths), expected);
        assert_eq!(ring_texts(&hub), ["after rotation", "more", "last"]);
    }

    #[test]
    fn an_unfinished_line_is_read_again_whole_after_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let hub = LogHub::new(dir.path().join(".ten"));
        let paths = hub.attach(&key()).unwrap();
        append(&paths.stdout, b"one\ntw");
        append(&paths.stderr, b"oops\n");
        hub.poll(&key());
        assert_eq!(ring_texts(&hub), ["one", "oops"]);
        // Killed: the offsets on disk are all that is left of this ten.
        drop(hub);
        append(&paths.stdout, b"o\n");
        let hub = LogHub::new(dir.path().join(".ten"));
        hub.attach(&key()).unwrap();
        assert_eq!(stored_texts(&paths), ["one", "oops", "two"]);
        assert_eq!(ring_texts(&hub), ["one", "oops", "two"]);
    }

    #[test]
    fn a_long_unfinished_line_is_released_from_disk_and_still_whole_after_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let hub = LogHub::new(dir.path().join(".ten"));
        let paths = hub.attach(&key()).unwrap();
        let length = 3 * 1024 * 1024;
        append(&paths.stdout, &vec![b'x'; length]);
        hub.poll(&key());
        use std::os::unix::fs::MetadataExt;
        let blocks = fs::metadata(&paths.stdout).unwrap().blocks();
        assert!(
            blocks * 512 < 2 * 1024 * 1024,
            "what is cut off the line is freed: {blocks} blocks"
        );
        drop(hub);
        append(&paths.stdout, b"\n");
        let hub = LogHub::new(dir.path().join(".ten"));
        hub.attach(&key()).unwrap();
        // (how many x, what follows them) of each line
        let summary = |texts: Vec<String>| -> Vec<(usize, String)> {
            texts
                .iter()
                .map(|text| {
                    let rest = text.trim_start_matches('x');
                    (text.len() - rest.len(), rest.to_string())
                })
                .collect()
        };
        let cut = (
            MAX_LINE,
            format!(" [line cut: {} more bytes]", length - MAX_LINE),
        );
        assert_eq!(summary(stored_texts(&paths)), std::slice::from_ref(&cut));
        assert_eq!(summary(ring_texts(&hub)), [cut]);
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
