//! `ten export kubernetes --knative`: an instance that sleeps (`idle_timeout`, `start =
//! "on-demand"`) as a Knative Service that scales to zero (`min-scale: "0"`, at most one pod,
//! `scale-down-delay` from `idle_timeout`; an on-demand one starts with none, `initial-scale:
//! "0"`) and a DomainMapping for `ID.SERVICE.DOMAIN`: the same sleep and wake as ten's. Its data directory is a PersistentVolumeClaim of its own.
//!
//! Knative's types are not in k8s-openapi: the small structs here mirror the documented API
//! (`serving.knative.dev/v1` Service, `v1beta1` DomainMapping) with k8s-openapi's
//! `ObjectMeta`, `Container` and `Volume` inside, and refuse unknown fields. Pure.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, PersistentVolumeClaimVolumeSource, PodSecurityContext, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

use crate::config::StartMode;
use crate::desired::InstanceSpec;

use super::kubernetes::{Target, document, instance_name, labels};
use super::pod::{claim, container, pod_spec};
use super::shared::{instance_host, object_name, seconds};
use super::{Document, Warnings};

pub(crate) const KNATIVE_SERVICE_API: &str = "serving.knative.dev/v1";
pub(crate) const DOMAIN_MAPPING_API: &str = "serving.knative.dev/v1beta1";

/// Knative's longest scale-down delay unless its `max-scale-down-delay` is raised.
const MAX_SCALE_DOWN_DELAY_SECONDS: u64 = 3600;

/// `serving.knative.dev/v1` `Service`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KnativeService {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: KnativeServiceSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KnativeServiceSpec {
    pub template: RevisionTemplate,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RevisionTemplate {
    pub metadata: ObjectMeta,
    pub spec: RevisionSpec,
}

/// The part of a pod's spec Knative takes (it refuses the rest), and the request timeout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RevisionSpec {
    pub containers: Vec<Container>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<Vec<Volume>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_class_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<PodSecurityContext>,
    /// `request_timeout`: how long a request may take to be answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<i64>,
}

/// `serving.knative.dev/v1beta1` `DomainMapping`: a hostname to a Knative Service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DomainMapping {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: DomainMappingSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DomainMappingSpec {
    #[serde(rename = "ref")]
    pub reference: KReference,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KReference {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// The claim, Secret, Knative Service and DomainMapping of one instance that sleeps.
pub(crate) fn instance(
    target: &Target<'_>,
    spec: &InstanceSpec,
    warnings: &mut Warnings,
) -> Vec<Document> {
    let name = instance_name(spec);
    let subject = format!("service.{}", spec.key.service);
    let mut documents = Vec::new();
    let (container, secret) = container(target, spec, true, warnings);
    if let Some(secret) = secret {
        let secret_name = secret.metadata.name.clone().unwrap_or_default();
        documents.push(document("Secret", &secret_name, &secret));
    }
    let claim_name = object_name(&[spec.key.service.as_str(), spec.key.id.as_str(), "data"]);
    documents.push(document(
        "PersistentVolumeClaim",
        &claim_name,
        &claim(target, spec, &claim_name),
    ));
    warnings.add(
        &subject,
        "storage",
        "a Knative Service mounts its claim only with the features kubernetes.podspec-persistent-volume-claim and -write enabled (config-features)",
    );
    let pod = pod_spec(spec, container, false);
    if pod.runtime_class_name.is_some() {
        warnings.add(
            &subject,
            "isolation",
            "Knative passes runtimeClassName on only with the feature kubernetes.podspec-runtimeclassname enabled (config-features)",
        );
    }
    if pod.security_context.is_some() {
        warnings.add(
            &subject,
            "user",
            "Knative passes a pod's securityContext on only with the feature kubernetes.podspec-securitycontext enabled (config-features)",
        );
    }
    let revision = RevisionSpec {
        containers: pod.containers,
        volumes: Some(vec![Volume {
            name: "data".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name,
                read_only: None,
            }),
            ..Volume::default()
        }]),
        runtime_class_name: pod.runtime_class_name,
        security_context: pod.security_context,
        timeout_seconds: Some(seconds(spec.request_timeout, 1) as i64),
    };
    let idle = seconds(spec.idle_timeout, 0);
    if idle > MAX_SCALE_DOWN_DELAY_SECONDS {
        warnings.add(
            &subject,
            "idle_timeout",
            "Knative refuses a scale-down-delay above 1h unless max-scale-down-delay is raised (config-autoscaler)",
        );
    }
    let mut annotations = BTreeMap::from([
        ("autoscaling.knative.dev/min-scale".into(), "0".into()),
        ("autoscaling.knative.dev/max-scale".into(), "1".into()),
    ]);
    if idle > 0 {
        annotations.insert(
            "autoscaling.knative.dev/scale-down-delay".into(),
            format!("{idle}s"),
        );
    }
    // Asleep from birth, as ten keeps an on-demand instance: no pod until the first request
    // (Knative's default starts one, then scales it down).
    if spec.start == StartMode::OnDemand {
        annotations.insert("autoscaling.knative.dev/initial-scale".into(), "0".into());
        warnings.add(
            &subject,
            "start",
            "Knative accepts initial-scale 0 (no pod until the first request, as ten's on-demand start) only with allow-zero-initial-scale: \"true\" (config-autoscaler)",
        );
    }
    let service = KnativeService {
        api_version: KNATIVE_SERVICE_API.into(),
        kind: "Service".into(),
        metadata: target.metadata(&name, labels(spec)),
        spec: KnativeServiceSpec {
            template: RevisionTemplate {
                metadata: ObjectMeta {
                    labels: Some(labels(spec)),
                    annotations: Some(annotations),
                    ..ObjectMeta::default()
                },
                spec: revision,
            },
        },
    };
    documents.push(document("Service", &name, &service));
    if let Some(document) = documents.last_mut() {
        document.file = format!("ksvc-{name}.yaml");
    }
    let host = instance_host(spec, &target.options.domain);
    let mapping = DomainMapping {
        api_version: DOMAIN_MAPPING_API.into(),
        kind: "DomainMapping".into(),
        metadata: target.metadata(&host, labels(spec)),
        spec: DomainMappingSpec {
            reference: KReference {
                api_version: KNATIVE_SERVICE_API.into(),
                kind: "Service".into(),
                name,
                namespace: None,
            },
        },
    };
    documents.push(document("DomainMapping", &host, &mapping));
    if spec.weight > 0 {
        warnings.add(
            &subject,
            "weight",
            "SERVICE.DOMAIN does not reach an instance exported as a Knative Service (a DomainMapping names one Service); map the hostname to one of them",
        );
    }
    documents
}
