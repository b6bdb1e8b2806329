//! `ten install` / `ten uninstall`: a systemd unit that runs `ten serve` for this config.
//!
//! This file holds the commands and what they report. What the unit says is found in [`spec`]
//! (the running binary, the config and its settings, the serve flags), the unit is written
//! atomically or refused over a different one in [`unit_file`], and `systemctl` is called
//! when systemd is the running init in [`systemd`]. The unit's text is [`unit`]'s, pure.

mod spec;
mod systemd;
mod unit;
mod unit_file;

use std::net::IpAddr;
use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use crate::render::json::{JSON_FORMAT_VERSION, to_pretty};

use super::{CliError, GlobalArgs, exit, print_stderr, print_stdout, stderr_style};

use spec::{absolute, in_build_dir, unit_spec, user_exists};
use systemd::{
    Systemd, systemctl, systemctl_is_active, systemd_reads, systemd_report, systemd_running,
};
use unit::{check_paths, check_user_name, is_ours, path_text, render_unit, unit_name};
use unit_file::{file_error, units_of_ten, write_unless_different};

const DEFAULT_UNIT_DIR: &str = "/etc/systemd/system";

#[derive(Debug, Args)]
pub struct InstallArgs {
    /// Unit name (NAME.service); give each config on one host its own
    #[arg(long, default_value = "ten")]
    pub name: String,

    /// Run ten as this user [default: root, which namespace isolation, cgroup limits and
    /// services' `user` need]
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,

    /// Directory to write the unit into
    #[arg(long, default_value = DEFAULT_UNIT_DIR, value_name = "DIR")]
    pub unit_dir: PathBuf,

    /// Print the unit on stdout and write nothing
    #[arg(long, conflicts_with = "json")]
    pub print: bool,

    /// Overwrite an existing unit that differs
    #[arg(long)]
    pub force: bool,

    /// Write the unit only: do not enable or start it
    #[arg(long)]
    pub no_start: bool,

    /// `ten serve --port` in the unit [default: serve's, 8080]
    #[arg(long, env = "TENEMENT_PORT")]
    pub port: Option<u16>,

    /// `ten serve --bind` in the unit [default: serve's, all interfaces]
    #[arg(long, value_name = "ADDRESS")]
    pub bind: Option<IpAddr>,

    /// `ten serve --domain` in the unit [default: serve's, localhost]
    #[arg(long)]
    pub domain: Option<String>,

    /// Print what was done as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct UninstallArgs {
    /// Unit name, as given to `ten install`
    #[arg(long, default_value = "ten")]
    pub name: String,

    /// Directory the unit was written into
    #[arg(long, default_value = DEFAULT_UNIT_DIR, value_name = "DIR")]
    pub unit_dir: PathBuf,

    /// Remove the unit even if `ten install` did not write it
    #[arg(long)]
    pub force: bool,

    /// Print what was done as JSON
    #[arg(long)]
    pub json: bool,
}

pub(super) fn install(global: &GlobalArgs, args: &InstallArgs) -> Result<u8, CliError> {
    let name = unit_name(&args.name)?;
    if let Some(user) = &args.user {
        check_user_name(user)?;
    }
    let spec = unit_spec(global, args, name)?;
    check_paths(&spec)?;
    let text = render_unit(&spec);
    let warn = stderr_style().yellow("warning:");
    if in_build_dir(&spec.exe) {
        print_stderr(&format!(
            "{warn} the unit runs ten from a build directory ({}); consider installing it first (e.g. to /usr/local/bin)\n",
            spec.exe.display()
        ));
    }
    if let Some(user) = &spec.user
        && !user_exists(user)
    {
        let message = format!("user {user:?} does not exist on this host");
        if !args.print {
            return Err(CliError::new(message).hint(
                "create it first (useradd --system NAME), or leave out --user to run as root",
            ));
        }
        print_stderr(&format!("{warn} {message}\n"));
    }
    if args.print {
        print_stdout(&text)?;
        return Ok(exit::OK);
    }

    let unit_dir = absolute(&args.unit_dir);
    let unit = format!("{}.service", spec.name);
    let path = unit_dir.join(&unit);
    let unchanged = write_unless_different(&path, &text, args.force)?;
    let systemd = if !systemd_running() {
        Systemd::Absent
    } else if args.no_start {
        Systemd::Skipped
    } else if !systemd_reads(&unit_dir) {
        Systemd::ElsewhereDir
    } else {
        let was_active = systemctl_is_active(&unit);
        if !unchanged {
            systemctl(&["daemon-reload"])?;
        }
        systemctl(&["enable", "--now", &unit])?;
        Systemd::Started { was_active }
    };
    let next_steps = match systemd {
        Systemd::Started { was_active } => {
            if was_active && !unchanged {
                vec![format!("systemctl restart {unit}")]
            } else {
                Vec::new()
            }
        }
        _ => {
            let mut steps = Vec::new();
            if !systemd_reads(&unit_dir) {
                let target = format!("{DEFAULT_UNIT_DIR}/");
                steps.push(shell_words::join(["cp", &path_text(&path), &target]));
            }
            steps.push("systemctl daemon-reload".to_string());
            steps.push(format!("systemctl enable --now {unit}"));
            steps
        }
    };

    if args.json {
        let value = json!({
            "format_version": JSON_FORMAT_VERSION,
            "unit": unit,
            "path": path_text(&path),
            "config": path_text(&spec.config_path),
            "exec_start": spec.argv(),
            "written": !unchanged,
            "systemd": match systemd {
                Systemd::Absent => "not running",
                Systemd::Skipped => "not started (--no-start)",
                Systemd::ElsewhereDir => "does not read the unit directory",
                Systemd::Started { .. } => "enabled and started",
            },
            "next_steps": next_steps,
        });
        print_stdout(&to_pretty(&value))?;
        return Ok(exit::OK);
    }
    let mut report = if unchanged {
        format!("{} is already installed and unchanged.\n", path.display())
    } else {
        format!(
            "Wrote {}: runs `ten serve` for {}.\n",
            path.display(),
            spec.config_path.display()
        )
    };
    report.push_str(&systemd_report(&systemd, &spec, &unit_dir, &next_steps));
    report.push_str(&format!("Remove it with `{}`.\n", spec.uninstall_command()));
    print_stdout(&report)?;
    Ok(exit::OK)
}

pub(super) fn uninstall(_global: &GlobalArgs, args: &UninstallArgs) -> Result<u8, CliError> {
    let name = unit_name(&args.name)?;
    let unit = format!("{name}.service");
    let unit_dir = absolute(&args.unit_dir);
    let path = unit_dir.join(&unit);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let ours = units_of_ten(&unit_dir);
            let hint = if ours.is_empty() {
                format!(
                    "no unit in {} was written by `ten install`; pass the --name (and --unit-dir) it was installed with",
                    unit_dir.display()
                )
            } else {
                format!(
                    "units written by `ten install` there: {}; pass one with --name",
                    ours.join(", ")
                )
            };
            return Err(CliError::new(format!("there is no unit {}", path.display())).hint(hint));
        }
        Err(error) => return Err(file_error("read", &path, &error)),
    };
    if !is_ours(&text) && !args.force {
        return Err(CliError::new(format!(
            "{} was not written by `ten install`; not removing it",
            path.display()
        ))
        .hint("check that --name is right; pass --force to remove it anyway"));
    }
    let keeps_tenants = text.lines().any(|line| line.trim() == "KillMode=process");
    let managed = systemd_running() && systemd_reads(&unit_dir);
    if managed {
        systemctl(&["disable", "--now", &unit])?;
    }
    std::fs::remove_file(&path).map_err(|error| file_error("remove", &path, &error))?;
    if managed {
        systemctl(&["daemon-reload"])?;
    }
    let systemd = if managed {
        "stopped and disabled"
    } else if systemd_running() {
        "does not read the unit directory"
    } else {
        "not running"
    };
    if args.json {
        let value = json!({
            "format_version": JSON_FORMAT_VERSION,
            "unit": unit,
            "path": path_text(&path),
            "removed": true,
            "systemd": systemd,
        });
        print_stdout(&to_pretty(&value))?;
        return Ok(exit::OK);
    }
    let mut report = format!("Removed {}", path.display());
    report.push_str(&match systemd {
        "stopped and disabled" => format!(" ({unit} stopped and disabled; systemd reloaded).\n"),
        "not running" => " (systemd is not running here: nothing to stop).\n".to_string(),
        _ => format!(
            " (systemd does not read units from {}: nothing to stop).\n",
            unit_dir.display()
        ),
    });
    if managed && keeps_tenants {
        report.push_str(
            "Its tenants keep running (keep_tenants_on_exit = true in that unit's config); to stop them\n\
             with ten, set keep_tenants_on_exit = false before uninstalling.\n",
        );
    }
    print_stdout(&report)?;
    Ok(exit::OK)
}
