//! Tailing one raw file a tenant appends to: reading what was appended, cutting it into
//! lines, and releasing the bytes read from disk (holes punched, the size kept).
//!
//! Imports `line` of `logs`.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::line::Stream;

/// Longest line kept; the rest of a longer line is dropped and counted.
pub const MAX_LINE: usize = 16 * 1024;
/// Read bytes are released from a raw file in steps of this size.
const PUNCH_STEP: u64 = 1024 * 1024;
const READ_CHUNK: usize = 64 * 1024;

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
        }
    }

    /// Where the unfinished line begins: every byte before it is in a line already returned.
    /// This, not the read offset, is what is recorded, so a restarted ten reads the
    /// unfinished line again from its start.
    pub(super) fn line_start(&self) -> u64 {
        self.offset - (self.pending.len() + self.dropped) as u64
    }

    /// Reads what was appended since the last read, at most about `max_bytes` of it (the
    /// rest is read by the next call); returns the complete lines, and whether more is left.
    pub(super) fn read_new(&mut self, max_bytes: u64) -> (Vec<String>, bool) {
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
        let appended = size
            .saturating_sub(self.offset)
            .clamp(1, (READ_CHUNK as u64).min(max_bytes.max(1)));
        let mut buffer = vec![0; appended as usize];
        let start = self.offset;
        let mut more = false;
        loop {
            if self.offset - start >= max_bytes {
                more = true;
                break;
            }
            let read = match file.read_at(&mut buffer, self.offset) {
                Ok(0) | Err(_) => break,
                Ok(read) => read,
            };
            self.offset += read as u64;
            self.split_lines(&buffer[..read], &mut lines);
        }
        self.release_read_bytes(&file);
        self.file = Some(file);
        (lines, more)
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
