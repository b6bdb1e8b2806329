//! Searches and retention through the hub: lines found on disk after the hub that wrote them
//! is gone, of one instance or of a service's, and the sweep by age (an attached instance's
//! `output.log` rotated first, a detached one's removed).

use std::io::Write;
use std::time::Duration;

use super::*;
use crate::names::ServiceName;
use crate::runtime::logs::source::open_for_tenant;
use crate::runtime::logs::store::kept_files;

fn key(text: &str) -> InstanceKey {
    InstanceKey::parse(text).unwrap()
}

fn append(path: &Path, bytes: &[u8]) {
    open_for_tenant(path).unwrap().write_all(bytes).unwrap();
}

fn texts(lines: &[LogLine]) -> Vec<String> {
    lines.iter().map(|line| line.text.clone()).collect()
}

#[test]
fn a_search_finds_lines_on_disk_of_instances_no_longer_attached() {
    let dir = tempfile::tempdir().unwrap();
    let hub = LogHub::new(dir.path().join(".ten"));
    hub.set_retention(LogRetention {
        max_bytes: 128 * 1024,
        max_age: None,
    });
    let alice = hub
        .attach(&key("notes:alice"), &LogFiles::default())
        .unwrap();
    let bob = hub.attach(&key("notes:bob"), &LogFiles::default()).unwrap();
    let other = hub.attach(&key("queue:x"), &LogFiles::default()).unwrap();
    append(&alice.stdout, b"the needle of alice\n");
    hub.poll(&key("notes:alice"));
    // A line's time is when it is read: bob's comes in a later millisecond than alice's.
    std::thread::sleep(Duration::from_millis(2));
    // Past the ring, and over several rotations (at 32 KiB).
    let filler: String = (0..RING_LINES + 100)
        .map(|index| format!("filler {index}\n"))
        .collect();
    append(&alice.stdout, filler.as_bytes());
    append(&bob.stderr, b"bob's NEEDLE\n");
    append(&other.stdout, b"another needle\n");
    hub.poll_all();
    let kept = kept_files(&alice.log_dir);
    assert!(
        kept.len() > 1,
        "rotated: {kept:?} {:?}",
        fs::read_dir(&alice.log_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect::<Vec<_>>()
    );
    drop(hub);

    let hub = LogHub::new(dir.path().join(".ten"));
    let search = |instance: Option<&str>, services: Option<&[&str]>| {
        hub.search(&LogQuery {
            instance: instance.map(key),
            services: services.map(|names| {
                names
                    .iter()
                    .map(|name| ServiceName::new(name).unwrap())
                    .collect()
            }),
            search: Some("needle".into()),
            ..LogQuery::default()
        })
    };
    assert_eq!(
        texts(&search(Some("notes:alice"), None)),
        ["the needle of alice"]
    );
    let of_notes = search(None, Some(&["notes"]));
    assert_eq!(texts(&of_notes), ["the needle of alice", "bob's NEEDLE"]);
    assert_eq!(of_notes[1].instance, key("notes:bob"));
    assert_eq!(of_notes[1].stream, Stream::Stderr);
    assert_eq!(search(None, None).len(), 3);
    let last = hub.search(&LogQuery {
        instance: Some(key("notes:alice")),
        limit: Some(3),
        since_ms: Some(0),
        ..LogQuery::default()
    });
    assert_eq!(
        texts(&last),
        (RING_LINES - 3 + 100..RING_LINES + 100)
            .map(|index| format!("filler {index}"))
            .collect::<Vec<_>>()
    );
}

#[test]
fn the_sweep_removes_output_past_the_age_attached_or_not() {
    let dir = tempfile::tempdir().unwrap();
    let hub = LogHub::new(dir.path().join(".ten"));
    let attached = hub
        .attach(&key("notes:alice"), &LogFiles::default())
        .unwrap();
    let detached = hub.attach(&key("notes:bob"), &LogFiles::default()).unwrap();
    append(&attached.stdout, b"old line\n");
    append(&detached.stdout, b"old line\n");
    hub.poll_all();
    hub.detach(&key("notes:bob"), false);
    let old = std::time::SystemTime::now() - Duration::from_secs(3600);
    for paths in [&attached, &detached] {
        File::options()
            .write(true)
            .open(&paths.output)
            .unwrap()
            .set_modified(old)
            .unwrap();
    }
    hub.set_retention(LogRetention {
        max_bytes: 1 << 30,
        max_age: Some(Duration::from_secs(7200)),
    });
    hub.sweep();
    assert_eq!(
        kept_files(&attached.log_dir).len(),
        1,
        "younger than the age"
    );
    assert_eq!(kept_files(&detached.log_dir).len(), 1);
    hub.set_retention(LogRetention {
        max_bytes: 1 << 30,
        max_age: Some(Duration::from_secs(1800)),
    });
    hub.sweep();
    assert!(kept_files(&attached.log_dir).is_empty());
    assert!(kept_files(&detached.log_dir).is_empty());
    // The attached instance captures on, into a new output.log, each line once.
    append(&attached.stdout, b"new line\n");
    hub.poll(&key("notes:alice"));
    let stored = fs::read_to_string(&attached.output).unwrap();
    assert_eq!(stored.lines().count(), 1);
    assert!(stored.ends_with(" stdout new line\n"));
    assert_eq!(
        read_record(&attached.offsets).unwrap().log_length,
        Some(stored.len() as u64)
    );
}
