//! The sections besides `[program:x]`: `[group:x]` (which program is in which group, and the
//! groups), `[supervisord]` and `[supervice]` (the environment and log rotation every
//! program gets; the rest reported with what to do instead), and any other section,
//! reported whole. Must not read a program's options (`program` does).

use std::collections::BTreeMap;

use crate::import::Source;
use crate::import::ini::{Ini, Section};
use crate::import::model::Group;
use crate::import::report::{Item, Report};
use crate::import::text::{Namer, bytes};

use super::values::{Expander, ProcessNum, environment};

/// What `[supervisord]` or `[supervice]` gives every program.
#[derive(Debug, Default)]
pub(super) struct FileSettings {
    pub(super) env: Vec<(String, String)>,
    pub(super) log_max_bytes: Option<u64>,
    pub(super) log_backups: Option<u64>,
}

/// Which group each program is in (by the source's names).
pub(super) fn group_membership(ini: &Ini) -> BTreeMap<String, String> {
    let mut group_of = BTreeMap::new();
    for section in &ini.sections {
        if let Some(group) = section.name.strip_prefix("group:")
            && let Some(programs) = section.get("programs")
        {
            for program in list(&programs.value) {
                group_of.insert(program, group.to_string());
            }
        }
    }
    group_of
}

/// supervisord's lists: comma-separated, blanks around each removed.
fn list(text: &str) -> Vec<String> {
    text.split([',', '\n'])
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_string)
        .collect()
}

pub(super) fn group(
    section: &Section,
    source_name: &str,
    services: &[(String, String)],
    namer: &mut Namer,
    report: &mut Report,
) -> Option<Group> {
    let at = format!("[{}]", section.name);
    let (name, renamed) = namer.name(source_name, "group");
    if renamed {
        report.push(
            Item::renamed(
                &at,
                format!("group {source_name:?} is the group `{name}`: ten's names are DNS labels"),
            )
            .line(Some(section.line)),
        );
    }
    let mut members = Vec::new();
    for entry in &section.entries {
        match entry.key.as_str() {
            "programs" => {
                for program in list(&entry.value) {
                    match services.iter().find(|(source, _)| *source == program) {
                        Some((_, service)) => members.push(service.clone()),
                        None => report.push(
                            Item::not_imported(&at, format!("no [program:{program}] was imported from this file: `{program}` is left out of the group"))
                                .key("programs", &entry.value)
                                .line(Some(entry.line)),
                        ),
                    }
                }
            }
            "priority" => report.push(
                Item::not_imported(
                    &at,
                    "ten orders stops by each service's stop_order, not by group",
                )
                .key(&entry.key, &entry.value)
                .line(Some(entry.line)),
            ),
            _ => report.push(
                Item::not_imported(&at, "not an option of supervisord's [group:x]")
                    .key(&entry.key, &entry.value)
                    .line(Some(entry.line)),
            ),
        }
    }
    if members.is_empty() {
        report.push(
            Item::not_imported(&at, "no imported program is in it: the group is left out")
                .line(Some(section.line)),
        );
        return None;
    }
    Some(Group {
        name,
        origin: at,
        services: members,
    })
}

/// `[supervisord]` or `[supervice]`: the environment for every program and Supervice's log
/// rotation are used; the rest is the supervisor's own business.
pub(super) fn global_section(
    section: &Section,
    source: &Source<'_>,
    file: &mut FileSettings,
    report: &mut Report,
) {
    let at = format!("[{}]", section.name);
    let expander = Expander {
        program: "",
        group: "",
        numprocs: 1,
        process_num: ProcessNum::Number(0),
        here: source.dir,
        host: source.host,
        env: source.env,
    };
    for entry in &section.entries {
        let item = |message: &str| {
            Item::not_imported(&at, message)
                .key(&entry.key, &entry.value)
                .line(Some(entry.line))
        };
        match entry.key.as_str() {
            "environment" => match environment(&expander.expand(&entry.value).text) {
                Ok(pairs) => {
                    file.env = pairs;
                    report.push(
                        Item::note(
                            &at,
                            "given to every service's env, under the program's own environment",
                        )
                        .key(&entry.key, &entry.value)
                        .line(Some(entry.line)),
                    );
                }
                Err(error) => report.push(item(&format!("cannot be read: {error}"))),
            },
            "log_maxbytes" | "log_backups" if section.name == "supervice" => {
                let value = if entry.key == "log_maxbytes" {
                    bytes(&entry.value)
                } else {
                    entry.value.trim().parse().ok()
                };
                match value {
                    Some(value) if entry.key == "log_maxbytes" => file.log_max_bytes = Some(value),
                    Some(value) => file.log_backups = Some(value),
                    None => report.push(item("not a number")),
                }
                if value.is_some() {
                    report.push(
                        Item::note(&at, "used for the log files of every service that has one (log_max_bytes, log_backups)")
                            .key(&entry.key, &entry.value)
                            .line(Some(entry.line)),
                    );
                }
            }
            key => report.push(item(global_advice(key))),
        }
    }
}

/// What to do instead of one of supervisord's (or Supervice's) own settings.
fn global_advice(key: &str) -> &'static str {
    match key {
        "logfile" | "logfile_maxbytes" | "logfile_backups" | "loglevel" | "silent" => {
            "ten serve logs to stderr (TEN_LOG=debug for more; the journal under `ten install`)"
        }
        "pidfile" | "nodaemon" => {
            "ten serve runs in the foreground; `ten install` makes it a systemd service"
        }
        "user" => "run `ten serve` as that user (`ten install --user USER`)",
        "minfds" | "minprocs" => {
            "ten raises its own open-files limit; a service's pids_limit caps its processes"
        }
        "umask" => "ten sets no umask: set it in the programs",
        "directory" => {
            "ten resolves relative paths against the directory of tenement.toml, wherever it runs"
        }
        "childlogdir" => "ten keeps captured output under its data directory",
        "socket" => "ten's control API is served by `ten serve` (/api, with a token)",
        "shutdown_timeout" => "each service's stop_timeout bounds its stop",
        _ => "a setting of the supervisor itself: nothing to import",
    }
}

/// Sections that are not programs: reported whole, with their keys.
pub(super) fn other_section(section: &Section, kind: &str, report: &mut Report) {
    let at = format!("[{}]", section.name);
    let message = match kind {
        "unix_http_server" | "inet_http_server" | "supervisorctl" | "rpcinterface"
        | "ctlplugin" => {
            "supervisord's control interface: ten's is `ten serve`'s API, used by the `ten` CLI (tokens from `ten token-gen`)"
        }
        "include" => {
            "ten import reads one file: import each included file too and merge their services into one tenement.toml"
        }
        "eventlistener" => {
            "ten has no event listeners: `ten events -f` (or GET /api/events/stream) follows lifecycle events"
        }
        "fcgi-program" => {
            "ten proxies HTTP, not FastCGI: run the app as an HTTP server listening on {port}"
        }
        _ => "not a section supervisord knows: nothing to import",
    };
    let keys: Vec<&str> = section
        .entries
        .iter()
        .map(|entry| entry.key.as_str())
        .collect();
    let mut item = Item::not_imported(&at, message).line(Some(section.line));
    if !keys.is_empty() {
        item = item.key("keys", &keys.join(", "));
    }
    report.push(item);
}
