//! `ten health S:ID`: run a health check now. Exit 0 when healthy, 1 when not.

use clap::Args;

use crate::api::types::HealthReport;
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

pub fn run(global: &GlobalArgs, args: &HealthArgs) -> Result<u8, CliError> {
    let report: HealthReport =
        Client::new(global)?.get(&format!("/api/instances/{}/health", args.instance))?;
    if args.json {
        print_stdout(&format!(
            "{}\n",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        ))?;
    } else {
        let style = stdout_style();
        let verdict = if report.healthy {
            style.green("healthy")
        } else {
            style.red("unhealthy")
        };
        let detail = if report.healthy {
            String::new()
        } else {
            format!(": {}", report.message)
        };
        print_stdout(&format!("{}: {verdict}{detail}\n", report.instance))?;
    }
    Ok(if report.healthy {
        exit::OK
    } else {
        exit::ERROR
    })
}
