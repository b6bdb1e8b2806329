//! The process-wide counters ([`Metrics`]: proxied requests by status code, spawns, durable
//! writes, reconcile passes, failed token checks, ACME orders, and the areas' own) in one
//! static, [`global`]; the registry of per-service counters, [`services`]. Renders nothing
//! (`text` does); imports no tokio, hyper or nix; takes no lock.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::histogram::Histogram;
use super::lag::Lag;
use super::service::Services;
use super::{connections, memory};

/// Status codes counted one by one: 100 to 599.
pub(super) const FIRST_CODE: u16 = 100;
const CODES: usize = 500;

/// Reconcile pass buckets, in seconds.
pub(crate) const PASS_BUCKETS: [f64; 10] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5,
];

/// Every process-wide counter.
pub(crate) struct Metrics {
    /// Responses to proxied requests (declared instances and services only), by status code.
    pub(super) proxied: [AtomicU64; CODES],
    pub(super) spawns: AtomicU64,
    pub(super) spawn_failures: AtomicU64,
    pub(super) forks: AtomicU64,
    /// Durable writes (the record, the process table) that failed, and whether each fails now.
    pub(super) durable_failures: [AtomicU64; 2],
    pub(super) durable_failing: [AtomicU64; 2],
    pub(super) reconcile: Histogram<10>,
    pub(super) lag: Lag,
    pub(super) auth_failures: AtomicU64,
    pub(super) auth_limited: AtomicU64,
    pub(super) acme_issued: AtomicU64,
    pub(super) acme_failed: AtomicU64,
    pub(super) tls_unknown_names: AtomicU64,
    pub(super) memory: memory::MemoryMetrics,
    pub(super) connections: connections::ConnectionMetrics,
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
}
