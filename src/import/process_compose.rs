//! process-compose's YAML: each entry of `processes:` becomes a service. Commands run by
//! process-compose's shell (bash by default) stay one line unless they need the shell; a
//! process that reads `$PORT` is an HTTP service, the others are workers; `replicas` is a
//! process set, `namespace` a group, the probes one health check.

use serde_json::{Map, Value};

use super::Source;
use super::json::{boolean, env_pairs, shown, text, whole};
use super::model::{Check, Command, Format, Group, Project, Service};
use super::report::{Item, Report};
use super::text::{GIVEN_ENV, INDEX, Namer, readable, shell_line, signal_name, with_index};

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
        let item = Item::not_imported(&self.at, message)
            .key(key, &shown(value))
            .service(&self.service.name);
        self.report.push(item);
    }

    fn note(&mut self, key: &str, value: &Value, message: impl Into<String>) {
        let item = Item::note(&self.at, message)
            .key(key, &shown(value))
            .service(&self.service.name);
        self.report.push(item);
    }

    fn seconds(&mut self, key: &str, value: &Value) -> Option<u64> {
        let seconds = whole(value);
        if seconds.is_none() {
            self.not_imported(key, value, "not a whole number of seconds");
        }
        seconds
    }

    fn key(&mut self, key: &str, value: &Value, map: &Map<String, Value>, shell: &str) {
        match key {
            "command" => match value.as_str() {
                Some(line) => {
                    let line = shell_line(line, shell);
                    if let Command::Shell { .. } = line.command {
                        self.note(key, value, format!("it uses shell syntax, so it runs as `{shell} -c '...'`, as process-compose runs it"));
                    }
                    self.variables = line.variables;
                    self.service.command = Some(line.command);
                }
                None => self.not_imported(key, value, "not a string"),
            },
            "entrypoint" => {
                if map.contains_key("command") {
                    self.not_imported(key, value, "process-compose runs `command` when both are set");
                } else {
                    self.entrypoint(value);
                }
            }
            "working_dir" => match text(value) {
                Some(dir) => self.service.workdir = Some(dir),
                None => self.not_imported(key, value, "not a string"),
            },
            "environment" => {
                let (pairs, unreadable) = env_pairs(value);
                for (name, text) in pairs {
                    self.service.set_env(&name, &text);
                }
                for entry in unreadable {
                    self.not_imported(key, value, format!("{entry:?} is not KEY=value"));
                }
            }
            "availability" => self.availability(value),
            "depends_on" => self.not_imported(key, value, "ten starts every instance at once and does not wait for another: make the program wait for (or retry) what it needs; a lower stop_order stops it first"),
            "liveness_probe" | "readiness_probe" => {} // with both known, in `finish`.
            "replicas" => match whole(value) {
                Some(count) if count > 1 => self.service.count = u32::try_from(count).ok(),
                Some(_) => {}
                None => self.not_imported(key, value, "not a number"),
            },
            "log_location" => match text(value) {
                Some(path) => {
                    self.service.stdout_log = Some(path.clone());
                    self.service.stderr_log = Some(path);
                    self.service.remark("stderr_log", "process-compose writes both streams to log_location");
                }
                None => self.not_imported(key, value, "not a string"),
            },
            "log_configuration" => self.log_configuration(value),
            "shutdown" => self.shutdown(value),
            "disabled" => {
                if boolean(value) == Some(true) {
                    self.service.stopped = Some("disabled: true".to_string());
                    self.note(key, value, "the instances are declared stopped (state = \"stopped\" in their instance files); `ten start NAME:ID` starts one");
                }
            }
            "namespace" => match value {
                Value::String(namespace) if namespace != "default" => self.namespaces.push(namespace.clone()),
                Value::Array(items) => self.namespaces.extend(items.iter().filter_map(Value::as_str).filter(|n| *n != "default").map(str::to_string)),
                _ => {}
            },
            "description" => self.service.description = text(value),
            "is_daemon" => {
                if boolean(value) == Some(true) {
                    self.not_imported(key, value, "ten supervises a process that stays in the foreground: run the program without daemonizing");
                }
            }
            "ready_log_line" => self.not_imported(key, value, "ten does not read output for readiness: a health check (health_check = { exec = [...] }) can test it"),
            "success_exit_codes" => self.not_imported(key, value, "ten counts every exit but 0 as a failure: make the program exit 0 when it ends as expected"),
            "schedule" => self.not_imported(key, value, "ten runs services, not scheduled jobs: use a systemd timer or cron"),
            "watch" => self.not_imported(key, value, "ten restarts on changes of its files, not of your sources: restart with `ten restart NAME:ID` after a change"),
            "env_file" => self.not_imported(key, value, "ten does not read .env files: put the variables in [service.NAME.env]"),
            _ => self.not_imported(key, value, "no equivalent in ten: nothing to import"),
        }
    }

    /// `entrypoint` runs without a shell; process-compose uses `command` when both are set.
    fn entrypoint(&mut self, value: &Value) {
        let words: Option<Vec<String>> = value
            .as_array()
            .map(|items| items.iter().filter_map(text).collect());
        match words {
            Some(words) if !words.is_empty() => self.service.command = Some(Command::Argv(words)),
            _ => self.not_imported("entrypoint", value, "not a list of words"),
        }
    }

    fn availability(&mut self, value: &Value) {
        let Some(map) = value.as_object() else {
            self.not_imported("availability", value, "not a mapping");
            return;
        };
        for (key, value) in map {
            let key_path = format!("availability.{key}");
            match key.as_str() {
                "restart" => match value.as_str() {
                    Some("always") => self.service.restart = Some("always"),
                    Some("on_failure") => self.service.restart = Some("on-failure"),
                    Some("no") => self.service.restart = Some("never"),
                    Some("exit_on_failure") => {
                        self.service.restart = Some("on-failure");
                        self.not_imported(&key_path, value, "ten never stops the others because one failed: it restarts this one (on-failure)");
                    }
                    _ => self.not_imported(&key_path, value, "not always, on_failure, exit_on_failure or no"),
                },
                "max_restarts" => self.not_imported(&key_path, value, "ten's restart limit is global: max_restarts (and restart_window) in [settings]"),
                "backoff_seconds" => self.not_imported(&key_path, value, "ten's restart backoff is global: backoff_base_ms and backoff_max_ms in [settings]"),
                "exit_on_end" | "exit_on_skipped" => self.not_imported(&key_path, value, "ten keeps serving the other services whatever one of them does"),
                _ => self.not_imported(&key_path, value, "no equivalent in ten"),
            }
        }
    }

    fn shutdown(&mut self, value: &Value) {
        let Some(map) = value.as_object() else {
            self.not_imported("shutdown", value, "not a mapping");
            return;
        };
        for (key, value) in map {
            let key_path = format!("shutdown.{key}");
            match key.as_str() {
                "signal" => match text(value).as_deref().and_then(signal_name) {
                    Some(signal) => self.service.stop_signal = Some(signal.to_string()),
                    None => self.not_imported(&key_path, value, "not a signal ten can send: TERM, INT, QUIT, HUP, KILL, USR1, USR2 or WINCH"),
                },
                "timeout_seconds" => self.service.stop_timeout = self.seconds(&key_path, value),
                "command" => self.not_imported(&key_path, value, "ten stops a process with its stop_signal, then SIGKILL after stop_timeout: make the program stop on the signal"),
                "parent_only" => {
                    if boolean(value) == Some(true) {
                        self.note(&key_path, value, "ten signals the whole process group of an instance");
                    }
                }
                _ => self.not_imported(&key_path, value, "no equivalent in ten"),
            }
        }
    }

    fn log_configuration(&mut self, value: &Value) {
        let Some(map) = value.as_object() else {
            self.not_imported("log_configuration", value, "not a mapping");
            return;
        };
        for (key, value) in map {
            let key_path = format!("log_configuration.{key}");
            let Some(rotation) = value.as_object().filter(|_| key == "rotation") else {
                self.not_imported(
                    &key_path,
                    value,
                    "ten writes output as the program prints it, one line per line",
                );
                continue;
            };
            for (key, value) in rotation {
                let key_path = format!("log_configuration.rotation.{key}");
                match key.as_str() {
                    "max_size_mb" => match whole(value) {
                        Some(megabytes) => self.service.log_max_bytes = Some(megabytes << 20),
                        None => self.not_imported(&key_path, value, "not a number"),
                    },
                    "max_backups" => match whole(value) {
                        Some(backups) => self.service.log_backups = Some(backups),
                        None => self.not_imported(&key_path, value, "not a number"),
                    },
                    _ => self.not_imported(
                        &key_path,
                        value,
                        "ten rotates by size only and keeps log_backups files, uncompressed",
                    ),
                }
            }
        }
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

    /// One health check from the liveness probe (or else the readiness probe).
    fn probes(&mut self, map: &Map<String, Value>, port: Option<&str>) {
        let liveness = map.get("liveness_probe");
        let readiness = map.get("readiness_probe");
        let (key, probe) = match (liveness, readiness) {
            (Some(liveness), Some(readiness)) => {
                if liveness == readiness {
                    self.note("readiness_probe", readiness, "the same as the liveness probe: ten's one health check gates traffic and restarts");
                } else {
                    self.not_imported("readiness_probe", readiness, "ten has one health check per service (it gates traffic and restarts): the liveness probe's is imported");
                }
                ("liveness_probe", liveness)
            }
            (Some(liveness), None) => ("liveness_probe", liveness),
            (None, Some(readiness)) => ("readiness_probe", readiness),
            (None, None) => return,
        };
        let Some(probe) = probe.as_object() else {
            self.not_imported(key, probe, "not a mapping");
            return;
        };
        let check = if let Some(exec) = probe.get("exec") {
            self.exec_probe(key, exec)
        } else if let Some(http) = probe.get("http_get") {
            self.http_probe(key, http, port)
        } else {
            self.not_imported(
                key,
                &Value::Object(probe.clone()),
                "neither exec nor http_get",
            );
            None
        };
        if check.is_none() {
            return;
        }
        self.service.health = check;
        for (name, value) in probe {
            let key_path = format!("{key}.{name}");
            let target = match name.as_str() {
                "initial_delay_seconds" => &mut self.service.health_start_period,
                "period_seconds" => &mut self.service.health_interval,
                "timeout_seconds" => &mut self.service.health_timeout,
                "failure_threshold" => &mut self.service.health_retries,
                "exec" | "http_get" => continue,
                "success_threshold" => {
                    if whole(value) != Some(1) {
                        self.not_imported(
                            &key_path,
                            value,
                            "one passing check makes an instance healthy in ten",
                        );
                    }
                    continue;
                }
                _ => {
                    self.not_imported(&key_path, value, "no equivalent in ten's health checks");
                    continue;
                }
            };
            match whole(value) {
                Some(number) => *target = Some(number),
                None => self.not_imported(&key_path, value, "not a whole number"),
            }
        }
        if self.service.health_timeout.is_none() {
            self.service.health_timeout = Some(1);
            self.service.remark(
                "health_timeout",
                "process-compose's default: timeout_seconds = 1",
            );
        }
    }

    fn exec_probe(&mut self, key: &str, exec: &Value) -> Option<Check> {
        let Some(line) = exec.get("command").and_then(Value::as_str) else {
            self.not_imported(key, exec, "an exec probe without a command");
            return None;
        };
        if let Some(dir) = exec.get("working_dir") {
            self.not_imported(
                &format!("{key}.exec.working_dir"),
                dir,
                "ten runs the check in the service's workdir",
            );
        }
        let words = match shell_line(line, "sh").command {
            Command::Line(line) => shell_words::split(&line).ok(),
            Command::Shell { shell, line } => Some(vec![shell, "-c".to_string(), line]),
            Command::Argv(words) => Some(words),
        };
        match words {
            Some(words) if !words.is_empty() => Some(Check::Exec(words)),
            _ => {
                self.not_imported(key, exec, "the command cannot be split into words");
                None
            }
        }
    }

    fn http_probe(&mut self, key: &str, http: &Value, port: Option<&str>) -> Option<Check> {
        let host = http
            .get("host")
            .and_then(Value::as_str)
            .unwrap_or("127.0.0.1");
        if !["127.0.0.1", "localhost", "0.0.0.0", "::1"].contains(&host) {
            self.not_imported(key, http, "ten checks its own instances on 127.0.0.1 only");
            return None;
        }
        if http
            .get("scheme")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.eq_ignore_ascii_case("http"))
        {
            self.not_imported(key, http, "ten's HTTP checks are plain HTTP");
            return None;
        }
        let path = http
            .get("path")
            .and_then(Value::as_str)
            .unwrap_or("/")
            .to_string();
        let probe_port = http
            .get("port")
            .and_then(whole)
            .and_then(|p| u16::try_from(p).ok());
        if !self.service.worker {
            if let (Some(probe_port), Some(port)) = (probe_port, port)
                && port != probe_port.to_string()
            {
                self.note(key, http, "ten checks the instance on its own PORT");
            }
            return Some(Check::Http(path));
        }
        match probe_port {
            Some(probe_port) => {
                self.not_imported(key, http, format!("a worker (it does not read $PORT) gets a TCP check of port {probe_port}: ten's HTTP checks go to the port ten gives, so the path {path} is not checked"));
                Some(Check::Tcp(probe_port))
            }
            None => {
                self.not_imported(
                    key,
                    http,
                    "an HTTP check without a port, of a worker: nothing to check",
                );
                None
            }
        }
    }
}
