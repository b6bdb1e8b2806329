//! Each restart and failure says its cause (for the service's metrics).

use super::*;

/// The setbacks among `effects`, for the service's metrics.
fn setbacks(effects: &[Effect]) -> Vec<(Cause, bool)> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::Setback { cause, failed } => Some((*cause, *failed)),
            _ => None,
        })
        .collect()
}

const TERMINATED: ProcessExit = ProcessExit {
    code: None,
    signal: Some(15),
};

#[test]
fn every_restart_and_failure_says_its_cause() {
    let t0 = Instant::now();
    // A crash restarts; the one past max_restarts fails, for the same cause.
    let mut machine = running(t0);
    machine.policy.backoff_base = Duration::ZERO;
    machine.policy.backoff_max = Duration::ZERO;
    let mut seen = Vec::new();
    for pid in 8..12 {
        seen.extend(setbacks(&machine.step(Input::Exited(CRASH), t0)));
        machine.step(Input::Tick, t0);
        machine.step(Input::Spawned { pid }, t0);
    }
    assert_eq!(
        seen,
        [
            (Cause::Crashed, false),
            (Cause::Crashed, false),
            (Cause::Crashed, false),
            (Cause::Crashed, true)
        ]
    );

    // A clean exit that `restart = "always"` restarts.
    let mut always = running(t0);
    always.policy.restart = RestartPolicy::Always;
    let clean = ProcessExit {
        code: Some(0),
        signal: None,
    };
    assert_eq!(
        setbacks(&always.step(Input::Exited(clean), t0)),
        [(Cause::Exited, false)]
    );
    // Not restarted (on-failure): no setback.
    assert!(setbacks(&running(t0).step(Input::Exited(clean), t0)).is_empty());

    // Unhealthy: counted when the stopped process is gone and the restart is due.
    let mut unhealthy = running(t0);
    let mut now = t0;
    for _ in 0..3 {
        now = unhealthy.deadline().unwrap();
        unhealthy.step(Input::Tick, now);
        let effects = unhealthy.step(Input::ProbeDone(Err("500".into())), now);
        assert!(setbacks(&effects).is_empty(), "stopping, not restarted yet");
    }
    assert_eq!(
        setbacks(&unhealthy.step(Input::Exited(TERMINATED), now)),
        [(Cause::Unhealthy, false)]
    );

    // Not ready within startup_timeout.
    let mut slow = Machine::new(policy());
    slow.step(Input::Start, t0);
    slow.step(Input::Spawned { pid: 7 }, t0);
    slow.step(Input::Tick, t0 + secs(10));
    assert_eq!(
        setbacks(&slow.step(Input::Exited(TERMINATED), t0 + secs(10))),
        [(Cause::StartTimeout, false)]
    );

    // A spawn that cannot work (at once failed), and one that may (restarted).
    let mut refused = Machine::new(policy());
    refused.step(Input::Start, t0);
    let permanent = Input::SpawnFailed {
        error: "no runsc".into(),
        permanent: true,
    };
    assert_eq!(
        setbacks(&refused.step(permanent, t0)),
        [(Cause::SpawnFailed, true)]
    );
    let mut retried = Machine::new(policy());
    retried.step(Input::Start, t0);
    let transient = Input::SpawnFailed {
        error: "no port".into(),
        permanent: false,
    };
    assert_eq!(
        setbacks(&retried.step(transient, t0)),
        [(Cause::SpawnFailed, false)]
    );

    // Over storage quota: failed once its process is gone.
    let mut full = running(t0);
    let over = Input::OverQuota {
        reason: "over storage quota".into(),
    };
    assert!(setbacks(&full.step(over, t0)).is_empty());
    assert_eq!(
        setbacks(&full.step(Input::Exited(TERMINATED), t0)),
        [(Cause::StorageQuota, true)]
    );

    // A restart asked for is no setback.
    let mut asked = running(t0);
    asked.step(Input::Restart, t0);
    assert!(setbacks(&asked.step(Input::Exited(TERMINATED), t0)).is_empty());
}
