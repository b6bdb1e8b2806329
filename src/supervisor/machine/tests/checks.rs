//! Workers (started by uptime, never probed), `health_retries` and `health_start_period`.

use super::*;

/// A worker nothing checks: started once up `start_seconds`.
fn worker() -> Machine {
    Machine::new(Policy {
        liveness: Some(secs(1)),
        ..policy()
    })
}

#[test]
fn a_worker_counts_as_started_after_start_seconds_and_is_never_probed() {
    let t0 = Instant::now();
    let mut machine = worker();
    machine.step(Input::Start, t0);
    machine.step(Input::Spawned { pid: 7 }, t0);
    assert_eq!(machine.phase(), Phase::Starting);
    assert_eq!(machine.deadline(), Some(t0 + secs(1)));
    // Early: still starting, and nothing to probe.
    let early = machine.step(Input::Tick, t0 + Duration::from_millis(500));
    assert!(!early.contains(&Effect::Probe), "{early:?}");
    assert_eq!(machine.phase(), Phase::Starting);
    let effects = machine.step(Input::Tick, t0 + secs(1));
    assert_eq!(machine.phase(), Phase::Running);
    assert_eq!(machine.health, Health::Healthy);
    assert!(
        effects.iter().any(
            |effect| matches!(effect, Effect::Event(text) if text.starts_with("running (up 1s"))
        ),
        "{effects:?}"
    );
    // Running: no probe is ever due.
    assert_eq!(machine.deadline(), None);
    let later = machine.step(Input::Tick, t0 + secs(3600));
    assert!(later.is_empty(), "{later:?}");
}

#[test]
fn a_worker_that_exits_before_start_seconds_is_a_failed_start_and_ends_failed() {
    let t0 = Instant::now();
    let mut machine = worker();
    machine.step(Input::Start, t0);
    let mut now = t0;
    for _ in 0..=machine.policy.max_restarts {
        machine.step(Input::Spawned { pid: 7 }, now);
        now += Duration::from_millis(100);
        machine.step(Input::Exited(CRASH), now);
        if let Some(until) = machine.deadline() {
            now = until;
            machine.step(Input::Tick, now);
        }
    }
    assert_eq!(machine.phase(), Phase::Failed, "{:?}", machine.state);
}

#[test]
fn health_retries_and_the_start_period_decide_when_failures_make_it_unhealthy() {
    let t0 = Instant::now();
    let mut machine = Machine::new(Policy {
        retries: 2,
        start_period: secs(30),
        ..policy()
    });
    machine.step(Input::Start, t0);
    machine.step(Input::Spawned { pid: 7 }, t0);
    machine.step(Input::Tick, t0 + FIRST_PROBE_GAP);
    machine.step(Input::ProbeDone(Ok(())), t0 + FIRST_PROBE_GAP);
    // Within the start period, failures do not count.
    for at in [secs(10), secs(20)] {
        machine.step(Input::Tick, t0 + at);
        machine.step(Input::ProbeDone(Err("refused".into())), t0 + at);
        assert_eq!(machine.phase(), Phase::Running);
    }
    assert!(matches!(machine.state, State::Running { failures: 0, .. }));
    // After it, 2 in a row (health_retries) make it unhealthy and restart it.
    machine.step(Input::Tick, t0 + secs(40));
    machine.step(Input::ProbeDone(Err("refused".into())), t0 + secs(40));
    assert_eq!(machine.health, Health::Degraded);
    machine.step(Input::Tick, t0 + secs(50));
    let effects = machine.step(Input::ProbeDone(Err("refused".into())), t0 + secs(50));
    assert_eq!(machine.health, Health::Unhealthy);
    assert!(
        effects
            .iter()
            .any(|effect| matches!(effect, Effect::Signal { pid: 7, .. })),
        "{effects:?}"
    );
}

#[test]
fn the_first_periodic_check_comes_at_the_offset_and_later_ones_at_the_interval() {
    let t0 = Instant::now();
    let mut machine = Machine::new(Policy {
        check_offset: secs(3),
        ..policy()
    });
    machine.step(Input::Start, t0);
    machine.step(Input::Spawned { pid: 7 }, t0);
    machine.step(Input::Tick, t0 + FIRST_PROBE_GAP);
    let healthy = t0 + FIRST_PROBE_GAP;
    machine.step(Input::ProbeDone(Ok(())), healthy);
    assert_eq!(machine.deadline(), Some(healthy + secs(3)));
    assert_eq!(
        machine.step(Input::Tick, healthy + secs(3)),
        [Effect::Probe]
    );
    machine.step(Input::ProbeDone(Ok(())), healthy + secs(3));
    assert_eq!(machine.deadline(), Some(healthy + secs(13)));
}

#[test]
fn a_check_ten_could_not_run_counts_for_nothing_and_the_next_comes_on_time() {
    let t0 = Instant::now();
    let mut machine = Machine::new(Policy {
        retries: 2,
        ..policy()
    });
    machine.step(Input::Start, t0);
    machine.step(Input::Spawned { pid: 7 }, t0);
    // Starting: not run, still starting, probed again after the gap.
    machine.step(Input::Tick, t0 + FIRST_PROBE_GAP);
    let effects = machine.step(Input::ProbeNotRun, t0 + FIRST_PROBE_GAP);
    assert!(effects.is_empty(), "{effects:?}");
    assert_eq!(machine.phase(), Phase::Starting);
    let retry = machine.deadline().expect("another probe is due");
    assert!(retry > t0 + FIRST_PROBE_GAP);
    machine.step(Input::Tick, retry);
    machine.step(Input::ProbeDone(Ok(())), retry);
    assert_eq!(machine.health, Health::Healthy);
    // Running, one real failure: then many checks not run change nothing, ever.
    let mut now = machine.deadline().unwrap();
    machine.step(Input::Tick, now);
    machine.step(Input::ProbeDone(Err("refused".into())), now);
    assert_eq!(machine.health, Health::Degraded);
    for _ in 0..10 {
        now = machine.deadline().unwrap();
        assert_eq!(machine.step(Input::Tick, now), [Effect::Probe]);
        let effects = machine.step(Input::ProbeNotRun, now);
        assert!(effects.is_empty(), "{effects:?}");
        assert_eq!(machine.phase(), Phase::Running);
        assert_eq!(
            machine.deadline(),
            Some(now + machine.policy.check_interval)
        );
    }
    assert!(matches!(machine.state, State::Running { failures: 1, .. }));
    assert_eq!(machine.health, Health::Degraded);
}
