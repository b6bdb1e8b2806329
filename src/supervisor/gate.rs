//! The gate of one instance: what the proxy and the instance's task share.
//!
//! The hot path of a request is lock-free: load the current backend (an `ArcSwapOption`),
//! count the request in flight on it, note the time of last activity (an atomic). Only a
//! request that finds no backend takes the slow path: it asks for a wake (once for all
//! concurrent requests) and waits for the gate to change.
//!
//! During a zero-downtime replace two tasks share one gate: the new process takes over as the
//! current backend when healthy; the old one, no longer current, drains its in-flight
//! requests and stops.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::admission::Admission;
use super::mailbox::Mailbox;
use super::messages::{Command, StatusReceiver};

/// Where requests for an instance go.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    Tcp(u16),
    Unix(PathBuf),
}

/// One running process that serves requests.
#[derive(Debug)]
pub struct Backend {
    pub target: Target,
    in_flight: AtomicU32,
}

impl Backend {
    pub fn new(target: Target) -> Arc<Backend> {
        Arc::new(Backend {
            target,
            in_flight: AtomicU32::new(0),
        })
    }

    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Acquire)
    }
}

/// The task the gate talks to (the newest, during a replace).
pub struct Owner {
    pub commands: Mailbox,
    pub status: StatusReceiver,
}

pub struct Gate {
    backend: ArcSwapOption<Backend>,
    owner: ArcSwap<Owner>,
    epoch: Instant,
    /// Milliseconds since `epoch` of the last request's end (or of the backend's opening).
    /// Only the end is noted: while a request is in flight it is counted on its backend, and
    /// the instance does not fall asleep before that count drops.
    last_activity: AtomicU64,
    wake_requested: AtomicBool,
    /// Bumped by every failed wake, so waiters notice one happened (wrapping: only a
    /// change is looked for).
    wake_failures: AtomicU32,
    /// Why the last wake failed. Swapped as a whole (a wake fails rarely): 8 bytes where a
    /// lock and its text took 32, which with the fields above keeps a gate within 128
    /// bytes of heap instead of 160.
    wake_error: ArcSwapOption<String>,
    /// How long the last request that had to wait for the instance (to wake, start or
    /// restart) waited, in microseconds; 0: none has waited yet.
    last_wait_micros: AtomicU64,
    changed: Notify,
    /// Wakes ask it first when the tenants' memory is limited.
    admission: Option<Arc<Admission>>,
    /// What the instance used at its last sample, in bytes (0: not known): what a wake
    /// expects it to take.
    expected_memory: AtomicU64,
}

/// A request counted in flight on a backend; the count drops with the lease (when the
/// response body has been sent).
pub struct Lease {
    backend: Arc<Backend>,
    gate: Arc<Gate>,
}

impl Lease {
    pub fn target(&self) -> &Target {
        &self.backend.target
    }

    pub fn gate(&self) -> &Arc<Gate> {
        &self.gate
    }

    /// Whether its backend is still the gate's current one.
    pub fn is_current(&self) -> bool {
        self.gate
            .backend
            .load()
            .as_ref()
            .is_some_and(|current| Arc::ptr_eq(current, &self.backend))
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.backend.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.gate.touch();
    }
}

impl Gate {
    pub fn new(owner: Owner) -> Arc<Gate> {
        Arc::new(Gate {
            backend: ArcSwapOption::empty(),
            owner: ArcSwap::from_pointee(owner),
            epoch: Instant::now(),
            last_activity: AtomicU64::new(0),
            wake_requested: AtomicBool::new(false),
            wake_failures: AtomicU32::new(0),
            wake_error: ArcSwapOption::empty(),
            last_wait_micros: AtomicU64::new(0),
            changed: Notify::new(),
            admission: None,
            expected_memory: AtomicU64::new(0),
        })
    }

    /// A gate whose wakes ask `admission` first.
    pub fn with_admission(owner: Owner, admission: Arc<Admission>) -> Arc<Gate> {
        let mut gate = Gate::new(owner);
        if let Some(fresh) = Arc::get_mut(&mut gate) {
            fresh.admission = Some(admission);
        }
        gate
    }

    pub fn admission(&self) -> Option<&Arc<Admission>> {
        self.admission.as_ref()
    }

    pub fn expected_memory(&self) -> u64 {
        self.expected_memory.load(Ordering::Relaxed)
    }

    pub fn set_expected_memory(&self, bytes: u64) {
        self.expected_memory.store(bytes, Ordering::Relaxed);
    }

    pub fn set_owner(&self, owner: Owner) {
        self.owner.store(Arc::new(owner));
        self.changed.notify_waiters();
    }

    pub fn owner(&self) -> Arc<Owner> {
        self.owner.load_full()
    }

    /// Notes activity now.
    pub fn touch(&self) {
        let elapsed = self.epoch.elapsed().as_millis() as u64;
        // Busy instances are touched many times a millisecond, by every proxy worker: writing
        // only when the value changes keeps the cache line shared instead of bouncing it.
        if self.last_activity.load(Ordering::Relaxed) != elapsed {
            self.last_activity.store(elapsed, Ordering::Release);
        }
    }

    /// When the last request ended (or the backend opened).
    pub fn last_activity(&self) -> Instant {
        self.epoch + Duration::from_millis(self.last_activity.load(Ordering::Acquire))
    }

    /// Requests in flight on the current backend.
    pub fn in_flight(&self) -> u32 {
        self.backend
            .load()
            .as_ref()
            .map_or(0, |backend| backend.in_flight())
    }

    /// A lease on the current backend, if there is one (the hot path).
    pub fn lease(self: &Arc<Self>) -> Option<Lease> {
        let backend = self.backend.load_full()?;
        backend.in_flight.fetch_add(1, Ordering::AcqRel);
        Some(Lease {
            backend,
            gate: Arc::clone(self),
        })
    }

    /// Makes `backend` the current one (its process answers).
    pub fn open(&self, backend: Arc<Backend>) {
        self.backend.store(Some(backend));
        self.changed.notify_waiters();
    }

    /// Stops sending requests to `backend`, if it is still the current one.
    pub fn close(&self, backend: &Arc<Backend>) {
        let current = self.backend.load();
        if current
            .as_ref()
            .is_some_and(|current| Arc::ptr_eq(current, backend))
        {
            self.backend.compare_and_swap(&current, None);
        }
        self.changed.notify_waiters();
    }

    /// Asks the owner to wake the instance; only the first of concurrent callers sends.
    pub fn request_wake(&self) {
        if !self.wake_requested.swap(true, Ordering::AcqRel) {
            self.owner().commands.send(Command::Wake);
        }
    }

    /// The owner took the wake request in.
    pub fn wake_taken(&self) {
        self.wake_requested.store(false, Ordering::Release);
    }

    pub fn wake_failures(&self) -> u32 {
        self.wake_failures.load(Ordering::Acquire)
    }

    pub fn wake_error(&self) -> Option<String> {
        self.wake_error
            .load_full()
            .map(|error| String::clone(&error))
    }

    /// A request waited `waited` for the instance to take traffic, and got it.
    pub fn note_wait(&self, waited: Duration) {
        let micros = u64::try_from(waited.as_micros()).unwrap_or(u64::MAX).max(1);
        self.last_wait_micros.store(micros, Ordering::Relaxed);
    }

    /// How long the last request that had to wait for the instance waited (the last wake's
    /// latency, as a client saw it).
    pub fn last_wait(&self) -> Option<Duration> {
        match self.last_wait_micros.load(Ordering::Relaxed) {
            0 => None,
            micros => Some(Duration::from_micros(micros)),
        }
    }

    /// A wake failed: every waiter hears it at once.
    pub fn fail_wake(&self, error: String) {
        self.wake_error.store(Some(Arc::new(error)));
        self.wake_requested.store(false, Ordering::Release);
        self.wake_failures.fetch_add(1, Ordering::AcqRel);
        self.changed.notify_waiters();
    }

    /// The instance's status changed (waiters re-check its phase).
    pub fn notify(&self) {
        self.changed.notify_waiters();
    }

    /// Resolves at the next change. Create it before checking, so no change is missed: it is
    /// registered at once, not at its first poll.
    pub fn changed(&self) -> std::pin::Pin<Box<tokio::sync::futures::Notified<'_>>> {
        let mut notified = Box::pin(self.changed.notified());
        notified.as_mut().enable();
        notified
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::mpsc;

    use super::*;

    fn gate() -> (Arc<Gate>, mpsc::UnboundedReceiver<Command>) {
        let (commands, receiver) = mpsc::unbounded_channel();
        let (_, status) = crate::supervisor::cell::channel(
            crate::supervisor::messages::InstanceStatus::stopped(1),
        );
        (
            Gate::new(Owner {
                commands: Mailbox::new(commands),
                status,
            }),
            receiver,
        )
    }

    #[tokio::test]
    async fn leases_count_requests_on_the_backend_they_got() {
        let (gate, _) = gate();
        assert!(gate.lease().is_none());
        let old = Backend::new(Target::Tcp(1));
        gate.open(Arc::clone(&old));
        let lease = gate.lease().unwrap();
        assert_eq!(lease.target(), &Target::Tcp(1));
        assert_eq!(gate.in_flight(), 1);
        // A replace: the new backend takes over; the old lease still counts on the old one.
        let new = Backend::new(Target::Tcp(2));
        gate.open(Arc::clone(&new));
        assert_eq!((old.in_flight(), gate.in_flight()), (1, 0));
        assert!(!lease.is_current(), "its backend was replaced");
        assert!(gate.lease().unwrap().is_current());
        gate.close(&old);
        assert!(
            gate.lease().is_some(),
            "closing a backend that is not current changes nothing"
        );
        gate.close(&new);
        assert!(gate.lease().is_none());
        drop(lease);
        assert_eq!(old.in_flight(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn the_end_of_a_request_is_its_activity() {
        let (gate, _) = gate();
        gate.open(Backend::new(Target::Tcp(1)));
        gate.touch();
        let opened = gate.last_activity();
        tokio::time::advance(Duration::from_secs(5)).await;
        let lease = gate.lease().unwrap();
        assert_eq!(
            gate.last_activity(),
            opened,
            "a start is counted in flight instead"
        );
        tokio::time::advance(Duration::from_secs(3)).await;
        drop(lease);
        assert_eq!(gate.in_flight(), 0);
        assert_eq!(gate.last_activity(), opened + Duration::from_secs(8));
    }

    #[tokio::test]
    async fn concurrent_wake_requests_send_one_command_and_failures_reach_waiters() {
        let (gate, mut commands) = gate();
        for _ in 0..50 {
            gate.request_wake();
        }
        assert!(matches!(commands.try_recv(), Ok(Command::Wake)));
        assert!(commands.try_recv().is_err(), "one wake for all");
        let changed = gate.changed();
        let before = gate.wake_failures();
        gate.fail_wake("wake failed: exited with code 1".into());
        changed.await;
        assert_ne!(gate.wake_failures(), before);
        assert_eq!(
            gate.wake_error().as_deref(),
            Some("wake failed: exited with code 1")
        );
        gate.request_wake();
        assert!(
            matches!(commands.try_recv(), Ok(Command::Wake)),
            "the next request tries again"
        );
    }
}
