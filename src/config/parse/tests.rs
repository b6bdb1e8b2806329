//! tenement.toml parsed whole: defaults, the reference example, declarations that count
//! even with errors.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use crate::config::diag::Diagnostic;
use crate::config::model::Config;
use crate::names::ServiceName;

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
fn defaults_are_the_originals() {
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
    assert!(settings.trusted_proxies.is_empty());
}

#[test]
fn trusted_proxies_are_addresses_and_ranges() {
    let (config, diagnostics) = parse(
        "[settings]\ntrusted_proxies = [\"127.0.0.1\", \"10.0.0.0/8\", \"::1\"]\n[service.api]\ncommand = \"x\"\n",
    );
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    let shown: Vec<String> = config
        .unwrap()
        .settings
        .trusted_proxies
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(shown, ["127.0.0.1", "10.0.0.0/8", "::1"]);
    // Trusting everyone is allowed, and warned about.
    let (config, diagnostics) =
        parse("[settings]\ntrusted_proxies = [\"0.0.0.0/0\"]\n[service.api]\ncommand = \"x\"\n");
    assert_eq!(config.unwrap().settings.trusted_proxies.len(), 1);
    let warnings: Vec<String> = diagnostics
        .iter()
        .map(|d| format!("{} {}", d.location(), d.message))
        .collect();
    assert_eq!(
        warnings,
        [
            "tenement.toml:2:20 `trusted_proxies` in [settings] trusts every address (0.0.0.0/0): any client can choose the address and scheme ten and the tenants see"
        ]
    );
    assert!(!diagnostics[0].is_error());
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

/// A directory whose name is not UTF-8 is refused with a reason, never turned into another
/// path by a lossy conversion.
#[test]
fn a_config_directory_that_is_not_utf8_is_an_error() {
    use std::os::unix::ffi::OsStrExt;
    let path = Path::new(std::ffi::OsStr::from_bytes(b"/srv/caf\xe9/tenement.toml"));
    let mut diagnostics = Vec::new();
    let parsed = parse_config(
        path,
        "[service.notes]\ncommand = \"x\"\n".into(),
        &mut diagnostics,
    );
    assert!(parsed.config.is_none());
    assert!(
        diagnostics
            .iter()
            .any(|d| d.is_error() && d.message.contains("not valid UTF-8")),
        "{diagnostics:?}"
    );
}
