//! supervisord's INI (`supervisord.conf`), and Supervice's, which follows it: `[program:x]`
//! sections become services (workers: supervisord proxies nothing), `numprocs` a process
//! set, `[group:g]` a group; `[supervisord]` (`[supervice]`) and the control sections are
//! supervisord's own and reported.

mod program;
mod values;

use std::collections::BTreeMap;

use super::Source;
use super::ini::{Ini, Section};
use super::model::{Format, Group, Project, Service};
use super::report::{Item, Report};
use super::text::{Namer, bytes};
use program::{FileDefaults, ProgramReader};
use values::{Expander, ProcessNum, environment};

/// supervisord's rotation of a program's log files when it does not say.
const LOG_MAX_BYTES: u64 = 50 << 20;
const LOG_BACKUPS: u64 = 10;

pub(crate) fn read(ini: &Ini, source: &Source<'_>) -> Project {
    let mut project = Project::new(Format::Supervisord, source.name);
    let supervice = ini
        .sections
        .iter()
        .any(|section| section.name == "supervice");
    if supervice {
        project.dialect = Some("Supervice");
    }
    let mut file = FileSettings::default();
    for section in &ini.sections {
        if section.name == "supervisord" || section.name == "supervice" {
            global_section(section, source, &mut file, &mut project.report);
        }
    }
    let defaults = FileDefaults {
        supervice,
        env: &file.env,
        any_priority: ini.sections.iter().any(|section| {
            section.name.starts_with("program:") && section.get("priority").is_some()
        }),
        log_max_bytes: file.log_max_bytes.unwrap_or(LOG_MAX_BYTES),
        log_backups: file.log_backups.unwrap_or(LOG_BACKUPS),
        log_max_bytes_given: file.log_max_bytes.is_some(),
        log_backups_given: file.log_backups.is_some(),
    };
    let group_of = group_membership(ini);
    let mut namer = Namer::default();
    let mut names: Vec<(String, String)> = Vec::new();
    for section in &ini.sections {
        let (kind, name) = section
            .name
            .split_once(':')
            .unwrap_or((section.name.as_str(), ""));
        match kind {
            "program" => {
                let group = group_of.get(name).map_or(name, String::as_str);
                let place = Place {
                    section,
                    name,
                    group,
                };
                if let Some(service) =
                    program(&place, &defaults, source, &mut namer, &mut project.report)
                {
                    names.push((name.to_string(), service.name.clone()));
                    project.services.push(service);
                }
            }
            "group" | "supervisord" | "supervice" => {}
            _ => other_section(section, kind, &mut project.report),
        }
    }
    let mut group_namer = Namer::default();
    for section in &ini.sections {
        if let Some(name) = section.name.strip_prefix("group:")
            && let Some(group) = group(section, name, &names, &mut group_namer, &mut project.report)
        {
            project.groups.push(group);
        }
    }
    for repeated in &ini.repeated {
        project.report.push(
            Item::note(
                &format!("[{}]", repeated.section),
                "given twice in the section: the last value counts, as in supervisord",
            )
            .key(&repeated.key, "")
            .line(Some(repeated.line)),
        );
    }
    project
}

/// What `[supervisord]` or `[supervice]` gives every program.
#[derive(Debug, Default)]
struct FileSettings {
    env: Vec<(String, String)>,
    log_max_bytes: Option<u64>,
    log_backups: Option<u64>,
}

/// A program section, its name and its group's (its own when in none).
struct Place<'a> {
    section: &'a Section,
    name: &'a str,
    group: &'a str,
}

fn program(
    place: &Place<'_>,
    defaults: &FileDefaults<'_>,
    source: &Source<'_>,
    namer: &mut Namer,
    report: &mut Report,
) -> Option<Service> {
    let section = place.section;
    let at = format!("[{}]", section.name);
    if section.get("command").is_none() {
        report.push(
            Item::not_imported(
                &at,
                "no command: supervisord refuses such a program; there is nothing to run",
            )
            .line(Some(section.line)),
        );
        return None;
    }
    let (name, renamed) = namer.name(place.name, "program");
    if renamed {
        report.push(
            Item::renamed(
                &at,
                format!("program {:?} is the service `{name}`: ten's names are DNS labels (lowercase letters, digits and '-')", place.name),
            )
            .line(Some(section.line))
            .service(&name),
        );
    }
    let number = |key: &str, report: &mut Report| -> Option<u32> {
        let entry = section.get(key)?;
        let parsed = entry.value.trim().parse::<u32>().ok();
        if parsed.is_none() {
            report.push(
                Item::not_imported(&at, "not a number")
                    .key(key, &entry.value)
                    .line(Some(entry.line))
                    .service(&name),
            );
        }
        parsed
    };
    let numprocs = number("numprocs", report).unwrap_or(1).max(1);
    let start = number("numprocs_start", report).unwrap_or(0);
    let count = (numprocs > 1).then_some(numprocs);
    let mut service = Service::new(name, at.clone());
    service.worker = true;
    service.count = count;
    let mut reader = ProgramReader {
        section,
        at,
        service,
        expander: Expander {
            program: place.name,
            group: place.group,
            numprocs,
            process_num: match count {
                Some(_) => ProcessNum::Index,
                None => ProcessNum::Number(start),
            },
            here: source.dir,
            host: source.host,
            env: source.env,
        },
        report,
    };
    for entry in &section.entries {
        reader.entry(entry, defaults);
    }
    reader.finish(defaults);
    reader.logs(defaults);
    reader.checks();
    Some(reader.service)
}

/// Which group each program is in (by the source's names).
fn group_membership(ini: &Ini) -> BTreeMap<String, String> {
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

fn group(
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
fn global_section(
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
fn other_section(section: &Section, kind: &str, report: &mut Report) {
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
