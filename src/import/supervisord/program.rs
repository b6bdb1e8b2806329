//! One `[program:x]` -> a service: each option mapped to ten's key, or reported.

use crate::import::ini::{Entry, Section};
use crate::import::model::{Check, Command, Service};
use crate::import::report::{Item, Report};
use crate::import::text::{INDEX, bytes, fixed_port, readable, signal_name};

use super::values::{Expander, boolean, environment};

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
            self.service.worker = false;
            self.note(
                &entry,
                format!("PORT = {port} is not imported: ten gives each instance its own PORT (the app must read it) and proxies NAME.DOMAIN to it, so this is an HTTP service, not a worker"),
            );
        }
    }

    /// `stdout_logfile`, `stderr_logfile`, `redirect_stderr` and their rotation.
    pub(super) fn logs(&mut self, defaults: &FileDefaults<'_>) {
        let stdout = self.log_file("stdout_logfile");
        let stderr = self.log_file("stderr_logfile");
        self.service.stdout_log = stdout;
        self.service.stderr_log = stderr;
        if let Some(entry) = self.section.get("redirect_stderr").cloned()
            && boolean(&entry.value) == Some(true)
        {
            match self.service.stdout_log.clone() {
                Some(path) => {
                    if self.service.stderr_log.is_some() {
                        self.note(&entry, "stderr goes to the stdout log: stderr_logfile is not used, as in supervisord");
                    }
                    self.service.stderr_log = Some(path);
                    self.service.remark("stderr_log", "redirect_stderr = true");
                }
                None => self.note(&entry, "ten captures stdout and stderr of every instance together (`ten logs NAME:ID`)"),
            }
        }
        if self.service.count.is_some() {
            self.log_per_instance();
        }
        if self.service.stdout_log.is_some() || self.service.stderr_log.is_some() {
            self.rotation(defaults);
        }
        let section = self.section;
        for entry in &section.entries {
            let key = entry.key.as_str();
            if is_log_key(key) && !LOG_KEYS.contains(&key) {
                self.not_imported(
                    entry,
                    "not an option of supervisord's [program:x]: nothing to import",
                );
            } else if key.ends_with("_capture_maxbytes") || key.ends_with("_events_enabled") {
                self.not_imported(entry, "supervisord's event listeners have no equivalent: `ten events -f` follows lifecycle events");
            } else if key.ends_with("_syslog") && boolean(&entry.value) == Some(true) {
                self.not_imported(
                    entry,
                    "ten does not write to syslog: `ten logs`, or the log files",
                );
            }
        }
    }

    fn log_file(&mut self, key: &str) -> Option<String> {
        let entry = self.section.get(key)?.clone();
        let path = self.expand(&entry);
        match path.trim().to_ascii_uppercase().as_str() {
            "AUTO" => {
                self.note(
                    &entry,
                    "ten captures output itself: `ten logs NAME:ID`, kept under its data directory",
                );
                None
            }
            "NONE" => {
                self.note(&entry, "ten captures output anyway (`ten logs NAME:ID`); no file of your own is written");
                None
            }
            "SYSLOG" => {
                self.not_imported(
                    &entry,
                    "ten does not write to syslog: `ten logs`, or a log file",
                );
                None
            }
            _ => Some(path.trim().to_string()),
        }
    }

    /// Instances of a set each get their own file.
    fn log_per_instance(&mut self) {
        let merged =
            self.service.stderr_log.is_some() && self.service.stderr_log == self.service.stdout_log;
        for (key, log) in [
            ("stdout_logfile", &mut self.service.stdout_log),
            ("stderr_logfile", &mut self.service.stderr_log),
        ] {
            if let Some(path) = log
                && !path.contains(INDEX)
            {
                *path = crate::import::text::with_index(path);
                let shown = readable(path);
                let entry = self.section.get(key).cloned();
                if let Some(entry) = entry {
                    let item = Item::note(
                        &self.at,
                        format!("each instance of the set writes its own file: {shown}"),
                    )
                    .key(&entry.key, &entry.value)
                    .line(Some(entry.line))
                    .service(&self.service.name);
                    self.report.push(item);
                }
            }
        }
        if merged {
            self.service.stderr_log = self.service.stdout_log.clone();
        }
    }

    fn rotation(&mut self, defaults: &FileDefaults<'_>) {
        let size = |reader: &mut Self, key: &str| -> Option<(u64, Entry)> {
            let entry = reader.section.get(key)?.clone();
            match bytes(&reader.expand(&entry)) {
                Some(size) => Some((size, entry)),
                None => {
                    reader.not_imported(&entry, "not a size (such as 50MB)");
                    None
                }
            }
        };
        let stdout_size = size(self, "stdout_logfile_maxbytes");
        let stderr_size = size(self, "stderr_logfile_maxbytes");
        let stdout_backups = self.count_of("stdout_logfile_backups");
        let stderr_backups = self.count_of("stderr_logfile_backups");
        let (primary_size, other_size) = if self.service.stdout_log.is_some() {
            (stdout_size, stderr_size)
        } else {
            (stderr_size, stdout_size)
        };
        let (primary_backups, other_backups) = if self.service.stdout_log.is_some() {
            (stdout_backups, stderr_backups)
        } else {
            (stderr_backups, stdout_backups)
        };
        match primary_size {
            Some((0, entry)) => self.not_imported(&entry, "0 (never rotate) has no equivalent: ten rotates at log_max_bytes; set a large one to rotate rarely"),
            Some((size, _)) => self.service.log_max_bytes = Some(size),
            None => {
                self.service.log_max_bytes = Some(defaults.log_max_bytes);
                let whose = match (defaults.supervice, defaults.log_max_bytes_given) {
                    (true, true) => "[supervice] log_maxbytes",
                    (true, false) => "Supervice's default log_maxbytes",
                    (false, _) => "supervisord's default: 50MB",
                };
                self.service.remark("log_max_bytes", whose);
            }
        }
        match primary_backups {
            Some((backups, _)) => self.service.log_backups = Some(backups),
            None => {
                self.service.log_backups = Some(defaults.log_backups);
                let whose = match (defaults.supervice, defaults.log_backups_given) {
                    (true, true) => "[supervice] log_backups",
                    (true, false) => "Supervice's default log_backups",
                    (false, _) => "supervisord's default",
                };
                self.service.remark("log_backups", whose);
            }
        }
        let both = self.service.stdout_log.is_some() && self.service.stderr_log.is_some();
        for (other, value) in [
            (other_size, self.service.log_max_bytes),
            (other_backups, self.service.log_backups),
        ] {
            if let Some((size, entry)) = other
                && (!both || Some(size) != value)
            {
                self.not_imported(&entry, "ten rotates both log files of a service alike (log_max_bytes, log_backups), as the stdout log's options say");
            }
        }
    }

    fn count_of(&mut self, key: &str) -> Option<(u64, Entry)> {
        let entry = self.section.get(key)?.clone();
        match self.expand(&entry).trim().parse::<u64>() {
            Ok(count) => Some((count, entry)),
            Err(_) => {
                self.not_imported(&entry, "not a number of files");
                None
            }
        }
    }

    /// Supervice's `healthcheck_*` options.
    pub(super) fn checks(&mut self) {
        let section = self.section;
        let kind = section.get("healthcheck_type");
        let check = match kind.map(|entry| entry.value.trim().to_ascii_lowercase()) {
            Some(kind) if kind == "tcp" => self.tcp_check(),
            Some(kind) if kind == "script" => self.script_check(),
            Some(kind) if kind == "none" => None,
            Some(_) => {
                if let Some(entry) = kind {
                    self.not_imported(entry, "not a check Supervice knows (none, tcp, script)");
                }
                None
            }
            None => None,
        };
        let has_check = check.is_some();
        self.service.health = check;
        for entry in &section.entries {
            let target = match entry.key.as_str() {
                "healthcheck_interval" => &mut self.service.health_interval,
                "healthcheck_timeout" => &mut self.service.health_timeout,
                "healthcheck_retries" => &mut self.service.health_retries,
                "healthcheck_start_period" => &mut self.service.health_start_period,
                "healthcheck_type"
                | "healthcheck_port"
                | "healthcheck_host"
                | "healthcheck_command" => continue,
                key if key.starts_with("healthcheck_") => {
                    self.not_imported(entry, "not a health check option of Supervice");
                    continue;
                }
                _ => continue,
            };
            match entry.value.trim().parse::<u64>() {
                Ok(value) if has_check => *target = Some(value),
                Ok(_) => self.not_imported(entry, "no health check to apply it to"),
                Err(_) => self.not_imported(entry, "not a whole number"),
            }
        }
        if has_check {
            for (key, value, field) in [
                ("health_interval", 30, &mut self.service.health_interval),
                ("health_timeout", 10, &mut self.service.health_timeout),
                (
                    "health_start_period",
                    10,
                    &mut self.service.health_start_period,
                ),
            ] {
                if field.is_none() {
                    *field = Some(value);
                    self.service
                        .remarks
                        .insert(key, "Supervice's default".to_string());
                }
            }
        }
    }

    fn tcp_check(&mut self) -> Option<Check> {
        let section = self.section;
        if let Some(host) = section.get("healthcheck_host")
            && !["127.0.0.1", "localhost", "::1"].contains(&host.value.trim())
        {
            self.not_imported(
                host,
                "ten checks TCP on 127.0.0.1 only: the check is not imported",
            );
            return None;
        }
        let Some(entry) = section.get("healthcheck_port") else {
            let kind = section.get("healthcheck_type")?;
            self.not_imported(kind, "a tcp check needs healthcheck_port");
            return None;
        };
        match entry.value.trim().parse::<u16>() {
            Ok(port) if port > 0 => Some(Check::Tcp(port)),
            _ => {
                self.not_imported(entry, "not a port");
                None
            }
        }
    }

    fn script_check(&mut self) -> Option<Check> {
        let section = self.section;
        let Some(entry) = section.get("healthcheck_command") else {
            let kind = section.get("healthcheck_type")?;
            self.not_imported(kind, "a script check needs healthcheck_command");
            return None;
        };
        let line = self.expand(entry);
        match shell_words::split(&line) {
            Ok(words) if !words.is_empty() => Some(Check::Exec(words)),
            _ => {
                self.not_imported(entry, "cannot be split into words");
                None
            }
        }
    }
}

/// The log options of a program, for stdout and stderr alike.
const LOG_KEYS: &[&str] = &[
    "redirect_stderr",
    "stdout_logfile",
    "stdout_logfile_maxbytes",
    "stdout_logfile_backups",
    "stdout_capture_maxbytes",
    "stdout_events_enabled",
    "stdout_syslog",
    "stderr_logfile",
    "stderr_logfile_maxbytes",
    "stderr_logfile_backups",
    "stderr_capture_maxbytes",
    "stderr_events_enabled",
    "stderr_syslog",
];

fn is_log_key(key: &str) -> bool {
    key == "redirect_stderr" || key.starts_with("stdout_") || key.starts_with("stderr_")
}
