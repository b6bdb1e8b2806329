//! A typed reader over one TOML table of a parsed document that records every problem
//! (unknown key, wrong type, out-of-range value) as a [`Diagnostic`] and keeps going.
//!
//! serde's `deny_unknown_fields` stops at the first problem; users fixing a file want all of
//! them at once, so tenement.toml and instance files are read through this instead.

use std::ops::Range;
use std::time::Duration;

use toml_edit::{Item, TableLike, Value};

use super::diag::{Diagnostic, SourceFile};

/// A value and the byte range of the file it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Spanned<T> {
    pub value: T,
    pub span: Range<usize>,
}

/// Reads the keys of one table; `section` names it in messages (`[service.notes]`).
pub(crate) struct Fields<'a> {
    pub file: &'a SourceFile,
    pub table: &'a dyn TableLike,
    pub section: String,
    /// Where the table itself is, for "missing key" problems.
    pub span: Range<usize>,
}

impl<'a> Fields<'a> {
    pub(crate) fn new(
        file: &'a SourceFile,
        table: &'a dyn TableLike,
        section: impl Into<String>,
        span: Range<usize>,
    ) -> Self {
        Self {
            file,
            table,
            section: section.into(),
            span,
        }
    }

    /// Reports every key that is not in `known`. `extra_hint` may explain a key that is
    /// known elsewhere (a service key in an instance file, say).
    pub(crate) fn reject_unknown(
        &self,
        known: &[&str],
        extra_hint: impl Fn(&str) -> Option<String>,
        diagnostics: &mut Vec<Diagnostic>,
    ) {
        for (key, item) in self.table.iter() {
            if known.contains(&key) {
                continue;
            }
            let hint = extra_hint(key)
                .or_else(|| {
                    did_you_mean(key, known).map(|close| format!("did you mean `{close}`?"))
                })
                .unwrap_or_else(|| format!("known keys here: {}", known.join(", ")));
            let what = if item.is_table() { "table" } else { "key" };
            diagnostics.push(
                Diagnostic::at(
                    self.file,
                    self.key_span(key),
                    format!("unknown {what} `{key}` in {}", self.section),
                )
                .with_label(format!("unknown {what}"))
                .with_hint(hint),
            );
        }
    }

    pub(crate) fn item(&self, key: &str) -> Option<&'a Item> {
        self.table.get(key)
    }

    pub(crate) fn key_span(&self, key: &str) -> Range<usize> {
        self.table
            .get_key_value(key)
            .and_then(|(key, _)| key.span())
            .unwrap_or_else(|| self.span.clone())
    }

    /// Where the value of `key` is; falls back to the key, then the table.
    pub(crate) fn value_span(&self, key: &str) -> Range<usize> {
        self.item(key)
            .and_then(Item::span)
            .unwrap_or_else(|| self.key_span(key))
    }

    fn wrong_type(&self, key: &str, expected: &str, diagnostics: &mut Vec<Diagnostic>) {
        let found = self.item(key).map_or("nothing", describe_item);
        diagnostics.push(
            Diagnostic::at(
                self.file,
                self.value_span(key),
                format!(
                    "`{key}` in {} must be {expected}, found {found}",
                    self.section
                ),
            )
            .with_label(format!("expected {expected}")),
        );
    }

    pub(crate) fn string(
        &self,
        key: &str,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> Option<Spanned<&'a str>> {
        let item = self.item(key)?;
        match item.as_str() {
            Some(value) => Some(Spanned {
                value,
                span: self.value_span(key),
            }),
            None => {
                self.wrong_type(key, "a string", diagnostics);
                None
            }
        }
    }

    pub(crate) fn bool(&self, key: &str, diagnostics: &mut Vec<Diagnostic>) -> Option<bool> {
        let item = self.item(key)?;
        match item.as_bool() {
            Some(value) => Some(value),
            None => {
                self.wrong_type(key, "true or false", diagnostics);
                None
            }
        }
    }

    /// An integer within `range`; `unit` is shown in messages ("MB", "percent").
    pub(crate) fn integer(
        &self,
        key: &str,
        range: Range<i64>,
        unit: &str,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> Option<u64> {
        self.signed_integer(key, range, unit, diagnostics)
            .and_then(|value| u64::try_from(value).ok())
    }

    /// An integer within `range` that may be negative.
    pub(crate) fn signed_integer(
        &self,
        key: &str,
        range: Range<i64>,
        unit: &str,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> Option<i64> {
        let item = self.item(key)?;
        let Some(value) = item.as_integer() else {
            let expected = match unit {
                "" => "an integer".to_string(),
                unit => format!("an integer ({unit})"),
            };
            self.wrong_type(key, &expected, diagnostics);
            return None;
        };
        self.in_range(key, value, range, unit, diagnostics)
    }

    fn in_range(
        &self,
        key: &str,
        value: i64,
        range: Range<i64>,
        unit: &str,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> Option<i64> {
        if range.contains(&value) {
            return Some(value);
        }
        let allowed = if range.end == i64::MAX {
            format!("at least {}", range.start)
        } else {
            format!("between {} and {}", range.start, range.end - 1)
        };
        diagnostics.push(
            Diagnostic::at(
                self.file,
                self.value_span(key),
                format!(
                    "`{key}` in {} must be {allowed}{}, found {value}",
                    self.section,
                    if unit.is_empty() {
                        String::new()
                    } else {
                        format!(" {unit}")
                    }
                ),
            )
            .with_label("out of range"),
        );
        None
    }

    /// A duration: an integer number of `unit`s (seconds or milliseconds, as the original tenement
    /// write them) or a string like "30s" or "5m". At least `min`.
    pub(crate) fn duration(
        &self,
        key: &str,
        unit: TimeUnit,
        min: Duration,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> Option<Duration> {
        let item = self.item(key)?;
        let duration = if let Some(value) = item.as_integer() {
            let value = self.in_range(key, value, 0..i64::MAX, unit.name(), diagnostics)?;
            unit.of(u64::try_from(value).ok()?)
        } else if let Some(text) = item.as_str() {
            match humantime::parse_duration(text) {
                Ok(duration) => duration,
                Err(error) => {
                    diagnostics.push(
                        Diagnostic::at(
                            self.file,
                            self.value_span(key),
                            format!(
                                "`{key}` in {} is not a duration: {}",
                                self.section,
                                duration_problem(text, &error)
                            ),
                        )
                        .with_label("not a duration")
                        .with_hint(format!(
                            "write a number of {} (`{key} = 30`) or a duration like \"30s\" or \"5m\"",
                            unit.name()
                        )),
                    );
                    return None;
                }
            }
        } else {
            self.wrong_type(
                key,
                &format!("a number of {} or a duration like \"5m\"", unit.name()),
                diagnostics,
            );
            return None;
        };
        if duration < min {
            diagnostics.push(
                Diagnostic::at(
                    self.file,
                    self.value_span(key),
                    format!(
                        "`{key}` in {} must be at least {}",
                        self.section,
                        humantime::format_duration(min)
                    ),
                )
                .with_label("too short"),
            );
            return None;
        }
        Some(duration)
    }

    /// An array of strings, each with its own span.
    pub(crate) fn string_list(
        &self,
        key: &str,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> Option<Vec<Spanned<&'a str>>> {
        let item = self.item(key)?;
        let Some(array) = item.as_array() else {
            self.wrong_type(key, "an array of strings", diagnostics);
            return None;
        };
        let mut out = Vec::with_capacity(array.len());
        let mut ok = true;
        for value in array.iter() {
            let span = value.span().unwrap_or_else(|| self.value_span(key));
            match value.as_str() {
                Some(text) => out.push(Spanned { value: text, span }),
                None => {
                    ok = false;
                    diagnostics.push(
                        Diagnostic::at(
                            self.file,
                            span,
                            format!(
                                "`{key}` in {} must hold only strings, found {}",
                                self.section,
                                describe_value(value)
                            ),
                        )
                        .with_label("expected a string"),
                    );
                }
            }
        }
        ok.then_some(out)
    }

    /// A sub-table, written either as `[section.key]` or inline as `key = { ... }`.
    pub(crate) fn table(
        &self,
        key: &str,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> Option<&'a dyn TableLike> {
        let item = self.item(key)?;
        match item.as_table_like() {
            Some(table) => Some(table),
            None => {
                self.wrong_type(key, "a table", diagnostics);
                None
            }
        }
    }

    /// Reports `key` as required and missing.
    pub(crate) fn missing(&self, key: &str, hint: &str, diagnostics: &mut Vec<Diagnostic>) {
        diagnostics.push(
            Diagnostic::at(
                self.file,
                self.span.clone(),
                format!("{} has no `{key}`", self.section),
            )
            .with_label(format!("`{key}` is required here"))
            .with_hint(hint.to_string()),
        );
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum TimeUnit {
    Seconds,
    Millis,
}

impl TimeUnit {
    fn name(self) -> &'static str {
        match self {
            TimeUnit::Seconds => "seconds",
            TimeUnit::Millis => "milliseconds",
        }
    }

    fn of(self, value: u64) -> Duration {
        match self {
            TimeUnit::Seconds => Duration::from_secs(value),
            TimeUnit::Millis => Duration::from_millis(value),
        }
    }
}

/// The closest of `candidates` to `word`, if it is close enough to be a likely typo: by
/// Jaro-Winkler, or else one edit or two letters swapped away (which Jaro-Winkler scores
/// low in short words: `evn` for `env`).
pub(crate) fn did_you_mean<'c>(word: &str, candidates: &[&'c str]) -> Option<&'c str> {
    candidates
        .iter()
        .map(|candidate| (strsim::jaro_winkler(word, candidate), *candidate))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| candidate)
        .or_else(|| {
            candidates
                .iter()
                .find(|candidate| word.len() >= 3 && strsim::osa_distance(word, candidate) == 1)
                .copied()
        })
}

/// "a string", "an integer", ... for messages.
pub(crate) fn describe_item(item: &Item) -> &'static str {
    match item {
        Item::None => "nothing",
        Item::Value(value) => describe_value(value),
        Item::Table(_) => "a table",
        Item::ArrayOfTables(_) => "an array of tables",
    }
}

pub(crate) fn describe_value(value: &Value) -> &'static str {
    match value {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a date-time",
        Value::Array(_) => "an array",
        Value::InlineTable(_) => "a table",
    }
}

/// Where `needle` occurs inside the source of `span`, or `span` itself: points a problem
/// found in a parsed string (an unknown `{var}`) at its place in the file.
pub(crate) fn locate(file: &SourceFile, span: &Range<usize>, needle: &str) -> Range<usize> {
    file.text
        .get(span.clone())
        .and_then(|source| source.find(needle))
        .map_or_else(
            || span.clone(),
            |offset| span.start + offset..span.start + offset + needle.len(),
        )
}

/// What is wrong with a duration's `text`, in words (humantime's own messages give a byte
/// offset: "expected number at 0"); the hint gives the form.
fn duration_problem(text: &str, error: &humantime::DurationError) -> String {
    match error {
        humantime::DurationError::UnknownUnit { unit, .. } => {
            format!("{text:?} (`{unit}` is not a unit: ms, s, m, h or d)")
        }
        _ => format!("{text:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_get_a_suggestion_and_other_words_none() {
        let known = ["command", "env", "health", "health_check"];
        assert_eq!(did_you_mean("helth", &known), Some("health"));
        assert_eq!(
            did_you_mean("evn", &known),
            Some("env"),
            "two letters swapped"
        );
        assert_eq!(did_you_mean("emv", &known), Some("env"), "one letter wrong");
        assert_eq!(did_you_mean("xyz", &known), None);
    }
    use std::path::PathBuf;
    use toml_edit::Document;

    fn read(text: &str, check: impl FnOnce(&Fields<'_>, &mut Vec<Diagnostic>)) -> Vec<Diagnostic> {
        let file = SourceFile {
            path: PathBuf::from("t.toml"),
            text: text.to_string(),
        };
        let document = Document::parse(text.to_string()).unwrap();
        let fields = Fields::new(&file, document.as_table(), "[t]", 0..0);
        let mut diagnostics = Vec::new();
        check(&fields, &mut diagnostics);
        diagnostics
    }

    #[test]
    fn unknown_keys_are_all_reported_with_suggestions() {
        let diagnostics = read("comand = 1\nhelth = 2\nzzz = 3\n", |fields, diagnostics| {
            fields.reject_unknown(&["command", "health"], |_| None, diagnostics)
        });
        let hints: Vec<_> = diagnostics
            .iter()
            .map(|d| d.hint.clone().unwrap())
            .collect();
        assert_eq!(
            hints,
            [
                "did you mean `command`?",
                "did you mean `health`?",
                "known keys here: command, health"
            ]
        );
    }

    #[test]
    fn durations_accept_integers_and_strings() {
        let mut seen = Vec::new();
        let diagnostics = read(
            "a = 30\nb = \"5m\"\nc = \"soon\"\nd = 0\n",
            |fields, diagnostics| {
                for key in ["a", "b", "c", "d"] {
                    seen.push(fields.duration(
                        key,
                        TimeUnit::Seconds,
                        Duration::from_secs(1),
                        diagnostics,
                    ));
                }
            },
        );
        assert_eq!(
            seen,
            [
                Some(Duration::from_secs(30)),
                Some(Duration::from_secs(300)),
                None,
                None
            ]
        );
        assert_eq!(diagnostics.len(), 2);
        assert!(diagnostics[0].message.contains("is not a duration"));
        assert!(diagnostics[1].message.contains("must be at least 1s"));
    }

    #[test]
    fn out_of_range_and_wrong_types_are_reported() {
        let diagnostics = read("weight = 150\nname = 3\n", |fields, diagnostics| {
            assert_eq!(
                fields.integer("weight", 0..101, "percent", diagnostics),
                None
            );
            assert_eq!(fields.string("name", diagnostics), None);
        });
        assert_eq!(
            diagnostics[0].message,
            "`weight` in [t] must be between 0 and 100 percent, found 150"
        );
        assert_eq!(
            diagnostics[1].message,
            "`name` in [t] must be a string, found an integer"
        );
    }
}
