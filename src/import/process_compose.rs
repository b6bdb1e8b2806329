//! process-compose's YAML: each entry of `processes:` becomes a service. Commands run by
//! process-compose's shell (bash by default) stay one line unless they need the shell; a
//! process that reads `$PORT` is an HTTP service, the others are workers; `replicas` is a
//! process set, `namespace` a group, the probes one health check.
//!
//! This file reads the file's own keys, each process into a service and its namespaces into
//! groups, and settles a service after its keys; `keys` maps a process's keys one by one,
//! `probes` makes its one health check.

mod keys;
mod probes;

use serde_json::{Map, Value};

use super::Source;
use super::json::{env_pairs, report_key, shown, whole};
use super::model::{Command, Format, Group, Project, Service};
use super::report::{Item, Report};
use super::text::{GIVEN_ENV, INDEX, Namer, readable, with_index};

pub(crate) fn read(document: &Value, source: &Source<'_>) -> Project {
    let mut project = Project::new(Format::ProcessCompose, source.name);
    let Some(root) = document.as_object() else {
        project.report.push(Item::not_imported(
            "the file",
            "not a mapping with `processes:`: nothing to import",
        ));
        return project;
    };
    let mut file = FileSettings {
        shell: "bash".to_string(),
        env: Vec::new(),
    };
    for (key, value) in root {
        let item = |message: &str| Item::not_imported(key, message).key(key, &shown(value));
        match key.as_str() {
            "processes" | "version" => {}
            "environment" => {
                let (pairs, unreadable) = env_pairs(value);
                file.env = pairs;
                for entry in unreadable {
                    project.report.push(item(&format!("{entry:?} is not KEY=value")));
                }
                project.report.push(
                    Item::note(key, "given to every service's env, under the process's own environment")
                        .key(key, &shown(value)),
                );
            }
            "shell" => match value.get("shell_command").and_then(Value::as_str) {
                Some(shell) => file.shell = shell.to_string(),
                None => project.report.push(item("no shell_command: bash is used")),
            },
            key if key.starts_with("x-") => project.report.push(
                Item::note(key, "an extension key: process-compose ignores it, and its YAML anchors are read where they are used")
                    .key(key, &shown(value)),
            ),
            "log_location" | "log_level" | "log_length" | "log_configuration" => project
                .report
                .push(item("process-compose's own log: ten serve logs to stderr (the journal under `ten install`)")),
            _ => project
                .report
                .push(item("a setting of process-compose itself: nothing to import")),
        }
    }
    let Some(processes) = root.get("processes").and_then(Value::as_object) else {
        project.report.push(Item::not_imported(
            "processes",
            "no `processes:` mapping: nothing to import",
        ));
        return project;
    };
    let mut namer = Namer::default();
    for (name, process) in processes {
        let at = format!("processes.{name}");
        let Some(map) = process.as_object() else {
            project
                .report
                .push(Item::not_imported(&at, "not a mapping: nothing to import"));
            continue;
        };
        if let Some(service) = read_process(name, map, &file, &mut namer, &mut project) {
            project.services.push(service);
        }
    }
    project
}

/// What the file gives every process.
struct FileSettings {
    shell: String,
    env: Vec<(String, String)>,
}

fn read_process(
    source_name: &str,
    map: &Map<String, Value>,
    file: &FileSettings,
    namer: &mut Namer,
    project: &mut Project,
) -> Option<Service> {
    let at = format!("processes.{source_name}");
    let (name, renamed) = namer.name(source_name, "process");
    if renamed {
        project.report.push(
            Item::renamed(&at, format!("process {source_name:?} is the service `{name}`: ten's names are DNS labels (lowercase letters, digits and '-')"))
                .service(&name),
        );
    }
    let mut reader = Reader {
        at,
        source_name,
        service: Service::new(name, format!("processes.{source_name}")),
        report: &mut project.report,
        variables: Vec::new(),
        namespaces: Vec::new(),
    };
    for (name, value) in &file.env {
        reader.service.set_env(name, value);
    }
    for (key, value) in map {
        reader.key(key, value, map, &file.shell);
    }
    if reader.service.command.is_none() {
        let at = reader.at.clone();
        reader
            .report
            .push(Item::not_imported(&at, "no command: nothing to run"));
        return None;
    }
    reader.finish(map);
    let namespaces = std::mem::take(&mut reader.namespaces);
    let service = reader.service;
    for namespace in namespaces {
        join_group(&mut project.groups, &namespace, &service.name);
    }
    Some(service)
}

/// Adds `service` to the group made from process-compose's `namespace`.
fn join_group(groups: &mut Vec<Group>, namespace: &str, service: &str) {
    let name = crate::names::suggest_label(namespace).unwrap_or_else(|| namespace.to_string());
    match groups.iter_mut().find(|group| group.name == name) {
        Some(group) => group.services.push(service.to_string()),
        None => groups.push(Group {
            name,
            origin: format!("namespace {namespace:?}"),
            services: vec![service.to_string()],
        }),
    }
}

struct Reader<'a> {
    at: String,
    source_name: &'a str,
    service: Service,
    report: &'a mut Report,
    /// The variables the command reads.
    variables: Vec<String>,
    namespaces: Vec<String>,
}

impl Reader<'_> {
    fn not_imported(&mut self, key: &str, value: &Value, message: impl Into<String>) {
        let item = Item::not_imported(&self.at, message);
        report_key(self.report, item, key, value, &self.service.name);
    }

    fn note(&mut self, key: &str, value: &Value, message: impl Into<String>) {
        let item = Item::note(&self.at, message);
        report_key(self.report, item, key, value, &self.service.name);
    }

    fn seconds(&mut self, key: &str, value: &Value) -> Option<u64> {
        let seconds = whole(value);
        if seconds.is_none() {
            self.not_imported(key, value, "not a whole number of seconds");
        }
        seconds
    }

    /// After every key: defaults that differ from ten's, PORT, the variables process-compose
    /// sets, log files of a set, and the probes.
    fn finish(&mut self, map: &Map<String, Value>) {
        if self.service.restart.is_none() {
            self.service.restart = Some("never");
            self.service.remark(
                "restart",
                "process-compose's default: availability.restart = \"no\"",
            );
        }
        let port = self.service.remove_env("PORT");
        let reads_port = port.is_some() || self.variables.iter().any(|v| v == "PORT");
        self.service.worker = !reads_port;
        if let Some(port) = &port {
            let value = Value::String(format!("PORT={port}"));
            self.note("environment", &value, format!("PORT = {port} is not imported: ten gives each instance its own PORT (the app must read it) and proxies NAME.DOMAIN to it"));
        }
        if let Some(Command::Line(line)) = &self.service.command
            && line.contains(super::text::PORT)
        {
            let shown = readable(line);
            self.note(
                "command",
                &Value::String(shown.clone()),
                "$PORT is ten's {port}",
            );
        }
        self.replica_variables();
        if self.service.count.is_some() {
            for log in [&mut self.service.stdout_log, &mut self.service.stderr_log] {
                if let Some(path) = log
                    && !path.contains(INDEX)
                {
                    *path = with_index(path);
                }
            }
            if let Some(path) = self.service.stdout_log.clone() {
                self.note(
                    "log_location",
                    &Value::String(readable(&path)),
                    "each replica writes its own file",
                );
            }
        }
        self.probes(map, port.as_deref());
        let missing: Vec<String> = self
            .variables
            .iter()
            .filter(|v| !GIVEN_ENV.contains(&v.as_str()) && !self.service.has_env(v))
            .cloned()
            .collect();
        if !missing.is_empty() {
            let value = Value::String(missing.join(", "));
            self.note("command", &value, format!("it reads {} from its environment: ten starts tenants with a clean one (PATH, HOME, LANG, PORT and env), so add them to [service.{}.env]", missing.join(", "), self.service.name));
        }
    }

    /// `PC_REPLICA_NUM` and `PC_PROC_NAME`, which process-compose sets, when the command reads them.
    fn replica_variables(&mut self) {
        if self.variables.iter().any(|v| v == "PC_REPLICA_NUM") {
            let number = match self.service.count {
                Some(_) => INDEX.to_string(),
                None => "0".to_string(),
            };
            self.service.set_env("PC_REPLICA_NUM", &number);
            self.service.remark(
                "env",
                "PC_REPLICA_NUM and PC_PROC_NAME are what process-compose sets",
            );
        }
        if self.variables.iter().any(|v| v == "PC_PROC_NAME") {
            self.service.set_env("PC_PROC_NAME", self.source_name);
            self.service.remark(
                "env",
                "PC_REPLICA_NUM and PC_PROC_NAME are what process-compose sets",
            );
        }
    }
}
