//! Procfiles (Heroku, foreman, honcho, overmind): `name: command` lines, each run by `sh -c`.
//! `web` (and any process reading `$PORT`) is an HTTP service; the others are workers.
//! `release` runs once per deploy on Heroku, so it is not a supervised process.

use super::Source;
use super::model::{Command, Format, Project, Service};
use super::report::Item;
use super::text::{GIVEN_ENV, Namer, shell_line};

pub(crate) fn read(source: &Source<'_>) -> Project {
    let mut project = Project::new(Format::Procfile, source.name);
    let mut namer = Namer::default();
    let mut seen: Vec<(String, String)> = Vec::new();
    for (index, raw) in source.text.lines().enumerate() {
        let line = Some(index + 1);
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let Some((name, command)) = split(trimmed) else {
            project.report.push(
                Item::not_imported(trimmed, "not a `name: command` line (names are letters, digits, '_' and '-'): nothing to import")
                    .line(line),
            );
            continue;
        };
        if name == "release" {
            project.report.push(
                Item::not_imported(name, "Heroku runs `release` once per deploy, not as a supervised process: run it in your deploy, before `ten apply`")
                    .key(name, command)
                    .line(line),
            );
            continue;
        }
        let earlier = seen
            .iter()
            .position(|(source_name, _)| source_name == name)
            .map(|at| seen.remove(at).1);
        let (service_name, renamed) = match earlier {
            Some(earlier) => {
                project.services.retain(|service| service.name != earlier);
                project.report.push(
                    Item::note(name, "given twice: the last line counts, as in foreman")
                        .line(line)
                        .service(&earlier),
                );
                (earlier, false)
            }
            None => namer.name(name, "process"),
        };
        if renamed {
            project.report.push(
                Item::renamed(name, format!("process type {name:?} is the service `{service_name}`: ten's names are DNS labels (lowercase letters, digits and '-')"))
                    .line(line)
                    .service(&service_name),
            );
        }
        seen.push((name.to_string(), service_name.clone()));
        let service = process(name, command, service_name, line, &mut project);
        project.services.push(service);
    }
    project
}

/// `name: command`, as Heroku reads a line.
fn split(line: &str) -> Option<(&str, &str)> {
    let (name, command) = line.split_once(':')?;
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let command = command.trim();
    (valid && !command.is_empty()).then_some((name, command))
}

fn process(
    name: &str,
    command: &str,
    service_name: String,
    line: Option<usize>,
    project: &mut Project,
) -> Service {
    let mut service = Service::new(service_name, format!("the `{name}` line"));
    let shell = shell_line(command, "sh");
    let reads_port = shell.variables.iter().any(|variable| variable == "PORT");
    service.worker = !(name == "web" || reads_port);
    let note = |message: String| {
        Item::note(name, message)
            .key(name, command)
            .line(line)
            .service(&service.name)
    };
    if let Command::Shell { .. } = &shell.command {
        project.report.push(note(
            "it uses shell syntax, so it runs as `sh -c '...'`, as foreman and Heroku run it"
                .to_string(),
        ));
    } else if reads_port {
        project
            .report
            .push(note("$PORT is ten's {port}".to_string()));
    }
    if name == "web" && !reads_port {
        project.report.push(note(
            "Heroku routes HTTP to `web`, so it is an HTTP service: the app must listen on $PORT, which ten sets"
                .to_string(),
        ));
    }
    let missing: Vec<&str> = shell
        .variables
        .iter()
        .map(String::as_str)
        .filter(|variable| !GIVEN_ENV.contains(variable))
        .collect();
    if !missing.is_empty() {
        let names = missing.join(", ");
        project.report.push(note(format!(
            "it reads {names} from its environment: ten starts tenants with a clean one (PATH, HOME, LANG, PORT and env), so add them to [service.{}.env] (Heroku's config vars, foreman's .env)",
            service.name
        )));
    }
    service.command = Some(shell.command);
    service
}
