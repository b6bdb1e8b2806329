//! ten's own crashes, restarts and upgrades, on the real binary: tenants keep running and the
//! next server adopts them as they are (same pids, no restarts, still routed, output still
//! captured); a pid that is not ours any more is never signalled; SIGTERM stops tenants
//! gracefully unless `keep_tenants_on_exit = true`.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::server::{
    TenantGuard, TestServer, alive, backend, backend_service, project, stderr, wait_gone, within,
};
use ten::api::types::InstanceView;
use ten::observed::{Health, Phase};

fn data_dir(dir: &Path) -> PathBuf {
    dir.join("tenement-data")
}

fn table_dir(dir: &Path) -> PathBuf {
    data_dir(dir).join(".ten/processes")
}

/// A project with tenants `web:t0` .. `web:t{count-1}` of the test backend.
fn tenants(count: usize, settings: &str, extra: &str) -> tempfile::TempDir {
    let files: Vec<(String, &str)> = (0..count)
        .map(|index| (format!("instances/web/t{index}.toml"), ""))
        .collect();
    let files: Vec<(&str, &str)> = files.iter().map(|(p, c)| (p.as_str(), *c)).collect();
    project(settings, &backend_service("web", extra), &files)
}

fn all_healthy(count: usize) -> impl Fn(&[InstanceView]) -> bool {
    move |views| {
        views.len() == count
            && views
                .iter()
                .all(|v| v.phase == Phase::Running && v.health == Health::Healthy)
    }
}

/// instance -> (pid, port)
fn processes(views: &[InstanceView]) -> BTreeMap<String, (u32, u16)> {
    views
        .iter()
        .map(|v| (v.instance.to_string(), (v.pid.unwrap(), v.port.unwrap())))
        .collect()
}

/// Pids of live processes running the test backend whose PORT is one of `ports`.
fn backends_on(ports: &BTreeSet<u16>) -> BTreeSet<u32> {
    let backend = backend();
    let mut found = BTreeSet::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if fs::read_link(entry.path().join("exe")).ok().as_deref() != Some(backend.as_path()) {
            continue;
        }
        let environ = fs::read(entry.path().join("environ")).unwrap_or_default();
        let port = environ
            .split(|byte| *byte == 0)
            .find_map(|pair| pair.strip_prefix(b"PORT="))
            .and_then(|port| std::str::from_utf8(port).ok()?.parse::<u16>().ok());
        if port.is_some_and(|port| ports.contains(&port)) && alive(pid) {
            found.insert(pid);
        }
    }
    found
}

/// Waits until the record (written a moment after changes) lists `processes`.
fn wait_recorded(dir: &Path, processes: &BTreeMap<String, (u32, u16)>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let record: serde_json::Value = fs::read(data_dir(dir).join("state.json"))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        let recorded = processes
            .iter()
            .all(|(instance, (pid, _))| record["instances"][instance]["pid"] == *pid);
        if recorded {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the record never listed {processes:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn table_entries(dir: &Path) -> Vec<serde_json::Value> {
    let mut entries: Vec<serde_json::Value> = fs::read_dir(table_dir(dir))
        .map(|listing| {
            listing
                .flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                .map(|e| serde_json::from_slice(&fs::read(e.path()).unwrap()).unwrap())
                .collect()
        })
        .unwrap_or_default();
    entries.sort_by_key(|entry| entry["instance"].as_str().unwrap_or("").to_string());
    entries
}

#[test]
fn a_killed_server_is_followed_by_one_that_adopts_its_tenants_as_they_are() {
    let dir = tenants(5, "", "");
    let first = TestServer::start(dir.path());
    let before = processes(&first.wait_until("five tenants run healthy", all_healthy(5)));
    let _guard = first.kill_hard();
    for (pid, _) in before.values() {
        assert!(alive(*pid), "tenant {pid} died with the server");
    }
    assert_eq!(
        table_entries(dir.path()).len(),
        5,
        "every process is in the table"
    );

    let second = TestServer::start(dir.path());
    let views = second.wait_until("the five are adopted and healthy", all_healthy(5));
    assert_eq!(
        processes(&views),
        before,
        "the same processes, on the same ports"
    );
    for view in &views {
        assert_eq!(view.restarts, 0, "{view:?}");
    }
    // Still routed, to the same processes.
    for (instance, (pid, _)) in &before {
        let id = instance.trim_start_matches("web:");
        let (status, body) = second.get(&format!("{id}.web.localhost"), "/");
        assert_eq!(
            (status, body.trim()),
            (200, format!("backend {pid}").as_str())
        );
    }
    // No duplicates: exactly these five backends serve the project's ports.
    let ports: BTreeSet<u16> = before.values().map(|(_, port)| *port).collect();
    let pids: BTreeSet<u32> = before.values().map(|(pid, _)| *pid).collect();
    assert_eq!(backends_on(&ports), pids);
    let events = support::server::stdout(&second.ten(&["events"]));
    assert_eq!(
        events.matches("left running by the previous ten").count(),
        10,
        "{events}"
    );
    // Adopted ports stay taken: a new tenant gets another one.
    let spawn = second.ten(&["spawn", "web:new"]);
    assert!(spawn.status.success(), "{}", stderr(&spawn));
    let new = second.instance("web:new").unwrap();
    assert!(!ports.contains(&new.port.unwrap()), "{new:?}");
    assert_eq!(table_entries(dir.path()).len(), 6);
}

#[test]
fn a_pid_that_is_not_our_tenant_any_more_is_never_signalled() {
    let dir = tenants(2, "", "");
    let first = TestServer::start(dir.path());
    let before = processes(&first.wait_until("two tenants run", all_healthy(2)));
    wait_recorded(dir.path(), &before);
    let guard = first.kill_hard();
    // A "reboot": every tenant is gone ...
    drop(guard);
    for (pid, _) in before.values() {
        assert!(wait_gone(*pid));
    }
    // ... and two unrelated processes now have pids the record names: t0's record says it is
    // from another boot (with the decoy's real start time), t1's has the right boot but another
    // start time (a recycled pid). Each decoy notes any signal it gets.
    let signals = dir.path().join("signals");
    let ready = dir.path().join("ready");
    let decoys: Vec<std::process::Child> = (0..2)
        .map(|_| {
            let script = format!(
                "trap 'echo $$ >> {0}' TERM INT HUP QUIT USR1 USR2; echo $$ >> {1}; while :; do sleep 0.05; done",
                signals.display(),
                ready.display()
            );
            Command::new("sh")
                .args(["-c", &script])
                .stdin(Stdio::null())
                .process_group(0)
                .spawn()
                .unwrap()
        })
        .collect();
    let _decoy_guard = TenantGuard(decoys.iter().map(std::process::Child::id).collect());
    // Each decoy says when its traps are set.
    let trapping = || {
        fs::read_to_string(&ready)
            .unwrap_or_default()
            .lines()
            .count()
            == 2
    };
    assert!(
        within(Duration::from_secs(10), trapping),
        "the decoys did not start"
    );
    let boot = fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    let boot = boot.trim();
    let record_path = data_dir(dir.path()).join("state.json");
    let mut record: serde_json::Value =
        serde_json::from_slice(&fs::read(&record_path).unwrap()).unwrap();
    for entry in table_entries(dir.path()) {
        let instance = entry["instance"].as_str().unwrap().to_string();
        let old_pid = entry["pid"].as_u64().unwrap();
        let (decoy, boot_id, start_shift) = if instance == "web:t0" {
            (&decoys[0], "00000000-0000-4000-8000-000000000000", 0)
        } else {
            (&decoys[1], boot, 1)
        };
        let start_time = ten::runtime::proc::process_start_time(decoy.id()).unwrap() + start_shift;
        let mut moved = entry.clone();
        moved["pid"] = decoy.id().into();
        moved["start_time"] = start_time.into();
        moved["boot_id"] = boot_id.into();
        let table = table_dir(dir.path());
        let id = instance.trim_start_matches("web:");
        fs::remove_file(table.join(format!("web.{id}.{old_pid}.json"))).unwrap();
        fs::write(
            table.join(format!("web.{id}.{}.json", decoy.id())),
            moved.to_string(),
        )
        .unwrap();
        record["instances"][&instance]["pid"] = decoy.id().into();
        record["instances"][&instance]["pid_start_time"] = start_time.into();
    }
    record["boot_id"] = "00000000-0000-4000-8000-000000000000".into();
    fs::write(&record_path, record.to_string()).unwrap();

    let second = TestServer::start(dir.path());
    let views = second.wait_until("both run again, as new processes", all_healthy(2));
    let decoy_pids: BTreeSet<u32> = decoys.iter().map(std::process::Child::id).collect();
    for view in &views {
        assert!(!decoy_pids.contains(&view.pid.unwrap()), "{view:?}");
    }
    // A negative: time for a wrongly sent signal to arrive (a stale entry is dealt with while
    // the server starts, but nothing says when it is done with them).
    std::thread::sleep(Duration::from_millis(300));
    for pid in &decoy_pids {
        assert!(alive(*pid), "decoy {pid} was killed");
    }
    assert_eq!(
        fs::read_to_string(&signals).unwrap_or_default(),
        "",
        "a decoy got a signal"
    );
    let listed: BTreeSet<u64> = table_entries(dir.path())
        .iter()
        .map(|entry| entry["pid"].as_u64().unwrap())
        .collect();
    assert!(
        listed
            .iter()
            .all(|pid| !decoy_pids.contains(&(*pid as u32))),
        "the stale entries are gone: {listed:?}"
    );
}

#[test]
fn with_keep_tenants_on_exit_a_restart_keeps_every_tenant_running() {
    let dir = tenants(3, "keep_tenants_on_exit = true", "");
    let mut first = TestServer::start(dir.path());
    let before = processes(&first.wait_until("three run", all_healthy(3)));
    let _guard = first.release_tenants();
    assert!(first.stop().success());
    for (pid, _) in before.values() {
        assert!(alive(*pid), "tenant {pid} was stopped");
    }
    let second = TestServer::start(dir.path());
    let views = second.wait_until("adopted", all_healthy(3));
    assert_eq!(processes(&views), before);
    assert!(views.iter().all(|view| view.restarts == 0));
}

#[test]
fn without_keep_tenants_on_exit_sigterm_stops_every_tenant_gracefully() {
    let dir = tenants(3, "", "");
    let mut server = TestServer::start(dir.path());
    let before = processes(&server.wait_until("three run", all_healthy(3)));
    assert!(server.stop().success());
    for (pid, _) in before.values() {
        assert!(!alive(*pid), "tenant {pid} outlived the server");
    }
    let record: serde_json::Value =
        serde_json::from_slice(&fs::read(data_dir(dir.path()).join("state.json")).unwrap())
            .unwrap();
    for instance in before.keys() {
        let exit = &record["instances"][instance]["last_exit"];
        assert_eq!(exit["signal"], 15, "{instance} got SIGTERM first: {exit}");
        assert_eq!(record["instances"][instance]["phase"], "stopped");
    }
    assert!(
        table_entries(dir.path()).is_empty(),
        "nothing left to adopt"
    );
}

/// The `tick N` numbers in an instance's output.log, in order.
fn ticks(dir: &Path, id: &str) -> Vec<u64> {
    let log = data_dir(dir).join(format!(".ten/logs/web/{id}/output.log"));
    fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.rsplit_once(" stdout tick ")?.1.parse().ok())
        .collect()
}

#[test]
fn output_written_while_no_server_runs_is_captured_once() {
    let dir = tenants(1, "", "args = [\"--chatty\"]");
    let first = TestServer::start(dir.path());
    first.wait_until("it runs", all_healthy(1));
    let captured = || ticks(dir.path(), "t0").len() >= 20;
    assert!(
        within(Duration::from_secs(10), captured),
        "no output captured"
    );
    let _guard = first.kill_hard();
    let at_kill = *ticks(dir.path(), "t0").last().unwrap();
    // It keeps writing while no ten runs (no pipe to break): 100 ticks past the last captured
    // one, in its raw output file.
    let raw = data_dir(dir.path()).join(".ten/capture/web/t0/stdout.raw");
    let written = format!("tick {}\n", at_kill + 100);
    let written_meanwhile = || {
        let bytes = fs::read(&raw).unwrap_or_default();
        bytes
            .windows(written.len())
            .any(|window| window == written.as_bytes())
    };
    assert!(
        within(Duration::from_secs(10), written_meanwhile),
        "the tenant stopped writing"
    );
    let second = TestServer::start(dir.path());
    second.wait_until("adopted", all_healthy(1));
    let resumed = || ticks(dir.path(), "t0").last().copied().unwrap_or(0) >= at_kill + 150;
    assert!(
        within(Duration::from_secs(10), resumed),
        "output after adoption is not captured"
    );
    let captured = ticks(dir.path(), "t0");
    let expected: Vec<u64> = (0..=*captured.last().unwrap()).collect();
    assert_eq!(captured, expected, "every line exactly once, in order");
    let logs = support::server::stdout(&second.ten(&["logs", "web:t0", "--limit", "5000"]));
    assert!(logs.contains(&format!("tick {at_kill}\n")), "{logs}");
}

/// The stdout lines of an instance in its output.log and the rotated files, oldest first (but
/// the backend's "listening" line).
fn captured_stdout(dir: &Path, id: &str) -> Vec<String> {
    ten::runtime::logs::kept_files(&data_dir(dir).join(format!(".ten/logs/web/{id}")))
        .iter()
        .flat_map(|file| {
            fs::read_to_string(file)
                .unwrap_or_default()
                .lines()
                .filter_map(|line| Some(line.split_once(" stdout ")?.1.to_string()))
                .filter(|text| !text.starts_with("backend "))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The bytes in an instance's output.log and its rotated files: grows while ten captures.
fn captured_bytes(dir: &Path, id: &str) -> u64 {
    ten::runtime::logs::kept_files(&data_dir(dir).join(format!(".ten/logs/web/{id}")))
        .iter()
        .map(|file| fs::metadata(file).map_or(0, |metadata| metadata.len()))
        .sum()
}

/// `lines` as runs of consecutive ticks and lines that are not a tick, in order:
/// `line 0: ticks 0..=836`, `line 837: "08"`, `line 838: ticks 809..=2673`. Every tick
/// exactly once, in order, is the single run `line 0: ticks 0..=LAST`.
fn tick_runs(lines: &[String]) -> Vec<String> {
    let describe =
        |(at, first, end): (usize, u64, u64)| format!("line {at}: ticks {first}..={end}");
    let mut runs = Vec::new();
    let mut run: Option<(usize, u64, u64)> = None;
    for (index, line) in lines.iter().enumerate() {
        let tick = line
            .strip_prefix("tick ")
            .and_then(|number| number.parse::<u64>().ok());
        match (tick, run) {
            (Some(tick), Some((at, first, end))) if tick == end + 1 => {
                run = Some((at, first, tick));
            }
            (Some(tick), _) => {
                runs.extend(run.map(describe));
                run = Some((index, tick, tick));
            }
            (None, _) => {
                runs.extend(run.take().map(describe));
                runs.push(format!("line {index}: {line:?}"));
            }
        }
    }
    runs.extend(run.map(describe));
    runs
}

/// Kills `server` the moment it is about to record how far it read the raw files (its next
/// `pwrite64`, which is the write of `offsets`): strace makes that call fail and sends SIGKILL
/// instead. The window between appending lines to output.log and recording the offsets is a
/// few microseconds, which a kill at a random time almost never hits.
fn kill_before_offsets_are_recorded(server: TestServer) -> TenantGuard {
    struct Tracer(std::process::Child);
    impl Drop for Tracer {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _tracer = Tracer(
        Command::new("strace")
            .args(["-f", "-qq", "-o", "/dev/null", "-e", "trace=pwrite64"])
            .args(["-e", "inject=pwrite64:error=EIO:signal=KILL:when=1"])
            .args(["-p", &server.pid().to_string()])
            .stdin(Stdio::null())
            .spawn()
            .expect("run strace (apt-get install strace)"),
    );
    let mut server = server;
    let status = server.wait_exit();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        status.and_then(|status| status.signal()),
        Some(9),
        "strace did not kill ten at its offsets write: {status:?}"
    );
    server.kill_hard()
}

#[test]
fn output_is_captured_exactly_once_however_often_the_server_is_killed() {
    // A tenant writing numbered lines in 256-byte writes (lines cut anywhere), a write every ms.
    let dir = tenants(1, "", "args = [\"--stream\", \"--quiet\"]");
    let mut guards = Vec::new();
    for round in 0..8 {
        let server = TestServer::start(dir.path());
        server.wait_until("it runs", all_healthy(1));
        // This server has captured output of its own.
        let before = captured_bytes(dir.path(), "t0");
        let progress = || captured_bytes(dir.path(), "t0") > before;
        assert!(
            within(Duration::from_secs(10), progress),
            "round {round}: no output captured"
        );
        guards.push(if round % 2 == 0 {
            kill_before_offsets_are_recorded(server)
        } else {
            server.kill_hard()
        });
    }
    let server = TestServer::start(dir.path());
    server.wait_until("adopted", all_healthy(1));
    let (status, last) = server.get("t0.web.localhost", "/stop-ticks");
    assert_eq!(status, 200, "{last}");
    let last: u64 = last.trim().parse().unwrap();
    let complete = || {
        captured_stdout(dir.path(), "t0")
            .last()
            .is_some_and(|line| *line == format!("tick {last}"))
    };
    assert!(
        within(Duration::from_secs(20), complete),
        "tick {last} never captured"
    );
    assert_eq!(
        tick_runs(&captured_stdout(dir.path(), "t0")),
        [format!("line 0: ticks 0..={last}")],
        "output.log holds every tick exactly once, in order"
    );
    // The lines in memory (reloaded from output.log at each start) are the last ticks.
    let logs =
        support::server::stdout(&server.ten(&["logs", "web:t0", "--limit", "2000", "--json"]));
    let texts: Vec<String> = logs
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .filter(|line| line["stream"] == "stdout")
        .map(|line| line["text"].as_str().unwrap().to_string())
        .filter(|text| !text.starts_with("backend "))
        .collect();
    assert!(!texts.is_empty(), "{logs}");
    let mut expected: Vec<String> = (0..=last)
        .rev()
        .take(texts.len())
        .map(|tick| format!("tick {tick}"))
        .collect();
    expected.reverse();
    assert_eq!(texts, expected, "ten logs shows the last ticks, each once");
}

#[test]
fn a_sleeping_tenant_sleeps_on_after_a_crash_and_wakes_on_request() {
    let dir = tenants(1, "", "idle_timeout = 1");
    let first = TestServer::start(dir.path());
    // On demand: declared asleep; a request wakes it, and it falls asleep again.
    first.wait_until("it is declared", |views| views.len() == 1);
    assert_eq!(first.get("t0.web.localhost", "/").0, 200);
    first.wait_until("it runs", all_healthy(1));
    let views = first.wait_until("it sleeps", |views| {
        views.len() == 1 && views[0].phase == Phase::Sleeping
    });
    let port = views[0].port;
    let _guard = first.kill_hard();
    let second = TestServer::start(dir.path());
    second.wait_until("it sleeps on", |views| {
        views.len() == 1 && views[0].phase == Phase::Sleeping && views[0].pid.is_none()
    });
    // A negative: time for a wrong wake to show (the adopted state is a sleeping one from the
    // first pass on; nothing says a wake will not come later).
    std::thread::sleep(Duration::from_millis(300));
    let view = second.instance("web:t0").unwrap();
    assert_eq!(
        (view.phase, view.pid),
        (Phase::Sleeping, None),
        "nothing was started"
    );
    let (status, _) = second.get("t0.web.localhost", "/");
    assert_eq!(status, 200);
    let view = second.instance("web:t0").unwrap();
    assert_eq!(view.phase, Phase::Running);
    assert_eq!(view.port, port, "it keeps its port");
}

#[test]
fn a_tenant_undeclared_while_no_server_ran_is_stopped_and_the_others_adopted() {
    let dir = tenants(2, "", "");
    let first = TestServer::start(dir.path());
    let before = processes(&first.wait_until("two run", all_healthy(2)));
    let _guard = first.kill_hard();
    fs::remove_file(dir.path().join("instances/web/t1.toml")).unwrap();
    let second = TestServer::start(dir.path());
    let views = second.wait_until("t1 is gone, t0 adopted", |views| {
        views.len() == 1 && views[0].phase == Phase::Running && views[0].health == Health::Healthy
    });
    assert_eq!(views[0].pid, Some(before["web:t0"].0));
    assert!(
        wait_gone(before["web:t1"].0),
        "the undeclared tenant was stopped"
    );
    let events = support::server::stdout(&second.ten(&["events"]));
    assert!(events.contains("web:t1"), "{events}");
}

#[test]
fn a_corrupt_record_is_reported_and_the_process_table_still_finds_the_tenants() {
    let dir = tenants(2, "", "");
    let first = TestServer::start(dir.path());
    let before = processes(&first.wait_until("two run", all_healthy(2)));
    let _guard = first.kill_hard();
    fs::write(
        data_dir(dir.path()).join("state.json"),
        "{\"format_version\": 1, \"gen",
    )
    .unwrap();
    let second = TestServer::start(dir.path());
    let views = second.wait_until("adopted", all_healthy(2));
    assert_eq!(processes(&views), before);
    assert!(
        second
            .log()
            .contains("starting without the previous record"),
        "{}",
        second.log()
    );
}

#[test]
fn a_second_server_for_the_same_data_directory_is_refused() {
    let dir = tenants(1, "", "");
    let first = TestServer::start(dir.path());
    first.wait_until("it runs", all_healthy(1));
    let output = Command::new(env!("CARGO_BIN_EXE_ten"))
        .args(["serve", "--port", "0", "--bind", "127.0.0.1", "--config"])
        .arg(dir.path())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(
        message.contains(&format!(
            "another ten serve (pid {}) already runs with the data directory",
            first.pid()
        )),
        "{message}"
    );
    assert_eq!(first.ps().len(), 1, "the first server is undisturbed");
}

#[test]
fn an_adopted_tenant_whose_spec_changed_meanwhile_is_replaced() {
    let dir = tenants(1, "", "");
    let first = TestServer::start(dir.path());
    let before = processes(&first.wait_until("it runs", all_healthy(1)));
    let _guard = first.kill_hard();
    let config = dir.path().join("tenement.toml");
    let text = fs::read_to_string(&config).unwrap();
    fs::write(
        &config,
        format!("{text}\n[service.web.env]\nCOLOR = \"blue\"\n"),
    )
    .unwrap();
    let second = TestServer::start(dir.path());
    let views = second.wait_until("replaced by a process with the new env", |views| {
        all_healthy(1)(views) && views[0].pid != Some(before["web:t0"].0)
    });
    assert!(wait_gone(before["web:t0"].0), "the old process was stopped");
    let (status, env) = second.get("t0.web.localhost", "/env");
    assert_eq!(status, 200);
    assert!(env.contains("COLOR=blue"), "{env}");
    assert!(views[0].port.is_some());
}
