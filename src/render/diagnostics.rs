//! Diagnostics -> text, rustc style: `error: message`, `--> file:line:col`, the snippet with
//! a caret and label, and `help:` with the hint. Pure.

use std::path::Path;

use annotate_snippets::renderer::DecorStyle;
use annotate_snippets::{AnnotationKind, Group, Level, Origin, Renderer, Snippet};

use crate::config::{Diagnostic, Severity};

use super::style::Style;

/// Renders every diagnostic, paths shown under `base` (e.g. the config directory relative to
/// the working directory; empty for as-is), followed by a count line when there are errors.
pub fn render_diagnostics(diagnostics: &[Diagnostic], base: &Path, style: Style) -> String {
    let mut out = render_each(diagnostics, base, style);
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    if errors > 0 {
        let noun = if errors == 1 { "problem" } else { "problems" };
        out.push_str(&style.red(&format!("{errors} {noun} found; nothing was changed.")));
        out.push('\n');
    }
    out
}

/// Renders every diagnostic, without the count line (for callers that say what follows).
pub fn render_each(diagnostics: &[Diagnostic], base: &Path, style: Style) -> String {
    let renderer = if style.color {
        Renderer::styled()
    } else {
        Renderer::plain()
    }
    .decor_style(DecorStyle::Ascii);
    let mut out = String::new();
    for diagnostic in diagnostics {
        out.push_str(&renderer.render(&[group(diagnostic, base)]));
        out.push_str("\n\n");
    }
    out
}

fn group<'a>(diagnostic: &'a Diagnostic, base: &Path) -> Group<'a> {
    let level = match diagnostic.severity {
        Severity::Error => Level::ERROR,
        Severity::Warning => Level::WARNING,
    };
    let path = base.join(&diagnostic.file).display().to_string();
    let title = level.primary_title(diagnostic.message.as_str());
    let mut group = match &diagnostic.snippet {
        Some(snippet) => {
            let mut annotation = AnnotationKind::Primary.span(snippet.span.clone());
            if let Some(label) = &diagnostic.label {
                annotation = annotation.label(label.as_str());
            }
            title.element(
                Snippet::source(snippet.text.as_str())
                    .line_start(snippet.first_line)
                    .path(path)
                    .annotation(annotation),
            )
        }
        None => title.element(Origin::path(path)),
    };
    if let Some(hint) = &diagnostic.hint {
        group = group.element(Level::HELP.message(hint.as_str()));
    }
    group
}
