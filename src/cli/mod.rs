//! The command line: clap definitions, one file per subcommand. The only module that knows
//! clap and the only one that prints for humans.

mod apply;
mod args;
mod bulk;
mod caddy;
mod certs;
mod client;
mod config_cmd;
mod context;
mod daemon;
mod diff;
mod dispatch;
mod events;
mod export;
mod health;
mod import;
mod init;
mod install;
mod instance;
mod logs;
mod output;
mod ps;
mod serve;
mod table;
mod token;
mod traffic;
mod validate;

pub use args::{Cli, Command, GlobalArgs};
pub use dispatch::{CliError, main};
pub use output::{print_stderr, print_stdout, print_stream_note, stderr_style, stdout_style};

/// Exit codes shared by commands.
pub mod exit {
    pub const OK: u8 = 0;
    pub const ERROR: u8 = 1;
    /// `diff --detailed-exitcode`: changes are pending.
    pub const CHANGES: u8 = 2;
}
