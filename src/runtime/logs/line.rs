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
            && self
                .search
                .as_ref()
                .is_none_or(|search| line.text.to_lowercase().contains(&search.to_lowercase()))
    }
}

/// `2026-11-24T15:00:00.123Z stdout text`
pub(super) fn format_line(line: &LogLine) -> String {
    let time = UNIX_EPOCH + std::time::Duration::from_millis(line.at_unix_ms);
    format!(
        "{} {} {}",
        humantime::format_rfc3339_millis(time),
        line.stream.as_str(),
        line.text
    )
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
