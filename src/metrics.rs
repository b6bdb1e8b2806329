//! ten's own counters for `GET /metrics`: proxied requests by status, wake latency, spawns,
//! reconcile passes and their durations, failed API token checks. Process-wide atomics in one
//! static ([`global`]), so the request path counts without a lock or an allocation; the scrape
//! renders them in the Prometheus text format (0.0.4) together with gauges the API asks the
//! reconciler for at scrape time (instances by phase, restarts, config errors).
//!
//! No metric carries an instance label: series are fixed (plus one per status code seen), so
//! an unknown Host or id can never create one. Imports no tokio, hyper or nix.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Status codes counted one by one: 100 to 599.
const FIRST_CODE: u16 = 100;
const CODES: usize = 500;

/// Wake latency buckets, in seconds.
pub(crate) const WAKE_BUCKETS: [f64; 12] = [
    0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Reconcile pass buckets, in seconds.
pub(crate) const PASS_BUCKETS: [f64; 10] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5,
];

/// A histogram with fixed bucket bounds (seconds); each bucket counts the observations up
/// to its bound (cumulated when rendered).
pub(crate) struct Histogram<const N: usize> {
    bounds: [f64; N],
    buckets: [AtomicU64; N],
    count: AtomicU64,
    /// Sum of observations in nanoseconds.
    sum_nanos: AtomicU64,
}

impl<const N: usize> Histogram<N> {
    pub(crate) const fn new(bounds: [f64; N]) -> Self {
        Self {
            bounds,
            buckets: [const { AtomicU64::new(0) }; N],
            count: AtomicU64::new(0),
            sum_nanos: AtomicU64::new(0),
        }
    }

    pub(crate) fn observe(&self, duration: Duration) {
        let seconds = duration.as_secs_f64();
        if let Some(index) = self.bounds.iter().position(|bound| seconds <= *bound) {
            self.buckets[index].fetch_add(1, Ordering::Relaxed);
        }
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        header(out, name, help, "histogram");
        let mut cumulative = 0;
        for (bound, bucket) in self.bounds.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count();
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// Every counter of the process.
pub(crate) struct Metrics {
    /// Responses to proxied requests (declared instances and services only), by status code.
    proxied: [AtomicU64; CODES],
    /// How long requests waited for a sleeping (or starting) instance to take traffic.
    wake: Histogram<12>,
    wake_failures: AtomicU64,
    spawns: AtomicU64,
    spawn_failures: AtomicU64,
    reconcile: Histogram<10>,
    auth_failures: AtomicU64,
    auth_limited: AtomicU64,
    acme_issued: AtomicU64,
    acme_failed: AtomicU64,
    tls_unknown_names: AtomicU64,
}

static METRICS: Metrics = Metrics::new();

/// The process's metrics.
pub(crate) fn global() -> &'static Metrics {
    &METRICS
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub(crate) const fn new() -> Self {
        Self {
            proxied: [const { AtomicU64::new(0) }; CODES],
            wake: Histogram::new(WAKE_BUCKETS),
            wake_failures: AtomicU64::new(0),
            spawns: AtomicU64::new(0),
            spawn_failures: AtomicU64::new(0),
            reconcile: Histogram::new(PASS_BUCKETS),
            auth_failures: AtomicU64::new(0),
            auth_limited: AtomicU64::new(0),
            acme_issued: AtomicU64::new(0),
            acme_failed: AtomicU64::new(0),
            tls_unknown_names: AtomicU64::new(0),
        }
    }

    /// The proxy answered a request for a declared instance or service with `status`.
    pub(crate) fn proxied(&self, status: u16) {
        if let Some(counter) = status
            .checked_sub(FIRST_CODE)
            .and_then(|index| self.proxied.get(usize::from(index)))
        {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A request waited `waited` for its instance to wake and then got a backend.
    pub(crate) fn woke(&self, waited: Duration) {
        self.wake.observe(waited);
    }

    /// A request waited for a wake that failed or did not finish in time.
    pub(crate) fn wake_failed(&self) {
        self.wake_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// A tenant process was spawned (the runtime started it).
    pub(crate) fn spawned(&self) {
        self.spawns.fetch_add(1, Ordering::Relaxed);
    }

    /// Spawning a tenant process failed.
    pub(crate) fn spawn_failed(&self) {
        self.spawn_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// A reconcile pass finished after `duration`.
    pub(crate) fn reconcile_pass(&self, duration: Duration) {
        self.reconcile.observe(duration);
    }

    /// A request to the API or `/metrics` carried no valid token.
    pub(crate) fn auth_failed(&self) {
        self.auth_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// A failed token check was answered 429 (its address failed too often).
    pub(crate) fn auth_limited(&self) {
        self.auth_limited.fetch_add(1, Ordering::Relaxed);
    }

    /// An ACME order ended: a certificate, or a failure (tried again later).
    pub(crate) fn acme_order(&self, issued: bool) {
        let counter = if issued {
            &self.acme_issued
        } else {
            &self.acme_failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// A TLS handshake named no declared name (or none): refused.
    pub(crate) fn tls_unknown_name(&self) {
        self.tls_unknown_names.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters, then `gauges`, in the Prometheus text format.
    pub(crate) fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::with_capacity(4096);
        header(&mut out, "ten_build_info", "The version of ten.", "gauge");
        let _ = writeln!(
            out,
            "ten_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        header(
            &mut out,
            "ten_instances",
            "Instances by phase (every declared one, and undeclared ones still stopping).",
            "gauge",
        );
        for (phase, count) in &gauges.phases {
            let _ = writeln!(out, "ten_instances{{phase=\"{phase}\"}} {count}");
        }
        gauge(
            &mut out,
            "ten_instance_restarts",
            "Restarts of the current instances, summed.",
            gauges.restarts,
        );
        gauge(
            &mut out,
            "ten_config_errors",
            "Errors in the files (the last valid configuration keeps running while there are any).",
            gauges.config_errors,
        );
        gauge(
            &mut out,
            "ten_config_generation",
            "Generation of the observed state.",
            gauges.generation,
        );
        header(
            &mut out,
            "ten_proxy_requests_total",
            "Responses to requests for declared instances and services, by status code.",
            "counter",
        );
        for (index, counter) in self.proxied.iter().enumerate() {
            let value = counter.load(Ordering::Relaxed);
            if value > 0 {
                let code = FIRST_CODE as usize + index;
                let _ = writeln!(
                    out,
                    "ten_proxy_requests_total{{class=\"{}xx\",code=\"{code}\"}} {value}",
                    code / 100
                );
            }
        }
        self.wake.render(
            &mut out,
            "ten_wake_duration_seconds",
            "How long requests waited for a sleeping or starting instance to take traffic.",
        );
        counter(
            &mut out,
            "ten_wake_failures_total",
            "Requests whose wait for an instance to wake failed or timed out.",
            &self.wake_failures,
        );
        counter(
            &mut out,
            "ten_spawns_total",
            "Tenant processes spawned.",
            &self.spawns,
        );
        counter(
            &mut out,
            "ten_spawn_failures_total",
            "Tenant processes that could not be spawned.",
            &self.spawn_failures,
        );
        let passes = self.reconcile.count();
        gauge_typed(
            &mut out,
            "ten_reconcile_passes_total",
            "Reconcile passes.",
            "counter",
            passes,
        );
        self.reconcile.render(
            &mut out,
            "ten_reconcile_duration_seconds",
            "Duration of reconcile passes.",
        );
        counter(
            &mut out,
            "ten_api_auth_failures_total",
            "Requests to the API or /metrics without a valid token.",
            &self.auth_failures,
        );
        counter(
            &mut out,
            "ten_api_auth_limited_total",
            "Failed token checks answered 429 because their address failed too often.",
            &self.auth_limited,
        );
        self.render_tls(&mut out, gauges);
        out
    }

    fn render_tls(&self, out: &mut String, gauges: &Gauges) {
        if let Some(certificates) = &gauges.certificates {
            header(
                out,
                "ten_certificates",
                "Names under HTTPS by the state of their certificate.",
                "gauge",
            );
            for (state, count) in certificates {
                let _ = writeln!(out, "ten_certificates{{state=\"{state}\"}} {count}");
            }
        }
        header(
            out,
            "ten_acme_orders_total",
            "ACME orders ended, by result (a failed one is tried again with a backoff).",
            "counter",
        );
        for (result, counter) in [("issued", &self.acme_issued), ("failed", &self.acme_failed)] {
            let value = counter.load(Ordering::Relaxed);
            let _ = writeln!(out, "ten_acme_orders_total{{result=\"{result}\"}} {value}");
        }
        counter(
            out,
            "ten_tls_unknown_names_total",
            "TLS handshakes refused because they named no declared name.",
            &self.tls_unknown_names,
        );
    }
}

/// What the scrape asks the reconciler for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Gauges {
    /// Every phase, with how many instances are in it.
    pub phases: Vec<(&'static str, u64)>,
    pub restarts: u64,
    pub config_errors: u64,
    pub generation: u64,
    /// Names by certificate state, when ten serves HTTPS.
    pub certificates: Option<Vec<(&'static str, u64)>>,
}

/// The media type of the text format.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn gauge(out: &mut String, name: &str, help: &str, value: u64) {
    gauge_typed(out, name, help, "gauge", value);
}

fn gauge_typed(out: &mut String, name: &str, help: &str, kind: &str, value: u64) {
    header(out, name, help, kind);
    let _ = writeln!(out, "{name} {value}");
}

fn counter(out: &mut String, name: &str, help: &str, value: &AtomicU64) {
    gauge_typed(out, name, help, "counter", value.load(Ordering::Relaxed));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line<'a>(text: &'a str, prefix: &str) -> &'a str {
        text.lines()
            .find(|line| line.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
    }

    #[test]
    fn counters_render_in_the_text_format() {
        let metrics = Metrics::new();
        for status in [200, 200, 404, 502, 99, 600] {
            metrics.proxied(status);
        }
        metrics.woke(Duration::from_millis(3));
        metrics.woke(Duration::from_millis(40));
        metrics.reconcile_pass(Duration::from_micros(700));
        metrics.spawned();
        let gauges = Gauges {
            phases: vec![("running", 2), ("sleeping", 1)],
            restarts: 4,
            config_errors: 1,
            generation: 9,
            certificates: Some(vec![("valid", 3), ("retrying", 1)]),
        };
        metrics.acme_order(true);
        metrics.acme_order(false);
        metrics.acme_order(false);
        metrics.tls_unknown_name();
        let text = metrics.render(&gauges);
        assert!(text.contains("ten_certificates{state=\"valid\"} 3\n"));
        assert!(text.contains("ten_acme_orders_total{result=\"issued\"} 1\n"));
        assert!(text.contains("ten_acme_orders_total{result=\"failed\"} 2\n"));
        assert!(text.contains("ten_tls_unknown_names_total 1\n"));
        assert_eq!(
            line(&text, "ten_proxy_requests_total{class=\"2xx\""),
            "ten_proxy_requests_total{class=\"2xx\",code=\"200\"} 2"
        );
        assert!(text.contains("ten_proxy_requests_total{class=\"5xx\",code=\"502\"} 1"));
        assert!(!text.contains("code=\"99\"") && !text.contains("code=\"600\""));
        assert_eq!(
            line(&text, "ten_wake_duration_seconds_bucket{le=\"0.005\"}"),
            "ten_wake_duration_seconds_bucket{le=\"0.005\"} 1"
        );
        assert_eq!(
            line(&text, "ten_wake_duration_seconds_bucket{le=\"0.05\"}"),
            "ten_wake_duration_seconds_bucket{le=\"0.05\"} 2",
            "buckets are cumulative"
        );
        assert_eq!(
            line(&text, "ten_wake_duration_seconds_count"),
            "ten_wake_duration_seconds_count 2"
        );
        assert_eq!(
            line(&text, "ten_reconcile_passes_total "),
            "ten_reconcile_passes_total 1"
        );
        assert_eq!(line(&text, "ten_spawns_total "), "ten_spawns_total 1");
        assert_eq!(
            line(&text, "ten_instances{phase=\"running\"}"),
            "ten_instances{phase=\"running\"} 2"
        );
        assert_eq!(line(&text, "ten_config_errors "), "ten_config_errors 1");
        // Every sample line belongs to a declared metric.
        for sample in text.lines().filter(|line| !line.starts_with('#')) {
            let name = sample.split(['{', ' ']).next().unwrap();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .filter(|family| text.contains(&format!("# TYPE {family} histogram")))
                .unwrap_or(name);
            assert!(
                text.contains(&format!("# TYPE {family} ")),
                "{sample} has no TYPE line"
            );
        }
    }
}
