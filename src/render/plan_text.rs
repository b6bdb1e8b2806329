//! Plan -> terraform-like text. Pure and total.

use std::fmt::Write;

use similar::{ChangeTag, TextDiff};

use crate::desired::FieldValue;
use crate::plan::{Action, Change, FieldChange, FieldChangeKind, Plan};

use super::style::Style;

pub const NO_CHANGES: &str = "No changes. Desired state matches running instances.";

/// How much of each change to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// Every change with its fields.
    Full,
    /// One line per change (`--summary`), for large plans.
    Summary,
}

pub fn render_plan(plan: &Plan, detail: Detail, style: Style) -> String {
    let mut out = String::new();
    if !plan.drift.is_empty() {
        out.push_str(&style.bold("ten noticed changes made outside of ten:"));
        out.push_str("\n\n");
        for drift in &plan.drift {
            let _ = writeln!(out, "  # {}: {}", drift.instance, drift.message);
        }
        out.push('\n');
    }
    if plan.is_empty() {
        out.push_str(&style.green(NO_CHANGES));
        out.push('\n');
        return out;
    }
    out.push_str("ten will perform the following actions:\n\n");
    match detail {
        Detail::Full => {
            for change in &plan.changes {
                render_change(&mut out, change, style);
                out.push('\n');
            }
        }
        Detail::Summary => {
            render_summary_lines(&mut out, &plan.changes, style);
            out.push('\n');
        }
    }
    let summary = plan.summary;
    out.push_str(&style.bold(&format!(
        "Plan: {} to add, {} to change, {} to replace, {} to destroy.",
        summary.add, summary.change, summary.replace, summary.destroy
    )));
    out.push('\n');
    out
}

/// The symbol of an action, right-aligned in three columns, colored.
fn symbol(action: Action, style: Style) -> String {
    match action {
        Action::Create => format!("  {}", style.green("+")),
        Action::Destroy => format!("  {}", style.red("-")),
        Action::Replace => format!("{}{}", style.red("-/"), style.green("+")),
        Action::Update | Action::Start | Action::Stop => format!("  {}", style.yellow("~")),
    }
}

fn headline(action: Action) -> &'static str {
    match action {
        Action::Create => "will be created",
        Action::Start => "will be started",
        Action::Replace => "must be replaced",
        Action::Update => "will be updated in-place",
        Action::Stop => "will be stopped",
        Action::Destroy => "will be destroyed",
    }
}

fn render_change(out: &mut String, change: &Change, style: Style) {
    let target = change.target.to_string();
    let _ = writeln!(
        out,
        "  {}",
        style.bold(&format!("# {target} {}", headline(change.action)))
    );
    let _ = writeln!(
        out,
        "  {}",
        style.dim(&format!("# ({})", change.reason.message))
    );
    let _ = writeln!(out, "{} {target}", symbol(change.action, style));
    let width = change
        .fields
        .iter()
        .filter(|field| !is_multiline(field))
        .map(|field| field.path.len())
        .max()
        .unwrap_or(0);
    for field in &change.fields {
        render_field(out, field, width, change.action == Action::Replace, style);
    }
}

fn is_multiline(field: &FieldChange) -> bool {
    [&field.before, &field.after]
        .into_iter()
        .flatten()
        .any(FieldValue::is_multiline)
}

fn render_field(
    out: &mut String,
    field: &FieldChange,
    width: usize,
    show_restart: bool,
    style: Style,
) {
    let sign = match field.kind {
        FieldChangeKind::Add => style.green("+"),
        FieldChangeKind::Change => style.yellow("~"),
        FieldChangeKind::Remove => style.red("-"),
    };
    let note = if show_restart && field.forces_restart {
        format!("   {}", style.dim("# forces restart"))
    } else {
        String::new()
    };
    if is_multiline(field) {
        let _ = writeln!(out, "      {sign} {} = <<-EOT{note}", field.path);
        render_text_diff(out, field, style);
        out.push_str("        EOT\n");
        return;
    }
    let before = shown(field.before.as_ref(), field.sensitive, false);
    let after = shown(field.after.as_ref(), field.sensitive, field.after_unknown);
    let value = match field.kind {
        FieldChangeKind::Add => after,
        FieldChangeKind::Change => format!("{before} -> {after}"),
        FieldChangeKind::Remove => format!("{before} -> null"),
    };
    let _ = writeln!(out, "      {sign} {:<width$} = {value}{note}", field.path);
}

fn shown(value: Option<&FieldValue>, sensitive: bool, unknown: bool) -> String {
    if unknown {
        "(known after apply)".to_string()
    } else if sensitive {
        "(sensitive)".to_string()
    } else {
        value.map_or_else(|| "null".to_string(), ToString::to_string)
    }
}

/// A unified diff of a multi-line text value, indented under its field.
fn render_text_diff(out: &mut String, field: &FieldChange, style: Style) {
    let text = |value: &Option<FieldValue>| {
        value
            .as_ref()
            .and_then(FieldValue::as_text)
            .unwrap_or("")
            .to_string()
    };
    let (before, after) = (text(&field.before), text(&field.after));
    let diff = TextDiff::from_lines(&before, &after);
    for hunk in diff.unified_diff().context_radius(3).iter_hunks() {
        let _ = writeln!(out, "          {}", style.dim(&hunk.header().to_string()));
        for line in hunk.iter_changes() {
            let content = line.value().trim_end_matches('\n');
            let rendered = match line.tag() {
                ChangeTag::Delete => style.red(&format!("-{content}")),
                ChangeTag::Insert => style.green(&format!("+{content}")),
                ChangeTag::Equal => format!(" {content}"),
            };
            let _ = writeln!(out, "          {rendered}");
        }
    }
}

fn render_summary_lines(out: &mut String, changes: &[Change], style: Style) {
    let width = changes
        .iter()
        .map(|c| c.target.to_string().len())
        .max()
        .unwrap_or(0);
    for change in changes {
        let _ = writeln!(
            out,
            "{} {:<width$}  {:<7}  {}",
            symbol(change.action, style),
            change.target.to_string(),
            change.action.as_str(),
            style.dim(&change.reason.message),
        );
    }
}
