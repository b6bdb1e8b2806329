//! A process's keys mapped one by one to ten's: the command (or entrypoint), its directory and
//! environment, `replicas`, `availability`, `shutdown`, `log_configuration`; every other key
//! reported with what to do instead. Must not import tokio, nix, hyper or notify.

use serde_json::{Map, Value};

use crate::import::json::{boolean, env_pairs, text, whole};
use crate::import::model::Command;
use crate::import::text::{shell_line, signal_name};

use super::Reader;

impl Reader<'_> {
    pub(super) fn key(&mut self, key: &str, value: &Value, map: &Map<String, Value>, shell: &str) {
        match key {
            "command" => match value.as_str() {
                Some(written) => {
                    // process-compose expands `$NAME` itself before its shell runs the line, and
                    // `$$` is its escape for a `$` the shell gets; with its own expansion off,
                    // the line goes to the shell as written.
                    let expands = !map
                        .get("disable_env_expansion")
                        .and_then(Value::as_bool)
                        .unwrap_or(false);
                    let unescaped = if expands {
                        written.replace("$$", "$")
                    } else {
                        written.to_string()
                    };
                    let line = shell_line(&unescaped, shell);
                    if let Command::Shell { .. } = line.command {
                        self.note(key, value, format!("it uses shell syntax, so it runs as `{shell} -c '...'`, as process-compose runs it"));
                    }
                    self.variables = line.variables;
                    self.service.command = Some(line.command);
                }
                None => self.not_imported(key, value, "not a string"),
            },
            // Read with `command`.
            "disable_env_expansion" => {}
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
}
