//! A tenant that floods its output keeps ten's memory and its log files bounded: the tenant
//! writes lines at 200 MB/s for 20 s (the case of issue 25), once to /dev/null and then as a
//! tenant of `ten serve` with the default `log_retention` (files of 10 MiB, four kept), in
//! two shapes: ~100-byte lines, and 2-byte lines (`yes`). It reports the tenant's throughput
//! in each (and against /dev/null), ten's peak RSS (VmHWM) and its RSS after the flood, the
//! most bytes the log directory held at any sample (every 50 ms) and at the end, the disk
//! blocks the raw capture files held, and the lines a final `ten logs` finds.
//!
//! `cargo bench --bench log_flood` (`TEN_BENCH_SECONDS` changes the 20 s, `TEN_BENCH_RATE`
//! the 200 MB/s). The benchmark's own binary is the tenant
//! (`log_flood __writer SECONDS RATE LINE_BYTES COUNT_FILE [--stay]`).

#[path = "../tests/support/mod.rs"]
mod support;

use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::server::{TestServer, project, status_kb, stdout};
use ten::runtime::logs::read_record;

/// What a writer did: bytes, seconds.
#[derive(Debug, Clone, Copy)]
struct Written {
    bytes: u64,
    seconds: f64,
}

impl Written {
    fn read(path: &Path) -> Option<Written> {
        let text = fs::read_to_string(path).ok()?;
        let mut fields = text.split_whitespace();
        Some(Written {
            bytes: fields.next()?.parse().ok()?,
            seconds: fields.next()?.parse().ok()?,
        })
    }

    fn mb_per_second(&self) -> f64 {
        self.bytes as f64 / self.seconds / 1e6
    }
}

/// The tenant: 64 KiB blocks of `LINE_BYTES`-byte lines (newline included) written at
/// `RATE` MB/s for `SECONDS`, then `flood over` on a line of its own; what it wrote goes
/// to `COUNT_FILE`; with `--stay` it sleeps until stopped (a tenant that exits would be
/// restarted).
fn writer(args: &[String]) {
    let seconds: f64 = args[2].parse().unwrap();
    let rate: f64 = args[3].parse::<f64>().unwrap() * 1e6;
    let line_bytes: usize = args[4].parse().unwrap();
    let count_file = PathBuf::from(&args[5]);
    let stay = args.iter().any(|arg| arg == "--stay");
    let mut line = vec![b'x'; line_bytes.max(1)];
    *line.last_mut().unwrap() = b'\n';
    let mut block = Vec::with_capacity(64 * 1024 + line.len());
    while block.len() < 64 * 1024 {
        block.extend_from_slice(&line);
    }
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let mut out = std::io::stdout().lock();
    let mut bytes = 0u64;
    while Instant::now() < deadline {
        out.write_all(&block).unwrap();
        bytes += block.len() as u64;
        let due = Duration::from_secs_f64(bytes as f64 / rate);
        if let Some(ahead) = due.checked_sub(started.elapsed()) {
            std::thread::sleep(ahead);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    out.write_all(b"\nflood over\n").unwrap();
    out.flush().unwrap();
    fs::write(&count_file, format!("{bytes} {elapsed}\n")).unwrap();
    if stay {
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
}

/// The bytes of the files in `dir` (their lengths) and the disk they take (their blocks).
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

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("__writer") {
        writer(&args);
        return;
    }
    let env = |name: &str, default: f64| {
        std::env::var(name)
            .ok()
            .and_then(|text| text.parse().ok())
            .unwrap_or(default)
    };
    let seconds = env("TEN_BENCH_SECONDS", 20.0);
    let rate = env("TEN_BENCH_RATE", 200.0);
    let scratch = tempfile::tempdir().unwrap();
    for line_bytes in [100, 2] {
        println!("a tenant writing {line_bytes}-byte lines at {rate} MB/s for {seconds} s:");
        let count = scratch.path().join(format!("null-{line_bytes}.count"));
        let status = Command::new(std::env::current_exe().unwrap())
            .args(["__writer", &seconds.to_string(), &rate.to_string()])
            .arg(line_bytes.to_string())
            .arg(&count)
            .stdout(Stdio::from(fs::File::create("/dev/null").unwrap()))
            .status()
            .unwrap();
        assert!(status.success());
        let null = Written::read(&count).unwrap();
        println!(
            "  to /dev/null:          {:>8.1} MB/s",
            null.mb_per_second()
        );
        under_ten(seconds, rate, line_bytes, &null, scratch.path());
    }
}

/// The writer as a tenant of `ten serve`, default retention; its figures printed.
fn under_ten(seconds: f64, rate: f64, line_bytes: usize, null: &Written, scratch: &Path) {
    let count_file = scratch.join(format!("ten-{line_bytes}.count"));
    let exe = std::env::current_exe().unwrap();
    let service = format!(
        "[service.bench]\ncommand = \"{} __writer {seconds} {rate} {line_bytes} {} --stay\"\nlisten = \"none\"\nstop_timeout = 1\n\n[instances]\nbench = [\"w\"]\n",
        exe.display(),
        count_file.display()
    );
    let dir = project("", &service, &[]);
    let server = TestServer::start(dir.path());
    let ten_pid = server.pid();
    server.wait_running("bench:w");
    let data = dir.path().join("tenement-data/.ten");
    let log_dir = data.join("logs/bench/w");
    let capture = data.join("capture/bench/w");
    let raw = capture.join("stdout.raw");
    let offsets = log_dir.join("offsets");
    let mut logs_max = 0;
    let mut raw_disk_max = 0;
    let mut sample = || {
        logs_max = logs_max.max(dir_bytes(&log_dir).0);
        raw_disk_max = raw_disk_max.max(dir_bytes(&capture).1);
    };
    let started = Instant::now();
    let written = loop {
        sample();
        if let Some(written) = Written::read(&count_file) {
            break written;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let writing = started.elapsed();
    // Caught up: the record reaches the raw file's end (at most a minute more).
    let caught_up = || {
        let size = fs::metadata(&raw).map_or(0, |metadata| metadata.len());
        read_record(&offsets).is_some_and(|record| record.offsets[0] >= size)
    };
    while !caught_up() && started.elapsed() < writing + Duration::from_secs(60) {
        sample();
        std::thread::sleep(Duration::from_millis(50));
    }
    let lag = started.elapsed().saturating_sub(writing);
    sample();
    std::thread::sleep(Duration::from_secs(2));
    let rss_peak = status_kb(ten_pid, "VmHWM:");
    let rss_after = status_kb(ten_pid, "VmRSS:");
    let (logs_end, _) = dir_bytes(&log_dir);
    let (_, raw_disk_end) = dir_bytes(&capture);
    let tail = server.ten(&["logs", "bench:w", "--limit", "5"]);
    let found = stdout(&tail).contains("flood over");
    println!(
        "  as a tenant of ten:    {:>8.1} MB/s ({:.2}x /dev/null); ten caught up {} ms after it stopped{}",
        written.mb_per_second(),
        written.mb_per_second() / null.mb_per_second(),
        lag.as_millis(),
        if caught_up() {
            ""
        } else {
            " (not within 60 s)"
        }
    );
    println!(
        "  ten's RSS: {:.1} MB peak (VmHWM), {:.1} MB after",
        rss_peak as f64 / 1024.0,
        rss_after as f64 / 1024.0
    );
    println!(
        "  log directory: at most {:.1} MB (sampled every 50 ms), {:.1} MB at the end; raw capture files on disk: at most {:.1} MB, {:.1} MB at the end",
        mb(logs_max),
        mb(logs_end),
        mb(raw_disk_max),
        mb(raw_disk_end)
    );
    println!(
        "  the line after the flood in `ten logs`: {}",
        if found { "found" } else { "NOT found" }
    );
    drop(server);
}
