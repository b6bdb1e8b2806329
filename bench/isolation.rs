//! Benchmark of the isolation levels (issue #6), all in one run: one `ten serve` with three
//! services that run the same app (the probe, `testdata/apps/probe.py`, under
//! `/usr/bin/python3`) and differ only in `isolation` = `process`, `namespace`, `sandbox`.
//!
//! 1. Spawn to healthy, for 10 (`INSTANCES`) instances of each level spawned one at a time with
//!    `ten spawn` (levels taken in turn, so each sees the same load), after one warm-up
//!    instance per level that is not counted:
//!    - ten's own figure, the event "healthy after T" (from the process spawned to the
//!      first good health probe; probes run every 1–10 ms until then);
//!    - cross-checks: the same span from the events' timestamps, the span from the `create`
//!      event (before the cgroup, the namespace shim or the OCI bundle exist) to healthy,
//!      and the wall time of `ten spawn S:ID` (it returns once the instance is healthy);
//!    - a floor: the app started directly, from exec to its first `GET /health` answered.
//! 2. Memory, with the instances of every level running and idle, per instance:
//!    - the sum of VmRSS of every process in its cgroup (a shared page counts once per
//!      process that maps it: the runsc binary in three processes, gVisor's application
//!      memory in the sentry and in a stub);
//!    - the cgroup's own charge (`memory.usage_in_bytes` on v1, `memory.current` on v2;
//!      anonymous memory, shmem and the page cache this instance was first to read, so not
//!      the python3 or runsc files an earlier process read);
//!    - the sum of PSS (`/proc/PID/smaps_rollup`: each shared page split between the
//!      processes that map it, here or elsewhere).
//!
//! `ten serve` itself is in none of the memory figures. MB = 2^20 bytes. Ratios are against
//! `process`; medians and p90 are nearest-rank. Needs root (namespaces,
//! cgroups, runsc) and runsc on PATH. Run with `cargo bench --bench isolation`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::http::Request;
use support::server::{TestServer, cgroup_dir, port_range, project, stderr, wait_gone};
use ten::api::types::{Event, InstanceView};
use ten::observed::{Health, Phase};

const INSTANCES: usize = 10;
const LEVELS: [&str; 3] = ["process", "namespace", "sandbox"];
const PYTHON: &str = "/usr/bin/python3";

fn probe() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/apps/probe.py")
}

/// The service of one level: the service is named after its isolation.
fn service(level: &str) -> String {
    format!(
        "[service.{level}]\ncommand = \"{PYTHON} {}\"\nhealth = \"/health\"\nisolation = \"{level}\"\nstartup_timeout = 30\nstop_timeout = 2\n\n[service.{level}.env]\nDATA_DIR = \"{{data_dir}}/{{name}}/{{id}}\"\n",
        probe().display()
    )
}

/// The value at `fraction` of the sorted `values` (nearest rank).
fn percentile(values: &[f64], fraction: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((fraction * sorted.len() as f64).ceil() as usize).max(1);
    sorted[rank - 1]
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Whether `GET /health` on 127.0.0.1:`port` answers 200 (a refused connection is a no).
fn answers(port: u16) -> bool {
    Request::get("/health")
        .try_send(("127.0.0.1", port))
        .is_ok_and(|response| response.status == 200)
}

/// A process started by the bench, killed when dropped (a failed run leaves nothing behind).
struct Direct(Child);

impl Drop for Direct {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The app's own time from exec to its first `GET /health` answered, started directly with
/// the environment ten would give it.
fn app_start(port: u16, data_dir: &Path) -> Duration {
    let started = Instant::now();
    let _app = Direct(
        Command::new(PYTHON)
            .arg(probe())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", std::env::var("HOME").unwrap_or_else(|_| "/".into()))
            .env("LANG", "C.UTF-8")
            .env("PORT", port.to_string())
            .env("DATA_DIR", data_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start python3 probe.py"),
    );
    while !answers(port) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "python3 probe.py did not answer on port {port} within 30 s"
        );
        std::thread::sleep(Duration::from_micros(200));
    }
    started.elapsed()
}

/// One instance's spawn, in ms.
struct Spawn {
    /// The number in ten's event "healthy after T".
    healthy_after: f64,
    /// The "started (pid N)" event to the "healthy after" event, by their timestamps.
    started_to_healthy: f64,
    /// The `create` event to the "healthy after" event, by their timestamps.
    create_to_healthy: f64,
    /// `ten spawn S:ID`, call to return.
    wall: f64,
}

/// Runs `ten spawn key` and returns how long it took; panics with the reason if it failed.
fn spawn(server: &TestServer, key: &str) -> f64 {
    let started = Instant::now();
    let output = server.ten(&["spawn", key]);
    let wall = ms(started.elapsed());
    assert!(
        output.status.success(),
        "ten spawn {key} failed: {}\nserver log:\n{}",
        stderr(&output),
        server.log()
    );
    wall
}

fn events(server: &TestServer) -> Vec<Event> {
    let output = server.ten(&["events", "--json", "--limit", "5000"]);
    assert!(output.status.success(), "{}", stderr(&output));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// The timings of `key` from the event log, with `wall` from the bench.
fn spawn_timings(events: &[Event], key: &str, wall: f64) -> Spawn {
    let of_key: Vec<&Event> = events
        .iter()
        .filter(|event| {
            event
                .instance
                .as_ref()
                .is_some_and(|i| i.to_string() == key)
        })
        .collect();
    let find = |what: &str, matches: &dyn Fn(&Event) -> bool| -> &Event {
        of_key
            .iter()
            .copied()
            .find(|event| matches(event))
            .unwrap_or_else(|| panic!("no {what} event for {key}: {of_key:#?}"))
    };
    let create = find("create", &|event| &*event.action == "create");
    let started = find("started", &|event| {
        event.message.starts_with("started (pid")
    });
    let healthy = find("healthy", &|event| {
        event.message.starts_with("healthy after ")
    });
    let after = healthy.message.trim_start_matches("healthy after ");
    let healthy_after = humantime::parse_duration(after)
        .unwrap_or_else(|error| panic!("{:?}: {error}", healthy.message));
    let since = |event: &Event| healthy.at_unix_ms.saturating_sub(event.at_unix_ms) as f64;
    Spawn {
        healthy_after: ms(healthy_after),
        started_to_healthy: since(started),
        create_to_healthy: since(create),
        wall,
    }
}

/// The value of `key` (in kB) in `/proc/PID/file`, in bytes (0 for a process without
/// memory, or gone).
fn proc_kb(pid: u32, file: &str, key: &str) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/{file}"))
        .unwrap_or_default()
        .lines()
        .find_map(|line| {
            line.strip_prefix(key)
                .and_then(|rest| rest.trim().trim_end_matches(" kB").trim().parse().ok())
        })
        .map_or(0, |kb: u64| kb * 1024)
}

/// What a process is: its argv[0] (runsc's children name themselves `runsc-gofer`, ...), or
/// its comm when argv is empty (gVisor's stubs).
fn process_name(pid: u32) -> String {
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let first = cmdline.split(|&byte| byte == 0).next().unwrap_or_default();
    let name = String::from_utf8_lossy(first);
    match name.rsplit('/').next() {
        Some(base) if !base.is_empty() => base.to_string(),
        _ => fs::read_to_string(format!("/proc/{pid}/comm"))
            .map(|comm| format!("({})", comm.trim()))
            .unwrap_or_default(),
    }
}

/// One process of an instance.
struct Member {
    pid: u32,
    name: String,
    rss_bytes: u64,
    pss_bytes: u64,
}

/// One running instance's memory.
struct Memory {
    members: Vec<Member>,
    cgroup_bytes: u64,
    /// The parent of its cgroup (`.../ten/<hex>`, the data directory's) in the pids hierarchy.
    parent: PathBuf,
}

impl Memory {
    fn rss_bytes(&self) -> u64 {
        self.members.iter().map(|member| member.rss_bytes).sum()
    }

    fn pss_bytes(&self) -> u64 {
        self.members.iter().map(|member| member.pss_bytes).sum()
    }
}

fn instance_memory(pid: u32) -> Memory {
    let pids = cgroup_dir(pid, "pids");
    assert!(
        pids.to_string_lossy().contains("/ten/"),
        "pid {pid} is not in a cgroup of ten's: {}",
        pids.display()
    );
    let members: Vec<Member> = fs::read_to_string(pids.join("cgroup.procs"))
        .unwrap()
        .lines()
        .filter_map(|line| line.parse().ok())
        .map(|member| Member {
            pid: member,
            name: process_name(member),
            rss_bytes: proc_kb(member, "status", "VmRSS:"),
            pss_bytes: proc_kb(member, "smaps_rollup", "Pss:"),
        })
        .collect();
    assert!(
        members.iter().any(|member| member.pid == pid),
        "{pid} is not in its cgroup {}",
        pids.display()
    );
    let memory = cgroup_dir(pid, "memory");
    let charged = fs::read_to_string(memory.join("memory.usage_in_bytes"))
        .or_else(|_| fs::read_to_string(memory.join("memory.current")))
        .unwrap_or_else(|error| panic!("memory of {}: {error}", memory.display()));
    Memory {
        members,
        cgroup_bytes: charged.trim().parse().unwrap(),
        parent: pids.parent().unwrap().to_path_buf(),
    }
}

/// What one level measured.
struct Level {
    name: &'static str,
    spawns: Vec<Spawn>,
    memory: Vec<Memory>,
}

impl Level {
    fn spawn_figure(&self, figure: fn(&Spawn) -> f64) -> Vec<f64> {
        self.spawns.iter().map(figure).collect()
    }

    fn mean_mb(&self, figure: fn(&Memory) -> u64) -> f64 {
        let total: u64 = self.memory.iter().map(figure).sum();
        total as f64 / self.memory.len() as f64 / (1024.0 * 1024.0)
    }

    fn processes(&self) -> f64 {
        let total: usize = self.memory.iter().map(|memory| memory.members.len()).sum();
        total as f64 / self.memory.len() as f64
    }

    /// The processes of its first instance: name and RSS / PSS in MB.
    fn composition(&self) -> String {
        let mb = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
        self.memory[0]
            .members
            .iter()
            .map(|member| {
                format!(
                    "{} {:.1}/{:.1}",
                    member.name,
                    mb(member.rss_bytes),
                    mb(member.pss_bytes)
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn key(level: &str, id: &str) -> String {
    format!("{level}:{id}")
}

fn print_report(app: &[f64], levels: &[Level]) {
    let base = &levels[0];
    let base_healthy = percentile(&base.spawn_figure(|s| s.healthy_after), 0.5);
    let base_rss = base.mean_mb(Memory::rss_bytes);
    let base_cgroup = base.mean_mb(|m| m.cgroup_bytes);
    let base_pss = base.mean_mb(Memory::pss_bytes);
    println!(
        "1. spawn -> healthy (ten's event \"healthy after\", {INSTANCES} per level) and memory per idle instance"
    );
    println!(
        "   {:<10} {:>10} {:>8} {:>7}   {:>8} {:>7}   {:>10} {:>7}   {:>8} {:>7}   {:>5}",
        "level",
        "median ms",
        "p90 ms",
        "ratio",
        "RSS MB",
        "ratio",
        "cgroup MB",
        "ratio",
        "PSS MB",
        "ratio",
        "procs"
    );
    for level in levels {
        let healthy = level.spawn_figure(|s| s.healthy_after);
        let median = percentile(&healthy, 0.5);
        let rss = level.mean_mb(Memory::rss_bytes);
        let cgroup = level.mean_mb(|m| m.cgroup_bytes);
        let pss = level.mean_mb(Memory::pss_bytes);
        println!(
            "   {:<10} {median:>10.1} {:>8.1} {:>7.2}   {rss:>8.1} {:>7.2}   {cgroup:>10.1} {:>7.2}   {pss:>8.1} {:>7.2}   {:>5.1}",
            level.name,
            percentile(&healthy, 0.9),
            median / base_healthy,
            rss / base_rss,
            cgroup / base_cgroup,
            pss / base_pss,
            level.processes(),
        );
    }
    let app_median = percentile(app, 0.5);
    println!(
        "   {:<10} {app_median:>10.1} {:>8.1} {:>7.2}   (python3 probe.py started directly: exec -> GET /health 200)",
        "app alone",
        percentile(app, 0.9),
        app_median / base_healthy,
    );

    println!("   the processes of one instance, RSS/PSS MB:");
    for level in levels {
        println!("   {:<10} {}", level.name, level.composition());
    }

    println!("2. cross-checks of the spawn, ms: median / p90 (ratio of medians to process)");
    println!(
        "   {:<10} {:>26} {:>26} {:>26}",
        "level", "started -> healthy", "create -> healthy", "`ten spawn` wall"
    );
    let figures: [fn(&Spawn) -> f64; 3] = [
        |s| s.started_to_healthy,
        |s| s.create_to_healthy,
        |s| s.wall,
    ];
    for level in levels {
        let cells: Vec<String> = figures
            .iter()
            .map(|&figure| {
                let values = level.spawn_figure(figure);
                let median = percentile(&values, 0.5);
                let base_median = percentile(&base.spawn_figure(figure), 0.5);
                format!(
                    "{median:.1} / {:.1} ({:.2})",
                    percentile(&values, 0.9),
                    median / base_median
                )
            })
            .collect();
        println!(
            "   {:<10} {:>26} {:>26} {:>26}",
            level.name, cells[0], cells[1], cells[2]
        );
    }
}

fn main() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the isolation benchmark needs root (namespaces, cgroups, runsc)"
    );

    // The floor: the app on its own, after one warm-up start.
    let direct_ports = port_range().0;
    let data_dir = tempfile::tempdir().unwrap();
    app_start(direct_ports, data_dir.path());
    let app: Vec<f64> = (1..=INSTANCES)
        .map(|n| ms(app_start(direct_ports + n as u16, data_dir.path())))
        .collect();

    let services: Vec<String> = LEVELS.iter().map(|level| service(level)).collect();
    let dir = project("", &services.join("\n"), &[]);
    let mut server = TestServer::start(dir.path());
    // One warm-up instance per level (page cache, runsc's first start), not counted.
    for level in LEVELS {
        spawn(&server, &key(level, "warm"));
    }
    let mut walls = vec![Vec::new(); LEVELS.len()];
    for n in 0..INSTANCES {
        for (index, level) in LEVELS.iter().enumerate() {
            walls[index].push(spawn(&server, &key(level, &format!("i{n}"))));
        }
    }
    let log = events(&server);

    // Idle: let the starts settle and a few health checks pass.
    std::thread::sleep(Duration::from_secs(3));
    let views: Vec<InstanceView> = server.ps();
    let mut levels: Vec<Level> = Vec::new();
    for (index, name) in LEVELS.into_iter().enumerate() {
        let mut spawns = Vec::new();
        let mut memory = Vec::new();
        for (n, wall) in walls[index].iter().enumerate() {
            let key = key(name, &format!("i{n}"));
            let view = views
                .iter()
                .find(|view| view.instance.to_string() == key)
                .unwrap_or_else(|| panic!("{key} is not listed"));
            assert!(
                view.phase == Phase::Running && view.health == Health::Healthy,
                "{key} is not running healthy while idle: {view:#?}"
            );
            spawns.push(spawn_timings(&log, &key, *wall));
            memory.push(instance_memory(view.pid.unwrap()));
        }
        levels.push(Level {
            name,
            spawns,
            memory,
        });
    }
    print_report(&app, &levels);

    // A clean end: ten stops every tenant, and no process of any cgroup is left.
    let members: Vec<u32> = levels
        .iter()
        .flat_map(|level| level.memory.iter())
        .flat_map(|memory| memory.members.iter().map(|member| member.pid))
        .collect();
    let parent = levels[0].memory[0].parent.clone();
    let status = server.stop();
    assert!(status.success(), "ten serve exited with {status}");
    let left: Vec<u32> = members.into_iter().filter(|&pid| !wait_gone(pid)).collect();
    assert!(left.is_empty(), "still running after ten stopped: {left:?}");
    remove_left_parent(&parent);
}

/// ten removes its data directory's cgroup parent (`ten/<hex>`) at shutdown when no tenant
/// cgroup is left in it. If the parent of this run's server is still there, says so and
/// removes it (in every hierarchy) when it is empty.
fn remove_left_parent(parent: &Path) {
    let dirs: Vec<PathBuf> = match parent.strip_prefix("/sys/fs/cgroup/pids") {
        Ok(name) => ["pids", "memory", "cpu", "cpuacct"]
            .iter()
            .map(|hierarchy| Path::new("/sys/fs/cgroup").join(hierarchy).join(name))
            .collect(),
        Err(_) => vec![parent.to_path_buf()],
    };
    for dir in dirs.iter().filter(|dir| dir.is_dir()) {
        let outcome = match fs::remove_dir(dir) {
            Ok(()) => "empty; removed by the bench".to_string(),
            Err(error) => format!("not removed: {error}"),
        };
        println!(
            "   note: ten left its cgroup parent {} after stopping ({outcome})",
            dir.display()
        );
    }
}
