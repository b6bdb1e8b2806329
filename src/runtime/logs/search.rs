//! Searching the kept output of instances: their `output.log` and rotated files, read from
//! disk (so lines from before a restart of the tenant or of ten are found), by time range,
//! stream and text. Files outside the time range are skipped by the time index (`store`),
//! the start of a time range is found in a file by bisection (lines are in capture order),
//! and a text search looks for the text in whole blocks before it parses a line.
//!
//! Imports `line` and `store` of `logs`.

use std::collections::VecDeque;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use memchr::memmem;

use crate::names::InstanceKey;

use super::line::{LogLine, LogQuery, line_time, parse_line};
use super::store::stored_files;

/// Lines a search returns when the query gives no limit.
pub const DEFAULT_SEARCH_LIMIT: usize = 1000;
/// The most lines a search returns.
pub const MAX_SEARCH_LIMIT: usize = 100_000;

const BLOCK: usize = 1024 * 1024;
/// Bisection stops when the range is this small, and scans from its start.
const BISECT_DONE: u64 = 256 * 1024;
/// Enough to hold the longest line ten writes (`MAX_LINE` and its prefix and note).
const LINE_WINDOW: usize = 20 * 1024;

/// The last `limit` lines of `key`'s kept output (its log directory `log_dir`) that match
/// `query`, oldest first. Reads the newest file first and stops once it has `limit` lines.
pub(super) fn search_instance(
    key: &InstanceKey,
    log_dir: &Path,
    query: &LogQuery,
    limit: usize,
) -> Vec<LogLine> {
    let needle = Needle::new(query.search.as_deref());
    let mut found: VecDeque<LogLine> = VecDeque::new();
    for file in stored_files(log_dir).iter().rev() {
        if found.len() >= limit {
            break;
        }
        let starts_after = file
            .first_ms
            .is_some_and(|first| query.until_ms.is_some_and(|until| first >= until));
        let ends_before = query.since_ms.is_some_and(|since| file.modified_ms < since);
        if starts_after || ends_before || file.len == 0 {
            continue;
        }
        let Ok(handle) = File::open(&file.path) else {
            continue;
        };
        let mut lines = VecDeque::new();
        scan_file(
            key,
            &handle,
            file.len,
            query,
            &needle,
            limit - found.len(),
            &mut lines,
        );
        // This file's lines come before the newer files' lines found so far.
        while let Some(line) = lines.pop_back() {
            found.push_front(line);
        }
    }
    found.into()
}

/// The text searched for, lowercased, for a first look at whole blocks (ASCII only: a text
/// with other letters is checked line by line).
struct Needle {
    lowered: Option<Vec<u8>>,
}

impl Needle {
    fn new(search: Option<&str>) -> Self {
        Self {
            lowered: search
                .filter(|text| text.is_ascii())
                .map(|text| text.to_ascii_lowercase().into_bytes()),
        }
    }
}

/// Appends the last `limit` lines of one file that match to `out`, oldest first.
fn scan_file(
    key: &InstanceKey,
    file: &File,
    len: u64,
    query: &LogQuery,
    needle: &Needle,
    limit: usize,
    out: &mut VecDeque<LogLine>,
) {
    let mut offset = query.since_ms.map_or(0, |since| bisect(file, len, since));
    let mut block = Vec::with_capacity(BLOCK + LINE_WINDOW);
    let mut lowered = Vec::new();
    let finder = needle.lowered.as_deref().map(memmem::Finder::new);
    while offset < len {
        block.resize(BLOCK.min((len - offset) as usize), 0);
        let Ok(read) = file.read_at(&mut block, offset) else {
            return;
        };
        block.truncate(read);
        if read == 0 {
            return;
        }
        // Whole lines only: the rest is read again with the next block.
        let end = match block.iter().rposition(|&byte| byte == b'\n') {
            Some(end) => end + 1,
            None if offset + read as u64 >= len => read,
            None => {
                // A line longer than a block: not one ten wrote; skip past it.
                offset += read as u64;
                continue;
            }
        };
        let lines = &block[..end];
        if query
            .until_ms
            .is_some_and(|until| line_time(lines).is_some_and(|first| first >= until))
        {
            return;
        }
        match &finder {
            Some(finder) => {
                lowered.clear();
                lowered.extend(lines.iter().map(u8::to_ascii_lowercase));
                let mut from = 0;
                while let Some(hit) = finder.find(&lowered[from..]) {
                    let at = from + hit;
                    let start = lines[..at]
                        .iter()
                        .rposition(|&byte| byte == b'\n')
                        .map_or(0, |newline| newline + 1);
                    let stop = lines[at..]
                        .iter()
                        .position(|&byte| byte == b'\n')
                        .map_or(lines.len(), |newline| at + newline);
                    keep_if_matching(key, &lines[start..stop], query, limit, out);
                    from = stop + 1;
                    if from >= lines.len() {
                        break;
                    }
                }
            }
            None => {
                for line in lines.split(|&byte| byte == b'\n') {
                    if !line.is_empty() {
                        keep_if_matching(key, line, query, limit, out);
                    }
                }
            }
        }
        offset += end as u64;
    }
}

fn keep_if_matching(
    key: &InstanceKey,
    bytes: &[u8],
    query: &LogQuery,
    limit: usize,
    out: &mut VecDeque<LogLine>,
) {
    if let Some(at) = line_time(bytes)
        && !query.in_time(at)
    {
        return;
    }
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let Some(line) = parse_line(key, text) else {
        return;
    };
    if query.matches(&line) {
        if out.len() == limit {
            out.pop_front();
        }
        out.push_back(line);
    }
}

/// Where to start reading for lines at or after `since`: the start of a line before every
/// line of the file at or after `since` (lines are in the order they were captured).
fn bisect(file: &File, len: u64, since: u64) -> u64 {
    let (mut low, mut high) = (0, len);
    while high - low > BISECT_DONE {
        let middle = low + (high - low) / 2;
        match line_at(file, middle) {
            Some((start, at)) if at < since && start < high => low = start,
            _ => high = middle,
        }
    }
    low
}

/// The first line that starts at or after `position`: its start and its time.
fn line_at(file: &File, position: u64) -> Option<(u64, u64)> {
    let mut window = vec![0; LINE_WINDOW * 2];
    let from = position - 1;
    let read = file.read_at(&mut window, from).ok()?;
    let window = &window[..read];
    let newline = window.iter().position(|&byte| byte == b'\n')?;
    let start = from + newline as u64 + 1;
    let at = line_time(&window[newline + 1..])?;
    Some((start, at))
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::path::PathBuf;

    use super::*;
    use crate::runtime::logs::Stream;
    use crate::runtime::logs::line::format_line;

    const T0: u64 = 1_765_000_000_000;

    fn key() -> InstanceKey {
        InstanceKey::parse("notes:alice").unwrap()
    }

    fn line(at: u64, stream: Stream, text: &str) -> LogLine {
        LogLine {
            at_unix_ms: at,
            instance: key(),
            stream,
            text: text.into(),
        }
    }

    /// Writes `lines` to `path` as ten does.
    fn write(path: &PathBuf, lines: &[LogLine]) {
        let mut file = File::create(path).unwrap();
        for line in lines {
            writeln!(file, "{}", format_line(line)).unwrap();
        }
    }

    fn texts(lines: &[LogLine]) -> Vec<&str> {
        lines.iter().map(|line| line.text.as_str()).collect()
    }

    #[test]
    fn search_reads_every_file_newest_last_and_stops_at_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        write(
            &dir.path().join(format!("output.log.{T0}")),
            &[
                line(T0, Stream::Stdout, "GET /old"),
                line(T0 + 1, Stream::Stderr, "Error: disk"),
            ],
        );
        write(
            &dir.path().join("output.log.1"),
            &[line(T0 + 10, Stream::Stdout, "get /middle")],
        );
        write(
            &dir.path().join("output.log"),
            &[
                line(T0 + 20, Stream::Stdout, "POST /new"),
                line(T0 + 21, Stream::Stdout, "stdout GET"),
            ],
        );
        let query = |search: &str| LogQuery {
            search: Some(search.into()),
            ..LogQuery::default()
        };
        let found = search_instance(&key(), dir.path(), &query("get"), 100);
        assert_eq!(texts(&found), ["GET /old", "get /middle", "stdout GET"]);
        assert_eq!(found[0].at_unix_ms, T0);
        let found = search_instance(&key(), dir.path(), &query("get"), 2);
        assert_eq!(texts(&found), ["get /middle", "stdout GET"]);
        // The stream and time prefix of a stored line are not its text.
        let found = search_instance(&key(), dir.path(), &query("stdout"), 100);
        assert_eq!(texts(&found), ["stdout GET"]);
        let found = search_instance(&key(), dir.path(), &query("ERROR"), 100);
        assert_eq!(found, [line(T0 + 1, Stream::Stderr, "Error: disk")]);
        let all = search_instance(&key(), dir.path(), &LogQuery::default(), 100);
        assert_eq!(all.len(), 5);
    }

    #[test]
    fn times_and_streams_filter() {
        let dir = tempfile::tempdir().unwrap();
        let lines: Vec<LogLine> = (0..200_000)
            .map(|index| {
                let stream = if index % 2 == 0 {
                    Stream::Stdout
                } else {
                    Stream::Stderr
                };
                line(T0 + index, stream, &format!("line {index} ünïcode"))
            })
            .collect();
        write(&dir.path().join("output.log"), &lines);
        let query = LogQuery {
            since_ms: Some(T0 + 150_000),
            until_ms: Some(T0 + 150_010),
            ..LogQuery::default()
        };
        let found = search_instance(&key(), dir.path(), &query, 100);
        assert_eq!(found, lines[150_000..150_010]);
        let query = LogQuery {
            since_ms: Some(T0 + 199_990),
            stream: Some(Stream::Stderr),
            search: Some("ÜNÏCODE".into()),
            ..LogQuery::default()
        };
        let found = search_instance(&key(), dir.path(), &query, 100);
        assert_eq!(
            texts(&found),
            [199_991, 199_993, 199_995, 199_997, 199_999].map(|n| format!("line {n} ünïcode"))
        );
        let query = LogQuery {
            until_ms: Some(T0 + 3),
            search: Some("LINE".into()),
            ..LogQuery::default()
        };
        assert_eq!(
            texts(&search_instance(&key(), dir.path(), &query, 100)),
            ["line 0 ünïcode", "line 1 ünïcode", "line 2 ünïcode"]
        );
        let before = LogQuery {
            until_ms: Some(T0),
            ..LogQuery::default()
        };
        assert!(search_instance(&key(), dir.path(), &before, 100).is_empty());
    }

    #[test]
    fn bisection_starts_before_the_first_line_in_range() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("output.log");
        let lines: Vec<LogLine> = (0..100_000)
            .map(|index| line(T0 + index * 2, Stream::Stdout, "some text of a line"))
            .collect();
        write(&path, &lines);
        let file = File::open(&path).unwrap();
        let len = file.metadata().unwrap().len();
        for since in [T0, T0 + 1, T0 + 77_777, T0 + 199_998, T0 + 500_000] {
            let start = bisect(&file, len, since);
            let mut bytes = vec![0; 64];
            file.read_at(&mut bytes, start).unwrap();
            let first = line_time(&bytes).unwrap_or(u64::MAX);
            assert!(start == 0 || first < since, "{since}: starts at {first}");
            assert!(
                since.saturating_sub(first) < 2 * BISECT_DONE,
                "{since}: starts far too early, at {first}"
            );
        }
    }
}
