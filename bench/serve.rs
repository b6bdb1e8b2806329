//! Benchmarks of `ten serve` (issue #3), each next to a baseline measured in the same run:
//! 1,000 instance files dropped at once (a directory renamed into place) until all are
//! healthy (eager starts, a cgroup each when run as root), against starting 1,000 backends
//! from a shell loop (`backend &`, before and after ten's run) and directly from this
//! process, waiting until all accept; ten's and its spawners' CPU time during the burst;
//! ten's "all healthy" is seen as a user following `ten events -f` would see it: from the event
//! stream, confirmed by one `/api/instances` (polling 1,000 views every 20 ms cost ten about a
//! tenth of its CPU during the burst);
//! then the server's RSS and idle CPU over 10 s, against a server with no instance. (One
//! file dropped at a time: `bench/drop.rs`.)
//!
//! Run with `cargo bench --bench serve` (builds the backend example in release first).

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeSet;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use support::http::Request;
use support::server::{TestServer, status_kb};

const MASS: usize = 1000;

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn wait_accepting(port: u16) {
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_micros(200));
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

/// Follows `/api/events/stream` on a thread of its own: sends `true` once `count` distinct
/// instances said "healthy", `false` if the stream ended first; sets `skipped` when ten said
/// it skipped events (a bulk create outruns the stream's buffer; then the caller polls too, in
/// case a "healthy" was among them). Returns once the stream is open.
fn healthy_from_events(
    server: &TestServer,
    count: usize,
    skipped: Arc<AtomicBool>,
) -> mpsc::Receiver<bool> {
    let mut stream = TcpStream::connect(server.address()).unwrap();
    write!(
        stream,
        "GET /api/events/stream HTTP/1.1\r\nHost: ten\r\nAuthorization: Bearer {}\r\n\r\n",
        token(server)
    )
    .unwrap();
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    // The response head: its status line, then headers until the empty line.
    while reader.read_line(&mut line).unwrap() > 2 {
        line.clear();
    }
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let mut healthy = BTreeSet::new();
        // Chunked: a size line, that many bytes, CRLF; events (or notes) a chunk, each
        // ended by an empty line.
        let mut size = String::new();
        loop {
            size.clear();
            let Ok(read) = reader.read_line(&mut size) else {
                break;
            };
            let Ok(length) = usize::from_str_radix(size.trim(), 16) else {
                break;
            };
            if read == 0 || length == 0 {
                break;
            }
            let mut chunk = vec![0; length + 2];
            if reader.read_exact(&mut chunk).is_err() {
                break;
            }
            let text = String::from_utf8_lossy(&chunk);
            for item in text.split("\n\n") {
                if item.starts_with(':') {
                    skipped.store(true, Ordering::Relaxed);
                    continue;
                }
                let Some(data) = item.trim().strip_prefix("data: ") else {
                    continue;
                };
                let event: serde_json::Value = serde_json::from_str(data).unwrap();
                if event["message"]
                    .as_str()
                    .is_some_and(|message| message.starts_with("healthy"))
                    && let Some(instance) = event["instance"].as_str()
                {
                    healthy.insert(instance.to_string());
                    if healthy.len() == count {
                        let _ = sender.send(true);
                        return;
                    }
                }
            }
        }
        let _ = sender.send(false);
    });
    receiver
}

/// CPU time (user + system) of `pid`, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..]
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

fn idle_cpu_percent(pid: u32, over: Duration) -> f64 {
    let before = cpu_seconds(pid);
    std::thread::sleep(over);
    (cpu_seconds(pid) - before) / over.as_secs_f64() * 100.0
}

/// CPU time (user + system) of ten's spawners, the children of `server` that run
/// `__spawner` (0 while there is none). A child is listed by the thread that started it.
fn spawner_cpu_seconds(server: u32) -> f64 {
    let children: String = fs::read_dir(format!("/proc/{server}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|task| fs::read_to_string(task.path().join("children")).ok())
        .collect::<Vec<_>>()
        .join(" ");
    children
        .split_whitespace()
        .filter_map(|pid| pid.parse::<u32>().ok())
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmdline| cmdline.ends_with(b"\0__spawner\0"))
        })
        .map(cpu_seconds)
        .sum()
}

/// Baseline 1: the backends started directly by this process, one `Command::spawn` each.
fn start_directly(low: u16) -> Duration {
    let started = Instant::now();
    let mut children: Vec<Child> = (0..MASS)
        .map(|n| {
            Command::new(support::server::backend())
                .env("PORT", (low + n as u16).to_string())
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for n in 0..MASS {
        wait_accepting(low + n as u16);
    }
    let elapsed = started.elapsed();
    for child in &mut children {
        let _ = child.kill();
    }
    for child in &mut children {
        let _ = child.wait();
    }
    elapsed
}

/// Baseline 2: the backends started by a shell loop (`backend &` in a loop), as an operator
/// would without a supervisor; the shell and its backends are a process group of their own,
/// killed together.
fn start_from_shell(low: u16) -> Duration {
    use std::os::unix::process::CommandExt;
    let script = format!(
        "i=0; while [ $i -lt {MASS} ]; do PORT=$(({low} + i)) \"$0\" >/dev/null & i=$((i + 1)); done; wait"
    );
    let started = Instant::now();
    let mut shell = Command::new("sh")
        .args(["-c", &script])
        .arg(support::server::backend())
        .process_group(0)
        .spawn()
        .unwrap();
    for n in 0..MASS {
        wait_accepting(low + n as u16);
    }
    let elapsed = started.elapsed();
    let group = nix::unistd::Pid::from_raw(-(shell.id() as i32));
    let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
    let _ = shell.wait();
    // The backends were the shell's children: gone with the group, reaped by init.
    wait_ports_free(low);
    elapsed
}

/// Waits until nothing accepts on the ports a baseline uses (a run before it has ended).
fn wait_ports_free(low: u16) {
    for n in 0..MASS {
        while TcpStream::connect(("127.0.0.1", low + n as u16)).is_ok() {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

fn mass_start() {
    let low = 21000u16;
    // The baselines, each before and after ten's run, so the machine's drift shows.
    let shell_before = start_from_shell(low);
    let direct = start_directly(low);

    // An empty server: its RSS and idle CPU are the baseline for the full one.
    let dir = tempfile::tempdir().unwrap();
    support::write_file(
        &dir.path().join("tenement.toml"),
        &format!(
            "[settings]\nport_range = [{low}, {}]\n\n{}",
            low + 2 * MASS as u16,
            // Started at once (eager), not on the first request.
            support::server::backend_service("web", "idle_timeout = 0")
        ),
    );
    // The instances directory exists before the server starts, as on a server in use: one
    // made just before the drop would add the watcher's wait for a new directory (`QUIET`,
    // 100 ms) to the burst.
    fs::create_dir_all(dir.path().join("instances")).unwrap();
    let server = TestServer::start(dir.path());
    std::thread::sleep(Duration::from_secs(1));
    let empty_rss = status_kb(server.pid(), "VmRSS:");
    let empty_cpu = idle_cpu_percent(server.pid(), Duration::from_secs(10));

    let staged = dir.path().join("staged/web");
    fs::create_dir_all(&staged).unwrap();
    for n in 0..MASS {
        fs::write(staged.join(format!("t{n:04}.toml")), "").unwrap();
    }
    let (ten_cpu_before, spawner_cpu_before) =
        (cpu_seconds(server.pid()), spawner_cpu_seconds(server.pid()));
    let skipped = Arc::new(AtomicBool::new(false));
    let events = healthy_from_events(&server, MASS, Arc::clone(&skipped));
    let dropped = Instant::now();
    fs::rename(&staged, dir.path().join("instances/web")).unwrap();
    // Waits for the events; polls every 200 ms once they skipped some or ended, and once more
    // at the end to confirm.
    let mut following = true;
    loop {
        if following {
            match events.recv_timeout(Duration::from_millis(200)) {
                Ok(true) => following = false,
                Ok(false) | Err(mpsc::RecvTimeoutError::Disconnected) => following = false,
                Err(mpsc::RecvTimeoutError::Timeout) if !skipped.load(Ordering::Relaxed) => {
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
        }
        let response = api_get(&server, "/api/instances");
        let healthy = response.matches("\"health\":\"healthy\"").count();
        if healthy == MASS {
            break;
        }
        assert!(
            dropped.elapsed() < Duration::from_secs(300),
            "only {healthy} healthy after 5 minutes"
        );
        if !following {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let all_healthy = dropped.elapsed();
    let ten_cpu = cpu_seconds(server.pid()) - ten_cpu_before;
    let spawner_cpu = spawner_cpu_seconds(server.pid()) - spawner_cpu_before;
    let metrics = api_get(&server, "/metrics");
    let counter = |name: &str| {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or("?")
            .to_string()
    };
    let (spawns, forks) = (
        counter("ten_spawns_total"),
        counter("ten_spawn_forks_total"),
    );
    std::thread::sleep(Duration::from_secs(2));
    let rss = status_kb(server.pid(), "VmRSS:");
    let cpu = idle_cpu_percent(server.pid(), Duration::from_secs(10));
    let tenant_rss: u64 = serde_json::from_str::<Vec<ten::api::types::InstanceView>>(&api_get(
        &server,
        "/api/instances",
    ))
    .unwrap()
    .iter()
    .filter_map(|view| view.pid)
    .map(|pid| status_kb(pid, "VmRSS:"))
    .sum();
    drop(server);
    wait_ports_free(low);
    let shell_after = start_from_shell(low);
    let shell = (shell_before + shell_after) / 2;

    println!("2. {MASS} instance files dropped at once (a directory renamed into place)");
    println!(
        "   baseline: {MASS} backends from a shell loop, all accepting: {:8.1} ms (mean of {:.1} before and {:.1} after ten)",
        ms(shell),
        ms(shell_before),
        ms(shell_after)
    );
    println!(
        "   baseline: {MASS} backends started directly, all accepting:  {:8.1} ms",
        ms(direct)
    );
    println!(
        "   ten: files dropped -> all {MASS} healthy (a cgroup each):    {:8.1} ms ({:.2}x the shell loop, {:.2}x direct)",
        ms(all_healthy),
        ms(all_healthy) / ms(shell),
        ms(all_healthy) / ms(direct)
    );
    if skipped.load(Ordering::Relaxed) {
        println!(
            "   (ten's event stream skipped events during the burst; /api/instances was also polled every 200 ms)"
        );
    }
    println!(
        "   CPU during the burst: ten {ten_cpu:.2} s, its spawners {spawner_cpu:.2} s ({:.2} ms and {:.2} ms per tenant); {spawns} spawns, {forks} of them by forking ten",
        ten_cpu * 1000.0 / MASS as f64,
        spawner_cpu * 1000.0 / MASS as f64
    );
    println!(
        "   ten serve RSS: {:.1} MiB with {MASS} tenants, {:.1} MiB with none ({:.2}x; {:.1} KiB per tenant)",
        rss as f64 / 1024.0,
        empty_rss as f64 / 1024.0,
        rss as f64 / empty_rss as f64,
        (rss - empty_rss) as f64 / MASS as f64
    );
    println!(
        "   ten serve idle CPU over 10 s: {cpu:.2}% of a core with {MASS} tenants (a health check each every 10 s), {empty_cpu:.2}% with none"
    );
    println!(
        "   tenants: {:.1} MiB RSS in all, {:.2} MiB each",
        tenant_rss as f64 / 1024.0,
        tenant_rss as f64 / 1024.0 / MASS as f64
    );
}

fn main() {
    support::server::build_backend();
    mass_start();
}
