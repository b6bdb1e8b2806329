//! What the Kubernetes and the Nomad export share: object names, the secret split of env, the
//! hostnames of an instance and a service, and the warnings about keys neither can map. Pure.

use std::collections::BTreeMap;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::config::{Config, Listen, RunState, StartMode};
use crate::desired::fields::is_sensitive;
use crate::desired::{DesiredState, InstanceSpec};
use crate::names::ServiceName;

use super::Warnings;

/// A DNS-1035 label (what Kubernetes wants of a Service's name, and Nomad of a job's, for
/// Consul) from `parts` joined with `-`: when too long or not starting with a letter, a
/// prefix and a hash of the whole keep it valid and distinct.
pub(crate) fn object_name(parts: &[&str]) -> String {
    let joined = parts.join("-");
    let starts_with_letter = joined.starts_with(|c: char| c.is_ascii_lowercase());
    if joined.len() <= 63 && starts_with_letter {
        return joined;
    }
    let digest = Sha256::digest(joined.as_bytes());
    let hash: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    let prefix = if starts_with_letter { "" } else { "t-" };
    let room = 63 - prefix.len() - 1 - hash.len();
    let head: String = joined.chars().take(room).collect();
    let head = head.trim_end_matches('-');
    format!("{prefix}{head}-{hash}")
}

/// An instance's env split in two: plain values, and those the plan masks (`*KEY*`,
/// `*TOKEN*`, ...), which go to a secret store, never inline. Values come through `value`
/// (which fills `{port}` and maps paths).
pub(crate) struct EnvSplit {
    pub plain: BTreeMap<String, String>,
    pub secret: BTreeMap<String, String>,
}

pub(crate) fn split_env(spec: &InstanceSpec, value: impl Fn(&str) -> String) -> EnvSplit {
    let mut split = EnvSplit {
        plain: BTreeMap::new(),
        secret: BTreeMap::new(),
    };
    for (name, template) in &spec.env {
        let text = value(&template.fill_port(PORT_MARK));
        if is_sensitive(&format!("env.{name}")) {
            split.secret.insert(name.clone(), text);
        } else {
            split.plain.insert(name.clone(), text);
        }
    }
    split
}

/// Where `{port}` was, until the target says what stands there.
pub(crate) const PORT_MARK: &str = "\u{0}PORT\u{0}";

/// Whether requests reach the instance (it listens on a port or a socket).
pub(crate) fn serves(spec: &InstanceSpec) -> bool {
    spec.listen != Listen::None
}

/// `ID.SERVICE.DOMAIN`.
pub(crate) fn instance_host(spec: &InstanceSpec, domain: &str) -> String {
    format!("{}.{}.{domain}", spec.key.id, spec.key.service)
}

/// `SERVICE.DOMAIN`.
pub(crate) fn service_host(service: &ServiceName, domain: &str) -> String {
    format!("{service}.{domain}")
}

/// The instances of each service, in key order.
pub(crate) fn by_service(desired: &DesiredState) -> BTreeMap<&ServiceName, Vec<&InstanceSpec>> {
    let mut services: BTreeMap<&ServiceName, Vec<&InstanceSpec>> = BTreeMap::new();
    for (key, spec) in &desired.instances {
        services.entry(&key.service).or_default().push(spec);
    }
    services
}

/// Whether the instance sleeps when idle or until its first request.
pub(crate) fn sleeps(spec: &InstanceSpec) -> bool {
    serves(spec) && (spec.idle_timeout > Duration::ZERO || spec.start == StartMode::OnDemand)
}

/// Whole seconds, at least `min`.
pub(crate) fn seconds(duration: Duration, min: u64) -> u64 {
    duration.as_secs().max(min)
}

/// A warning when the serving instances of a service have unequal non-zero weights: both
/// targets balance evenly across the instances that take service-wide traffic.
pub(crate) fn weight_warning(
    service: &ServiceName,
    instances: &[&InstanceSpec],
    how: &str,
    warnings: &mut Warnings,
) {
    let running = |spec: &&&InstanceSpec| serves(spec) && spec.state == RunState::Running;
    let weights: Vec<String> = instances
        .iter()
        .filter(running)
        .map(|spec| format!("{}={}", spec.key.id, spec.weight))
        .collect();
    let nonzero: BTreeMap<u8, ()> = instances
        .iter()
        .filter(|spec| running(spec) && spec.weight > 0)
        .map(|spec| (spec.weight, ()))
        .collect();
    if nonzero.len() > 1 {
        warnings.add(
            format!("service.{service}"),
            "weight",
            format!(
                "weights {} become an even split across the instances with a weight above 0: {how}",
                weights.join(", ")
            ),
        );
    }
}

/// Warnings about the settings that belong to ten's server, not to a tenant.
pub(crate) fn settings_warnings(config: &Config, warnings: &mut Warnings) {
    let settings = &config.settings;
    if settings.memory_target.is_some() || settings.memory_limit_total.is_some() {
        warnings.add(
            "settings",
            "memory_target, memory_limit_total",
            "the scheduler places tenants by their requests; a budget of the whole is a quota of the cluster (a ResourceQuota, a Nomad quota), not exported",
        );
    }
    if settings.tls.enabled {
        warnings.add(
            "settings",
            "tls",
            "certificates are the cluster's to order (cert-manager, Traefik's ACME resolver); not exported",
        );
    }
}

/// A desired state from a tenement.toml and instance files (`("notes/alice.toml", "")`), for
/// the builders' unit tests. The directory is kept until the test ends.
#[cfg(test)]
pub(crate) fn test_desired(
    config: &str,
    instances: &[(&str, &str)],
) -> (tempfile::TempDir, DesiredState) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tenement.toml"), config).unwrap();
    for (path, text) in instances {
        let path = dir.path().join("instances").join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let loaded = crate::desired::load(&dir.path().join("tenement.toml"));
    let messages: Vec<&str> = loaded
        .diagnostics
        .iter()
        .map(|d| d.message.as_str())
        .collect();
    let desired = loaded
        .desired
        .unwrap_or_else(|| panic!("invalid test config: {messages:?}"));
    (dir, desired)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_are_dns_1035_labels() {
        assert_eq!(object_name(&["notes", "alice"]), "notes-alice");
        let digit = object_name(&["7up", "a"]);
        assert!(digit.starts_with("t-7up-a-"), "{digit}");
        let long = "a".repeat(60);
        let name = object_name(&[&long, "bob"]);
        assert!(name.len() <= 63, "{name}");
        assert_ne!(name, object_name(&[&long, "bib"]));
        for name in [digit, name] {
            crate::names::check_label(&name).unwrap();
        }
    }
}
