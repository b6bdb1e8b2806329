//! The report of an import: every key that ten has no equivalent for (`not imported`, with
//! what to do instead), every mapping worth a word (`note`) and every renamed name. The same
//! items are comments in the written tenement.toml, at their service. Rendering for humans
//! is here too (pure: text in, text out).

use std::fmt::Write;

use serde::Serialize;

use crate::render::Style;

use super::{Imported, OutputFile};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    /// No equivalent in ten: the message says what to do instead.
    NotImported,
    /// Imported, with a difference worth knowing.
    Note,
    /// A name changed to be one of ten's (a DNS label).
    Renamed,
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Item {
    pub kind: ItemKind,
    /// The ten service it concerns; `None` for the file as a whole.
    pub service: Option<String>,
    /// Where in the source: `[program:worker]`, `processes.web`, `apps[0] (api)`.
    pub at: String,
    /// 1-based line in the source, where the format tells it.
    pub line: Option<usize>,
    pub key: Option<String>,
    pub value: Option<String>,
    pub message: String,
}

impl Item {
    fn new(kind: ItemKind, at: &str, message: impl Into<String>) -> Self {
        Self {
            kind,
            service: None,
            at: at.to_string(),
            line: None,
            key: None,
            value: None,
            message: message.into(),
        }
    }

    pub(crate) fn not_imported(at: &str, message: impl Into<String>) -> Self {
        Self::new(ItemKind::NotImported, at, message)
    }

    pub(crate) fn note(at: &str, message: impl Into<String>) -> Self {
        Self::new(ItemKind::Note, at, message)
    }

    pub(crate) fn renamed(at: &str, message: impl Into<String>) -> Self {
        Self::new(ItemKind::Renamed, at, message)
    }

    /// The key and its value in the source.
    pub(crate) fn key(mut self, key: &str, value: &str) -> Self {
        self.key = Some(key.to_string());
        self.value = Some(value.to_string());
        self
    }

    pub(crate) fn line(mut self, line: Option<usize>) -> Self {
        self.line = line;
        self
    }

    pub(crate) fn service(mut self, service: &str) -> Self {
        self.service = Some(service.to_string());
        self
    }

    /// `key = value: message`, or the message alone.
    pub fn text(&self) -> String {
        match (&self.key, &self.value) {
            (Some(key), Some(value)) => format!("{key} = {}: {}", shown(value), self.message),
            (Some(key), None) => format!("{key}: {}", self.message),
            _ => self.message.clone(),
        }
    }
}

/// A value as the report shows it: on one line, and not endless.
fn shown(value: &str) -> String {
    let one_line = value.replace('\n', "\\n");
    if one_line.chars().count() > 80 {
        let cut: String = one_line.chars().take(77).collect();
        format!("{cut}...")
    } else {
        one_line
    }
}

/// Every item, in the order of the source.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Report {
    pub items: Vec<Item>,
}

impl Report {
    pub(crate) fn push(&mut self, item: Item) {
        self.items.push(item);
    }

    pub fn count(&self, kind: ItemKind) -> usize {
        self.items.iter().filter(|item| item.kind == kind).count()
    }
}

/// The report for a terminal: what became of each service, then what was not imported and
/// the notes, each with where it was in the source.
pub fn render_report(imported: &Imported, style: Style) -> String {
    let mut out = String::new();
    let services = &imported.services;
    let dialect = imported
        .dialect
        .map(|dialect| format!(", {dialect}"))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "{} {} of {} ({}{dialect}) as {}:",
        style.bold("Imported"),
        crate::render::counted(services.len(), "process definition"),
        imported.source,
        imported.format.describe(),
        crate::render::counted(services.len(), "service"),
    );
    let width = services.iter().map(|s| s.name.len()).max().unwrap_or(0);
    for service in services {
        let _ = writeln!(
            out,
            "  {:<width$}  {}  (from {})",
            service.name, service.instances, service.from
        );
    }
    for (kind, title) in [
        (ItemKind::NotImported, "Not imported"),
        (ItemKind::Renamed, "Renamed"),
        (ItemKind::Note, "Notes"),
    ] {
        let items: Vec<&Item> = imported
            .report
            .items
            .iter()
            .filter(|item| item.kind == kind)
            .collect();
        if items.is_empty() {
            continue;
        }
        let heading = format!("{title} ({}):", items.len());
        let heading = match kind {
            ItemKind::NotImported => style.yellow(&heading),
            _ => style.bold(&heading),
        };
        let _ = writeln!(out, "\n{heading}");
        for item in items {
            let place = match item.line {
                Some(line) => format!("{}:{line}: {}", imported.source, item.at),
                None => format!("{}: {}", imported.source, item.at),
            };
            let _ = writeln!(out, "  {}\n      {}", style.dim(&place), item.text());
        }
    }
    if imported.report.count(ItemKind::NotImported) > 0 {
        let _ = writeln!(
            out,
            "\nEach item not imported is a `# not imported:` comment at its service in tenement.toml."
        );
    }
    out
}

/// What writing `file` would change, as a unified diff against `existing` (all added when
/// there is none). Empty when nothing would change.
pub fn render_file_diff(file: &OutputFile, existing: Option<&str>, style: Style) -> String {
    if existing == Some(file.text.as_str()) {
        return String::new();
    }
    let before = existing.unwrap_or("");
    let old_name = if existing.is_some() {
        format!("a/{}", file.path)
    } else {
        "/dev/null".to_string()
    };
    let diff = similar::TextDiff::from_lines(before, file.text.as_str());
    let mut out = String::new();
    let _ = writeln!(out, "{}", style.bold(&format!("--- {old_name}")));
    let _ = writeln!(out, "{}", style.bold(&format!("+++ b/{}", file.path)));
    for hunk in diff.unified_diff().context_radius(3).iter_hunks() {
        let _ = writeln!(out, "{}", style.dim(&hunk.header().to_string()));
        for change in hunk.iter_changes() {
            let line = change.value().trim_end_matches('\n');
            let _ = match change.tag() {
                similar::ChangeTag::Delete => writeln!(out, "{}", style.red(&format!("-{line}"))),
                similar::ChangeTag::Insert => {
                    writeln!(out, "{}", style.green(&format!("+{line}")))
                }
                similar::ChangeTag::Equal => writeln!(out, " {line}"),
            };
        }
    }
    out
}
