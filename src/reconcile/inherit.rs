//! What a starting ten takes over from the one before it (killed, crashed or upgraded): the
//! tenant processes still running, and the instances that were asleep. Pure: it decides from
//! the last record, the process table and a liveness check it is given; the reconciler acts.
//!
//! A recorded process is taken over only when its pid, its start time and the boot all match:
//! a recycled pid (another process now has it, or the machine rebooted) is never adopted and
//! never signalled. When an instance has two live processes (ten died in the middle of a
//! zero-downtime replace), the newest is adopted and the older one stopped.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::desired::FieldMap;
use crate::names::InstanceKey;
use crate::observed::{Health, ObservedInstance, ObservedState, Phase};
use crate::runtime::table::ProcessEntry;
use crate::supervisor::messages::Adoption;

/// What to take over.
#[derive(Debug, Default, PartialEq)]
pub struct Inheritance {
    /// One live process per instance, to adopt.
    pub processes: Vec<Inherited>,
    /// Instances that were asleep, with their port and the spec they last ran with.
    pub sleeping: Vec<(InstanceKey, ObservedInstance)>,
    /// Instances the last ten had that were neither asleep nor left running (stopped with
    /// it, or their process gone since), with the spec each last ran with: with
    /// `auto_apply = false` those whose spec is still what the files declare are started
    /// again without an apply (a restart of ten or of the host is no change).
    pub stopped: Vec<(InstanceKey, Arc<FieldMap>)>,
    /// Older live processes of instances that have a newer one: to stop.
    pub strays: Vec<ProcessEntry>,
    /// Table entries of processes that are gone (or from another boot): to remove.
    pub stale: Vec<ProcessEntry>,
    /// The generation to continue from.
    pub generation: u64,
}

/// A live process to adopt.
#[derive(Debug, PartialEq)]
pub struct Inherited {
    pub key: InstanceKey,
    pub port: u16,
    pub adoption: Adoption,
    /// Its observed state as adopted: running, health unknown until checked.
    pub observed: ObservedInstance,
}

/// Decides what to take over. `record` is the last observed state written (if readable),
/// `entries` the process table, `alive(pid, start_time)` whether that process still runs.
pub fn inherit(
    record: Option<&ObservedState>,
    entries: Vec<ProcessEntry>,
    boot_id: &str,
    alive: impl Fn(u32, u64) -> bool,
) -> Inheritance {
    let mut inheritance = Inheritance {
        generation: record.map_or(0, |record| record.generation),
        ..Inheritance::default()
    };
    let same_boot = |id: &str| !boot_id.is_empty() && id == boot_id;
    let mut live: BTreeMap<InstanceKey, Vec<ProcessEntry>> = BTreeMap::new();
    for entry in entries {
        if same_boot(&entry.boot_id) && alive(entry.pid, entry.start_time) {
            live.entry(entry.instance.clone()).or_default().push(entry);
        } else {
            inheritance.stale.push(entry);
        }
    }
    // A record of this boot may know processes whose table entry is missing (a table that
    // was cleared by hand, or a ten from before the table).
    if let Some(record) = record
        && record.boot_id.as_deref().is_some_and(same_boot)
    {
        for (key, instance) in &record.instances {
            let (Some(pid), Some(start_time), Some(port)) =
                (instance.pid, instance.pid_start_time, instance.port)
            else {
                continue;
            };
            let known = live
                .get(key)
                .is_some_and(|entries| entries.iter().any(|entry| entry.pid == pid));
            if known || !alive(pid, start_time) {
                continue;
            }
            live.entry(key.clone()).or_default().push(ProcessEntry {
                instance: key.clone(),
                pid,
                start_time,
                boot_id: boot_id.to_string(),
                port,
                started_at_unix: instance.started_at_unix.unwrap_or(0),
                spec: Arc::clone(&instance.spec),
                name: None,
                sandboxed: false,
            });
        }
    }
    for (key, mut entries) in live {
        entries.sort_by_key(|entry| entry.start_time);
        let newest = entries.pop().expect("grouped entries are never empty");
        inheritance.strays.extend(entries);
        let recorded = record
            .and_then(|record| record.instances.get(&key))
            .filter(|instance| instance.pid == Some(newest.pid));
        inheritance
            .processes
            .push(adopted(key, newest, recorded.cloned()));
    }
    if let Some(record) = record {
        for (key, instance) in &record.instances {
            let adopted = inheritance
                .processes
                .iter()
                .any(|process| process.key == *key);
            if adopted {
                continue;
            }
            if instance.phase == Phase::Sleeping {
                let mut sleeping = instance.clone();
                sleeping.pid = None;
                sleeping.pid_start_time = None;
                sleeping.health = Health::Unknown;
                inheritance.sleeping.push((key.clone(), sleeping));
            } else {
                inheritance
                    .stopped
                    .push((key.clone(), Arc::clone(&instance.spec)));
            }
        }
    }
    inheritance
}

fn adopted(key: InstanceKey, entry: ProcessEntry, recorded: Option<ObservedInstance>) -> Inherited {
    // The record knows more (restarts, in-place updates since the start); the table entry is
    // enough to adopt.
    let mut observed = recorded.unwrap_or_else(|| {
        let spec: Arc<FieldMap> = Arc::clone(&entry.spec);
        ObservedInstance::new(Phase::Running, spec)
    });
    observed.phase = Phase::Running;
    observed.pid = Some(entry.pid);
    observed.pid_start_time = Some(entry.start_time);
    observed.port = Some(entry.port);
    observed.started_at_unix = Some(entry.started_at_unix);
    observed.health = Health::Unknown;
    observed.note = None;
    Inherited {
        adoption: Adoption {
            pid: entry.pid,
            start_time: entry.start_time,
            started_at_unix: entry.started_at_unix,
            restart_times_unix: observed.restart_times_unix.clone(),
            name: entry.name.clone(),
            sandboxed: entry.sandboxed,
        },
        port: entry.port,
        key,
        observed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::FieldValue;

    const BOOT: &str = "3b5f8a56-1d2e-4c1b-9a8e-0123456789ab";

    fn key(text: &str) -> InstanceKey {
        InstanceKey::parse(text).unwrap()
    }

    fn spec(command: &str) -> Arc<FieldMap> {
        let mut fields = FieldMap::new();
        fields.insert("command", FieldValue::Text(command.into()));
        Arc::new(fields)
    }

    fn entry(instance: &str, pid: u32, start_time: u64) -> ProcessEntry {
        ProcessEntry {
            instance: key(instance),
            pid,
            start_time,
            boot_id: BOOT.into(),
            port: 30000 + pid as u16,
            started_at_unix: 1_764_000_000,
            spec: spec("app"),
            name: Some(format!("{}.{pid}", instance.replace(':', "."))),
            sandboxed: false,
        }
    }

    fn running(pid: u32, start_time: u64) -> ObservedInstance {
        let mut instance = ObservedInstance::new(Phase::Running, spec("app --recorded"));
        instance.pid = Some(pid);
        instance.pid_start_time = Some(start_time);
        instance.port = Some(30000 + pid as u16);
        instance.health = Health::Healthy;
        instance.restarts = 1;
        instance.restart_times_unix = vec![1_764_000_100];
        instance
    }

    fn record(instances: Vec<(&str, ObservedInstance)>, boot: Option<&str>) -> ObservedState {
        ObservedState {
            generation: 41,
            boot_id: boot.map(str::to_string),
            instances: instances
                .into_iter()
                .map(|(name, instance)| (key(name), instance))
                .collect(),
            ..ObservedState::default()
        }
    }

    #[test]
    fn live_processes_are_adopted_with_what_the_record_knows() {
        let record = record(vec![("web:a", running(10, 100))], Some(BOOT));
        let entries = vec![entry("web:a", 10, 100), entry("web:b", 11, 110)];
        let inheritance = inherit(Some(&record), entries, BOOT, |_, _| true);
        assert_eq!(inheritance.generation, 41);
        assert_eq!(inheritance.processes.len(), 2);
        let a = &inheritance.processes[0];
        assert_eq!(a.key, key("web:a"));
        assert_eq!(
            a.observed.spec,
            spec("app --recorded"),
            "the record's spec wins"
        );
        assert_eq!(a.observed.restarts, 1);
        assert_eq!(a.adoption.restart_times_unix, [1_764_000_100]);
        assert_eq!(
            a.observed.health,
            Health::Unknown,
            "checked again before trusted"
        );
        let b = &inheritance.processes[1];
        assert_eq!(
            (b.key.clone(), b.port, b.adoption.pid),
            (key("web:b"), 30011, 11)
        );
        assert_eq!(
            b.observed.spec,
            spec("app"),
            "without a record: the table's spec"
        );
        assert!(inheritance.strays.is_empty() && inheritance.stale.is_empty());
    }

    #[test]
    fn recycled_pids_and_other_boots_are_never_adopted() {
        let entries = vec![
            entry("web:a", 10, 100),
            ProcessEntry {
                boot_id: "another-boot".into(),
                ..entry("web:b", 11, 110)
            },
        ];
        // pid 10 now belongs to another process (another start time); pid 11 is alive with
        // the recorded start time, but in another boot.
        let alive = |pid: u32, start_time: u64| (pid, start_time) == (11, 110);
        let inheritance = inherit(None, entries.clone(), BOOT, alive);
        assert!(inheritance.processes.is_empty());
        assert_eq!(inheritance.stale, entries);

        let record = record(vec![("web:c", running(11, 110))], Some("another-boot"));
        let inheritance = inherit(Some(&record), Vec::new(), BOOT, alive);
        assert!(
            inheritance.processes.is_empty(),
            "the record is from another boot"
        );
        let unknown_boot = super::tests::record(vec![("web:c", running(11, 110))], None);
        assert!(
            inherit(Some(&unknown_boot), Vec::new(), BOOT, alive)
                .processes
                .is_empty()
        );
    }

    #[test]
    fn a_record_of_this_boot_covers_a_missing_table_entry() {
        let record = record(vec![("web:a", running(10, 100))], Some(BOOT));
        let inheritance = inherit(Some(&record), Vec::new(), BOOT, |_, _| true);
        assert_eq!(inheritance.processes.len(), 1);
        assert_eq!(inheritance.processes[0].port, 30010);
    }

    #[test]
    fn the_newest_of_two_live_processes_is_adopted_and_the_older_stopped() {
        let entries = vec![entry("web:a", 20, 200), entry("web:a", 10, 100)];
        let inheritance = inherit(None, entries, BOOT, |_, _| true);
        assert_eq!(inheritance.processes.len(), 1);
        assert_eq!(inheritance.processes[0].adoption.pid, 20);
        assert_eq!(inheritance.strays, [entry("web:a", 10, 100)]);
    }

    #[test]
    fn sleeping_instances_sleep_on() {
        let mut asleep = ObservedInstance::new(Phase::Sleeping, spec("app"));
        asleep.port = Some(30005);
        let record = record(vec![("web:z", asleep)], Some(BOOT));
        let inheritance = inherit(Some(&record), Vec::new(), BOOT, |_, _| false);
        assert_eq!(inheritance.sleeping.len(), 1);
        assert_eq!(inheritance.sleeping[0].0, key("web:z"));
        assert_eq!(inheritance.sleeping[0].1.port, Some(30005));
        assert!(inheritance.processes.is_empty());
    }
}
