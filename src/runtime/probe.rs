//! Health probes: a real HTTP GET of the health path (only 2xx is healthy), or, without a
//! health path, an accepted connection. Over TCP on 127.0.0.1:PORT, or over the instance's
//! Unix socket when it listens there. `http`: the GET, and the connection an instance's
//! checks keep from one check to the next.

mod http;
mod listening;

pub use http::{CheckConnection, KeepAlive};

use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeTarget {
    Tcp {
        port: u16,
    },
    Unix {
        socket: PathBuf,
    },
    /// A command, healthy when it exits 0.
    Exec(ExecProbe),
}

/// A check command, run as the instance runs: its environment, working directory and (when
/// `pid` has one) cgroup, in a process group of its own that is killed when it takes too
/// long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecProbe {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub workdir: PathBuf,
    /// The instance's process, whose cgroup the command joins.
    pub pid: Option<u32>,
    /// The user the instance runs as, whom the command runs as too.
    pub user: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub target: ProbeTarget,
    /// `None`: an accepted connection is enough.
    pub http_path: Option<String>,
    pub timeout: Duration,
    /// Where HTTP checks of the instance's process keep their connection; `None`: a
    /// connection of its own for this check.
    pub keep: Option<KeepAlive>,
    /// For a start a request waits for: the connection is made as soon as the instance
    /// accepts one, tried every few hundred microseconds for up to this long (see
    /// `probe::listening`), rather than once. Less than `timeout`, so that a start that never
    /// listens is told as refused. `None`: tried once.
    pub listening_within: Option<Duration>,
}

/// Why a probe failed, for events and `ten health`.
pub type ProbeResult = Result<(), String>;

/// What running a probe found: the instance's answer, or nothing at all because ten itself
/// had no file descriptor left to ask with (EMFILE, ENFILE): ten's fault, never the tenant's,
/// so it counts neither as a failed check nor as a good one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeOutcome {
    Done(ProbeResult),
    TenOutOfDescriptors(String),
}

/// Whether `error` says this process (EMFILE) or the system (ENFILE) has no file descriptor
/// left: ten's own condition, which says nothing of the other end.
pub(crate) fn out_of_descriptors(error: &std::io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(code) if code == nix::libc::EMFILE || code == nix::libc::ENFILE
    )
}

pub(crate) async fn run_probe(probe: &Probe) -> ProbeOutcome {
    match tokio::time::timeout(probe.timeout, attempt(probe)).await {
        Ok(Ok(result)) => ProbeOutcome::Done(result),
        Ok(Err(exhausted)) => ProbeOutcome::TenOutOfDescriptors(exhausted),
        Err(_) => ProbeOutcome::Done(Err(format!(
            "no answer within {}",
            humantime::format_duration(probe.timeout)
        ))),
    }
}

/// A connect's error as a failed check, or, when ten had no descriptor for the socket, as
/// the outer `Err`: no check at all.
fn connect_failed(what: String) -> impl FnOnce(std::io::Error) -> Result<ProbeResult, String> {
    move |error| {
        if out_of_descriptors(&error) {
            Err(format!("no socket for {what}: {error}"))
        } else {
            Ok(Err(format!("connect to {what}: {error}")))
        }
    }
}

/// The outer `Err`: ten could not even try (no file descriptor left).
async fn attempt(probe: &Probe) -> Result<ProbeResult, String> {
    if let (Some(path), ProbeTarget::Tcp { .. } | ProbeTarget::Unix { .. }) =
        (&probe.http_path, &probe.target)
    {
        return http::check(
            &probe.target,
            path,
            probe.keep.as_ref(),
            probe.listening_within,
        )
        .await;
    }
    match &probe.target {
        // Run by the runtime, which knows the instance's cgroup (`exec_probe`).
        ProbeTarget::Exec(_) => Ok(Err("a command check runs through the runtime".into())),
        // Without a health path, an accepted connection is the check.
        target => match http::connect_within(target, probe.listening_within).await {
            Ok(_) => Ok(Ok(())),
            Err(error) => connect_failed(http::address(target))(error),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    async fn server(status_line: &'static str) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut buffer = [0; 1024];
                let _ = stream.read(&mut buffer).await;
                let response = format!("HTTP/1.1 {status_line}\r\ncontent-length: 0\r\n\r\n");
                let _ = stream.write_all(response.as_bytes()).await;
            }
        });
        port
    }

    fn http(port: u16) -> Probe {
        Probe {
            target: ProbeTarget::Tcp { port },
            http_path: Some("/health".into()),
            timeout: Duration::from_secs(2),
            keep: None,
            listening_within: None,
        }
    }

    #[tokio::test]
    async fn only_2xx_is_healthy() {
        assert_eq!(
            run_probe(&http(server("204 No Content").await)).await,
            ProbeOutcome::Done(Ok(()))
        );
        let ProbeOutcome::Done(Err(error)) =
            run_probe(&http(server("503 Service Unavailable").await)).await
        else {
            panic!("a 503 is a failed check");
        };
        assert_eq!(error, "GET /health answered 503 Service Unavailable");
    }

    #[tokio::test]
    async fn a_closed_port_fails_and_a_connect_is_enough_without_a_path() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let tcp = Probe {
            http_path: None,
            ..http(port)
        };
        assert_eq!(run_probe(&tcp).await, ProbeOutcome::Done(Ok(())));
        drop(listener);
        let ProbeOutcome::Done(Err(error)) = run_probe(&tcp).await else {
            panic!("a closed port is a failed check");
        };
        assert!(error.contains("refused"), "{error}");
    }

    #[tokio::test]
    async fn a_check_that_waits_for_listening_is_answered_by_an_app_that_starts_later() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let waiting = Probe {
            listening_within: Some(Duration::from_secs(1)),
            ..http(port)
        };
        // Tried once, as every other check: refused.
        let ProbeOutcome::Done(Err(refused)) = run_probe(&http(port)).await else {
            panic!("nothing listens yet");
        };
        assert!(refused.contains("refused"), "{refused}");
        let app = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buffer = [0; 1024];
            let read = stream.read(&mut buffer).await.unwrap();
            let response = "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
            stream.write_all(response.as_bytes()).await.unwrap();
            String::from_utf8_lossy(&buffer[..read]).into_owned()
        });
        assert_eq!(run_probe(&waiting).await, ProbeOutcome::Done(Ok(())));
        let request = app.await.unwrap();
        assert!(
            request.starts_with("GET /health HTTP/1.1"),
            "the GET came on the first connection the app accepted: {request:?}"
        );
        // An app that never listens: refused at the end of the wait, within the timeout.
        let ProbeOutcome::Done(Err(never)) = run_probe(&Probe {
            listening_within: Some(Duration::from_millis(30)),
            ..http(port)
        })
        .await
        else {
            panic!("nothing listens any more");
        };
        assert!(never.contains("refused"), "{never}");
    }

    #[test]
    fn only_a_lack_of_descriptors_is_ten_s_own() {
        let emfile = std::io::Error::from_raw_os_error(nix::libc::EMFILE);
        let enfile = std::io::Error::from_raw_os_error(nix::libc::ENFILE);
        let refused = std::io::Error::from_raw_os_error(nix::libc::ECONNREFUSED);
        assert!(out_of_descriptors(&emfile) && out_of_descriptors(&enfile));
        assert!(!out_of_descriptors(&refused));
        assert!(connect_failed("x".into())(emfile).is_err());
        assert!(matches!(connect_failed("x".into())(refused), Ok(Err(_))));
    }
}
