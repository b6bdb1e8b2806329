//! The ring of an instance's recent lines: what it keeps (bounded by lines and bytes), its
//! tail loaded from `output.log` at an attach, and queries over it. Imports nothing of
//! `runtime` outside `logs`.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::Path;

use crate::names::InstanceKey;

use super::super::line::{LogLine, LogQuery, parse_line};
use super::{InstanceLogs, LogHub, RING_BYTES, RING_LINES};

impl InstanceLogs {
    /// Adds `line` to the ring, the oldest lines leaving it past [`RING_LINES`] or
    /// [`RING_BYTES`] (the newest line is kept whatever its length).
    pub(super) fn keep(&mut self, line: LogLine) {
        self.ring_bytes += line.text.len();
        self.ring.push_back(line);
        while self.ring.len() > 1
            && (self.ring.len() > RING_LINES || self.ring_bytes > RING_BYTES)
            && let Some(old) = self.ring.pop_front()
        {
            self.ring_bytes -= old.text.len();
        }
    }
}

impl LogHub {
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
}

/// The last [`RING_LINES`] lines of an `output.log` (reads at most its last 1 MiB).
pub(super) fn read_tail(key: &InstanceKey, path: &Path) -> VecDeque<LogLine> {
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
