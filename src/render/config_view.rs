//! The effective configuration (`ten config`): tenement.toml after defaults, with every
//! declared instance, as TOML or JSON. Secrets are masked unless asked. Pure.

use serde_json::{Map, Value, json};
use toml_edit::{Array, DocumentMut, Item, Table, value};

use crate::config::{Config, MemoryAmount, ServiceTemplate, StartMode};
use crate::desired::fields::is_sensitive;
use crate::desired::spec::duration;
use crate::desired::{DesiredState, FieldMap, FieldValue, InstanceSpec};

const MASK: &str = "(sensitive)";

/// The effective configuration as a JSON value (the TOML form is made from it).
pub(crate) fn effective_config(desired: &DesiredState, show_sensitive: bool) -> Value {
    let config = &desired.config;
    let mut services = Map::new();
    for (name, service) in &config.services {
        services.insert(name.to_string(), service_value(service, show_sensitive));
    }
    let mut instances: Map<String, Value> = Map::new();
    for key in desired.instances.keys() {
        let ids = instances
            .entry(key.service.to_string())
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(ids) = ids {
            ids.push(Value::String(key.id.to_string()));
        }
    }
    json!({
        "config": config.path.display().to_string(),
        "settings": settings_value(config),
        "service": services,
        "instances": instances,
        "routing": routing_value(config),
        "group": config
            .groups
            .iter()
            .map(|(name, services)| (name.to_string(), json!({ "services": services })))
            .collect::<Map<String, Value>>(),
    })
}

fn scalar(value: &FieldValue) -> Value {
    match value {
        FieldValue::Text(text) => Value::String(text.clone()),
        FieldValue::Int(int) => json!(int),
        FieldValue::Negative(int) => json!(int),
        FieldValue::Bool(flag) => json!(flag),
    }
}

fn settings_value(config: &Config) -> Value {
    let settings = &config.settings;
    let tls = &settings.tls;
    json!({
        "data_dir": settings.data_dir.display().to_string(),
        "instances_dir": settings.instances_dir.display().to_string(),
        "health_check_interval": scalar(&duration(settings.health_check_interval)),
        "max_restarts": settings.max_restarts,
        "restart_window": scalar(&duration(settings.restart_window)),
        "backoff_base_ms": settings.backoff_base.as_millis() as u64,
        "backoff_max_ms": settings.backoff_max.as_millis() as u64,
        "auto_apply": settings.auto_apply,
        "max_destroy_percent": settings.max_destroy_percent,
        "port_range": [settings.port_range.0, settings.port_range.1],
        "keep_tenants_on_exit": settings.keep_tenants_on_exit,
        "public_metrics": settings.public_metrics,
        "trusted_proxies": settings.trusted_proxies.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "header_timeout": scalar(&duration(settings.connections.header_timeout)),
        "keep_alive_timeout": scalar(&duration(settings.connections.keep_alive_timeout)),
        "max_connections": settings.connections.max_connections,
        "max_connections_per_client": settings.connections.max_connections_per_client,
        "memory_target": settings.memory_target.map(memory_amount),
        "memory_limit_total": settings.memory_limit_total.map(memory_amount),
        "log_retention": {
            "max_bytes": settings.log_retention.max_bytes,
            "max_age": settings.log_retention.max_age.map(|age| scalar(&duration(age))),
        },
        "tls": {
            "enabled": tls.enabled,
            "acme_email": tls.acme_email,
            "domain": tls.domain,
            "acme_directory": tls.acme_directory,
            "cache_dir": tls.cache_dir.as_ref().map(|p| p.display().to_string()),
            "staging": tls.staging,
            "acme_root": tls.acme_root.as_ref().map(|p| p.display().to_string()),
            "https_port": tls.https_port,
            "http_port": tls.http_port,
        },
    })
}

/// A memory amount as it can be written back: a share as `"80%"`, a size in bytes (exact,
/// as `log_retention.max_bytes`).
fn memory_amount(amount: MemoryAmount) -> Value {
    match amount {
        MemoryAmount::Percent(percent) => Value::String(format!("{percent}%")),
        MemoryAmount::Bytes(bytes) => json!(bytes),
    }
}

fn service_value(service: &ServiceTemplate, show_sensitive: bool) -> Value {
    let words: Vec<String> = service.argv.iter().map(ToString::to_string).collect();
    let env: Map<String, Value> = service
        .env
        .iter()
        .map(|(name, template)| {
            let shown = if !show_sensitive && is_sensitive(&format!("env.{name}")) {
                MASK.to_string()
            } else {
                template.to_string()
            };
            (name.clone(), Value::String(shown))
        })
        .collect();
    let mut value = json!({
        "command": shell_words::join(words),
        "workdir": service.workdir.as_ref().map(ToString::to_string),
        "socket": service.socket.to_string(),
        "listen": service.listen.as_str(),
        "health": service.health,
        "isolation": service.isolation.as_str(),
        "idle_timeout": scalar(&duration(service.idle_timeout)),
        "start": service
            .start
            .unwrap_or_else(|| StartMode::default_for(service.idle_timeout, service.listen))
            .as_str(),
        "startup_timeout": scalar(&duration(service.startup_timeout)),
        "request_timeout": scalar(&duration(service.request_timeout)),
        "storage_persist": service.storage_persist,
        "restart": service.restart.as_str(),
        "stop_signal": service.stop_signal.as_str(),
        "stop_timeout": scalar(&duration(service.stop_timeout)),
        "stop_order": service.stop_order,
        "weight": service.weight,
        "memory_limit_mb": service.memory_limit_mb,
        "cpu_shares": service.cpu_shares,
        "pids_limit": service.pids_limit,
        "storage_quota_mb": service.storage_quota_mb,
        "user": service.user,
        "env": env,
    });
    let logs = &service.log_files;
    if (logs.stdout.is_some() || logs.stderr.is_some())
        && let Some(map) = value.as_object_mut()
    {
        let path = |path: &Option<crate::config::Template>| path.as_ref().map(ToString::to_string);
        map.insert("stdout_log".into(), json!(path(&logs.stdout)));
        map.insert("stderr_log".into(), json!(path(&logs.stderr)));
        map.insert("log_max_bytes".into(), json!(logs.rotation.max_bytes));
        map.insert("log_backups".into(), json!(logs.rotation.backups));
    }
    value
}

fn routing_value(config: &Config) -> Value {
    let routing = &config.routing;
    let map = |rules: &std::collections::BTreeMap<String, crate::config::RouteTarget>| -> Map<String, Value> {
        rules
            .iter()
            .map(|(from, to)| (from.clone(), Value::String(to.to_string())))
            .collect()
    };
    json!({
        "default": routing.default.as_ref().map(ToString::to_string),
        "subdomain": map(&routing.subdomain),
        "path": map(&routing.path),
    })
}

/// One instance's effective spec (`ten config --instance S:ID`), secrets masked unless asked.
pub(crate) fn instance_value(spec: &InstanceSpec, show_sensitive: bool) -> Value {
    let fields: &FieldMap = spec.fields();
    let mut out = Map::new();
    out.insert("instance".into(), Value::String(spec.key.to_string()));
    out.insert("state".into(), Value::String(spec.state.to_string()));
    out.insert(
        "declared_in".into(),
        Value::String(spec.declared.describe()),
    );
    let mut env = Map::new();
    for (path, field) in fields {
        let shown = if !show_sensitive && is_sensitive(path) {
            Value::String(MASK.into())
        } else {
            scalar(field)
        };
        match path.strip_prefix("env.") {
            Some(name) => {
                env.insert(name.to_string(), shown);
            }
            None => {
                out.insert(path.to_string(), shown);
            }
        }
    }
    out.insert("env".into(), Value::Object(env));
    Value::Object(out)
}

/// Renders a JSON object as TOML: nulls are left out, nested objects become tables.
pub(crate) fn to_toml(value: &Value, header: &str) -> String {
    let mut document = DocumentMut::new();
    if let Some(Value::Object(mut map)) = prune(value) {
        // The path of the file is in the header; it is not a key of tenement.toml.
        map.shift_remove("config");
        let mut position = 0;
        fill_table(document.as_table_mut(), &map, &mut position);
    }
    let mut text = String::new();
    for line in header.lines() {
        text.push_str("# ");
        text.push_str(line);
        text.push('\n');
    }
    text.push('\n');
    text.push_str(&document.to_string());
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text
}

/// Drops nulls and empty tables, which TOML cannot or need not show.
fn prune(value: &Value) -> Option<Value> {
    match value {
        Value::Null => None,
        Value::Object(map) => {
            let kept: Map<String, Value> = map
                .iter()
                .filter_map(|(key, entry)| prune(entry).map(|entry| (key.clone(), entry)))
                .collect();
            (!kept.is_empty()).then_some(Value::Object(kept))
        }
        other => Some(other.clone()),
    }
}

/// Fills `table` from `map`; `position` numbers tables so they print in map order.
fn fill_table(table: &mut Table, map: &Map<String, Value>, position: &mut isize) {
    // Scalars first, then sub-tables, so the TOML reads top-down.
    for (key, entry) in map {
        if let Some(converted) = toml_value(entry) {
            table.insert(key, value(converted));
        }
    }
    for (key, entry) in map {
        if let Value::Object(inner) = entry {
            let mut sub = Table::new();
            *position += 1;
            sub.set_position(Some(*position));
            fill_table(&mut sub, inner, position);
            sub.set_implicit(inner.values().all(Value::is_object));
            table.insert(key, Item::Table(sub));
        }
    }
}

fn toml_value(entry: &Value) -> Option<toml_edit::Value> {
    match entry {
        Value::Null | Value::Object(_) => None,
        Value::Bool(flag) => Some((*flag).into()),
        Value::Number(number) => number.as_i64().map(Into::into),
        Value::String(text) => Some(text.as_str().into()),
        Value::Array(items) => {
            let mut array = Array::new();
            for item in items {
                if let Some(converted) = toml_value(item) {
                    array.push(converted);
                }
            }
            Some(array.into())
        }
    }
}
