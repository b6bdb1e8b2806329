//! Logs kept on disk, end to end with a real `ten serve` and real tenants: a line is found by
//! `ten logs --search` after the tenant restarted and after ten was killed with SIGKILL and
//! started again, from files past the lines kept in memory; `--since` and `--until` (and the
//! API's `since`, `until`, `search`, `limit`) keep the lines of their time range;
//! `log_retention` removes old files by size and by age.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use support::http::Request;
use support::server::{TestServer, backend_service, project, stderr, stdout, within};
use ten::runtime::logs::{RING_LINES, kept_files};

fn log_dir(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("tenement-data/.ten/logs/web/{id}"))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// `ten logs ARGS --json`: the lines printed, parsed.
fn logs_json(server: &TestServer, args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = vec!["logs"];
    all.extend_from_slice(args);
    all.push("--json");
    let output = server.ten(&all);
    assert!(output.status.success(), "ten {all:?}: {}", stderr(&output));
    stdout(&output)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn texts(lines: &[serde_json::Value]) -> Vec<String> {
    lines
        .iter()
        .map(|line| line["text"].as_str().unwrap().to_string())
        .collect()
}

/// Waits until `ten logs web:a --search TEXT` finds a line (5 s at most).
fn wait_found(server: &TestServer, text: &str) {
    assert!(
        within(Duration::from_secs(5), || !logs_json(
            server,
            &["web:a", "--search", text]
        )
        .is_empty()),
        "{text:?} was never found; server log:\n{}",
        server.log()
    );
}

/// Requests that the backend logs ("GET /filler-N"): more lines than ten keeps in memory.
fn fill(server: &TestServer, count: usize) {
    for index in 0..count {
        let (status, _) = server.get("a.web.localhost", &format!("/filler-{index}"));
        assert_eq!(status, 404);
    }
}

#[test]
fn a_line_is_found_after_the_tenant_restarted_and_after_ten_was_killed() {
    // Rotated at 64 KiB, 256 KiB kept: the needle goes to a rotated file and stays.
    let dir = project(
        "log_retention = { max_bytes = \"256KB\" }",
        &backend_service("web", "[instances]\nweb = [\"a\"]"),
        &[],
    );
    let server = TestServer::start(dir.path());
    let first_pid = server.wait_running("web:a");
    let (status, _) = server.get("a.web.localhost", "/Needle-7f3a");
    assert_eq!(status, 404);
    wait_found(&server, "needle-7F3A");
    fill(&server, RING_LINES + 200);

    let restarted = server.ten(&["restart", "web:a"]);
    assert!(restarted.status.success(), "{}", stderr(&restarted));
    let second_pid = server.wait_running("web:a");
    assert_ne!(first_pid, second_pid, "the tenant restarted");
    let found = logs_json(&server, &["web:a", "--search", "needle-7f3a"]);
    assert_eq!(texts(&found), ["GET /Needle-7f3a"]);
    assert_eq!(found[0]["instance"], "web:a");
    assert_eq!(found[0]["stream"], "stdout");
    assert!(found[0]["at_unix_ms"].as_u64().unwrap() > now_ms() - 60_000);
    assert!(
        kept_files(&log_dir(dir.path(), "a")).len() >= 2,
        "the needle is in a rotated file: {:?}",
        kept_files(&log_dir(dir.path(), "a"))
    );
    // The ring alone does not have it any more: the last lines in memory are the filler.
    let recent = logs_json(&server, &["web:a", "--limit", "2000"]);
    assert!(!texts(&recent).contains(&"GET /Needle-7f3a".to_string()));

    // The guard kills the tenant at the end, should the second server fail to adopt it.
    let _guard = server.kill_hard();
    let server = TestServer::start(dir.path());
    assert_eq!(server.wait_running("web:a"), second_pid, "adopted");
    let found = logs_json(&server, &["web:a", "--search", "NEEDLE"]);
    assert_eq!(texts(&found), ["GET /Needle-7f3a"]);
    // The bulk form: every instance of the service.
    let found = logs_json(&server, &["web", "--search", "needle-7f3a"]);
    assert_eq!(texts(&found), ["GET /Needle-7f3a"]);
    // Nothing matches: said on stderr, exit 0.
    let none = server.ten(&["logs", "web:a", "--search", "no such line"]);
    assert!(none.status.success());
    assert!(stdout(&none).is_empty());
    assert!(
        stderr(&none).contains("no line of web:a kept on disk matches"),
        "{}",
        stderr(&none)
    );
}

#[test]
fn since_and_until_keep_the_lines_of_their_time_range() {
    let dir = project(
        "",
        &backend_service("web", "[instances]\nweb = [\"a\", \"b\"]"),
        &[],
    );
    let server = TestServer::start(dir.path());
    server.wait_running("web:a");
    server.wait_running("web:b");
    server.get("b.web.localhost", "/mark-of-b");
    server.get("a.web.localhost", "/mark-early");
    wait_found(&server, "mark-early");
    std::thread::sleep(Duration::from_millis(300));
    let between = now_ms();
    std::thread::sleep(Duration::from_millis(300));
    server.get("a.web.localhost", "/mark-late");
    wait_found(&server, "mark-late");
    let between_text = between.to_string();

    let marks = |args: &[&str]| {
        let mut all = vec!["web:a", "--search", "/mark-"];
        all.extend_from_slice(args);
        texts(&logs_json(&server, &all))
    };
    assert_eq!(marks(&[]), ["GET /mark-early", "GET /mark-late"]);
    assert_eq!(marks(&["--since", &between_text]), ["GET /mark-late"]);
    assert_eq!(marks(&["--until", &between_text]), ["GET /mark-early"]);
    assert_eq!(
        marks(&["--since", "1h"]),
        ["GET /mark-early", "GET /mark-late"]
    );
    assert!(marks(&["--until", "1h"]).is_empty());
    // A UTC time, as written in output.log.
    let at = humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(between));
    assert_eq!(marks(&["--since", &at.to_string()]), ["GET /mark-late"]);
    // Without a search: every line of the range (health checks are logged too).
    let range = logs_json(&server, &["web:a", "--since", &between_text]);
    assert!(
        range
            .iter()
            .all(|line| line["at_unix_ms"].as_u64().unwrap() >= between)
    );
    assert!(texts(&range).contains(&"GET /mark-late".to_string()));
    assert!(!texts(&range).contains(&"GET /mark-early".to_string()));
    let before = logs_json(&server, &["web:a", "--until", &between_text]);
    assert!(
        before
            .iter()
            .all(|line| line["at_unix_ms"].as_u64().unwrap() < between)
    );
    assert!(texts(&before).contains(&"GET /mark-early".to_string()));

    // The API: the same parameters, the same JSON shape.
    let token = fs::read_to_string(dir.path().join("tenement-data/api_token")).unwrap();
    let response = Request::get(&format!(
        "/api/logs?instance=web:a&search=MARK&since={}&limit=10",
        between - 3_600_000
    ))
    .bearer(token.trim())
    .send(server.address());
    assert_eq!(response.status, 200, "{}", response.body);
    let lines = response.json();
    assert_eq!(
        texts(lines.as_array().unwrap()),
        ["GET /mark-early", "GET /mark-late"]
    );
    let response = Request::get("/api/logs?instance=web:a&search=mark&limit=1")
        .bearer(token.trim())
        .send(server.address());
    assert_eq!(
        texts(response.json().as_array().unwrap()),
        ["GET /mark-late"]
    );

    // A tenant's token searches its own lines only, whatever it asks for.
    let output = server.ten(&["token-gen", "--tenant", "web:a", "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let tenant: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    let tenant = tenant["token"].as_str().unwrap();
    for path in [
        "/api/logs?search=mark",
        "/api/logs?service=web&search=mark",
        "/api/logs?search=mark&since=1h",
    ] {
        let response = Request::get(path).bearer(tenant).send(server.address());
        assert_eq!(response.status, 200, "{path}: {}", response.body);
        let lines = response.json();
        assert_eq!(
            texts(lines.as_array().unwrap()),
            ["GET /mark-early", "GET /mark-late"],
            "{path}"
        );
    }
    for path in [
        "/api/logs?instance=web:b&search=mark",
        "/api/logs?instance=all&search=mark",
    ] {
        let response = Request::get(path).bearer(tenant).send(server.address());
        assert_eq!(response.status, 403, "{path}: {}", response.body);
    }
    // The admin's search of the service has both instances' lines, each with its instance.
    let both = logs_json(&server, &["web", "--search", "/mark-"]);
    assert_eq!(
        texts(&both),
        ["GET /mark-of-b", "GET /mark-early", "GET /mark-late"]
    );
    assert_eq!(both[0]["instance"], "web:b");

    // Mistakes are said, with what to write.
    let bad = server.ten(&["logs", "web:a", "--since", "yesterday"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        stderr(&bad).contains("--since: \"yesterday\" is neither a duration nor a time"),
        "{}",
        stderr(&bad)
    );
    let inverted = server.ten(&["logs", "web:a", "--since", "1h", "--until", "2h"]);
    assert!(stderr(&inverted).contains("--since is not before --until"));
    let response = Request::get("/api/logs?instance=web:a&until=soon")
        .bearer(token.trim())
        .send(server.address());
    assert_eq!(response.status, 400, "{}", response.body);
    assert!(
        response.body.contains("until: \\\"soon\\\" is neither"),
        "{}",
        response.body
    );
}

#[test]
fn retention_removes_files_past_the_size_and_then_past_the_age() {
    // 256 bytes a millisecond: output.log rotates at 16 KiB, many times a second.
    let dir = project(
        "log_retention = { max_bytes = \"64KB\", max_age = \"3s\" }",
        &backend_service(
            "web",
            "args = [\"--stream\", \"--quiet\"]\n\n[instances]\nweb = [\"a\"]",
        ),
        &[],
    );
    let server = TestServer::start(dir.path());
    server.wait_running("web:a");
    let log_dir = log_dir(dir.path(), "a");
    let rotated_many = || {
        kept_files(&log_dir)
            .first()
            .and_then(|oldest| {
                oldest
                    .file_name()?
                    .to_str()?
                    .strip_prefix("output.log.")?
                    .parse::<u64>()
                    .ok()
            })
            .is_some_and(|first| first > now_ms() - 2_000)
    };
    assert!(
        within(Duration::from_secs(20), rotated_many),
        "the oldest files were never removed: {:?}",
        kept_files(&log_dir)
    );
    let (status, _) = server.get("a.web.localhost", "/stop-ticks");
    assert_eq!(status, 200);
    // Written fast, kept within the size: output.log and three rotated files of 16 KiB.
    std::thread::sleep(Duration::from_millis(200));
    let files = kept_files(&log_dir);
    assert!(files.len() <= 4, "{files:?}");
    let bytes: u64 = files
        .iter()
        .map(|file| fs::metadata(file).unwrap().len())
        .sum();
    assert!(bytes <= 64 * 1024 + 16 * 1024, "{bytes} bytes kept");
    // Nothing written for longer than max_age: output.log is rotated and every file goes.
    assert!(
        within(Duration::from_secs(15), || kept_files(&log_dir).is_empty()),
        "files older than max_age stay: {:?}",
        kept_files(&log_dir)
    );
    // The offsets record stays: what the tenant writes next is captured once.
    assert!(log_dir.join("offsets").exists());
}
