//! Idle, drain and retire, driven by what the task says of requests and of a replacement.

use super::*;

const STOP: Effect = Effect::Signal {
    pid: 7,
    signal: GroupSignal::Stop(StopSignal::Term),
};

const TERMINATED: ProcessExit = ProcessExit {
    code: None,
    signal: Some(15),
};

fn millis(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A machine running since `t0` with this idle timeout, checked only hourly, so that its
/// deadline is the idle one.
fn serving(t0: Instant, idle_timeout: Duration) -> Machine {
    let mut machine = Machine::new(Policy {
        idle_timeout,
        check_interval: secs(3600),
        check_offset: secs(3600),
        ..policy()
    });
    machine.step(Input::Start, t0);
    machine.step(Input::Spawned { pid: 7 }, t0);
    machine.step(Input::Tick, t0 + FIRST_PROBE_GAP);
    machine.step(Input::ProbeDone(Ok(())), t0 + FIRST_PROBE_GAP);
    assert_eq!(machine.running_since(), Some(t0));
    machine
}

/// What the task saw at the gate.
fn traffic(last_activity: Instant, in_flight: u32) -> Input {
    Input::Traffic(Traffic {
        last_activity,
        in_flight,
    })
}

/// A look at the replacement (pid 9).
fn replacement(phase: Phase, health: Health) -> Input {
    Input::Successor(Some(InstanceStatus {
        phase,
        health,
        pid: Some(9),
        ..InstanceStatus::stopped(30002)
    }))
}

#[test]
fn idle_for_its_idle_timeout_with_nothing_in_flight_it_falls_asleep() {
    let t0 = Instant::now();
    let mut machine = serving(t0, secs(60));
    assert_eq!(
        machine.deadline(),
        Some(t0 + secs(60)),
        "idle since it started"
    );
    machine.step(traffic(t0, 0), t0 + secs(30));
    assert!(machine.step(Input::Tick, t0 + secs(30)).is_empty());
    machine.step(traffic(t0, 0), t0 + secs(60));
    assert_eq!(
        machine.step(Input::Tick, t0 + secs(60)),
        [Effect::Event("idle: going to sleep".into()), STOP]
    );
    assert_eq!(machine.heading_for(), Some(Phase::Sleeping));
    machine.step(Input::Exited(TERMINATED), t0 + secs(60));
    assert_eq!(machine.phase(), Phase::Sleeping);
    assert_eq!(machine.deadline(), None);
}

#[test]
fn activity_pushes_the_idle_deadline() {
    let t0 = Instant::now();
    let started = t0 + secs(10);
    let mut machine = serving(started, secs(60));
    machine.step(traffic(t0, 0), started);
    assert_eq!(
        machine.deadline(),
        Some(started + secs(60)),
        "a request before this process started says nothing about it"
    );
    machine.step(traffic(t0 + secs(40), 0), t0 + secs(45));
    assert_eq!(machine.deadline(), Some(t0 + secs(100)));
    machine.step(traffic(t0 + secs(40), 0), t0 + secs(70));
    assert!(
        machine.step(Input::Tick, t0 + secs(70)).is_empty(),
        "a request ended 30 s ago"
    );
    machine.step(traffic(t0 + secs(40), 0), t0 + secs(100));
    assert_eq!(
        events(&machine.step(Input::Tick, t0 + secs(100))),
        ["idle: going to sleep"]
    );
}

#[test]
fn a_request_in_flight_keeps_it_awake_and_its_end_counts_as_activity() {
    let t0 = Instant::now();
    let mut machine = serving(t0, secs(60));
    machine.step(traffic(t0, 1), t0 + secs(60));
    assert!(
        machine.step(Input::Tick, t0 + secs(60)).is_empty(),
        "busy past its idle timeout"
    );
    assert_eq!(
        machine.deadline(),
        Some(t0 + secs(60) + IDLE_RECHECK),
        "it looks again: the end of a request is not announced"
    );
    machine.step(traffic(t0, 1), t0 + secs(61));
    assert!(machine.step(Input::Tick, t0 + secs(61)).is_empty());
    // The request ended at 61.5 s: idle a whole timeout after that.
    machine.step(traffic(t0 + millis(61_500), 0), t0 + secs(62));
    assert!(machine.step(Input::Tick, t0 + secs(62)).is_empty());
    assert_eq!(machine.deadline(), Some(t0 + millis(121_500)));
    machine.step(traffic(t0 + millis(61_500), 0), t0 + millis(121_500));
    assert_eq!(
        events(&machine.step(Input::Tick, t0 + millis(121_500))),
        ["idle: going to sleep"]
    );
}

#[test]
fn without_an_idle_timeout_or_while_replaced_it_never_sleeps() {
    let t0 = Instant::now();
    let next_check = t0 + FIRST_PROBE_GAP + secs(3600);
    let mut machine = serving(t0, Duration::ZERO);
    assert_eq!(machine.deadline(), Some(next_check), "only its next check");
    machine.step(traffic(t0, 0), t0 + secs(3000));
    assert!(machine.step(Input::Tick, t0 + secs(3000)).is_empty());

    let mut machine = serving(t0, secs(60));
    assert!(
        machine
            .step(replacement(Phase::Starting, Health::Unknown), t0)
            .is_empty()
    );
    assert!(machine.retiring);
    assert_eq!(machine.deadline(), Some(next_check));
    machine.step(traffic(t0, 0), t0 + secs(120));
    assert!(machine.step(Input::Tick, t0 + secs(120)).is_empty());
    assert_eq!(machine.phase(), Phase::Running);
}

#[test]
fn a_stop_holds_its_signal_until_the_requests_in_flight_are_done() {
    let t0 = Instant::now();
    let mut machine = running(t0);
    machine.step(traffic(t0, 2), t0);
    assert!(
        machine.step(Input::Stop, t0).is_empty(),
        "no signal while requests are in flight"
    );
    assert_eq!(machine.heading_for(), Some(Phase::Stopped));
    assert!(machine.draining());
    assert_eq!(machine.deadline(), Some(t0 + DRAIN_CHECK));
    let t1 = t0 + DRAIN_CHECK;
    machine.step(traffic(t0, 1), t1);
    assert!(machine.step(Input::Tick, t1).is_empty());
    assert_eq!(machine.deadline(), Some(t1 + DRAIN_CHECK));
    let t2 = t1 + DRAIN_CHECK;
    machine.step(traffic(t1, 0), t2);
    assert_eq!(machine.step(Input::Tick, t2), [STOP]);
    assert!(!machine.draining());
    assert_eq!(
        machine.deadline(),
        Some(t0 + secs(10)),
        "SIGKILL stop_timeout after the stop was decided"
    );
    machine.step(Input::Exited(TERMINATED), t2);
    assert_eq!(machine.phase(), Phase::Stopped);
}

#[test]
fn a_drain_that_outlasts_stop_timeout_ends_in_sigkill() {
    let t0 = Instant::now();
    let mut machine = running(t0);
    machine.step(traffic(t0, 1), t0);
    machine.step(Input::Restart, t0);
    let kill_at = t0 + secs(10);
    machine.step(traffic(t0, 1), kill_at);
    let effects = machine.step(Input::Tick, kill_at);
    assert_eq!(
        effects[1..],
        [Effect::Signal {
            pid: 7,
            signal: GroupSignal::Kill
        }]
    );
    assert!(!machine.draining(), "the held signal is moot");
    assert_eq!(machine.deadline(), None);
    machine.step(traffic(t0, 0), kill_at);
    assert!(machine.step(Input::Tick, kill_at).is_empty());
    assert_eq!(
        machine.step(Input::Exited(TERMINATED), kill_at)[1],
        Effect::Spawn
    );
}

#[test]
fn a_replaced_process_goes_once_its_replacement_runs_healthy_after_its_requests() {
    let t0 = Instant::now();
    let mut machine = running(t0);
    for (phase, health) in [
        (Phase::Starting, Health::Unknown),
        (Phase::Running, Health::Unknown),
        (Phase::Backoff, Health::Unknown),
    ] {
        assert!(machine.step(replacement(phase, health), t0).is_empty());
        assert!(machine.retiring, "it serves until then");
    }
    machine.step(traffic(t0, 1), t0);
    let effects = machine.step(replacement(Phase::Running, Health::Healthy), t0);
    assert_eq!(
        events(&effects),
        ["the replacement (pid 9) is healthy; retiring this process"]
    );
    assert_eq!(effects.len(), 1, "its request in flight finishes first");
    assert!(!machine.retiring);
    assert!(machine.draining());
    let t1 = t0 + DRAIN_CHECK;
    machine.step(traffic(t1, 0), t1);
    assert_eq!(machine.step(Input::Tick, t1), [STOP]);
    machine.step(Input::Exited(TERMINATED), t1);
    assert_eq!(machine.state, State::Removed);
}

#[test]
fn a_replacement_healthy_at_the_first_look_retires_the_process_at_once() {
    let t0 = Instant::now();
    let mut machine = running(t0);
    let effects = machine.step(replacement(Phase::Running, Health::Healthy), t0);
    assert_eq!(effects[1..], [STOP]);
    assert!(!machine.retiring);
    assert_eq!(machine.heading_for(), Some(Phase::Stopped));
}

#[test]
fn a_replaced_process_stays_when_its_replacement_is_gone_first() {
    let t0 = Instant::now();
    let removed = Some(InstanceStatus {
        removed: true,
        ..InstanceStatus::stopped(30002)
    });
    for gone in [None, removed] {
        let mut machine = serving(t0, secs(60));
        machine.step(replacement(Phase::Starting, Health::Unknown), t0);
        assert!(
            machine
                .step(Input::Successor(gone), t0 + secs(1))
                .is_empty()
        );
        assert!(!machine.retiring);
        assert_eq!(machine.phase(), Phase::Running);
        assert_eq!(
            machine.deadline(),
            Some(t0 + secs(60)),
            "it may sleep again"
        );
    }
}

#[test]
fn put_to_sleep_for_memory_only_with_nothing_in_flight() {
    let t0 = Instant::now();
    let mut machine = serving(t0, secs(300));
    let evict = || Input::Evict("memory over target".into());
    // A request in flight: it stays.
    machine.step(traffic(t0, 1), t0 + secs(1));
    assert!(machine.step(evict(), t0 + secs(1)).is_empty());
    assert_eq!(machine.phase(), Phase::Running);
    // Idle now: it goes to sleep, long before its idle timeout.
    machine.step(traffic(t0 + secs(1), 0), t0 + secs(2));
    assert_eq!(
        machine.step(evict(), t0 + secs(2)),
        [
            Effect::Event("memory over target: going to sleep".into()),
            STOP
        ]
    );
    assert_eq!(machine.heading_for(), Some(Phase::Sleeping));
    machine.step(Input::Exited(TERMINATED), t0 + secs(2));
    assert_eq!(machine.phase(), Phase::Sleeping);
    // Asleep, it stays asleep; a request wakes it as ever.
    assert!(machine.step(evict(), t0 + secs(3)).is_empty());
    assert_eq!(machine.phase(), Phase::Sleeping);
    assert_eq!(machine.step(Input::Wake, t0 + secs(4))[1], Effect::Spawn);
}
