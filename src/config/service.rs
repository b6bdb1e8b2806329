//! One `[service.NAME]` table -> [`ServiceTemplate`]: its keys (with hints for the keys of
//! other supervisors), `start`, `stop_signal`, `user`, and the template assembled. `command`
//! is read in `command`, the `env` table in `env`, and the readers shared with instance files
//! (keywords, limits, templates) are in `shared`. Must not import tokio, nix, hyper or notify.

mod command;
mod env;
mod shared;

use std::time::Duration;

use super::diag::{Diagnostic, has_errors};
use super::model::{
    DEFAULT_SOCKET, Isolation, Listen, RestartPolicy, ServiceTemplate, StartMode, StopSignal,
};
use super::reader::{Fields, TimeUnit};
use super::template::{Template, Var};
use crate::names::ServiceName;
use command::parse_argv;

pub(crate) use env::parse_env;
pub(crate) use shared::{keyword, parse_limits, parse_weight, template};

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
    let worker = (listen == Some(Listen::None)).then_some(WORKER);
    let idle_timeout = seconds("idle_timeout", 0, diagnostics);
    let start = parse_start(fields, worker, diagnostics);
    let startup_timeout = seconds("startup_timeout", 1, diagnostics);
    let request_timeout = seconds("request_timeout", 1, diagnostics);
    let stop_timeout = seconds("stop_timeout", 0, diagnostics);
    let storage_persist = fields.bool("storage_persist", diagnostics);
    let limits = parse_limits(fields, diagnostics);
    let pids_limit = fields.integer("pids_limit", 1..i64::MAX, "processes", diagnostics);
    let weight = parse_weight(fields, diagnostics);
    check_worker_keys(fields, worker, idle_timeout, diagnostics);
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

/// How diagnostics name a worker (`listen = "none"`) in a service table.
const WORKER: &str = "a worker (listen = \"none\")";

/// `start`: a keyword; `on-demand` is refused for a worker (`worker` names it: `None` for a
/// service that listens), which no request can wake.
pub(crate) fn parse_start(
    fields: &Fields<'_>,
    worker: Option<&str>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<StartMode> {
    let start = keyword(
        fields,
        "start",
        StartMode::KEYWORDS,
        StartMode::from_keyword,
        diagnostics,
    )?;
    if let Some(worker) = worker
        && start == StartMode::OnDemand
    {
        diagnostics.push(
            Diagnostic::at(
                fields.file,
                fields.value_span("start"),
                format!(
                    "`start = \"on-demand\"` in {} cannot work: {worker} answers no request that would wake it",
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

/// The keys a worker (`worker` names it; `None` for a service that listens) cannot honour,
/// where they are written: an `idle_timeout` above zero would put it to sleep for good (no
/// request wakes it), and `weight` shares traffic it never gets. `idle_timeout = 0` (never)
/// is fine. Nothing is inherited here: a service's idle timeout is zero unless written.
pub(crate) fn check_worker_keys(
    fields: &Fields<'_>,
    worker: Option<&str>,
    idle_timeout: Option<Duration>,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let Some(worker) = worker else {
        return;
    };
    if idle_timeout.is_some_and(|timeout| timeout > Duration::ZERO) {
        diagnostics.push(
            Diagnostic::at(
                fields.file,
                fields.value_span("idle_timeout"),
                format!(
                    "`idle_timeout` in {} cannot work: {worker} answers no request that would wake it once asleep",
                    fields.section
                ),
            )
            .with_label("never woken")
            .with_hint("remove `idle_timeout` (a worker runs until it is stopped), or set idle_timeout = 0"),
        );
    }
    if fields.item("weight").is_some() {
        diagnostics.push(
            Diagnostic::at(
                fields.file,
                fields.value_span("weight"),
                format!(
                    "`weight` in {} has nothing to share: {worker} takes no traffic",
                    fields.section
                ),
            )
            .with_label("no traffic")
            .with_hint("remove `weight`"),
        );
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::parse::parse_config;

    use super::*;

    pub(super) fn service(body: &str) -> (Option<ServiceTemplate>, Vec<Diagnostic>) {
        let mut diagnostics = Vec::new();
        let text = format!("[service.notes]\n{body}");
        let config = parse_config(Path::new("/srv/tenement.toml"), text, &mut diagnostics).config;
        let template = config.map(|config| config.services.into_values().next().unwrap());
        (template, diagnostics)
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
}
