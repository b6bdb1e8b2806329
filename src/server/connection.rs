//! What a client connection may hold: the caps on open connections (all, and per client
//! address), checked at accept, and each connection's deadlines (`header_timeout`,
//! `keep_alive_timeout`), kept by a watchdog beside hyper's connection future.
//!
//! Why not hyper's `header_read_timeout`: it starts when hyper begins to wait for a head,
//! which on a kept-alive connection is right after the last answer, so it is the keep-alive
//! timeout too (the two cannot differ), and it arms a timer for every request. Here a
//! connection has one timer (on the proxy's timer thread, `proxy::timers`), armed at accept
//! and moved only when it goes off; a request costs a few atomic operations:
//! - `Watched` (the socket) notes when the first byte of a new head arrives on an idle
//!   connection;
//! - the service notes a request under way (`Clock::request_began`), and its response body
//!   (`Tracked`) when it has been sent or dropped;
//! - the watchdog, polled with the connection at each of its events, looks at its timer only
//!   after the timer woke it (`Watchdog`).
//!
//! Deadlines: a new connection's first head must be whole within `header_timeout` of the
//! accept (so a client that connects and sends nothing is cut as one that trickles); a later
//! head within `header_timeout` of its first byte; a kept-alive connection with nothing under
//! way is closed `keep_alive_timeout` after its last answer. A connection with a request under
//! way has no deadline here (`request_timeout` bounds the wait for its backend). Once its
//! answer has been sent the request is over, so a body the client still sends after an
//! early answer (a backend's 413 or 401 before it read the body) counts as the next head's
//! first bytes, and is cut at `header_timeout`.
//! Over HTTP/2 (HTTPS), any frame that arrives while no request is under way counts as a
//! head's first byte.
//!
//! Imports `config` (the limits), `metrics` and `proxy::timers`; nothing else of ten's.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use http_body::Frame;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::body::{Body, BoxError};
use crate::config::ConnectionLimits;
use crate::metrics::connections::{Cap, Deadline};
use crate::proxy::timers::Timers;

/// Shards of the per-client counts: accepts on different workers rarely meet on a lock.
const SHARDS: usize = 16;

/// The open client connections: all of them, and per client address (an IPv6 address by its
/// /64, which one client usually holds). An address is remembered only while it has a
/// connection open, so the table never holds more than `max_connections` entries.
#[derive(Default)]
pub(crate) struct Caps {
    total: AtomicU32,
    clients: [Mutex<HashMap<IpAddr, u32>>; SHARDS],
    /// The most connections open at once since memory was last given back.
    peak: AtomicU32,
}

/// A burst of at least this many connections gives its memory back to the system once three
/// quarters of them are gone: glibc's allocator keeps freed memory in its per-thread arenas
/// (5,000 slowloris connections left ten at 97 MB instead of 12 MB; see
/// `bench/bad_input_memory.rs`), and `malloc_trim` returns their free pages.
const TRIM_AFTER: u32 = 1_000;

/// An admitted connection, counted until it is dropped.
pub(crate) struct Admitted {
    caps: Arc<Caps>,
    client: IpAddr,
}

/// The client an address counts as: IPv4 (a mapped IPv6 one too), or an IPv6 /64.
fn client_of(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(bits.into())
            }
        },
        v4 => v4,
    }
}

fn shard(client: IpAddr) -> usize {
    let last = match client {
        IpAddr::V4(v4) => u32::from(v4) as usize,
        IpAddr::V6(v6) => (u128::from(v6) >> 64) as usize,
    };
    (last ^ (last >> 8) ^ (last >> 16)) % SHARDS
}

impl Caps {
    /// Counts a connection from `peer`, or says which cap it would pass.
    pub(crate) fn admit(
        self: &Arc<Self>,
        peer: IpAddr,
        limits: &ConnectionLimits,
    ) -> Result<Admitted, Cap> {
        let total = self.total.fetch_add(1, Ordering::Relaxed);
        if total >= limits.max_connections {
            self.total.fetch_sub(1, Ordering::Relaxed);
            return Err(Cap::Total);
        }
        let client = client_of(peer);
        {
            let mut clients = self.clients[shard(client)]
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let count = clients.entry(client).or_insert(0);
            if *count >= limits.max_connections_per_client {
                drop(clients);
                self.total.fetch_sub(1, Ordering::Relaxed);
                return Err(Cap::PerClient);
            }
            *count += 1;
        }
        self.peak.fetch_max(total + 1, Ordering::Relaxed);
        crate::metrics::global().connections().opened();
        Ok(Admitted {
            caps: Arc::clone(self),
            client,
        })
    }

    /// Open connections, all addresses together.
    #[cfg(test)]
    fn open(&self) -> u32 {
        self.total.load(Ordering::Relaxed)
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut clients = self.caps.clients[shard(self.client)]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = clients.get_mut(&self.client) {
            *count -= 1;
            if *count == 0 {
                clients.remove(&self.client);
            }
        }
        drop(clients);
        let left = self.caps.total.fetch_sub(1, Ordering::Relaxed) - 1;
        crate::metrics::global().connections().ended();
        let peak = self.caps.peak.load(Ordering::Relaxed);
        // One trim per burst: the connection that takes the peak down does it.
        if peak >= TRIM_AFTER
            && left <= peak / 4
            && self
                .caps
                .peak
                .compare_exchange(peak, left, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            crate::runtime::allocator::give_back();
        }
    }
}

/// Where a connection is, for its deadlines. Kept in `Clock::mark` with the instant it began
/// (milliseconds since the accept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Accepted, its first request not yet whole: `header_timeout` from the accept.
    Fresh = 0,
    /// A head's first byte came after an idle time: `header_timeout` from that byte.
    Head = 1,
    /// Requests under way: no deadline.
    Busy = 2,
    /// Kept alive with nothing under way: `keep_alive_timeout` from the last answer.
    Idle = 3,
}

const PHASE_SHIFT: u32 = 62;

/// A connection's phase and requests under way, shared by its socket (`Watched`), its
/// service, its response bodies (`Tracked`) and its watchdog (`watch`).
pub(crate) struct Clock {
    accepted: Instant,
    /// The phase (top two bits) and when it began (milliseconds since `accepted`).
    mark: AtomicU64,
    in_flight: AtomicU32,
}

impl Clock {
    pub(crate) fn new() -> Arc<Clock> {
        Arc::new(Clock {
            accepted: Instant::now(),
            mark: AtomicU64::new(0),
            in_flight: AtomicU32::new(0),
        })
    }

    fn set(&self, phase: Phase, at: Instant) {
        let millis = at.saturating_duration_since(self.accepted).as_millis() as u64;
        self.mark
            .store(((phase as u64) << PHASE_SHIFT) | millis, Ordering::Relaxed);
    }

    fn get(&self) -> (Phase, Instant) {
        let mark = self.mark.load(Ordering::Relaxed);
        let phase = match mark >> PHASE_SHIFT {
            0 => Phase::Fresh,
            1 => Phase::Head,
            2 => Phase::Busy,
            _ => Phase::Idle,
        };
        let millis = mark & ((1 << PHASE_SHIFT) - 1);
        (phase, self.accepted + Duration::from_millis(millis))
    }

    /// Bytes came from the client: the first of a head if the connection was idle.
    fn bytes_came(&self) {
        if self.mark.load(Ordering::Relaxed) >> PHASE_SHIFT == Phase::Idle as u64 {
            self.set(Phase::Head, Instant::now());
        }
    }

    /// A request's head came whole: it is under way until its response is sent.
    pub(crate) fn request_began(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        if self.mark.load(Ordering::Relaxed) >> PHASE_SHIFT != Phase::Busy as u64 {
            self.mark
                .store((Phase::Busy as u64) << PHASE_SHIFT, Ordering::Relaxed);
        }
    }

    /// A response was sent (or given up): the connection is idle once none is under way.
    fn request_ended(&self) {
        if self.in_flight.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.set(Phase::Idle, Instant::now());
        }
    }

    /// When the connection is to be closed, and which deadline that is; `None` while busy.
    fn deadline(&self, limits: &ConnectionLimits) -> Option<(Instant, Deadline)> {
        let (phase, since) = self.get();
        match phase {
            Phase::Fresh | Phase::Head => Some((since + limits.header_timeout, Deadline::Header)),
            Phase::Idle => Some((since + limits.keep_alive_timeout, Deadline::KeepAlive)),
            Phase::Busy => None,
        }
    }
}

/// Resolves when the connection of `clock` passes one of its deadlines, with which; the
/// caller then drops the connection. One timer, looked at again only when it goes off.
pub(crate) fn watch(clock: Arc<Clock>, limits: ConnectionLimits, timers: Timers) -> Watchdog {
    let timer = Box::pin(timers.sleep_until(clock.accepted + limits.header_timeout));
    // Fired at first: the first poll arms the timer.
    let fired = Arc::new(Fired {
        fired: AtomicBool::new(true),
        task: AtomicWaker::new(),
    });
    Watchdog {
        clock,
        limits,
        timer,
        waker: Waker::from(Arc::clone(&fired)),
        fired,
    }
}

/// `watch`'s future. It shares its task with the connection, whose every event (two or more
/// per request) polls both: its timer is polled with a waker of its own (`Fired`), and only
/// after that waker was woken, so that the connection's polls cost an atomic operation here
/// instead of a poll of the timer.
pub(crate) struct Watchdog {
    clock: Arc<Clock>,
    limits: ConnectionLimits,
    timer: Pin<Box<Sleep>>,
    fired: Arc<Fired>,
    waker: Waker,
}

/// The waker of a watchdog's timer: notes that it went off, and wakes the task.
struct Fired {
    fired: AtomicBool,
    task: AtomicWaker,
}

impl Wake for Fired {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.fired.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl Future for Watchdog {
    type Output = Deadline;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Deadline> {
        let this = &mut *self;
        // Registered before the look at `fired`: a timer that goes off in between wakes the
        // task again.
        this.fired.task.register(cx.waker());
        if !this.fired.fired.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        let mut own = Context::from_waker(&this.waker);
        loop {
            if this.timer.as_mut().poll(&mut own).is_pending() {
                return Poll::Pending;
            }
            let now = Instant::now();
            let next = match this.clock.deadline(&this.limits) {
                Some((when, which)) if when <= now => return Poll::Ready(which),
                Some((when, _)) => when,
                // Busy: look again in a while (a busy connection costs a timer every so often).
                None => {
                    now + this
                        .limits
                        .header_timeout
                        .max(this.limits.keep_alive_timeout)
                }
            };
            this.timer.as_mut().reset(next);
        }
    }
}

/// A client's socket that tells its `Clock` when bytes come.
pub(crate) struct Watched<S> {
    inner: S,
    clock: Arc<Clock>,
}

impl<S> Watched<S> {
    pub(crate) fn new(inner: S, clock: Arc<Clock>) -> Self {
        Self { inner, clock }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.clock.bytes_came();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A response body that tells its connection's `Clock` when it is done (sent whole, or
/// dropped).
pub(crate) struct Tracked {
    inner: Body,
    clock: Arc<Clock>,
}

impl Tracked {
    pub(crate) fn new(inner: Body, clock: Arc<Clock>) -> Self {
        Self { inner, clock }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.clock.request_ended();
    }
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(total: u32, per_client: u32) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: total,
            max_connections_per_client: per_client,
            ..ConnectionLimits::default()
        }
    }

    #[test]
    fn a_client_past_its_cap_is_refused_and_others_are_not() {
        let caps = Arc::new(Caps::default());
        let limits = limits(10, 2);
        let alice: IpAddr = "192.0.2.1".parse().unwrap();
        let bob: IpAddr = "192.0.2.2".parse().unwrap();
        let first = caps.admit(alice, &limits).unwrap();
        let _second = caps.admit(alice, &limits).unwrap();
        assert_eq!(caps.admit(alice, &limits).err(), Some(Cap::PerClient));
        let _bob = caps.admit(bob, &limits).unwrap();
        assert_eq!(caps.open(), 3);
        drop(first);
        let _third = caps.admit(alice, &limits).unwrap();
        assert_eq!(caps.open(), 3);
    }

    #[test]
    fn the_total_cap_holds_whoever_asks_and_forgets_closed_clients() {
        let caps = Arc::new(Caps::default());
        let limits = limits(3, 3);
        let held: Vec<Admitted> = (1..=3)
            .map(|last| {
                caps.admit(IpAddr::from([192, 0, 2, last]), &limits)
                    .unwrap()
            })
            .collect();
        assert_eq!(
            caps.admit("192.0.2.9".parse().unwrap(), &limits).err(),
            Some(Cap::Total)
        );
        drop(held);
        assert_eq!(caps.open(), 0);
        let remembered: usize = caps
            .clients
            .iter()
            .map(|shard| shard.lock().unwrap().len())
            .sum();
        assert_eq!(remembered, 0);
    }

    #[test]
    fn a_burst_gives_its_memory_back_once_three_quarters_are_gone() {
        let caps = Arc::new(Caps::default());
        let limits = limits(5_000, 5_000);
        let peer: IpAddr = "192.0.2.1".parse().unwrap();
        let mut held: Vec<Admitted> = (0..2_000)
            .map(|_| caps.admit(peer, &limits).unwrap())
            .collect();
        assert_eq!(caps.peak.load(Ordering::Relaxed), 2_000);
        held.truncate(501);
        assert_eq!(
            caps.peak.load(Ordering::Relaxed),
            2_000,
            "not yet a quarter"
        );
        held.truncate(500);
        assert_eq!(
            caps.peak.load(Ordering::Relaxed),
            500,
            "trimmed: the next burst is measured from here"
        );
        held.clear();
        assert_eq!(
            caps.peak.load(Ordering::Relaxed),
            500,
            "below a burst: no trim"
        );
    }

    #[test]
    fn ipv6_clients_count_by_their_64_and_mapped_ipv4_as_ipv4() {
        let caps = Arc::new(Caps::default());
        let limits = limits(10, 1);
        let _one = caps.admit("2001:db8::1".parse().unwrap(), &limits).unwrap();
        assert_eq!(
            caps.admit("2001:db8::2".parse().unwrap(), &limits).err(),
            Some(Cap::PerClient)
        );
        let _other = caps
            .admit("2001:db8:0:1::1".parse().unwrap(), &limits)
            .unwrap();
        let _v4 = caps.admit("192.0.2.1".parse().unwrap(), &limits).unwrap();
        assert_eq!(
            caps.admit("::ffff:192.0.2.1".parse().unwrap(), &limits)
                .err(),
            Some(Cap::PerClient)
        );
    }

    #[test]
    fn deadlines_follow_the_phase() {
        let limits = ConnectionLimits {
            header_timeout: Duration::from_secs(10),
            keep_alive_timeout: Duration::from_secs(60),
            ..ConnectionLimits::default()
        };
        let clock = Clock::new();
        let accepted = clock.accepted;
        // Fresh: from the accept, whatever bytes come.
        clock.bytes_came();
        let (at, which) = clock.deadline(&limits).unwrap();
        assert_eq!(
            (at, which),
            (accepted + limits.header_timeout, Deadline::Header)
        );
        clock.request_began();
        assert_eq!(clock.deadline(&limits), None);
        clock.request_ended();
        let (at, which) = clock.deadline(&limits).unwrap();
        assert_eq!(which, Deadline::KeepAlive);
        assert!(at >= accepted + limits.keep_alive_timeout);
        // A byte on an idle connection starts a head's time.
        clock.bytes_came();
        let (phase, since) = clock.get();
        assert_eq!(phase, Phase::Head);
        assert_eq!(
            clock.deadline(&limits),
            Some((since + limits.header_timeout, Deadline::Header))
        );
        // Two requests under way (HTTP/2): idle only when both are done.
        clock.request_began();
        clock.request_began();
        clock.request_ended();
        assert_eq!(clock.deadline(&limits), None);
        clock.request_ended();
        assert_eq!(clock.deadline(&limits).unwrap().1, Deadline::KeepAlive);
    }

    /// Runs `test` on a runtime of its own with the proxy's timers, as a connection runs.
    fn with_timers<F: std::future::Future>(test: impl FnOnce(Timers) -> F) -> F::Output {
        let timers = Timers::start().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .unwrap();
        runtime.block_on(test(timers))
    }

    #[test]
    fn the_watchdog_closes_a_connection_at_its_deadline_and_not_while_busy() {
        with_timers(|timers| async move {
            let limits = ConnectionLimits {
                header_timeout: Duration::from_millis(50),
                keep_alive_timeout: Duration::from_millis(100),
                ..ConnectionLimits::default()
            };
            let clock = Clock::new();
            let started = Instant::now();
            let which = watch(Arc::clone(&clock), limits, timers.clone()).await;
            assert_eq!(which, Deadline::Header);
            assert!(started.elapsed() >= Duration::from_millis(50));

            let clock = Clock::new();
            clock.request_began();
            let watching = watch(Arc::clone(&clock), limits, timers.clone());
            let busy = timers.timeout_at(Instant::now() + Duration::from_millis(300), watching);
            assert!(busy.await.is_err(), "a busy connection has no deadline");
            clock.request_ended();
            let which = watch(Arc::clone(&clock), limits, timers.clone()).await;
            assert_eq!(which, Deadline::KeepAlive);
        });
    }

    #[test]
    fn a_watchdog_polled_for_its_connections_events_still_sees_its_deadline() {
        // Its task is woken over and over by something else (the connection, here a loop that
        // yields): those polls skip the timer, and its own wake is not lost among them.
        with_timers(|timers| async move {
            let limits = ConnectionLimits {
                header_timeout: Duration::from_millis(50),
                ..ConnectionLimits::default()
            };
            let clock = Clock::new();
            let started = Instant::now();
            let mut polls = 0u64;
            let busy_connection = async {
                loop {
                    polls += 1;
                    tokio::task::yield_now().await;
                }
            };
            let watched = async {
                tokio::select! {
                    biased;
                    () = busy_connection => unreachable!("the loop never ends"),
                    which = watch(Arc::clone(&clock), limits, timers.clone()) => which,
                }
            };
            let which = timers
                .timeout_at(started + Duration::from_secs(5), watched)
                .await
                .expect("the watchdog saw its deadline (50 ms) within 5 s");
            assert_eq!(which, Deadline::Header);
            assert!(started.elapsed() >= Duration::from_millis(50));
            assert!(
                polls > 1,
                "the watchdog was polled along with the busy loop"
            );
        });
    }
}
