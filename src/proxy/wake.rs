//! Waiting for an instance to take traffic: a wake of a sleeping instance (once for all
//! concurrent requests), a restart, or another instance of the service meanwhile; counted in
//! the service's wake latency and noted on the instance's gate (its last wake).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::observed::Phase;
use crate::supervisor::gate::{Gate, Lease};

use super::Refusal;
use super::routes::{InstanceRoute, ServiceRoute};
use super::timers::Timers;

/// A lease on a backend for a request whose instance had none ready: if it is restarting and
/// another instance of its service takes traffic, that one's; otherwise wake the instance
/// (once for all concurrent requests) or wait for its restart, at most `startup_timeout`. The
/// wait is counted in the wake latency histogram (or as a failed wake).
pub(super) async fn acquire(
    route: Arc<InstanceRoute>,
    service: Option<&ServiceRoute>,
    timers: &Timers,
) -> Result<(Arc<InstanceRoute>, Lease), Refusal> {
    let Some(gate) = &route.gate else {
        return Err(Refusal::Unavailable(format!(
            "{} has not been started yet (`ten apply` starts it)",
            route.key
        )));
    };
    if route.state == crate::config::RunState::Stopped {
        return Err(Refusal::Stopped(route.key.to_string()));
    }
    if let Some(lease) = gate.lease() {
        return Ok((route, lease));
    }
    if let Some(service) = service
        && gate.owner().status.borrow().phase == Phase::Backoff
        && let Some(other) = service.another(&route)
    {
        return Ok(other);
    }
    let waiting = Instant::now();
    let result = wait_for_backend(gate, &route, timers, waiting + route.startup_timeout).await;
    match &result {
        Ok(_) => {
            let waited = waiting.elapsed();
            route.counters.woke(waited);
            gate.note_wait(waited);
        }
        Err(Refusal::WakeFailed(_) | Refusal::Timeout(_)) => route.counters.wake_failed(),
        Err(Refusal::NoRoom(_)) => crate::metrics::global().memory().wake_refused(),
        Err(_) => {}
    }
    result.map(|lease| (route, lease))
}

/// Wakes the instance if it sleeps and waits until it takes traffic (a restart is waited for
/// too), at most until `deadline`.
pub(super) async fn wait_for_backend(
    gate: &Arc<Gate>,
    route: &InstanceRoute,
    timers: &Timers,
    deadline: Instant,
) -> Result<Lease, Refusal> {
    let failures = gate.wake_failures();
    loop {
        let changed = gate.changed();
        if let Some(lease) = gate.lease() {
            return Ok(lease);
        }
        if gate.wake_failures() != failures {
            // The reason (a spawn's error) is for the log and `ten ps`, not for clients.
            let why = gate.wake_error().unwrap_or_else(|| "wake failed".into());
            tracing::warn!(instance = %route.key, %why, "a request's wake failed");
            return Err(Refusal::WakeFailed(format!(
                "{} could not be started",
                route.key
            )));
        }
        let status = gate.owner().status.borrow().clone();
        match status.phase {
            Phase::Sleeping | Phase::Stopping => {
                admit(gate, route, timers, deadline).await?;
                gate.request_wake();
            }
            // Restarting (after a crash, or a failed health check): held until it answers.
            Phase::Starting | Phase::Running | Phase::Backoff => {}
            Phase::Stopped => return Err(Refusal::Stopped(route.key.to_string())),
            // Why it is not (its note: an exit, a failed check) is for `ten ps`, not clients.
            Phase::Failed | Phase::Exited => {
                return Err(Refusal::Unavailable(format!(
                    "{} is not running ({})",
                    route.key, status.phase,
                )));
            }
        }
        tokio::select! {
            () = changed => {}
            () = timers.sleep_until(deadline) => {
                return Err(Refusal::Timeout(format!(
                    "{} did not become ready within startup_timeout ({})",
                    route.key,
                    humantime::format_duration(route.startup_timeout)
                )));
            }
        }
    }
}

/// How long a wake waits for room under `memory_limit_total` at most.
const ROOM_WAIT: Duration = Duration::from_secs(5);
/// How often it looks again meanwhile (a rare path: the tenants' memory is at its limit).
const ROOM_LOOK: Duration = Duration::from_millis(50);

/// Under `memory_limit_total`: lets the wake go when the tenants' memory and what the
/// instance used last time fit; else asks the reconciler to put idle instances to sleep and
/// waits for the room (at most `ROOM_WAIT`), or refuses at once when none could go.
async fn admit(
    gate: &Gate,
    route: &InstanceRoute,
    timers: &Timers,
    deadline: Instant,
) -> Result<(), Refusal> {
    let Some(admission) = gate.admission() else {
        return Ok(());
    };
    let expected = gate.expected_memory();
    let give_up = deadline.min(Instant::now() + ROOM_WAIT);
    let mut asked = false;
    loop {
        // Read again each time: a change of the settings may lift the limit meanwhile.
        let Some(limit) = admission.limit() else {
            return Ok(());
        };
        let used = admission.used();
        let needed = used.saturating_add(expected);
        if needed <= limit {
            return Ok(());
        }
        // Once asked, the reconciler has looked: whether anything can go is fresh.
        if asked && (!admission.evictable() || Instant::now() >= give_up) {
            // What it needs too, else "31 MB of 40 MB" reads as if there were room.
            let needs = match expected >> 20 {
                0 => String::new(),
                mb => format!(" and {} used {mb} MB when it last ran", route.key),
            };
            let why = format!(
                "{} cannot be woken now: the tenants use {} MB{needs}, past memory_limit_total = {} MB, and no idle instance can be put to sleep to make room",
                route.key,
                used >> 20,
                limit >> 20
            );
            admission.refused(&route.key, why.clone());
            return Err(Refusal::NoRoom(why));
        }
        admission.ask_room(needed - limit);
        asked = true;
        timers.sleep_until(Instant::now() + ROOM_LOOK).await;
    }
}
