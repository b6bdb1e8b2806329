//! The whole file read: its sections walked in order, each `[program:x]` set up (its name,
//! `numprocs`, expansions) and read by `program`, the other sections handed to `sections`,
//! keys given twice noted. Must not read a program's options itself (`program` does).

use crate::import::Source;
use crate::import::ini::{Ini, Section};
use crate::import::model::{Format, Project, Service};
use crate::import::report::{Item, Report};
use crate::import::text::Namer;

use super::program::{FileDefaults, ProgramReader};
use super::sections::{FileSettings, global_section, group, group_membership, other_section};
use super::values::{Expander, ProcessNum};

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
