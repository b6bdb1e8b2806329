//! Client connections' metrics: how many are open; those refused at accept because a cap was
//! reached, by which; those closed by a deadline, by which; and the times ten found its own
//! file descriptors exhausted (an accept, a health check). Atomics, no lock.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{counter, header};

/// Which cap refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cap {
    /// `max_connections`.
    Total,
    /// `max_connections_per_client`.
    PerClient,
}

/// Which deadline closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Deadline {
    /// `header_timeout`: a request's head did not come whole in time.
    Header,
    /// `keep_alive_timeout`: no new request on a kept-alive connection.
    KeepAlive,
}

pub(crate) struct ConnectionMetrics {
    open: AtomicU64,
    refused: [AtomicU64; 2],
    closed: [AtomicU64; 2],
    descriptors_exhausted: AtomicU64,
}

impl ConnectionMetrics {
    pub(crate) const fn new() -> Self {
        Self {
            open: AtomicU64::new(0),
            refused: [const { AtomicU64::new(0) }; 2],
            closed: [const { AtomicU64::new(0) }; 2],
            descriptors_exhausted: AtomicU64::new(0),
        }
    }

    pub(crate) fn opened(&self) {
        self.open.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn ended(&self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn refused(&self, cap: Cap) {
        self.refused[cap as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn timed_out(&self, deadline: Deadline) {
        self.closed[deadline as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// ten had no file descriptor left (EMFILE, ENFILE) for an accept or a health check.
    pub(crate) fn descriptors_exhausted(&self) {
        self.descriptors_exhausted.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn render(&self, out: &mut String) {
        header(
            out,
            "ten_client_connections",
            "Client connections open (HTTP and HTTPS ports).",
            "gauge",
        );
        let _ = writeln!(
            out,
            "ten_client_connections {}",
            self.open.load(Ordering::Relaxed)
        );
        header(
            out,
            "ten_client_connections_refused_total",
            "Client connections closed at accept because a cap was reached, by cap (max_connections, max_connections_per_client).",
            "counter",
        );
        for (cap, label) in [
            (Cap::Total, "max_connections"),
            (Cap::PerClient, "max_connections_per_client"),
        ] {
            let value = self.refused[cap as usize].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "ten_client_connections_refused_total{{cap=\"{label}\"}} {value}"
            );
        }
        header(
            out,
            "ten_client_connections_timed_out_total",
            "Client connections closed by a deadline, by which (header_timeout, keep_alive_timeout).",
            "counter",
        );
        for (deadline, label) in [
            (Deadline::Header, "header_timeout"),
            (Deadline::KeepAlive, "keep_alive_timeout"),
        ] {
            let value = self.closed[deadline as usize].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "ten_client_connections_timed_out_total{{deadline=\"{label}\"}} {value}"
            );
        }
        counter(
            out,
            "ten_descriptors_exhausted_total",
            "Times ten had no file descriptor left (EMFILE, ENFILE) for an accept or a health check: ten's own limit, never counted against a tenant.",
            &self.descriptors_exhausted,
        );
    }
}
