//! Traffic between instances of a service: `ten weight`, `ten deploy`, `ten route`. Weights
//! live in the instance files.

use clap::Args;

use crate::api::types::{ActionResult, DeployRequest, RouteRequest, WeightRequest};
use crate::names::{InstanceKey, ServiceName};

use super::client::Client;
use super::instance::show;
use super::{CliError, GlobalArgs};

#[derive(Debug, Args)]
pub struct WeightArgs {
    #[arg(value_name = "SERVICE:ID")]
    pub instance: InstanceKey,

    /// Share of the service's traffic (0-100; 0 takes none)
    #[arg(value_parser = clap::value_parser!(u8).range(0..=100))]
    pub weight: u8,

    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The new version, as SERVICE:VERSION (an instance id)
    #[arg(value_name = "SERVICE:VERSION")]
    pub target: InstanceKey,

    /// Weight once healthy
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub weight: u8,

    /// Seconds to wait until it is healthy
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    pub timeout: u64,

    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RouteArgs {
    /// The service
    pub service: ServiceName,

    /// The instance id that has the traffic now
    #[arg(long, value_name = "ID")]
    pub from: String,

    /// The instance id that takes it over
    #[arg(long, value_name = "ID")]
    pub to: String,

    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
}

pub(super) fn weight(global: &GlobalArgs, args: &WeightArgs) -> Result<u8, CliError> {
    let client = Client::new(global)?;
    let result: ActionResult = client.put(
        &format!("/api/instances/{}/weight", args.instance),
        &WeightRequest {
            weight: args.weight,
        },
    )?;
    show(&result, args.json)
}

pub(super) fn deploy(global: &GlobalArgs, args: &DeployArgs) -> Result<u8, CliError> {
    let request = DeployRequest {
        process: args.target.service.to_string(),
        version: args.target.id.to_string(),
        weight: Some(args.weight),
        timeout: Some(args.timeout),
    };
    let result: ActionResult = Client::new(global)?.post("/api/deploy", &request)?;
    show(&result, args.json)
}

pub(super) fn route(global: &GlobalArgs, args: &RouteArgs) -> Result<u8, CliError> {
    let request = RouteRequest {
        process: args.service.to_string(),
        from: args.from.clone(),
        to: args.to.clone(),
    };
    let result: ActionResult = Client::new(global)?.post("/api/route", &request)?;
    show(&result, args.json)
}
