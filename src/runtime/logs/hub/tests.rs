//! The capture end to end: lines as the hub returns and stores them, and each line in
//! `output.log` exactly once across a ten killed at any point of a poll.

use std::fs;
use std::io::Write;
use std::path::Path;

use super::*;
use crate::config::LogFiles;
use crate::runtime::logs::line::{LogQuery, format_line, parse_line};
use crate::runtime::logs::record::read_record;
use crate::runtime::logs::source::{MAX_LINE, open_for_tenant};
use crate::runtime::logs::store::{ROTATE_BYTES, kept_files};

fn key() -> InstanceKey {
    InstanceKey::parse("notes:alice").unwrap()
}

fn append(path: &Path, bytes: &[u8]) {
    open_for_tenant(path).unwrap().write_all(bytes).unwrap();
}

#[test]
fn lines_are_cut_decoded_and_timestamped() {
    let dir = tempfile::tempdir().unwrap();
    let hub = LogHub::new(dir.path().join(".ten"));
    let paths = hub.attach(&key(), &LogFiles::default()).unwrap();
    append(&paths.stdout, b"hello\r\nbad \xff\xfe bytes\npartial");
    append(&paths.stderr, b"oops\n");
    let mut long = vec![b'x'; MAX_LINE + 1000];
    long.push(b'\n');
    append(&paths.stdout, &long);
    hub.poll(&key());
    let texts: Vec<(Stream, String)> = hub
        .query(&LogQuery::default())
        .into_iter()
        .map(|line| (line.stream, line.text))
        .collect();
    assert_eq!(texts[0], (Stream::Stdout, "hello".to_string()));
    assert_eq!(
        texts[1],
        (Stream::Stdout, "bad \u{fffd}\u{fffd} bytes".to_string())
    );
    assert_eq!(texts[2].0, Stream::Stdout);
    assert!(texts[2].1.starts_with("partialxxx"));
    assert!(
        texts[2].1.ends_with(" [line cut: 1007 more bytes]"),
        "{}",
        &texts[2].1[MAX_LINE - 10..]
    );
    assert_eq!(texts[3], (Stream::Stderr, "oops".to_string()));
    let stored = fs::read_to_string(&paths.output).unwrap();
    assert_eq!(stored.lines().count(), 4);
    assert!(stored.lines().next().unwrap().ends_with(" stdout hello"));
}

#[test]
fn queries_filter_and_limit() {
    let dir = tempfile::tempdir().unwrap();
    let hub = LogHub::new(dir.path().join(".ten"));
    let paths = hub.attach(&key(), &LogFiles::default()).unwrap();
    append(&paths.stdout, b"GET /a\nGET /b\nPOST /c\n");
    append(&paths.stderr, b"warning: get\n");
    hub.poll(&key());
    let query = |search: &str, stream, limit| {
        hub.query(&LogQuery {
            instance: Some(key()),
            services: None,
            stream,
            search: Some(search.to_string()),
            limit,
            ..LogQuery::default()
        })
        .into_iter()
        .map(|line| line.text)
        .collect::<Vec<_>>()
    };
    assert_eq!(
        query("get", None, None),
        ["GET /a", "GET /b", "warning: get"]
    );
    assert_eq!(query("get", Some(Stream::Stdout), Some(1)), ["GET /b"]);
}

#[test]
fn output_survives_in_output_log_and_is_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    let hub = LogHub::new(dir.path().join(".ten"));
    let paths = hub.attach(&key(), &LogFiles::default()).unwrap();
    append(&paths.stdout, b"before restart\n");
    hub.poll(&key());
    // The server dies here (no detach); its offsets are on disk.
    drop(hub);
    assert_eq!(
        read_record(&paths.offsets),
        Some(Recorded {
            offsets: [15, 0],
            log_length: Some(fs::metadata(&paths.output).unwrap().len()),
        })
    );
    append(&paths.stdout, b"while away\n");
    let hub = LogHub::new(dir.path().join(".ten"));
    hub.attach(&key(), &LogFiles::default()).unwrap();
    let texts: Vec<String> = hub
        .query(&LogQuery::default())
        .into_iter()
        .map(|l| l.text)
        .collect();
    assert_eq!(texts, ["before restart", "while away"]);
}

#[test]
fn offsets_recorded_by_an_earlier_version_are_resumed_from() {
    let dir = tempfile::tempdir().unwrap();
    let hub = LogHub::new(dir.path().join(".ten"));
    let paths = hub.paths(&key());
    // An earlier ten captured "before" and recorded two numbers, padded to 42 bytes.
    fs::create_dir_all(&paths.dir).unwrap();
    fs::create_dir_all(&paths.log_dir).unwrap();
    append(&paths.stdout, b"before\nwhile away\n");
    let line = LogLine {
        at_unix_ms: 0,
        instance: key(),
        stream: Stream::Stdout,
        text: "before".to_string(),
    };
    fs::write(&paths.output, format!("{}\n", format_line(&line))).unwrap();
    fs::write(&paths.offsets, format!("{:<41}\n", "7 0")).unwrap();
    hub.attach(&key(), &LogFiles::default()).unwrap();
    assert_eq!(stored_texts(&paths), ["before", "while away"]);
    assert_eq!(ring_texts(&hub), ["before", "while away"]);
    assert_eq!(
        read_record(&paths.offsets),
        Some(Recorded {
            offsets: [18, 0],
            log_length: Some(fs::metadata(&paths.output).unwrap().len()),
        })
    );
}

#[test]
fn read_bytes_are_released_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let hub = LogHub::new(dir.path().join(".ten"));
    let paths = hub.attach(&key(), &LogFiles::default()).unwrap();
    let line = vec![b'y'; 1023];
    let mut chunk = Vec::new();
    for _ in 0..4096 {
        chunk.extend_from_slice(&line);
        chunk.push(b'\n');
    }
    append(&paths.stdout, &chunk);
    hub.poll(&key());
    let metadata = fs::metadata(&paths.stdout).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(metadata.len(), 4 * 1024 * 1024, "the size stays");
    assert!(
        metadata.blocks() * 512 < 1024 * 1024,
        "the blocks are freed: {}",
        metadata.blocks()
    );
}

/// The texts of an instance's output.log (and its rotated files), oldest first.
fn stored_texts(paths: &CapturePaths) -> Vec<String> {
    kept_files(&paths.log_dir)
        .iter()
        .flat_map(|file| {
            let text = fs::read_to_string(file).unwrap_or_default();
            text.lines()
                .map(|line| parse_line(&key(), line).unwrap().text)
                .collect::<Vec<_>>()
        })
        .collect()
}

fn ring_texts(hub: &LogHub) -> Vec<String> {
    hub.query(&LogQuery::default())
        .into_iter()
        .map(|line| line.text)
        .collect()
}

/// Polls as a ten killed between appending to output.log and recording the offsets would
/// have: the lines are in output.log (the last of them cut short: the write was cut off
/// too), the offsets file is as before.
fn poll_and_crash_before_the_offsets_write(hub: &LogHub, paths: &CapturePaths) {
    let recorded = fs::read(&paths.offsets).unwrap();
    let before = fs::metadata(&paths.output).map_or(0, |m| m.len());
    hub.poll(&key());
    let after = fs::metadata(&paths.output).unwrap().len();
    assert!(after > before + 3, "the poll appended lines");
    fs::write(&paths.offsets, recorded).unwrap();
    File::options()
        .write(true)
        .open(&paths.output)
        .unwrap()
        .set_len(after - 3)
        .unwrap();
}

#[test]
fn a_crash_between_appending_and_recording_the_offsets_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let hub = LogHub::new(dir.path().join(".ten"));
    let paths = hub.attach(&key(), &LogFiles::default()).unwrap();
    append(&paths.stdout, b"one\n");
    append(&paths.stderr, b"oops\n");
    hub.poll(&key());
    append(&paths.stdout, b"two\nthree\n");
    append(&paths.stderr, b"again\n");
    poll_and_crash_before_the_offsets_write(&hub, &paths);
    drop(hub);
    append(&paths.stdout, b"four\n");
    let hub = LogHub::new(dir.path().join(".ten"));
    hub.attach(&key(), &LogFiles::default()).unwrap();
    // (A poll takes stdout's lines, then stderr's.)
    let expected = ["one", "oops", "two", "three", "four", "again"];
    assert_eq!(stored_texts(&paths), expected);
    assert_eq!(ring_texts(&hub), expected);
}

#[test]
fn a_crash_around_a_rotation_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let hub = LogHub::new(dir.path().join(".ten"));
    let paths = hub.attach(&key(), &LogFiles::default()).unwrap();
    let mut expected: Vec<String> = (0..10_300)
        .map(|index| format!("{index:05} {}", "r".repeat(994)))
        .collect();
    let mut raw = expected.join("\n");
    raw.push('\n');
    append(&paths.stdout, raw.as_bytes());
    hub.poll(&key());
    // Rotated before the append that would have taken output.log past its size.
    let kept = kept_files(&paths.log_dir);
    assert_eq!(kept.len(), 2, "{kept:?}");
    let rotated_length = fs::metadata(&kept[0]).unwrap().len();
    assert!(rotated_length <= ROTATE_BYTES);
    assert!(rotated_length > ROTATE_BYTES - 2 * POLL_BYTES);
    // Killed after output.log became output.log.<N>, before the record that follows: the
    // record still has the length of the file now rotated, and the offsets of its lines; the
    // lines after them are not in any file yet.
    let in_rotated = fs::read_to_string(&kept[0]).unwrap().lines().count() as u64;
    fs::remove_file(&paths.output).unwrap();
    let stderr_offset = read_record(&paths.offsets).unwrap().offsets[1];
    fs::write(
        &paths.offsets,
        encode_record(Recorded {
            offsets: [in_rotated * 1001, stderr_offset],
            log_length: Some(rotated_length),
        }),
    )
    .unwrap();
    drop(hub);
    append(&paths.stdout, b"after rotation\n");
    let hub = LogHub::new(dir.path().join(".ten"));
    hub.attach(&key(), &LogFiles::default()).unwrap();
    expected.push("after rotation".to_string());
    assert_eq!(stored_texts(&paths), expected);
    // Killed after the first append to the new output.log, before its record.
    append(&paths.stdout, b"more\n");
    poll_and_crash_before_the_offsets_write(&hub, &paths);
    drop(hub);
    append(&paths.stdout, b"last\n");
    let hub = LogHub::new(dir.path().join(".ten"));
    hub.attach(&key(), &LogFiles::default()).unwrap();
    expected.extend(["more".to_string(), "last".to_string()]);
    assert_eq!(stored_texts(&paths), expected);
    // The ring holds the lines read since the last attach: the end of what is stored.
    let ring = ring_texts(&hub);
    assert!(ring.len() >= 3);
    assert_eq!(ring, expected[expected.len() - ring.len()..]);
}

#[test]
fn an_unfinished_line_is_read_again_whole_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let hub = LogHub::new(dir.path().join(".ten"));
    let paths = hub.attach(&key(), &LogFiles::default()).unwrap();
    append(&paths.stdout, b"one\ntw");
    append(&paths.stderr, b"oops\n");
    hub.poll(&key());
    assert_eq!(ring_texts(&hub), ["one", "oops"]);
    // Killed: the offsets on disk are all that is left of this ten.
    drop(hub);
    append(&paths.stdout, b"o\n");
    let hub = LogHub::new(dir.path().join(".ten"));
    hub.attach(&key(), &LogFiles::default()).unwrap();
    assert_eq!(stored_texts(&paths), ["one", "oops", "two"]);
    assert_eq!(ring_texts(&hub), ["one", "oops", "two"]);
}

#[test]
fn a_long_unfinished_line_is_released_from_disk_and_still_whole_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let hub = LogHub::new(dir.path().join(".ten"));
    let paths = hub.attach(&key(), &LogFiles::default()).unwrap();
    let length = 3 * 1024 * 1024;
    append(&paths.stdout, &vec![b'x'; length]);
    hub.poll(&key());
    use std::os::unix::fs::MetadataExt;
    let blocks = fs::metadata(&paths.stdout).unwrap().blocks();
    assert!(
        blocks * 512 < 2 * 1024 * 1024,
        "what is cut off the line is freed: {blocks} blocks"
    );
    drop(hub);
    append(&paths.stdout, b"\n");
    let hub = LogHub::new(dir.path().join(".ten"));
    hub.attach(&key(), &LogFiles::default()).unwrap();
    // (how many x, what follows them) of each line
    let summary = |texts: Vec<String>| -> Vec<(usize, String)> {
        texts
            .iter()
            .map(|text| {
                let rest = text.trim_start_matches('x');
                (text.len() - rest.len(), rest.to_string())
            })
            .collect()
    };
    let cut = (
        MAX_LINE,
        format!(" [line cut: {} more bytes]", length - MAX_LINE),
    );
    assert_eq!(summary(stored_texts(&paths)), std::slice::from_ref(&cut));
    assert_eq!(summary(ring_texts(&hub)), [cut]);
}

#[test]
fn an_event_of_one_stream_reads_that_stream_only() {
    let dir = tempfile::tempdir().unwrap();
    let hub = LogHub::new(dir.path().join(".ten"));
    let paths = hub.attach(&key(), &LogFiles::default()).unwrap();
    append(&paths.stdout, b"out\n");
    append(&paths.stderr, b"err\n");
    hub.poll_stream(&key(), 0);
    assert_eq!(ring_texts(&hub), ["out"]);
    // The write to stderr has its own event.
    hub.poll_stream(&key(), 1);
    assert_eq!(ring_texts(&hub), ["out", "err"]);
    // Written after a poll: read by the next.
    append(&paths.stdout, b"more\n");
    hub.poll_stream(&key(), 0);
    assert_eq!(ring_texts(&hub), ["out", "err", "more"]);
    assert_eq!(
        stored_texts(&paths),
        ["out", "err", "more"].map(String::from)
    );
}

/// The lines of `key` in the ring.
fn texts_of(hub: &LogHub, key: &InstanceKey) -> Vec<String> {
    hub.query(&LogQuery {
        instance: Some(key.clone()),
        ..LogQuery::default()
    })
    .into_iter()
    .map(|line| line.text)
    .collect()
}

/// Waits (up to 10 s) until the ring holds `expected` of `key`.
fn wait_for(hub: &LogHub, key: &InstanceKey, expected: &[&str]) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while texts_of(hub, key) != expected {
        assert!(
            std::time::Instant::now() < deadline,
            "{key} has {:?} in the ring, not {expected:?}",
            texts_of(hub, key)
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

#[test]
fn the_watch_reads_the_writes_of_instances_attached_before_and_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let hub = LogHub::new(dir.path().join(".ten"));
    let before = InstanceKey::parse("notes:before").unwrap();
    let before_paths = hub.attach(&before, &LogFiles::default()).unwrap();
    append(&before_paths.stdout, b"written before the watch\n");
    let watch = hub.watch().unwrap();
    let after = hub.attach(&key(), &LogFiles::default()).unwrap();
    append(&before_paths.stderr, b"err of before\n");
    wait_for(
        &hub,
        &before,
        &["written before the watch", "err of before"],
    );
    append(&after.stdout, b"out of after\n");
    wait_for(&hub, &key(), &["out of after"]);
    // Detached: no longer read (nor watched); another attached: read.
    hub.detach(&before, false);
    append(&before_paths.stdout, b"after the detach\n");
    append(&after.stderr, b"err of after\n");
    wait_for(&hub, &key(), &["out of after", "err of after"]);
    assert_eq!(texts_of(&hub, &before), Vec::<String>::new());
    drop(watch);
    // No longer watching: a write waits for a poll.
    append(&after.stdout, b"unwatched\n");
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(texts_of(&hub, &key()), ["out of after", "err of after"]);
    hub.poll(&key());
    assert_eq!(
        texts_of(&hub, &key()),
        ["out of after", "err of after", "unwatched"]
    );
}

#[test]
fn lines_written_often_are_read_together() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Arc::new(LogHub::new(dir.path().join(".ten")));
    let paths = hub.attach(&key(), &LogFiles::default()).unwrap();
    let watch = hub.watch().unwrap();
    // 50 lines 10 ms apart: each read once a gap (50 ms), not in a round of its own. A
    // line's time is when it was read, one for all read in the same round.
    let expected: Vec<String> = (0..50).map(|line| format!("line {line}")).collect();
    for text in &expected {
        append(&paths.stdout, format!("{text}\n").as_bytes());
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
    wait_for(&hub, &key(), &expected);
    let rounds: std::collections::BTreeSet<u64> = hub
        .query(&LogQuery::default())
        .iter()
        .map(|line| line.at_unix_ms)
        .collect();
    assert!(
        rounds.len() <= 20,
        "50 lines written over 500 ms were read in {} rounds: {rounds:?}",
        rounds.len()
    );
    drop(watch);
}

#[test]
fn a_tenant_writing_without_pause_holds_up_neither_the_others_nor_the_end_of_the_watch() {
    let dir = tempfile::tempdir().unwrap();
    let hub = LogHub::new(dir.path().join(".ten"));
    let flooding = InstanceKey::parse("notes:flood").unwrap();
    let flood_paths = hub.attach(&flooding, &LogFiles::default()).unwrap();
    let watch = hub.watch().unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = Arc::clone(&stop);
        let path = flood_paths.stdout.clone();
        std::thread::spawn(move || {
            let mut file = open_for_tenant(&path).unwrap();
            let line = [b"x".repeat(200), b"\n".to_vec()].concat().repeat(500);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                file.write_all(&line).unwrap();
            }
        })
    };
    // Well into the flood (more than two batches read).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while fs::metadata(&flood_paths.output).map_or(0, |meta| meta.len()) < 2 * POLL_BYTES {
        assert!(
            std::time::Instant::now() < deadline,
            "the flood is not read"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let quiet = hub.attach(&key(), &LogFiles::default()).unwrap();
    append(&quiet.stdout, b"read despite the flood\n");
    wait_for(&hub, &key(), &["read despite the flood"]);
    // The watch ends while the flood goes on.
    let (ended, dropped) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop(watch);
        let _ = ended.send(());
    });
    let outcome = dropped.recv_timeout(std::time::Duration::from_secs(10));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    assert!(outcome.is_ok(), "the watch did not end during the flood");
}

#[test]
fn an_instance_whose_directory_was_removed_is_watched_again_when_attached_again() {
    let dir = tempfile::tempdir().unwrap();
    let hub = LogHub::new(dir.path().join(".ten"));
    let _watch = hub.watch().unwrap();
    let paths = hub.attach(&key(), &LogFiles::default()).unwrap();
    assert!(hub.attached(&key()));
    fs::remove_dir_all(&paths.dir).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while hub.attached(&key()) {
        assert!(
            std::time::Instant::now() < deadline,
            "the lost watch was not noticed"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // Its next start attaches it again: watched, and read from then on.
    hub.attach(&key(), &LogFiles::default()).unwrap();
    assert!(hub.attached(&key()));
    append(&paths.stdout, b"written to the new directory\n");
    wait_for(&hub, &key(), &["written to the new directory"]);
}
