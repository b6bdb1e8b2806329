//! Searches over what is kept on disk, of one instance or of every instance with output on
//! disk (attached or not), and the log directories they are found in; reading the files is
//! `search`'s. Imports nothing of `runtime` outside `logs`.

use std::fs;
use std::path::{Path, PathBuf};

use crate::names::InstanceKey;

use super::super::line::{LogLine, LogQuery};
use super::super::search::{DEFAULT_SEARCH_LIMIT, MAX_SEARCH_LIMIT, search_instance};
use super::LogHub;

impl LogHub {
    /// The last lines kept on disk that match `query` (its `limit`, else
    /// [`DEFAULT_SEARCH_LIMIT`], at most [`MAX_SEARCH_LIMIT`]), oldest first: of its instance,
    /// or of every instance with output on disk (of its services), running or not, so lines
    /// from before a restart of the tenant or of ten are found. Blocking: reads files; holds
    /// no lock while it does.
    pub fn search(&self, query: &LogQuery) -> Vec<LogLine> {
        let limit = query
            .limit
            .unwrap_or(DEFAULT_SEARCH_LIMIT)
            .min(MAX_SEARCH_LIMIT);
        let dirs = match &query.instance {
            Some(key) => vec![(key.clone(), self.paths(key).log_dir)],
            None => self
                .log_dirs(query.services.as_ref())
                .into_iter()
                .filter_map(|dir| Some((instance_of(&dir)?, dir)))
                .collect(),
        };
        let mut lines: Vec<LogLine> = dirs
            .iter()
            .flat_map(|(key, dir)| search_instance(key, dir, query, limit))
            .collect();
        if dirs.len() > 1 {
            lines.sort_by_key(|line| line.at_unix_ms);
        }
        if lines.len() > limit {
            lines.drain(..lines.len() - limit);
        }
        lines
    }

    /// The log directories on disk (`logs/<service>/<id>`), of `services` only if given.
    pub(super) fn log_dirs(
        &self,
        services: Option<&std::collections::BTreeSet<crate::names::ServiceName>>,
    ) -> Vec<PathBuf> {
        let subdirectories = |dir: &Path| -> Vec<PathBuf> {
            fs::read_dir(dir)
                .map(|entries| {
                    entries
                        .filter_map(Result::ok)
                        .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_dir()))
                        .map(|entry| entry.path())
                        .collect()
                })
                .unwrap_or_default()
        };
        subdirectories(&self.root.join("logs"))
            .into_iter()
            .filter(|dir| {
                services.is_none_or(|services| {
                    dir.file_name()
                        .and_then(|name| name.to_str())
                        .is_some_and(|name| services.iter().any(|service| service.as_str() == name))
                })
            })
            .flat_map(|dir| subdirectories(&dir))
            .collect()
    }
}

/// The instance whose log directory is `log_dir` (`.../logs/<service>/<id>`).
pub(super) fn instance_of(log_dir: &Path) -> Option<InstanceKey> {
    let id = log_dir.file_name()?.to_str()?;
    let service = log_dir.parent()?.file_name()?.to_str()?;
    InstanceKey::parse(&format!("{service}:{id}")).ok()
}

#[cfg(test)]
mod tests;
