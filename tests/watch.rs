//! The file watcher end to end: the real `ten serve`, real tenants, instance files written the
//! ways tools write them. A file is read once it is whole, and only then; a file renamed into
//! place, a directory renamed into place and a removal are acted on.

mod support;

use std::fs;
use std::io::Write;
use std::time::Duration;

use support::http::Request;
use support::server::{TestServer, backend_service, project, stdout, wait_gone};

/// How many reloads took in a change the watcher told (`ten_reconcile_lag_seconds`: one
/// sample per reload that followed the watcher's news).
fn reloads_told(server: &TestServer) -> f64 {
    let response = Request::get("/metrics").send(server.address());
    assert_eq!(response.status, 200, "{}", response.body);
    response
        .body
        .lines()
        .find_map(|line| line.strip_prefix("ten_reconcile_lag_seconds_count "))
        .unwrap_or_else(|| panic!("no lag count in\n{}", response.body))
        .parse()
        .unwrap()
}

/// GET `path` from the instance's own port.
fn get_direct(server: &TestServer, key: &str, path: &str) -> String {
    let port = server.instance(key).and_then(|view| view.port).unwrap();
    let response = Request::get(path).host("x").send(("127.0.0.1", port));
    assert_eq!(response.status, 200, "{response:?}");
    response.body
}

#[test]
fn a_file_written_in_two_steps_is_read_once_and_whole() {
    let dir = project(
        "public_metrics = true",
        &backend_service("web", ""),
        &[("instances/web/first.toml", "")],
    );
    let server = TestServer::start(dir.path());
    server.wait_running("web:first");
    let before = reloads_told(&server);

    let path = dir.path().join("instances/web/slow.toml");
    let mut file = fs::File::create(&path).unwrap();
    // The first half alone is not TOML (a string never closed): read, it would be reported.
    file.write_all(b"[env]\nGREETING = \"hel").unwrap();
    file.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        server.instance("web:slow").is_none(),
        "nothing is read while the writer holds the file"
    );
    file.write_all(b"lo\"\n").unwrap();
    drop(file);

    server.wait_running("web:slow");
    let env = get_direct(&server, "web:slow", "/env");
    assert!(env.contains("GREETING=hello\n"), "{env}");
    let events = stdout(&server.ten(&["events"]));
    assert!(
        !events.contains("problem(s) in the files"),
        "the half file was read: {events}"
    );
    let slow = stdout(&server.ten(&["events", "web:slow"]));
    assert_eq!(slow.matches("creating on port").count(), 1, "{slow}");
    assert!(
        !slow.contains("replace") && !slow.contains("updated in place"),
        "{slow}"
    );
    assert_eq!(
        reloads_told(&server) - before,
        1.0,
        "one reload for the file; events:\n{events}"
    );
}

#[test]
fn renames_into_place_and_removals_are_acted_on() {
    let services = format!(
        "{}\n{}",
        backend_service("web", ""),
        backend_service("api", "")
    );
    let dir = project("", &services, &[("instances/web/first.toml", "")]);
    let server = TestServer::start(dir.path());
    server.wait_running("web:first");
    let web = dir.path().join("instances/web");

    // An editor's save: a temporary file renamed over the instance file.
    fs::write(web.join(".b.toml.tmp"), "weight = 3\n").unwrap();
    fs::rename(web.join(".b.toml.tmp"), web.join("b.toml")).unwrap();
    let b = server.wait_running("web:b");
    assert_eq!(server.instance("web:b").unwrap().weight, 3);

    // A service directory made elsewhere and renamed into place.
    let staged = dir.path().join("staged");
    fs::create_dir_all(&staged).unwrap();
    fs::write(staged.join("x.toml"), "").unwrap();
    fs::write(staged.join("y.toml"), "weight = 2\n").unwrap();
    fs::rename(&staged, dir.path().join("instances/api")).unwrap();
    server.wait_running("api:x");
    server.wait_running("api:y");

    // `rm`.
    fs::remove_file(web.join("b.toml")).unwrap();
    server.wait_until("web:b is gone", |views| {
        !views.iter().any(|v| v.instance.to_string() == "web:b")
    });
    assert!(wait_gone(b), "b's process {b} is gone");
    assert!(server.instance("web:first").is_some());
}
