//! The Prometheus text format (0.0.4): its media type, the `# HELP` and `# TYPE` lines every
//! area's `render` writes, and the whole scrape ([`Metrics::render`]): the counters with the
//! gauges the scrape gathers. Imports no tokio, hyper or nix; takes no lock.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use super::gauges::{Gauges, ProcessFacts};
use super::global::{FIRST_CODE, Metrics};
use super::service::Services;

impl Metrics {
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

/// The media type of the text format.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub(crate) fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

pub(super) fn gauge(out: &mut String, name: &str, help: &str, value: u64) {
    gauge_typed(out, name, help, "gauge", value);
}

fn gauge_typed(out: &mut String, name: &str, help: &str, kind: &str, value: u64) {
    header(out, name, help, kind);
    let _ = writeln!(out, "{name} {value}");
}

pub(super) fn counter(out: &mut String, name: &str, help: &str, value: &AtomicU64) {
    gauge_typed(out, name, help, "counter", value.load(Ordering::Relaxed));
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::gauges::{CertificateGauges, ServiceGauges, UNDECLARED};
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
