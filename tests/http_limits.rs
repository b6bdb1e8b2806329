//! The HTTP server's limits and edge cases, end to end through `ten serve` and real sockets:
//! trickling clients cut at `header_timeout`, idle ones at `keep_alive_timeout`, the cap on
//! connections per client, requests RFC 9112 says to refuse or route otherwise, and health
//! checks ten cannot run because it has no file descriptor left.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, TcpStream};
use std::time::{Duration, Instant};

use support::http::{self, Request, Response};
use support::server::{TestServer, backend_service, project, stdout};

/// `ten serve` with `web:alice` and `web:bob` (the test backend, answering `/` with its id
/// and pid) running; `settings` go into `[settings]`.
fn serve(settings: &str) -> (tempfile::TempDir, TestServer) {
    serve_service(
        settings,
        &backend_service(
            "web",
            "start = \"eager\"\n[service.web.env]\nNAME = \"{id}\"\n",
        ),
    )
}

fn serve_service(settings: &str, service: &str) -> (tempfile::TempDir, TestServer) {
    let dir = project(
        &format!("public_metrics = true\n{settings}"),
        service,
        &[
            ("instances/web/alice.toml", ""),
            ("instances/web/bob.toml", ""),
        ],
    );
    let server = TestServer::start(dir.path());
    server.wait_running("web:alice");
    server.wait_running("web:bob");
    (dir, server)
}

fn get(server: &TestServer, host: &str) -> Response {
    Request::get("/").host(host).send(server.address())
}

/// The value of the metric line that starts with `prefix` (name and labels).
fn metric(server: &TestServer, prefix: &str) -> u64 {
    let scrape = Request::get("/metrics").send(server.address());
    assert_eq!(scrape.status, 200, "{}", scrape.body);
    scrape
        .body
        .lines()
        .find_map(|line| line.strip_prefix(prefix)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {prefix} in:\n{}", scrape.body))
}

/// Whether the server has closed `stream` (end of file, or a reset), looking without waiting.
fn closed(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(error) if error.kind() == ErrorKind::WouldBlock => false,
        Err(_) => true,
    }
}

/// Waits (at most `limit`) until the server closes `stream`; how long that took.
fn wait_closed(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    stream.set_nonblocking(true).unwrap();
    while started.elapsed() < limit {
        if closed(stream) {
            return Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// ten's open file descriptors.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| dir.count())
        .unwrap_or(0)
}

/// This process's open files limit raised to its hard limit (5,000 connections need more
/// than the usual 1,024).
fn raise_own_open_files_limit() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
    hard
}

#[test]
fn the_target_s_host_wins_two_hosts_and_a_malformed_chunk_are_400_without_internal_text() {
    let (_dir, server) = serve("");
    let alice = get(&server, "alice.web.localhost");
    assert!(alice.body.starts_with("alice "), "{}", alice.body);

    // RFC 9112 3.2.2: an absolute-form target's host wins over Host.
    let absolute = http::send_raw(
        server.address(),
        b"GET http://bob.web.localhost/ HTTP/1.1\r\nHost: alice.web.localhost\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(absolute.status, 200, "{}", absolute.body);
    assert!(absolute.body.starts_with("bob "), "{}", absolute.body);
    // And bob gets it as its Host.
    let headers = http::send_raw(
        server.address(),
        b"GET http://bob.web.localhost/headers HTTP/1.1\r\nHost: alice.web.localhost\r\nConnection: close\r\n\r\n",
    );
    assert!(
        headers
            .body
            .to_ascii_lowercase()
            .contains("host: bob.web.localhost"),
        "{}",
        headers.body
    );

    // Two Host headers: 400, whichever they name.
    for second in ["bob.web.localhost", "alice.web.localhost"] {
        let twice = http::send_raw(
            server.address(),
            format!(
                "GET / HTTP/1.1\r\nHost: alice.web.localhost\r\nHost: {second}\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        );
        assert_eq!(twice.status, 400, "{}", twice.body);
        assert_eq!(twice.body, "ten: a request names one Host\n");
    }

    // A chunk size of -1: 400 with a short fixed text, nothing of hyper's or the system's.
    let malformed = http::send_raw(
        server.address(),
        b"POST /upload HTTP/1.1\r\nHost: alice.web.localhost\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n-1\r\nxx\r\n0\r\n\r\n",
    );
    assert_eq!(malformed.status, 400, "{}", malformed.body);
    assert_eq!(
        malformed.body,
        "ten: the request body could not be read (malformed or cut short)\n"
    );

    // The tenants were not disturbed.
    assert_eq!(get(&server, "alice.web.localhost").body, alice.body);
}

#[test]
fn five_thousand_trickling_clients_are_cut_at_the_header_timeout_and_nothing_else_is() {
    let limit = raise_own_open_files_limit();
    assert!(
        limit >= 6_000,
        "the test needs 5,000 sockets; hard limit {limit}"
    );
    let header_timeout = Duration::from_secs(2);
    let (_dir, server) =
        serve("header_timeout = 2\nmax_connections = 20000\nmax_connections_per_client = 20000\n");
    let tenant = server.wait_running("web:alice");
    let pid = server.pid();
    let baseline = open_fds(pid);

    let mut trickling: Vec<(TcpStream, Instant)> = Vec::with_capacity(5_000);
    for _ in 0..5_000 {
        let mut stream = http::connect(server.address());
        let opened = Instant::now();
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: alice.web")
            .unwrap();
        stream.set_nonblocking(true).unwrap();
        trickling.push((stream, opened));
    }
    // Meanwhile a real client is served.
    let answered = get(&server, "alice.web.localhost");
    assert_eq!(answered.status, 200, "{}", answered.body);

    // A byte every 200 ms on each, until ten closes it: never later than the timeout after
    // it was opened (with room for a busy machine).
    let mut open: Vec<(TcpStream, Instant)> = trickling;
    let mut latest = Duration::ZERO;
    let started = Instant::now();
    while !open.is_empty() && started.elapsed() < Duration::from_secs(60) {
        open.retain_mut(|(stream, opened)| {
            let gone = closed(stream) || stream.write(b"x").is_err();
            if gone {
                latest = latest.max(opened.elapsed());
            }
            !gone
        });
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        open.is_empty(),
        "{} connections still open after 60 s",
        open.len()
    );
    assert!(
        latest < header_timeout + Duration::from_secs(5),
        "the last connection was closed {latest:?} after it was opened"
    );

    // Nothing else was touched: the tenant runs on, ten's descriptors come back.
    assert_eq!(server.wait_running("web:alice"), tenant);
    let restarts = server.instance("web:alice").unwrap().restarts;
    assert_eq!(restarts, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while open_fds(pid) > baseline + 20 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        open_fds(pid) <= baseline + 20,
        "ten holds {} descriptors, {baseline} before",
        open_fds(pid)
    );
    let cut = metric(
        &server,
        "ten_client_connections_timed_out_total{deadline=\"header_timeout\"}",
    );
    assert!(cut >= 5_000, "{cut} connections counted as cut");
    assert_eq!(get(&server, "alice.web.localhost").status, 200);
}

#[test]
fn an_idle_kept_alive_connection_is_closed_at_the_keep_alive_timeout_but_a_slow_answer_is_not() {
    let (_dir, server) = serve("header_timeout = 1\nkeep_alive_timeout = 2\n");
    // A request that takes longer than both timeouts, then an idle connection.
    let mut stream = http::connect(server.address());
    stream
        .write_all(b"GET /slow?ms=3000 HTTP/1.1\r\nHost: alice.web.localhost\r\n\r\n")
        .unwrap();
    let slow = http::read_head(&mut std::io::BufReader::new(&mut stream));
    assert_eq!(slow.status, 200, "a busy connection has no deadline");
    let idle = wait_closed(&mut stream, Duration::from_secs(10)).expect("closed when idle");
    assert!(
        idle >= Duration::from_millis(1500),
        "closed {idle:?} after its answer: that is the header timeout, not the keep-alive one"
    );
    let closed_idle = metric(
        &server,
        "ten_client_connections_timed_out_total{deadline=\"keep_alive_timeout\"}",
    );
    assert!(closed_idle >= 1);
}

#[test]
fn a_client_past_its_cap_is_refused_and_others_are_served() {
    let (_dir, server) = serve("max_connections_per_client = 4\n");
    let crowded: IpAddr = "127.0.0.2".parse().unwrap();
    let held: Vec<TcpStream> = (0..4)
        .map(|_| http::connect_from(server.address(), crowded))
        .collect();
    // Served: these four are open, unused (within header_timeout). The kernel completes a
    // connection before ten accepts it, and each proxy worker accepts from a socket of its
    // own: wait until ten counts all four (and the scrape's own connection).
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&server, "ten_client_connections ") < 5 {
        assert!(
            Instant::now() < deadline,
            "ten does not count the four connections"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut fifth = http::connect_from(server.address(), crowded);
    assert!(
        wait_closed(&mut fifth, Duration::from_secs(5)).is_some(),
        "the fifth connection from one address is closed at once"
    );
    // Another address is served meanwhile.
    let other = Request::get("/")
        .host("alice.web.localhost")
        .from("127.0.0.3".parse().unwrap())
        .send(server.address());
    assert_eq!(other.status, 200, "{}", other.body);
    assert!(
        metric(
            &server,
            "ten_client_connections_refused_total{cap=\"max_connections_per_client\"}"
        ) >= 1
    );
    // One closed, and the address has room again.
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let again = Request::get("/")
            .host("alice.web.localhost")
            .from(crowded)
            .try_send(server.address());
        if again.as_ref().is_ok_and(|response| response.status == 200) {
            break;
        }
        assert!(Instant::now() < deadline, "never served again: {again:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sets `pid`'s soft open files limit (its hard one kept); the one before.
fn set_soft_open_files_limit(pid: u32, soft: u64) -> u64 {
    let mut old = nix::libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: prlimit reads `new` and writes `old`, both valid for the call.
    let read = unsafe {
        nix::libc::prlimit(
            pid as nix::libc::pid_t,
            nix::libc::RLIMIT_NOFILE,
            std::ptr::null(),
            &mut old,
        )
    };
    assert_eq!(read, 0, "{}", std::io::Error::last_os_error());
    let new = nix::libc::rlimit {
        rlim_cur: soft,
        rlim_max: old.rlim_max,
    };
    // SAFETY: as above.
    let set = unsafe {
        nix::libc::prlimit(
            pid as nix::libc::pid_t,
            nix::libc::RLIMIT_NOFILE,
            &new,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(set, 0, "{}", std::io::Error::last_os_error());
    old.rlim_cur
}

/// Puts ten's limit back when dropped, even when the test fails.
struct Restore(u32, u64);

impl Drop for Restore {
    fn drop(&mut self) {
        set_soft_open_files_limit(self.0, self.1);
    }
}

#[test]
fn health_checks_ten_cannot_run_for_want_of_descriptors_never_count_against_a_tenant() {
    // health_check_interval = 1 and health_retries 3: counted, three seconds of failures
    // would restart it. A TCP check, which connects at every check: an HTTP check goes over
    // the connection it kept, and needs no new descriptor while the tenant keeps it open.
    let service = backend_service(
        "web",
        "start = \"eager\"\n[service.web.env]\nNAME = \"{id}\"\n",
    )
    .replacen(
        "health = \"/health\"",
        "health_check = { tcp = \"port\" }",
        1,
    );
    assert!(service.contains("tcp"), "{service}");
    let (_dir, server) = serve_service("", &service);
    let tenant = server.wait_running("web:alice");
    let pid = server.pid();
    let before = metric(&server, "ten_descriptors_exhausted_total");
    // A limit at the standard streams: every new descriptor is above it,
    // so every new one fails with EMFILE (a limit at the count would let one freed
    // descriptor through).
    assert!(
        open_fds(pid) > 32,
        "ten holds few descriptors: {}",
        open_fds(pid)
    );
    let restore = Restore(pid, set_soft_open_files_limit(pid, 3));
    // Ten checks' worth (and more) with no descriptor to spare.
    std::thread::sleep(Duration::from_secs(6));
    drop(restore);

    // Answered again once ten has descriptors.
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(&server, "alice.web.localhost").status != 200 {
        assert!(Instant::now() < deadline, "ten does not answer again");
        std::thread::sleep(Duration::from_millis(100));
    }
    let instance = server.instance("web:alice").unwrap();
    assert_eq!(instance.pid, Some(tenant), "the tenant was restarted");
    assert_eq!(instance.restarts, 0);
    let health = format!("{:?}", instance.health).to_ascii_lowercase();
    assert!(
        !health.contains("unhealthy") && !health.contains("failed"),
        "{health}"
    );
    assert!(
        metric(&server, "ten_descriptors_exhausted_total") > before,
        "no check met EMFILE:\n{}",
        server.log()
    );
    let events = stdout(&server.ten(&["events", "web:alice", "--limit", "100"]));
    assert!(
        events.contains("ten has no file descriptor left"),
        "no event says so:\n{events}"
    );
}

#[test]
/// A backend may answer before it has read the body (a 413, a 401). The request is then no
/// longer under way, so what the client still sends counts as the next head: cut at
/// `header_timeout`, not left without a deadline.
fn a_request_body_that_trickles_on_after_an_early_answer_is_cut_at_the_header_timeout() {
    let (_dir, server) = serve_service(
        "header_timeout = 1\nkeep_alive_timeout = 2\n",
        &backend_service(
            "web",
            "start = \"eager\"\nrequest_timeout = 2\n[service.web.env]\nNAME = \"{id}\"\n",
        ),
    );
    let mut stream = http::connect(server.address());
    stream
        .write_all(
            b"POST /early HTTP/1.1\r\nHost: alice.web.localhost\r\nContent-Length: 1000000\r\n\r\nabc",
        )
        .unwrap();
    let early = http::read_head(&mut std::io::BufReader::new(&mut stream));
    assert_eq!(early.status, 200, "the backend answers before the body");
    // The body goes on, a byte every 100 ms, far slower than the request timeout allows.
    let started = Instant::now();
    stream.set_nonblocking(true).unwrap();
    let cut = loop {
        if started.elapsed() > Duration::from_secs(12) {
            break None;
        }
        if stream.write_all(b"x").is_err() || closed(&mut stream) {
            break Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let cut = cut.expect("the trickling body was never cut");
    assert!(
        cut < Duration::from_secs(4),
        "cut {cut:?} after the answer; header_timeout is 1 s"
    );
    assert_eq!(
        metric(
            &server,
            "ten_client_connections_timed_out_total{deadline=\"header_timeout\"}"
        ),
        1
    );
}
