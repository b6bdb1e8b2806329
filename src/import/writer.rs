//! The files an import writes: tenement.toml (services, `[instances]`, groups, and the report
//! as comments where each item belongs) and an instance file for each instance declared
//! stopped. Pure: the model in, text out.

use std::fmt::Write;

use super::OutputFile;
use super::model::{Check, Command, Project, Service};
use super::report::{Item, ItemKind};
use super::text::template;

/// Comments are wrapped to this width.
const WIDTH: usize = 100;

pub(crate) fn write(project: &Project) -> Vec<OutputFile> {
    let mut files = vec![OutputFile {
        path: crate::config::CONFIG_FILE.to_string(),
        text: tenement_toml(project),
    }];
    for service in &project.services {
        if let Some(why) = &service.stopped {
            for id in instance_ids(service) {
                files.push(OutputFile {
                    path: format!("instances/{}/{id}.toml", service.name),
                    text: format!(
                        "# {why} in {} of {}: declared stopped; `ten start {}:{id}` starts it.\nstate = \"stopped\"\n",
                        service.origin, project.source, service.name
                    ),
                });
            }
        }
    }
    files
}

/// The ids of a service's instances: `0` alone, or `0` to `count - 1`.
pub(crate) fn instance_ids(service: &Service) -> Vec<String> {
    (0..service.count.unwrap_or(1))
        .map(|id| id.to_string())
        .collect()
}

fn tenement_toml(project: &Project) -> String {
    let mut out = String::new();
    let dialect = project
        .dialect
        .map(|dialect| format!(", {dialect}"))
        .unwrap_or_default();
    comment(
        &mut out,
        "",
        &format!(
            "tenement.toml made by `ten import` from {} ({}{dialect}). Whatever ten has no equivalent for is a `# not imported:` comment where it was. `ten validate` checks this file; `ten serve` runs it.",
            project.source,
            project.format.describe()
        ),
    );
    let known = |item: &&Item| {
        item.service
            .as_ref()
            .is_some_and(|name| project.services.iter().any(|s| &s.name == name))
    };
    let global: Vec<&Item> = project
        .report
        .items
        .iter()
        .filter(|item| !known(item))
        .collect();
    if !global.is_empty() {
        out.push_str("#\n");
        for item in global {
            report_comment(&mut out, item, true);
        }
    }
    for service in &project.services {
        out.push('\n');
        write_service(&mut out, service, project);
    }
    if !project.services.is_empty() {
        out.push_str("\n[instances]\n");
        for service in &project.services {
            let declaration = match service.count {
                Some(count) => format!("{{ count = {count} }}"),
                None => "[\"0\"]".to_string(),
            };
            let _ = writeln!(out, "{} = {declaration}", key(&service.name));
        }
    }
    for group in &project.groups {
        let members: Vec<String> = group.services.iter().map(|s| string(s)).collect();
        let _ = writeln!(
            out,
            "\n[group.{}]\n# from {}\nservices = [{}]",
            key(&group.name),
            group.origin,
            members.join(", ")
        );
    }
    out
}

fn write_service(out: &mut String, service: &Service, project: &Project) {
    let _ = writeln!(out, "[service.{}]", key(&service.name));
    let from = match &service.description {
        Some(description) => format!("from {}: {description}", service.origin),
        None => format!("from {}", service.origin),
    };
    comment(out, "", &from);
    let mut line = |name: &'static str, value: String| {
        let _ = match service.remarks.get(name) {
            Some(remark) => writeln!(out, "{name} = {value}  # {remark}"),
            None => writeln!(out, "{name} = {value}"),
        };
    };
    match &service.command {
        Some(Command::Line(text)) => line("command", string(&template(text))),
        Some(Command::Shell { shell, line: text }) => {
            line("command", string(shell));
            line("args", array(&["-c".to_string(), template(text)]));
        }
        Some(Command::Argv(words)) => {
            if let Some((program, rest)) = words.split_first() {
                line("command", string(&template(program)));
                if !rest.is_empty() {
                    let rest: Vec<String> = rest.iter().map(|word| template(word)).collect();
                    line("args", array(&rest));
                }
            }
        }
        None => {}
    }
    if service.worker {
        line("listen", string("none"));
    }
    let text_keys: [(&'static str, &Option<String>); 2] =
        [("workdir", &service.workdir), ("user", &service.user)];
    for (name, value) in text_keys {
        if let Some(value) = value {
            let value = if name == "workdir" {
                template(value)
            } else {
                value.clone()
            };
            line(name, string(&value));
        }
    }
    if let Some(restart) = service.restart {
        line("restart", string(restart));
    }
    for (name, value) in [
        ("start_seconds", service.start_seconds),
        ("startup_timeout", service.startup_timeout),
    ] {
        if let Some(value) = value {
            line(name, value.to_string());
        }
    }
    if let Some(signal) = &service.stop_signal {
        line("stop_signal", string(signal));
    }
    if let Some(timeout) = service.stop_timeout {
        line("stop_timeout", timeout.to_string());
    }
    if let Some(order) = service.stop_order {
        line("stop_order", order.to_string());
    }
    if let Some(limit) = service.memory_limit_mb {
        line("memory_limit_mb", limit.to_string());
    }
    match &service.health {
        Some(Check::Http(path)) => line("health", string(path)),
        Some(Check::Tcp(port)) => line("health_check", format!("{{ tcp = {port} }}")),
        Some(Check::Exec(words)) => line("health_check", format!("{{ exec = {} }}", array(words))),
        None => {}
    }
    for (name, value) in [
        ("health_interval", service.health_interval),
        ("health_timeout", service.health_timeout),
        ("health_retries", service.health_retries),
        ("health_start_period", service.health_start_period),
    ] {
        if let Some(value) = value {
            line(name, value.to_string());
        }
    }
    for (name, value) in [
        ("stdout_log", &service.stdout_log),
        ("stderr_log", &service.stderr_log),
    ] {
        if let Some(path) = value {
            line(name, string(&template(path)));
        }
    }
    // Rotation without a file of its own has no effect in ten (its capture rotates itself).
    let has_log_file = service.stdout_log.is_some() || service.stderr_log.is_some();
    let mut unused_rotation = Vec::new();
    for (name, value) in [
        ("log_max_bytes", service.log_max_bytes),
        ("log_backups", service.log_backups),
    ] {
        match value {
            Some(value) if has_log_file => line(name, value.to_string()),
            Some(value) => unused_rotation.push(format!(
                "# not imported: {name} = {value}: without a log file of its own, ten rotates its capture itself"
            )),
            None => {}
        }
    }
    for note in unused_rotation {
        let _ = writeln!(out, "{note}");
    }
    for item in project
        .report
        .items
        .iter()
        .filter(|item| item.service.as_deref() == Some(service.name.as_str()))
    {
        report_comment(out, item, false);
    }
    if !service.env.is_empty() {
        let _ = writeln!(out, "\n[service.{}.env]", key(&service.name));
        if let Some(remark) = service.remarks.get("env") {
            comment(out, "", remark);
        }
        for (name, value) in &service.env {
            let _ = writeln!(out, "{} = {}", key(name), string(&template(value)));
        }
    }
}

/// One report item as a comment: `# not imported: key = value: what to do`.
fn report_comment(out: &mut String, item: &Item, with_place: bool) {
    let kind = match item.kind {
        ItemKind::NotImported => "not imported",
        ItemKind::Note => "note",
        ItemKind::Renamed => "renamed",
    };
    let text = match &item.key {
        Some(key) if with_place && *key != item.at => format!("{} {}", item.at, item.text()),
        None if with_place => format!("{}: {}", item.at, item.text()),
        _ => item.text(),
    };
    comment(out, &format!("{kind}: "), &text);
}

/// `# PREFIX TEXT`, wrapped at [`WIDTH`] with the continuation lines indented.
fn comment(out: &mut String, prefix: &str, text: &str) {
    let first = format!("# {prefix}");
    let indent = if prefix.is_empty() { "# " } else { "#   " };
    let mut current = first.clone();
    let mut empty = true;
    for word in text.split_whitespace() {
        if !empty && current.len() + 1 + word.len() > WIDTH {
            out.push_str(current.trim_end());
            out.push('\n');
            current = indent.to_string();
            empty = true;
        }
        if !empty {
            current.push(' ');
        }
        current.push_str(word);
        empty = false;
    }
    out.push_str(current.trim_end());
    out.push('\n');
}

/// A TOML string: basic, or literal when that reads better, as toml_edit writes it.
fn string(text: &str) -> String {
    toml_edit::Value::from(text).to_string().trim().to_string()
}

fn array(words: &[String]) -> String {
    let items: Vec<String> = words.iter().map(|word| string(word)).collect();
    format!("[{}]", items.join(", "))
}

/// A TOML key: bare when it can be, quoted otherwise.
fn key(name: &str) -> String {
    let bare = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare { name.to_string() } else { string(name) }
}
