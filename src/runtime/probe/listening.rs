//! Waiting for a starting instance to accept connections more finely than the runtime's
//! timers allow, for a start a request waits for (a wake). A tokio timer fires a millisecond
//! late at best: the first check of a woken instance came about 2 ms after its exec, most of
//! what ten added to the app's own start. One thread, `ten-listening`, started at the first
//! wait, tries the connection of each waiting check on its own schedule — at once, then every
//! 200 µs, then every sixteenth of the time waited so far, at most every 5 ms — and hands the
//! connection to the check that waits, which makes its request on it (no second connection).
//! A refused connection on loopback is known within the `connect` call and costs
//! microseconds; an idle thread costs nothing.
//!
//! Imports only `http`'s non-blocking TCP connect.

use std::io;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// The first gap between two tries, and the shortest.
const FIRST_GAP: Duration = Duration::from_micros(200);
/// The longest gap between two tries.
const MAX_GAP: Duration = Duration::from_millis(5);
/// The gap is this share of the time waited so far: the wait outlasts the listening by at
/// most about a sixteenth of the start (or 200 µs, or 5 ms), in a few dozen tries.
const SHARE: u32 = 16;

/// What a check connects to.
#[derive(Debug, Clone)]
pub(super) enum Target {
    Tcp(u16),
    Unix(PathBuf),
}

/// A connection the instance accepted (a TCP one may still be completing: non-blocking).
#[derive(Debug)]
pub(super) enum Connected {
    Tcp(std::net::TcpStream),
    Unix(UnixStream),
}

/// Connects to `target` as soon as it accepts connections, trying for `within` at most; the
/// last refusal when it never does. Non-blocking sockets.
pub(super) async fn connect_within(target: Target, within: Duration) -> io::Result<Connected> {
    let (answer, answered) = oneshot::channel();
    let now = Instant::now();
    let wait = Wait {
        target: target.clone(),
        began: now,
        until: now + within,
        next: now,
        pending: None,
        answer,
    };
    match waiter().map(|waits| waits.send(wait)) {
        Some(Ok(())) => answered
            .await
            .unwrap_or_else(|_| Err(io::Error::other("the wait for the connection ended"))),
        // No thread to wait on (none could be started): one try, as a check without it.
        _ => try_connect(&target),
    }
}

/// One check waiting for its connection.
struct Wait {
    target: Target,
    began: Instant,
    /// When it gives up.
    until: Instant,
    /// When it is tried next.
    next: Instant,
    /// A TCP connection the kernel has not completed yet (its refusal can come after the
    /// `connect` call when the loopback's work is deferred): looked at again, not handed over.
    pending: Option<std::net::TcpStream>,
    answer: oneshot::Sender<io::Result<Connected>>,
}

impl Wait {
    /// Tries once when due. Answers and ends on a connection, on an error other than "not
    /// listening yet", or at the end of its time; otherwise comes back with its next try.
    fn try_at(mut self, now: Instant) -> Option<Wait> {
        if now < self.next {
            return Some(self);
        }
        if self.answer.is_closed() {
            // The check gave up (its timeout, or its task ended).
            return None;
        }
        let gap = ((now - self.began) / SHARE).clamp(FIRST_GAP, MAX_GAP);
        let again = now < self.until;
        let outcome = match self.step() {
            Try::Connected(connected) => Ok(connected),
            // The check finishes it (or hears its refusal) once the wait is over.
            Try::Pending(stream) if !again => Ok(Connected::Tcp(stream)),
            Try::Pending(stream) => {
                self.pending = Some(stream);
                self.next = (now + gap).min(self.until);
                return Some(self);
            }
            Try::Failed(error) if not_listening(&error) && again => {
                self.next = (now + gap).min(self.until);
                return Some(self);
            }
            Try::Failed(error) => Err(error),
        };
        let _ = self.answer.send(outcome);
        None
    }

    /// One look: the connection under way, or a new one.
    fn step(&mut self) -> Try {
        let stream = match self.pending.take() {
            Some(stream) => stream,
            None => match try_connect(&self.target) {
                Ok(Connected::Tcp(stream)) => stream,
                Ok(unix) => return Try::Connected(unix),
                Err(error) => return Try::Failed(error),
            },
        };
        match completion(&stream) {
            Ok(true) => Try::Connected(Connected::Tcp(stream)),
            Ok(false) => Try::Pending(stream),
            Err(error) => Try::Failed(error),
        }
    }
}

/// What one look at a wait's connection found.
enum Try {
    Connected(Connected),
    /// A TCP connection the kernel has not completed yet.
    Pending(std::net::TcpStream),
    Failed(io::Error),
}

/// Whether `error` says only that nothing listens there yet (no socket file yet, for a Unix
/// one; a full backlog of a Unix socket is tried again too).
fn not_listening(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(code) if code == nix::libc::ECONNREFUSED
            || code == nix::libc::ENOENT
            || code == nix::libc::EAGAIN
    )
}

/// Whether a started TCP connection is made (`false`: still under way), or why not. A
/// connection to itself (a port in the kernel's ephemeral range, taken by the connect as its
/// own source) is no listener: refused.
fn completion(stream: &std::net::TcpStream) -> io::Result<bool> {
    use std::os::fd::AsFd;
    let mut fds = [nix::poll::PollFd::new(
        stream.as_fd(),
        nix::poll::PollFlags::POLLOUT,
    )];
    let ready = nix::poll::poll(&mut fds, nix::poll::PollTimeout::ZERO).map_err(io::Error::from)?;
    if ready == 0 {
        return Ok(false);
    }
    if let Some(error) = stream.take_error()? {
        return Err(error);
    }
    if stream.local_addr()? == stream.peer_addr()? {
        return Err(io::Error::from_raw_os_error(nix::libc::ECONNREFUSED));
    }
    Ok(true)
}

fn try_connect(target: &Target) -> io::Result<Connected> {
    match target {
        Target::Tcp(port) => super::http::start_connect(*port).map(Connected::Tcp),
        Target::Unix(path) => {
            use socket2::{Domain, SockAddr, Socket, Type};
            let socket = Socket::new(Domain::UNIX, Type::STREAM.nonblocking().cloexec(), None)?;
            socket.connect(&SockAddr::unix(path)?)?;
            Ok(Connected::Unix(socket.into()))
        }
    }
}

/// The channel to the `ten-listening` thread, started at the first call; `None` when it
/// could not be started.
fn waiter() -> Option<&'static mpsc::Sender<Wait>> {
    static WAITER: OnceLock<Option<mpsc::Sender<Wait>>> = OnceLock::new();
    WAITER
        .get_or_init(|| {
            let (sender, waits) = mpsc::channel();
            std::thread::Builder::new()
                .name("ten-listening".into())
                .spawn(move || run(&waits))
                .map_err(|error| tracing::warn!(%error, "cannot start the thread that waits for starting instances to listen; their checks use the runtime's timers"))
                .ok()
                .map(|_| sender)
        })
        .as_ref()
}

/// The thread: each wait tried when due, new ones at once; asleep while none waits.
fn run(waits: &mpsc::Receiver<Wait>) {
    let mut pending: Vec<Wait> = Vec::new();
    loop {
        let received = match pending.iter().map(|wait| wait.next).min() {
            None => waits
                .recv()
                .map_err(|_| mpsc::RecvTimeoutError::Disconnected),
            Some(next) => waits.recv_timeout(next.saturating_duration_since(Instant::now())),
        };
        match received {
            Ok(wait) => pending.push(wait),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        pending.extend(waits.try_iter());
        let now = Instant::now();
        pending = pending
            .into_iter()
            .filter_map(|wait| wait.try_at(now))
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// A port nobody listens on (bound, then closed).
    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    #[tokio::test]
    async fn the_connection_is_made_once_the_instance_listens_and_is_the_one_it_accepts() {
        let port = free_port();
        let listener = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
            let (mut accepted, _) = listener.accept().unwrap();
            let mut byte = [0];
            accepted.read_exact(&mut byte).unwrap();
            accepted.write_all(&[byte[0] + 1]).unwrap();
        });
        let Connected::Tcp(stream) = connect_within(Target::Tcp(port), Duration::from_secs(10))
            .await
            .unwrap()
        else {
            panic!("a TCP target gives a TCP connection");
        };
        stream.set_nonblocking(false).unwrap();
        let mut stream = stream;
        stream.write_all(&[41]).unwrap();
        let mut answer = [0];
        stream.read_exact(&mut answer).unwrap();
        assert_eq!(
            answer,
            [42],
            "the accepted connection is the one handed over"
        );
        listener.join().unwrap();
    }

    #[tokio::test]
    async fn a_port_nobody_opens_is_refused_at_the_end_of_the_wait() {
        let error = connect_within(Target::Tcp(free_port()), Duration::from_millis(30))
            .await
            .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused, "{error}");
    }

    #[tokio::test]
    async fn a_unix_socket_made_later_is_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.sock");
        let made = path.clone();
        let listener = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            let listener = std::os::unix::net::UnixListener::bind(&made).unwrap();
            let (mut accepted, _) = listener.accept().unwrap();
            accepted.write_all(b"hi").unwrap();
        });
        let connected = connect_within(Target::Unix(path.clone()), Duration::from_secs(10))
            .await
            .unwrap();
        let Connected::Unix(mut stream) = connected else {
            panic!("a Unix target gives a Unix connection");
        };
        stream.set_nonblocking(false).unwrap();
        let mut greeting = [0; 2];
        stream.read_exact(&mut greeting).unwrap();
        assert_eq!(&greeting, b"hi");
        listener.join().unwrap();
        // A path where no socket ever appears: its last error, after the wait.
        let missing = connect_within(
            Target::Unix(dir.path().join("never.sock")),
            Duration::from_millis(20),
        )
        .await
        .unwrap_err();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound, "{missing}");
    }

    #[tokio::test]
    async fn a_wait_given_up_by_its_check_stops_trying_and_others_are_still_served() {
        let port = free_port();
        let given_up = tokio::time::timeout(
            Duration::from_millis(20),
            connect_within(Target::Tcp(port), Duration::from_secs(60)),
        )
        .await;
        assert!(given_up.is_err(), "nothing listens: the check times out");
        // Its next try (within 5 ms) finds the check gone and drops the wait. Were it kept, it
        // would connect within 5 ms of the port opening.
        std::thread::sleep(Duration::from_millis(50));
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let open = other.local_addr().unwrap().port();
        assert!(
            connect_within(Target::Tcp(open), Duration::from_secs(10))
                .await
                .is_ok(),
            "another wait is served"
        );
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(
            listener.accept().map_err(|error| error.kind()).err(),
            Some(io::ErrorKind::WouldBlock),
            "the given-up wait connected after all"
        );
    }
}
