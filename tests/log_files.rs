//! Log files a service names (`stdout_log`, `stderr_log`, `log_max_bytes`, `log_backups`),
//! end to end: a real `ten serve`, real tenants writing fast, the files read back after the
//! rotations: every line whole, in order, none lost, exactly `log_backups` backups kept.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use support::server::{TestServer, backend_service, project, stdout, within};

/// `file.log.N`.
fn rotated(path: &Path, index: usize) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{index}"));
    PathBuf::from(name)
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

/// The lines of `path` and its backups, oldest first (`path.N` ... `path.1`, `path`).
fn lines_with_backups(path: &Path, backups: usize) -> Vec<String> {
    let mut files: Vec<PathBuf> = (1..=backups).rev().map(|n| rotated(path, n)).collect();
    files.push(path.to_path_buf());
    files
        .iter()
        .flat_map(|file| read(file).lines().map(str::to_string).collect::<Vec<_>>())
        .collect()
}

/// The number of each line `PREFIX N...`; panics on a line that is not one (a cut line).
fn numbers(lines: &[String], prefix: &str) -> Vec<u64> {
    lines
        .iter()
        .filter(|line| line.starts_with(prefix))
        .map(|line| {
            let rest = &line[prefix.len()..];
            let digits = rest.split(' ').next().unwrap();
            digits
                .parse()
                .unwrap_or_else(|_| panic!("a cut line: {line:?}"))
        })
        .collect()
}

#[test]
fn a_fast_writer_rotates_keeping_exactly_the_backups_with_every_line_whole_and_in_order() {
    // 256-byte writes every millisecond, lines cut anywhere between writes: about 128
    // rotations a second at 2000 bytes.
    let service = backend_service(
        "web",
        "args = [\"--stream\", \"--quiet\"]\nstdout_log = \"logs/{name}-{id}.log\"\nlog_max_bytes = 2000\nlog_backups = 3\n\n[instances]\nweb = [\"a\"]",
    );
    let dir = project("", &service, &[]);
    let server = TestServer::start(dir.path());
    server.wait_running("web:a");
    let log = dir.path().join("logs/web-a.log");
    // Rotated often enough that the oldest backups were dropped: the oldest kept is not the
    // first line.
    let dropped_some = || {
        numbers(
            &read(&rotated(&log, 3))
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>(),
            "tick ",
        )
        .first()
        .is_some_and(|first| *first > 1000)
    };
    assert!(
        within(Duration::from_secs(20), dropped_some),
        "no rotations"
    );
    let (status, last) = server.get("a.web.localhost", "/stop-ticks");
    assert_eq!(status, 200, "{last}");
    let last: u64 = last.trim().parse().unwrap();
    let complete = || read(&log).ends_with(&format!("tick {last}\n"));
    assert!(
        within(Duration::from_secs(20), complete),
        "tick {last} never written"
    );

    assert!(
        !rotated(&log, 4).exists(),
        "exactly log_backups = 3 backups"
    );
    let files = [
        rotated(&log, 3),
        rotated(&log, 2),
        rotated(&log, 1),
        log.clone(),
    ];
    for pair in files.windows(2) {
        let (older, newer) = (read(&pair[0]), read(&pair[1]));
        assert!(
            older.len() <= 2000,
            "{} has {} bytes",
            pair[0].display(),
            older.len()
        );
        // Rotated when the next line would not fit: no file was cut short.
        let next_line = newer.lines().next().unwrap().len() + 1;
        assert!(
            older.len() + next_line > 2000,
            "{} rotated early",
            pair[0].display()
        );
    }
    let lines = lines_with_backups(&log, 3);
    for line in &lines {
        assert!(line.starts_with("tick "), "a cut or foreign line: {line:?}");
    }
    let ticks = numbers(&lines, "tick ");
    let first = ticks[0];
    assert_eq!(
        ticks,
        (first..=last).collect::<Vec<_>>(),
        "every line the files hold, in order, none lost or repeated"
    );

    // `ten logs` shows the same lines, from ten's capture.
    let shown = stdout(&server.ten(&["logs", "web:a", "--limit", "3"]));
    let tail: Vec<String> = shown
        .lines()
        .map(|line| line.rsplit(' ').next().unwrap().to_string())
        .collect();
    assert_eq!(
        tail,
        [last - 2, last - 1, last].map(|n| n.to_string()),
        "{shown}"
    );
    let found = stdout(&server.ten(&["logs", "web:a", "--search", &format!("tick {last}")]));
    assert!(
        found.trim_end().ends_with(&format!("out tick {last}")),
        "{found}"
    );
}

/// A Python tenant that writes `out NNNN` lines on stdout and `err NNNN` lines on stderr
/// (400 of each, interleaved), then serves HTTP on $PORT.
const PRINTER: &str = r#"
import http.server, os, sys
for n in range(400):
    print("out %04d %s" % (n, "x" * 20))
    print("err %04d %s" % (n, "y" * 20), file=sys.stderr)
sys.stdout.flush()
class Quiet(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Quiet).serve_forever()
"#;

fn printer_service(name: &str, keys: &str) -> String {
    format!(
        "[service.{name}]\ncommand = \"python3\"\nargs = [\"-c\", '''{PRINTER}''']\nstop_timeout = 2\n{keys}\n"
    )
}

#[test]
fn stderr_goes_to_its_own_file_or_merges_into_stdouts_and_backups_enough_keep_every_line() {
    let services = [
        printer_service(
            "split",
            "stdout_log = \"logs/{name}.out\"\nstderr_log = \"logs/{name}.err\"\nlog_max_bytes = \"2KB\"\nlog_backups = 20",
        ),
        printer_service(
            "merged",
            "stdout_log = \"logs/{name}.log\"\nstderr_log = \"./logs/{name}.log\"\nlog_max_bytes = 2000\nlog_backups = 20",
        ),
    ]
    .join("\n");
    let dir = project(
        "",
        &format!("{services}\n[instances]\nsplit = [\"a\"]\nmerged = [\"a\"]\n"),
        &[],
    );
    let server = TestServer::start(dir.path());
    server.wait_running("split:a");
    server.wait_running("merged:a");
    let logs = dir.path().join("logs");
    let (out, err, both) = (
        logs.join("split.out"),
        logs.join("split.err"),
        logs.join("merged.log"),
    );
    let written = |path: &Path, prefix: &str| {
        lines_with_backups(path, 20).contains(&format!(
            "{prefix} 0399 {}",
            if prefix == "out" { "x" } else { "y" }.repeat(20)
        ))
    };
    let complete = || {
        written(&out, "out")
            && written(&err, "err")
            && written(&both, "out")
            && written(&both, "err")
    };
    assert!(
        within(Duration::from_secs(20), complete),
        "not every line written"
    );

    let all: Vec<u64> = (0..400).collect();
    let out_lines = lines_with_backups(&out, 20);
    let err_lines = lines_with_backups(&err, 20);
    assert!(
        out_lines.iter().all(|line| line.starts_with("out ")),
        "stdout only"
    );
    assert!(
        err_lines.iter().all(|line| line.starts_with("err ")),
        "stderr only"
    );
    assert_eq!(numbers(&out_lines, "out "), all);
    assert_eq!(numbers(&err_lines, "err "), all);
    assert!(
        rotated(&out, 5).exists() && rotated(&err, 5).exists(),
        "rotated several times"
    );
    assert!(
        !rotated(&out, 6).exists(),
        "400 lines of 29 bytes take 6 files of 2 KB"
    );

    let merged = lines_with_backups(&both, 20);
    assert_eq!(merged.len(), 800);
    for line in &merged {
        let filler = if line.starts_with("out ") { "x" } else { "y" }.repeat(20);
        assert!(
            line.ends_with(&filler) && line.len() == 29,
            "a cut line: {line:?}"
        );
    }
    assert_eq!(numbers(&merged, "out "), all, "stdout in order");
    assert_eq!(numbers(&merged, "err "), all, "stderr in order");

    let shown = stdout(&server.ten(&["logs", "split:a", "--level", "stderr", "--limit", "1"]));
    assert!(shown.contains(" err err 0399 "), "{shown}");
}

#[test]
fn naming_another_file_while_running_moves_the_lines_without_a_restart_or_a_lost_line() {
    let service = |file: &str| {
        backend_service(
            "web",
            &format!(
                "args = [\"--chatty\", \"--quiet\"]\nstdout_log = \"logs/{file}\"\n\n[instances]\nweb = [\"a\"]"
            ),
        )
    };
    let dir = project("", &service("first.log"), &[]);
    let server = TestServer::start(dir.path());
    let pid = server.wait_running("web:a");
    let (first, second) = (
        dir.path().join("logs/first.log"),
        dir.path().join("logs/second.log"),
    );
    assert!(within(Duration::from_secs(10), || read(&first)
        .lines()
        .count()
        > 5));
    let config = dir.path().join("tenement.toml");
    let text = read(&config).replace("logs/first.log", "logs/second.log");
    support::write_file(&config, &text);
    assert!(
        within(Duration::from_secs(10), || read(&second).lines().count()
            > 5),
        "the new file gets the lines"
    );
    assert_eq!(server.wait_running("web:a"), pid, "no restart");
    let before = numbers(
        &read(&first).lines().map(str::to_string).collect::<Vec<_>>(),
        "tick ",
    );
    let after = numbers(
        &read(&second)
            .lines()
            .map(str::to_string)
            .collect::<Vec<_>>(),
        "tick ",
    );
    assert_eq!(before, (0..before.len() as u64).collect::<Vec<_>>());
    assert_eq!(
        after[0],
        before.len() as u64,
        "the first line the new file got follows the old file's last"
    );
    assert_eq!(
        after,
        (after[0]..after[0] + after.len() as u64).collect::<Vec<_>>()
    );
}
