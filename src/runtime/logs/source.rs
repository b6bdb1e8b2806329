//! Tailing one raw file a tenant appends to: reading what was appended, cutting it into
//! lines, releasing the bytes read from disk (holes punched, the size kept), and skipping what
//! the tenant wrote faster than ten reads once it is more than could be kept (counted, and
//! said in a line of its own).
//!
//! Imports `line` of `logs`.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::line::Stream;

/// Longest line kept; the rest of a longer line is dropped and counted.
pub const MAX_LINE: usize = 16 * 1024;
/// Read bytes are released from a raw file in steps of this size.
const PUNCH_STEP: u64 = 1024 * 1024;
const READ_CHUNK: usize = 64 * 1024;
/// The first read of new output, on the stack: a read that comes back with less is the
/// usual one (see `Source::read_short`).
const SHORT_READ: usize = 2048;
/// What a line costs a read besides its bytes (in bytes): its `LogLine` in memory, its time
/// and stream in `output.log`. A read's budget counts both, so a batch of 2-byte lines holds
/// no more memory and writes no more to `output.log` than one of long lines.
pub(super) const LINE_COST: u64 = 64;
/// Bytes read to find where a skip ends cost a read this fraction of a byte.
const SKIP_COST_DIVISOR: u64 = 32;
/// Dropped output is reported in ten's log at most this often (the counts add up between).
const DROP_WARNING_EVERY: Duration = Duration::from_secs(10);

/// Opens (creating) a raw capture file for the tenant to append to.
pub fn open_for_tenant(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
}

/// One raw file being tailed.
pub(super) struct Source {
    pub(super) stream: Stream,
    pub(super) path: PathBuf,
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
    /// Output being skipped: more was waiting than could be kept.
    skip: Option<Skip>,
    /// Dropped output not yet reported in ten's log, and when it last was.
    unreported: u64,
    reported_at: Option<Instant>,
}

/// Output being skipped, up to the first line that begins at or after `to`.
struct Skip {
    to: u64,
    bytes: u64,
}

/// What a read may do: how much it may cost (bytes read, plus [`LINE_COST`] a line), and
/// how far behind the end of the file it may stay before it skips.
#[derive(Debug, Clone, Copy)]
pub(super) struct ReadLimits {
    pub(super) budget: u64,
    /// Unread bytes past this are skipped: not read at all, their disk released at once.
    pub(super) backlog: u64,
}

impl Source {
    pub(super) fn new(stream: Stream, path: PathBuf, offset: u64) -> Self {
        Self {
            stream,
            path,
            file: None,
            offset,
            punched: offset - offset % PUNCH_STEP,
            punched_cut: 0,
            pending: Vec::new(),
            dropped: 0,
            skip: None,
            unreported: 0,
            reported_at: None,
        }
    }

    /// Where the unfinished line begins: every byte before it is in a line already returned.
    /// This, not the read offset, is what is recorded, so a restarted ten reads the
    /// unfinished line again from its start.
    pub(super) fn line_start(&self) -> u64 {
        self.offset - (self.pending.len() + self.dropped) as u64
    }

    /// Reads what was appended since the last read, up to `limits.budget` of it (the rest is
    /// read by the next call); returns the complete lines, and whether more is left. When
    /// more than `limits.backlog` is waiting, all but the last quarter of it is skipped (not
    /// read: a skip costs nothing however much is skipped), and a line saying how many bytes
    /// takes its place.
    pub(super) fn read_new(&mut self, limits: ReadLimits) -> (Vec<String>, bool) {
        if self.file.is_none() {
            // Writable only to punch holes into what was read; ten never writes to it.
            self.file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&self.path)
                .ok();
        }
        let Some(file) = self.file.take() else {
            return (Vec::new(), false);
        };
        if let Some(lines) = self.read_short(&file, limits) {
            self.release_read_bytes(&file);
            self.file = Some(file);
            return (lines, false);
        }
        let size = file.metadata().map_or(u64::MAX, |metadata| metadata.len());
        if size < self.offset {
            // Truncated by someone: start again from the beginning.
            self.offset = 0;
            self.punched = 0;
            self.punched_cut = 0;
            self.pending.clear();
            self.dropped = 0;
            self.skip = None;
        }
        if self.skip.is_none() && size != u64::MAX {
            self.start_skip(size, limits.backlog);
        }
        let mut lines = Vec::new();
        // Sized to what was appended (usually one short line), not a fixed large chunk.
        let appended = size
            .saturating_sub(self.offset)
            .clamp(1, (READ_CHUNK as u64).min(limits.budget.max(1)));
        let mut buffer = vec![0; appended as usize];
        let mut cost = 0;
        let mut more = false;
        loop {
            if cost >= limits.budget {
                more = true;
                break;
            }
            // All that was there at the fstat is read: what is written since comes with an
            // event of its own (no read that finds nothing).
            if size != u64::MAX && self.offset >= size {
                break;
            }
            let read = match file.read_at(&mut buffer, self.offset) {
                Ok(0) | Err(_) => break,
                Ok(read) => read,
            };
            if self.skip.is_some() {
                let skipped = self.skip_bytes(&buffer[..read], &mut lines);
                self.offset += skipped;
                cost += skipped.div_ceil(SKIP_COST_DIVISOR);
                continue;
            }
            let used = self.split_lines(&buffer[..read], &mut lines, &mut cost, limits.budget);
            self.offset += used as u64;
        }
        self.release_read_bytes(&file);
        self.file = Some(file);
        (lines, more)
    }

    /// The usual read, a line or a few appended since the last one: at most [`SHORT_READ`]
    /// bytes at the offset, with no look at the file's size. A read that ends short of that
    /// reached the end of the file: fewer bytes were waiting than any backlog or budget
    /// allows, and the file was not cut shorter (there were bytes at the offset); their lines.
    /// `None`, with nothing changed, when the read found nothing or filled its buffer, while
    /// output is being skipped, or when the limits are too small for a whole short read: the
    /// file's size decides then.
    fn read_short(&mut self, file: &File, limits: ReadLimits) -> Option<Vec<String>> {
        let fits = limits.budget >= SHORT_READ as u64 * (1 + LINE_COST)
            && limits.backlog >= SHORT_READ as u64;
        if self.skip.is_some() || !fits {
            return None;
        }
        let mut buffer = [0; SHORT_READ];
        let read = match file.read_at(&mut buffer, self.offset) {
            Ok(read) if read > 0 && read < SHORT_READ => read,
            _ => return None,
        };
        let mut lines = Vec::new();
        let mut cost = 0;
        let used = self.split_lines(&buffer[..read], &mut lines, &mut cost, limits.budget);
        debug_assert_eq!(used, read, "a short read fits the budget whole");
        self.offset += used as u64;
        Some(lines)
    }

    /// Starts skipping if more than `backlog` bytes of `size` are unread: jumps to the last
    /// quarter of the backlog, to read on from the first line that begins there. The
    /// unfinished line is dropped with the rest.
    fn start_skip(&mut self, size: u64, backlog: u64) {
        if size.saturating_sub(self.offset) <= backlog {
            return;
        }
        let to = size - backlog / 4;
        self.skip = Some(Skip {
            to,
            bytes: to - self.line_start(),
        });
        self.pending.clear();
        self.dropped = 0;
        self.offset = to;
    }

    /// Skips in `bytes` (read at the offset) up to the first newline at or past the skip's
    /// end, where a line saying what was dropped is added to `lines` and the skip ends. How
    /// many bytes were skipped.
    fn skip_bytes(&mut self, bytes: &[u8], lines: &mut Vec<String>) -> u64 {
        let Some(skip) = &mut self.skip else {
            return 0;
        };
        let surely = usize::try_from(skip.to.saturating_sub(self.offset)).unwrap_or(usize::MAX);
        let end = (surely < bytes.len())
            .then(|| {
                bytes[surely..]
                    .iter()
                    .position(|&byte| byte == b'\n')
                    .map(|at| surely + at + 1)
            })
            .flatten();
        let taken = end.unwrap_or(bytes.len());
        skip.bytes += taken as u64;
        if end.is_some() {
            let dropped = skip.bytes;
            self.skip = None;
            lines.push(format!(
                "[ten: {dropped} bytes of {} dropped: written faster than ten could read them, and more than log_retention keeps]",
                self.stream.as_str()
            ));
            self.report_dropped(dropped);
        }
        taken as u64
    }

    /// Says in ten's log that output was dropped, at most every [`DROP_WARNING_EVERY`].
    fn report_dropped(&mut self, bytes: u64) {
        self.unreported += bytes;
        if self
            .reported_at
            .is_some_and(|at| at.elapsed() < DROP_WARNING_EVERY)
        {
            return;
        }
        let bytes = std::mem::take(&mut self.unreported);
        tracing::warn!(
            path = %self.path.display(),
            bytes,
            "a tenant wrote output faster than ten reads it, more than log_retention keeps: the oldest was dropped (a line in its log says how much)"
        );
        self.reported_at = Some(Instant::now());
    }

    /// Cuts `bytes` into lines, adding the complete ones to `lines` and their cost to `cost`,
    /// until the cost reaches `budget`. How many bytes were used (the rest is read again).
    fn split_lines(
        &mut self,
        bytes: &[u8],
        lines: &mut Vec<String>,
        cost: &mut u64,
        budget: u64,
    ) -> usize {
        let mut used = 0;
        while used < bytes.len() {
            let rest = &bytes[used..];
            match rest.iter().position(|&byte| byte == b'\n') {
                Some(end) => {
                    self.take(&rest[..end]);
                    lines.push(self.finish_line());
                    used += end + 1;
                    *cost += end as u64 + 1 + LINE_COST;
                    if *cost >= budget {
                        break;
                    }
                }
                None => {
                    self.take(rest);
                    used = bytes.len();
                    *cost += rest.len() as u64;
                }
            }
        }
        used
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::MetadataExt;

    fn limits(budget: u64, backlog: u64) -> ReadLimits {
        ReadLimits { budget, backlog }
    }

    #[test]
    fn a_batch_is_bounded_by_bytes_and_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stdout.raw");
        open_for_tenant(&path)
            .unwrap()
            .write_all(&b"y\n".repeat(10_000))
            .unwrap();
        let mut source = Source::new(Stream::Stdout, path, 0);
        // Each 2-byte line costs 2 + LINE_COST.
        let (lines, more) = source.read_new(limits(100 * (2 + LINE_COST), u64::MAX));
        assert_eq!(lines.len(), 100);
        assert!(more);
        assert_eq!(source.line_start(), 200);
        let mut total = lines.len();
        loop {
            let (lines, more) = source.read_new(limits(100 * (2 + LINE_COST), u64::MAX));
            total += lines.len();
            if !more {
                break;
            }
        }
        assert_eq!(total, 10_000);
    }

    #[test]
    fn output_past_the_backlog_is_skipped_unread_and_said() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stdout.raw");
        let mut file = open_for_tenant(&path).unwrap();
        // 8 MiB of numbered 64-byte lines.
        for index in 0..131_072u32 {
            writeln!(file, "{index:08} {}", "x".repeat(54)).unwrap();
        }
        let backlog = 4 * 1024 * 1024;
        let mut source = Source::new(Stream::Stdout, path.clone(), 0);
        let mut lines = Vec::new();
        loop {
            let (read, more) = source.read_new(limits(1 << 20, backlog));
            lines.extend(read);
            if !more {
                break;
            }
        }
        // All but the last quarter of the backlog: 7 MiB (plus the rest of the line it ends
        // in) skipped, then every line after it whole, in order.
        let marker = &lines[0];
        // (7 MiB is a multiple of the line length: the skip ends at the end of that line.)
        let skipped = 7 * 1024 * 1024 + 64;
        assert_eq!(
            marker,
            &format!(
                "[ten: {skipped} bytes of stdout dropped: written faster than ten could read them, and more than log_retention keeps]"
            )
        );
        let first = skipped / 64;
        assert_eq!(lines.len() as u64, 1 + 131_072 - first);
        for (index, line) in lines[1..].iter().enumerate() {
            assert_eq!(line[..8].parse::<u64>().unwrap(), first + index as u64);
        }
        // The skipped bytes take no disk.
        let blocks = std::fs::metadata(&path).unwrap().blocks() * 512;
        assert!(blocks < 2 * 1024 * 1024, "{blocks} bytes on disk");
    }

    #[test]
    fn appends_of_every_size_around_a_short_read_come_whole_and_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stdout.raw");
        let mut file = open_for_tenant(&path).unwrap();
        let mut source = Source::new(Stream::Stdout, path.clone(), 0);
        let mut read = Vec::new();
        let mut written = Vec::new();
        // A line that ends short of a short read, one that fills it exactly (with its
        // newline), one past it, and an unfinished line finished by the next append.
        for (index, length) in [10, SHORT_READ - 1, SHORT_READ, 3 * SHORT_READ]
            .into_iter()
            .enumerate()
        {
            let text = format!("{index}{}", "x".repeat(length - 2));
            writeln!(file, "{text}").unwrap();
            written.push(text);
            let (lines, more) = source.read_new(limits(1 << 20, 4 << 20));
            assert!(!more);
            read.extend(lines);
        }
        file.write_all(b"unfinished").unwrap();
        let (lines, _) = source.read_new(limits(1 << 20, 4 << 20));
        assert!(lines.is_empty(), "{lines:?}");
        file.write_all(b" line\n").unwrap();
        written.push("unfinished line".into());
        read.extend(source.read_new(limits(1 << 20, 4 << 20)).0);
        assert_eq!(read, written);
        assert_eq!(source.line_start(), std::fs::metadata(&path).unwrap().len());
        // Cut to nothing by someone and written again: read from the beginning.
        file.set_len(0).unwrap();
        writeln!(file, "again").unwrap();
        assert_eq!(source.read_new(limits(1 << 20, 4 << 20)).0, ["again"]);
    }
}
