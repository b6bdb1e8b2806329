//! Memory of `ten serve` under authenticated API calls: the server's RSS after 100 calls and
//! after 10,000 (a mix of `GET /api/instances`, `/api/status`, `/api/logs?limit=10` and a
//! health check, over keep-alive connections, with the admin token and, for one call in ten,
//! a tenant token). Token checks, scope checks and the limiter must not grow with the number
//! of requests; the goal is the second figure within 10% of the first.
//!
//! Run with `cargo bench --bench api_rss` (builds the backend example in release first).

#[path = "../tests/support/mod.rs"]
mod support;

use std::fs;
use std::time::{Duration, Instant};

use support::http::{Connection, Request};
use support::server::{TestServer, backend, backend_service, project, status_kb};

const TENANTS: usize = 5;
const CONNECTIONS: usize = 4;
const FIRST: usize = 100;
const TOTAL: usize = 10_000;

/// `TEN_BENCH_CALLS` (default 10,000) and `TEN_BENCH_TENANT_LOGS=1` (tenants print a log line
/// per request, so every health check also fills their log ring).
fn main() {
    support::server::build_backend();
    let total: usize = std::env::var("TEN_BENCH_CALLS")
        .ok()
        .and_then(|calls| calls.parse().ok())
        .unwrap_or(TOTAL)
        .max(FIRST);
    let tenant_logs = std::env::var_os("TEN_BENCH_TENANT_LOGS").is_some_and(|value| value == "1");
    let quiet = if tenant_logs { "" } else { " --quiet" };
    let files: Vec<(String, &str)> = (0..TENANTS)
        .map(|n| (format!("instances/web/t{n}.toml"), ""))
        .collect();
    let files: Vec<(&str, &str)> = files.iter().map(|(p, c)| (p.as_str(), *c)).collect();
    let service = backend_service("web", "").replacen(
        &format!("{}\"", backend().display()),
        &format!("{}{quiet}\"", backend().display()),
        1,
    );
    let dir = project("", &service, &files);
    let server = TestServer::start(dir.path());
    for n in 0..TENANTS {
        server.wait_running(&format!("web:t{n}"));
    }
    let admin = fs::read_to_string(dir.path().join("tenement-data/api_token"))
        .unwrap()
        .trim()
        .to_string();
    let tenant_output = server.ten(&["token-gen", "--tenant", "web:t0", "--quiet"]);
    assert!(tenant_output.status.success());
    let tenant = String::from_utf8(tenant_output.stdout)
        .unwrap()
        .trim()
        .to_string();

    // (path, whether every other one goes with the tenant token)
    let calls: [(&str, bool); 5] = [
        ("/api/instances", false),
        ("/api/status", false),
        ("/api/logs?limit=10", false),
        ("/api/instances/web:t1/health", false),
        ("/api/logs?limit=10", true),
    ];
    let mut connections: Vec<Connection> = (0..CONNECTIONS)
        .map(|_| Connection::open(server.address()))
        .collect();
    let mut call = |n: usize| {
        let (path, as_tenant) = calls[n % calls.len()];
        let token = if as_tenant && n % 10 == 4 {
            &tenant
        } else {
            &admin
        };
        let status = connections[n % CONNECTIONS]
            .send(&Request::get(path).bearer(token))
            .status;
        assert_eq!(status, 200, "{path}");
    };

    let started = Instant::now();
    for n in 0..FIRST {
        call(n);
    }
    std::thread::sleep(Duration::from_millis(200));
    let first = status_kb(server.pid(), "VmRSS:");
    let mut along = Vec::new();
    for n in FIRST..total {
        call(n);
        if (n + 1) % 2000 == 0 && n + 1 < total {
            along.push((n + 1, status_kb(server.pid(), "VmRSS:")));
        }
    }
    let elapsed = started.elapsed();
    std::thread::sleep(Duration::from_millis(200));
    let last = status_kb(server.pid(), "VmRSS:");

    let mb = |kb: u64| kb as f64 / 1024.0;
    println!(
        "ten serve with {TENANTS} tenants ({}), {total} authenticated API calls over {CONNECTIONS} keep-alive connections in {:.2} s ({:.0} calls/s)",
        if tenant_logs {
            "each logging every request"
        } else {
            "quiet"
        },
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
    println!("   VmRSS after {FIRST:>6} calls: {:6.1} MB", mb(first));
    for (calls, rss) in along {
        println!("         after {calls:>6} calls: {:6.1} MB", mb(rss));
    }
    println!("   VmRSS after {total:>6} calls: {:6.1} MB", mb(last));
    println!(
        "   ratio: {:.3} (goal: at most 1.10)",
        last as f64 / first as f64
    );
}
