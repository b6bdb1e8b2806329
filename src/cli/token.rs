//! `ten token-gen`: a new admin API token. With a server running, it rotates the server's
//! token (the old one stops working at once); without, it writes `{data_dir}/api_token` for the
//! next `ten serve`.

use clap::Args;

use crate::api::auth::{new_token, token_path, write_token};
use crate::api::types::TokenResponse;

use super::client::Client;
use super::context::Context;
use super::{CliError, GlobalArgs, exit, print_stderr, print_stdout};

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// Print only the token
    #[arg(long, short)]
    pub quiet: bool,
}

pub fn run(global: &GlobalArgs, args: &TokenArgs) -> Result<u8, CliError> {
    let client = Client::new(global)?;
    let response = match client.post::<TokenResponse>("/api/tokens", &()) {
        Ok(response) => response,
        Err(error) if error.message.starts_with("cannot reach the ten server") => {
            let context = Context::load(global)?;
            let data_dir = context.data_dir(global).ok_or_else(|| {
                CliError::new("the files have errors, so the data directory is unknown")
                    .hint("pass --data-dir")
            })?;
            let token = new_token()
                .map_err(|error| CliError::new(format!("cannot make a token: {error}")))?;
            let path = token_path(&data_dir);
            write_token(&path, &token).map_err(|error| {
                CliError::new(format!("cannot write {}: {error}", path.display()))
            })?;
            TokenResponse {
                token,
                file: path.display().to_string(),
            }
        }
        Err(error) => return Err(error),
    };
    print_stdout(&format!("{}\n", response.token))?;
    if !args.quiet {
        print_stderr(&format!(
            "saved to {} (mode 0600); the CLI on this machine uses it\n",
            response.file
        ));
    }
    Ok(exit::OK)
}
