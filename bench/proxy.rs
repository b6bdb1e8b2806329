//! Benchmark of the proxy (issue #4), all in one run, against the same backend process:
//!
//! 1. requests/s, p50/p99 latency and CPU time per request (user and system, of the proxy's
//!    processes, from `/proc/PID/stat`) at 1, 16 and 64 connections (wrk, 3 s per run) for
//!    - direct: wrk to the backend's own port,
//!    - ten: wrk to `ten serve` with `Host: a.web.localhost`,
//!    - nginx: wrk to nginx set up as the same Host-routing reverse proxy (server_name, an
//!      upstream with keep-alive connections, no access log, a worker per core), which, like
//!      ten, keeps a connection for any number of requests (see `keepalive_requests`),
//!    - nginx-2: a second nginx, set up exactly as the first: the control. Two identical
//!      proxies measure apart by this shared machine's noise alone, so nginx-2 against nginx
//!      shows how finely the bench can tell two proxies apart (an A/A comparison).
//!
//!    ten, nginx and nginx-2 take turns over 12 rounds (each order of the three twice, so
//!    that drift in the machine's load and the position in a round hit all alike); each figure
//!    is the median of its runs, and the ratios to nginx are taken round by round, with an
//!    interval for their median and a verdict from it;
//! 2. wake latency: the first request to a sleeping tenant, against the app's own time from
//!    exec to accepting connections.
//!
//! Run with `cargo bench --bench proxy`. Installs `wrk` and `nginx` (Debian) when missing.
//! `NGINX_KEEPALIVE_REQUESTS=1000 cargo bench --bench proxy` compares with nginx's default.

#[path = "common/mod.rs"]
mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::cpu::with_children;
use common::nginx::{Nginx, keepalive_requests};
use common::report::{print_ratios, print_runs_header, print_runs_line};
use common::stats::{Rounds, Run, medians};
use support::server::{TestServer, median, timed_get};

const CONNECTIONS: [u32; 3] = [1, 16, 64];
const SECONDS: u32 = 3;
/// Rounds per connection count: in each, ten, nginx and the control nginx are measured back
/// to back, in each of their six orders twice.
const ROUNDS: usize = 12;
const WAKES: usize = 20;

/// nginx set up as the same proxy as ten: routed by `server_name`, keep-alive connections to
/// the backend, and the same headers to it (Host, X-Forwarded-For, -Proto and -Host).
fn start_nginx(dir: &std::path::Path, listen: u16, backend: u16) -> Nginx {
    let config = format!(
        "worker_processes auto;\npid {dir}/nginx.pid;\nerror_log {dir}/error.log warn;\ndaemon off;\n\
events {{ worker_connections 4096; }}\n\
http {{\n  access_log off;\n  keepalive_requests {requests};\n\
  upstream tenant {{ server 127.0.0.1:{backend}; keepalive 128; keepalive_requests {requests}; }}\n\
  server {{\n    listen 127.0.0.1:{listen};\n    server_name a.web.localhost;\n\
    location / {{ proxy_pass http://tenant; proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_set_header Host $host; \
proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for; proxy_set_header X-Forwarded-Proto $scheme; \
proxy_set_header X-Forwarded-Host $host; }}\n  }}\n\
  server {{ listen 127.0.0.1:{listen} default_server; return 404; }}\n}}\n",
        dir = dir.display(),
        requests = keepalive_requests(),
    );
    common::nginx::start(dir, &config, listen)
}

/// A wrk run against `port`, with the CPU time of `processes` over it.
fn measure(port: u16, connections: u32, processes: &[u32]) -> Run {
    common::cpu::measure(SECONDS, processes, || {
        common::wrk::run(&[
            format!("-t{}", common::wrk::threads(connections)),
            format!("-c{connections}"),
            format!("-d{SECONDS}s"),
            "--latency".into(),
            "-H".into(),
            "Host: a.web.localhost".into(),
            format!("http://127.0.0.1:{port}/"),
        ])
    })
}

fn throughput() {
    // The backend does not log each request here: this measures the proxies, not ten's
    // capture of tenant output (which the backend's log lines would load in every run).
    let service =
        support::server::backend_service("web", "").replace("/backend\"", "/backend --quiet\"");
    let dir = support::server::project("", &service, &[("instances/web/a.toml", "")]);
    let server = TestServer::start(dir.path());
    server.wait_running("web:a");
    let backend = server.instance("web:a").unwrap();
    let (backend_port, backend_pid) = (backend.port.unwrap(), backend.pid.unwrap());
    let ten_port: u16 = server.url.rsplit(':').next().unwrap().parse().unwrap();
    let (nginx_dir, control_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (nginx_port, control_port) = (common::free_port(), common::free_port());
    let nginx = start_nginx(nginx_dir.path(), nginx_port, backend_port);
    let control = start_nginx(control_dir.path(), control_port, backend_port);
    let ports = [ten_port, nginx_port, control_port];
    // ten's own process only (its tenants are its children), nginx's master and workers.
    let processes = [
        vec![server.pid()],
        with_children(nginx.0.id()),
        with_children(control.0.id()),
    ];

    println!(
        "1. throughput and latency, {SECONDS} s per run, median of {ROUNDS} rounds (ten, nginx \
         and nginx-2 back to back in each, in turns), same backend process (pid {}), nginx \
         keepalive_requests {}",
        backend_pid,
        keepalive_requests()
    );
    println!(
        "   CPU: the proxy's processes, in µs per request (direct: the backend's), user and system"
    );
    print_runs_header("requests/s", "");
    let mut by_round = Vec::new();
    for connections in CONNECTIONS {
        let direct = measure(backend_port, connections, &[backend_pid]);
        let runs = common::take_turns(ROUNDS, |target| {
            measure(ports[target], connections, &processes[target])
        });
        let [ten, via_nginx, via_control] = &runs;
        by_round.push((
            connections,
            Rounds::new(ten, via_nginx),
            Rounds::new(via_control, via_nginx),
        ));
        let nginx_median = medians(via_nginx);
        for (name, run) in [
            ("direct", direct),
            ("ten", medians(ten)),
            ("nginx", nginx_median),
            ("nginx-2", medians(via_control)),
        ] {
            print_runs_line(name, connections, &run, &nginx_median, "");
        }
    }
    print_ratios(&by_round, "request");
    drop((nginx, control));
}

/// The backend's own time from exec to accepting connections.
fn app_start(port: u16) -> Duration {
    let started = Instant::now();
    let mut child = Command::new(support::server::backend())
        .env("PORT", port.to_string())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_micros(100));
    }
    let elapsed = started.elapsed();
    let _ = child.kill();
    let _ = child.wait();
    elapsed
}

fn wake_latency() {
    let base = support::server::port_range().0;
    let app = median((0..WAKES).map(|n| app_start(base + n as u16)).collect());
    let dir = support::server::project(
        "",
        &support::server::backend_service("sleepy", "idle_timeout = 1"),
        &[("instances/sleepy/a.toml", "")],
    );
    let server = TestServer::start(dir.path());
    server.wait_running("sleepy:a");
    let address = server.url.trim_start_matches("http://").to_string();
    let mut wakes = Vec::new();
    let mut warm = Vec::new();
    for _ in 0..WAKES {
        server.wait_until("asleep", |views| {
            views
                .iter()
                .all(|v| v.phase == ten::observed::Phase::Sleeping)
        });
        wakes.push(timed_get(&address, "a.sleepy.localhost"));
        warm.push(timed_get(&address, "a.sleepy.localhost"));
    }
    let (wake, warm) = (median(wakes), median(warm));
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("2. wake latency (median of {WAKES})");
    println!(
        "   backend started directly, exec -> accepting:   {:7.2} ms",
        ms(app)
    );
    println!(
        "   first request to a sleeping tenant, through ten: {:7.2} ms",
        ms(wake)
    );
    println!(
        "   a request to the awake tenant, through ten:      {:7.2} ms",
        ms(warm)
    );
    println!(
        "   wake overhead (wake - app start - awake request): {:.2} ms",
        ms(wake) - ms(app) - ms(warm)
    );
}

fn main() {
    common::ensure_tools(&[("wrk", "wrk"), ("nginx", "nginx")]);
    support::server::build_backend();
    throughput();
    wake_latency();
}
