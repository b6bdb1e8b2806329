//! The capture of every instance's output: attaching and detaching instances, polling their
//! raw files (on inotify events), appending to `output.log` and recording offsets in the
//! crash-safe order, the ring of recent lines per instance and queries over it, new lines as
//! a broadcast, and the log files services name (`stdout_log`, `stderr_log`), one writer per
//! path however many instances and streams name it; the retention of the kept files (after
//! each rotation, and in a sweep) and searches over them.
//!
//! Imports `line`, `record`, `source`, `output`, `log_file`, `store` and `search` of `logs`.

use std::collections::{HashMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::broadcast;

use crate::config::{LogFiles, LogRetention};
use crate::names::InstanceKey;

use super::line::{LogLine, LogQuery, Stream, parse_line, unix_millis};
use super::log_file::LogFile;
use super::output::{OutputLog, cut_back, file_length, format_lines};
use super::record::{Recorded, encode_record, read_record};
use super::search::{DEFAULT_SEARCH_LIMIT, MAX_SEARCH_LIMIT, search_instance};
use super::source::{ReadLimits, Source};
use super::store::{OUTPUT_LOG, age_cutoff, enforce, modified_ms, rotate_bytes};

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
}

type Targets = [Option<PathBuf>; 2];

impl InstanceLogs {
    /// Adds `line` to the ring, the oldest lines leaving it past [`RING_LINES`] or
    /// [`RING_BYTES`] (the newest line is kept whatever its length).
    fn keep(&mut self, line: LogLine) {
        self.ring_bytes += line.text.len();
        self.ring.push_back(line);
        while self.ring.len() > 1
            && (self.ring.len() > RING_LINES || self.ring_bytes > RING_BYTES)
            && let Some(old) = self.ring.pop_front()
        {
            self.ring_bytes -= old.text.len();
        }
    }

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

    /// Starts capturing `key`: creates its directories and resumes where the last ten's lines
    /// stopped (its recorded offsets), or, with none recorded, at the current end of the raw
    /// files. Lines in `output.log` past the recorded length (appended by a ten killed before
    /// it recorded their offsets) are removed first: they are read again. Then loads the tail
    /// of `output.log` into memory. Lines go to `log_files` too (those read now included);
    /// for an instance already attached, they are set as [`LogHub::set_log_files`] does.
    pub fn attach(&self, key: &InstanceKey, log_files: &LogFiles) -> io::Result<CapturePaths> {
        let paths = self.paths(key);
        if self.lock().instances.contains_key(key) {
            self.set_log_files(key, log_files);
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
        let ring_bytes = ring.iter().map(|line| line.text.len()).sum();
        let mut logs = InstanceLogs {
            sources: [
                Source::new(Stream::Stdout, paths.stdout.clone(), offsets[0]),
                Source::new(Stream::Stderr, paths.stderr.clone(), offsets[1]),
            ],
            ring,
            ring_bytes,
            output: OutputLog {
                path: paths.output.clone(),
                file: None,
                size: file_length(&paths.output),
            },
            offsets_path: paths.offsets.clone(),
            offsets_file: None,
            targets: Targets::default(),
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
        retarget(&mut state.files, &mut logs.targets, log_files);
        state.by_path.insert(paths.stdout.clone(), (key.clone(), 0));
        state.by_path.insert(paths.stderr.clone(), (key.clone(), 1));
        state.instances.insert(key.clone(), logs);
        drop(state);
        // Anything written before we attached.
        self.poll(key);
        Ok(paths)
    }

    /// Whether the output of `key` is captured (attached and not detached since).
    pub fn attached(&self, key: &InstanceKey) -> bool {
        self.lock().instances.contains_key(key)
    }

    /// Where the lines of `key` go from now on, besides `output.log`: the log files its spec
    /// names (none: only `output.log`).
    pub fn set_log_files(&self, key: &InstanceKey, log_files: &LogFiles) {
        let mut state = self.lock();
        let HubState {
            instances, files, ..
        } = &mut *state;
        if let Some(logs) = instances.get_mut(key) {
            retarget(files, &mut logs.targets, log_files);
        }
    }

    /// Stops capturing `key` (after reading what is left); removes its capture files when
    /// asked (never the log files a service names: they are the user's).
    pub fn detach(&self, key: &InstanceKey, remove_files: bool) {
        self.poll(key);
        let mut state = self.lock();
        if let Some(mut logs) = state.instances.remove(key) {
            for source in &logs.sources {
                state.by_path.remove(&source.path);
            }
            retarget(&mut state.files, &mut logs.targets, &LogFiles::default());
        }
        drop(state);
        if remove_files {
            let paths = self.paths(key);
            let _ = fs::remove_dir_all(paths.dir);
            let _ = fs::remove_dir_all(paths.log_dir);
        }
    }

    /// Reads new output of `key`: in batches of at most [`POLL_BYTES`] of each stream (a
    /// quarter of the rotation size if that is less), each
    /// appended and recorded before the next is read, the lock released in between (a tenant
    /// writing faster than ten reads neither grows ten's memory nor holds up the others).
    pub fn poll(&self, key: &InstanceKey) {
        while self.poll_batch(key, None) {}
    }

    /// Reads one batch of new output of `key` (of its stream `only`, or of both); whether
    /// more is waiting.
    fn poll_batch(&self, key: &InstanceKey, only: Option<usize>) -> bool {
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

    /// Reads new output of the instance whose raw file is `path`: of that stream only (a
    /// write to the other one has an event of its own).
    pub fn poll_path(&self, path: &Path) {
        let found = self.lock().by_path.get(path).cloned();
        if let Some((key, index)) = found {
            while self.poll_batch(&key, Some(index)) {}
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

    /// Keeps `retention` of each instance's output from now on (files are removed at the next
    /// rotation or [`LogHub::sweep`]).
    pub fn set_retention(&self, retention: LogRetention) {
        self.lock().retention = retention;
    }

    pub fn retention(&self) -> LogRetention {
        self.lock().retention
    }

    /// Removes what `log_retention` no longer keeps, of every instance with output on disk
    /// (attached or not): rotated files beyond its size or older than its age. An attached
    /// instance's `output.log` last written before the age is rotated first (then removed
    /// with the others); a detached one's is removed. Blocking: the directories are listed.
    pub fn sweep(&self) {
        let now = unix_millis();
        for log_dir in self.log_dirs(None) {
            let key = instance_of(&log_dir);
            let mut state = self.lock();
            let retention = state.retention;
            let cutoff = age_cutoff(&retention, now);
            let output = log_dir.join(OUTPUT_LOG);
            let stale = cutoff.is_some_and(|cutoff| {
                modified_ms(&output).is_some_and(|modified| modified < cutoff)
            });
            match key.and_then(|key| state.instances.get_mut(&key)) {
                Some(logs) if stale && logs.output.size > 0 => {
                    logs.output.rotate();
                    logs.record();
                }
                Some(_) => {}
                None if stale => {
                    let _ = fs::remove_file(&output);
                }
                None => {}
            }
            drop(state);
            enforce(&log_dir, &retention, now);
        }
    }

    /// Sweeps (see [`LogHub::sweep`]) at once and then every [`store::sweep_interval`] of the
    /// retention of the moment, on a blocking thread, for as long as the task runs.
    pub async fn sweep_forever(self: Arc<Self>) {
        loop {
            let hub = Arc::clone(&self);
            let _ = tokio::task::spawn_blocking(move || hub.sweep()).await;
            tokio::time::sleep(super::store::sweep_interval(&self.retention())).await;
        }
    }

    /// The last lines kept on disk that match `query` (its `limit`, else
    /// [`DEFAULT_SEARCH_LIMIT`], at most [`MAX_SEARCH_LIMIT`]), oldest first: of its instance,
    /// or of every instance with output on disk (of its services), running or not, so lines
    /// from before a restart of the tenant or of ten are found. Blocking: reads files; holds
    /// no lock while it does.
    pub fn search(&self, query: &LogQuery) -> Vec<LogLine> {
        let limit = query
            .limit
            .unwrap_or(DEFAULT_SEARCH_LIMIT)
            .min(MAX_SEARCH_LIMIT);
        let dirs = match &query.instance {
            Some(key) => vec![(key.clone(), self.paths(key).log_dir)],
            None => self
                .log_dirs(query.services.as_ref())
                .into_iter()
                .filter_map(|dir| Some((instance_of(&dir)?, dir)))
                .collect(),
        };
        let mut lines: Vec<LogLine> = dirs
            .iter()
            .flat_map(|(key, dir)| search_instance(key, dir, query, limit))
            .collect();
        if dirs.len() > 1 {
            lines.sort_by_key(|line| line.at_unix_ms);
        }
        if lines.len() > limit {
            lines.drain(..lines.len() - limit);
        }
        lines
    }

    /// The log directories on disk (`logs/<service>/<id>`), of `services` only if given.
    fn log_dirs(
        &self,
        services: Option<&std::collections::BTreeSet<crate::names::ServiceName>>,
    ) -> Vec<PathBuf> {
        let subdirectories = |dir: &Path| -> Vec<PathBuf> {
            fs::read_dir(dir)
                .map(|entries| {
                    entries
                        .filter_map(Result::ok)
                        .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_dir()))
                        .map(|entry| entry.path())
                        .collect()
                })
                .unwrap_or_default()
        };
        subdirectories(&self.root.join("logs"))
            .into_iter()
            .filter(|dir| {
                services.is_none_or(|services| {
                    dir.file_name()
                        .and_then(|name| name.to_str())
                        .is_some_and(|name| services.iter().any(|service| service.as_str() == name))
                })
            })
            .flat_map(|dir| subdirectories(&dir))
            .collect()
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

/// The instance whose log directory is `log_dir` (`.../logs/<service>/<id>`).
fn instance_of(log_dir: &Path) -> Option<InstanceKey> {
    let id = log_dir.file_name()?.to_str()?;
    let service = log_dir.parent()?.file_name()?.to_str()?;
    InstanceKey::parse(&format!("{service}:{id}")).ok()
}

/// Points `targets` at the files of `log_files`: a file newly named is added (or shared, if
/// another instance names it too), one no longer named is closed when nobody else writes to
/// it. An instance counts once per file, its two streams merged or not.
fn retarget(files: &mut HashMap<PathBuf, LogFile>, targets: &mut Targets, log_files: &LogFiles) {
    let wanted: Targets = [log_files.stdout.clone(), log_files.stderr.clone()];
    for path in distinct(&wanted) {
        let file = files
            .entry(path.clone())
            .or_insert_with(|| LogFile::new(path.clone(), log_files.rotation));
        file.set_rotation(log_files.rotation);
        file.users += 1;
    }
    for path in distinct(targets) {
        if let Some(file) = files.get_mut(path) {
            file.users -= 1;
            if file.users == 0 {
                files.remove(path);
            }
        }
    }
    *targets = wanted;
}

/// The paths of `targets`, each once.
fn distinct(targets: &Targets) -> impl Iterator<Item = &PathBuf> {
    let [stdout, stderr] = targets;
    stdout.iter().chain(
        stderr
            .iter()
            .filter(move |path| stdout.as_ref() != Some(*path)),
    )
}

/// Writes each line to the log file of its stream; a file that both streams name gets the
/// lines of both, in the order they were read.
fn write_log_files(files: &mut HashMap<PathBuf, LogFile>, targets: &Targets, lines: &[LogLine]) {
    let merged = targets[0].is_some() && targets[0] == targets[1];
    for (index, stream) in [Stream::Stdout, Stream::Stderr].into_iter().enumerate() {
        let Some(path) = &targets[index] else {
            continue;
        };
        if merged && stream == Stream::Stderr {
            continue;
        }
        if let Some(file) = files.get_mut(path) {
            file.write_lines(
                lines
                    .iter()
                    .filter(|line| merged || line.stream == stream)
                    .map(|line| line.text.as_str()),
            );
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

#[cfg(test)]
mod tests;

#[cfg(test)]
mod log_file_tests;

#[cfg(test)]
mod search_tests;
