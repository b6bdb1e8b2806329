//! Isolation and limits, each property shown from inside a tenant (the probe app,
//! `testdata/apps/probe.py`), through the real binary. These tests need root (CI runs as
//! root): namespaces, cgroups and runsc are root's.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use support::http::Request;
use support::server::{
    TestServer, alive, cgroup_dir, project, project_in, stderr, stdout, wait_gone, within,
};
use ten::api::types::InstanceView;
use ten::observed::{Health, Phase};

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the isolation tests need root (CI runs as root)"
    );
}

fn probe() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/apps/probe.py")
}

/// A service running the probe app with `extra` keys.
fn service(name: &str, extra: &str) -> String {
    format!(
        "[service.{name}]\ncommand = \"/usr/bin/python3 {}\"\nhealth = \"/health\"\nstop_timeout = 2\n{extra}\n\n[service.{name}.env]\nDATA_DIR = \"{{data_dir}}/{{name}}/{{id}}\"\n",
        probe().display()
    )
}

fn healthy(keys: &'static [&'static str]) -> impl Fn(&[InstanceView]) -> bool {
    move |views| {
        keys.iter().all(|key| {
            views.iter().any(|view| {
                view.instance.to_string() == *key
                    && view.phase == Phase::Running
                    && view.health == Health::Healthy
            })
        })
    }
}

fn view<'a>(views: &'a [InstanceView], key: &str) -> &'a InstanceView {
    views
        .iter()
        .find(|view| view.instance.to_string() == key)
        .unwrap()
}

/// Pids of the processes in `pid`'s cgroup.
fn cgroup_members(pid: u32) -> Vec<u32> {
    fs::read_to_string(cgroup_dir(pid, "pids").join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.parse().ok())
        .collect()
}

fn pids_seen(listing: &str) -> Vec<u32> {
    listing
        .lines()
        .filter_map(|line| line.split_whitespace().next()?.parse().ok())
        .collect()
}

#[test]
fn a_namespace_tenant_sees_only_its_own_processes_and_cannot_signal_another() {
    require_root();
    let dir = project(
        "",
        &service("ns", "isolation = \"namespace\""),
        &[("instances/ns/a.toml", ""), ("instances/ns/b.toml", "")],
    );
    let server = TestServer::start(dir.path());
    let views = server.wait_until("a and b run", healthy(&["ns:a", "ns:b"]));
    let (status, listing) = server.get("a.ns.localhost", "/ps");
    assert_eq!(status, 200);
    // PID 1 is ten's init, PID 2 the app: nothing of the host, nothing of b.
    assert_eq!(pids_seen(&listing), [1, 2], "{listing}");
    assert!(listing.contains("2 python3"), "{listing}");

    let b = view(&views, "ns:b").pid.unwrap();
    let (_, killed) = server.get("a.ns.localhost", &format!("/kill?pid={b}"));
    // The kill failed (a's namespace has no such process): no signal was sent, so there is
    // nothing to wait for before looking at b.
    assert!(killed.contains("ProcessLookupError"), "{killed}");
    let after = server.ps();
    assert_eq!(view(&after, "ns:b").pid, Some(b), "b was not touched");
    assert_eq!(server.get("b.ns.localhost", "/health"), (200, "ok".into()));
}

#[test]
fn namespace_tenants_run_threaded_servers_behind_shell_commands() {
    require_root();
    let command = format!(
        "[service.ns]\ncommand = \"sh -c 'sleep 0.1; exec /usr/bin/python3 {}'\"\nhealth = \"/health\"\nisolation = \"namespace\"\nstop_timeout = 2\n",
        probe().display()
    );
    let dir = project("", &command, &[("instances/ns/a.toml", "")]);
    let mut server = TestServer::start(dir.path());
    server.wait_until("it runs", healthy(&["ns:a"]));
    // A request that waits for a second one: a server without threads would hang here.
    let address = server.address().to_string();
    let blocked = std::thread::spawn(move || {
        Request::get("/block")
            .host("a.ns.localhost")
            .send(address)
            .body
    });
    // Released only once it waits: a release first would let it through at once.
    let waiting = || server.get("a.ns.localhost", "/waiting") == (200, "1".into());
    assert!(
        within(Duration::from_secs(20), waiting),
        "/block never arrived"
    );
    assert_eq!(server.get("a.ns.localhost", "/release"), (200, "ok".into()));
    assert!(blocked.join().unwrap().ends_with("released"));
    let (_, listing) = server.get("a.ns.localhost", "/ps");
    assert_eq!(
        pids_seen(&listing),
        [1, 2],
        "sh exec'd into python: {listing}"
    );
    // A stop reaches the app through the init, and its end comes back: SIGTERM, not the
    // SIGKILL that would follow stop_timeout.
    let pid = server.instance("ns:a").unwrap().pid.unwrap();
    assert!(server.ten(&["stop", "ns:a"]).status.success());
    assert!(wait_gone(pid));
    let stopped = server.instance("ns:a").unwrap();
    assert_eq!(stopped.phase, Phase::Stopped);
    assert_eq!(stopped.last_exit.and_then(|exit| exit.signal), Some(15));
    server.stop();
}

#[test]
fn a_sandboxed_tenant_answers_through_the_proxy_and_writes_its_data_dir() {
    require_root();
    let dir = project(
        "",
        &service("sb", "isolation = \"sandbox\"\nstartup_timeout = 30"),
        &[("instances/sb/a.toml", "")],
    );
    let server = TestServer::start(dir.path());
    let views = server.wait_until("it runs under runsc", healthy(&["sb:a"]));
    let pid = view(&views, "sb:a").pid.unwrap();
    let cmdline = fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(cmdline.contains("runsc"), "{cmdline:?}");
    assert_eq!(server.get("a.sb.localhost", "/health"), (200, "ok".into()));
    assert_eq!(
        server.get("a.sb.localhost", "/write?mb=1"),
        (200, "wrote 1".into())
    );
    let blob = dir.path().join("tenement-data/sb/a/blob-1");
    assert_eq!(fs::metadata(&blob).unwrap().len(), 1024 * 1024);
    // It sees gVisor's processes, not the host's.
    let (_, listing) = server.get("a.sb.localhost", "/ps");
    assert!(pids_seen(&listing).len() <= 3, "{listing}");
    let members = cgroup_members(pid);
    assert!(
        members.len() >= 3,
        "runsc, its gofer and sandbox are in the cgroup: {members:?}"
    );

    let stop = server.ten(&["stop", "sb:a"]);
    assert!(stop.status.success(), "{}", stderr(&stop));
    for member in members {
        assert!(wait_gone(member), "{member} survived the stop");
    }
    let bundles = dir.path().join("tenement-data/.ten/sandbox");
    let removed = || fs::read_dir(&bundles).map_or(0, |listing| listing.count()) == 0;
    assert!(
        within(Duration::from_secs(10), removed),
        "the bundle was not removed"
    );
    // runsc delete, run before the bundle's removal, ended well, and ten saw it end.
    let log = server.log();
    assert!(!log.contains("runsc delete"), "{log}");
}

/// The README's quick start puts the project in /tmp/notes, and the sandbox has a private
/// /tmp: the program and its workdir must still be there inside.
#[test]
fn a_sandboxed_tenant_runs_its_program_from_a_project_under_tmp() {
    require_root();
    let app = fs::read_to_string(probe()).unwrap();
    let sandboxed = |name: &str, command: &str, extra: &str| {
        format!(
            "[service.{name}]\ncommand = \"{command}\"\nhealth = \"/health\"\nisolation = \"sandbox\"\nstartup_timeout = 30\nstop_timeout = 2\n{extra}\n\n[service.{name}.env]\nDATA_DIR = \"{{data_dir}}/{{name}}/{{id}}\"\n"
        )
    };
    // `python3 app.py` in the project's directory (the workdir), as in the quick start.
    let dir = project_in(
        Path::new("/tmp"),
        "",
        &sandboxed("notes", "python3 app.py", ""),
        &[
            ("app.py", &app),
            ("bin/probe.py", &app),
            ("instances/notes/a.toml", ""),
            ("instances/elsewhere/a.toml", ""),
        ],
    );
    assert!(dir.path().starts_with("/tmp"), "{}", dir.path().display());
    // A program named by its absolute path in the project, run from a workdir outside it.
    let program = dir.path().join("bin/probe.py");
    let mut config = fs::OpenOptions::new()
        .append(true)
        .open(dir.path().join("tenement.toml"))
        .unwrap();
    std::io::Write::write_all(
        &mut config,
        sandboxed(
            "elsewhere",
            &format!("python3 {}", program.display()),
            "workdir = \"/\"",
        )
        .as_bytes(),
    )
    .unwrap();
    drop(config);

    let server = TestServer::start(dir.path());
    server.wait_until("both run under runsc", healthy(&["notes:a", "elsewhere:a"]));
    assert_eq!(
        server.get("a.notes.localhost", "/health"),
        (200, "ok".into())
    );
    assert_eq!(
        server.get("a.elsewhere.localhost", "/health"),
        (200, "ok".into())
    );
    // The data directory, inside the read-only project, is still writable.
    assert_eq!(
        server.get("a.notes.localhost", "/write?mb=1"),
        (200, "wrote 1".into())
    );
    let blob = dir.path().join("tenement-data/notes/a/blob-1");
    assert_eq!(fs::metadata(&blob).unwrap().len(), 1024 * 1024);
}

#[test]
fn a_tenant_over_its_memory_limit_is_oom_killed_and_restarted_alone() {
    require_root();
    let services = format!(
        "{}\n{}",
        service("hog", "memory_limit_mb = 64"),
        service("calm", "")
    );
    let dir = project(
        "",
        &services,
        &[("instances/hog/a.toml", ""), ("instances/calm/a.toml", "")],
    );
    let server = TestServer::start(dir.path());
    let views = server.wait_until("both run", healthy(&["hog:a", "calm:a"]));
    let hog = view(&views, "hog:a").pid.unwrap();
    let calm = view(&views, "calm:a").pid.unwrap();
    let limit = fs::read_to_string(cgroup_dir(hog, "memory").join("memory.limit_in_bytes"))
        .or_else(|_| fs::read_to_string(cgroup_dir(hog, "memory").join("memory.max")))
        .unwrap();
    assert_eq!(limit.trim(), (64 * 1024 * 1024).to_string());

    let (status, _) = server.get("a.hog.localhost", "/alloc?mb=256");
    assert_ne!(status, 200, "it could not allocate past its limit");
    let views = server.wait_until("hog restarted", |views| {
        let hog_view = view(views, "hog:a");
        hog_view.restarts >= 1 && healthy(&["hog:a"])(views) && hog_view.pid != Some(hog)
    });
    let events = stdout(&server.ten(&["events", "hog:a"]));
    assert!(events.contains("killed by signal 9 (SIGKILL)"), "{events}");
    assert!(events.contains("out of memory"), "{events}");
    let calm_view = view(&views, "calm:a");
    assert_eq!((calm_view.pid, calm_view.restarts), (Some(calm), 0));
    assert_eq!(
        server.get("a.calm.localhost", "/alloc?mb=100"),
        (200, "allocated 100".into())
    );
}

#[test]
fn a_fork_bomb_is_contained_by_its_pids_limit_and_ten_rm_ends_it_all() {
    require_root();
    let services = format!(
        "{}\n{}",
        service("bomb", "pids_limit = 50"),
        service("calm", "")
    );
    let dir = project(
        "",
        &services,
        &[("instances/bomb/a.toml", ""), ("instances/calm/a.toml", "")],
    );
    let server = TestServer::start(dir.path());
    let views = server.wait_until("both run", healthy(&["bomb:a", "calm:a"]));
    let bomb = view(&views, "bomb:a").pid.unwrap();
    assert_eq!(
        server.get("a.bomb.localhost", "/forkbomb"),
        (200, "started".into())
    );
    let pids_dir = cgroup_dir(bomb, "pids");
    // pids.events counts the forks the limit refused: "max N".
    let refusing = || {
        let events = fs::read_to_string(pids_dir.join("pids.events")).unwrap_or_default();
        events.trim() != "max 0" && !events.is_empty()
    };
    assert!(
        within(Duration::from_secs(10), refusing),
        "the bomb never hit the limit"
    );
    let current: u64 = fs::read_to_string(pids_dir.join("pids.current"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(current <= 50, "{current} tasks");
    // ten and the neighbour stay responsive.
    assert_eq!(
        server.get("a.calm.localhost", "/health"),
        (200, "ok".into())
    );
    assert_eq!(server.ps().len(), 2);

    let members = cgroup_members(bomb);
    assert!(members.len() > 10, "{members:?}");
    let rm = server.ten(&["rm", "bomb:a"]);
    assert!(rm.status.success(), "{}", stderr(&rm));
    for member in members {
        assert!(wait_gone(member), "{member} survived ten rm");
    }
    // The cgroup goes once its last members are reaped, in the background.
    assert!(
        within(Duration::from_secs(5), || !pids_dir.exists()),
        "the cgroup is not removed"
    );
}

#[test]
fn a_setsid_grandchild_is_gone_after_ten_rm() {
    require_root();
    let dir = project("", &service("web", ""), &[("instances/web/a.toml", "")]);
    let server = TestServer::start(dir.path());
    server.wait_until("it runs", healthy(&["web:a"]));
    let (status, body) = server.get("a.web.localhost", "/setsid");
    assert_eq!(status, 200);
    let escapee: u32 = body.trim().parse().unwrap();
    // Field 6 of /proc/PID/stat: its session, its own once `setsid` has run.
    let session = || {
        let stat = fs::read_to_string(format!("/proc/{escapee}/stat")).unwrap_or_default();
        let fields: Vec<String> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default();
        fields
            .get(3)
            .and_then(|session| session.parse::<u32>().ok())
    };
    assert!(
        within(Duration::from_secs(10), || session() == Some(escapee)),
        "it does not lead its own session: {:?}",
        session()
    );
    assert!(alive(escapee));
    assert!(server.ten(&["rm", "web:a"]).status.success());
    assert!(wait_gone(escapee), "the setsid grandchild survived");
}

#[test]
fn writing_past_the_storage_quota_stops_the_tenant_with_that_reason() {
    require_root();
    let dir = project(
        "",
        &service("disk", "storage_quota_mb = 5"),
        &[("instances/disk/a.toml", "")],
    );
    let server = TestServer::start(dir.path());
    server.wait_until("it runs", healthy(&["disk:a"]));
    assert_eq!(
        server.get("a.disk.localhost", "/write?mb=8"),
        (200, "wrote 8".into())
    );
    let views = server.wait_until("it is stopped for its quota", |views| {
        views[0].phase == Phase::Failed
    });
    let note = views[0].note.clone().unwrap_or_default();
    assert!(
        note.starts_with("over storage quota: ")
            && note.ends_with(" MB used of storage_quota_mb = 5"),
        "{note}"
    );
    let ps = stdout(&server.ten(&["ps"]));
    assert!(ps.contains("over storage quota"), "{ps}");
    let events = stdout(&server.ten(&["events", "disk:a"]));
    assert!(events.contains("over storage quota"), "{events}");
    // While over, a start is refused with the same reason.
    let _ = server.ten(&["restart", "disk:a"]);
    let views = server.wait_until("the restart is refused", |views| {
        views[0].phase == Phase::Failed
            && views[0]
                .note
                .as_deref()
                .is_some_and(|note| note.starts_with("could not start: over storage quota"))
    });
    assert_eq!(views[0].pid, None);
}

#[test]
fn usage_and_user_are_visible_from_outside_and_inside() {
    require_root();
    // nobody must be able to read the app: a copy in a directory anyone may enter.
    let shared = tempfile::tempdir().unwrap();
    fs::set_permissions(
        shared.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let app = shared.path().join("probe.py");
    fs::copy(probe(), &app).unwrap();
    let services = format!(
        "{}\n{}",
        service("web", "user = \"nobody\""),
        service("ns", "user = \"nobody\"\nisolation = \"namespace\"")
    )
    .replace(&probe().display().to_string(), &app.display().to_string());
    let dir = project(
        "",
        &services,
        &[("instances/web/a.toml", ""), ("instances/ns/a.toml", "")],
    );
    let server = TestServer::start(dir.path());
    server.wait_until("both run", healthy(&["web:a", "ns:a"]));
    for host in ["a.web.localhost", "a.ns.localhost"] {
        assert_eq!(
            server.get(host, "/whoami"),
            (200, "65534 65534".into()),
            "{host}"
        );
    }
    let views = server.wait_until("usage is sampled", |views| {
        views.iter().all(|view| {
            view.usage.is_some_and(|usage| {
                usage.memory_bytes.is_some_and(|bytes| bytes > 1024 * 1024)
                    && usage.cpu_usec.is_some_and(|usec| usec > 0)
                    && usage.storage_bytes.is_some()
                    && usage.tasks.is_some_and(|tasks| tasks >= 1)
            })
        })
    });
    assert_eq!(views.len(), 2);
    let ps = stdout(&server.ten(&["ps"]));
    assert!(ps.lines().next().unwrap().ends_with("MEM   DISK"), "{ps}");
}

#[test]
fn validate_warns_when_this_host_cannot_run_what_the_files_ask() {
    require_root();
    let dir = project(
        "",
        &format!(
            "{}\n{}",
            service("ns", "isolation = \"namespace\""),
            service("capped", "memory_limit_mb = 64")
        ),
        &[("instances/ns/a.toml", ""), ("instances/capped/a.toml", "")],
    );
    let open = std::os::unix::fs::PermissionsExt::from_mode(0o755);
    fs::set_permissions(dir.path(), open).unwrap();
    // As root: nothing to warn about.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ten"))
        .args(["validate", "--config"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(output.status.success());
    assert_eq!(stderr(&output), "");
    // As nobody: both services are flagged, and the files are still valid.
    let output = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_ten"))
        .args(["validate", "--config"])
        .arg(dir.path())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let warnings = stderr(&output);
    assert!(
        warnings
            .contains("warning: [service.ns]: isolation = \"namespace\" needs ten to run as root"),
        "{warnings}"
    );
    assert!(
        warnings.contains(
            "warning: [service.capped]: memory_limit_mb, cpu_shares and pids_limit need cgroups"
        ),
        "{warnings}"
    );
}

/// The spare processes (`ten __spare`) the server `server` keeps ready.
fn spares_of(server: u32) -> Vec<u32> {
    helpers_of(server, b"\0__spare\0")
}

/// The children of `server` running ten as `SUBCOMMAND` (`\0__NAME\0`).
fn helpers_of(server: u32, subcommand: &[u8]) -> Vec<u32> {
    let mut spares = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let parent = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
        let cmdline = fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if parent == Some(server) && cmdline.ends_with(subcommand) {
            spares.push(pid);
        }
    }
    spares
}

#[test]
fn tenants_start_from_spare_processes_with_their_own_limits_user_and_errors() {
    require_root();
    let shared = tempfile::tempdir().unwrap();
    let open = std::os::unix::fs::PermissionsExt::from_mode(0o755);
    fs::set_permissions(shared.path(), open).unwrap();
    let app = shared.path().join("probe.py");
    fs::copy(probe(), &app).unwrap();
    let services = format!(
        "{}\n[service.broken]\ncommand = \"no-such-program-here --port {{port}}\"\n",
        service("web", "user = \"nobody\"\nmemory_limit_mb = 64")
    )
    .replace(&probe().display().to_string(), &app.display().to_string());
    let dir = project("", &services, &[]);
    let mut server = TestServer::start(dir.path());
    let mut ready = Vec::new();
    let kept = within(Duration::from_secs(10), || {
        ready = spares_of(server.pid());
        ready.len() == 2
    });
    assert!(kept, "no spares are kept: {ready:?}");

    // A spare becomes the tenant: its pid, in a cgroup with the tenant's limit, as its user.
    support::write_file(&dir.path().join("instances/web/a.toml"), "");
    let pid = view(
        &server.wait_until("web:a runs", healthy(&["web:a"])),
        "web:a",
    )
    .pid
    .unwrap();
    assert!(
        ready.contains(&pid),
        "{pid} is not one of the spares {ready:?}"
    );
    let cmdline = fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(cmdline.contains("probe.py"), "{cmdline:?}");
    let limit = fs::read_to_string(cgroup_dir(pid, "memory").join("memory.limit_in_bytes"))
        .or_else(|_| fs::read_to_string(cgroup_dir(pid, "memory").join("memory.max")))
        .unwrap();
    assert_eq!(limit.trim(), (64 * 1024 * 1024).to_string());
    assert_eq!(
        server.get("a.web.localhost", "/whoami"),
        (200, "65534 65534".into())
    );
    // The pool is refilled.
    let refilled = || spares_of(server.pid()).len() >= 2;
    assert!(
        within(Duration::from_secs(10), refilled),
        "the spares were not refilled"
    );

    // A program that cannot be executed says why, and the spare it used is gone.
    let before = spares_of(server.pid());
    support::write_file(&dir.path().join("instances/broken/a.toml"), "");
    let views = server.wait_until("broken:a fails", |views| {
        views.iter().any(|view| {
            view.instance.to_string() == "broken:a"
                && view
                    .note
                    .as_deref()
                    .is_some_and(|note| note.contains("no-such-program-here: not found in PATH"))
        })
    });
    assert_eq!(view(&views, "broken:a").pid, None);
    for spare in before
        .iter()
        .filter(|spare| !spares_of(server.pid()).contains(spare))
    {
        assert!(wait_gone(*spare), "the spare {spare} outlived its failure");
    }

    // At shutdown, the spares are let go.
    let spares = spares_of(server.pid());
    assert!(!spares.is_empty());
    assert!(server.stop().success());
    for spare in spares {
        assert!(wait_gone(spare), "the spare {spare} outlived the server");
    }
}

/// The value of the counter `name` in the server's `/metrics` (`public_metrics = true`).
fn counter(server: &TestServer, name: &str) -> u64 {
    let response = Request::get("/metrics").send(server.address());
    assert_eq!(response.status, 200, "{}", response.body);
    response
        .body
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in\n{}", response.body))
        .parse()
        .unwrap()
}

/// Declares `count` instances of `service` at once (one directory renamed into place) and
/// waits until they are healthy; their pids.
fn declare_at_once(server: &TestServer, dir: &Path, service: &str, count: usize) -> Vec<u32> {
    let staged = dir.join("staged").join(service);
    for n in 0..count {
        support::write_file(&staged.join(format!("t{n}.toml")), "");
    }
    fs::create_dir_all(dir.join("instances")).unwrap();
    fs::rename(&staged, dir.join("instances").join(service)).unwrap();
    let prefix = format!("{service}:");
    let views = server.wait_until("the burst is healthy", |views| {
        views
            .iter()
            .filter(|view| {
                view.instance.to_string().starts_with(&prefix)
                    && view.phase == Phase::Running
                    && view.health == Health::Healthy
            })
            .count()
            == count
    });
    views
        .iter()
        .filter(|view| view.instance.to_string().starts_with(&prefix))
        .filter_map(|view| view.pid)
        .collect()
}

/// The parent of `pid` (`/proc/PID/stat` field 4).
fn parent_of(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.split(' ').nth(1)?.parse().ok()
}

#[test]
fn a_burst_of_starts_goes_through_the_spawner_and_leaves_the_spares_to_wakes() {
    require_root();
    const BURST: usize = 12;
    let dir = project(
        "public_metrics = true",
        &format!(
            "{}\n{}\n{}",
            support::server::backend_service("web", "memory_limit_mb = 64"),
            support::server::backend_service("more", ""),
            support::server::backend_service("again", "")
        ),
        &[],
    );
    let server = TestServer::start(dir.path());
    let mut ready = Vec::new();
    let kept = within(Duration::from_secs(10), || {
        ready = spares_of(server.pid());
        ready.len() == 2
    });
    assert!(kept, "no spares are kept: {ready:?}");

    let pids = declare_at_once(&server, dir.path(), "web", BURST);
    assert_eq!(pids.len(), BURST);
    assert_eq!(counter(&server, "ten_spawns_total"), BURST as u64);
    assert_eq!(
        counter(&server, "ten_spawn_forks_total"),
        0,
        "ten forked itself"
    );

    // Started by the spawners, ten's children (more than one only while all are busy, at
    // most four), which made them ten's children (the reaper's), each in a cgroup of its own
    // with its limit in force.
    // (A spawner's child before its exec shares the spawner's memory, its command line
    // included: a pid seen twice, a moment apart, is a spawner.)
    let first_look = helpers_of(server.pid(), b"\0__spawner\0");
    std::thread::sleep(Duration::from_millis(200));
    let spawners: Vec<u32> = helpers_of(server.pid(), b"\0__spawner\0")
        .into_iter()
        .filter(|pid| first_look.contains(pid))
        .collect();
    assert!(
        (1..=4).contains(&spawners.len()),
        "one to four spawners: {spawners:?}"
    );
    let mut cgroups = std::collections::BTreeSet::new();
    for pid in &pids {
        assert_eq!(parent_of(*pid), Some(server.pid()), "the parent of {pid}");
        let memory = cgroup_dir(*pid, "memory");
        let limit = fs::read_to_string(memory.join("memory.limit_in_bytes"))
            .or_else(|_| fs::read_to_string(memory.join("memory.max")))
            .unwrap();
        assert_eq!(limit.trim(), (64 * 1024 * 1024).to_string(), "{pid}");
        assert_eq!(cgroup_members(*pid), [*pid]);
        cgroups.insert(memory);
    }
    assert_eq!(cgroups.len(), BURST, "a cgroup each");
    // The first start may take a spare; the others do not wait for one.
    let from_spares = pids.iter().filter(|pid| ready.contains(pid)).count();
    assert!(from_spares <= 1, "{from_spares} of the burst were spares");
    assert!(
        within(Duration::from_secs(10), || spares_of(server.pid()).len()
            == 2),
        "the spares were not refilled after the burst"
    );

    // A tenant that exits is reaped and restarted as any (its exit reached ten).
    let first = pids[0];
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    server.wait_until("the killed tenant is replaced", |views| {
        views.iter().any(|view| {
            view.pid.is_some_and(|pid| !pids.contains(&pid)) && view.health == Health::Healthy
        })
    });
    assert!(wait_gone(first), "{first} was not reaped");

    // Spawners that are gone: a start that finds one gone forks ten (counted), the ones
    // after it go through new spawners.
    for spawner in &spawners {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*spawner as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        assert!(wait_gone(*spawner));
    }
    let more = declare_at_once(&server, dir.path(), "more", 6);
    assert_eq!(more.len(), 6);
    let forks = counter(&server, "ten_spawn_forks_total");
    assert!(
        (1..=spawners.len() as u64).contains(&forks),
        "{forks} starts forked ten, with {} spawners gone",
        spawners.len()
    );
    // Those forks may be slow enough on a busy machine that the starts after them are no
    // burst, and take the spares instead (CI: 4 forks and 2 spares, no spawner asked). A
    // burst with no spawner gone is fast: all but its first go through the spawners, new.
    let again = declare_at_once(&server, dir.path(), "again", 6);
    assert_eq!(again.len(), 6);
    assert_eq!(
        counter(&server, "ten_spawn_forks_total"),
        forks,
        "a start forked ten with no spawner gone"
    );
    let replaced = helpers_of(server.pid(), b"\0__spawner\0");
    assert!(
        !replaced.is_empty() && replaced.iter().all(|pid| !spawners.contains(pid)),
        "the spawners were not replaced: {replaced:?} (gone: {spawners:?})"
    );
}
