//! The dashboard's instances page with 2,000 declared instances: how long ten takes to make
//! it (its `Server-Timing` header: from the request's arrival at the dashboard to the page's
//! last byte made, which includes asking the reconciler for its snapshot) and what a client
//! on the same host waits, median and p90, for the first page (100 rows), all 2,000 rows on
//! one page, a sort by memory, a filter by phase, and the overview (status, plan, counts,
//! events). The goal: under 300 ms server-side.
//!
//! Run with `cargo bench --bench dashboard`. `TEN_BENCH_INSTANCES` (default 2,000) and
//! `TEN_BENCH_ROUNDS` (default 200 requests per page) change the sizes.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::http::{Connection, Request};
use support::server::{TestServer, backend_service};

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn percentile(mut values: Vec<f64>, share: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let index = ((values.len() - 1) as f64 * share).round() as usize;
    values[index]
}

fn main() {
    support::server::build_backend();
    let instances = env_number("TEN_BENCH_INSTANCES", 2000);
    let rounds = env_number("TEN_BENCH_ROUNDS", 200);
    // Declared stopped: the page's cost is the rows, not 2,000 processes on two cores.
    let files: Vec<(String, &str)> = (0..instances)
        .map(|n| {
            (
                format!("instances/web/t{n:04}.toml"),
                "state = \"stopped\"\n",
            )
        })
        .collect();
    let files: Vec<(&str, &str)> = files.iter().map(|(p, c)| (p.as_str(), *c)).collect();
    // A port range as wide as the declarations (validation asks for one port each).
    let dir = tempfile::tempdir().unwrap();
    support::write_file(
        &dir.path().join("tenement.toml"),
        &format!(
            "[settings]\nport_range = [24000, {}]\n\n{}",
            24000 + instances + 10,
            backend_service("web", "")
        ),
    );
    for (path, content) in &files {
        support::write_file(&dir.path().join(path), content);
    }
    let server = TestServer::start(dir.path());
    let deadline = Instant::now() + Duration::from_secs(120);
    while server.ps().len() < instances {
        assert!(
            Instant::now() < deadline,
            "the instances were not all declared"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let token = std::fs::read_to_string(dir.path().join("tenement-data/api_token")).unwrap();
    let login = Request::post("/login")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("token={}", token.trim()))
        .send(server.address());
    assert_eq!(login.status, 303, "{login:?}");
    let cookie = login
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();

    println!(
        "dashboard pages with {instances} declared instances, {rounds} requests each (keep-alive)"
    );
    println!(
        "{:<44} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "page", "rows", "srv p50", "srv p90", "cli p50", "cli p90"
    );
    let pages = [
        ("/instances (first page)", "/instances".to_string()),
        (
            "/instances, all rows on one page",
            format!("/instances?per={instances}"),
        ),
        (
            "/instances sorted by memory, descending",
            "/instances?sort=memory&desc=1".to_string(),
        ),
        (
            "/instances filtered by phase",
            "/instances?phase=stopped&page=3".to_string(),
        ),
        ("/ (overview)", "/".to_string()),
    ];
    let mut connection = Connection::open(server.address());
    for (name, path) in pages {
        let request = Request::get(&path).header("Cookie", &cookie);
        // Warm up (and check the page).
        let first = connection.send(&request);
        assert_eq!(first.status, 200, "{path}: {}", first.head);
        let rows = first.body.matches("data-instance=").count();
        let (mut server_ms, mut client_ms) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            let started = Instant::now();
            let answer = connection.send(&request);
            client_ms.push(started.elapsed().as_secs_f64() * 1000.0);
            let timing = answer
                .header("server-timing")
                .expect("a Server-Timing header");
            let took: f64 = timing.trim_start_matches("render;dur=").parse().unwrap();
            server_ms.push(took);
        }
        println!(
            "{:<44} {:>9} {:>7.2}ms {:>7.2}ms {:>7.2}ms {:>7.2}ms",
            name,
            rows,
            percentile(server_ms.clone(), 0.5),
            percentile(server_ms, 0.9),
            percentile(client_ms.clone(), 0.5),
            percentile(client_ms, 0.9),
        );
    }
}
