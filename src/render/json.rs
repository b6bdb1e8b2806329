//! Machine output: JSON documents with a `format_version`. Pure.

use serde::Serialize;
use serde_json::{Value, json};

use crate::config::Diagnostic;
use crate::plan::Plan;

/// Version of the JSON documents of `validate` and `config`.
pub(crate) const JSON_FORMAT_VERSION: u32 = 1;

fn pretty(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_else(|_| "{}".to_string());
    text.push('\n');
    text
}

/// The plan document: the plan's own fields, then the diagnostics (warnings, or the errors
/// that froze the desired state). Serialized directly: a plan of 10,000 instances is large.
#[derive(Serialize)]
struct PlanDocument<'a> {
    // `flatten` is only used to write (never to read), where it costs no error messages.
    #[serde(flatten)]
    plan: &'a Plan,
    diagnostics: &'a [Diagnostic],
}

pub fn plan_json(plan: &Plan, diagnostics: &[Diagnostic]) -> String {
    let document = PlanDocument { plan, diagnostics };
    let mut text = serde_json::to_string_pretty(&document).unwrap_or_else(|_| "{}".to_string());
    text.push('\n');
    text
}

/// The result of `validate` (and of `diff` when the desired state is invalid).
pub fn validation_json(
    valid: bool,
    services: usize,
    instances: usize,
    diagnostics: &[Diagnostic],
) -> String {
    pretty(&json!({
        "format_version": JSON_FORMAT_VERSION,
        "valid": valid,
        "services": services,
        "instances": instances,
        "diagnostics": diagnostics,
    }))
}

pub(crate) fn to_pretty(value: &Value) -> String {
    pretty(value)
}
