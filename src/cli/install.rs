//! `ten install` / `ten uninstall`: a systemd unit that runs `ten serve` for this config.
//!
//! This file finds what the unit says (the running binary, the config and its settings, the
//! serve flags), writes the unit atomically or refuses to replace a different one, and calls
//! `systemctl` when systemd is the running init. The unit's text is [`unit`]'s, pure.

mod unit;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use clap::Args;
use serde_json::json;

use crate::config::ServiceTemplate;
use crate::config::parse::normalize;
use crate::names::ServiceName;
use crate::render::json::{JSON_FORMAT_VERSION, to_pretty};
use crate::render::render_diagnostics;

use super::context::find_config_path;
use super::{CliError, GlobalArgs, exit, print_stderr, print_stdout, stderr_style};

use unit::{UnitSpec, check_paths, check_user_name, is_ours, path_text, render_unit, unit_name};

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

fn user_exists(user: &str) -> bool {
    let found = match user.parse::<u32>() {
        Ok(uid) => nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)),
        Err(_) => nix::unistd::User::from_name(user),
    };
    matches!(found, Ok(Some(_)))
}

/// Whether `exe` is in a cargo target directory (`target/debug/ten`), which `cargo clean` or
/// the next build changes under the unit's feet. Cargo marks its target directories with
/// CACHEDIR.TAG.
fn in_build_dir(exe: &Path) -> bool {
    exe.ancestors()
        .nth(2)
        .is_some_and(|dir| dir.join("CACHEDIR.TAG").is_file())
}

/// Whether systemd is the running init (what `sd_booted()` checks).
fn systemd_running() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// Whether systemd loads system units from `dir`.
fn systemd_reads(dir: &Path) -> bool {
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

fn absolute(path: &Path) -> PathBuf {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    normalize(&cwd.join(path))
}

/// An I/O error on the unit file, with what to do about a permission problem.
fn file_error(action: &str, path: &Path, error: &std::io::Error) -> CliError {
    let cli_error = CliError::new(format!("cannot {action} {}: {error}", path.display()));
    if matches!(
        error.kind(),
        std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
    ) {
        cli_error.hint("run as root, or pass --unit-dir")
    } else {
        cli_error
    }
}

/// Runs `systemctl ARGS`; its stderr becomes the error.
fn systemctl(args: &[&str]) -> Result<(), CliError> {
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

fn systemctl_is_active(unit: &str) -> bool {
    Command::new("systemctl")
        .args(["is-active", "--quiet", unit])
        .stdin(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Writes `text` to `path` atomically, mode 0644.
fn write_unit_file(path: &Path, text: &str) -> Result<(), CliError> {
    crate::files::write_atomically(path, text.as_bytes(), 0o644)
        .map_err(|error| file_error("write", path, &error))
}

/// Finds what the unit needs: the config (and its settings), the binary, the flags.
fn unit_spec(global: &GlobalArgs, args: &InstallArgs, name: String) -> Result<UnitSpec, CliError> {
    let config_path = find_config_path(global)?;
    let mut diagnostics = Vec::new();
    let config = crate::desired::read_config(&config_path, &mut diagnostics).config;
    let Some(config) = config else {
        print_stderr(&render_diagnostics(
            &diagnostics,
            config_path.parent().unwrap_or(Path::new("")),
            stderr_style(),
        ));
        return Err(
            CliError::new("the config has errors; `ten serve` would not start with it")
                .hint("fix them (`ten validate` shows every problem) and run `ten install` again"),
        );
    };
    let exe = std::env::current_exe()
        .and_then(std::fs::canonicalize)
        .map_err(|error| CliError::new(format!("cannot find the running ten binary: {error}")))?;
    let mut serve_args = Vec::new();
    if let Some(port) = args.port {
        serve_args.extend(["--port".to_string(), port.to_string()]);
    }
    if let Some(bind) = args.bind {
        serve_args.extend(["--bind".to_string(), bind.to_string()]);
    }
    if let Some(domain) = &args.domain {
        serve_args.extend(["--domain".to_string(), domain.clone()]);
    }
    let longest_stop_timeout_secs = shutdown_secs(&config.services);
    let unit_dir = absolute(&args.unit_dir);
    Ok(UnitSpec {
        name,
        exe,
        config_path,
        data_dir: global.data_dir.as_deref().map(absolute),
        serve_args,
        user: args.user.clone(),
        privileged_ports: config.settings.tls.enabled
            && [
                config.settings.tls.https_port,
                config.settings.tls.http_port,
            ]
            .iter()
            .any(|port| (1..1024).contains(port)),
        keep_tenants_on_exit: config.settings.keep_tenants_on_exit,
        longest_stop_timeout_secs,
        unit_dir: (unit_dir != Path::new(DEFAULT_UNIT_DIR)).then_some(unit_dir),
    })
}

/// How long stopping every tenant may take: one `stop_order` after another, each as long as
/// its longest `stop_timeout`, and between two orders the 5 s ten gives a stop beyond it.
fn shutdown_secs(services: &BTreeMap<ServiceName, ServiceTemplate>) -> u64 {
    let mut longest: BTreeMap<i32, u64> = BTreeMap::new();
    for service in services.values() {
        let secs = service.stop_timeout.as_secs_f64().ceil() as u64;
        let entry = longest.entry(service.stop_order).or_default();
        *entry = (*entry).max(secs);
    }
    if longest.is_empty() {
        return 10;
    }
    let between = crate::reconcile::core::GRACE.as_secs() * (longest.len() as u64 - 1);
    longest.values().sum::<u64>() + between
}

/// What happened with systemd, for the report.
enum Systemd {
    /// Not the running init here.
    Absent,
    /// `--no-start`.
    Skipped,
    /// Running, but it does not read units from the unit directory.
    ElsewhereDir,
    /// `systemctl enable --now` ran. `was_active`: it already ran (with the old unit).
    Started { was_active: bool },
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

/// Writes the unit unless the same is there (returns true then). A different unit is
/// replaced only with `force`; otherwise the error shows the diff.
fn write_unless_different(path: &Path, text: &str, force: bool) -> Result<bool, CliError> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    if !dir.is_dir() {
        return Err(
            CliError::new(format!("unit directory {} does not exist", dir.display()))
                .hint("create it, or pass another --unit-dir"),
        );
    }
    let existing = match std::fs::read_to_string(path) {
        Ok(existing) => Some(existing),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
        Err(error) => return Err(file_error("read", path, &error)),
    };
    if existing.as_deref() == Some(text) {
        return Ok(true);
    }
    if let Some(existing) = &existing
        && !force
    {
        let diff = similar::TextDiff::from_lines(existing.as_str(), text)
            .unified_diff()
            .context_radius(2)
            .header(&path.display().to_string(), "ten install")
            .to_string();
        print_stderr(&diff);
        let whose = if is_ours(existing) {
            ""
        } else {
            " (that file was not written by `ten install`)"
        };
        return Err(CliError::new(format!(
            "{} exists and differs from the unit ten would write (diff above)",
            path.display()
        ))
        .hint(format!(
            "pass --force to overwrite it, or --name NAME to install another unit beside it{whose}"
        )));
    }
    write_unit_file(path, text)?;
    Ok(false)
}

/// What the report says about systemd, with the next steps indented.
fn systemd_report(
    systemd: &Systemd,
    spec: &UnitSpec,
    unit_dir: &Path,
    next_steps: &[String],
) -> String {
    let style = super::stdout_style();
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

/// Names of the units in `dir` that `ten install` wrote.
fn units_of_ten(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry
                .file_name()
                .to_str()?
                .strip_suffix(".service")?
                .to_string();
            let text = std::fs::read_to_string(entry.path()).ok()?;
            is_ours(&text).then_some(name)
        })
        .collect();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_errors_say_to_run_as_root() {
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let error = file_error(
            "write",
            Path::new("/etc/systemd/system/ten.service"),
            &denied,
        );
        assert!(error.message.contains("/etc/systemd/system/ten.service"));
        assert_eq!(
            error.hint.as_deref(),
            Some("run as root, or pass --unit-dir")
        );
        let other = std::io::Error::from(std::io::ErrorKind::StorageFull);
        assert!(file_error("write", Path::new("/x"), &other).hint.is_none());
    }

    #[test]
    fn systemd_does_not_read_other_directories() {
        // The integration tests rely on this: their units never reach systemctl.
        let dir = tempfile::tempdir().unwrap();
        assert!(!systemd_reads(dir.path()));
        assert!(!systemd_reads(Path::new("/etc/systemd")));
    }

    #[test]
    fn tenants_stop_one_stop_order_after_another() {
        let services = |text: &str| {
            let mut diagnostics = Vec::new();
            crate::config::parse_config(
                Path::new("/p/tenement.toml"),
                text.into(),
                &mut diagnostics,
            )
            .config
            .unwrap()
            .services
        };
        let one_order = "[service.a]\ncommand = \"a\"\nstop_timeout = 7\n[service.b]\ncommand = \"b\"\nstop_timeout = 3\n";
        assert_eq!(shutdown_secs(&services(one_order)), 7);
        let two_orders = format!("{one_order}stop_order = 10\n");
        assert_eq!(shutdown_secs(&services(&two_orders)), 7 + 5 + 3);
    }
}
