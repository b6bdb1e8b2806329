//! `[instances]` (the instances declared in tenement.toml) and `[routing]` (the default,
//! subdomain and path overrides): every service they name must be declared.
//!
//! Imports `naming` of `parse`.

use std::collections::BTreeSet;

use super::naming::{bad_name, unknown_service};
use crate::config::diag::Diagnostic;
use crate::config::model::{RouteTarget, Routing};
use crate::config::reader::{Fields, Spanned};
use crate::names::{InstanceId, InstanceKey, ServiceName};

const ROUTING_KEYS: &[&str] = &["default", "subdomain", "path"];

/// `[instances]`: `notes = ["alice", "bob"]`.
pub(super) fn parse_instances_table(
    root: &Fields<'_>,
    services: &BTreeSet<ServiceName>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Vec<InstanceKey> {
    let mut instances = Vec::new();
    let Some(table) = root.table("instances", diagnostics) else {
        return instances;
    };
    let fields = Fields::new(root.file, table, "[instances]", root.key_span("instances"));
    for (name, _) in table.iter() {
        let key_span = fields.key_span(name);
        let service = match ServiceName::new(name) {
            Ok(service) if services.contains(&service) => Some(service),
            Ok(_) => {
                diagnostics.push(unknown_service(
                    root.file,
                    key_span,
                    name,
                    services,
                    "[instances]",
                ));
                None
            }
            Err(error) => {
                diagnostics.push(bad_name(root.file, key_span, "service name", name, &error));
                None
            }
        };
        if let Some(set) = fields.item(name).and_then(|item| item.as_table_like()) {
            let count = process_set(&fields, name, set, diagnostics);
            if let Some(service) = &service {
                for index in 0..count {
                    let id = InstanceId::new(&index.to_string()).expect("a number is an id");
                    instances.push(InstanceKey::new(service.clone(), id));
                }
            }
            continue;
        }
        let Some(ids) = fields.string_list(name, diagnostics) else {
            continue;
        };
        let mut seen = Vec::new();
        for id in ids {
            let instance_id = match InstanceId::new(id.value) {
                Ok(instance_id) => instance_id,
                Err(error) => {
                    diagnostics.push(bad_name(
                        root.file,
                        id.span,
                        "instance id",
                        id.value,
                        &error,
                    ));
                    continue;
                }
            };
            if seen.contains(&id.value) {
                diagnostics.push(
                    Diagnostic::at(
                        root.file,
                        id.span,
                        format!("`{name}:{}` is listed twice in [instances]", id.value),
                    )
                    .with_label("duplicate")
                    .with_hint("remove one of them"),
                );
                continue;
            }
            seen.push(id.value);
            if let Some(service) = &service {
                instances.push(InstanceKey::new(service.clone(), instance_id));
            }
        }
    }
    instances.sort();
    instances
}

pub(super) fn parse_routing(
    root: &Fields<'_>,
    services: &BTreeSet<ServiceName>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Routing {
    let mut routing = Routing::default();
    let Some(table) = root.table("routing", diagnostics) else {
        return routing;
    };
    let fields = Fields::new(root.file, table, "[routing]", root.key_span("routing"));
    fields.reject_unknown(ROUTING_KEYS, |_| None, diagnostics);
    if let Some(target) = fields.string("default", diagnostics) {
        routing.default = parse_target(&fields, &target, services, diagnostics);
    }
    if let Some(table) = fields.table("subdomain", diagnostics) {
        let subdomains = Fields::new(
            root.file,
            table,
            "[routing.subdomain]",
            fields.key_span("subdomain"),
        );
        for (label, _) in table.iter() {
            if let Err(error) = crate::names::check_label(label) {
                diagnostics.push(bad_name(
                    root.file,
                    subdomains.key_span(label),
                    "subdomain",
                    label,
                    &error,
                ));
                continue;
            }
            if let Some(target) = subdomains.string(label, diagnostics)
                && let Some(target) = parse_target(&subdomains, &target, services, diagnostics)
            {
                routing.subdomain.insert(label.to_string(), target);
            }
        }
    }
    if let Some(table) = fields.table("path", diagnostics) {
        let paths = Fields::new(root.file, table, "[routing.path]", fields.key_span("path"));
        for (prefix, _) in table.iter() {
            if !prefix.starts_with('/') || prefix.contains(char::is_whitespace) {
                diagnostics.push(
                    Diagnostic::at(
                        root.file,
                        paths.key_span(prefix),
                        format!("path prefix {prefix:?} in [routing.path] must start with '/'"),
                    )
                    .with_label("not a path prefix")
                    .with_hint("for example: \"/api\" = \"api\""),
                );
                continue;
            }
            if let Some(target) = paths.string(prefix, diagnostics)
                && let Some(target) = parse_target(&paths, &target, services, diagnostics)
            {
                routing.path.insert(prefix.to_string(), target);
            }
        }
    }
    routing
}

/// `"service"` or `"service:id"`.
fn parse_target(
    fields: &Fields<'_>,
    text: &Spanned<&str>,
    services: &BTreeSet<ServiceName>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<RouteTarget> {
    let (service_text, id_text) = match text.value.split_once(':') {
        Some((service, id)) => (service, Some(id)),
        None => (text.value, None),
    };
    let service = match ServiceName::new(service_text) {
        Ok(service) => service,
        Err(error) => {
            diagnostics.push(bad_name(
                fields.file,
                text.span.clone(),
                "service name",
                service_text,
                &error,
            ));
            return None;
        }
    };
    if !services.contains(&service) {
        let context = format!("{} target", fields.section);
        diagnostics.push(unknown_service(
            fields.file,
            text.span.clone(),
            service_text,
            services,
            &context,
        ));
        return None;
    }
    match id_text {
        None => Some(RouteTarget::Service(service)),
        Some(id) => match InstanceId::new(id) {
            Ok(id) => Some(RouteTarget::Instance(InstanceKey::new(service, id))),
            Err(error) => {
                diagnostics.push(bad_name(
                    fields.file,
                    text.span.clone(),
                    "instance id",
                    id,
                    &error,
                ));
                None
            }
        },
    }
}

/// The most instances one process set declares.
const MAX_COUNT: i64 = 10_000;

/// `NAME = { count = N }`: how many instances (`NAME:0` … `NAME:N-1`); 0 when invalid
/// (reported).
fn process_set(
    fields: &Fields<'_>,
    name: &str,
    set: &dyn toml_edit::TableLike,
    diagnostics: &mut Vec<Diagnostic>,
) -> u64 {
    let section = format!("`{name}` in [instances]");
    let inner = Fields::new(fields.file, set, section, fields.value_span(name));
    inner.reject_unknown(&["count"], |_| None, diagnostics);
    match inner.integer("count", 0..MAX_COUNT + 1, "instances", diagnostics) {
        Some(count) => count,
        None => {
            if inner.item("count").is_none() {
                inner.missing(
                    "count",
                    &format!("a process set says how many: {name} = {{ count = 4 }} declares {name}:0 to {name}:3"),
                    diagnostics,
                );
            }
            0
        }
    }
}
