//! Keep-alive connections to backends, one pool per proxy worker (so it is only ever locked
//! by its own thread, without contention).
//!
//! A request takes an idle connection to its target that is ready, or opens one; the
//! connection comes back once the response body has been read to its end (`Pooled`, kept by
//! the proxied body), not before: an HTTP/1 connection carries one exchange at a time. A
//! request that a reused connection could not even start (the backend had closed it) is sent
//! again on a fresh one. A request that never left (no connection could be opened, or a fresh
//! one closed before it took the request) comes back with the error (`Failed::unsent`), so
//! that the proxy can send it again elsewhere or later.
//!
//! No task of its own drives a connection: the request that holds it does, in its own task
//! (the client connection's), while it waits for the response head (`send`) and then while
//! the response body is read (`PooledBody`). A request then costs no wake of a second task
//! and no hop between tasks; hyper's client keeps its channel between `SendRequest` and the
//! connection, but both ends are polled by one task, and the wakes that its channels make
//! when that task hands over a request or takes a body's frame are dropped (`Quiet`): the
//! task is polled once per event on a socket, twice per request. An idle connection is
//! driven by no one: a backend's close is seen when the connection is next used (the request,
//! not sent, goes on a fresh one) or by `maintain`. An upgrade (WebSocket) is the exception:
//! its connection is handed to a task of its own (hyper's `with_upgrades`), and not pooled
//! again. `maintain` drops connections idle for `IDLE_TIMEOUT` and those their backend closed.
//!
//! Each connection keeps a timer for the wait for a response. A request moves it later, which
//! costs an atomic operation: a timer of its own would be filed into tokio's timer wheel and
//! taken out again, under the wheel's lock, for every request. The timers are kept by the
//! proxy's timer thread (`super::timers`), so the worker's event loop waits without a timeout.

use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

// Keyed by this worker's own backends: a fast hash needs no flood resistance.
use bytes::Bytes;
use foldhash::HashMap;
use http_body::{Frame, SizeHint};
use hyper::body::{Body, Incoming};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Request, Response};
use tokio::time::{Instant, Sleep};

use super::connector;
use super::driven::Driven;
use super::timers::Timers;
use crate::supervisor::gate::Target;

/// How long an unused connection is kept.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// At most this many idle connections per backend.
const MAX_IDLE_PER_TARGET: usize = 256;
/// How often `maintain` runs.
const TICK: Duration = Duration::from_secs(1);

/// Connections that send request bodies of type `B`.
pub(crate) struct Pool<B: SendBody = Incoming> {
    idle: Mutex<HashMap<Target, Vec<Idle<B>>>>,
    /// Seconds (ticks of `maintain`) since the pool began: a clock that costs nothing to read.
    ticks: AtomicU64,
    timers: Timers,
}

struct Idle<B: SendBody> {
    sender: SendRequest<B>,
    connection: Connection<B>,
    timer: Timer,
    since: u64,
}

/// hyper's half of a connection that does the I/O: whoever waits on the connection polls it.
/// Boxed (once, when it is opened): it is large (its buffers' state, the parser's), and is
/// moved with the request's future, and in and out of the pool, for every request.
type Connection<B> = Box<Driven<B>>;

/// What a request that the pool's connections send has for a body.
pub(crate) trait SendBody:
    Body<Data: Send, Error: Into<Box<dyn std::error::Error + Send + Sync>>> + Send + 'static
{
}

impl<B> SendBody for B where
    B: Body<Data: Send, Error: Into<Box<dyn std::error::Error + Send + Sync>>> + Send + 'static
{
}

/// A connection's timer for the wait for a response.
type Timer = Pin<Box<Sleep>>;

/// A connection in use; `release` gives it back.
pub(crate) struct Pooled<B: SendBody = Incoming> {
    sender: SendRequest<B>,
    /// Driven by the request's task; `None` once it ended, or when a task of its own drives
    /// it (an upgrade).
    connection: Option<Connection<B>>,
    timer: Timer,
    target: Target,
    pool: Arc<Pool<B>>,
}

/// A request that got no response head from its backend: why, and the request itself if it
/// never left (so it may be sent again, whatever its method and body).
#[derive(Debug)]
pub(crate) struct Failed<B = Incoming> {
    pub error: SendError,
    pub unsent: Option<Request<B>>,
}

/// Why a request got no response from its backend.
#[derive(Debug)]
pub(crate) enum SendError {
    Connect(std::io::Error),
    Http(hyper::Error),
    /// No response head within this long.
    Timeout(Duration),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Connect(error) => write!(f, "cannot connect: {error}"),
            SendError::Timeout(timeout) => write!(
                f,
                "no answer within {}",
                humantime::format_duration(*timeout)
            ),
            SendError::Http(error) => match std::error::Error::source(error) {
                Some(cause) => write!(f, "{error}: {cause}"),
                None => write!(f, "{error}"),
            },
        }
    }
}

impl SendError {
    /// Whether the connection was refused, or broke before the response head: what a backend
    /// that is gone (or going) does. Not a timeout (the backend may still be at work) nor a
    /// response that could not be parsed (the backend answered).
    pub(crate) fn lost_connection(&self) -> bool {
        match self {
            SendError::Connect(_) => true,
            SendError::Timeout(_) => false,
            SendError::Http(error) => {
                !(error.is_parse() || error.is_user())
                    && (error.is_incomplete_message()
                        || error.is_canceled()
                        || error.is_closed()
                        || std::error::Error::source(error)
                            .is_some_and(|cause| cause.is::<std::io::Error>()))
            }
        }
    }
}

impl<B: SendBody> Pool<B> {
    pub(crate) fn new(timers: Timers) -> Self {
        Pool {
            idle: Mutex::default(),
            ticks: AtomicU64::new(0),
            timers,
        }
    }

    pub(crate) fn timers(&self) -> &Timers {
        &self.timers
    }

    /// Sends `request` to `target`, and waits at most `timeout` (connecting included) for the
    /// response head. On success, the response and its connection (to release when the
    /// response body has been read). A failure is boxed: it is rare, and would otherwise
    /// enlarge every request's future by a request.
    pub(crate) async fn send(
        self: &Arc<Self>,
        target: &Target,
        mut request: Request<B>,
        timeout: Duration,
    ) -> Result<(Response<Incoming>, Pooled<B>), Box<Failed<B>>> {
        let deadline = Instant::now() + timeout;
        // An upgrade's connection outlives the exchange: a task of its own drives it.
        let upgrade = request.headers().contains_key(hyper::header::UPGRADE);
        loop {
            let (mut sender, connection, mut timer, reused) = match self.checkout(target) {
                Some((sender, connection, mut timer)) => {
                    timer.as_mut().reset(deadline);
                    (sender, connection, timer, true)
                }
                // Boxed: connecting is rare, and its state would enlarge every request's future.
                None => {
                    let opened = match self
                        .timers
                        .timeout_at(deadline, Box::pin(open(target)))
                        .await
                    {
                        Ok(Ok(opened)) => opened,
                        Ok(Err(error)) => return Err(failed(error, Some(request))),
                        Err(_) => return Err(failed(SendError::Timeout(timeout), Some(request))),
                    };
                    let (sender, connection) = opened;
                    let timer = Box::pin(self.timers.sleep_until(deadline));
                    (sender, connection, timer, false)
                }
            };
            let mut connection = if upgrade {
                tokio::spawn(drive_upgradable(connection));
                None
            } else {
                Some(connection)
            };
            let mut sending = pin!(match connection.as_mut() {
                Some(driven) => driven.send(|| sender.try_send_request(request)),
                None => sender.try_send_request(request),
            });
            let answer = poll_fn(|cx| {
                let mut polled = match connection.as_mut() {
                    Some(driven) => {
                        let (polled, ended) =
                            driven.drive_for(cx, |quiet| sending.as_mut().poll(quiet));
                        if ended {
                            // It ended (the backend closed it, or it broke): gone, it gives
                            // back the request it had not sent, or fails the one it had.
                            connection = None;
                        }
                        polled
                    }
                    None => Poll::Pending,
                };
                if polled.is_pending() && connection.is_none() {
                    polled = sending.as_mut().poll(cx);
                }
                match polled {
                    Poll::Ready(answer) => Poll::Ready(Some(answer)),
                    Poll::Pending => timer.as_mut().poll(cx).map(|()| None),
                }
            })
            .await;
            match answer {
                None => return Err(failed(SendError::Timeout(timeout), None)),
                Some(Ok(response)) => {
                    let pooled = Pooled {
                        sender,
                        connection,
                        timer,
                        target: target.clone(),
                        pool: Arc::clone(self),
                    };
                    return Ok((response, pooled));
                }
                Some(Err(mut error)) => match error.take_message() {
                    // Not sent at all: the backend had closed this idle connection.
                    Some(unsent) if reused => request = unsent,
                    unsent => return Err(failed(SendError::Http(error.into_error()), unsent)),
                },
            }
        }
    }

    /// The most recently used idle connection to `target` that can take a request.
    fn checkout(&self, target: &Target) -> Option<(SendRequest<B>, Connection<B>, Timer)> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.get_mut(target)?;
        while let Some(entry) = list.pop() {
            if entry.sender.is_ready() {
                return Some((entry.sender, entry.connection, entry.timer));
            }
        }
        None
    }

    fn put(
        &self,
        target: Target,
        sender: SendRequest<B>,
        connection: Connection<B>,
        mut timer: Timer,
    ) {
        // The timer stays set (it is moved, not taken out, by the next request); polled once
        // here, it lets go of the waker of the task that used it last. The connection keeps
        // that task's waker until `maintain` polls it (a wake at most, if its backend closes
        // it meanwhile).
        let _ = timer.as_mut().poll(&mut Context::from_waker(Waker::noop()));
        let since = self.ticks.load(Ordering::Relaxed);
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.entry(target).or_default();
        if list.len() < MAX_IDLE_PER_TARGET {
            list.push(Idle {
                sender,
                connection,
                timer,
                since,
            });
        }
    }

    /// How many connections are idle, over all targets (for tests and diagnostics).
    #[cfg(test)]
    pub(crate) fn idle_count(&self) -> usize {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.values().map(Vec::len).sum()
    }

    /// Runs forever: every second, drops connections idle too long or closed by their
    /// backend. Its timer, always pending, also keeps a request's timeout from waking the
    /// timer thread (tokio wakes its driver when a timer is set earlier than any other).
    pub(crate) async fn maintain(self: Arc<Self>) {
        let limit = IDLE_TIMEOUT.as_secs();
        loop {
            self.timers.sleep_until(Instant::now() + TICK).await;
            let now = self.ticks.fetch_add(1, Ordering::Relaxed) + 1;
            // Polled here, an idle connection reads its backend's close (and lets go of the
            // waker of the task that used it last).
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            idle.retain(|_, list| {
                list.retain_mut(|entry| {
                    now - entry.since < limit
                        && !entry.connection.poll_idle()
                        && entry.sender.is_ready()
                });
                !list.is_empty()
            });
        }
    }
}

impl<B: SendBody> Pooled<B> {
    /// Gives the connection back to the pool once it can take the next request: at once in
    /// the usual case, or when it becomes ready (it never does if the backend closes it),
    /// driven until then by a task of its own. An upgrade's connection is not pooled again.
    pub(crate) fn release(self) {
        let Pooled {
            mut sender,
            connection,
            timer,
            target,
            pool,
        } = self;
        let Some(mut connection) = connection else {
            return;
        };
        if sender.is_ready() {
            pool.put(target, sender, connection, timer);
        } else if !sender.is_closed() {
            tokio::spawn(async move {
                let ready = poll_fn(|cx| {
                    if connection.poll_ended(cx) {
                        return Poll::Ready(false);
                    }
                    sender.poll_ready(cx).map(|ready| ready.is_ok())
                })
                .await;
                if ready {
                    pool.put(target, sender, connection, timer);
                }
            });
        }
    }
}

/// The body of a response read from a pooled connection: reading it drives the connection
/// (which is what reads the body from the backend), and at its end the connection goes back
/// to the pool. Dropped before its end, it closes the connection.
pub(crate) struct PooledBody<B: SendBody> {
    inner: Incoming,
    connection: Option<Pooled<B>>,
}

impl<B: SendBody> PooledBody<B> {
    /// The body of `response`, read from `connection`.
    pub(crate) fn new(inner: Incoming, connection: Pooled<B>) -> Self {
        PooledBody {
            inner,
            connection: Some(connection),
        }
    }

    fn release(&mut self) {
        if let Some(connection) = self.connection.take() {
            connection.release();
        }
    }
}

impl<B: SendBody> Drop for PooledBody<B> {
    fn drop(&mut self) {
        // A body with nothing to read (empty, or a HEAD response) may never be polled.
        if self.inner.is_end_stream() {
            self.release();
        }
    }
}

impl<B: SendBody> Body for PooledBody<B> {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let PooledBody { inner, connection } = &mut *self;
        let mut inner = Pin::new(inner);
        let driving = connection.as_mut().and_then(|pooled| {
            let driven = pooled.connection.as_mut()?;
            let (polled, ended) = driven.drive_for(cx, |quiet| inner.as_mut().poll_frame(quiet));
            if ended {
                // Not pooled again: a connection that ended answers nothing more.
                pooled.connection = None;
            }
            Some(polled)
        });
        let polled = match driving {
            Some(polled) if polled.is_ready() => polled,
            _ => inner.as_mut().poll_frame(cx),
        };
        match &polled {
            Poll::Ready(None) => self.release(),
            Poll::Ready(Some(Ok(_))) if self.inner.is_end_stream() => self.release(),
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

fn failed<B>(error: SendError, unsent: Option<Request<B>>) -> Box<Failed<B>> {
    Box::new(Failed { error, unsent })
}

/// Opens a connection to `target`: its two halves, the one that sends requests and the one
/// that does the I/O (which the request drives).
async fn open<B: SendBody>(target: &Target) -> Result<(SendRequest<B>, Connection<B>), SendError> {
    let stream = connector::connect(target)
        .await
        .map_err(SendError::Connect)?;
    let (sender, connection) = http1::Builder::new()
        .handshake(stream)
        .await
        .map_err(SendError::Http)?;
    Ok((sender, Driven::new(connection)))
}

/// Drives the connection of an upgrade (WebSocket) to its end, in a task of its own: hyper
/// hands the upgraded connection over to whoever awaits the response's upgrade.
async fn drive_upgradable<B: SendBody>(connection: Connection<B>) {
    if let Err(error) = connection.connection.with_upgrades().await {
        tracing::debug!(%error, "backend connection ended with an error");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use bytes::Bytes;
    use http_body_util::{BodyExt, Empty};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// Ample time for a local backend to answer.
    const WAIT: Duration = Duration::from_secs(10);

    /// A backend that counts its connections and answers every request on one with `hello`;
    /// with `close_after`, it closes the connection that long after each answer (without saying
    /// so).
    async fn backend(close_after: Option<Duration>) -> (Target, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&accepted);
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buffer = [0u8; 4096];
                    while let Ok(n) = stream.read(&mut buffer).await {
                        if n == 0 {
                            break;
                        }
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello";
                        if stream.write_all(answer).await.is_err() {
                            break;
                        }
                        if let Some(pause) = close_after {
                            if !pause.is_zero() {
                                tokio::time::sleep(pause).await;
                            }
                            break;
                        }
                    }
                });
            }
        });
        (Target::Tcp(port), accepted)
    }

    /// Waits (10 s at most) until `condition` holds.
    async fn until(what: &str, mut condition: impl FnMut() -> bool) {
        let deadline = Instant::now() + WAIT;
        while !condition() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Whether every idle connection's timer went off.
    fn timers_went_off<B: SendBody>(pool: &Pool<B>) -> bool {
        let idle = pool.idle.lock().unwrap();
        idle.values()
            .flatten()
            .all(|entry| entry.timer.is_elapsed())
    }

    /// Whether every idle connection is closed.
    fn closed<B: SendBody>(pool: &Pool<B>) -> bool {
        let idle = pool.idle.lock().unwrap();
        idle.values()
            .flatten()
            .all(|entry| entry.sender.is_closed())
    }

    async fn get(pool: &Arc<Pool<Empty<Bytes>>>, target: &Target) -> Bytes {
        get_within(pool, target, WAIT).await
    }

    async fn get_within(
        pool: &Arc<Pool<Empty<Bytes>>>,
        target: &Target,
        timeout: Duration,
    ) -> Bytes {
        let request = Request::builder()
            .uri("/")
            .header("host", "test")
            .body(Empty::new())
            .unwrap();
        let (response, connection) = pool.send(target, request, timeout).await.unwrap();
        // Reading the body drives the connection, and gives it back at the end.
        let body = PooledBody::new(response.into_body(), connection);
        body.collect().await.unwrap().to_bytes()
    }

    #[tokio::test]
    async fn a_connection_serves_one_request_after_another() {
        let (target, accepted) = backend(None).await;
        let pool = Arc::new(Pool::new(Timers::current()));
        for _ in 0..5 {
            assert_eq!(get(&pool, &target).await, "hello");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        assert_eq!(pool.idle_count(), 1);
    }

    #[tokio::test]
    async fn a_connection_whose_timer_went_off_while_idle_is_reused() {
        let (target, accepted) = backend(None).await;
        let pool = Arc::new(Pool::new(Timers::current()));
        let short = Duration::from_millis(50);
        assert_eq!(get_within(&pool, &target, short).await, "hello");
        assert_eq!(pool.idle_count(), 1);
        until("the idle connection's timer went off", || {
            timers_went_off(&pool)
        })
        .await;
        assert_eq!(get(&pool, &target).await, "hello");
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        assert_eq!(pool.idle_count(), 1);
    }

    #[tokio::test]
    async fn connections_the_backend_closed_are_replaced() {
        let (target, accepted) = backend(Some(Duration::ZERO)).await;
        let pool = Arc::new(Pool::new(Timers::current()));
        for _ in 0..3 {
            assert_eq!(get(&pool, &target).await, "hello");
            // Once the connection's task saw the backend close it: else the next request could
            // be sent on it (and be lost) before that.
            until("the connection is seen closed", || closed(&pool)).await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_connection_its_backend_closed_while_idle_gives_the_request_to_a_fresh_one() {
        // Answers one request per connection, and closes it a little later (not at once, and
        // without saying so): the pool holds it idle, driven by no one, when it closes.
        let (target, accepted) = backend(Some(Duration::from_millis(20))).await;
        let pool = Arc::new(Pool::new(Timers::current()));
        assert_eq!(get(&pool, &target).await, "hello");
        assert_eq!(
            pool.idle_count(),
            1,
            "kept: the backend has not closed it yet"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(get(&pool, &target).await, "hello");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_body_in_pieces_with_pauses_is_read_whole_and_the_connection_reused() {
        // The body comes in chunks, some after a pause (the reader waits on the socket), one
        // larger than the socket's buffers (the connection waits for the reader): reading it
        // drives the connection through both waits.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = Target::Tcp(listener.local_addr().unwrap().port());
        let large = vec![b'x'; 1 << 20];
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buffer = [0u8; 4096];
            while stream.read(&mut buffer).await.unwrap_or(0) > 0 {
                let head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
                stream.write_all(head).await.unwrap();
                for piece in [&b"hello "[..], &b"there"[..], &large[..]] {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    let size = format!("{:x}\r\n", piece.len());
                    stream.write_all(size.as_bytes()).await.unwrap();
                    stream.write_all(piece).await.unwrap();
                    stream.write_all(b"\r\n").await.unwrap();
                }
                stream.write_all(b"0\r\n\r\n").await.unwrap();
            }
        });
        let pool = Arc::new(Pool::new(Timers::current()));
        for _ in 0..2 {
            let body = get(&pool, &target).await;
            assert_eq!(body.len(), 11 + (1 << 20));
            assert!(body.starts_with(b"hello therexxx"));
            assert_eq!(pool.idle_count(), 1, "given back at the body's end");
        }
    }

    #[tokio::test]
    async fn a_backend_that_is_gone_is_a_connect_error() {
        let port = {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            listener.local_addr().unwrap().port()
        };
        let pool = Arc::new(Pool::new(Timers::current()));
        let request = Request::builder()
            .uri("/")
            .body(Empty::<Bytes>::new())
            .unwrap();
        let failed = pool
            .send(&Target::Tcp(port), request, WAIT)
            .await
            .err()
            .unwrap();
        let error = &failed.error;
        assert!(matches!(error, SendError::Connect(_)), "{error}");
        assert!(error.to_string().starts_with("cannot connect: "), "{error}");
        assert!(error.lost_connection());
        assert!(
            failed.unsent.is_some(),
            "the request never left: it comes back"
        );
    }

    #[tokio::test]
    async fn a_connection_closed_after_the_request_left_is_lost_and_not_given_back() {
        // Reads a request and closes the connection without a word (as a process that dies
        // while it serves a request).
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = Target::Tcp(listener.local_addr().unwrap().port());
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buffer = [0u8; 4096];
            let _ = stream.read(&mut buffer).await;
        });
        let pool = Arc::new(Pool::new(Timers::current()));
        let request = Request::builder()
            .uri("/")
            .body(Empty::<Bytes>::new())
            .unwrap();
        let failed = pool.send(&target, request, WAIT).await.err().unwrap();
        let error = &failed.error;
        assert!(matches!(error, SendError::Http(_)), "{error}");
        assert!(error.lost_connection(), "{error}");
        assert!(failed.unsent.is_none(), "it was sent");
    }

    #[tokio::test]
    async fn a_backend_that_stops_answering_times_out_on_a_reused_connection() {
        // Answers the first request on a connection, and never the next ones.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = Target::Tcp(listener.local_addr().unwrap().port());
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buffer = [0u8; 4096];
            let mut answered = false;
            while let Ok(n) = stream.read(&mut buffer).await {
                if n == 0 {
                    break;
                }
                if !answered {
                    let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello";
                    stream.write_all(answer).await.unwrap();
                    answered = true;
                }
            }
        });
        let pool = Arc::new(Pool::new(Timers::current()));
        // The connection's timer is set for 100 ms from now; the next request moves it later,
        // which leaves it filed at the earlier time in tokio's wheel until then.
        let first = Duration::from_millis(100);
        assert_eq!(get_within(&pool, &target, first).await, "hello");
        assert_eq!(pool.idle_count(), 1);
        let request = Request::builder()
            .uri("/")
            .body(Empty::<Bytes>::new())
            .unwrap();
        let timeout = Duration::from_millis(200);
        let started = Instant::now();
        let failed = pool.send(&target, request, timeout).await.err().unwrap();
        let error = &failed.error;
        assert!(matches!(error, SendError::Timeout(_)), "{error}");
        assert_eq!(error.to_string(), "no answer within 200ms");
        assert!(!error.lost_connection(), "the backend may still be at work");
        assert!(failed.unsent.is_none(), "it was sent");
        assert!(started.elapsed() >= timeout);
        // The connection with a request left unanswered is not reused.
        assert_eq!(pool.idle_count(), 0);
    }
}
