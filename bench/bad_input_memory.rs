//! ten's memory under bad input: 5,000 slowloris connections (a partial request head each,
//! a byte every 200 ms) until `header_timeout` cuts them, and a 256 MB instance file dropped
//! into `instances/`. Reports ten's RSS before, at the peak (VmHWM) and after, and its open
//! descriptors; the goal is the peak under 100 MB and RSS and descriptors back near the
//! baseline once the connections are cut.
//!
//! Run with `cargo bench --bench bad_input_memory` (as a user whose hard RLIMIT_NOFILE allows
//! 6,000 sockets; root has it).

#[path = "../tests/support/mod.rs"]
mod support;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::server::{TestServer, backend_service, project, status_kb};

const CONNECTIONS: usize = 5_000;

fn fds(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count()
}

fn mb(kb: u64) -> String {
    format!("{:.1} MB", kb as f64 * 1024.0 / 1e6)
}

/// Whether the peer closed `stream` (non-blocking).
fn closed(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(error) => error.kind() != std::io::ErrorKind::WouldBlock,
    }
}

fn main() {
    support::server::build_backend();
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
    assert!(hard >= 6_000, "needs 6,000 sockets; hard limit {hard}");
    let dir = project(
        "header_timeout = 2\nmax_connections = 20000\nmax_connections_per_client = 20000",
        &backend_service("web", "start = \"eager\""),
        &[("instances/web/alice.toml", "")],
    );
    let server = TestServer::start(dir.path());
    server.wait_running("web:alice");
    std::thread::sleep(Duration::from_secs(2));
    let pid = server.pid();
    let base_rss = status_kb(pid, "VmRSS:");
    let base_fds = fds(pid);

    let mut open: Vec<TcpStream> = (0..CONNECTIONS)
        .map(|_| {
            let mut stream = support::http::connect(server.address());
            stream
                .write_all(b"GET / HTTP/1.1\r\nHost: alice.web")
                .unwrap();
            stream.set_nonblocking(true).unwrap();
            stream
        })
        .collect();
    let during_rss = status_kb(pid, "VmRSS:");
    let during_fds = fds(pid);
    let started = Instant::now();
    while !open.is_empty() && started.elapsed() < Duration::from_secs(60) {
        open.retain_mut(|stream| !(closed(stream) || stream.write(b"x").is_err()));
        std::thread::sleep(Duration::from_millis(200));
    }
    let cut_after = started.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    let after_rss = status_kb(pid, "VmRSS:");
    let after_fds = fds(pid);
    let peak_connections = status_kb(pid, "VmHWM:");

    // A 256 MB instance file: refused from its size, never read.
    let big = dir.path().join("instances/web/huge.toml");
    fs::File::create(&big).unwrap().set_len(256 << 20).unwrap();
    let noticed = Instant::now();
    while !String::from_utf8_lossy(&server.ten(&["ps"]).stderr).contains("huge.toml") {
        assert!(
            noticed.elapsed() < Duration::from_secs(20),
            "the big file is not reported"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let peak_big = status_kb(pid, "VmHWM:");
    let big_rss = status_kb(pid, "VmRSS:");

    println!("ten serve under bad input (one tenant, header_timeout = 2 s)");
    println!("| moment | RSS | open descriptors |");
    println!("|---|---|---|");
    println!("| before | {} | {base_fds} |", mb(base_rss));
    println!(
        "| {CONNECTIONS} trickling connections open | {} | {during_fds} |",
        mb(during_rss)
    );
    println!(
        "| 2 s after the last was cut ({} left open after {:.1} s) | {} | {after_fds} |",
        open.len(),
        cut_after.as_secs_f64(),
        mb(after_rss)
    );
    println!("| peak so far (VmHWM) | {} | |", mb(peak_connections));
    println!(
        "| a 256 MB instance file reported | {} (peak {}) | |",
        mb(big_rss),
        mb(peak_big)
    );
    assert!(open.is_empty(), "{} connections were never cut", open.len());
}
