//! Instances that start on demand, on the real binary: declared asleep (no process), woken
//! by their first request, asleep again after a restart of ten; eager ones start.

mod support;

use std::collections::BTreeSet;
use std::fs;

use support::server::{TestServer, backend, backend_service, stdout, wait_gone, within};
use ten::api::types::InstanceView;
use ten::observed::{Health, Phase};

const TENANTS: usize = 200;

/// A project of `TENANTS` instances of `web` (the test backend, idle after 60 s, so on demand
/// by default) and one eager `api:one`, with a port range of its own below the ephemeral
/// range (each instance keeps a port).
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let low = 31000 + (std::process::id() % 5) as u16 * 300;
    let services = format!(
        "{}\n{}",
        backend_service("web", "idle_timeout = 60"),
        backend_service("api", "idle_timeout = 60\nstart = \"eager\"")
    );
    support::write_file(
        &dir.path().join("tenement.toml"),
        &format!(
            "[settings]\nport_range = [{low}, {}]\nhealth_check_interval = 1\n\n{services}",
            low + 299
        ),
    );
    for index in 0..TENANTS {
        support::write_file(&dir.path().join(format!("instances/web/t{index}.toml")), "");
    }
    support::write_file(&dir.path().join("instances/api/one.toml"), "");
    dir
}

/// Live processes running the test backend whose parent is `parent`.
fn backends_of(parent: u32) -> BTreeSet<u32> {
    let backend = backend();
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| entry.file_name().to_string_lossy().parse::<u32>().ok())
        .filter(|pid| fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe == backend))
        .filter(|pid| {
            fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                // The fields after the command's closing parenthesis: state, then ppid.
                stat.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok())
                    == Some(parent)
            })
        })
        .collect()
}

fn sleeping_web(views: &[InstanceView]) -> usize {
    views
        .iter()
        .filter(|v| v.instance.service.as_str() == "web")
        .filter(|v| v.phase == Phase::Sleeping && v.pid.is_none())
        .count()
}

fn declared_asleep(views: &[InstanceView]) -> bool {
    sleeping_web(views) == TENANTS
        && views.iter().any(|v| {
            v.instance.to_string() == "api:one"
                && v.phase == Phase::Running
                && v.health == Health::Healthy
        })
}

#[test]
fn on_demand_instances_start_nothing_until_a_request_and_stay_asleep_across_a_restart() {
    let dir = project();
    let mut server = TestServer::start(dir.path());
    let views = server.wait_until("200 on-demand instances sleep and api:one runs", |views| {
        declared_asleep(views)
    });
    assert_eq!(views.len(), TENANTS + 1);
    let api = views
        .iter()
        .find(|v| v.instance.to_string() == "api:one")
        .and_then(|v| v.pid)
        .unwrap();
    assert_eq!(
        backends_of(server.pid()),
        BTreeSet::from([api]),
        "only the eager instance has a process"
    );
    let ps = stdout(&server.ten(&["ps"]));
    assert_eq!(ps.matches("sleeping").count(), TENANTS, "{ps}");
    let events = stdout(&server.ten(&["events", "web:t7"]));
    assert!(
        events.contains("until its first request"),
        "the create says it sleeps: {events}"
    );

    // An instance that never ran keeps nothing of the log capture, not even a directory.
    let t7_logs = dir.path().join("tenement-data/.ten/logs/web/t7");
    assert!(!t7_logs.exists(), "{} exists", t7_logs.display());

    // The first request wakes exactly the one asked for.
    let (status, body) = server.get("t7.web.localhost", "/");
    assert_eq!(status, 200, "{body}");
    let woken = server.wait_running("web:t7");
    assert!(body.contains(&woken.to_string()), "{body} from {woken}");
    let views = server.ps();
    assert_eq!(sleeping_web(&views), TENANTS - 1, "the others sleep on");
    assert_eq!(backends_of(server.pid()), BTreeSet::from([api, woken]));
    // Its output is captured from its first start.
    let logged = || stdout(&server.ten(&["logs", "web:t7"])).contains("GET /");
    assert!(
        within(std::time::Duration::from_secs(10), logged),
        "the woken instance's request is in its log"
    );

    // A restart of ten: what was stopped with it and the others are asleep, the eager one
    // starts.
    assert!(server.stop().success());
    assert!(wait_gone(woken) && wait_gone(api));
    let mut server = TestServer::start(dir.path());
    let views = server.wait_until("after a restart: all asleep, api:one runs", |views| {
        declared_asleep(views)
    });
    let running: BTreeSet<u32> = views.iter().filter_map(|v| v.pid).collect();
    assert_eq!(running.len(), 1, "{views:#?}");
    // Asleep, an instance that ran before shows its last lines.
    assert!(
        stdout(&server.ten(&["logs", "web:t7"])).contains("GET /"),
        "the lines of web:t7 from before the restart"
    );
    assert_eq!(backends_of(server.pid()), running, "no process but api:one");
    let (status, _) = server.get("t42.web.localhost", "/");
    assert_eq!(status, 200);
    let t42 = server.wait_running("web:t42");
    assert!(server.stop().success());
    assert!(running.iter().chain([&t42]).all(|pid| wait_gone(*pid)));
}

const MB: u64 = 1 << 20;

fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

/// The kernel's count of OOM kills since boot.
fn oom_kills() -> u64 {
    fs::read_to_string("/proc/vmstat")
        .unwrap()
        .lines()
        .find_map(|line| line.strip_prefix("oom_kill "))
        .map_or(0, |count| count.trim().parse().unwrap())
}

fn phase_of(views: &[InstanceView], key: &str) -> Option<Phase> {
    views
        .iter()
        .find(|v| v.instance.to_string() == key)
        .map(|v| v.phase)
}

/// The working set of every tenant of the server whose tenant `pid` is: their parent
/// cgroup's memory usage less its inactive file pages (what ten measures).
fn tenants_working_set(pid: u32) -> u64 {
    let dir = support::server::cgroup_dir(pid, "memory");
    let parent = dir.parent().unwrap();
    let read = |name: &str| fs::read_to_string(parent.join(name)).ok();
    let (usage, inactive_key) = match read("memory.current") {
        Some(current) => (current, "inactive_file "),
        None => (
            read("memory.usage_in_bytes").unwrap(),
            "total_inactive_file ",
        ),
    };
    let inactive: u64 = read("memory.stat")
        .unwrap()
        .lines()
        .find_map(|line| line.strip_prefix(inactive_key))
        .map_or(0, |value| value.trim().parse().unwrap());
    usage.trim().parse::<u64>().unwrap() - inactive
}

/// Wakes `key` with a request that makes it hold `mb` more megabytes.
fn wake_holding(server: &TestServer, key: &str, mb: u64) {
    let (id, service) = key.split_once(':').map(|(s, i)| (i, s)).unwrap();
    let (status, body) = server.get(
        &format!("{id}.{service}.localhost"),
        &format!("/alloc?mb={mb}"),
    );
    assert_eq!(status, 200, "{key}: {body}");
    server.wait_until(&format!("{key} measured"), |views| {
        views.iter().any(|v| {
            v.instance.to_string() == key
                && v.usage
                    .as_ref()
                    .and_then(|usage| usage.memory_bytes)
                    .is_some_and(|bytes| bytes > mb * MB)
        })
    });
}

#[test]
fn over_memory_target_the_least_recently_used_idle_instance_sleeps_first() {
    // Cgroups measure the tenants' memory: as root (CI runs as root).
    if !is_root() {
        eprintln!("needs root for cgroups; CI runs it");
        return;
    }
    let ooms = oom_kills();
    let files: Vec<(String, &str)> = (0..6)
        .map(|index| (format!("instances/hog/h{index}.toml"), ""))
        .collect();
    let files: Vec<(&str, &str)> = files.iter().map(|(p, c)| (p.as_str(), *c)).collect();
    let dir = support::server::project("", &backend_service("hog", "idle_timeout = 300"), &files);
    let server = TestServer::start(dir.path());
    server.wait_until("all six asleep", |views| {
        views.len() == 6 && views.iter().all(|v| v.phase == Phase::Sleeping)
    });
    for index in 0..5 {
        wake_holding(&server, &format!("hog:h{index}"), 50);
    }
    // A target that fits these five (what they use now, and 25 MB), applied in place.
    let h0 = server.wait_running("hog:h0");
    let used = tenants_working_set(h0);
    let target = (used >> 20) + 25;
    let config = fs::read_to_string(dir.path().join("tenement.toml")).unwrap();
    support::write_file(
        &dir.path().join("tenement.toml"),
        &config.replacen(
            "[settings]\n",
            &format!("[settings]\nmemory_target = \"{target}MB\"\n"),
            1,
        ),
    );
    server.wait_until("the target applied", |_| {
        stdout(&server.ten(&["diff"])).starts_with("No changes")
    });
    std::thread::sleep(std::time::Duration::from_secs(2));
    let views = server.ps();
    assert!(
        (0..5).all(|index| phase_of(&views, &format!("hog:h{index}")) == Some(Phase::Running)),
        "five fit in {target} MB: {views:#?}"
    );
    // A request to h0 makes h1 the least recently used.
    assert_eq!(server.get("h0.hog.localhost", "/").0, 200);
    wake_holding(&server, "hog:h5", 50);
    let views = server.wait_until("h1 put to sleep", |views| {
        phase_of(views, "hog:h1") == Some(Phase::Sleeping)
    });
    assert!(
        [0, 2, 3, 4, 5]
            .iter()
            .all(|index| phase_of(&views, &format!("hog:h{index}")) == Some(Phase::Running)),
        "only the least recently used went: {views:#?}"
    );
    let events = stdout(&server.ten(&["events", "hog:h1"]));
    assert!(
        events.contains("memory over target") && events.contains("least recently used"),
        "{events}"
    );
    std::thread::sleep(std::time::Duration::from_secs(2));
    let views = server.ps();
    assert_eq!(
        views.iter().filter(|v| v.phase == Phase::Sleeping).count(),
        1,
        "one was enough: {views:#?}"
    );
    assert!(
        views
            .iter()
            .all(|v| v.usage.as_ref().and_then(|u| u.oom_kills).unwrap_or(0) == 0),
        "{views:#?}"
    );
    assert_eq!(oom_kills(), ooms, "the kernel killed nothing for memory");
}

#[test]
fn a_wake_past_memory_limit_total_puts_an_idle_one_to_sleep_or_is_refused_with_retry_after() {
    if !is_root() {
        eprintln!("needs root for cgroups; CI runs it");
        return;
    }
    let ooms = oom_kills();
    let services = format!(
        "{}\n{}",
        backend_service("big", "start = \"eager\""),
        backend_service("small", "idle_timeout = 300")
    );
    let dir = support::server::project(
        "memory_limit_total = \"200MB\"",
        &services,
        &[
            ("instances/big/one.toml", ""),
            ("instances/small/a.toml", ""),
            ("instances/small/b.toml", ""),
            ("instances/small/c.toml", ""),
        ],
    );
    let server = TestServer::start(dir.path());
    server.wait_running("big:one");
    wake_holding(&server, "big:one", 130);
    // 130 MB used: a fits; once it holds 80 MB more (past the limit), b needs a to go first.
    wake_holding(&server, "small:a", 80);
    wake_holding(&server, "small:b", 80);
    let views = server.wait_until("a made room for b", |views| {
        phase_of(views, "small:a") == Some(Phase::Sleeping)
    });
    assert_eq!(phase_of(&views, "small:b"), Some(Phase::Running));
    assert_eq!(
        phase_of(&views, "big:one"),
        Some(Phase::Running),
        "eager: never put to sleep"
    );
    // b busy, big eager: nothing can make room for c.
    let address = server.address().to_string();
    let busy = std::thread::spawn(move || {
        support::http::Request::get("/slow?ms=4000")
            .host("b.small.localhost")
            .send(address.as_str())
            .status
    });
    std::thread::sleep(std::time::Duration::from_millis(500));
    let refused = support::http::Request::get("/")
        .host("c.small.localhost")
        .send(server.address());
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert_eq!(refused.header("retry-after"), Some("5"));
    assert!(
        refused.body.contains("memory_limit_total"),
        "{}",
        refused.body
    );
    assert_eq!(
        busy.join().unwrap(),
        200,
        "the request in flight was served"
    );
    // The operator sees the refusal in `ten events` of the instance, not only the client.
    let events = || stdout(&server.ten(&["events", "small:c"]));
    assert!(
        within(std::time::Duration::from_secs(5), || events()
            .contains("cannot be woken")),
        "{}",
        events()
    );
    assert!(events().contains("memory_limit_total"), "{}", events());
    assert_eq!(phase_of(&server.ps(), "small:c"), Some(Phase::Sleeping));
    // The limit taken out of the settings (applied in place): c wakes.
    let config = fs::read_to_string(dir.path().join("tenement.toml")).unwrap();
    support::write_file(
        &dir.path().join("tenement.toml"),
        &config.replace("memory_limit_total = \"200MB\"", ""),
    );
    server.wait_until("the limit lifted", |_| {
        stdout(&server.ten(&["diff"])).starts_with("No changes")
    });
    let (status, body) = server.get("c.small.localhost", "/");
    assert_eq!(status, 200, "c wakes once the limit is gone: {body}");
    assert_eq!(oom_kills(), ooms, "the kernel killed nothing for memory");
}

/// An on-demand app that cannot start answers 502 at each request; `ps` and `health` say why
/// next to `sleeping`, not a healthy-looking sleeper.
#[test]
fn a_sleeper_whose_wake_failed_says_so_in_ps_and_health() {
    let dir = support::server::project(
        "",
        "[service.od]\ncommand = \"sh -c 'echo boom >&2; exit 1'\"\nhealth = \"/health\"\n\
         idle_timeout = 60\nstop_timeout = 2\n",
        &[("instances/od/a.toml", "")],
    );
    let server = TestServer::start(dir.path());
    server.wait_until("od:a asleep", |views| {
        phase_of(views, "od:a") == Some(Phase::Sleeping)
    });
    let (status, body) = server.get("a.od.localhost", "/");
    assert_eq!(status, 502, "{body}");
    let ps = stdout(&server.ten(&["ps", "od"]));
    assert!(ps.contains("wake failed: exited with code 1"), "{ps}");
    let health = stdout(&server.ten(&["health", "od:a"]));
    assert!(health.contains("wake failed"), "{health}");
}
