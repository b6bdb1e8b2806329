//! What governs one instance's supervision, from its spec and the settings: the restart
//! policy and its backoff, timeouts, checks and readiness, the pace of readiness probes. Pure
//! values: must not import the task or the gate.

use std::time::Duration;

use crate::config::{RestartPolicy, StopSignal};

/// First gap between readiness probes of a starting process; it grows by a fifth each time up
/// to [`MAX_PROBE_GAP`]. Fine-grained on purpose: a woken instance is served within a few
/// milliseconds of accepting connections. (A refused connect on localhost costs microseconds.)
pub(crate) const FIRST_PROBE_GAP: Duration = Duration::from_millis(1);
pub(crate) const MAX_PROBE_GAP: Duration = Duration::from_millis(10);

/// What governs one instance's supervision (from its spec and the settings).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Policy {
    pub restart: RestartPolicy,
    pub max_restarts: u32,
    pub restart_window: Duration,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    pub startup_timeout: Duration,
    pub check_interval: Duration,
    /// The first periodic check of a process that became healthy (or was adopted) comes this
    /// long after, at most `check_interval`: a share of it fixed by the instance's name, so
    /// the checks of instances started together are spread over the interval, not a burst.
    pub check_offset: Duration,
    pub stop_signal: StopSignal,
    pub stop_timeout: Duration,
    /// Idle this long with no request in flight, a running instance sleeps; zero: never.
    pub idle_timeout: Duration,
    /// What a start waits for, for the message when it never comes.
    pub readiness: Readiness,
    /// Failed checks in a row that make a running instance unhealthy (and restart it).
    pub retries: u32,
    /// After a start, failed checks do not count for this long.
    pub start_period: Duration,
    /// For a process nothing checks (a worker without a check): up this long, a start
    /// counts; it is never probed.
    pub liveness: Option<Duration>,
    /// The first and the longest gap between readiness probes of a starting process
    /// ([`FIRST_PROBE_GAP`] and [`MAX_PROBE_GAP`], longer for a command check, which forks).
    pub probe_gaps: (Duration, Duration),
    /// Readiness is a connection (an HTTP or a TCP check): the first check of a wake goes at
    /// once, and the runtime makes its connection as soon as the process listens (finer than
    /// the gaps), since a request waits for it.
    pub readiness_connects: bool,
}

/// What a started process must do to count as started, and what to check when it does not:
/// said when `startup_timeout` passes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Readiness {
    /// "GET /health on 127.0.0.1:30001 to answer 2xx", "a connection to /run/app.sock".
    pub waits_for: String,
    /// The likely fix.
    pub hint: String,
}

/// `backoff_base * 2^n`, capped at `backoff_max`.
pub(super) fn backoff(policy: &Policy, restarts: u32) -> Duration {
    let factor = 1u32.checked_shl(restarts.min(31)).unwrap_or(u32::MAX);
    policy
        .backoff_base
        .checked_mul(factor)
        .unwrap_or(policy.backoff_max)
        .min(policy.backoff_max)
}
