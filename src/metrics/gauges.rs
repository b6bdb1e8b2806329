//! What the scrape asks the reconciler and the system for ([`Gauges`]): instances by service
//! and phase, config errors, certificates, ten's own process. Plain values, filled by the API;
//! imports nothing of ten's, no tokio, hyper or nix.

/// The `service` label of instances whose service is no longer declared (still stopping).
pub(crate) const UNDECLARED: &str = "(undeclared)";

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
