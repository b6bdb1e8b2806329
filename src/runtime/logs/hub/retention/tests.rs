//! Retention through the hub: the sweep by age (an attached instance's `output.log` rotated
//! first, a detached one's removed).

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use super::*;
use crate::config::LogFiles;
use crate::names::InstanceKey;
use crate::runtime::logs::record::read_record;
use crate::runtime::logs::source::open_for_tenant;
use crate::runtime::logs::store::kept_files;

fn key(text: &str) -> InstanceKey {
    InstanceKey::parse(text).unwrap()
}

fn append(path: &Path, bytes: &[u8]) {
    open_for_tenant(path).unwrap().write_all(bytes).unwrap();
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
