//! The `env` table of a service or an instance file -> a template per variable: names
//! checked, the variables ten sets itself refused, numbers and booleans taken as text. Must
//! not import tokio, nix, hyper or notify.

use std::collections::BTreeMap;

use crate::config::diag::Diagnostic;
use crate::config::reader::{Fields, Spanned};
use crate::config::template::{Template, Var};

use super::shared::template;

/// Environment variables ten sets itself for every instance.
const RESERVED_ENV: &[&str] = &["PORT", "SOCKET_PATH"];

/// `env` table: names are environment variable names; values strings (numbers and booleans
/// are accepted and written as text), with template variables.
pub(crate) fn parse_env(
    fields: &Fields<'_>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<BTreeMap<String, Template>> {
    let table = fields.table("env", diagnostics)?;
    // `[service.web.env]`, or `[env] of this instance file`.
    let section = match fields.section.strip_suffix(']') {
        Some(table) => format!("{table}.env]"),
        None => format!("[env] of {}", fields.section),
    };
    let env_fields = Fields::new(fields.file, table, section, fields.key_span("env"));
    let mut env = BTreeMap::new();
    for (name, item) in table.iter() {
        let name_span = env_fields.key_span(name);
        if !is_env_name(name) {
            diagnostics.push(
                Diagnostic::at(
                    fields.file,
                    name_span,
                    format!("{name:?} is not a valid environment variable name"),
                )
                .with_label("invalid name")
                .with_hint("use letters, digits and '_', not starting with a digit"),
            );
            continue;
        }
        if RESERVED_ENV.contains(&name) {
            diagnostics.push(
                Diagnostic::at(
                    fields.file,
                    name_span,
                    format!("`{name}` in {} clashes with the {name} that ten sets for every instance", env_fields.section),
                )
                .with_label("set by ten")
                .with_hint(format!("remove it; read {name} in your app (use {{port}} or {{socket}} in other values)")),
            );
            continue;
        }
        let span = env_fields.value_span(name);
        let text = if let Some(text) = item.as_str() {
            text.to_string()
        } else if let Some(value) = item.as_integer() {
            value.to_string()
        } else if let Some(value) = item.as_bool() {
            value.to_string()
        } else {
            diagnostics.push(
                Diagnostic::at(
                    fields.file,
                    span,
                    format!(
                        "`{name}` in {} must be a string, found {}",
                        env_fields.section,
                        crate::config::reader::describe_item(item)
                    ),
                )
                .with_label("expected a string"),
            );
            continue;
        };
        let spanned = Spanned {
            value: text.as_str(),
            span: span.clone(),
        };
        if let Some(parsed) = template(&env_fields, name, &spanned, &Var::ALL, diagnostics) {
            env.insert(name.to_string(), parsed);
        }
    }
    Some(env)
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use crate::config::service::tests::service;

    #[test]
    fn env_accepts_numbers_and_rejects_reserved_names() {
        let (template, diagnostics) =
            service("command = \"x\"\n[service.notes.env]\nWORKERS = 4\nPORT = \"1\"\n");
        assert!(template.is_none());
        assert_eq!(diagnostics.len(), 1);
        assert!(diagnostics[0].message.contains("clashes with the PORT"));
        let (template, _) = service("command = \"x\"\n[service.notes.env]\nWORKERS = 4\n");
        let env = template.unwrap().env;
        assert_eq!(env["WORKERS"].as_literal(), Some("4"));
    }
}
