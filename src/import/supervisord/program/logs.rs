//! The log options of a program: `stdout_logfile`, `stderr_logfile` and `redirect_stderr`, a
//! file per instance of a set, their rotation (one for both files), and the options with no
//! equivalent (syslog, events). Must not import tokio, nix, hyper or notify.

use crate::import::ini::Entry;
use crate::import::report::Item;
use crate::import::supervisord::values::boolean;
use crate::import::text::{INDEX, bytes, readable};

use super::{FileDefaults, ProgramReader};

impl ProgramReader<'_> {
    /// `stdout_logfile`, `stderr_logfile`, `redirect_stderr` and their rotation.
    pub(in crate::import::supervisord) fn logs(&mut self, defaults: &FileDefaults<'_>) {
        let stdout = self.log_file("stdout_logfile");
        let stderr = self.log_file("stderr_logfile");
        self.service.stdout_log = stdout;
        self.service.stderr_log = stderr;
        if let Some(entry) = self.section.get("redirect_stderr").cloned()
            && boolean(&entry.value) == Some(true)
        {
            match self.service.stdout_log.clone() {
                Some(path) => {
                    if self.service.stderr_log.is_some() {
                        self.note(&entry, "stderr goes to the stdout log: stderr_logfile is not used, as in supervisord");
                    }
                    self.service.stderr_log = Some(path);
                    self.service.remark("stderr_log", "redirect_stderr = true");
                }
                None => self.note(&entry, "ten captures stdout and stderr of every instance together (`ten logs NAME:ID`)"),
            }
        }
        if self.service.count.is_some() {
            self.log_per_instance();
        }
        if self.service.stdout_log.is_some() || self.service.stderr_log.is_some() {
            self.rotation(defaults);
        }
        let section = self.section;
        for entry in &section.entries {
            let key = entry.key.as_str();
            if is_log_key(key) && !LOG_KEYS.contains(&key) {
                self.not_imported(
                    entry,
                    "not an option of supervisord's [program:x]: nothing to import",
                );
            } else if key.ends_with("_capture_maxbytes") || key.ends_with("_events_enabled") {
                self.not_imported(entry, "supervisord's event listeners have no equivalent: `ten events -f` follows lifecycle events");
            } else if key.ends_with("_syslog") && boolean(&entry.value) == Some(true) {
                self.not_imported(
                    entry,
                    "ten does not write to syslog: `ten logs`, or the log files",
                );
            }
        }
    }

    fn log_file(&mut self, key: &str) -> Option<String> {
        let entry = self.section.get(key)?.clone();
        let path = self.expand(&entry);
        match path.trim().to_ascii_uppercase().as_str() {
            "AUTO" => {
                self.note(
                    &entry,
                    "ten captures output itself: `ten logs NAME:ID`, kept under its data directory",
                );
                None
            }
            "NONE" => {
                self.note(&entry, "ten captures output anyway (`ten logs NAME:ID`); no file of your own is written");
                None
            }
            "SYSLOG" => {
                self.not_imported(
                    &entry,
                    "ten does not write to syslog: `ten logs`, or a log file",
                );
                None
            }
            _ => Some(path.trim().to_string()),
        }
    }

    /// Instances of a set each get their own file.
    fn log_per_instance(&mut self) {
        let merged =
            self.service.stderr_log.is_some() && self.service.stderr_log == self.service.stdout_log;
        for (key, log) in [
            ("stdout_logfile", &mut self.service.stdout_log),
            ("stderr_logfile", &mut self.service.stderr_log),
        ] {
            if let Some(path) = log
                && !path.contains(INDEX)
            {
                *path = crate::import::text::with_index(path);
                let shown = readable(path);
                let entry = self.section.get(key).cloned();
                if let Some(entry) = entry {
                    let item = Item::note(
                        &self.at,
                        format!("each instance of the set writes its own file: {shown}"),
                    )
                    .key(&entry.key, &entry.value)
                    .line(Some(entry.line))
                    .service(&self.service.name);
                    self.report.push(item);
                }
            }
        }
        if merged {
            self.service.stderr_log = self.service.stdout_log.clone();
        }
    }

    fn rotation(&mut self, defaults: &FileDefaults<'_>) {
        let size = |reader: &mut Self, key: &str| -> Option<(u64, Entry)> {
            let entry = reader.section.get(key)?.clone();
            match bytes(&reader.expand(&entry)) {
                Some(size) => Some((size, entry)),
                None => {
                    reader.not_imported(&entry, "not a size (such as 50MB)");
                    None
                }
            }
        };
        let stdout_size = size(self, "stdout_logfile_maxbytes");
        let stderr_size = size(self, "stderr_logfile_maxbytes");
        let stdout_backups = self.count_of("stdout_logfile_backups");
        let stderr_backups = self.count_of("stderr_logfile_backups");
        let (primary_size, other_size) = if self.service.stdout_log.is_some() {
            (stdout_size, stderr_size)
        } else {
            (stderr_size, stdout_size)
        };
        let (primary_backups, other_backups) = if self.service.stdout_log.is_some() {
            (stdout_backups, stderr_backups)
        } else {
            (stderr_backups, stdout_backups)
        };
        match primary_size {
            Some((0, entry)) => self.not_imported(&entry, "0 (never rotate) has no equivalent: ten rotates at log_max_bytes; set a large one to rotate rarely"),
            Some((size, _)) => self.service.log_max_bytes = Some(size),
            None => {
                self.service.log_max_bytes = Some(defaults.log_max_bytes);
                let whose = match (defaults.supervice, defaults.log_max_bytes_given) {
                    (true, true) => "[supervice] log_maxbytes",
                    (true, false) => "Supervice's default log_maxbytes",
                    (false, _) => "supervisord's default: 50MB",
                };
                self.service.remark("log_max_bytes", whose);
            }
        }
        match primary_backups {
            Some((backups, _)) => self.service.log_backups = Some(backups),
            None => {
                self.service.log_backups = Some(defaults.log_backups);
                let whose = match (defaults.supervice, defaults.log_backups_given) {
                    (true, true) => "[supervice] log_backups",
                    (true, false) => "Supervice's default log_backups",
                    (false, _) => "supervisord's default",
                };
                self.service.remark("log_backups", whose);
            }
        }
        let both = self.service.stdout_log.is_some() && self.service.stderr_log.is_some();
        for (other, value) in [
            (other_size, self.service.log_max_bytes),
            (other_backups, self.service.log_backups),
        ] {
            if let Some((size, entry)) = other
                && (!both || Some(size) != value)
            {
                self.not_imported(&entry, "ten rotates both log files of a service alike (log_max_bytes, log_backups), as the stdout log's options say");
            }
        }
    }

    fn count_of(&mut self, key: &str) -> Option<(u64, Entry)> {
        let entry = self.section.get(key)?.clone();
        match self.expand(&entry).trim().parse::<u64>() {
            Ok(count) => Some((count, entry)),
            Err(_) => {
                self.not_imported(&entry, "not a number of files");
                None
            }
        }
    }
}

/// The log options of a program, for stdout and stderr alike.
const LOG_KEYS: &[&str] = &[
    "redirect_stderr",
    "stdout_logfile",
    "stdout_logfile_maxbytes",
    "stdout_logfile_backups",
    "stdout_capture_maxbytes",
    "stdout_events_enabled",
    "stdout_syslog",
    "stderr_logfile",
    "stderr_logfile_maxbytes",
    "stderr_logfile_backups",
    "stderr_capture_maxbytes",
    "stderr_events_enabled",
    "stderr_syslog",
];

pub(super) fn is_log_key(key: &str) -> bool {
    key == "redirect_stderr" || key.starts_with("stdout_") || key.starts_with("stderr_")
}
