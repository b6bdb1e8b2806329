//! Captured lines: their stream, their text and time, queries over them, and how a line is
//! written in `output.log` and read back.
//!
//! Imports nothing else of `logs`.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use std::collections::BTreeSet;

use crate::names::{InstanceKey, ServiceName};

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

    pub(super) fn raw_file(self) -> &'static str {
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
    /// Only the instances of these services (`ten logs SERVICE`, `ten logs group:NAME`).
    pub services: Option<BTreeSet<ServiceName>>,
    pub stream: Option<Stream>,
    /// Case-insensitive substring.
    pub search: Option<String>,
    /// The last `limit` matching lines.
    pub limit: Option<usize>,
    /// Only lines captured at or after this time (Unix milliseconds).
    pub since_ms: Option<u64>,
    /// Only lines captured before this time (Unix milliseconds).
    pub until_ms: Option<u64>,
}

impl LogQuery {
    pub fn matches(&self, line: &LogLine) -> bool {
        self.instance
            .as_ref()
            .is_none_or(|key| *key == line.instance)
            && self
                .services
                .as_ref()
                .is_none_or(|services| services.contains(&line.instance.service))
            && self.stream.is_none_or(|stream| stream == line.stream)
            && self.in_time(line.at_unix_ms)
            && self
                .search
                .as_ref()
                .is_none_or(|search| line.text.to_lowercase().contains(&search.to_lowercase()))
    }
}

impl LogQuery {
    /// Whether a line captured at `at_unix_ms` is within `since_ms` and `until_ms`.
    pub fn in_time(&self, at_unix_ms: u64) -> bool {
        self.since_ms.is_none_or(|since| at_unix_ms >= since)
            && self.until_ms.is_none_or(|until| at_unix_ms < until)
    }

    /// Whether the answer needs more than the lines kept in memory: a time range or a search
    /// (over every line kept on disk), or more lines than the ring holds.
    pub fn needs_files(&self, ring_lines: usize) -> bool {
        self.since_ms.is_some()
            || self.until_ms.is_some()
            || self.search.is_some()
            || self.limit.is_some_and(|limit| limit > ring_lines)
    }
}

/// A bound of `--since` or `--until` as Unix milliseconds: a duration before `now_ms` (`2h`,
/// `30m`, `1d 12h`), a time (`2026-12-06T08:00:00Z`, `2026-12-06 08:00:00` and
/// `2026-12-06 08:00` in UTC, `2026-12-06` for its midnight UTC) or Unix milliseconds.
pub fn parse_time_bound(text: &str, now_ms: u64) -> Result<u64, String> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit()) {
        return text
            .parse()
            .map_err(|_| format!("{text:?} is too large for Unix milliseconds"));
    }
    if let Ok(duration) = humantime::parse_duration(text) {
        return Ok(now_ms.saturating_sub(duration.as_millis() as u64));
    }
    let candidates = [
        text.to_string(),
        format!("{text}:00"),
        format!("{text} 00:00:00"),
    ];
    for candidate in &candidates {
        let parsed = humantime::parse_rfc3339(candidate)
            .or_else(|_| humantime::parse_rfc3339_weak(candidate));
        if let Ok(time) = parsed {
            return Ok(time
                .duration_since(UNIX_EPOCH)
                .map_or(0, |since| since.as_millis() as u64));
        }
    }
    Err(format!(
        "{text:?} is neither a duration nor a time: write a duration before now (\"2h\", \"30m\", \"7d\"), a UTC time (\"2026-12-06T08:00:00Z\", \"2026-12-06 08:00\", \"2026-12-06\") or Unix milliseconds"
    ))
}

/// `2026-11-24T15:00:00.123Z stdout text` (as `OutputLog::append` writes lines)
#[cfg(test)]
pub(super) fn format_line(line: &LogLine) -> String {
    format!(
        "{} {} {}",
        format_time(line.at_unix_ms),
        line.stream.as_str(),
        line.text
    )
}

/// `2026-11-24T15:00:00.123Z`: how a line's time is written.
pub(super) fn format_time(at_unix_ms: u64) -> String {
    let time = UNIX_EPOCH + std::time::Duration::from_millis(at_unix_ms);
    humantime::format_rfc3339_millis(time).to_string()
}

/// The time of a line written by [`format_line`], read from its first bytes only.
pub(super) fn line_time(bytes: &[u8]) -> Option<u64> {
    let end = bytes.iter().position(|&byte| byte == b' ')?;
    let time = std::str::from_utf8(&bytes[..end]).ok()?;
    let at = humantime::parse_rfc3339(time).ok()?;
    Some(at.duration_since(UNIX_EPOCH).ok()?.as_millis() as u64)
}

/// Parses a line written by [`format_line`] back.
pub(super) fn parse_line(instance: &InstanceKey, text: &str) -> Option<LogLine> {
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

pub fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_765_000_000_000;

    #[test]
    fn time_bounds_are_durations_before_now_times_or_milliseconds() {
        assert_eq!(parse_time_bound("2h", NOW), Ok(NOW - 7_200_000));
        assert_eq!(parse_time_bound("1d 12h", NOW), Ok(NOW - 129_600_000));
        assert_eq!(
            parse_time_bound("1765000000123", NOW),
            Ok(1_765_000_000_123)
        );
        let midnight = 1_764_979_200_000; // 2025-12-06T00:00:00Z
        assert_eq!(parse_time_bound("2025-12-06", NOW), Ok(midnight));
        assert_eq!(
            parse_time_bound("2025-12-06T08:00:00Z", NOW),
            Ok(midnight + 8 * 3_600_000)
        );
        assert_eq!(
            parse_time_bound("2025-12-06T08:00:00.250Z", NOW),
            Ok(midnight + 8 * 3_600_000 + 250)
        );
        assert_eq!(
            parse_time_bound("2025-12-06 08:30", NOW),
            Ok(midnight + 8 * 3_600_000 + 1_800_000)
        );
        for bad in ["", "yesterday", "2h ago", "2025-13-01", "-5m"] {
            let error = parse_time_bound(bad, NOW).unwrap_err();
            assert!(
                error.contains("neither a duration nor a time"),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn a_query_keeps_lines_within_its_times() {
        let query = LogQuery {
            since_ms: Some(100),
            until_ms: Some(200),
            ..LogQuery::default()
        };
        assert!(!query.in_time(99));
        assert!(query.in_time(100));
        assert!(query.in_time(199));
        assert!(!query.in_time(200));
        assert!(query.needs_files(2000));
        assert!(!LogQuery::default().needs_files(2000));
        let many = LogQuery {
            limit: Some(5000),
            ..LogQuery::default()
        };
        assert!(many.needs_files(2000));
    }

    #[test]
    fn a_line_time_is_read_from_its_first_bytes() {
        let key = InstanceKey::parse("notes:alice").unwrap();
        let line = LogLine {
            at_unix_ms: NOW + 7,
            instance: key.clone(),
            stream: Stream::Stderr,
            text: "boom here".into(),
        };
        let text = format_line(&line);
        assert_eq!(line_time(text.as_bytes()), Some(NOW + 7));
        assert_eq!(parse_line(&key, &text), Some(line));
        assert_eq!(line_time(b"garbage line"), None);
    }
}
