//! The settings and routing of tenement.toml as one flat [`FieldMap`], which plans diff and
//! the observed record keeps. Pure: must not import tokio, nix, hyper or notify.

use crate::config::Config;

use super::fields::{FieldMap, FieldValue};
use super::spec::{duration, text_path};

/// The settings and routing of tenement.toml as fields: applied in place, shown in plans
/// when they change.
pub fn settings_fields(config: &Config) -> FieldMap {
    let settings = &config.settings;
    let mut fields = FieldMap::new();
    let mut put = |path: &str, value: FieldValue| {
        fields.insert(path.to_string(), value);
    };
    put("data_dir", text_path(&settings.data_dir));
    put("instances_dir", text_path(&settings.instances_dir));
    put(
        "health_check_interval",
        duration(settings.health_check_interval),
    );
    put(
        "max_restarts",
        FieldValue::Int(u64::from(settings.max_restarts)),
    );
    put("restart_window", duration(settings.restart_window));
    put(
        "backoff_base_ms",
        FieldValue::Int(settings.backoff_base.as_millis() as u64),
    );
    put(
        "backoff_max_ms",
        FieldValue::Int(settings.backoff_max.as_millis() as u64),
    );
    put("auto_apply", FieldValue::Bool(settings.auto_apply));
    put(
        "max_destroy_percent",
        FieldValue::Int(u64::from(settings.max_destroy_percent)),
    );
    let (low, high) = settings.port_range;
    put("port_range", FieldValue::Text(format!("{low}-{high}")));
    put(
        "keep_tenants_on_exit",
        FieldValue::Bool(settings.keep_tenants_on_exit),
    );
    put("public_metrics", FieldValue::Bool(settings.public_metrics));
    // Only when set: a record written before the settings existed shows no change.
    for (name, amount) in [
        ("memory_target", settings.memory_target),
        ("memory_limit_total", settings.memory_limit_total),
    ] {
        if let Some(amount) = amount {
            put(name, FieldValue::Text(amount.describe()));
        }
    }
    // Only when set: a record written before the setting existed shows no change.
    if !settings.trusted_proxies.is_empty() {
        let ranges: Vec<String> = settings
            .trusted_proxies
            .iter()
            .map(ToString::to_string)
            .collect();
        put("trusted_proxies", FieldValue::Text(ranges.join(", ")));
    }
    // Only when not the default: a record written before the setting existed shows no change.
    if settings.log_retention != crate::config::LogRetention::default() {
        let retention = &settings.log_retention;
        put(
            "log_retention.max_bytes",
            FieldValue::Int(retention.max_bytes),
        );
        if let Some(age) = retention.max_age {
            put("log_retention.max_age", duration(age));
        }
    }
    // Only when not the default: a record written before the settings existed shows no change.
    let connections = &settings.connections;
    let defaults = crate::config::ConnectionLimits::default();
    if connections.header_timeout != defaults.header_timeout {
        put("header_timeout", duration(connections.header_timeout));
    }
    if connections.keep_alive_timeout != defaults.keep_alive_timeout {
        put(
            "keep_alive_timeout",
            duration(connections.keep_alive_timeout),
        );
    }
    for (name, value, default) in [
        (
            "max_connections",
            connections.max_connections,
            defaults.max_connections,
        ),
        (
            "max_connections_per_client",
            connections.max_connections_per_client,
            defaults.max_connections_per_client,
        ),
    ] {
        if value != default {
            put(name, FieldValue::Int(u64::from(value)));
        }
    }
    let tls = &settings.tls;
    put("tls.enabled", FieldValue::Bool(tls.enabled));
    put("tls.staging", FieldValue::Bool(tls.staging));
    put("tls.https_port", FieldValue::Int(u64::from(tls.https_port)));
    put("tls.http_port", FieldValue::Int(u64::from(tls.http_port)));
    let optional = [
        ("tls.acme_email", tls.acme_email.clone()),
        ("tls.domain", tls.domain.clone()),
        ("tls.acme_directory", tls.acme_directory.clone()),
        (
            "tls.cache_dir",
            tls.cache_dir
                .as_ref()
                .map(|p| p.to_string_lossy().into_owned()),
        ),
        (
            "tls.acme_root",
            tls.acme_root
                .as_ref()
                .map(|p| p.to_string_lossy().into_owned()),
        ),
        (
            "routing.default",
            config.routing.default.as_ref().map(ToString::to_string),
        ),
    ];
    for (path, value) in optional {
        if let Some(value) = value {
            put(path, FieldValue::Text(value));
        }
    }
    for (label, target) in &config.routing.subdomain {
        put(
            &format!("routing.subdomain.{label}"),
            FieldValue::Text(target.to_string()),
        );
    }
    for (prefix, target) in &config.routing.path {
        put(
            &format!("routing.path.{prefix}"),
            FieldValue::Text(target.to_string()),
        );
    }
    fields
}
