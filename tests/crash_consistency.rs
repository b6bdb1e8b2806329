//! Crash consistency on the real binary: a ten killed with -9 while it starts a burst never
//! leaves a tenant running twice or unknown, SIGTERM during a burst leaves no process behind,
//! and a full data directory is told to the operator and never lets a tenant run unrecorded.
//!
//! Tenants are found by what they are, not by what ten says: a process whose environment
//! carries this test's mark, and its `TENANT`.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::server::{
    TenantGuard, TestServer, backend_service, cgroup_dir, cgroup_parents, stderr, within,
};
use ten::observed::Phase;

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A service of the test backend whose processes carry `mark` and their id in their
/// environment.
fn marked_service(mark: &str, extra: &str) -> String {
    format!(
        "{}\n[service.web.env]\nTEST_MARK = \"{mark}\"\nTENANT = \"{{id}}\"\n",
        backend_service("web", extra)
    )
}

/// A project with `settings` and `services`, and 250 ports of its own below the ephemeral
/// range (other tests take theirs from 20000 up).
fn project(settings: &str, services: &str) -> tempfile::TempDir {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let slot = NEXT.fetch_add(1, Ordering::SeqCst) % 4;
    let low = 10000 + (std::process::id() % 10) as u16 * 1000 + slot * 250;
    let dir = tempfile::tempdir().unwrap();
    support::write_file(
        &dir.path().join("tenement.toml"),
        &format!(
            "[settings]\nport_range = [{low}, {}]\nhealth_check_interval = 1\n{settings}\n\n{services}",
            low + 249
        ),
    );
    dir
}

/// A mark no other test (or run) uses.
fn new_mark() -> String {
    format!(
        "m{}x{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos() ^ u128::from(rand_seed())
    )
}

fn rand_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// A small random generator (xorshift), seeded and reported, so a failing round can be told.
struct Random(u64);

impl Random {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }
}

/// Live processes with `mark` in their environment: pid → (TENANT, PORT, ppid).
fn marked(mark: &str) -> BTreeMap<u32, (String, String, u32)> {
    let needle = format!("TEST_MARK={mark}");
    let mut found = BTreeMap::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(environ) = fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        let vars: Vec<String> = environ
            .split(|byte| *byte == 0)
            .map(|var| String::from_utf8_lossy(var).into_owned())
            .collect();
        if !vars.contains(&needle) {
            continue;
        }
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let mut after = stat.rsplit_once(')').unwrap().1.split_whitespace();
        let state = after.next().unwrap_or("");
        if state == "Z" {
            continue;
        }
        let ppid: u32 = after.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        let var = |name: &str| {
            vars.iter()
                .find_map(|var| var.strip_prefix(&format!("{name}=")).map(str::to_string))
                .unwrap_or_default()
        };
        found.insert(pid, (var("TENANT"), var("PORT"), ppid));
    }
    found
}

/// Kills every marked process (whatever happens to the test).
struct MarkGuard(String);

impl Drop for MarkGuard {
    fn drop(&mut self) {
        for pid in marked(&self.0).keys() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(*pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// The non-empty cgroups under this data directory's cgroup `parent` (as root) that hold
/// something other than a spare waiting to become a tenant.
fn busy_cgroups(parent: &Path) -> usize {
    let is_spare = |pid: &str| {
        fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|cmdline| cmdline.split(|byte| *byte == 0).nth(1) == Some(b"__spare"))
    };
    fs::read_dir(parent)
        .map(|listing| {
            listing
                .flatten()
                .filter(|entry| entry.path().is_dir())
                .filter(|entry| {
                    fs::read_to_string(entry.path().join("cgroup.procs")).is_ok_and(|procs| {
                        let pids: Vec<&str> = procs.lines().collect();
                        !pids.is_empty() && !pids.iter().all(|pid| is_spare(pid))
                    })
                })
                .count()
        })
        .unwrap_or(0)
}

/// Every process in the cgroups ten makes for the data directory `data_dir`, in any
/// hierarchy.
fn processes_in_cgroups(data_dir: &Path) -> Vec<(PathBuf, String)> {
    let mut found = Vec::new();
    for parent in cgroup_parents(data_dir) {
        let Ok(listing) = fs::read_dir(&parent) else {
            continue;
        };
        for entry in listing.flatten().filter(|entry| entry.path().is_dir()) {
            let procs = fs::read_to_string(entry.path().join("cgroup.procs")).unwrap_or_default();
            if !procs.trim().is_empty() {
                found.push((entry.path(), procs.trim().replace('\n', " ")));
            }
        }
    }
    found
}

fn write_instances(dir: &Path, ids: &[String]) {
    let service_dir = dir.join("instances/web");
    fs::create_dir_all(&service_dir).unwrap();
    for id in ids {
        fs::write(service_dir.join(format!("{id}.toml")), "").unwrap();
    }
}

fn remove_instances(dir: &Path) {
    let _ = fs::remove_dir_all(dir.join("instances/web"));
}

/// What is wrong with the marked processes against the declared `ids`: an id with no
/// process or two, a process for an undeclared id, two sharing a port.
fn anomalies(mark: &str, ids: &BTreeSet<String>) -> Vec<String> {
    let processes = marked(mark);
    let mut by_tenant: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    let mut by_port: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for (pid, (tenant, port, _)) in &processes {
        by_tenant.entry(tenant).or_default().push(*pid);
        by_port.entry(port).or_default().push(*pid);
    }
    let mut problems = Vec::new();
    for id in ids {
        match by_tenant.get(id.as_str()).map(Vec::len) {
            Some(1) => {}
            Some(n) => problems.push(format!("{id} runs {n} times: {:?}", by_tenant[id.as_str()])),
            None => problems.push(format!("{id} does not run")),
        }
    }
    for (tenant, pids) in &by_tenant {
        if !ids.contains(*tenant) {
            problems.push(format!("undeclared {tenant} runs: {pids:?}"));
        }
    }
    for (port, pids) in &by_port {
        if pids.len() > 1 {
            problems.push(format!("port {port} is shared by {pids:?}"));
        }
    }
    problems
}

#[test]
fn kill_9_during_a_burst_of_100_starts_never_leaves_a_tenant_twice_or_unknown() {
    const ROUNDS: usize = 20;
    const BURST: usize = 100;
    let mark = new_mark();
    let _guard = MarkGuard(mark.clone());
    let seed = rand_seed() | 1;
    let mut random = Random(seed);
    let project = project("max_destroy_percent = 100", &marked_service(&mark, ""));
    let dir = project.path();
    let mut server = TestServer::start(dir);
    let mut guards: Vec<TenantGuard> = Vec::new();
    let mut report = Vec::new();
    let mut cgroup_parent: Option<PathBuf> = None;
    for round in 0..ROUNDS {
        remove_instances(dir);
        let ids: BTreeSet<String> = (0..BURST).map(|i| format!("r{round}-{i}")).collect();
        let ids_list: Vec<String> = ids.iter().cloned().collect();
        write_instances(dir, &ids_list);
        let kill_after = Duration::from_millis(random.below(2000));
        std::thread::sleep(kill_after);
        guards.push(server.kill_hard());
        server = TestServer::start(dir);
        let converged = within(Duration::from_secs(60), || {
            let views = server.ps();
            views.len() == BURST
                && views
                    .iter()
                    .all(|v| v.phase == Phase::Running && ids.contains(v.instance.id.as_str()))
        });
        assert!(
            converged,
            "round {round} (seed {seed}, killed after {kill_after:?}): no convergence\n{}",
            server.log()
        );
        let problems = anomalies(&mark, &ids);
        let by_cgroup = if is_root() {
            let pid = server.ps()[0].pid.unwrap();
            let parent = cgroup_parent
                .get_or_insert_with(|| cgroup_dir(pid, "memory").parent().unwrap().to_path_buf())
                .clone();
            Some(busy_cgroups(&parent))
        } else {
            None
        };
        report.push(format!(
            "round {round}: killed after {kill_after:?}, {} anomalies, {by_cgroup:?} busy cgroups",
            problems.len()
        ));
        assert!(
            problems.is_empty(),
            "round {round} (seed {seed}, killed after {kill_after:?}): {problems:#?}\n{}",
            server.log()
        );
        if let Some(busy) = by_cgroup {
            assert_eq!(busy, BURST, "round {round}: one busy cgroup per tenant");
        }
    }
    eprintln!(
        "{ROUNDS} rounds of {BURST} starts, ten killed with -9 within 2 s of each (seed {seed}):\n{}",
        report.join("\n")
    );
    server.stop();
    assert!(
        within(Duration::from_secs(10), || marked(&mark).is_empty()),
        "tenants left after the last stop: {:?}",
        marked(&mark)
    );
    if is_root() {
        // The cgroups of the killed tens' starts were all found and removed, in every
        // hierarchy: nothing of this data directory is left once the last ten stopped.
        let data = dir.join("tenement-data");
        let left = || {
            cgroup_parents(&data)
                .into_iter()
                .map(|parent| {
                    let children = fs::read_dir(&parent)
                        .map(|listing| listing.flatten().filter(|e| e.path().is_dir()).count())
                        .unwrap_or(0);
                    format!("{} ({children} cgroups in it)", parent.display())
                })
                .collect::<Vec<_>>()
        };
        assert!(
            within(Duration::from_secs(10), || left().is_empty()),
            "cgroups left after the last stop: {:#?}",
            left()
        );
    }
}

#[test]
fn sigterm_during_a_burst_of_50_starts_leaves_no_process_behind() {
    let mark = new_mark();
    let _guard = MarkGuard(mark.clone());
    let seed = rand_seed() | 1;
    let mut random = Random(seed);
    for round in 0..8 {
        let project = project("", &marked_service(&mark, ""));
        let dir = project.path();
        let mut server = TestServer::start(dir);
        let ids: Vec<String> = (0..50).map(|i| format!("s{round}-{i}")).collect();
        write_instances(dir, &ids);
        // SIGTERM at a random moment once the burst has begun.
        assert!(
            within(Duration::from_secs(10), || server
                .log()
                .contains("creating on port")),
            "round {round}: the burst does not begin\n{}",
            server.log()
        );
        let after = Duration::from_millis(random.below(150));
        std::thread::sleep(after);
        let status = server.stop();
        assert!(
            status.success(),
            "round {round}: ten exited with {status:?}"
        );

        let left = marked(&mark);
        assert!(
            left.is_empty(),
            "round {round} (SIGTERM after {after:?}, seed {seed}): processes left behind: {left:?}\n{}",
            server.log()
        );
        if is_root() {
            let left = processes_in_cgroups(&dir.join("tenement-data"));
            assert!(
                left.is_empty(),
                "round {round}: processes left in ten's cgroups: {left:?}"
            );
        }
        let table = dir.join("tenement-data/.ten/processes");
        let entries: Vec<_> = fs::read_dir(&table)
            .map(|listing| listing.flatten().map(|entry| entry.file_name()).collect())
            .unwrap_or_default();
        assert!(
            entries.is_empty(),
            "round {round}: entries left: {entries:?}"
        );
    }
}

/// ten's metrics, with the admin token of the data directory `dir/data`.
fn scrape(server: &TestServer, dir: &Path) -> support::http::Response {
    let token = fs::read_to_string(dir.join("data/api_token")).unwrap();
    support::http::Request::get("/metrics")
        .bearer(token.trim())
        .send(server.address())
}

/// A tmpfs of `size` mounted at `path` (root only), unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Tmpfs {
        fs::create_dir_all(path).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success(), "mount a tmpfs at {}", path.display());
        Tmpfs(path.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Fills the file system of `dir` with a file `filler` until a write fails.
fn fill(filler: &Path) {
    use std::io::Write;
    let mut file = fs::File::create(filler).unwrap();
    let block = vec![7u8; 64 * 1024];
    while file.write_all(&block).is_ok() {}
    let _ = file.sync_all();
    // Whatever a block did not take: byte by byte.
    while file.write_all(&[7]).is_ok() && file.flush().is_ok() {}
}

#[test]
fn a_full_data_directory_is_told_and_no_tenant_runs_unrecorded() {
    assert!(
        is_root(),
        "mounting a small tmpfs needs root (CI runs as root)"
    );
    let mark = new_mark();
    let _guard = MarkGuard(mark.clone());
    let project = project(
        "data_dir = \"data\"",
        &marked_service(&mark, "restart = \"always\""),
    );
    let dir = project.path();
    let _tmpfs = Tmpfs::mount(&dir.join("data"), "4m");
    let first: Vec<String> = (0..3).map(|i| format!("a{i}")).collect();
    write_instances(dir, &first);
    let server = TestServer::start(dir);
    for id in &first {
        server.wait_running(&format!("web:{id}"));
    }
    // The disk fills up; then more tenants are declared.
    let filler = dir.join("data/filler");
    fill(&filler);
    let more: Vec<String> = (0..3).map(|i| format!("b{i}")).collect();
    write_instances(dir, &more);
    let mut warnings = String::new();
    let told = within(Duration::from_secs(20), || {
        let output = server.ten(&["ps"]);
        warnings = stderr(&output);
        warnings.contains("cannot write the process table")
    });
    assert!(told, "ten ps does not tell: {warnings}\n{}", server.log());
    // The event follows once the failed start has come back to the reconciler.
    let mut events = String::new();
    let evented = within(Duration::from_secs(20), || {
        events = support::server::stdout(&server.ten(&["events"]));
        events.contains("cannot write the process table")
    });
    assert!(evented, "{events}\n{}", server.log());
    let metrics = scrape(&server, dir);
    assert!(
        metrics
            .body
            .contains("ten_durable_write_failing{file=\"process_table\"} 1"),
        "{}",
        metrics.body
    );
    // No b tenant runs unrecorded: none runs at all while nothing can be noted.
    let running: BTreeSet<String> = marked(&mark).values().map(|(t, _, _)| t.clone()).collect();
    assert!(
        running.iter().all(|tenant| tenant.starts_with('a')),
        "tenants run that could not be noted: {running:?}"
    );
    // kill -9, restart on the still full disk: exactly one copy of each a, no b.
    let guard = server.kill_hard();
    let server = TestServer::start(dir);
    let declared_a: BTreeSet<String> = first.iter().cloned().collect();
    std::thread::sleep(Duration::from_secs(2));
    let processes = marked(&mark);
    let mut copies: BTreeMap<String, usize> = BTreeMap::new();
    for (tenant, _, _) in processes.values() {
        *copies.entry(tenant.clone()).or_default() += 1;
    }
    for id in &declared_a {
        assert_eq!(
            copies.get(id),
            Some(&1),
            "{id}: {processes:?}\n{}",
            server.log()
        );
    }
    assert!(
        copies.keys().all(|tenant| declared_a.contains(tenant)),
        "{copies:?}"
    );
    // Space comes back: the b tenants start, each noted, and the warning goes.
    fs::remove_file(&filler).unwrap();
    for id in &more {
        server.wait_running(&format!("web:{id}"));
    }
    let ok = within(Duration::from_secs(20), || {
        !stderr(&server.ten(&["ps"])).contains("cannot write")
    });
    assert!(ok, "{}", stderr(&server.ten(&["ps"])));
    let metrics = scrape(&server, dir);
    assert!(
        metrics
            .body
            .contains("ten_durable_write_failing{file=\"process_table\"} 0"),
        "{}",
        metrics.body
    );
    let table = dir.join("data/.ten/processes");
    let noted: BTreeSet<String> = fs::read_dir(&table)
        .unwrap()
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    for id in first.iter().chain(&more) {
        assert!(
            noted
                .iter()
                .any(|name| name.starts_with(&format!("web.{id}."))),
            "{id} has no entry: {noted:?}"
        );
    }
    drop(guard);
}
