//! The on-disk table of live tenant processes, so a ten started after this one died (or was
//! upgraded) finds them: one small file per process,
//! `{data_dir}/.ten/processes/<service>.<id>.<pid>.json`, written right after the spawn and
//! removed once its exit was seen.
//!
//! A file per process (not one table file): writing it costs one small write and a rename,
//! so it is done for every spawn at once, with no window in which a crash of ten leaves a
//! process nobody knows about. Not fsynced: the processes it describes do not survive the
//! machine either (the boot id says which boot wrote it).
//!
//! An entry is only a claim: the process is taken for the tenant only when its pid, start
//! time and boot id all match (`runtime::proc`). Nothing here signals anything.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::desired::FieldMap;
use crate::names::InstanceKey;

/// One tenant process as its spawner noted it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessEntry {
    pub instance: InstanceKey,
    pub pid: u32,
    /// Clock ticks since boot (/proc/PID/stat field 22).
    pub start_time: u64,
    pub boot_id: String,
    pub port: u16,
    pub started_at_unix: u64,
    /// The spec fields it was started with.
    pub spec: Arc<FieldMap>,
    /// Names its cgroup and sandbox container (none: started without a cgroup).
    #[serde(default)]
    pub name: Option<String>,
    /// Runs under runsc (its container is deleted after it ends).
    #[serde(default)]
    pub sandboxed: bool,
}

fn entry_path(dir: &Path, instance: &InstanceKey, pid: u32) -> PathBuf {
    dir.join(format!("{}.{}.{pid}.json", instance.service, instance.id))
}

/// Notes `entry` in the table in `dir` (atomically, not fsynced); `dir` is made if missing
/// (looked for only when the write finds it missing: a burst of starts writes many entries).
pub fn write_entry(dir: &Path, entry: &ProcessEntry) -> io::Result<()> {
    let path = entry_path(dir, &entry.instance, entry.pid);
    let bytes = serde_json::to_vec(entry).map_err(io::Error::other)?;
    match crate::files::write_atomically_for_this_boot(&path, &bytes, 0o644) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(dir)?;
            crate::files::write_atomically_for_this_boot(&path, &bytes, 0o644)
        }
        written => written,
    }
}

/// Removes the entry of `instance`'s process `pid`; a missing one is fine.
pub fn remove_entry(dir: &Path, instance: &InstanceKey, pid: u32) {
    match fs::remove_file(entry_path(dir, instance, pid)) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => tracing::warn!(%instance, pid, %error, "cannot remove a process table entry"),
    }
}

/// Every readable entry in `dir`, and the names of files that are not entries (left alone,
/// reported).
pub fn scan(dir: &Path) -> (Vec<ProcessEntry>, Vec<String>) {
    let mut entries = Vec::new();
    let mut problems = Vec::new();
    let Ok(listing) = fs::read_dir(dir) else {
        return (entries, problems);
    };
    for file in listing.flatten() {
        let path = file.path();
        if path.extension().is_none_or(|extension| extension != "json") {
            if path.extension().is_some_and(|extension| extension == "tmp") {
                let _ = fs::remove_file(&path);
            }
            continue;
        }
        match fs::read(&path)
            .map_err(|error| error.to_string())
            .and_then(|bytes| {
                serde_json::from_slice::<ProcessEntry>(&bytes).map_err(|error| error.to_string())
            }) {
            Ok(entry) => entries.push(entry),
            Err(error) => problems.push(format!("{}: {error}", path.display())),
        }
    }
    entries.sort_by_key(|entry| (entry.instance.clone(), entry.start_time));
    (entries, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(instance: &str, pid: u32) -> ProcessEntry {
        ProcessEntry {
            instance: InstanceKey::parse(instance).unwrap(),
            pid,
            start_time: 77,
            boot_id: "boot".into(),
            port: 30001,
            started_at_unix: 1_764_000_000,
            spec: Arc::new(FieldMap::new()),
            name: Some(format!("{instance}.x").replace(':', ".")),
            sandboxed: false,
        }
    }

    #[test]
    fn entries_are_written_scanned_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let table = dir.path().join("processes");
        write_entry(&table, &entry("notes:alice", 10)).unwrap();
        write_entry(&table, &entry("notes:bob", 11)).unwrap();
        fs::write(table.join("junk.json"), "not json").unwrap();
        let (entries, problems) = scan(&table);
        assert_eq!(entries, [entry("notes:alice", 10), entry("notes:bob", 11)]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("junk.json"), "{problems:?}");
        remove_entry(&table, &entries[0].instance, 10);
        remove_entry(&table, &entries[0].instance, 10);
        assert_eq!(scan(&table).0, [entry("notes:bob", 11)]);
    }

    #[test]
    fn a_missing_table_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(scan(&dir.path().join("none")), (Vec::new(), Vec::new()));
    }
}
