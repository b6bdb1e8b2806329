//! `ten serve --daemon`, `--stop` and `ten shutdown` through the real binary: the command
//! returns once the server listens, the server runs detached (another parent, its own
//! session, /dev/null and its log as streams, `/` as its directory), its pidfile refuses a
//! second daemon, and a stop takes the server and its tenants down — but never signals a
//! process that does not hold the pidfile.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use support::http::Request;
use support::server::{TenantGuard, alive, backend_service, project, stderr, wait_gone, within};
use ten::api::types::InstanceView;
use ten::observed::Phase;

/// Stops a test's daemon (SIGTERM, SIGKILL if it lingers) and kills the tenants seen, when
/// dropped: nothing outlives the test, even when it fails midway.
struct Cleanup {
    pidfile: PathBuf,
    tenants: Mutex<BTreeSet<u32>>,
}

impl Cleanup {
    fn new(pidfile: &Path) -> Cleanup {
        Cleanup {
            pidfile: pidfile.to_path_buf(),
            tenants: Mutex::default(),
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(pid) = read_pid(&self.pidfile).filter(|pid| alive(*pid)) {
            let signal = |signal| {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal);
            };
            signal(nix::sys::signal::Signal::SIGTERM);
            if !wait_gone(pid) {
                signal(nix::sys::signal::Signal::SIGKILL);
            }
        }
        drop(TenantGuard(std::mem::take(
            &mut *self.tenants.lock().unwrap(),
        )));
    }
}

fn read_pid(pidfile: &Path) -> Option<u32> {
    std::fs::read_to_string(pidfile).ok()?.trim().parse().ok()
}

/// `ten ARGS` in `dir`, run to its end (30 s at most: a command that would wait for its
/// detached server's output to end fails here rather than hanging); its output and pid.
fn ten(dir: &Path, args: &[&str]) -> (Output, u32) {
    let child = Command::new(env!("CARGO_BIN_EXE_ten"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("TENEMENT_CONFIG")
        .env_remove("TENEMENT_SERVER")
        .env_remove("TENEMENT_TOKEN")
        .env_remove("TENEMENT_DATA_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (sender, output) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(child.wait_with_output());
    });
    let output = output
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("`ten {}` did not return", args.join(" ")))
        .unwrap();
    (output, pid)
}

/// The URL a start said the server listens on.
fn listening_url(output: &Output) -> String {
    let said = stderr(output);
    said.split("listening on ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in: {said}"))
        .to_string()
}

/// `ten ps --json` against the daemon; the tenants seen are noted for the cleanup.
fn ps(dir: &Path, url: &str, cleanup: &Cleanup) -> Vec<InstanceView> {
    let config = dir.display().to_string();
    let (output, _) = ten(dir, &["ps", "--json", "--config", &config, "--server", url]);
    assert!(output.status.success(), "{}", stderr(&output));
    let views: Vec<InstanceView> = serde_json::from_slice(&output.stdout).unwrap();
    cleanup
        .tenants
        .lock()
        .unwrap()
        .extend(views.iter().filter_map(|view| view.pid));
    views
}

/// Where `/proc/PID/fd/N` or `/proc/PID/cwd` leads.
fn link(pid: u32, name: &str) -> PathBuf {
    std::fs::read_link(format!("/proc/{pid}/{name}")).unwrap()
}

fn parent_of(pid: u32) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("PPid:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn a_daemon_detaches_serves_refuses_a_second_and_stops_with_its_tenants() {
    let dir = project(
        "",
        &backend_service("web", ""),
        &[("instances/web/alice.toml", "")],
    );
    let dir = dir.path();
    let pidfile = dir.join("run/ten.pid");
    let pidfile_arg = pidfile.display().to_string();
    let cleanup = Cleanup::new(&pidfile);
    let start = [
        "serve",
        "--daemon",
        "--pidfile",
        &pidfile_arg,
        "--port",
        "0",
        "--bind",
        "127.0.0.1",
    ];
    let (output, started_by) = ten(dir, &start);
    assert!(output.status.success(), "{}", stderr(&output));
    let url = listening_url(&output);

    // Detached: not the child of the command nor of the test, a session of its own, its
    // streams /dev/null and the log, its directory `/`.
    let pid = read_pid(&pidfile).expect("the pidfile names the daemon");
    assert!(
        stderr(&output).contains(&format!("pid {pid}")),
        "{}",
        stderr(&output)
    );
    assert!(alive(pid));
    assert!(
        !alive(started_by),
        "the command returned; its process is gone"
    );
    let parent = parent_of(pid);
    assert!(
        parent != std::process::id() && parent != started_by,
        "parent {parent}"
    );
    let session = |pid: u32| nix::unistd::getsid(Some(nix::unistd::Pid::from_raw(pid as i32)));
    assert_ne!(session(pid).unwrap(), session(std::process::id()).unwrap());
    let log = dir.join("tenement-data/ten.log");
    assert_eq!(link(pid, "fd/0"), Path::new("/dev/null"));
    assert_eq!(link(pid, "fd/1"), log);
    assert_eq!(link(pid, "fd/2"), log);
    assert_eq!(link(pid, "cwd"), Path::new("/"));

    // It serves, and runs its tenant.
    let address = url.trim_start_matches("http://");
    let health = Request::get("/health").host("localhost").send(address);
    assert_eq!(health.status, 200, "{}", health.body);
    let mut tenant = None;
    assert!(
        within(Duration::from_secs(20), || {
            tenant = ps(dir, &url, &cleanup)
                .into_iter()
                .find_map(|view| (view.phase == Phase::Running).then_some(view.pid).flatten());
            tenant.is_some()
        }),
        "web:alice did not run; log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let tenant = tenant.unwrap();

    // A second daemon with the same pidfile (and its own data directory, so that only the
    // pidfile stands in its way) is refused, naming the running one.
    let (second, _) = ten(dir, &[&start[..], &["--data-dir", "other-data"]].concat());
    assert_eq!(second.status.code(), Some(1), "{}", stderr(&second));
    let said = stderr(&second);
    assert!(
        said.contains(&format!(
            "another ten serve (pid {pid}) holds the pidfile {pidfile_arg}"
        )),
        "{said}"
    );
    assert!(alive(pid));

    // --stop: the server stops its tenant, exits, and removes its pidfile; the command
    // returns once it is gone.
    let (stopped, _) = ten(dir, &["serve", "--stop", "--pidfile", &pidfile_arg]);
    assert!(stopped.status.success(), "{}", stderr(&stopped));
    assert!(stderr(&stopped).contains(&format!("(pid {pid}) has stopped")));
    assert!(!alive(pid), "the server runs on");
    assert!(!alive(tenant), "its tenant runs on");
    assert!(!pidfile.exists());
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("listening on") && logged.contains("SIGTERM"),
        "{logged}"
    );
}

#[test]
fn shutdown_stops_a_daemon_found_by_its_config() {
    let dir = project("", &backend_service("web", ""), &[]);
    let dir = dir.path();
    let pidfile = dir.join("tenement-data/ten.pid");
    let cleanup = Cleanup::new(&pidfile);
    let (output, _) = ten(
        dir,
        &["serve", "--daemon", "--port", "0", "--bind", "127.0.0.1"],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let pid = read_pid(&pidfile).expect("{data_dir}/ten.pid names the daemon");
    assert!(alive(pid));
    assert!(dir.join("tenement-data/ten.log").is_file());
    let (stopped, _) = ten(dir, &["shutdown"]);
    assert!(stopped.status.success(), "{}", stderr(&stopped));
    assert!(!alive(pid));
    // Nothing to stop any more: said, exit 1.
    let (again, _) = ten(dir, &["shutdown"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("no ten serve runs"),
        "{}",
        stderr(&again)
    );
    drop(cleanup);
}

#[test]
fn a_daemon_that_cannot_start_says_why_and_leaves_nothing() {
    let dir = project("", &backend_service("web", ""), &[]);
    let dir = dir.path();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let pidfile = dir.join("tenement-data/ten.pid");
    let cleanup = Cleanup::new(&pidfile);
    let (output, _) = ten(
        dir,
        &["serve", "--daemon", "--port", &port, "--bind", "127.0.0.1"],
    );
    assert_eq!(output.status.code(), Some(1));
    let said = stderr(&output);
    assert!(
        said.contains(&format!(
            "cannot listen on 127.0.0.1:{port}: address in use"
        )),
        "{said}"
    );
    assert!(!pidfile.exists(), "the failed daemon removes its pidfile");
    drop(cleanup);
}

#[test]
fn stop_never_signals_a_process_that_does_not_hold_the_pidfile() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("ten.pid");
    let pidfile_arg = pidfile.display().to_string();
    // A live process whose pid a pidfile names, as if it had got a dead server's pid.
    let mut bystander = Command::new("sleep").arg("60").spawn().unwrap();
    let bystander_pid = bystander.id();
    std::fs::write(&pidfile, format!("{bystander_pid}\n")).unwrap();

    // Nobody holds the file.
    let (output, _) = ten(dir.path(), &["serve", "--stop", "--pidfile", &pidfile_arg]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("nothing holds it"),
        "{}",
        stderr(&output)
    );

    // Somebody holds it (this test), but not the process it names.
    let file = std::fs::File::open(&pidfile).unwrap();
    let locked =
        nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).unwrap();
    let (output, _) = ten(dir.path(), &["shutdown", "--pidfile", &pidfile_arg]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains(&format!(
            "names pid {bystander_pid}, which does not hold it"
        )),
        "{}",
        stderr(&output)
    );
    drop(locked);

    assert!(
        alive(bystander_pid),
        "a process that does not hold the pidfile was signalled"
    );
    bystander.kill().unwrap();
    bystander.wait().unwrap();
}
