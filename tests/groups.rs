//! Groups and bulk commands end to end, against a real `ten serve` with real tenants:
//! `ten stop|start|restart` of a service, a group (`group:NAME`) or `--all`, `--force`, `ten ps`
//! `ten logs` and `ten events` of a service or group, and stops in `stop_order` (bulk and on shutdown).

mod support;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::server::{TestServer, alive, backend_service, project, stderr, stdout, wait_gone};
use ten::api::types::{BulkResult, Event, InstanceView};
use ten::observed::Phase;

fn keys(views: &[InstanceView]) -> Vec<String> {
    views.iter().map(|view| view.instance.to_string()).collect()
}

fn pid_of(server: &TestServer, key: &str) -> u32 {
    server.instance(key).and_then(|view| view.pid).unwrap()
}

/// `ten ps TARGET --json`.
fn ps_of(server: &TestServer, target: &str) -> Vec<InstanceView> {
    let output = server.ten(&["ps", target, "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    serde_json::from_slice(&output.stdout).unwrap()
}

const ALICE: &str = "# Alice's shop\nweight = 100 # all of it\n";

#[test]
fn a_group_stops_and_all_start_with_files_edited_and_comments_kept() {
    let services = format!(
        "{}{}{}[group.web]\nservices = [\"web\", \"api\"]\n\n[instances]\nweb = [\"b\"]\n",
        backend_service("web", ""),
        backend_service("api", ""),
        backend_service("other", ""),
    );
    let dir = project(
        "",
        &services,
        &[
            ("instances/web/a.toml", ALICE),
            ("instances/api/x.toml", "# the API\n"),
            ("instances/other/y.toml", "# untouched\n"),
            ("instances/other/z.toml", "state = \"stopped\"\n"),
        ],
    );
    let server = TestServer::start(dir.path());
    let before: Vec<u32> = ["web:a", "web:b", "api:x"]
        .iter()
        .map(|key| server.wait_running(key))
        .collect();
    let other = server.wait_running("other:y");

    // `ten ps` of a group, of a service, of an unknown group.
    assert_eq!(
        keys(&ps_of(&server, "group:web")),
        ["api:x", "web:a", "web:b"]
    );
    assert_eq!(keys(&ps_of(&server, "other")), ["other:y", "other:z"]);
    let unknown = server.ten(&["ps", "group:webs"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        stderr(&unknown).contains("group `webs` is not declared")
            && stderr(&unknown).contains("did you mean `group:web`?"),
        "{}",
        stderr(&unknown)
    );

    let stop = server.ten(&["stop", "group:web"]);
    assert!(stop.status.success(), "{}", stderr(&stop));
    assert!(
        stdout(&stop).ends_with("3 instances of group:web stopped.\n"),
        "{}",
        stdout(&stop)
    );
    let read = |path: &str| fs::read_to_string(dir.path().join(path)).unwrap();
    assert_eq!(
        read("instances/web/a.toml"),
        format!("{ALICE}state = \"stopped\"\n")
    );
    assert_eq!(
        read("instances/api/x.toml"),
        "# the API\nstate = \"stopped\"\n"
    );
    // Declared in [instances]: a file of its own now says it is stopped.
    assert_eq!(read("instances/web/b.toml"), "state = \"stopped\"\n");
    assert_eq!(read("instances/other/y.toml"), "# untouched\n");
    for pid in before {
        assert!(wait_gone(pid), "{pid} was stopped");
    }
    for view in ps_of(&server, "group:web") {
        assert_eq!(view.phase, Phase::Stopped, "{}", view.instance);
    }
    assert_eq!(pid_of(&server, "other:y"), other, "other:y was not touched");
    assert!(stdout(&server.ten(&["diff"])).contains("No changes."));

    // A service with a running instance and one stopped from birth (it has no process).
    let stop = server.ten(&["stop", "other"]);
    assert!(stop.status.success(), "{}", stderr(&stop));
    assert!(
        stdout(&stop).contains("z.toml already says state = \"stopped\": stopped (it never ran)"),
        "{}",
        stdout(&stop)
    );
    assert!(wait_gone(other));

    // Everything starts again, as JSON.
    let start = server.ten(&["start", "--all", "--json"]);
    assert!(start.status.success(), "{}", stderr(&start));
    let result: BulkResult = serde_json::from_slice(&start.stdout).unwrap();
    assert_eq!((result.ok, result.failed), (5, 0), "{result:#?}");
    assert_eq!(result.action, "start");
    for outcome in &result.instances {
        let view = outcome.view.as_ref().unwrap();
        assert_eq!(view.phase, Phase::Running, "{outcome:?}");
    }
    assert_eq!(
        read("instances/web/a.toml"),
        format!("{ALICE}state = \"running\"\n")
    );
    assert_eq!(
        read("instances/other/y.toml"),
        "# untouched\nstate = \"running\"\n"
    );
    assert_eq!(read("instances/other/z.toml"), "state = \"running\"\n");
    assert!(stdout(&server.ten(&["diff"])).contains("No changes."));
}

#[test]
fn a_held_bulk_stop_is_planned_as_one_stop_per_instance() {
    let services = format!(
        "{}[group.all-web]\nservices = [\"web\"]\n",
        backend_service("web", "")
    );
    let dir = project(
        "auto_apply = false",
        &services,
        &[("instances/web/a.toml", ""), ("instances/web/b.toml", "")],
    );
    let server = TestServer::start(dir.path());
    let apply = server.ten(&["apply", "--auto-approve"]);
    assert!(apply.status.success(), "{}", stderr(&apply));
    server.wait_running("web:a");
    server.wait_running("web:b");

    let stop = server.ten(&["stop", "group:all-web"]);
    assert!(stop.status.success(), "{}", stderr(&stop));
    assert!(
        stdout(&stop).contains("not applied yet"),
        "{}",
        stdout(&stop)
    );
    let diff = stdout(&server.ten(&["diff"]));
    for key in ["web:a", "web:b"] {
        assert!(diff.contains(&format!("# {key} will be stopped")), "{diff}");
    }
    assert!(server.ps().iter().all(|view| view.phase == Phase::Running));
    let apply = server.ten(&["apply", "--auto-approve"]);
    assert!(apply.status.success(), "{}", stderr(&apply));
    server.wait_until("both stopped", |views| {
        views.iter().all(|view| view.phase == Phase::Stopped)
    });
}

#[test]
fn restarting_a_service_restarts_each_of_its_instances() {
    let services = format!(
        "{}{}[instances]\nworker = [\"0\", \"1\", \"2\"]\nweb = [\"a\"]\n",
        backend_service("worker", ""),
        backend_service("web", ""),
    );
    let dir = project("", &services, &[]);
    let server = TestServer::start(dir.path());
    let workers: Vec<u32> = (0..3)
        .map(|n| server.wait_running(&format!("worker:{n}")))
        .collect();
    let web = server.wait_running("web:a");

    let restart = server.ten(&["restart", "worker"]);
    assert!(restart.status.success(), "{}", stderr(&restart));
    assert!(
        stdout(&restart).ends_with("3 instances of worker restarted.\n"),
        "{}",
        stdout(&restart)
    );
    for (n, old) in workers.iter().enumerate() {
        assert!(wait_gone(*old));
        let new = pid_of(&server, &format!("worker:{n}"));
        assert_ne!(new, *old, "worker:{n} has a new process");
    }
    assert_eq!(pid_of(&server, "web:a"), web, "web:a was not restarted");

    // `ten logs worker`: every worker's output, each line with its instance, no web's.
    let logs = stdout(&server.ten(&["logs", "worker"]));
    for n in 0..3 {
        assert!(
            logs.contains(&format!(" worker:{n} out backend ")),
            "{logs}"
        );
    }
    assert!(!logs.contains("web:a"), "{logs}");
    let unknown = server.ten(&["logs", "wroker"]);
    assert!(
        stderr(&unknown).contains("did you mean `worker`?"),
        "{}",
        stderr(&unknown)
    );
}

/// An absolute python3 (tenants get a clean PATH).
fn python() -> PathBuf {
    let output = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3");
    PathBuf::from(String::from_utf8(output.stdout).unwrap().trim())
}

/// A tenant that listens on $PORT and, on SIGTERM, writes when it got the signal to
/// `$OUT/term`, takes 300 ms to finish, writes `$OUT/exit` and exits. Times are Unix seconds.
const RECORDER: &str = r#"
import http.server, os, signal, threading, time
out = os.environ["OUT"]
def write(name):
    with open(os.path.join(out, name + ".tmp"), "w") as f:
        f.write(repr(time.time()))
    os.rename(os.path.join(out, name + ".tmp"), os.path.join(out, name))
def term(*_):
    write("term")
    time.sleep(0.3)
    write("exit")
    os._exit(0)
signal.signal(signal.SIGTERM, term)
server = http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), http.server.BaseHTTPRequestHandler)
threading.Thread(target=server.serve_forever, daemon=True).start()
while True:
    time.sleep(1)
"#;

fn recorder_service(name: &str, stop_order: i32, python: &Path) -> String {
    format!(
        "[service.{name}]\ncommand = \"{} recorder.py\"\nstop_order = {stop_order}\n\
         [service.{name}.env]\nOUT = \"{{data_dir}}/{{name}}/{{id}}\"\n\n",
        python.display()
    )
}

/// When `key` got its stop signal and when it was done, read from its data directory.
fn recorded(dir: &Path, key: &str, what: &str) -> Option<f64> {
    let (service, id) = key.split_once(':').unwrap();
    let path = dir.join(format!("tenement-data/{service}/{id}/{what}"));
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn forget_records(dir: &Path, keys: &[&str]) {
    for key in keys {
        for what in ["term", "exit"] {
            let (service, id) = key.split_once(':').unwrap();
            let _ = fs::remove_file(dir.join(format!("tenement-data/{service}/{id}/{what}")));
        }
    }
}

/// Every web instance had exited before the queue worker got its stop signal.
fn assert_web_before_queue(dir: &Path) {
    let web_exits: Vec<f64> = ["web:a", "web:b"]
        .iter()
        .map(|key| recorded(dir, key, "exit").unwrap_or_else(|| panic!("{key} has no exit")))
        .collect();
    let queue_term = recorded(dir, "queue:0", "term").expect("the queue got its signal");
    for exit in web_exits {
        assert!(
            exit <= queue_term,
            "web exited at {exit}, after the queue's signal at {queue_term}"
        );
    }
}

#[test]
fn lower_stop_orders_are_gone_before_the_next_gets_its_signal() {
    let python = python();
    let services = format!(
        "{}{}[group.all]\nservices = [\"web\", \"queue\"]\n\n[instances]\nweb = [\"a\", \"b\"]\nqueue = [\"0\"]\n",
        recorder_service("queue", 10, &python),
        recorder_service("web", 0, &python),
    );
    let dir = project("", &services, &[("recorder.py", RECORDER)]);
    let mut server = TestServer::start(dir.path());
    let keys = ["web:a", "web:b", "queue:0"];
    let mut pids: Vec<u32> = keys.iter().map(|key| server.wait_running(key)).collect();

    // A bulk stop: the queue (stop_order 10) waits until both web instances (0) are gone.
    let stop = server.ten(&["stop", "group:all"]);
    assert!(stop.status.success(), "{}", stderr(&stop));
    assert_web_before_queue(dir.path());
    assert!(pids.iter().all(|pid| wait_gone(*pid)));

    // On SIGTERM to ten, the same order.
    forget_records(dir.path(), &keys);
    let start = server.ten(&["start", "group:all"]);
    assert!(start.status.success(), "{}", stderr(&start));
    pids = keys.iter().map(|key| server.wait_running(key)).collect();
    let began = Instant::now();
    assert!(server.stop().success());
    assert_web_before_queue(dir.path());
    assert!(
        began.elapsed() < Duration::from_secs(10),
        "three tenants that stop within 300 ms each did not take {:?}",
        began.elapsed()
    );
    assert!(pids.iter().all(|pid| !alive(*pid)));
}

/// A tenant that listens on $PORT and ignores SIGTERM while the file `hold` exists in its
/// working directory (the project's).
const STUBBORN: &str = r#"
import http.server, os, signal
def term(*_):
    if not os.path.exists("hold"):
        os._exit(0)
signal.signal(signal.SIGTERM, term)
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), http.server.BaseHTTPRequestHandler).serve_forever()
"#;

#[test]
fn a_forced_restart_kills_a_tenant_that_ignores_its_stop_signal() {
    // SIGTERM is ignored and stop_timeout is long: a graceful restart would take a minute.
    let config = format!(
        "[service.stubborn]\ncommand = \"{} stubborn.py\"\nstop_timeout = 60\n\n[instances]\nstubborn = [\"0\", \"1\"]\n",
        python().display()
    );
    let dir = project("", &config, &[("stubborn.py", STUBBORN), ("hold", "")]);
    let server = TestServer::start(dir.path());
    let first = server.wait_running("stubborn:0");
    let second = server.wait_running("stubborn:1");

    let began = Instant::now();
    let restart = server.ten(&["restart", "--force", "stubborn:0"]);
    assert!(restart.status.success(), "{}", stderr(&restart));
    assert!(!alive(first));
    assert_ne!(pid_of(&server, "stubborn:0"), first);
    // With a bulk selector too.
    let restart = server.ten(&["restart", "stubborn", "--force", "--json"]);
    assert!(restart.status.success(), "{}", stderr(&restart));
    let result: BulkResult = serde_json::from_slice(&restart.stdout).unwrap();
    assert_eq!((result.ok, result.failed), (2, 0), "{result:#?}");
    assert!(!alive(second));
    assert!(
        began.elapsed() < Duration::from_secs(30),
        "--force does not wait for stop_timeout (60 s): {:?}",
        began.elapsed()
    );
    let events = stdout(&server.ten(&["events"]));
    assert!(events.contains("with SIGKILL"), "{events}");

    // The server's own stop at the end need not wait a minute.
    fs::remove_file(dir.path().join("hold")).unwrap();
}

/// A `ten events -f` that runs until dropped; its stdout's lines come through a channel.
struct Follower {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Follower {
    fn start(server: &TestServer, args: &[&str]) -> Follower {
        use std::io::BufRead;
        let mut child = server
            .command(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("run ten");
        let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let (sender, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    return;
                }
            }
        });
        Follower { child, lines }
    }

    /// The events it printed until one of `key` at or after `since_ms` (20 s at most).
    fn until(&self, key: &str, since_ms: u64) -> Vec<Event> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let Ok(line) = self.lines.recv_timeout(left) else {
                break;
            };
            let event: Event = serde_json::from_str(&line).unwrap_or_else(|_| panic!("{line}"));
            let done = event.at_unix_ms >= since_ms
                && event
                    .instance
                    .as_ref()
                    .is_some_and(|of| of.to_string() == key);
            seen.push(event);
            if done {
                return seen;
            }
        }
        panic!("no event of {key} came: {seen:#?}");
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// The instances `ten events ARGS --json` tells of (`ten` for events about ten itself).
fn events_of(server: &TestServer, args: &[&str]) -> BTreeSet<String> {
    let args = [&["events"], args, &["--json", "--limit", "1000"]].concat();
    let output = server.ten(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    stdout(&output)
        .lines()
        .map(|line| {
            let event: Event = serde_json::from_str(line).unwrap_or_else(|_| panic!("{line}"));
            event
                .instance
                .map_or_else(|| "ten".to_string(), |key| key.to_string())
        })
        .collect()
}

/// `ten events SERVICE` and `ten events group:NAME`, as `ten logs` and `ten ps` take them:
/// the events of their instances only (none about ten itself), followed with `-f` too; an
/// undeclared service or group is an error with a "did you mean".
#[test]
fn events_of_a_service_or_a_group_are_those_of_their_instances() {
    let services = format!(
        "{}{}{}[group.jobs]\nservices = [\"worker\", \"cron\"]\n\n[instances]\nweb = [\"a\"]\nworker = [\"0\", \"1\"]\ncron = [\"x\"]\n",
        backend_service("web", ""),
        backend_service("worker", ""),
        backend_service("cron", ""),
    );
    let dir = project("", &services, &[]);
    let server = TestServer::start(dir.path());
    for key in ["web:a", "worker:0", "worker:1", "cron:x"] {
        server.wait_running(key);
    }

    let set = |keys: &[&str]| {
        keys.iter()
            .map(ToString::to_string)
            .collect::<BTreeSet<_>>()
    };
    assert!(events_of(&server, &[]).is_superset(&set(&["ten", "web:a", "worker:0", "cron:x"])));
    assert_eq!(
        events_of(&server, &["worker"]),
        set(&["worker:0", "worker:1"])
    );
    assert_eq!(
        events_of(&server, &["group:jobs"]),
        set(&["worker:0", "worker:1", "cron:x"])
    );
    assert_eq!(events_of(&server, &["worker:1"]), set(&["worker:1"]));
    // Without --json: each line names its instance.
    let text = stdout(&server.ten(&["events", "worker"]));
    assert!(
        text.contains(" worker:0 ") && text.contains(" worker:1 "),
        "{text}"
    );
    assert!(!text.contains("web:a"), "{text}");

    for (args, error, hint) in [
        (
            &["events", "wroker"][..],
            "service `wroker` is not declared",
            "did you mean `worker`?",
        ),
        (
            &["events", "wroker", "-f"],
            "service `wroker` is not declared",
            "did you mean `worker`?",
        ),
        (
            &["events", "group:job"],
            "group `job` is not declared",
            "did you mean `group:jobs`?",
        ),
    ] {
        let output = server.ten(args);
        assert_eq!(output.status.code(), Some(1), "ten {args:?}");
        assert!(
            stderr(&output).contains(error) && stderr(&output).contains(hint),
            "ten {args:?}: {}",
            stderr(&output)
        );
    }

    // Followed: a restart of worker:0 comes (the stream is up), web:a's does not, worker:1's
    // after it does.
    let follower = Follower::start(
        &server,
        &["events", "worker", "-f", "--json", "--limit", "1"],
    );
    let since = now_ms();
    let restart = server.ten(&["restart", "worker:0"]);
    assert!(restart.status.success(), "{}", stderr(&restart));
    let mut seen = follower.until("worker:0", since);
    let since = now_ms();
    for key in ["web:a", "worker:1"] {
        let restart = server.ten(&["restart", key]);
        assert!(restart.status.success(), "{}", stderr(&restart));
    }
    seen.extend(follower.until("worker:1", since));
    for event in &seen {
        let key = event.instance.as_ref().map(ToString::to_string);
        assert!(
            matches!(key.as_deref(), Some("worker:0" | "worker:1")),
            "{event:#?}"
        );
    }
}
