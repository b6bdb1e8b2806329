//! What a client connection to ten may hold, in `[settings]`: `header_timeout`,
//! `keep_alive_timeout`, `max_connections` and `max_connections_per_client`.
//!
//! Pure: text in, a value or diagnostics out. Imports nothing of ten's but `config`'s reader.

use std::time::Duration;

use super::diag::Diagnostic;
use super::reader::{Fields, TimeUnit};

/// The limits of client connections (HTTP and HTTPS ports alike).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// A request's head must have come whole within this long of its first byte (or of the
    /// connection's accept, for its first request): a client trickling header bytes is cut.
    pub header_timeout: Duration,
    /// A kept-alive connection with no request under way is closed after this long.
    pub keep_alive_timeout: Duration,
    /// Open client connections, all addresses together; one more is closed at once.
    pub max_connections: u32,
    /// Open client connections from one address (an IPv6 client by its /64).
    pub max_connections_per_client: u32,
}

/// nginx's `client_header_timeout` is 60 s, Apache's `RequestReadTimeout` 20–40 s; a head is a
/// few hundred bytes, which any client that means it sends in milliseconds. 10 s leaves room
/// for a slow mobile link and holds a trickling client a sixth as long.
pub(crate) const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// As long as ten keeps its own idle connections to backends (`proxy::pool`); browsers
/// reuse a connection within seconds or not at all, and nginx's default is 75 s.
pub(crate) const DEFAULT_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(60);
/// Each connection holds a descriptor and about 10 KB (buffers, its task): 10,000 is 100 MB at
/// most, and fits the descriptors ten's systemd unit gives it many times over.
pub(crate) const DEFAULT_MAX_CONNECTIONS: u32 = 10_000;
/// A browser opens 6 per host, and a few hosts at once. A reverse proxy or a NAT in front of
/// ten is one address (the TCP peer, whatever `trusted_proxies` says): raise it then.
pub(crate) const DEFAULT_MAX_CONNECTIONS_PER_CLIENT: u32 = 256;

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            keep_alive_timeout: DEFAULT_KEEP_ALIVE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_client: DEFAULT_MAX_CONNECTIONS_PER_CLIENT,
        }
    }
}

/// The shortest timeout: below it a client on a slow link could not send a head at all.
const MIN_TIMEOUT: Duration = Duration::from_millis(100);
/// No more connections than a process can have descriptors (the kernel's `nr_open` default).
const MAX_CONNECTIONS: i64 = 1_048_576;

/// The four keys of `[settings]`, each checked where it is written; defaults for those not
/// given.
pub(crate) fn parse_connection_limits(
    fields: &Fields<'_>,
    diagnostics: &mut Vec<Diagnostic>,
) -> ConnectionLimits {
    let mut limits = ConnectionLimits::default();
    let timeout = |key: &str, diagnostics: &mut Vec<Diagnostic>| {
        fields.duration(key, TimeUnit::Seconds, MIN_TIMEOUT, diagnostics)
    };
    if let Some(value) = timeout("header_timeout", diagnostics) {
        limits.header_timeout = value;
    }
    if let Some(value) = timeout("keep_alive_timeout", diagnostics) {
        limits.keep_alive_timeout = value;
    }
    let count = |key: &str, diagnostics: &mut Vec<Diagnostic>| {
        fields
            .integer(key, 1..MAX_CONNECTIONS + 1, "connections", diagnostics)
            .map(|value| value as u32)
    };
    if let Some(value) = count("max_connections", diagnostics) {
        limits.max_connections = value;
    }
    if let Some(value) = count("max_connections_per_client", diagnostics) {
        limits.max_connections_per_client = value;
    }
    if fields.item("max_connections_per_client").is_some()
        && limits.max_connections_per_client > limits.max_connections
    {
        diagnostics.push(
            Diagnostic::at(
                fields.file,
                fields.value_span("max_connections_per_client"),
                format!(
                    "`max_connections_per_client` in [settings] ({}) is larger than `max_connections` ({})",
                    limits.max_connections_per_client, limits.max_connections
                ),
            )
            .with_label("larger than the total")
            .with_hint("one client can never hold more than all of them: lower it, or raise max_connections"),
        );
    }
    limits
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::parse_config;

    fn parse(settings: &str) -> (Option<ConnectionLimits>, Vec<Diagnostic>) {
        let mut diagnostics = Vec::new();
        let text = format!("[settings]\n{settings}\n[service.api]\ncommand = \"x\"\n");
        let parsed = parse_config(Path::new("/srv/tenement.toml"), text, &mut diagnostics);
        (
            parsed.config.map(|config| config.settings.connections),
            diagnostics,
        )
    }

    #[test]
    fn defaults_and_values_in_seconds_or_durations() {
        assert_eq!(parse("").0, Some(ConnectionLimits::default()));
        let (limits, diagnostics) = parse(
            "header_timeout = \"1500ms\"\nkeep_alive_timeout = 5\nmax_connections = 100\nmax_connections_per_client = 10",
        );
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        assert_eq!(
            limits,
            Some(ConnectionLimits {
                header_timeout: Duration::from_millis(1500),
                keep_alive_timeout: Duration::from_secs(5),
                max_connections: 100,
                max_connections_per_client: 10,
            })
        );
    }

    #[test]
    fn every_bad_value_is_reported_where_it_is_written() {
        let (limits, diagnostics) = parse(
            "header_timeout = 0\nkeep_alive_timeout = \"soon\"\nmax_connections = 0\nmax_connections_per_client = \"many\"",
        );
        assert_eq!(limits, None);
        let found: Vec<(Option<usize>, &str)> = diagnostics
            .iter()
            .map(|d| (d.line, d.message.as_str()))
            .collect();
        assert_eq!(found.len(), 4, "{found:?}");
        assert_eq!(
            found.iter().map(|(line, _)| *line).collect::<Vec<_>>(),
            [Some(2), Some(3), Some(4), Some(5)]
        );
        assert!(found[0].1.contains("header_timeout"), "{found:?}");
        assert!(found[2].1.contains("between 1 and"), "{found:?}");
    }

    #[test]
    fn a_per_client_cap_above_the_total_is_an_error_with_a_hint() {
        let (limits, diagnostics) =
            parse("max_connections = 100\nmax_connections_per_client = 200");
        assert_eq!(limits, None);
        assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
        assert_eq!(diagnostics[0].line, Some(3));
        assert!(
            diagnostics[0]
                .hint
                .as_deref()
                .unwrap()
                .contains("raise max_connections")
        );
    }
}
