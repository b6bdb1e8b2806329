//! Diagnostics for names: an invalid service name, instance id or subdomain (with the naming
//! rule and a suggestion), and a reference to a service that is not declared (with "did you
//! mean").
//!
//! Imports nothing else of `parse`.

use std::collections::BTreeSet;
use std::ops::Range;
use std::path::Path;

use crate::config::diag::{Diagnostic, SourceFile};
use crate::config::reader::did_you_mean;
use crate::names::{NAME_RULE, ServiceName, suggest_label};

/// A diagnostic for an invalid service name or instance id.
pub(super) fn bad_name(
    file: &SourceFile,
    span: Range<usize>,
    what: &str,
    text: &str,
    error: &crate::names::NameError,
) -> Diagnostic {
    Diagnostic::at(file, span, format!("invalid {what} {text:?}: it {error}"))
        .with_label(format!("invalid {what}"))
        .with_hint(name_hint(text))
}

/// The same, for a name that is a file or directory name (no position in a file).
pub fn bad_name_in_file(
    path: &Path,
    what: &str,
    text: &str,
    error: &crate::names::NameError,
) -> Diagnostic {
    Diagnostic::in_file(path, format!("invalid {what} {text:?}: it {error}"))
        .with_hint(name_hint(text))
}

fn name_hint(text: &str) -> String {
    match suggest_label(text) {
        Some(suggestion) => format!("{NAME_RULE}; try `{suggestion}`"),
        None => NAME_RULE.to_string(),
    }
}

/// A diagnostic for a reference to a service that is not declared.
pub(super) fn unknown_service(
    file: &SourceFile,
    span: Range<usize>,
    name: &str,
    services: &BTreeSet<ServiceName>,
    context: &str,
) -> Diagnostic {
    Diagnostic::at(
        file,
        span,
        format!("{context} names service `{name}`, which is not declared"),
    )
    .with_label("unknown service")
    .with_hint(unknown_service_hint(name, services))
}

/// "did you mean ...?" or the list of declared services.
pub fn unknown_service_hint(name: &str, services: &BTreeSet<ServiceName>) -> String {
    let names: Vec<&str> = services.iter().map(ServiceName::as_str).collect();
    match did_you_mean(name, &names) {
        Some(close) => format!("did you mean `{close}`?"),
        None if names.is_empty() => format!("declare it first: [service.{name}]"),
        None => format!(
            "declared services: {}; or declare [service.{name}]",
            names.join(", ")
        ),
    }
}
