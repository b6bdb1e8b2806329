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
    // Declared, they sleep until their first request.
    let asleep = |views: &[ten::api::types::InstanceView], key: &str| {
        views
            .iter()
            .any(|v| v.instance.to_string() == key && v.phase == Phase::Sleeping)
    };
    server.wait_until("alice and bob asleep", |views| {
        asleep(views, "notes:alice") && asleep(views, "notes:bob")
    });
    let ps = stdout(&server.ten(&["ps"]));
    assert_eq!(ps.matches("sleeping").count(), 2, "{ps}");
    let woken = request(&server, "alice.notes.localhost", "GET", "/notes", "");
    assert_eq!(
        (woken.status, woken.body.as_str()),
        (200, "[]"),
        "{woken:?}"
    );
    let alice = server.wait_running("notes:alice");
    let ps = stdout(&server.ten(&["ps"]));
    assert!(ps.contains("notes:alice") && ps.contains("healthy"), "{ps}");

    let spawn = server.ten(&["spawn", "notes:carol"]);
    assert!(
        spawn.status.success(),
        "{}",
        support::server::stderr(&spawn)
    );
    assert!(dir.join("instances/notes/carol.toml").exists());
    let carol = server.wait_running("notes:carol");

    support::write_file(&dir.join("instances/notes/dave.toml"), "");
    server.wait_until("dave declared", |views| asleep(views, "notes:dave"));
    fs::remove_file(dir.join("instances/notes/dave.toml")).unwrap();
    server.wait_until("dave gone", |views| {
        !views.iter().any(|v| v.instance.to_string() == "notes:dave")
    });

    assert!(server.ten(&["stop", "notes:alice"]).status.success());
    assert!(wait_gone(alice));
    assert!(server.ten(&["start", "notes:alice"]).status.success());
    let alice = server.wait_running("notes:alice");

    let mut config = fs::OpenOptions::new()
        .append(true)
        .open(dir.join("tenement.toml"))
        .unwrap();
    config.write_all(b"FEATURES = \"beta\"\n").unwrap();
    // The running ones restart; bob, asleep, takes it at its next wake.
    server.wait_until("alice and carol restarted", |views| {
        views.len() == 3
            && asleep(views, "notes:bob")
            && views.iter().all(|view| {
                view.instance.to_string() == "notes:bob"
                    || (view.phase == Phase::Running
                        && view.pid.is_some()
                        && view.pid != Some(alice)
                        && view.pid != Some(carol))
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
    assert!(stdout(&server.ten(&["logs", "notes:alice"])).contains("notes listening on"));

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
