//! What an import makes of another supervisor's file, in ten's terms: services with the keys
//! of tenement.toml, their instances, groups, and the report of everything that did not map.
//! Pure data; the format readers fill it, `writer` turns it into files.

use std::collections::BTreeMap;

use serde::Serialize;

use super::report::Report;

/// The formats `ten import` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// supervisord's INI (`[program:x]`), and Supervice's, which follows it.
    Supervisord,
    /// `name: command` lines (Heroku, foreman, honcho, overmind).
    Procfile,
    /// process-compose's YAML (`processes:`).
    ProcessCompose,
    /// pm2's `ecosystem.config.json` (`apps: [...]`).
    Pm2,
}

impl Format {
    pub const KEYWORDS: &'static [&'static str] =
        &["supervisord", "procfile", "process-compose", "pm2"];

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Supervisord => "supervisord",
            Format::Procfile => "procfile",
            Format::ProcessCompose => "process-compose",
            Format::Pm2 => "pm2",
        }
    }

    pub fn from_keyword(text: &str) -> Option<Format> {
        match text {
            "supervisord" | "supervice" | "ini" => Some(Format::Supervisord),
            "procfile" => Some(Format::Procfile),
            "process-compose" => Some(Format::ProcessCompose),
            "pm2" => Some(Format::Pm2),
            _ => None,
        }
    }

    /// How the format is named to the user.
    pub fn describe(self) -> &'static str {
        match self {
            Format::Supervisord => "supervisord INI",
            Format::Procfile => "Procfile",
            Format::ProcessCompose => "process-compose YAML",
            Format::Pm2 => "pm2 ecosystem JSON",
        }
    }
}

/// How a service's program is written: as one line ten splits into words (`command`), run by
/// a shell because it needs one (`command = "sh"`, `args = ["-c", LINE]`), or as words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Command {
    Line(String),
    Shell { shell: String, line: String },
    Argv(Vec<String>),
}

/// A health check: `health = PATH` (HTTP on the instance's port), `{ tcp = PORT }`,
/// `{ exec = [...] }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Check {
    Http(String),
    Tcp(u16),
    Exec(Vec<String>),
}

/// One `[service.NAME]` and its instances. Text values that are ten templates (command,
/// args, env, workdir, log paths) hold the text as it is meant, with the placeholders of
/// `text::INDEX` and `text::PORT`; the writer escapes them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Service {
    /// ten's name (a DNS label).
    pub name: String,
    /// Where it comes from in the source: `[program:my_worker]`, `processes.web`, ...
    pub origin: String,
    /// The source's description of it, if it has one.
    pub description: Option<String>,
    pub command: Option<Command>,
    /// `listen = "none"`: no port, no route.
    pub worker: bool,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub restart: Option<&'static str>,
    pub start_seconds: Option<u64>,
    pub startup_timeout: Option<u64>,
    pub stop_signal: Option<String>,
    pub stop_timeout: Option<u64>,
    pub stop_order: Option<i64>,
    pub memory_limit_mb: Option<u64>,
    pub health: Option<Check>,
    pub health_interval: Option<u64>,
    pub health_timeout: Option<u64>,
    pub health_retries: Option<u64>,
    pub health_start_period: Option<u64>,
    pub stdout_log: Option<String>,
    pub stderr_log: Option<String>,
    pub log_max_bytes: Option<u64>,
    pub log_backups: Option<u64>,
    /// In order; a later one of the same name replaces the earlier.
    pub env: Vec<(String, String)>,
    /// `Some(n)`: a process set, `[instances] NAME = { count = n }`; `None`: one instance.
    pub count: Option<u32>,
    /// Why its instances are declared stopped (`autostart = false`), if they are.
    pub stopped: Option<String>,
    /// A comment after a key: where its value comes from.
    pub remarks: BTreeMap<&'static str, String>,
}

impl Service {
    pub(crate) fn new(name: String, origin: String) -> Self {
        Self {
            name,
            origin,
            ..Self::default()
        }
    }

    /// Sets `key`'s comment.
    pub(crate) fn remark(&mut self, key: &'static str, text: impl Into<String>) {
        self.remarks.insert(key, text.into());
    }

    /// Sets an environment variable, replacing one of the same name.
    pub(crate) fn set_env(&mut self, name: &str, value: &str) {
        match self.env.iter_mut().find(|(existing, _)| existing == name) {
            Some(entry) => entry.1 = value.to_string(),
            None => self.env.push((name.to_string(), value.to_string())),
        }
    }

    pub(crate) fn has_env(&self, name: &str) -> bool {
        self.env.iter().any(|(existing, _)| existing == name)
    }

    pub(crate) fn remove_env(&mut self, name: &str) -> Option<String> {
        let at = self.env.iter().position(|(existing, _)| existing == name)?;
        Some(self.env.remove(at).1)
    }
}

/// `[group.NAME] services = [...]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Group {
    pub name: String,
    pub origin: String,
    pub services: Vec<String>,
}

/// Everything read from one source file.
#[derive(Debug, Clone)]
pub(crate) struct Project {
    pub format: Format,
    /// The source file's name, as comments and the report cite it.
    pub source: String,
    /// A dialect worth naming (`Supervice`), if the file is one.
    pub dialect: Option<&'static str>,
    pub services: Vec<Service>,
    pub groups: Vec<Group>,
    pub report: Report,
}

impl Project {
    pub(crate) fn new(format: Format, source: &str) -> Self {
        Self {
            format,
            source: source.to_string(),
            dialect: None,
            services: Vec::new(),
            groups: Vec::new(),
            report: Report::default(),
        }
    }
}
