//! A dropped instance file until its tenant answers (issue #22, item 5: reaction time), each
//! next to the app's own start measured in the same run, in turns:
//!
//! 1. The tiny backend (`testdata/apps/backend.rs`): file dropped until the event log says
//!    the tenant is healthy, against the backend started directly until it accepts a
//!    connection.
//! 2. A small Python app (`http.server`, written into the bench's directory): file dropped
//!    until the first 200 through ten's proxy, against the same app started directly
//!    (exec until its first 200). Once for a service with `idle_timeout = 0` (started as
//!    soon as it is declared), once for one with `idle_timeout = 60` (which starts on demand
//!    where that is the default: then the first request wakes it).
//!
//! Both sides poll the same way (a new connection every millisecond until the answer). The
//! goal: ten's figure at most the app's own plus 20 ms.
//!
//! Run with `cargo bench --bench drop` (builds the backend example in release first).
//! `DROP_BENCH_DROPS=N` changes the number of drops per figure (20).

#[path = "../tests/support/mod.rs"]
mod support;

#[path = "common/mod.rs"]
mod common;

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::http::{self, Request};
use support::server::TestServer;

/// The Python app: 200 on every GET, on 127.0.0.1:$PORT.
const APP: &str = r#"import http.server, os

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"#;

const POLL: Duration = Duration::from_millis(1);
const GIVE_UP: Duration = Duration::from_secs(30);

fn drops() -> usize {
    std::env::var("DROP_BENCH_DROPS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20)
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// The value at `share` (0.5: the median) of `values`, in milliseconds.
fn percentile(values: &[Duration], share: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort();
    let at = ((sorted.len() as f64 * share).ceil() as usize).clamp(1, sorted.len()) - 1;
    ms(sorted[at])
}

fn median(values: &[Duration]) -> f64 {
    common::stats::median_of(values.iter().map(|value| ms(*value)).collect())
}

fn wait_accepting(port: u16) {
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// The backend's own exec-to-listening time, started directly.
fn backend_start_time(port: u16) -> Duration {
    let started = Instant::now();
    let mut child = Command::new(support::server::backend())
        .env("PORT", port.to_string())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_accepting(port);
    let elapsed = started.elapsed();
    let _ = child.kill();
    let _ = child.wait();
    elapsed
}

fn token(server: &TestServer) -> String {
    fs::read_to_string(server.dir.join("tenement-data/api_token"))
        .unwrap()
        .trim()
        .to_string()
}

/// `GET path` of the API, its answer's head read: the stream's lines follow in the reader.
fn api_stream(server: &TestServer, path: &str) -> BufReader<TcpStream> {
    let mut stream = http::connect(server.address());
    let request = Request::get(path).bearer(&token(server));
    stream.write_all(&request.to_bytes()).unwrap();
    let mut reader = BufReader::new(stream);
    let head = http::read_head(&mut reader);
    assert_eq!(head.status, 200, "{head:?}");
    reader
}

fn drop_to_healthy() {
    let count = drops();
    let base = support::server::port_range().0;
    let dir = support::server::project("", &support::server::backend_service("web", ""), &[]);
    fs::create_dir_all(dir.path().join("instances/web")).unwrap();
    let server = TestServer::start(dir.path());
    let mut events = api_stream(&server, "/api/events/stream");
    let (mut app, mut drops) = (Vec::new(), Vec::new());
    for n in 0..count {
        app.push(backend_start_time(base + (n % 40) as u16));
        let key = format!("web:t{n}");
        let dropped = Instant::now();
        fs::write(dir.path().join(format!("instances/web/t{n}.toml")), "").unwrap();
        let mut line = String::new();
        loop {
            line.clear();
            events.read_line(&mut line).unwrap();
            if line.contains(&format!("\"instance\":\"{key}\"")) && line.contains("healthy after") {
                break;
            }
        }
        drops.push(dropped.elapsed());
    }
    println!("1. tiny backend: instance file dropped -> tenant healthy ({count} drops)");
    print_pair(
        "backend started directly, exec -> accepting",
        "ten: file dropped -> healthy (event)",
        &app,
        &drops,
    );
}

/// The real interpreter behind `python3` (not a version manager's shim, which would add its
/// own start to both sides).
fn python() -> PathBuf {
    let output = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 is needed for this bench");
    assert!(output.status.success());
    PathBuf::from(String::from_utf8(output.stdout).unwrap().trim())
}

/// The app's own time from exec to its first 200, started directly on `port`.
fn app_first_200(python: &Path, app: &Path, port: u16) -> Duration {
    let started = Instant::now();
    let mut child = Command::new(python)
        .arg(app)
        .env("PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    loop {
        match Request::get("/").host("x").try_send(("127.0.0.1", port)) {
            Ok(response) if response.status == 200 => break,
            _ => {
                assert!(started.elapsed() < GIVE_UP, "the app never answered");
                std::thread::sleep(POLL);
            }
        }
    }
    let elapsed = started.elapsed();
    let _ = child.kill();
    let _ = child.wait();
    elapsed
}

/// The instant of `key`'s events until it is healthy, in Unix milliseconds: planned
/// (`create`), started (`lifecycle`, "started"), healthy.
fn timeline(events: &mut BufReader<TcpStream>, key: &str) -> [f64; 3] {
    let mut times = [f64::NAN; 3];
    let mut line = String::new();
    loop {
        line.clear();
        events.read_line(&mut line).unwrap();
        let Some(json) = line.find('{').map(|at| &line[at..]) else {
            continue;
        };
        let Ok(event) = serde_json::from_str::<serde_json::Value>(json) else {
            continue;
        };
        if event["instance"] != key {
            continue;
        }
        let at = event["at_unix_ms"].as_f64().unwrap();
        let message = event["message"].as_str().unwrap_or("");
        match event["action"].as_str() {
            Some("create") => times[0] = at,
            Some("lifecycle") if message.starts_with("started") => times[1] = at,
            Some("lifecycle") if message.starts_with("healthy after") => {
                times[2] = at;
                return times;
            }
            _ => {}
        }
    }
}

fn unix_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        * 1000.0
}

/// A drop through ten: until the first 200, and its parts as ten's events date them (to the
/// millisecond): dropped -> planned (the watcher, the reload, the plan), planned -> started
/// (the spawn), started -> healthy (the app's start and the readiness probe), healthy ->
/// first 200 (the gate, the proxy, the app's first answer).
struct Drop {
    first_200: Duration,
    parts: [f64; 4],
}

/// Drops `instances/SERVICE/tN.toml` (empty) and asks its host through ten until a 200.
fn dropped(
    server: &TestServer,
    events: &mut BufReader<TcpStream>,
    service: &str,
    n: usize,
) -> Drop {
    let dropped_at = unix_ms();
    let first_200 = dropped_first_200(server, service, n);
    let answered_at = dropped_at + ms(first_200);
    let [planned, started, healthy] = timeline(events, &format!("{service}:t{n}"));
    Drop {
        first_200,
        parts: [
            planned - dropped_at,
            started - planned,
            healthy - started,
            answered_at - healthy,
        ],
    }
}

fn dropped_first_200(server: &TestServer, service: &str, n: usize) -> Duration {
    let path = server.dir.join(format!("instances/{service}/t{n}.toml"));
    let host = format!("t{n}.{service}.localhost");
    let dropped = Instant::now();
    fs::write(&path, "").unwrap();
    loop {
        let response = Request::get("/").host(&host).send(server.address());
        if response.status == 200 {
            return dropped.elapsed();
        }
        assert!(
            dropped.elapsed() < GIVE_UP,
            "no 200 from {host}: {response:?}\n{}",
            server.log()
        );
        std::thread::sleep(POLL);
    }
}

fn drop_to_first_200() {
    let count = drops();
    let python = python();
    let apps = tempfile::tempdir().unwrap();
    let app = apps.path().join("app.py");
    fs::write(&app, APP).unwrap();
    let command = format!("{} {}", python.display(), app.display());
    let service = |name: &str, idle_timeout: u32| {
        format!(
            "[service.{name}]\ncommand = \"{command}\"\nhealth = \"/\"\nidle_timeout = {idle_timeout}\nstop_timeout = 2\n"
        )
    };
    let dir = support::server::project(
        "",
        &format!("{}\n{}", service("eager", 0), service("lazy", 60)),
        &[],
    );
    for name in ["eager", "lazy"] {
        fs::create_dir_all(dir.path().join(format!("instances/{name}"))).unwrap();
    }
    let server = TestServer::start(dir.path());
    let mut events = api_stream(&server, "/api/events/stream");
    let base = support::server::port_range().0;
    let (mut own, mut eager, mut lazy) = (Vec::new(), Vec::new(), Vec::new());
    // In turns, each in every position, so that drift in the machine's load hits all alike.
    for n in 0..count {
        for target in common::ORDERS[n % common::ORDERS.len()] {
            match target {
                0 => own.push(app_first_200(&python, &app, base + (n % 40) as u16)),
                1 => eager.push(dropped(&server, &mut events, "eager", n)),
                _ => lazy.push(dropped(&server, &mut events, "lazy", n)),
            }
        }
    }
    println!(
        "2. Python app (http.server): instance file dropped -> first 200 ({count} drops each)"
    );
    for (label, drops) in [("idle_timeout = 0", &eager), ("idle_timeout = 60", &lazy)] {
        let first_200: Vec<Duration> = drops.iter().map(|drop| drop.first_200).collect();
        print_pair(
            "app started directly, exec -> first 200",
            &format!("ten, {label}: file dropped -> first 200"),
            &own,
            &first_200,
        );
        let names = [
            "dropped -> planned (watcher, reload, plan)",
            "planned -> started (spawn)",
            "started -> healthy (the app's start, probes)",
            "healthy -> first 200 (proxy, first answer)",
        ];
        for (index, name) in names.iter().enumerate() {
            let part: Vec<f64> = drops.iter().map(|drop| drop.parts[index]).collect();
            let mut sorted = part.clone();
            sorted.sort_by(f64::total_cmp);
            let p90 =
                sorted[((sorted.len() as f64 * 0.9).ceil() as usize).clamp(1, sorted.len()) - 1];
            println!(
                "     {name:<48} median {:7.2} ms  p90 {p90:7.2} ms",
                common::stats::median_of(part)
            );
        }
    }
    let lazy_phase = server
        .ps()
        .into_iter()
        .find(|view| view.instance.to_string() == "lazy:t0")
        .map(|view| format!("{:?}", view.phase));
    println!(
        "   (idle_timeout = 60: lazy:t0 is {} now; with start on demand the default there, each was declared asleep and woken by the first request)",
        lazy_phase.unwrap_or_else(|| "gone".into())
    );
}

fn print_pair(baseline: &str, measured: &str, app: &[Duration], ten: &[Duration]) {
    println!(
        "   {baseline:<52} median {:7.2} ms  p90 {:7.2} ms",
        median(app),
        percentile(app, 0.9)
    );
    println!(
        "   {measured:<52} median {:7.2} ms  p90 {:7.2} ms",
        median(ten),
        percentile(ten, 0.9)
    );
    let over = median(ten) - median(app);
    println!(
        "   ten over the app: {over:+.2} ms at the median ({:.2}x), {:+.2} ms at p90; goal +20 ms: {}",
        median(ten) / median(app),
        percentile(ten, 0.9) - percentile(app, 0.9),
        if over <= 20.0 { "met" } else { "NOT met" }
    );
}

fn main() {
    support::server::build_backend();
    drop_to_healthy();
    drop_to_first_200();
}
