//! One `[service.NAME]` table -> [`ServiceTemplate`], plus the readers shared with instance
//! files (env tables, keywords, limits, templates).

use std::collections::BTreeMap;
use std::time::Duration;

use super::diag::{Diagnostic, has_errors};
use super::model::{
    DEFAULT_SOCKET, Isolation, Listen, RestartPolicy, ServiceTemplate, StartMode, StopSignal,
};
use super::reader::{Fields, Spanned, TimeUnit, did_you_mean, locate};
use super::template::{Template, Var};
use crate::names::ServiceName;

/// Every key a service table may hold.
pub const SERVICE_KEYS: &[&str] = &[
    "command",
    "args",
    "workdir",
    "socket",
    "health",
    "isolation",
    "idle_timeout",
    "start",
    "startup_timeout",
    "storage_persist",
    "restart",
    "memory_limit_mb",
    "cpu_shares",
    "storage_quota_mb",
    "env",
    "request_timeout",
    "stop_signal",
    "stop_timeout",
    "weight",
    "listen",
    "pids_limit",
    "user",
    "health_check",
    "health_interval",
    "health_timeout",
    "health_retries",
    "health_start_period",
    "start_seconds",
    "stdout_log",
    "stderr_log",
    "log_max_bytes",
    "log_backups",
    "stop_order",
];

/// Environment variables ten sets itself for every instance.
pub(crate) const RESERVED_ENV: &[&str] = &["PORT", "SOCKET_PATH"];

/// Reads one service table. `name` is `None` when the name itself was invalid (already
/// reported); the table is still checked so that all problems show at once.
pub(crate) fn parse_service(
    fields: &Fields<'_>,
    name: Option<ServiceName>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<ServiceTemplate> {
    let before = diagnostics.len();
    fields.reject_unknown(
        SERVICE_KEYS,
        |key| match key {
            "state" => Some("`state` is set per instance, in instances/<service>/<id>.toml".into()),
            "id" | "ids" | "instances" => Some(
                "instances are declared in [instances] or as files in instances/<service>/".into(),
            ),
            "autorestart" => Some("use restart = \"always\" | \"on-failure\" | \"never\"".into()),
            "environment" => Some("use an [service.NAME.env] table".into()),
            "directory" => Some("did you mean `workdir`?".into()),
            "stopsignal" => Some("did you mean `stop_signal`?".into()),
            "stopwaitsecs" | "shutdown_timeout" => {
                Some("did you mean `stop_timeout` (seconds before SIGKILL)?".into())
            }
            "startretries" => Some(
                "use max_restarts (and restart_window) in [settings]: after that many restarts the instance is failed"
                    .into(),
            ),
            "startsecs" => Some("did you mean `start_seconds` (the uptime that makes a start count)?".into()),
            "priority" => Some(super::stop_order::PRIORITY_HINT.into()),
            "autostart" => Some(
                "every declared instance starts; set state = \"stopped\" in its instance file to keep it stopped"
                    .into(),
            ),
            "numprocs" | "process_num" => Some(
                "a process set is declared in [instances]: NAME = { count = 4 } declares NAME:0 to NAME:3 ({index} is each one's number)"
                    .into(),
            ),
            key if key.starts_with("healthcheck_") => Some(
                "checks are health_check = { http = \"/path\" } | { tcp = PORT } | { exec = [...] }, paced by health_interval, health_timeout, health_retries and health_start_period"
                    .into(),
            ),
            _ => super::log_files::supervisord_hint(key),
        },
        diagnostics,
    );
    let argv = parse_argv(fields, diagnostics);
    let workdir = fields
        .string("workdir", diagnostics)
        .and_then(|text| template(fields, "workdir", &text, &Var::ALL, diagnostics));
    let socket_vars = [Var::Name, Var::Id, Var::DataDir];
    let socket = match fields.string("socket", diagnostics) {
        Some(text) => template(fields, "socket", &text, &socket_vars, diagnostics),
        None => Template::parse(DEFAULT_SOCKET).ok(),
    };
    let health = parse_health(fields, diagnostics);
    let isolation = keyword(
        fields,
        "isolation",
        Isolation::KEYWORDS,
        Isolation::from_keyword,
        diagnostics,
    );
    let restart = keyword(
        fields,
        "restart",
        RestartPolicy::KEYWORDS,
        RestartPolicy::from_keyword,
        diagnostics,
    );
    let listen = keyword(
        fields,
        "listen",
        Listen::KEYWORDS,
        Listen::from_keyword,
        diagnostics,
    );
    let checks = super::checks::parse_checks(fields, health, listen, diagnostics);
    let stop_signal = parse_stop_signal(fields, diagnostics);
    let seconds = |key: &str, min: u64, diagnostics: &mut Vec<Diagnostic>| {
        fields.duration(
            key,
            TimeUnit::Seconds,
            Duration::from_secs(min),
            diagnostics,
        )
    };
    let idle_timeout = seconds("idle_timeout", 0, diagnostics);
    let start = parse_start(fields, listen, diagnostics);
    let startup_timeout = seconds("startup_timeout", 1, diagnostics);
    let request_timeout = seconds("request_timeout", 1, diagnostics);
    let stop_timeout = seconds("stop_timeout", 0, diagnostics);
    let storage_persist = fields.bool("storage_persist", diagnostics);
    let limits = parse_limits(fields, diagnostics);
    let pids_limit = fields.integer("pids_limit", 1..i64::MAX, "processes", diagnostics);
    let weight = parse_weight(fields, diagnostics);
    let user = parse_user(fields, diagnostics);
    let env = parse_env(fields, diagnostics).unwrap_or_default();
    let log_files = super::log_files::parse_log_files(fields, diagnostics);
    let stop_order = super::stop_order::parse_stop_order(fields, diagnostics);
    if has_errors(&diagnostics[before..]) {
        return None;
    }
    Some(ServiceTemplate {
        name: name?,
        argv: argv?,
        workdir,
        socket: socket?,
        health: checks.http,
        isolation: isolation.unwrap_or(Isolation::Process),
        idle_timeout: idle_timeout.unwrap_or(Duration::ZERO),
        start,
        startup_timeout: startup_timeout.unwrap_or(Duration::from_secs(10)),
        storage_persist: storage_persist.unwrap_or(true),
        restart: restart.unwrap_or(RestartPolicy::OnFailure),
        memory_limit_mb: limits.memory_limit_mb,
        cpu_shares: limits.cpu_shares,
        storage_quota_mb: limits.storage_quota_mb,
        env,
        request_timeout: request_timeout.unwrap_or(Duration::from_secs(30)),
        stop_signal: stop_signal.unwrap_or(StopSignal::Term),
        stop_timeout: stop_timeout.unwrap_or(Duration::from_secs(10)),
        weight: weight.unwrap_or(100),
        // The original's model: a service that names its socket listens there.
        listen: listen.unwrap_or(if fields.item("socket").is_some() {
            Listen::Socket
        } else {
            Listen::Port
        }),
        pids_limit,
        user,
        check: checks.check,
        timing: checks.timing,
        log_files,
        stop_order: stop_order.unwrap_or(0),
    })
}

/// `start`: a keyword; `on-demand` is refused for a worker (`listen = "none"`), which no
/// request can wake.
pub(crate) fn parse_start(
    fields: &Fields<'_>,
    listen: Option<Listen>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<StartMode> {
    let start = keyword(
        fields,
        "start",
        StartMode::KEYWORDS,
        StartMode::from_keyword,
        diagnostics,
    )?;
    if start == StartMode::OnDemand && listen == Some(Listen::None) {
        diagnostics.push(
            Diagnostic::at(
                fields.file,
                fields.value_span("start"),
                format!(
                    "`start = \"on-demand\"` in {} cannot work: a worker (listen = \"none\") answers no request that would wake it",
                    fields.section
                ),
            )
            .with_label("never woken")
            .with_hint("remove `start`, or set start = \"eager\""),
        );
        return None;
    }
    Some(start)
}

/// `command` shell-split, or `command` + `args`.
fn parse_argv(fields: &Fields<'_>, diagnostics: &mut Vec<Diagnostic>) -> Option<Vec<Template>> {
    let args = fields.string_list("args", diagnostics);
    let Some(command) = fields.string("command", diagnostics) else {
        // A likely typo of `command` is already reported as such; "missing" would be noise.
        let typo = fields
            .table
            .iter()
            .any(|(key, _)| key != "command" && did_you_mean(key, &["command"]).is_some());
        if fields.item("command").is_none() && !typo {
            fields.missing(
                "command",
                "add the program to run, e.g. command = \"python3 app.py\"",
                diagnostics,
            );
        }
        return None;
    };
    let words: Vec<Spanned<String>> = if fields.item("args").is_some() {
        let mut words = vec![Spanned {
            value: command.value.to_string(),
            span: command.span.clone(),
        }];
        words.extend(args?.into_iter().map(|arg| Spanned {
            value: arg.value.to_string(),
            span: arg.span,
        }));
        words
    } else {
        match shell_words::split(command.value) {
            Ok(words) => words
                .into_iter()
                .map(|word| Spanned {
                    value: word,
                    span: command.span.clone(),
                })
                .collect(),
            Err(error) => {
                diagnostics.push(
                    Diagnostic::at(
                        fields.file,
                        command.span.clone(),
                        format!("`command` in {} cannot be split into words: {error}", fields.section),
                    )
                    .with_label("unbalanced quotes")
                    .with_hint("close the quote, or give the program in `command` and its arguments in `args = [...]`"),
                );
                return None;
            }
        }
    };
    if words
        .first()
        .is_none_or(|word| word.value.trim().is_empty())
    {
        diagnostics.push(
            Diagnostic::at(
                fields.file,
                command.span.clone(),
                format!("`command` in {} is empty", fields.section),
            )
            .with_label("no program")
            .with_hint("name the program to run, e.g. command = \"python3 app.py\""),
        );
        return None;
    }
    let mut argv = Vec::with_capacity(words.len());
    let mut ok = true;
    for word in &words {
        let borrowed = Spanned {
            value: word.value.as_str(),
            span: word.span.clone(),
        };
        match template(fields, "command", &borrowed, &Var::ALL, diagnostics) {
            Some(parsed) => argv.push(parsed),
            None => ok = false,
        }
    }
    ok.then_some(argv)
}

/// Parses a template string, reporting unknown variables and variables not in `allowed`.
pub(crate) fn template(
    fields: &Fields<'_>,
    key: &str,
    text: &Spanned<&str>,
    allowed: &[Var],
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<Template> {
    let known: Vec<String> = allowed
        .iter()
        .map(|var| format!("{{{}}}", var.as_str()))
        .collect();
    match Template::parse(text.value) {
        Ok(parsed) => {
            let mut ok = true;
            for var in parsed.vars().filter(|var| !allowed.contains(var)) {
                ok = false;
                let needle = format!("{{{}}}", var.as_str());
                diagnostics.push(
                    Diagnostic::at(
                        fields.file,
                        locate(fields.file, &text.span, &needle),
                        format!("`{key}` in {} cannot use {needle}", fields.section),
                    )
                    .with_label("not available here")
                    .with_hint(format!("`{key}` may use {}", known.join(", "))),
                );
            }
            ok.then_some(parsed)
        }
        Err(errors) => {
            for error in errors {
                let needle = format!("{{{}}}", error.name);
                let names: Vec<&str> = Var::ALL.iter().map(|var| var.as_str()).collect();
                let hint = match did_you_mean(&error.name, &names) {
                    Some(close) => format!(
                        "did you mean {{{close}}}? known variables: {}",
                        known.join(", ")
                    ),
                    None => format!(
                        "known variables: {}; write {{{{ for a literal brace",
                        known.join(", ")
                    ),
                };
                diagnostics.push(
                    Diagnostic::at(
                        fields.file,
                        locate(fields.file, &text.span, &needle),
                        format!(
                            "unknown template variable {needle} in `{key}` of {}",
                            fields.section
                        ),
                    )
                    .with_label("unknown variable")
                    .with_hint(hint),
                );
            }
            None
        }
    }
}

fn parse_health(fields: &Fields<'_>, diagnostics: &mut Vec<Diagnostic>) -> Option<String> {
    super::checks::url_path(fields, "health", "in", "health = \"/health\"", diagnostics)
}

fn parse_stop_signal(fields: &Fields<'_>, diagnostics: &mut Vec<Diagnostic>) -> Option<StopSignal> {
    let text = fields.string("stop_signal", diagnostics)?;
    let signal = StopSignal::parse(text.value);
    if signal.is_none() {
        diagnostics.push(
            Diagnostic::at(
                fields.file,
                text.span,
                format!(
                    "`stop_signal` in {} is not a signal ten can send: {:?}",
                    fields.section, text.value
                ),
            )
            .with_label("unknown signal")
            .with_hint(format!("one of: {}", StopSignal::KEYWORDS.join(", "))),
        );
    }
    signal
}

/// A keyword value such as `isolation = "namespace"`.
pub(crate) fn keyword<T>(
    fields: &Fields<'_>,
    key: &str,
    keywords: &[&str],
    from_keyword: fn(&str) -> Option<T>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<T> {
    let text = fields.string(key, diagnostics)?;
    let value = from_keyword(text.value);
    if value.is_none() {
        let quoted: Vec<String> = keywords.iter().map(|k| format!("\"{k}\"")).collect();
        let hint = match did_you_mean(text.value, keywords) {
            Some(close) => format!("did you mean \"{close}\"? one of: {}", quoted.join(", ")),
            None => format!("one of: {}", quoted.join(", ")),
        };
        diagnostics.push(
            Diagnostic::at(
                fields.file,
                text.span,
                format!("`{key}` in {} cannot be {:?}", fields.section, text.value),
            )
            .with_label("unknown value")
            .with_hint(hint),
        );
    }
    value
}

/// The resource limits a service sets and an instance may override.
#[derive(Debug, Default)]
pub(crate) struct Limits {
    pub memory_limit_mb: Option<u64>,
    pub cpu_shares: Option<u64>,
    pub storage_quota_mb: Option<u64>,
}

pub(crate) fn parse_limits(fields: &Fields<'_>, diagnostics: &mut Vec<Diagnostic>) -> Limits {
    Limits {
        memory_limit_mb: fields.integer("memory_limit_mb", 1..(1 << 40), "MB", diagnostics),
        cpu_shares: fields.integer("cpu_shares", 2..262_145, "shares", diagnostics),
        storage_quota_mb: fields.integer("storage_quota_mb", 1..(1 << 40), "MB", diagnostics),
    }
}

pub(crate) fn parse_weight(fields: &Fields<'_>, diagnostics: &mut Vec<Diagnostic>) -> Option<u8> {
    fields
        .integer("weight", 0..101, "percent of traffic", diagnostics)
        .map(|weight| weight as u8)
}

fn parse_user(fields: &Fields<'_>, diagnostics: &mut Vec<Diagnostic>) -> Option<String> {
    let user = fields.string("user", diagnostics)?;
    let valid = !user.value.is_empty()
        && user.value.len() <= 32
        && (user.value.chars().all(|c| c.is_ascii_digit())
            || user.value.chars().enumerate().all(|(i, c)| {
                c.is_ascii_lowercase() || c == '_' || (i > 0 && (c.is_ascii_digit() || c == '-'))
            }));
    if valid {
        return Some(user.value.to_string());
    }
    diagnostics.push(
        Diagnostic::at(
            fields.file,
            user.span,
            format!(
                "`user` in {} is not a valid user name: {:?}",
                fields.section, user.value
            ),
        )
        .with_label("invalid user name")
        .with_hint("a system user name such as \"www-data\", or a numeric uid"),
    );
    None
}

/// `env` table: names are environment variable names; values strings (numbers and booleans
/// are accepted and written as text), with template variables.
pub(crate) fn parse_env(
    fields: &Fields<'_>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<BTreeMap<String, Template>> {
    let table = fields.table("env", diagnostics)?;
    let section = format!("{}.env", fields.section.trim_end_matches(']')) + "]";
    let env_fields = Fields::new(fields.file, table, section, fields.key_span("env"));
    let mut env = BTreeMap::new();
    for (name, item) in table.iter() {
        let name_span = env_fields.key_span(name);
        if !is_env_name(name) {
            diagnostics.push(
                Diagnostic::at(
                    fields.file,
                    name_span,
                    format!("{name:?} is not a valid environment variable name"),
                )
                .with_label("invalid name")
                .with_hint("use letters, digits and '_', not starting with a digit"),
            );
            continue;
        }
        if RESERVED_ENV.contains(&name) {
            diagnostics.push(
                Diagnostic::at(
                    fields.file,
                    name_span,
                    format!("`{name}` in {} clashes with the {name} that ten sets for every instance", env_fields.section),
                )
                .with_label("set by ten")
                .with_hint(format!("remove it; read {name} in your app (use {{port}} or {{socket}} in other values)")),
            );
            continue;
        }
        let span = env_fields.value_span(name);
        let text = if let Some(text) = item.as_str() {
            text.to_string()
        } else if let Some(value) = item.as_integer() {
            value.to_string()
        } else if let Some(value) = item.as_bool() {
            value.to_string()
        } else {
            diagnostics.push(
                Diagnostic::at(
                    fields.file,
                    span,
                    format!(
                        "`{name}` in {} must be a string, found {}",
                        env_fields.section,
                        super::reader::describe_item(item)
                    ),
                )
                .with_label("expected a string"),
            );
            continue;
        };
        let spanned = Spanned {
            value: text.as_str(),
            span: span.clone(),
        };
        if let Some(parsed) = template(&env_fields, name, &spanned, &Var::ALL, diagnostics) {
            env.insert(name.to_string(), parsed);
        }
    }
    Some(env)
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::parse::parse_config;

    use super::*;

    fn service(body: &str) -> (Option<ServiceTemplate>, Vec<Diagnostic>) {
        let mut diagnostics = Vec::new();
        let text = format!("[service.notes]\n{body}");
        let config = parse_config(Path::new("/srv/tenement.toml"), text, &mut diagnostics).config;
        let template = config.map(|config| config.services.into_values().next().unwrap());
        (template, diagnostics)
    }

    #[test]
    fn command_is_shell_split() {
        let (template, diagnostics) = service("command = 'my-app --name \"hello world\" {id}'\n");
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        let argv: Vec<String> = template
            .unwrap()
            .argv
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(argv, ["my-app", "--name", "hello world", "{id}"]);
    }

    #[test]
    fn command_and_args_are_equivalent_to_a_split_command() {
        let (split, _) = service("command = \"uv run python app.py\"\n");
        let (explicit, _) = service("command = \"uv\"\nargs = [\"run\", \"python\", \"app.py\"]\n");
        assert_eq!(split.unwrap().argv, explicit.unwrap().argv);
    }

    #[test]
    fn service_defaults() {
        let (template, _) = service("command = \"x\"\n");
        let template = template.unwrap();
        assert_eq!(template.isolation, Isolation::Process);
        assert_eq!(template.restart, RestartPolicy::OnFailure);
        assert_eq!(template.startup_timeout, Duration::from_secs(10));
        assert_eq!(template.request_timeout, Duration::from_secs(30));
        assert_eq!(template.stop_timeout, Duration::from_secs(10));
        assert_eq!(template.idle_timeout, Duration::ZERO);
        assert_eq!(template.stop_signal, StopSignal::Term);
        assert_eq!(template.weight, 100);
        assert_eq!(template.listen, Listen::Port);
        assert!(template.storage_persist);
        assert_eq!(template.socket.to_string(), DEFAULT_SOCKET);
    }

    #[test]
    fn a_service_that_names_its_socket_listens_there_unless_listen_says_otherwise() {
        let listen = |keys: &str| {
            service(&format!("command = \"x\"\n{keys}"))
                .0
                .unwrap()
                .listen
        };
        assert_eq!(listen("socket = \"/tmp/api-{id}.sock\"\n"), Listen::Socket);
        assert_eq!(
            listen("socket = \"/tmp/api-{id}.sock\"\nlisten = \"port\"\n"),
            Listen::Port
        );
        assert_eq!(listen("listen = \"socket\"\n"), Listen::Socket);
        assert_eq!(listen(""), Listen::Port);
    }

    #[test]
    fn socket_cannot_use_port() {
        let (template, diagnostics) = service("command = \"x\"\nsocket = \"/tmp/{port}.sock\"\n");
        assert!(template.is_none());
        assert_eq!(
            diagnostics[0].message,
            "`socket` in [service.notes] cannot use {port}"
        );
        assert_eq!(diagnostics[0].location(), "tenement.toml:3:16");
    }

    #[test]
    fn env_accepts_numbers_and_rejects_reserved_names() {
        let (template, diagnostics) =
            service("command = \"x\"\n[service.notes.env]\nWORKERS = 4\nPORT = \"1\"\n");
        assert!(template.is_none());
        assert_eq!(diagnostics.len(), 1);
        assert!(diagnostics[0].message.contains("clashes with the PORT"));
        let (template, _) = service("command = \"x\"\n[service.notes.env]\nWORKERS = 4\n");
        let env = template.unwrap().env;
        assert_eq!(env["WORKERS"].as_literal(), Some("4"));
    }
}
