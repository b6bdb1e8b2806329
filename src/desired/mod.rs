//! Desired state: tenement.toml + `[instances]` + `instances/<service>/<id>.toml`, merged into
//! the effective spec of every declared instance.
//!
//! Reading files happens in [`load`] and `scan`; merging ([`resolve`]) is pure. Must not import
//! tokio, nix, hyper or notify (the server calls [`load`] from a blocking task).

pub(crate) mod fields;
mod keep;
pub(crate) mod scan;
pub mod select;
pub(crate) mod spec;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use rayon::prelude::*;

use crate::config::file_text::{CONFIG_FILE_LIMIT, FileTextError, read_config_text};
use crate::config::parse::unknown_service_hint;
use crate::config::{
    Config, Diagnostic, InstanceFile, InstanceOverrides, Listen, Outline, ParsedConfig, SourceFile,
    has_errors, parse_config, parse_instance_file,
};
use crate::names::InstanceKey;

pub use fields::{FieldMap, FieldValue};
pub use keep::{keep_undeclared, share_unchanged};
pub use scan::Unlisted;
pub use select::{Selection, Selector, select};
pub use spec::{Common, Declaration, InstanceSpec, SpecContext, effective_spec, settings_fields};

/// Every declared instance with its effective spec.
#[derive(Debug, Clone)]
pub struct DesiredState {
    pub config: Config,
    /// Shared: specs are immutable, and the server hands them to per-instance tasks.
    pub instances: BTreeMap<InstanceKey, Arc<InstanceSpec>>,
}

impl DesiredState {
    pub fn settings_fields(&self) -> FieldMap {
        settings_fields(&self.config)
    }
}

/// The outcome of loading: the desired state when there is no error, and every problem found.
#[derive(Debug)]
pub struct Loaded {
    pub desired: Option<DesiredState>,
    pub diagnostics: Vec<Diagnostic>,
    /// Number of instance files read.
    pub instance_files: usize,
}

/// Longest Unix socket path (sun_path is 108 bytes with its NUL).
const MAX_SOCKET_PATH: usize = 107;

/// Reads and validates tenement.toml at `config_path` (absolute) and the instances directory.
/// Instance files are checked even when tenement.toml has errors, so every problem shows.
pub fn load(config_path: &Path) -> Loaded {
    let mut diagnostics = Vec::new();
    let parsed = read_config(config_path, &mut diagnostics);
    let files = match &parsed.outline {
        Some(outline) => read_instance_files(outline, &mut diagnostics),
        None => Vec::new(),
    };
    let instance_files = files.len();
    let valid: Vec<InstanceFile> = files.into_iter().filter_map(|(_, file)| file).collect();
    let desired = parsed
        .config
        .map(|config| resolve(config, &valid, &mut diagnostics));
    let config_file = config_path
        .file_name()
        .map(Path::new)
        .unwrap_or(config_path);
    sort_diagnostics(&mut diagnostics, config_file);
    Loaded {
        desired: desired.filter(|_| !has_errors(&diagnostics)),
        diagnostics,
        instance_files,
    }
}

/// The outcome of a reload by the server.
#[derive(Debug)]
pub struct Reload {
    /// `None` when tenement.toml (or a check across instances) has errors: everything stays
    /// as it was.
    pub desired: Option<DesiredState>,
    /// The instance files in effect: the valid ones, and for a broken file, its last valid
    /// version. Give them to the next reload.
    pub files: BTreeMap<InstanceKey, InstanceFile>,
    /// Instances kept at their last valid declaration because their file is broken.
    pub frozen: Vec<InstanceKey>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Reloads desired state for a running server. A broken instance file freezes only its
/// instance: it keeps its declaration from `last_files`, while other changes apply. A broken
/// tenement.toml freezes everything (`desired` is `None`).
pub fn reload(config_path: &Path, last_files: &BTreeMap<InstanceKey, InstanceFile>) -> Reload {
    let mut diagnostics = Vec::new();
    let parsed = read_config(config_path, &mut diagnostics);
    let read = match &parsed.outline {
        Some(outline) => read_instance_files(outline, &mut diagnostics),
        None => Vec::new(),
    };
    let mut files = Vec::with_capacity(read.len());
    let mut frozen = Vec::new();
    for (key, file) in read {
        match file {
            Some(file) => files.push((key, file)),
            None => {
                if let Some(last) = last_files.get(&key) {
                    files.push((key.clone(), last.clone()));
                    frozen.push(key);
                }
            }
        }
    }
    // Built in bulk: its nodes are full (inserted one by one in order, they are half empty).
    let files: BTreeMap<InstanceKey, InstanceFile> = files.into_iter().collect();
    let desired = parsed.config.and_then(|config| {
        let before = diagnostics.len();
        let valid: Vec<InstanceFile> = files.values().cloned().collect();
        let desired = resolve(config, &valid, &mut diagnostics);
        (!has_errors(&diagnostics[before..])).then_some(desired)
    });
    let config_file = config_path
        .file_name()
        .map(Path::new)
        .unwrap_or(config_path);
    sort_diagnostics(&mut diagnostics, config_file);
    Reload {
        desired,
        // Without an outline (tenement.toml does not parse) no file was read: keep the last.
        files: if parsed.outline.is_some() {
            files
        } else {
            last_files.clone()
        },
        frozen,
        diagnostics,
    }
}

/// Orders diagnostics as a reader goes: tenement.toml first, then files by path, each by
/// position.
pub fn sort_diagnostics(diagnostics: &mut [Diagnostic], config_file: &Path) {
    diagnostics.sort_by(|a, b| {
        let key = |d: &Diagnostic| (d.file != config_file, d.file.clone(), d.line, d.column);
        key(a).cmp(&key(b))
    });
}

/// Reads and parses tenement.toml: a regular file (a link to one is followed) of at most
/// [`CONFIG_FILE_LIMIT`] bytes, read without blocking on a FIFO.
pub fn read_config(config_path: &Path, diagnostics: &mut Vec<Diagnostic>) -> ParsedConfig {
    match read_config_text(config_path, CONFIG_FILE_LIMIT) {
        Ok(text) => parse_config(config_path, text, diagnostics),
        Err(error) => {
            diagnostics.push(
                Diagnostic::in_file(config_path, format!("the config file {error}"))
                    .with_hint_opt(config_file_hint(&error)),
            );
            ParsedConfig {
                config: None,
                outline: None,
            }
        }
    }
}

fn config_file_hint(error: &FileTextError) -> Option<String> {
    match error {
        FileTextError::TooBig { .. } => Some(
            "tenement.toml holds templates and settings; declare many instances with files in instances/".to_string(),
        ),
        FileTextError::NotRegular(_) | FileTextError::Link => {
            Some("--config (or TENEMENT_CONFIG) must name a regular file or a directory holding tenement.toml".to_string())
        }
        FileTextError::NotUtf8 => Some("tenement.toml is TOML, which is UTF-8".to_string()),
        FileTextError::Io(_) => None,
    }
}

/// Reads and parses every instance file; `None` for a file with errors (reported), so that
/// a broken file can keep its instance's last valid declaration. An entry named like an
/// instance file that cannot be read at all (a link, a directory, a FIFO, too big, not UTF-8,
/// unreadable) is such a file too: its instance comes with `None`.
pub fn read_instance_files(
    outline: &Outline,
    diagnostics: &mut Vec<Diagnostic>,
) -> Vec<(InstanceKey, Option<InstanceFile>)> {
    scan_instance_files(outline, diagnostics).0
}

/// [`read_instance_files`], and what could not be listed at all (a service directory that is
/// a link or unreadable, an instances directory that cannot be listed): the instances there
/// are unknown, not undeclared.
pub fn scan_instance_files(
    outline: &Outline,
    diagnostics: &mut Vec<Diagnostic>,
) -> (Vec<(InstanceKey, Option<InstanceFile>)>, Unlisted) {
    let scan = scan::scan_instances(&outline.instances_dir, &outline.dir);
    diagnostics.extend(scan.diagnostics);
    let parsed: Vec<(InstanceKey, Option<InstanceFile>, Vec<Diagnostic>)> = scan
        .files
        .into_par_iter()
        .map(|scanned| match scanned.file {
            Ok(file) => {
                let mut problems = Vec::new();
                let parsed = parse_file(outline, &scanned.key, &file, &mut problems);
                (scanned.key, parsed, problems)
            }
            Err(problem) => (scanned.key, None, vec![problem]),
        })
        .collect();
    let files = parsed
        .into_iter()
        .map(|(key, file, problems)| {
            diagnostics.extend(problems);
            (key, file)
        })
        .collect();
    (files, scan.unlisted)
}

/// The check an edit of `key`'s instance file must pass before it is written (see
/// `config::edit`): what `ten validate` would say of the file with that text, against
/// tenement.toml at `config_path` as it is now (its services). When tenement.toml cannot be
/// read as TOML, only the file's own keys are checked.
pub fn instance_file_check(
    config_path: &Path,
    key: &InstanceKey,
) -> impl Fn(&str) -> Vec<Diagnostic> + use<> {
    let mut ignored = Vec::new();
    let outline = read_config(config_path, &mut ignored).outline;
    let key = key.clone();
    move |text: &str| {
        // Shown relative to the config's directory, as `ten validate` shows it.
        let path = match &outline {
            Some(outline) => {
                let path = crate::config::edit::instance_file_path(&outline.instances_dir, &key);
                path.strip_prefix(&outline.dir)
                    .map_or_else(|_| path.clone(), Path::to_path_buf)
            }
            None => crate::config::edit::instance_file_path(Path::new("instances"), &key),
        };
        let file = SourceFile {
            path,
            text: text.to_string(),
        };
        let mut diagnostics = Vec::new();
        match &outline {
            Some(outline) => {
                parse_file(outline, &key, &file, &mut diagnostics);
            }
            None => {
                parse_instance_file(&file, key.service.as_str(), &mut diagnostics);
            }
        }
        diagnostics
    }
}

fn parse_file(
    outline: &Outline,
    key: &InstanceKey,
    file: &SourceFile,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<InstanceFile> {
    if !outline.services.contains(&key.service) {
        let service = key.service.as_str();
        diagnostics.push(
            Diagnostic::in_file(
                &file.path,
                format!(
                    "instance file for service `{service}`, which is not declared in tenement.toml"
                ),
            )
            .with_hint(unknown_service_hint(service, &outline.services)),
        );
        return None;
    }
    let overrides = parse_instance_file(file, key.service.as_str(), diagnostics)?;
    Some(InstanceFile::new(key.clone(), file.path.clone(), overrides))
}

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
    check_on_demand_workers(files, &instances, diagnostics);
    // Workers take no port.
    let listening = instances
        .values()
        .filter(|spec| spec.listen != Listen::None)
        .count();
    check_port_range(&config, listening, diagnostics);
    DesiredState { config, instances }
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

/// An instance file may ask for `start = "on-demand"`; a worker's instance cannot honour it
/// (no request wakes it). The service's own key is checked with the service.
fn check_on_demand_workers(
    files: &[InstanceFile],
    instances: &BTreeMap<InstanceKey, Arc<InstanceSpec>>,
    diagnostics: &mut Vec<Diagnostic>,
) {
    for file in files {
        let worker = instances
            .get(&file.key)
            .is_some_and(|spec| spec.listen == Listen::None);
        if worker && file.overrides().start == Some(crate::config::StartMode::OnDemand) {
            diagnostics.push(
                Diagnostic::in_file(
                    &file.path,
                    format!(
                        "`start = \"on-demand\"` cannot work for {}: service {} runs workers (listen = \"none\"), which answer no request that would wake them",
                        file.key, file.key.service
                    ),
                )
                .with_hint("remove `start` from this file"),
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
    use crate::config::RunState;

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
    fn a_broken_instance_file_keeps_its_last_valid_declaration() {
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("tenement.toml");
        let write = |path: &str, text: &str| {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        write("tenement.toml", "[service.notes]\ncommand = \"x\"\n");
        write("instances/notes/alice.toml", "weight = 10\n");
        write("instances/notes/bob.toml", "");
        let first = reload(&config_path, &BTreeMap::new());
        assert!(first.frozen.is_empty());
        assert_eq!(first.desired.unwrap().instances.len(), 2);

        write("instances/notes/alice.toml", "weight = \n");
        write("instances/notes/carol.toml", "");
        let second = reload(&config_path, &first.files);
        assert_eq!(second.frozen, [key("notes:alice")]);
        let desired = second.desired.unwrap();
        assert_eq!(
            desired.instances[&key("notes:alice")].weight,
            10,
            "alice keeps her last valid file"
        );
        assert!(
            desired.instances.contains_key(&key("notes:carol")),
            "other changes still apply"
        );
        assert!(has_errors(&second.diagnostics));

        write("tenement.toml", "[service.notes\n");
        let third = reload(&config_path, &second.files);
        assert!(
            third.desired.is_none(),
            "a broken tenement.toml freezes everything"
        );
        assert_eq!(third.files.len(), 3);
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
