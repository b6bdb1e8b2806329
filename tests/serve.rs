//! `ten serve` end to end: the real binary, real tenant processes, files edited while it runs.

mod support;

use std::fs;
use std::time::{Duration, Instant};

use support::http::{Request, Response};
use support::server::{
    TestServer, alive, backend, backend_service, project, stderr, stdout, wait_gone, within,
};
use ten::observed::{Health, Phase};

fn key_pid(views: &[ten::api::types::InstanceView], key: &str) -> Option<u32> {
    views
        .iter()
        .find(|v| v.instance.to_string() == key)
        .and_then(|v| v.pid)
}

#[test]
fn dropping_and_deleting_instance_files_starts_and_stops_tenants() {
    let dir = project(
        "",
        &backend_service("web", ""),
        &[
            ("instances/web/alice.toml", ""),
            ("instances/web/bob.toml", ""),
        ],
    );
    let server = TestServer::start(dir.path());
    let alice = server.wait_running("web:alice");
    server.wait_running("web:bob");

    support::write_file(&dir.path().join("instances/web/carol.toml"), "");
    let carol = server.wait_running("web:carol");

    fs::remove_file(dir.path().join("instances/web/carol.toml")).unwrap();
    server.wait_until("web:carol is gone", |views| {
        !views.iter().any(|v| v.instance.to_string() == "web:carol")
    });
    assert!(wait_gone(carol), "carol's process {carol} is gone");
    assert!(alive(alice), "alice was not touched");
    assert_eq!(key_pid(&server.ps(), "web:alice"), Some(alice));
    assert!(alive(server.pid()), "the server was never restarted");
    assert!(stdout(&server.ten(&["diff"])).contains("No changes."));
}

#[test]
fn editing_a_template_replaces_exactly_its_instances() {
    let services = format!(
        "{}\n{}",
        backend_service("web", "[service.web.env]\nLOG_LEVEL = \"info\""),
        backend_service("api", "")
    );
    let dir = project(
        "",
        &services,
        &[
            ("instances/web/a.toml", ""),
            ("instances/web/b.toml", ""),
            ("instances/api/x.toml", ""),
        ],
    );
    let server = TestServer::start(dir.path());
    let (a, b, x) = (
        server.wait_running("web:a"),
        server.wait_running("web:b"),
        server.wait_running("api:x"),
    );

    let config = fs::read_to_string(dir.path().join("tenement.toml")).unwrap();
    fs::write(
        dir.path().join("tenement.toml"),
        config.replace("\"info\"", "\"debug\""),
    )
    .unwrap();
    let views = server.wait_until("web's instances are replaced", |views| {
        ["web:a", "web:b"].iter().all(|key| {
            let pid = key_pid(views, key);
            pid.is_some()
                && pid != Some(a)
                && pid != Some(b)
                && views
                    .iter()
                    .any(|v| v.instance.to_string() == *key && v.phase == Phase::Running)
        })
    });
    assert_eq!(
        key_pid(&views, "api:x"),
        Some(x),
        "the other service keeps its process"
    );
    assert!(wait_gone(a) && wait_gone(b));
    let env = get_direct(&views, "web:a", "/env");
    assert_eq!(env.status, 200, "{env:?}");
    assert!(env.body.contains("LOG_LEVEL=debug"), "{}", env.body);
    assert!(stdout(&server.ten(&["diff"])).contains("No changes."));
}

#[test]
fn broken_files_touch_no_tenant_and_fixing_them_converges() {
    let dir = project(
        "",
        &backend_service("web", ""),
        &[
            ("instances/web/alice.toml", "# alice\n"),
            ("instances/web/bob.toml", ""),
        ],
    );
    let server = TestServer::start(dir.path());
    let alice = server.wait_running("web:alice");
    let bob = server.wait_running("web:bob");
    let config_path = dir.path().join("tenement.toml");
    let good = fs::read_to_string(&config_path).unwrap();

    // A broken tenement.toml: nothing changes, `ten diff` exits 1 naming file and line.
    fs::write(&config_path, format!("{good}\n[service.web.env\n")).unwrap();
    let seen = || stderr(&server.ten(&["ps"])).contains("the files have errors");
    assert!(
        within(Duration::from_secs(20), seen),
        "the server never saw the broken file"
    );
    // With --json too: stdout stays the array, stderr says it.
    let json = server.ten(&["ps", "--json"]);
    assert!(json.status.success());
    assert!(serde_json::from_slice::<serde_json::Value>(&json.stdout).is_ok_and(|v| v.is_array()));
    assert!(
        stderr(&json).contains("the files have errors"),
        "{}",
        stderr(&json)
    );
    let diff = server.ten(&["diff"]);
    assert_eq!(diff.status.code(), Some(1), "{}", stdout(&diff));
    assert!(
        stderr(&diff).contains("--> tenement.toml:"),
        "{}",
        stderr(&diff)
    );
    let views = server.ps();
    assert_eq!(
        (key_pid(&views, "web:alice"), key_pid(&views, "web:bob")),
        (Some(alice), Some(bob))
    );

    // Fixed, with a change: it converges.
    fs::write(
        &config_path,
        good.replace(
            "stop_timeout = 2",
            "stop_timeout = 2\n[service.web.env]\nFIXED = \"yes\"",
        ),
    )
    .unwrap();
    server.wait_until("the fix converges", |views| {
        let pid = key_pid(views, "web:alice");
        pid.is_some() && pid != Some(alice) && views.iter().all(|v| v.phase == Phase::Running)
    });
    let alice = server.wait_running("web:alice");
    let bob = server.wait_running("web:bob");

    // A broken instance file freezes only its instance.
    fs::write(dir.path().join("instances/web/alice.toml"), "weight = \n").unwrap();
    support::write_file(&dir.path().join("instances/web/carol.toml"), "");
    server.wait_running("web:carol");
    let diff = server.ten(&["diff"]);
    assert_eq!(diff.status.code(), Some(1));
    assert!(
        stderr(&diff).contains("--> instances/web/alice.toml:1:"),
        "{}",
        stderr(&diff)
    );
    let views = server.ps();
    assert_eq!(
        (key_pid(&views, "web:alice"), key_pid(&views, "web:bob")),
        (Some(alice), Some(bob))
    );

    fs::write(dir.path().join("instances/web/alice.toml"), "# alice\n").unwrap();
    server.wait_until("the diff is clean again", |_| {
        server.ten(&["diff", "--detailed-exitcode"]).status.code() == Some(0)
    });
    assert_eq!(
        key_pid(&server.ps(), "web:alice"),
        Some(alice),
        "fixed to what it was: nothing to do"
    );
}

#[test]
fn a_killed_tenant_is_restarted_promptly_while_a_crash_loop_ends_failed() {
    let settings = "max_restarts = 3\nbackoff_base_ms = 200\nbackoff_max_ms = 2000";
    let services = format!(
        "{}\n[service.crash]\ncommand = \"sh -c 'echo crashing; exit 3'\"\n",
        backend_service("web", "")
    );
    let dir = project(
        settings,
        &services,
        &[
            ("instances/web/ok.toml", ""),
            ("instances/crash/loop.toml", ""),
        ],
    );
    let server = TestServer::start(dir.path());
    let pid = server.wait_running("web:ok");
    // While the other one loops, kill this one.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let views = server.wait_until("web:ok runs again", |views| {
        let new = key_pid(views, "web:ok");
        new.is_some()
            && new != Some(pid)
            && views
                .iter()
                .any(|v| v.instance.to_string() == "web:ok" && v.phase == Phase::Running)
    });
    assert_eq!(
        views
            .iter()
            .find(|v| v.instance.to_string() == "web:ok")
            .unwrap()
            .restarts,
        1
    );
    // Promptly: on its own first backoff step, whatever the crash loop next door is at.
    let events = stdout(&server.ten(&["events", "web:ok"]));
    assert!(
        events.contains("killed by signal 9 (SIGKILL); restarting in 200ms"),
        "{events}"
    );

    let views = server.wait_until("crash:loop fails", |views| {
        views
            .iter()
            .any(|v| v.instance.to_string() == "crash:loop" && v.phase == Phase::Failed)
    });
    let looping = views
        .iter()
        .find(|v| v.instance.to_string() == "crash:loop")
        .unwrap();
    assert_eq!(looping.health, Health::Failed);
    assert!(
        looping
            .note
            .as_deref()
            .unwrap()
            .contains("after 3 restarts"),
        "{looping:?}"
    );
    let ps = stdout(&server.ten(&["ps"]));
    assert!(
        ps.contains("crash:loop: failed: exited with code 3"),
        "{ps}"
    );
    // A failed instance shows as drift; `ten restart` retries it.
    let diff = stdout(&server.ten(&["diff"]));
    assert!(
        diff.contains("# crash:loop: failed after 3 restarts"),
        "{diff}"
    );
    let logs = stdout(&server.ten(&["logs", "crash:loop"]));
    assert!(logs.matches("crashing").count() >= 4, "{logs}");
}

#[test]
fn rm_leaves_no_process_of_the_tenant_behind() {
    let services = "[service.group]\ncommand = \"sh -c 'sleep 1000 & sleep 1000'\"\nstartup_timeout = 600\nstop_timeout = 2\n";
    let dir = project("", services, &[("instances/group/one.toml", "")]);
    let server = TestServer::start(dir.path());
    let views = server.wait_until("the group starts", |views| {
        key_pid(views, "group:one").is_some()
    });
    let leader = key_pid(&views, "group:one").unwrap();
    let started = || group_members(leader).len() >= 3;
    assert!(
        within(Duration::from_secs(10), started),
        "sh and two sleeps: {:?}",
        group_members(leader)
    );
    let members = group_members(leader);

    let output = server.ten(&["rm", "group:one"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(!dir.path().join("instances/group/one.toml").exists());
    for pid in members {
        assert!(
            wait_gone(pid),
            "process {pid} of the group survived `ten rm`"
        );
    }
}

#[test]
fn a_tenant_ignoring_sigterm_is_killed_after_stop_timeout() {
    let services = format!(
        "[service.stubborn]\ncommand = \"sh -c 'trap \\\"\\\" TERM; exec {}'\"\nhealth = \"/health\"\nstop_timeout = 1\n",
        backend().display()
    );
    let dir = project("", &services, &[("instances/stubborn/one.toml", "")]);
    let server = TestServer::start(dir.path());
    let pid = server.wait_running("stubborn:one");
    let asked = Instant::now();
    let output = server.ten(&["stop", "stubborn:one"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let took = asked.elapsed();
    assert!(!alive(pid));
    assert!(
        took >= Duration::from_secs(1),
        "it was not given stop_timeout: {took:?}"
    );
    let events = stdout(&server.ten(&["events", "stubborn:one"]));
    assert!(
        events.contains("still running 1s after TERM; sending SIGKILL"),
        "{events}"
    );
}

#[test]
fn invalid_utf8_and_a_huge_line_are_captured_and_the_tenant_keeps_running() {
    let script = format!(
        "printf '\\\\377\\\\376 not utf-8\\\\n'; head -c 1048576 /dev/zero | tr '\\\\0' x; echo; echo after the long line; exec {}",
        backend().display()
    );
    let services = format!(
        "[service.noisy]\ncommand = \"sh\"\nargs = [\"-c\", \"{script}\"]\nhealth = \"/health\"\n"
    );
    let dir = project("", &services, &[("instances/noisy/one.toml", "")]);
    let server = TestServer::start(dir.path());
    let pid = server.wait_running("noisy:one");
    let views = server.ps();
    // Any answer will do (a 404): the backend logs the request line.
    get_direct(&views, "noisy:one", "/after-the-noise");
    // Until the request's line is captured, or 10 s: the assertions below say what is missing.
    let logs = || stdout(&server.ten(&["logs", "noisy:one", "--limit", "50"]));
    within(Duration::from_secs(10), || {
        logs().contains("GET /after-the-noise")
    });
    let logs = logs();
    assert!(logs.contains("\u{fffd}\u{fffd} not utf-8"), "{logs}");
    assert!(
        logs.contains("[line cut: 1032192 more bytes]"),
        "the 1 MiB line is cut: {}",
        &logs[..logs.len().min(300)]
    );
    assert!(logs.contains("after the long line"));
    assert!(
        logs.contains("GET /after-the-noise"),
        "later output is captured"
    );
    assert_eq!(
        key_pid(&server.ps(), "noisy:one"),
        Some(pid),
        "still the same process"
    );
}

#[test]
fn with_auto_apply_off_changes_wait_for_apply() {
    let dir = project("auto_apply = false", &backend_service("web", ""), &[]);
    let server = TestServer::start(dir.path());
    support::write_file(&dir.path().join("instances/web/new.toml"), "");
    server.wait_until("the new file is seen", |views| {
        views.iter().any(|v| v.instance.to_string() == "web:new")
    });
    // Held: every pass from now on plans the start and holds it.
    let held = || stderr(&server.ten(&["ps"])).contains("changes are held: auto_apply = false");
    assert!(
        within(Duration::from_secs(20), held),
        "the start is not held"
    );
    let view = server.instance("web:new").unwrap();
    assert_eq!(
        (view.phase, view.pid),
        (Phase::Stopped, None),
        "not started"
    );
    // ps tells it from an instance declared stopped.
    let ps = stdout(&server.ten(&["ps"]));
    assert!(
        ps.lines()
            .any(|line| line.starts_with("web:new") && line.contains("pending")),
        "{ps}"
    );
    let diff = server.ten(&["diff", "--detailed-exitcode"]);
    assert_eq!(diff.status.code(), Some(2), "{}", stdout(&diff));
    assert!(stdout(&diff).contains("+ web:new"));
    assert!(
        stderr(&diff).contains("auto_apply = false"),
        "{}",
        stderr(&diff)
    );

    let apply = server.ten(&["apply", "--auto-approve"]);
    assert!(
        apply.status.success(),
        "{}{}",
        stdout(&apply),
        stderr(&apply)
    );
    assert!(
        stdout(&apply).contains("✓ web:new: create: running (pid"),
        "{}",
        stdout(&apply)
    );
    assert!(stdout(&apply).contains("Apply complete: 1 done, 0 failed."));
    assert_eq!(server.instance("web:new").unwrap().phase, Phase::Running);
    let diff = server.ten(&["diff", "--detailed-exitcode"]);
    assert_eq!(diff.status.code(), Some(0), "{}", stdout(&diff));
    assert_eq!(server.get("new.web.localhost", "/").0, 200);

    // Its file deleted: the destroy waits for apply, and until then the tenant still runs
    // and still answers (a held destroy must not take it off the network).
    std::fs::remove_file(dir.path().join("instances/web/new.toml")).unwrap();
    assert!(
        within(Duration::from_secs(20), || stdout(&server.ten(&["diff"]))
            .contains("- web:new")),
        "the destroy is not planned"
    );
    assert!(
        within(Duration::from_secs(20), held),
        "the destroy is not held"
    );
    let (status, body) = server.get("new.web.localhost", "/");
    assert_eq!(status, 200, "held, yet no longer served: {body}");
    let apply = server.ten(&["apply", "--auto-approve"]);
    assert!(apply.status.success(), "{}", stderr(&apply));
    let (status, body) = server.get("new.web.localhost", "/");
    assert_eq!(status, 404, "{body}");
}

#[test]
fn apply_asks_and_refuses_without_a_terminal_or_with_a_stale_token() {
    let dir = project(
        "auto_apply = false",
        &backend_service("web", ""),
        &[("instances/web/a.toml", "")],
    );
    let server = TestServer::start(dir.path());
    let apply = server.ten(&["apply"]);
    assert_eq!(apply.status.code(), Some(1));
    assert!(
        stderr(&apply).contains("refusing to ask for confirmation without a terminal"),
        "{}",
        stderr(&apply)
    );
    let stale = server.ten(&["apply", "--auto-approve", "--check", "0000000000000000"]);
    assert_eq!(stale.status.code(), Some(1));
    assert!(stderr(&stale).contains("the plan changed since token 0000000000000000"));
    assert_eq!(
        server.instance("web:a").unwrap().pid,
        None,
        "nothing was applied"
    );
}

#[test]
fn cli_commands_edit_files_and_keep_comments() {
    let dir = project(
        "",
        &backend_service("web", ""),
        &[(
            "instances/web/alice.toml",
            "# Alice's shop\nweight = 100 # all of it\n",
        )],
    );
    let server = TestServer::start(dir.path());
    server.wait_running("web:alice");

    let stop = server.ten(&["stop", "web:alice"]);
    assert!(stop.status.success(), "{}", stderr(&stop));
    let file = fs::read_to_string(dir.path().join("instances/web/alice.toml")).unwrap();
    assert_eq!(
        file,
        "# Alice's shop\nweight = 100 # all of it\nstate = \"stopped\"\n"
    );
    assert_eq!(server.instance("web:alice").unwrap().phase, Phase::Stopped);

    let start = server.ten(&["start", "web:alice"]);
    assert!(start.status.success(), "{}", stderr(&start));
    assert!(
        fs::read_to_string(dir.path().join("instances/web/alice.toml"))
            .unwrap()
            .contains("state = \"running\"")
    );
    server.wait_running("web:alice");

    let spawn = server.ten(&["spawn", "web", "--id", "bob"]);
    assert!(spawn.status.success(), "{}", stderr(&spawn));
    assert!(
        stdout(&spawn).contains("running (pid"),
        "{}",
        stdout(&spawn)
    );
    assert!(dir.path().join("instances/web/bob.toml").exists());
    let health = server.ten(&["health", "web:bob"]);
    assert_eq!(
        (health.status.code(), stdout(&health)),
        (Some(0), "web:bob: healthy\n".to_string())
    );

    let bob = server.wait_running("web:bob");
    let restart = server.ten(&["restart", "web:bob"]);
    assert!(restart.status.success(), "{}", stderr(&restart));
    assert!(wait_gone(bob));
    assert_ne!(server.instance("web:bob").unwrap().pid, Some(bob));

    let rm = server.ten(&["rm", "web:bob"]);
    assert!(rm.status.success(), "{}", stderr(&rm));
    assert!(!dir.path().join("instances/web/bob.toml").exists());
    let unknown = server.ten(&["restart", "web:zed"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        stderr(&unknown).contains("web:zed is not declared"),
        "{}",
        stderr(&unknown)
    );
    assert!(stdout(&server.ten(&["diff"])).contains("No changes."));
}

#[test]
fn deleting_most_instances_at_once_is_held_for_a_human() {
    let files: Vec<(String, &str)> = (0..4)
        .map(|n| (format!("instances/web/t{n}.toml"), ""))
        .collect();
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(path, body)| (path.as_str(), *body))
        .collect();
    let dir = project(
        "max_destroy_percent = 50",
        &backend_service("web", ""),
        &files,
    );
    let server = TestServer::start(dir.path());
    for n in 0..4 {
        server.wait_running(&format!("web:t{n}"));
    }
    for n in 1..4 {
        fs::remove_file(dir.path().join(format!("instances/web/t{n}.toml"))).unwrap();
    }
    // Held: every pass from now on plans the three destroys and holds them.
    let held = || stderr(&server.ten(&["ps"])).contains("more than max_destroy_percent = 50");
    assert!(
        within(Duration::from_secs(20), held),
        "the destroys are not held: {}",
        stderr(&server.ten(&["ps"]))
    );
    let views = server.ps();
    assert_eq!(
        views.iter().filter(|v| v.phase == Phase::Running).count(),
        4,
        "nothing destroyed"
    );
    let apply = server.ten(&["apply", "--auto-approve"]);
    assert!(apply.status.success(), "{}", stderr(&apply));
    assert_eq!(server.ps().len(), 1);
}

#[test]
fn tenants_get_a_clean_environment() {
    let dir = project(
        "",
        &backend_service("web", "[service.web.env]\nGREETING = \"hi {id}\""),
        &[("instances/web/a.toml", "")],
    );
    let server = TestServer::start_with(
        dir.path(),
        &[
            ("TENEMENT_TOKEN", "server-secret"),
            ("AWS_SECRET_ACCESS_KEY", "nope"),
        ],
    );
    server.wait_running("web:a");
    let env = get_direct(&server.ps(), "web:a", "/env");
    assert_eq!(env.status, 200, "{env:?}");
    let env = env.body;
    let names: Vec<&str> = env
        .lines()
        .map(|line| line.split('=').next().unwrap())
        .collect();
    assert_eq!(
        names,
        ["GREETING", "HOME", "LANG", "PATH", "PORT", "SOCKET_PATH"],
        "{env}"
    );
    assert!(env.contains("GREETING=hi a"));
    assert!(!env.contains("server-secret"));
}

#[test]
fn sigterm_stops_every_tenant_and_the_record_is_left_for_diff_offline() {
    let dir = project(
        "",
        &backend_service("web", ""),
        &[("instances/web/a.toml", ""), ("instances/web/b.toml", "")],
    );
    let mut server = TestServer::start(dir.path());
    let pids = [server.wait_running("web:a"), server.wait_running("web:b")];
    let status = server.stop();
    assert!(status.success(), "{status:?}\n{}", server.log());
    for pid in pids {
        assert!(!alive(pid), "tenant {pid} outlived the server");
    }
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ten"))
        .args(["diff", "--offline", "--summary", "--config"])
        .arg(dir.path())
        .output()
        .unwrap();
    let plan = stdout(&output);
    assert!(
        plan.contains("~ web:a") && plan.contains("because its declared state is \"running\""),
        "{plan}"
    );
}

/// The live processes of the process group `group` (field 5 of /proc/PID/stat).
fn group_members(group: u32) -> Vec<u32> {
    let mut members = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let after_name = &stat[stat.rfind(')').unwrap_or(0) + 1..];
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        if fields.first() != Some(&"Z")
            && fields.get(2).and_then(|pgrp| pgrp.parse::<u32>().ok()) == Some(group)
        {
            members.push(pid);
        }
    }
    members
}

/// GET `path` from the instance's port, past the proxy.
fn get_direct(views: &[ten::api::types::InstanceView], key: &str, path: &str) -> Response {
    let port = views
        .iter()
        .find(|v| v.instance.to_string() == key)
        .and_then(|v| v.port)
        .unwrap();
    Request::get(path).host("x").send(("127.0.0.1", port))
}

#[test]
fn editor_saves_and_directory_changes_are_seen() {
    let services = format!(
        "{}\n{}",
        backend_service("web", ""),
        backend_service("api", "")
    );
    let dir = project("", &services, &[("instances/web/alice.toml", "")]);
    let server = TestServer::start(dir.path());
    let alice = server.wait_running("web:alice");
    let web = dir.path().join("instances/web");

    // Write a temporary file, then rename it into place (vim, most editors).
    fs::write(web.join(".carol.toml.swp"), "weight = 30\n").unwrap();
    fs::write(web.join("carol.toml~"), "junk that is ignored").unwrap();
    fs::write(web.join(".carol.toml.tmp"), "weight = 30\n").unwrap();
    fs::rename(web.join(".carol.toml.tmp"), web.join("carol.toml")).unwrap();
    server.wait_running("web:carol");
    assert_eq!(server.instance("web:carol").unwrap().weight, 30);
    assert!(server.instance("web:carol~").is_none());

    // Truncate, then write (nano, `>` in a shell): applied once, complete.
    {
        use std::io::Write;
        let mut file = fs::File::create(web.join("alice.toml")).unwrap();
        // A pause between the two, as an editor makes: the watcher may see the empty file.
        std::thread::sleep(Duration::from_millis(20));
        file.write_all(b"weight = 7\n").unwrap();
    }
    server.wait_until("alice's weight is 7", |views| {
        views
            .iter()
            .any(|v| v.instance.to_string() == "web:alice" && v.weight == 7)
    });
    let events = stdout(&server.ten(&["events", "web:alice"]));
    assert_eq!(
        events.matches("updated in place").count(),
        1,
        "one in-place update, no half-written state: {events}"
    );
    assert_eq!(
        server.instance("web:alice").unwrap().pid,
        Some(alice),
        "weight applies in place"
    );

    // A service directory created after start, then deleted.
    support::write_file(&dir.path().join("instances/api/x.toml"), "");
    let x = server.wait_running("api:x");
    fs::remove_dir_all(dir.path().join("instances/api")).unwrap();
    server.wait_until("api:x is gone", |views| {
        !views.iter().any(|v| v.instance.to_string() == "api:x")
    });
    assert!(wait_gone(x));

    // The whole instances directory replaced by a rename (a `git checkout`).
    let staged = dir.path().join("instances.new/web");
    fs::create_dir_all(&staged).unwrap();
    for id in ["alice", "carol", "dave"] {
        fs::write(staged.join(format!("{id}.toml")), "").unwrap();
    }
    fs::rename(
        dir.path().join("instances"),
        dir.path().join("instances.old"),
    )
    .unwrap();
    fs::rename(
        dir.path().join("instances.new"),
        dir.path().join("instances"),
    )
    .unwrap();
    server.wait_running("web:dave");
    // dave's file is watched in the new directory too.
    fs::write(dir.path().join("instances/web/dave.toml"), "weight = 5\n").unwrap();
    server.wait_until("dave's edit is seen", |views| {
        views
            .iter()
            .any(|v| v.instance.to_string() == "web:dave" && v.weight == 5)
    });
}

#[test]
fn with_auto_apply_off_a_restart_of_ten_brings_back_what_was_applied() {
    let dir = project(
        "auto_apply = false",
        &backend_service("web", ""),
        &[("instances/web/a.toml", "")],
    );
    let mut server = TestServer::start(dir.path());
    let apply = server.ten(&["apply", "--auto-approve"]);
    assert!(apply.status.success(), "{}", stderr(&apply));
    server.wait_running("web:a");
    assert!(server.stop().success());
    // While ten was down, one more file: that one is a change, and waits.
    support::write_file(&dir.path().join("instances/web/b.toml"), "");
    let server = TestServer::start(dir.path());
    server.wait_running("web:a");
    assert_eq!(server.get("a.web.localhost", "/").0, 200);
    let diff = stdout(&server.ten(&["diff"]));
    assert!(
        diff.contains("+ web:b") && !diff.contains("web:a"),
        "only b waits:\n{diff}"
    );
    assert_eq!(
        server.instance("web:b").unwrap().pid,
        None,
        "b is not started"
    );
}
