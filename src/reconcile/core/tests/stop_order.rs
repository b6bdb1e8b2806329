//! Stops in `stop_order`: on shutdown and when several stops are due at once, the lowest
//! order stops first and the next waits until it is gone.

use std::path::PathBuf;

use super::*;
use crate::config::{InstanceFile, InstanceOverrides, RunState};

/// web (stop_order 0, stop_timeout 10 s): a, b; queue (10): 0; edge (-5): x.
const ORDERED: &str = "[service.web]\ncommand = \"./web\"\n\n\
    [service.queue]\ncommand = \"./queue\"\nstop_order = 10\nstop_timeout = 3\n\n\
    [service.edge]\ncommand = \"./edge\"\nstop_order = -5\n\n\
    [instances]\nweb = [\"a\", \"b\"]\nqueue = [\"0\"]\nedge = [\"x\"]\n";

/// The stops ordered, in order.
fn stops(effects: &[Effect]) -> Vec<String> {
    orders(effects)
        .into_iter()
        .filter_map(|order| order.strip_suffix(" stop").map(str::to_string))
        .collect()
}

fn exits(effects: &[Effect]) -> Vec<bool> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::Exit { keep, .. } => Some(*keep),
            _ => None,
        })
        .collect()
}

/// The task of `key` reports its process gone.
fn gone(core: &mut Core, text: &str, now: Instant) -> Vec<Effect> {
    let port = core.observed().instances[&key(text)].port.unwrap_or(0);
    core.handle(
        Event::Status {
            key: key(text),
            status: InstanceStatus::stopped(port),
        },
        now,
    )
}

/// Every instance of `ORDERED` declared stopped by its file.
fn all_stopped() -> Event {
    let mut diagnostics = Vec::new();
    let config = parse_config(
        Path::new("/srv/app/tenement.toml"),
        ORDERED.into(),
        &mut diagnostics,
    )
    .config
    .unwrap();
    let files: Vec<InstanceFile> = ["web:a", "web:b", "queue:0", "edge:x"]
        .iter()
        .map(|text| {
            InstanceFile::new(
                key(text),
                PathBuf::from(format!("instances/{}.toml", text.replace(':', "/"))),
                InstanceOverrides {
                    state: Some(RunState::Stopped),
                    ..InstanceOverrides::default()
                },
            )
        })
        .collect();
    let desired = resolve(config, &files, &mut diagnostics);
    Event::Reloaded(Box::new(Reload {
        desired: Some(desired),
        files: BTreeMap::new(),
        frozen: Vec::new(),
        diagnostics,
    }))
}

#[test]
fn shutdown_stops_one_order_at_a_time_and_exits_after_the_last() {
    let t0 = Instant::now();
    let mut core = started(ORDERED, t0);
    let effects = core.handle(Event::Shutdown, t0);
    assert_eq!(stops(&effects), ["edge:x"], "-5 first, alone");
    assert!(exits(&effects).is_empty());
    assert!(
        notes(&effects).contains(&"stop: stopping 1 instance of stop_order -5".to_string()),
        "{:?}",
        notes(&effects)
    );
    // Files and calls change nothing while exiting.
    let effects = core.handle(Event::FilesChanged, t0);
    assert!(effects.is_empty());
    // edge is gone: both web instances at once.
    let effects = gone(&mut core, "edge:x", t0);
    assert_eq!(stops(&effects), ["web:a", "web:b"]);
    // One of them gone: the queue still waits for the other.
    let effects = gone(&mut core, "web:b", t0);
    assert!(stops(&effects).is_empty(), "{effects:?}");
    let effects = gone(&mut core, "web:a", t0);
    assert_eq!(stops(&effects), ["queue:0"]);
    assert!(exits(&effects).is_empty());
    let effects = gone(&mut core, "queue:0", t0);
    assert_eq!(exits(&effects), [false], "the exit follows the last stop");
    let effects = core.handle(Event::Tick, t0 + Duration::from_secs(60));
    assert!(exits(&effects).is_empty(), "told once");
}

#[test]
fn a_stop_that_outlives_its_timeout_holds_the_next_order_no_longer() {
    let t0 = Instant::now();
    let mut core = started(ORDERED, t0);
    core.handle(Event::Shutdown, t0);
    let effects = gone(&mut core, "edge:x", t0);
    assert_eq!(stops(&effects), ["web:a", "web:b"]);
    gone(&mut core, "web:a", t0);
    // web:b never reports: the queue waits its stop_timeout (10 s) and the grace.
    let until = t0 + Duration::from_secs(10) + GRACE;
    assert_eq!(core.deadline(), Some(until));
    let effects = core.handle(Event::Tick, until - Duration::from_millis(1));
    assert!(stops(&effects).is_empty());
    let effects = core.handle(Event::Tick, until);
    assert_eq!(stops(&effects), ["queue:0"]);
    assert!(
        notes(&effects)
            .iter()
            .any(|note| note.contains("the next stop_order does not wait for it")),
        "{:?}",
        notes(&effects)
    );
    let effects = gone(&mut core, "queue:0", until);
    assert_eq!(exits(&effects), [false]);
}

#[test]
fn keeping_tenants_exits_at_once() {
    let t0 = Instant::now();
    let text = ORDERED.replace(
        "[service.web]",
        "[settings]\nkeep_tenants_on_exit = true\n\n[service.web]",
    );
    let mut core = started(&text, t0);
    let effects = core.handle(Event::Shutdown, t0);
    assert!(stops(&effects).is_empty());
    assert_eq!(exits(&effects), [true]);
}

#[test]
fn stops_decided_together_go_in_order_and_the_plan_shows_those_waiting() {
    let t0 = Instant::now();
    let mut core = started(ORDERED, t0);
    core.handle(Event::FilesChanged, t0);
    core.handle(Event::Tick, t0);
    let effects = core.handle(all_stopped(), t0);
    assert_eq!(stops(&effects), ["edge:x"]);
    // The stops still waiting are in the plan, as what is left to do.
    let waiting: Vec<String> = core
        .plan()
        .0
        .changes
        .iter()
        .map(|change| change.target.to_string())
        .collect();
    assert_eq!(waiting, ["queue:0", "web:a", "web:b"]);
    // A pass meanwhile decides nothing twice.
    let t1 = t0 + Duration::from_secs(1);
    core.handle(Event::FilesChanged, t1);
    core.handle(Event::Tick, t1);
    let effects = core.handle(all_stopped(), t1);
    assert!(stops(&effects).is_empty(), "{effects:?}");
    let effects = gone(&mut core, "edge:x", t1);
    assert_eq!(stops(&effects), ["web:a", "web:b"]);
    assert!(
        notes(&effects).iter().any(|note| note == "stop: stopping"),
        "each stop is told as before: {:?}",
        notes(&effects)
    );
    gone(&mut core, "web:a", t1);
    let effects = gone(&mut core, "web:b", t1);
    assert_eq!(stops(&effects), ["queue:0"]);
    gone(&mut core, "queue:0", t1);
    assert!(core.plan().0.is_empty());
}

#[test]
fn a_start_while_waiting_cancels_the_stop() {
    let t0 = Instant::now();
    let mut core = started(ORDERED, t0);
    core.handle(Event::FilesChanged, t0);
    core.handle(Event::Tick, t0);
    core.handle(all_stopped(), t0);
    // Declared running again before its turn: the queue's stop is dropped, nothing starts
    // (it never stopped), and the others stop as they would.
    core.handle(Event::FilesChanged, t0);
    core.handle(Event::Tick, t0);
    let effects = core.handle(reloaded(ORDERED), t0);
    assert!(
        !stops(&effects).contains(&"queue:0".to_string()),
        "{effects:?}"
    );
    let effects = gone(&mut core, "edge:x", t0);
    assert!(stops(&effects).is_empty(), "{effects:?}");
}

#[test]
fn a_forced_restart_is_ordered_as_such() {
    let t0 = Instant::now();
    let mut core = started(ORDERED, t0);
    let effects = core.handle(
        Event::Restart {
            key: key("web:a"),
            force: true,
        },
        t0,
    );
    assert_eq!(orders(&effects), ["web:a force-restart"]);
    assert_eq!(
        notes(&effects),
        ["restart: restarting on request, with SIGKILL"]
    );
    let effects = core.handle(
        Event::Restart {
            key: key("web:a"),
            force: false,
        },
        t0,
    );
    assert_eq!(orders(&effects), ["web:a restart"]);
}
