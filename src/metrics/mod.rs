//! ten's own metrics for `GET /metrics`, in the Prometheus text format (0.0.4).
//!
//! Counted as they happen, with atomics (no lock, no allocation on the request path):
//! proxied requests by status code ([`Metrics`](global::Metrics), in one static, [`global`]); per declared
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
mod gauges;
mod global;
pub(crate) mod histogram;
pub(crate) mod lag;
pub(crate) mod memory;
pub(crate) mod service;
mod text;

pub(crate) use gauges::{CertificateGauges, Gauges, ProcessFacts, ServiceGauges, UNDECLARED};
pub(crate) use global::{global, services};
pub(crate) use service::{Cause, ServiceCounters, Started};
pub(crate) use text::{CONTENT_TYPE, header};
// The text format's helpers, for every area's `render`.
use text::{counter, gauge};
