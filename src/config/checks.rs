//! What tells ten that an instance is healthy: `health = "/path"` (an HTTP GET, the short
//! form of `health_check = { http = "/path" }`), `health_check = { tcp = PORT | "port" }` (a
//! connection), `health_check = { exec = ["cmd", "arg"] }` (a command that exits 0), with
//! `health_interval`, `health_timeout`, `health_retries` and `health_start_period`; and
//! `start_seconds`, the uptime that makes a start count for a process nothing checks.

use std::time::Duration;

use super::diag::Diagnostic;
use super::model::Listen;
use super::reader::{Fields, Spanned, TimeUnit};
use super::template::{Template, Var};

/// A check other than the HTTP one (which stays `ServiceTemplate::health`).
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    /// A connection to a port on 127.0.0.1.
    Tcp(TcpPort),
    /// A command run in the instance's environment, working directory and cgroup: healthy
    /// when it exits 0 within `health_timeout`.
    Exec(Vec<Template>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpPort {
    /// The instance's own `PORT`.
    Own,
    Fixed(u16),
}

/// How checks are paced, and how many failures make an instance unhealthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckTiming {
    /// `None`: `health_check_interval` of [settings].
    pub interval: Option<Duration>,
    pub timeout: Duration,
    /// Failed checks in a row that make a running instance unhealthy (and restart it).
    pub retries: u32,
    /// After a start, failed checks do not count for this long.
    pub start_period: Duration,
    /// For a process nothing checks: up this long, a start counts as one.
    pub start_seconds: Duration,
}

impl Default for CheckTiming {
    fn default() -> Self {
        CheckTiming {
            interval: None,
            timeout: Duration::from_secs(5),
            retries: 3,
            start_period: Duration::ZERO,
            start_seconds: Duration::from_secs(1),
        }
    }
}

/// What a service's keys say of its checks: the HTTP path (from `health` or
/// `health_check.http`), another check, and the timing.
pub(crate) struct Checks {
    pub http: Option<String>,
    pub check: Option<Check>,
    pub timing: CheckTiming,
}

/// Reads the check keys of a service that listens as `listen` (`None`: its `listen` was
/// invalid, already reported). `health` is its `health` path, if any.
pub(crate) fn parse_checks(
    fields: &Fields<'_>,
    health: Option<String>,
    listen: Option<Listen>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Checks {
    let mut checks = Checks {
        http: health,
        check: None,
        timing: parse_timing(fields, diagnostics),
    };
    if let Some(table) = fields.table("health_check", diagnostics) {
        let section = format!("`health_check` in {}", fields.section);
        let inner = Fields::new(
            fields.file,
            table,
            section,
            fields.value_span("health_check"),
        );
        read_check(fields, &inner, &mut checks, diagnostics);
    }
    if listen == Some(Listen::None) {
        refuse_what_needs_a_port(fields, &checks, diagnostics);
    }
    checks
}

fn parse_timing(fields: &Fields<'_>, diagnostics: &mut Vec<Diagnostic>) -> CheckTiming {
    let defaults = CheckTiming::default();
    let seconds = |key: &str, min: Duration, diagnostics: &mut Vec<Diagnostic>| {
        fields.duration(key, TimeUnit::Seconds, min, diagnostics)
    };
    let second = Duration::from_secs(1);
    CheckTiming {
        interval: seconds("health_interval", second, diagnostics),
        timeout: seconds("health_timeout", second, diagnostics).unwrap_or(defaults.timeout),
        retries: fields
            .integer("health_retries", 1..1001, "checks", diagnostics)
            .map_or(defaults.retries, |retries| retries as u32),
        start_period: seconds("health_start_period", Duration::ZERO, diagnostics)
            .unwrap_or(defaults.start_period),
        start_seconds: seconds("start_seconds", Duration::ZERO, diagnostics)
            .unwrap_or(defaults.start_seconds),
    }
}

/// The one kind of check `health_check` names.
fn read_check(
    service: &Fields<'_>,
    fields: &Fields<'_>,
    checks: &mut Checks,
    diagnostics: &mut Vec<Diagnostic>,
) {
    fields.reject_unknown(&["http", "tcp", "exec"], |_| None, diagnostics);
    let kinds: Vec<&str> = ["http", "tcp", "exec"]
        .into_iter()
        .filter(|kind| fields.item(kind).is_some())
        .collect();
    if kinds.len() != 1 {
        let found = if kinds.is_empty() {
            "none".to_string()
        } else {
            kinds.join(" and ")
        };
        diagnostics.push(
            Diagnostic::at(
                fields.file,
                fields.span.clone(),
                format!("{} must name one check, found {found}", fields.section),
            )
            .with_label("one of http, tcp or exec")
            .with_hint(
                "health_check = { http = \"/health\" }, { tcp = 6379 }, { tcp = \"port\" } or { exec = [\"pg_isready\", \"-q\"] }",
            ),
        );
        return;
    }
    match kinds[0] {
        "http" => {
            if checks.http.is_some() {
                diagnostics.push(
                    Diagnostic::at(
                        service.file,
                        service.key_span("health"),
                        format!("{} has both `health` and `health_check`", service.section),
                    )
                    .with_label("the same check twice")
                    .with_hint("`health = \"/path\"` is short for health_check = { http = \"/path\" }: keep one"),
                );
            }
            checks.http = read_http(fields, diagnostics);
        }
        "tcp" => checks.check = read_tcp(fields, diagnostics).map(Check::Tcp),
        _ => checks.check = read_exec(fields, diagnostics).map(Check::Exec),
    }
    if checks.check.is_some() && service.item("health").is_some() {
        diagnostics.push(
            Diagnostic::at(
                service.file,
                service.key_span("health"),
                format!("{} has both `health` and `health_check`", service.section),
            )
            .with_label("a second check")
            .with_hint("one check per service: remove `health` or `health_check`"),
        );
    }
}

fn read_http(fields: &Fields<'_>, diagnostics: &mut Vec<Diagnostic>) -> Option<String> {
    url_path(
        fields,
        "http",
        "of",
        "health_check = { http = \"/health\" }",
        diagnostics,
    )
}

/// An HTTP check's path (`health`, or `http` of `health_check`): it starts with '/' and has
/// no whitespace. `relation` joins the key to the section in the message ("in", "of").
pub(crate) fn url_path(
    fields: &Fields<'_>,
    key: &str,
    relation: &str,
    example: &str,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<String> {
    let path = fields.string(key, diagnostics)?;
    if path.value.starts_with('/') && !path.value.contains(char::is_whitespace) {
        return Some(path.value.to_string());
    }
    diagnostics.push(
        Diagnostic::at(
            fields.file,
            path.span,
            format!(
                "`{key}` {relation} {} must be a URL path starting with '/'",
                fields.section
            ),
        )
        .with_label("not a path")
        .with_hint(format!("for example: {example}")),
    );
    None
}

fn read_tcp(fields: &Fields<'_>, diagnostics: &mut Vec<Diagnostic>) -> Option<TcpPort> {
    let item = fields.item("tcp")?;
    if item.as_str() == Some("port") {
        return Some(TcpPort::Own);
    }
    if let Some(port) = item.as_integer()
        && (1..=65535).contains(&port)
    {
        return Some(TcpPort::Fixed(port as u16));
    }
    diagnostics.push(
        Diagnostic::at(
            fields.file,
            fields.value_span("tcp"),
            format!(
                "`tcp` of {} must be a port (1-65535) or \"port\"",
                fields.section
            ),
        )
        .with_label("not a port")
        .with_hint(
            "tcp = 6379 checks that port on 127.0.0.1; tcp = \"port\" the instance's own PORT",
        ),
    );
    None
}

fn read_exec(fields: &Fields<'_>, diagnostics: &mut Vec<Diagnostic>) -> Option<Vec<Template>> {
    let words = fields.string_list("exec", diagnostics)?;
    if words
        .first()
        .is_none_or(|word| word.value.trim().is_empty())
    {
        diagnostics.push(
            Diagnostic::at(
                fields.file,
                fields.value_span("exec"),
                format!("`exec` of {} names no program", fields.section),
            )
            .with_label("empty command")
            .with_hint("for example: health_check = { exec = [\"pg_isready\", \"-q\"] }"),
        );
        return None;
    }
    // Every word is read, so that each bad one is reported, not only the first.
    let argv: Vec<Option<Template>> = words
        .iter()
        .map(|word| exec_word(fields, word, diagnostics))
        .collect();
    argv.into_iter().collect()
}

fn exec_word(
    fields: &Fields<'_>,
    word: &Spanned<&str>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<Template> {
    super::service::template(fields, "exec", word, &Var::ALL, diagnostics)
}

/// A worker (`listen = "none"`) has no port: an HTTP check or one of its own port cannot
/// reach it.
fn refuse_what_needs_a_port(
    fields: &Fields<'_>,
    checks: &Checks,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let (key, what) = if checks.http.is_some() {
        if fields.item("health").is_some() {
            ("health", "an HTTP check")
        } else {
            ("health_check", "an HTTP check")
        }
    } else if checks.check == Some(Check::Tcp(TcpPort::Own)) {
        ("health_check", "a check of its own PORT")
    } else {
        return;
    };
    diagnostics.push(
        Diagnostic::at(
            fields.file,
            fields.value_span(key),
            format!(
                "{} has listen = \"none\" (a worker: no port) and {what}",
                fields.section
            ),
        )
        .with_label("nothing listens for this check")
        .with_hint("check a worker with health_check = { tcp = PORT } (a port it opens) or { exec = [...] }, or give it a port: listen = \"port\""),
    );
}
