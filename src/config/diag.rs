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
                text: text[first_line_start..last_line_end].to_string(),
                span: (start - first_line_start)..(snippet_end - first_line_start),
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
    fn spans_past_the_end_are_clamped() {
        let source = file("x");
        let diagnostic = Diagnostic::at(&source, 5..9, "bad");
        assert_eq!(diagnostic.line, Some(1));
        assert_eq!(diagnostic.column, Some(2));
    }
}
