//! `[settings]` and `[settings.tls]`: every setting checked, paths resolved against the
//! config's directory.
//!
//! Imports nothing else of `parse`.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use toml_edit::TableLike;

use crate::config::diag::{Diagnostic, has_errors};
use crate::config::ip_range::{IpRange, IpRangeError};
use crate::config::model::{Settings, TlsSettings};
use crate::config::reader::{Fields, Spanned, TimeUnit};
use crate::config::service::SERVICE_KEYS;

pub(super) const SETTINGS_KEYS: &[&str] = &[
    "data_dir",
    "health_check_interval",
    "max_restarts",
    "restart_window",
    "backoff_base_ms",
    "backoff_max_ms",
    "instances_dir",
    "auto_apply",
    "max_destroy_percent",
    "port_range",
    "keep_tenants_on_exit",
    "public_metrics",
    "trusted_proxies",
    "tls",
    "log_retention",
    "memory_target",
    "memory_limit_total",
    "header_timeout",
    "keep_alive_timeout",
    "max_connections",
    "max_connections_per_client",
];
const TLS_KEYS: &[&str] = &[
    "enabled",
    "acme_email",
    "domain",
    "acme_directory",
    "cache_dir",
    "staging",
    "acme_root",
    "https_port",
    "http_port",
];

pub(super) fn parse_settings(
    root: &Fields<'_>,
    dir: &Path,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<Settings> {
    let mut settings = Settings::defaults(dir);
    let Some(table) = root.table("settings", diagnostics) else {
        return root.item("settings").is_none().then_some(settings);
    };
    let before = diagnostics.len();
    let fields = Fields::new(root.file, table, "[settings]", root.key_span("settings"));
    fields.reject_unknown(
        SETTINGS_KEYS,
        |key| {
            SERVICE_KEYS
                .contains(&key)
                .then(|| format!("`{key}` is a service key: set it in [service.NAME]"))
        },
        diagnostics,
    );
    let seconds = |key: &str, diagnostics: &mut Vec<Diagnostic>| {
        fields.duration(key, TimeUnit::Seconds, Duration::from_secs(1), diagnostics)
    };
    // 0 is a backoff too: restart at once (the restart still counts towards max_restarts).
    let millis = |key: &str, diagnostics: &mut Vec<Diagnostic>| {
        fields.duration(key, TimeUnit::Millis, Duration::ZERO, diagnostics)
    };
    if let Some(path) = fields.string("data_dir", diagnostics) {
        settings.data_dir = resolve_path(&fields, "data_dir", &path, dir, diagnostics);
    }
    if let Some(path) = fields.string("instances_dir", diagnostics) {
        settings.instances_dir = resolve_path(&fields, "instances_dir", &path, dir, diagnostics);
    }
    if let Some(value) = seconds("health_check_interval", diagnostics) {
        settings.health_check_interval = value;
    }
    if let Some(value) = fields.integer("max_restarts", 0..1001, "restarts", diagnostics) {
        settings.max_restarts = value as u32;
    }
    if let Some(value) = seconds("restart_window", diagnostics) {
        settings.restart_window = value;
    }
    if let Some(value) = millis("backoff_base_ms", diagnostics) {
        settings.backoff_base = value;
    }
    if let Some(value) = millis("backoff_max_ms", diagnostics) {
        settings.backoff_max = value;
    }
    if settings.backoff_max < settings.backoff_base {
        diagnostics.push(
            Diagnostic::at(
                fields.file,
                fields.value_span("backoff_max_ms"),
                "`backoff_max_ms` in [settings] is smaller than `backoff_base_ms`",
            )
            .with_label("smaller than the base")
            .with_hint("the maximum backoff must be at least the base backoff"),
        );
    }
    if let Some(value) = fields.bool("auto_apply", diagnostics) {
        settings.auto_apply = value;
    }
    if let Some(value) = fields.integer("max_destroy_percent", 0..101, "percent", diagnostics) {
        settings.max_destroy_percent = value as u8;
    }
    if let Some(range) = parse_port_range(&fields, diagnostics) {
        settings.port_range = range;
    }
    if let Some(value) = fields.bool("keep_tenants_on_exit", diagnostics) {
        settings.keep_tenants_on_exit = value;
    }
    if let Some(value) = fields.bool("public_metrics", diagnostics) {
        settings.public_metrics = value;
    }
    if let Some(ranges) = parse_trusted_proxies(&fields, diagnostics) {
        settings.trusted_proxies = ranges;
    }
    if let Some(table) = fields.table("tls", diagnostics) {
        settings.tls = parse_tls(&fields, table, dir, diagnostics);
    }
    if let Some(table) = fields.table("log_retention", diagnostics) {
        settings.log_retention =
            crate::config::log_retention::parse_log_retention(&fields, table, diagnostics);
    }
    settings.memory_target =
        crate::config::memory::parse_memory_amount(&fields, "memory_target", diagnostics);
    settings.memory_limit_total =
        crate::config::memory::parse_memory_amount(&fields, "memory_limit_total", diagnostics);
    crate::config::memory::check_limit_above_target(
        &fields,
        settings.memory_target,
        settings.memory_limit_total,
        diagnostics,
    );
    settings.connections =
        crate::config::connections::parse_connection_limits(&fields, diagnostics);
    (!has_errors(&diagnostics[before..])).then_some(settings)
}

fn parse_port_range(fields: &Fields<'_>, diagnostics: &mut Vec<Diagnostic>) -> Option<(u16, u16)> {
    let item = fields.item("port_range")?;
    let span = fields.value_span("port_range");
    let bounds: Option<Vec<i64>> = item.as_array().map(|array| {
        array
            .iter()
            .filter_map(|value| value.as_integer())
            .collect()
    });
    let problem = match bounds.as_deref() {
        Some(&[low, high]) if item.as_array().is_some_and(|a| a.len() == 2) => {
            if !(1024..=65535).contains(&low) || !(1024..=65535).contains(&high) {
                Some("ports must be between 1024 and 65535")
            } else if low > high {
                Some("the first port must not be larger than the second")
            } else {
                return Some((low as u16, high as u16));
            }
        }
        _ => Some("it must be two integers, [first, last]"),
    };
    diagnostics.push(
        Diagnostic::at(
            fields.file,
            span,
            format!(
                "`port_range` in [settings] is invalid: {}",
                problem.unwrap_or_default()
            ),
        )
        .with_label("invalid port range")
        .with_hint("for example: port_range = [30000, 40000]"),
    );
    None
}

const TRUSTED_PROXIES_EXAMPLE: &str = "list IP addresses or CIDR ranges (host names are not \
looked up), for example: trusted_proxies = [\"127.0.0.1\", \"::1\", \"10.0.0.0/8\"]";

/// `trusted_proxies`: IP addresses and CIDR ranges, each checked where it is written.
fn parse_trusted_proxies(
    fields: &Fields<'_>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<Vec<IpRange>> {
    let entries = fields.string_list("trusted_proxies", diagnostics)?;
    let mut ranges = Vec::with_capacity(entries.len());
    let mut valid = true;
    for entry in &entries {
        match IpRange::parse(entry.value) {
            Ok(range) => {
                if range.prefix() == 0 {
                    diagnostics.push(trusts_everyone(fields, entry));
                }
                ranges.push(range);
            }
            Err(error) => {
                valid = false;
                diagnostics.push(not_a_range(fields, entry, &error));
            }
        }
    }
    valid.then_some(ranges)
}

fn not_a_range(fields: &Fields<'_>, entry: &Spanned<&str>, error: &IpRangeError) -> Diagnostic {
    let (label, hint) = match error {
        IpRangeError::HostBits { text, network } => {
            let address = text
                .split_once('/')
                .map_or(text.as_str(), |(address, _)| address);
            (
                "not the start of a range",
                format!("for the range, write \"{network}\"; for that one address, \"{address}\""),
            )
        }
        IpRangeError::BadPrefix { .. } => ("prefix out of range", TRUSTED_PROXIES_EXAMPLE.into()),
        IpRangeError::NotAnAddress(_) => ("not an IP address", TRUSTED_PROXIES_EXAMPLE.into()),
    };
    Diagnostic::at(
        fields.file,
        entry.span.clone(),
        format!("`trusted_proxies` in [settings]: {error}"),
    )
    .with_label(label)
    .with_hint(hint)
}

fn trusts_everyone(fields: &Fields<'_>, entry: &Spanned<&str>) -> Diagnostic {
    Diagnostic::at(
        fields.file,
        entry.span.clone(),
        format!(
            "`trusted_proxies` in [settings] trusts every address ({}): any client can choose the address and scheme ten and the tenants see",
            entry.value
        ),
    )
    .with_label("every address")
    .with_hint("list only the reverse proxies in front of ten, e.g. \"127.0.0.1\"")
    .warning()
}

fn parse_tls(
    settings: &Fields<'_>,
    table: &dyn TableLike,
    dir: &Path,
    diagnostics: &mut Vec<Diagnostic>,
) -> TlsSettings {
    let fields = Fields::new(
        settings.file,
        table,
        "[settings.tls]",
        settings.key_span("tls"),
    );
    fields.reject_unknown(TLS_KEYS, |_| None, diagnostics);
    let text = |key: &str, diagnostics: &mut Vec<Diagnostic>| {
        fields
            .string(key, diagnostics)
            .map(|value| value.value.to_string())
    };
    let path = |key: &str, diagnostics: &mut Vec<Diagnostic>| {
        fields
            .string(key, diagnostics)
            .map(|path| resolve_path(&fields, key, &path, dir, diagnostics))
    };
    let acme_email = text("acme_email", diagnostics);
    if let Some(email) = &acme_email
        && !email.contains('@')
    {
        diagnostics.push(
            Diagnostic::at(
                fields.file,
                fields.value_span("acme_email"),
                "`acme_email` in [settings.tls] is not an email address",
            )
            .with_label("expected an address like admin@example.com"),
        );
    }
    let acme_directory = text("acme_directory", diagnostics);
    if let Some(url) = &acme_directory
        && !(url.starts_with("https://") || url.starts_with("http://"))
    {
        diagnostics.push(
            Diagnostic::at(
                fields.file,
                fields.value_span("acme_directory"),
                "`acme_directory` in [settings.tls] must be an http(s) URL",
            )
            .with_label("not a URL")
            .with_hint("for example https://acme-v02.api.letsencrypt.org/directory"),
        );
    }
    let staging = fields.bool("staging", diagnostics).unwrap_or(false);
    if staging && acme_directory.is_some() {
        diagnostics.push(
            Diagnostic::at(
                fields.file,
                fields.value_span("staging"),
                "`staging` and `acme_directory` in [settings.tls] both say which ACME server to use",
            )
            .with_label("Let's Encrypt's staging server")
            .with_hint("keep one: `staging = true` is Let's Encrypt's staging directory, `acme_directory` any other"),
        );
    }
    let domain = text("domain", diagnostics);
    if let Some(domain) = &domain {
        check_domain(&fields, domain, diagnostics);
    }
    let port = |key: &str, default: u16, diagnostics: &mut Vec<Diagnostic>| {
        fields
            .integer(key, 0..65536, "port", diagnostics)
            .map_or(default, |value| value as u16)
    };
    let https_port = port("https_port", 443, diagnostics);
    let http_port = port("http_port", 80, diagnostics);
    if https_port == http_port && https_port != 0 {
        diagnostics.push(
            Diagnostic::at(
                fields.file,
                fields.value_span("http_port"),
                "`http_port` and `https_port` in [settings.tls] are the same port",
            )
            .with_label("also the HTTPS port")
            .with_hint(
                "plain HTTP (which redirects) and HTTPS need a port each: 80 and 443 usually",
            ),
        );
    }
    TlsSettings {
        enabled: fields.bool("enabled", diagnostics).unwrap_or(false),
        acme_email,
        domain,
        acme_directory,
        cache_dir: path("cache_dir", diagnostics),
        staging,
        acme_root: path("acme_root", diagnostics),
        https_port,
        http_port,
    }
}

/// A domain certificates can be asked for: DNS labels, at least two, no wildcard.
fn check_domain(fields: &Fields<'_>, domain: &str, diagnostics: &mut Vec<Diagnostic>) {
    let problem = if domain.starts_with("*.") {
        Some("a wildcard needs a DNS challenge, which ten does not do")
    } else if !domain.contains('.')
        || domain.split('.').any(|label| {
            label.is_empty()
                || label.len() > 63
                || label.starts_with('-')
                || label.ends_with('-')
                || !label
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-')
        })
    {
        Some("it must be a domain name like example.com")
    } else {
        None
    };
    if let Some(problem) = problem {
        diagnostics.push(
            Diagnostic::at(
                fields.file,
                fields.value_span("domain"),
                format!("`domain` in [settings.tls] is not usable: {problem}"),
            )
            .with_label("not a domain ten can get certificates for")
            .with_hint("ten gets a certificate for each declared name under it; for a wildcard certificate, run ten behind Caddy (`ten caddy`)"),
        );
    }
}

/// A path setting, relative to the config's directory when not absolute.
fn resolve_path(
    fields: &Fields<'_>,
    key: &str,
    path: &Spanned<&str>,
    dir: &Path,
    diagnostics: &mut Vec<Diagnostic>,
) -> PathBuf {
    if path.value.trim().is_empty() {
        diagnostics.push(
            Diagnostic::at(
                fields.file,
                path.span.clone(),
                format!("`{key}` in {} is empty", fields.section),
            )
            .with_label("expected a path"),
        );
    }
    normalize(&dir.join(path.value))
}

/// Removes `.` and resolves `..` lexically, without touching the file system.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_is_lexical() {
        assert_eq!(normalize(Path::new("/a/./b/../c")), PathBuf::from("/a/c"));
    }
}
