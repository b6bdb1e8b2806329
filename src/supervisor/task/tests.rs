use super::*;
use crate::config::parse_config;
use crate::desired::{DesiredState, resolve};
use crate::observed::{Health, Phase};
use crate::runtime::GroupSignal;
use crate::runtime::fake::FakeRuntime;
use crate::runtime::ports::port_is_free;

struct Harness {
    runtime: FakeRuntime,
    shared: Arc<Shared<FakeRuntime>>,
    desired: DesiredState,
    /// The first port of this harness's range: each harness has its own, since a restart
    /// checks with a real bind that its port is still free, and tests run side by side.
    base: u16,
    _dir: tempfile::TempDir,
}

fn harness(service: &str) -> Harness {
    harness_with("backoff_base_ms = 1000", service)
}

/// A harness with `settings` added to [settings].
fn harness_with(settings: &str, service: &str) -> Harness {
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    // A hundred ports no other harness has and nothing on this machine listens on (a
    // restart checks that its port is free; a benchmark's tenants may hold some).
    let base = loop {
        let base = 20000 + 100 * NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if (base..base + 100).all(port_is_free) {
            break base;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[settings]\nmax_restarts = 3\nhealth_check_interval = 10\n{settings}\n{service}\n[instances]\nweb = [\"a\", \"b\"]\n"
    );
    let mut diagnostics = Vec::new();
    let config = parse_config(&dir.path().join("tenement.toml"), text, &mut diagnostics)
        .config
        .unwrap_or_else(|| panic!("{diagnostics:?}"));
    let desired = resolve(config, &[], &mut diagnostics);
    let runtime = FakeRuntime::new();
    let (changed, _) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        runtime: Arc::new(runtime.clone()),
        logs: LogHub::new(dir.path().join("logs")),
        events: EventLog::default(),
        ports: Arc::new(Mutex::new(PortAllocator::new((base, base + 99)))),
        base_env: BaseEnv::from_process(),
        startup_permits: Arc::new(Semaphore::new(8)),
        admission: Arc::default(),
        tasks: tokio::runtime::Handle::current(),
        changed,
    });
    Harness {
        runtime,
        shared,
        desired,
        base,
        _dir: dir,
    }
}

impl Harness {
    /// The `n`th port of this harness's range.
    fn port(&self, n: u16) -> u16 {
        self.base + n
    }

    fn key(&self, id: &str) -> InstanceKey {
        InstanceKey::parse(&format!("web:{id}")).unwrap()
    }

    fn start(&self, id: &str, port: u16) -> InstanceHandle {
        self.start_with_gate(id, port).0
    }

    fn start_with_gate(&self, id: &str, port: u16) -> (InstanceHandle, Arc<Gate>) {
        let spec = Arc::clone(&self.desired.instances[&self.key(id)]);
        let (handle, gate) = spawn_instance(
            Arc::clone(&self.shared),
            Arc::clone(&spec),
            &Arc::new(self.desired.config.settings.clone()),
            port,
            None,
        );
        handle.send(Command::Start(spec));
        (handle, gate)
    }
}

/// Waits (on paused time) until the status satisfies `check`.
async fn until(handle: &InstanceHandle, check: impl Fn(&InstanceStatus) -> bool) -> InstanceStatus {
    let mut status = handle.status.clone();
    let found =
        tokio::time::timeout(Duration::from_secs(3600), status.wait_for(|s| check(s))).await;
    found
        .expect("status never reached")
        .expect("task alive")
        .clone()
}

const CRASH: ProcessExit = ProcessExit {
    code: Some(1),
    signal: None,
};

/// A timer `waited` for came when it was `due`, or less than a grain later: far deadlines come
/// on their grain ([`coalesce`]).
fn on_time(waited: Duration, due: Duration) {
    assert!(
        waited >= due && waited < due + grain(due),
        "waited {waited:?} for {due:?}"
    );
}

/// A check answers for the process it was asked for, never for the next: one held while its
/// process ends and the next one starts (as a wake's check waits for the process to listen)
/// is not counted for the new process, which is checked anew.
#[tokio::test(start_paused = true)]
async fn a_check_of_a_process_that_ended_does_not_count_for_the_next() {
    let harness = harness("[service.web]\ncommand = \"./web\"\nhealth = \"/health\"\n");
    let key = harness.key("a");
    harness.runtime.hold_probes(&key);
    let handle = harness.start("a", harness.port(1));
    let first = until(&handle, |s| s.pid.is_some()).await.pid.unwrap();
    while harness.runtime.probes().is_empty() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    harness.runtime.exit(first, CRASH);
    let next = until(&handle, |s| s.pid.is_some_and(|pid| pid != first))
        .await
        .pid
        .unwrap();
    assert_eq!(next, harness.runtime.pid_of(&key).unwrap());
    let asked = harness.runtime.probes();
    assert!(
        asked
            .iter()
            .all(|(_, probe, _)| probe.keep.as_ref().map(|keep| keep.pid) == Some(first)),
        "only the first process was asked about while its check was held: {asked:?}"
    );
    // The held check of `first` now answers, and would say healthy: `next` runs.
    harness.runtime.release_probes(&key);
    let running = until(&handle, |s| s.phase == Phase::Running).await;
    assert_eq!(running.pid, Some(next));
    assert_eq!(running.health, Health::Healthy);
    let asked_after: Vec<u32> = harness.runtime.probes()[asked.len()..]
        .iter()
        .filter_map(|(_, probe, _)| probe.keep.as_ref().map(|keep| keep.pid))
        .collect();
    assert!(
        asked_after.contains(&next),
        "{next} was called healthy without a check of its own (checks asked after the release: {asked_after:?})"
    );
}

#[tokio::test(start_paused = true)]
async fn a_killed_instance_is_restarted_after_backoff() {
    let harness = harness("[service.web]\ncommand = \"./web\"\nhealth = \"/health\"\n");
    let handle = harness.start("a", harness.port(1));
    let running = until(&handle, |s| s.phase == Phase::Running).await;
    assert_eq!(running.health, Health::Healthy);
    let first_pid = running.pid.unwrap();
    let launch = &harness.runtime.launches()[0];
    assert!(
        launch
            .env
            .contains(&("PORT".to_string(), harness.port(1).to_string()))
    );

    let killed_at = Instant::now();
    harness.runtime.exit(
        first_pid,
        ProcessExit {
            code: None,
            signal: Some(9),
        },
    );
    let backoff = until(&handle, |s| s.phase == Phase::Backoff).await;
    assert_eq!(
        backoff.note.as_deref(),
        Some("killed by signal 9 (SIGKILL)")
    );
    let again = until(&handle, |s| s.phase == Phase::Running).await;
    assert_ne!(again.pid, Some(first_pid));
    assert_eq!(again.restarts, 1);
    assert_eq!(
        again.port,
        harness.port(1),
        "the port is stable across restarts"
    );
    let waited = Instant::now() - killed_at;
    assert!(
        waited >= Duration::from_secs(1) && waited < Duration::from_secs(2),
        "{waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn with_a_backoff_of_zero_a_crash_restarts_at_once_and_a_crash_loop_still_fails() {
    let harness = harness_with(
        "backoff_base_ms = 0",
        "[service.web]\ncommand = \"./web\"\nhealth = \"/health\"\n",
    );
    let handle = harness.start("a", harness.port(1));
    let mut status = until(&handle, |s| s.phase == Phase::Running).await;
    let crashed_at = Instant::now();
    for round in 1..=3 {
        let pid = status.pid.unwrap();
        harness.runtime.exit(pid, CRASH);
        status = until(&handle, |s| s.phase == Phase::Running && s.pid != Some(pid)).await;
        assert_eq!(status.restarts, round, "every restart counts");
    }
    // On paused time: only the readiness probes' few milliseconds passed, no backoff.
    let waited = Instant::now() - crashed_at;
    assert!(waited < Duration::from_millis(100), "{waited:?}");
    harness.runtime.exit(status.pid.unwrap(), CRASH);
    let failed = until(&handle, |s| s.phase == Phase::Failed).await;
    assert!(
        failed
            .note
            .unwrap()
            .starts_with("failed: exited with code 1, after 3 restarts"),
    );
    assert_eq!(harness.runtime.launches().len(), 4);
}

#[tokio::test(start_paused = true)]
async fn a_crash_loop_fails_while_a_neighbour_recovers_promptly() {
    let harness = harness("[service.web]\ncommand = \"./web\"\n");
    let looping = harness.start("a", harness.port(1));
    let neighbour = harness.start("b", harness.port(2));
    until(&neighbour, |s| s.phase == Phase::Running).await;
    for round in 0..4 {
        let status = until(&looping, |s| s.phase == Phase::Running).await;
        harness.runtime.exit(status.pid.unwrap(), CRASH);
        if round < 3 {
            until(&looping, |s| {
                s.phase == Phase::Backoff && s.restarts == round + 1
            })
            .await;
        }
    }
    let failed = until(&looping, |s| s.phase == Phase::Failed).await;
    assert_eq!(failed.health, Health::Failed);
    assert!(
        failed
            .note
            .unwrap()
            .starts_with("failed: exited with code 1, after 3 restarts")
    );

    // The neighbour's own exit is handled on its own clock.
    let pid = neighbour.status.borrow().pid.unwrap();
    let killed_at = Instant::now();
    harness.runtime.exit(
        pid,
        ProcessExit {
            code: None,
            signal: Some(9),
        },
    );
    until(&neighbour, |s| {
        s.phase == Phase::Running && s.pid != Some(pid)
    })
    .await;
    assert!(Instant::now() - killed_at < Duration::from_secs(2));

    // `ten restart` retries the failed one.
    looping.send(Command::Restart);
    until(&looping, |s| s.phase == Phase::Running).await;
}

#[tokio::test(start_paused = true)]
async fn a_stubborn_process_is_killed_after_stop_timeout() {
    let harness = harness("[service.web]\ncommand = \"./web\"\nstop_timeout = 7\n");
    let handle = harness.start("a", harness.port(1));
    let pid = until(&handle, |s| s.phase == Phase::Running)
        .await
        .pid
        .unwrap();
    harness.runtime.ignore_stop_signal(&harness.key("a"));
    let stopped_at = Instant::now();
    handle.send(Command::Stop);
    until(&handle, |s| s.phase == Phase::Stopped).await;
    on_time(Instant::now() - stopped_at, Duration::from_secs(7));
    let signals: Vec<GroupSignal> = harness
        .runtime
        .signals()
        .into_iter()
        .filter(|(p, _)| *p == pid)
        .map(|(_, s)| s)
        .collect();
    assert_eq!(
        signals[0],
        GroupSignal::Stop(crate::config::StopSignal::Term)
    );
    assert_eq!(signals[1], GroupSignal::Kill);
}

#[tokio::test(start_paused = true)]
async fn remove_ends_the_task() {
    let harness = harness("[service.web]\ncommand = \"./web\"\n");
    let handle = harness.start("a", harness.port(1));
    until(&handle, |s| s.phase == Phase::Running).await;
    handle.send(Command::Remove);
    let last = until(&handle, |s| s.removed).await;
    assert_eq!(last.pid, None);
    assert!(harness.runtime.pid_of(&harness.key("a")).is_none());
}

#[tokio::test(start_paused = true)]
async fn an_unhealthy_instance_is_restarted() {
    let harness = harness("[service.web]\ncommand = \"./web\"\nhealth = \"/health\"\n");
    let handle = harness.start("a", harness.port(1));
    let pid = until(&handle, |s| s.phase == Phase::Running).await.pid;
    harness.runtime.set_healthy(&harness.key("a"), false);
    until(&handle, |s| s.health == Health::Degraded).await;
    until(&handle, |s| s.phase == Phase::Backoff).await;
    harness.runtime.set_healthy(&harness.key("a"), true);
    let back = until(&handle, |s| s.phase == Phase::Running).await;
    assert_ne!(back.pid, pid);
}

#[tokio::test(start_paused = true)]
async fn an_idle_instance_sleeps_and_a_request_wakes_it() {
    let harness =
        harness("[service.web]\ncommand = \"./web\"\nhealth = \"/health\"\nidle_timeout = 60\n");
    let (handle, gate) = harness.start_with_gate("a", harness.port(1));
    let pid = until(&handle, |s| s.phase == Phase::Running).await.pid;
    // Traffic keeps it awake.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_secs(40)).await;
        drop(gate.lease().expect("open while running"));
    }
    assert_eq!(handle.status.borrow().phase, Phase::Running);
    // A request in flight keeps it awake past the timeout.
    let lease = gate.lease().unwrap();
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(handle.status.borrow().phase, Phase::Running);
    drop(lease);
    let asleep_at = Instant::now();
    until(&handle, |s| s.phase == Phase::Sleeping).await;
    on_time(Instant::now() - asleep_at, Duration::from_secs(60));
    assert!(gate.lease().is_none(), "closed while asleep");
    let waits = |probes: &[(InstanceKey, crate::runtime::Probe, Instant)]| {
        probes
            .iter()
            .map(|(_, probe, _)| probe.listening_within)
            .collect::<Vec<_>>()
    };
    let before = harness.runtime.probes().len();
    assert!(
        waits(&harness.runtime.probes()).iter().all(Option::is_none),
        "no request waited for the first start or its checks"
    );
    // Between two milliseconds, where the runtime's timers would round a due deadline up.
    tokio::time::advance(Duration::from_micros(500)).await;
    let woke_at = Instant::now();
    gate.request_wake();
    let woken = until(&handle, |s| s.phase == Phase::Running).await;
    assert_ne!(woken.pid, pid);
    assert!(gate.lease().is_some());
    assert_eq!(
        harness.runtime.probes()[before].2,
        woke_at,
        "the wake's first check goes at once, not at the timers' next tick"
    );
    // The check of the woken start waits for the instance to listen; the periodic checks that
    // follow do not.
    tokio::time::sleep(Duration::from_secs(60)).await;
    let after = waits(&harness.runtime.probes()[before..]);
    assert!(after.len() > 1, "{after:?}");
    assert_eq!(
        after[0],
        Some(
            (harness.desired.instances[&harness.key("a")].timing.timeout / 2)
                .min(super::probing::WAKE_WAIT)
        )
    );
    assert!(after[1..].iter().all(Option::is_none), "{after:?}");
}

#[tokio::test(start_paused = true)]
async fn an_instance_made_asleep_says_so_at_once_keeps_settings_and_its_first_request_wakes_it() {
    let harness =
        harness("[service.web]\ncommand = \"./web\"\nhealth = \"/health\"\nidle_timeout = 60\n");
    let spec = Arc::clone(&harness.desired.instances[&harness.key("a")]);
    let settings = Arc::new(harness.desired.config.settings.clone());
    let (handle, gate) = spawn_asleep(
        Arc::clone(&harness.shared),
        spec,
        &settings,
        harness.port(1),
    );
    // Asleep from the start, as a task told `Asleep` says, with no process.
    assert_eq!(handle.status.borrow().phase, Phase::Sleeping);
    assert_eq!(handle.status.borrow().port, harness.port(1));
    handle.send(Command::Settings(Arc::clone(&settings)));
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(handle.status.borrow().phase, Phase::Sleeping);
    assert!(harness.runtime.pid_of(&harness.key("a")).is_none());
    assert!(gate.lease().is_none(), "closed while asleep");
    assert!(
        handle.commands.is_dormant(),
        "no task before a command needs one"
    );
    // The first request makes the task and wakes it; idle again, it sleeps again.
    gate.request_wake();
    assert!(!handle.commands.is_dormant());
    let woken = until(&handle, |s| s.phase == Phase::Running).await;
    assert!(woken.pid.is_some());
    assert!(gate.lease().is_some());
    until(&handle, |s| s.phase == Phase::Sleeping).await;
    handle.send(Command::Remove);
    until(&handle, |s| s.removed).await;
}

#[tokio::test(start_paused = true)]
async fn a_failed_wake_reaches_the_gate() {
    let harness = harness("[service.web]\ncommand = \"./web\"\nidle_timeout = 1\n");
    let (handle, gate) = harness.start_with_gate("a", harness.port(1));
    until(&handle, |s| s.phase == Phase::Sleeping).await;
    harness.runtime.fail_spawns(&harness.key("a"));
    let before = gate.wake_failures();
    let changed = gate.changed();
    gate.request_wake();
    changed.await;
    until(&handle, |s| s.phase == Phase::Sleeping && s.note.is_some()).await;
    assert_eq!(gate.wake_failures(), before + 1);
    assert!(
        gate.wake_error()
            .unwrap()
            .starts_with("wake failed: could not start")
    );
}

#[tokio::test(start_paused = true)]
async fn a_stop_waits_for_requests_in_flight() {
    let harness = harness("[service.web]\ncommand = \"./web\"\nstop_timeout = 30\n");
    let (handle, gate) = harness.start_with_gate("a", harness.port(1));
    let pid = until(&handle, |s| s.phase == Phase::Running)
        .await
        .pid
        .unwrap();
    let lease = gate.lease().unwrap();
    handle.send(Command::Stop);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        harness.runtime.signals().iter().all(|(p, _)| *p != pid),
        "no signal while a request is in flight"
    );
    assert!(gate.lease().is_none(), "no new requests meanwhile");
    drop(lease);
    until(&handle, |s| s.phase == Phase::Stopped).await;
}

/// A replace side by side, as the reconciler makes it: a new task on `port` sharing the
/// old one's gate takes it over, and the old one retires after it.
fn replace(harness: &Harness, old: &InstanceHandle, gate: &Arc<Gate>, port: u16) -> InstanceHandle {
    let spec = Arc::clone(&harness.desired.instances[&harness.key("a")]);
    let (new, _) = spawn_instance(
        Arc::clone(&harness.shared),
        Arc::clone(&spec),
        &Arc::new(harness.desired.config.settings.clone()),
        port,
        Some(Arc::clone(gate)),
    );
    new.send(Command::Start(spec));
    gate.set_owner(new.owner());
    old.send(Command::RetireAfter(new.status.clone()));
    new
}

#[tokio::test(start_paused = true)]
async fn a_replaced_instance_retires_once_its_replacement_is_healthy_after_its_requests() {
    let harness = harness("[service.web]\ncommand = \"./web\"\nhealth = \"/health\"\n");
    let (old, gate) = harness.start_with_gate("a", harness.port(1));
    let old_pid = until(&old, |s| s.phase == Phase::Running)
        .await
        .pid
        .unwrap();
    let lease = gate.lease().unwrap();
    let new = replace(&harness, &old, &gate, harness.port(2));
    until(&new, |s| s.health == Health::Healthy).await;
    until(&old, |s| s.phase == Phase::Stopping).await;
    assert_eq!(
        gate.lease().unwrap().target(),
        &Target::Tcp(harness.port(2)),
        "the replacement has the traffic"
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        harness.runtime.signals().iter().all(|(p, _)| *p != old_pid),
        "no signal while its request is in flight"
    );
    drop(lease);
    until(&old, |s| s.removed).await;
    assert_eq!(new.status.borrow().phase, Phase::Running);
}

#[tokio::test(start_paused = true)]
async fn a_replaced_instance_stays_when_its_replacement_is_removed_first() {
    let harness = harness("[service.web]\ncommand = \"./web\"\nhealth = \"/health\"\n");
    let (old, gate) = harness.start_with_gate("a", harness.port(1));
    until(&old, |s| s.phase == Phase::Running).await;
    harness.runtime.fail_spawns(&harness.key("a"));
    let new = replace(&harness, &old, &gate, harness.port(2));
    until(&new, |s| s.phase == Phase::Backoff).await;
    new.send(Command::Remove);
    until(&new, |s| s.removed).await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(old.status.borrow().phase, Phase::Running);
    assert_eq!(
        gate.lease().unwrap().target(),
        &Target::Tcp(harness.port(1))
    );
}

#[test]
fn far_deadlines_fire_together_on_the_grain_and_near_ones_as_they_are() {
    let epoch = Instant::now();
    let now = epoch + Duration::from_secs(100);
    let ms = Duration::from_millis;
    // A probe of a starting process, 3 ms off: as it is.
    assert_eq!(coalesce(now + ms(3), now, epoch), now + ms(3));
    // Backoff 5 s off, just past a grain and well into it: the next 250 ms grain, both.
    let fine = now + Duration::from_secs(5);
    assert_eq!(coalesce(fine + ms(1), now, epoch), fine + TIMER_GRAIN);
    assert_eq!(
        coalesce(fine + TIMER_GRAIN - ms(1), now, epoch),
        fine + TIMER_GRAIN
    );
    // Periodic checks 10 s off: on the second, the checks of a whole second together.
    let coarse = now + Duration::from_secs(10);
    assert_eq!(coalesce(coarse + ms(1), now, epoch), coarse + COARSE_GRAIN);
    assert_eq!(
        coalesce(coarse + COARSE_GRAIN - ms(1), now, epoch),
        coarse + COARSE_GRAIN
    );
    // On a grain: as it is; never earlier, never a grain or more late, never more late than
    // an eighth of the wait.
    assert_eq!(coalesce(fine, now, epoch), fine);
    assert_eq!(coalesce(coarse, now, epoch), coarse);
    for offset in (0..20_000).step_by(7) {
        let deadline = now + COALESCE_FROM + ms(offset);
        let fired = coalesce(deadline, now, epoch);
        let away = deadline - now;
        assert!(fired >= deadline && fired - deadline < grain(away));
        assert!((fired - deadline) * 8 <= away, "{away:?} off, {fired:?}");
    }
    // The coarse grain is a multiple of the fine one, so deadlines on either meet.
    assert_eq!(COARSE_GRAIN.as_nanos() % TIMER_GRAIN.as_nanos(), 0);
    assert!(COARSE_GRAIN * 8 <= COARSE_FROM && TIMER_GRAIN * 8 <= COALESCE_FROM);
}
