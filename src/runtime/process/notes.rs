//! The notes of started processes in the process table, for a restarted ten to adopt them:
//! an entry written before the process can become the tenant, removed for a failed start.
//! Imports only `error` and [`SpawnEnv`] of `process`; must not import what imports
//! `process` (`os`, `exec_probe`).

use std::sync::Arc;

use crate::config::Isolation;

use super::super::launch::Launch;
use super::super::proc::{boot_id, process_start_time};
use super::super::table::{ProcessEntry, write_entry};
use super::SpawnEnv;
use super::error::SpawnError;

/// Removes the entry of process `pid`, noted for a start that failed.
pub(super) fn unnote(host: &SpawnEnv, launch: &Launch, pid: u32) {
    if let Some(table) = &host.table {
        super::super::table::remove_entry(table, &launch.key, pid);
    }
}

/// Notes process `pid` in the process table, for a restarted ten to adopt it: before it can
/// become the tenant (a spare before its request, a child of the spawner before its exec).
/// A process already gone is not noted. Returns the start time it read, if it did.
pub(super) fn note_in_table(
    launch: &Launch,
    host: &SpawnEnv,
    pid: u32,
    name: &str,
) -> Result<Option<u64>, SpawnError> {
    let Some(table) = &host.table else {
        return Ok(None);
    };
    let Some(start_time) = process_start_time(pid) else {
        return Ok(None);
    };
    let entry = ProcessEntry {
        instance: launch.key.clone(),
        pid,
        start_time,
        boot_id: boot_id().to_string(),
        port: launch.port,
        started_at_unix: crate::observed::record::unix_now(),
        spec: Arc::clone(&launch.spec),
        name: Some(name.to_string()),
        sandboxed: launch.isolation == Isolation::Sandbox,
    };
    let written = write_entry(table, &entry);
    super::super::durable::report(super::super::durable::Kind::ProcessTable, &written);
    written
        .map(|()| Some(start_time))
        .map_err(|source| SpawnError::Table {
            dir: table.clone(),
            source,
        })
}
