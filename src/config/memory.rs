//! `memory_target` and `memory_limit_total` in `[settings]`: how much memory the tenants may
//! use together, as a share of what ten may use (`"80%"`) or a size (`"2GB"`, or bytes).
//!
//! Pure: text in, a value or diagnostics out. Imports nothing of ten's but `config`'s reader
//! and `log_files::parse_size`.

use super::diag::Diagnostic;
use super::log_files::parse_size;
use super::reader::{Fields, describe_item};

/// An amount of memory: a share of what ten may use, or bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryAmount {
    /// 1 to 100 percent of the host's memory, or of ten's own cgroup limit when it has one.
    Percent(u8),
    Bytes(u64),
}

impl MemoryAmount {
    /// In bytes, given what ten may use in all.
    pub fn bytes(self, available: u64) -> u64 {
        match self {
            MemoryAmount::Percent(percent) => available / 100 * u64::from(percent),
            MemoryAmount::Bytes(bytes) => bytes,
        }
    }

    /// As written: `80%` or `2048MB`.
    pub fn describe(self) -> String {
        match self {
            MemoryAmount::Percent(percent) => format!("{percent}%"),
            MemoryAmount::Bytes(bytes) => format!("{}MB", bytes >> 20),
        }
    }
}

/// The smallest absolute amount: below it no tenant would fit.
const MIN_BYTES: u64 = 1 << 20;

const HINT: &str = "a share like \"80%\" (of the host's memory, or of ten's cgroup limit), or \
a size like \"2GB\" (1 KB = 1024 bytes)";

/// Reads `key` of `[settings]` as a [`MemoryAmount`].
pub(crate) fn parse_memory_amount(
    fields: &Fields<'_>,
    key: &str,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<MemoryAmount> {
    let item = fields.item(key)?;
    let problem = match (item.as_integer(), item.as_str()) {
        (Some(bytes), _) if bytes >= MIN_BYTES as i64 => {
            return Some(MemoryAmount::Bytes(bytes as u64));
        }
        (Some(bytes), _) => format!("is too small: {bytes} bytes"),
        (None, Some(text)) => match amount(text) {
            Ok(amount) => return Some(amount),
            Err(problem) => problem,
        },
        (None, None) => format!(
            "must be like \"80%\" or \"2GB\", found {}",
            describe_item(item)
        ),
    };
    diagnostics.push(
        Diagnostic::at(
            fields.file,
            fields.value_span(key),
            format!("`{key}` in {} {problem}", fields.section),
        )
        .with_label("not a usable amount")
        .with_hint(HINT),
    );
    None
}

/// A warning when `memory_limit_total` is below `memory_target` (both shares, or both sizes:
/// a share and a size compare only on a given host): the usage can never reach the target,
/// so idle tenants are never put to sleep for it, and wakes are refused first.
pub(crate) fn check_limit_above_target(
    fields: &Fields<'_>,
    target: Option<MemoryAmount>,
    limit: Option<MemoryAmount>,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let below = match (target, limit) {
        (Some(MemoryAmount::Percent(target)), Some(MemoryAmount::Percent(limit))) => limit < target,
        (Some(MemoryAmount::Bytes(target)), Some(MemoryAmount::Bytes(limit))) => limit < target,
        _ => false,
    };
    if below {
        diagnostics.push(
            Diagnostic::at(
                fields.file,
                fields.value_span("memory_limit_total"),
                format!(
                    "`memory_limit_total` in {} is below `memory_target`: the tenants can never reach the target, so no idle tenant is put to sleep for it, and wakes are refused instead",
                    fields.section
                ),
            )
            .with_label("below memory_target")
            .with_hint("set memory_limit_total above memory_target (the target puts idle tenants to sleep; the limit refuses wakes past it)")
            .warning(),
        );
    }
}

fn amount(text: &str) -> Result<MemoryAmount, String> {
    if let Some(percent) = text.trim().strip_suffix('%') {
        return match percent.trim().parse::<u8>() {
            Ok(percent @ 1..=100) => Ok(MemoryAmount::Percent(percent)),
            _ => Err(format!("must be a share from 1% to 100%, found {text:?}")),
        };
    }
    match parse_size(text) {
        Some(bytes) if bytes >= MIN_BYTES => Ok(MemoryAmount::Bytes(bytes)),
        Some(_) => Err(format!("is too small: {text:?}")),
        None => Err(format!("is not a share or a size: {text:?}")),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::parse::parse_config;

    use super::*;

    type Amounts = (Option<MemoryAmount>, Option<MemoryAmount>);

    fn settings(body: &str) -> (Option<Amounts>, String) {
        let mut diagnostics = Vec::new();
        let text = format!("[settings]\n{body}\n[service.web]\ncommand = \"x\"\n");
        let config = parse_config(Path::new("/srv/tenement.toml"), text, &mut diagnostics).config;
        let messages = diagnostics.iter().map(|d| d.message.clone()).collect();
        (
            config.map(|config| {
                (
                    config.settings.memory_target,
                    config.settings.memory_limit_total,
                )
            }),
            messages,
        )
    }

    #[test]
    fn shares_sizes_and_bytes_are_read() {
        assert_eq!(settings("").0, Some((None, None)));
        assert_eq!(
            settings("memory_target = \"80%\"\nmemory_limit_total = \"2GB\"").0,
            Some((
                Some(MemoryAmount::Percent(80)),
                Some(MemoryAmount::Bytes(2 << 30))
            ))
        );
        assert_eq!(
            settings("memory_target = 104857600").0,
            Some((Some(MemoryAmount::Bytes(100 << 20)), None))
        );
        assert_eq!(MemoryAmount::Percent(50).bytes(1000 << 20), 500 << 20);
        assert_eq!(MemoryAmount::Bytes(7).bytes(1000), 7);
    }

    #[test]
    fn a_limit_below_the_target_is_a_warning() {
        for (body, warned) in [
            (
                "memory_target = \"80%\"\nmemory_limit_total = \"50%\"",
                true,
            ),
            (
                "memory_target = \"2GB\"\nmemory_limit_total = \"1GB\"",
                true,
            ),
            (
                "memory_target = \"50%\"\nmemory_limit_total = \"80%\"",
                false,
            ),
            (
                "memory_target = \"1GB\"\nmemory_limit_total = \"2GB\"",
                false,
            ),
            // A share and a size compare only on a host.
            (
                "memory_target = \"80%\"\nmemory_limit_total = \"1GB\"",
                false,
            ),
        ] {
            let (config, messages) = settings(body);
            assert!(config.is_some(), "a warning, not an error: {body}");
            assert_eq!(
                messages.contains("is below `memory_target`"),
                warned,
                "{body}: {messages}"
            );
        }
    }

    #[test]
    fn bad_amounts_say_what_is_wrong() {
        for (body, said) in [
            ("memory_target = \"0%\"", "from 1% to 100%"),
            ("memory_target = \"150%\"", "from 1% to 100%"),
            ("memory_target = \"lots\"", "not a share or a size"),
            ("memory_limit_total = \"10KB\"", "too small"),
            ("memory_limit_total = 12", "too small"),
            ("memory_limit_total = true", "must be like"),
        ] {
            let (config, messages) = settings(body);
            assert_eq!(config, None, "{body}");
            assert!(messages.contains(said), "{body}: {messages}");
        }
    }
}
