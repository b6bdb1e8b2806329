//! Executing changes and taking in what the tasks and the last ten say: the core's
//! bookkeeping of the observed state.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::StartMode;
use crate::desired::{FieldValue, InstanceSpec};
use crate::names::InstanceKey;
use crate::observed::{Health, ObservedInstance, Phase};
use crate::plan::{Action, Change, Target};
use crate::supervisor::messages::InstanceStatus;

use super::super::inherit::Inheritance;
use super::{
    Applied, AppliedChange, Core, Effect, Failure, First, Note, Order, PortWish, note, note_of,
};

impl Core {
    /// Executes one change: the effects for the tasks, and the observed state updated at once,
    /// so the next plan sees it.
    pub(super) fn execute(&mut self, change: &Change, now: Instant, effects: &mut Vec<Effect>) {
        let reason = Some(change.reason.message.clone());
        let action = change.action.as_str();
        let key = match &change.target {
            Target::Settings => {
                self.observed.settings = Some(self.desired.settings_fields());
                effects.push(Effect::Settings(Box::new(
                    self.desired.config.settings.clone(),
                )));
                self.routes_dirty = true;
                effects.push(Effect::Record(Note {
                    reason,
                    ..note_of(None, "update", "settings updated in place".into())
                }));
                self.bump(now);
                return;
            }
            Target::Instance(key) => key.clone(),
        };
        let spec = self.desired.instances.get(&key).map(Arc::clone);
        if change.action != Action::Stop {
            // Started, replaced or removed meanwhile: a stop waiting or under way is moot.
            self.stops.forget(&key);
        }
        let message = match (change.action, spec) {
            (Action::Create, Some(spec)) => {
                // On demand: declared asleep, started by its first request.
                let (phase, first) = match spec.start {
                    StartMode::Eager => (Phase::Starting, First::Start),
                    StartMode::OnDemand => (Phase::Sleeping, First::Asleep),
                };
                let mut instance = ObservedInstance::new(phase, spec.shared_fields());
                instance.declared_in = Some(spec.declared.describe());
                self.observed.instances.insert(key.clone(), instance);
                self.tasks.insert(key.clone());
                self.creating
                    .insert(key.clone(), change.reason.message.clone());
                self.routes_dirty = true;
                effects.push(Effect::Spawn {
                    key: key.clone(),
                    spec,
                    port: PortWish::Any,
                    first,
                });
                // Told once the actor has its port (`Event::Spawned`).
                None
            }
            (Action::Replace, Some(spec)) if self.tasks.contains(&key) => {
                let side_by_side = self.replaceable_side_by_side(&key, &spec);
                self.applied(&key, &spec, false);
                effects.push(Effect::Replace {
                    key: key.clone(),
                    spec,
                    side_by_side,
                    reason: change.reason.message.clone(),
                });
                // The actor says how it went.
                None
            }
            (Action::Start | Action::Update, Some(spec)) if self.tasks.contains(&key) => {
                let start = change.action == Action::Start;
                self.applied(&key, &spec, start);
                let (order, message) = if start {
                    (Order::Start(spec), "starting")
                } else {
                    (Order::Update(spec), "updated in place")
                };
                effects.push(Effect::Order {
                    key: key.clone(),
                    order,
                });
                Some(message)
            }
            // Told in `stop_order` (see `stopping`), with its event.
            (Action::Stop, _) if self.tasks.contains(&key) => {
                if !self.queue_stop(&key, reason.clone()) {
                    return;
                }
                None
            }
            (Action::Destroy, _) => {
                if !self.removing.insert(key.clone()) {
                    return;
                }
                effects.push(Effect::RetireNow(key.clone()));
                if self.tasks.contains(&key) {
                    effects.push(Effect::Order {
                        key: key.clone(),
                        order: Order::Remove,
                    });
                    self.set_phase(&key, Phase::Stopping);
                } else {
                    self.observed.instances.remove(&key);
                    self.removing.remove(&key);
                }
                Some("stopping and forgetting it")
            }
            // A change for an instance with no task (or no spec) cannot be executed.
            _ => return,
        };
        if let Some(message) = message {
            self.routes_dirty = true;
            effects.push(Effect::Record(Note {
                reason,
                ..note_of(Some(&key), action, message.into())
            }));
        }
        self.bump(now);
    }

    /// The observed instance of `key` now runs with `spec` (and starts, with `start`).
    fn applied(&mut self, key: &InstanceKey, spec: &Arc<InstanceSpec>, start: bool) {
        self.routes_dirty = true;
        if let Some(instance) = self.observed.instances.get_mut(key) {
            instance.spec = spec.shared_fields();
            instance.declared_in = Some(spec.declared.describe());
            if start {
                instance.phase = Phase::Starting;
            }
        }
    }

    fn set_phase(&mut self, key: &InstanceKey, phase: Phase) {
        if let Some(instance) = self.observed.instances.get_mut(key) {
            instance.phase = phase;
        }
    }

    /// Whether a replace of `key` can start the new process next to the old one: it runs
    /// healthy (or not checked yet, just adopted) and the new spec has a health endpoint to
    /// tell when the new one may take the traffic.
    fn replaceable_side_by_side(&self, key: &InstanceKey, spec: &InstanceSpec) -> bool {
        self.observed.instances.get(key).is_some_and(|instance| {
            spec.health.is_some()
                && instance.phase == Phase::Running
                && matches!(instance.health, Health::Healthy | Health::Unknown)
        })
    }

    /// Takes in the status of `key`'s task.
    pub(super) fn refresh(
        &mut self,
        key: &InstanceKey,
        status: InstanceStatus,
        now: Instant,
        effects: &mut Vec<Effect>,
    ) {
        if !self.tasks.contains(key) {
            return;
        }
        if status.removed {
            self.finish_removal(key, status.port, now, effects);
            return;
        }
        let Some(instance) = self.observed.instances.get_mut(key) else {
            return;
        };
        let phase_changed = instance.phase != status.phase;
        instance.phase = status.phase;
        instance.pid = status.pid;
        instance.pid_start_time = status.pid_start_time;
        instance.port = Some(status.port);
        instance.health = status.health;
        instance.restarts = status.restarts;
        instance.restart_times_unix = status.restart_times_unix;
        instance.started_at_unix = status.started_at_unix;
        instance.last_exit = status.last_exit;
        instance.note = status.note;
        instance.heading_for = status.heading_for;
        if phase_changed {
            self.narrow.insert(key.clone());
        }
        self.bump(now);
    }

    fn finish_removal(
        &mut self,
        key: &InstanceKey,
        port: u16,
        now: Instant,
        effects: &mut Vec<Effect>,
    ) {
        self.tasks.remove(key);
        self.stops.forget(key);
        self.routes_dirty = true;
        self.removing.remove(key);
        // Declared again meanwhile: created by the next pass.
        self.narrow.insert(key.clone());
        let persist = self
            .observed
            .instances
            .remove(key)
            .and_then(|instance| instance.spec.get("storage_persist").cloned())
            .is_none_or(|value| value == FieldValue::Bool(true));
        let remove_data = (!persist).then(|| {
            crate::desired::spec::instance_data_dir(&self.desired.config.settings.data_dir, key)
        });
        effects.push(Effect::Forget {
            key: key.clone(),
            port,
            remove_data,
        });
        effects.push(note(Some(key), "destroy", "gone".into()));
        self.bump(now);
    }

    /// Takes over what the previous ten left: live processes are adopted as they are,
    /// sleeping instances sleep on, older duplicates are stopped. The first pass then plans
    /// against them like against any running instance.
    pub(super) fn take_over(
        &mut self,
        inheritance: Inheritance,
        now: Instant,
        effects: &mut Vec<Effect>,
    ) {
        self.observed.generation = self.observed.generation.max(inheritance.generation + 1);
        let strays = inheritance
            .strays
            .into_iter()
            .map(|stray| {
                let spec = self.left_over(&stray.instance, Arc::clone(&stray.spec));
                (stray, spec)
            })
            .collect();
        effects.push(Effect::Inherited {
            stale: inheritance.stale,
            strays,
        });
        self.restorable = inheritance
            .stopped
            .into_iter()
            .map(|(key, fields)| (self.declared_key(key), fields))
            .collect();
        let inherited = inheritance.processes.len() + inheritance.sleeping.len();
        for mut process in inheritance.processes {
            let key = self.declared_key(process.key);
            // A process that is no longer declared is supervised until the plan destroys it
            // (or holds that for `ten apply`).
            let spec = match self.desired.instances.get(&key) {
                Some(spec) => {
                    share_recorded_fields(&mut process.observed, spec);
                    Arc::clone(spec)
                }
                None => self.left_over(&key, Arc::clone(&process.observed.spec)),
            };
            let pid = process.adoption.pid;
            effects.push(Effect::Spawn {
                key: key.clone(),
                spec,
                port: PortWish::Reserve(process.port),
                first: First::Adopt(process.adoption),
            });
            effects.push(note(
                Some(&key),
                "adopt",
                format!(
                    "pid {pid} on port {}, left running by the previous ten",
                    process.port
                ),
            ));
            self.observed
                .instances
                .insert(key.clone(), process.observed);
            self.tasks.insert(key);
        }
        for (key, mut instance) in inheritance.sleeping {
            let key = self.declared_key(key);
            // An eager instance starts whenever ten does: the plan creates it.
            let Some(spec) = self
                .desired
                .instances
                .get(&key)
                .filter(|spec| spec.start == StartMode::OnDemand)
                .map(Arc::clone)
            else {
                continue;
            };
            share_recorded_fields(&mut instance, &spec);
            effects.push(Effect::Spawn {
                key: key.clone(),
                spec,
                port: instance.port.map_or(PortWish::Any, PortWish::Prefer),
                first: First::Asleep,
            });
            self.observed.instances.insert(key.clone(), instance);
            self.tasks.insert(key);
        }
        if inherited >= super::pass::COMPACT_FROM_CREATES {
            self.compact();
        }
        self.routes_dirty = true;
        self.bump(now);
    }

    /// The declared key equal to `key` (read from the record), so their names are shared;
    /// `key` itself when it is not declared.
    fn declared_key(&self, key: InstanceKey) -> InstanceKey {
        match self.desired.instances.get_key_value(&key) {
            Some((declared, _)) => declared.clone(),
            None => key,
        }
    }

    fn left_over(
        &self,
        key: &InstanceKey,
        fields: Arc<crate::desired::FieldMap>,
    ) -> Arc<InstanceSpec> {
        Arc::new(InstanceSpec::left_over(
            key.clone(),
            fields,
            &self.desired.config.dir,
            &self.desired.config.settings.data_dir,
        ))
    }

    /// `ten apply`, after its reload: check the token, execute every change (drift included).
    pub(super) fn apply(&mut self, token: Option<String>, now: Instant, effects: &mut Vec<Effect>) {
        self.last_pass = Some(now);
        if self.invalid && self.frozen.is_empty() {
            effects.push(Effect::ApplyRefused(Failure::Invalid(
                self.diagnostics.clone(),
            )));
            return;
        }
        let plan = self.planned(crate::plan::Shown::Bare);
        let now_token = crate::plan::plan_token(&self.desired, &self.observed);
        if let Some(expected) = token
            && expected != now_token
        {
            effects.push(Effect::ApplyRefused(Failure::PlanChanged {
                expected,
                now: now_token,
            }));
            return;
        }
        let mut changes = Vec::with_capacity(plan.changes.len());
        for change in &plan.changes {
            self.execute(change, now, effects);
            changes.push(AppliedChange {
                target: change.target.clone(),
                action: change.action,
                timeout: self.change_timeout(change),
            });
        }
        let created = changes
            .iter()
            .filter(|change| change.action == Action::Create)
            .count();
        if created >= super::pass::COMPACT_FROM_CREATES {
            self.compact();
        }
        if self.held.take().is_some() {
            // The held destroys are carried out: their routes go.
            self.routes_dirty = true;
        }
        self.applied = Arc::clone(&self.desired);
        effects.push(Effect::Applied(Applied {
            token: now_token,
            changes,
        }));
    }

    fn change_timeout(&self, change: &Change) -> Duration {
        let spec = change
            .target
            .instance()
            .and_then(|key| self.desired.instances.get(key));
        let (startup, stop) = spec
            .map_or((Duration::from_secs(10), Duration::from_secs(10)), |spec| {
                (spec.startup_timeout, spec.stop_timeout)
            });
        startup + stop + Duration::from_secs(5)
    }
}

/// The fields an instance was recorded with, when they are the declared ones, become the
/// declared spec's own (one map in memory instead of two: with 10,000 instances taken over
/// after a restart of ten, 13 MB).
fn share_recorded_fields(instance: &mut ObservedInstance, spec: &InstanceSpec) {
    if *instance.spec == *spec.fields() {
        instance.spec = spec.shared_fields();
    }
}
