//! Benchmark of the proxy (issues #4 and #24), all in one run, against the same backend
//! process for every proxy:
//!
//! 1. requests/s, p50/p99 latency and CPU time per request (user and system, of the proxy's
//!    processes, from `/proc/PID/stat`) at 1, 16, 64 and 256 connections (wrk, 3 s per run),
//!    behind two backends, each a tenant of the same `ten serve`:
//!    - *fast*: nginx with one worker answering every path with a fixed `200 {"ok":true}`,
//!      keep-alive without limit: a backend that costs less than the proxy in front of it, so
//!      that the proxy is the bottleneck (issue #24);
//!    - *test*: the project's test backend (`examples/backend`, `--quiet`).
//!
//!    For each, the targets:
//!    - direct: wrk to the backend's own port (once per connection count, for scale),
//!    - ten: wrk to `ten serve` with `Host: a.SERVICE.localhost`,
//!    - nginx: wrk to nginx set up as the same Host-routing reverse proxy (server_name, an
//!      upstream with `keepalive 128` connections, no access log) with ONE worker, which,
//!      like ten, keeps a connection for any number of requests (see `keepalive_requests`),
//!    - nginx-2w: the same nginx with two workers (one per core, as ten has two proxy
//!      workers),
//!    - nginx-2: a second one-worker nginx, set up exactly as the first: the control. Two
//!      identical proxies measure apart by this shared machine's noise alone, so nginx-2
//!      against nginx shows how finely the bench can tell two proxies apart (an A/A
//!      comparison).
//!
//!    The four proxies take turns over the rounds (in each, all four back to back, the order
//!    rotated and reversed so that drift in the machine's load and the position in a round
//!    hit all alike); each figure is the median of its runs, and the ratios are taken round by
//!    round, with an interval for their median;
//! 2. wake latency: the first request to a sleeping tenant, against the app's own time from
//!    exec to accepting connections.
//!
//! Run with `cargo bench --bench proxy`. Installs `wrk` and `nginx` (Debian) when missing.
//! Environment: `PROXY_BENCH_BACKENDS` (`fast,test`), `PROXY_BENCH_CONNECTIONS`
//! (`1,16,64,256`), `PROXY_BENCH_ROUNDS` (6), `PROXY_BENCH_SECONDS` (3),
//! `PROXY_BENCH_WAKE=0` skips part 2; `NGINX_KEEPALIVE_REQUESTS=1000` compares with nginx's
//! default.

#[path = "common/mod.rs"]
mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::cpu::with_children;
use common::nginx::{Nginx, keepalive_requests};
use common::report::{print_comparisons, print_runs_header, print_runs_line};
use common::stats::{Rounds, Run, medians};
use support::server::{TestServer, median, timed_get};

const WAKES: usize = 20;
/// The proxies, in the order of their measures: ten, nginx with one worker, nginx with two,
/// and the control (nginx with one worker again).
const NAMES: [&str; 4] = ["ten", "nginx", "nginx-2w", "nginx-2"];

/// What a run measures, from the environment (see the module's doc).
struct Plan {
    backends: Vec<String>,
    connections: Vec<u32>,
    rounds: usize,
    seconds: u32,
}

fn env_list<T: std::str::FromStr>(name: &str, default: &str) -> Vec<T> {
    std::env::var(name)
        .unwrap_or_else(|_| default.into())
        .split(',')
        .map(|item| {
            item.trim()
                .parse()
                .unwrap_or_else(|_| panic!("{name}: cannot read {item:?}"))
        })
        .collect()
}

impl Plan {
    fn from_env() -> Plan {
        let one = |name: &str, default: &str| env_list::<usize>(name, default)[0];
        let plan = Plan {
            backends: env_list("PROXY_BENCH_BACKENDS", "fast,test"),
            connections: env_list("PROXY_BENCH_CONNECTIONS", "1,16,64,256"),
            rounds: one("PROXY_BENCH_ROUNDS", "6"),
            seconds: one("PROXY_BENCH_SECONDS", "3") as u32,
        };
        for backend in &plan.backends {
            assert!(
                backend == "fast" || backend == "test",
                "PROXY_BENCH_BACKENDS: {backend:?} is neither fast nor test"
            );
        }
        plan
    }
}

/// nginx set up as the same proxy as ten, with `workers` workers: routed by `server_name`,
/// keep-alive connections to the backend, and the same headers to it (Host, X-Forwarded-For,
/// -Proto and -Host).
fn start_nginx(dir: &Path, listen: u16, host: &str, backend: u16, workers: u32) -> Nginx {
    let config = format!(
        "worker_processes {workers};\npid {dir}/nginx.pid;\nerror_log {dir}/error.log warn;\ndaemon off;\n\
worker_rlimit_nofile 16384;\nevents {{ worker_connections 8192; }}\n\
http {{\n  access_log off;\n  keepalive_requests {requests};\n\
  upstream tenant {{ server 127.0.0.1:{backend}; keepalive 128; keepalive_requests {requests}; }}\n\
  server {{\n    listen 127.0.0.1:{listen};\n    server_name {host};\n\
    location / {{ proxy_pass http://tenant; proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_set_header Host $host; \
proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for; proxy_set_header X-Forwarded-Proto $scheme; \
proxy_set_header X-Forwarded-Host $host; }}\n  }}\n\
  server {{ listen 127.0.0.1:{listen} default_server; return 404; }}\n}}\n",
        dir = dir.display(),
        requests = keepalive_requests(),
    );
    common::nginx::start(dir, &config, listen)
}

/// The fast backend's service: nginx with one worker (no master process, so that ten runs
/// and stops the process that serves) answering every path with a fixed JSON body, on the
/// instance's `PORT`, keeping every connection for as long as its client wants.
fn fast_service(dir: &Path) -> String {
    let config = format!(
        "worker_processes 1;\nmaster_process off;\ndaemon off;\npid {dir}/fast-@PORT@.pid;\n\
error_log {dir}/fast-error.log warn;\nworker_rlimit_nofile 16384;\n\
events {{ worker_connections 8192; }}\n\
http {{\n  access_log off;\n  keepalive_requests 1000000000;\n  keepalive_timeout 3600s;\n\
  default_type application/json;\n\
  server {{ listen 127.0.0.1:@PORT@; location / {{ return 200 '{{\"ok\":true}}'; }} }}\n}}\n",
        dir = dir.display()
    );
    std::fs::write(dir.join("fast.conf.in"), config).unwrap();
    let script = format!(
        "#!/bin/sh\nsed \"s/@PORT@/$PORT/g\" {dir}/fast.conf.in > {dir}/fast-$PORT.conf\n\
exec nginx -c {dir}/fast-$PORT.conf -p {dir}\n",
        dir = dir.display()
    );
    std::fs::write(dir.join("fast.sh"), script).unwrap();
    format!(
        "[service.fast]\ncommand = \"sh {}/fast.sh\"\nhealth = \"/health\"\nstop_timeout = 2\n",
        dir.display()
    )
}

/// A wrk run against `port` with `host`, with the CPU time of `processes` over it.
fn measure(plan: &Plan, port: u16, host: &str, connections: u32, processes: &[u32]) -> Run {
    common::cpu::measure(plan.seconds, processes, || {
        common::wrk::run(&[
            format!("-t{}", common::wrk::threads(connections)),
            format!("-c{connections}"),
            format!("-d{}s", plan.seconds),
            "--latency".into(),
            "-H".into(),
            format!("Host: {host}"),
            format!("http://127.0.0.1:{port}/"),
        ])
    })
}

/// Raises this process's limit on open files to its hard limit (wrk, ten and nginx, its
/// children, inherit it): 256 connections take 256 descriptors in wrk, twice that in a proxy.
fn raise_open_files() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

fn throughput(plan: &Plan) {
    let state = tempfile::tempdir().unwrap();
    // The test backend does not log each request here: this measures the proxies, not ten's
    // capture of tenant output (which the backend's log lines would load in every run).
    let services = format!(
        "{}\n{}",
        support::server::backend_service("web", "").replace("/backend\"", "/backend --quiet\""),
        fast_service(state.path())
    );
    let dir = support::server::project(
        "",
        &services,
        &[("instances/web/a.toml", ""), ("instances/fast/a.toml", "")],
    );
    let server = TestServer::start(dir.path());
    server.wait_running("web:a");
    server.wait_running("fast:a");
    let ten_port: u16 = server.url.rsplit(':').next().unwrap().parse().unwrap();
    println!(
        "1. throughput and latency, {} s per run, median of {} rounds (ten, nginx, nginx-2w and \
         nginx-2 back to back in each, in turns), nginx keepalive_requests {}, upstream \
         keepalive 128",
        plan.seconds,
        plan.rounds,
        keepalive_requests()
    );
    println!(
        "   nginx: 1 worker; nginx-2w: 2 workers; nginx-2: 1 worker, the control. CPU: the \
         proxy's processes, in µs per request (direct: the backend's), user and system"
    );
    for backend_name in &plan.backends {
        let (service, what) = match backend_name.as_str() {
            "fast" => ("fast", "nginx, 1 worker, fixed 200 {\"ok\":true}"),
            _ => ("web", "the project's test backend"),
        };
        let host = format!("a.{service}.localhost");
        let backend = server.instance(&format!("{service}:a")).unwrap();
        let (backend_port, backend_pid) = (backend.port.unwrap(), backend.pid.unwrap());
        let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        let ports: Vec<u16> = (0..3).map(|_| common::free_port()).collect();
        let nginxes: Vec<Nginx> = [1, 2, 1]
            .iter()
            .enumerate()
            .map(|(n, workers)| {
                start_nginx(dirs[n].path(), ports[n], &host, backend_port, *workers)
            })
            .collect();
        let targets = [ten_port, ports[0], ports[1], ports[2]];
        // ten's own process only (its tenants are its children), nginx's master and workers.
        let processes = [
            vec![server.pid()],
            with_children(nginxes[0].0.id()),
            with_children(nginxes[1].0.id()),
            with_children(nginxes[2].0.id()),
        ];
        println!();
        println!("   backend {backend_name}: {what} (pid {backend_pid})");
        print_runs_header("requests/s", "");
        let mut rows = Vec::new();
        for &connections in &plan.connections {
            let direct = measure(plan, backend_port, &host, connections, &[backend_pid]);
            let runs: [Vec<Run>; 4] = common::take_turns_among(plan.rounds, |target| {
                measure(
                    plan,
                    targets[target],
                    &host,
                    connections,
                    &processes[target],
                )
            });
            let [ten, one, two, control] = &runs;
            let one_median = medians(one);
            print_runs_line("direct", connections, &direct, &one_median, "");
            for (name, run) in NAMES.iter().zip(&runs) {
                print_runs_line(name, connections, &medians(run), &one_median, "");
            }
            rows.push((connections, "ten / nginx".into(), Rounds::new(ten, one)));
            rows.push((connections, "ten / nginx-2w".into(), Rounds::new(ten, two)));
            rows.push((
                connections,
                "nginx-2w / nginx".into(),
                Rounds::new(two, one),
            ));
            rows.push((
                connections,
                "nginx-2 / nginx (A/A)".into(),
                Rounds::new(control, one),
            ));
        }
        println!("   backend {backend_name}, round by round:");
        print_comparisons(&rows);
        drop(nginxes);
    }
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
    raise_open_files();
    let plan = Plan::from_env();
    throughput(&plan);
    if std::env::var("PROXY_BENCH_WAKE").as_deref() != Ok("0") {
        wake_latency();
    }
}
