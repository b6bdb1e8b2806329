//! The log files services name, as the hub writes them: each stream to its file or both
//! merged into one, lines read while no ten ran included, a new spec's files taking over, and
//! one writer for a file that several instances name.

use std::fs;
use std::io::Write;
use std::path::Path;

use super::*;
use crate::config::LogRotation;
use crate::runtime::logs::line::LogQuery;
use crate::runtime::logs::source::open_for_tenant;

fn key(text: &str) -> InstanceKey {
    InstanceKey::parse(text).unwrap()
}

fn append(path: &Path, bytes: &[u8]) {
    open_for_tenant(path).unwrap().write_all(bytes).unwrap();
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

fn files(stdout: Option<&Path>, stderr: Option<&Path>) -> LogFiles {
    LogFiles {
        stdout: stdout.map(Path::to_path_buf),
        stderr: stderr.map(Path::to_path_buf),
        rotation: LogRotation::default(),
    }
}

#[test]
fn each_stream_goes_to_its_file_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let hub = LogHub::new(dir.path().join(".ten"));
    let (out, err) = (
        dir.path().join("logs/out.log"),
        dir.path().join("logs/err.log"),
    );
    let paths = hub
        .attach(&key("web:a"), &files(Some(&out), Some(&err)))
        .unwrap();
    append(&paths.stdout, b"one\ntwo\npart");
    append(&paths.stderr, b"oops\n");
    hub.poll(&key("web:a"));
    assert_eq!(read(&out), "one\ntwo\n");
    assert_eq!(read(&err), "oops\n");
    append(&paths.stdout, b"ial\n");
    hub.poll(&key("web:a"));
    assert_eq!(read(&out), "one\ntwo\npartial\n");
}

#[test]
fn the_same_path_for_both_streams_merges_them_whole() {
    let dir = tempfile::tempdir().unwrap();
    let hub = LogHub::new(dir.path().join(".ten"));
    let both = dir.path().join("web.log");
    let paths = hub
        .attach(&key("web:a"), &files(Some(&both), Some(&both)))
        .unwrap();
    append(&paths.stdout, b"out 1\nout ");
    append(&paths.stderr, b"err 1\nerr ");
    hub.poll(&key("web:a"));
    append(&paths.stdout, b"2\n");
    append(&paths.stderr, b"2\n");
    hub.poll(&key("web:a"));
    assert_eq!(read(&both), "out 1\nerr 1\nout 2\nerr 2\n");
}

#[test]
fn lines_written_while_no_ten_ran_reach_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.log");
    let hub = LogHub::new(dir.path().join(".ten"));
    let paths = hub.attach(&key("web:a"), &files(Some(&out), None)).unwrap();
    append(&paths.stdout, b"before\n");
    hub.poll(&key("web:a"));
    drop(hub);
    append(&paths.stdout, b"while away\n");
    let hub = LogHub::new(dir.path().join(".ten"));
    hub.attach(&key("web:a"), &files(Some(&out), None)).unwrap();
    assert_eq!(read(&out), "before\nwhile away\n");
}

#[test]
fn a_new_spec_moves_the_lines_to_its_files_and_removing_the_keys_stops_them() {
    let dir = tempfile::tempdir().unwrap();
    let hub = LogHub::new(dir.path().join(".ten"));
    let (first, second) = (dir.path().join("first.log"), dir.path().join("second.log"));
    let paths = hub
        .attach(&key("web:a"), &files(Some(&first), None))
        .unwrap();
    append(&paths.stdout, b"1\n");
    hub.poll(&key("web:a"));
    hub.set_log_files(&key("web:a"), &files(Some(&second), None));
    append(&paths.stdout, b"2\n");
    hub.poll(&key("web:a"));
    hub.set_log_files(&key("web:a"), &LogFiles::default());
    append(&paths.stdout, b"3\n");
    hub.poll(&key("web:a"));
    assert_eq!((read(&first), read(&second)), ("1\n".into(), "2\n".into()));
    assert!(hub.lock().files.is_empty());
    let texts: Vec<String> = hub
        .query(&LogQuery::default())
        .into_iter()
        .map(|line| line.text)
        .collect();
    assert_eq!(texts, ["1", "2", "3"]);
}

#[test]
fn instances_that_name_one_file_share_its_writer_and_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let hub = LogHub::new(dir.path().join(".ten"));
    let shared = dir.path().join("web.log");
    let mut both = files(Some(&shared), Some(&shared));
    both.rotation = LogRotation {
        max_bytes: 30,
        backups: 50,
    };
    let a = hub.attach(&key("web:a"), &both).unwrap();
    let b = hub.attach(&key("web:b"), &both).unwrap();
    assert_eq!(hub.lock().files[&shared].users, 2);
    for round in 0..20 {
        append(&a.stdout, format!("a {round}\n").as_bytes());
        append(&b.stderr, format!("b {round}\n").as_bytes());
        hub.poll(&key("web:a"));
        hub.poll(&key("web:b"));
    }
    let mut kept: Vec<String> = Vec::new();
    for index in (1..=50).rev() {
        kept.extend(
            read(&crate::runtime::logs::output::rotated(&shared, index))
                .lines()
                .map(str::to_string),
        );
    }
    kept.extend(read(&shared).lines().map(str::to_string));
    let expected: Vec<String> = (0..20)
        .flat_map(|round| [format!("a {round}"), format!("b {round}")])
        .collect();
    assert_eq!(kept, expected);
    hub.detach(&key("web:a"), true);
    assert_eq!(hub.lock().files[&shared].users, 1);
    hub.detach(&key("web:b"), true);
    assert!(hub.lock().files.is_empty());
    // The user's files stay; only ten's capture goes.
    assert!(shared.exists() && !b.dir.exists());
}
