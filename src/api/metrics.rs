//! `GET /metrics` on the root domain: ten's counters (`crate::metrics`) and, asked at scrape
//! time, gauges: instances by service and phase, restarts and config errors (of the
//! reconciler), certificates (of the certificate ledger), ten's own memory, CPU time and file
//! descriptors (of /proc, on a blocking thread). Needs an admin token unless
//! `public_metrics = true` in [settings].

use std::collections::BTreeMap;
use std::net::IpAddr;

use hyper::header::{self, HeaderMap};
use hyper::{Response, StatusCode};

use crate::metrics::{
    CONTENT_TYPE, CertificateGauges, Gauges, ProcessFacts, ServiceGauges, UNDECLARED, global,
    services,
};
use crate::observed::Phase;
use crate::tls::status::{CertState, CertView};

use super::auth::refusal;
use super::error::failure;
use super::scope::{Scope, forbidden};
use super::state::ApiState;
use super::types::InstanceView;
use crate::body::{self, Body};

/// Every phase, in the order shown.
const PHASES: [Phase; 8] = [
    Phase::Starting,
    Phase::Running,
    Phase::Sleeping,
    Phase::Stopping,
    Phase::Stopped,
    Phase::Backoff,
    Phase::Failed,
    Phase::Exited,
];

impl ApiState {
    /// The scrape. `public` is `settings.public_metrics` of the live configuration.
    pub(crate) async fn metrics(
        &self,
        headers: &HeaderMap,
        client: IpAddr,
        public: bool,
    ) -> Response<Body> {
        if !public {
            match self.authenticate(headers, client) {
                Ok(Scope::Admin) => {}
                Ok(scope) => {
                    return failure(forbidden(
                        &scope,
                        "/metrics needs an admin token (or `public_metrics = true` in [settings])"
                            .to_string(),
                    ));
                }
                Err(refused) => return refusal(refused),
            }
        }
        let (status, views) = match (self.status().await, self.views().await) {
            (Ok(status), Ok(views)) => (status, views),
            (Err(error), _) | (_, Err(error)) => return failure(error),
        };
        let process = tokio::task::spawn_blocking(own_process)
            .await
            .unwrap_or_default();
        let gauges = Gauges {
            instances: by_service(&services().names(), &views),
            config_errors: status
                .diagnostics
                .iter()
                .filter(|diagnostic| diagnostic.is_error())
                .count() as u64,
            generation: status.generation,
            certificates: self
                .certificates
                .as_ref()
                .map(|certificates| CertificateGauges {
                    states: certificates.counts(),
                    earliest_expiry_unix: earliest_expiry(&certificates.views()),
                }),
            process,
        };
        Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, CONTENT_TYPE)
            .body(body::full(global().render(services(), &gauges)))
            .expect("static response parts")
    }
}

/// The instances of each declared service (every phase, zeros too, so the series stay the
/// same as instances come and go), then those of services no longer declared, together.
fn by_service(declared: &[String], views: &[InstanceView]) -> Vec<ServiceGauges> {
    let mut counts: BTreeMap<&str, ([u64; PHASES.len()], u64)> = declared
        .iter()
        .map(|service| (service.as_str(), ([0; PHASES.len()], 0)))
        .chain([(UNDECLARED, ([0; PHASES.len()], 0))])
        .collect();
    for view in views {
        let service = if counts.contains_key(view.service.as_str()) {
            view.service.as_str()
        } else {
            UNDECLARED
        };
        let (phases, restarts) = counts.get_mut(service).expect("every service has counts");
        if let Some(index) = PHASES.iter().position(|phase| *phase == view.phase) {
            phases[index] += 1;
        }
        *restarts += u64::from(view.restarts);
    }
    // Declared services in their order, the undeclared last.
    let mut gauges: Vec<ServiceGauges> = counts
        .into_iter()
        .map(|(service, (phases, restarts))| ServiceGauges {
            service: service.to_string(),
            phases: PHASES
                .iter()
                .zip(phases)
                .map(|(phase, count)| (phase.as_str(), count))
                .collect(),
            restarts,
        })
        .collect();
    gauges.sort_by_key(|gauge| gauge.service == UNDECLARED);
    gauges
}

/// When the first certificate of a declared name expires.
fn earliest_expiry(views: &[CertView]) -> Option<i64> {
    views
        .iter()
        .filter(|view| view.state != CertState::Undeclared)
        .filter_map(|view| Some(view.certificate.as_ref()?.not_after_unix))
        .min()
}

/// What ten itself uses, from /proc.
fn own_process() -> ProcessFacts {
    let usage = crate::runtime::proc::usage(std::process::id());
    ProcessFacts {
        resident_bytes: usage.memory_bytes,
        cpu_seconds: usage.cpu_usec.map(|usec| usec as f64 / 1e6),
        open_fds: crate::runtime::proc::open_fds(),
        max_fds: crate::runtime::proc::max_fds(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_count_under_their_declared_service_or_together() {
        let view = |key: &str, phase: Phase, restarts: u32| {
            serde_json::from_value::<InstanceView>(serde_json::json!({
                "instance": key,
                "service": key.split(':').next().unwrap(),
                "id": key.split(':').nth(1).unwrap(),
                "state": "running",
                "phase": phase.as_str(),
                "health": "unknown",
                "weight": 1,
                "restarts": restarts,
            }))
            .unwrap_or_else(|error| panic!("{error}"))
        };
        let views = [
            view("web:a", Phase::Running, 1),
            view("web:b", Phase::Failed, 3),
            view("old:x", Phase::Stopping, 0),
        ];
        let gauges = by_service(&["api".into(), "web".into()], &views);
        let services: Vec<&str> = gauges.iter().map(|g| g.service.as_str()).collect();
        assert_eq!(services, ["api", "web", UNDECLARED]);
        let phase = |service: usize, phase: &str| {
            gauges[service]
                .phases
                .iter()
                .find(|(name, _)| *name == phase)
                .unwrap()
                .1
        };
        assert_eq!(phase(1, "running"), 1);
        assert_eq!(phase(1, "failed"), 1);
        assert_eq!(gauges[1].restarts, 4);
        assert_eq!(phase(2, "stopping"), 1);
        assert!(gauges.iter().all(|g| g.phases.len() == PHASES.len()));
        assert_eq!(gauges[0].phases.iter().map(|(_, n)| n).sum::<u64>(), 0);
    }
}
