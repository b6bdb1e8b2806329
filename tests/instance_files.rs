//! What ten reads below `instances/`, on the real binary: a symbolic link (to a file outside
//! the project holding a secret) is refused and its target's content never appears in any
//! output, a FIFO is refused without hanging, a 256 MB file is refused without being read,
//! and a directory named like an instance file is an error naming its instance. A running
//! tenant whose file turns into any of these keeps running (bad input never destroys).

mod support;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::server::{TestServer, alive, backend_service, project, stderr, stdout, within};

const SECRET: &str = "root:$6$not-a-real-hash-but-a-secret:19000:0:99999:7:::";

/// `ten validate` in `dir`, killed if it takes longer than 20 s (a read that blocks).
fn validate(dir: &Path) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ten"))
        .args(["validate"])
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("TENEMENT_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ten validate hangs");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    (
        output.status.success(),
        format!("{}{}", stdout(&output), stderr(&output)),
    )
}

#[test]
fn links_fifos_huge_files_and_directories_are_refused_and_nothing_of_them_is_shown() {
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("shadow");
    fs::write(&secret, format!("{SECRET}\n")).unwrap();
    let project = project(
        "",
        &backend_service("web", "start = \"eager\""),
        &[
            ("instances/web/alice.toml", "# alice\n"),
            ("instances/web/bob.toml", "# bob\n"),
            ("instances/web/carol.toml", "# carol\n"),
            ("instances/web/dave.toml", "# dave\n"),
        ],
    );
    let dir = project.path();
    let server = TestServer::start(dir);
    let pids: Vec<u32> = ["alice", "bob", "carol", "dave"]
        .iter()
        .map(|id| server.wait_running(&format!("web:{id}")))
        .collect();

    // Each tenant's file becomes something ten must not read.
    let file = |id: &str| dir.join(format!("instances/web/{id}.toml"));
    fs::remove_file(file("alice")).unwrap();
    symlink(&secret, file("alice")).unwrap();
    fs::remove_file(file("bob")).unwrap();
    nix::unistd::mkfifo(
        &file("bob"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    fs::OpenOptions::new()
        .write(true)
        .open(file("carol"))
        .unwrap()
        .set_len(256 << 20)
        .unwrap();
    fs::remove_file(file("dave")).unwrap();
    fs::create_dir(file("dave")).unwrap();
    // And a link that would declare a new tenant from outside.
    symlink(&secret, dir.join("instances/web/eve.toml")).unwrap();

    let (ok, said) = validate(dir);
    assert!(!ok, "ten validate accepts: {said}");
    for expected in [
        "instances/web/alice.toml",
        "symbolic link",
        "instances/web/bob.toml",
        "FIFO",
        "instances/web/carol.toml",
        "bytes",
        "web:dave",
        "directory",
        "instances/web/eve.toml",
    ] {
        assert!(
            said.contains(expected),
            "ten validate does not say {expected:?}:\n{said}"
        );
    }
    assert!(
        !said.contains("not-a-real-hash"),
        "the link's target is quoted:\n{said}"
    );

    // The running server sees the same, keeps every tenant, and shows nothing of the target.
    let noticed = within(Duration::from_secs(10), || {
        stderr(&server.ten(&["ps"])).contains("kept at their last valid declaration")
    });
    assert!(
        noticed,
        "{}\n{}",
        stderr(&server.ten(&["ps"])),
        server.log()
    );
    std::thread::sleep(Duration::from_millis(1500));
    for pid in &pids {
        assert!(alive(*pid), "a tenant was stopped:\n{}", server.log());
    }
    assert!(
        server.instance("web:eve").is_none(),
        "a link declared a tenant"
    );
    let status = support::http::Request::get("/api/status")
        .bearer(
            fs::read_to_string(dir.join("tenement-data/api_token"))
                .unwrap()
                .trim(),
        )
        .send(server.address());
    assert_eq!(status.status, 200);
    let ps = server.ten(&["ps"]);
    let diff = server.ten(&["diff"]);
    for (what, text) in [
        ("/api/status", status.body.clone()),
        ("ten ps", format!("{}{}", stdout(&ps), stderr(&ps))),
        ("ten diff", format!("{}{}", stdout(&diff), stderr(&diff))),
        ("the server's log", server.log()),
    ] {
        assert!(
            !text.contains("not-a-real-hash"),
            "{what} quotes the link's target:\n{text}"
        );
    }

    // Fixed: the same processes run on, and eve is still no tenant. Each file is replaced in one
    // step, as an editor or a deploy does: removed, then written, a reload between the two sees
    // the tenant undeclared and removes it (CI saw dave restarted so). A link is renamed over;
    // the directory is exchanged with its replacement (`RENAME_EXCHANGE`), then removed.
    for id in ["alice", "bob", "carol", "dave"] {
        let staged = dir.join(format!("{id}.toml.new"));
        fs::write(&staged, "").unwrap();
        if id == "dave" {
            let here = fs::File::open(dir).unwrap();
            nix::fcntl::renameat2(
                &here,
                &staged,
                &here,
                &file(id),
                nix::fcntl::RenameFlags::RENAME_EXCHANGE,
            )
            .unwrap();
            fs::remove_dir(&staged).unwrap();
        } else {
            fs::rename(&staged, file(id)).unwrap();
        }
    }
    fs::remove_file(dir.join("instances/web/eve.toml")).unwrap();
    let (ok, said) = validate(dir);
    assert!(ok, "{said}");
    let all_running = |views: &[ten::api::types::InstanceView]| {
        ["alice", "bob", "carol", "dave"].iter().all(|id| {
            views
                .iter()
                .any(|view| view.instance.to_string() == format!("web:{id}") && view.pid.is_some())
        })
    };
    let fixed = within(Duration::from_secs(10), || {
        stderr(&server.ten(&["ps"])).is_empty() && all_running(&server.ps())
    });
    assert!(
        fixed,
        "{}\n{:?}\n{}",
        stderr(&server.ten(&["ps"])),
        server.ps(),
        server.log()
    );
    let views = server.ps();
    for (id, pid) in ["alice", "bob", "carol", "dave"].iter().zip(&pids) {
        let view = views
            .iter()
            .find(|view| view.instance.to_string() == format!("web:{id}"))
            .unwrap();
        assert_eq!(
            view.pid,
            Some(*pid),
            "web:{id}: {view:?}\nten's log:\n{}",
            server.log()
        );
    }
    assert!(
        server.instance("web:eve").is_none(),
        "a removed link declared a tenant"
    );
}
