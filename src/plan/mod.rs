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

mod changes;
pub(crate) mod model;
mod token;

use std::collections::BTreeSet;

use crate::desired::DesiredState;
use crate::desired::fields::Effect;
use crate::names::InstanceKey;
use crate::observed::ObservedState;

use changes::{declared, list_paths};
pub use changes::{diff_fields, plan_key};
pub use model::{
    Action, Change, Drift, FieldChange, FieldChangeKind, PLAN_FORMAT_VERSION, Plan, Reason,
    ReasonKind, Summary, Target,
};
use token::token;

/// The token of the plan that takes `observed` to `desired`: what `ten apply TOKEN` checks.
pub fn plan_token(desired: &DesiredState, observed: &ObservedState) -> String {
    token(desired, &desired.settings_fields(), observed.generation)
}

/// Computes the plan that takes `observed` to `desired`.
pub fn plan(desired: &DesiredState, observed: &ObservedState) -> Plan {
    plan_showing(desired, observed, Shown::Fields)
}

/// What a plan shows of a create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    /// Every field it is created with, as `ten diff` shows it.
    Fields,
    /// The action and the reason only, and no token: what the server's passes act on. A
    /// create's fields are about 640 bytes; 10,000 of them, freed only after the instances'
    /// tasks were made among them, left the heap in holes that kept ten's memory 6 MB higher.
    /// The token's SHA-256 over every instance's fields was two thirds of the plan of a
    /// resync that found nothing changed; [`plan_token`] gives it when it is needed.
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
        token: match shown {
            Shown::Fields => token(desired, &desired_settings, observed.generation),
            Shown::Bare => String::new(),
        },
        generation: observed.generation,
        summary: Summary::of(&changes),
        drift,
        changes,
    }
}
