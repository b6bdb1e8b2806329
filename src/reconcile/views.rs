//! What `ten ps` shows: every declared instance (never started, sleeping and failed ones
//! too), and undeclared ones still being destroyed.

use std::collections::BTreeSet;

use crate::api::types::InstanceView;
use crate::config::{Listen, RunState};
use crate::desired::DesiredState;
use crate::names::InstanceKey;
use crate::observed::record::unix_now;
use crate::observed::{Health, ObservedState, Phase, Usage};

/// `usage` gives the last usage sample of an instance.
pub fn instance_views(
    desired: &DesiredState,
    observed: &ObservedState,
    usage: impl Fn(&InstanceKey) -> Option<Usage>,
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
            let port = instance.and_then(|instance| instance.port);
            let phase = instance.map_or(Phase::Stopped, |instance| instance.phase);
            let has_process = instance.is_some_and(|instance| instance.pid.is_some());
            let listen = match spec.map(|spec| spec.listen) {
                _ if !has_process => None,
                Some(Listen::Socket) => spec.map(|spec| spec.socket.display().to_string()),
                _ => port.map(|port| format!("127.0.0.1:{port}")),
            };
            let running = matches!(phase, Phase::Running | Phase::Starting);
            let note = match (instance, spec) {
                (Some(instance), _) => instance.note.clone(),
                (None, Some(spec)) if spec.state == RunState::Running => {
                    Some("not applied yet".to_string())
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
                uptime_secs: instance
                    .and_then(|instance| instance.started_at_unix)
                    .filter(|_| running)
                    .map(|started| now.saturating_sub(started)),
                restarts: instance.map_or(0, |instance| instance.restarts),
                last_exit: instance.and_then(|instance| instance.last_exit.clone()),
                note,
                declared_in: spec
                    .map(|spec| spec.declared.describe())
                    .or_else(|| instance.and_then(|instance| instance.declared_in.clone())),
                usage: if running { usage(key) } else { None },
            }
        })
        .collect()
}
