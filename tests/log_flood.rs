//! A tenant that floods its output, end to end with a real `ten serve`: a tenant printing
//! short lines at 200 MB/s for 20 s (more lines than ten can read: what it cannot keep is
//! skipped, counted in bytes and said in a line) keeps its log directory within `log_retention` at
//! every moment, the raw capture files' disk bounded, and itself running (same pid); the line
//! it prints after the flood is found by `ten logs`. A 10 MB line without a newline is cut at
//! `MAX_LINE` with a marker, and the lines after it are captured whole.

mod support;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use support::server::{TestServer, alive, project, stderr, stdout, within};
use ten::runtime::logs::MAX_LINE;

/// `log_retention` of these tests: `output.log` rotated at 1 MiB, three rotated files kept.
const RETENTION: u64 = 4 * 1024 * 1024;

/// The lengths of the files in `dir` added up, and the disk their blocks take.
fn dir_bytes(dir: &Path) -> (u64, u64) {
    fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|entry| entry.metadata().ok())
                .filter(|metadata| metadata.is_file())
                .fold((0, 0), |(len, disk), metadata| {
                    (len + metadata.len(), disk + metadata.blocks() * 512)
                })
        })
        .unwrap_or((0, 0))
}

/// A project whose one instance `flood:a` runs `script` (Python), keeping `retention` bytes.
fn flood_project(script: &str, retention: u64) -> tempfile::TempDir {
    let dir = project(
        &format!("log_retention = {{ max_bytes = {retention} }}"),
        "",
        &[("flood.py", script)],
    );
    let service = format!(
        "[service.flood]\ncommand = \"python3 {}\"\nlisten = \"none\"\nstop_timeout = 1\n\n[instances]\nflood = [\"a\"]\n",
        dir.path().join("flood.py").display()
    );
    let toml = dir.path().join("tenement.toml");
    let text = fs::read_to_string(&toml).unwrap();
    fs::write(&toml, format!("{text}\n{service}")).unwrap();
    dir
}

/// `ten logs flood:a ARGS`: the texts of the lines printed.
fn texts(server: &TestServer, args: &[&str]) -> Vec<String> {
    let mut all = vec!["logs", "flood:a"];
    all.extend_from_slice(args);
    all.push("--json");
    let output = server.ten(&all);
    assert!(output.status.success(), "ten {all:?}: {}", stderr(&output));
    stdout(&output)
        .lines()
        .map(|line| {
            let line: serde_json::Value = serde_json::from_str(line).unwrap();
            line["text"].as_str().unwrap().to_string()
        })
        .collect()
}

/// 2-byte lines at 200 MB/s for 20 s, then `after the flood`, then it sleeps.
const FLOOD: &str = r#"
import os, sys, time
block = b"y\n" * 32768
rate, seconds = 200e6, 20.0
started = time.time()
written = 0
while time.time() - started < seconds:
    os.write(1, block)
    written += len(block)
    ahead = written / rate - (time.time() - started)
    if ahead > 0:
        time.sleep(ahead)
os.write(1, b"after the flood\n")
time.sleep(3600)
"#;

#[test]
fn a_tenant_flooding_its_output_keeps_its_logs_within_the_retention_and_runs_on() {
    let dir = flood_project(FLOOD, RETENTION);
    let server = TestServer::start(dir.path());
    let pid = server.wait_running("flood:a");
    let data = dir.path().join("tenement-data/.ten");
    let log_dir = data.join("logs/flood/a");
    let capture = data.join("capture/flood/a");
    // Sampled during the flood: the log files' bytes, and the raw files' disk.
    let started = Instant::now();
    let (mut logs_max, mut raw_max) = (0, 0);
    while started.elapsed() < Duration::from_secs(21) {
        let (logs, _) = dir_bytes(&log_dir);
        let (_, raw) = dir_bytes(&capture);
        logs_max = logs_max.max(logs);
        raw_max = raw_max.max(raw);
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        within(Duration::from_secs(30), || texts(
            &server,
            &["--limit", "5"]
        )
        .iter()
        .any(|text| text == "after the flood")),
        "the line after the flood is not in `ten logs`; server log:\n{}",
        server.log()
    );
    // A rotation comes before an append that would pass the rotation size, and the oldest
    // files go at once: the files never hold more than `log_retention`. (A listing is not
    // atomic: a file renamed while it is listed could be counted twice; allow one file,
    // RETENTION / 4, of slack for that.)
    let (logs_end, _) = dir_bytes(&log_dir);
    assert!(
        logs_max <= RETENTION + RETENTION / 4,
        "the log directory held {logs_max} bytes (log_retention {RETENTION})"
    );
    assert!(logs_end <= RETENTION, "{logs_end} bytes at the end");
    // More than `log_retention` waiting is skipped: the raw files take at most that, plus
    // what the tenant wrote between two reads and the 1 MiB steps holes are punched in (a
    // loose bound: 4 GB were written, and 4x the retention plus 64 MB is 80 MB).
    assert!(
        raw_max <= 4 * RETENTION + 64 * 1024 * 1024,
        "the raw capture files took {raw_max} bytes of disk"
    );
    // What was skipped is said in ten's log. (The line that says it in the tenant's log is
    // pushed out of this small retention by the 2-byte lines read after it: a unit test of
    // `source` checks it.)
    assert!(
        server.log().contains("faster than ten reads it"),
        "ten's log does not say output was dropped:\n{}",
        server.log()
    );
    // The tenant was never restarted.
    assert!(alive(pid));
    assert_eq!(server.wait_running("flood:a"), pid);
}

/// 10 MB without a newline, in 64 KiB writes, then `after the long line`.
const LONG_LINE: &str = r#"
import os, time
chunk = b"z" * 65536
for _ in range(160):
    os.write(1, chunk)
os.write(1, b"\nafter the long line\n")
time.sleep(3600)
"#;

#[test]
fn a_line_of_10_mb_is_cut_with_a_marker_and_the_next_line_is_whole() {
    // More than the line is kept: nothing is skipped however fast it comes.
    let dir = flood_project(LONG_LINE, 64 * 1024 * 1024);
    let server = TestServer::start(dir.path());
    let pid = server.wait_running("flood:a");
    assert!(
        within(Duration::from_secs(20), || texts(&server, &[])
            .iter()
            .any(|text| text == "after the long line")),
        "the line after the long one is not in `ten logs`; server log:\n{}",
        server.log()
    );
    let lines = texts(&server, &[]);
    let long = lines
        .iter()
        .find(|text| text.starts_with('z'))
        .expect("the long line");
    let marker = format!(" [line cut: {} more bytes]", 160 * 65536 - MAX_LINE);
    assert_eq!(long.len(), MAX_LINE + marker.len(), "{}", &long[MAX_LINE..]);
    assert!(long.ends_with(&marker), "{}", &long[MAX_LINE..]);
    assert!(long[..MAX_LINE].bytes().all(|byte| byte == b'z'));
    // The same in output.log, and the line after it whole.
    let output = fs::read_to_string(
        dir.path()
            .join("tenement-data/.ten/logs/flood/a/output.log"),
    )
    .unwrap();
    assert!(output.contains(&marker));
    assert!(output.contains(" stdout after the long line\n"));
    // The cut bytes take no disk in the raw file (holes are punched as they are read).
    let (length, disk) = dir_bytes(&dir.path().join("tenement-data/.ten/capture/flood/a"));
    assert!(length > 10_000_000, "the raw files are {length} bytes long");
    assert!(
        disk < 4 * 1024 * 1024,
        "the raw files take {disk} bytes of disk"
    );
    assert!(alive(pid));
}
