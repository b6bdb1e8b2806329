//! Commands that act on one instance: `spawn` and `rm` edit the instance's file through the
//! server (comments kept) and wait until the server converged. (`stop`, `start` and
//! `restart` of one instance or many are in `bulk`.)

use clap::Args;

use crate::api::types::{ActionResult, SpawnRequest};
use crate::names::{InstanceId, InstanceKey, ServiceName};

use super::client::Client;
use super::{CliError, GlobalArgs, exit, print_stdout};

#[derive(Debug, Args)]
pub struct InstanceArgs {
    /// The instance, as SERVICE:ID (for example notes:alice)
    #[arg(value_name = "SERVICE:ID")]
    pub instance: InstanceKey,

    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SpawnArgs {
    /// The instance as SERVICE:ID, or the service when --id is given
    #[arg(value_name = "SERVICE:ID")]
    pub target: String,

    /// The id (the original's form: `ten spawn notes --id alice`)
    #[arg(long)]
    pub id: Option<String>,

    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
}

fn target_key(args: &SpawnArgs) -> Result<InstanceKey, CliError> {
    let invalid = |error: String| {
        CliError::new(error)
            .hint("for example: ten spawn notes:alice (or ten spawn notes --id alice)")
    };
    match &args.id {
        Some(id) => {
            let service = ServiceName::new(&args.target).map_err(|error| {
                invalid(format!(
                    "invalid service name {:?}: it {error}",
                    args.target
                ))
            })?;
            let id = InstanceId::new(id)
                .map_err(|error| invalid(format!("invalid instance id {id:?}: it {error}")))?;
            Ok(InstanceKey::new(service, id))
        }
        None => InstanceKey::parse(&args.target).map_err(|error| invalid(error.to_string())),
    }
}

pub(super) fn show(result: &ActionResult, json: bool) -> Result<u8, CliError> {
    if json {
        let mut text = serde_json::to_string_pretty(result).unwrap_or_default();
        text.push('\n');
        print_stdout(&text)?;
        return Ok(exit::OK);
    }
    let mut text = format!("{}: {}\n", result.instance, result.message);
    if let Some(listen) = result.view.as_ref().and_then(|view| view.listen.as_ref()) {
        text.push_str(&format!("Listen: {listen}\n"));
    }
    print_stdout(&text)?;
    Ok(exit::OK)
}

fn path(key: &InstanceKey, action: &str) -> String {
    match action {
        "" => format!("/api/instances/{key}"),
        action => format!("/api/instances/{key}/{action}"),
    }
}

pub(super) fn spawn(global: &GlobalArgs, args: &SpawnArgs) -> Result<u8, CliError> {
    let key = target_key(args)?;
    let request = SpawnRequest {
        process: key.service.to_string(),
        id: key.id.to_string(),
    };
    let result: ActionResult = Client::new(global)?.post("/api/instances/spawn", &request)?;
    show(&result, args.json)
}

pub(super) fn remove(global: &GlobalArgs, args: &InstanceArgs) -> Result<u8, CliError> {
    let result: ActionResult = Client::new(global)?.delete(&path(&args.instance, ""))?;
    show(&result, args.json)
}
