//! systemd, when it is the running init: whether it reads units from a directory,
//! `systemctl` run with its failures said, and what the report of `ten install` says of it.
//! Touches no unit file: must not import `unit_file`.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::cli::CliError;

use super::unit::UnitSpec;

/// Whether systemd is the running init (what `sd_booted()` checks).
pub(super) fn systemd_running() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// Whether systemd loads system units from `dir`.
pub(super) fn systemd_reads(dir: &Path) -> bool {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    [
        "/etc/systemd/system",
        "/run/systemd/system",
        "/usr/local/lib/systemd/system",
        "/usr/lib/systemd/system",
        "/lib/systemd/system",
    ]
    .iter()
    .any(|known| std::fs::canonicalize(known).is_ok_and(|known| known == dir))
}

/// Runs `systemctl ARGS`; its stderr becomes the error.
pub(super) fn systemctl(args: &[&str]) -> Result<(), CliError> {
    let command = format!("systemctl {}", args.join(" "));
    let output = Command::new("systemctl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|error| CliError::new(format!("cannot run `{command}`: {error}")))?;
    if output.status.success() {
        return Ok(());
    }
    let error = CliError::new(format!(
        "`{command}` failed: {}",
        String::from_utf8_lossy(&output.stderr).trim()
    ));
    Err(if nix::unistd::geteuid().is_root() {
        error.hint("`systemctl status` and `journalctl -xe` say more")
    } else {
        error.hint("run as root")
    })
}

pub(super) fn systemctl_is_active(unit: &str) -> bool {
    Command::new("systemctl")
        .args(["is-active", "--quiet", unit])
        .stdin(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// What happened with systemd, for the report.
pub(super) enum Systemd {
    /// Not the running init here.
    Absent,
    /// `--no-start`.
    Skipped,
    /// Running, but it does not read units from the unit directory.
    ElsewhereDir,
    /// `systemctl enable --now` ran. `was_active`: it already ran (with the old unit).
    Started { was_active: bool },
}

/// What the report says about systemd, with the next steps indented.
pub(super) fn systemd_report(
    systemd: &Systemd,
    spec: &UnitSpec,
    unit_dir: &Path,
    next_steps: &[String],
) -> String {
    let style = crate::cli::stdout_style();
    let unit = format!("{}.service", spec.name);
    let steps: String = next_steps
        .iter()
        .map(|step| format!("  {step}\n"))
        .collect();
    match systemd {
        Systemd::Absent => format!(
            "{} systemd is not running here, so nothing was enabled or started. On a systemd host, run:\n{steps}",
            style.yellow("!")
        ),
        Systemd::Skipped => {
            format!(
                "Not enabled or started (--no-start). To start it now and at every boot:\n{steps}"
            )
        }
        Systemd::ElsewhereDir => format!(
            "systemd does not read units from {}, so nothing was enabled or started. To use it:\n{steps}",
            unit_dir.display()
        ),
        Systemd::Started { was_active } => {
            let mut text = format!(
                "{} {unit} is enabled and running (systemctl daemon-reload; systemctl enable --now {unit}).\n",
                style.green("✓")
            );
            if *was_active && !steps.is_empty() {
                let effect = if spec.keep_tenants_on_exit {
                    "its tenants keep running"
                } else {
                    "this stops and starts every tenant"
                };
                text.push_str(&format!(
                    "It was already running with the old unit; apply the new one ({effect}):\n{steps}"
                ));
            }
            text.push_str(&format!(
                "Status: systemctl status {unit}; logs: journalctl -u {unit} -f\n"
            ));
            text
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemd_does_not_read_other_directories() {
        // The integration tests rely on this: their units never reach systemctl.
        let dir = tempfile::tempdir().unwrap();
        assert!(!systemd_reads(dir.path()));
        assert!(!systemd_reads(Path::new("/etc/systemd")));
    }
}
