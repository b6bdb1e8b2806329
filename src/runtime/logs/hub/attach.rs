//! Attaching an instance (its directories made, resumed where its record says, `output.log`
//! cut back to the recorded length, its tail loaded into the ring) and detaching it. Uses
//! `ring` and `log_files` of `hub`; imports nothing of `runtime` outside `logs`.

use std::fs;
use std::io;

use crate::config::LogFiles;
use crate::names::InstanceKey;

use super::super::line::Stream;
use super::super::output::{OutputLog, cut_back, file_length};
use super::super::record::{Recorded, read_record};
use super::super::source::Source;
use super::log_files::retarget;
use super::ring::read_tail;
use super::{CapturePaths, HubState, InstanceLogs, LogHub, Targets, watch};

impl LogHub {
    /// Starts capturing `key`: creates its directories and resumes where the last ten's lines
    /// stopped (its recorded offsets), or, with none recorded, at the current end of the raw
    /// files. Lines in `output.log` past the recorded length (appended by a ten killed before
    /// it recorded their offsets) are removed first: they are read again. Then loads the tail
    /// of `output.log` into memory. Lines go to `log_files` too (those read now included);
    /// for an instance already attached, they are set as [`LogHub::set_log_files`] does, and it is
    /// watched again if its watch failed or was lost.
    pub fn attach(&self, key: &InstanceKey, log_files: &LogFiles) -> io::Result<CapturePaths> {
        let paths = self.paths(key);
        if self.lock().instances.contains_key(key) {
            self.set_log_files(key, log_files);
            self.watch_again(key, &paths)?;
            return Ok(paths);
        }
        fs::create_dir_all(&paths.dir)?;
        fs::create_dir_all(&paths.log_dir)?;
        let recorded = read_record(&paths.offsets);
        if let Some(length) = recorded.and_then(|recorded| recorded.log_length) {
            cut_back(&paths.output, length);
        }
        let offsets = recorded.map_or_else(
            || [&paths.stdout, &paths.stderr].map(|path| file_length(path)),
            |recorded| recorded.offsets,
        );
        let ring = read_tail(key, &paths.output);
        let ring_bytes = ring.iter().map(|line| line.text.len()).sum();
        let mut logs = InstanceLogs {
            sources: [
                Source::new(Stream::Stdout, paths.stdout.clone(), offsets[0]),
                Source::new(Stream::Stderr, paths.stderr.clone(), offsets[1]),
            ],
            ring,
            ring_bytes,
            output: OutputLog {
                path: paths.output.clone(),
                file: None,
                size: file_length(&paths.output),
            },
            offsets_path: paths.offsets.clone(),
            offsets_file: None,
            targets: Targets::default(),
            wd: None,
        };
        // The record now says where this ten starts, in this version's format, with the
        // length of the output.log it appends to (after a ten killed between a rotation and
        // the record that follows it, the recorded length was the rotated file's).
        let current = Recorded {
            offsets,
            log_length: Some(logs.output.size),
        };
        if recorded != Some(current) {
            logs.record();
        }
        let mut state = self.lock();
        retarget(&mut state.files, &mut logs.targets, log_files);
        logs.wd = watch::add(&mut state.watches, &paths.dir, key);
        state.instances.insert(key.clone(), logs);
        drop(state);
        // Anything written before we attached.
        self.poll(key);
        Ok(paths)
    }

    /// Whether the output of `key` is captured: attached and not detached since, and
    /// watched while ten watches.
    pub fn attached(&self, key: &InstanceKey) -> bool {
        let state = self.lock();
        state
            .instances
            .get(key)
            .is_some_and(|logs| logs.wd.is_some() || !state.watches.watching())
    }

    /// Watches `key` again (attached, but its watch failed or its directory was removed),
    /// then reads what it wrote meanwhile.
    fn watch_again(&self, key: &InstanceKey, paths: &CapturePaths) -> io::Result<()> {
        let mut state = self.lock();
        let HubState {
            instances, watches, ..
        } = &mut *state;
        let Some(logs) = instances.get_mut(key) else {
            return Ok(());
        };
        if logs.wd.is_some() || !watches.watching() {
            return Ok(());
        }
        fs::create_dir_all(&paths.dir)?;
        logs.wd = watch::add(watches, &paths.dir, key);
        drop(state);
        self.poll(key);
        Ok(())
    }

    /// Stops capturing `key` (after reading what is left); removes its capture files when
    /// asked (never the log files a service names: they are the user's).
    pub fn detach(&self, key: &InstanceKey, remove_files: bool) {
        self.poll(key);
        let mut state = self.lock();
        if let Some(mut logs) = state.instances.remove(key) {
            if let Some(wd) = logs.wd {
                watch::remove(&mut state.watches, wd);
            }
            retarget(&mut state.files, &mut logs.targets, &LogFiles::default());
        }
        drop(state);
        if remove_files {
            let paths = self.paths(key);
            let _ = fs::remove_dir_all(paths.dir);
            let _ = fs::remove_dir_all(paths.log_dir);
        }
    }
}
