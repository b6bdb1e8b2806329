//! Workers (`listen = "none"`) and checks (`health_check = { tcp | exec }`) end to end, with
//! real processes: a worker runs, is restarted when it crashes and ends failed past
//! max_restarts; a TCP check follows a port the worker opens; a command check that starts
//! failing makes the instance unhealthy and restarts it; `ten deploy`, `ten weight` and
//! `ten route` of a worker say that it has no HTTP traffic, and what to do instead.

mod support;

use std::time::Duration;

use support::server::{TestServer, project, wait_gone, within};
use ten::observed::{Health, Phase};

/// A python3 worker that prints a tick every 50 ms (and its PORT, which it must not have).
const TICKER: &str = "import os, sys, time\\nprint('port:', os.environ.get('PORT'), flush=True)\\nwhile True:\\n    print('tick', flush=True)\\n    time.sleep(0.05)";

fn worker_service(name: &str, script: &str, extra: &str) -> String {
    format!(
        "[service.{name}]\ncommand = \"python3\"\nargs = [\"-c\", \"{script}\"]\nlisten = \"none\"\nstop_timeout = 2\n{extra}\n"
    )
}

/// The ticker, checked every second by the shell command `check`, run in its data directory.
fn checked_ticker(check: &str, extra: &str) -> String {
    worker_service(
        "ticker",
        TICKER,
        &format!(
            "health_check = {{ exec = [\"sh\", \"-c\", \"{check}\"] }}\nhealth_interval = 1\nworkdir = \"{{data_dir}}/{{name}}/{{id}}\"\n{extra}"
        ),
    )
}

#[test]
fn a_worker_runs_without_a_port_is_restarted_when_it_crashes_and_answers_no_http() {
    let dir = project(
        "max_restarts = 2\nbackoff_base_ms = 100\nbackoff_max_ms = 200\n",
        &format!(
            "{}\n{}\n[instances]\nticker = [\"a\"]\ncrasher = [\"a\"]\n",
            worker_service(
                "ticker",
                TICKER,
                "start_seconds = 1\nstdout_log = \"logs/{name}-{index}.log\""
            ),
            worker_service(
                "crasher",
                "import sys\\nprint('up', flush=True)\\nsys.exit(3)",
                "start_seconds = 1"
            ),
        ),
        &[],
    );
    let server = TestServer::start(dir.path());
    let pid = server.wait_running("ticker:a");
    let view = server.instance("ticker:a").unwrap();
    assert_eq!(
        (view.listen, view.port, view.health),
        (None, None, Health::Healthy)
    );
    // Its output is captured; it has no PORT.
    let logs_have = |text: &str| {
        let output = server.ten(&["logs", "ticker:a", "--limit", "50"]);
        String::from_utf8_lossy(&output.stdout).contains(text)
    };
    assert!(
        within(Duration::from_secs(10), || logs_have("tick")),
        "{}",
        server.log()
    );
    assert!(logs_have("port: None"));
    // ...and written to its own log file.
    let file = dir.path().join("logs/ticker-a.log");
    let in_file = within(Duration::from_secs(10), || {
        std::fs::read_to_string(&file).is_ok_and(|text| text.contains("tick\n"))
    });
    assert!(in_file, "{}", server.log());
    // A request for its name: 404, and why.
    let (status, body) = server.get("a.ticker.localhost", "/");
    assert_eq!(status, 404, "{body}");
    assert!(
        body.contains("answers no HTTP") && body.contains("listen = \"none\""),
        "{body}"
    );
    // Killed, it is restarted (with backoff) as a new process.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(wait_gone(pid));
    let views = server.wait_until("ticker:a runs again", |views| {
        views.iter().any(|view| {
            view.instance.to_string() == "ticker:a"
                && view.phase == Phase::Running
                && view.pid.is_some_and(|new| new != pid)
        })
    });
    assert!(
        views
            .iter()
            .any(|view| view.instance.to_string() == "ticker:a" && view.restarts == 1)
    );
    // One that exits before start_seconds, again and again, ends failed.
    let views = server.wait_until("crasher:a failed", |views| {
        views
            .iter()
            .any(|view| view.instance.to_string() == "crasher:a" && view.phase == Phase::Failed)
    });
    let crasher = views
        .iter()
        .find(|view| view.instance.to_string() == "crasher:a")
        .unwrap();
    assert!(
        crasher.note.as_deref().unwrap_or("").contains("restart"),
        "{crasher:?}"
    );
}

#[test]
fn a_tcp_check_follows_a_port_the_worker_opens() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    // It opens the port a second after it starts, and closes it when a file appears.
    let script = format!(
        "import os, socket, time\\ntime.sleep(1)\\ns = socket.socket()\\ns.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\\ns.bind(('127.0.0.1', {port}))\\ns.listen(16)\\nwhile not os.path.exists('close'):\\n    time.sleep(0.05)\\ns.close()\\ntime.sleep(3600)"
    );
    let dir = project(
        "",
        &format!(
            "{}\n[instances]\nqueue = [\"a\"]\n",
            worker_service(
                "queue",
                &script,
                &format!(
                    "health_check = {{ tcp = {port} }}\nhealth_interval = 1\nhealth_retries = 2\nworkdir = \"{{data_dir}}/{{name}}/{{id}}\""
                )
            )
        ),
        &[],
    );
    let server = TestServer::start(dir.path());
    let first = server.wait_running("queue:a");
    assert_eq!(server.instance("queue:a").unwrap().health, Health::Healthy);
    // The port closes: two failed checks, then unhealthy, and a restart.
    let data = dir.path().join("tenement-data/queue/a");
    std::fs::write(data.join("close"), "").unwrap();
    server.wait_until("queue:a restarted for its check", |views| {
        views.iter().any(|view| {
            view.instance.to_string() == "queue:a" && view.pid.is_some_and(|pid| pid != first)
        })
    });
    assert!(
        server.log().contains("unhealthy after 2 failed checks"),
        "{}",
        server.log()
    );
}

#[test]
fn a_command_check_that_starts_failing_makes_the_instance_unhealthy_and_restarts_it() {
    // The check counts its runs in the instance's data directory and fails from the 4th
    // on; it runs in the instance's environment (MARK) and directory.
    let check = "n=$(cat runs 2>/dev/null || echo 0); n=$((n+1)); echo $n > runs; test x$MARK = xhere && test $n -le 3";
    let dir = project(
        "",
        &format!(
            "{}\n[service.ticker.env]\nMARK = \"here\"\n[instances]\nticker = [\"a\"]\n",
            checked_ticker(check, "health_retries = 2\nhealth_timeout = 5")
        ),
        &[],
    );
    let server = TestServer::start(dir.path());
    let first = server.wait_running("ticker:a");
    server.wait_until("ticker:a restarted by its check", |views| {
        views.iter().any(|view| {
            view.instance.to_string() == "ticker:a" && view.pid.is_some_and(|pid| pid != first)
        })
    });
    let log = server.log();
    assert!(log.contains("unhealthy after 2 failed checks"), "{log}");
    assert!(log.contains("exited with 1"), "{log}");
    let runs: u32 = std::fs::read_to_string(dir.path().join("tenement-data/ticker/a/runs"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(runs >= 5, "{runs}");
}

#[test]
fn a_process_set_of_four_runs_four_and_a_smaller_count_destroys_the_highest() {
    let script =
        "import os, time\\nprint('index', os.environ['INDEX'], flush=True)\\ntime.sleep(3600)";
    let config = |count: u32| {
        format!(
            "{}\n[service.worker.env]\nINDEX = \"{{index}}\"\n[instances]\nworker = {{ count = {count} }}\n",
            worker_service("worker", script, "start_seconds = 0")
        )
    };
    let dir = project("", &config(4), &[]);
    let server = TestServer::start(dir.path());
    let ids = ["worker:0", "worker:1", "worker:2", "worker:3"];
    let mut pids = Vec::new();
    for id in ids {
        pids.push(server.wait_running(id));
    }
    pids.sort_unstable();
    pids.dedup();
    assert_eq!(pids.len(), 4, "four processes");
    let logged = within(Duration::from_secs(10), || {
        let output = server.ten(&["logs", "worker:2"]);
        String::from_utf8_lossy(&output.stdout).contains("index 2")
    });
    assert!(logged, "{}", server.log());
    // count = 2: the plan destroys worker:2 and worker:3, and applying it leaves two.
    let path = dir.path().join("tenement.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let offline = dir.path().join("next.toml");
    std::fs::write(&offline, text.replace("count = 4", "count = 2")).unwrap();
    std::fs::rename(&offline, &path).unwrap();
    let views = server.wait_until("two workers left", |views| {
        views.iter().filter(|view| view.service == "worker").count() == 2
    });
    let left: Vec<String> = views.iter().map(|view| view.instance.to_string()).collect();
    assert_eq!(left, ["worker:0", "worker:1"]);
    assert!(server.log().contains("destroy"), "{}", server.log());
}

#[test]
fn the_plan_of_a_smaller_process_set_destroys_the_highest_indexes() {
    let script = "import time\\ntime.sleep(3600)";
    let dir = project(
        "auto_apply = false\n",
        &format!(
            "{}\n[instances]\nworker = {{ count = 3 }}\n",
            worker_service("worker", script, "start_seconds = 0")
        ),
        &[],
    );
    let server = TestServer::start(dir.path());
    // Created, a worker shows no port: it gets none.
    let plan = String::from_utf8_lossy(&server.ten(&["diff"]).stdout).to_string();
    assert!(
        plan.contains("+ worker:0") && !plan.contains("known after apply"),
        "{plan}"
    );
    let output = server.ten(&["apply", "--auto-approve"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    server.wait_running("worker:2");
    let path = dir.path().join("tenement.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("count = 3", "count = 1")).unwrap();
    let plan = within(Duration::from_secs(10), || {
        let output = server.ten(&["diff", "--json"]);
        let plan: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
        plan.to_string().contains("worker:2") && plan.to_string().contains("worker:1")
    });
    assert!(plan, "{}", server.log());
    let output = server.ten(&["diff"]);
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        text.contains("- worker:1") && text.contains("- worker:2"),
        "{text}"
    );
    assert!(text.contains("2 to destroy"), "{text}");
    let output = server.ten(&["apply", "--auto-approve"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let views = server.ps();
    let left: Vec<String> = views.iter().map(|view| view.instance.to_string()).collect();
    assert_eq!(left, ["worker:0"]);
}

/// The pid of the spawner of the ten `ten`: its child running `ten __spawner`.
fn spawner_of(ten: u32) -> Option<u32> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            let parent: u32 = stat[stat.rfind(')')? + 2..]
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            let command = std::fs::read(entry.path().join("cmdline")).ok()?;
            (parent == ten && command.split(|byte| *byte == 0).nth(1) == Some(b"__spawner"))
                .then_some(pid)
        })
}

#[test]
fn command_checks_are_children_of_ten_in_the_instance_cgroup_and_outlive_their_spawner() {
    // Each run notes its parent and cgroups, and counts itself, in the instance's directory.
    let check = "echo $PPID > parent; cat /proc/self/cgroup > cgroup; n=$(cat runs 2>/dev/null || echo 0); echo $((n+1)) > runs";
    let dir = project(
        "",
        &format!(
            "{}\n[instances]\nticker = [\"a\"]\n",
            checked_ticker(check, "")
        ),
        &[],
    );
    let server = TestServer::start(dir.path());
    let worker = server.wait_running("ticker:a");
    let data = dir.path().join("tenement-data/ticker/a");
    let runs = || -> u32 {
        std::fs::read_to_string(data.join("runs"))
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(0)
    };
    assert!(
        within(Duration::from_secs(10), || runs() >= 2),
        "the check never ran twice"
    );
    let parent = std::fs::read_to_string(data.join("parent")).unwrap();
    assert_eq!(
        parent.trim(),
        server.pid().to_string(),
        "the check's parent"
    );
    let cgroups = std::fs::read_to_string(data.join("cgroup")).unwrap();
    let worker_cgroups = std::fs::read_to_string(format!("/proc/{worker}/cgroup")).unwrap();
    assert_eq!(
        cgroups, worker_cgroups,
        "the check runs in the worker's cgroups"
    );

    // Killed, the spawner is replaced, and no check is missed meanwhile.
    let spawner = spawner_of(server.pid()).expect("ten started a spawner");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(spawner as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(wait_gone(spawner));
    let before = runs();
    assert!(
        within(Duration::from_secs(10), || runs() >= before + 3),
        "checks stopped after the spawner was killed"
    );
    let replaced = spawner_of(server.pid());
    assert!(replaced.is_some_and(|pid| pid != spawner), "{replaced:?}");
    assert_eq!(server.instance("ticker:a").unwrap().health, Health::Healthy);
    assert!(
        !server.log().contains("could not be started"),
        "{}",
        server.log()
    );
}

#[test]
fn a_command_check_whose_program_is_missing_says_so() {
    let dir = project(
        "",
        &format!(
            "{}\n[instances]\nticker = [\"a\"]\n",
            worker_service(
                "ticker",
                TICKER,
                "health_check = { exec = [\"no-such-check-program\", \"-q\"] }\nstartup_timeout = 2"
            )
        ),
        &[],
    );
    let server = TestServer::start(dir.path());
    assert!(
        within(Duration::from_secs(15), || server
            .log()
            .contains("`no-such-check-program -q` could not be started")),
        "{}",
        server.log()
    );
    let log = server.log();
    assert!(log.contains("not found in PATH"), "{log}");
}

/// `ten serve &` in a script starts ten with SIGINT and SIGQUIT ignored, `nohup` with SIGHUP
/// ignored, and an ignored signal stays ignored across exec. A tenant must not inherit that:
/// its `stop_signal = "INT"` would do nothing (every stop would end in SIGKILL), and an app
/// that reloads on SIGHUP would never reload. Every way a tenant starts is looked at: the
/// spawner (the first starts, a burst), a spare (a start alone, as root) and a restart.
#[test]
fn a_tenant_starts_with_every_signal_at_its_default_whatever_ten_inherited() {
    let dir = project(
        "",
        &format!(
            "{}\n[instances]\nw = [\"a\", \"b\", \"c\"]\n",
            "[service.w]\ncommand = \"sleep 1000\"\n\
             listen = \"none\"\nstop_signal = \"INT\"\nstop_timeout = 2\n"
        ),
        &[],
    );
    let server = TestServer::start_wrapped(
        dir.path(),
        &["sh", "-c", "trap '' INT QUIT HUP; exec \"$@\"", "sh"],
    );
    // The wrapper did its part: ten itself ignores them.
    let ignored_by_ten =
        signal_masks(&std::fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap());
    assert_ne!(
        ignored_by_ten.0, 0,
        "ten should have started with signals ignored"
    );
    for id in ["a", "b", "c"] {
        server.wait_running(&format!("w:{id}"));
    }
    // One more, alone (a spare takes it, as root).
    std::fs::create_dir_all(dir.path().join("instances/w")).unwrap();
    std::fs::write(dir.path().join("instances/w/d.toml"), "").unwrap();
    server.wait_running("w:d");
    // The tenant's own status (sleep changes none of its signals).
    let masks_of = |key: &str| {
        let pid = server.instance(key).and_then(|view| view.pid).unwrap();
        signal_masks(&std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap())
    };
    for key in ["w:a", "w:b", "w:c", "w:d"] {
        assert_eq!(masks_of(key), (0, 0), "{key}: (ignored, blocked) signals");
    }
    // A stop by SIGINT ends it: no SIGKILL after the stop_timeout.
    let stopped = server.ten(&["stop", "w:a"]);
    assert!(
        stopped.status.success(),
        "{}",
        support::server::stderr(&stopped)
    );
    let events = support::server::stdout(&server.ten(&["events", "w:a"]));
    assert!(
        events.contains("stopped") && !events.contains("SIGKILL"),
        "{events}"
    );
}

/// The `SigIgn` and `SigBlk` masks of a `/proc/PID/status` text.
fn signal_masks(status: &str) -> (u64, u64) {
    let mask = |name: &str| {
        let key = format!("{name}:");
        status
            .lines()
            .filter_map(|line| line.split_once(&key))
            .filter_map(|(_, value)| u64::from_str_radix(value.trim(), 16).ok())
            .next_back()
            .unwrap_or_else(|| panic!("no {name} in {status}"))
    };
    (mask("SigIgn"), mask("SigBlk"))
}

/// `ten health` looks, and looking changes nothing: on a worker without a check it says what
/// `ten ps` says (it has no port to connect to); on one whose check fails, it reports the
/// failure each time but counts none of them toward a restart (the periodic checks decide).
#[test]
fn ten_health_by_hand_reports_without_counting_toward_a_restart() {
    let dir = project(
        "",
        "[service.w]\ncommand = \"sleep 1000\"\nlisten = \"none\"\nstart_seconds = 1\nstop_timeout = 2\n\n\
         [service.c]\ncommand = \"sleep 1000\"\nlisten = \"none\"\nstop_timeout = 2\n\
         health_check = { exec = [\"test\", \"-e\", \"ok\"] }\nhealth_interval = 3600\nhealth_retries = 2\n\
         workdir = \"{data_dir}/{name}/{id}\"\n\n\
         [instances]\nw = [\"a\"]\nc = [\"a\"]\n",
        &[],
    );
    // The check passes at the start, then the file it looks for is gone.
    let workdir = dir.path().join("tenement-data/c/a");
    std::fs::create_dir_all(&workdir).unwrap();
    std::fs::write(workdir.join("ok"), "").unwrap();
    let server = TestServer::start(dir.path());
    let worker = server.wait_running("w:a");
    let checked = server.wait_running("c:a");
    server.wait_until("both healthy", |views| {
        views
            .iter()
            .all(|view| view.health == ten::observed::Health::Healthy)
    });
    std::fs::remove_file(workdir.join("ok")).unwrap();
    for _ in 0..4 {
        let looked = server.ten(&["health", "w:a"]);
        assert!(
            looked.status.success(),
            "{}{}",
            support::server::stdout(&looked),
            support::server::stderr(&looked)
        );
        assert!(support::server::stdout(&looked).contains("healthy"));
        let failing = server.ten(&["health", "c:a"]);
        assert!(!failing.status.success(), "the check fails now");
    }
    std::thread::sleep(Duration::from_secs(1));
    let views = server.ps();
    for (key, pid) in [("w:a", worker), ("c:a", checked)] {
        let view = views
            .iter()
            .find(|v| v.instance.to_string() == key)
            .unwrap();
        assert_eq!(
            (view.pid, view.restarts),
            (Some(pid), 0),
            "{key} was restarted:\n{}",
            support::server::stdout(&server.ten(&["events", key]))
        );
    }
}

/// `ten restart` of one instance: one that ended (exited) is started again and the answer
/// waits for the new run, not the old exit; one declared stopped is left so, at once.
#[test]
fn restart_waits_for_the_new_run_of_an_exited_instance_and_leaves_a_stopped_one() {
    let dir = project(
        "",
        "[service.clean]\ncommand = \"sh -c 'echo ran; sleep 2; exit 0'\"\nlisten = \"none\"\n\
         restart = \"on-failure\"\nstart_seconds = 1\nstop_timeout = 2\n\n\
         [service.set]\ncommand = \"sleep 1000\"\nlisten = \"none\"\nstop_timeout = 2\n\n\
         [instances]\nclean = [\"c\"]\nset = [\"s\"]\n",
        &[],
    );
    let server = TestServer::start(dir.path());
    server.wait_running("set:s");
    server.wait_until("clean:c exited", |views| {
        views
            .iter()
            .any(|view| view.instance.to_string() == "clean:c" && view.phase == Phase::Exited)
    });
    let restart = server.ten(&["restart", "clean:c"]);
    let said = support::server::stdout(&restart);
    assert!(
        restart.status.success(),
        "{said}{}",
        support::server::stderr(&restart)
    );
    assert!(said.contains("restarted: running (pid"), "{said}");
    assert!(!said.contains("port 0"), "a worker has no port: {said}");

    assert!(server.ten(&["stop", "set:s"]).status.success());
    let restart = server.ten(&["restart", "set:s"]);
    let said = support::server::stderr(&restart);
    assert_eq!(restart.status.code(), Some(1), "{said}");
    assert!(
        said.contains("declared stopped") && said.contains("ten start set:s"),
        "{said}"
    );
}

/// `ten deploy`, `ten weight` and `ten route` move HTTP traffic; a worker has none. Each says
/// so and what to do instead, before any file is written (it said that `weight` had to be
/// removed from an instance file the user never wrote).
#[test]
fn traffic_commands_on_a_worker_say_it_has_no_http_traffic_and_what_to_do() {
    let dir = project(
        "",
        &format!(
            "{}\n[instances]\nticker = [\"a\", \"b\"]\n",
            worker_service("ticker", TICKER, "")
        ),
        &[],
    );
    let server = TestServer::start(dir.path());
    server.wait_running("ticker:a");
    server.wait_running("ticker:b");
    let cases: [(&[&str], &str); 3] = [
        (&["deploy", "ticker:v2"], "ten restart ticker"),
        (&["weight", "ticker:a", "50"], "ten stop ticker:a"),
        (
            &["route", "ticker", "--from", "a", "--to", "b"],
            "ten stop ticker:a",
        ),
    ];
    for (args, instead) in cases {
        let output = server.ten(args);
        let said = support::server::stderr(&output);
        assert_eq!(output.status.code(), Some(1), "ten {args:?}: {said}");
        assert!(
            said.contains("HTTP traffic")
                && said.contains("ticker is a worker")
                && said.contains("listen = \"none\"")
                && said.contains(instead),
            "ten {args:?}: {said}"
        );
        assert!(!said.contains("remove `weight`"), "ten {args:?}: {said}");
        // --json: the same error, as JSON.
        let mut json_args = args.to_vec();
        json_args.push("--json");
        let output = server.ten(&json_args);
        let error: serde_json::Value = serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|_| panic!("{}", support::server::stdout(&output)));
        assert!(
            error["error"].as_str().unwrap().contains("HTTP traffic"),
            "{error}"
        );
    }
    assert!(!dir.path().join("instances/ticker/v2.toml").exists());
    assert!(!dir.path().join("instances/ticker/a.toml").exists());
    assert!(!dir.path().join("instances/ticker/b.toml").exists());
}

/// A worker's weight means nothing (it takes no HTTP traffic): `ten ps` shows none ("-")
/// where it showed 100, and the API says it is a worker.
#[test]
fn a_worker_shows_no_weight_in_ps_and_the_api_says_it_is_one() {
    let dir = project(
        "",
        &format!(
            "{}\n[instances]\nticker = [\"a\"]\n",
            worker_service("ticker", TICKER, "")
        ),
        &[],
    );
    let server = TestServer::start(dir.path());
    server.wait_running("ticker:a");
    let output = server.ten(&["ps"]);
    let text = support::server::stdout(&output);
    let header: Vec<&str> = text.lines().next().unwrap().split_whitespace().collect();
    let column = header.iter().position(|name| *name == "WEIGHT").unwrap();
    let row: Vec<&str> = text
        .lines()
        .find(|line| line.starts_with("ticker:a"))
        .unwrap_or_else(|| panic!("{text}"))
        .split_whitespace()
        .collect();
    assert_eq!(row[column], "-", "{text}");
    let output = server.ten(&["ps", "--json"]);
    let views: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(views[0]["instance"], "ticker:a", "{views}");
    assert_eq!(views[0]["worker"], true, "{views}");
}
