//! Security end to end: tokens, scopes, the limit on failed token checks, `/metrics`, and what
//! tenants can see, against the real `ten serve` and real tenants.

mod support;

use std::fs;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use support::http::{Request, Response};
use support::server::{TestServer, backend_service, project, stderr, stdout, within};

/// Another client's address than the tests' own 127.0.0.1.
const OTHER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// A request to ten's own pages (`Host: localhost`), with `token` if there is one.
fn request(method: &str, path: &str, token: Option<&str>) -> Request {
    let request = Request::new(method, path);
    match token {
        Some(token) => request.bearer(token),
        None => request,
    }
}

fn api(server: &TestServer, method: &str, path: &str, token: Option<&str>) -> Response {
    request(method, path, token).send(server.address())
}

fn get(server: &TestServer, path: &str, token: Option<&str>) -> Response {
    api(server, "GET", path, token)
}

/// The status and head of a streaming answer (the stream itself is not read).
fn stream_head(server: &TestServer, path: &str, token: &str) -> Response {
    request("GET", path, Some(token)).send_for_head(server.address())
}

fn admin_token(dir: &Path) -> String {
    fs::read_to_string(dir.join("tenement-data/api_token"))
        .unwrap()
        .trim()
        .to_string()
}

/// `ten token-gen ARGS --json` against the server; the token it printed.
fn token_gen(server: &TestServer, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["token-gen", "--json"];
    all.extend_from_slice(args);
    let output = server.ten(&all);
    assert!(output.status.success(), "{}", stderr(&output));
    serde_json::from_str(&stdout(&output)).unwrap()
}

/// The CLI with no server (an address where nothing listens).
fn ten_offline(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ten"))
        .args(args)
        .arg("--config")
        .arg(dir)
        .args(["--server", "http://127.0.0.1:1"])
        .env("NO_COLOR", "1")
        .env_remove("TENEMENT_TOKEN")
        .stdin(Stdio::null())
        .output()
        .expect("run ten")
}

fn two_tenants() -> tempfile::TempDir {
    project(
        "",
        &backend_service("web", ""),
        &[("instances/web/a.toml", ""), ("instances/web/b.toml", "")],
    )
}

#[test]
fn the_api_needs_a_valid_token() {
    let dir = two_tenants();
    let server = TestServer::start(dir.path());
    server.wait_running("web:a");
    let none = get(&server, "/api/instances", None);
    assert_eq!(none.status, 401, "{}", none.body);
    let body = none.json();
    assert_eq!(body["error"], "missing or invalid API token");
    assert!(body["hint"].as_str().unwrap().contains("Bearer"), "{body}");
    let wrong = get(&server, "/api/instances", Some(&"0".repeat(64)));
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    let admin = admin_token(dir.path());
    let ok = get(&server, "/api/instances", Some(&admin));
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.json().as_array().unwrap().len(), 2);
    assert_eq!(
        get(&server, "/health", None).status,
        200,
        "/health is public"
    );
}

#[test]
fn a_tenant_token_reaches_only_its_own_instance() {
    let dir = two_tenants();
    let server = TestServer::start(dir.path());
    server.wait_running("web:a");
    server.wait_running("web:b");
    let issued = token_gen(&server, &["--tenant", "web:a"]);
    assert_eq!(issued["scope"], "tenant");
    assert_eq!(issued["instance"], "web:a");
    assert_eq!(issued["file"], serde_json::Value::Null);
    let token = issued["token"].as_str().unwrap().to_string();
    let token = token.as_str();

    let listed = get(&server, "/api/instances", Some(token));
    assert_eq!(listed.status, 200, "{}", listed.body);
    let listed = listed.json();
    let keys: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|view| view["instance"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["web:a"]);
    for path in ["/api/instances/web:a", "/api/instances/web%3Aa/health"] {
        let own = get(&server, path, Some(token));
        assert_eq!(own.status, 200, "{path}: {}", own.body);
    }

    let other = get(&server, "/api/instances/web:b", Some(token));
    assert_eq!(other.status, 403, "{}", other.body);
    let message = other.json()["error"].as_str().unwrap().to_string();
    assert!(
        message.contains("scope tenant web:a") && message.contains("web:b"),
        "{message}"
    );
    for (method, path) in [
        ("GET", "/api/instances/web:b/health"),
        ("POST", "/api/instances/web:b/restart"),
        ("GET", "/api/status"),
        ("GET", "/api/plan"),
        ("POST", "/api/apply"),
        ("POST", "/api/instances/a/stop"),
        ("POST", "/api/instances/web:a/stop"),
        ("PUT", "/api/instances/web:a/weight"),
        ("DELETE", "/api/instances/web:a"),
        ("POST", "/api/tokens"),
        ("GET", "/api/logs?instance=web:b"),
        ("GET", "/api/logs?process=web&id=b"),
        ("GET", "/api/logs?instance=all"),
        ("GET", "/api/events?instance=web:b"),
    ] {
        let answer = api(&server, method, path, Some(token));
        assert_eq!(answer.status, 403, "{method} {path}: {}", answer.body);
    }
    // Streams are refused before they start.
    for path in [
        "/api/logs/stream?instance=web:b",
        "/api/logs/stream?instance=all",
        "/api/events/stream?instance=web:b",
        "/api/events/stream?instance=all",
    ] {
        let answer = stream_head(&server, path, token);
        assert_eq!(answer.status, 403, "{path}: {}", answer.head);
    }
    for path in ["/api/logs/stream", "/api/events/stream?instance=web:a"] {
        let answer = stream_head(&server, path, token);
        assert_eq!(answer.status, 200, "{path}: {}", answer.head);
        assert_eq!(answer.header("content-type"), Some("text/event-stream"));
    }

    // Logs and events without a filter are the tenant's own.
    let logs = get(&server, "/api/logs", Some(token)).json();
    let logs = logs.as_array().unwrap();
    assert!(!logs.is_empty());
    assert!(
        logs.iter().all(|line| line["instance"] == "web:a"),
        "{logs:?}"
    );
    // Of a service too (`ten events web`): its own instance's, not the service's others'.
    for path in ["/api/events", "/api/events?service=web"] {
        let events = get(&server, path, Some(token)).json();
        let events = events.as_array().unwrap();
        assert!(!events.is_empty(), "{path}");
        assert!(
            events.iter().all(|event| event["instance"] == "web:a"),
            "{path}: {events:?}"
        );
    }
    let all_events = get(&server, "/api/events", Some(&admin_token(dir.path()))).json();
    assert!(
        all_events
            .as_array()
            .unwrap()
            .iter()
            .any(|event| event["instance"] == "web:b"),
        "the admin sees every instance's events"
    );

    // The CLI with a tenant token.
    let ps = server.ten(&["ps", "--json", "--token", token]);
    assert!(ps.status.success(), "{}", stderr(&ps));
    assert!(stdout(&ps).contains("web:a") && !stdout(&ps).contains("web:b"));
    let restart = api(&server, "POST", "/api/instances/web:a/restart", Some(token));
    assert_eq!(restart.status, 200, "{}", restart.body);

    // A new token for the instance replaces the old one.
    let replacement = token_gen(&server, &["--tenant", "web:a"]);
    assert_eq!(get(&server, "/api/instances", Some(token)).status, 401);
    let new = replacement["token"].as_str().unwrap();
    assert_eq!(get(&server, "/api/instances/web:a", Some(new)).status, 200);
}

#[test]
fn a_flood_of_bad_tokens_from_one_address_locks_out_no_one() {
    let dir = two_tenants();
    let server = TestServer::start(dir.path());
    let admin = admin_token(dir.path());
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for n in 0..1000 {
        let guess = format!("{n:064x}");
        let answer = request("GET", "/api/status", Some(&guess))
            .from(OTHER)
            .send(server.address());
        if answer.status == 429 && retry_after.is_none() {
            retry_after = answer.header("retry-after").map(str::to_string);
        }
        statuses.push(answer.status);
    }
    assert!(statuses[..10].iter().all(|status| *status == 401));
    assert!(
        statuses[10..].iter().all(|status| *status == 429),
        "{:?}",
        &statuses[..20]
    );
    let seconds: u64 = retry_after.unwrap().parse().unwrap();
    assert!((1..=60).contains(&seconds), "{seconds}");

    let from_local = get(&server, "/api/status", Some(&admin));
    assert_eq!(from_local.status, 200, "{}", from_local.body);
    assert_eq!(
        get(&server, "/api/status", Some("bad")).status,
        401,
        "127.0.0.1's failures are counted on their own"
    );
    let valid_from_flooder = request("GET", "/api/status", Some(&admin))
        .from(OTHER)
        .send(server.address());
    assert_eq!(
        valid_from_flooder.status, 200,
        "a valid token is never refused, even from the flooding address"
    );
    // X-Forwarded-For is not trusted.
    let forwarded = request("GET", "/api/status", Some("bad"))
        .header("X-Forwarded-For", "10.1.2.3")
        .from(OTHER)
        .send(server.address());
    assert_eq!(forwarded.status, 429, "{forwarded:?}");

    let metrics = get(&server, "/metrics", Some(&admin)).body;
    let limited = metrics
        .lines()
        .find_map(|line| line.strip_prefix("ten_api_auth_limited_total "))
        .unwrap();
    assert!(limited.parse::<u64>().unwrap() >= 990, "{limited}");
}

#[test]
fn behind_a_trusted_proxy_failures_count_against_the_client_it_names() {
    let dir = project(
        "trusted_proxies = [\"127.0.0.1\"]",
        &backend_service("web", ""),
        &[],
    );
    let server = TestServer::start(dir.path());
    let admin = admin_token(dir.path());
    let through_proxy = |client: &str, token: &str| {
        request("GET", "/api/status", Some(token))
            .header("X-Forwarded-For", &format!("198.51.100.1, {client}"))
            .send(server.address())
            .status
    };
    let statuses: Vec<u16> = (0..11)
        .map(|_| through_proxy("203.0.113.9", "bad"))
        .collect();
    assert_eq!(statuses[..10], [401; 10]);
    assert_eq!(statuses[10], 429, "the client the proxy names is limited");
    assert_eq!(
        through_proxy("203.0.113.10", "bad"),
        401,
        "another client behind the same proxy is not"
    );
    assert_eq!(
        through_proxy("203.0.113.9", &admin),
        200,
        "a valid token still passes"
    );
    // From a peer that is not trusted, the claim counts for nothing: its own address is used.
    let direct = request("GET", "/api/status", Some("bad"))
        .header("X-Forwarded-For", "203.0.113.9")
        .from(OTHER)
        .send(server.address());
    assert_eq!(direct.status, 401, "{direct:?}");
}

#[test]
fn tenants_do_not_see_the_servers_environment() {
    let dir = project(
        "",
        &backend_service("web", ""),
        &[("instances/web/a.toml", "")],
    );
    let server = TestServer::start_with(
        dir.path(),
        &[
            ("TENEMENT_TOKEN", "the-servers-own-token"),
            ("TEN_SECURITY_MARKER", "marker-3f9c"),
        ],
    );
    server.wait_running("web:a");
    let env = Request::get("/env")
        .host("a.web.localhost")
        .send(server.address());
    assert_eq!(env.status, 200, "{}", env.body);
    assert!(env.body.contains("PORT="), "{}", env.body);
    assert!(!env.body.contains("marker-3f9c"), "{}", env.body);
    assert!(!env.body.contains("TEN_SECURITY_MARKER"), "{}", env.body);
    assert!(!env.body.contains("the-servers-own-token"), "{}", env.body);
    assert!(!env.body.contains("TENEMENT_TOKEN"), "{}", env.body);
}

#[test]
fn metrics_need_the_admin_token_unless_public() {
    let dir = two_tenants();
    let server = TestServer::start(dir.path());
    server.wait_running("web:a");
    server.wait_running("web:b");
    let admin = admin_token(dir.path());
    assert_eq!(get(&server, "/metrics", None).status, 401);
    let tenant = token_gen(&server, &["--tenant", "web:a"]);
    let denied = get(&server, "/metrics", tenant["token"].as_str());
    assert_eq!(denied.status, 403, "{}", denied.body);

    assert_eq!(server.get("a.web.localhost", "/").0, 200);
    assert_eq!(server.get("zed.web.localhost", "/").0, 404);
    let scrape = get(&server, "/metrics", Some(&admin));
    assert_eq!(scrape.status, 200, "{}", scrape.body);
    assert_eq!(
        scrape.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = scrape.body;
    assert!(
        text.contains("ten_instances{service=\"web\",phase=\"running\"} 2\n"),
        "{text}"
    );
    assert!(text.contains("ten_proxy_requests_total{class=\"2xx\",code=\"200\"} 1\n"));
    assert!(
        !text.contains("code=\"404\""),
        "unknown hosts are not counted"
    );
    assert!(!text.contains("zed"));
    assert!(text.contains("ten_config_errors 0\n"));

    // The flag comes from the live configuration.
    let config_path = dir.path().join("tenement.toml");
    let config = fs::read_to_string(&config_path).unwrap();
    fs::write(
        &config_path,
        config.replace("[settings]\n", "[settings]\npublic_metrics = true\n"),
    )
    .unwrap();
    let public = || get(&server, "/metrics", None).status == 200;
    assert!(
        within(Duration::from_secs(20), public),
        "public_metrics was not picked up"
    );
    assert_eq!(
        get(&server, "/api/status", None).status,
        401,
        "only /metrics is public"
    );
}

#[test]
fn token_files_are_private_and_hold_only_hashes() {
    let dir = two_tenants();
    let server = TestServer::start(dir.path());
    server.wait_running("web:a");
    let tenant = token_gen(&server, &["--tenant", "web:a"]);
    let tenant = tenant["token"].as_str().unwrap();
    let admin = admin_token(dir.path());
    let data = dir.path().join("tenement-data");
    let mode = |path: &Path| fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data.join("api_token")), 0o600);
    assert_eq!(mode(&data.join(".ten")), 0o700);
    assert_eq!(mode(&data.join(".ten/tokens.json")), 0o600);
    let store = fs::read_to_string(data.join(".ten/tokens.json")).unwrap();
    assert!(!store.contains(tenant), "{store}");
    assert!(!store.contains(&admin), "{store}");
    assert_eq!(store.matches("\"hash\": \"sha256:").count(), 2, "{store}");
    // No other file of the data directory holds the tenant's token.
    for entry in walk(&data) {
        let bytes = fs::read(&entry).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(tenant),
            "{} holds the tenant token",
            entry.display()
        );
    }

    // Rotating the admin token: the old one stops working at once.
    let rotated = token_gen(&server, &[]);
    assert_eq!(rotated["scope"], "admin");
    let new = rotated["token"].as_str().unwrap();
    assert_eq!(get(&server, "/api/status", Some(&admin)).status, 401);
    assert_eq!(get(&server, "/api/status", Some(new)).status, 200);
    assert_eq!(admin_token(dir.path()), new);
    assert_eq!(mode(&data.join("api_token")), 0o600);
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn token_gen_refuses_an_undeclared_instance() {
    let dir = two_tenants();
    // Without a server: the store is changed directly.
    let offline = ten_offline(dir.path(), &["token-gen", "--tenant", "web:zed"]);
    assert!(!offline.status.success());
    assert!(
        stderr(&offline).contains("web:zed is not declared"),
        "{}",
        stderr(&offline)
    );
    let made = ten_offline(dir.path(), &["token-gen", "--tenant", "web:a", "--json"]);
    assert!(made.status.success(), "{}", stderr(&made));
    let made: serde_json::Value = serde_json::from_str(&stdout(&made)).unwrap();
    let offline_token = made["token"].as_str().unwrap().to_string();
    assert_eq!(offline_token.len(), 64);

    // With a server.
    let server = TestServer::start(dir.path());
    server.wait_running("web:a");
    let refused = server.ten(&["token-gen", "--tenant", "web:zed"]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("web:zed is not declared"),
        "{}",
        stderr(&refused)
    );
    let bad = server.ten(&["token-gen", "--tenant", "Bad_Id"]);
    assert!(!bad.status.success());
    // The token made offline works with the server started afterwards.
    assert_eq!(
        get(&server, "/api/instances/web:a", Some(&offline_token)).status,
        200
    );
}
