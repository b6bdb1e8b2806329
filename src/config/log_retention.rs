//! `log_retention` in `[settings]`: how much of each instance's captured output ten keeps on
//! disk (`{data_dir}/.ten/logs/<service>/<id>/`), by size and by age:
//! `log_retention = { max_bytes = "100MB", max_age = "7d" }` (or a `[settings.log_retention]`
//! table).
//!
//! Pure: text in, a value or diagnostics out. Imports nothing of ten's but `config`'s reader
//! and `log_files::parse_size`.

use std::time::Duration;

use toml_edit::TableLike;

use super::diag::Diagnostic;
use super::log_files::parse_size;
use super::reader::{Fields, TimeUnit, describe_item};

/// How much captured output is kept per instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogRetention {
    /// `output.log` and its rotated files together stay within about this many bytes.
    pub max_bytes: u64,
    /// Rotated files whose last line is older than this are removed (and an `output.log`
    /// written to last longer ago is rotated first); `None`: kept whatever their age.
    pub max_age: Option<Duration>,
}

/// Today's capture: `output.log` rotated at 10 MiB, three rotated files kept.
pub const DEFAULT_LOG_RETENTION_BYTES: u64 = 40 * 1024 * 1024;
/// The smallest `max_bytes`: four files of 16 KiB (a line may be that long).
pub const MIN_LOG_RETENTION_BYTES: u64 = 64 * 1024;

impl Default for LogRetention {
    fn default() -> Self {
        Self {
            max_bytes: DEFAULT_LOG_RETENTION_BYTES,
            max_age: None,
        }
    }
}

const KEYS: &[&str] = &["max_bytes", "max_age"];
const SIZE_HINT: &str = "a size like \"100MB\" or \"1GB\" (1 KB = 1024 bytes), or a number of \
bytes; at least \"64KB\"";

/// Reads `log_retention` of `[settings]` (given as its table).
pub(crate) fn parse_log_retention(
    settings: &Fields<'_>,
    table: &dyn TableLike,
    diagnostics: &mut Vec<Diagnostic>,
) -> LogRetention {
    let fields = Fields::new(
        settings.file,
        table,
        "[settings.log_retention]",
        settings.key_span("log_retention"),
    );
    fields.reject_unknown(
        KEYS,
        |key| match key {
            "max_size" | "size" | "bytes" => Some("did you mean `max_bytes`?".into()),
            "age" | "max_days" | "keep" => Some("did you mean `max_age` (like \"7d\")?".into()),
            _ => None,
        },
        diagnostics,
    );
    let mut retention = LogRetention::default();
    if let Some(bytes) = max_bytes(&fields, diagnostics) {
        retention.max_bytes = bytes;
    }
    retention.max_age = fields.duration(
        "max_age",
        TimeUnit::Seconds,
        Duration::from_secs(1),
        diagnostics,
    );
    retention
}

fn max_bytes(fields: &Fields<'_>, diagnostics: &mut Vec<Diagnostic>) -> Option<u64> {
    let item = fields.item("max_bytes")?;
    let problem = match (item.as_integer(), item.as_str()) {
        (Some(bytes), _) if bytes >= MIN_LOG_RETENTION_BYTES as i64 => return Some(bytes as u64),
        (Some(bytes), _) => format!("is too small: {bytes} bytes"),
        (None, Some(text)) => match parse_size(text) {
            Some(bytes) if bytes >= MIN_LOG_RETENTION_BYTES => return Some(bytes),
            Some(_) => format!("is too small: {text:?}"),
            None => format!("is not a size: {text:?}"),
        },
        (None, None) => format!(
            "must be a size like \"100MB\", found {}",
            describe_item(item)
        ),
    };
    diagnostics.push(
        Diagnostic::at(
            fields.file,
            fields.value_span("max_bytes"),
            format!("`max_bytes` in {} {problem}", fields.section),
        )
        .with_label("not a usable size")
        .with_hint(SIZE_HINT),
    );
    None
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::parse::parse_config;

    use super::*;

    fn settings(body: &str) -> (Option<LogRetention>, Vec<Diagnostic>) {
        let mut diagnostics = Vec::new();
        let text = format!("[settings]\n{body}\n[service.web]\ncommand = \"x\"\n");
        let config = parse_config(Path::new("/srv/tenement.toml"), text, &mut diagnostics).config;
        (
            config.map(|config| config.settings.log_retention),
            diagnostics,
        )
    }

    #[test]
    fn the_default_keeps_what_ten_kept_before() {
        let (retention, diagnostics) = settings("");
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        assert_eq!(retention, Some(LogRetention::default()));
        assert_eq!(LogRetention::default().max_bytes, 40 << 20);
        assert_eq!(LogRetention::default().max_age, None);
    }

    #[test]
    fn inline_and_table_forms_are_read() {
        let (retention, diagnostics) =
            settings("log_retention = { max_bytes = \"100MB\", max_age = \"7d\" }");
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        assert_eq!(
            retention,
            Some(LogRetention {
                max_bytes: 100 << 20,
                max_age: Some(Duration::from_secs(7 * 86_400)),
            })
        );
        let (retention, diagnostics) =
            settings("[settings.log_retention]\nmax_bytes = 1048576\nmax_age = 3600\n");
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        assert_eq!(
            retention,
            Some(LogRetention {
                max_bytes: 1 << 20,
                max_age: Some(Duration::from_secs(3600)),
            })
        );
    }

    #[test]
    fn bad_values_are_errors_at_their_place_with_a_hint() {
        let (retention, diagnostics) = settings(
            "log_retention = { max_bytes = \"10XB\", max_age = \"a week\", max_size = 1 }",
        );
        assert_eq!(retention, None);
        let found: Vec<(String, String)> = diagnostics
            .iter()
            .map(|d| (d.location(), d.message.clone()))
            .collect();
        assert_eq!(
            found,
            [
                (
                    "tenement.toml:2:59".into(),
                    "unknown key `max_size` in [settings.log_retention]".into()
                ),
                (
                    "tenement.toml:2:31".into(),
                    "`max_bytes` in [settings.log_retention] is not a size: \"10XB\"".into()
                ),
                (
                    "tenement.toml:2:49".into(),
                    "`max_age` in [settings.log_retention] is not a duration: \"a week\"".into()
                ),
            ]
        );
        assert!(diagnostics[0].hint.as_deref() == Some("did you mean `max_bytes`?"));
        let (_, diagnostics) = settings("log_retention = { max_bytes = \"1KB\" }");
        assert_eq!(
            diagnostics[0].message,
            "`max_bytes` in [settings.log_retention] is too small: \"1KB\""
        );
        assert!(diagnostics[0].hint.as_deref().unwrap().contains("64KB"));
        let (_, diagnostics) = settings("log_retention = \"7d\"");
        assert_eq!(
            diagnostics[0].message,
            "`log_retention` in [settings] must be a table, found a string"
        );
    }
}
