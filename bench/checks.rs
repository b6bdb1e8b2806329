//! Command checks do not hold up a wake: the wake latency of an HTTP tenant, measured while
//! 200 workers are each checked by a command every second (200 processes a second started
//! for ten), against the same with no other tenant, and against the same 200 commands a
//! second started by another process (the cost of running them at all, on a small box), in
//! turns in one run.
//!
//! `cargo bench --bench checks`

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use support::server::{TestServer, backend_service, median, project, timed_get};
use ten::observed::Phase;

/// Workers checked by a command, in the "with" rounds.
const WORKERS: u32 = 200;
/// Wakes per round.
const WAKES: usize = 10;
/// Rounds of each kind, in turns.
const ROUNDS: usize = 5;

fn config(workers: u32) -> String {
    format!(
        "{}\n[service.worker]\ncommand = \"sleep 3600\"\nlisten = \"none\"\nstop_timeout = 1\nhealth_check = {{ exec = [\"true\"] }}\nhealth_interval = 1\n\n[instances]\nsleepy = [\"a\"]\nworker = {{ count = {workers} }}\n",
        backend_service("sleepy", "idle_timeout = 1")
    )
}

/// `WAKES` wakes of the sleepy tenant, each once it is asleep again.
fn wakes(server: &TestServer, address: &str) -> Vec<Duration> {
    (0..WAKES)
        .map(|_| {
            server.wait_until("asleep", |views| {
                views
                    .iter()
                    .any(|v| v.instance.to_string() == "sleepy:a" && v.phase == Phase::Sleeping)
            });
            timed_get(address, "a.sleepy.localhost")
        })
        .collect()
}

/// Declares `workers` checked workers and waits until they run.
fn set_workers(server: &TestServer, dir: &std::path::Path, workers: u32) {
    let path = dir.join("tenement.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let start = text.find("[settings]").unwrap();
    let settings_end = text[start..]
        .find("\n\n")
        .map_or(text.len(), |end| start + end);
    let next = format!("{}\n\n{}", &text[..settings_end], config(workers));
    std::fs::write(&path, next).unwrap();
    server.wait_until("the workers run", |views| {
        let running = views
            .iter()
            .filter(|v| v.service == "worker" && v.phase == Phase::Running)
            .count();
        let declared = views.iter().filter(|v| v.service == "worker").count();
        running as u32 == workers && declared as u32 == workers
    });
}

/// CPU seconds of ten itself and of its reaped children (the checks, the tenants) so far,
/// from `/proc/PID/stat`.
fn cpu(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command name, which is in parentheses.
    let fields: Vec<f64> = stat[stat.rfind(')').unwrap() + 2..]
        .split_whitespace()
        .map(|field| field.parse().unwrap_or(0.0))
        .collect();
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { nix::libc::sysconf(nix::libc::_SC_CLK_TCK) } as f64;
    // utime, stime, cutime, cstime are fields 14 to 17 (11 to 14 after the state).
    (
        (fields[11] + fields[12]) / ticks,
        (fields[13] + fields[14]) / ticks,
    )
}

/// `WORKERS` runs of `/bin/true` a second, evenly spread, started by this process (not ten)
/// until dropped; `cpu_micros` is what they took.
struct Load {
    stop: Arc<AtomicBool>,
    cpu_micros: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start() -> Load {
        let (stop, cpu_micros) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicU64::new(0)),
        );
        let (stopping, counted) = (Arc::clone(&stop), Arc::clone(&cpu_micros));
        let thread = std::thread::spawn(move || {
            let gap = Duration::from_secs(1) / WORKERS;
            let mut next = std::time::Instant::now();
            while !stopping.load(Ordering::Relaxed) {
                // Waited for by `wait_cpu_micros`, which also gets its CPU time.
                #[allow(clippy::zombie_processes)]
                let child = std::process::Command::new("/bin/true").spawn().unwrap();
                counted.fetch_add(wait_cpu_micros(child.id()), Ordering::Relaxed);
                next += gap;
                std::thread::sleep(next.saturating_duration_since(std::time::Instant::now()));
            }
        });
        Load {
            stop,
            cpu_micros,
            thread: Some(thread),
        }
    }
}

/// Waits for the child `pid` and returns the CPU it used, in microseconds.
fn wait_cpu_micros(pid: u32) -> u64 {
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it in.
    let mut usage: nix::libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, with pointers to live locals.
    unsafe { nix::libc::wait4(pid as i32, &mut status, 0, &mut usage) };
    let micros = |time: nix::libc::timeval| time.tv_sec as u64 * 1_000_000 + time.tv_usec as u64;
    micros(usage.ru_utime) + micros(usage.ru_stime)
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What one kind of round measured.
#[derive(Default)]
struct Rounds {
    wakes: Vec<Duration>,
    wall: Duration,
    ten_cpu: f64,
    /// Of ten's children (checks, tenants) and of the load's commands.
    children_cpu: f64,
}

impl Rounds {
    /// Measures `WAKES` wakes, and the CPU meanwhile of ten, its children and `load`'s.
    fn measure(&mut self, server: &TestServer, address: &str, load: Option<&Load>) {
        let loaded = || {
            load.map_or(0.0, |load| {
                load.cpu_micros.load(Ordering::Relaxed) as f64 / 1e6
            })
        };
        let (ten, children, others) = (cpu(server.pid()).0, cpu(server.pid()).1, loaded());
        let started = std::time::Instant::now();
        self.wakes.extend(wakes(server, address));
        self.wall += started.elapsed();
        let (ten_after, children_after) = cpu(server.pid());
        self.ten_cpu += ten_after - ten;
        self.children_cpu += children_after - children + loaded() - others;
    }

    fn report(&self, label: &str, baseline: Option<&Rounds>) {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let mut wakes = self.wakes.clone();
        wakes.sort();
        let p50 = ms(median(wakes.clone()));
        let p90 = ms(wakes[wakes.len() * 9 / 10]);
        let ratio = baseline.map_or(String::new(), |base| {
            format!(" ({:.2}x)", p50 / ms(median(base.wakes.clone())))
        });
        let seconds = self.wall.as_secs_f64();
        println!(
            "   {label:<52} p50 {p50:6.2} ms{ratio:<8} p90 {p90:6.2} ms   CPU: ten {:5.1} %, the commands and tenants {:5.1} % of a core",
            self.ten_cpu / seconds * 100.0,
            self.children_cpu / seconds * 100.0,
        );
    }
}

fn main() {
    support::server::build_backend();
    let dir = project("max_destroy_percent = 100\n", &config(0), &[]);
    let server = TestServer::start(dir.path());
    server.wait_running("sleepy:a");
    let address = server.url.trim_start_matches("http://").to_string();
    let (mut alone, mut checked, mut loaded) =
        (Rounds::default(), Rounds::default(), Rounds::default());
    for _ in 0..ROUNDS {
        set_workers(&server, dir.path(), 0);
        alone.measure(&server, &address, None);
        let load = Load::start();
        loaded.measure(&server, &address, Some(&load));
        drop(load);
        set_workers(&server, dir.path(), WORKERS);
        checked.measure(&server, &address, None);
    }
    println!(
        "wake latency of an HTTP tenant ({} wakes each, {ROUNDS} rounds in turns), and CPU meanwhile",
        WAKES * ROUNDS
    );
    alone.report("no other tenant:", None);
    loaded.report(
        &format!("{WORKERS} runs of /bin/true a second, started by another process:"),
        Some(&alone),
    );
    checked.report(
        &format!("{WORKERS} workers, each checked by a command every 1 s:"),
        Some(&alone),
    );
    let ms = |rounds: &Rounds| median(rounds.wakes.clone()).as_secs_f64() * 1000.0;
    println!(
        "   checks through ten vs the same commands started elsewhere: {:.2}x",
        ms(&checked) / ms(&loaded)
    );
}
