//! `ten token-gen [--tenant S:ID]`: a new API token, shown once (ten keeps only its hash).
//!
//! Without `--tenant` it rotates the admin token: the old one stops working at once and the
//! new one is written to `{data_dir}/api_token` (0600) for the CLI on this machine. With
//! `--tenant S:ID` it makes a token for that declared instance only, replacing its previous
//! one. With a server running, the server does it; without, the token store in the data
//! directory is changed directly (the next `ten serve` reads it).

use clap::Args;

use crate::api::scope::Scope;
use crate::api::tokens;
use crate::api::types::{TokenRequest, TokenResponse};
use crate::names::InstanceKey;

use super::client::Client;
use super::context::Context;
use super::{CliError, GlobalArgs, exit, print_stderr, print_stdout};

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// Make a token for this declared instance only (it can read the instance, its health,
    /// logs and events, and restart it) instead of rotating the admin token
    #[arg(long, value_name = "SERVICE:ID")]
    pub tenant: Option<InstanceKey>,

    /// Print the result as JSON
    #[arg(long, conflicts_with = "quiet")]
    pub json: bool,

    /// Print only the token
    #[arg(long, short)]
    pub quiet: bool,
}

pub(super) fn run(global: &GlobalArgs, args: &TokenArgs) -> Result<u8, CliError> {
    let client = Client::new(global)?;
    let request = TokenRequest {
        tenant: args.tenant.clone(),
    };
    let response = match client.post::<TokenResponse>("/api/tokens", &request) {
        Ok(response) => response,
        Err(error) if error.message.starts_with("cannot reach the ten server") => {
            offline(global, args.tenant.as_ref())?
        }
        Err(error) => return Err(error),
    };
    if args.json {
        print_stdout(&format!(
            "{}\n",
            serde_json::to_string_pretty(&response).unwrap_or_default()
        ))?;
        return Ok(exit::OK);
    }
    print_stdout(&format!("{}\n", response.token))?;
    if !args.quiet {
        let note = match (&response.instance, &response.file) {
            (Some(instance), _) => format!(
                "a token for {instance} only (its status, health, logs and events, and restart); shown this once: ten keeps only its hash; any earlier token of {instance} no longer works\n"
            ),
            (None, Some(file)) => format!(
                "the new admin token (the old one no longer works); saved to {file} (mode 0600), where the CLI on this machine reads it\n"
            ),
            (None, None) => "the new admin token (the old one no longer works)\n".to_string(),
        };
        print_stderr(&note);
    }
    Ok(exit::OK)
}

/// No server: change the token store of the data directory directly.
fn offline(global: &GlobalArgs, tenant: Option<&InstanceKey>) -> Result<TokenResponse, CliError> {
    let context = Context::load(global)?;
    let data_dir = context.data_dir(global).ok_or_else(|| {
        CliError::new("the files have errors, so the data directory is unknown")
            .hint("fix them (`ten validate` shows where), or pass --data-dir")
    })?;
    let scope = match tenant {
        Some(key) => {
            let desired = context.loaded.desired.as_ref().ok_or_else(|| {
                CliError::new(format!(
                    "the files have errors, so ten cannot tell whether {key} is declared"
                ))
                .hint("fix them first; `ten validate` shows where")
            })?;
            if !desired.instances.contains_key(key) {
                return Err(CliError::new(format!(
                    "{key} is not declared, so it cannot have a tenant token"
                ))
                .hint(format!(
                    "declare it first (`ten spawn {key}`, or a file instances/{}/{}.toml)",
                    key.service, key.id
                )));
            }
            Scope::Tenant(key.clone())
        }
        None => Scope::Admin,
    };
    tokens::issue(&data_dir, &scope)
        .map(TokenResponse::from)
        .map_err(|error| CliError::new(error.to_string()))
}
