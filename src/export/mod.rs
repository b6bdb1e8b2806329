//! `ten export`: the desired state as another engine's files, so tenants that outgrow one
//! machine move to Kubernetes (`kubernetes`, `knative`) or Nomad (`nomad`, `hcl`) without
//! rewriting what they declared.
//!
//! Pure: functions from a `&DesiredState` and options to documents and warnings (what could
//! not be mapped, with the reason). The CLI reads the files and writes the output. The output
//! is deterministic (instances, keys and warnings in a stable order, no timestamps), so
//! exports diff cleanly in git. Must not import tokio, nix, hyper or notify, nor read files.

mod hcl;
mod jobspec;
mod knative;
pub mod kubernetes;
pub mod nomad;
mod pod;
mod shared;
pub mod yaml;

use std::collections::BTreeSet;

use serde::Serialize;

pub use knative::{DomainMapping, KnativeService};

/// One file of an export.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Document {
    /// The file name it is written to under `--out DIR`.
    pub file: String,
    /// `StatefulSet`, `Service`, ..., `Job`.
    pub kind: String,
    /// The object's name.
    pub name: String,
    /// The object as a JSON value (for Nomad, the jobspec JSON of the API).
    pub value: serde_json::Value,
    /// The file's text: YAML for Kubernetes, HCL or JSON for Nomad.
    #[serde(skip)]
    pub text: String,
}

/// Something declared that the target cannot do as ten does.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Warning {
    /// `service.notes`, `notes:alice`, `settings`, `routing` or `export`.
    pub subject: String,
    /// The key that is not mapped (or mapped approximately).
    pub key: String,
    /// Why, and what to do about it.
    pub reason: String,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}: {}", self.subject, self.key, self.reason)
    }
}

/// The documents, in output order, and the warnings, ordered and without duplicates.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Export {
    pub documents: Vec<Document>,
    pub warnings: Vec<Warning>,
}

/// Warnings as they are found; the same warning twice is kept once.
#[derive(Debug, Default)]
pub(crate) struct Warnings(BTreeSet<Warning>);

impl Warnings {
    pub(crate) fn add(
        &mut self,
        subject: impl Into<String>,
        key: impl Into<String>,
        reason: impl Into<String>,
    ) {
        self.0.insert(Warning {
            subject: subject.into(),
            key: key.into(),
            reason: reason.into(),
        });
    }

    pub(crate) fn into_vec(self) -> Vec<Warning> {
        self.0.into_iter().collect()
    }
}

/// An option that cannot be honoured.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExportError {
    #[error("--{option} {value:?} {reason}")]
    InvalidOption {
        option: &'static str,
        value: String,
        reason: String,
    },
}

impl ExportError {
    /// What to do about it.
    pub fn hint(&self) -> String {
        match self {
            ExportError::InvalidOption { option, .. } => match *option {
                "namespace" => "a namespace is a DNS label: lowercase letters, digits and '-', e.g. --namespace tenants".into(),
                "image" => "give --image IMAGE for every service, or --image SERVICE=IMAGE for a service of tenement.toml".into(),
                "domain" => "give the domain the hostnames end in, e.g. --domain example.com".into(),
                "datacenter" => "name a datacenter of your Nomad cluster, e.g. --datacenter dc1".into(),
                other => format!("see `ten export --help` for --{other}"),
            },
        }
    }
}

/// Checks a DNS name (`--domain`): labels of 1-63 lowercase letters, digits or '-'.
pub(crate) fn check_domain(option: &'static str, domain: &str) -> Result<(), ExportError> {
    let invalid = |reason: String| ExportError::InvalidOption {
        option,
        value: domain.to_string(),
        reason,
    };
    if domain.is_empty() || domain.len() > 253 {
        return Err(invalid("is not a DNS name (1-253 characters)".into()));
    }
    for label in domain.split('.') {
        crate::names::check_label(label)
            .map_err(|error| invalid(format!("has a label {label:?} that {error}")))?;
    }
    Ok(())
}
