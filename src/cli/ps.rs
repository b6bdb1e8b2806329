//! `ten ps` (alias `ls`): every declared instance, sleeping and failed ones too.

use std::path::Path;

use clap::Args;

use crate::api::types::{InstanceView, StatusView};
use crate::config::other_files_with_errors;
use crate::desired::Selector;
use crate::observed::Phase;

use super::client::Client;
use super::table::{clock, short_duration, table};
use super::{CliError, GlobalArgs, exit, print_stderr, print_stdout, stderr_style, stdout_style};

#[derive(Debug, Args)]
pub struct PsArgs {
    /// Only SERVICE's instances, group:NAME's, or SERVICE:ID
    #[arg(value_name = "TARGET")]
    pub target: Option<Selector>,

    /// Print a JSON array (one object per instance)
    #[arg(long)]
    pub json: bool,
}

pub(super) fn run(global: &GlobalArgs, args: &PsArgs) -> Result<u8, CliError> {
    let client = Client::new(global)?;
    let path = match &args.target {
        Some(target) => {
            let mut query = form_urlencoded::Serializer::new(String::new());
            query.append_pair("select", &target.to_string());
            format!("/api/instances?{}", query.finish())
        }
        None => "/api/instances".to_string(),
    };
    let views: Vec<InstanceView> = client.get(&path)?;
    // What is wrong besides the table goes to stderr, with --json too. A tenant's token
    // may not read the status: then there is nothing more to say.
    let status: Option<StatusView> = client.get("/api/status").ok();
    let files_broken = status.as_ref().is_some_and(warn_about);
    if args.json {
        let mut text = serde_json::to_string_pretty(&views).unwrap_or_default();
        text.push('\n');
        print_stdout(&text)?;
        return Ok(exit::OK);
    }
    if views.is_empty() {
        if let Some(target) = &args.target {
            print_stdout(&format!("No instances of {target} are declared.\n"))?;
        } else if !files_broken {
            print_stdout(
                "No instances are declared. Declare one with `ten spawn SERVICE:ID` or a file in instances/.\n",
            )?;
        } else {
            print_stdout("No instance runs: every instance file in reach has errors.\n")?;
        }
        return Ok(exit::OK);
    }
    let style = stdout_style();
    let rows: Vec<Vec<String>> = views
        .iter()
        .map(|view| {
            // Declared, its create held: not the same as declared stopped.
            let pending = view.phase == Phase::Stopped
                && view.note.as_deref() == Some(crate::api::views::NOT_APPLIED);
            let phase = if pending {
                "pending".to_string()
            } else {
                view.phase.to_string()
            };
            let phase = match view.phase {
                Phase::Running => style.green(&phase),
                Phase::Failed | Phase::Exited | Phase::Backoff => style.red(&phase),
                Phase::Starting | Phase::Stopping => style.yellow(&phase),
                _ => phase,
            };
            vec![
                view.instance.to_string(),
                phase,
                view.listen.clone().unwrap_or_else(|| "-".into()),
                view.uptime_secs.map_or_else(|| "-".into(), short_duration),
                view.health.to_string(),
                if view.worker {
                    "-".to_string()
                } else {
                    view.weight.to_string()
                },
                view.restarts.to_string(),
                view.usage
                    .and_then(|usage| usage.memory_bytes)
                    .map_or_else(|| "-".into(), human_bytes),
                view.usage
                    .and_then(|usage| usage.storage_bytes)
                    .map_or_else(|| "-".into(), human_bytes),
            ]
        })
        .collect();
    let mut text = table(
        &[
            "INSTANCE", "STATE", "LISTEN", "UPTIME", "HEALTH", "WEIGHT", "RESTARTS", "MEM", "DISK",
        ],
        &rows,
    );
    // Why it is not running: failed, exited, in backoff, or asleep after a wake that failed
    // (or put to sleep for memory).
    for view in views.iter().filter(|view| {
        matches!(
            view.phase,
            Phase::Failed | Phase::Exited | Phase::Backoff | Phase::Sleeping
        )
    }) {
        if let Some(note) = &view.note {
            text.push_str(&format!("  {}: {note}\n", view.instance));
        }
    }
    print_stdout(&text)?;
    Ok(exit::OK)
}

/// Says on stderr what is wrong besides the table (files with errors, failing writes, frozen
/// instances, held changes); whether files besides tenement.toml have errors.
fn warn_about(status: &StatusView) -> bool {
    let warn = stderr_style();
    let config_file = Path::new(&status.config)
        .file_name()
        .map(Path::new)
        .unwrap_or(Path::new("tenement.toml"));
    let broken = other_files_with_errors(&status.diagnostics, config_file);
    if !status.valid {
        let what = if broken.is_empty() {
            "the files have errors".to_string()
        } else {
            files_with_errors(&broken)
        };
        print_stderr(&format!(
            "{} {what}; the last valid configuration keeps running, and instances whose files \
             never were valid are left out (`ten diff` shows the errors)\n",
            warn.yellow("!")
        ));
    }
    for failing in &status.write_errors {
        print_stderr(&format!(
            "{} cannot write {} ({}; {} failed write{} since {}); ten tries again, and starts no tenant it cannot note\n",
            warn.red("!"),
            failing.what,
            failing.error,
            failing.failures,
            if failing.failures == 1 { "" } else { "s" },
            clock(failing.since_unix * 1000)
        ));
    }
    if !status.frozen.is_empty() {
        let keys: Vec<String> = status.frozen.iter().map(ToString::to_string).collect();
        print_stderr(&format!(
            "{} kept at their last valid declaration until their files are fixed: {}\n",
            warn.yellow("!"),
            keys.join(", ")
        ));
    }
    if let Some(held) = &status.held {
        print_stderr(&format!("{} changes are held: {held}\n", warn.yellow("!")));
    }
    !broken.is_empty()
}

/// "2 instance files have errors: a.toml, b.toml" (at most a few named).
pub(super) fn files_with_errors(files: &[&Path]) -> String {
    const NAMED: usize = 5;
    let mut names: Vec<String> = files
        .iter()
        .take(NAMED)
        .map(|file| file.display().to_string())
        .collect();
    if files.len() > NAMED {
        names.push(format!("and {} more", files.len() - NAMED));
    }
    let (noun, verb) = if files.len() == 1 {
        ("file", "has")
    } else {
        ("files", "have")
    };
    format!(
        "{} instance {noun} {verb} errors: {}",
        files.len(),
        names.join(", ")
    )
}

/// `512K`, `12.3M`, `1.2G`, as `ls -h` writes sizes.
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["K", "M", "G", "T"];
    if bytes < 1024 {
        return format!("{bytes}B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if value < 10.0 {
        format!("{value:.1}{}", UNITS[unit])
    } else {
        format!("{value:.0}{}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn sizes_read_like_ls_h() {
        assert_eq!(human_bytes(512), "512B");
        assert_eq!(human_bytes(1536), "1.5K");
        assert_eq!(human_bytes(12 * 1024 * 1024 + 300_000), "12M");
        assert_eq!(human_bytes(3 * 1024 * 1024 * 1024), "3.0G");
    }
}
