//! The command line: clap definitions, one file per subcommand. The only module that knows
//! clap and the only one that prints for humans.

mod config_cmd;
mod context;
mod diff;
mod output;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

pub use output::{print_stderr, print_stdout, stderr_style, stdout_style};

const ABOUT: &str =
    "Run many small, mostly idle HTTP services on one Linux server, kept exactly as files declare";

const LONG_ABOUT: &str = "\
ten runs one process per tenant, made from a service template in tenement.toml, and keeps
the running processes equal to what the files declare:

  tenement.toml                 service templates and settings
  instances/<service>/<id>.toml one file per tenant (an empty file is enough)

`ten validate` checks the files, `ten diff` shows what would change, terraform-style.";

#[derive(Debug, Parser)]
#[command(name = "ten", version, about = ABOUT, long_about = LONG_ABOUT)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// tenement.toml to use (or its directory) [default: ./tenement.toml, else the nearest
    /// parent directory's]
    #[arg(long, global = true, env = "TENEMENT_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Data directory, overriding `data_dir` in [settings]
    #[arg(long, global = true, env = "TENEMENT_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check tenement.toml and instances/: every problem with file:line:col; exit 1 if any
    Validate(validate::ValidateArgs),
    /// Show the effective configuration: defaults filled in, instances merged
    Config(config_cmd::ConfigArgs),
    /// Show what would change to make running instances match the files
    Diff(diff::DiffArgs),
}

/// An error for the user: what went wrong and, when we know, what to do next.
#[derive(Debug)]
pub struct CliError {
    pub message: String,
    pub hint: Option<String>,
}

impl CliError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            hint: None,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl From<std::io::Error> for CliError {
    fn from(error: std::io::Error) -> Self {
        CliError::new(format!("cannot write output: {error}"))
    }
}

/// Exit codes shared by commands.
pub mod exit {
    pub const OK: u8 = 0;
    pub const ERROR: u8 = 1;
    /// `diff --detailed-exitcode`: changes are pending.
    pub const CHANGES: u8 = 2;
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let result = match &cli.command {
        Command::Validate(args) => validate::run(&cli.global, args),
        Command::Config(args) => config_cmd::run(&cli.global, args),
        Command::Diff(args) => diff::run(&cli.global, args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            let style = stderr_style();
            let mut text = format!("{} {}\n", style.red("error:"), error.message);
            if let Some(hint) = error.hint {
                text.push_str(&format!("{} {hint}\n", style.bold("hint:")));
            }
            print_stderr(&text);
            ExitCode::from(exit::ERROR)
        }
    }
}

/// Logs go to stderr; `TEN_LOG` (e.g. `debug`, `ten=trace`) sets the filter.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TEN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
