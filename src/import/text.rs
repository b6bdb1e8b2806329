//! Text helpers shared by the format readers: placeholders for `{index}` and `{port}`, ten's
//! template escaping, what a command line needs of a shell, ten's names, sizes and durations.

use super::model::Command;
use crate::names::{check_label, suggest_label};

/// Stands for `{index}` (the number of an instance in a process set) in imported text.
pub(crate) const INDEX: char = '\u{E000}';
/// Stands for `{port}` (the instance's port) in imported text.
pub(crate) const PORT: char = '\u{E001}';

/// `text` as a ten template value: a literal `{` doubled where ten would read it as a
/// variable or an escape, and the placeholders written as `{index}` and `{port}`.
pub(crate) fn template(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for (at, c) in text.char_indices() {
        match c {
            INDEX => out.push_str("{index}"),
            PORT => out.push_str("{port}"),
            '{' => {
                let after = &text[at + 1..];
                let escape = after.starts_with(['{', INDEX, PORT]) || reads_as_variable(after);
                if escape {
                    out.push('{');
                }
                out.push('{');
            }
            c => out.push(c),
        }
    }
    out
}

/// Whether `after` (what follows a `{`) makes it a variable: a lowercase identifier and `}`.
fn reads_as_variable(after: &str) -> bool {
    let end = after
        .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
        .unwrap_or(after.len());
    end > 0 && after[end..].starts_with('}')
}

/// Placeholders shown as ten writes them, for messages.
pub(crate) fn readable(text: &str) -> String {
    text.replace(INDEX, "{index}").replace(PORT, "{port}")
}

/// What a command line written for a shell (Procfile, process-compose) asks of one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ShellLine {
    pub command: Command,
    /// The environment variables it reads (`$NAME`, `${NAME}`), in order, each once.
    pub variables: Vec<String>,
}

/// A command line meant for `shell -c`: kept as one line that ten splits into words when it
/// uses no shell syntax (with `$PORT` made `{port}`), else run by `shell`.
pub(crate) fn shell_line(line: &str, shell: &str) -> ShellLine {
    let scan = scan(line);
    let command = if scan.needs_shell {
        Command::Shell {
            shell: shell.to_string(),
            line: line.trim().to_string(),
        }
    } else {
        Command::Line(scan.with_port.trim().to_string())
    };
    ShellLine {
        command,
        variables: scan.variables,
    }
}

/// Whether `line` means something only a shell gives it (`$PORT` aside: that is ten's port).
pub(crate) fn needs_shell(line: &str) -> bool {
    scan(line).needs_shell
}

struct Scan {
    needs_shell: bool,
    /// The line with `$PORT` and `${PORT}` made the port placeholder.
    with_port: String,
    variables: Vec<String>,
}

/// Reads `line` as sh would, enough to know whether it needs sh: quotes, variables,
/// operators, globs, redirections, comments, `~`, assignments before the command.
fn scan(line: &str) -> Scan {
    #[derive(PartialEq)]
    enum Quote {
        None,
        Single,
        Double,
    }
    let mut quote = Quote::None;
    let mut needs_shell = line.contains('\n');
    let mut with_port = String::with_capacity(line.len());
    let mut variables: Vec<String> = Vec::new();
    let mut word_start = true;
    let mut first_word = true;
    let mut chars = line.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        match (&quote, c) {
            (Quote::Single, '\'') => quote = Quote::None,
            (Quote::Single, _) => {}
            (Quote::Double, '"') => quote = Quote::None,
            (_, '\\') => {
                with_port.push(c);
                if let Some((_, next)) = chars.next() {
                    with_port.push(next);
                }
                word_start = false;
                continue;
            }
            (_, '$') => match variable_at(&line[at + 1..]) {
                Some((name, Some(len))) if name == "PORT" => {
                    with_port.push(PORT);
                    for _ in 0..len {
                        chars.next();
                    }
                    if !variables.iter().any(|known| known == "PORT") {
                        variables.push(name);
                    }
                    word_start = false;
                    continue;
                }
                Some((name, _)) => {
                    needs_shell = true;
                    if !variables.contains(&name) {
                        variables.push(name);
                    }
                }
                None => needs_shell = true,
            },
            (_, '`') => needs_shell = true,
            (Quote::Double, _) => {}
            (Quote::None, '\'') => quote = Quote::Single,
            (Quote::None, '"') => quote = Quote::Double,
            (Quote::None, '|' | '&' | ';' | '<' | '>' | '(' | ')' | '*' | '?' | '[') => {
                needs_shell = true;
            }
            (Quote::None, '#' | '~') if word_start => needs_shell = true,
            (Quote::None, '=') if first_word => needs_shell = true,
            (Quote::None, c) if c.is_whitespace() => {
                if !word_start {
                    first_word = false;
                }
                word_start = true;
                with_port.push(c);
                continue;
            }
            _ => {}
        }
        word_start = false;
        with_port.push(c);
    }
    Scan {
        needs_shell: needs_shell || quote != Quote::None,
        with_port,
        variables,
    }
}

/// The variable named after a `$`, and the bytes its name takes when it is that simple
/// (`NAME` or `{NAME}`; `None` for `${NAME:-default}` and the like).
fn variable_at(rest: &str) -> Option<(String, Option<usize>)> {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let (inner, braced) = match rest.strip_prefix('{') {
        Some(inner) => (inner, true),
        None => (rest, false),
    };
    let end = inner.find(|c: char| !is_name(c)).unwrap_or(inner.len());
    if end == 0 || inner.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let name = inner[..end].to_string();
    let len = match braced {
        false => Some(end),
        true if inner[end..].starts_with('}') => Some(end + 2),
        true => None,
    };
    Some((name, len))
}

/// Whether ten can set an environment variable of this name: letters, digits and '_', not
/// starting with a digit (as `config` checks `env`).
pub(crate) fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Variables every tenant has without being told: ten's clean environment.
pub(crate) const GIVEN_ENV: &[&str] = &["PATH", "HOME", "LANG", "PORT", "SOCKET_PATH"];

/// The port a command seems to listen on by itself (`--bind 127.0.0.1:8000`, `--port 8000`,
/// `runserver 0.0.0.0:8000`), for a hint. A guess: only ever said, never acted on.
pub(crate) fn fixed_port(words: &[String]) -> Option<u16> {
    const FLAGS: &[&str] = &["--bind", "-b", "--listen", "--port", "-p", "--http"];
    let port_of = |text: &str| -> Option<u16> {
        let digits = text.rsplit(':').next()?;
        digits.parse::<u16>().ok().filter(|port| *port > 0)
    };
    for (at, word) in words.iter().enumerate() {
        if FLAGS.contains(&word.as_str())
            && let Some(port) = words.get(at + 1).and_then(|next| port_of(next))
        {
            return Some(port);
        }
        if let Some((flag, value)) = word.split_once('=')
            && FLAGS.contains(&flag)
            && let Some(port) = port_of(value)
        {
            return Some(port);
        }
        if let Some((host, _)) = word.rsplit_once(':')
            && ["", "0.0.0.0", "127.0.0.1", "localhost", "*", "[::]"].contains(&host)
            && let Some(port) = port_of(word)
        {
            return Some(port);
        }
    }
    None
}

/// Hands out ten's names (DNS labels) for the source's names, each once.
#[derive(Debug, Default)]
pub(crate) struct Namer {
    used: Vec<String>,
}

impl Namer {
    /// ten's name for `source`: itself when it is a valid label and free, else the closest
    /// label (`my_worker` -> `my-worker`), made unique with a number. The second value says
    /// whether it changed.
    pub(crate) fn name(&mut self, source: &str, fallback: &str) -> (String, bool) {
        let base = if check_label(source).is_ok() {
            source.to_string()
        } else {
            suggest_label(source).unwrap_or_else(|| fallback.to_string())
        };
        let mut name = base.clone();
        let mut number = 2;
        while self.used.contains(&name) {
            let suffix = format!("-{number}");
            let keep = base.len().min(63 - suffix.len());
            name = format!("{}{suffix}", base[..keep].trim_end_matches('-'));
            number += 1;
        }
        self.used.push(name.clone());
        let changed = name != source;
        (name, changed)
    }
}

/// A size such as supervisord's `50MB`, `1KB`, `1GB` or pm2's `300M`, `1G`, `100K` (binary
/// units), or plain bytes.
pub(crate) fn bytes(text: &str) -> Option<u64> {
    let upper = text.trim().to_ascii_uppercase();
    let upper = upper.strip_suffix('B').unwrap_or(&upper);
    let (digits, unit) = match upper.char_indices().last()? {
        (at, 'K') => (&upper[..at], 1 << 10),
        (at, 'M') => (&upper[..at], 1 << 20),
        (at, 'G') => (&upper[..at], 1 << 30),
        _ => (upper, 1),
    };
    digits.trim().parse::<u64>().ok()?.checked_mul(unit)
}

/// Milliseconds, as pm2 writes them (a number, or text such as `"5000"`, `"5s"`, `"1m"`,
/// `"100ms"`), rounded up to whole seconds.
pub(crate) fn seconds_of_millis(text: &str) -> Option<u64> {
    let text = text.trim();
    let millis = if let Some(number) = text.strip_suffix("ms") {
        number.trim().parse::<u64>().ok()?
    } else if let Some(number) = text.strip_suffix('s') {
        number.trim().parse::<u64>().ok()?.checked_mul(1000)?
    } else if let Some(number) = text.strip_suffix('m') {
        number.trim().parse::<u64>().ok()?.checked_mul(60_000)?
    } else if let Some(number) = text.strip_suffix('h') {
        number.trim().parse::<u64>().ok()?.checked_mul(3_600_000)?
    } else {
        text.parse::<u64>().ok()?
    };
    Some(millis.div_ceil(1000))
}

/// A signal as ten names it (`TERM`), from `TERM`, `SIGTERM` or a number.
pub(crate) fn signal_name(text: &str) -> Option<&'static str> {
    let upper = text.trim().to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    let by_number = match name {
        "1" => "HUP",
        "2" => "INT",
        "3" => "QUIT",
        "9" => "KILL",
        "10" => "USR1",
        "12" => "USR2",
        "15" => "TERM",
        "28" => "WINCH",
        other => other,
    };
    crate::config::StopSignal::parse(by_number).map(|signal| signal.as_str())
}

/// A path with `-{index}` before its extension (`logs/worker.log` -> `logs/worker-{index}.log`),
/// so that each instance of a set has its own file.
pub(crate) fn with_index(path: &str) -> String {
    let file_start = path.rfind('/').map_or(0, |at| at + 1);
    match path[file_start..].rfind('.') {
        Some(dot) if dot > 0 => {
            let at = file_start + dot;
            format!("{}-{INDEX}{}", &path[..at], &path[at..])
        }
        _ => format!("{path}-{INDEX}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_escapes_only_what_ten_would_read() {
        assert_eq!(
            template("a {b} {\"json\": 1} ${HOME}"),
            "a {{b} {\"json\": 1} ${HOME}"
        );
        assert_eq!(template("{{x}}"), "{{{{x}}");
        assert_eq!(template(&format!("w-{INDEX}.log")), "w-{index}.log");
        assert_eq!(template(&format!("{{{INDEX}")), "{{{index}");
        // Checked against ten's own parser: the text comes back.
        let parsed = crate::config::Template::parse(&template("x {id} {{ {")).unwrap();
        assert_eq!(parsed.as_literal(), Some("x {id} {{ {"));
    }

    #[test]
    fn simple_lines_are_split_by_ten_and_port_becomes_a_variable() {
        let line = shell_line("python3 -m http.server $PORT --bind 127.0.0.1", "sh");
        assert_eq!(
            line.command,
            Command::Line(format!("python3 -m http.server {PORT} --bind 127.0.0.1"))
        );
        let line = shell_line("gunicorn -b \"0.0.0.0:${PORT}\" app:app", "sh");
        assert_eq!(
            line.command,
            Command::Line(format!("gunicorn -b \"0.0.0.0:{PORT}\" app:app"))
        );
        assert_eq!(line.variables, ["PORT"]);
    }

    #[test]
    fn shell_syntax_keeps_the_shell() {
        for line in [
            "bundle exec rake jobs:work && echo done",
            "env QUEUE=* rake resque:work",
            "FOO=bar ./run",
            "./run > out.log",
            "echo $HOME",
            "cd ~/app",
            "python -c 'print(1)' # comment",
            "echo \"$(date)\"",
            "unclosed 'quote",
        ] {
            assert!(
                matches!(shell_line(line, "sh").command, Command::Shell { .. }),
                "{line}"
            );
        }
        let line = shell_line("celery -A $APP worker --concurrency=${WORKERS}", "sh");
        assert_eq!(line.variables, ["APP", "WORKERS"]);
        // In single quotes, nothing is special.
        let line = shell_line("python3 -c 'import os; print($X)'", "sh");
        assert!(matches!(line.command, Command::Line(_)));
        assert!(line.variables.is_empty());
    }

    #[test]
    fn names_become_unique_labels() {
        let mut namer = Namer::default();
        assert_eq!(namer.name("web", "s"), ("web".to_string(), false));
        assert_eq!(
            namer.name("my_worker", "s"),
            ("my-worker".to_string(), true)
        );
        assert_eq!(
            namer.name("My-Worker", "s"),
            ("my-worker-2".to_string(), true)
        );
        assert_eq!(
            namer.name("___", "service-4"),
            ("service-4".to_string(), true)
        );
    }

    #[test]
    fn sizes_durations_signals() {
        assert_eq!(bytes("50MB"), Some(50 << 20));
        assert_eq!(bytes("1kb"), Some(1024));
        assert_eq!(bytes("300M"), Some(300 << 20));
        assert_eq!(bytes("1G"), Some(1 << 30));
        assert_eq!(bytes("1024"), Some(1024));
        assert_eq!(bytes("lots"), None);
        assert_eq!(seconds_of_millis("1600"), Some(2));
        assert_eq!(seconds_of_millis("5s"), Some(5));
        assert_eq!(seconds_of_millis("100ms"), Some(1));
        assert_eq!(signal_name("SIGINT"), Some("INT"));
        assert_eq!(signal_name("15"), Some("TERM"));
        assert_eq!(signal_name("quit"), Some("QUIT"));
        assert_eq!(signal_name("STOP"), None);
    }

    #[test]
    fn ports_a_command_binds_itself() {
        let words = |line: &str| shell_words::split(line).unwrap();
        assert_eq!(
            fixed_port(&words("gunicorn app:app --bind 127.0.0.1:8000")),
            Some(8000)
        );
        assert_eq!(
            fixed_port(&words("python manage.py runserver 0.0.0.0:8001")),
            Some(8001)
        );
        assert_eq!(fixed_port(&words("node server.js --port=3000")), Some(3000));
        assert_eq!(fixed_port(&words("celery -A proj worker -l info")), None);
    }

    #[test]
    fn log_paths_get_the_index_before_the_extension() {
        assert_eq!(readable(&with_index("logs/w.log")), "logs/w-{index}.log");
        assert_eq!(readable(&with_index("/var/log/w")), "/var/log/w-{index}");
        assert_eq!(readable(&with_index("a.d/.hidden")), "a.d/.hidden-{index}");
    }
}
