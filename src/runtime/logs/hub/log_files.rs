//! The log files services name (`stdout_log`, `stderr_log`): which ones an instance's lines
//! go to, one writer per path however many instances and streams name it, and the lines
//! written to them. Imports nothing of `runtime` outside `logs`.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::config::LogFiles;
use crate::names::InstanceKey;

use super::super::line::{LogLine, Stream};
use super::super::log_file::LogFile;
use super::{HubState, LogHub, Targets};

impl LogHub {
    /// Where the lines of `key` go from now on, besides `output.log`: the log files its spec
    /// names (none: only `output.log`).
    pub fn set_log_files(&self, key: &InstanceKey, log_files: &LogFiles) {
        let mut state = self.lock();
        let HubState {
            instances, files, ..
        } = &mut *state;
        if let Some(logs) = instances.get_mut(key) {
            retarget(files, &mut logs.targets, log_files);
        }
    }
}

/// Points `targets` at the files of `log_files`: a file newly named is added (or shared, if
/// another instance names it too), one no longer named is closed when nobody else writes to
/// it. An instance counts once per file, its two streams merged or not.
pub(super) fn retarget(
    files: &mut HashMap<PathBuf, LogFile>,
    targets: &mut Targets,
    log_files: &LogFiles,
) {
    let wanted: Targets = [log_files.stdout.clone(), log_files.stderr.clone()];
    for path in distinct(&wanted) {
        let file = files
            .entry(path.clone())
            .or_insert_with(|| LogFile::new(path.clone(), log_files.rotation));
        file.set_rotation(log_files.rotation);
        file.users += 1;
    }
    for path in distinct(targets) {
        if let Some(file) = files.get_mut(path) {
            file.users -= 1;
            if file.users == 0 {
                files.remove(path);
            }
        }
    }
    *targets = wanted;
}

/// The paths of `targets`, each once.
pub(super) fn distinct(targets: &Targets) -> impl Iterator<Item = &PathBuf> {
    let [stdout, stderr] = targets;
    stdout.iter().chain(
        stderr
            .iter()
            .filter(move |path| stdout.as_ref() != Some(*path)),
    )
}

/// Writes each line to the log file of its stream; a file that both streams name gets the
/// lines of both, in the order they were read.
pub(super) fn write_log_files(
    files: &mut HashMap<PathBuf, LogFile>,
    targets: &Targets,
    lines: &[LogLine],
) {
    let merged = targets[0].is_some() && targets[0] == targets[1];
    for (index, stream) in [Stream::Stdout, Stream::Stderr].into_iter().enumerate() {
        let Some(path) = &targets[index] else {
            continue;
        };
        if merged && stream == Stream::Stderr {
            continue;
        }
        if let Some(file) = files.get_mut(path) {
            file.write_lines(
                lines
                    .iter()
                    .filter(|line| merged || line.stream == stream)
                    .map(|line| line.text.as_str()),
            );
        }
    }
}

#[cfg(test)]
mod tests;
