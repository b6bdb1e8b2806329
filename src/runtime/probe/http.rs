//! The HTTP check: one GET of the health path through hyper's HTTP/1.1 client, driven in the
//! checking task itself (no task spawned per check), and the connection an instance's
//! periodic checks keep between checks ([`CheckConnection`]).
//!
//! A check reuses the kept connection when it was made to the same process (pid) and target
//! and is still open (a non-blocking read finds no end of stream). A reused connection that
//! fails before an answer (the tenant closed it meanwhile: a keep-alive timeout of its own)
//! is dropped and the check is made once more on a fresh connection, within the same
//! timeout; only the fresh connection's result counts. A connection is kept after an answer
//! (2xx or not) when it can carry the next request: HTTP/1.1 without `Connection: close`, the
//! body read to its end (at most [`MAX_BODY`]), nothing unread after it. What is kept is
//! the socket alone: hyper's buffers live only during a check.
//!
//! Must not import the supervisor: the task holds a [`CheckConnection`] and passes it in the
//! [`super::Probe`].

use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::{self, Connection};
use hyper::{Request, Response, body::Incoming};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};

use super::listening::{self, Connected, Target};
use super::{ProbeResult, ProbeTarget, connect_failed};

/// The most of a health answer's body a check reads; past it, the connection is not kept.
pub(crate) const MAX_BODY: usize = 64 * 1024;

/// Where an instance's HTTP checks keep their connection from one check to the next. Its
/// supervisor task holds one and tells it when the process ends.
#[derive(Debug, Default, Clone)]
pub struct CheckConnection(Arc<Mutex<Slot>>);

#[derive(Debug, Default)]
struct Slot {
    kept: Option<Kept>,
    /// The last process that ended: a check of it still under way keeps nothing.
    ended: Option<u32>,
}

/// A [`CheckConnection`] for the checks of process `pid`: a connection kept for another
/// process is never used.
#[derive(Debug, Clone)]
pub struct KeepAlive {
    pub connection: CheckConnection,
    pub pid: u32,
}

impl PartialEq for KeepAlive {
    fn eq(&self, other: &Self) -> bool {
        self.pid == other.pid && Arc::ptr_eq(&self.connection.0, &other.connection.0)
    }
}

impl Eq for KeepAlive {}

#[derive(Debug)]
struct Kept {
    pid: u32,
    target: ProbeTarget,
    stream: Stream,
}

#[derive(Debug)]
pub(super) enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl CheckConnection {
    /// The process `pid` ended: its connection is closed, and none is kept for it any more.
    pub fn process_ended(&self, pid: u32) {
        let mut slot = self.slot();
        slot.kept = None;
        slot.ended = Some(pid);
    }

    /// Whether a connection is kept (for tests).
    #[cfg(test)]
    pub(crate) fn is_kept(&self) -> bool {
        self.slot().kept.is_some()
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Slot> {
        // Held for a take or a put only, never across an await.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The kept connection to `pid` at `target`, if it is still open; any other is closed.
    fn take(&self, pid: u32, target: &ProbeTarget) -> Option<Stream> {
        let kept = self.slot().kept.take()?;
        (kept.pid == pid && &kept.target == target && kept.stream.is_open()).then_some(kept.stream)
    }

    fn keep(&self, pid: u32, target: &ProbeTarget, stream: Stream) {
        let mut slot = self.slot();
        if slot.ended != Some(pid) {
            slot.kept = Some(Kept {
                pid,
                target: target.clone(),
                stream,
            });
        }
    }
}

impl Stream {
    /// Whether the other end has neither closed nor sent anything since the last answer: a
    /// read that would block. Without a readiness event since, tokio answers without a
    /// system call.
    fn is_open(&self) -> bool {
        let mut byte = [0; 1];
        let read = match self {
            Stream::Tcp(stream) => stream.try_read(&mut byte),
            Stream::Unix(stream) => stream.try_read(&mut byte),
        };
        matches!(read, Err(error) if error.kind() == std::io::ErrorKind::WouldBlock)
    }
}

/// A GET of `path` at `target` (TCP or Unix): `Ok` with the check's result, or `Err` when ten
/// could not even try (no file descriptor left for the socket). With `keep`, the connection
/// kept for its process is used, and the one used is kept.
pub(super) async fn check(
    target: &ProbeTarget,
    path: &str,
    keep: Option<&KeepAlive>,
    listening_within: Option<std::time::Duration>,
) -> Result<ProbeResult, String> {
    let host = match target {
        ProbeTarget::Tcp { .. } => "127.0.0.1",
        ProbeTarget::Unix { .. } => "localhost",
        ProbeTarget::Exec(_) => return Ok(Err("a command check is no HTTP check".into())),
    };
    if let Err(error) = request(path, host) {
        return Ok(Err(error));
    }
    if let Some(stream) = keep.and_then(|keep| keep.connection.take(keep.pid, target)) {
        // Failed before an answer: closed by the tenant meanwhile, or gone with it; a fresh
        // connection says which.
        if let Ok((result, reusable)) = exchange(stream, path, host).await {
            keep_stream(keep, target, reusable);
            return Ok(result);
        }
    }
    let stream = match connect_within(target, listening_within).await {
        Ok(stream) => stream,
        Err(error) => return connect_failed(address(target))(error),
    };
    match exchange(stream, path, host).await {
        Ok((result, reusable)) => {
            keep_stream(keep, target, reusable);
            Ok(result)
        }
        Err(error) => Ok(Err(error)),
    }
}

fn keep_stream(keep: Option<&KeepAlive>, target: &ProbeTarget, stream: Option<Stream>) {
    if let (Some(keep), Some(stream)) = (keep, stream) {
        keep.connection.keep(keep.pid, target, stream);
    }
}

/// Where `target` is, as errors say it.
pub(super) fn address(target: &ProbeTarget) -> String {
    match target {
        ProbeTarget::Tcp { port } => format!("127.0.0.1:{port}"),
        ProbeTarget::Unix { socket } => socket.display().to_string(),
        ProbeTarget::Exec(_) => "a command".to_owned(),
    }
}

/// A connection to `target` (TCP or Unix): with `listening_within`, made as soon as the
/// target accepts connections within that time (see `listening`), else tried once.
pub(super) async fn connect_within(
    target: &ProbeTarget,
    listening_within: Option<std::time::Duration>,
) -> std::io::Result<Stream> {
    let (waited, within) = match (target, listening_within) {
        (ProbeTarget::Tcp { port }, Some(within)) => (Target::Tcp(*port), within),
        (ProbeTarget::Unix { socket }, Some(within)) => (Target::Unix(socket.clone()), within),
        _ => return connect(target).await,
    };
    match listening::connect_within(waited, within).await? {
        Connected::Tcp(stream) => completed(stream).await,
        Connected::Unix(stream) => Ok(Stream::Unix(UnixStream::from_std(stream)?)),
    }
}

/// A connection to `target` (TCP or Unix).
async fn connect(target: &ProbeTarget) -> std::io::Result<Stream> {
    match target {
        ProbeTarget::Tcp { port } => completed(start_connect(*port)?).await,
        ProbeTarget::Unix { socket } => Ok(Stream::Unix(UnixStream::connect(socket).await?)),
        ProbeTarget::Exec(_) => Err(std::io::Error::other("a command check has no socket")),
    }
}

/// A started non-blocking TCP connection, once it is made.
async fn completed(stream: std::net::TcpStream) -> std::io::Result<Stream> {
    let stream = TcpStream::from_std(stream)?;
    stream.writable().await?;
    if let Some(error) = stream.take_error()? {
        return Err(error);
    }
    let _ = stream.set_nodelay(true);
    Ok(Stream::Tcp(stream))
}

/// Starts a non-blocking connection to 127.0.0.1:`port`. On loopback the kernel answers
/// within the `connect` call, so a port nobody listens on is known refused at once: the
/// refused checks of a starting instance (several each, during a burst of starts thousands)
/// cost no registration with the reactor and no wake-up.
pub(super) fn start_connect(port: u16) -> std::io::Result<std::net::TcpStream> {
    use socket2::{Domain, SockAddr, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM.nonblocking().cloexec(), None)?;
    let address = std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port));
    match socket.connect(&SockAddr::from(address)) {
        Ok(()) => {}
        Err(error) if error.raw_os_error() == Some(nix::libc::EINPROGRESS) => {}
        Err(error) => return Err(error),
    }
    match socket.take_error()? {
        None => Ok(socket.into()),
        Some(error) => Err(error),
    }
}

/// The check's GET; its header values are static (no copy of them for each check).
fn request(path: &str, host: &'static str) -> Result<Request<Empty<Bytes>>, String> {
    use hyper::header::HeaderValue;
    Request::get(path)
        .header(hyper::header::HOST, HeaderValue::from_static(host))
        .header(
            hyper::header::USER_AGENT,
            HeaderValue::from_static("ten-health-check"),
        )
        .body(Empty::<Bytes>::new())
        .map_err(|error| format!("bad health path {path:?}: {error}"))
}

/// One GET on `stream`: the check's result and the stream back if it can carry the next
/// request, or `Err` when no answer came (the handshake or the exchange failed).
async fn exchange(
    stream: Stream,
    path: &str,
    host: &'static str,
) -> Result<(ProbeResult, Option<Stream>), String> {
    match stream {
        Stream::Tcp(stream) => exchange_on(stream, path, host)
            .await
            .map(|(result, stream)| (result, stream.map(Stream::Tcp))),
        Stream::Unix(stream) => exchange_on(stream, path, host)
            .await
            .map(|(result, stream)| (result, stream.map(Stream::Unix))),
    }
}

async fn exchange_on<S>(
    stream: S,
    path: &str,
    host: &'static str,
) -> Result<(ProbeResult, Option<S>), String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let request = request(path, host)?;
    let (mut sender, mut connection) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|error| format!("HTTP handshake: {error}"))?;
    let response = driving(&mut connection, sender.send_request(request))
        .await
        .and_then(|sent| sent.map_err(|error| error.to_string()))
        .map_err(|error| format!("GET {path}: {error}"))?;
    let status = response.status();
    let result = if status.is_success() {
        Ok(())
    } else {
        Err(format!("GET {path} answered {status}"))
    };
    let keep_alive = keeps_alive(&response);
    let body_read = read_body(&mut connection, response.into_body()).await;
    if !(keep_alive && body_read) {
        return Ok((result, None));
    }
    // No more requests: the dispatcher ends without shutting the socket, which it hands back.
    drop(sender);
    let reusable = match std::future::poll_fn(|cx| connection.poll_without_shutdown(cx)).await {
        Ok(()) => {
            let parts = connection.into_parts();
            parts.read_buf.is_empty().then(|| parts.io.into_inner())
        }
        Err(_) => None,
    };
    Ok((result, reusable))
}

/// Whether the answer leaves the connection open for the next request (HTTP/1.1 without
/// `Connection: close`).
fn keeps_alive(response: &Response<Incoming>) -> bool {
    response.version() == hyper::Version::HTTP_11
        && !response
            .headers()
            .get_all(hyper::header::CONNECTION)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .any(|token| token.trim().eq_ignore_ascii_case("close"))
}

/// Reads the answer's body to its end, at most [`MAX_BODY`]; false when it did not end
/// well within that.
async fn read_body<S>(
    connection: &mut Connection<TokioIo<S>, Empty<Bytes>>,
    mut body: Incoming,
) -> bool
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut read = 0;
    loop {
        match driving(connection, body.frame()).await {
            Ok(None) => return true,
            Ok(Some(Ok(frame))) => {
                read += frame.data_ref().map_or(0, Bytes::len);
                if read > MAX_BODY {
                    return false;
                }
            }
            Ok(Some(Err(_))) | Err(_) => return false,
        }
    }
}

/// Polls `work` to its end while driving `connection` (hyper's half that does the I/O) in
/// the same task. `Err` when the connection ended and `work` still waits on it.
async fn driving<S, T>(
    connection: &mut Connection<TokioIo<S>, Empty<Bytes>>,
    work: impl Future<Output = T>,
) -> Result<T, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut work = pin!(work);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(output) = work.as_mut().poll(cx) {
            return Poll::Ready(Ok(output));
        }
        if let Poll::Ready(done) = connection.poll_without_shutdown(cx) {
            // What the connection did last may have answered `work`.
            if let Poll::Ready(output) = work.as_mut().poll(cx) {
                return Poll::Ready(Ok(output));
            }
            return Poll::Ready(Err(match done {
                Ok(()) => "the connection was closed".to_owned(),
                Err(error) => error.to_string(),
            }));
        }
        Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::super::{Probe, ProbeOutcome, run_probe};
    use super::*;

    /// What the test server does with request `request` (from 0) of connection `connection`
    /// (from 0).
    #[derive(Clone, Copy)]
    enum Act {
        Answer(&'static str),
        AnswerAndClose(&'static str),
        /// Closes the connection without an answer.
        Hangup,
        /// Reads the request and never answers.
        Hang,
    }

    /// A server on 127.0.0.1 that counts the connections it accepts.
    struct Server {
        port: u16,
        accepted: Arc<AtomicUsize>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Drop for Server {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    impl Server {
        async fn start(act: fn(usize, usize) -> Act) -> Server {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let accepted = Arc::new(AtomicUsize::new(0));
            let counter = Arc::clone(&accepted);
            let task = tokio::spawn(async move {
                let mut connections = tokio::task::JoinSet::new();
                while let Ok((stream, _)) = listener.accept().await {
                    let connection = counter.fetch_add(1, Ordering::SeqCst);
                    connections.spawn(serve(stream, connection, act));
                }
            });
            Server {
                port,
                accepted,
                task,
            }
        }

        fn accepted(&self) -> usize {
            self.accepted.load(Ordering::SeqCst)
        }

        fn probe(&self, keep: Option<KeepAlive>) -> Probe {
            Probe {
                target: ProbeTarget::Tcp { port: self.port },
                http_path: Some("/health".into()),
                timeout: Duration::from_secs(2),
                keep,
                listening_within: None,
            }
        }
    }

    async fn serve(mut stream: TcpStream, connection: usize, act: fn(usize, usize) -> Act) {
        let mut request = 0;
        let mut buffer = Vec::new();
        loop {
            while !buffer.windows(4).any(|window| window == b"\r\n\r\n") {
                let mut chunk = [0; 1024];
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                }
            }
            buffer.clear();
            let (status, close) = match act(connection, request) {
                Act::Answer(status) => (status, false),
                Act::AnswerAndClose(status) => (status, true),
                Act::Hangup => return,
                Act::Hang => {
                    std::future::pending::<()>().await;
                    return;
                }
            };
            let header = if close { "connection: close\r\n" } else { "" };
            let answer = format!("HTTP/1.1 {status}\r\ncontent-length: 2\r\n{header}\r\nok");
            if stream.write_all(answer.as_bytes()).await.is_err() || close {
                return;
            }
            request += 1;
        }
    }

    fn keep(connection: &CheckConnection, pid: u32) -> Option<KeepAlive> {
        Some(KeepAlive {
            connection: connection.clone(),
            pid,
        })
    }

    fn healthy() -> ProbeOutcome {
        ProbeOutcome::Done(Ok(()))
    }

    fn failure(outcome: ProbeOutcome) -> String {
        match outcome {
            ProbeOutcome::Done(Err(error)) => error,
            other => panic!("expected a failed check, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn checks_of_one_process_share_one_connection() {
        let server = Server::start(|_, _| Act::Answer("200 OK")).await;
        let connection = CheckConnection::default();
        for _ in 0..5 {
            assert_eq!(
                run_probe(&server.probe(keep(&connection, 7))).await,
                healthy()
            );
        }
        assert_eq!(server.accepted(), 1, "five checks, one connection");
        assert!(connection.is_kept());
    }

    #[tokio::test]
    async fn without_a_keep_each_check_has_a_connection_of_its_own() {
        let server = Server::start(|_, _| Act::Answer("200 OK")).await;
        for _ in 0..3 {
            assert_eq!(run_probe(&server.probe(None)).await, healthy());
        }
        assert_eq!(server.accepted(), 3);
    }

    #[tokio::test]
    async fn another_process_gets_a_new_connection_and_a_closed_one_none() {
        let server = Server::start(|_, _| Act::Answer("200 OK")).await;
        let connection = CheckConnection::default();
        assert_eq!(
            run_probe(&server.probe(keep(&connection, 7))).await,
            healthy()
        );
        assert_eq!(
            run_probe(&server.probe(keep(&connection, 8))).await,
            healthy()
        );
        assert_eq!(
            server.accepted(),
            2,
            "a restart (new pid) never reuses the old connection"
        );
        connection.process_ended(8);
        assert!(!connection.is_kept());
        // A check of the ended process still under way keeps nothing.
        assert_eq!(
            run_probe(&server.probe(keep(&connection, 8))).await,
            healthy()
        );
        assert!(!connection.is_kept());
        assert_eq!(
            run_probe(&server.probe(keep(&connection, 9))).await,
            healthy()
        );
        assert!(connection.is_kept());
        assert_eq!(server.accepted(), 4);
    }

    #[tokio::test]
    async fn a_connection_the_server_closes_is_replaced() {
        // `connection: close` on every answer: never kept.
        let server = Server::start(|_, _| Act::AnswerAndClose("200 OK")).await;
        let connection = CheckConnection::default();
        for _ in 0..3 {
            assert_eq!(
                run_probe(&server.probe(keep(&connection, 7))).await,
                healthy()
            );
        }
        assert_eq!(server.accepted(), 3);
        assert!(!connection.is_kept());

        // Closed between checks (a keep-alive timeout of the server's): seen before reuse.
        let server = Server::start(|_, request| {
            if request == 0 {
                Act::Answer("200 OK")
            } else {
                Act::Hangup
            }
        })
        .await;
        let connection = CheckConnection::default();
        assert_eq!(
            run_probe(&server.probe(keep(&connection, 7))).await,
            healthy()
        );
        // The server hangs up the first connection at its second request: the check is made
        // again on a fresh connection, and counts as its answer.
        assert_eq!(
            run_probe(&server.probe(keep(&connection, 7))).await,
            healthy()
        );
        assert_eq!(server.accepted(), 2);
    }

    #[tokio::test]
    async fn a_server_that_closes_a_kept_connection_while_idle_gets_a_new_one() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let connection = CheckConnection::default();
        let probe = Probe {
            target: ProbeTarget::Tcp { port },
            http_path: Some("/health".into()),
            timeout: Duration::from_secs(2),
            keep: keep(&connection, 7),
            listening_within: None,
        };
        let answer = |mut stream: TcpStream| async move {
            let mut buffer = [0; 1024];
            let _ = stream.read(&mut buffer).await.unwrap();
            stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                .await
                .unwrap();
            stream
        };
        let (checked, accepted) = tokio::join!(run_probe(&probe), async {
            answer(listener.accept().await.unwrap().0).await
        });
        assert_eq!(checked, healthy());
        // The server closes the connection while no check runs.
        drop(accepted);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (checked, _second) = tokio::join!(run_probe(&probe), async {
            answer(listener.accept().await.unwrap().0).await
        });
        assert_eq!(checked, healthy());
        assert!(connection.is_kept());
    }

    #[tokio::test]
    async fn a_non_2xx_answer_on_a_kept_connection_fails_the_check() {
        let server = Server::start(|_, request| {
            if request == 0 {
                Act::Answer("200 OK")
            } else {
                Act::Answer("503 Service Unavailable")
            }
        })
        .await;
        let connection = CheckConnection::default();
        assert_eq!(
            run_probe(&server.probe(keep(&connection, 7))).await,
            healthy()
        );
        let error = failure(run_probe(&server.probe(keep(&connection, 7))).await);
        assert_eq!(error, "GET /health answered 503 Service Unavailable");
        assert_eq!(server.accepted(), 1);
    }

    #[tokio::test]
    async fn a_server_that_stops_answering_on_a_kept_connection_times_out() {
        let server = Server::start(|_, request| {
            if request == 0 {
                Act::Answer("200 OK")
            } else {
                Act::Hang
            }
        })
        .await;
        let connection = CheckConnection::default();
        let mut probe = server.probe(keep(&connection, 7));
        probe.timeout = Duration::from_millis(200);
        assert_eq!(run_probe(&probe).await, healthy());
        let error = failure(run_probe(&probe).await);
        assert_eq!(error, "no answer within 200ms");
        assert!(
            !connection.is_kept(),
            "a check that timed out keeps nothing"
        );
    }

    #[tokio::test]
    async fn a_server_gone_fails_the_check_though_a_connection_was_kept() {
        let server = Server::start(|_, _| Act::Answer("200 OK")).await;
        let connection = CheckConnection::default();
        let probe = server.probe(keep(&connection, 7));
        assert_eq!(run_probe(&probe).await, healthy());
        // The listener and every connection go, as with a process that ended.
        server.task.abort();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let error = failure(run_probe(&probe).await);
        assert!(error.contains("refused"), "{error}");
        assert!(!connection.is_kept());
    }

    #[tokio::test]
    async fn an_answer_too_long_to_read_closes_the_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buffer = [0; 1024];
                    let _ = stream.read(&mut buffer).await;
                    let body = vec![b'x'; MAX_BODY + 1];
                    let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len());
                    let _ = stream.write_all(head.as_bytes()).await;
                    let _ = stream.write_all(&body).await;
                    let _ = stream.read(&mut buffer).await;
                });
            }
        });
        let connection = CheckConnection::default();
        let probe = Probe {
            target: ProbeTarget::Tcp { port },
            http_path: Some("/health".into()),
            timeout: Duration::from_secs(2),
            keep: keep(&connection, 7),
            listening_within: None,
        };
        assert_eq!(run_probe(&probe).await, healthy());
        assert!(!connection.is_kept());
        server.abort();
    }

    #[tokio::test]
    async fn checks_over_a_unix_socket_share_one_connection_too() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("app.sock");
        let listener = tokio::net::UnixListener::bind(&socket).unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&accepted);
        let server = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buffer = [0; 1024];
                    while matches!(stream.read(&mut buffer).await, Ok(n) if n > 0) {
                        let answer = b"HTTP/1.1 204 No Content\r\n\r\n";
                        if stream.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        let connection = CheckConnection::default();
        let probe = Probe {
            target: ProbeTarget::Unix { socket },
            http_path: Some("/health".into()),
            timeout: Duration::from_secs(2),
            keep: keep(&connection, 7),
            listening_within: None,
        };
        for _ in 0..3 {
            assert_eq!(run_probe(&probe).await, healthy());
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        server.abort();
    }
}
