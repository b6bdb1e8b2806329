//! `[group.NAME] services = ["web", "worker"]`: names for sets of services, which
//! `ten stop|start|restart|ps group:NAME` select. Every service named must be declared.
//!
//! A group may share its name with a service: the two are never read in the same place
//! (`web` selects the service, `group:web` the group), and a supervisord `[group:web]` of
//! `programs = web,assets` keeps its name. A service may be in several groups. A service
//! named `group` cannot be used with groups: `group:NAME` would then name both a group and an
//! instance of that service.
//!
//! Imports `naming` of `parse`.

use std::collections::{BTreeMap, BTreeSet};

use super::naming::{bad_name, unknown_service};
use crate::config::diag::Diagnostic;
use crate::config::reader::{Fields, did_you_mean};
use crate::names::{GroupName, ServiceName};

const GROUP_KEYS: &[&str] = &["services"];

/// `[group.NAME]` tables: each valid group and its services (those that are declared).
pub(super) fn parse_groups(
    root: &Fields<'_>,
    services: &BTreeSet<ServiceName>,
    diagnostics: &mut Vec<Diagnostic>,
) -> BTreeMap<GroupName, Vec<ServiceName>> {
    let mut groups = BTreeMap::new();
    let Some(table) = root.table("group", diagnostics) else {
        return groups;
    };
    let fields = Fields::new(root.file, table, "[group]", root.key_span("group"));
    if !table.is_empty() && services.iter().any(|service| service.as_str() == "group") {
        diagnostics.push(
            Diagnostic::at(
                root.file,
                root.key_span("group"),
                "groups cannot be declared while a service is named `group`",
            )
            .with_label("groups declared here")
            .with_hint("`group:NAME` selects a group in ten stop, start, restart and ps, so it cannot also name an instance of a service `group`: rename that service"),
        );
    }
    for (name, item) in table.iter() {
        let key_span = fields.key_span(name);
        let group_name = match GroupName::new(name) {
            Ok(group_name) => Some(group_name),
            Err(error) => {
                diagnostics.push(bad_name(
                    root.file,
                    key_span.clone(),
                    "group name",
                    name,
                    &error,
                ));
                None
            }
        };
        let Some(group_table) = item.as_table_like() else {
            diagnostics.push(
                Diagnostic::at(
                    root.file,
                    fields.value_span(name),
                    format!("[group.{name}] must be a table"),
                )
                .with_label("expected a table")
                .with_hint(format!(
                    "write it as a section: [group.{name}] followed by services = [\"web\", \"worker\"]"
                )),
            );
            continue;
        };
        let section = format!("[group.{name}]");
        let group_fields = Fields::new(root.file, group_table, section, key_span);
        let members = parse_members(&group_fields, services, diagnostics);
        if let (Some(group_name), Some(members)) = (group_name, members) {
            groups.insert(group_name, members);
        }
    }
    groups
}

/// `services = [...]` of one group: the declared services it lists, each once.
fn parse_members(
    fields: &Fields<'_>,
    services: &BTreeSet<ServiceName>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<Vec<ServiceName>> {
    fields.reject_unknown(
        GROUP_KEYS,
        |key| match key {
            "programs" => Some(
                "supervisord's `programs` is `services` here: services = [\"web\", \"worker\"]"
                    .into(),
            ),
            "priority" => Some(crate::config::stop_order::PRIORITY_HINT.into()),
            _ => None,
        },
        diagnostics,
    );
    let Some(list) = fields.string_list("services", diagnostics) else {
        // A likely typo of `services` is already reported as such; "missing" would be noise.
        let typo = fields
            .table
            .iter()
            .any(|(key, _)| key == "programs" || did_you_mean(key, GROUP_KEYS).is_some());
        if fields.item("services").is_none() && !typo {
            fields.missing(
                "services",
                "list the services of the group, e.g. services = [\"web\", \"worker\"]",
                diagnostics,
            );
        }
        return None;
    };
    if list.is_empty() {
        diagnostics.push(
            Diagnostic::at(
                fields.file,
                fields.value_span("services"),
                format!("{} has no services", fields.section),
            )
            .with_label("empty")
            .with_hint("list the services it stands for, or remove the group")
            .warning(),
        );
    }
    let mut members: Vec<ServiceName> = Vec::with_capacity(list.len());
    let mut valid = true;
    for entry in list {
        let service = match ServiceName::new(entry.value) {
            Ok(service) => service,
            Err(error) => {
                diagnostics.push(bad_name(
                    fields.file,
                    entry.span,
                    "service name",
                    entry.value,
                    &error,
                ));
                valid = false;
                continue;
            }
        };
        if !services.contains(&service) {
            diagnostics.push(unknown_service(
                fields.file,
                entry.span,
                entry.value,
                services,
                &fields.section,
            ));
            valid = false;
        } else if members.contains(&service) {
            diagnostics.push(
                Diagnostic::at(
                    fields.file,
                    entry.span,
                    format!("`{}` is listed twice in {}", entry.value, fields.section),
                )
                .with_label("duplicate")
                .with_hint("remove one of them"),
            );
            valid = false;
        } else {
            members.push(service);
        }
    }
    valid.then_some(members)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::diag::Severity;
    use crate::config::parse::parse_config;

    #[test]
    fn groups_name_declared_services_and_may_share_a_service_name() {
        let mut diagnostics = Vec::new();
        let text = "[service.web]\ncommand = \"w\"\nstop_order = -1\n[service.worker]\ncommand = \"q\"\n\
                    [group.web]\nservices = [\"web\", \"worker\"]\n[group.jobs]\nservices = [\"worker\"]\n";
        let parsed = parse_config(Path::new("/p/tenement.toml"), text.into(), &mut diagnostics);
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        let config = parsed.config.unwrap();
        let groups: Vec<(String, Vec<String>)> = config
            .groups
            .iter()
            .map(|(name, services)| {
                (
                    name.to_string(),
                    services.iter().map(ToString::to_string).collect(),
                )
            })
            .collect();
        assert_eq!(
            groups,
            [
                ("jobs".to_string(), vec!["worker".to_string()]),
                (
                    "web".to_string(),
                    vec!["web".to_string(), "worker".to_string()]
                ),
            ]
        );
        let web = config.services.values().next().unwrap();
        assert_eq!(web.stop_order, -1);
    }

    #[test]
    fn an_empty_group_is_only_a_warning() {
        let mut diagnostics = Vec::new();
        let text = "[service.web]\ncommand = \"w\"\n[group.none]\nservices = []\n";
        let parsed = parse_config(Path::new("/p/tenement.toml"), text.into(), &mut diagnostics);
        assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
        assert_eq!(diagnostics[0].severity, Severity::Warning);
        assert_eq!(diagnostics[0].message, "[group.none] has no services");
        assert_eq!(parsed.config.unwrap().groups.len(), 1);
    }
}
