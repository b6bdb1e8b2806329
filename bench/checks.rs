//! Command checks do not hold up a wake: the wake latency of an HTTP tenant, measured while
//! 200 workers are each checked by a command every second (200 forks a second through
//! ten), against the same without them, in turns in one run.
//!
//! `cargo bench --bench checks`

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Duration;

use support::server::{TestServer, backend_service, median, project, timed_get};
use ten::observed::Phase;

/// Workers checked by a command, in the "with" rounds.
const WORKERS: u32 = 200;
/// Wakes per round.
const WAKES: usize = 10;
/// Rounds of each kind, in turns.
const ROUNDS: usize = 3;

fn config(workers: u32) -> String {
    format!(
        "{}\n[service.worker]\ncommand = \"sleep 3600\"\nlisten = \"none\"\nstop_timeout = 1\nhealth_check = {{ exec = [\"true\"] }}\nhealth_interval = 1\n\n[instances]\nsleepy = [\"a\"]\nworker = {{ count = {workers} }}\n",
        backend_service("sleepy", "idle_timeout = 1")
    )
}

/// `WAKES` wakes of the sleepy tenant, each once it is asleep again.
fn wakes(server: &TestServer, address: &str) -> Vec<Duration> {
    (0..WAKES)
        .map(|_| {
            server.wait_until("asleep", |views| {
                views
                    .iter()
                    .any(|v| v.instance.to_string() == "sleepy:a" && v.phase == Phase::Sleeping)
            });
            timed_get(address, "a.sleepy.localhost")
        })
        .collect()
}

/// Declares `workers` checked workers and waits until they run.
fn set_workers(server: &TestServer, dir: &std::path::Path, workers: u32) {
    let path = dir.join("tenement.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let start = text.find("[settings]").unwrap();
    let settings_end = text[start..]
        .find("\n\n")
        .map_or(text.len(), |end| start + end);
    let next = format!("{}\n\n{}", &text[..settings_end], config(workers));
    std::fs::write(&path, next).unwrap();
    server.wait_until("the workers run", |views| {
        let running = views
            .iter()
            .filter(|v| v.service == "worker" && v.phase == Phase::Running)
            .count();
        let declared = views.iter().filter(|v| v.service == "worker").count();
        running as u32 == workers && declared as u32 == workers
    });
}

fn main() {
    support::server::build_backend();
    let dir = project("max_destroy_percent = 100\n", &config(0), &[]);
    let server = TestServer::start(dir.path());
    server.wait_running("sleepy:a");
    let address = server.url.trim_start_matches("http://").to_string();
    let (mut without, mut with) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        set_workers(&server, dir.path(), 0);
        without.extend(wakes(&server, &address));
        set_workers(&server, dir.path(), WORKERS);
        with.extend(wakes(&server, &address));
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let (without, with) = (median(without), median(with));
    println!(
        "wake latency of an HTTP tenant (median of {} wakes each, {ROUNDS} rounds in turns)",
        WAKES * ROUNDS
    );
    println!(
        "   no other tenant:                                      {:7.2} ms",
        ms(without)
    );
    println!(
        "   {WORKERS} workers, each checked by a command every second: {:7.2} ms ({:.2}x)",
        ms(with),
        ms(with) / ms(without)
    );
}
