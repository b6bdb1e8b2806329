//! `GET /metrics` on the root domain: ten's counters (`crate::metrics`) and, asked of the
//! reconciler at scrape time, instances by phase, restarts and config errors. Needs an admin
//! token unless `public_metrics = true` in [settings].

use std::net::IpAddr;

use hyper::header::{self, HeaderMap};
use hyper::{Response, StatusCode};

use crate::metrics::{CONTENT_TYPE, Gauges, global};
use crate::observed::Phase;

use super::auth::refusal;
use super::error::failure;
use super::scope::{Scope, forbidden};
use super::state::ApiState;
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
        let gauges = Gauges {
            phases: PHASES
                .iter()
                .map(|phase| {
                    let count = views.iter().filter(|view| view.phase == *phase).count();
                    (phase.as_str(), count as u64)
                })
                .collect(),
            restarts: views.iter().map(|view| u64::from(view.restarts)).sum(),
            config_errors: status
                .diagnostics
                .iter()
                .filter(|diagnostic| diagnostic.is_error())
                .count() as u64,
            generation: status.generation,
            certificates: self
                .certificates
                .as_ref()
                .map(|certificates| certificates.counts()),
        };
        Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, CONTENT_TYPE)
            .body(body::full(global().render(&gauges)))
            .expect("static response parts")
    }
}
