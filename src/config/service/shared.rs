//! The readers a service table shares with instance files and with the keys of other
//! modules: a template string (its variables checked against those its key allows), a
//! keyword, the resource limits and the weight. Must not import tokio, nix, hyper or notify.

use crate::config::diag::Diagnostic;
use crate::config::reader::{Fields, Spanned, did_you_mean, locate};
use crate::config::template::{Template, Var};

/// Parses a template string, reporting unknown variables and variables not in `allowed`.
pub(crate) fn template(
    fields: &Fields<'_>,
    key: &str,
    text: &Spanned<&str>,
    allowed: &[Var],
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<Template> {
    let known: Vec<String> = allowed
        .iter()
        .map(|var| format!("{{{}}}", var.as_str()))
        .collect();
    match Template::parse(text.value) {
        Ok(parsed) => {
            let mut ok = true;
            for var in parsed.vars().filter(|var| !allowed.contains(var)) {
                ok = false;
                let needle = format!("{{{}}}", var.as_str());
                diagnostics.push(
                    Diagnostic::at(
                        fields.file,
                        locate(fields.file, &text.span, &needle),
                        format!("`{key}` in {} cannot use {needle}", fields.section),
                    )
                    .with_label("not available here")
                    .with_hint(format!("`{key}` may use {}", known.join(", "))),
                );
            }
            ok.then_some(parsed)
        }
        Err(errors) => {
            for error in errors {
                let needle = format!("{{{}}}", error.name);
                let names: Vec<&str> = Var::ALL.iter().map(|var| var.as_str()).collect();
                let hint = match did_you_mean(&error.name, &names) {
                    Some(close) => format!(
                        "did you mean {{{close}}}? known variables: {}",
                        known.join(", ")
                    ),
                    None => format!(
                        "known variables: {}; write {{{{ for a literal brace",
                        known.join(", ")
                    ),
                };
                diagnostics.push(
                    Diagnostic::at(
                        fields.file,
                        locate(fields.file, &text.span, &needle),
                        format!(
                            "unknown template variable {needle} in `{key}` of {}",
                            fields.section
                        ),
                    )
                    .with_label("unknown variable")
                    .with_hint(hint),
                );
            }
            None
        }
    }
}

/// A keyword value such as `isolation = "namespace"`.
pub(crate) fn keyword<T>(
    fields: &Fields<'_>,
    key: &str,
    keywords: &[&str],
    from_keyword: fn(&str) -> Option<T>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<T> {
    let text = fields.string(key, diagnostics)?;
    let value = from_keyword(text.value);
    if value.is_none() {
        let quoted: Vec<String> = keywords.iter().map(|k| format!("\"{k}\"")).collect();
        let hint = match did_you_mean(text.value, keywords) {
            Some(close) => format!("did you mean \"{close}\"? one of: {}", quoted.join(", ")),
            None => format!("one of: {}", quoted.join(", ")),
        };
        diagnostics.push(
            Diagnostic::at(
                fields.file,
                text.span,
                format!("`{key}` in {} cannot be {:?}", fields.section, text.value),
            )
            .with_label("unknown value")
            .with_hint(hint),
        );
    }
    value
}

/// The resource limits a service sets and an instance may override.
#[derive(Debug, Default)]
pub(crate) struct Limits {
    pub memory_limit_mb: Option<u64>,
    pub cpu_shares: Option<u64>,
    pub storage_quota_mb: Option<u64>,
}

pub(crate) fn parse_limits(fields: &Fields<'_>, diagnostics: &mut Vec<Diagnostic>) -> Limits {
    Limits {
        memory_limit_mb: fields.integer("memory_limit_mb", 1..(1 << 40), "MB", diagnostics),
        cpu_shares: fields.integer("cpu_shares", 2..262_145, "shares", diagnostics),
        storage_quota_mb: fields.integer("storage_quota_mb", 1..(1 << 40), "MB", diagnostics),
    }
}

pub(crate) fn parse_weight(fields: &Fields<'_>, diagnostics: &mut Vec<Diagnostic>) -> Option<u8> {
    fields
        .integer("weight", 0..101, "percent of traffic", diagnostics)
        .map(|weight| weight as u8)
}
