//! Diagnostics: one problem in the desired-state files, located by file, line and column,
//! with a snippet of the source and a hint.
//!
//! A diagnostic is self-contained (it carries its snippet), so it can be sent over the API
//! and rendered by a CLI that does not have the file. Pure data; rendering lives in
//! `render::diagnostics`.

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A file whose text diagnostics point into. `path` is how it is shown: relative to the
/// directory of tenement.toml (`tenement.toml`, `instances/notes/alice.toml`).
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub path: PathBuf,
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// The lines of source around a problem. `span` is a byte range into `text`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snippet {
    pub first_line: usize,
    pub text: String,
    pub span: Range<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: PathBuf,
    /// 1-based line, `None` when the problem is about the file as a whole (its name).
    pub line: Option<usize>,
    /// 1-based column in characters.
    pub column: Option<usize>,
    pub message: String,
    /// Short text shown under the caret.
    pub label: Option<String>,
    pub hint: Option<String>,
    pub snippet: Option<Snippet>,
}

/// Lines of context kept around the span, at most.
const MAX_SNIPPET_LINES: usize = 4;

/// Characters of a line a snippet keeps, at most: a diagnostic quotes a line, never a whole
/// file however long its lines (it travels in every API status and is shown on every page).
pub(crate) const MAX_SNIPPET_LINE_CHARS: usize = 120;

/// Marks where a snippet's line was cut.
const CUT: &str = "…";

impl Diagnostic {
    /// A problem at `span` (byte range) of `file`.
    pub fn at(file: &SourceFile, span: Range<usize>, message: impl Into<String>) -> Self {
        let text = &file.text;
        let start = floor_char_boundary(text, span.start.min(text.len()));
        let end = floor_char_boundary(text, span.end.clamp(start, text.len()));
        let (line, column) = line_column(text, start);
        let first_line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        let mut last_line_end = text[end..].find('\n').map_or(text.len(), |i| end + i);
        let lines_spanned = text[first_line_start..last_line_end].lines().count();
        if lines_spanned > MAX_SNIPPET_LINES {
            last_line_end = text[first_line_start..]
                .match_indices('\n')
                .nth(MAX_SNIPPET_LINES - 1)
                .map_or(text.len(), |(i, _)| first_line_start + i);
        }
        let snippet_end = end.min(last_line_end);
        let (snippet_text, snippet_span) = clip_lines(
            &text[first_line_start..last_line_end],
            (start - first_line_start)..(snippet_end - first_line_start),
        );
        Self {
            severity: Severity::Error,
            file: file.path.clone(),
            line: Some(line),
            column: Some(column),
            message: message.into(),
            label: None,
            hint: None,
            snippet: Some(Snippet {
                first_line: line,
                text: snippet_text,
                span: snippet_span,
            }),
        }
    }

    /// A problem with a file as a whole (its name or place), without a position.
    pub fn in_file(path: &Path, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            file: path.to_path_buf(),
            line: None,
            column: None,
            message: message.into(),
            label: None,
            hint: None,
            snippet: None,
        }
    }

    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn with_hint_opt(mut self, hint: Option<String>) -> Self {
        self.hint = hint;
        self
    }

    pub fn warning(mut self) -> Self {
        self.severity = Severity::Warning;
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// `file:line:col` (or just `file`), as shown in one-line summaries.
    pub fn location(&self) -> String {
        match (self.line, self.column) {
            (Some(line), Some(column)) => format!("{}:{line}:{column}", self.file.display()),
            _ => self.file.display().to_string(),
        }
    }
}

/// True when any diagnostic is an error (warnings do not make desired state invalid).
pub fn has_errors(diagnostics: &[Diagnostic]) -> bool {
    diagnostics.iter().any(Diagnostic::is_error)
}

/// The files other than `config_file` (tenement.toml, as diagnostics name it) that have
/// errors: instance files whose instances are left out or frozen. Sorted, each once.
pub fn other_files_with_errors<'a>(
    diagnostics: &'a [Diagnostic],
    config_file: &std::path::Path,
) -> Vec<&'a std::path::Path> {
    let mut files: Vec<&std::path::Path> = diagnostics
        .iter()
        .filter(|d| d.is_error() && d.file != config_file)
        .map(|d| d.file.as_path())
        .collect();
    files.sort();
    files.dedup();
    files
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = floor_char_boundary(text, offset.min(text.len()));
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = text[line_start..offset].chars().count() + 1;
    (line, column)
}

/// `region` (whole lines) with each line cut to [`MAX_SNIPPET_LINE_CHARS`] characters, and
/// `span` (byte offsets into `region`) moved to match. The first line keeps the part where
/// the span starts; a cut is marked with `…`.
fn clip_lines(region: &str, span: Range<usize>) -> (String, Range<usize>) {
    // Kept parts: (start in region, end in region, start in the clipped text).
    let mut kept: Vec<(usize, usize, usize)> = Vec::new();
    let mut clipped = String::with_capacity(region.len().min(MAX_SNIPPET_LINES * 130));
    let mut line_start = 0;
    for (index, line) in region.split('\n').enumerate() {
        if index > 0 {
            clipped.push('\n');
        }
        let line_end = line_start + line.len();
        let chars: Vec<usize> = line.char_indices().map(|(at, _)| at).collect();
        let (from, to) = if chars.len() <= MAX_SNIPPET_LINE_CHARS {
            (0, line.len())
        } else {
            // The span's start stays in view, with some text before it.
            let span_char = if span.start >= line_start && span.start <= line_end {
                chars.partition_point(|at| *at < span.start - line_start)
            } else {
                0
            };
            let first = if span_char + 20 <= MAX_SNIPPET_LINE_CHARS {
                0
            } else {
                (span_char - MAX_SNIPPET_LINE_CHARS / 4).min(chars.len() - MAX_SNIPPET_LINE_CHARS)
            };
            let last = first + MAX_SNIPPET_LINE_CHARS;
            (chars[first], chars.get(last).copied().unwrap_or(line.len()))
        };
        if from > 0 {
            clipped.push_str(CUT);
        }
        kept.push((line_start + from, line_start + to, clipped.len()));
        clipped.push_str(&line[from..to]);
        if to < line.len() {
            clipped.push_str(CUT);
        }
        line_start = line_end + 1;
    }
    // An offset in a kept part moves with it; one in a cut part goes to the next kept part
    // (a start) or the end of the last one before it (an end).
    let start = kept
        .iter()
        .find(|(_, end, _)| span.start <= *end)
        .map_or(clipped.len(), |(from, _, at)| {
            at + span.start.saturating_sub(*from)
        });
    let end = kept
        .iter()
        .rev()
        .find(|(from, _, _)| span.end >= *from)
        .map_or(0, |(from, to, at)| at + span.end.min(*to) - from);
    (clipped, start..end.max(start))
}

fn floor_char_boundary(text: &str, mut index: usize) -> usize {
    while index > 0 && !text.is_char_boundary(index) {
        index -= 1;
    }
    index
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> SourceFile {
        SourceFile {
            path: PathBuf::from("tenement.toml"),
            text: text.to_string(),
        }
    }

    #[test]
    fn line_and_column_are_one_based() {
        assert_eq!(line_column("abc\ndef", 0), (1, 1));
        assert_eq!(line_column("abc\ndef", 5), (2, 2));
        assert_eq!(line_column("é=x", 2), (1, 2));
    }

    #[test]
    fn snippet_holds_the_lines_of_the_span() {
        let source = file("[a]\nx = 1\ny = 2\n");
        let diagnostic = Diagnostic::at(&source, 4..5, "bad");
        assert_eq!(diagnostic.location(), "tenement.toml:2:1");
        let snippet = diagnostic.snippet.unwrap();
        assert_eq!(snippet.first_line, 2);
        assert_eq!(snippet.text, "x = 1");
        assert_eq!(&snippet.text[snippet.span], "x");
    }

    #[test]
    fn long_spans_are_cut_to_a_few_lines() {
        let source = file("a = [\n1,\n2,\n3,\n4,\n5,\n]\n");
        let diagnostic = Diagnostic::at(&source, 4..source.text.len() - 1, "bad");
        let snippet = diagnostic.snippet.unwrap();
        assert_eq!(snippet.text.lines().count(), MAX_SNIPPET_LINES);
        assert!(snippet.span.end <= snippet.text.len());
    }

    #[test]
    fn long_lines_are_cut_around_the_span() {
        let secret = "s".repeat(1000);
        let source = file(&format!("a = \"{secret}\"\nb = 1\n"));
        // A span at the start of the long line: its first 120 characters are kept.
        let diagnostic = Diagnostic::at(&source, 0..1, "bad");
        let snippet = diagnostic.snippet.unwrap();
        let first = snippet.text.lines().next().unwrap();
        assert_eq!(first.chars().count(), MAX_SNIPPET_LINE_CHARS + 1, "{first}");
        assert!(
            first.starts_with("a = \"s") && first.ends_with(CUT),
            "{first}"
        );
        assert_eq!(&snippet.text[snippet.span], "a");

        // A span far into the line: the window moves to it, and the location is unchanged.
        let at = source.text.find('"').unwrap() + 900;
        let diagnostic = Diagnostic::at(&source, at..at + 3, "bad");
        assert_eq!(diagnostic.location(), "tenement.toml:1:905");
        let snippet = diagnostic.snippet.unwrap();
        let first = snippet.text.lines().next().unwrap();
        assert!(first.starts_with(CUT) && first.ends_with(CUT), "{first}");
        assert!(
            first.chars().count() <= MAX_SNIPPET_LINE_CHARS + 2,
            "{first}"
        );
        assert_eq!(&snippet.text[snippet.span], "sss");

        // A span over the whole long line ends at the cut, on its own line.
        let diagnostic = Diagnostic::at(&source, 0..source.text.find('\n').unwrap(), "bad");
        let snippet = diagnostic.snippet.unwrap();
        assert!(snippet.text.len() < 300, "{}", snippet.text);
        let quoted = &snippet.text[snippet.span];
        assert!(
            !quoted.contains('\n') && quoted.starts_with("a = "),
            "{quoted}"
        );
    }

    #[test]
    fn multibyte_long_lines_are_cut_on_characters() {
        let source = file(&format!("x = \"{}\"\n", "é".repeat(500)));
        let at = source.text.len() - 4;
        let diagnostic = Diagnostic::at(&source, at..at + 2, "bad");
        let snippet = diagnostic.snippet.unwrap();
        assert_eq!(&snippet.text[snippet.span.clone()], "é");
        assert!(snippet.text.chars().count() <= MAX_SNIPPET_LINE_CHARS + 2);
    }

    #[test]
    fn spans_past_the_end_are_clamped() {
        let source = file("x");
        let diagnostic = Diagnostic::at(&source, 5..9, "bad");
        assert_eq!(diagnostic.line, Some(1));
        assert_eq!(diagnostic.column, Some(2));
    }
}
