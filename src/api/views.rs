//! The API's views of the reconciler's reports: what `ten ps` shows (every declared instance,
//! never started, sleeping and failed ones too, and undeclared ones still being destroyed),
//! the status and the plan.

use std::collections::BTreeSet;

use crate::api::types::{API_VERSION, InstanceView, PlanView, StatusView, WriteError};
use crate::config::{Listen, RunState};
use crate::desired::DesiredState;
use crate::names::InstanceKey;
use crate::observed::record::unix_now;
use crate::observed::{Health, ObservedState, Phase, Usage};
use crate::reconcile::{PlanReport, Snapshot, StatusReport};

/// The note of an instance the files declare running that no apply has created yet (held).
pub(crate) const NOT_APPLIED: &str = "not applied yet";

pub(crate) fn status_view(report: StatusReport) -> StatusView {
    StatusView {
        api_version: API_VERSION,
        ten_version: env!("CARGO_PKG_VERSION").to_string(),
        config: report.config.display().to_string(),
        valid: report.valid,
        diagnostics: report.diagnostics,
        frozen: report.frozen,
        held: report.held,
        auto_apply: report.settings.auto_apply,
        generation: report.generation,
        instances: report.instances,
        instances_dir: report.settings.instances_dir.display().to_string(),
        data_dir: report.settings.data_dir.display().to_string(),
        write_errors: crate::runtime::durable::failing()
            .into_iter()
            .map(|failing| WriteError {
                file: failing.kind.label().to_string(),
                what: failing.kind.describe().to_string(),
                error: failing.error,
                since_unix: failing.since_unix,
                failures: failing.failures,
            })
            .collect(),
    }
}

pub(crate) fn plan_view(report: PlanReport) -> PlanView {
    PlanView {
        plan: report.plan,
        diagnostics: report.diagnostics,
        held: report.held,
    }
}

/// Every instance of `snapshot`, as `ten ps` shows it.
pub(crate) fn snapshot_views(snapshot: &Snapshot) -> Vec<InstanceView> {
    instance_views(
        &snapshot.desired,
        &snapshot.observed,
        |key| snapshot.usage.get(key).copied(),
        |key| snapshot.waits.get(key).copied(),
    )
}

/// `usage` gives the last usage sample of an instance, `last_wait` how long the last request
/// that waited for it waited.
pub(crate) fn instance_views(
    desired: &DesiredState,
    observed: &ObservedState,
    usage: impl Fn(&InstanceKey) -> Option<Usage>,
    last_wait: impl Fn(&InstanceKey) -> Option<std::time::Duration>,
) -> Vec<InstanceView> {
    let keys: BTreeSet<&InstanceKey> = desired
        .instances
        .keys()
        .chain(observed.instances.keys())
        .collect();
    let now = unix_now();
    keys.into_iter()
        .map(|key| {
            let spec = desired.instances.get(key);
            let instance = observed.instances.get(key);
            // A worker's port is 0: it has none.
            let port = instance
                .and_then(|instance| instance.port)
                .filter(|port| *port != 0);
            let phase = instance.map_or(Phase::Stopped, |instance| instance.phase);
            let has_process = instance.is_some_and(|instance| instance.pid.is_some());
            let listen = match spec.map(|spec| spec.listen) {
                _ if !has_process => None,
                Some(Listen::None) => None,
                Some(Listen::Socket) => spec.map(|spec| spec.socket().display().to_string()),
                _ => port.map(|port| format!("127.0.0.1:{port}")),
            };
            let running = matches!(phase, Phase::Running | Phase::Starting);
            let note = match (instance, spec) {
                (Some(instance), _) => instance.note.clone(),
                (None, Some(spec)) if spec.state == RunState::Running => {
                    Some(NOT_APPLIED.to_string())
                }
                _ => None,
            };
            InstanceView {
                instance: key.clone(),
                service: key.service.to_string(),
                id: key.id.to_string(),
                state: spec.map(|spec| spec.state),
                phase,
                pid: instance.and_then(|instance| instance.pid),
                port,
                listen,
                health: instance.map_or(Health::Unknown, |instance| instance.health),
                weight: spec.map_or(0, |spec| spec.weight),
                worker: spec.is_some_and(|spec| spec.listen == Listen::None),
                uptime_secs: instance
                    .and_then(|instance| instance.started_at_unix)
                    .filter(|_| running)
                    .map(|started| now.saturating_sub(started)),
                restarts: instance.map_or(0, |instance| instance.restarts),
                last_exit: instance.and_then(|instance| instance.last_exit.as_deref().cloned()),
                note,
                declared_in: spec
                    .map(|spec| spec.declared.describe())
                    .or_else(|| instance.and_then(|instance| instance.declared_in.clone())),
                usage: if running { usage(key) } else { None },
                last_wake_micros: last_wait(key)
                    .map(|waited| u64::try_from(waited.as_micros()).unwrap_or(u64::MAX)),
            }
        })
        .collect()
}
