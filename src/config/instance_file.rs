//! One instance file (`instances/<service>/<id>.toml`) -> [`InstanceOverrides`].
//!
//! An empty file declares the instance with its service's defaults. Pure: the caller reads
//! the file and derives the instance key from its path.

use std::time::Duration;

use super::diag::{Diagnostic, SourceFile, has_errors};
use super::model::{InstanceOverrides, RunState};
use super::parse::parse_document;
use super::reader::{Fields, TimeUnit};
use super::service::{
    SERVICE_KEYS, check_worker_keys, keyword, parse_env, parse_limits, parse_start, parse_weight,
};

/// Every key an instance file may hold.
pub const INSTANCE_KEYS: &[&str] = &[
    "state",
    "weight",
    "env",
    "idle_timeout",
    "start",
    "memory_limit_mb",
    "cpu_shares",
    "storage_quota_mb",
];

/// Parses an instance file of service `service` (`worker`: its table says `listen = "none"`,
/// so the keys a worker cannot honour are refused); `None` when it has errors.
pub fn parse_instance_file(
    file: &SourceFile,
    service: &str,
    worker: bool,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<InstanceOverrides> {
    if file.text.trim().is_empty() {
        return Some(InstanceOverrides::default());
    }
    let document = match parse_document(file) {
        Ok(document) => document,
        Err(diagnostic) => {
            diagnostics.push(*diagnostic);
            return None;
        }
    };
    let before = diagnostics.len();
    let section = "this instance file".to_string();
    let fields = Fields::new(file, document.as_table(), section, 0..0);
    fields.reject_unknown(
        INSTANCE_KEYS,
        |key| {
            SERVICE_KEYS.contains(&key).then(|| {
                format!(
                    "`{key}` is set for all instances in [service.{service}] of tenement.toml; \
                     an instance file may set: {}",
                    INSTANCE_KEYS.join(", ")
                )
            })
        },
        diagnostics,
    );
    let worker = worker.then(|| format!("a worker (listen = \"none\" in [service.{service}])"));
    let overrides = InstanceOverrides {
        state: keyword(
            &fields,
            "state",
            RunState::KEYWORDS,
            RunState::from_keyword,
            diagnostics,
        ),
        weight: parse_weight(&fields, diagnostics),
        env: parse_env(&fields, diagnostics).unwrap_or_default(),
        idle_timeout: fields.duration(
            "idle_timeout",
            TimeUnit::Seconds,
            Duration::ZERO,
            diagnostics,
        ),
        start: parse_start(&fields, worker.as_deref(), diagnostics),
        ..limits(&fields, diagnostics)
    };
    check_worker_keys(
        &fields,
        worker.as_deref(),
        overrides.idle_timeout,
        diagnostics,
    );
    (!has_errors(&diagnostics[before..])).then_some(overrides)
}

fn limits(fields: &Fields<'_>, diagnostics: &mut Vec<Diagnostic>) -> InstanceOverrides {
    let limits = parse_limits(fields, diagnostics);
    InstanceOverrides {
        memory_limit_mb: limits.memory_limit_mb,
        cpu_shares: limits.cpu_shares,
        storage_quota_mb: limits.storage_quota_mb,
        ..InstanceOverrides::default()
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn parse(text: &str) -> (Option<InstanceOverrides>, Vec<Diagnostic>) {
        let file = SourceFile {
            path: PathBuf::from("instances/notes/alice.toml"),
            text: text.to_string(),
        };
        let mut diagnostics = Vec::new();
        (
            parse_instance_file(&file, "notes", false, &mut diagnostics),
            diagnostics,
        )
    }

    #[test]
    fn empty_and_comment_only_files_declare_defaults() {
        assert_eq!(parse("").0, Some(InstanceOverrides::default()));
        assert_eq!(parse("\n  \n").0, Some(InstanceOverrides::default()));
        assert_eq!(
            parse("# just a comment\n").0,
            Some(InstanceOverrides::default())
        );
    }

    #[test]
    fn overrides_are_read() {
        let (overrides, diagnostics) = parse(
            "state = \"stopped\"\nweight = 50\nidle_timeout = \"2m\"\nmemory_limit_mb = 64\n[env]\nA = \"b\"\n",
        );
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        let overrides = overrides.unwrap();
        assert_eq!(overrides.state, Some(RunState::Stopped));
        assert_eq!(overrides.weight, Some(50));
        assert_eq!(overrides.idle_timeout, Some(Duration::from_secs(120)));
        assert_eq!(overrides.memory_limit_mb, Some(64));
        assert_eq!(overrides.env["A"].as_literal(), Some("b"));
    }

    #[test]
    fn service_keys_get_a_pointed_hint() {
        let (overrides, diagnostics) = parse("command = \"x\"\n");
        assert!(overrides.is_none());
        assert!(
            diagnostics[0]
                .hint
                .as_deref()
                .unwrap()
                .contains("[service.notes]")
        );
    }
}
