//! The core on explicit instants: events in, effects out, no task, file or clock.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::config::{Diagnostic, parse_config};
use crate::desired::{DesiredState, Reload, resolve};
use crate::observed::{Health, ObservedInstance, Phase};
use crate::plan::Action;
use crate::reconcile::inherit::{Inheritance, Inherited};
use crate::supervisor::messages::{Adoption, InstanceStatus};

mod bad_input;
mod stop_order;

/// A valid desired state from tenement.toml `text` (instances declared in `[instances]`).
fn desired(text: &str) -> DesiredState {
    let mut diagnostics = Vec::new();
    let config = parse_config(
        Path::new("/srv/app/tenement.toml"),
        text.into(),
        &mut diagnostics,
    )
    .config
    .unwrap_or_else(|| panic!("{diagnostics:?}"));
    let desired = resolve(config, &[], &mut diagnostics);
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    desired
}

/// A service `web` with a health endpoint and the instances `ids`; `settings`: more keys.
fn config(settings: &str, ids: &[&str]) -> String {
    let ids: Vec<String> = ids.iter().map(|id| format!("\"{id}\"")).collect();
    format!(
        "[settings]\n{settings}\n[service.web]\ncommand = \"./app\"\nhealth = \"/health\"\n\n[instances]\nweb = [{}]\n",
        ids.join(", ")
    )
}

fn core(text: &str, t0: Instant) -> Core {
    Core::new(
        "/srv/app/tenement.toml".into(),
        desired(text),
        BTreeMap::new(),
        Vec::new(),
        Some("boot".into()),
        t0,
    )
}

fn reloaded(text: &str) -> Event {
    Event::Reloaded(Box::new(Reload {
        desired: Some(desired(text)),
        files: BTreeMap::new(),
        frozen: Vec::new(),
        diagnostics: Vec::new(),
    }))
}

/// A reload that found tenement.toml broken.
fn broken() -> Event {
    Event::Reloaded(Box::new(Reload {
        desired: None,
        files: BTreeMap::new(),
        frozen: Vec::new(),
        diagnostics: vec![Diagnostic::in_file(
            Path::new("tenement.toml"),
            "expected `]`",
        )],
    }))
}

fn key(text: &str) -> InstanceKey {
    InstanceKey::parse(text).unwrap()
}

/// The instances that get a task, in order.
fn spawned(effects: &[Effect]) -> Vec<String> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::Spawn { key, .. } => Some(key.to_string()),
            _ => None,
        })
        .collect()
}

/// "KEY ORDER" for every order given, and "KEY replace" for replaces.
fn orders(effects: &[Effect]) -> Vec<String> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::Order { key, order } => Some(format!(
                "{key} {}",
                match order {
                    Order::Start(_) => "start",
                    Order::Replace(_) => "replace",
                    Order::Update(_) => "update",
                    Order::Stop => "stop",
                    Order::Remove => "remove",
                    Order::Restart => "restart",
                    Order::ForceRestart => "force-restart",
                }
            )),
            Effect::Replace { key, .. } => Some(format!("{key} replace")),
            _ => None,
        })
        .collect()
}

fn notes(effects: &[Effect]) -> Vec<String> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::Record(note) => Some(format!("{}: {}", note.action, note.message)),
            _ => None,
        })
        .collect()
}

fn reloads(effects: &[Effect]) -> usize {
    effects
        .iter()
        .filter(|effect| matches!(effect, Effect::Reload))
        .count()
}

/// A running, healthy task's status.
fn running(port: u16, pid: u32) -> InstanceStatus {
    InstanceStatus {
        phase: Phase::Running,
        pid: Some(pid),
        health: Health::Healthy,
        ..InstanceStatus::stopped(port)
    }
}

/// Starts `ids` of `text` as the actor would: the first pass, their tasks made (ports 30000
/// on) and reporting running.
fn started(text: &str, t0: Instant) -> Core {
    let mut core = core(text, t0);
    let effects = core.handle(Event::Tick, t0);
    for (index, key) in spawned(&effects).iter().enumerate() {
        let (key, port) = (InstanceKey::parse(key).unwrap(), 30000 + index as u16);
        core.handle(
            Event::Spawned {
                key: key.clone(),
                port,
            },
            t0,
        );
        core.handle(
            Event::Status {
                key,
                status: running(port, 4000 + index as u32),
            },
            t0,
        );
    }
    assert!(core.plan().0.is_empty());
    core
}

#[test]
fn the_first_pass_creates_every_declared_instance_and_tells_their_ports() {
    let t0 = Instant::now();
    let mut core = core(&config("", &["a", "b"]), t0);
    assert_eq!(core.deadline(), Some(t0), "the first pass is due at once");
    let effects = core.handle(Event::Tick, t0);
    assert_eq!(spawned(&effects), ["web:a", "web:b"]);
    assert!(
        effects
            .iter()
            .any(|effect| matches!(effect, Effect::PublishRoutes(_)))
    );
    // Executed means observed: planning again gives nothing, before any task reported.
    assert!(core.plan().0.is_empty());
    let effects = core.handle(
        Event::Spawned {
            key: key("web:a"),
            port: 30000,
        },
        t0,
    );
    assert_eq!(
        notes(&effects),
        ["create: creating on port 30000"],
        "the create is told once its port is known"
    );
    assert_eq!(core.observed().instances[&key("web:a")].port, Some(30000));
    // A worker has no port (its task reports 0): none is told.
    let effects = core.handle(
        Event::Spawned {
            key: key("web:b"),
            port: 0,
        },
        t0,
    );
    assert_eq!(notes(&effects), ["create: creating"]);
}

#[test]
fn status_changes_pass_at_most_every_throttle_and_the_record_follows() {
    let t0 = Instant::now();
    let text = config("", &["a"]);
    let mut core = started(&text, t0);
    let passes = core.passes();
    // The task reports an exit by policy (a restart after a backoff): the instance is planned
    // alone, it has no declared change, and no pass is due; only the record is.
    let t1 = t0 + Duration::from_millis(10);
    let status = |phase| Event::Status {
        key: key("web:a"),
        status: InstanceStatus {
            phase,
            ..InstanceStatus::stopped(30000)
        },
    };
    core.handle(status(Phase::Backoff), t1);
    assert_eq!(core.passes(), passes);
    assert_eq!(core.deadline(), Some(t0 + FLUSH_DELAY));
    // Stopped while declared running: a declared change, so a whole pass is due, throttled.
    core.handle(status(Phase::Stopped), t1);
    assert_eq!(core.deadline(), Some(t0 + PASS_THROTTLE));
    core.handle(Event::Tick, t0 + PASS_THROTTLE);
    assert_eq!(core.passes(), passes + 1);
    // The record: due FLUSH_DELAY after the first change since the last write.
    assert_eq!(core.deadline(), Some(t0 + FLUSH_DELAY));
    let effects = core.handle(Event::Tick, t0 + FLUSH_DELAY);
    assert!(
        effects
            .iter()
            .any(|effect| matches!(effect, Effect::WriteRecord(_)))
    );
    // Nothing more is due until the periodic resync, which reloads.
    assert_eq!(core.deadline(), Some(t0 + RESYNC));
    let effects = core.handle(Event::Tick, t0 + RESYNC);
    assert_eq!(reloads(&effects), 1);
    // A reload that took 200 ms (10,000 files): the next resync comes RESYNC_SHARE times
    // that later (200 s).
    let read = t0 + RESYNC + Duration::from_millis(200);
    core.handle(reloaded(&text), read);
    let next = t0 + RESYNC + RESYNC_SHARE * Duration::from_millis(200);
    assert_eq!(core.deadline(), Some(next));
    assert_eq!(next - (t0 + RESYNC), Duration::from_secs(200));
    // A quick one brings it back to RESYNC.
    let effects = core.handle(Event::Tick, next);
    assert_eq!(reloads(&effects), 1);
    core.handle(reloaded(&text), next);
    let quick = next;
    assert_eq!(core.deadline(), Some(quick + RESYNC));
    // A very slow one (5 s): the next comes after RESYNC_MAX at the most.
    let effects = core.handle(Event::Tick, quick + RESYNC);
    assert_eq!(reloads(&effects), 1);
    let slow = quick + RESYNC + Duration::from_secs(5);
    core.handle(reloaded(&text), slow);
    assert_eq!(core.deadline(), Some(quick + RESYNC + RESYNC_MAX));
}

#[test]
fn a_file_change_while_an_apply_runs_is_planned_against_what_the_apply_did() {
    let t0 = Instant::now();
    let manual = config("auto_apply = false", &["a", "b"]);
    let mut core = core(&manual, t0);
    core.handle(Event::Tick, t0);
    // `ten apply`: a reload first, then every change of the plan.
    let effects = core.handle(Event::Apply { token: None }, t0);
    assert_eq!(reloads(&effects), 1);
    let effects = core.handle(reloaded(&manual), t0);
    assert_eq!(spawned(&effects), ["web:a", "web:b"]);
    let Some(Effect::Applied(applied)) = effects
        .iter()
        .find(|effect| matches!(effect, Effect::Applied(_)))
    else {
        panic!("{effects:?}")
    };
    assert_eq!(applied.changes.len(), 2);
    // While the two start, the files change: c is added, a's env changes.
    let changed = manual
        .replace("[instances]", "[service.web.env]\nX = \"1\"\n\n[instances]")
        .replace("\"b\"]", "\"b\", \"c\"]");
    core.handle(Event::FilesChanged, t0);
    assert_eq!(core.deadline(), Some(t0), "files are read at once");
    let effects = core.handle(Event::Tick, t0);
    assert_eq!(reloads(&effects), 1);
    let effects = core.handle(reloaded(&changed), t0);
    // auto_apply = false: held, nothing started twice.
    assert!(spawned(&effects).is_empty() && orders(&effects).is_empty());
    assert!(core.status().held.is_some());
    let effects = core.handle(Event::Apply { token: None }, t0);
    assert_eq!(reloads(&effects), 1);
    let effects = core.handle(reloaded(&changed), t0);
    assert_eq!(spawned(&effects), ["web:c"]);
    assert_eq!(orders(&effects), ["web:a replace", "web:b replace"]);
    assert!(core.plan().0.is_empty());
    assert_eq!(core.status().held, None);
}

/// The instances of the last route table published in `effects`.
fn routed(effects: &[Effect]) -> Vec<String> {
    effects
        .iter()
        .rev()
        .find_map(|effect| match effect {
            Effect::PublishRoutes(desired) => {
                Some(desired.instances.keys().map(ToString::to_string).collect())
            }
            _ => None,
        })
        .unwrap_or_default()
}

#[test]
fn a_mass_destroy_is_held_until_applied_and_a_small_one_is_not() {
    let t0 = Instant::now();
    let four = config("", &["a", "b", "c", "d"]);
    let mut core = started(&four, t0);
    // The files now declare one: 3 of 4 destroyed, over max_destroy_percent (50).
    core.handle(Event::FilesChanged, t0);
    core.handle(Event::Tick, t0);
    let effects = core.handle(reloaded(&config("", &["a"])), t0);
    assert!(orders(&effects).is_empty(), "{effects:?}");
    let held = core.status().held.expect("held");
    assert!(held.contains("max_destroy_percent = 50"), "{held}");
    assert!(
        notes(&effects)
            .iter()
            .any(|note| note.starts_with("held: "))
    );
    // Held means nothing changes yet: the three keep their routes (they run and answer).
    assert_eq!(routed(&effects), ["web:a", "web:b", "web:c", "web:d"]);
    // A human applies: all three go, and their routes with them.
    core.handle(Event::Apply { token: None }, t0);
    let effects = core.handle(reloaded(&config("", &["a"])), t0);
    assert_eq!(
        orders(&effects),
        ["web:b remove", "web:c remove", "web:d remove"]
    );
    assert_eq!(core.status().held, None);
    assert_eq!(routed(&effects), ["web:a"]);
    // One destroy of three is below the limit: applied by itself.
    let mut core = started(&config("", &["a", "b", "c"]), t0);
    core.handle(Event::FilesChanged, t0);
    core.handle(Event::Tick, t0);
    let effects = core.handle(reloaded(&config("", &["a", "b"])), t0);
    assert_eq!(orders(&effects), ["web:c remove"]);
}

#[test]
fn invalid_files_touch_no_tenant_until_fixed() {
    let t0 = Instant::now();
    let mut core = started(&config("", &["a", "b"]), t0);
    core.handle(Event::FilesChanged, t0);
    core.handle(Event::Tick, t0);
    let effects = core.handle(broken(), t0);
    assert!(orders(&effects).is_empty() && spawned(&effects).is_empty());
    let status = core.status();
    assert!(!status.valid);
    assert_eq!(status.instances, 2, "the last valid desired state is kept");
    assert!(
        notes(&effects)
            .iter()
            .any(|note| note.contains("keeping the last valid desired state")),
        "{effects:?}"
    );
    // An apply refuses while tenement.toml is broken.
    core.handle(Event::Apply { token: None }, t0);
    let effects = core.handle(broken(), t0);
    assert!(
        effects
            .iter()
            .any(|effect| matches!(effect, Effect::ApplyRefused(Failure::Invalid(_))))
    );
    // Fixed (and changed: b is gone): valid again, and the change applies.
    core.handle(Event::FilesChanged, t0);
    core.handle(Event::Tick, t0);
    let effects = core.handle(reloaded(&config("", &["a"])), t0);
    assert!(core.status().valid);
    assert!(notes(&effects).contains(&"config: the files are valid again".to_string()));
    assert_eq!(orders(&effects), ["web:b remove"]);
}

#[test]
fn a_process_that_exits_during_a_replace_is_not_replaced_twice() {
    let t0 = Instant::now();
    let before = config("", &["a"]);
    let mut core = started(&before, t0);
    let after = before.replace("command = \"./app\"", "command = \"./app --v2\"");
    core.handle(Event::FilesChanged, t0);
    core.handle(Event::Tick, t0);
    let effects = core.handle(reloaded(&after), t0);
    let side_by_side = effects.iter().any(|effect| {
        matches!(
            effect,
            Effect::Replace {
                side_by_side: true,
                ..
            }
        )
    });
    assert!(side_by_side, "healthy with a health endpoint: {effects:?}");
    // The new process exits while starting: the task retries it (backoff). The plan asks
    // nothing more: the replace was done, the spec is the new one.
    let t1 = t0 + Duration::from_secs(1);
    let effects = core.handle(
        Event::Status {
            key: key("web:a"),
            status: InstanceStatus {
                phase: Phase::Backoff,
                ..InstanceStatus::stopped(30001)
            },
        },
        t1,
    );
    assert!(orders(&effects).is_empty());
    let effects = core.handle(Event::Tick, t1 + PASS_THROTTLE);
    assert!(orders(&effects).is_empty(), "{effects:?}");
    assert!(core.plan().0.is_empty());
    // It ends failed: drift, shown, not acted on by itself; `ten apply` retries it.
    core.handle(
        Event::Status {
            key: key("web:a"),
            status: InstanceStatus {
                phase: Phase::Failed,
                ..InstanceStatus::stopped(30001)
            },
        },
        t1,
    );
    let effects = core.handle(Event::Tick, t1 + PASS_THROTTLE * 2);
    assert!(orders(&effects).is_empty());
    assert_eq!(core.plan().0.drift.len(), 1);
    core.handle(Event::Apply { token: None }, t1);
    let effects = core.handle(reloaded(&after), t1);
    assert_eq!(orders(&effects), ["web:a start"]);
}

#[test]
fn with_auto_apply_off_nothing_changes_without_an_apply_and_a_stale_token_is_refused() {
    let t0 = Instant::now();
    let text = config("auto_apply = false", &["a"]);
    let mut core = core(&text, t0);
    let effects = core.handle(Event::Tick, t0);
    assert!(spawned(&effects).is_empty());
    let held = core.status().held.expect("held");
    assert!(
        held.starts_with("auto_apply = false: 1 change wait"),
        "{held}"
    );
    // An apply naming another plan is refused and changes nothing.
    core.handle(
        Event::Apply {
            token: Some("0000".into()),
        },
        t0,
    );
    let effects = core.handle(reloaded(&text), t0);
    assert!(spawned(&effects).is_empty());
    assert!(
        effects
            .iter()
            .any(|effect| matches!(effect, Effect::ApplyRefused(Failure::PlanChanged { .. })))
    );
    // With the plan's own token, it applies.
    let token = core.plan().0.token;
    core.handle(Event::Apply { token: Some(token) }, t0);
    let effects = core.handle(reloaded(&text), t0);
    assert_eq!(spawned(&effects), ["web:a"]);
}

#[test]
fn with_auto_apply_off_a_restart_of_ten_starts_again_what_ran_and_holds_only_changes() {
    let t0 = Instant::now();
    let text = config("auto_apply = false", &["a", "b", "c"]);
    let mut core = core(&text, t0);
    let a = core.desired().instances[&key("web:a")].shared_fields();
    // The last ten ran a as declared now, and b as it was before its files changed (while
    // ten was down); c it never ran.
    let before = desired(&text.replace("./app", "./old-app"));
    let b = before.instances[&key("web:b")].shared_fields();
    let inheritance = Inheritance {
        stopped: vec![(key("web:a"), a), (key("web:b"), b)],
        ..Inheritance::default()
    };
    core.handle(Event::TakeOver(Box::new(inheritance)), t0);
    let effects = core.handle(Event::Tick, t0);
    assert_eq!(spawned(&effects), ["web:a"], "a restart is no change");
    let held = core.status().held.expect("held");
    assert!(
        held.starts_with("auto_apply = false: 2 changes wait"),
        "{held}"
    );
    // Only the first pass after the take-over restores: a stopped later stays stopped.
    let effects = core.handle(Event::Tick, t0 + Duration::from_secs(60));
    assert!(spawned(&effects).is_empty(), "{effects:?}");
}

#[test]
fn after_a_restart_of_ten_live_processes_are_adopted_and_sleepers_sleep_on() {
    let t0 = Instant::now();
    // web sleeps when idle, so it starts on demand; api is eager.
    let text = "[service.web]\ncommand = \"./app\"\nhealth = \"/health\"\nidle_timeout = 60\n\n\
                [service.api]\ncommand = \"./api\"\n\n\
                [instances]\nweb = [\"a\", \"b\", \"c\"]\napi = [\"d\"]\n";
    let mut core = core(text, t0);
    let spec = Arc::clone(&core.desired().instances[&key("web:a")]);
    let mut observed = ObservedInstance::new(Phase::Running, spec.shared_fields());
    observed.pid = Some(4242);
    observed.port = Some(30007);
    let mut asleep = ObservedInstance::new(Phase::Sleeping, spec.shared_fields());
    asleep.port = Some(30008);
    let api = Arc::clone(&core.desired().instances[&key("api:d")]);
    let mut eager_asleep = ObservedInstance::new(Phase::Sleeping, api.shared_fields());
    eager_asleep.port = Some(30009);
    let inheritance = Inheritance {
        processes: vec![Inherited {
            key: key("web:a"),
            port: 30007,
            adoption: Adoption {
                pid: 4242,
                start_time: 1,
                started_at_unix: 1,
                restart_times_unix: Vec::new(),
                name: None,
                sandboxed: false,
            },
            observed,
        }],
        sleeping: vec![(key("web:b"), asleep), (key("api:d"), eager_asleep)],
        generation: 41,
        ..Inheritance::default()
    };
    let effects = core.handle(Event::TakeOver(Box::new(inheritance)), t0);
    let firsts = |effects: &[Effect]| -> Vec<(String, PortWish, &'static str)> {
        effects
            .iter()
            .filter_map(|effect| match effect {
                Effect::Spawn {
                    key, port, first, ..
                } => Some((
                    key.to_string(),
                    *port,
                    match first {
                        First::Adopt(_) => "adopt",
                        First::Asleep => "asleep",
                        First::Start => "start",
                    },
                )),
                _ => None,
            })
            .collect()
    };
    assert_eq!(
        firsts(&effects),
        [
            ("web:a".to_string(), PortWish::Reserve(30007), "adopt"),
            ("web:b".to_string(), PortWish::Prefer(30008), "asleep"),
        ],
        "the eager api:d that slept is not taken over asleep"
    );
    assert!(core.observed().generation > 41, "generations go on");
    // The first pass: a adopted and b asleep are converged; c (never run) is created asleep,
    // on demand, and the eager d is created and started.
    let effects = core.handle(Event::Tick, t0);
    assert_eq!(
        firsts(&effects),
        [
            ("api:d".to_string(), PortWish::Any, "start"),
            ("web:c".to_string(), PortWish::Any, "asleep"),
        ]
    );
    assert_eq!(
        core.observed().instances[&key("web:c")].phase,
        Phase::Sleeping
    );
    assert!(orders(&effects).is_empty());
}

#[test]
fn a_stop_heading_for_sleep_is_not_undone_and_a_removal_finishes_with_its_data() {
    let t0 = Instant::now();
    let text = config("", &["a"]).replace(
        "health = \"/health\"",
        "health = \"/health\"\nstorage_persist = false",
    );
    let mut core = started(&text, t0);
    let effects = core.handle(
        Event::Status {
            key: key("web:a"),
            status: InstanceStatus {
                heading_for: Some(Phase::Sleeping),
                phase: Phase::Stopping,
                ..running(30000, 4000)
            },
        },
        t0,
    );
    assert!(orders(&effects).is_empty());
    let effects = core.handle(Event::Tick, t0 + PASS_THROTTLE);
    assert!(orders(&effects).is_empty(), "{effects:?}");
    // Undeclared: removed; once its task is gone, its port, capture and data go.
    core.handle(Event::FilesChanged, t0);
    core.handle(Event::Tick, t0);
    let effects = core.handle(reloaded(&config("", &[])), t0);
    assert_eq!(orders(&effects), ["web:a remove"]);
    let effects = core.handle(
        Event::Status {
            key: key("web:a"),
            status: InstanceStatus {
                removed: true,
                ..InstanceStatus::stopped(30000)
            },
        },
        t0,
    );
    let forgotten = effects.iter().find_map(|effect| match effect {
        Effect::Forget {
            port, remove_data, ..
        } => Some((*port, remove_data.clone())),
        _ => None,
    });
    assert_eq!(
        forgotten,
        Some((30000, Some("/srv/app/tenement-data/web/a".into())))
    );
    assert!(core.observed().instances.is_empty());
}

#[test]
fn no_free_port_means_not_created_and_tried_again_by_the_next_pass() {
    let t0 = Instant::now();
    let mut core = core(&config("", &["a"]), t0);
    core.handle(Event::Tick, t0);
    let effects = core.handle(
        Event::SpawnRefused {
            key: key("web:a"),
            error: "no free port in 30000-30000".into(),
        },
        t0,
    );
    assert_eq!(
        notes(&effects),
        ["create: not created: no free port in 30000-30000"]
    );
    assert_eq!(core.plan().0.changes.len(), 1, "still to be created");
}

#[test]
fn taken_over_instances_recorded_as_declared_share_the_declared_fields_and_names() {
    let t0 = Instant::now();
    let text = "[service.web]\ncommand = \"./app\"\nidle_timeout = 60\n\n\
                [instances]\nweb = [\"a\", \"b\"]\n";
    let mut core = core(text, t0);
    let declared = |name: &str| Arc::clone(&core.desired().instances[&key(name)]);
    let (a, b) = (declared("web:a"), declared("web:b"));
    // As read back from the record: maps of their own, one as declared, one not.
    let read_back = |spec: &crate::desired::InstanceSpec| -> crate::desired::FieldMap {
        spec.fields()
            .iter()
            .map(|(path, value)| (path.to_string(), value.clone()))
            .collect()
    };
    let as_declared = ObservedInstance::new(Phase::Sleeping, Arc::new(read_back(&a)));
    let mut changed = read_back(&b);
    changed.insert("command", crate::desired::FieldValue::Text("./old".into()));
    let changed = ObservedInstance::new(Phase::Sleeping, Arc::new(changed));
    let inheritance = Inheritance {
        sleeping: vec![(key("web:a"), as_declared), (key("web:b"), changed)],
        ..Inheritance::default()
    };
    core.handle(Event::TakeOver(Box::new(inheritance)), t0);
    let observed = |name: &str| Arc::clone(&core.observed().instances[&key(name)].spec);
    assert!(Arc::ptr_eq(&observed("web:a"), &a.shared_fields()));
    assert!(!Arc::ptr_eq(&observed("web:b"), &b.shared_fields()));
    assert_eq!(
        observed("web:b").get("command"),
        Some(&crate::desired::FieldValue::Text("./old".into())),
        "what differs is kept, for the plan to show"
    );
    // The keys read back share the declared keys' names (one copy of each name).
    for taken in core.observed().instances.keys() {
        let (declared, _) = core.desired().instances.get_key_value(taken).unwrap();
        assert_eq!(taken.id.as_str().as_ptr(), declared.id.as_str().as_ptr());
        assert_eq!(
            taken.service.as_str().as_ptr(),
            declared.service.as_str().as_ptr()
        );
    }
}
