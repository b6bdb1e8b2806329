//! What many tenants cost ten while nothing happens (issue #22), as root with a cgroup each,
//! each figure next to a baseline measured in the same run:
//!
//! a. `TEN_BENCH_TENANTS` (1,000) running instances of the tiny backend (eager, all healthy):
//!    ten's CPU over `TEN_BENCH_SECONDS` (60), against the same ten before any instance was
//!    declared; in % of one core and in CPU µs per tenant per second, with ten's wake-ups
//!    (context switches of all its threads) per tenant per check interval.
//! b. `TEN_BENCH_SLEEPING` (10,000) declared on-demand instances, all asleep: ten's RSS (the
//!    median of one sample a second over the idle stretch, and the largest: a resync's
//!    moment) and idle CPU, against the same ten before they were declared; the wall time of `ten ps` and
//!    `ten diff`; the first request to a random sleeping instance against the app's own
//!    exec -> listening time, measured in turns in the same run.
//!
//! Run with `cargo bench --bench density` (builds the backend example in release first);
//! `TEN_BENCH_PARTS=a` or `=b` runs one part; `TEN_BENCH_QUIET=1` runs the backend with
//! `--quiet` (no log line per request, so none per health check). Needs root (cgroups).

#[path = "common/mod.rs"]
mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use std::fs;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::http::Request;
use support::server::{TestServer, status_kb};

/// The tenants' ports: each instance keeps one, asleep or not.
const PORTS: (u16, u16) = (20000, 31000);

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|value| {
            value
                .parse()
                .unwrap_or_else(|_| panic!("{name} must be a number"))
        })
        .unwrap_or(default)
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Context switches (voluntary and not) of all the threads of `pid` so far: how often its
/// threads went to sleep and were woken. Threads that ended take their counts with them
/// (tokio's blocking threads end after 10 s idle): a difference over a stretch in which one
/// ended is a lower bound.
fn context_switches(pid: u32) -> u64 {
    let Ok(threads) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    threads
        .filter_map(Result::ok)
        .filter_map(|thread| fs::read_to_string(thread.path().join("status")).ok())
        .flat_map(|status| {
            status
                .lines()
                .filter(|line| line.contains("ctxt_switches:"))
                .filter_map(|line| line.split_whitespace().nth(1)?.parse::<u64>().ok())
                .collect::<Vec<_>>()
        })
        .sum()
}

/// What ten did over a quiet stretch.
struct Idle {
    /// % of one core.
    cpu_percent: f64,
    /// Context switches per second.
    switches_per_second: f64,
    /// ten's RSS, sampled every second: the median (what it holds) and the largest (a
    /// resync's moment: it reads every instance file again, and the new desired state is
    /// built beside the old one), in KiB.
    rss_kb: (u64, u64),
}

fn idle(pid: u32, over: Duration) -> Idle {
    let (cpu_before, switches_before) = (common::cpu::cpu_ticks(&[pid]), context_switches(pid));
    let began = Instant::now();
    let mut rss = vec![status_kb(pid, "VmRSS:")];
    while began.elapsed() < over {
        std::thread::sleep(Duration::from_secs(1).min(over.saturating_sub(began.elapsed())));
        rss.push(status_kb(pid, "VmRSS:"));
    }
    let (cpu_after, switches_after) = (common::cpu::cpu_ticks(&[pid]), context_switches(pid));
    let ticks = (cpu_after.0 + cpu_after.1) - (cpu_before.0 + cpu_before.1);
    let largest = rss.iter().copied().max().unwrap_or(0);
    rss.sort_unstable();
    Idle {
        cpu_percent: ticks as f64 / common::cpu::TICKS_PER_SECOND / over.as_secs_f64() * 100.0,
        switches_per_second: switches_after.saturating_sub(switches_before) as f64
            / over.as_secs_f64(),
        rss_kb: (rss[rss.len() / 2], largest),
    }
}

fn token(server: &TestServer) -> String {
    fs::read_to_string(server.dir.join("tenement-data/api_token"))
        .unwrap()
        .trim()
        .to_string()
}

fn api_get(server: &TestServer, path: &str) -> String {
    Request::get(path)
        .bearer(&token(server))
        .send(server.address())
        .body
}

/// A project with one service of the tiny backend (`extra` keys) and a port range wide
/// enough for every instance; its instances come later, all at once. The backend logs every
/// request (each health check adds a line to its log) unless `TEN_BENCH_QUIET=1`.
fn project(extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let quiet = std::env::var("TEN_BENCH_QUIET").is_ok_and(|value| value == "1");
    let service = support::server::backend_service("web", extra);
    let service = if quiet {
        let command = support::server::backend().display().to_string();
        service.replacen(&command, &format!("{command} --quiet"), 1)
    } else {
        service
    };
    support::write_file(
        &dir.path().join("tenement.toml"),
        &format!(
            "[settings]\nport_range = [{}, {}]\n\n{service}",
            PORTS.0, PORTS.1
        ),
    );
    dir
}

/// Declares `count` instances of `web` at once (a directory renamed into place), and waits
/// until `/api/instances` counts `count` of `needle`.
fn declare(server: &TestServer, dir: &Path, count: usize, needle: &str) -> Duration {
    let staged = dir.join("staged/web");
    fs::create_dir_all(&staged).unwrap();
    for n in 0..count {
        fs::write(staged.join(format!("t{n:05}.toml")), "").unwrap();
    }
    fs::create_dir_all(dir.join("instances")).unwrap();
    let dropped = Instant::now();
    fs::rename(&staged, dir.join("instances/web")).unwrap();
    loop {
        let found = api_get(server, "/api/instances").matches(needle).count();
        if found == count {
            return dropped.elapsed();
        }
        assert!(
            dropped.elapsed() < Duration::from_secs(600),
            "only {found} of {count} {needle} after 10 minutes"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn running_tenants(tenants: u64, seconds: u64) {
    let over = Duration::from_secs(seconds);
    let dir = project("idle_timeout = 0");
    let server = TestServer::start(dir.path());
    std::thread::sleep(Duration::from_secs(2));
    let empty = idle(server.pid(), over);
    let empty_rss = empty.rss_kb.0;

    let healthy = declare(
        &server,
        dir.path(),
        tenants as usize,
        "\"health\":\"healthy\"",
    );
    // Registers the tenants with the server's guard: killed even if ten cannot stop them.
    let _ = server.ps();
    // The startup burst is over; the first periodic checks are spread over one interval.
    std::thread::sleep(Duration::from_secs(12));
    let full = idle(server.pid(), over);
    let rss = full.rss_kb.0;

    let per_tenant_us = (full.cpu_percent - empty.cpu_percent) / 100.0 * 1e6 / tenants as f64;
    let interval = 10.0;
    let wakes = (full.switches_per_second - empty.switches_per_second) * interval / tenants as f64;
    println!("a. {tenants} running tenants (eager, a health check each every {interval} s)");
    println!(
        "   all healthy {:.1} s after they were declared",
        healthy.as_secs_f64()
    );
    println!(
        "   ten's CPU over {seconds} s: {:.2}% of a core with {tenants} tenants, {:.2}% with none; {per_tenant_us:.1} µs per tenant per second",
        full.cpu_percent, empty.cpu_percent
    );
    println!(
        "   ten's context switches: {:.0}/s with {tenants} tenants, {:.0}/s with none: {wakes:.2} per tenant per check interval",
        full.switches_per_second, empty.switches_per_second
    );
    println!(
        "   ten's RSS (median of one a second): {:.1} MiB with {tenants} tenants, {:.1} MiB with none; the largest {:.1} MiB",
        rss as f64 / 1024.0,
        empty_rss as f64 / 1024.0,
        full.rss_kb.1 as f64 / 1024.0
    );
}

/// Wall time of the CLI run `args` against `server`, which must succeed.
fn timed_cli(server: &TestServer, args: &[&str]) -> Duration {
    let started = Instant::now();
    let output = server.ten(args);
    let elapsed = started.elapsed();
    assert!(
        output.status.success(),
        "ten {args:?}: {}",
        support::server::stderr(&output)
    );
    elapsed
}

/// The backend's own exec-to-listening time, started directly on `port`.
fn app_start_time(port: u16) -> Duration {
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

fn sleeping_tenants(tenants: u64, seconds: u64) {
    let over = Duration::from_secs(seconds);
    let dir = project("idle_timeout = 3600\nstart = \"on-demand\"");
    let server = TestServer::start(dir.path());
    std::thread::sleep(Duration::from_secs(2));
    let empty = idle(server.pid(), over);
    let empty_rss = empty.rss_kb.0;

    let declared = declare(
        &server,
        dir.path(),
        tenants as usize,
        "\"phase\":\"sleeping\"",
    );
    std::thread::sleep(Duration::from_secs(5));
    let full = idle(server.pid(), over);
    let rss = full.rss_kb.0;
    let ps: Vec<Duration> = (0..5)
        .map(|_| timed_cli(&server, &["ps", "--json"]))
        .collect();
    let diff: Vec<Duration> = (0..5).map(|_| timed_cli(&server, &["diff"])).collect();

    // Wakes of random instances, each next to the app's own start on a port no instance has,
    // a second apart (`TEN_BENCH_WAKE_GAP_MS`): ten keeps two spare processes for wakes (each
    // already in a cgroup of its own), refilled after a wake takes one; back to back, wakes
    // outrun the refill and measure the cgroup's creation instead.
    let gap = Duration::from_millis(setting("TEN_BENCH_WAKE_GAP_MS", 1000));
    let mut random = 0x2545_f491_4f6c_dd1d_u64;
    let (mut wakes, mut apps) = (Vec::new(), Vec::new());
    for _ in 0..20 {
        random ^= random << 13;
        random ^= random >> 7;
        random ^= random << 17;
        let host = format!("t{:05}.web.localhost", random % tenants);
        std::thread::sleep(gap);
        apps.push(app_start_time(PORTS.1 + 1));
        wakes.push(support::server::timed_get(server.address(), &host));
    }
    let _ = server.ps();
    let (app, wake) = (
        support::server::median(apps),
        support::server::median(wakes),
    );

    println!("b. {tenants} on-demand instances declared, all asleep");
    println!(
        "   all sleeping {:.1} s after they were declared",
        declared.as_secs_f64()
    );
    println!(
        "   ten's RSS (median of one a second): {:.1} MiB with {tenants} sleeping (goal: 30 MiB), {:.1} MiB with none ({:.2} KiB per instance); the largest {:.1} MiB (a resync reads every file again)",
        rss as f64 / 1024.0,
        empty_rss as f64 / 1024.0,
        (rss as f64 - empty_rss as f64) / tenants as f64,
        full.rss_kb.1 as f64 / 1024.0
    );
    println!(
        "   ten's CPU over {seconds} s: {:.3}% of a core with {tenants} sleeping, {:.3}% with none; context switches {:.1}/s against {:.1}/s",
        full.cpu_percent, empty.cpu_percent, full.switches_per_second, empty.switches_per_second
    );
    println!(
        "   `ten ps --json`: {:.1} ms, `ten diff`: {:.1} ms (medians of 5)",
        ms(support::server::median(ps)),
        ms(support::server::median(diff))
    );
    println!(
        "   first request to a random sleeping instance: {:.2} ms; the app's own exec -> listening: {:.2} ms; ten adds {:.2} ms (medians of 20, in turns)",
        ms(wake),
        ms(app),
        ms(wake) - ms(app)
    );
}

fn main() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the density bench runs as root: each tenant gets a cgroup"
    );
    support::server::build_backend();
    let seconds = setting("TEN_BENCH_SECONDS", 60);
    let parts = std::env::var("TEN_BENCH_PARTS").unwrap_or_else(|_| "a,b".into());
    if parts.contains('a') {
        running_tenants(setting("TEN_BENCH_TENANTS", 1000), seconds);
    }
    if parts.contains('b') {
        sleeping_tenants(setting("TEN_BENCH_SLEEPING", 10_000), seconds);
    }
}
