//! `ten health S:ID`: run a health check now. Exit 0 when healthy or sleeping (declared and
//! converged: it wakes on its next request), 1 when not.

use clap::Args;

use crate::api::types::{HealthReport, HealthVerdict};
use crate::names::InstanceKey;

use super::client::Client;
use super::{CliError, GlobalArgs, exit, print_stdout, stdout_style};

#[derive(Debug, Args)]
pub struct HealthArgs {
    #[arg(value_name = "SERVICE:ID")]
    pub instance: InstanceKey,

    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
}

pub(super) fn run(global: &GlobalArgs, args: &HealthArgs) -> Result<u8, CliError> {
    let report: HealthReport =
        Client::new(global)?.get(&format!("/api/instances/{}/health", args.instance))?;
    if args.json {
        print_stdout(&format!(
            "{}\n",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        ))?;
    } else {
        let style = stdout_style();
        let line = match report.status {
            HealthVerdict::Healthy => style.green("healthy"),
            HealthVerdict::Sleeping => match &report.note {
                Some(note) => format!(
                    "{} (it wakes on its next request; {note})",
                    style.bold("sleeping")
                ),
                None => format!("{} (it wakes on its next request)", style.bold("sleeping")),
            },
            HealthVerdict::Unhealthy => {
                format!("{}: {}", style.red("unhealthy"), report.message)
            }
        };
        print_stdout(&format!("{}: {line}\n", report.instance))?;
    }
    Ok(match report.status {
        HealthVerdict::Healthy | HealthVerdict::Sleeping => exit::OK,
        HealthVerdict::Unhealthy => exit::ERROR,
    })
}
