//! The liveness and readiness probes of a process -> ten's one health check (an exec check,
//! an HTTP check on the instance's PORT, or a TCP check of a worker's port) and its pacing.
//! Must not import tokio, nix, hyper or notify.

use serde_json::{Map, Value};

use crate::import::json::whole;
use crate::import::model::{Check, Command};
use crate::import::text::shell_line;

use super::Reader;

impl Reader<'_> {
    /// One health check from the liveness probe (or else the readiness probe).
    pub(super) fn probes(&mut self, map: &Map<String, Value>, port: Option<&str>) {
        let liveness = map.get("liveness_probe");
        let readiness = map.get("readiness_probe");
        let (key, probe) = match (liveness, readiness) {
            (Some(liveness), Some(readiness)) => {
                if liveness == readiness {
                    self.note("readiness_probe", readiness, "the same as the liveness probe: ten's one health check gates traffic and restarts");
                } else {
                    self.not_imported("readiness_probe", readiness, "ten has one health check per service (it gates traffic and restarts): the liveness probe's is imported");
                }
                ("liveness_probe", liveness)
            }
            (Some(liveness), None) => ("liveness_probe", liveness),
            (None, Some(readiness)) => ("readiness_probe", readiness),
            (None, None) => return,
        };
        let Some(probe) = probe.as_object() else {
            self.not_imported(key, probe, "not a mapping");
            return;
        };
        let check = if let Some(exec) = probe.get("exec") {
            self.exec_probe(key, exec)
        } else if let Some(http) = probe.get("http_get") {
            self.http_probe(key, http, port)
        } else {
            self.not_imported(
                key,
                &Value::Object(probe.clone()),
                "neither exec nor http_get",
            );
            None
        };
        if check.is_none() {
            return;
        }
        self.service.health = check;
        for (name, value) in probe {
            let key_path = format!("{key}.{name}");
            let target = match name.as_str() {
                "initial_delay_seconds" => &mut self.service.health_start_period,
                "period_seconds" => &mut self.service.health_interval,
                "timeout_seconds" => &mut self.service.health_timeout,
                "failure_threshold" => &mut self.service.health_retries,
                "exec" | "http_get" => continue,
                "success_threshold" => {
                    if whole(value) != Some(1) {
                        self.not_imported(
                            &key_path,
                            value,
                            "one passing check makes an instance healthy in ten",
                        );
                    }
                    continue;
                }
                _ => {
                    self.not_imported(&key_path, value, "no equivalent in ten's health checks");
                    continue;
                }
            };
            match whole(value) {
                Some(number) => *target = Some(number),
                None => self.not_imported(&key_path, value, "not a whole number"),
            }
        }
        if self.service.health_timeout.is_none() {
            self.service.health_timeout = Some(1);
            self.service.remark(
                "health_timeout",
                "process-compose's default: timeout_seconds = 1",
            );
        }
    }

    fn exec_probe(&mut self, key: &str, exec: &Value) -> Option<Check> {
        let Some(line) = exec.get("command").and_then(Value::as_str) else {
            self.not_imported(key, exec, "an exec probe without a command");
            return None;
        };
        if let Some(dir) = exec.get("working_dir") {
            self.not_imported(
                &format!("{key}.exec.working_dir"),
                dir,
                "ten runs the check in the service's workdir",
            );
        }
        let words = match shell_line(line, "sh").command {
            Command::Line(line) => shell_words::split(&line).ok(),
            Command::Shell { shell, line } => Some(vec![shell, "-c".to_string(), line]),
            Command::Argv(words) => Some(words),
        };
        match words {
            Some(words) if !words.is_empty() => Some(Check::Exec(words)),
            _ => {
                self.not_imported(key, exec, "the command cannot be split into words");
                None
            }
        }
    }

    fn http_probe(&mut self, key: &str, http: &Value, port: Option<&str>) -> Option<Check> {
        let host = http
            .get("host")
            .and_then(Value::as_str)
            .unwrap_or("127.0.0.1");
        if !["127.0.0.1", "localhost", "0.0.0.0", "::1"].contains(&host) {
            self.not_imported(key, http, "ten checks its own instances on 127.0.0.1 only");
            return None;
        }
        if http
            .get("scheme")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.eq_ignore_ascii_case("http"))
        {
            self.not_imported(key, http, "ten's HTTP checks are plain HTTP");
            return None;
        }
        let path = http
            .get("path")
            .and_then(Value::as_str)
            .unwrap_or("/")
            .to_string();
        let probe_port = http
            .get("port")
            .and_then(whole)
            .and_then(|p| u16::try_from(p).ok());
        if !self.service.worker {
            if let (Some(probe_port), Some(port)) = (probe_port, port)
                && port != probe_port.to_string()
            {
                self.note(key, http, "ten checks the instance on its own PORT");
            }
            return Some(Check::Http(path));
        }
        match probe_port {
            Some(probe_port) => {
                self.not_imported(key, http, format!("a worker (it does not read $PORT) gets a TCP check of port {probe_port}: ten's HTTP checks go to the port ten gives, so the path {path} is not checked"));
                Some(Check::Tcp(probe_port))
            }
            None => {
                self.not_imported(
                    key,
                    http,
                    "an HTTP check without a port, of a worker: nothing to check",
                );
                None
            }
        }
    }
}
