//! The convergence law: for any desired and observed state, executing the plan and planning
//! again gives an empty plan. Desired states are generated as real tenement.toml text and
//! instance files and go through the real parser; observed states are another generated
//! desired state, applied by the reconciler's own core, with random phases reported by its
//! tasks (dead, failed, sleeping, ...). The plan is executed by the core (`ten apply`), as the
//! server executes it; the only stand-in is the tasks' report that a removed instance's
//! process is gone.

mod support;

use std::path::{Path, PathBuf};

use proptest::prelude::*;

use std::collections::BTreeMap;
use ten::config::{InstanceFile, SourceFile, parse_config, parse_instance_file};
use ten::desired::{DesiredState, FieldMap, Reload, resolve};
use ten::names::InstanceKey;
use ten::observed::{ObservedInstance, ObservedState, Phase};

use ten::observed::Health;
use ten::plan::{Action, Plan, plan};
use ten::reconcile::core::{Core, Effect, Event, First, Order};
use ten::reconcile::inherit::{Inheritance, Inherited};
use ten::render::{Detail, Style, plan_json, render_plan};
use ten::supervisor::messages::{Adoption, InstanceStatus};
use tokio::time::Instant;

#[derive(Debug, Clone)]
struct ServiceGen {
    name: &'static str,
    command: &'static str,
    health: Option<&'static str>,
    idle_timeout: u32,
    memory_limit_mb: Option<u32>,
    env: Vec<(&'static str, &'static str)>,
    table_ids: Vec<&'static str>,
    files: Vec<FileGen>,
}

#[derive(Debug, Clone)]
struct FileGen {
    id: &'static str,
    state: Option<&'static str>,
    weight: Option<u8>,
    log_level: Option<&'static str>,
}

#[derive(Debug, Clone)]
struct DesiredGen {
    health_check_interval: u32,
    max_restarts: u32,
    services: Vec<ServiceGen>,
}

fn file_gen() -> impl Strategy<Value = FileGen> {
    (
        prop::sample::select(vec!["c", "d", "e"]),
        prop::option::of(prop::sample::select(vec!["running", "stopped"])),
        prop::option::of(prop::sample::select(vec![0u8, 10, 90])),
        prop::option::of(prop::sample::select(vec!["warn", "trace"])),
    )
        .prop_map(|(id, state, weight, log_level)| FileGen {
            id,
            state,
            weight,
            log_level,
        })
}

fn service_gen(name: &'static str) -> impl Strategy<Value = ServiceGen> {
    let env_choices = vec![
        ("LOG_LEVEL", "info"),
        ("LOG_LEVEL", "debug"),
        ("API_TOKEN", "secret-a"),
        ("API_TOKEN", "secret-b"),
        ("CONFIG", "a = 1\\nb = 2"),
        ("CONFIG", "a = 1\\nb = 3"),
        ("URL", "http://127.0.0.1:{port}/{id}"),
    ];
    (
        prop::sample::select(vec!["./app", "python3 app.py", "python3 app.py --id {id}"]),
        prop::option::of(prop::sample::select(vec!["/health", "/healthz"])),
        prop::sample::select(vec![0u32, 60, 300]),
        prop::option::of(prop::sample::select(vec![64u32, 128])),
        prop::sample::subsequence(env_choices, 0..=3),
        prop::sample::subsequence(vec!["a", "b", "c"], 0..=3),
        prop::collection::vec(file_gen(), 0..=3),
    )
        .prop_map(
            move |(command, health, idle_timeout, memory_limit_mb, env, table_ids, files)| {
                let mut seen = Vec::new();
                let env = env
                    .into_iter()
                    .filter(|(key, _)| {
                        let fresh = !seen.contains(key);
                        seen.push(*key);
                        fresh
                    })
                    .collect();
                let mut ids = Vec::new();
                let files = files
                    .into_iter()
                    .filter(|file| {
                        let fresh = !ids.contains(&file.id);
                        ids.push(file.id);
                        fresh
                    })
                    .collect();
                ServiceGen {
                    name,
                    command,
                    health,
                    idle_timeout,
                    memory_limit_mb,
                    env,
                    table_ids,
                    files,
                }
            },
        )
}

fn desired_gen() -> impl Strategy<Value = DesiredGen> {
    (
        prop::sample::select(vec![5u32, 10]),
        prop::sample::select(vec![3u32, 5]),
        prop::option::of(service_gen("notes")),
        prop::option::of(service_gen("api")),
        service_gen("web"),
    )
        .prop_map(
            |(health_check_interval, max_restarts, notes, api, web)| DesiredGen {
                health_check_interval,
                max_restarts,
                services: notes.into_iter().chain(api).chain(Some(web)).collect(),
            },
        )
}

const ROOT: &str = "/srv/app";

fn build(generated: &DesiredGen) -> DesiredState {
    let mut text = format!(
        "[settings]\nhealth_check_interval = {}\nmax_restarts = {}\n\n",
        generated.health_check_interval, generated.max_restarts
    );
    let mut table = String::new();
    for service in &generated.services {
        text.push_str(&format!(
            "[service.{}]\ncommand = \"{}\"\n",
            service.name, service.command
        ));
        text.push_str(&format!("idle_timeout = {}\n", service.idle_timeout));
        if let Some(health) = service.health {
            text.push_str(&format!("health = \"{health}\"\n"));
        }
        if let Some(memory) = service.memory_limit_mb {
            text.push_str(&format!("memory_limit_mb = {memory}\n"));
        }
        text.push_str(&format!("[service.{}.env]\n", service.name));
        for (key, value) in &service.env {
            text.push_str(&format!("{key} = \"{value}\"\n"));
        }
        let ids: Vec<String> = service
            .table_ids
            .iter()
            .map(|id| format!("\"{id}\""))
            .collect();
        table.push_str(&format!("{} = [{}]\n", service.name, ids.join(", ")));
    }
    text.push_str("\n[instances]\n");
    text.push_str(&table);

    let mut diagnostics = Vec::new();
    let config_path = Path::new(ROOT).join("tenement.toml");
    let config = parse_config(&config_path, text.clone(), &mut diagnostics)
        .config
        .unwrap_or_else(|| panic!("generated config is invalid: {diagnostics:?}\n{text}"));
    let mut files = Vec::new();
    for service in &generated.services {
        for file in &service.files {
            let mut body = String::new();
            if let Some(state) = file.state {
                body.push_str(&format!("state = \"{state}\"\n"));
            }
            if let Some(weight) = file.weight {
                body.push_str(&format!("weight = {weight}\n"));
            }
            if let Some(level) = file.log_level {
                body.push_str(&format!("[env]\nLOG_LEVEL = \"{level}\"\n"));
            }
            let path = PathBuf::from(format!("instances/{}/{}.toml", service.name, file.id));
            let source = SourceFile {
                path: path.clone(),
                text: body,
            };
            let overrides = parse_instance_file(&source, service.name, false, &mut diagnostics)
                .unwrap_or_else(|| panic!("generated instance file is invalid: {diagnostics:?}"));
            files.push(InstanceFile::new(
                InstanceKey::parse(&format!("{}:{}", service.name, file.id)).unwrap(),
                path,
                overrides,
            ));
        }
    }
    let desired = resolve(config, &files, &mut diagnostics);
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    desired
}

const PHASES: [Phase; 8] = [
    Phase::Starting,
    Phase::Running,
    Phase::Sleeping,
    Phase::Stopping,
    Phase::Stopped,
    Phase::Backoff,
    Phase::Failed,
    Phase::Exited,
];

fn observed_from(
    before: &DesiredState,
    phases: &[usize],
    forget_settings: bool,
    strays: &[&str],
) -> ObservedState {
    let mut observed = support::observed_as_applied(before);
    for (instance, phase) in observed.instances.values_mut().zip(phases.iter().cycle()) {
        instance.phase = PHASES[phase % PHASES.len()];
    }
    for stray in strays {
        let key = InstanceKey::parse(stray).unwrap();
        observed
            .instances
            .insert(key, ObservedInstance::new(Phase::Running, FieldMap::new()));
    }
    if forget_settings {
        observed.settings = None;
    }
    observed
}

fn reloaded(desired: DesiredState) -> Event {
    Event::Reloaded(Box::new(Reload {
        desired: Some(desired),
        files: BTreeMap::new(),
        frozen: Vec::new(),
        diagnostics: Vec::new(),
    }))
}

/// A core that applied `before` (its tasks made, on ports of their own), whose tasks then
/// reported `phases` in turn; `strays`: live processes of undeclared instances it took over.
fn applied_with_phases(before: DesiredState, phases: &[usize], strays: &[&str]) -> (Core, Instant) {
    let now = Instant::now();
    let mut core = Core::new(
        Path::new(ROOT).join("tenement.toml"),
        before,
        BTreeMap::new(),
        Vec::new(),
        Some("boot".into()),
        now,
    );
    let mut inheritance = Inheritance::default();
    for (index, stray) in strays.iter().enumerate() {
        let mut observed = ObservedInstance::new(Phase::Running, FieldMap::new());
        observed.pid = Some(9000 + index as u32);
        inheritance.processes.push(Inherited {
            key: InstanceKey::parse(stray).unwrap(),
            port: 29000 + index as u16,
            adoption: Adoption {
                pid: 9000 + index as u32,
                start_time: 1,
                started_at_unix: 1,
                restart_times_unix: Vec::new(),
                name: None,
                sandboxed: false,
            },
            observed,
        });
    }
    // Strays of a declared instance are that instance's process.
    inheritance
        .processes
        .retain(|process| !core.desired().instances.contains_key(&process.key));
    let effects = core.handle(Event::TakeOver(Box::new(inheritance)), now);
    removals_reported(&mut core, &effects, now);
    let effects = core.handle(Event::Tick, now);
    removals_reported(&mut core, &effects, now);
    let mut spawned = 0;
    for effect in &effects {
        if let Effect::Spawn {
            key,
            first: First::Start,
            ..
        } = effect
        {
            let port = 30000 + spawned;
            spawned += 1;
            core.handle(
                Event::Spawned {
                    key: key.clone(),
                    port,
                },
                now,
            );
            let phase = PHASES[phases[usize::from(spawned) % phases.len()] % PHASES.len()];
            let status = InstanceStatus {
                phase,
                pid: matches!(phase, Phase::Running | Phase::Starting | Phase::Stopping)
                    .then_some(4000 + u32::from(spawned)),
                health: Health::Unknown,
                ..InstanceStatus::stopped(port)
            };
            core.handle(
                Event::Status {
                    key: key.clone(),
                    status,
                },
                now,
            );
        }
    }
    (core, now)
}

/// The tasks of instances removed by `effects` report their end, as tasks do.
fn removals_reported(core: &mut Core, effects: &[Effect], now: Instant) {
    for effect in effects {
        if let Effect::Order {
            key,
            order: Order::Remove,
        } = effect
        {
            let status = InstanceStatus {
                removed: true,
                ..InstanceStatus::stopped(1)
            };
            let more = core.handle(
                Event::Status {
                    key: key.clone(),
                    status,
                },
                now,
            );
            removals_reported(core, &more, now);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn applying_a_plan_converges(
        desired in desired_gen(),
        before in desired_gen(),
        phases in prop::collection::vec(0usize..8, 1..12),
        strays in prop::sample::subsequence(vec!["old:x", "web:zz", "notes:a"], 0..=3),
    ) {
        let desired = build(&desired);
        let before = build(&before);
        let (mut core, now) = applied_with_phases(before, &phases, &strays);

        let first = plan(&desired, core.observed());
        // Rendering is total, and the JSON form reads back to the same plan.
        let _ = render_plan(&first, Detail::Full, Style::COLOR);
        let _ = render_plan(&first, Detail::Summary, Style::PLAIN);
        let read_back: Plan = serde_json::from_str(&plan_json(&first, &[])).unwrap();
        prop_assert_eq!(&read_back, &first);

        // `ten apply`: the core reloads (to `desired`) and executes every change.
        core.handle(Event::Apply { token: None }, now);
        let effects = core.handle(reloaded(desired), now);
        prop_assert!(
            effects.iter().any(|effect| matches!(effect, Effect::Applied(_))),
            "not applied: {effects:?}"
        );
        removals_reported(&mut core, &effects, now);
        let (second, _, _) = core.plan();
        prop_assert!(
            second.is_empty(),
            "not converged after applying:\n{}\nstill planned:\n{}",
            render_plan(&first, Detail::Summary, Style::PLAIN),
            render_plan(&second, Detail::Full, Style::PLAIN)
        );
        prop_assert!(second.drift.is_empty());
    }

    #[test]
    fn planning_is_deterministic(desired in desired_gen(), before in desired_gen(), phases in prop::collection::vec(0usize..8, 1..6)) {
        let desired = build(&desired);
        let observed = observed_from(&build(&before), &phases, false, &[]);
        prop_assert_eq!(plan(&desired, &observed), plan(&desired, &observed));
    }
}

#[test]
fn an_empty_observed_state_creates_every_running_instance() {
    let generated = DesiredGen {
        health_check_interval: 10,
        max_restarts: 3,
        services: vec![ServiceGen {
            name: "notes",
            command: "./app",
            health: None,
            idle_timeout: 0,
            memory_limit_mb: None,
            env: vec![],
            table_ids: vec!["a", "b"],
            files: vec![FileGen {
                id: "c",
                state: Some("stopped"),
                weight: None,
                log_level: None,
            }],
        }],
    };
    let desired = build(&generated);
    let plan = plan(&desired, &ObservedState::default());
    let created: Vec<String> = plan.changes.iter().map(|c| c.target.to_string()).collect();
    assert_eq!(
        created,
        ["notes:a", "notes:b"],
        "notes:c is declared stopped"
    );
    assert!(plan.changes.iter().all(|c| c.action == Action::Create));
}
