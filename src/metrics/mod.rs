//! ten's own metrics for `GET /metrics`, in the Prometheus text format (0.0.4).
//!
//! Counted as they happen, with atomics (no lock, no allocation on the request path):
//! proxied requests by status code ([`Metrics`], in one static, [`global`]); per declared
//! service, requests by status class with their latency, wake latency, restarts and failures
//! by cause ([`service`], in a registry the route table is built from, [`services`]);
//! spawns, reconcile passes and the reconcile lag ([`lag`]); failed token checks; ACME
//! orders; client connections: open, refused by a cap, closed by a deadline ([`connections`]),
//! and ten's own descriptors exhausted. At scrape time the API adds gauges ([`Gauges`]): instances by service and phase,
//! restarts, config errors, certificates, and ten's own RSS, CPU time and file descriptors.
//!
//! No metric carries an instance label, and a label value is a declared service, a phase, a
//! status class or a cause: an unknown Host or id can never create a series (requests for
//! none go to one fixed series). Imports no tokio, hyper or nix; takes no lock.

pub(crate) mod connections;
#[cfg(test)]
mod examples;
pub(crate) mod histogram;
pub(crate) mod lag;
pub(crate) mod memory;
pub(crate) mod service;

use std::fmt::Write as _;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use histogram::Histogram;
use lag::Lag;
pub(crate) use service::{Cause, ServiceCounters, Services, Started};

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

/// The `service` label of instances whose service is no longer declared (still stopping).
pub(crate) const UNDECLARED: &str = "(undeclared)";

/// Every process-wide counter.
pub(crate) struct Metrics {
    /// Responses to proxied requests (declared instances and services only), by status code.
    proxied: [AtomicU64; CODES],
    spawns: AtomicU64,
    spawn_failures: AtomicU64,
    forks: AtomicU64,
    /// Durable writes (the record, the process table) that failed, and whether each fails now.
    durable_failures: [AtomicU64; 2],
    durable_failing: [AtomicU64; 2],
    reconcile: Histogram<10>,
    lag: Lag,
    auth_failures: AtomicU64,
    auth_limited: AtomicU64,
    acme_issued: AtomicU64,
    acme_failed: AtomicU64,
    tls_unknown_names: AtomicU64,
    memory: memory::MemoryMetrics,
    connections: connections::ConnectionMetrics,
}

static METRICS: Metrics = Metrics::new();
static SERVICES: LazyLock<Services> = LazyLock::new(Services::default);

/// The process's metrics.
pub(crate) fn global() -> &'static Metrics {
    &METRICS
}

/// The process's per-service counters.
pub(crate) fn services() -> &'static Services {
    &SERVICES
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
            spawns: AtomicU64::new(0),
            spawn_failures: AtomicU64::new(0),
            forks: AtomicU64::new(0),
            durable_failures: [const { AtomicU64::new(0) }; 2],
            durable_failing: [const { AtomicU64::new(0) }; 2],
            reconcile: Histogram::new(PASS_BUCKETS),
            lag: Lag::new(),
            auth_failures: AtomicU64::new(0),
            auth_limited: AtomicU64::new(0),
            acme_issued: AtomicU64::new(0),
            acme_failed: AtomicU64::new(0),
            tls_unknown_names: AtomicU64::new(0),
            memory: memory::MemoryMetrics::new(),
            connections: connections::ConnectionMetrics::new(),
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

    /// The memory budget's counters.
    pub(crate) fn memory(&self) -> &memory::MemoryMetrics {
        &self.memory
    }

    /// Client connections' counters.
    pub(crate) fn connections(&self) -> &connections::ConnectionMetrics {
        &self.connections
    }

    /// A tenant process was spawned (the runtime started it).
    pub(crate) fn spawned(&self) {
        self.spawns.fetch_add(1, Ordering::Relaxed);
    }

    /// Spawning a tenant process failed.
    pub(crate) fn spawn_failed(&self) {
        self.spawn_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// ten forked itself to start a process (a tenant or a command check), because no
    /// spawner could be had.
    pub(crate) fn forked(&self) {
        self.forks.fetch_add(1, Ordering::Relaxed);
    }

    /// A durable write of kind `index` (0: the record, 1: the process table) failed.
    pub(crate) fn durable_write_failed(&self, index: usize) {
        self.durable_failures[index].fetch_add(1, Ordering::Relaxed);
        self.durable_failing[index].store(1, Ordering::Relaxed);
    }

    /// A durable write of kind `index` succeeded after failing.
    pub(crate) fn durable_write_recovered(&self, index: usize) {
        self.durable_failing[index].store(0, Ordering::Relaxed);
    }

    /// A reconcile pass finished after `duration`.
    pub(crate) fn reconcile_pass(&self, duration: Duration) {
        self.reconcile.observe(duration);
    }

    /// The reconcile lag's clock ([`lag`]): changes of the files noticed, read, taken in.
    pub(crate) fn lag(&self) -> &Lag {
        &self.lag
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

    /// The counters, `services`' and `gauges`, in the Prometheus text format.
    pub(crate) fn render(&self, services: &Services, gauges: &Gauges) -> String {
        let mut out = String::with_capacity(16 * 1024);
        header(&mut out, "ten_build_info", "The version of ten.", "gauge");
        let _ = writeln!(
            out,
            "ten_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        render_instances(&mut out, gauges);
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
        services.render(&mut out);
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
        counter(
            &mut out,
            "ten_spawn_forks_total",
            "Processes ten started by forking itself because its spawner could not be had.",
            &self.forks,
        );
        self.render_durable(&mut out);
        self.memory.render(&mut out);
        self.connections.render(&mut out);
        self.render_reconcile(&mut out);
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
        render_process(&mut out, &gauges.process);
        out
    }

    fn render_durable(&self, out: &mut String) {
        const FILES: [&str; 2] = ["record", "process_table"];
        header(
            out,
            "ten_durable_write_failures_total",
            "Writes of the state record or of a process table entry that failed (a full disk, an I/O error).",
            "counter",
        );
        for (file, value) in FILES.iter().zip(&self.durable_failures) {
            let value = value.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "ten_durable_write_failures_total{{file=\"{file}\"}} {value}"
            );
        }
        header(
            out,
            "ten_durable_write_failing",
            "1 while the last write of the state record or of a process table entry failed.",
            "gauge",
        );
        for (file, value) in FILES.iter().zip(&self.durable_failing) {
            let value = value.load(Ordering::Relaxed);
            let _ = writeln!(out, "ten_durable_write_failing{{file=\"{file}\"}} {value}");
        }
    }

    fn render_reconcile(&self, out: &mut String) {
        let passes = self.reconcile.count();
        gauge_typed(
            out,
            "ten_reconcile_passes_total",
            "Reconcile passes.",
            "counter",
            passes,
        );
        header(
            out,
            "ten_reconcile_duration_seconds",
            "Duration of reconcile passes.",
            "histogram",
        );
        self.reconcile
            .render(out, "ten_reconcile_duration_seconds", "");
        header(
            out,
            "ten_reconcile_lag_seconds",
            "For each change of the files a pass took in: from the watcher noticing it to the end of the pass after the reload that read it.",
            "histogram",
        );
        self.lag
            .taken_in
            .render(out, "ten_reconcile_lag_seconds", "");
        header(
            out,
            "ten_reconcile_pending_seconds",
            "Age of the oldest change of the files noticed and not yet taken in by a pass (0 when none).",
            "gauge",
        );
        let _ = writeln!(
            out,
            "ten_reconcile_pending_seconds {}",
            self.lag.pending().as_secs_f64()
        );
    }

    fn render_tls(&self, out: &mut String, gauges: &Gauges) {
        if let Some(certificates) = &gauges.certificates {
            header(
                out,
                "ten_certificates",
                "Names under HTTPS by the state of their certificate.",
                "gauge",
            );
            for (state, count) in &certificates.states {
                let _ = writeln!(out, "ten_certificates{{state=\"{state}\"}} {count}");
            }
            if let Some(expiry) = certificates.earliest_expiry_unix {
                header(
                    out,
                    "ten_certificate_earliest_expiry_timestamp_seconds",
                    "When the first certificate of a declared name expires (Unix time).",
                    "gauge",
                );
                let _ = writeln!(
                    out,
                    "ten_certificate_earliest_expiry_timestamp_seconds {expiry}"
                );
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

/// Instances by service and phase, and their restarts.
fn render_instances(out: &mut String, gauges: &Gauges) {
    header(
        out,
        "ten_instances",
        "Instances by service and phase (service=\"(undeclared)\": of a service no longer declared, still stopping).",
        "gauge",
    );
    for service in &gauges.instances {
        for (phase, count) in &service.phases {
            let _ = writeln!(
                out,
                "ten_instances{{service=\"{}\",phase=\"{phase}\"}} {count}",
                service.service
            );
        }
    }
    header(
        out,
        "ten_instance_restarts",
        "Restarts of the current instances within their restart window, summed by service.",
        "gauge",
    );
    for service in &gauges.instances {
        let _ = writeln!(
            out,
            "ten_instance_restarts{{service=\"{}\"}} {}",
            service.service, service.restarts
        );
    }
}

/// ten's own process, under the names Prometheus' client libraries use.
fn render_process(out: &mut String, process: &ProcessFacts) {
    if let Some(bytes) = process.resident_bytes {
        gauge(
            out,
            "process_resident_memory_bytes",
            "Resident memory of ten itself, in bytes.",
            bytes,
        );
    }
    if let Some(seconds) = process.cpu_seconds {
        header(
            out,
            "process_cpu_seconds_total",
            "CPU time of ten itself (user and system), in seconds.",
            "counter",
        );
        let _ = writeln!(out, "process_cpu_seconds_total {seconds}");
    }
    if let Some(count) = process.open_fds {
        gauge(
            out,
            "process_open_fds",
            "File descriptors ten has open.",
            count,
        );
    }
    if let Some(limit) = process.max_fds {
        gauge(
            out,
            "process_max_fds",
            "The limit on ten's open file descriptors.",
            limit,
        );
    }
}

/// What the scrape asks the reconciler and the system for.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Gauges {
    /// Every declared service (and [`UNDECLARED`]), with its instances by phase.
    pub instances: Vec<ServiceGauges>,
    pub config_errors: u64,
    pub generation: u64,
    /// Names by certificate state, when ten serves HTTPS.
    pub certificates: Option<CertificateGauges>,
    pub process: ProcessFacts,
}

/// The instances of one service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ServiceGauges {
    pub service: String,
    /// Every phase, with how many of its instances are in it.
    pub phases: Vec<(&'static str, u64)>,
    pub restarts: u64,
}

/// The certificates of the declared names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CertificateGauges {
    /// Every state, with how many names are in it.
    pub states: Vec<(&'static str, u64)>,
    /// When the first certificate of a declared name expires; `None` without any.
    pub earliest_expiry_unix: Option<i64>,
}

/// What ten itself uses; `None` where /proc did not say.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ProcessFacts {
    pub resident_bytes: Option<u64>,
    pub cpu_seconds: Option<f64>,
    pub open_fds: Option<u64>,
    pub max_fds: Option<u64>,
}

/// The media type of the text format.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub(crate) fn header(out: &mut String, name: &str, help: &str, kind: &str) {
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

    fn gauges() -> Gauges {
        Gauges {
            instances: vec![
                ServiceGauges {
                    service: "web".into(),
                    phases: vec![("running", 2), ("sleeping", 1)],
                    restarts: 4,
                },
                ServiceGauges {
                    service: UNDECLARED.into(),
                    phases: vec![("running", 0), ("sleeping", 0)],
                    restarts: 0,
                },
            ],
            config_errors: 1,
            generation: 9,
            certificates: Some(CertificateGauges {
                states: vec![("valid", 3), ("retrying", 1)],
                earliest_expiry_unix: Some(1_800_000_000),
            }),
            process: ProcessFacts {
                resident_bytes: Some(12_345_678),
                cpu_seconds: Some(1.25),
                open_fds: Some(42),
                max_fds: Some(65536),
            },
        }
    }

    #[test]
    fn counters_render_in_the_text_format() {
        let metrics = Metrics::new();
        let services = Services::default();
        services.declare(["web"]);
        for status in [200, 200, 404, 502, 99, 600] {
            metrics.proxied(status);
        }
        let web = services.get("web").unwrap();
        web.woke(Duration::from_millis(3));
        web.woke(Duration::from_millis(40));
        metrics.reconcile_pass(Duration::from_micros(700));
        metrics.spawned();
        metrics.acme_order(true);
        metrics.acme_order(false);
        metrics.acme_order(false);
        metrics.tls_unknown_name();
        let text = metrics.render(&services, &gauges());
        assert!(text.contains("ten_certificates{state=\"valid\"} 3\n"));
        assert!(text.contains("ten_certificate_earliest_expiry_timestamp_seconds 1800000000\n"));
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
            line(
                &text,
                "ten_wake_duration_seconds_bucket{service=\"web\",le=\"0.005\"}"
            ),
            "ten_wake_duration_seconds_bucket{service=\"web\",le=\"0.005\"} 1"
        );
        assert_eq!(
            line(
                &text,
                "ten_wake_duration_seconds_bucket{service=\"web\",le=\"0.05\"}"
            ),
            "ten_wake_duration_seconds_bucket{service=\"web\",le=\"0.05\"} 2",
            "buckets are cumulative"
        );
        assert_eq!(
            line(&text, "ten_reconcile_passes_total "),
            "ten_reconcile_passes_total 1"
        );
        assert_eq!(line(&text, "ten_spawns_total "), "ten_spawns_total 1");
        assert_eq!(
            line(&text, "ten_instances{service=\"web\",phase=\"running\"}"),
            "ten_instances{service=\"web\",phase=\"running\"} 2"
        );
        assert_eq!(
            line(&text, "ten_instance_restarts{service=\"web\"}"),
            "ten_instance_restarts{service=\"web\"} 4"
        );
        assert_eq!(line(&text, "ten_config_errors "), "ten_config_errors 1");
        assert_eq!(
            line(&text, "ten_reconcile_pending_seconds "),
            "ten_reconcile_pending_seconds 0"
        );
        assert_eq!(
            line(&text, "process_resident_memory_bytes "),
            "process_resident_memory_bytes 12345678"
        );
        assert_eq!(line(&text, "process_open_fds "), "process_open_fds 42");
        assert_eq!(
            line(&text, "process_cpu_seconds_total "),
            "process_cpu_seconds_total 1.25"
        );
        // Every sample line belongs to a declared metric, declared once.
        let mut families = std::collections::BTreeSet::new();
        for declared in text.lines().filter_map(|line| line.strip_prefix("# TYPE ")) {
            let name = declared.split(' ').next().unwrap();
            assert!(families.insert(name), "{name} is declared twice");
        }
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
