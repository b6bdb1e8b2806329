//! `ten stop|start|restart` of more than one instance: `SERVICE` (all its declared
//! instances), `group:NAME` (all instances of the group's services) or `--all`. A single
//! `SERVICE:ID` goes through the instance's own route (`instance`).

use clap::Args;

use crate::api::types::{BulkRequest, BulkResult, RestartRequest};
use crate::desired::Selector;

use super::client::Client;
use super::instance::show;
use super::{CliError, GlobalArgs, exit, print_stdout};

/// One of a target or `--all` (as a group, so that a command given neither names both).
#[derive(Debug, Args)]
#[group(skip)]
#[command(group(clap::ArgGroup::new("which").required(true).multiple(false)))]
pub struct TargetArgs {
    /// SERVICE:ID, SERVICE (all its instances) or group:NAME (all instances of its services)
    #[arg(value_name = "TARGET", group = "which")]
    pub target: Option<Selector>,

    /// Every declared instance
    #[arg(long, group = "which")]
    pub all: bool,

    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RestartArgs {
    #[command(flatten)]
    pub target: TargetArgs,

    /// SIGKILL instead of the stop signal: the instance restarts at once
    #[arg(long)]
    pub force: bool,
}

impl TargetArgs {
    fn selector(&self) -> Selector {
        self.target.clone().unwrap_or(Selector::All)
    }
}

pub(super) fn stop(global: &GlobalArgs, args: &TargetArgs) -> Result<u8, CliError> {
    run(global, args, "stop", false)
}

pub(super) fn start(global: &GlobalArgs, args: &TargetArgs) -> Result<u8, CliError> {
    run(global, args, "start", false)
}

pub(super) fn restart(global: &GlobalArgs, args: &RestartArgs) -> Result<u8, CliError> {
    run(global, &args.target, "restart", args.force)
}

fn run(global: &GlobalArgs, args: &TargetArgs, action: &str, force: bool) -> Result<u8, CliError> {
    let client = Client::new(global)?;
    let selector = args.selector();
    if let Selector::Instance(key) = &selector {
        let path = format!("/api/instances/{key}/{action}");
        let result = match action {
            "restart" => client.post(&path, &RestartRequest { force })?,
            _ => client.post(&path, &())?,
        };
        return show(&result, args.json);
    }
    let request = BulkRequest {
        select: selector,
        force,
    };
    let result: BulkResult = client.post(&format!("/api/instances/{action}"), &request)?;
    print_stdout(&render(&result, args.json))?;
    Ok(if result.failed == 0 {
        exit::OK
    } else {
        exit::ERROR
    })
}

/// One line per instance and a summary; or the JSON document.
fn render(result: &BulkResult, json: bool) -> String {
    if json {
        let mut text = serde_json::to_string_pretty(result).unwrap_or_default();
        text.push('\n');
        return text;
    }
    let what = match &result.select {
        Selector::All => "declared".to_string(),
        selector => format!("of {selector}"),
    };
    if result.instances.is_empty() {
        return format!(
            "No instances {what} are declared: nothing to {}.\n",
            result.action
        );
    }
    let mut text = String::new();
    for outcome in &result.instances {
        let mark = if outcome.ok { "" } else { "failed: " };
        text.push_str(&format!(
            "{}: {mark}{}\n",
            outcome.instance, outcome.message
        ));
    }
    let done = match result.action.as_str() {
        "stop" => "stopped",
        "start" => "started",
        _ => "restarted",
    };
    let count = result.instances.len();
    let instances = crate::render::counted(count, "instance");
    let skipped = result
        .instances
        .iter()
        .filter(|outcome| outcome.skipped)
        .count();
    let left = match skipped {
        0 => String::new(),
        1 => "; 1 left as it is".to_string(),
        skipped => format!("; {skipped} left as they are"),
    };
    text.push_str(&match (&result.held, result.failed) {
        (Some(held), _) => format!("{instances} {what}: not applied yet ({held}).\n"),
        (None, 0) if skipped == 0 => format!("{instances} {what} {done}.\n"),
        (None, failed) => format!(
            "{} of {instances} {what} {done}{left}{}.\n",
            result.ok - skipped,
            match failed {
                0 => String::new(),
                failed =>
                    format!("; {failed} did not work out (`ten events` and `ten logs` say why)"),
            }
        ),
    });
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::types::BulkOutcome;
    use crate::names::InstanceKey;

    fn result(select: &str, failed: bool) -> BulkResult {
        let outcome = |key: &str, ok: bool| BulkOutcome {
            instance: InstanceKey::parse(key).unwrap(),
            ok,
            skipped: false,
            message: if ok {
                "stopped".into()
            } else {
                "timed out".into()
            },
            file: None,
            view: None,
        };
        BulkResult {
            select: Selector::parse(select).unwrap(),
            action: "stop".into(),
            instances: vec![outcome("web:a", true), outcome("web:b", !failed)],
            ok: if failed { 1 } else { 2 },
            failed: usize::from(failed),
            held: None,
        }
    }

    #[test]
    fn each_instance_and_a_summary() {
        assert_eq!(
            render(&result("group:web", false), false),
            "web:a: stopped\nweb:b: stopped\n2 instances of group:web stopped.\n"
        );
        assert_eq!(
            render(&result("web", true), false),
            "web:a: stopped\nweb:b: failed: timed out\n1 of 2 instances of web stopped; 1 did not work out (`ten events` and `ten logs` say why).\n"
        );
        // One left as it is counts as neither done nor failed.
        let mut restart = result("web", true);
        restart.action = "restart".into();
        restart.instances[0].skipped = true;
        restart.instances[0].message = "declared stopped; not restarted".into();
        assert_eq!(
            render(&restart, false),
            "web:a: declared stopped; not restarted\nweb:b: failed: timed out\n0 of 2 instances of web restarted; 1 left as it is; 1 did not work out (`ten events` and `ten logs` say why).\n"
        );
        let mut none = result("web", false);
        none.instances.clear();
        assert_eq!(
            render(&none, false),
            "No instances of web are declared: nothing to stop.\n"
        );
    }
}
