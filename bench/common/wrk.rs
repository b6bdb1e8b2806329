//! wrk runs and the figures read from their output.

use std::process::Command;

/// (requests per second, p50 ms, p99 ms) of a wrk run with `args` (`--latency` among them);
/// panics if wrk saw a non-2xx answer or a socket error.
pub(crate) fn run(args: &[String]) -> (f64, f64, f64) {
    let output = Command::new("wrk").args(args).output().expect("run wrk");
    let text = String::from_utf8_lossy(&output.stdout);
    let errors = text
        .lines()
        .find(|line| line.contains("Non-2xx") || line.contains("Socket errors"));
    assert!(
        errors.is_none() && output.status.success(),
        "wrk saw errors:\n{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let requests = text
        .lines()
        .find_map(|line| line.strip_prefix("Requests/sec:"))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in:\n{text}"));
    let percentile = |label: &str| {
        text.lines()
            .find_map(|line| line.trim().strip_prefix(label))
            .map(|value| to_ms(value.trim()))
            .unwrap_or_else(|| panic!("no {label} in:\n{text}"))
    };
    (requests, percentile("50%"), percentile("99%"))
}

/// wrk's threads for `connections`: one per core, at most one per connection.
pub(crate) fn threads(connections: u32) -> u32 {
    connections.min(2)
}

fn to_ms(value: &str) -> f64 {
    let split = value
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: f64 = number.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => number / 1000.0,
        "ms" => number,
        "s" => number * 1000.0,
        _ => f64::NAN,
    }
}
