//! Merging, pure: the `[instances]` table and the instance files into the effective spec of
//! every declared instance, and the checks that only show across instances (sockets, the size
//! of the port range; what a worker's instance file cannot ask is refused when it is read).
//! Reads no file; must not import tokio, nix, hyper or notify.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use rayon::prelude::*;

use crate::config::{Config, Diagnostic, InstanceFile, InstanceOverrides, Listen, StartMode};
use crate::names::InstanceKey;

use super::DesiredState;
use super::spec::{Declaration, InstanceSpec, SpecContext, effective_spec};

/// Longest Unix socket path (sun_path is 108 bytes with its NUL).
const MAX_SOCKET_PATH: usize = 107;

/// Merges the `[instances]` table and instance files into effective specs, and checks what
/// only shows across instances (socket clashes, port range size). Pure.
pub fn resolve(
    config: Config,
    files: &[InstanceFile],
    diagnostics: &mut Vec<Diagnostic>,
) -> DesiredState {
    let mut declared: BTreeMap<InstanceKey, (Declaration, Option<&InstanceOverrides>)> = config
        .instances
        .iter()
        .map(|key| {
            let declaration = Declaration {
                in_table: true,
                file: None,
            };
            (key.clone(), (declaration, None))
        })
        .collect();
    for file in files {
        let entry = declared.entry(file.key.clone()).or_default();
        entry.0.file = Some(file.path.clone());
        entry.1 = Some(file.overrides());
    }
    let empty = InstanceOverrides::default();
    let context = SpecContext::new(&config);
    let declared: Vec<_> = declared.into_iter().collect();
    // Specs are independent: make them on every core, keeping the key order so the map is
    // built in bulk.
    let specs: Vec<(InstanceKey, InstanceSpec)> = declared
        .into_par_iter()
        .filter_map(|(key, (declaration, overrides))| {
            let service = config.services.get(&key.service)?;
            let overrides = overrides.unwrap_or(&empty);
            let spec = effective_spec(&context, service, &key, overrides, declaration);
            Some((key, spec))
        })
        .collect();
    // The instances of a service share the fields and the part they have alike: those of
    // its first.
    let mut shared = BTreeMap::new();
    for (key, spec) in &specs {
        if !shared.contains_key(&key.service) {
            let common = Arc::clone(spec.common());
            shared.insert(key.service.clone(), (spec.fields().to_shared(), common));
        }
    }
    let specs: Vec<(InstanceKey, Arc<InstanceSpec>)> = specs
        .into_par_iter()
        .map(|(key, mut spec)| {
            if let Some((fields, common)) = shared.get(&key.service) {
                spec.share_fields(fields);
                spec.share_common(common);
            }
            (key, Arc::new(spec))
        })
        .collect();
    drop(shared);
    let instances: BTreeMap<InstanceKey, Arc<InstanceSpec>> = specs.into_iter().collect();
    check_sockets(&config, &instances, diagnostics);
    // Workers take no port.
    let listening = instances
        .values()
        .filter(|spec| spec.listen != Listen::None)
        .count();
    check_port_range(&config, listening, diagnostics);
    check_memory_budget(&config, &instances, diagnostics);
    DesiredState { config, instances }
}

/// A memory budget acts only on instances that start on demand (it puts idle ones to sleep
/// and refuses their wakes): with instances declared and none of them on demand, it is
/// warned about, not silently kept.
fn check_memory_budget(
    config: &Config,
    instances: &BTreeMap<InstanceKey, Arc<InstanceSpec>>,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let settings = &config.settings;
    let set: Vec<&str> = [
        ("memory_target", settings.memory_target.is_some()),
        ("memory_limit_total", settings.memory_limit_total.is_some()),
    ]
    .into_iter()
    .filter_map(|(key, set)| set.then_some(key))
    .collect();
    if set.is_empty()
        || instances.is_empty()
        || instances
            .values()
            .any(|spec| spec.start == StartMode::OnDemand)
    {
        return;
    }
    diagnostics.push(
        Diagnostic::in_file(
            Path::new(config.path.file_name().unwrap_or_default()),
            format!(
                "`{}` in [settings] has nothing to act on: no declared instance starts on demand, and only those are put to sleep for memory or refused a wake",
                set.join("` and `")
            ),
        )
        .with_hint("give the services whose tenants may sleep an `idle_timeout` (on demand is then their default), or `start = \"on-demand\"`")
        .warning(),
    );
}

fn check_sockets(
    config: &Config,
    instances: &BTreeMap<InstanceKey, Arc<InstanceSpec>>,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let config_file = Path::new(config.path.file_name().unwrap_or_default());
    let mut reported_long = Vec::new();
    let mut by_socket: BTreeMap<&Path, &InstanceKey> = BTreeMap::new();
    for (key, spec) in instances {
        let length = spec.socket().as_os_str().len();
        if length > MAX_SOCKET_PATH && !reported_long.contains(&&key.service) {
            reported_long.push(&key.service);
            diagnostics.push(
                Diagnostic::in_file(
                    config_file,
                    format!(
                        "socket path of {key} is {length} bytes long; Unix sockets allow {MAX_SOCKET_PATH}: {}",
                        spec.socket().display()
                    ),
                )
                .with_hint(format!("set a shorter `socket` in [service.{}], e.g. \"/run/ten/{{name}}-{{id}}.sock\"", key.service)),
            );
        }
        if spec.listen != Listen::Socket {
            continue;
        }
        if let Some(other) = by_socket.insert(spec.socket(), key) {
            diagnostics.push(
                Diagnostic::in_file(
                    config_file,
                    format!(
                        "{other} and {key} would listen on the same socket {}",
                        spec.socket().display()
                    ),
                )
                .with_hint(format!(
                    "put {{id}} in `socket` of [service.{}]",
                    key.service
                )),
            );
        }
    }
}

fn check_port_range(config: &Config, instances: usize, diagnostics: &mut Vec<Diagnostic>) {
    let (low, high) = config.settings.port_range;
    let ports = usize::from(high - low) + 1;
    if instances > ports {
        diagnostics.push(
            Diagnostic::in_file(
                Path::new(config.path.file_name().unwrap_or_default()),
                format!("port_range [{low}, {high}] has {ports} ports, but {instances} instances that listen are declared"),
            )
            .with_hint("widen `port_range` in [settings]"),
        );
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::config::{RunState, parse_config};
    use crate::desired::FieldValue;

    fn config(text: &str) -> Config {
        let mut diagnostics = Vec::new();
        let parsed = parse_config(
            Path::new("/srv/tenement.toml"),
            text.to_string(),
            &mut diagnostics,
        );
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        parsed.config.unwrap()
    }

    fn key(text: &str) -> InstanceKey {
        InstanceKey::parse(text).unwrap()
    }

    #[test]
    fn a_memory_budget_with_no_instance_on_demand_is_a_warning() {
        let warned = |text: &str| {
            let mut diagnostics = Vec::new();
            resolve(config(text), &[], &mut diagnostics);
            assert!(
                diagnostics
                    .iter()
                    .all(|d| d.severity == crate::config::Severity::Warning),
                "{diagnostics:?}"
            );
            diagnostics
                .iter()
                .map(|d| d.message.clone())
                .collect::<Vec<_>>()
                .join("\n")
        };
        let eager = "[settings]\nmemory_target = \"80%\"\n[service.web]\ncommand = \"w\"\n[instances]\nweb = [\"a\"]\n";
        assert!(
            warned(eager).contains("`memory_target` in [settings] has nothing to act on"),
            "{}",
            warned(eager)
        );
        let on_demand = "[settings]\nmemory_target = \"80%\"\n[service.web]\ncommand = \"w\"\nidle_timeout = 60\n[instances]\nweb = [\"a\"]\n";
        assert_eq!(warned(on_demand), "");
        // No instance yet: nothing to say.
        let empty = "[settings]\nmemory_limit_total = \"1GB\"\n[service.web]\ncommand = \"w\"\n";
        assert_eq!(warned(empty), "");
        let neither = "[service.web]\ncommand = \"w\"\n[instances]\nweb = [\"a\"]\n";
        assert_eq!(warned(neither), "");
    }

    #[test]
    fn the_file_wins_over_the_table() {
        let config = config(
            "[service.notes]\ncommand = \"app {id}\"\nweight = 80\n[service.notes.env]\nA = \"1\"\nB = \"{data_dir}/{name}/{id}\"\n[instances]\nnotes = [\"alice\", \"bob\"]\n",
        );
        let file = InstanceFile::new(
            key("notes:alice"),
            PathBuf::from("instances/notes/alice.toml"),
            InstanceOverrides {
                state: Some(RunState::Stopped),
                weight: Some(10),
                env: [("A".to_string(), crate::config::Template::literal("2"))].into(),
                ..InstanceOverrides::default()
            },
        );
        let mut diagnostics = Vec::new();
        let desired = resolve(config, &[file], &mut diagnostics);
        assert!(diagnostics.is_empty());
        let alice = &desired.instances[&key("notes:alice")];
        assert_eq!(alice.state, RunState::Stopped);
        assert_eq!(alice.weight, 10);
        assert_eq!(alice.command_line(), "app alice");
        assert_eq!(alice.env["A"].as_literal(), Some("2"));
        assert_eq!(
            alice.env["B"].as_literal(),
            Some("/srv/tenement-data/notes/alice")
        );
        assert_eq!(alice.declared.describe(), "instances/notes/alice.toml");
        assert!(alice.declared.in_table);
        let bob = &desired.instances[&key("notes:bob")];
        assert_eq!(bob.weight, 80);
        assert_eq!(bob.declared.describe(), "[instances] in tenement.toml");
        assert_eq!(bob.data_dir(), Path::new("/srv/tenement-data/notes/bob"));
        assert_eq!(
            bob.fields().get("data_dir"),
            Some(&FieldValue::Text("/srv/tenement-data/notes/bob".into()))
        );
        assert_eq!(
            bob.socket(),
            Path::new("/srv/tenement-data/run/notes-bob.sock")
        );
    }

    #[test]
    fn instances_share_their_services_part_and_their_files_paths_unless_they_set_a_limit() {
        let config = config("[service.notes]\ncommand = \"app\"\nmemory_limit_mb = 256\n");
        let file = |id: &str, overrides: InstanceOverrides| {
            InstanceFile::new(
                key(&format!("notes:{id}")),
                PathBuf::from(format!("instances/notes/{id}.toml")),
                overrides,
            )
        };
        let files = [
            file("a", InstanceOverrides::default()),
            file("b", InstanceOverrides::default()),
            file(
                "c",
                InstanceOverrides {
                    memory_limit_mb: Some(1024),
                    cpu_shares: Some(50),
                    ..InstanceOverrides::default()
                },
            ),
        ];
        let mut diagnostics = Vec::new();
        let desired = resolve(config, &files, &mut diagnostics);
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        let spec = |id: &str| &desired.instances[&key(&format!("notes:{id}"))];
        assert_eq!(spec("a").memory_limit_mb, Some(256));
        assert_eq!(spec("a").cpu_shares, None);
        assert_eq!(spec("c").memory_limit_mb, Some(1024));
        assert_eq!(spec("c").cpu_shares, Some(50));
        assert_eq!(
            spec("c").fields().get("memory_limit_mb"),
            Some(&FieldValue::Int(1024))
        );
        assert!(Arc::ptr_eq(spec("a").common(), spec("b").common()));
        assert!(!Arc::ptr_eq(spec("a").common(), spec("c").common()));
        for (file, id) in files.iter().zip(["a", "b", "c"]) {
            let declared = spec(id).declared.file.as_ref().unwrap();
            assert!(Arc::ptr_eq(declared, &file.path), "{id}'s path is a copy");
        }
    }
    #[test]
    fn shared_sockets_clash() {
        let config = config(
            "[service.api]\ncommand = \"x\"\nlisten = \"socket\"\nsocket = \"/tmp/api.sock\"\n[instances]\napi = [\"a\", \"b\"]\n",
        );
        let mut diagnostics = Vec::new();
        resolve(config, &[], &mut diagnostics);
        assert_eq!(diagnostics.len(), 1);
        assert_eq!(
            diagnostics[0].message,
            "api:a and api:b would listen on the same socket /tmp/api.sock"
        );
    }

    #[test]
    fn port_range_must_fit_every_instance() {
        let config = config(
            "[settings]\nport_range = [30000, 30001]\n[service.api]\ncommand = \"x\"\n[instances]\napi = [\"a\", \"b\", \"c\"]\n",
        );
        let mut diagnostics = Vec::new();
        resolve(config, &[], &mut diagnostics);
        assert!(
            diagnostics[0]
                .message
                .contains("has 2 ports, but 3 instances")
        );
    }
}
