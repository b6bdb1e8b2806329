//! The original tenement's promises, walked literally as its documents give them:
//! its quick start (`ten serve --port P --domain localhost`, `ten token-gen`, `ten spawn
//! notes:alice`, curl through the subdomains, `ten ps`, `TENEMENT_SERVER`), the README's
//! socket app (`ten spawn api --id user123`), and its CLI verbs (`stop`, `restart`, `health`,
//! `logs`, `config`). Run as a user would: in the project's directory, no `--config`, no
//! `--server` (but `--bind 127.0.0.1`: tests listen on loopback only).

mod support;

use std::path::Path;

use support::http::{Request, Response};
use support::server::{TestServer, port_range, stderr, stdout, ten_in, wait_gone};

/// `ten ARGS` must succeed; its stdout.
fn ok(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let output = ten_in(dir, args, env);
    assert!(
        output.status.success(),
        "ten {args:?}: {}{}",
        stdout(&output),
        stderr(&output)
    );
    stdout(&output)
}

/// What curl sends for `curl [-X METHOD] http://HOST:PORT/PATH [-d BODY]`.
fn curl(port: u16, host: &str, method: &str, path: &str, body: &str) -> Response {
    let mut request = Request::new(method, path).host(&format!("{host}:{port}"));
    if !body.is_empty() {
        request = request
            .header("Content-Type", "application/json")
            .body(body);
    }
    request.send(("127.0.0.1", port))
}

#[test]
fn the_original_quick_start_and_verbs_work_as_written() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/notes/app.py"),
        dir.join("app.py"),
    )
    .unwrap();
    let (low, high) = port_range();
    let port = port_range().0;
    let socket = dir.join("api-{id}.sock");
    // The quick start's config as written, the README's socket app beside it (`[process.*]`,
    // the original's older name), and a port range of this test's own.
    std::fs::write(
        dir.join("tenement.toml"),
        format!(
            "[settings]\nport_range = [{low}, {high}]\n\n\
             [service.notes]\ncommand = \"python3 app.py\"\nhealth = \"/health\"\nidle_timeout = 300\nisolation = \"process\"\n\n\
             [service.notes.env]\nDATA_DIR = \"{{data_dir}}/{{id}}\"\n\n\
             [process.api]\ncommand = \"{} --socket\"\nsocket = \"{}\"\nhealth = \"/health\"\n\n\
             [process.api.env]\nDATABASE_PATH = \"{{data_dir}}/{{id}}/app.db\"\n",
            support::server::backend().display(),
            socket.display(),
        ),
    )
    .unwrap();

    // ten serve --port 8080 --domain localhost
    let server = TestServer::start_in(
        dir,
        &[
            "--port",
            &port.to_string(),
            "--domain",
            "localhost",
            "--bind",
            "127.0.0.1",
        ],
    );
    assert_eq!(server.url, format!("http://127.0.0.1:{port}"));
    // ten token-gen: a new admin token; the CLI here goes on working with it.
    let token = ok(dir, &["token-gen"], &[]);
    assert!(token.lines().any(|line| line.trim().len() == 64), "{token}");
    // ten spawn notes:alice, ten spawn notes:bob
    for id in ["alice", "bob"] {
        let said = ok(dir, &["spawn", &format!("notes:{id}")], &[]);
        assert!(
            said.contains(&format!("notes:{id}")) && said.contains("running"),
            "{said}"
        );
    }
    // Each tenant has its own process, data directory and database.
    let posted = curl(
        port,
        "alice.notes.localhost",
        "POST",
        "/notes",
        r#"{"text":"hello from alice"}"#,
    );
    assert_eq!(posted.status, 201, "{posted:?}");
    let notes = curl(port, "alice.notes.localhost", "GET", "/notes", "");
    assert_eq!(
        (notes.status, notes.body.as_str()),
        (200, r#"[{"id": 1, "text": "hello from alice"}]"#)
    );
    let notes = curl(port, "bob.notes.localhost", "GET", "/notes", "");
    assert_eq!((notes.status, notes.body.as_str()), (200, "[]"));
    // ten ps: INSTANCE LISTEN UPTIME HEALTH WEIGHT, and a row per tenant.
    let ps = ok(dir, &["ps"], &[]);
    let header: Vec<&str> = ps.lines().next().unwrap().split_whitespace().collect();
    for column in ["INSTANCE", "LISTEN", "UPTIME", "HEALTH", "WEIGHT"] {
        assert!(header.contains(&column), "{ps}");
    }
    for id in ["alice", "bob"] {
        let row = ps
            .lines()
            .find(|line| line.starts_with(&format!("notes:{id} ")))
            .unwrap_or_else(|| panic!("{ps}"));
        assert!(
            row.contains("127.0.0.1:") && row.contains("healthy") && row.contains("100"),
            "{row}"
        );
    }

    // export TENEMENT_SERVER=http://localhost:PORT; ten ps; ten spawn notes:carol; ten logs
    let url = format!("http://localhost:{port}");
    let env = [("TENEMENT_SERVER", url.as_str())];
    assert!(ok(dir, &["ps"], &env).contains("notes:alice"));
    ok(dir, &["spawn", "notes:carol"], &env);
    let logs = ok(dir, &["logs", "notes:carol"], &env);
    assert!(logs.contains("notes listening on"), "{logs}");

    // The README: tenement spawn api --id user123 -> its socket; ps; health; stop.
    let said = ok(dir, &["spawn", "api", "--id", "user123"], &[]);
    let listening = dir.join("api-user123.sock");
    assert!(
        said.contains("api:user123") && said.contains(&listening.display().to_string()),
        "{said}"
    );
    let ps = ok(dir, &["ps"], &[]);
    assert!(
        ps.lines().any(|line| line.starts_with("api:user123 ")
            && line.contains(&listening.display().to_string())),
        "{ps}"
    );
    let health = curl(port, "user123.api.localhost", "GET", "/health", "");
    assert_eq!(health.status, 200, "{health:?}");
    let health = ok(dir, &["health", "api:user123"], &[]);
    assert!(health.contains("api:user123: healthy"), "{health}");
    let pid = server
        .instance("api:user123")
        .and_then(|view| view.pid)
        .unwrap();
    let stopped = ok(dir, &["stop", "api:user123"], &[]);
    assert!(
        stopped.contains("api:user123") && stopped.contains("stopped"),
        "{stopped}"
    );
    assert!(wait_gone(pid));

    // ten restart notes:alice: a new process, the same data.
    let before = server
        .instance("notes:alice")
        .and_then(|view| view.pid)
        .unwrap();
    let restarted = ok(dir, &["restart", "notes:alice"], &[]);
    assert!(restarted.contains("restarted"), "{restarted}");
    let after = server
        .instance("notes:alice")
        .and_then(|view| view.pid)
        .unwrap();
    assert_ne!(before, after);
    let notes = curl(port, "alice.notes.localhost", "GET", "/notes", "");
    assert_eq!(
        (notes.status, notes.body.as_str()),
        (200, r#"[{"id": 1, "text": "hello from alice"}]"#)
    );
    // ten logs notes:alice: the app's own output (Python logs each request).
    let logs = ok(dir, &["logs", "notes:alice"], &[]);
    assert!(logs.contains("POST /notes"), "{logs}");
    // ten config: the effective configuration, both services.
    let config = ok(dir, &["config"], &[]);
    assert!(
        config.contains("[service.notes]") && config.contains("[service.api]"),
        "{config}"
    );
    // The public health check, as the original answers it.
    let health = curl(port, "localhost", "GET", "/health", "");
    assert_eq!(health.status, 200, "{health:?}");
    assert!(health.body.contains(r#""status":"ok""#), "{}", health.body);
}
