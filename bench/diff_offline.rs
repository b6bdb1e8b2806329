//! Benchmark: `ten diff --offline` over 10,000 instance files (issue #2; goal: under 200 ms).
//!
//! Run with `cargo bench --bench diff_offline`. Times the release binary end to end (process
//! start, reading tenement.toml and 10,000 instance files, the state record, planning and
//! rendering to /dev/null), median of repeated runs, next to baselines measured in the same
//! run on the same files: `cat` of every instance file via `find` (the I/O floor) and `ten --version`
//! (process start). Reported as milliseconds and as ratios to `cat`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const INSTANCES: usize = 10_000;
const RUNS: usize = 15;

fn median_of_runs(dir: &Path, program: &str, args: &[&str]) -> Duration {
    let mut times: Vec<Duration> = (0..RUNS + 2)
        .map(|_| {
            let started = Instant::now();
            let status = Command::new(program)
                .args(args)
                .current_dir(dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("run benchmark command");
            let elapsed = started.elapsed();
            assert!(
                status.code().is_some_and(|code| code == 0 || code == 2),
                "{program} {args:?}: {status}"
            );
            elapsed
        })
        .skip(2) // warm-up
        .collect();
    times.sort();
    times[times.len() / 2]
}

fn main() {
    let ten = env!("CARGO_BIN_EXE_ten");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    support::write_file(
        &root.join("tenement.toml"),
        "[service.notes]\ncommand = \"python3 app.py\"\nhealth = \"/health\"\nidle_timeout = 300\n\n[service.notes.env]\nDATA_DIR = \"{data_dir}/{name}/{id}\"\nLOG_LEVEL = \"info\"\n",
    );
    for index in 0..INSTANCES {
        // A tenth of the files carry overrides, the rest are empty (the common case).
        let body = if index % 10 == 0 {
            "weight = 50\n[env]\nLOG_LEVEL = \"debug\"\n"
        } else {
            ""
        };
        support::write_file(
            &root.join(format!("instances/notes/t{index:05}.toml")),
            body,
        );
    }
    // `find -exec cat {} +`: reads every file without a shell glob (whose sort dominates).
    let cat_args = ["-c", "find instances -type f -exec cat {} + > /dev/null"];
    let startup = median_of_runs(root, ten, &["--version"]);
    let validate = median_of_runs(root, ten, &["validate"]);
    let cat = median_of_runs(root, "sh", &cat_args);
    let create_all = median_of_runs(root, ten, &["diff", "--offline"]);
    let create_summary = median_of_runs(root, ten, &["diff", "--offline", "--summary"]);
    let create_json = median_of_runs(root, ten, &["diff", "--offline", "--json"]);

    // A record in which every instance runs with its current spec: the converged case.
    let desired = ten::desired::load(&root.join("tenement.toml"))
        .desired
        .unwrap();
    let mut observed = support::observed_as_applied(&desired);
    for instance in observed.instances.values_mut() {
        instance.pid = None; // no liveness checks against fake pids
    }
    ten::observed::write_record(&desired.config.settings.data_dir, &observed).unwrap();
    let record_bytes = std::fs::metadata(ten::observed::record_path(
        &desired.config.settings.data_dir,
    ))
    .unwrap()
    .len();
    let converged = median_of_runs(root, ten, &["diff", "--offline"]);

    let ms = |duration: Duration| duration.as_secs_f64() * 1000.0;
    println!("ten diff --offline over {INSTANCES} instance files (median of {RUNS} runs)");
    println!("{:<52} {:>9} {:>12}", "command", "ms", "ratio to cat");
    let rows = [
        ("baseline: cat of every instance file", cat),
        ("baseline: ten --version (process start)", startup),
        ("ten validate (read and check every file)", validate),
        (
            "ten diff --offline, nothing recorded (10k creates)",
            create_all,
        ),
        (
            "ten diff --offline --summary, nothing recorded",
            create_summary,
        ),
        ("ten diff --offline --json, nothing recorded", create_json),
        ("ten diff --offline, converged record", converged),
    ];
    for (name, duration) in rows {
        println!(
            "{name:<52} {:>9.1} {:>12.2}",
            ms(duration),
            ms(duration) / ms(cat)
        );
    }
    println!("state record size: {:.1} MB", record_bytes as f64 / 1e6);
}
