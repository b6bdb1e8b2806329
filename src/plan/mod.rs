//! The planner: `plan(&DesiredState, &ObservedState) -> Plan`.
//!
//! PURE and total: no I/O, no clock, cannot fail; the same inputs give the same plan, in a
//! deterministic order. Must not import tokio, nix, hyper or notify.
//!
//! Rules: a declared instance with no process is created; an instance no longer
//! declared is destroyed; a changed field that forces a restart replaces it; fields that apply
//! in place update it; a changed declared state starts or stops it. An instance that starts
//! on demand is created asleep (no process until its first request). Sleeping instances are
//! converged (a changed spec is used at the next wake). Exited and failed instances are drift
//! and are started again.

pub(crate) mod model;

use std::cmp::Ordering;
use std::collections::BTreeSet;

use sha2::{Digest, Sha256};

use crate::config::{RunState, StartMode};
use crate::desired::fields::{self, Effect, FieldMap, FieldValue};
use crate::desired::{DesiredState, InstanceSpec};
use crate::names::InstanceKey;
use crate::observed::{ObservedInstance, ObservedState, Phase};

pub use model::{
    Action, Change, Drift, FieldChange, FieldChangeKind, PLAN_FORMAT_VERSION, Plan, Reason,
    ReasonKind, Summary, Target,
};

/// Computes the plan that takes `observed` to `desired`.
pub fn plan(desired: &DesiredState, observed: &ObservedState) -> Plan {
    plan_showing(desired, observed, Shown::Fields)
}

/// What a plan shows of a create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    /// Every field it is created with, as `ten diff` shows it.
    Fields,
    /// The action and the reason only: what the server's passes act on. A create's fields are
    /// about 640 bytes; 10,000 of them, freed only after the instances' tasks were made
    /// among them, left the heap in holes that kept ten's memory 6 MB higher.
    Bare,
}

/// [`plan`], showing of each create what `shown` says.
pub fn plan_showing(desired: &DesiredState, observed: &ObservedState, shown: Shown) -> Plan {
    let desired_settings = desired.settings_fields();
    let mut changes = Vec::new();
    let mut drift = Vec::new();

    if let Some(applied) = &observed.settings {
        let fields = diff_fields(applied, &desired_settings, |_| Effect::InPlace);
        if !fields.is_empty() {
            changes.push(Change {
                target: Target::Settings,
                action: Action::Update,
                reason: declared(format!(
                    "in place: {} changed in tenement.toml",
                    list_paths(&fields)
                )),
                fields,
            });
        }
    }

    let keys: BTreeSet<&InstanceKey> = desired
        .instances
        .keys()
        .chain(observed.instances.keys())
        .collect();
    for key in keys {
        changes.extend(plan_key(desired, observed, key, shown, &mut drift));
    }
    changes.sort_by(|a, b| (a.action, &a.target).cmp(&(b.action, &b.target)));
    // Settings go first: they are shown (and applied) before instances.
    changes.sort_by_key(|change| change.target != Target::Settings);

    Plan {
        format_version: PLAN_FORMAT_VERSION,
        token: token(desired, &desired_settings, observed.generation),
        generation: observed.generation,
        summary: Summary::of(&changes),
        drift,
        changes,
    }
}

/// The change `plan` would give `key` alone (its drift, if any, goes to `drift`). Each
/// instance is planned from its own spec and observed state only, so a plan of the instances
/// whose observed state changed is the same as the whole plan's changes for them.
pub fn plan_key(
    desired: &DesiredState,
    observed: &ObservedState,
    key: &InstanceKey,
    shown: Shown,
    drift: &mut Vec<Drift>,
) -> Option<Change> {
    match (desired.instances.get(key), observed.instances.get(key)) {
        (Some(spec), None) => plan_new(spec, shown),
        (None, Some(instance)) => Some(plan_destroy(key, instance)),
        (Some(spec), Some(instance)) => plan_existing(spec, instance, drift),
        (None, None) => None,
    }
}

fn declared(message: String) -> Reason {
    Reason {
        kind: ReasonKind::Declared,
        message,
    }
}

fn drifted(message: String) -> Reason {
    Reason {
        kind: ReasonKind::Drift,
        message,
    }
}

/// A declared instance that has never run.
fn plan_new(spec: &InstanceSpec, shown: Shown) -> Option<Change> {
    if spec.state == RunState::Stopped {
        return None;
    }
    let fields = match shown {
        Shown::Fields => created_fields(spec),
        Shown::Bare => Vec::new(),
    };
    let mut message = match &spec.declared.file {
        Some(file) => format!("because {} was added", file.display()),
        None => "because [instances] in tenement.toml lists it".to_string(),
    };
    if spec.start == StartMode::OnDemand {
        message.push_str("; it sleeps until its first request");
    }
    Some(Change {
        target: Target::Instance(spec.key.clone()),
        action: Action::Create,
        reason: declared(message),
        fields,
    })
}

/// The fields a create shows, in display order.
fn created_fields(spec: &InstanceSpec) -> Vec<FieldChange> {
    let mut shown: Vec<(&str, &FieldValue)> = spec
        .fields()
        .iter()
        .filter(|(path, value)| fields::shown_on_create(path, value))
        .collect();
    shown.sort_by(|(a, _), (b, _)| fields::rank(a).cmp(&fields::rank(b)).then_with(|| a.cmp(b)));
    let mut fields: Vec<FieldChange> = shown
        .into_iter()
        .map(|(path, value)| added(path, value))
        .collect();
    // A worker (`listen = "none"`) gets no port.
    if spec.listen != crate::config::Listen::None {
        fields.push(port_known_after_apply());
    }
    fields
}

fn plan_destroy(key: &InstanceKey, instance: &ObservedInstance) -> Change {
    let message = match instance.declared_in.as_deref() {
        Some(place) if place.starts_with("[instances]") => {
            "because it was removed from [instances] in tenement.toml".to_string()
        }
        Some(file) => format!("because {file} was removed"),
        None => "because it is no longer declared".to_string(),
    };
    Change {
        target: Target::Instance(key.clone()),
        action: Action::Destroy,
        reason: declared(message),
        fields: Vec::new(),
    }
}

fn plan_existing(
    spec: &InstanceSpec,
    instance: &ObservedInstance,
    drift: &mut Vec<Drift>,
) -> Option<Change> {
    let key = &spec.key;
    let change = |action, reason, fields| {
        Some(Change {
            target: Target::Instance(key.clone()),
            action,
            reason,
            fields,
        })
    };
    let desired_fields = spec.fields();
    match (spec.state, instance.phase) {
        (RunState::Running, Phase::Running | Phase::Starting | Phase::Backoff) => {
            let fields = diff_fields(&instance.spec, desired_fields, fields::effect);
            let forcing: Vec<&FieldChange> = fields.iter().filter(|f| f.forces_restart).collect();
            if !forcing.is_empty() {
                let message = format!("forces restart: {} changed", list_paths(forcing));
                change(Action::Replace, declared(message), fields)
            } else if !fields.is_empty() {
                let message = format!("in place: {} changed", list_paths(&fields));
                change(Action::Update, declared(message), fields)
            } else {
                None
            }
        }
        (RunState::Running, Phase::Sleeping)
        | (RunState::Stopped, Phase::Stopped | Phase::Stopping) => None,
        // A stop on its way to sleep, a restart or failed is not undone: it was the
        // supervisor's own (idle, unhealthy, over quota), and it ends converged or as drift.
        (RunState::Running, Phase::Stopping)
            if instance
                .heading_for
                .is_some_and(|phase| phase != Phase::Stopped) =>
        {
            None
        }
        (RunState::Running, Phase::Stopped | Phase::Stopping) => {
            let fields = diff_fields(&instance.spec, desired_fields, fields::effect);
            let message = "because its declared state is \"running\"".to_string();
            change(Action::Start, declared(message), fields)
        }
        (RunState::Running, Phase::Exited | Phase::Failed) => {
            let what = gone_message(instance);
            drift.push(Drift {
                instance: key.clone(),
                message: what.clone(),
            });
            let fields = diff_fields(&instance.spec, desired_fields, fields::effect);
            change(Action::Start, drifted(format!("drift: {what}")), fields)
        }
        (RunState::Stopped, _) => {
            let place = spec.declared.describe();
            let message = format!("because state = \"stopped\" in {place}");
            change(Action::Stop, declared(message), Vec::new())
        }
    }
}

/// "process exited with code 1", "process 4242 is gone", "failed after 3 restarts, last
/// killed by signal 9 (SIGKILL)".
fn gone_message(instance: &ObservedInstance) -> String {
    let exit = instance.last_exit.as_ref();
    if instance.phase == Phase::Failed {
        let head = format!("failed after {} restarts", instance.restarts);
        return match (&instance.note, exit) {
            (Some(note), _) => format!("{head}, {note}"),
            (None, Some(exit)) => format!("{head}, last {exit}"),
            (None, None) => head,
        };
    }
    match (&instance.note, exit) {
        (Some(note), _) => note.clone(),
        (None, Some(exit)) => format!("process {exit}"),
        (None, None) => "process not running".to_string(),
    }
}

fn added(path: &str, value: &FieldValue) -> FieldChange {
    let sensitive = fields::is_sensitive(path);
    FieldChange {
        path: path.to_string(),
        kind: FieldChangeKind::Add,
        before: None,
        after: (!sensitive).then(|| value.clone()),
        after_unknown: false,
        sensitive,
        forces_restart: false,
    }
}

/// The fields that differ between `before` and `after`, in display order, secrets masked.
pub fn diff_fields(
    before: &FieldMap,
    after: &FieldMap,
    effect: impl Fn(&str) -> Effect,
) -> Vec<FieldChange> {
    // Both maps are sorted by path: walk them side by side.
    let mut changed: Vec<(&str, Option<&FieldValue>, Option<&FieldValue>)> = Vec::new();
    let mut old = before.iter().peekable();
    let mut new = after.iter().peekable();
    loop {
        let order = match (old.peek(), new.peek()) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some((a, _)), Some((b, _))) => a.cmp(b),
        };
        let (old_entry, new_entry) = match order {
            Ordering::Less => (old.next(), None),
            Ordering::Greater => (None, new.next()),
            Ordering::Equal => (old.next(), new.next()),
        };
        let path = old_entry.or(new_entry).map_or("", |(path, _)| path);
        let (old_value, new_value) = (old_entry.map(|e| e.1), new_entry.map(|e| e.1));
        if old_value != new_value {
            changed.push((path, old_value, new_value));
        }
    }
    changed.sort_by(|a, b| {
        fields::rank(a.0)
            .cmp(&fields::rank(b.0))
            .then_with(|| a.0.cmp(b.0))
    });
    changed
        .into_iter()
        .map(|(path, old, new)| {
            let sensitive = fields::is_sensitive(path);
            let mask = |value: Option<&FieldValue>| if sensitive { None } else { value.cloned() };
            FieldChange {
                path: path.to_string(),
                kind: match (old, new) {
                    (None, _) => FieldChangeKind::Add,
                    (_, None) => FieldChangeKind::Remove,
                    _ => FieldChangeKind::Change,
                },
                before: mask(old),
                after: mask(new),
                after_unknown: false,
                sensitive,
                forces_restart: effect(path) == Effect::ForcesRestart,
            }
        })
        .collect()
}

/// "command, env.A and 2 more".
fn list_paths<'a>(fields: impl IntoIterator<Item = &'a FieldChange>) -> String {
    const SHOWN: usize = 3;
    let paths: Vec<&str> = fields.into_iter().map(|f| f.path.as_str()).collect();
    if paths.len() <= SHOWN {
        return join_and(&paths);
    }
    let mut shown = paths[..SHOWN].join(", ");
    shown.push_str(&format!(" and {} more", paths.len() - SHOWN));
    shown
}

fn join_and(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// Hash of the desired state and the observed generation, as 16 hex digits.
fn token(desired: &DesiredState, settings: &FieldMap, generation: u64) -> String {
    let mut hasher = Sha256::new();
    hasher.update(generation.to_le_bytes());
    hash_fields(&mut hasher, settings);
    for (key, spec) in &desired.instances {
        hasher.update(key.service.as_str().as_bytes());
        hasher.update([b':']);
        hasher.update(key.id.as_str().as_bytes());
        hasher.update([0, spec.state as u8]);
        hash_fields(&mut hasher, spec.fields());
    }
    let digest = hasher.finalize();
    digest[..8]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Feeds a field map to the hasher unambiguously: every part is tagged or length-prefixed.
fn hash_fields(hasher: &mut Sha256, map: &FieldMap) {
    hasher.update((map.len() as u64).to_le_bytes());
    for (path, value) in map {
        hasher.update((path.len() as u64).to_le_bytes());
        hasher.update(path.as_bytes());
        match value {
            FieldValue::Text(text) => {
                hasher.update([b't']);
                hasher.update((text.len() as u64).to_le_bytes());
                hasher.update(text.as_bytes());
            }
            FieldValue::Int(int) => {
                hasher.update([b'i']);
                hasher.update(int.to_le_bytes());
            }
            FieldValue::Negative(int) => {
                hasher.update([b'n']);
                hasher.update(int.to_le_bytes());
            }
            FieldValue::Bool(flag) => hasher.update([b'b', u8::from(*flag)]),
        }
    }
}

/// The port of an instance being created: chosen when it is applied.
fn port_known_after_apply() -> FieldChange {
    FieldChange {
        path: "port".to_string(),
        kind: FieldChangeKind::Add,
        before: None,
        after: None,
        after_unknown: true,
        sensitive: false,
        forces_restart: false,
    }
}
