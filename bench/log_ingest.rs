//! Capturing a tenant's output costs the tenant nothing and ten a bounded memory: a tenant
//! printing numbered lines as fast as it can for 10 s, run three ways in one run: writing to
//! /dev/null, to a regular file (what ten gives a tenant as its stdout), and as a tenant of
//! `ten serve`. It reports the tenant's throughput in each, ten's CPU and memory (RSS sampled
//! every 100 ms, and its peak), how long ten took to catch up after the tenant stopped, and
//! checks that every line written was captured once, in order (0 lost). Then it times
//! `ten logs --search` and `--since/--until` over everything kept (more than 1 GB). Last, the
//! same tenant paced at 50 MB/s under ten: whether it keeps its pace, and ten's CPU at it.
//!
//! `cargo bench --bench log_ingest` (`TEN_BENCH_SECONDS` changes the 10 s). The benchmark's
//! own binary is the tenant (`log_ingest __writer SECONDS COUNT_FILE [--stay]`).

#[path = "../tests/support/mod.rs"]
mod support;

use std::fs::{self, File};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::server::{TestServer, project, status_kb, stderr};
use ten::runtime::logs::{kept_files, read_record};

/// Linux's USER_HZ: the unit of CPU times in `/proc/PID/stat`.
const TICKS_PER_SECOND: f64 = 100.0;
/// 80 bytes of padding: lines of about 98 bytes, like a request log's.
const PAD: &str =
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";

/// What a writer did: lines, bytes, seconds.
#[derive(Debug, Clone, Copy)]
struct Written {
    lines: u64,
    bytes: u64,
    seconds: f64,
}

impl Written {
    fn read(path: &Path) -> Option<Written> {
        let text = fs::read_to_string(path).ok()?;
        let mut fields = text.split_whitespace();
        Some(Written {
            lines: fields.next()?.parse().ok()?,
            bytes: fields.next()?.parse().ok()?,
            seconds: fields.next()?.parse().ok()?,
        })
    }

    fn mb_per_second(&self) -> f64 {
        self.bytes as f64 / self.seconds / 1e6
    }
}

/// The tenant: `line N xxx...` on stdout through a 64 KiB buffer (as a busy program's
/// logger would), for `seconds`, as fast as it can or at `--rate MB/s`; then what it wrote
/// to `count_file`, and, with `--stay`, sleeps until stopped (a tenant that exits would be
/// restarted).
fn writer(args: &[String]) {
    let seconds: f64 = args[2].parse().unwrap();
    let count_file = PathBuf::from(&args[3]);
    let stay = args.iter().any(|arg| arg == "--stay");
    let rate: Option<f64> = args
        .iter()
        .position(|arg| arg == "--rate")
        .map(|at| args[at + 1].parse::<f64>().unwrap() * 1e6);
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let stdout = std::io::stdout().lock();
    let mut out = BufWriter::with_capacity(64 * 1024, stdout);
    let (mut lines, mut bytes) = (0u64, 0u64);
    let mut line = String::with_capacity(128);
    while Instant::now() < deadline {
        for _ in 0..1000 {
            line.clear();
            use std::fmt::Write as _;
            let _ = writeln!(line, "line {lines} {PAD}");
            out.write_all(line.as_bytes()).unwrap();
            lines += 1;
            bytes += line.len() as u64;
        }
        if let Some(rate) = rate {
            let due = Duration::from_secs_f64(bytes as f64 / rate);
            if let Some(ahead) = due.checked_sub(started.elapsed()) {
                out.flush().unwrap();
                std::thread::sleep(ahead);
            }
        }
    }
    out.flush().unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    fs::write(&count_file, format!("{lines} {bytes} {elapsed}\n")).unwrap();
    if stay {
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
}

/// The writer as a plain child of this bench, its stdout `stdout`.
fn run_alone(seconds: f64, stdout: Stdio, count_file: &Path) -> Written {
    let status = Command::new(std::env::current_exe().unwrap())
        .args(["__writer", &seconds.to_string()])
        .arg(count_file)
        .stdout(stdout)
        .status()
        .unwrap();
    assert!(status.success());
    Written::read(count_file).unwrap()
}

/// User + system CPU seconds of `pid`, all its threads.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<u64> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .map(|field| field.parse().unwrap_or(0))
        .collect();
    (fields[11] + fields[12]) as f64 / TICKS_PER_SECOND
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Reads every kept line back: the numbers of `line N` must be 0, 1, 2, ... once each.
/// Returns (lines captured, bytes kept, problems).
fn check_captured(log_dir: &Path, written: u64) -> (u64, u64, Vec<String>) {
    let mut next = 0u64;
    let mut problems = Vec::new();
    let mut kept = 0;
    for file in kept_files(log_dir) {
        kept += fs::metadata(&file).map_or(0, |metadata| metadata.len());
        let reader = BufReader::with_capacity(1 << 20, File::open(&file).unwrap());
        for line in reader.lines() {
            let line = line.unwrap();
            let Some(text) = line.split_once(" stdout ").map(|(_, text)| text) else {
                continue;
            };
            let number: Option<u64> = text
                .strip_prefix("line ")
                .and_then(|rest| rest.split(' ').next())
                .and_then(|number| number.parse().ok());
            match number {
                Some(number) if number == next => next += 1,
                _ if problems.len() < 5 => problems.push(format!(
                    "expected line {next}, found {:?}",
                    &text[..text.len().min(40)]
                )),
                _ => {}
            }
        }
    }
    if next != written && problems.len() < 5 {
        problems.push(format!("captured {next} of {written} lines"));
    }
    (next, kept, problems)
}

/// Runs `ten ARGS` and times it; the lines it printed.
fn timed(server: &TestServer, args: &[&str]) -> (Duration, usize) {
    let started = Instant::now();
    let output = server.ten(args);
    let elapsed = started.elapsed();
    assert!(output.status.success(), "ten {args:?}: {}", stderr(&output));
    (
        elapsed,
        output.stdout.iter().filter(|&&byte| byte == b'\n').count(),
    )
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("__writer") {
        writer(&args);
        return;
    }
    let seconds: f64 = std::env::var("TEN_BENCH_SECONDS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(10.0);
    let scratch = tempfile::tempdir().unwrap();

    println!("a tenant printing numbered ~98-byte lines as fast as it can for {seconds} s:");
    let null = run_alone(
        seconds,
        Stdio::from(File::create("/dev/null").unwrap()),
        &scratch.path().join("null.count"),
    );
    println!(
        "  to /dev/null:              {:>11} lines, {:>7.1} MB/s",
        null.lines,
        null.mb_per_second()
    );
    let file_path = scratch.path().join("plain.out");
    let plain = run_alone(
        seconds,
        Stdio::from(File::create(&file_path).unwrap()),
        &scratch.path().join("plain.count"),
    );
    let _ = fs::remove_file(&file_path);
    println!(
        "  to a file (no ten):        {:>11} lines, {:>7.1} MB/s ({:.2}x /dev/null)",
        plain.lines,
        plain.mb_per_second(),
        plain.mb_per_second() / null.mb_per_second()
    );

    let scratch_path = scratch.path().to_path_buf();
    under_ten(seconds, None, &null, &plain, &scratch_path, true);
    under_ten(seconds, Some(50.0), &null, &plain, &scratch_path, false);
}

/// A run of the writer as a tenant of `ten serve` (`rate`: MB/s, or as fast as it can), every
/// line kept and checked; with `search`, `ten logs` timed over what was kept.
fn under_ten(
    seconds: f64,
    rate: Option<f64>,
    null: &Written,
    plain: &Written,
    scratch: &Path,
    search: bool,
) {
    let count_file = scratch.join(format!("ten-{}.count", rate.unwrap_or(0.0)));
    let exe = std::env::current_exe().unwrap();
    let rate_args = rate.map_or(String::new(), |rate| format!(" --rate {rate}"));
    let service = format!(
        "[service.bench]\ncommand = \"{} __writer {seconds} {}{rate_args} --stay\"\nlisten = \"none\"\nstop_timeout = 1\n\n[instances]\nbench = [\"w\"]\n",
        exe.display(),
        count_file.display()
    );
    // Everything is kept, so that every line can be checked and searched afterwards.
    let dir = project("log_retention = { max_bytes = \"16GB\" }", &service, &[]);
    let server = TestServer::start(dir.path());
    let ten_pid = server.pid();
    server.wait_running("bench:w");
    let cpu_before = cpu_seconds(ten_pid);
    let started = Instant::now();
    let mut rss_max = 0;
    let written = loop {
        rss_max = rss_max.max(status_kb(ten_pid, "VmRSS:"));
        if let Some(written) = Written::read(&count_file) {
            break written;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let cpu_writing = cpu_seconds(ten_pid) - cpu_before;
    let writing = started.elapsed();
    let data = dir.path().join("tenement-data/.ten");
    let raw = data.join("capture/bench/w/stdout.raw");
    let offsets = data.join("logs/bench/w/offsets");
    let caught_up = || {
        let size = fs::metadata(&raw).map_or(0, |metadata| metadata.len());
        read_record(&offsets).is_some_and(|record| record.offsets[0] >= size)
    };
    while !caught_up() {
        rss_max = rss_max.max(status_kb(ten_pid, "VmRSS:"));
        std::thread::sleep(Duration::from_millis(20));
    }
    let lag = started.elapsed().saturating_sub(writing);
    let cpu_total = cpu_seconds(ten_pid) - cpu_before;
    let rss_peak = status_kb(ten_pid, "VmHWM:");
    let rss_end = status_kb(ten_pid, "VmRSS:");
    let what = match rate {
        Some(rate) => format!("at {rate} MB/s, of ten serve:"),
        None => "as a tenant of ten serve:".to_string(),
    };
    println!(
        "  {what:<26} {:>11} lines, {:>7.1} MB/s ({:.2}x /dev/null, {:.2}x a file)",
        written.lines,
        written.mb_per_second(),
        written.mb_per_second() / null.mb_per_second(),
        written.mb_per_second() / plain.mb_per_second()
    );
    let log_dir = data.join("logs/bench/w");
    let (captured, kept_bytes, problems) = check_captured(&log_dir, written.lines);
    println!(
        "  captured: {captured} of {} lines ({} lost, {} out of order or repeated); {:.2} GB kept in {} files",
        written.lines,
        written.lines.saturating_sub(captured),
        problems.len(),
        kept_bytes as f64 / 1e9,
        kept_files(&log_dir).len()
    );
    for problem in &problems {
        println!("    {problem}");
    }
    println!(
        "  ten: {:.2} CPU seconds while the tenant wrote ({:.0} % of a core), {:.2} until it caught up {} ms after; ingest {:.0} MB/s of tenant output",
        cpu_writing,
        cpu_writing / writing.as_secs_f64() * 100.0,
        cpu_total,
        lag.as_millis(),
        written.bytes as f64 / (writing + lag).as_secs_f64() / 1e6
    );
    println!(
        "  ten's RSS: at most {:.1} MB sampled, {:.1} MB peak (VmHWM), {:.1} MB at the end",
        rss_max as f64 / 1024.0,
        rss_peak as f64 / 1024.0,
        rss_end as f64 / 1024.0
    );
    if !search {
        return;
    }
    println!(
        "searches over the {:.2} GB kept (ten logs, end to end):",
        kept_bytes as f64 / 1e9
    );
    let middle = written.lines / 2;
    let cases: Vec<(String, Vec<String>)> = vec![
        (
            "no line matches (reads everything)".into(),
            vec!["--search".into(), "no such text".into()],
        ),
        (
            "one line matches".into(),
            vec!["--search".into(), format!("line {middle} x")],
        ),
        (
            "every line matches, the last 100".into(),
            vec!["--search".into(), "LINE".into()],
        ),
        (
            "--since 10m (all of it), the last 100".into(),
            vec!["--since".into(), "10m".into()],
        ),
        ("a 50 ms range in the middle".into(), {
            let first = kept_files(&log_dir)
                .first()
                .and_then(|file| {
                    file.file_name()?
                        .to_str()?
                        .strip_prefix("output.log.")?
                        .parse::<u64>()
                        .ok()
                })
                .unwrap_or_else(now_ms);
            let at = first + (writing.as_millis() as u64) / 2;
            vec![
                "--since".into(),
                at.to_string(),
                "--until".into(),
                (at + 50).to_string(),
                "--limit".into(),
                "100000".into(),
            ]
        }),
        ("the last 100 lines (memory)".into(), vec![]),
    ];
    for (what, extra) in &cases {
        let mut args: Vec<&str> = vec!["logs", "bench:w"];
        args.extend(extra.iter().map(String::as_str));
        let mut times = Vec::new();
        let mut lines = 0;
        for _ in 0..3 {
            let (elapsed, printed) = timed(&server, &args);
            times.push(elapsed);
            lines = printed;
        }
        times.sort();
        println!(
            "  {what:<40} {:>8.1} ms (median of 3), {lines} lines",
            times[1].as_secs_f64() * 1000.0
        );
    }
    drop(server);
}
