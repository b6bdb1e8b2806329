//! Which declared instances a command means: `SERVICE:ID`, `SERVICE` (all its instances),
//! `group:NAME` (all instances of the group's services) or all of them. Pure.
//!
//! `group:NAME` names a group; only when no group is declared and a service is named `group`
//! (validation refuses groups next to such a service) is it that service's instance.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::config::parse::unknown_service_hint;
use crate::config::reader::did_you_mean;
use crate::names::{
    GroupName, InstanceId, InstanceKey, KeyError, NAME_RULE, NameError, ServiceName,
};

use super::DesiredState;

/// What a bulk command selects. On the wire: `"all"`, `{"service": "web"}`,
/// `{"group": "web"}`, `{"instance": "web:1"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Selector {
    All,
    Service(ServiceName),
    Group(GroupName),
    Instance(InstanceKey),
}

/// Why a command-line selector is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error("invalid group name {text:?}: it {error}; {NAME_RULE}")]
    Group { text: String, error: NameError },
    #[error("invalid service name {text:?}: it {error}; {NAME_RULE}")]
    Service { text: String, error: NameError },
    #[error(transparent)]
    Key(#[from] KeyError),
}

impl Selector {
    /// As typed: `group:NAME`, `SERVICE:ID` or `SERVICE` (`--all` is a flag, not a word, so
    /// a service may be called `all`).
    pub fn parse(text: &str) -> Result<Selector, SelectorError> {
        if let Some(name) = text.strip_prefix("group:") {
            return GroupName::new(name).map(Selector::Group).map_err(|error| {
                SelectorError::Group {
                    text: name.to_string(),
                    error,
                }
            });
        }
        if text.contains(':') {
            return Ok(Selector::Instance(InstanceKey::parse(text)?));
        }
        ServiceName::new(text)
            .map(Selector::Service)
            .map_err(|error| SelectorError::Service {
                text: text.to_string(),
                error,
            })
    }
}

impl std::str::FromStr for Selector {
    type Err = SelectorError;
    fn from_str(text: &str) -> Result<Self, SelectorError> {
        Self::parse(text)
    }
}

impl fmt::Display for Selector {
    /// As typed (`--all` for all).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selector::All => f.write_str("--all"),
            Selector::Service(service) => write!(f, "{service}"),
            Selector::Group(group) => write!(f, "group:{group}"),
            Selector::Instance(key) => write!(f, "{key}"),
        }
    }
}

/// Why a selector selects nothing that exists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    #[error("service `{name}` is not declared")]
    UnknownService { name: ServiceName, hint: String },
    #[error("group `{name}` is not declared")]
    UnknownGroup { name: GroupName, hint: String },
    /// With a declared instance of its service whose id is one edit away (a typo).
    #[error("{key} is not declared")]
    NotDeclared {
        key: InstanceKey,
        close: Option<InstanceKey>,
    },
}

impl SelectError {
    /// What to do about it.
    pub fn hint(&self) -> String {
        match self {
            SelectError::UnknownService { hint, .. } | SelectError::UnknownGroup { hint, .. } => {
                hint.clone()
            }
            SelectError::NotDeclared {
                close: Some(close),
                key,
            } => format!("did you mean `{close}`? (`ten spawn {key}` declares a new one)"),
            SelectError::NotDeclared { key, close: None } => {
                format!("declare it with `ten spawn {key}`")
            }
        }
    }
}

/// A selector checked against a config: which instance keys it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    All,
    Services(BTreeSet<ServiceName>),
    Instance(InstanceKey),
}

impl Selection {
    /// Whether `key` (declared or not) is selected.
    pub fn contains(&self, key: &InstanceKey) -> bool {
        match self {
            Selection::All => true,
            Selection::Services(services) => services.contains(&key.service),
            Selection::Instance(selected) => selected == key,
        }
    }
}

/// What `selector` covers in `config`; an unknown service or group is an error (with a
/// "did you mean").
pub fn resolve(config: &Config, selector: &Selector) -> Result<Selection, SelectError> {
    match selector {
        Selector::All => Ok(Selection::All),
        Selector::Service(name) if config.services.contains_key(name) => {
            Ok(Selection::Services(BTreeSet::from([name.clone()])))
        }
        Selector::Service(name) => {
            let declared: BTreeSet<ServiceName> = config.services.keys().cloned().collect();
            Err(SelectError::UnknownService {
                name: name.clone(),
                hint: unknown_service_hint(name.as_str(), &declared),
            })
        }
        Selector::Group(name) => match config.groups.get(name) {
            Some(services) => Ok(Selection::Services(services.iter().cloned().collect())),
            None => match group_service_instance(config, name) {
                Some(key) => Ok(Selection::Instance(key)),
                None => Err(SelectError::UnknownGroup {
                    name: name.clone(),
                    hint: unknown_group_hint(config, name),
                }),
            },
        },
        Selector::Instance(key) => Ok(Selection::Instance(key.clone())),
    }
}

/// The declared instances `selector` means, in key order. A single instance must be
/// declared; a service or group may have none.
pub fn select(
    desired: &DesiredState,
    selector: &Selector,
) -> Result<Vec<InstanceKey>, SelectError> {
    let selection = resolve(&desired.config, selector)?;
    if let Selection::Instance(key) = &selection
        && !desired.instances.contains_key(key)
    {
        return Err(undeclared(desired, key));
    }
    Ok(desired
        .instances
        .keys()
        .filter(|key| selection.contains(key))
        .cloned()
        .collect())
}

/// Why `key`, which `desired` does not declare, is not: its service is not declared (with a
/// "did you mean"), or the instance is not (with one of its service's, if one is a typo away).
pub fn undeclared(desired: &DesiredState, key: &InstanceKey) -> SelectError {
    let config = &desired.config;
    if config.services.contains_key(&key.service) {
        let ids: Vec<&str> = desired
            .instances
            .keys()
            .filter(|declared| declared.service == key.service)
            .map(|declared| declared.id.as_str())
            .collect();
        let close = crate::config::reader::did_you_mean(key.id.as_str(), &ids)
            .and_then(|id| crate::names::InstanceId::new(id).ok())
            .map(|id| InstanceKey::new(key.service.clone(), id));
        return SelectError::NotDeclared {
            key: key.clone(),
            close,
        };
    }
    let declared: BTreeSet<ServiceName> = config.services.keys().cloned().collect();
    SelectError::UnknownService {
        name: key.service.clone(),
        hint: unknown_service_hint(key.service.as_str(), &declared),
    }
}

/// `group:NAME` as an instance of a service named `group`, when no group is declared.
fn group_service_instance(config: &Config, name: &GroupName) -> Option<InstanceKey> {
    let service = ServiceName::new("group").ok()?;
    if !config.groups.is_empty() || !config.services.contains_key(&service) {
        return None;
    }
    let id = InstanceId::new(name.as_str()).ok()?;
    Some(InstanceKey::new(service, id))
}

fn unknown_group_hint(config: &Config, name: &GroupName) -> String {
    let names: Vec<&str> = config.groups.keys().map(GroupName::as_str).collect();
    match did_you_mean(name.as_str(), &names) {
        Some(close) => format!("did you mean `group:{close}`?"),
        None if names.is_empty() => format!(
            "no group is declared; declare one in tenement.toml: [group.{name}] services = [\"...\"]"
        ),
        None => format!(
            "declared groups: {}; or declare [group.{name}] in tenement.toml",
            names.join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::parse_config;
    use crate::desired::resolve as resolve_desired;

    fn desired(text: &str) -> DesiredState {
        let mut diagnostics = Vec::new();
        let parsed = parse_config(Path::new("/p/tenement.toml"), text.into(), &mut diagnostics);
        let config = parsed.config.unwrap_or_else(|| panic!("{diagnostics:?}"));
        resolve_desired(config, &[], &mut diagnostics)
    }

    const CONFIG: &str = r#"
[service.web]
command = "w"
[service.worker]
command = "q"
[service.cron]
command = "c"
[group.backend]
services = ["web", "worker"]
[instances]
web = ["a", "b"]
worker = ["0", "1"]
cron = ["nightly"]
"#;

    fn keys(selected: Vec<InstanceKey>) -> Vec<String> {
        selected.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn selectors_parse_as_typed() {
        assert_eq!(
            Selector::parse("group:backend").unwrap(),
            Selector::Group(GroupName::new("backend").unwrap())
        );
        assert_eq!(
            Selector::parse("web:a").unwrap(),
            Selector::Instance(InstanceKey::parse("web:a").unwrap())
        );
        assert_eq!(
            Selector::parse("web").unwrap(),
            Selector::Service(ServiceName::new("web").unwrap())
        );
        assert!(matches!(
            Selector::parse("group:Bad"),
            Err(SelectorError::Group { .. })
        ));
        assert!(matches!(
            Selector::parse("Web"),
            Err(SelectorError::Service { .. })
        ));
        assert!(matches!(
            Selector::parse("web:"),
            Err(SelectorError::Key(_))
        ));
        for text in ["group:backend", "web:a", "web"] {
            assert_eq!(Selector::parse(text).unwrap().to_string(), text);
        }
    }

    #[test]
    fn selectors_travel_as_tagged_json() {
        let cases = [
            (Selector::All, r#""all""#),
            (Selector::parse("web").unwrap(), r#"{"service":"web"}"#),
            (Selector::parse("group:web").unwrap(), r#"{"group":"web"}"#),
            (Selector::parse("web:a").unwrap(), r#"{"instance":"web:a"}"#),
        ];
        for (selector, json) in cases {
            assert_eq!(serde_json::to_string(&selector).unwrap(), json);
            assert_eq!(serde_json::from_str::<Selector>(json).unwrap(), selector);
        }
        assert!(serde_json::from_str::<Selector>(r#"{"group":"Bad"}"#).is_err());
    }

    #[test]
    fn a_selector_means_declared_instances() {
        let desired = desired(CONFIG);
        let select = |text: &str| keys(select(&desired, &Selector::parse(text).unwrap()).unwrap());
        assert_eq!(
            select("group:backend"),
            ["web:a", "web:b", "worker:0", "worker:1"]
        );
        assert_eq!(select("worker"), ["worker:0", "worker:1"]);
        assert_eq!(select("cron:nightly"), ["cron:nightly"]);
        assert_eq!(
            keys(super::select(&desired, &Selector::All).unwrap()).len(),
            5
        );
    }

    #[test]
    fn unknown_names_say_what_is_declared() {
        let desired = desired(CONFIG);
        let error = |text: &str| select(&desired, &Selector::parse(text).unwrap()).unwrap_err();
        let unknown = error("group:backnd");
        assert_eq!(unknown.to_string(), "group `backnd` is not declared");
        assert_eq!(unknown.hint(), "did you mean `group:backend`?");
        assert_eq!(
            error("group:zzz").hint(),
            "declared groups: backend; or declare [group.zzz] in tenement.toml"
        );
        assert_eq!(error("wrker").hint(), "did you mean `worker`?");
        assert_eq!(
            error("web:c"),
            SelectError::NotDeclared {
                key: InstanceKey::parse("web:c").unwrap(),
                close: None
            }
        );
        // An instance id a typo away from one of its service's.
        let typo = error("cron:nigthly");
        assert_eq!(typo.to_string(), "cron:nigthly is not declared");
        assert_eq!(
            typo.hint(),
            "did you mean `cron:nightly`? (`ten spawn cron:nigthly` declares a new one)"
        );
        assert_eq!(
            error("cron:weekly").hint(),
            "declare it with `ten spawn cron:weekly`"
        );
    }

    #[test]
    fn without_groups_group_colon_may_name_an_instance_of_a_service_group() {
        let desired = desired("[service.group]\ncommand = \"g\"\n[instances]\ngroup = [\"x\"]\n");
        let selected = select(&desired, &Selector::parse("group:x").unwrap()).unwrap();
        assert_eq!(keys(selected), ["group:x"]);
        assert!(matches!(
            select(&desired, &Selector::parse("group:y").unwrap()),
            Err(SelectError::NotDeclared { .. })
        ));
    }
}
