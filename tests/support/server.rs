//! A real `ten serve` for integration tests: started on port 0 in a project directory, driven
//! through the real CLI, and cleaned up when dropped — the server, and every tenant process
//! group it was seen running, even when the test fails.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::http::Request;
use ten::api::types::InstanceView;
use ten::observed::Phase;

/// The tiny backend (`testdata/apps/backend.rs`), built by `cargo test` as an example.
pub(crate) fn backend() -> PathBuf {
    let ten = Path::new(env!("CARGO_BIN_EXE_ten"));
    let path = ten.parent().unwrap().join("examples/backend");
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build --example backend`",
        path.display()
    );
    path
}

/// Builds the backend in release mode, for the benchmarks.
pub(crate) fn build_backend() {
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "--example", "backend"])
        .status()
        .expect("cargo build the backend");
    assert!(status.success());
}

/// The cgroup directory of `pid` in the v1 hierarchy `controller`, or in the unified one.
pub(crate) fn cgroup_dir(pid: u32, controller: &str) -> PathBuf {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next(), parts.next().unwrap(), parts.next().unwrap());
        if controllers.split(',').any(|c| c == controller) {
            return PathBuf::from(format!("/sys/fs/cgroup/{controller}{path}"));
        }
    }
    let unified = text
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .unwrap();
    PathBuf::from(format!("/sys/fs/cgroup{unified}"))
}

/// A range of tenant ports no other test of this run uses (below the ephemeral range).
pub(crate) fn port_range() -> (u16, u16) {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let slot = NEXT.fetch_add(1, Ordering::SeqCst);
    let low = 20000 + (std::process::id() as u16 % 20) * 500 + slot * 40;
    (low, low + 39)
}

/// A project directory: tenement.toml (with a private port range) and instance files.
pub(crate) fn project(settings: &str, services: &str, files: &[(&str, &str)]) -> tempfile::TempDir {
    project_in(&std::env::temp_dir(), settings, services, files)
}

/// A project directory made in `parent`, as [`project`] makes one in the temporary directory.
pub(crate) fn project_in(
    parent: &Path,
    settings: &str,
    services: &str,
    files: &[(&str, &str)],
) -> tempfile::TempDir {
    let dir = tempfile::tempdir_in(parent).unwrap();
    let (low, high) = port_range();
    super::write_file(
        &dir.path().join("tenement.toml"),
        &format!(
            "[settings]\nport_range = [{low}, {high}]\nhealth_check_interval = 1\n{settings}\n\n{services}"
        ),
    );
    for (path, content) in files {
        super::write_file(&dir.path().join(path), content);
    }
    dir
}

/// A service running the tiny backend, with extra keys.
pub(crate) fn backend_service(name: &str, extra: &str) -> String {
    format!(
        "[service.{name}]\ncommand = \"{}\"\nhealth = \"/health\"\nstop_timeout = 2\n{extra}\n",
        backend().display()
    )
}

pub(crate) struct TestServer {
    pub dir: PathBuf,
    child: Child,
    pub url: String,
    log: Arc<Mutex<String>>,
    tenants: Mutex<BTreeSet<u32>>,
}

impl TestServer {
    pub(crate) fn start(dir: &Path) -> TestServer {
        Self::start_with(dir, &[])
    }

    pub(crate) fn start_with(dir: &Path, env: &[(&str, &str)]) -> TestServer {
        let config = dir.display().to_string();
        let args = ["--port", "0", "--bind", "127.0.0.1", "--config", &config];
        Self::launch(dir, &args, env)
    }

    /// `ten serve ARGS` run in `dir` (its tenement.toml found there, as a user runs it).
    pub(crate) fn start_in(dir: &Path, args: &[&str]) -> TestServer {
        Self::launch(dir, args, &[])
    }

    /// As [`TestServer::start`], through `wrapper` (a program and its arguments that exec the
    /// rest, e.g. `setpriv ... --`).
    pub(crate) fn start_wrapped(dir: &Path, wrapper: &[&str]) -> TestServer {
        let config = dir.display().to_string();
        let mut args: Vec<&str> = wrapper[1..].to_vec();
        args.extend([
            env!("CARGO_BIN_EXE_ten"),
            "serve",
            "--port",
            "0",
            "--bind",
            "127.0.0.1",
            "--config",
            &config,
        ]);
        Self::launch_program(wrapper[0], dir, &args, &[])
    }

    fn launch(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> TestServer {
        let mut with_verb = vec!["serve"];
        with_verb.extend(args);
        Self::launch_program(env!("CARGO_BIN_EXE_ten"), dir, &with_verb, env)
    }

    fn launch_program(
        program: &str,
        dir: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> TestServer {
        let mut child = Command::new(program)
            .args(args)
            .current_dir(dir)
            .env_remove("TENEMENT_CONFIG")
            .env_remove("TENEMENT_SERVER")
            .env_remove("TENEMENT_TOKEN")
            .envs(env.iter().copied())
            .env("TEN_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ten serve");
        let log = Arc::new(Mutex::new(String::new()));
        let (address_sender, address) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let log_writer = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let url = rest.split_whitespace().next().unwrap_or("").to_string();
                    let _ = address_sender.send(url);
                }
                let mut log = log_writer.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let url = address
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| {
                let _ = child.kill();
                let _ = child.wait();
                panic!("ten serve did not start:\n{}", log.lock().unwrap())
            });
        TestServer {
            dir: dir.to_path_buf(),
            child,
            url,
            log,
            tenants: Mutex::default(),
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Runs the CLI against this server and its config.
    pub(crate) fn ten(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run ten")
    }

    /// `ten ARGS` against this server (its config, its URL, the admin token from the data
    /// directory, no colour, stdin on /dev/null), to run or spawn as the caller needs.
    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ten"));
        command
            .args(args)
            .arg("--config")
            .arg(&self.dir)
            .args(["--server", &self.url])
            .env("NO_COLOR", "1")
            .env_remove("TENEMENT_TOKEN")
            .stdin(Stdio::null());
        command
    }

    pub(crate) fn ps(&self) -> Vec<InstanceView> {
        let output = self.ten(&["ps", "--json"]);
        assert!(
            output.status.success(),
            "ten ps failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let views: Vec<InstanceView> = serde_json::from_slice(&output.stdout).unwrap();
        let mut tenants = self.tenants.lock().unwrap();
        tenants.extend(views.iter().filter_map(|view| view.pid));
        views
    }

    pub(crate) fn instance(&self, key: &str) -> Option<InstanceView> {
        self.ps()
            .into_iter()
            .find(|view| view.instance.to_string() == key)
    }

    /// Polls `ten ps` until `check` holds (20 s at most), then returns the instances.
    pub(crate) fn wait_until(
        &self,
        what: &str,
        check: impl Fn(&[InstanceView]) -> bool,
    ) -> Vec<InstanceView> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let views = self.ps();
            if check(&views) {
                return views;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out waiting until {what}; ps: {views:#?}\nserver log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Waits until `key` runs healthy; returns its pid.
    pub(crate) fn wait_running(&self, key: &str) -> u32 {
        let views = self.wait_until(&format!("{key} runs"), |views| {
            views.iter().any(|v| {
                v.instance.to_string() == key && v.phase == Phase::Running && v.pid.is_some()
            })
        });
        views
            .iter()
            .find(|v| v.instance.to_string() == key)
            .and_then(|v| v.pid)
            .unwrap()
    }

    /// Stops the server with SIGTERM and waits for it.
    pub(crate) fn stop(&mut self) -> std::process::ExitStatus {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                return self.child.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl TestServer {
    /// Kills the server with SIGKILL (a crash: it cannot clean up) and waits for it. Its
    /// tenants keep running; the returned guard kills their groups when dropped, so they do
    /// not outlive the test even if it fails before another server takes them over.
    pub(crate) fn kill_hard(mut self) -> TenantGuard {
        let _ = self.child.kill();
        let _ = self.child.wait();
        TenantGuard(std::mem::take(&mut *self.tenants.lock().unwrap()))
    }

    /// Waits (20 s at most) until the server exited by itself; its exit status.
    pub(crate) fn wait_exit(&mut self) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Forgets the tenants seen so far (they are handed to a [`TenantGuard`] instead).
    pub(crate) fn release_tenants(&self) -> TenantGuard {
        TenantGuard(std::mem::take(&mut *self.tenants.lock().unwrap()))
    }
}

/// Kills the process groups of tenants when dropped.
#[derive(Default)]
pub(crate) struct TenantGuard(pub BTreeSet<u32>);

impl Drop for TenantGuard {
    fn drop(&mut self) {
        kill_tenants(&self.0);
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.stop();
        }
        // Whatever the outcome, no tenant outlives its test, nor a cgroup of its data
        // directory.
        kill_tenants(&self.tenants.lock().unwrap());
        remove_left_cgroups(&self.dir.join("tenement-data"));
    }
}

/// The cgroup directories ten makes for the data directory `data_dir` (its parent is `ten/`
/// and 8 hex digits of the SHA-256 of the directory's path), in every hierarchy mounted under
/// /sys/fs/cgroup (v1 controllers mounted alone or together, a v2 `unified`) or at it (v2).
pub(crate) fn cgroup_parents(data_dir: &Path) -> Vec<PathBuf> {
    use sha2::{Digest, Sha256};
    let Ok(canonical) = std::fs::canonicalize(data_dir) else {
        return Vec::new();
    };
    let digest = Sha256::digest(canonical.as_os_str().as_encoded_bytes());
    let owner: String = digest[..4]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    let root = Path::new("/sys/fs/cgroup");
    let mounts: Vec<PathBuf> = std::fs::read_dir(root)
        .map(|listing| listing.flatten().map(|entry| entry.path()).collect())
        .unwrap_or_default();
    std::iter::once(root.to_path_buf())
        .chain(mounts)
        .map(|mount| mount.join("ten").join(&owner))
        .filter(|parent| parent.is_dir())
        .collect()
}

/// Removes what is left empty of the cgroups of `data_dir` once no ten serves it (a ten
/// killed with -9 leaves its spares' cgroups, and the parent): each child a few times while
/// it is busy (a process just killed), then the parent. A cgroup with a process is left.
fn remove_left_cgroups(data_dir: &Path) {
    for parent in cgroup_parents(data_dir) {
        let children: Vec<PathBuf> = std::fs::read_dir(&parent)
            .map(|listing| {
                listing
                    .flatten()
                    .map(|entry| entry.path())
                    .filter(|path| path.is_dir())
                    .collect()
            })
            .unwrap_or_default();
        for child in children {
            let deadline = Instant::now() + Duration::from_secs(2);
            while std::fs::remove_dir(&child).is_err()
                && child.exists()
                && std::fs::read_to_string(child.join("cgroup.procs"))
                    .is_ok_and(|procs| procs.trim().is_empty())
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let _ = std::fs::remove_dir(&parent);
    }
}

/// Kills the process groups of tenants no server stops any more, then removes the cgroups
/// they were in (and their parent, once empty).
fn kill_tenants(pids: &BTreeSet<u32>) {
    let cgroups: BTreeSet<PathBuf> = pids.iter().flat_map(|pid| ten_cgroups(*pid)).collect();
    for pid in pids {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(*pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    for cgroup in &cgroups {
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::fs::remove_dir(cgroup).is_err() && cgroup.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if let Some(parent) = cgroup.parent() {
            let _ = std::fs::remove_dir(parent);
        }
    }
}

/// The directories of the cgroups under `/ten` that `pid` is in, per hierarchy.
fn ten_cgroups(pid: u32) -> Vec<PathBuf> {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/cgroup")) else {
        return Vec::new();
    };
    let root = Path::new("/sys/fs/cgroup");
    text.lines()
        .filter_map(|line| {
            let mut fields = line.splitn(3, ':');
            let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
            let relative = path.strip_prefix("/ten/")?;
            let mount = if controllers.is_empty() {
                // v2: the unified mount of a hybrid host, else the root.
                [root.join("unified"), root.to_path_buf()]
                    .into_iter()
                    .find(|mount| mount.join("ten").join(relative).is_dir())?
            } else {
                root.join(controllers.trim_start_matches("name="))
            };
            Some(mount.join("ten").join(relative))
        })
        .filter(|dir| dir.is_dir())
        .collect()
}

impl TestServer {
    /// Where the server listens: `127.0.0.1:PORT`.
    pub(crate) fn address(&self) -> &str {
        self.url.trim_start_matches("http://")
    }

    /// A GET through this server's proxy with `Host: host`: status (0 when the connection
    /// broke) and body.
    pub(crate) fn get(&self, host: &str, path: &str) -> (u16, String) {
        let response = Request::get(path).host(host).send(self.address());
        (response.status, response.body)
    }
}

/// What clients saw while a tenant was killed: how many requests were answered 200, and the
/// others (status and body; status 0 when the connection broke).
pub(crate) struct KillOutcome {
    pub ok: usize,
    pub failed: Vec<String>,
    /// The longest a request took (a request held for the restart waits for it).
    pub slowest: Duration,
}

/// Sets its flag when dropped, so that load threads stop even when the test fails midway.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Steady load across the crash of a tenant: `clients` threads GET through the proxy with
/// `Host: host` in a loop (client `i` asks for `paths[i % paths.len()]`, each request on a
/// fresh connection). Once every client has had answers, `key`'s process is killed with
/// SIGKILL (its pid from `ten ps --json`); the load goes on until the instance runs again
/// with another pid and for as many answers again, then stops. Returns what the clients saw.
pub(crate) fn load_across_a_kill(
    server: &TestServer,
    key: &str,
    host: &str,
    paths: &[&str],
    clients: usize,
) -> KillOutcome {
    let victim = server.wait_running(key);
    let stop = AtomicBool::new(false);
    let ok = AtomicUsize::new(0);
    let failed = Mutex::new(Vec::new());
    let slowest = Mutex::new(Duration::ZERO);
    let answered = || ok.load(Ordering::SeqCst) + failed.lock().unwrap().len();
    // Waits (20 s at most) until `count` requests were answered, one way or another.
    let wait_for_answers = |count: usize| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while answered() < count {
            assert!(Instant::now() < deadline, "the load stalled");
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    std::thread::scope(|scope| {
        let _stop = StopOnDrop(&stop);
        for client in 0..clients {
            let (stop, ok, failed, slowest) = (&stop, &ok, &failed, &slowest);
            let path = paths[client % paths.len()];
            scope.spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let started = Instant::now();
                    let (status, body) = server.get(host, path);
                    let took = started.elapsed();
                    let mut longest = slowest.lock().unwrap();
                    *longest = (*longest).max(took);
                    drop(longest);
                    if status == 200 {
                        ok.fetch_add(1, Ordering::SeqCst);
                    } else {
                        failed
                            .lock()
                            .unwrap()
                            .push(format!("{status}: {}", body.trim()));
                    }
                }
            });
        }
        wait_for_answers(clients * 10);
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(victim as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .expect("kill the tenant");
        server.wait_until(&format!("{key} runs again"), |views| {
            views.iter().any(|view| {
                view.instance.to_string() == key
                    && view.phase == Phase::Running
                    && view.pid.is_some_and(|pid| pid != victim)
            })
        });
        wait_for_answers(answered() + clients * 10);
    });
    KillOutcome {
        ok: ok.into_inner(),
        failed: failed.into_inner().unwrap(),
        slowest: slowest.into_inner().unwrap(),
    }
}

/// A figure of `/proc/PID/status` in kB (`field` with its colon: `VmRSS:`, `VmHWM:`); 0 when
/// the process or the field is gone (the benchmarks' memory readings).
pub(crate) fn status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|line| {
            let rest = line.strip_prefix(field)?;
            rest.trim().trim_end_matches(" kB").trim().parse().ok()
        })
        .unwrap_or(0)
}

/// Whether `pid` is a live process (not a zombie).
pub(crate) fn alive(pid: u32) -> bool {
    ten::runtime::proc::process_alive(pid, None)
}

/// Waits until `pid` is gone (10 s at most).
pub(crate) fn wait_gone(pid: u32) -> bool {
    within(Duration::from_secs(10), || !alive(pid))
}

/// Whether `condition` holds within `timeout` (checked every 20 ms): for what ten does in the
/// background after a command returns.
pub(crate) fn within(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while !condition() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// The CLI run in `dir` as a user types it there: no TENEMENT_* variables but `env`.
pub(crate) fn ten_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ten"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("TENEMENT_CONFIG")
        .env_remove("TENEMENT_SERVER")
        .env_remove("TENEMENT_TOKEN")
        .env_remove("TENEMENT_DATA_DIR")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

pub(crate) fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub(crate) fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// How long a GET of `/` for `host` took, answered 200 (the wake benchmarks).
pub(crate) fn timed_get(address: &str, host: &str) -> Duration {
    let started = Instant::now();
    let response = Request::get("/").host(host).send(address);
    assert_eq!(response.status, 200, "{response:?}");
    started.elapsed()
}

/// The median of `values` (the upper one of an even count).
pub(crate) fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}
