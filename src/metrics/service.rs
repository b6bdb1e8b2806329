//! Per-service counters: requests by status class with their latency, wake latency, restarts
//! and failures by cause. One [`ServiceCounters`] per declared service, kept in a registry
//! ([`Services`]) that the route table is built from, so the proxy's route entry holds its
//! service's counters and counting is a few atomic adds (no lookup, lock or allocation).
//!
//! Label values are bounded: a service is in the registry only while it is declared, and
//! requests that reach no declared service are counted in one fixed series
//! ([`UNROUTED`]), whatever Host or id they asked for.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use super::header;
use super::histogram::Histogram;

/// The `service` label of requests that reached no declared service (an unknown Host or id,
/// a worker's name). Not a DNS label, so it never names a service.
pub(crate) const UNROUTED: &str = "(unrouted)";

/// Request latency buckets, in seconds (Prometheus' usual ones).
pub(crate) const REQUEST_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Wake latency buckets, in seconds.
pub(crate) const WAKE_BUCKETS: [f64; 12] = [
    0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Status classes, `1xx` to `5xx`.
pub(crate) const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The class index of `status`; a code outside 100..=599 counts as `5xx` (a broken backend).
fn class_of(status: u16) -> usize {
    match status {
        100..=599 => usize::from(status / 100 - 1),
        _ => 4,
    }
}

/// Why an instance restarted after a backoff, or failed for good: a fixed set, so a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cause {
    /// Its process ended by itself with an error (a code other than 0, or a signal).
    Crashed,
    /// Its process ended with code 0 and `restart = "always"` starts it again.
    Exited,
    /// The kernel killed it over its memory limit.
    OutOfMemory,
    /// Its health check failed `health_retries` times in a row.
    Unhealthy,
    /// It was not ready within `startup_timeout`.
    StartTimeout,
    /// It could not be started at all.
    SpawnFailed,
    /// Its data directory reached `storage_quota_mb`.
    StorageQuota,
}

impl Cause {
    pub(crate) const ALL: [Cause; 7] = [
        Cause::Crashed,
        Cause::Exited,
        Cause::OutOfMemory,
        Cause::Unhealthy,
        Cause::StartTimeout,
        Cause::SpawnFailed,
        Cause::StorageQuota,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Cause::Crashed => "crashed",
            Cause::Exited => "exited",
            Cause::OutOfMemory => "out_of_memory",
            Cause::Unhealthy => "unhealthy",
            Cause::StartTimeout => "start_timeout",
            Cause::SpawnFailed => "spawn_failed",
            Cause::StorageQuota => "storage_quota",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The counters of one service.
pub(crate) struct ServiceCounters {
    /// Answers by status class, with how long they took (their count is the request count).
    requests: [Histogram<11>; 5],
    /// How long requests waited for an instance of the service to wake (or restart).
    wake: Histogram<12>,
    wake_failures: AtomicU64,
    /// Restarts after a backoff, by cause.
    restarts: [AtomicU64; 7],
    /// Instances that became `failed`, by cause.
    failures: [AtomicU64; 7],
}

impl Default for ServiceCounters {
    fn default() -> Self {
        Self {
            requests: [const { Histogram::new(REQUEST_BUCKETS) }; 5],
            wake: Histogram::new(WAKE_BUCKETS),
            wake_failures: AtomicU64::new(0),
            restarts: [const { AtomicU64::new(0) }; 7],
            failures: [const { AtomicU64::new(0) }; 7],
        }
    }
}

impl ServiceCounters {
    /// A request routed to this service (`since` then) was answered with `status`, by its
    /// backend or by ten's refusal.
    pub(crate) fn answered(&self, status: u16, since: Started) {
        self.answered_in(status, since.elapsed_nanos());
    }

    /// A request was answered with `status` `nanos` nanoseconds after it was routed.
    fn answered_in(&self, status: u16, nanos: u64) {
        self.requests[class_of(status)].observe_nanos(nanos);
    }

    /// A request waited `waited` for an instance to wake (or restart) and then got it.
    pub(crate) fn woke(&self, waited: Duration) {
        self.wake.observe(waited);
    }

    /// A request's wait for a wake failed or timed out.
    pub(crate) fn wake_failed(&self) {
        self.wake_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// An instance restarts after a backoff, for `cause`.
    pub(crate) fn restarting(&self, cause: Cause) {
        self.restarts[cause.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// An instance became `failed` (no more restarts until someone acts), for `cause`.
    pub(crate) fn failed(&self, cause: Cause) {
        self.failures[cause.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Requests answered with a status of class `class` (0 for 1xx .. 4 for 5xx).
    pub(crate) fn requests(&self, class: usize) -> u64 {
        self.requests[class].count()
    }
}

/// When a request was routed: the start of its latency. 8 bytes, so a request's future
/// grows by no more (a `std::time::Instant` takes 16).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Started(u64);

impl Started {
    pub(crate) fn now() -> Started {
        Started(nanos_since_start())
    }

    pub(crate) fn elapsed_nanos(self) -> u64 {
        nanos_since_start().saturating_sub(self.0)
    }
}

/// Nanoseconds since the first call (a monotonic clock of the process).
pub(crate) fn nanos_since_start() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let start = START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// The declared services' counters. Read without a lock (a snapshot in an `ArcSwap`);
/// replaced, keeping the counters of services still declared, when the route table is
/// rebuilt.
pub(crate) struct Services {
    declared: ArcSwap<BTreeMap<String, Arc<ServiceCounters>>>,
    /// Requests that reached no declared service, by status class.
    unrouted: [AtomicU64; 5],
}

impl Default for Services {
    fn default() -> Self {
        Self {
            declared: ArcSwap::from_pointee(BTreeMap::new()),
            unrouted: [const { AtomicU64::new(0) }; 5],
        }
    }
}

impl Services {
    /// The services declared now are `names`: a new one gets counters, one gone loses its
    /// (its series end), the others keep theirs.
    pub(crate) fn declare<'a>(&self, names: impl IntoIterator<Item = &'a str>) {
        let current = self.declared.load();
        let next: BTreeMap<String, Arc<ServiceCounters>> = names
            .into_iter()
            .map(|name| {
                let counters = current.get(name).cloned().unwrap_or_default();
                (name.to_string(), counters)
            })
            .collect();
        let unchanged =
            next.len() == current.len() && next.keys().zip(current.keys()).all(|(a, b)| a == b);
        if !unchanged {
            self.declared.store(Arc::new(next));
        }
    }

    /// The declared services, sorted.
    pub(crate) fn names(&self) -> Vec<String> {
        self.declared.load().keys().cloned().collect()
    }

    /// The counters of `service`, if it is declared.
    pub(crate) fn get(&self, service: &str) -> Option<Arc<ServiceCounters>> {
        self.declared.load().get(service).cloned()
    }

    /// A request that reached no declared service was answered with `status`.
    pub(crate) fn unrouted(&self, status: u16) {
        self.unrouted[class_of(status)].fetch_add(1, Ordering::Relaxed);
    }

    /// Every declared service's series, and the unrouted ones.
    pub(crate) fn render(&self, out: &mut String) {
        let declared = self.declared.load();
        header(
            out,
            "ten_service_requests_total",
            "Proxied requests answered, by service and status class (service=\"(unrouted)\": for no declared service).",
            "counter",
        );
        for (service, counters) in declared.iter() {
            for (class, name) in CLASSES.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "ten_service_requests_total{{service=\"{service}\",class=\"{name}\"}} {}",
                    counters.requests(class)
                );
            }
        }
        for (class, name) in CLASSES.iter().enumerate() {
            let _ = writeln!(
                out,
                "ten_service_requests_total{{service=\"{UNROUTED}\",class=\"{name}\"}} {}",
                self.unrouted[class].load(Ordering::Relaxed)
            );
        }
        header(
            out,
            "ten_service_request_duration_seconds",
            "Time from routing a request to its answer's head (waits for a wake and sends again included), by service and status class.",
            "histogram",
        );
        for (service, counters) in declared.iter() {
            for (class, name) in CLASSES.iter().enumerate() {
                counters.requests[class].render(
                    out,
                    "ten_service_request_duration_seconds",
                    &format!("service=\"{service}\",class=\"{name}\""),
                );
            }
        }
        header(
            out,
            "ten_wake_duration_seconds",
            "How long requests waited for a sleeping, starting or restarting instance of the service to take traffic.",
            "histogram",
        );
        for (service, counters) in declared.iter() {
            counters.wake.render(
                out,
                "ten_wake_duration_seconds",
                &format!("service=\"{service}\""),
            );
        }
        header(
            out,
            "ten_wake_failures_total",
            "Requests whose wait for an instance of the service to wake failed or timed out.",
            "counter",
        );
        for (service, counters) in declared.iter() {
            let value = counters.wake_failures.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "ten_wake_failures_total{{service=\"{service}\"}} {value}"
            );
        }
        render_causes(
            out,
            "ten_restarts_total",
            "Restarts of instances after a backoff, by service and cause (a restart asked for is not counted).",
            &declared,
            |counters| &counters.restarts,
        );
        render_causes(
            out,
            "ten_failures_total",
            "Instances that became failed (no more restarts until `ten restart` or `ten apply`), by service and cause.",
            &declared,
            |counters| &counters.failures,
        );
    }
}

/// One counter family by service and cause: `counters` picks it of a service's counters.
fn render_causes(
    out: &mut String,
    name: &str,
    help: &str,
    declared: &BTreeMap<String, Arc<ServiceCounters>>,
    counters: fn(&ServiceCounters) -> &[AtomicU64; 7],
) {
    header(out, name, help, "counter");
    for (service, of_service) in declared {
        for cause in Cause::ALL {
            let value = counters(of_service)[cause.index()].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}{{service=\"{service}\",cause=\"{}\"}} {value}",
                cause.as_str()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str, series: &str) -> u64 {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
            .parse()
            .unwrap()
    }

    #[test]
    fn counters_survive_a_redeclaration_and_end_with_their_service() {
        let services = Services::default();
        services.declare(["web", "api"]);
        let web = services.get("web").unwrap();
        web.answered_in(200, 3_000_000);
        web.answered_in(503, 30_000_000);
        web.restarting(Cause::Unhealthy);
        web.failed(Cause::OutOfMemory);
        services.declare(["web", "blog"]);
        assert!(
            Arc::ptr_eq(&web, &services.get("web").unwrap()),
            "a service still declared keeps its counters"
        );
        assert!(services.get("api").is_none());
        services.unrouted(404);
        services.unrouted(404);
        let mut text = String::new();
        services.render(&mut text);
        let requests = |service: &str, class: &str| {
            value(
                &text,
                &format!("ten_service_requests_total{{service=\"{service}\",class=\"{class}\"}}"),
            )
        };
        assert_eq!(requests("web", "2xx"), 1);
        assert_eq!(requests("web", "5xx"), 1);
        assert_eq!(requests("blog", "2xx"), 0);
        assert_eq!(requests(UNROUTED, "4xx"), 2);
        assert!(!text.contains("\"api\""), "{text}");
        assert_eq!(
            value(
                &text,
                "ten_service_request_duration_seconds_bucket{service=\"web\",class=\"5xx\",le=\"0.05\"}"
            ),
            1
        );
        assert_eq!(
            value(
                &text,
                "ten_restarts_total{service=\"web\",cause=\"unhealthy\"}"
            ),
            1
        );
        assert_eq!(
            value(
                &text,
                "ten_failures_total{service=\"web\",cause=\"out_of_memory\"}"
            ),
            1
        );
    }

    #[test]
    fn the_series_are_the_same_whatever_was_counted() {
        let series = |services: &Services| -> Vec<String> {
            let mut text = String::new();
            services.render(&mut text);
            text.lines()
                .filter(|line| !line.starts_with('#'))
                .map(|line| line.rsplit_once(' ').unwrap().0.to_string())
                .collect()
        };
        let services = Services::default();
        services.declare(["web"]);
        let before = series(&services);
        let web = services.get("web").unwrap();
        for status in [101, 200, 302, 404, 500, 99, 700] {
            web.answered(status, Started::now());
            services.unrouted(status);
        }
        web.woke(Duration::from_millis(2));
        web.wake_failed();
        assert_eq!(series(&services), before);
    }

    #[test]
    fn classes_of_status_codes() {
        assert_eq!(class_of(100), 0);
        assert_eq!(class_of(204), 1);
        assert_eq!(class_of(399), 2);
        assert_eq!(class_of(451), 3);
        assert_eq!(class_of(599), 4);
        assert_eq!(class_of(600), 4);
        assert_eq!(class_of(0), 4);
    }
}
