//! `/metrics` end to end, against the real `ten serve`, real tenants and real requests: the
//! scrape passes `promtool check metrics`; requests count under the right service and status
//! class (and requests for nothing declared in one fixed series); waits for a wake and
//! restarts count by service and cause; the series stay the same as tenants are added and as
//! unknown hosts and ids are asked for; the example alert rules pass `promtool check rules`.
//!
//! Needs `promtool` (Debian's `prometheus` package; `.ci/run` installs it), and root for the
//! memory limit (cgroups) of the out-of-memory test (CI runs as root).

mod support;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::http::Request;
use support::server::{TestServer, backend_service, project, within};
use ten::observed::Phase;

/// A scrape (`public_metrics = true` in the projects here).
fn scrape(server: &TestServer) -> String {
    let response = Request::get("/metrics").send(server.address());
    assert_eq!(response.status, 200, "{}", response.body);
    response.body
}

/// The value of the sample `series` (name and labels, as written) in `text`.
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
        .parse()
        .unwrap()
}

/// The series of a scrape: every sample's name and labels, without its value.
fn series(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| line.rsplit_once(' ').unwrap().0.to_string())
        .collect()
}

/// `promtool ARGS` with `input` on its stdin; panics with what it said unless it succeeds.
fn promtool(args: &[&str], input: &str) {
    let mut child = Command::new("promtool")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is needed (Debian's prometheus package; .ci/run installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn requests(text: &str, service: &str, class: &str) -> f64 {
    value(
        text,
        &format!("ten_service_requests_total{{service=\"{service}\",class=\"{class}\"}}"),
    )
}

#[test]
fn requests_count_under_their_service_and_class_and_the_scrape_passes_promtool() {
    let dir = project(
        "public_metrics = true",
        &format!(
            "{}{}{}",
            backend_service("web", ""),
            backend_service("api", ""),
            backend_service("sleepy", "idle_timeout = 1"),
        ),
        &[
            ("instances/web/a.toml", ""),
            ("instances/web/b.toml", ""),
            ("instances/api/v1.toml", ""),
            ("instances/sleepy/z.toml", ""),
        ],
    );
    let server = TestServer::start(dir.path());
    for key in ["web:a", "web:b", "api:v1"] {
        server.wait_running(key);
    }
    let before = scrape(&server);
    promtool(&["check", "metrics"], &before);
    assert_eq!(requests(&before, "web", "2xx"), 0.0);

    let get = |host: &str, path: &str| server.get(host, path).0;
    for _ in 0..3 {
        assert_eq!(get("a.web.localhost", "/"), 200);
    }
    assert_eq!(get("web.localhost", "/"), 200, "by the service's host");
    for _ in 0..2 {
        assert_eq!(get("b.web.localhost", "/no-such-page"), 404);
    }
    assert_eq!(get("v1.api.localhost", "/"), 200);
    // Unknown ids and services, and a host under no domain: the one unrouted series.
    for host in ["zed.web.localhost", "v2.api.localhost", "nothing.localhost"] {
        assert_eq!(get(host, "/"), 404, "{host}");
    }
    // A POST that kills its backend is not sent again: a 502 for api, and a crash.
    let crash = Request::post("/crash")
        .host("v1.api.localhost")
        .send(server.address());
    assert_eq!(crash.status, 502, "{}", crash.body);
    // A request for an instance asleep waits for its wake.
    server.wait_until("sleepy:z sleeps", |views| {
        views
            .iter()
            .any(|view| view.instance.to_string() == "sleepy:z" && view.phase == Phase::Sleeping)
    });
    assert_eq!(get("z.sleepy.localhost", "/"), 200);

    let text = scrape(&server);
    promtool(&["check", "metrics"], &text);
    assert_eq!(requests(&text, "web", "2xx"), 4.0);
    assert_eq!(requests(&text, "web", "4xx"), 2.0);
    assert_eq!(requests(&text, "web", "5xx"), 0.0);
    assert_eq!(requests(&text, "api", "2xx"), 1.0);
    assert_eq!(requests(&text, "api", "5xx"), 1.0);
    assert_eq!(requests(&text, "api", "4xx"), 0.0);
    assert_eq!(requests(&text, "sleepy", "2xx"), 1.0);
    assert_eq!(requests(&text, "(unrouted)", "4xx"), 3.0);
    for (service, class, count) in [("web", "2xx", 4.0), ("api", "5xx", 1.0)] {
        assert_eq!(
            value(
                &text,
                &format!(
                    "ten_service_request_duration_seconds_count{{service=\"{service}\",class=\"{class}\"}}"
                )
            ),
            count,
            "the latency histogram counts every answer"
        );
    }
    assert_eq!(
        value(&text, "ten_wake_duration_seconds_count{service=\"sleepy\"}"),
        1.0
    );
    assert_eq!(
        value(&text, "ten_wake_duration_seconds_count{service=\"web\"}"),
        0.0
    );
    assert!(
        within(Duration::from_secs(10), || {
            value(
                &scrape(&server),
                "ten_restarts_total{service=\"api\",cause=\"crashed\"}",
            ) == 1.0
        }),
        "the crash counts as a restart of api\n{}",
        scrape(&server)
    );
    let text = scrape(&server);
    assert_eq!(
        value(
            &text,
            "ten_restarts_total{service=\"web\",cause=\"crashed\"}"
        ),
        0.0
    );
    assert_eq!(
        value(&text, "ten_instances{service=\"web\",phase=\"running\"}"),
        2.0
    );
    assert!(value(&text, "process_resident_memory_bytes") > 1e6);
    assert!(value(&text, "process_open_fds") > 3.0);
    assert!(!text.contains("zed") && !text.contains("nothing") && !text.contains("v2"));
}

#[test]
fn the_series_stay_the_same_as_tenants_come_and_unknown_hosts_are_asked_for() {
    let dir = project(
        "public_metrics = true",
        &backend_service("web", ""),
        &[("instances/web/a.toml", "")],
    );
    let server = TestServer::start(dir.path());
    server.wait_running("web:a");
    // Every status code the test will see has been seen once (ten_proxy_requests_total has a
    // series per code seen).
    assert_eq!(server.get("a.web.localhost", "/").0, 200);
    let before = series(&scrape(&server));

    for n in 0..20 {
        support::write_file(&dir.path().join(format!("instances/web/t{n}.toml")), "");
    }
    server.wait_until("twenty more run", |views| {
        views
            .iter()
            .filter(|view| view.phase == Phase::Running)
            .count()
            == 21
    });
    for n in 0..100 {
        let host = match n % 4 {
            0 => format!("x{n}.web.localhost"),
            1 => format!("svc{n}.localhost"),
            2 => format!("a.b{n}.web.localhost"),
            _ => format!("t{n}.web.example.org"),
        };
        assert_eq!(server.get(&host, "/").0, 404, "{host}");
    }
    assert_eq!(server.get("t7.web.localhost", "/").0, 200);
    let text = scrape(&server);
    let after = series(&text);
    assert_eq!(
        after.symmetric_difference(&before).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "series came or went"
    );
    assert_eq!(requests(&text, "(unrouted)", "4xx"), 100.0);
    // The twenty files were a change of the files the reconciler took in.
    assert!(
        value(&text, "ten_reconcile_lag_seconds_count") >= 1.0,
        "{text}"
    );
    assert_eq!(value(&text, "ten_reconcile_pending_seconds"), 0.0);
    assert_eq!(
        value(&text, "ten_instances{service=\"web\",phase=\"running\"}"),
        21.0
    );
}

#[test]
fn the_example_alert_rules_pass_promtool() {
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/prometheus/alerts.yml");
    let output = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&rules)
        .output()
        .expect("promtool is needed (Debian's prometheus package; .ci/run installs it)");
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn a_tenant_killed_over_its_memory_limit_counts_as_out_of_memory() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "memory limits (cgroups) need root (CI runs as root)"
    );
    let probe = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/apps/probe.py");
    let dir = project(
        "public_metrics = true",
        &format!(
            "[service.hog]\ncommand = \"/usr/bin/python3 {}\"\nhealth = \"/health\"\nstop_timeout = 2\nmemory_limit_mb = 64\n\n[service.hog.env]\nDATA_DIR = \"{{data_dir}}/{{name}}/{{id}}\"\n",
            probe.display()
        ),
        &[("instances/hog/a.toml", "")],
    );
    let server = TestServer::start(dir.path());
    let first = server.wait_running("hog:a");
    let (status, _) = server.get("a.hog.localhost", "/alloc?mb=256");
    assert_ne!(status, 200, "it could not allocate past its limit");
    server.wait_until("hog:a runs again", |views| {
        views.iter().any(|view| {
            view.instance.to_string() == "hog:a"
                && view.phase == Phase::Running
                && view.pid.is_some_and(|pid| pid != first)
        })
    });
    // The GET is sent again after the first kill (idempotent, no body), so it may kill the
    // restarted process too: one or two restarts, each out of memory, none a crash.
    let text = scrape(&server);
    let out_of_memory = value(
        &text,
        "ten_restarts_total{service=\"hog\",cause=\"out_of_memory\"}",
    );
    assert!((1.0..=2.0).contains(&out_of_memory), "{text}");
    assert_eq!(
        value(
            &text,
            "ten_restarts_total{service=\"hog\",cause=\"crashed\"}"
        ),
        0.0
    );
}
