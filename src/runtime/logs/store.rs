//! The files an instance's output is kept in (`output.log` and its rotated files,
//! `output.log.<UNIX_MS>` named after their first line's time) and their retention: the time
//! index a search reads (each file's first line and its last write), and the removal of the
//! oldest files past `log_retention`'s size or age.
//!
//! Imports `line` of `logs`.

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use crate::config::LogRetention;

use super::line::line_time;

/// The name of the file lines are appended to.
pub const OUTPUT_LOG: &str = "output.log";
/// `output.log` is rotated at this size at most (smaller when `log_retention` is small).
pub const ROTATE_BYTES: u64 = 10 * 1024 * 1024;

/// The size at which `output.log` is rotated under `retention`: a quarter of what is kept,
/// at most [`ROTATE_BYTES`] (the defaults keep today's 10 MiB files, three rotated).
pub fn rotate_bytes(retention: &LogRetention) -> u64 {
    (retention.max_bytes / 4).min(ROTATE_BYTES)
}

/// How many rotated files are kept besides `output.log` under `retention`.
pub fn keep_rotated(retention: &LogRetention) -> usize {
    ((retention.max_bytes / rotate_bytes(retention)) as usize)
        .saturating_sub(1)
        .max(1)
}

/// One file of an instance's kept output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct StoredFile {
    pub(super) path: PathBuf,
    /// The time of its first line (`None`: empty, or not a line ten wrote).
    pub(super) first_ms: Option<u64>,
    /// Its last write: no line in it is later.
    pub(super) modified_ms: u64,
    pub(super) len: u64,
    /// `output.log` itself, not a rotated file.
    pub(super) current: bool,
}

/// The files of the instance whose log directory is `log_dir`, oldest first (`output.log`
/// last): rotated files are ordered by their first line, whatever their name (those of
/// earlier versions, `output.log.1` to `.3`, too).
pub(super) fn stored_files(log_dir: &Path) -> Vec<StoredFile> {
    let Ok(entries) = fs::read_dir(log_dir) else {
        return Vec::new();
    };
    let mut files: Vec<StoredFile> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name();
            let name = name.to_str()?;
            let current = name == OUTPUT_LOG;
            let rotated = name
                .strip_prefix(OUTPUT_LOG)
                .and_then(|rest| rest.strip_prefix('.'))
                .is_some_and(|suffix| {
                    !suffix.is_empty() && suffix.bytes().all(|byte| byte.is_ascii_digit())
                });
            if !current && !rotated {
                return None;
            }
            let metadata = entry.metadata().ok()?;
            if !metadata.is_file() {
                return None;
            }
            let path = entry.path();
            Some(StoredFile {
                first_ms: first_time(&path),
                modified_ms: metadata
                    .modified()
                    .ok()
                    .and_then(|time| time.duration_since(UNIX_EPOCH).ok())
                    .map_or(0, |since| since.as_millis() as u64),
                len: metadata.len(),
                current,
                path,
            })
        })
        .collect();
    // Files whose first lines share a millisecond (a fast writer's lines of one read carry
    // one time) are told apart by their names, given in increasing order ([`rotated_name`]);
    // their last writes may share a clock tick too.
    files.sort_by_key(|file| {
        (
            file.current,
            file.first_ms.unwrap_or(file.modified_ms),
            name_stamp(&file.path),
            file.modified_ms,
        )
    });
    files
}

/// The number a rotated file's name ends with (`output.log.<N>`); 0 for `output.log`.
fn name_stamp(path: &Path) -> u64 {
    path.extension()
        .and_then(|extension| extension.to_str())
        .and_then(|extension| extension.parse().ok())
        .unwrap_or(0)
}

/// The files keeping an instance's output, oldest first (`output.log` last).
pub fn kept_files(log_dir: &Path) -> Vec<PathBuf> {
    stored_files(log_dir)
        .into_iter()
        .map(|file| file.path)
        .collect()
}

/// The time of the first line of a file ten wrote (reads its first bytes only).
pub(super) fn first_time(path: &Path) -> Option<u64> {
    let mut bytes = [0u8; 64];
    let mut file = File::open(path).ok()?;
    let mut read = 0;
    while read < bytes.len() {
        match file.read(&mut bytes[read..]) {
            Ok(0) | Err(_) => break,
            Ok(count) => read += count,
        }
    }
    line_time(&bytes[..read])
}

/// The name `output.log` gets when it is rotated: `output.log.<time of its first line>`, or,
/// should that time not be past every rotated file's number (files started in the same
/// millisecond), the number after the largest. Names only ever grow: a number freed by the
/// retention is not given to a newer file, which would sort before older ones.
pub(super) fn rotated_name(output: &Path) -> PathBuf {
    let first = first_time(output).unwrap_or_else(super::line::unix_millis);
    let taken = output.parent().map_or(0, |dir| {
        stored_files(dir)
            .iter()
            .filter(|file| !file.current)
            .map(|file| name_stamp(&file.path) + 1)
            .max()
            .unwrap_or(0)
    });
    let mut name = output.as_os_str().to_owned();
    name.push(format!(".{}", first.max(taken)));
    PathBuf::from(name)
}

/// Removes the rotated files of `log_dir` past `retention`: beyond [`keep_rotated`] (the
/// oldest first), or last written before `now_ms - max_age`. `output.log` is left to its
/// writer (see `LogHub::sweep`). Returns how many were removed.
pub(super) fn enforce(log_dir: &Path, retention: &LogRetention, now_ms: u64) -> usize {
    let rotated: Vec<StoredFile> = stored_files(log_dir)
        .into_iter()
        .filter(|file| !file.current)
        .collect();
    let beyond_count = rotated.len().saturating_sub(keep_rotated(retention));
    let cutoff = age_cutoff(retention, now_ms);
    let mut removed = 0;
    for (index, file) in rotated.iter().enumerate() {
        let too_old = cutoff.is_some_and(|cutoff| file.modified_ms < cutoff);
        if index < beyond_count || too_old {
            match fs::remove_file(&file.path) {
                Ok(()) => removed += 1,
                Err(error) => {
                    tracing::debug!(%error, path = %file.path.display(), "cannot remove an old output log")
                }
            }
        }
    }
    removed
}

/// Lines last written before this are past `max_age`.
pub(super) fn age_cutoff(retention: &LogRetention, now_ms: u64) -> Option<u64> {
    retention
        .max_age
        .map(|age| now_ms.saturating_sub(age.as_millis() as u64))
}

/// How often the sweep looks for files past `max_age`: every minute, more often for an age
/// under four minutes (a quarter of it, at least every second).
pub fn sweep_interval(retention: &LogRetention) -> Duration {
    let minute = Duration::from_secs(60);
    retention.max_age.map_or(minute, |age| {
        (age / 4).clamp(Duration::from_secs(1), minute)
    })
}

/// The modification time of `path` in Unix milliseconds.
pub(super) fn modified_ms(path: &Path) -> Option<u64> {
    fs::metadata(path)
        .ok()?
        .modified()
        .ok()?
        .duration_since(UNIX_EPOCH)
        .ok()
        .map(|since| since.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, first_ms: u64, len: usize, modified_ms: u64) {
        let time = humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(first_ms));
        let mut text = format!("{time} stdout ");
        while text.len() + 1 < len {
            text.push('x');
        }
        text.push('\n');
        fs::write(path, text).unwrap();
        let file = File::options().write(true).open(path).unwrap();
        file.set_modified(UNIX_EPOCH + Duration::from_millis(modified_ms))
            .unwrap();
    }

    const NOW: u64 = 1_765_000_000_000;

    #[test]
    fn rotation_size_and_count_follow_the_retention() {
        let default = LogRetention::default();
        assert_eq!(rotate_bytes(&default), 10 << 20);
        assert_eq!(keep_rotated(&default), 3);
        let large = LogRetention {
            max_bytes: 1 << 30,
            max_age: None,
        };
        assert_eq!(rotate_bytes(&large), 10 << 20);
        assert_eq!(keep_rotated(&large), 101);
        let small = LogRetention {
            max_bytes: 64 << 10,
            max_age: None,
        };
        assert_eq!(rotate_bytes(&small), 16 << 10);
        assert_eq!(keep_rotated(&small), 3);
    }

    #[test]
    fn files_are_ordered_by_their_first_line_and_output_log_comes_last() {
        let dir = tempfile::tempdir().unwrap();
        let log_dir = dir.path();
        write(&log_dir.join("output.log"), NOW - 1_000, 100, NOW);
        write(
            &log_dir.join("output.log.1"),
            NOW - 10_000,
            100,
            NOW - 1_000,
        );
        write(
            &log_dir.join(format!("output.log.{}", NOW - 30_000)),
            NOW - 30_000,
            100,
            NOW - 10_000,
        );
        write(&log_dir.join("output.log.tmp"), NOW, 100, NOW);
        fs::write(log_dir.join("offsets"), "1 2 3").unwrap();
        let names: Vec<String> = kept_files(log_dir)
            .iter()
            .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                format!("output.log.{}", NOW - 30_000),
                "output.log.1".into(),
                "output.log".into()
            ]
        );
        let files = stored_files(log_dir);
        assert_eq!(files[0].first_ms, Some(NOW - 30_000));
        assert_eq!(files[0].modified_ms, NOW - 10_000);
        assert!(files[2].current);
    }

    #[test]
    fn retention_removes_the_oldest_files_past_the_count_or_the_age() {
        let dir = tempfile::tempdir().unwrap();
        let log_dir = dir.path();
        for index in 0..6u64 {
            let first = NOW - (10 - index) * 3_600_000;
            write(
                &log_dir.join(format!("output.log.{first}")),
                first,
                100,
                first + 3_600_000,
            );
        }
        write(
            &log_dir.join("output.log"),
            NOW - 10,
            100,
            NOW - 3_600_000 * 5,
        );
        let retention = LogRetention {
            max_bytes: 64 << 10,
            max_age: None,
        };
        assert_eq!(enforce(log_dir, &retention, NOW), 3);
        assert_eq!(kept_files(log_dir).len(), 4);
        // Last written 6, 5 and 4 hours ago; output.log is never removed here.
        let retention = LogRetention {
            max_bytes: 1 << 30,
            max_age: Some(Duration::from_secs(5 * 3600 - 1)),
        };
        assert_eq!(enforce(log_dir, &retention, NOW), 2);
        let left: Vec<u64> = stored_files(log_dir)
            .iter()
            .map(|file| file.modified_ms)
            .collect();
        assert_eq!(left, [NOW - 4 * 3_600_000, NOW - 5 * 3_600_000]);
    }

    #[test]
    fn a_rotated_name_is_the_first_line_time_and_free() {
        let dir = tempfile::tempdir().unwrap();
        let output = dir.path().join("output.log");
        write(&output, NOW, 100, NOW);
        assert_eq!(
            rotated_name(&output),
            dir.path().join(format!("output.log.{NOW}"))
        );
        fs::write(dir.path().join(format!("output.log.{NOW}")), "").unwrap();
        assert_eq!(
            rotated_name(&output),
            dir.path().join(format!("output.log.{}", NOW + 1))
        );
    }

    #[test]
    fn the_sweep_looks_often_enough_for_the_age() {
        let mut retention = LogRetention::default();
        assert_eq!(sweep_interval(&retention), Duration::from_secs(60));
        retention.max_age = Some(Duration::from_secs(7 * 86_400));
        assert_eq!(sweep_interval(&retention), Duration::from_secs(60));
        retention.max_age = Some(Duration::from_secs(2));
        assert_eq!(sweep_interval(&retention), Duration::from_secs(1));
        retention.max_age = Some(Duration::from_secs(120));
        assert_eq!(sweep_interval(&retention), Duration::from_secs(30));
    }

    #[test]
    fn files_started_in_one_millisecond_keep_their_order_after_the_oldest_goes() {
        let dir = tempfile::tempdir().unwrap();
        let output = dir.path().join(OUTPUT_LOG);
        // Three rotations whose first lines share a millisecond, the last written last.
        for written in 0..3 {
            write(&output, NOW, 100, NOW + written);
            fs::rename(&output, rotated_name(&output)).unwrap();
            if written == 1 {
                // The retention removes the oldest before the third rotation.
                fs::remove_file(&kept_files(dir.path())[0]).unwrap();
            }
        }
        let names: Vec<String> = kept_files(dir.path())
            .iter()
            .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                format!("output.log.{}", NOW + 1),
                format!("output.log.{}", NOW + 2)
            ]
        );
    }
}
