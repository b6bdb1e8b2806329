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

#[path = "../tests/support/mod.rs"]
mod support;

use std::fs;
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::http::Request;
use support::server::TestServer;

const CONNECTIONS: [u32; 3] = [1, 16, 64];
const SECONDS: u32 = 3;
/// Rounds per connection count: in each, ten, nginx and the control nginx are measured back
/// to back, in each of their six orders twice.
const ROUNDS: usize = 12;
/// The orders of the three proxies (0 ten, 1 nginx, 2 the control nginx) in a round.
const ORDERS: [[usize; 3]; 6] = [
    [0, 1, 2],
    [1, 2, 0],
    [2, 0, 1],
    [0, 2, 1],
    [2, 1, 0],
    [1, 0, 2],
];
const WAKES: usize = 20;

fn ensure_tools() {
    let missing: Vec<&str> = ["wrk", "nginx"]
        .into_iter()
        .filter(|tool| {
            Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .map_or(true, |o| !o.status.success())
        })
        .collect();
    if missing.is_empty() {
        return;
    }
    let status = Command::new("apt-get")
        .args(["install", "-y", "-qq"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .expect("apt-get");
    assert!(status.success(), "could not install {missing:?}");
}

/// What one wrk run measured: requests per second, p50 and p99 latency, and the CPU time
/// the proxy's processes spent per request, in user space and in the kernel.
#[derive(Clone, Copy)]
struct Run {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    user_us: f64,
    system_us: f64,
}

/// A wrk run against `port`, with the CPU time of `processes` over it.
fn measure(port: u16, connections: u32, processes: &[u32]) -> Run {
    let before = cpu_ticks(processes);
    let (rps, p50_ms, p99_ms) = wrk(port, connections);
    let after = cpu_ticks(processes);
    let requests = rps * f64::from(SECONDS);
    let per_request = |ticks: u64| ticks as f64 * 1e6 / TICKS_PER_SECOND / requests;
    Run {
        rps,
        p50_ms,
        p99_ms,
        user_us: per_request(after.0 - before.0),
        system_us: per_request(after.1 - before.1),
    }
}

/// Linux's USER_HZ, the unit of the CPU times in `/proc/PID/stat` (100 on every architecture
/// ten runs on).
const TICKS_PER_SECOND: f64 = 100.0;

/// `pid` and its children: an nginx master and its workers.
fn with_children(pid: u32) -> Vec<u32> {
    let children = fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"));
    let mut all = vec![pid];
    all.extend(
        children
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|child| child.parse::<u32>().ok()),
    );
    all
}

/// User and system CPU time (ticks) of `processes`, all their threads.
fn cpu_ticks(processes: &[u32]) -> (u64, u64) {
    processes.iter().fold((0, 0), |(user, system), pid| {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // The fields after the command's closing parenthesis: state is the first, utime the
        // 12th and stime the 13th.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map_or("", |(_, rest)| rest)
            .split_whitespace()
            .collect();
        let field = |index: usize| fields.get(index).and_then(|v| v.parse().ok()).unwrap_or(0);
        (user + field(11), system + field(12))
    })
}

/// (requests per second, p50 ms, p99 ms) of a wrk run.
fn wrk(port: u16, connections: u32) -> (f64, f64, f64) {
    let threads = connections.min(2);
    let output = Command::new("wrk")
        .args([
            &format!("-t{threads}"),
            &format!("-c{connections}"),
            &format!("-d{SECONDS}s"),
            "--latency",
            "-H",
            "Host: a.web.localhost",
            &format!("http://127.0.0.1:{port}/"),
        ])
        .output()
        .expect("run wrk");
    let text = String::from_utf8_lossy(&output.stdout);
    let errors = text
        .lines()
        .find(|line| line.contains("Non-2xx") || line.contains("Socket errors"));
    assert!(errors.is_none(), "wrk saw errors:\n{text}");
    let requests = text
        .lines()
        .find_map(|line| line.strip_prefix("Requests/sec:"))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in:\n{text}"));
    let percentile = |label: &str| {
        text.lines()
            .find_map(|line| line.trim().strip_prefix(label))
            .map(|value| to_ms(value.trim()))
            .unwrap_or_else(|| panic!("no {label} in:\n{text}"))
    };
    (requests, percentile("50%"), percentile("99%"))
}

fn to_ms(value: &str) -> f64 {
    let split = value
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: f64 = number.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => number / 1000.0,
        "ms" => number,
        "s" => number * 1000.0,
        _ => f64::NAN,
    }
}

/// nginx, stopped with its workers when dropped: SIGTERM to the master (which ends its
/// workers), then SIGKILL to the whole process group if it lingers.
struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let group = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.0.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.0.wait();
    }
}

/// How many requests nginx serves on a connection before it closes it. ten never closes a
/// client's or a backend's connection after some number of requests; nginx does by default,
/// after 1000 (`keepalive_requests`, on both sides). A closed connection changes more than
/// the proxy: wrk connects again, and on a 2-CPU VM the scheduler often places wrk, proxy and
/// backend anew, sometimes all on one CPU, which at 1 connection is faster by up to 30% for
/// either proxy. So that both proxies serve the same load, nginx keeps its connections too.
fn keepalive_requests() -> u64 {
    std::env::var("NGINX_KEEPALIVE_REQUESTS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(1_000_000_000)
}

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
    let path = dir.join("nginx.conf");
    fs::write(&path, config).unwrap();
    let nginx = Nginx(
        Command::new("nginx")
            .args(["-c", path.to_str().unwrap(), "-p", dir.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start nginx"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", listen)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nginx did not start: {}",
            fs::read_to_string(dir.join("error.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    nginx
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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
    let (nginx_port, control_port) = (free_port(), free_port());
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
    println!(
        "   {:<7} {:>5} {:>12} {:>9} {:>9} {:>7} {:>7}   {:>10} {:>10} {:>10}",
        "target",
        "conns",
        "requests/s",
        "p50 ms",
        "p99 ms",
        "user",
        "system",
        "rps/nginx",
        "p99/nginx",
        "cpu/nginx",
    );
    let mut by_round = Vec::new();
    for connections in CONNECTIONS {
        let direct = measure(backend_port, connections, &[backend_pid]);
        let mut runs: [Vec<Run>; 3] = Default::default();
        for round in 0..ROUNDS {
            for target in ORDERS[round % ORDERS.len()] {
                runs[target].push(measure(ports[target], connections, &processes[target]));
            }
        }
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
            println!(
                "   {name:<7} {connections:>5} {:>12.0} {:>9.3} {:>9.3} {:>7.2} {:>7.2}   {:>10.2} {:>10.2} {:>10.2}",
                run.rps,
                run.p50_ms,
                run.p99_ms,
                run.user_us,
                run.system_us,
                run.rps / nginx_median.rps,
                run.p99_ms / nginx_median.p99_ms,
                (run.user_us + run.system_us) / (nginx_median.user_us + nginx_median.system_us),
            );
        }
    }
    println!(
        "   against nginx round by round (each round: all three measured back to back); \
         nginx-2 is nginx again, the control"
    );
    println!(
        "   {:>5} {:<7}   {:>10} {:>13} {:>10}   {:>10} {:>13}   {:>10} {:>13}   rps ratios",
        "conns",
        "",
        "rps median",
        "interval",
        ">= nginx",
        "p99 median",
        "interval",
        "cpu median",
        "interval"
    );
    for (connections, ten, control) in &by_round {
        for (name, rounds) in [("ten", ten), ("nginx-2", control)] {
            let (rps, p99, cpu) = (&rounds.rps, &rounds.p99, &rounds.cpu);
            println!(
                "   {connections:>5} {name:<7}   {:>10.2} {:>13} {:>10}   {:>10.2} {:>13}   {:>10.2} {:>13}   {}",
                rps.median,
                rps.range(),
                format!("{}/{ROUNDS}", rounds.won),
                p99.median,
                p99.range(),
                cpu.median,
                cpu.range(),
                rounds.rps_ratios.join(" ")
            );
        }
    }
    let coverage = by_round
        .first()
        .map_or(0.0, |(_, rounds, _)| rounds.rps.coverage);
    println!(
        "   interval: holds the true median ratio of these processes with {:.0}% confidence \
         (order statistics, no assumption about the noise's distribution); the rounds share \
         one ten, two nginx and one backend, so a run with new ones can differ by more",
        coverage * 100.0
    );
    for (connections, ten, control) in &by_round {
        let unit = if *connections == 1 {
            "connection"
        } else {
            "connections"
        };
        println!(
            "   {connections:>5} {unit}: throughput {}; p99 {}; CPU per request {}",
            ten.rps_verdict(control),
            ten.p99_verdict(control),
            ten.cpu_verdict(control)
        );
    }
    drop((nginx, control));
}

/// A proxy against nginx, round by round.
struct Rounds {
    rps_ratios: Vec<String>,
    rps: Interval,
    p99: Interval,
    /// CPU time per request (user and system) against nginx's.
    cpu: Interval,
    /// Rounds in which the proxy served at least as many requests as nginx.
    won: usize,
}

impl Rounds {
    fn new(proxy: &[Run], nginx: &[Run]) -> Rounds {
        let ratios = |pick: fn(&Run) -> f64| -> Vec<f64> {
            proxy
                .iter()
                .zip(nginx)
                .map(|(p, n)| pick(p) / pick(n))
                .collect()
        };
        let rps = ratios(|run| run.rps);
        let p99 = ratios(|run| run.p99_ms);
        let cpu = ratios(|run| run.user_us + run.system_us);
        Rounds {
            rps_ratios: rps.iter().map(|ratio| format!("{ratio:.2}")).collect(),
            won: rps.iter().filter(|ratio| **ratio >= 1.0).count(),
            rps: Interval::of_median(rps),
            p99: Interval::of_median(p99),
            cpu: Interval::of_median(cpu),
        }
    }

    /// Throughput against nginx, and beside it how nginx measures against itself
    /// (`control`): how far apart two identical proxies land on this machine.
    fn rps_verdict(&self, control: &Rounds) -> String {
        verdict(
            &self.rps,
            &control.rps,
            Better::Higher,
            "ten ahead",
            "ten behind",
        )
    }

    /// p99 latency against nginx, with the control beside it.
    fn p99_verdict(&self, control: &Rounds) -> String {
        verdict(
            &self.p99,
            &control.p99,
            Better::Lower,
            "ten's lower",
            "ten's higher",
        )
    }

    /// CPU time per request against nginx's, with the control beside it.
    fn cpu_verdict(&self, control: &Rounds) -> String {
        verdict(
            &self.cpu,
            &control.cpu,
            Better::Lower,
            "ten's lower",
            "ten's higher",
        )
    }
}

/// Which way a ratio to nginx is better.
#[derive(Clone, Copy)]
enum Better {
    Higher,
    Lower,
}

/// `better` when the whole interval of the ratio is on the better side of 1, `worse` when it
/// is on the worse side, else level; with the control's interval beside it.
fn verdict(ratio: &Interval, control: &Interval, way: Better, better: &str, worse: &str) -> String {
    let (low, high) = match way {
        Better::Higher => (ratio.low, ratio.high),
        // Mirrored, so that the test below reads the same: the inverse of a ratio.
        Better::Lower => (1.0 / ratio.high, 1.0 / ratio.low),
    };
    let verdict = if low >= 1.0 {
        better
    } else if high < 1.0 {
        worse
    } else {
        "level"
    };
    format!("{verdict} ({ratio}; nginx against itself: {control})")
}

/// A sample's median, and an interval that holds the true median with probability `coverage`.
struct Interval {
    median: f64,
    low: f64,
    high: f64,
    coverage: f64,
}

impl Interval {
    /// `low..high`.
    fn range(&self) -> String {
        format!("{:.2}..{:.2}", self.low, self.high)
    }

    /// The narrowest interval between order statistics, `[x(k), x(n+1-k)]`, that holds the
    /// median with at least 88% probability: it does unless k or more of the n values fall on
    /// one side of it, each with probability 1/2 (the values being independent).
    fn of_median(mut values: Vec<f64>) -> Interval {
        values.sort_by(f64::total_cmp);
        let n = values.len();
        let median = median_of(values.clone());
        // P(X <= j) for X ~ Binomial(n, 1/2), for each j.
        let mut below = Vec::with_capacity(n + 1);
        let (mut choose, mut sum) = (1.0_f64, 0.0_f64);
        for j in 0..=n {
            sum += choose / 2f64.powi(n as i32);
            below.push(sum);
            choose = choose * (n - j) as f64 / (j + 1) as f64;
        }
        let mut k = 1;
        while k < n.div_ceil(2) && 1.0 - 2.0 * below[k] >= 0.88 {
            k += 1;
        }
        Interval {
            median,
            low: values[k - 1],
            high: values[n - k],
            coverage: 1.0 - 2.0 * below[k - 1],
        }
    }
}

impl std::fmt::Display for Interval {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.2}, {}", self.median, self.range())
    }
}

/// The median; of an even count, the mean of the middle two.
fn median_of(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len() % 2 == 0 {
        (values[middle - 1] + values[middle]) / 2.0
    } else {
        values[middle]
    }
}

/// The median of each figure over runs.
fn medians(runs: &[Run]) -> Run {
    let median = |pick: fn(&Run) -> f64| median_of(runs.iter().map(pick).collect());
    Run {
        rps: median(|r| r.rps),
        p50_ms: median(|r| r.p50_ms),
        p99_ms: median(|r| r.p99_ms),
        user_us: median(|r| r.user_us),
        system_us: median(|r| r.system_us),
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

fn timed_get(address: &str) -> Duration {
    let started = Instant::now();
    let response = Request::get("/").host("a.sleepy.localhost").send(address);
    assert_eq!(response.status, 200, "{response:?}");
    started.elapsed()
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
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
        wakes.push(timed_get(&address));
        warm.push(timed_get(&address));
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
    ensure_tools();
    support::server::build_backend();
    throughput();
    wake_latency();
}
