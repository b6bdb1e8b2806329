//! The log file keys of a service: `stdout_log` and `stderr_log` (templated paths, relative
//! to the directory of tenement.toml; the same path in both merges the streams into one
//! file), `log_max_bytes` (bytes, or a size like "10MB") and `log_backups`; the hints for
//! supervisord's spellings of them.
//!
//! Pure, but for [`check_directories`]: a literal log path that names an existing directory
//! is found by looking at the file system.

use std::path::Path;

use super::diag::Diagnostic;
use super::model::{DEFAULT_LOG_BACKUPS, DEFAULT_LOG_MAX_BYTES, LogFileTemplates, LogRotation};
use super::reader::{Fields, Spanned, describe_item};
use super::service::template;
use super::template::{Bindings, Template, Var};

/// The template variables a log path may use (not `{port}`: the file outlives a port).
pub(crate) const LOG_PATH_VARS: &[Var] = &[Var::Name, Var::Id, Var::Index, Var::DataDir];

const PATH_KEYS: [&str; 2] = ["stdout_log", "stderr_log"];

const SIZE_HINT: &str = "a number of bytes (log_max_bytes = 10485760) or a size like \"10MB\" \
or \"512KB\" (1 KB = 1024 bytes); 0: never rotated";

/// Reads the log file keys of a service table.
pub(crate) fn parse_log_files(
    fields: &Fields<'_>,
    diagnostics: &mut Vec<Diagnostic>,
) -> LogFileTemplates {
    let [stdout, stderr] = PATH_KEYS.map(|key| log_path(fields, key, diagnostics));
    let max_bytes = parse_max_bytes(fields, diagnostics);
    let backups = fields
        .integer("log_backups", 0..1001, "files", diagnostics)
        .map(|backups| backups as u32);
    let named = PATH_KEYS.iter().any(|key| fields.item(key).is_some());
    for key in ["log_max_bytes", "log_backups"] {
        if !named && fields.item(key).is_some() {
            diagnostics.push(
                Diagnostic::at(
                    fields.file,
                    fields.key_span(key),
                    format!(
                        "`{key}` in {} has no effect: no stdout_log or stderr_log is set",
                        fields.section
                    ),
                )
                .with_label("no log file to rotate")
                .with_hint("set stdout_log = \"logs/{name}-{id}.log\" (and stderr_log), or remove it; ten's own capture (`ten logs`) is rotated by ten")
                .warning(),
            );
        }
    }
    if named && max_bytes == Some(0) && fields.item("log_backups").is_some() {
        diagnostics.push(
            Diagnostic::at(
                fields.file,
                fields.key_span("log_backups"),
                format!(
                    "`log_backups` in {} has no effect: log_max_bytes = 0 never rotates",
                    fields.section
                ),
            )
            .with_label("never rotated")
            .with_hint("set log_max_bytes to the size at which to rotate, or remove log_backups")
            .warning(),
        );
    }
    LogFileTemplates {
        stdout,
        stderr,
        rotation: LogRotation {
            max_bytes: max_bytes.unwrap_or(DEFAULT_LOG_MAX_BYTES),
            backups: backups.unwrap_or(DEFAULT_LOG_BACKUPS),
        },
    }
}

/// `stdout_log` or `stderr_log`: a file path, with template variables.
fn log_path(fields: &Fields<'_>, key: &str, diagnostics: &mut Vec<Diagnostic>) -> Option<Template> {
    let text = fields.string(key, diagnostics)?;
    let value = text.value;
    let problem = if value.trim().is_empty() {
        Some(("is empty", "no file"))
    } else if value.ends_with('/')
        || value.ends_with("/.")
        || value == "."
        || Path::new(value).file_name().is_none()
    {
        Some(("names a directory", "a directory"))
    } else {
        None
    };
    if let Some((what, label)) = problem {
        diagnostics.push(
            Diagnostic::at(
                fields.file,
                text.span,
                format!("`{key}` in {} {what}: {value:?}", fields.section),
            )
            .with_label(label)
            .with_hint(format!(
                "name a file, e.g. {key} = \"logs/{{name}}-{{id}}.log\" (relative to the directory of tenement.toml)"
            )),
        );
        return None;
    }
    template(fields, key, &text, LOG_PATH_VARS, diagnostics)
}

/// `log_max_bytes`: an integer number of bytes, or a size such as "10MB".
fn parse_max_bytes(fields: &Fields<'_>, diagnostics: &mut Vec<Diagnostic>) -> Option<u64> {
    let item = fields.item("log_max_bytes")?;
    if item.as_integer().is_some() {
        return fields.integer("log_max_bytes", 0..i64::MAX, "bytes", diagnostics);
    }
    let problem = match item.as_str() {
        Some(text) => match parse_size(text) {
            Some(bytes) => return Some(bytes),
            None => format!("is not a size: {text:?}"),
        },
        None => format!(
            "must be a number of bytes or a size like \"10MB\", found {}",
            describe_item(item)
        ),
    };
    diagnostics.push(
        Diagnostic::at(
            fields.file,
            fields.value_span("log_max_bytes"),
            format!("`log_max_bytes` in {} {problem}", fields.section),
        )
        .with_label("not a size")
        .with_hint(SIZE_HINT),
    );
    None
}

/// "10MB", "512 KB", "1G", "100B", "2MiB": a number and a unit of 1024 (as supervisord reads
/// `logfile_maxbytes`), case-insensitive.
pub(crate) fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let number: u64 = text[..digits].parse().ok()?;
    let unit = text[digits..].trim().to_ascii_uppercase();
    let scale: u64 = match unit.as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        _ => return None,
    };
    number.checked_mul(scale)
}

/// A hint for a supervisord key that has a name of its own here.
pub(crate) fn supervisord_hint(key: &str) -> Option<String> {
    let hint = match key {
        "stdout_logfile" => "did you mean `stdout_log`?",
        "stderr_logfile" => "did you mean `stderr_log`?",
        "logfile" => {
            "name the files: stdout_log = \"...\" and stderr_log (the same path in both merges them)"
        }
        "redirect_stderr" => {
            "set stderr_log to the same path as stdout_log: both streams go to one file"
        }
        "stdout_logfile_maxbytes"
        | "stderr_logfile_maxbytes"
        | "logfile_maxbytes"
        | "log_maxbytes" => "did you mean `log_max_bytes` (bytes, or a size like \"10MB\")?",
        "stdout_logfile_backups" | "stderr_logfile_backups" | "logfile_backups" => {
            "did you mean `log_backups`?"
        }
        _ => return None,
    };
    Some(hint.to_string())
}

/// Reports a log path of a service that names an existing directory, when the path is known
/// without an instance (no `{id}`): `dir` is the directory of tenement.toml, `data_dir` the
/// one `[settings]` sets, if valid. Any other problem of these keys is reported by
/// [`parse_log_files`].
pub(crate) fn check_directories(
    root: &Fields<'_>,
    dir: &Path,
    data_dir: Option<&Path>,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let data_dir_text = data_dir.map(|path| path.to_string_lossy().into_owned());
    for section in ["service", "process"] {
        let Some(services) = root.item(section).and_then(|item| item.as_table_like()) else {
            continue;
        };
        for (name, item) in services.iter() {
            let Some(table) = item.as_table_like() else {
                continue;
            };
            let fields = Fields::new(root.file, table, format!("[{section}.{name}]"), 0..0);
            for key in PATH_KEYS {
                let Some(text) = table.get(key).and_then(|item| item.as_str()) else {
                    continue;
                };
                let Ok(parsed) = Template::parse(text) else {
                    continue;
                };
                // Known per service: {name}, and {data_dir} when [settings] is valid.
                let per_instance = parsed.vars().any(|var| match var {
                    Var::Name => false,
                    Var::DataDir => data_dir.is_none(),
                    _ => true,
                });
                if per_instance {
                    continue;
                }
                let bound = parsed.bind(&Bindings {
                    name,
                    id: "",
                    data_dir: data_dir_text.as_deref().unwrap_or(""),
                    socket: "",
                    port: None,
                });
                let Some(literal) = bound.as_literal() else {
                    continue;
                };
                if dir.join(literal).is_dir() {
                    let span = fields.value_span(key);
                    let path = Spanned {
                        value: literal,
                        span,
                    };
                    diagnostics.push(is_a_directory(&fields, key, &path));
                }
            }
        }
    }
}

/// `path` as written, its variables bound.
fn is_a_directory(fields: &Fields<'_>, key: &str, path: &Spanned<&str>) -> Diagnostic {
    Diagnostic::at(
        fields.file,
        path.span.clone(),
        format!(
            "`{key}` in {} is a directory: {}",
            fields.section, path.value
        ),
    )
    .with_label("a directory, not a file")
    .with_hint(format!(
        "name a file in it, e.g. {key} = \"logs/{{name}}-{{id}}.log\""
    ))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::diag::Severity;
    use crate::config::model::LogRotation;
    use crate::config::parse::parse_config;

    use super::*;

    fn service(body: &str) -> (Option<LogFileTemplates>, Vec<Diagnostic>) {
        let mut diagnostics = Vec::new();
        let text = format!("[service.web]\ncommand = \"x\"\n{body}");
        let config = parse_config(Path::new("/srv/tenement.toml"), text, &mut diagnostics).config;
        let files = config.map(|config| config.services.into_values().next().unwrap().log_files);
        (files, diagnostics)
    }

    #[test]
    fn sizes_are_bytes_or_a_number_with_a_unit_of_1024() {
        assert_eq!(parse_size("10MB"), Some(10_485_760));
        assert_eq!(parse_size("512KB"), Some(524_288));
        assert_eq!(parse_size("512 kb"), Some(524_288));
        assert_eq!(parse_size("1G"), Some(1 << 30));
        assert_eq!(parse_size("2MiB"), Some(2 << 20));
        assert_eq!(parse_size("100"), Some(100));
        assert_eq!(parse_size("100B"), Some(100));
        assert_eq!(parse_size("0"), Some(0));
        for bad in [
            "",
            "MB",
            "10XB",
            "1.5MB",
            "-1MB",
            "99999999999999999999GB",
            "10 M B",
        ] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
    }

    #[test]
    fn without_the_keys_there_are_no_log_files() {
        let (files, diagnostics) = service("");
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        let files = files.unwrap();
        assert_eq!(files, LogFileTemplates::default());
        assert_eq!(
            files.rotation,
            LogRotation {
                max_bytes: 10 << 20,
                backups: 5
            }
        );
    }

    #[test]
    fn the_keys_are_read() {
        let (files, diagnostics) = service(
            "stdout_log = \"logs/{name}-{id}.log\"\nstderr_log = \"{data_dir}/err.log\"\nlog_max_bytes = \"64KB\"\nlog_backups = 0\n",
        );
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        let files = files.unwrap();
        assert_eq!(files.stdout.unwrap().to_string(), "logs/{name}-{id}.log");
        assert_eq!(files.stderr.unwrap().to_string(), "{data_dir}/err.log");
        assert_eq!(
            files.rotation,
            LogRotation {
                max_bytes: 65536,
                backups: 0
            }
        );
        let (files, _) = service("stdout_log = \"a.log\"\nlog_max_bytes = 2000\n");
        assert_eq!(files.unwrap().rotation.max_bytes, 2000);
    }

    #[test]
    fn bad_values_are_errors_at_their_place() {
        let (files, diagnostics) = service(
            "stdout_log = \"logs/\"\nstderr_log = \"{port}.log\"\nlog_max_bytes = \"10XB\"\nlog_backups = -1\n",
        );
        assert!(files.is_none());
        let found: Vec<(String, String)> = diagnostics
            .iter()
            .map(|d| (d.location(), d.message.clone()))
            .collect();
        assert_eq!(
            found,
            [
                (
                    "tenement.toml:3:14".into(),
                    "`stdout_log` in [service.web] names a directory: \"logs/\"".into()
                ),
                (
                    "tenement.toml:4:15".into(),
                    "`stderr_log` in [service.web] cannot use {port}".into()
                ),
                (
                    "tenement.toml:5:17".into(),
                    "`log_max_bytes` in [service.web] is not a size: \"10XB\"".into()
                ),
                (
                    "tenement.toml:6:15".into(),
                    "`log_backups` in [service.web] must be between 0 and 1000 files, found -1"
                        .into()
                ),
            ]
        );
        let (_, diagnostics) = service("stdout_log = \"\"\nlog_max_bytes = 1.5\n");
        assert_eq!(
            diagnostics[0].message,
            "`stdout_log` in [service.web] is empty: \"\""
        );
        assert_eq!(
            diagnostics[1].message,
            "`log_max_bytes` in [service.web] must be a number of bytes or a size like \"10MB\", found a float"
        );
    }

    #[test]
    fn rotation_without_a_log_file_is_a_warning() {
        let (files, diagnostics) = service("log_backups = 3\nlog_max_bytes = \"1MB\"\n");
        assert!(files.is_some());
        assert_eq!(diagnostics.len(), 2);
        assert!(diagnostics.iter().all(|d| d.severity == Severity::Warning));
        assert_eq!(
            diagnostics[0].message,
            "`log_max_bytes` in [service.web] has no effect: no stdout_log or stderr_log is set"
        );
        assert_eq!(diagnostics[1].location(), "tenement.toml:3:1");
    }

    #[test]
    fn an_existing_directory_is_refused_where_it_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("logs/web")).unwrap();
        let text = "[service.web]\ncommand = \"x\"\nstdout_log = \"logs/{name}\"\nstderr_log = \"logs/{name}/{id}\"\n";
        let mut diagnostics = Vec::new();
        let parsed = parse_config(
            &dir.path().join("tenement.toml"),
            text.into(),
            &mut diagnostics,
        );
        assert!(parsed.config.is_none());
        assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
        assert_eq!(diagnostics[0].location(), "tenement.toml:3:14");
        assert!(
            diagnostics[0]
                .message
                .starts_with("`stdout_log` in [service.web] is a directory: ")
        );
    }
}
