//! The proxy end to end: real requests through `ten serve` to real tenant processes.

mod support;

use std::io::{BufReader, Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use support::http::{self, Request, Response};
use support::server::{
    TestServer, backend, backend_service, load_across_a_kill, project, stderr, stdout, wait_gone,
    within,
};
use ten::observed::Phase;

/// A GET through the server with a Host header (what `curl alice.notes.localhost` sends), on
/// a fresh connection.
fn get(server: &TestServer, host: &str, path: &str) -> Response {
    Request::get(path).host(host).send(server.address())
}

/// `ten serve` with one running tenant, `web:a` (the test backend), at `a.web.localhost`;
/// `settings` go into its service's table.
/// One tenant, `web:a`, running: eager, so an `idle_timeout` lets it fall asleep after it ran.
fn serve_one_tenant(settings: &str) -> (tempfile::TempDir, TestServer) {
    let dir = project(
        "",
        &backend_service("web", &format!("start = \"eager\"\n{settings}")),
        &[("instances/web/a.toml", "")],
    );
    let server = TestServer::start(dir.path());
    server.wait_running("web:a");
    (dir, server)
}

#[test]
fn the_originals_quick_start_works_as_written() {
    // From the original's quick start: the notes app and this config, verbatim.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/notes/app.py"),
        dir.path().join("app.py"),
    )
    .unwrap();
    let (low, high) = support::server::port_range();
    support::write_file(
        &dir.path().join("tenement.toml"),
        &format!(
            "[settings]\nport_range = [{low}, {high}]\n\n[service.notes]\ncommand = \"python3 app.py\"\nhealth = \"/health\"\nidle_timeout = 300\nisolation = \"process\"\n\n[service.notes.env]\nDATA_DIR = \"{{data_dir}}/{{id}}\"\n"
        ),
    );
    let server = TestServer::start(dir.path());
    let token = server.ten(&["token-gen"]);
    assert!(token.status.success(), "{}", stderr(&token));
    assert_eq!(stdout(&token).trim().len(), 64);
    for id in ["alice", "bob"] {
        let spawn = server.ten(&["spawn", &format!("notes:{id}")]);
        assert!(spawn.status.success(), "{}", stderr(&spawn));
    }
    let posted = Request::post("/notes")
        .host("alice.notes.localhost")
        .header("Content-Type", "application/json")
        .body(r#"{"text":"hello from alice"}"#)
        .send(server.address());
    assert_eq!(posted.status, 201, "{}", posted.body);
    let alice = get(&server, "alice.notes.localhost", "/notes");
    assert_eq!(
        (alice.status, alice.body.as_str()),
        (200, r#"[{"id": 1, "text": "hello from alice"}]"#)
    );
    let bob = get(&server, "bob.notes.localhost", "/notes");
    assert_eq!(
        (bob.status, bob.body.as_str()),
        (200, "[]"),
        "bob has a separate database"
    );
    let ps = stdout(&server.ten(&["ps"]));
    assert!(
        ps.contains("notes:alice") && ps.contains("notes:bob"),
        "{ps}"
    );
    assert_eq!(ps.matches("healthy").count(), 2, "{ps}");
}

#[test]
fn undeclared_instances_are_404_and_leave_no_trace() {
    let (dir, server) = serve_one_tenant("");
    for host in [
        "zed.web.localhost",
        "zed.nope.localhost",
        "nope.localhost",
        "a.b.web.localhost",
    ] {
        let answer = get(&server, host, "/");
        assert_eq!(answer.status, 404, "{host}: {}", answer.body);
        assert!(answer.body.starts_with("ten: no "), "{}", answer.body);
    }
    assert_eq!(get(&server, "a.web.localhost", "/").status, 200);
    assert_eq!(server.ps().len(), 1, "nothing was spawned");
    for path in [
        "tenement-data/web/zed",
        "tenement-data/logs/web/zed",
        "tenement-data/nope",
        "instances/web/zed.toml",
    ] {
        assert!(!dir.path().join(path).exists(), "{path} was created");
    }
    assert!(
        !stdout(&server.ten(&["events"])).contains("zed"),
        "nothing was recorded"
    );
}

#[test]
fn a_sleeping_tenant_wakes_once_for_fifty_concurrent_requests() {
    let (_dir, server) = serve_one_tenant("idle_timeout = 1");
    server.wait_until("web:a sleeps", |views| {
        views.iter().any(|v| v.phase == Phase::Sleeping)
    });
    assert_eq!(server.instance("web:a").unwrap().last_wake_micros, None);
    let asked = std::time::Instant::now();
    let first = get(&server, "a.web.localhost", "/");
    let round_trip = asked.elapsed();
    assert_eq!(first.status, 200, "{}", first.body);
    // The wait for the wake is in `ten ps` (and the dashboard), within the client's round trip.
    let waited = server.instance("web:a").unwrap().last_wake_micros;
    assert!(
        waited.is_some_and(|micros| micros > 0 && u128::from(micros) <= round_trip.as_micros()),
        "{waited:?} vs a round trip of {round_trip:?}"
    );
    server.wait_until("web:a sleeps again", |views| {
        views.iter().any(|v| v.phase == Phase::Sleeping)
    });

    let starts_before = stdout(&server.ten(&["events", "web:a", "--limit", "1000"]))
        .matches("started (pid")
        .count();
    let barrier = Arc::new(Barrier::new(50));
    let server = Arc::new(server);
    let answers: Vec<u16> = (0..50)
        .map(|_| {
            let (server, barrier) = (Arc::clone(&server), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                get(&server, "a.web.localhost", "/").status
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|thread| thread.join().unwrap())
        .collect();
    assert!(answers.iter().all(|status| *status == 200), "{answers:?}");
    let starts_after = stdout(&server.ten(&["events", "web:a", "--limit", "1000"]))
        .matches("started (pid")
        .count();
    assert_eq!(
        starts_after - starts_before,
        1,
        "exactly one spawn for the burst"
    );
}

#[test]
fn a_wake_that_fails_answers_every_waiter_at_once_and_the_next_request_tries_again() {
    let flag = tempfile::tempdir().unwrap();
    let broken = flag.path().join("broken");
    let services = format!(
        "[service.web]\ncommand = \"sh -c 'test -e {} && exit 9; exec {}'\"\nhealth = \"/health\"\nidle_timeout = 1\nstart = \"eager\"\nstartup_timeout = 30\n",
        broken.display(),
        backend().display()
    );
    let dir = project("", &services, &[("instances/web/a.toml", "")]);
    let server = Arc::new(TestServer::start(dir.path()));
    server.wait_running("web:a");
    server.wait_until("web:a sleeps", |views| {
        views.iter().any(|v| v.phase == Phase::Sleeping)
    });
    std::fs::write(&broken, "").unwrap();

    let answers: Vec<Response> = (0..10)
        .map(|_| {
            let server = Arc::clone(&server);
            std::thread::spawn(move || get(&server, "a.web.localhost", "/"))
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|thread| thread.join().unwrap())
        .collect();
    // Answered at once that the wake failed, not left to wait for startup_timeout (30 s);
    // why is for the operator (its events), not in the answer to a client.
    for answer in &answers {
        assert_eq!(answer.status, 502, "{}", answer.body);
        assert!(
            answer.body.contains("could not be started") && !answer.body.contains("code 9"),
            "{}",
            answer.body
        );
    }
    let events = stdout(&server.ten(&["events", "web:a", "--limit", "100"]));
    assert!(events.contains("exited with code 9"), "{events}");
    assert_eq!(server.instance("web:a").unwrap().phase, Phase::Sleeping);

    std::fs::remove_file(&broken).unwrap();
    let retried = get(&server, "a.web.localhost", "/");
    assert_eq!(
        retried.status, 200,
        "the next request tries again: {}",
        retried.body
    );
}

#[test]
fn stopped_broken_and_slow_backends_get_clear_errors() {
    let dir = project(
        "",
        &backend_service("web", "request_timeout = 1"),
        &[("instances/web/a.toml", ""), ("instances/web/b.toml", "")],
    );
    let server = TestServer::start(dir.path());
    server.wait_running("web:a");
    server.wait_running("web:b");

    let slow = get(&server, "a.web.localhost", "/slow?ms=3000");
    assert_eq!(slow.status, 504, "{}", slow.body);
    assert!(
        slow.body
            .contains("did not answer within request_timeout (1s)"),
        "{}",
        slow.body
    );

    // A request that kills its backend: a GET is sent once more, to the restarted instance,
    // then answered 502; a POST is never sent twice.
    let crash = get(&server, "a.web.localhost", "/crash");
    assert_eq!(crash.status, 502, "{}", crash.body);
    assert!(
        crash.body.starts_with("ten: web:a failed"),
        "{}",
        crash.body
    );
    let post = Request::post("/crash")
        .host("b.web.localhost")
        .send(server.address());
    assert_eq!(post.status, 502, "{}", post.body);
    let received = |key: &str, line: &str| {
        stdout(&server.ten(&["logs", key, "--limit", "1000"]))
            .matches(line)
            .count()
    };
    // Both answers came after the last delivery; the captured output follows.
    assert!(support::server::within(Duration::from_secs(10), || {
        received("web:a", "GET /crash") >= 2 && received("web:b", "POST /crash") >= 1
    }));
    assert_eq!(received("web:a", "GET /crash"), 2, "sent twice");
    assert_eq!(received("web:b", "POST /crash"), 1, "sent once");
    server.wait_running("web:b");

    // A backend that is alive and drops a connection: 502, not held for a restart, not sent
    // again.
    let hangup = get(&server, "b.web.localhost", "/hangup");
    assert_eq!(hangup.status, 502, "{}", hangup.body);
    assert!(
        hangup.body.starts_with("ten: web:b failed"),
        "{}",
        hangup.body
    );
    assert!(support::server::within(Duration::from_secs(10), || {
        received("web:b", "GET /hangup") >= 1
    }));
    assert_eq!(received("web:b", "GET /hangup"), 1, "sent once");
    assert_eq!(server.instance("web:b").unwrap().restarts, 1, "no restart");

    assert!(server.ten(&["stop", "web:b"]).status.success());
    let stopped = get(&server, "b.web.localhost", "/");
    assert_eq!(
        (stopped.status, stopped.body.trim()),
        (503, "ten: web:b is stopped")
    );
}

/// The `X-Forwarded-*` lines of a `/headers` answer of the test backend, sorted.
fn forwarded(headers: &str) -> Vec<&str> {
    let mut lines: Vec<&str> = headers
        .lines()
        .filter(|line| line.starts_with("x-forwarded-"))
        .collect();
    lines.sort();
    lines
}

/// What the backend gets of a request from 127.0.0.1 that is not a trusted proxy.
const FROM_LOCALHOST: [&str; 3] = [
    "x-forwarded-for: 127.0.0.1",
    "x-forwarded-host: a.web.localhost",
    "x-forwarded-proto: http",
];

/// A request that says where it came from, as a proxy in front of ten would (or a client
/// lying about itself).
fn claiming_an_origin() -> Request {
    Request::get("/headers")
        .host("a.web.localhost")
        .header("X-Forwarded-For", "203.0.113.9")
        .header("X-Forwarded-Proto", "https")
        .header("X-Forwarded-Host", "a.web.example.com")
}

#[test]
fn a_clients_forwarded_headers_are_replaced_and_a_trusted_proxys_kept() {
    // No trusted proxy: the claims do not reach the backend.
    let (_dir, server) = serve_one_tenant("");
    let answer = claiming_an_origin().send(server.address());
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(forwarded(&answer.body), FROM_LOCALHOST, "{}", answer.body);
    drop(server);

    // 127.0.0.1 is a trusted proxy: its word reaches the backend, its own address appended.
    let dir = project(
        "trusted_proxies = [\"127.0.0.1\"]",
        &backend_service("web", ""),
        &[("instances/web/a.toml", "")],
    );
    let server = TestServer::start(dir.path());
    server.wait_running("web:a");
    let answer = claiming_an_origin().send(server.address());
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(
        forwarded(&answer.body),
        [
            "x-forwarded-for: 203.0.113.9, 127.0.0.1",
            "x-forwarded-host: a.web.example.com",
            "x-forwarded-proto: https",
        ],
        "{}",
        answer.body
    );
    // Another local address is not: the same claims from it are replaced.
    let other = std::net::IpAddr::from([127, 0, 0, 2]);
    let answer = claiming_an_origin().from(other).send(server.address());
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(
        forwarded(&answer.body),
        [
            "x-forwarded-for: 127.0.0.2",
            "x-forwarded-host: a.web.localhost",
            "x-forwarded-proto: http",
        ],
        "{}",
        answer.body
    );
}

#[test]
fn headers_pass_through_and_forwarding_headers_are_set() {
    let (_dir, server) = serve_one_tenant("");
    let answer = Request::get("/headers")
        .host("a.web.localhost")
        .bearer("the-app's-own-token")
        .header("X-Request-Id", "abc-123")
        .header("X-Forwarded-For", "203.0.113.9")
        .header("Keep-Alive", "timeout=5")
        .header("Connection", "close, X-Hop")
        .header("X-Hop", "only for this hop")
        .send(server.address());
    assert_eq!(answer.status, 200);
    let headers: Vec<&str> = answer.body.lines().collect();
    for expected in [
        "authorization: Bearer the-app's-own-token",
        "x-request-id: abc-123",
        // The client's own X-Forwarded-For is replaced: no proxy is trusted here.
        "x-forwarded-for: 127.0.0.1",
        "x-forwarded-proto: http",
        "x-forwarded-host: a.web.localhost",
        "host: a.web.localhost",
    ] {
        assert!(
            headers.contains(&expected),
            "missing {expected:?} in {headers:?}"
        );
    }
    for hop in ["keep-alive:", "x-hop:"] {
        assert!(
            !headers.iter().any(|line| line.starts_with(hop)),
            "{hop} leaked: {headers:?}"
        );
    }
    // Without one, X-Forwarded-For is the client's address alone.
    let answer = get(&server, "a.web.localhost", "/headers");
    assert_eq!(answer.status, 200);
    assert_eq!(forwarded(&answer.body), FROM_LOCALHOST, "{}", answer.body);
    // Without a Host header (HTTP/1.0, absolute form), the target's host routes the request,
    // and the backend gets that Host and the path alone.
    let answer = http::send_raw(
        server.address(),
        b"GET http://A.Web.Localhost/headers HTTP/1.0\r\n\r\n",
    );
    assert_eq!(answer.status, 200, "{answer:?}");
    assert!(
        answer
            .body
            .lines()
            .any(|line| line == "host: a.web.localhost"),
        "{}",
        answer.body
    );
}

#[test]
fn a_client_that_shuts_its_side_after_the_request_still_gets_the_answer() {
    let (_dir, server) = serve_one_tenant("");
    // The backend takes a while, so the end of the client's side arrives mid-request.
    let answer = http::send_raw_half_closed(
        server.address(),
        b"GET /slow?ms=300 HTTP/1.1\r\nHost: a.web.localhost\r\n\r\n",
    );
    assert_eq!(answer.status, 200, "{answer:?}");
}

#[test]
fn a_websocket_echo_works_through_the_proxy() {
    let (_dir, server) = serve_one_tenant("");
    let address = server.address();
    let stream = http::connect(address);
    let request = tungstenite::http::Request::builder()
        .uri(format!("ws://{address}/ws"))
        .header("Host", "a.web.localhost")
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header(
            "Sec-WebSocket-Key",
            tungstenite::handshake::client::generate_key(),
        )
        .body(())
        .unwrap();
    let (mut socket, response) =
        tungstenite::client(request, stream).expect("handshake through the proxy");
    assert_eq!(response.status(), 101);
    for text in ["hello", "through ten", &"x".repeat(100_000)] {
        socket.send(tungstenite::Message::text(text)).unwrap();
        assert_eq!(socket.read().unwrap().into_text().unwrap().as_str(), text);
    }
    socket
        .send(tungstenite::Message::binary(vec![0u8, 159, 146, 150]))
        .unwrap();
    assert_eq!(
        socket.read().unwrap().into_data().as_ref(),
        [0u8, 159, 146, 150]
    );
    let _ = socket.close(None);
}

/// The backend's own counters, read directly on its port.
fn backend_stats(port: u16) -> (u64, u64) {
    let stats = Request::get("/stats").send(("127.0.0.1", port));
    assert_eq!(stats.status, 200, "{stats:?}");
    let body = stats.body.trim();
    let number = |name: &str| {
        body.split_whitespace()
            .find_map(|part| part.strip_prefix(name))
            .unwrap()
            .parse()
            .unwrap()
    };
    (number("received="), number("sent="))
}

#[test]
fn a_100_mb_upload_and_download_stream_through_without_buffering() {
    const TOTAL: u64 = 100 * 1024 * 1024;
    let (_dir, server) = serve_one_tenant("request_timeout = 120");
    let port = server.instance("web:a").unwrap().port.unwrap();
    let address = server.address();

    // Upload: the backend has bytes long before the client has sent them all. The head says
    // how long the body is; the body is written by hand, a MiB at a time.
    let mut upload = http::connect(address);
    let head = Request::post("/upload")
        .host("a.web.localhost")
        .header("Content-Length", &TOTAL.to_string());
    upload.write_all(&head.to_bytes()).unwrap();
    let chunk = vec![b'u'; 1024 * 1024];
    let mut seen_midway = 0;
    for sent in 1..=100u64 {
        upload.write_all(&chunk).unwrap();
        if sent == 50 {
            within(Duration::from_secs(20), || {
                backend_stats(port).0 >= 10 * 1024 * 1024
            });
            seen_midway = backend_stats(port).0;
        }
    }
    assert!(
        seen_midway >= 10 * 1024 * 1024,
        "after 50 MB sent the backend had only {seen_midway} bytes: buffered"
    );
    let uploaded = http::read_response(&mut upload);
    assert_eq!(
        (uploaded.status, uploaded.body.as_str()),
        (200, format!("{TOTAL}\n").as_str()),
        "{uploaded:?}"
    );

    // Download: the client gets bytes while the backend is still held back by it.
    let mut download = http::connect(address);
    let request = Request::get(&format!("/download?bytes={TOTAL}")).host("a.web.localhost");
    download.write_all(&request.to_bytes()).unwrap();
    let mut reader = BufReader::new(download);
    let head = http::read_head(&mut reader);
    assert_eq!(head.status, 200, "{head:?}");
    let mut first = vec![0u8; 1024 * 1024];
    reader.read_exact(&mut first).unwrap();
    // A negative: time for the backend to write all it can while the client reads nothing.
    // Buffered by ten, the whole 100 MB would go in this time; streamed, the socket buffers
    // hold it back.
    std::thread::sleep(Duration::from_millis(300));
    let sent_while_paused = backend_stats(port).1;
    assert!(
        sent_while_paused < TOTAL / 2,
        "the backend wrote {sent_while_paused} bytes while the client read 1 MB: buffered"
    );
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).unwrap();
    assert_eq!(first.len() as u64 + rest.len() as u64, TOTAL);
}

#[test]
fn editing_the_env_under_load_replaces_with_zero_failed_requests() {
    let services = backend_service("web", "[service.web.env]\nVERSION = \"1\"");
    let dir = project("", &services, &[("instances/web/a.toml", "")]);
    let server = Arc::new(TestServer::start(dir.path()));
    let old = server.wait_running("web:a");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let failures = Arc::new(std::sync::Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (server, stop, ok, failed, failures) = (
                Arc::clone(&server),
                Arc::clone(&stop),
                Arc::clone(&ok),
                Arc::clone(&failed),
                Arc::clone(&failures),
            );
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let answer = get(&server, "a.web.localhost", "/slow?ms=20");
                    if answer.status == 200 {
                        ok.fetch_add(1, Ordering::SeqCst);
                    } else {
                        failed.fetch_add(1, Ordering::SeqCst);
                        failures
                            .lock()
                            .unwrap()
                            .push(format!("{}: {}", answer.status, answer.body));
                    }
                }
            })
        })
        .collect();
    // The edit comes under load: once requests are being answered.
    let answered = |count: usize| {
        let enough = || ok.load(Ordering::SeqCst) + failed.load(Ordering::SeqCst) >= count;
        assert!(within(Duration::from_secs(20), enough), "the load stalled");
    };
    answered(50);
    let config = std::fs::read_to_string(dir.path().join("tenement.toml")).unwrap();
    std::fs::write(
        dir.path().join("tenement.toml"),
        config.replace("VERSION = \"1\"", "VERSION = \"2\""),
    )
    .unwrap();
    server.wait_until("the replacement runs", |views| {
        views
            .iter()
            .any(|v| v.pid.is_some() && v.pid != Some(old) && v.phase == Phase::Running)
    });
    assert!(wait_gone(old), "the old process stopped");
    // And goes on after it, on the new process alone.
    answered(ok.load(Ordering::SeqCst) + failed.load(Ordering::SeqCst) + 50);
    stop.store(true, Ordering::SeqCst);
    for worker in workers {
        worker.join().unwrap();
    }
    let failures = failures.lock().unwrap();
    assert_eq!(
        failed.load(Ordering::SeqCst),
        0,
        "failed requests: {failures:?}"
    );
    assert!(
        ok.load(Ordering::SeqCst) > 50,
        "the load ran: {} requests",
        ok.load(Ordering::SeqCst)
    );
    let env = get(&server, "a.web.localhost", "/env").body;
    assert!(env.contains("VERSION=2"), "{env}");
    let events = stdout(&server.ten(&["events", "web:a"]));
    assert!(
        events.contains("starting the new process next to the old one"),
        "{events}"
    );
}

#[test]
fn weights_deploys_and_routes_move_traffic() {
    let dir = project(
        "",
        &backend_service("web", ""),
        &[
            ("instances/web/blue.toml", ""),
            ("instances/web/green.toml", "weight = 0\n"),
        ],
    );
    let server = TestServer::start(dir.path());
    let blue = server.wait_running("web:blue");
    let green = server.wait_running("web:green");
    let pids = |n: usize| -> Vec<u32> {
        (0..n)
            .map(|_| {
                get(&server, "web.localhost", "/")
                    .body
                    .split_whitespace()
                    .nth(1)
                    .unwrap()
                    .parse()
                    .unwrap()
            })
            .collect()
    };
    assert!(
        pids(20).iter().all(|pid| *pid == blue),
        "green has weight 0"
    );

    let route = server.ten(&["route", "web", "--from", "blue", "--to", "green"]);
    assert!(route.status.success(), "{}", stderr(&route));
    assert!(
        pids(20).iter().all(|pid| *pid == green),
        "the traffic moved at once"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("instances/web/blue.toml")).unwrap(),
        "weight = 0\n"
    );

    let weight = server.ten(&["weight", "web:blue", "50"]);
    assert!(weight.status.success(), "{}", stderr(&weight));
    let mixed = pids(40);
    assert!(mixed.contains(&blue) && mixed.contains(&green), "{mixed:?}");
    assert_eq!(
        server.instance("web:blue").unwrap().pid,
        Some(blue),
        "a weight applies in place"
    );
    // A route adds the traffic it moves to what the target had (capped at 100): blue's 50
    // onto green's 30 is 80, not blue's 50 alone.
    assert!(server.ten(&["weight", "web:green", "30"]).status.success());
    let route = server.ten(&["route", "web", "--from", "blue", "--to", "green"]);
    assert!(route.status.success(), "{}", stderr(&route));
    assert_eq!(
        (
            server.instance("web:blue").unwrap().weight,
            server.instance("web:green").unwrap().weight
        ),
        (0, 80)
    );

    // A deploy takes traffic only once healthy; a broken one never does.
    let deploy = server.ten(&["deploy", "web:v3", "--weight", "100"]);
    assert!(deploy.status.success(), "{}", stderr(&deploy));
    assert!(stdout(&deploy).contains("deployed: healthy, now taking traffic with weight 100"));
    assert_eq!(server.instance("web:v3").unwrap().weight, 100);
    let config = std::fs::read_to_string(dir.path().join("tenement.toml")).unwrap();
    std::fs::write(
        dir.path().join("tenement.toml"),
        format!("{config}\n[service.broken]\ncommand = \"sh -c 'exit 1'\"\n"),
    )
    .unwrap();
    // No wait for the watcher: `ten deploy` checks the new file against tenement.toml as it
    // is on disk, and reloads the files itself.
    let failed = server.ten(&["deploy", "broken:v1", "--timeout", "5"]);
    assert_eq!(failed.status.code(), Some(1));
    assert!(
        stderr(&failed).contains("did not become healthy, so it takes no traffic"),
        "{}",
        stderr(&failed)
    );
    assert_eq!(server.instance("broken:v1").unwrap().weight, 0);
}

#[test]
fn instances_listening_on_a_unix_socket_are_proxied_and_checked_over_it() {
    let services = format!(
        "[service.sock]\ncommand = \"{} --socket\"\nhealth = \"/health\"\nlisten = \"socket\"\n",
        backend().display()
    );
    let dir = project("", &services, &[("instances/sock/a.toml", "")]);
    let server = TestServer::start(dir.path());
    server.wait_running("sock:a");
    let view = server.instance("sock:a").unwrap();
    assert!(
        view.listen.as_deref().unwrap().ends_with("run/sock-a.sock"),
        "{view:?}"
    );
    let answer = get(&server, "a.sock.localhost", "/");
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(answer.body.starts_with("backend "));
}

/// What the load of the kill tests asks for: at once, and slowly enough that requests are in
/// flight when the tenant dies.
const KILL_LOAD: [&str; 2] = ["/", "/slow?ms=5"];

#[test]
fn a_tenant_killed_under_load_costs_no_request() {
    // Held while the instance restarts, sent again if they were lost with it.
    let dir = project(
        "backoff_base_ms = 0",
        &backend_service("web", ""),
        &[("instances/web/a.toml", "")],
    );
    let server = TestServer::start(dir.path());
    let outcome = load_across_a_kill(&server, "web:a", "a.web.localhost", &KILL_LOAD, 4);
    assert!(
        outcome.failed.is_empty(),
        "{} of {} requests failed: {:?}",
        outcome.failed.len(),
        outcome.ok + outcome.failed.len(),
        outcome.failed
    );
    assert_eq!(server.instance("web:a").unwrap().restarts, 1);
}

#[test]
fn a_killed_instance_of_a_weighted_service_costs_no_request() {
    // Requests lost with web:a go to web:b (or wait for web:a's restart).
    let dir = project(
        "backoff_base_ms = 0",
        &backend_service("web", ""),
        &[("instances/web/a.toml", ""), ("instances/web/b.toml", "")],
    );
    let server = TestServer::start(dir.path());
    server.wait_running("web:b");
    let outcome = load_across_a_kill(&server, "web:a", "web.localhost", &KILL_LOAD, 4);
    assert!(
        outcome.failed.is_empty(),
        "{} of {} requests failed: {:?}",
        outcome.failed.len(),
        outcome.ok + outcome.failed.len(),
        outcome.failed
    );
    assert_eq!(server.instance("web:a").unwrap().restarts, 1);
    assert_eq!(server.instance("web:b").unwrap().restarts, 0);
}
