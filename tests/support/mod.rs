//! Helpers shared by integration tests and benchmarks: multi-file fixtures in a txtar-like
//! format; `http`, the one HTTP client; `server`, a real `ten serve` to test against;
//! `pebble`, a real ACME server, and `dns`, a client of its DNS server.
//!
//! A fixture is text: lines before the first header describe the case; each
//! `-- relative/path --` header starts a file whose content runs to the next header.

#![allow(dead_code)]

pub(crate) mod dns;
pub(crate) mod http;
pub(crate) mod pebble;
pub(crate) mod server;

use std::fs;
use std::path::{Path, PathBuf};

/// A parsed fixture: its description and files in order.
pub(crate) struct Fixture {
    pub description: String,
    pub files: Vec<(String, String)>,
}

pub(crate) fn parse_fixture(text: &str) -> Fixture {
    let mut description = String::new();
    let mut files: Vec<(String, String)> = Vec::new();
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_end();
        if let Some(name) = trimmed
            .strip_prefix("-- ")
            .and_then(|rest| rest.strip_suffix(" --"))
        {
            files.push((name.to_string(), String::new()));
        } else if let Some((_, content)) = files.last_mut() {
            content.push_str(line);
        } else {
            description.push_str(line);
        }
    }
    Fixture {
        description: description.trim().to_string(),
        files,
    }
}

impl Fixture {
    pub(crate) fn file(&self, name: &str) -> Option<&str> {
        self.files
            .iter()
            .find(|(path, _)| path == name)
            .map(|(_, content)| content.as_str())
    }

    /// Writes the files whose path starts with `prefix` (prefix removed) under `root`.
    pub(crate) fn write_under(&self, root: &Path, prefix: &str) {
        for (path, content) in &self.files {
            if let Some(relative) = path.strip_prefix(prefix) {
                write_file(&root.join(relative), content);
            }
        }
    }
}

pub(crate) fn write_file(path: &Path, content: &str) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(path, content).unwrap();
}

/// The fixture files of `dir` (relative to the crate root), sorted.
pub(crate) fn fixtures(dir: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut paths: Vec<PathBuf> = fs::read_dir(&root)
        .unwrap_or_else(|error| panic!("{}: {error}", root.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "txt"))
        .collect();
    paths.sort();
    paths
}

use ten::config::RunState;
use ten::desired::DesiredState;
use ten::observed::{ObservedInstance, ObservedState, Phase};

/// The observed state of a server that applied `desired` and has every instance in its
/// declared state: running ones with a (fake) pid and port.
pub(crate) fn observed_as_applied(desired: &DesiredState) -> ObservedState {
    let mut observed = ObservedState {
        generation: 1,
        settings: Some(desired.settings_fields()),
        ..ObservedState::default()
    };
    for (index, (key, spec)) in desired.instances.iter().enumerate() {
        let running = spec.state == RunState::Running;
        let phase = if running {
            Phase::Running
        } else {
            Phase::Stopped
        };
        let mut instance = ObservedInstance::new(phase, spec.shared_fields());
        instance.declared_in = Some(spec.declared.describe());
        if running {
            instance.pid = Some(100_000 + index as u32);
            instance.port = Some(30_000 + index as u16);
        }
        observed.instances.insert(key.clone(), instance);
    }
    observed
}
