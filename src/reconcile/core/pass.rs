//! A pass: a reload taken in (a valid desired state replaces the last; problems are told),
//! desired planned against observed, whole or only for the instances that changed, and the
//! declared changes executed or held. Must not touch a file, a process or a clock, or import
//! tokio beyond its `Instant`.

use std::collections::BTreeSet;
use std::sync::Arc;

use tokio::time::Instant;

use crate::config::{Diagnostic, has_errors};
use crate::desired::{Reload, keep_undeclared, share_unchanged};
use crate::names::InstanceKey;
use crate::plan::{Action, Change, Plan, ReasonKind, Shown, plan_key, plan_showing, plan_token};

use super::{Core, Effect, Note, note, note_of};

/// From this many instances created in one pass on, the tables are rebuilt after it
/// ([`Core::compact`]).
pub(super) const COMPACT_FROM_CREATES: usize = 256;

impl Core {
    /// A pass: plan, then execute what the files ask for, or hold it.
    pub(super) fn pass(&mut self, now: Instant, effects: &mut Vec<Effect>) {
        let span = tracing::info_span!("reconcile", generation = self.observed.generation);
        let _enter = span.enter();
        self.passes += 1;
        self.last_pass = Some(now);
        self.pass_due = false;
        self.narrow.clear();
        let plan = self.planned(Shown::Bare);
        // What the last ten ran, as the files still declare it, starts again whatever holds
        // the rest: a restart is no change.
        let restorable = std::mem::take(&mut self.restorable);
        let (restores, declared): (Vec<&Change>, Vec<&Change>) = plan
            .changes
            .iter()
            .filter(|change| change.reason.kind == ReasonKind::Declared)
            .partition(|change| self.restores(change, &restorable));
        let held = if declared.is_empty() {
            None
        } else {
            self.hold_reason(&declared)
        };
        if held != self.held {
            if let Some(reason) = &held {
                effects.push(Effect::Record(Note {
                    warning: true,
                    ..note_of(None, "held", reason.clone())
                }));
            }
            self.held = held;
            // Held, what the last pass routed stays routed (the held destroys keep running);
            // a reload of other files marks the routes too.
            self.routes_dirty = true;
        }
        if self.held.is_some() {
            for change in &restores {
                self.execute(change, now, effects);
            }
            return;
        }
        self.applied = Arc::clone(&self.desired);
        // In the plan's order, the restores among them.
        let declared: Vec<&Change> = plan
            .changes
            .iter()
            .filter(|change| change.reason.kind == ReasonKind::Declared)
            .collect();
        for change in &declared {
            self.execute(change, now, effects);
        }
        let created = declared
            .iter()
            .filter(|change| change.action == Action::Create)
            .count();
        if created >= COMPACT_FROM_CREATES {
            self.compact();
        }
    }

    /// Whether `change` starts again an instance the last ten ran with the spec the files
    /// declare now (`restorable`: what it had, and the spec each last ran with).
    fn restores(
        &self,
        change: &Change,
        restorable: &std::collections::BTreeMap<InstanceKey, Arc<crate::desired::FieldMap>>,
    ) -> bool {
        change.action == Action::Create
            && change.target.instance().is_some_and(|key| {
                restorable.get(key).is_some_and(|fields| {
                    self.desired
                        .instances
                        .get(key)
                        .is_some_and(|spec| *spec.fields() == **fields)
                })
            })
    }

    /// Rebuilds the per-instance tables in bulk. Filled one key at a time in key order (as a
    /// pass creates), a B-tree's nodes stay half empty; built at once, they are full: with
    /// 10,000 instances, about 150 bytes less each.
    pub(super) fn compact(&mut self) {
        self.observed.instances = std::mem::take(&mut self.observed.instances)
            .into_iter()
            .collect();
        self.tasks = std::mem::take(&mut self.tasks).into_iter().collect();
    }

    /// Plans the instances whose phase changed alone, at once: a whole pass (throttled) is
    /// due only when one of them has a declared change, so a wake or a restart costs a plan
    /// of one instance, not of every declared one. The whole plan's other changes are the same
    /// as at the last pass, which executed what it could (each instance is planned from its own
    /// spec and observed state); a held plan, or files with errors, always get a whole pass.
    pub(super) fn narrow_pass(&mut self) {
        if self.narrow.is_empty() || self.pass_due {
            return;
        }
        let narrow = std::mem::take(&mut self.narrow);
        if self.held.is_some() || self.invalid {
            self.pass_due = true;
            return;
        }
        let mut drift = Vec::new();
        self.pass_due = narrow.iter().any(|key| {
            plan_key(&self.desired, &self.observed, key, Shown::Bare, &mut drift)
                .is_some_and(|change| change.reason.kind == ReasonKind::Declared)
        });
    }

    /// The plan of desired against observed. While the files have errors, the planner does
    /// not see the instances that run but are not declared: an invalid desired state never
    /// removes one (after a reload they are kept by [`keep_undeclared`]; this covers a ten
    /// that started on broken files, when the last valid declaration is not known).
    pub(super) fn planned(&self, shown: Shown) -> Plan {
        let declared = |key: &InstanceKey| self.desired.instances.contains_key(key);
        if self.invalid && self.observed.instances.keys().any(|key| !declared(key)) {
            let mut observed = self.observed.clone();
            observed.instances.retain(|key, _| declared(key));
            return plan_showing(&self.desired, &observed, shown);
        }
        plan_showing(&self.desired, &self.observed, shown)
    }

    /// Why the `declared` changes of this pass wait for a human, if they do.
    fn hold_reason(&self, declared: &[&Change]) -> Option<String> {
        let settings = &self.desired.config.settings;
        if !settings.auto_apply {
            return Some(format!(
                "auto_apply = false: {} wait{} for `ten apply`",
                crate::render::counted(declared.len(), "change"),
                if declared.len() == 1 { "s" } else { "" }
            ));
        }
        let destroys = declared
            .iter()
            .filter(|c| c.action == Action::Destroy)
            .count();
        let total = self.observed.instances.len().max(1);
        let percent = destroys * 100 / total;
        if destroys > 1 && percent > usize::from(settings.max_destroy_percent) {
            return Some(format!(
                "the files now declare {destroys} fewer instances ({percent}% of {total}), more than max_destroy_percent = {}; \
                 if that is intended, run `ten apply` (plan token {})",
                settings.max_destroy_percent,
                plan_token(&self.desired, &self.observed)
            ));
        }
        None
    }

    /// Takes in a reload: a valid desired state replaces the last; problems are told.
    pub(super) fn reloaded(&mut self, loaded: Reload, effects: &mut Vec<Effect>) {
        let was_invalid = self.invalid;
        self.invalid = has_errors(&loaded.diagnostics);
        let mut frozen: BTreeSet<InstanceKey> = loaded.frozen.into_iter().collect();
        let mut next = loaded.desired;
        // The planner's input: only a valid desired state removes an instance.
        if self.invalid
            && let Some(next) = &mut next
        {
            frozen.extend(keep_undeclared(&self.desired, next));
        }
        self.frozen = frozen.into_iter().collect();
        self.files = Arc::new(loaded.files);
        self.diagnostics = loaded.diagnostics;
        let errors: Vec<&Diagnostic> = self.diagnostics.iter().filter(|d| d.is_error()).collect();
        match (errors.first(), was_invalid) {
            (Some(first), _) => {
                let scope = if next.is_some() {
                    format!(
                        "{} instance(s) keep their last valid declaration",
                        self.frozen.len()
                    )
                } else {
                    "keeping the last valid desired state; no tenant is touched".to_string()
                };
                for diagnostic in &errors {
                    tracing::warn!("{}: {}", diagnostic.location(), diagnostic.message);
                }
                let message = format!(
                    "{} problem(s) in the files ({scope}); first: {}: {}",
                    errors.len(),
                    first.location(),
                    first.message
                );
                effects.push(Effect::Record(Note {
                    warning: true,
                    ..note_of(None, "config", message)
                }));
            }
            (None, true) => effects.push(note(None, "config", "the files are valid again".into())),
            (None, false) => {}
        }
        if let Some(mut desired) = next {
            share_unchanged(&self.desired, &mut desired);
            self.desired = Arc::new(desired);
            self.routes_dirty = true;
        }
    }
}
