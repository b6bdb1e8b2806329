//! The files `ten init` writes, as text: a commented tenement.toml and an instance file per
//! service. Pure.

use std::fmt::Write;

use super::guess::{Guess, GuessedService, Run};

/// A TOML string (quoted and escaped as TOML wants).
fn quoted(text: &str) -> String {
    toml_edit::Value::from(text).to_string()
}

/// `key = value` with a comment in a column, as the rest of the file.
fn line(out: &mut String, key_value: &str, comment: &str) {
    if comment.is_empty() {
        let _ = writeln!(out, "{key_value}");
    } else {
        let _ = writeln!(out, "{key_value:<33} # {comment}");
    }
}

/// `text` as comment lines of at most 95 columns.
fn comment(out: &mut String, text: &str) {
    let mut current = String::from("#");
    for word in text.split(' ') {
        if current.len() + 1 + word.len() > 95 && current != "#" {
            let _ = writeln!(out, "{current}");
            current = String::from("#");
        }
        current.push(' ');
        current.push_str(word);
    }
    let _ = writeln!(out, "{current}");
}

pub(super) fn tenement_toml(guess: &Guess) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# tenement.toml, written by `ten init` for {}.",
        guess.described
    );
    if guess.kind == "procfile" {
        out.push_str(
            "# Each process of the Procfile is a service with one instance, declared by\n\
             # instances/SERVICE/main.toml: ten starts it and keeps it running.\n",
        );
    } else {
        out.push_str(
            "# [service.NAME] is a template: ten runs one process of it per tenant. A tenant is declared\n\
             # by a file instances/NAME/ID.toml (an empty file is enough) or by `ten spawn NAME:ID`.\n",
        );
    }
    out.push_str(
        "# `ten validate` checks this file; `ten config` shows every key with its default.\n\n\
         [settings]\n",
    );
    line(
        &mut out,
        "data_dir = \"tenement-data\"",
        "ten's state, and each instance's data in {data_dir}/{service}/{id}",
    );
    for service in &guess.services {
        out.push('\n');
        service_table(&mut out, service);
    }
    out
}

fn service_table(out: &mut String, service: &GuessedService) {
    let name = &service.name;
    let _ = writeln!(out, "[service.{name}]");
    for note in &service.notes {
        comment(out, note);
    }
    if !service.worker {
        let given = match &service.run {
            Run::Command(command) => command.contains("{port}"),
            Run::Shell(_) => false,
        };
        comment(
            out,
            &if given {
                format!(
                    "Each instance gets its own port ({{port}}, also $PORT in its environment) and is reached through ten's proxy as ID.{name}.DOMAIN."
                )
            } else {
                format!(
                    "The app must listen on 127.0.0.1 at the port in $PORT (each instance has its own) and is reached through ten's proxy as ID.{name}.DOMAIN."
                )
            },
        );
    }
    match &service.run {
        Run::Command(command) => {
            let _ = writeln!(out, "command = {}", quoted(command));
        }
        Run::Shell(script) => {
            out.push_str("# Run by a shell: the command needs one (ten runs none itself).\n");
            let _ = writeln!(out, "command = \"sh\"");
            let _ = writeln!(out, "args = [\"-c\", {}]", quoted(script));
        }
    }
    if service.worker {
        line(
            out,
            "listen = \"none\"",
            "a worker: no port, no route; ten keeps it running",
        );
    }
    if let Some(seconds) = service.startup_timeout {
        line(
            out,
            &format!("startup_timeout = {seconds}"),
            "seconds it may take to answer at first",
        );
    }
    if let Some(seconds) = service.idle_timeout {
        line(
            out,
            &format!("idle_timeout = {seconds}"),
            "seconds without a request before it sleeps; 0 = never",
        );
    }
    if !service.worker {
        let health = |path: &str| format!("health = {}", quoted(path));
        match service.health {
            Some(path) => line(out, &health(path), "a GET that must answer 2xx"),
            None => line(
                out,
                &format!("# {}", health("/health")),
                "a GET that answers 2xx when well; without it, a connect counts",
            ),
        }
    }
    line(
        out,
        "# restart = \"on-failure\"",
        "always | on-failure | never",
    );
    line(
        out,
        "# stop_timeout = 10",
        "seconds from SIGTERM to SIGKILL",
    );
    let _ = writeln!(out, "\n[service.{name}.env]");
    line(
        out,
        "DATA_DIR = \"{data_dir}/{name}/{id}\"",
        "its own directory, made before it starts",
    );
    for (key, value, comment) in &service.env {
        line(out, &format!("{key} = {}", quoted(value)), comment);
    }
}

/// The instance file of `service`'s example instance.
pub(super) fn instance_file(service: &GuessedService) -> String {
    let (name, id) = (&service.name, service.instance);
    let mut out = String::new();
    if service.instance == "main" {
        let _ = writeln!(
            out,
            "# {name}:{id}, declared by this file (an empty file would do): delete it and ten stops it."
        );
    } else {
        let _ = writeln!(
            out,
            "# {id}, a tenant of {name}: this file declares it (an empty file would too). Delete the file\n\
             # and ten stops it; copy it to bob.toml for another tenant (http://bob.{name}.localhost:8080/)."
        );
    }
    let _ = writeln!(out, "# Keys set here win over [service.{name}].");
    line(
        &mut out,
        "# state = \"stopped\"",
        "declared, but not running",
    );
    if !service.worker {
        line(
            &mut out,
            "# weight = 100",
            "its share of the service's traffic",
        );
    }
    out.push('\n');
    line(
        &mut out,
        "# [env]",
        &format!("merged over [service.{name}.env]"),
    );
    out.push_str("# GREETING = \"hello\"\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_quoted_as_toml() {
        assert_eq!(quoted("a \"b\" c"), r#"'a "b" c'"#);
        assert_eq!(quoted("plain"), "\"plain\"");
    }
}
