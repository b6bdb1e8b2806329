//! What the proxy benchmarks share (`bench/proxy.rs`, `bench/https.rs`), each including this
//! module with `#[path = "common/mod.rs"]`: the tools they install, wrk runs and their figures,
//! the CPU time of processes from `/proc`, nginx as a baseline, and the statistics that compare
//! a proxy with nginx round by round, with nginx against itself as the control.

#![allow(dead_code)]

pub(crate) mod cpu;
pub(crate) mod nginx;
pub(crate) mod report;
pub(crate) mod stats;
pub(crate) mod wrk;

use std::process::Command;

/// Installs the Debian packages of the `tools` (command and package) missing from PATH.
pub(crate) fn ensure_tools(tools: &[(&str, &str)]) {
    let missing: Vec<&str> = tools
        .iter()
        .filter(|(command, _)| {
            Command::new("sh")
                .args(["-c", &format!("command -v {command}")])
                .output()
                .map_or(true, |o| !o.status.success())
        })
        .map(|(_, package)| *package)
        .collect();
    if missing.is_empty() {
        return;
    }
    let status = Command::new("apt-get")
        .args(["install", "-y", "-qq"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .expect("apt-get");
    assert!(status.success(), "could not install {missing:?}");
}

/// The orders of the three proxies (0 ten, 1 nginx, 2 the control nginx) in a round.
pub(crate) const ORDERS: [[usize; 3]; 6] = [
    [0, 1, 2],
    [1, 2, 0],
    [2, 0, 1],
    [0, 2, 1],
    [2, 1, 0],
    [1, 0, 2],
];

/// `rounds` rounds in which the three proxies (0 ten, 1 nginx, 2 the control nginx) are each
/// measured once, back to back, in turns (the orders of [`ORDERS`] one after the other, so
/// that drift in the machine's load and the position in a round hit all alike): each one's
/// measures, round by round.
pub(crate) fn take_turns<T>(rounds: usize, mut measure: impl FnMut(usize) -> T) -> [Vec<T>; 3] {
    let mut runs: [Vec<T>; 3] = Default::default();
    for round in 0..rounds {
        for target in ORDERS[round % ORDERS.len()] {
            runs[target].push(measure(target));
        }
    }
    runs
}

/// `rounds` rounds in which `N` targets are each measured once, back to back: in round `r`
/// the targets in turn from `r % N` on, and every other `N` rounds in the reverse order, so
/// that each target takes each position as often as the others (every `N` rounds) and
/// follows each of them as often as it precedes it. Each one's measures, round by round.
pub(crate) fn take_turns_among<const N: usize, T>(
    rounds: usize,
    mut measure: impl FnMut(usize) -> T,
) -> [Vec<T>; N] {
    let mut runs: [Vec<T>; N] = std::array::from_fn(|_| Vec::new());
    for round in 0..rounds {
        let mut order: Vec<usize> = (0..N).map(|position| (round + position) % N).collect();
        if (round / N) % 2 == 1 {
            order.reverse();
        }
        for target in order {
            runs[target].push(measure(target));
        }
    }
    runs
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
