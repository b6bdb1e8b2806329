//! The plan: the ordered list of changes that take observed state to desired state, each with
//! its reason and field changes. A wire type: the server sends it as JSON (`/api/plan`,
//! `ten diff --json`), the CLI renders it.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::desired::FieldValue;
use crate::names::InstanceKey;

/// Version of the plan's JSON form; bumped on incompatible changes.
pub const PLAN_FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub format_version: u32,
    /// Identifies the desired state and observed generation this plan was made from;
    /// `ten apply --check TOKEN` refuses to apply if either changed. Empty in a plan made
    /// bare (`Shown::Bare`: the server's passes), which needs none.
    pub token: String,
    pub generation: u64,
    /// Changes made outside of ten (a tenant that died, a process killed by hand).
    pub drift: Vec<Drift>,
    pub changes: Vec<Change>,
    pub summary: Summary,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Drift {
    pub instance: InstanceKey,
    pub message: String,
}

/// What a change is about: the settings of tenement.toml, or one instance.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    Settings,
    Instance(InstanceKey),
}

impl Target {
    pub fn instance(&self) -> Option<&InstanceKey> {
        match self {
            Target::Settings => None,
            Target::Instance(key) => Some(key),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Settings => f.write_str("settings"),
            Target::Instance(key) => write!(f, "{key}"),
        }
    }
}

/// Serialized as its address: `"settings"` or `"notes:alice"`.
impl Serialize for Target {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Target {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text == "settings" {
            return Ok(Target::Settings);
        }
        InstanceKey::parse(&text)
            .map(Target::Instance)
            .map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// A declared instance with no process: spawn it.
    Create,
    /// A stopped, exited or failed instance that should run: start it.
    Start,
    /// A field that forces a restart changed: restart it with the new spec.
    Replace,
    /// Only fields that apply in place changed.
    Update,
    /// Declared `state = "stopped"`: stop it.
    Stop,
    /// No longer declared: stop it and forget it.
    Destroy,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Start => "start",
            Action::Replace => "replace",
            Action::Update => "update",
            Action::Stop => "stop",
            Action::Destroy => "destroy",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReasonKind {
    /// The files say so.
    Declared,
    /// Something changed outside of ten.
    Drift,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    pub kind: ReasonKind,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub target: Target,
    pub action: Action,
    pub reason: Reason,
    pub fields: Vec<FieldChange>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldChangeKind {
    Add,
    Change,
    Remove,
}

/// One field of a change. Values of sensitive fields are never carried: `before`/`after`
/// are `None` and `sensitive` is true.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldChange {
    pub path: String,
    pub kind: FieldChangeKind,
    pub before: Option<FieldValue>,
    pub after: Option<FieldValue>,
    /// The new value is known only after apply (`port`).
    pub after_unknown: bool,
    pub sensitive: bool,
    pub forces_restart: bool,
}

/// Counts for the `Plan: N to add, N to change, N to replace, N to destroy.` line.
/// `change` counts updates, starts, stops and settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Summary {
    pub add: usize,
    pub change: usize,
    pub replace: usize,
    pub destroy: usize,
}

impl Summary {
    pub fn of(changes: &[Change]) -> Self {
        let mut summary = Summary::default();
        for change in changes {
            match change.action {
                Action::Create => summary.add += 1,
                Action::Replace => summary.replace += 1,
                Action::Destroy => summary.destroy += 1,
                Action::Start | Action::Stop | Action::Update => summary.change += 1,
            }
        }
        summary
    }
}
