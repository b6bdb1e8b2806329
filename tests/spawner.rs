//! The spawner (`ten __spawner`) spoken to directly: one JSON request per `SOCK_SEQPACKET`
//! message on its stdin, one reply; with a status pipe sent along (as ten does), the reply
//! comes once the child exists and the pipe says how its exec went. Its children are
//! children of whoever started the spawner (`CLONE_PARENT`): here, this test, which waits for
//! them itself. Cgroup placement needs root (CI runs as root).

use std::fs;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;
use serde_json::{Value, json};

/// A running spawner and our end of its socket; killed when dropped.
struct Spawner {
    socket: fs::File,
    child: Child,
}

impl Spawner {
    fn start() -> Spawner {
        let (ours, theirs): (OwnedFd, OwnedFd) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_ten"))
            .arg("__spawner")
            .env_clear()
            .stdin(Stdio::from(theirs))
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        Spawner {
            socket: fs::File::from(ours),
            child,
        }
    }

    /// Sends `request` with the write end of a new status pipe; the reply and the read end.
    fn ask_with_pipe(&mut self, request: &Value) -> (Value, fs::File) {
        let (status, _) = self.send(request, false);
        (self.reply(), status)
    }

    /// Sends `request` with the write end of a status pipe and the read end of a go-ahead
    /// pipe (as ten does); the reply, the status pipe's read end and the go-ahead's write end.
    fn ask_with_go_ahead(&mut self, request: &Value) -> (Value, fs::File, fs::File) {
        let (status, go) = self.send_with_go_ahead(request);
        (self.reply(), status, go)
    }

    /// Sends `request` as [`Spawner::ask_with_go_ahead`] does, without reading the reply.
    fn send_with_go_ahead(&mut self, request: &Value) -> (fs::File, fs::File) {
        let (status, go) = self.send(request, true);
        (status, go.expect("a go-ahead pipe was sent"))
    }

    /// Sends `request` with the write end of a new status pipe and, with `go`, the read end
    /// of a go-ahead pipe; the status pipe's read end and the go-ahead's write end.
    fn send(&mut self, request: &Value, go: bool) -> (fs::File, Option<fs::File>) {
        use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
        use std::os::fd::AsRawFd;
        let pipe = || nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let (status_read, status_write) = pipe();
        let go = go.then(pipe);
        let mut fds = vec![status_write.as_raw_fd()];
        fds.extend(go.as_ref().map(|(read, _)| read.as_raw_fd()));
        let message = serde_json::to_vec(request).unwrap();
        sendmsg::<()>(
            self.socket.as_raw_fd(),
            &[std::io::IoSlice::new(&message)],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            None,
        )
        .unwrap();
        // Only the spawner's child keeps these ends.
        drop(status_write);
        (
            fs::File::from(status_read),
            go.map(|(_, write)| fs::File::from(write)),
        )
    }

    /// The next reply.
    fn reply(&mut self) -> Value {
        let mut reply = vec![0; 4096];
        let length = self.socket.read(&mut reply).unwrap();
        serde_json::from_slice(&reply[..length]).unwrap()
    }

    fn ask(&mut self, request: &Value) -> Value {
        self.socket
            .write_all(&serde_json::to_vec(request).unwrap())
            .unwrap();
        self.reply()
    }
}

impl Drop for Spawner {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A request for `argv` in `dir`, its output appended to `dir/out` and `dir/err`.
fn request(dir: &Path, argv: &[&str]) -> Value {
    json!({
        "argv": argv,
        "env": [["PATH", "/usr/bin:/bin"], ["MARK", "x"]],
        "cwd": dir,
        "cgroup_procs": [],
        "clone_into": null,
        "stdout": dir.join("out"),
        "stderr": dir.join("err"),
        "user": null,
    })
}

fn started(reply: &Value) -> i32 {
    reply["Started"]["pid"]
        .as_i64()
        .unwrap_or_else(|| panic!("not started: {reply}")) as i32
}

/// Waits for our child `pid` (the spawner made it ours) and returns its exit code.
fn exit_code(pid: i32) -> i32 {
    match waitpid(Pid::from_raw(pid), None).unwrap() {
        WaitStatus::Exited(_, code) => code,
        other => panic!("{pid} ended as {other:?}"),
    }
}

#[test]
fn a_child_is_ours_in_its_own_group_with_its_output_files_environment_and_directory() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("out"), "before\n").unwrap();
    let mut spawner = Spawner::start();
    let script = "echo $MARK; pwd; cat /proc/self/stat >/dev/null; read -r stat </proc/$$/stat; echo \"$stat\"; echo oops >&2; exit 3";
    let pid = started(&spawner.ask(&request(dir.path(), &["sh", "-c", script])));
    assert_eq!(
        exit_code(pid),
        3,
        "the test is its parent and gets its status"
    );
    let out = fs::read_to_string(dir.path().join("out")).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..3], ["before", "x", dir.path().to_str().unwrap()]);
    // /proc/PID/stat: pid (comm) state ppid pgrp session ...
    let fields: Vec<&str> = lines[3].rsplit_once(") ").unwrap().1.split(' ').collect();
    assert_eq!(fields[1], std::process::id().to_string(), "its parent");
    assert_eq!(fields[2], pid.to_string(), "a process group of its own");
    assert_eq!(
        fs::read_to_string(dir.path().join("err")).unwrap(),
        "oops\n"
    );
}

#[test]
fn with_a_status_pipe_the_pid_comes_first_and_the_pipe_tells_how_the_exec_went() {
    let dir = tempfile::tempdir().unwrap();
    let mut spawner = Spawner::start();
    let (reply, mut status) = spawner.ask_with_pipe(&request(dir.path(), &["sh", "-c", "exit 5"]));
    let pid = started(&reply);
    let mut outcome = Vec::new();
    status.read_to_end(&mut outcome).unwrap();
    assert!(outcome.is_empty(), "it executed: end-of-file, no message");
    assert_eq!(exit_code(pid), 5);

    // A failed exec: the child exists (a pid to reap), and the pipe carries the step
    // (6: the exec) and the errno.
    let (reply, mut status) =
        spawner.ask_with_pipe(&request(dir.path(), &["/nonexistent/program"]));
    let pid = started(&reply);
    let mut outcome = Vec::new();
    status.read_to_end(&mut outcome).unwrap();
    assert_eq!(outcome.len(), 5, "{outcome:?}");
    assert_eq!(outcome[0], 6);
    assert_eq!(
        i32::from_ne_bytes(outcome[1..].try_into().unwrap()),
        nix::libc::ENOENT
    );
    assert_eq!(exit_code(pid), 127);

    // What fails before the fork is the reply itself.
    let (reply, _) = spawner.ask_with_pipe(&request(dir.path(), &["no-such-program-here"]));
    assert_eq!(
        reply["Failed"]["error"], "no-such-program-here: not found in PATH",
        "{reply}"
    );
}

#[test]
fn with_a_go_ahead_the_pid_comes_first_and_the_command_runs_only_once_told() {
    let dir = tempfile::tempdir().unwrap();
    let mut spawner = Spawner::start();
    let (reply, mut status, mut go) =
        spawner.ask_with_go_ahead(&request(dir.path(), &["sh", "-c", "echo ran; exit 4"]));
    let pid = started(&reply);
    // The child exists and waits: nothing of the command has run.
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(
        fs::read_to_string(dir.path().join("out")).unwrap_or_default(),
        ""
    );
    go.write_all(&[1]).unwrap();
    let mut outcome = Vec::new();
    status.read_to_end(&mut outcome).unwrap();
    assert!(outcome.is_empty(), "it executed: {outcome:?}");
    assert_eq!(exit_code(pid), 4);
    assert_eq!(fs::read_to_string(dir.path().join("out")).unwrap(), "ran\n");

    // A go-ahead withdrawn (its pipe closed unwritten): the command never runs, the pipe
    // says why (8), and the child is ours to reap.
    let (reply, mut status, go) =
        spawner.ask_with_go_ahead(&request(dir.path(), &["sh", "-c", "echo again"]));
    let pid = started(&reply);
    drop(go);
    let mut outcome = Vec::new();
    status.read_to_end(&mut outcome).unwrap();
    assert_eq!(outcome.first(), Some(&8), "{outcome:?}");
    assert_eq!(exit_code(pid), 127);
    assert_eq!(fs::read_to_string(dir.path().join("out")).unwrap(), "ran\n");

    // And it serves the next request.
    let (reply, mut status) = spawner.ask_with_pipe(&request(dir.path(), &["true"]));
    let pid = started(&reply);
    status.read_to_end(&mut Vec::new()).unwrap();
    assert_eq!(exit_code(pid), 0);
}

#[test]
fn what_cannot_start_says_which_step_failed_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let mut spawner = Spawner::start();
    let missing = spawner.ask(&request(dir.path(), &["/nonexistent/program"]));
    let error = missing["Failed"]["error"].as_str().unwrap();
    assert!(
        error.starts_with("cannot execute it: No such file or directory"),
        "{missing}"
    );
    // The child that failed is ours to reap, as ten's reaper leaves it to its spawn.
    assert_eq!(
        exit_code(missing["Failed"]["pid"].as_i64().unwrap() as i32),
        127
    );

    let unknown = spawner.ask(&request(dir.path(), &["no-such-program-here"]));
    assert_eq!(
        unknown["Failed"]["error"], "no-such-program-here: not found in PATH",
        "{unknown}"
    );

    let mut nowhere = request(dir.path(), &["true"]);
    nowhere["cwd"] = json!(dir.path().join("gone"));
    let nowhere = spawner.ask(&nowhere);
    assert!(
        nowhere["Failed"]["error"]
            .as_str()
            .unwrap()
            .starts_with("cannot change to its directory: No such file"),
        "{nowhere}"
    );
    exit_code(nowhere["Failed"]["pid"].as_i64().unwrap() as i32);

    let mut unwritable = request(dir.path(), &["true"]);
    unwritable["stdout"] = json!(dir.path().join("no/such/dir/out"));
    let unwritable = spawner.ask(&unwritable);
    assert!(
        unwritable["Failed"]["error"]
            .as_str()
            .unwrap()
            .starts_with("cannot open its output file: No such file"),
        "{unwritable}"
    );
    exit_code(unwritable["Failed"]["pid"].as_i64().unwrap() as i32);

    // It still serves after failures.
    assert_eq!(
        exit_code(started(&spawner.ask(&request(dir.path(), &["true"])))),
        0
    );
}

#[test]
fn a_child_that_cannot_answer_never_runs_and_its_spawner_does_not_hang() {
    let dir = tempfile::tempdir().unwrap();
    let mut spawner = Spawner::start();
    // No answer can reach us: the child's answer fails (EPIPE), then the spawner's.
    nix::sys::socket::shutdown(
        std::os::fd::AsRawFd::as_raw_fd(&spawner.socket),
        nix::sys::socket::Shutdown::Read,
    )
    .unwrap();
    let (_status, go) = spawner.send_with_go_ahead(&request(dir.path(), &["sh", "-c", "echo ran"]));
    // The go-ahead stays open: a child that went on after its failed answer would wait on it
    // for ever, and the spawner with it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let ended = loop {
        if let Some(status) = spawner.child.try_wait().unwrap() {
            break Some(status);
        }
        if std::time::Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    drop(go);
    assert!(
        ended.is_some(),
        "the spawner hangs on a child that could not answer"
    );
    assert_eq!(
        fs::read_to_string(dir.path().join("out")).unwrap_or_default(),
        "",
        "the command ran"
    );
}

/// The step (its number) and errno a status pipe carried.
fn failed_step(status: &mut fs::File) -> (u8, i32) {
    let mut outcome = Vec::new();
    status.read_to_end(&mut outcome).unwrap();
    assert_eq!(outcome.len(), 5, "{outcome:?}");
    (
        outcome[0],
        i32::from_ne_bytes(outcome[1..].try_into().unwrap()),
    )
}

#[test]
fn with_a_status_pipe_a_failed_setup_says_its_step_after_the_pid() {
    // As ten asks (a status pipe and a go-ahead): the child answers with its pid before its
    // setup, and the pipe tells which step failed.
    let dir = tempfile::tempdir().unwrap();
    let mut spawner = Spawner::start();

    // (field, value, the step that fails: 4 its directory, 7 its output, 2 its cgroup,
    // joined from the child as on v1)
    for (field, value, step) in [
        ("cwd", json!(dir.path().join("gone")), 4),
        ("stdout", json!(dir.path().join("no/such/dir/out")), 7),
        (
            "cgroup_procs",
            json!([dir.path().join("no-cgroup/cgroup.procs")]),
            2,
        ),
    ] {
        let mut failing = request(dir.path(), &["true"]);
        failing[field] = value;
        let (reply, mut status, _go) = spawner.ask_with_go_ahead(&failing);
        let pid = started(&reply);
        assert_eq!(
            failed_step(&mut status),
            (step, nix::libc::ENOENT),
            "{field}"
        );
        assert_eq!(exit_code(pid), 127, "{field}");
    }

    // It still serves after failures.
    let (reply, mut status, mut go) =
        spawner.ask_with_go_ahead(&request(dir.path(), &["sh", "-c", "exit 6"]));
    let pid = started(&reply);
    go.write_all(&[1]).unwrap();
    status.read_to_end(&mut Vec::new()).unwrap();
    assert_eq!(exit_code(pid), 6);
}

/// The mount point of the cgroup v2 hierarchy: /sys/fs/cgroup on most hosts, `unified` under
/// it on a v1 host like this one.
fn cgroup2_root() -> PathBuf {
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap();
    mounts
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            (fields.get(2) == Some(&"cgroup2")).then(|| PathBuf::from(fields[1]))
        })
        .expect("a cgroup v2 hierarchy is mounted (Linux mounts one with systemd)")
}

/// A cgroup made for this test, removed when dropped.
struct TestCgroup(PathBuf);

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let _ = fs::remove_dir(&self.0);
    }
}

/// The v2 cgroup `/proc/PID/cgroup` (the `0::` line) names for the process whose stat the
/// script wrote to `out`.
fn v2_cgroup_in(out: &Path) -> String {
    fs::read_to_string(out)
        .unwrap()
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .unwrap_or_else(|| panic!("no v2 line in {}", out.display()))
        .to_string()
}

#[test]
fn a_child_starts_in_its_v2_cgroup_or_joins_it_before_exec() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root to make cgroups (CI runs as root)"
    );
    let root = cgroup2_root();
    let name = format!("ten-spawner-test-{}", std::process::id());
    let cgroup = TestCgroup(root.join(&name));
    fs::create_dir(&cgroup.0).unwrap();
    let mut spawner = Spawner::start();

    // clone3 with CLONE_INTO_CGROUP: no cgroup.procs to write, so only the clone can place it.
    let dir = tempfile::tempdir().unwrap();
    let mut into = request(dir.path(), &["cat", "/proc/self/cgroup"]);
    into["clone_into"] = json!(cgroup.0);
    assert_eq!(exit_code(started(&spawner.ask(&into))), 0);
    assert_eq!(v2_cgroup_in(&dir.path().join("out")), format!("/{name}"));

    // Joining between fork and exec (v1, or a kernel without CLONE_INTO_CGROUP).
    let dir = tempfile::tempdir().unwrap();
    let mut join = request(dir.path(), &["cat", "/proc/self/cgroup"]);
    join["cgroup_procs"] = json!([cgroup.0.join("cgroup.procs")]);
    assert_eq!(exit_code(started(&spawner.ask(&join))), 0);
    assert_eq!(v2_cgroup_in(&dir.path().join("out")), format!("/{name}"));

    // A cgroup that is not there is the start's failure, with the reason.
    let mut missing = request(dir.path(), &["true"]);
    missing["clone_into"] = json!(root.join("ten-spawner-test-none"));
    let missing = spawner.ask(&missing);
    assert!(
        missing["Failed"]["error"]
            .as_str()
            .unwrap()
            .contains("No such file"),
        "{missing}"
    );
}
