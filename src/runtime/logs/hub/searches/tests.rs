//! Searches through the hub: lines found on disk after the hub that wrote them is gone, of
//! one instance or of a service's.

use std::io::Write;
use std::time::Duration;

use super::*;
use crate::config::{LogFiles, LogRetention};
use crate::names::ServiceName;
use crate::runtime::logs::hub::RING_LINES;
use crate::runtime::logs::line::Stream;
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
