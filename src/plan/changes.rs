//! The change of one instance, planned from its own spec and observed state alone (create,
//! destroy, replace, update, start, stop, drift); the field diffs and the reasons' texts, shared
//! with the settings' change. Pure: must not import tokio, nix, hyper or notify.

use std::cmp::Ordering;

use crate::config::{RunState, StartMode};
use crate::desired::fields::{self, Effect, FieldMap, FieldValue};
use crate::desired::{DesiredState, InstanceSpec};
use crate::names::InstanceKey;
use crate::observed::{ObservedInstance, ObservedState, Phase};

use super::{
    Action, Change, Drift, FieldChange, FieldChangeKind, Reason, ReasonKind, Shown, Target,
};

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

pub(super) fn declared(message: String) -> Reason {
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
        Some(file) => format!("because {} declares it", file.display()),
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
pub(super) fn list_paths<'a>(fields: impl IntoIterator<Item = &'a FieldChange>) -> String {
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
