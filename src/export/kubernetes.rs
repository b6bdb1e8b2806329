//! `ten export kubernetes`: per instance a StatefulSet of one replica (its data directory a
//! PersistentVolumeClaim from the StatefulSet's claim template), a Service and, for its
//! secret-looking env, a Secret; per service an Ingress with `ID.SERVICE.DOMAIN` for each
//! instance and `SERVICE.DOMAIN` for a Service over every instance with a weight above 0;
//! `[routing]` as one more Ingress. With `knative`, instances that sleep become Knative
//! Services (see `knative`).
//!
//! Built with k8s-openapi's typed structs (the official API schema, checked at compile
//! time), then written as YAML. Why a StatefulSet: it never runs two pods of an instance at
//! once (a Deployment's rolling update would start the new pod before the old one let go of a
//! ReadWriteOnce volume), as ten never runs an instance twice. Pure.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
};
use k8s_openapi::api::core::v1::{PodTemplateSpec, Service, ServicePort, ServiceSpec};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, ServiceBackendPort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;

use crate::config::checks::{Check, TcpPort};
use crate::config::{Isolation, Listen, RestartPolicy, RouteTarget, RunState};
use crate::desired::{DesiredState, InstanceSpec};
use crate::names::ServiceName;

use super::pod::{claim, container, pod_spec};
use super::shared::{
    by_service, instance_host, object_name, serves, service_host, settings_warnings, sleeps,
    weight_warning,
};
use super::{Document, Export, ExportError, Warnings, check_domain, knative, yaml};

/// The port every container listens on (`PORT`), and the port of its Service.
pub(crate) const CONTAINER_PORT: i32 = 8080;
const SERVICE_PORT: i32 = 80;
/// Where the project directory (tenement.toml's) is in the image.
pub const APP_DIR: &str = "/app";
/// Where ten's data directory is in the container; an instance's volume is mounted at
/// `/data/SERVICE/ID`, the path its `{data_dir}/{name}/{id}` templates name.
pub const DATA_DIR: &str = "/data";

/// What `ten export kubernetes` is asked.
#[derive(Debug, Clone, Default)]
pub struct KubernetesOptions {
    pub namespace: Option<String>,
    /// `IMAGE` for every service, or `SERVICE=IMAGE`; a service named by none gets
    /// `SERVICE:latest`.
    pub images: Vec<String>,
    pub storage_class: Option<String>,
    /// Hostnames are `ID.SERVICE.DOMAIN`.
    pub domain: String,
    pub ingress_class: Option<String>,
    /// Instances that sleep become Knative Services.
    pub knative: bool,
}

/// What every instance's objects share.
pub(crate) struct Target<'a> {
    pub desired: &'a DesiredState,
    pub options: &'a KubernetesOptions,
    images: BTreeMap<String, String>,
    default_image: Option<String>,
}

impl Target<'_> {
    /// A host path of ten's as the container sees it: the data directory under `/data`, the
    /// project directory at `/app`.
    ///
    /// Also escapes `$(`, which Kubernetes would expand as a variable in commands and env
    /// (ten does not), as `$$(`.
    pub(crate) fn container_path(&self, text: &str) -> String {
        let settings = &self.desired.config.settings;
        // A directory that is `/` would match every path: it stays as it is.
        let swap = |text: String, from: &std::path::Path, to: &str| {
            let from = from.to_string_lossy();
            if from.len() > 1 {
                text.replace(from.as_ref(), to)
            } else {
                text
            }
        };
        let text = swap(text.to_string(), &settings.data_dir, DATA_DIR);
        swap(text, &self.desired.config.dir, APP_DIR).replace("$(", "$$(")
    }

    pub(crate) fn image(&self, service: &ServiceName) -> String {
        self.images
            .get(service.as_str())
            .or(self.default_image.as_ref())
            .cloned()
            .unwrap_or_else(|| format!("{service}:latest"))
    }

    pub(crate) fn metadata(&self, name: &str, labels: BTreeMap<String, String>) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.to_string()),
            namespace: self.options.namespace.clone(),
            labels: Some(labels),
            ..ObjectMeta::default()
        }
    }
}

/// The labels of an instance's objects.
pub(crate) fn labels(spec: &InstanceSpec) -> BTreeMap<String, String> {
    let mut labels = selector(spec);
    labels.insert(
        "app.kubernetes.io/name".into(),
        spec.key.service.to_string(),
    );
    labels.insert("app.kubernetes.io/instance".into(), instance_name(spec));
    labels.insert("app.kubernetes.io/managed-by".into(), "ten".into());
    labels
}

/// What selects an instance's pod.
fn selector(spec: &InstanceSpec) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("ten.dev/service".into(), spec.key.service.to_string()),
        ("ten.dev/instance".into(), spec.key.id.to_string()),
    ])
}

/// The label of pods that take their service's traffic (weight above 0).
const WEIGHTED: &str = "ten.dev/weighted";

pub(crate) fn instance_name(spec: &InstanceSpec) -> String {
    object_name(&[spec.key.service.as_str(), spec.key.id.as_str()])
}

pub(crate) fn secret_name(spec: &InstanceSpec) -> String {
    object_name(&[spec.key.service.as_str(), spec.key.id.as_str(), "env"])
}

/// The export: documents per service (in name order), per instance (in id order).
pub fn export(desired: &DesiredState, options: &KubernetesOptions) -> Result<Export, ExportError> {
    check_domain("domain", &options.domain)?;
    if let Some(namespace) = &options.namespace {
        crate::names::check_label(namespace).map_err(|error| ExportError::InvalidOption {
            option: "namespace",
            value: namespace.clone(),
            reason: error.to_string(),
        })?;
    }
    let mut images = BTreeMap::new();
    let mut default_image = None;
    for image in &options.images {
        match image.split_once('=') {
            Some((service, image)) => {
                let known = desired
                    .config
                    .services
                    .keys()
                    .any(|name| name.as_str() == service);
                if !known || image.is_empty() {
                    return Err(ExportError::InvalidOption {
                        option: "image",
                        value: format!("{service}={image}"),
                        reason:
                            "names no declared service (or no image): give IMAGE or SERVICE=IMAGE"
                                .into(),
                    });
                }
                images.insert(service.to_string(), image.to_string());
            }
            None => default_image = Some(image.clone()),
        }
    }
    let target = Target {
        desired,
        options,
        images,
        default_image,
    };
    let mut warnings = Warnings::default();
    let mut documents = Vec::new();
    for (service, instances) in by_service(desired) {
        if target.default_image.is_none() && !target.images.contains_key(service.as_str()) {
            warnings.add(
                format!("service.{service}"),
                "image",
                format!(
                    "no image named: {service}:latest is used; pass --image IMAGE (or --image {service}=IMAGE) with the project at {APP_DIR}"
                ),
            );
        }
        service_warnings(&target, instances[0], &mut warnings);
        let mut hosts = Vec::new();
        for spec in &instances {
            if options.knative && sleeps(spec) && spec.state == RunState::Running {
                documents.extend(knative::instance(&target, spec, &mut warnings));
                continue;
            }
            documents.extend(instance_documents(&target, spec, &mut warnings));
            if serves(spec) && spec.listen == Listen::Port {
                hosts.push((instance_host(spec, &options.domain), instance_name(spec)));
            }
        }
        let weighted: Vec<&&InstanceSpec> = instances
            .iter()
            .filter(|spec| {
                spec.listen == Listen::Port
                    && spec.weight > 0
                    && !(options.knative && sleeps(spec) && spec.state == RunState::Running)
            })
            .collect();
        if !weighted.is_empty() {
            let name = object_name(&[service.as_str()]);
            let labels = service_labels(service);
            let mut selector = BTreeMap::from([("ten.dev/service".into(), service.to_string())]);
            selector.insert(WEIGHTED.into(), "true".into());
            documents.push(document(
                "Service",
                &name,
                &Service {
                    metadata: target.metadata(&name, labels),
                    spec: Some(service_spec(selector)),
                    ..Service::default()
                },
            ));
            hosts.push((service_host(service, &options.domain), name));
            weight_warning(
                service,
                &instances,
                "the Service over them balances by pod; for weights, route with a Gateway API HTTPRoute (backendRefs with weights) to the per-instance Services",
                &mut warnings,
            );
        }
        if !hosts.is_empty() {
            let rules = hosts
                .iter()
                .map(|(host, backend)| rule(Some(host.clone()), "/", backend))
                .collect();
            let name = object_name(&[service.as_str()]);
            documents.push(ingress(&target, &name, service_labels(service), rules));
        }
    }
    if let Some(routing) = routing_ingress(&target) {
        documents.push(routing);
    }
    settings_warnings(&desired.config, &mut warnings);
    Ok(Export {
        documents,
        warnings: warnings.into_vec(),
    })
}

fn service_labels(service: &ServiceName) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".into(), service.to_string()),
        ("app.kubernetes.io/managed-by".into(), "ten".into()),
        ("ten.dev/service".into(), service.to_string()),
    ])
}

/// A document of `kind` from a typed object.
pub(crate) fn document(kind: &str, name: &str, object: &impl Serialize) -> Document {
    let value = serde_json::to_value(object).unwrap_or_default();
    Document {
        file: format!("{}-{name}.yaml", kind.to_ascii_lowercase()),
        kind: kind.to_string(),
        name: name.to_string(),
        text: yaml::to_yaml(&value),
        value,
    }
}

/// The Secret (when any env value looks secret), StatefulSet and Service of one instance.
fn instance_documents(
    target: &Target<'_>,
    spec: &InstanceSpec,
    warnings: &mut Warnings,
) -> Vec<Document> {
    let name = instance_name(spec);
    let mut documents = Vec::new();
    let (container, secret) = container(target, spec, false, warnings);
    if let Some(secret) = secret {
        documents.push(document("Secret", &secret_name(spec), &secret));
    }
    let mut pod_labels = labels(spec);
    if spec.listen == Listen::Port && spec.weight > 0 {
        pod_labels.insert(WEIGHTED.into(), "true".into());
    }
    let set = StatefulSet {
        metadata: target.metadata(&name, labels(spec)),
        spec: Some(StatefulSetSpec {
            replicas: Some(i32::from(spec.state == RunState::Running)),
            selector: LabelSelector {
                match_labels: Some(selector(spec)),
                ..LabelSelector::default()
            },
            service_name: serves(spec).then(|| name.clone()),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod_spec(spec, container, true)),
            },
            volume_claim_templates: Some(vec![claim(target, spec, "data")]),
            persistent_volume_claim_retention_policy: Some(
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    // storage_persist = false: the data goes with the instance, as in ten.
                    when_deleted: Some(
                        if spec.storage_persist {
                            "Retain"
                        } else {
                            "Delete"
                        }
                        .into(),
                    ),
                    when_scaled: Some("Retain".into()),
                },
            ),
            ..StatefulSetSpec::default()
        }),
        ..StatefulSet::default()
    };
    documents.push(document("StatefulSet", &name, &set));
    if spec.listen == Listen::Port {
        let service = Service {
            metadata: target.metadata(&name, labels(spec)),
            spec: Some(service_spec(selector(spec))),
            ..Service::default()
        };
        documents.push(document("Service", &name, &service));
    }
    documents
}

fn service_spec(selector: BTreeMap<String, String>) -> ServiceSpec {
    ServiceSpec {
        selector: Some(selector),
        ports: Some(vec![ServicePort {
            name: Some("http".into()),
            port: SERVICE_PORT,
            target_port: Some(IntOrString::String("http".into())),
            ..ServicePort::default()
        }]),
        ..ServiceSpec::default()
    }
}

/// Warnings about the keys of a service (the same for each of its instances).
fn service_warnings(target: &Target<'_>, spec: &InstanceSpec, warnings: &mut Warnings) {
    let subject = format!("service.{}", spec.key.service);
    let mut add = |key: &str, reason: &str| warnings.add(&subject, key, reason);
    match spec.isolation {
        Isolation::Sandbox => add(
            "isolation",
            "runtimeClassName: gvisor is set: it needs a cluster with gVisor and a RuntimeClass named gvisor",
        ),
        Isolation::Namespace => add(
            "isolation",
            "\"namespace\" has no meaning there: every pod has namespaces of its own",
        ),
        Isolation::Process => {}
    }
    if spec.listen == Listen::Socket {
        add(
            "listen",
            "a Service needs a TCP port: no Service or Ingress is exported; make the app listen on $PORT",
        );
    }
    if spec.pids_limit.is_some() {
        add(
            "pids_limit",
            "a pod has no pids limit of its own (the kubelet's podPidsLimit is per node)",
        );
    }
    if let Some(user) = &spec.user
        && user.parse::<i64>().is_err()
    {
        add(
            "user",
            "runAsUser takes a numeric uid: set the user in the image (USER) or give a uid",
        );
    }
    if spec.restart != RestartPolicy::Always {
        add(
            "restart",
            "a StatefulSet's pod is always restarted (restartPolicy: Always)",
        );
    }
    if !spec.log_files.is_empty() {
        add(
            "stdout_log, stderr_log",
            "the cluster keeps the output (kubectl logs); no file is written",
        );
    }
    if spec.request_timeout != std::time::Duration::from_secs(30) {
        add(
            "request_timeout",
            "a timeout of the ingress controller (its own annotation), not of the Ingress API (a Knative Service's timeoutSeconds has it)",
        );
    }
    if spec.stop_order != 0 {
        add("stop_order", "Kubernetes stops pods in no order");
    }
    if sleeps(spec) && !target.options.knative {
        add(
            "idle_timeout, start",
            "a StatefulSet does not sleep when idle: pass --knative for scale to zero",
        );
    }
    if matches!(spec.check, Some(Check::Tcp(TcpPort::Fixed(_)))) && target.options.knative {
        add(
            "health_check",
            "Knative probes only the container's port: a check of another port is refused there",
        );
    }
}

fn rule(host: Option<String>, path: &str, backend: &str) -> IngressRule {
    IngressRule {
        host,
        http: Some(HTTPIngressRuleValue {
            paths: vec![HTTPIngressPath {
                path: Some(path.to_string()),
                path_type: "Prefix".into(),
                backend: IngressBackend {
                    service: Some(IngressServiceBackend {
                        name: backend.to_string(),
                        port: Some(ServiceBackendPort {
                            name: Some("http".into()),
                            number: None,
                        }),
                    }),
                    ..IngressBackend::default()
                },
            }],
        }),
    }
}

fn ingress(
    target: &Target<'_>,
    name: &str,
    labels: BTreeMap<String, String>,
    rules: Vec<IngressRule>,
) -> Document {
    let object = Ingress {
        metadata: target.metadata(name, labels),
        spec: Some(IngressSpec {
            ingress_class_name: target.options.ingress_class.clone(),
            rules: Some(rules),
            ..IngressSpec::default()
        }),
        ..Ingress::default()
    };
    document("Ingress", name, &object)
}

/// `[routing]` (`default`, `subdomain`, `path`) as an Ingress named `ten-routing`.
fn routing_ingress(target: &Target<'_>) -> Option<Document> {
    let routing = &target.desired.config.routing;
    let domain = &target.options.domain;
    let backend = |route: &RouteTarget| match route {
        RouteTarget::Service(service) => object_name(&[service.as_str()]),
        RouteTarget::Instance(key) => object_name(&[key.service.as_str(), key.id.as_str()]),
    };
    let mut rules = Vec::new();
    for (label, route) in &routing.subdomain {
        rules.push(rule(
            Some(format!("{label}.{domain}")),
            "/",
            &backend(route),
        ));
    }
    let mut paths: Vec<HTTPIngressPath> = Vec::new();
    for (prefix, route) in &routing.path {
        let path = format!("/{}", prefix.trim_matches('/'));
        paths.extend(rule(None, &path, &backend(route)).http?.paths);
    }
    if let Some(route) = &routing.default {
        paths.extend(rule(None, "/", &backend(route)).http?.paths);
    }
    if !paths.is_empty() {
        rules.push(IngressRule {
            host: Some(domain.clone()),
            http: Some(HTTPIngressRuleValue { paths }),
        });
    }
    if rules.is_empty() {
        return None;
    }
    let labels = BTreeMap::from([("app.kubernetes.io/managed-by".into(), "ten".into())]);
    Some(ingress(target, "ten-routing", labels, rules))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::shared::test_desired;

    fn options() -> KubernetesOptions {
        KubernetesOptions {
            domain: "example.com".into(),
            ..KubernetesOptions::default()
        }
    }

    fn find<'a>(export: &'a Export, kind: &str, name: &str) -> Option<&'a serde_json::Value> {
        export
            .documents
            .iter()
            .find(|d| d.kind == kind && d.name == name)
            .map(|d| &d.value)
    }

    #[test]
    fn cpu_shares_are_a_cpu_request_and_another_signal_a_pre_stop_hook() {
        let (_dir, desired) = test_desired(
            "[service.api]\ncommand = \"./api\"\ncpu_shares = 2048\nstop_signal = \"QUIT\"\n\n[service.web]\ncommand = \"./web\"\n",
            &[("api/a.toml", ""), ("web/a.toml", "")],
        );
        let export = export(&desired, &options()).unwrap();
        let api = &find(&export, "StatefulSet", "api-a").unwrap()["spec"]["template"]["spec"];
        let container = &api["containers"][0];
        assert_eq!(container["resources"]["requests"]["cpu"], "2000m");
        let hook = container["lifecycle"]["preStop"]["exec"]["command"][2]
            .as_str()
            .unwrap();
        assert!(hook.starts_with("kill -QUIT 1;"), "{hook}");
        let web = &find(&export, "StatefulSet", "web-a").unwrap()["spec"]["template"]["spec"];
        assert!(web["containers"][0].get("lifecycle").is_none());
        assert!(web["containers"][0].get("resources").is_none());
    }

    #[test]
    fn stopped_instances_have_no_replica_and_workers_no_service_or_host() {
        let (_dir, desired) = test_desired(
            "[service.web]\ncommand = \"./web\"\n\n[service.jobs]\ncommand = \"./jobs\"\nlisten = \"none\"\n",
            &[("web/a.toml", "state = \"stopped\""), ("jobs/q.toml", "")],
        );
        let export = export(&desired, &options()).unwrap();
        let web = find(&export, "StatefulSet", "web-a").unwrap();
        assert_eq!(web["spec"]["replicas"], 0);
        assert!(find(&export, "StatefulSet", "jobs-q").is_some());
        assert!(find(&export, "Service", "jobs-q").is_none());
        assert!(find(&export, "Ingress", "jobs").is_none());
        let ingress = find(&export, "Ingress", "web").unwrap();
        assert_eq!(ingress["spec"]["rules"][0]["host"], "a.web.example.com");
    }

    #[test]
    fn a_socket_service_is_exported_without_a_service_and_with_a_warning() {
        let (_dir, desired) = test_desired(
            "[service.web]\ncommand = \"./web\"\nlisten = \"socket\"\n",
            &[("web/a.toml", "")],
        );
        let export = export(&desired, &options()).unwrap();
        assert!(find(&export, "StatefulSet", "web-a").is_some());
        assert!(find(&export, "Service", "web-a").is_none());
        assert!(
            export
                .warnings
                .iter()
                .any(|w| w.key == "listen" && w.subject == "service.web")
        );
    }

    #[test]
    fn kubernetes_variable_references_in_values_are_escaped() {
        let (_dir, desired) = test_desired(
            "[service.web]\ncommand = \"./web $(HOME)\"\n[service.web.env]\nA = \"$(B)\"\n",
            &[("web/a.toml", "")],
        );
        let export = export(&desired, &options()).unwrap();
        let text = &export.documents[0].text;
        assert!(
            text.contains("$$(HOME)") && text.contains("$$(B)"),
            "{text}"
        );
    }
}
