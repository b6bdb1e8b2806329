//! A Procfile (`NAME: COMMAND` per line, as Heroku and foreman read it) as services: `web`
//! listens on the tenant's port, every other process is a worker. Pure: text in, services out.

use crate::names::{check_label, suggest_label};

use super::guess::{GuessedService, Run};

/// The processes of a Procfile as services, and a line for each one left out.
pub(super) fn services(text: &str) -> (Vec<GuessedService>, Vec<String>) {
    let mut services: Vec<GuessedService> = Vec::new();
    let mut skipped = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((process, command)) = line.split_once(':') else {
            skipped.push(format!(
                "Procfile: `{line}` is not `NAME: COMMAND`; left out"
            ));
            continue;
        };
        let (process, command) = (process.trim(), command.trim());
        if process == "release" {
            skipped.push(
                "Procfile: `release` runs once at deploy, not as a service; left out".to_string(),
            );
            continue;
        }
        let name = match check_label(process) {
            Ok(()) => process.to_string(),
            Err(_) => match suggest_label(process) {
                Some(name) => name,
                None => {
                    skipped.push(format!(
                        "Procfile: `{process}` cannot be a service name (a DNS label); left out"
                    ));
                    continue;
                }
            },
        };
        if command.is_empty() {
            skipped.push(format!("Procfile: `{process}` has no command; left out"));
            continue;
        }
        if services.iter().any(|service| service.name == name) {
            skipped.push(format!(
                "Procfile: `{process}` is named like another process ({name}); left out"
            ));
            continue;
        }
        let worker = process != "web";
        let mut notes = vec![format!("From the Procfile: {process}: {command}")];
        if name != process {
            notes.push(format!(
                "(named {name}: service names are DNS labels, lowercase letters, digits and '-')"
            ));
        }
        services.push(GuessedService {
            name,
            run: run_of(command, worker),
            worker,
            notes,
            instance: "main",
            ..GuessedService::default()
        });
    }
    (services, skipped)
}

/// How ten runs a Procfile command. Heroku runs it with a shell; ten splits `command` like a
/// shell but runs no shell, so a command that needs one (variables, pipes, `&&`, globs,
/// `NAME=value` in front) runs under `sh -c`. A web process's `$PORT` alone needs none: it
/// becomes ten's `{port}`.
pub(super) fn run_of(command: &str, worker: bool) -> Run {
    let port_free = if worker {
        command.to_string()
    } else {
        command.replace("${PORT}", "$PORT")
    };
    let without_port = if worker {
        port_free.clone()
    } else {
        port_free.replace("$PORT", "")
    };
    if needs_shell(&without_port) {
        // `exec`: the shell becomes the command, so the stop signal reaches it directly.
        let simple = !["&&", "||", ";", "|", "&", "\n"]
            .iter()
            .any(|operator| command.contains(operator));
        let script = if simple && !command.starts_with("exec ") {
            format!("exec {command}")
        } else {
            command.to_string()
        };
        return Run::Shell(script);
    }
    let escaped = port_free.replace('{', "{{");
    Run::Command(if worker {
        escaped
    } else {
        escaped.replace("$PORT", "{port}")
    })
}

/// Whether `command` means something only a shell gives it, read as sh reads it (quotes
/// included: `sh -c "a; b"` needs no second shell), as `ten import` reads a Procfile. A `$PORT`
/// left in (a worker's: it has no port) is the shell's to expand.
fn needs_shell(command: &str) -> bool {
    command.contains("$PORT") || command.contains("${PORT}") || crate::import::needs_shell(command)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(text: &str, worker: bool) -> String {
        match run_of(text, worker) {
            Run::Command(command) => format!("command {command}"),
            Run::Shell(script) => format!("sh -c {script}"),
        }
    }

    #[test]
    fn web_is_served_on_the_port_and_the_others_are_workers() {
        let (services, skipped) = services(
            "# processes\nweb: gunicorn app:app --bind 127.0.0.1:$PORT\nworker: celery -A tasks worker\n\nclock_1: python clock.py\nrelease: python manage.py migrate\n",
        );
        let summary: Vec<(String, bool, String)> = services
            .iter()
            .map(|service| {
                let Run::Command(command) = &service.run else {
                    panic!("{:?}", service.run)
                };
                (service.name.clone(), service.worker, command.clone())
            })
            .collect();
        assert_eq!(
            summary,
            [
                (
                    "web".into(),
                    false,
                    "gunicorn app:app --bind 127.0.0.1:{port}".into()
                ),
                ("worker".into(), true, "celery -A tasks worker".into()),
                ("clock-1".into(), true, "python clock.py".into()),
            ]
        );
        assert_eq!(skipped.len(), 1, "{skipped:?}");
        assert!(skipped[0].contains("release"), "{skipped:?}");
    }

    #[test]
    fn what_needs_a_shell_gets_one() {
        assert_eq!(
            command("bin/web --port ${PORT}", false),
            "command bin/web --port {port}"
        );
        assert_eq!(
            command("bundle exec puma -C config/puma.rb", false),
            "command bundle exec puma -C config/puma.rb"
        );
        assert_eq!(
            command("node server.js --port $PORT --env $NODE_ENV", false),
            "sh -c exec node server.js --port $PORT --env $NODE_ENV"
        );
        assert_eq!(
            command("cd app && npm start", false),
            "sh -c cd app && npm start"
        );
        assert_eq!(
            command("RAILS_ENV=production bundle exec sidekiq", true),
            "sh -c exec RAILS_ENV=production bundle exec sidekiq"
        );
        // A worker has no port: its $PORT is the shell's business.
        assert_eq!(
            command("worker --port $PORT", true),
            "sh -c exec worker --port $PORT"
        );
        // Operators inside quotes are the quoted program's: no second shell around a shell.
        assert_eq!(
            command("sh -c \"while true; do echo tick; sleep 5; done\"", true),
            "command sh -c \"while true; do echo tick; sleep 5; done\""
        );
        assert_eq!(
            command("python3 -c 'import os; print(1)'", true),
            "command python3 -c 'import os; print(1)'"
        );
        // ten's templates: a literal brace stays literal.
        assert_eq!(
            command("app --json '{id}'", false),
            "command app --json '{{id}'"
        );
    }

    #[test]
    fn lines_that_are_not_processes_are_said() {
        let (services, skipped) = services("web python app.py\n: nothing\nweb: a\nWeb: b\n");
        assert_eq!(services.len(), 1);
        assert_eq!(skipped.len(), 3, "{skipped:?}");
    }
}
