//! The observed-state record: `{data_dir}/state.json`, written by the server after every
//! change of its process table and read by `ten diff --offline` and by a restarted server.
//!
//! Format (version 1), JSON:
//! `{"format_version": 1, "ten_version": "0.1.0", "written_at_unix": 1764000000,
//!   "generation": 7, "boot_id": "...", "settings": {...fields...} | null,
//!   "instances": {"notes:alice": {"phase": "running", "pid": 4242, "pid_start_time": 123,
//!   "port": 30001, "started_at_unix": ..., "spec": {...fields...}, "declared_in": "...",
//!   "health": "healthy", "restarts": 1, "restart_times_unix": [...], "last_exit": null,
//!   "note": null}}}`
//!
//! Written atomically: a temporary file in the same directory, fsynced, renamed over the old
//! one, then the directory fsynced. Readers ignore fields they do not know (a newer ten of
//! the same format version may add some); a newer format version is refused with a message.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use super::model::{ObservedInstance, ObservedState};
use crate::desired::FieldMap;
use crate::names::InstanceKey;

pub(crate) const RECORD_FILE: &str = "state.json";
pub(crate) const FORMAT_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path} is not a valid state record: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error(
        "{path} was written by a newer ten (record format {found}; this ten reads format {FORMAT_VERSION}); upgrade ten"
    )]
    NewerFormat { path: PathBuf, found: u32 },
}

/// A record as read back.
#[derive(Debug, Clone)]
pub struct Record {
    pub observed: ObservedState,
    pub ten_version: String,
    pub written_at_unix: u64,
}

#[derive(Serialize)]
struct RecordOut<'a> {
    format_version: u32,
    ten_version: &'a str,
    written_at_unix: u64,
    generation: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    boot_id: &'a Option<String>,
    settings: &'a Option<FieldMap>,
    instances: &'a BTreeMap<InstanceKey, ObservedInstance>,
}

#[derive(Deserialize)]
struct RecordIn {
    format_version: u32,
    #[serde(default)]
    ten_version: String,
    #[serde(default)]
    written_at_unix: u64,
    generation: u64,
    #[serde(default)]
    boot_id: Option<String>,
    #[serde(default)]
    settings: Option<FieldMap>,
    instances: BTreeMap<InstanceKey, ObservedInstance>,
}

#[derive(Deserialize)]
struct VersionOnly {
    format_version: u32,
}

pub fn record_path(data_dir: &Path) -> PathBuf {
    data_dir.join(RECORD_FILE)
}

/// Reads the record in `data_dir`; `Ok(None)` when there is none yet.
pub fn read_record(data_dir: &Path) -> Result<Option<Record>, RecordError> {
    let path = record_path(data_dir);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(RecordError::Io { path, source }),
    };
    parse_record(&path, &bytes).map(Some)
}

fn parse_record(path: &Path, bytes: &[u8]) -> Result<Record, RecordError> {
    if let Ok(probe) = serde_json::from_slice::<VersionOnly>(bytes)
        && probe.format_version > FORMAT_VERSION
    {
        return Err(RecordError::NewerFormat {
            path: path.to_path_buf(),
            found: probe.format_version,
        });
    }
    let record: RecordIn = serde_json::from_slice(bytes).map_err(|error| RecordError::Corrupt {
        path: path.to_path_buf(),
        message: error.to_string(),
    })?;
    if record.format_version != FORMAT_VERSION {
        return Err(RecordError::Corrupt {
            path: path.to_path_buf(),
            message: format!("unknown format version {}", record.format_version),
        });
    }
    Ok(Record {
        observed: ObservedState {
            generation: record.generation,
            settings: record.settings,
            instances: record.instances,
            boot_id: record.boot_id,
        },
        ten_version: record.ten_version,
        written_at_unix: record.written_at_unix,
    })
}

/// Writes `observed` to `{data_dir}/state.json` atomically (mode 0600), creating `data_dir`.
pub fn write_record(data_dir: &Path, observed: &ObservedState) -> io::Result<()> {
    fs::create_dir_all(data_dir)?;
    let record = RecordOut {
        format_version: FORMAT_VERSION,
        ten_version: env!("CARGO_PKG_VERSION"),
        written_at_unix: unix_now(),
        generation: observed.generation,
        boot_id: &observed.boot_id,
        settings: &observed.settings,
        instances: &observed.instances,
    };
    crate::files::write_atomically_with(&record_path(data_dir), 0o600, |writer| {
        serde_json::to_writer(writer, &record).map_err(io::Error::other)
    })
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::desired::FieldValue;
    use crate::observed::model::Phase;

    fn sample() -> ObservedState {
        let mut spec = FieldMap::new();
        spec.insert("command", FieldValue::Text("python3 app.py".into()));
        let mut instance = ObservedInstance::new(Phase::Running, spec);
        instance.pid = Some(4242);
        instance.port = Some(30001);
        let mut state = ObservedState {
            generation: 7,
            boot_id: Some("5a1e4f0e-0000-4000-8000-000000000000".into()),
            ..ObservedState::default()
        };
        state
            .instances
            .insert(InstanceKey::parse("notes:alice").unwrap(), instance);
        state
    }

    #[test]
    fn round_trips_atomically_with_private_mode() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        assert!(read_record(&data_dir).unwrap().is_none());
        write_record(&data_dir, &sample()).unwrap();
        let record = read_record(&data_dir).unwrap().unwrap();
        assert_eq!(record.observed, sample());
        assert_eq!(record.ten_version, env!("CARGO_PKG_VERSION"));
        let mode = fs::metadata(record_path(&data_dir))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let leftovers: Vec<_> = fs::read_dir(&data_dir).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file is left behind");
    }

    #[test]
    fn corrupt_and_newer_records_are_refused_with_reasons() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            record_path(dir.path()),
            "{\"format_version\": 1, \"generation\": ",
        )
        .unwrap();
        let error = read_record(dir.path()).unwrap_err();
        assert!(matches!(error, RecordError::Corrupt { .. }), "{error}");
        fs::write(
            record_path(dir.path()),
            "{\"format_version\": 9, \"anything\": []}",
        )
        .unwrap();
        let error = read_record(dir.path()).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("written by a newer ten (record format 9"),
            "{error}"
        );
    }
}
