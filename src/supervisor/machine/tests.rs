use super::*;
use crate::config::{RestartPolicy, StopSignal};

fn policy() -> Policy {
    Policy {
        restart: RestartPolicy::OnFailure,
        max_restarts: 3,
        restart_window: Duration::from_secs(300),
        backoff_base: Duration::from_secs(1),
        backoff_max: Duration::from_secs(60),
        startup_timeout: Duration::from_secs(10),
        check_interval: Duration::from_secs(10),
        check_offset: Duration::from_secs(10),
        stop_signal: StopSignal::Term,
        stop_timeout: Duration::from_secs(10),
        idle_timeout: Duration::ZERO,
        readiness: Readiness::default(),
        retries: 3,
        start_period: Duration::ZERO,
        liveness: None,
        probe_gaps: (FIRST_PROBE_GAP, MAX_PROBE_GAP),
        readiness_connects: true,
    }
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

const CRASH: ProcessExit = ProcessExit {
    code: Some(1),
    signal: None,
};

/// A machine that was started and answered its first probe at `t0`.
fn running(t0: Instant) -> Machine {
    let mut machine = Machine::new(policy());
    assert_eq!(machine.step(Input::Start, t0), [Effect::Spawn]);
    machine.step(Input::Spawned { pid: 7 }, t0);
    assert_eq!(machine.deadline(), Some(t0 + FIRST_PROBE_GAP));
    assert_eq!(
        machine.step(Input::Tick, t0 + FIRST_PROBE_GAP),
        [Effect::Probe]
    );
    machine.step(Input::ProbeDone(Ok(())), t0 + FIRST_PROBE_GAP);
    assert_eq!(machine.phase(), Phase::Running);
    assert_eq!(machine.health, Health::Healthy);
    machine
}

/// Gives a machine that runs since `t0` an idle timeout of 5 s (shorter than the check
/// interval, so the idle deadline comes first) and no request: the tick at `t0 + 5 s` puts it
/// to sleep. Returns that tick's effects and instant.
fn idle_tick(machine: &mut Machine, t0: Instant) -> (Vec<Effect>, Instant) {
    machine.policy.idle_timeout = secs(5);
    let t1 = t0 + secs(5);
    assert_eq!(machine.deadline(), Some(t1));
    (machine.step(Input::Tick, t1), t1)
}

fn events(effects: &[Effect]) -> Vec<&str> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::Event(text) => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

#[test]
fn readiness_probes_start_fast_and_stay_fine() {
    let t0 = Instant::now();
    let mut machine = Machine::new(policy());
    machine.step(Input::Start, t0);
    machine.step(Input::Spawned { pid: 7 }, t0);
    let mut at = t0;
    let mut gaps = Vec::new();
    for _ in 0..16 {
        let next = machine.deadline().unwrap();
        gaps.push((next - at).as_micros());
        at = next;
        assert_eq!(machine.step(Input::Tick, at), [Effect::Probe]);
        assert_eq!(
            machine.deadline(),
            Some(t0 + secs(10)),
            "no second probe while one is in flight"
        );
        machine.step(Input::ProbeDone(Err("refused".into())), at);
    }
    assert_eq!(
        gaps,
        [
            1000, 1200, 1440, 1728, 2073, 2488, 2985, 3583, 4299, 5159, 6191, 7430, 8916, 10000,
            10000, 10000
        ]
    );
}

#[test]
fn a_wake_checks_at_once_when_readiness_is_a_connection_and_then_as_any_start() {
    let t0 = Instant::now();
    let mut machine = Machine::new(policy());
    machine.step(Input::Asleep, t0);
    machine.step(Input::Wake, t0);
    machine.step(Input::Spawned { pid: 7 }, t0);
    assert_eq!(
        machine.deadline(),
        Some(t0),
        "a request waits: the first check is due"
    );
    assert_eq!(machine.step(Input::Tick, t0), [Effect::Probe]);
    machine.step(Input::ProbeDone(Err("refused".into())), t0);
    assert_eq!(machine.deadline(), Some(t0 + FIRST_PROBE_GAP * 6 / 5));
    // A command check forks: no check at once for it, as for a start nobody waits for.
    let mut forks = Machine::new(Policy {
        readiness_connects: false,
        ..policy()
    });
    forks.step(Input::Asleep, t0);
    forks.step(Input::Wake, t0);
    forks.step(Input::Spawned { pid: 8 }, t0);
    assert_eq!(forks.deadline(), Some(t0 + FIRST_PROBE_GAP));
    let mut eager = Machine::new(policy());
    eager.step(Input::Start, t0);
    eager.step(Input::Spawned { pid: 9 }, t0);
    assert_eq!(eager.deadline(), Some(t0 + FIRST_PROBE_GAP));
}

#[test]
fn health_degrades_then_restarts_with_backoff() {
    let t0 = Instant::now();
    let mut machine = running(t0);
    for failures in 1..=2 {
        let now = machine.deadline().unwrap();
        assert_eq!(machine.step(Input::Tick, now), [Effect::Probe]);
        machine.step(
            Input::ProbeDone(Err("GET /health answered 500".into())),
            now,
        );
        assert_eq!(
            machine.health,
            Health::Degraded,
            "after {failures} failures"
        );
        assert_eq!(machine.phase(), Phase::Running);
    }
    let now = machine.deadline().unwrap();
    machine.step(Input::Tick, now);
    let effects = machine.step(
        Input::ProbeDone(Err("GET /health answered 500".into())),
        now,
    );
    assert_eq!(machine.health, Health::Unhealthy);
    assert_eq!(
        effects[1],
        Effect::Signal {
            pid: 7,
            signal: GroupSignal::Stop(StopSignal::Term)
        }
    );
    let effects = machine.step(
        Input::Exited(ProcessExit {
            code: None,
            signal: Some(15),
        }),
        now,
    );
    assert_eq!(
        events(&effects),
        ["unhealthy after 3 failed checks: GET /health answered 500; restarting in 1s"]
    );
    assert_eq!(
        machine.state,
        State::Backoff {
            until: now + secs(1)
        }
    );
    assert_eq!(machine.step(Input::Tick, now + secs(1)), [Effect::Spawn]);
}

#[test]
fn a_crash_loop_backs_off_exponentially_then_fails() {
    let t0 = Instant::now();
    let mut machine = running(t0);
    let mut now = t0;
    let mut delays = Vec::new();
    for pid in 8..11 {
        machine.step(Input::Exited(CRASH), now);
        let State::Backoff { until } = machine.state else {
            panic!("{:?}", machine.state)
        };
        delays.push((until - now).as_secs());
        now = until;
        machine.step(Input::Tick, now);
        machine.step(Input::Spawned { pid }, now);
    }
    assert_eq!(delays, [1, 2, 4]);
    let effects = machine.step(Input::Exited(CRASH), now);
    assert_eq!(machine.phase(), Phase::Failed);
    assert_eq!(machine.health, Health::Failed);
    assert_eq!(
        events(&effects),
        [
            "failed: exited with code 1, after 3 restarts within 5m; `ten restart` or `ten apply` tries again"
        ]
    );
    assert_eq!(machine.deadline(), None);
    // `ten restart` tries again, with a fresh count.
    assert_eq!(machine.step(Input::Restart, now), [Effect::Spawn]);
    assert!(machine.restarts.is_empty());
}

#[test]
fn a_backoff_of_zero_restarts_at_once_counts_and_still_fails() {
    let t0 = Instant::now();
    let mut machine = running(t0);
    machine.policy.backoff_base = Duration::ZERO;
    machine.policy.backoff_max = Duration::ZERO;
    let mut now = t0;
    for pid in 8..11 {
        now += secs(1);
        let effects = machine.step(Input::Exited(CRASH), now);
        assert_eq!(machine.state, State::Backoff { until: now });
        assert_eq!(events(&effects), ["exited with code 1; restarting in 0s"]);
        assert_eq!(machine.deadline(), Some(now), "due at once");
        assert_eq!(machine.step(Input::Tick, now), [Effect::Spawn]);
        machine.step(Input::Spawned { pid }, now);
        assert_eq!(machine.phase(), Phase::Starting);
    }
    assert_eq!(machine.restarts.len(), 3, "each restart counts");
    machine.step(Input::Exited(CRASH), now);
    assert_eq!(machine.phase(), Phase::Failed, "after max_restarts");
    assert_eq!(machine.deadline(), None);
}

#[test]
fn restarts_older_than_the_window_are_forgotten() {
    let t0 = Instant::now();
    let mut machine = running(t0);
    let mut now = t0;
    for pid in 8..20 {
        machine.step(Input::Exited(CRASH), now);
        let State::Backoff { until } = machine.state else {
            panic!("{:?}", machine.state)
        };
        assert_eq!(
            until - now,
            secs(1),
            "stable for a whole window: the backoff starts over"
        );
        now = until;
        machine.step(Input::Tick, now);
        machine.step(Input::Spawned { pid }, now);
        now += secs(301);
    }
}

#[test]
fn restart_policies() {
    let t0 = Instant::now();
    let clean = ProcessExit {
        code: Some(0),
        signal: None,
    };
    let mut on_failure = running(t0);
    on_failure.step(Input::Exited(clean), t0);
    assert_eq!(on_failure.phase(), Phase::Exited);
    assert_eq!(on_failure.note.as_deref(), Some("exited with code 0"));

    let mut always = running(t0);
    always.policy.restart = RestartPolicy::Always;
    always.step(Input::Exited(clean), t0);
    assert_eq!(always.phase(), Phase::Backoff);

    let mut never = running(t0);
    never.policy.restart = RestartPolicy::Never;
    never.step(Input::Exited(CRASH), t0);
    assert_eq!(never.phase(), Phase::Exited);
}

/// `restart = "always"` as supervisord's `autorestart = true`: a run that got past its start
/// and ended cleanly (a worker recycling itself) is started again, each time, after the base
/// backoff, and is never counted toward `max_restarts`; a crash still is.
#[test]
fn always_restarts_a_clean_exit_after_a_good_run_without_counting_it() {
    let t0 = Instant::now();
    let clean = ProcessExit {
        code: Some(0),
        signal: None,
    };
    let mut machine = running(t0);
    machine.policy.restart = RestartPolicy::Always;
    let mut now = t0;
    for pid in 8..20 {
        machine.step(Input::Exited(clean), now);
        let State::Backoff { until } = machine.state else {
            panic!("{pid}: {:?}", machine.state)
        };
        assert_eq!(until - now, secs(1), "the base backoff, not a growing one");
        now = until;
        assert_eq!(machine.step(Input::Tick, now), [Effect::Spawn]);
        machine.step(Input::Spawned { pid }, now);
        now += FIRST_PROBE_GAP;
        machine.step(Input::Tick, now);
        machine.step(Input::ProbeDone(Ok(())), now);
        assert_eq!(machine.phase(), Phase::Running);
    }
    assert!(machine.restarts.is_empty(), "{:?}", machine.restarts);
    // A crash counts.
    machine.step(Input::Exited(CRASH), now);
    assert_eq!(machine.restarts.len(), 1);
}

#[test]
fn stop_escalates_to_sigkill_after_stop_timeout() {
    let t0 = Instant::now();
    let mut machine = running(t0);
    let effects = machine.step(Input::Stop, t0);
    assert_eq!(
        effects,
        [Effect::Signal {
            pid: 7,
            signal: GroupSignal::Stop(StopSignal::Term)
        }]
    );
    assert_eq!(machine.deadline(), Some(t0 + secs(10)));
    assert!(machine.step(Input::Tick, t0 + secs(9)).is_empty());
    let effects = machine.step(Input::Tick, t0 + secs(10));
    assert_eq!(
        effects[1],
        Effect::Signal {
            pid: 7,
            signal: GroupSignal::Kill
        }
    );
    assert_eq!(machine.deadline(), None);
    let effects = machine.step(
        Input::Exited(ProcessExit {
            code: None,
            signal: Some(9),
        }),
        t0 + secs(10),
    );
    assert_eq!(
        effects[0],
        Effect::Signal {
            pid: 7,
            signal: GroupSignal::Kill
        },
        "stragglers of the group go too"
    );
    assert_eq!(machine.phase(), Phase::Stopped);
}

#[test]
fn stop_and_remove_cancel_a_pending_restart() {
    let t0 = Instant::now();
    let mut machine = running(t0);
    machine.step(Input::Exited(CRASH), t0);
    assert_eq!(machine.phase(), Phase::Backoff);
    assert!(machine.step(Input::Stop, t0).is_empty());
    assert_eq!(machine.phase(), Phase::Stopped);
    assert_eq!(machine.deadline(), None);
    assert!(
        machine.step(Input::Tick, t0 + secs(5)).is_empty(),
        "no late respawn"
    );

    let mut machine = running(t0);
    machine.step(Input::Exited(CRASH), t0);
    machine.step(Input::Remove, t0);
    assert_eq!(machine.state, State::Removed);
}

#[test]
fn a_replace_restarts_at_once_without_counting() {
    let t0 = Instant::now();
    let mut machine = running(t0);
    machine.step(Input::Restart, t0);
    assert_eq!(
        machine.step(
            Input::Exited(ProcessExit {
                code: None,
                signal: Some(15)
            }),
            t0
        )[1],
        Effect::Spawn
    );
    assert!(machine.restarts.is_empty());
}

#[test]
fn a_stop_asked_while_spawning_stops_the_new_process() {
    let t0 = Instant::now();
    let mut machine = Machine::new(policy());
    machine.step(Input::Start, t0);
    machine.step(Input::Remove, t0);
    let effects = machine.step(Input::Spawned { pid: 9 }, t0);
    assert_eq!(
        effects[1],
        Effect::Signal {
            pid: 9,
            signal: GroupSignal::Stop(StopSignal::Term)
        }
    );
    machine.step(
        Input::Exited(ProcessExit {
            code: Some(0),
            signal: None,
        }),
        t0,
    );
    assert_eq!(machine.state, State::Removed);
}

#[test]
fn a_process_that_never_answers_is_restarted_after_startup_timeout() {
    let t0 = Instant::now();
    let mut machine = Machine::new(policy());
    machine.step(Input::Start, t0);
    machine.step(Input::Spawned { pid: 7 }, t0);
    let effects = machine.step(Input::Tick, t0 + secs(10));
    assert_eq!(
        events(&effects),
        ["did not answer within startup_timeout (10s); stopping it"]
    );
    machine.step(
        Input::Exited(ProcessExit {
            code: None,
            signal: Some(15),
        }),
        t0 + secs(10),
    );
    assert_eq!(machine.phase(), Phase::Backoff);
}

#[test]
fn a_start_that_times_out_says_what_it_waited_for_and_what_to_check() {
    let t0 = Instant::now();
    let mut machine = Machine::new(Policy {
        readiness: Readiness {
            waits_for: "a connection to the socket /tmp/api-a.sock".into(),
            hint: "does the app listen on $SOCKET_PATH?".into(),
        },
        ..policy()
    });
    machine.step(Input::Start, t0);
    machine.step(Input::Spawned { pid: 7 }, t0);
    machine.step(Input::Tick, t0 + FIRST_PROBE_GAP);
    machine.step(
        Input::ProbeDone(Err("connect to /tmp/api-a.sock: No such file".into())),
        t0 + FIRST_PROBE_GAP,
    );
    let effects = machine.step(Input::Tick, t0 + secs(10));
    assert_eq!(
        events(&effects),
        [
            "did not answer within startup_timeout (10s): waited for a connection to the socket \
          /tmp/api-a.sock (last check: connect to /tmp/api-a.sock: No such file); does the \
          app listen on $SOCKET_PATH?; stopping it"
        ]
    );
}

#[test]
fn a_failed_spawn_counts_as_a_failure() {
    let t0 = Instant::now();
    let mut machine = Machine::new(policy());
    machine.step(Input::Start, t0);
    let effects = machine.step(
        Input::SpawnFailed {
            error: "no such file".into(),
            permanent: false,
        },
        t0,
    );
    assert_eq!(
        events(&effects),
        ["could not start: no such file; restarting in 1s"]
    );
    assert_eq!(machine.phase(), Phase::Backoff);
}

#[test]
fn idle_instances_sleep_and_wake_on_request() {
    let t0 = Instant::now();
    let mut machine = running(t0);
    let (effects, t1) = idle_tick(&mut machine, t0);
    assert_eq!(events(&effects), ["idle: going to sleep"]);
    assert_eq!(
        effects[1],
        Effect::Signal {
            pid: 7,
            signal: GroupSignal::Stop(StopSignal::Term)
        }
    );
    machine.step(
        Input::Exited(ProcessExit {
            code: None,
            signal: Some(15),
        }),
        t1,
    );
    assert_eq!(machine.phase(), Phase::Sleeping);
    assert!(machine.restarts.is_empty(), "sleeping is not a restart");
    assert_eq!(machine.deadline(), None, "no probes while asleep");
    // A start (the reconciler re-applying) leaves it asleep; a request wakes it.
    assert!(machine.step(Input::Start, t1).is_empty());
    assert_eq!(machine.phase(), Phase::Sleeping);
    assert_eq!(machine.step(Input::Wake, t1)[1], Effect::Spawn);
    assert!(
        machine.step(Input::Wake, t1).is_empty(),
        "concurrent wakes share one"
    );
    machine.step(Input::Spawned { pid: 8 }, t1);
    machine.step(Input::Tick, t1 + FIRST_PROBE_GAP);
    machine.step(Input::ProbeDone(Ok(())), t1 + FIRST_PROBE_GAP);
    assert_eq!((machine.phase(), machine.waking), (Phase::Running, false));
}

#[test]
fn a_failed_wake_goes_back_to_sleep_and_says_so() {
    let t0 = Instant::now();
    let mut machine = running(t0);
    let (_, t1) = idle_tick(&mut machine, t0);
    machine.step(
        Input::Exited(ProcessExit {
            code: None,
            signal: Some(15),
        }),
        t1,
    );
    machine.step(Input::Wake, t1);
    machine.step(Input::Spawned { pid: 8 }, t1);
    let effects = machine.step(Input::Exited(CRASH), t1);
    assert!(
        effects.contains(&Effect::WakeFailed(
            "wake failed: exited with code 1".into()
        )),
        "{effects:?}"
    );
    assert_eq!(
        machine.phase(),
        Phase::Sleeping,
        "the next request tries again"
    );
    assert!(machine.restarts.is_empty(), "no backoff for wakes");
    assert_eq!(machine.step(Input::Wake, t1)[1], Effect::Spawn);
    let effects = machine.step(
        Input::SpawnFailed {
            error: "no such file".into(),
            permanent: false,
        },
        t1,
    );
    assert!(effects.contains(&Effect::WakeFailed(
        "wake failed: could not start: no such file".into()
    )));
}

#[test]
fn a_request_during_the_fall_to_sleep_restarts_it() {
    let t0 = Instant::now();
    let mut machine = running(t0);
    let (_, t1) = idle_tick(&mut machine, t0);
    assert!(machine.step(Input::Wake, t1).is_empty());
    let effects = machine.step(
        Input::Exited(ProcessExit {
            code: None,
            signal: Some(15),
        }),
        t1,
    );
    assert_eq!(effects[1], Effect::Spawn);
    assert_eq!(machine.phase(), Phase::Starting);
}

#[test]
fn backoff_is_capped() {
    let policy = policy();
    let delays: Vec<u64> = (0..10).map(|n| backoff(&policy, n).as_secs()).collect();
    assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]);
    assert_eq!(backoff(&policy, 200), secs(60));
}

#[test]
fn an_adopted_process_runs_at_once_is_checked_soon_and_counts_no_restart() {
    let now = Instant::now();
    let mut machine = Machine::new(policy());
    let effects = machine.step(Input::Adopted { pid: 42 }, now);
    assert!(
        matches!(&effects[..], [Effect::Event(message)] if message.contains("adopted (pid 42)"))
    );
    assert_eq!(machine.phase(), Phase::Running);
    assert_eq!(machine.pid(), Some(42));
    // Checked within its share of the interval (adopted together, they are not checked in
    // one burst).
    let offset = machine.policy.check_offset;
    assert_eq!(machine.deadline(), Some(now + offset));
    assert_eq!(machine.step(Input::Tick, now + offset), [Effect::Probe]);
    machine.step(Input::ProbeDone(Ok(())), now + offset);
    assert_eq!(machine.health, Health::Healthy);
    assert!(machine.restarts.is_empty());
    // It ends like any process: restarted per its policy.
    machine.step(
        Input::Exited(ProcessExit {
            code: None,
            signal: None,
        }),
        now,
    );
    assert_eq!(machine.phase(), Phase::Backoff);
}

#[test]
fn adoption_and_restored_sleep_apply_only_to_a_fresh_machine() {
    let now = Instant::now();
    let mut machine = Machine::new(policy());
    machine.step(Input::Asleep, now);
    assert_eq!(machine.phase(), Phase::Sleeping);
    assert!(machine.step(Input::Adopted { pid: 7 }, now).is_empty());
    assert_eq!(machine.phase(), Phase::Sleeping);
    assert_eq!(
        machine.step(Input::Wake, now),
        [Effect::Event("waking for a request".into()), Effect::Spawn]
    );
}

#[test]
fn a_permanent_spawn_failure_fails_at_once_without_retries() {
    let t0 = Instant::now();
    let mut machine = Machine::new(policy());
    machine.step(Input::Start, t0);
    let effects = machine.step(
        Input::SpawnFailed {
            error: "over storage quota: 70 MB used of storage_quota_mb = 64".into(),
            permanent: true,
        },
        t0,
    );
    assert_eq!(machine.phase(), Phase::Failed);
    assert_eq!(machine.health, Health::Failed);
    assert!(machine.restarts.is_empty());
    assert_eq!(
        machine.note.as_deref(),
        Some("could not start: over storage quota: 70 MB used of storage_quota_mb = 64")
    );
    assert!(
        effects
            .iter()
            .all(|effect| !matches!(effect, Effect::Spawn))
    );
    // `ten restart` tries again.
    assert_eq!(machine.step(Input::Restart, t0), [Effect::Spawn]);
}

#[test]
fn over_quota_stops_the_instance_and_leaves_it_failed_with_the_reason() {
    let t0 = Instant::now();
    let mut machine = Machine::new(policy());
    machine.step(Input::Start, t0);
    machine.step(Input::Spawned { pid: 9 }, t0);
    machine.step(Input::ProbeDone(Ok(())), t0);
    let reason = "over storage quota: 65 MB used of storage_quota_mb = 64".to_string();
    let effects = machine.step(
        Input::OverQuota {
            reason: reason.clone(),
        },
        t0,
    );
    assert!(effects.contains(&Effect::Signal {
        pid: 9,
        signal: GroupSignal::Stop(StopSignal::Term)
    }));
    machine.step(
        Input::Exited(ProcessExit {
            code: None,
            signal: Some(15),
        }),
        t0,
    );
    assert_eq!(machine.phase(), Phase::Failed);
    assert_eq!(machine.note.as_deref(), Some(reason.as_str()));
    assert!(machine.restarts.is_empty(), "not restarted");
}

#[test]
fn a_forced_restart_kills_at_once_even_with_requests_in_flight() {
    let t0 = Instant::now();
    let mut machine = running(t0);
    machine.step(
        Input::Traffic(Traffic {
            last_activity: t0,
            in_flight: 2,
        }),
        t0,
    );
    let effects = machine.step(Input::ForceRestart, t0);
    assert!(effects.contains(&Effect::Signal {
        pid: 7,
        signal: GroupSignal::Kill
    }));
    assert_eq!(machine.deadline(), None, "no stop_timeout to wait for");
    assert_eq!(machine.heading_for(), Some(Phase::Starting));
    let effects = machine.step(
        Input::Exited(ProcessExit {
            code: None,
            signal: Some(9),
        }),
        t0,
    );
    assert!(effects.contains(&Effect::Spawn), "{effects:?}");
    assert!(machine.restarts.is_empty(), "asked for: not counted");
    // A graceful stop under way is cut short the same way.
    let mut machine = running(t0);
    machine.step(Input::Stop, t0);
    let effects = machine.step(Input::ForceRestart, t0 + secs(1));
    assert!(effects.contains(&Effect::Signal {
        pid: 7,
        signal: GroupSignal::Kill
    }));
    assert_eq!(machine.heading_for(), Some(Phase::Starting));
    // Without a process it is a restart.
    let mut machine = Machine::new(policy());
    assert_eq!(machine.step(Input::ForceRestart, t0), [Effect::Spawn]);
}

mod causes;
mod checks;
mod traffic;
