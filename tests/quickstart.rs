//! The README's quick start, step by step, on a copy of the bundled example (the Python notes
//! app): what the README promises must stay true.

mod support;

use std::fs;
use std::io::Write;
use std::path::Path;

use support::http::{Request, Response};
use support::server::{TestServer, stdout, wait_gone};
use ten::observed::Phase;

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.file_name() == "tenement-data" {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A request through ten's proxy, as curl sends it to `http://HOST:PORT/...` (`-d BODY`:
/// form-encoded).
fn request(server: &TestServer, host: &str, method: &str, path: &str, body: &str) -> Response {
    let mut request = Request::new(method, path).host(host);
    if !body.is_empty() {
        request = request
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body);
    }
    request.send(server.address())
}

#[test]
fn the_quick_start_works_as_written() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("notes");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/notes"),
        &dir,
    );
    // The example's port range may overlap other tests' servers: give it its own.
    let (low, high) = support::server::port_range();
    let config = fs::read_to_string(dir.join("tenement.toml")).unwrap();
    fs::write(
        dir.join("tenement.toml"),
        config.replace(
            "[settings]\n",
            &format!("[settings]\nport_range = [{low}, {high}]\n"),
        ),
    )
    .unwrap();

    let server = TestServer::start(&dir);
    let alice = server.wait_running("notes:alice");
    server.wait_running("notes:bob");
    let ps = stdout(&server.ten(&["ps"]));
    assert!(ps.contains("notes:alice") && ps.contains("healthy"), "{ps}");

    let spawn = server.ten(&["spawn", "notes:carol"]);
    assert!(
        spawn.status.success(),
        "{}",
        support::server::stderr(&spawn)
    );
    assert!(dir.join("instances/notes/carol.toml").exists());

    support::write_file(&dir.join("instances/notes/dave.toml"), "");
    let dave = server.wait_running("notes:dave");
    fs::remove_file(dir.join("instances/notes/dave.toml")).unwrap();
    assert!(wait_gone(dave));

    assert!(server.ten(&["stop", "notes:alice"]).status.success());
    assert!(wait_gone(alice));
    assert!(server.ten(&["start", "notes:alice"]).status.success());

    let before: Vec<(String, Option<u32>)> = server
        .ps()
        .iter()
        .map(|v| (v.instance.to_string(), v.pid))
        .collect();
    let mut config = fs::OpenOptions::new()
        .append(true)
        .open(dir.join("tenement.toml"))
        .unwrap();
    config.write_all(b"FEATURES = \"beta\"\n").unwrap();
    server.wait_until("every notes tenant restarted", |views| {
        views.len() == 3
            && views.iter().all(|view| {
                view.phase == Phase::Running
                    && !before.contains(&(view.instance.to_string(), view.pid))
            })
    });
    let events = stdout(&server.ten(&["events"]));
    assert!(
        events.contains("forces restart: env.FEATURES changed"),
        "{events}"
    );
    assert_eq!(
        stdout(&server.ten(&["diff"])),
        "No changes. Desired state matches running instances.\n"
    );
    assert!(stdout(&server.ten(&["logs", "notes:bob"])).contains("notes listening on"));

    // Each tenant has its own database, reached by its subdomain.
    let alice_host = "alice.notes.localhost";
    let posted = request(
        &server,
        alice_host,
        "POST",
        "/notes",
        r#"{"text": "hello from alice"}"#,
    );
    assert_eq!(posted.status, 201, "{posted:?}");
    let notes = request(&server, alice_host, "GET", "/notes", "");
    assert_eq!(notes.status, 200, "{notes:?}");
    assert!(
        notes.body.contains(r#""text": "hello from alice""#),
        "{notes:?}"
    );
    let bob = request(&server, "bob.notes.localhost", "GET", "/notes", "");
    assert_eq!((bob.status, bob.body.as_str()), (200, "[]"), "{bob:?}");
    let eve = request(&server, "eve.notes.localhost", "GET", "/notes", "");
    assert_eq!(eve.status, 404, "{eve:?}");
    assert!(dir.join("tenement-data/notes/alice/notes.db").exists());
}
