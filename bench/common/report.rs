//! The tables the proxy benchmarks print: one line per proxy with the medians of its runs,
//! then each proxy's ratios to nginx round by round, with intervals and verdicts.

use super::stats::{Rounds, Run};

/// The header of the medians' table; `rate` names the throughput's column (`requests/s`),
/// `extra` is added at the end of the line.
pub(crate) fn print_runs_header(rate: &str, extra: &str) {
    println!(
        "   {:<7} {:>5} {:>12} {:>9} {:>9} {:>7} {:>7}   {:>10} {:>10} {:>10}{extra}",
        "target",
        "conns",
        rate,
        "p50 ms",
        "p99 ms",
        "user",
        "system",
        "rps/nginx",
        "p99/nginx",
        "cpu/nginx",
    );
}

/// A line of the medians' table: `run` (the medians of a target's runs) against nginx's.
pub(crate) fn print_runs_line(name: &str, connections: u32, run: &Run, nginx: &Run, extra: &str) {
    println!(
        "   {name:<7} {connections:>5} {:>12.0} {:>9.3} {:>9.3} {:>7.2} {:>7.2}   {:>10.2} {:>10.2} {:>10.2}{extra}",
        run.rps,
        run.p50_ms,
        run.p99_ms,
        run.user_us,
        run.system_us,
        run.rps / nginx.rps,
        run.p99_ms / nginx.p99_ms,
        (run.user_us + run.system_us) / (nginx.user_us + nginx.system_us),
    );
}

/// The ratios to nginx round by round, per connection count: ten's and the control's
/// (`by_round`: connections, ten, control), their intervals, and a verdict per count. `unit`
/// is what the CPU time is counted per (`request`).
pub(crate) fn print_ratios(by_round: &[(u32, Rounds, Rounds)], unit: &str) {
    println!(
        "   against nginx round by round (each round: all three measured back to back); \
         nginx-2 is nginx again, the control"
    );
    println!(
        "   {:>5} {:<7}   {:>10} {:>13} {:>10}   {:>10} {:>13}   {:>10} {:>13}   rps ratios",
        "conns",
        "",
        "rps median",
        "interval",
        ">= nginx",
        "p99 median",
        "interval",
        "cpu median",
        "interval"
    );
    for (connections, ten, control) in by_round {
        for (name, rounds) in [("ten", ten), ("nginx-2", control)] {
            print_rounds(*connections, &format!("{name:<7}"), 10, rounds);
        }
    }
    let coverage = by_round
        .first()
        .map_or(0.0, |(_, rounds, _)| rounds.rps.coverage);
    println!(
        "   interval: holds the true median ratio of these processes with {:.0}% confidence \
         (order statistics, no assumption about the noise's distribution); the rounds share \
         one ten, two nginx and one backend, so a run with new ones can differ by more",
        coverage * 100.0
    );
    for (connections, ten, control) in by_round {
        let connections_unit = if *connections == 1 {
            "connection"
        } else {
            "connections"
        };
        println!(
            "   {connections:>5} {connections_unit}: throughput {}; p99 {}; CPU per {unit} {}",
            ten.rps_verdict(control),
            ten.p99_verdict(control),
            ten.cpu_verdict(control)
        );
    }
}

/// Ratios round by round, per connection count, for any pairs of targets: each row is
/// (connections, what is compared with what, the rounds).
pub(crate) fn print_comparisons(rows: &[(u32, String, Rounds)]) {
    println!(
        "   {:>5} {:<22}   {:>10} {:>13} {:>7}   {:>10} {:>13}   {:>10} {:>13}   rps ratios",
        "conns",
        "",
        "rps median",
        "interval",
        "won",
        "p99 median",
        "interval",
        "cpu median",
        "interval"
    );
    for (connections, name, rounds) in rows {
        print_rounds(*connections, &format!("{name:<22}"), 7, rounds);
    }
    let coverage = rows
        .first()
        .map_or(0.0, |(_, _, rounds)| rounds.rps.coverage);
    println!(
        "   interval: holds the true median ratio of these processes with {:.0}% confidence \
         (order statistics over the rounds); won: rounds in which the first served at least \
         as many requests as the second",
        coverage * 100.0
    );
}

/// One row of ratios round by round: medians and intervals of throughput, p99 and CPU, the
/// rounds won (in a column `won_width` wide) and every round's throughput ratio.
fn print_rounds(connections: u32, name: &str, won_width: usize, rounds: &Rounds) {
    let (rps, p99, cpu) = (&rounds.rps, &rounds.p99, &rounds.cpu);
    println!(
        "   {connections:>5} {name}   {:>10.2} {:>13} {:>won_width$}   {:>10.2} {:>13}   {:>10.2} {:>13}   {}",
        rps.median,
        rps.range(),
        format!("{}/{}", rounds.won, rounds.rps_ratios.len()),
        p99.median,
        p99.range(),
        cpu.median,
        cpu.range(),
        rounds.rps_ratios.join(" ")
    );
}
