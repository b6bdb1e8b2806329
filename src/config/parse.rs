//! tenement.toml text -> [`Config`], reporting every problem of the file.
//!
//! Reads the root, `[settings]`, `[instances]` and `[routing]`; service templates are read
//! by `service.rs`. Pure: the caller reads the file.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use toml_edit::{Document, TableLike};

use super::diag::{Diagnostic, SourceFile, has_errors};
use super::model::{Config, RouteTarget, Routing, Settings, TlsSettings};
use super::reader::{Fields, Spanned, TimeUnit, did_you_mean};
use super::service::{SERVICE_KEYS, parse_service};
use crate::names::{InstanceId, InstanceKey, NAME_RULE, ServiceName, suggest_label};

const ROOT_KEYS: &[&str] = &["settings", "service", "process", "instances", "routing"];
const SETTINGS_KEYS: &[&str] = &[
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
    "tls",
];
const TLS_KEYS: &[&str] = &[
    "enabled",
    "acme_email",
    "domain",
    "acme_directory",
    "cache_dir",
];
const ROUTING_KEYS: &[&str] = &["default", "subdomain", "path"];

/// What is known of a config even when it has errors: enough to check instance files too,
/// so that every problem is reported at once.
#[derive(Debug, Clone)]
pub struct Outline {
    /// Every service declared with a valid name, whether or not its table is valid.
    pub services: BTreeSet<ServiceName>,
    /// Absolute; the default when `instances_dir` itself is invalid.
    pub instances_dir: PathBuf,
    pub dir: PathBuf,
}

/// The outcome of parsing tenement.toml.
#[derive(Debug)]
pub struct ParsedConfig {
    /// Present when there is no error.
    pub config: Option<Config>,
    /// Present unless the TOML syntax itself is broken.
    pub outline: Option<Outline>,
}

/// Parses tenement.toml. `path` is its absolute path; problems are pushed to `diagnostics`
/// and the config is returned only when there are no errors.
pub fn parse_config(path: &Path, text: String, diagnostics: &mut Vec<Diagnostic>) -> ParsedConfig {
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let display = PathBuf::from(path.file_name().unwrap_or(path.as_os_str()));
    let file = SourceFile {
        path: display,
        text,
    };
    let document = match parse_document(&file) {
        Ok(document) => document,
        Err(diagnostic) => {
            diagnostics.push(*diagnostic);
            return ParsedConfig {
                config: None,
                outline: None,
            };
        }
    };
    let before = diagnostics.len();
    let root = Fields::new(&file, document.as_table(), "tenement.toml", 0..0);
    root.reject_unknown(
        ROOT_KEYS,
        |key| {
            SERVICE_KEYS
                .contains(&key)
                .then(|| format!("`{key}` belongs in a service: [service.NAME]"))
                .or_else(|| {
                    SETTINGS_KEYS
                        .contains(&key)
                        .then(|| format!("`{key}` belongs in [settings]"))
                })
        },
        diagnostics,
    );

    let settings = parse_settings(&root, &dir, diagnostics);
    let (services, declared) = parse_services(&root, diagnostics);
    let instances = parse_instances_table(&root, &declared, diagnostics);
    let routing = parse_routing(&root, &declared, diagnostics);
    let outline = Outline {
        services: declared,
        instances_dir: settings.as_ref().map_or_else(
            || dir.join(super::model::DEFAULT_INSTANCES_DIR),
            |settings| settings.instances_dir.clone(),
        ),
        dir: dir.clone(),
    };
    if services.is_empty() && !has_errors(&diagnostics[before..]) {
        diagnostics.push(
            Diagnostic::in_file(&file.path, "no services are declared")
                .with_hint("add a service template, e.g. [service.notes] with command = \"python3 app.py\"")
                .warning(),
        );
    }
    let config = match settings {
        Some(settings) if !has_errors(&diagnostics[before..]) => Some(Config {
            path: path.to_path_buf(),
            dir,
            settings,
            services,
            instances,
            routing,
        }),
        _ => None,
    };
    ParsedConfig {
        config,
        outline: Some(outline),
    }
}

/// Parses TOML syntax; the one syntax error becomes a diagnostic.
pub fn parse_document(file: &SourceFile) -> Result<Document<String>, Box<Diagnostic>> {
    Document::parse(file.text.clone()).map_err(|error| {
        let span = error.span().unwrap_or(0..0);
        let message = error.message().trim().trim_end_matches('.').to_string();
        Box::new(
            Diagnostic::at(file, span, format!("invalid TOML: {message}"))
                .with_label(message)
                .with_hint("fix the TOML syntax here; ten changes nothing until the file parses"),
        )
    })
}

fn parse_settings(
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
    if let Some(table) = fields.table("tls", diagnostics) {
        settings.tls = parse_tls(&fields, table, dir, diagnostics);
    }
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

/// What to do for HTTPS until ten serves it itself.
pub const TLS_PROXY_HINT: &str = "until ten serves HTTPS itself, put a TLS proxy in front of it: Caddy \
(`reverse_proxy 127.0.0.1:8080` for your domain and *.your-domain, with on-demand TLS) or nginx \
with certbot, forwarding Host; then remove `enabled = true`";

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
    let enabled = fields.bool("enabled", diagnostics).unwrap_or(false);
    if enabled {
        diagnostics.push(
            Diagnostic::at(
                fields.file,
                fields.value_span("enabled"),
                "HTTPS is not available in this version of ten: `enabled = true` in [settings.tls] cannot be honoured",
            )
            .with_label("not supported yet")
            .with_hint(TLS_PROXY_HINT),
        );
    }
    TlsSettings {
        enabled,
        acme_email,
        domain: text("domain", diagnostics),
        acme_directory,
        cache_dir: fields
            .string("cache_dir", diagnostics)
            .map(|path| resolve_path(&fields, "cache_dir", &path, dir, diagnostics)),
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

/// `[service.NAME]` tables (and the original's older spelling `[process.NAME]`).
/// Returns the valid services, and the names of all declared ones (valid or not), so that
/// references to a service with errors do not add "not declared" errors.
fn parse_services(
    root: &Fields<'_>,
    diagnostics: &mut Vec<Diagnostic>,
) -> (
    BTreeMap<ServiceName, super::model::ServiceTemplate>,
    BTreeSet<ServiceName>,
) {
    let mut services = BTreeMap::new();
    let mut declared = BTreeSet::new();
    let mut seen: BTreeMap<String, &str> = BTreeMap::new();
    for section in ["service", "process"] {
        let Some(table) = root.table(section, diagnostics) else {
            continue;
        };
        let fields = Fields::new(
            root.file,
            table,
            format!("[{section}]"),
            root.key_span(section),
        );
        for (name, item) in table.iter() {
            let key_span = fields.key_span(name);
            if let Some(first) = seen.insert(name.to_string(), section) {
                diagnostics.push(
                    Diagnostic::at(
                        root.file,
                        key_span.clone(),
                        format!("service `{name}` is declared twice: [{first}.{name}] and [{section}.{name}]"),
                    )
                    .with_label("second declaration")
                    .with_hint("keep one of them; [process.NAME] is the older spelling of [service.NAME]"),
                );
                continue;
            }
            let service_name = match ServiceName::new(name) {
                Ok(service_name) => {
                    declared.insert(service_name.clone());
                    Some(service_name)
                }
                Err(error) => {
                    diagnostics.push(bad_name(
                        root.file,
                        key_span.clone(),
                        "service name",
                        name,
                        &error,
                    ));
                    None
                }
            };
            let Some(table) = item.as_table_like() else {
                diagnostics.push(
                    Diagnostic::at(
                        root.file,
                        fields.value_span(name),
                        format!("[{section}.{name}] must be a table"),
                    )
                    .with_label("expected a table")
                    .with_hint(format!(
                        "write it as a section: [{section}.{name}] followed by command = \"...\""
                    )),
                );
                continue;
            };
            let section_name = format!("[{section}.{name}]");
            let service_fields = Fields::new(root.file, table, section_name, key_span);
            if let Some(template) =
                parse_service(&service_fields, service_name.clone(), diagnostics)
                && let Some(service_name) = service_name
            {
                services.insert(service_name, template);
            }
        }
    }
    (services, declared)
}

/// A diagnostic for an invalid service name or instance id.
pub fn bad_name(
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
pub fn unknown_service(
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

/// `[instances]`: `notes = ["alice", "bob"]`.
fn parse_instances_table(
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

fn parse_routing(
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (Option<Config>, Vec<Diagnostic>) {
        let mut diagnostics = Vec::new();
        let parsed = parse_config(
            Path::new("/srv/app/tenement.toml"),
            text.to_string(),
            &mut diagnostics,
        );
        (parsed.config, diagnostics)
    }

    #[test]
    fn a_broken_service_is_still_declared() {
        let (config, diagnostics) =
            parse("[service.api]\ncomand = \"x\"\n[instances]\napi = [\"a\"]\n");
        assert!(config.is_none());
        let messages: Vec<&str> = diagnostics.iter().map(|d| d.message.as_str()).collect();
        // No "[instances] names service `api`, which is not declared", and no "missing
        // command" next to the typo that explains it.
        assert_eq!(messages, ["unknown key `comand` in [service.api]"]);
    }

    #[test]
    fn defaults_are_the_seeds() {
        let (config, diagnostics) = parse("[service.api]\ncommand = \"python3 app.py\"\n");
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        let config = config.unwrap();
        let settings = &config.settings;
        assert_eq!(settings.data_dir, PathBuf::from("/srv/app/tenement-data"));
        assert_eq!(settings.instances_dir, PathBuf::from("/srv/app/instances"));
        assert_eq!(settings.health_check_interval, Duration::from_secs(10));
        assert_eq!(settings.max_restarts, 3);
        assert_eq!(settings.restart_window, Duration::from_secs(300));
        assert_eq!(settings.backoff_base, Duration::from_millis(1000));
        assert_eq!(settings.backoff_max, Duration::from_millis(60000));
        assert!(settings.auto_apply);
        assert_eq!(settings.max_destroy_percent, 50);
        assert_eq!(settings.port_range, (30000, 40000));
    }

    #[test]
    fn a_backoff_of_zero_restarts_at_once_and_is_accepted() {
        // The original's own end-to-end suite runs with `backoff_base_ms = 0`.
        let (config, diagnostics) = parse(
            "[settings]\nbackoff_base_ms = 0\nbackoff_max_ms = 0\n[service.api]\ncommand = \"x\"\n",
        );
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        let settings = config.unwrap().settings;
        assert_eq!(settings.backoff_base, Duration::ZERO);
        assert_eq!(settings.backoff_max, Duration::ZERO);
        let (config, diagnostics) =
            parse("[settings]\nbackoff_base_ms = 0\n[service.api]\ncommand = \"x\"\n");
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        let settings = config.unwrap().settings;
        assert_eq!(settings.backoff_base, Duration::ZERO);
        assert_eq!(settings.backoff_max, Duration::from_millis(60000));
    }

    #[test]
    fn the_seed_reference_example_parses() {
        let text = r#"
[settings]
data_dir = "/var/lib/myapp"
health_check_interval = 10

[service.api]
command = "uv run python app.py"
health = "/health"
isolation = "namespace"
idle_timeout = 300
memory_limit_mb = 256
storage_persist = true

[service.api.env]
DATA_DIR = "{data_dir}/{id}"
DATABASE_PATH = "{data_dir}/{id}/app.db"

[service.worker]
command = "./worker"
health = "/health"
isolation = "namespace"
memory_limit_mb = 512

[instances]
api = ["prod", "staging"]
worker = ["default"]

[routing]
default = "api"
[routing.subdomain]
"admin" = "worker"
[routing.path]
"/api" = "api"
"#;
        let (config, diagnostics) = parse(text);
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        let config = config.unwrap();
        assert_eq!(config.settings.data_dir, PathBuf::from("/var/lib/myapp"));
        let names: Vec<String> = config.instances.iter().map(ToString::to_string).collect();
        assert_eq!(names, ["api:prod", "api:staging", "worker:default"]);
        assert_eq!(config.routing.path.len(), 1);
    }

    #[test]
    fn older_process_tables_are_services() {
        let (config, diagnostics) =
            parse("[process.api]\ncommand = \"./my-api\"\nsocket = \"/tmp/api-{id}.sock\"\n");
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        assert!(
            config
                .unwrap()
                .services
                .contains_key(&ServiceName::new("api").unwrap())
        );
    }

    #[test]
    fn normalize_is_lexical() {
        assert_eq!(normalize(Path::new("/a/./b/../c")), PathBuf::from("/a/c"));
    }
}
