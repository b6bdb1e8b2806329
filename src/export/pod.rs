//! The pod of an exported instance, shared by its StatefulSet and its Knative Service: the
//! container (command, env with the secret-looking values from a Secret, port, probes from
//! ten's checks, resources from its limits, the data volume's mount, a preStop hook for a stop
//! signal other than TERM), the pod around it, and the claim of its data directory. Pure.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, EnvVarSource, ExecAction, HTTPGetAction, Lifecycle,
    LifecycleHandler, PersistentVolumeClaim, PersistentVolumeClaimSpec, PodSecurityContext,
    PodSpec, Probe, ResourceRequirements, Secret, SecretKeySelector, TCPSocketAction, VolumeMount,
    VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::config::checks::{Check, TcpPort};
use crate::config::{Isolation, Listen, StopSignal};
use crate::desired::InstanceSpec;

use super::Warnings;
use super::kubernetes::{CONTAINER_PORT, Target, labels, secret_name};
use super::shared::{PORT_MARK, seconds, split_env};

/// A claim's size when `storage_quota_mb` does not say.
const DEFAULT_VOLUME_SIZE: &str = "1Gi";

/// The claim of an instance's data directory: `storage_quota_mb`, else 1Gi.
pub(crate) fn claim(target: &Target<'_>, spec: &InstanceSpec, name: &str) -> PersistentVolumeClaim {
    let size = spec
        .storage_quota_mb
        .map_or_else(|| DEFAULT_VOLUME_SIZE.to_string(), |mb| format!("{mb}Mi"));
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: (name != "data")
                .then(|| target.options.namespace.clone())
                .flatten(),
            labels: Some(labels(spec)),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: target.options.storage_class.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".into(), Quantity(size))])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    }
}

/// The pod of an instance; `full` adds what Knative sets itself (grace period, service
/// links).
pub(crate) fn pod_spec(spec: &InstanceSpec, container: Container, full: bool) -> PodSpec {
    let uid = spec
        .user
        .as_deref()
        .and_then(|user| user.parse::<i64>().ok());
    PodSpec {
        containers: vec![container],
        runtime_class_name: (spec.isolation == Isolation::Sandbox).then(|| "gvisor".into()),
        security_context: uid.map(|uid| PodSecurityContext {
            run_as_user: Some(uid),
            ..PodSecurityContext::default()
        }),
        termination_grace_period_seconds: full.then_some(spec.stop_timeout.as_secs() as i64),
        // ten gives a tenant no variables of other tenants.
        enable_service_links: full.then_some(false),
        ..PodSpec::default()
    }
}

/// The container of an instance and the Secret of its secret-looking env. Knative sets
/// `PORT` itself (and refuses it in the spec).
pub(crate) fn container(
    target: &Target<'_>,
    spec: &InstanceSpec,
    knative: bool,
    warnings: &mut Warnings,
) -> (Container, Option<Secret>) {
    let port = CONTAINER_PORT.to_string();
    let fill = |text: &str| target.container_path(&text.replace(PORT_MARK, &port));
    let env = split_env(spec, fill);
    let mut vars: Vec<EnvVar> = Vec::new();
    if spec.listen == Listen::Port && !knative {
        vars.push(EnvVar {
            name: "PORT".into(),
            value: Some(port.clone()),
            ..EnvVar::default()
        });
    }
    for (name, value) in &env.plain {
        vars.push(EnvVar {
            name: name.clone(),
            value: Some(value.clone()),
            ..EnvVar::default()
        });
    }
    let secret_name = secret_name(spec);
    for name in env.secret.keys() {
        vars.push(EnvVar {
            name: name.clone(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: secret_name.clone(),
                    key: name.clone(),
                    optional: None,
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        });
    }
    vars.sort_by(|a, b| a.name.cmp(&b.name));
    let secret = (!env.secret.is_empty()).then(|| Secret {
        metadata: target.metadata(&secret_name, labels(spec)),
        type_: Some("Opaque".into()),
        string_data: Some(env.secret.clone()),
        ..Secret::default()
    });
    let argv: Vec<String> = spec
        .argv
        .iter()
        .map(|word| target.container_path(&word.resolve_port(CONTAINER_PORT as u16)))
        .collect();
    let mut resources = ResourceRequirements::default();
    if let Some(mb) = spec.memory_limit_mb {
        let amount = Quantity(format!("{mb}Mi"));
        resources.limits = Some(BTreeMap::from([("memory".into(), amount.clone())]));
        resources.requests = Some(BTreeMap::from([("memory".into(), amount)]));
    }
    if let Some(shares) = spec.cpu_shares {
        // The kubelet gives a pod cpu.shares of 1024 per CPU requested.
        let millis = (shares * 1000 / 1024).max(1);
        resources
            .requests
            .get_or_insert_with(BTreeMap::new)
            .insert("cpu".into(), Quantity(format!("{millis}m")));
    }
    let handler = probe_handler(target, spec, warnings);
    let timing = &spec.timing;
    let period = timing
        .interval
        .unwrap_or(target.desired.config.settings.health_check_interval);
    let probe = handler.map(|handler| Probe {
        period_seconds: Some(seconds(period, 1) as i32),
        timeout_seconds: Some(seconds(timing.timeout, 1) as i32),
        failure_threshold: Some(timing.retries.max(1) as i32),
        ..handler
    });
    // Started within startup_timeout (and start_period, when longer): checked every second.
    let startup = probe.as_ref().map(|probe| Probe {
        period_seconds: Some(1),
        failure_threshold: Some(
            seconds(spec.startup_timeout.max(timing.start_period), 1).min(i32::MAX as u64) as i32,
        ),
        ..probe.clone()
    });
    let data_path = target.container_path(&spec.data_dir().to_string_lossy());
    let container = Container {
        name: "app".into(),
        image: Some(target.image(&spec.key.service)),
        command: Some(argv),
        working_dir: Some(target.container_path(&spec.workdir.resolve_port(CONTAINER_PORT as u16))),
        env: (!vars.is_empty()).then_some(vars),
        ports: (spec.listen == Listen::Port).then(|| {
            vec![ContainerPort {
                container_port: CONTAINER_PORT,
                name: (!knative).then(|| "http".into()),
                ..ContainerPort::default()
            }]
        }),
        readiness_probe: probe.clone(),
        liveness_probe: probe,
        startup_probe: if knative { None } else { startup },
        resources: (resources != ResourceRequirements::default()).then_some(resources),
        volume_mounts: Some(vec![VolumeMount {
            name: "data".into(),
            mount_path: data_path,
            ..VolumeMount::default()
        }]),
        lifecycle: pre_stop(spec.stop_signal),
        ..Container::default()
    };
    (container, secret)
}

/// A signal other than TERM is sent by a preStop hook (Kubernetes 1.32 sends TERM only):
/// the app is the container's process 1; the hook waits until it has gone.
fn pre_stop(signal: StopSignal) -> Option<Lifecycle> {
    (signal != StopSignal::Term).then(|| Lifecycle {
        pre_stop: Some(LifecycleHandler {
            exec: Some(ExecAction {
                command: Some(vec![
                    "/bin/sh".into(),
                    "-c".into(),
                    format!(
                        "kill -{} 1; while kill -0 1 2>/dev/null; do sleep 1; done",
                        signal.as_str()
                    ),
                ]),
            }),
            ..LifecycleHandler::default()
        }),
        ..Lifecycle::default()
    })
}

/// What ten checks, as a probe: `health` an HTTP GET, a TCP or a command check.
fn probe_handler(
    target: &Target<'_>,
    spec: &InstanceSpec,
    warnings: &mut Warnings,
) -> Option<Probe> {
    if let Some(path) = &spec.health {
        if spec.listen != Listen::Port {
            warnings.add(
                format!("service.{}", spec.key.service),
                "health",
                "an HTTP probe needs a TCP port: not exported for listen = \"socket\"",
            );
            return None;
        }
        return Some(Probe {
            http_get: Some(HTTPGetAction {
                path: Some(path.clone()),
                port: IntOrString::Int(CONTAINER_PORT),
                ..HTTPGetAction::default()
            }),
            ..Probe::default()
        });
    }
    match &spec.check {
        Some(Check::Tcp(port)) => Some(Probe {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::Int(match port {
                    TcpPort::Own => CONTAINER_PORT,
                    TcpPort::Fixed(port) => i32::from(*port),
                }),
                ..TCPSocketAction::default()
            }),
            ..Probe::default()
        }),
        Some(Check::Exec(words)) => Some(Probe {
            exec: Some(ExecAction {
                command: Some(
                    words
                        .iter()
                        .map(|word| {
                            target.container_path(&word.resolve_port(CONTAINER_PORT as u16))
                        })
                        .collect(),
                ),
            }),
            ..Probe::default()
        }),
        None => None,
    }
}
