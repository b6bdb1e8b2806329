//! pm2's ecosystem file in its JSON form (`{"apps": [...]}`, or the list alone): each app
//! becomes a service. `script` runs with the interpreter pm2 would pick; an app with `PORT`
//! in its `env` is an HTTP service, the others are workers; `instances` is a process set,
//! `namespace` a group. pm2 stops apps with SIGINT and restarts them by default.

use serde_json::{Map, Value};

use super::Source;
use super::json::{boolean, env_pairs, report_key, shown, text};
use super::model::{Command, Format, Group, Project, Service};
use super::report::{Item, Report};
use super::text::{INDEX, Namer, bytes, readable, seconds_of_millis, with_index};

pub(crate) fn read(document: &Value, source: &Source<'_>) -> Project {
    let mut project = Project::new(Format::Pm2, source.name);
    let apps = match document {
        Value::Array(apps) => apps.as_slice(),
        Value::Object(root) => {
            for (key, value) in root {
                let message = match key.as_str() {
                    "apps" => continue,
                    "deploy" => {
                        "pm2's deploy (git pull, install, restart over SSH) is not ten's: deploy the files with your own tooling, then `ten apply`"
                    }
                    _ => "not an app: nothing to import",
                };
                project
                    .report
                    .push(Item::not_imported(key, message).key(key, &shown(value)));
            }
            match root.get("apps") {
                Some(Value::Array(apps)) => apps.as_slice(),
                Some(Value::Object(_)) => std::slice::from_ref(&root["apps"]),
                _ => &[],
            }
        }
        _ => &[],
    };
    if apps.is_empty() {
        project
            .report
            .push(Item::not_imported("apps", "no apps: nothing to import"));
    }
    let mut namer = Namer::default();
    for (index, app) in apps.iter().enumerate() {
        let Some(map) = app.as_object() else {
            project.report.push(Item::not_imported(
                &format!("apps[{index}]"),
                "not an object: nothing to import",
            ));
            continue;
        };
        if let Some(service) = read_app(index, map, source.is_binary, &mut namer, &mut project) {
            project.services.push(service);
        }
    }
    project
}

fn read_app(
    index: usize,
    map: &Map<String, Value>,
    is_binary: &dyn Fn(&str) -> Option<bool>,
    namer: &mut Namer,
    project: &mut Project,
) -> Option<Service> {
    let script = map.get("script").and_then(Value::as_str);
    let source_name = match (map.get("name").and_then(Value::as_str), script) {
        (Some(name), _) => name.to_string(),
        // pm2 names an app after its script, without the extension.
        (None, Some(script)) => {
            let file = script.rsplit('/').next().unwrap_or(script);
            file.split('.').next().unwrap_or(file).to_string()
        }
        (None, None) => format!("app{index}"),
    };
    let at = format!("apps[{index}] ({source_name})");
    let Some(script) = script else {
        project
            .report
            .push(Item::not_imported(&at, "no script: nothing to run"));
        return None;
    };
    let (name, renamed) = namer.name(&source_name, "app");
    if renamed {
        project.report.push(
            Item::renamed(&at, format!("app {source_name:?} is the service `{name}`: ten's names are DNS labels (lowercase letters, digits and '-')"))
                .service(&name),
        );
    }
    let mut reader = Reader {
        is_binary,
        at: at.clone(),
        service: Service::new(name, at),
        report: &mut project.report,
        instance_var: "NODE_APP_INSTANCE".to_string(),
        namespace: None,
    };
    reader.service.restart = Some("always");
    reader
        .service
        .remark("restart", "pm2's default: autorestart = true");
    reader.service.stop_signal = Some("INT".to_string());
    reader
        .service
        .remark("stop_signal", "pm2 stops an app with SIGINT");
    reader.command(script, map);
    for (key, value) in map {
        reader.key(key, value);
    }
    reader.finish(map);
    let namespace = reader.namespace.take();
    let service = reader.service;
    if let Some(namespace) = namespace {
        let group_name =
            crate::names::suggest_label(&namespace).unwrap_or_else(|| namespace.clone());
        match project.groups.iter_mut().find(|g| g.name == group_name) {
            Some(group) => group.services.push(service.name.clone()),
            None => project.groups.push(Group {
                name: group_name,
                origin: format!("namespace {namespace:?}"),
                services: vec![service.name.clone()],
            }),
        }
    }
    Some(service)
}

struct Reader<'a> {
    /// Whether a script is a binary (see `Source::is_binary`).
    is_binary: &'a dyn Fn(&str) -> Option<bool>,
    at: String,
    service: Service,
    report: &'a mut Report,
    instance_var: String,
    namespace: Option<String>,
}

/// Interpreters pm2 picks by the script's extension.
const INTERPRETERS: &[(&str, &str)] = &[
    ("js", "node"),
    ("cjs", "node"),
    ("mjs", "node"),
    ("sh", "bash"),
    ("py", "python"),
    ("rb", "ruby"),
    ("php", "php"),
    ("pl", "perl"),
    ("coffee", "coffee"),
];

impl Reader<'_> {
    fn not_imported(&mut self, key: &str, value: &Value, message: impl Into<String>) {
        let item = Item::not_imported(&self.at, message);
        report_key(self.report, item, key, value, &self.service.name);
    }

    fn note(&mut self, key: &str, value: &Value, message: impl Into<String>) {
        let item = Item::note(&self.at, message);
        report_key(self.report, item, key, value, &self.service.name);
    }

    /// The command pm2 runs: interpreter, its arguments, the script, the app's arguments.
    /// Whether the script is a binary (pm2 runs one directly), at its path relative to the
    /// app's `cwd`; `None` when it cannot be read where the import runs.
    fn is_binary(&self, script: &str, map: &Map<String, Value>) -> Option<bool> {
        let path = match map.get("cwd").and_then(Value::as_str) {
            Some(cwd) if !script.starts_with('/') => {
                format!("{}/{script}", cwd.trim_end_matches('/'))
            }
            _ => script.to_string(),
        };
        (self.is_binary)(&path)
    }

    fn command(&mut self, script: &str, map: &Map<String, Value>) {
        let interpreter = map
            .get("interpreter")
            .or_else(|| map.get("exec_interpreter"))
            .and_then(Value::as_str);
        let file = script.rsplit('/').next().unwrap_or(script);
        let extension = file.rsplit_once('.').map(|(_, extension)| extension);
        let chosen = match interpreter {
            Some("none") => None,
            Some(interpreter) => Some(interpreter.to_string()),
            None => match extension {
                Some(extension) => INTERPRETERS
                    .iter()
                    .find(|(known, _)| *known == extension)
                    .map(|(_, interpreter)| interpreter.to_string()),
                // A path without extension runs with node unless it is a binary (pm2 looks);
                // a bare name is a program on PATH.
                None if script.contains('/') => match self.is_binary(script, map) {
                    Some(true) => None,
                    Some(false) => Some("node".to_string()),
                    None => {
                        self.note("script", &Value::String(script.to_string()), format!("{script} could not be read here, so it is taken for a node script, as pm2 takes one that is not a binary; if it is a program, set interpreter = \"none\" in the ecosystem file or command in tenement.toml"));
                        Some("node".to_string())
                    }
                },
                None => None,
            },
        };
        let mut words: Vec<String> = Vec::new();
        if let Some(interpreter) = &chosen {
            words.push(shell_words::quote(interpreter).into_owned());
            for key in ["interpreter_args", "node_args"] {
                if let Some(args) = map.get(key) {
                    words.extend(self.arguments(key, args));
                }
            }
        }
        words.push(shell_words::quote(script).into_owned());
        if let Some(args) = map.get("args") {
            words.extend(self.arguments("args", args));
        }
        let line = words.join(" ");
        let script_value = Value::String(script.to_string());
        match (&chosen, interpreter) {
            (Some(interpreter), None) => self.note(
                "script",
                &script_value,
                format!("runs with {interpreter}, as pm2 runs it: {line}"),
            ),
            (None, None) => self.note(
                "script",
                &script_value,
                format!(
                    "runs as a program of its own: {line} (give interpreter if pm2 ran it with one)"
                ),
            ),
            _ => {}
        }
        self.service.command = Some(Command::Line(line));
    }

    /// `args` as pm2 takes them: one string (split like a shell) or a list of words.
    fn arguments(&mut self, key: &str, value: &Value) -> Vec<String> {
        match value {
            Value::String(line) => vec![line.trim().to_string()],
            Value::Array(items) => items
                .iter()
                .filter_map(text)
                .map(|word| shell_words::quote(&word).into_owned())
                .collect(),
            other => {
                self.not_imported(key, other, "not a string or a list of strings");
                Vec::new()
            }
        }
    }

    fn milliseconds(&mut self, key: &str, value: &Value) -> Option<u64> {
        let seconds = text(value).as_deref().and_then(seconds_of_millis);
        if seconds.is_none() {
            self.not_imported(key, value, "not a duration in milliseconds");
        }
        seconds
    }

    fn key(&mut self, key: &str, value: &Value) {
        match key {
            "name" | "script" | "args" | "interpreter" | "exec_interpreter" | "interpreter_args"
            | "node_args" => {}
            "out_file" | "output" | "error_file" | "error" | "log_file" | "log" => {} // in `finish`.
            "cwd" => match text(value) {
                Some(dir) => self.service.workdir = Some(dir),
                None => self.not_imported(key, value, "not a string"),
            },
            "env" => {
                let (pairs, unreadable) = env_pairs(value);
                for (name, text) in pairs {
                    self.service.set_env(&name, &text);
                }
                for entry in unreadable {
                    self.not_imported(key, value, format!("{entry} is not a string"));
                }
            }
            key if key.starts_with("env_") => self.not_imported(key, value, format!("pm2 uses it with `--env {}`: put the values you run with in [service.NAME.env]", &key[4..])),
            "instances" => self.instances(value),
            "exec_mode" => {
                if value.as_str().is_some_and(|mode| mode.starts_with("cluster")) {
                    self.not_imported(key, value, "ten runs each instance as a process of its own with its own PORT (node's cluster module shares one port): the proxy spreads requests over the instances of the service");
                }
            }
            "autorestart" => match boolean(value) {
                Some(true) => {
                    self.service.restart = Some("always");
                    self.service.remarks.remove("restart");
                }
                Some(false) => {
                    self.service.restart = Some("never");
                    self.service.remarks.remove("restart");
                }
                None => self.not_imported(key, value, "not a boolean"),
            },
            "autostart" => {
                if boolean(value) == Some(false) {
                    self.service.stopped = Some("autostart: false".to_string());
                    self.note(key, value, "the instances are declared stopped (state = \"stopped\" in their instance files); `ten start NAME:ID` starts one");
                }
            }
            "min_uptime" => self.service.start_seconds = self.milliseconds(key, value),
            "kill_timeout" => self.service.stop_timeout = self.milliseconds(key, value),
            "listen_timeout" => self.service.startup_timeout = self.milliseconds(key, value),
            "max_memory_restart" => match text(value).as_deref().and_then(bytes) {
                Some(size) => {
                    self.service.memory_limit_mb = Some(size.div_ceil(1 << 20).max(1));
                    self.note(key, value, "a hard limit in ten: at it the kernel stops the app (out of memory) and ten restarts it");
                }
                None => self.not_imported(key, value, "not a size (such as 300M)"),
            },
            "max_restarts" => self.not_imported(key, value, "ten's restart limit is global: max_restarts (and restart_window) in [settings]"),
            "restart_delay" | "exp_backoff_restart_delay" => self.not_imported(key, value, "ten's restart backoff is global and exponential: backoff_base_ms and backoff_max_ms in [settings]"),
            "uid" | "user" => match text(value) {
                Some(user) => {
                    self.service.user = Some(user);
                    self.note(key, value, "ten switches to this user only when it runs as root");
                }
                None => self.not_imported(key, value, "not a user name"),
            },
            "namespace" => self.namespace = text(value).filter(|namespace| namespace != "default"),
            "instance_var" => match value.as_str() {
                Some(name) => self.instance_var = name.to_string(),
                None => self.not_imported(key, value, "not a name"),
            },
            "merge_logs" | "combine_logs" => {}
            "treekill" => {
                if boolean(value) == Some(false) {
                    self.note(key, value, "ten always signals the whole process group of an instance");
                }
            }
            "filter_env" => self.note(key, value, "ten passes none of its own environment to an app anyway"),
            _ => self.not_imported(key, value, advice(key)),
        }
    }

    fn instances(&mut self, value: &Value) {
        match value.as_i64() {
            Some(count) if count > 1 => self.service.count = u32::try_from(count).ok(),
            Some(1) => {}
            _ => self.not_imported("instances", value, "ten runs a fixed number: one per CPU (\"max\", 0, -1) is not imported; set { count = N } in [instances]"),
        }
    }

    /// After every key: PORT, the instance number, the log files.
    fn finish(&mut self, map: &Map<String, Value>) {
        match self.service.remove_env("PORT") {
            Some(port) => {
                self.note("env", &Value::String(format!("PORT={port}")), format!("PORT = {port} is not imported: ten gives each instance its own PORT (the app reads it) and proxies NAME.DOMAIN to it, so this is an HTTP service"));
            }
            None => self.service.worker = true,
        }
        if self.service.count.is_some() {
            let var = self.instance_var.clone();
            self.service.set_env(&var, &INDEX.to_string());
            self.service.remark(
                "env",
                format!("{var} is the instance's number, as pm2 sets it"),
            );
        }
        self.logs(map);
    }

    fn logs(&mut self, map: &Map<String, Value>) {
        let path_of = |keys: &[&str]| -> Option<(String, String, Value)> {
            keys.iter().find_map(|key| {
                let value = map.get(*key)?;
                Some((key.to_string(), text(value)?, value.clone()))
            })
        };
        let out = path_of(&["out_file", "output"]);
        let error = path_of(&["error_file", "error"]);
        let combined = path_of(&["log_file", "log"]);
        let stdout = self.log_path(out);
        let stderr = self.log_path(error);
        match (stdout, stderr, combined) {
            (None, None, Some((key, path, _))) => {
                self.service.stdout_log = Some(path.clone());
                self.service.stderr_log = Some(path);
                self.service
                    .remark("stderr_log", format!("{key}: both streams in one file"));
            }
            (stdout, stderr, combined) => {
                self.service.stdout_log = stdout;
                self.service.stderr_log = stderr;
                if let Some((key, _, value)) = combined {
                    self.not_imported(&key, &value, "ten writes stdout_log and stderr_log, not a third file with both; give them one path to merge them");
                }
            }
        }
        if self.service.count.is_some() {
            let mut changed = false;
            for log in [&mut self.service.stdout_log, &mut self.service.stderr_log] {
                if let Some(path) = log
                    && !path.contains(INDEX)
                {
                    *path = with_index(path);
                    changed = true;
                }
            }
            if changed
                && let Some(path) = self
                    .service
                    .stdout_log
                    .clone()
                    .or(self.service.stderr_log.clone())
            {
                self.note(
                    "out_file",
                    &Value::String(readable(&path)),
                    "each instance writes its own files, as pm2 does without merge_logs",
                );
            }
        }
    }
}

impl Reader<'_> {
    /// A log file's path, unless pm2 discarded the stream (`/dev/null`).
    fn log_path(&mut self, found: Option<(String, String, Value)>) -> Option<String> {
        let (key, path, value) = found?;
        if path == "/dev/null" {
            self.note(
                &key,
                &value,
                "discarded in pm2; ten captures output anyway (`ten logs NAME:ID`)",
            );
            return None;
        }
        Some(path)
    }
}

/// What to do instead of one of pm2's other options.
fn advice(key: &str) -> &'static str {
    match key {
        "watch" | "ignore_watch" | "watch_options" => {
            "ten restarts on changes of its files, not of your sources: `ten restart NAME:ID` after a change"
        }
        "cron_restart" => {
            "ten has no scheduled restarts: a systemd timer can run `ten restart NAME:ID`"
        }
        "wait_ready" | "shutdown_with_message" => {
            "ten does not message the app: it is ready when it answers its health check, and stops on stop_signal"
        }
        "log_date_format" | "time" | "log_type" => {
            "ten timestamps captured output itself (`ten logs`); log files hold the lines as printed"
        }
        "pid_file" | "pid" => "ten keeps its own record of processes under its data directory",
        "gid" => "ten runs the app with the primary group of its user",
        "increment_var" => "no equivalent: use {index} in env (e.g. PORT_OFFSET = \"{index}\")",
        "stop_exit_codes" => {
            "ten counts every exit but 0 as a failure: make the program exit 0 when it ends as expected"
        }
        "disable_logs" => "ten captures output anyway (`ten logs NAME:ID`)",
        _ => "no equivalent in ten: nothing to import",
    }
}
