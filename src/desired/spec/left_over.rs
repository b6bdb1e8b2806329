//! The spec of a process that runs but is no longer declared, read back from the fields it
//! was started with: enough to check and stop it. Pure: must not import tokio, nix, hyper or
//! notify.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::config::checks::CheckTiming;
use crate::config::{
    Isolation, Listen, LogFiles, LogRotation, RestartPolicy, RunState, StartMode, StopSignal,
    Template,
};
use crate::names::InstanceKey;

use super::super::fields::{FieldMap, FieldValue};
use super::{Common, Declaration, InstanceSpec, instance_data_dir, text_path};

impl InstanceSpec {
    /// A spec for supervising a process that runs but is no longer declared (a ten started
    /// after its file was removed): what is needed to check and stop it, read back from the
    /// `fields` it was started with. It is never started again (`restart = "never"`, no
    /// traffic); the plan destroys it.
    pub fn left_over(
        key: InstanceKey,
        fields: Arc<FieldMap>,
        config_dir: &Path,
        data_dir: &Path,
    ) -> InstanceSpec {
        let text = |name: &str| fields.get(name).and_then(FieldValue::as_text);
        let int = |name: &str| fields.get(name).and_then(FieldValue::as_int);
        let seconds = |name: &str, default: u64| match fields.get(name) {
            Some(FieldValue::Int(seconds)) => Duration::from_secs(*seconds),
            Some(FieldValue::Text(text)) => {
                humantime::parse_duration(text).unwrap_or(Duration::from_secs(default))
            }
            _ => Duration::from_secs(default),
        };
        let argv = text("command")
            .and_then(|command| shell_words::split(command).ok())
            .unwrap_or_default()
            .iter()
            .map(|word| Template::literal(word))
            .collect();
        let common = Common {
            argv,
            workdir: Template::literal(text("workdir").unwrap_or("/")),
            config_dir: config_dir.to_path_buf(),
            env: BTreeMap::new(),
            listen: text("listen")
                .and_then(Listen::from_keyword)
                .unwrap_or(Listen::Port),
            health: text("health").map(str::to_string),
            check: None,
            timing: CheckTiming::default(),
            isolation: text("isolation")
                .and_then(Isolation::from_keyword)
                .unwrap_or(Isolation::Process),
            startup_timeout: seconds("startup_timeout", 10),
            request_timeout: seconds("request_timeout", 30),
            stop_signal: text("stop_signal")
                .and_then(StopSignal::parse)
                .unwrap_or(StopSignal::Term),
            stop_timeout: seconds("stop_timeout", 10),
            restart: RestartPolicy::Never,
            storage_persist: fields.get("storage_persist") != Some(&FieldValue::Bool(false)),
            pids_limit: None,
            memory_limit_mb: None,
            cpu_shares: None,
            storage_quota_mb: None,
            user: None,
            // It is stopped soon; its last lines still go where they went.
            log_files: LogFiles {
                stdout: text("stdout_log").map(PathBuf::from),
                stderr: text("stderr_log").map(PathBuf::from),
                rotation: LogRotation {
                    max_bytes: int("log_max_bytes").unwrap_or(crate::config::DEFAULT_LOG_MAX_BYTES),
                    backups: int("log_backups")
                        .map_or(crate::config::DEFAULT_LOG_BACKUPS, |n| n as u32),
                },
            },
            stop_order: fields
                .get("stop_order")
                .and_then(|value| match value {
                    FieldValue::Int(order) => i32::try_from(*order).ok(),
                    FieldValue::Negative(order) => i32::try_from(*order).ok(),
                    _ => None,
                })
                .unwrap_or(0),
        };
        // Where it was started, as recorded; a record without them (none is written so)
        // gets the data directory of its key and no socket.
        let fields = if text("data_dir").is_some() && text("socket").is_some() {
            fields
        } else {
            let mut completed = (*fields).clone();
            if text("data_dir").is_none() {
                let data_dir = instance_data_dir(data_dir, &key);
                completed.insert("data_dir", text_path(&data_dir));
            }
            if text("socket").is_none() {
                completed.insert("socket", FieldValue::Text(String::new()));
            }
            Arc::new(completed)
        };
        InstanceSpec {
            declared: Declaration::default(),
            state: RunState::Running,
            idle_timeout: Duration::ZERO,
            start: StartMode::Eager,
            weight: 0,
            common: Arc::new(common),
            key,
            fields,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_left_over_spec_keeps_where_it_was_started_and_completes_an_old_record() {
        let key: InstanceKey = "notes:alice".parse().unwrap();
        let mut recorded = FieldMap::new();
        recorded.insert("command", FieldValue::Text("app".into()));
        recorded.insert("data_dir", FieldValue::Text("/old/data/notes/alice".into()));
        recorded.insert(
            "socket",
            FieldValue::Text("/old/run/notes-alice.sock".into()),
        );
        let spec = InstanceSpec::left_over(
            key.clone(),
            Arc::new(recorded),
            Path::new("/srv"),
            Path::new("/srv/data"),
        );
        assert_eq!(spec.data_dir(), Path::new("/old/data/notes/alice"));
        assert_eq!(spec.socket(), Path::new("/old/run/notes-alice.sock"));

        let mut old = FieldMap::new();
        old.insert("command", FieldValue::Text("app".into()));
        let spec = InstanceSpec::left_over(
            key,
            Arc::new(old),
            Path::new("/srv"),
            Path::new("/srv/data"),
        );
        assert_eq!(spec.data_dir(), Path::new("/srv/data/notes/alice"));
        assert_eq!(spec.socket(), Path::new(""));
        assert_eq!(
            spec.fields().get("command"),
            Some(&FieldValue::Text("app".into()))
        );
    }
}
