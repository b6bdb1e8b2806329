//! Supervice's `healthcheck_*` options -> ten's health check (a TCP check on 127.0.0.1, or a
//! script run as a command check), its pacing and Supervice's defaults for it. Must not
//! import tokio, nix, hyper or notify.

use crate::import::model::Check;

use super::ProgramReader;

impl ProgramReader<'_> {
    /// Supervice's `healthcheck_*` options.
    pub(in crate::import::supervisord) fn checks(&mut self) {
        let section = self.section;
        let kind = section.get("healthcheck_type");
        let check = match kind.map(|entry| entry.value.trim().to_ascii_lowercase()) {
            Some(kind) if kind == "tcp" => self.tcp_check(),
            Some(kind) if kind == "script" => self.script_check(),
            Some(kind) if kind == "none" => None,
            Some(_) => {
                if let Some(entry) = kind {
                    self.not_imported(entry, "not a check Supervice knows (none, tcp, script)");
                }
                None
            }
            None => None,
        };
        let has_check = check.is_some();
        self.service.health = check;
        for entry in &section.entries {
            let target = match entry.key.as_str() {
                "healthcheck_interval" => &mut self.service.health_interval,
                "healthcheck_timeout" => &mut self.service.health_timeout,
                "healthcheck_retries" => &mut self.service.health_retries,
                "healthcheck_start_period" => &mut self.service.health_start_period,
                "healthcheck_type"
                | "healthcheck_port"
                | "healthcheck_host"
                | "healthcheck_command" => continue,
                key if key.starts_with("healthcheck_") => {
                    self.not_imported(entry, "not a health check option of Supervice");
                    continue;
                }
                _ => continue,
            };
            match entry.value.trim().parse::<u64>() {
                Ok(value) if has_check => *target = Some(value),
                Ok(_) => self.not_imported(entry, "no health check to apply it to"),
                Err(_) => self.not_imported(entry, "not a whole number"),
            }
        }
        if has_check {
            for (key, value, field) in [
                ("health_interval", 30, &mut self.service.health_interval),
                ("health_timeout", 10, &mut self.service.health_timeout),
                (
                    "health_start_period",
                    10,
                    &mut self.service.health_start_period,
                ),
            ] {
                if field.is_none() {
                    *field = Some(value);
                    self.service
                        .remarks
                        .insert(key, "Supervice's default".to_string());
                }
            }
        }
    }

    fn tcp_check(&mut self) -> Option<Check> {
        let section = self.section;
        if let Some(host) = section.get("healthcheck_host")
            && !["127.0.0.1", "localhost", "::1"].contains(&host.value.trim())
        {
            self.not_imported(
                host,
                "ten checks TCP on 127.0.0.1 only: the check is not imported",
            );
            return None;
        }
        let Some(entry) = section.get("healthcheck_port") else {
            let kind = section.get("healthcheck_type")?;
            self.not_imported(kind, "a tcp check needs healthcheck_port");
            return None;
        };
        match entry.value.trim().parse::<u16>() {
            Ok(port) if port > 0 => Some(Check::Tcp(port)),
            _ => {
                self.not_imported(entry, "not a port");
                None
            }
        }
    }

    fn script_check(&mut self) -> Option<Check> {
        let section = self.section;
        let Some(entry) = section.get("healthcheck_command") else {
            let kind = section.get("healthcheck_type")?;
            self.not_imported(kind, "a script check needs healthcheck_command");
            return None;
        };
        let line = self.expand(entry);
        match shell_words::split(&line) {
            Ok(words) if !words.is_empty() => Some(Check::Exec(words)),
            _ => {
                self.not_imported(entry, "cannot be split into words");
                None
            }
        }
    }
}
