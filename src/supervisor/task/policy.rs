//! What governs one instance's supervision, from its spec and the settings: the machine's
//! policy, and what a start waits for (its readiness), said when it never comes.

use std::time::Duration;

use crate::config::checks::{Check, TcpPort};
use crate::config::{Listen, Settings};
use crate::desired::InstanceSpec;

use super::super::machine::{FIRST_PROBE_GAP, MAX_PROBE_GAP, Policy, Readiness};

/// The supervision policy of `spec` under `settings`, listening on `port`.
pub(crate) fn policy(spec: &InstanceSpec, settings: &Settings, port: u16) -> Policy {
    let check_interval = spec
        .timing
        .interval
        .unwrap_or(settings.health_check_interval);
    Policy {
        readiness: readiness(spec, port),
        restart: spec.restart,
        max_restarts: settings.max_restarts,
        restart_window: settings.restart_window,
        backoff_base: settings.backoff_base,
        backoff_max: settings.backoff_max,
        startup_timeout: spec.startup_timeout,
        check_interval,
        check_offset: check_offset(&spec.key.to_string(), check_interval),
        stop_signal: spec.stop_signal,
        stop_timeout: spec.stop_timeout,
        idle_timeout: spec.idle_timeout,
        retries: spec.timing.retries,
        start_period: spec.timing.start_period,
        liveness: (spec.listen == Listen::None && spec.check.is_none())
            .then_some(spec.timing.start_seconds),
        readiness_connects: match spec.check {
            Some(Check::Exec(_)) => false,
            Some(Check::Tcp(_)) => true,
            // A worker without a check counts as started after its start_seconds.
            None => spec.listen != Listen::None,
        },
        probe_gaps: match spec.check {
            // A command forks: readiness is asked at most every second.
            Some(Check::Exec(_)) => (Duration::from_millis(50), Duration::from_secs(1)),
            _ => (FIRST_PROBE_GAP, MAX_PROBE_GAP),
        },
    }
}

/// The share of `interval` after which the first periodic check of the instance `name` comes:
/// in (0, interval], fixed by the name (the same after a restart of ten) and spread evenly
/// over names, so the checks of hundreds of instances started together do not come in a
/// burst once per interval (a burst of forks, for command checks).
fn check_offset(name: &str, interval: Duration) -> Duration {
    // FNV-1a: stable across builds and platforms, unlike std's hasher.
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    const SHARES: u32 = 1000;
    interval * (hash % u64::from(SHARES) + 1) as u32 / SHARES
}

/// What a start of `spec` waits for (its readiness probe), and the likely fix when it never
/// comes.
fn readiness(spec: &InstanceSpec, port: u16) -> Readiness {
    match &spec.check {
        Some(Check::Tcp(TcpPort::Fixed(port))) => {
            return Readiness {
                waits_for: format!("a connection to 127.0.0.1:{port} (its health_check)"),
                hint: format!(
                    "does the app open port {port}? A slow start needs a larger startup_timeout"
                ),
            };
        }
        Some(Check::Exec(_)) => {
            return Readiness {
                waits_for: format!(
                    "its health_check `{}` to exit 0",
                    crate::desired::spec::describe_check(spec.check.as_ref().expect("matched"))
                ),
                hint: "run the check by hand in the instance's directory to see why; a slow start needs a larger startup_timeout".into(),
            };
        }
        _ => {}
    }
    let (place, listens) = match spec.listen {
        Listen::None => {
            return Readiness {
                waits_for: format!(
                    "it to stay up {} (start_seconds)",
                    humantime::format_duration(spec.timing.start_seconds)
                ),
                hint: "it exits at once: `ten logs` shows why".into(),
            };
        }
        Listen::Port => (
            format!("127.0.0.1:{port}"),
            format!(
                "does the app listen on 127.0.0.1:$PORT ({port})? A socket app sets `socket` (and listens on $SOCKET_PATH)"
            ),
        ),
        Listen::Socket => (
            format!("the socket {}", spec.socket().display()),
            format!(
                "does the app listen on $SOCKET_PATH ({})? An app that listens on $PORT needs listen = \"port\"",
                spec.socket().display()
            ),
        ),
    };
    let waits_for = match &spec.health {
        Some(path) => format!("GET {path} on {place} to answer 2xx"),
        None => format!("a connection to {place}"),
    };
    Readiness {
        waits_for,
        hint: format!("{listens}; a slow start needs a larger startup_timeout"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_checks_of_many_instances_are_spread_over_the_interval() {
        let interval = Duration::from_secs(1);
        let offsets: Vec<Duration> = (0..200)
            .map(|index| check_offset(&format!("worker:{index}"), interval))
            .collect();
        assert!(
            offsets
                .iter()
                .all(|offset| *offset > Duration::ZERO && *offset <= interval)
        );
        // Each tenth of the interval holds some of the 200 (20 on average), none most.
        for tenth in 0..10 {
            let (low, high) = (interval * tenth / 10, interval * (tenth + 1) / 10);
            let within = offsets
                .iter()
                .filter(|offset| **offset > low && **offset <= high)
                .count();
            assert!(
                (5..=40).contains(&within),
                "{within} in tenth {tenth}: {offsets:?}"
            );
        }
        // Fixed by the name: the same after a restart of ten.
        assert_eq!(check_offset("worker:7", interval), offsets[7]);
    }
}
