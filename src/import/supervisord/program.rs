//! One `[program:x]` -> a service: each option mapped to ten's key, or reported. The log
//! options are read together in `logs`, Supervice's `healthcheck_*` options in `checks`.

mod checks;
mod logs;

use crate::import::ini::{Entry, Section};
use crate::import::model::{Command, Service};
use crate::import::report::{Item, Report};
use crate::import::text::{fixed_port, signal_name};

use super::values::{Expander, boolean, environment};
use logs::is_log_key;

/// What the file says for every program.
pub(super) struct FileDefaults<'a> {
    /// Supervice rather than supervisord (its defaults differ: `autorestart = true`).
    pub supervice: bool,
    /// `[supervisord] environment`, given to every program first.
    pub env: &'a [(String, String)],
    /// Some program sets `priority`: every service then gets a `stop_order`.
    pub any_priority: bool,
    /// Rotation of program log files, when a program does not say (supervisord's defaults,
    /// or Supervice's `log_maxbytes` and `log_backups`).
    pub log_max_bytes: u64,
    pub log_backups: u64,
    /// Whether `[supervice]` said them, or they are the defaults.
    pub log_max_bytes_given: bool,
    pub log_backups_given: bool,
}

/// Reads one program's options into `service`, each once, reporting what does not map.
pub(super) struct ProgramReader<'a> {
    pub section: &'a Section,
    pub at: String,
    pub service: Service,
    pub expander: Expander<'a>,
    pub report: &'a mut Report,
}

impl ProgramReader<'_> {
    fn not_imported(&mut self, entry: &Entry, message: impl Into<String>) {
        let item = Item::not_imported(&self.at, message)
            .key(&entry.key, &entry.value)
            .line(Some(entry.line))
            .service(&self.service.name);
        self.report.push(item);
    }

    fn note(&mut self, entry: &Entry, message: impl Into<String>) {
        let item = Item::note(&self.at, message)
            .key(&entry.key, &entry.value)
            .line(Some(entry.line))
            .service(&self.service.name);
        self.report.push(item);
    }

    /// The value with supervisord's expansions made, saying what is worth saying.
    pub(super) fn expand(&mut self, entry: &Entry) -> String {
        let expanded = self.expander.expand(&entry.value);
        for variable in &expanded.unset {
            self.not_imported(
                entry,
                format!("%(ENV_{variable})s is left as written: {variable} is not set where `ten import` ran (supervisord takes it from its own environment); write the value instead"),
            );
        }
        for name in &expanded.unknown {
            self.not_imported(
                entry,
                format!("%({name})s is not an expansion supervisord knows; left as written"),
            );
        }
        if !expanded.from_env.is_empty() {
            let names: Vec<String> = expanded
                .from_env
                .iter()
                .map(|name| format!("%(ENV_{name})s"))
                .collect();
            self.note(
                entry,
                format!("{} expanded to the value where `ten import` ran: ten does not read its own environment into the config", names.join(", ")),
            );
        }
        if expanded.port {
            self.service.worker = false;
            self.note(
                entry,
                "%(ENV_PORT)s is ten's {port}: ten gives each instance its own PORT and proxies NAME.DOMAIN to it, so this is an HTTP service",
            );
        }
        if expanded.here {
            self.note(
                entry,
                "%(here)s expanded to the directory of the imported file",
            );
        }
        if expanded.padded {
            self.note(
                entry,
                "%(process_num)0Nd is {index}: ten writes the numbers without leading zeros (0, 1, ... not 00, 01, ...)",
            );
        }
        expanded.text
    }

    fn seconds(&mut self, entry: &Entry) -> Option<u64> {
        let value = self.expand(entry);
        let parsed = value.trim().parse::<u64>().ok();
        if parsed.is_none() {
            self.not_imported(entry, "not a whole number of seconds");
        }
        parsed
    }

    /// Maps one option; the log and check options are read together afterwards.
    pub(super) fn entry(&mut self, entry: &Entry, defaults: &FileDefaults<'_>) {
        let key = entry.key.as_str();
        match key {
            "command" => self.command(entry),
            "numprocs" => {} // read before the others: the count of the set.
            "numprocs_start" => {
                if self.service.count.is_some() && entry.value.trim() != "0" {
                    self.not_imported(entry, "ten numbers the instances of a set from 0: {index} counts 0..N-1 here; shift it in the program if it needs this numbering");
                }
            }
            "process_name" => {
                let ids = match self.service.count {
                    Some(count) => format!("{0}:0 ... {0}:{1}", self.service.name, count - 1),
                    None => format!("{}:0", self.service.name),
                };
                self.note(entry, format!("ten names the instances {ids}"));
            }
            "priority" => {} // with the file's other priorities, in `stop_order`.
            "autostart" => match boolean(&entry.value) {
                Some(true) => {}
                Some(false) => {
                    self.service.stopped = Some("autostart = false".to_string());
                    self.note(entry, "the instances are declared stopped (state = \"stopped\" in their instance files); `ten start NAME:ID` starts one");
                }
                None => self.not_imported(entry, "not a boolean"),
            },
            "autorestart" => self.autorestart(entry),
            "startsecs" => self.service.start_seconds = self.seconds(entry),
            "startretries" => self.not_imported(
                entry,
                "ten's restart limit is global: max_restarts (and restart_window) in [settings]; past it the instance is failed until `ten restart`",
            ),
            "exitcodes" => {
                if entry.value.trim() != "0" {
                    self.not_imported(entry, "ten counts every exit but 0 as a failure (restart = \"on-failure\" restarts it); make the program exit 0 when it ends as expected");
                }
            }
            "stopsignal" => match signal_name(&entry.value) {
                Some(signal) => self.service.stop_signal = Some(signal.to_string()),
                None => self.not_imported(entry, "not a signal ten can send: TERM, INT, QUIT, HUP, KILL, USR1, USR2 or WINCH"),
            },
            "stopwaitsecs" => self.service.stop_timeout = self.seconds(entry),
            "stopasgroup" | "killasgroup" => {
                if boolean(&entry.value) == Some(false) {
                    self.note(entry, "ten always signals the whole process group of an instance");
                }
            }
            "user" => {
                self.service.user = Some(self.expand(entry));
                self.note(entry, "ten switches to this user only when it runs as root");
            }
            "directory" => self.service.workdir = Some(self.expand(entry)),
            "environment" => self.environment(entry, defaults),
            "umask" => {
                let message = format!("ten sets no umask: set it in the program, or wrap it: sh -c 'umask {}; exec PROGRAM'", entry.value.trim());
                self.not_imported(entry, message);
            }
            "serverurl" => self.not_imported(entry, "ten has no XML-RPC for programs: its control API is `ten serve`'s (/api, tokens from `ten token-gen`)"),
            key if is_log_key(key) || key.starts_with("healthcheck_") => {}
            _ => self.not_imported(entry, "not an option of supervisord's [program:x]: nothing to import"),
        }
    }

    fn command(&mut self, entry: &Entry) {
        // Continuation lines are more words of the command.
        let line = self.expand(entry).replace('\n', " ");
        match shell_words::split(&line) {
            Ok(words) => {
                if let Some(port) = fixed_port(&words) {
                    self.note(
                        entry,
                        format!("it listens on port {port} by itself, so it stays a worker (listen = \"none\") that binds its own port; to serve it through ten's proxy, make it listen on {{port}} (e.g. 127.0.0.1:{{port}}) and remove listen = \"none\""),
                    );
                }
            }
            Err(error) => self.not_imported(
                entry,
                format!("cannot be split into words ({error}); fix the quotes in tenement.toml"),
            ),
        }
        self.service.command = Some(Command::Line(line));
    }

    fn autorestart(&mut self, entry: &Entry) {
        let value = entry.value.trim().to_ascii_lowercase();
        self.service.restart = match value.as_str() {
            "unexpected" => Some("on-failure"),
            _ => match boolean(&value) {
                Some(true) => Some("always"),
                Some(false) => Some("never"),
                None => {
                    self.not_imported(entry, "not true, false or unexpected");
                    None
                }
            },
        };
    }

    fn environment(&mut self, entry: &Entry, defaults: &FileDefaults<'_>) {
        let value = self.expand(entry);
        let pairs = match environment(&value) {
            Ok(pairs) => pairs,
            Err(error) => {
                self.not_imported(entry, format!("cannot be read: {error}"));
                return;
            }
        };
        for (name, value) in defaults.env.iter().chain(&pairs) {
            self.service.set_env(name, value);
        }
    }

    /// After the options: what the file gives every program, and the defaults that differ
    /// from ten's.
    pub(super) fn finish(&mut self, defaults: &FileDefaults<'_>) {
        if self.section.get("environment").is_none() {
            for (name, value) in defaults.env {
                self.service.set_env(name, value);
            }
        }
        self.reserved_env();
        if defaults.any_priority {
            let (priority, said) = match self.section.get("priority") {
                Some(entry) => match entry.value.trim().parse::<i64>() {
                    Ok(priority) => (priority, format!("priority = {priority}")),
                    Err(_) => {
                        let entry = entry.clone();
                        self.not_imported(&entry, "not a number");
                        (999, "supervisord's default priority = 999".to_string())
                    }
                },
                None => (999, "supervisord's default priority = 999".to_string()),
            };
            self.service.stop_order = Some(1000 - priority);
            self.service.remark(
                "stop_order",
                format!("{said}; stop_order = 1000 - priority (lower priority starts first and stops last)"),
            );
        }
        if defaults.supervice && self.section.get("autorestart").is_none() {
            self.service.restart = Some("always");
            self.service
                .remark("restart", "Supervice's default: autorestart = true");
        }
    }

    /// `PORT` in the environment makes an HTTP service (ten gives each instance its own).
    fn reserved_env(&mut self) {
        let Some(entry) = self.section.get("environment").cloned() else {
            return;
        };
        if let Some(port) = self.service.remove_env("PORT") {
            // `%(ENV_PORT)s` in it is the port placeholder: shown as ten writes it.
            let port = crate::import::text::readable(&port);
            self.service.worker = false;
            self.note(
                &entry,
                format!("PORT = {port} is not imported: ten gives each instance its own PORT (the app must read it) and proxies NAME.DOMAIN to it, so this is an HTTP service, not a worker"),
            );
        }
    }
}
