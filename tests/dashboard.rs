//! The dashboard end to end, without a browser (`dashboard_browser.rs` drives Chromium):
//! nothing but the login form without a session, every action refused without one, POSTs
//! without the session's CSRF token refused, a tenant's session limited to its instance,
//! failed logins limited, sessions ended by a logout or a new token; the overview's config
//! errors, pending plan and Apply button. Against the real `ten serve` and real tenants.

mod dashboard_support;
mod support;

use std::net::{IpAddr, Ipv4Addr};

use dashboard_support::{Visitor, admin_token, tenant_token, two_tenants};
use support::http::Request;
use support::server::{TestServer, within};

use std::time::Duration;

/// The forms of the dashboard, with the fields each needs.
const ACTIONS: [(&str, &[(&str, &str)]); 6] = [
    ("/actions/restart", &[("instance", "web:a")]),
    ("/actions/stop", &[("instance", "web:a")]),
    ("/actions/start", &[("instance", "web:a")]),
    (
        "/actions/weight",
        &[("instance", "web:a"), ("weight", "10")],
    ),
    ("/actions/apply", &[]),
    ("/logout", &[]),
];

#[test]
fn without_a_session_only_the_login_form_is_shown_and_every_action_is_refused() {
    let dir = two_tenants("");
    let server = TestServer::start(dir.path());
    let pid = server.wait_running("web:a");
    let anonymous = Visitor::anonymous(&server);
    let mut forged = Visitor::anonymous(&server);
    forged.cookie = Some("0".repeat(64));
    for visitor in [anonymous, forged] {
        let mut visitor = visitor;
        let home = visitor.get("/");
        assert_eq!(home.status, 200, "{home:?}");
        assert!(home.body.contains(r#"action="/login""#), "{}", home.body);
        for hidden in [
            "web:a",
            "web:b",
            "/logout",
            "csrf",
            &pid.to_string(),
            "data-events",
        ] {
            assert!(!home.body.contains(hidden), "{hidden} shown: {}", home.body);
        }
        for path in ["/instances", "/instances/web:a", "/instances/web%3Ab"] {
            let page = visitor.get(path);
            assert_eq!(page.status, 401, "{path}: {page:?}");
            assert!(
                !page.body.contains(&pid.to_string()),
                "{path}: {}",
                page.body
            );
            assert!(page.body.contains(r#"action="/login""#), "{path}");
        }
        for path in ["/live/events", "/live/logs?instance=web:a"] {
            assert_eq!(visitor.get(path).status, 401, "{path}");
        }
        for (path, fields) in ACTIONS {
            let refused = visitor.post_raw(path, fields, None);
            assert_eq!(refused.status, 401, "{path}: {refused:?}");
        }
    }
    let view = server.instance("web:a").unwrap();
    assert_eq!(view.pid, Some(pid), "nothing was restarted");
    assert_eq!(view.weight, 100, "nothing was changed");
    // The stylesheet and the script are public (they show nothing of the server).
    let css = Request::get("/assets/dash.css").send(server.address());
    assert_eq!(css.status, 200);
    assert!(css.header("content-type").unwrap().starts_with("text/css"));
}

#[test]
fn posts_without_the_sessions_csrf_token_are_refused() {
    let dir = two_tenants("");
    let server = TestServer::start(dir.path());
    let pid = server.wait_running("web:a");
    let token = admin_token(dir.path());
    let mut admin = Visitor::signed_in(&server, &token);
    let other = Visitor::signed_in(&server, &token);
    let page = admin.get("/instances/web:a");
    assert!(
        page.body.contains(r#"action="/actions/restart""#),
        "{}",
        page.body
    );
    let csrf = admin.csrf.clone().unwrap();
    assert_ne!(Some(&csrf), other.csrf.as_ref(), "a token per session");
    let wrong = "0".repeat(64);
    for (path, fields) in ACTIONS {
        for csrf in [None, Some(wrong.as_str()), other.csrf.as_deref()] {
            let mut pairs = fields.to_vec();
            if let Some(csrf) = csrf {
                pairs.push(("csrf", csrf));
            }
            let refused = admin.post_raw(path, &pairs, None);
            assert_eq!(refused.status, 403, "{path} with {csrf:?}: {refused:?}");
        }
        // The right token, from another site.
        let mut pairs = fields.to_vec();
        pairs.push(("csrf", &csrf));
        let cross = admin.post_raw(path, &pairs, Some("http://evil.example"));
        assert_eq!(cross.status, 403, "{path} from another origin: {cross:?}");
    }
    assert_eq!(
        server.instance("web:a").unwrap().pid,
        Some(pid),
        "not restarted"
    );
    assert_eq!(admin.get("/").status, 200, "still signed in");

    // With its token, from this host (the tests' requests say `Host: localhost`), the form
    // does what it says.
    let restarted = admin.post_raw(
        "/actions/restart",
        &[("instance", "web:a"), ("csrf", &csrf)],
        Some("http://localhost"),
    );
    assert_eq!(restarted.status, 303, "{restarted:?}");
    assert_eq!(restarted.header("location"), Some("/instances/web%3Aa"));
    let new_pid = server.wait_running("web:a");
    assert_ne!(new_pid, pid);
    let after = admin.get("/instances/web:a");
    assert!(
        after.body.contains("restarted"),
        "the outcome is shown: {}",
        after.body
    );
}

#[test]
fn a_tenant_session_sees_and_does_only_what_its_token_may() {
    let dir = two_tenants("");
    let server = TestServer::start(dir.path());
    let pid_a = server.wait_running("web:a");
    let pid_b = server.wait_running("web:b");
    let token = tenant_token(&server, "web:a");
    let mut tenant = Visitor::signed_in(&server, &token);
    let home = tenant.get("/");
    assert_eq!(home.status, 200);
    assert!(home.body.contains("<h1>web:a</h1>"), "{}", home.body);
    assert!(home.body.contains(&pid_a.to_string()));
    assert!(!home.body.contains("web:b"), "{}", home.body);
    assert!(home.body.contains(r#"action="/actions/restart""#));
    for admin_only in [
        "/actions/stop",
        "/actions/start",
        "/actions/weight",
        "/actions/apply",
    ] {
        assert!(
            !home.body.contains(admin_only),
            "{admin_only} offered: {}",
            home.body
        );
    }
    let list = tenant.get("/instances");
    assert_eq!(list.status, 200);
    assert!(
        list.body.contains(r#"data-instance="web:a""#),
        "{}",
        list.body
    );
    assert!(!list.body.contains("web:b"), "{}", list.body);
    let other = tenant.get("/instances/web:b");
    assert_eq!(other.status, 403, "{other:?}");
    assert!(!other.body.contains(&pid_b.to_string()), "{}", other.body);
    assert_eq!(tenant.get("/live/events?instance=web:b").status, 403);
    assert_eq!(tenant.get("/live/logs?instance=web:b").status, 403);

    tenant.get("/");
    let restart_b = tenant.post("/actions/restart", &[("instance", "web:b")]);
    assert_eq!(restart_b.status, 403, "{restart_b:?}");
    let stop_a = tenant.post("/actions/stop", &[("instance", "web:a")]);
    assert_eq!(stop_a.status, 403, "stop is the admin's: {stop_a:?}");
    let weight = tenant.post("/actions/weight", &[("instance", "web:a"), ("weight", "5")]);
    assert_eq!(weight.status, 403, "{weight:?}");
    let apply = tenant.post("/actions/apply", &[]);
    assert_eq!(apply.status, 403, "{apply:?}");
    assert_eq!(server.instance("web:b").unwrap().pid, Some(pid_b));
    assert_eq!(server.instance("web:a").unwrap().weight, 100);

    let restart_a = tenant.post("/actions/restart", &[("instance", "web:a")]);
    assert_eq!(restart_a.status, 303, "{restart_a:?}");
    assert_ne!(server.wait_running("web:a"), pid_a);
    assert_eq!(server.instance("web:b").unwrap().pid, Some(pid_b));

    // A new token for web:a ends the sessions of the old one.
    tenant_token(&server, "web:a");
    assert_eq!(tenant.get("/instances").status, 401);
}

#[test]
fn failed_logins_count_in_the_limiter_and_a_valid_token_still_signs_in() {
    let dir = two_tenants("");
    let server = TestServer::start(dir.path());
    server.wait_running("web:a");
    let elsewhere = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
    let login = |token: &str| {
        Request::post("/login")
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(dashboard_support::form(&[("token", token)]))
            .from(elsewhere)
            .send(server.address())
    };
    for attempt in 0..10 {
        let refused = login(&"f".repeat(64));
        assert_eq!(refused.status, 401, "attempt {attempt}: {refused:?}");
        assert!(
            refused.body.contains("not a valid token"),
            "{}",
            refused.body
        );
        assert!(refused.header("set-cookie").is_none());
    }
    let limited = login("guess");
    assert_eq!(limited.status, 429, "{limited:?}");
    assert!(limited.header("retry-after").is_some());
    // The API counts the same failures: its next failure from there is limited too.
    let api = Request::get("/api/status")
        .bearer("guess")
        .from(elsewhere)
        .send(server.address());
    assert_eq!(api.status, 429);
    let valid = login(&admin_token(dir.path()));
    assert_eq!(valid.status, 303, "{valid:?}");
}

#[test]
fn the_session_cookie_is_strict_and_a_logout_ends_it() {
    let dir = two_tenants("");
    let server = TestServer::start(dir.path());
    server.wait_running("web:a");
    let visitor = Visitor::anonymous(&server);
    let answer = visitor.login(&admin_token(dir.path()));
    let cookie = answer.header("set-cookie").unwrap().to_string();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(flag), "{flag}: {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    let mut admin = Visitor::signed_in(&server, &admin_token(dir.path()));
    assert_eq!(admin.get("/instances").status, 200);
    let out = admin.post("/logout", &[]);
    assert_eq!(out.status, 303);
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    assert_eq!(admin.get("/instances").status, 401);
    assert_eq!(
        admin
            .post("/actions/restart", &[("instance", "web:a")])
            .status,
        401
    );
}

#[test]
fn the_overview_shows_config_errors_and_the_pending_plan_with_apply() {
    let dir = two_tenants("auto_apply = false");
    let server = TestServer::start(dir.path());
    let mut admin = Visitor::signed_in(&server, &admin_token(dir.path()));
    let home = admin.get("/");
    assert!(home.body.contains("Pending plan"), "{}", home.body);
    assert!(home.body.contains("web:a"), "{}", home.body);
    assert!(
        home.body.contains(r#"action="/actions/apply""#),
        "{}",
        home.body
    );
    let applied = admin.post("/actions/apply", &[("plan", &plan_token(&home.body))]);
    assert_eq!(applied.status, 303, "{applied:?}");
    server.wait_running("web:a");
    server.wait_running("web:b");
    let after = admin.get("/");
    assert!(
        after.body.contains("applied: 2 change(s) done"),
        "{}",
        after.body
    );
    assert!(after.body.contains("No changes"), "{}", after.body);

    // A broken instance file: its file:line and snippet are shown, then gone once fixed.
    let broken = dir.path().join("instances/web/a.toml");
    std::fs::write(&broken, "weight = \"heavy\"\n").unwrap();
    assert!(
        within(Duration::from_secs(10), || admin
            .get("/")
            .body
            .contains("config-errors")),
        "the error never showed"
    );
    let page = admin.get("/");
    assert!(page.body.contains("a.toml:1"), "{}", page.body);
    assert!(
        page.body.contains("weight = &quot;heavy&quot;"),
        "{}",
        page.body
    );
    std::fs::write(&broken, "").unwrap();
    assert!(
        within(Duration::from_secs(10), || !admin
            .get("/")
            .body
            .contains("config-errors")),
        "the error never went"
    );
}

/// The plan token in the Apply form of a page.
fn plan_token(page: &str) -> String {
    let start = page.find(r#"name="plan" value=""#).expect("an Apply form") + 19;
    page[start..start + page[start..].find('"').unwrap()].to_string()
}

#[test]
fn the_instance_page_searches_the_logs_and_masks_secrets() {
    let service = support::server::backend_service("web", "env = { API_TOKEN = \"hunter2\" }");
    let dir = support::server::project("", &service, &[("instances/web/a.toml", "")]);
    let server = TestServer::start(dir.path());
    server.wait_running("web:a");
    let (status, _) = server.get("a.web.localhost", "/?needle-4711");
    assert_eq!(status, 200);
    let mut admin = Visitor::signed_in(&server, &admin_token(dir.path()));
    assert!(
        within(Duration::from_secs(10), || admin
            .get("/instances/web:a?search=needle-4711")
            .body
            .contains("GET /?needle-4711")),
        "the line was not found"
    );
    let found = admin.get("/instances/web:a?search=needle-4711");
    assert!(
        !found.body.contains("GET /health"),
        "only matching lines: {}",
        found.body
    );
    let none = admin.get("/instances/web:a?search=needle-4711&until=1970-01-02T00:00:00Z");
    assert!(!none.body.contains("GET /?needle-4711"), "{}", none.body);
    assert!(none.body.contains("No lines match"), "{}", none.body);
    let page = admin.get("/instances/web:a");
    assert!(
        page.body.contains("API_TOKEN = &quot;(sensitive)&quot;"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("hunter2"), "{}", page.body);
}

#[test]
fn an_admin_stops_starts_and_weighs_an_instance_from_its_page() {
    let dir = two_tenants("");
    let server = TestServer::start(dir.path());
    server.wait_running("web:a");
    let mut admin = Visitor::signed_in(&server, &admin_token(dir.path()));
    let page = admin.get("/instances/web:a");
    assert!(
        page.body.contains(r#"action="/actions/stop""#),
        "{}",
        page.body
    );
    let stopped = admin.post("/actions/stop", &[("instance", "web:a")]);
    assert_eq!(stopped.status, 303, "{stopped:?}");
    server.wait_until("web:a is stopped", |views| {
        views.iter().any(|view| {
            view.instance.to_string() == "web:a" && view.phase == ten::observed::Phase::Stopped
        })
    });
    let page = admin.get("/instances/web:a");
    assert!(
        page.body.contains(r#"action="/actions/start""#),
        "{}",
        page.body
    );
    assert!(
        page.body.contains(r#"data-phase="stopped""#),
        "{}",
        page.body
    );
    let started = admin.post("/actions/start", &[("instance", "web:a")]);
    assert_eq!(started.status, 303, "{started:?}");
    server.wait_running("web:a");
    let weighed = admin.post(
        "/actions/weight",
        &[("instance", "web:a"), ("weight", "40")],
    );
    assert_eq!(weighed.status, 303, "{weighed:?}");
    assert_eq!(server.instance("web:a").unwrap().weight, 40);
    let file = std::fs::read_to_string(dir.path().join("instances/web/a.toml")).unwrap();
    assert!(file.contains("weight = 40"), "{file}");
    let page = admin.get("/instances/web:a");
    assert!(
        page.body.contains("weight 40"),
        "the outcome is shown: {}",
        page.body
    );
    let refused = admin.post(
        "/actions/weight",
        &[("instance", "web:a"), ("weight", "400")],
    );
    assert_eq!(refused.status, 400, "{refused:?}");
}

/// A worker (`listen = "none"`) takes no HTTP traffic, and the API refuses its weight: its
/// page offers no weight control (it did, and setting one failed), while its other actions
/// and a web instance's weight control stay.
#[test]
fn a_worker_instance_page_offers_no_weight_control() {
    let services = format!(
        "{}[service.queue]\ncommand = \"sleep 600\"\nlisten = \"none\"\nstop_timeout = 2\n",
        support::server::backend_service("web", "")
    );
    let dir = support::server::project(
        "",
        &services,
        &[("instances/web/a.toml", ""), ("instances/queue/q.toml", "")],
    );
    let server = TestServer::start(dir.path());
    server.wait_running("web:a");
    server.wait_running("queue:q");
    let mut admin = Visitor::signed_in(&server, &admin_token(dir.path()));
    let web = admin.get("/instances/web:a");
    assert_eq!(web.status, 200, "{web:?}");
    assert!(
        web.body.contains(r#"action="/actions/weight""#),
        "{}",
        web.body
    );
    let worker = admin.get("/instances/queue:q");
    assert_eq!(worker.status, 200, "{worker:?}");
    assert!(
        worker.body.contains(r#"action="/actions/restart""#)
            && worker.body.contains(r#"action="/actions/stop""#),
        "{}",
        worker.body
    );
    assert!(
        !worker.body.contains(r#"action="/actions/weight""#) && !worker.body.contains("Set weight"),
        "{}",
        worker.body
    );
    // Nor a weight among its facts, nor in its row of the list (a web instance has both).
    assert!(web.body.contains("<dt>weight</dt>"), "{}", web.body);
    assert!(!worker.body.contains("<dt>weight</dt>"), "{}", worker.body);
    let list = admin.get("/instances");
    let weight_cell = |key: &str| {
        let row = list
            .body
            .split(&format!(r#"<tr data-instance="{key}">"#))
            .nth(1)
            .and_then(|rest| rest.split("</tr>").next())
            .unwrap_or_else(|| panic!("no row of {key}: {}", list.body));
        // The fifth cell: instance, phase, health, uptime, weight.
        let cell = row.split("<td").nth(5).unwrap_or_else(|| panic!("{row}"));
        cell[cell.find('>').unwrap() + 1..cell.find("</td>").unwrap()].to_string()
    };
    assert_eq!(weight_cell("web:a"), "100");
    assert_eq!(weight_cell("queue:q"), "—");
}
