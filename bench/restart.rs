//! Failed requests across the crash of a tenant (a request held for the restart, or sent again where it is safe): steady load (4 clients
//! doing GETs in a loop, each on a fresh connection, half of them of `/slow?ms=5` so that
//! requests are in flight when the tenant dies) while the tenant is killed with SIGKILL, by
//! its pid from `ten ps --json`; through an instance's host (`a.web.localhost`) and through
//! its service's (`web.localhost`, weighted over two instances), at `backoff_base_ms = 0` and
//! at the default, 1000. `tests/proxy.rs` asserts that none fail at 0; this counts them at
//! both, with the longest request (one held for the restart waits for it).
//!
//! Run with `cargo bench --bench restart` (`TEN_BENCH_ROUNDS=N` for more rounds than 3).

#[path = "../tests/support/mod.rs"]
mod support;

use support::server::{TestServer, backend_service, load_across_a_kill, project};

const CLIENTS: usize = 4;
const PATHS: [&str; 2] = ["/", "/slow?ms=5"];

fn main() {
    support::server::build_backend();
    let rounds: usize = std::env::var("TEN_BENCH_ROUNDS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(3);
    println!("requests failed across a SIGKILL of web:a ({CLIENTS} clients, {rounds} rounds each)");
    println!(
        "   {:<15} {:>10} {:>8} {:>8} {:>12}",
        "host", "backoff ms", "failed", "ok", "slowest ms"
    );
    for backoff in [0, 1000] {
        for (host, files) in [
            ("a.web.localhost", &["instances/web/a.toml"][..]),
            (
                "web.localhost",
                &["instances/web/a.toml", "instances/web/b.toml"][..],
            ),
        ] {
            for _ in 0..rounds {
                let files: Vec<(&str, &str)> = files.iter().map(|path| (*path, "")).collect();
                let dir = project(
                    &format!("backoff_base_ms = {backoff}"),
                    &backend_service("web", ""),
                    &files,
                );
                let server = TestServer::start(dir.path());
                server.wait_running("web:a");
                let outcome = load_across_a_kill(&server, "web:a", host, &PATHS, CLIENTS);
                println!(
                    "   {host:<15} {backoff:>10} {:>8} {:>8} {:>12.1}",
                    outcome.failed.len(),
                    outcome.ok,
                    outcome.slowest.as_secs_f64() * 1000.0
                );
                for failure in outcome.failed.iter().take(5) {
                    println!("      {failure}");
                }
            }
        }
    }
}
