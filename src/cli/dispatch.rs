//! The entry point: the hidden subcommands of ten's own processes, a parsed command run,
//! and its outcome as an exit code, with `CliError` printed as text or JSON; the logs set
//! up. Must not define arguments: `args` does.

use std::process::ExitCode;

use clap::Parser;

use super::args::{Cli, Command};
use super::{
    apply, bulk, caddy, certs, config_cmd, daemon, diff, events, exit, export, health, import,
    init, install, instance, logs, print_stderr, print_stdout, ps, serve, stderr_style, token,
    traffic, validate,
};

/// An error for the user: what went wrong and, when we know, what to do next, and the
/// problems in the files behind it, if any.
#[derive(Debug)]
pub struct CliError {
    pub message: String,
    pub hint: Option<String>,
    pub diagnostics: Vec<crate::config::Diagnostic>,
}

impl CliError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            hint: None,
            diagnostics: Vec::new(),
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn diagnostics(mut self, diagnostics: Vec<crate::config::Diagnostic>) -> Self {
        self.diagnostics = diagnostics;
        self
    }

    /// For `--json`: `{"format_version": 1, "error": ..., "hint": ..., "diagnostics": [...]}`.
    fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(&serde_json::json!({
            "format_version": 1,
            "error": self.message,
            "hint": self.hint,
            "diagnostics": self.diagnostics,
        }))
        .unwrap_or_default();
        text.push('\n');
        text
    }
}

impl From<std::io::Error> for CliError {
    fn from(error: std::io::Error) -> Self {
        CliError::new(format!("cannot write output: {error}"))
    }
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    // ten as the init of a `namespace` tenant: before anything else (no threads yet).
    let mut args = std::env::args_os();
    match args.nth(1) {
        Some(first) if first == crate::runtime::init::SUBCOMMAND => {
            crate::runtime::init::main(args.collect())
        }
        // A spare process, waiting to become a tenant.
        Some(first) if first == crate::runtime::spare::SUBCOMMAND => crate::runtime::spare::main(),
        // The spawner of command checks.
        Some(first) if first == crate::runtime::spawner::SUBCOMMAND => {
            crate::runtime::spawner::serve::main()
        }
        _ => {}
    }
    let cli = Cli::parse();
    // A daemon's log is a file: no colors in it.
    let colors = !matches!(&cli.command, Command::Serve(args) if args.daemon);
    init_tracing(matches!(cli.command, Command::Serve(_)), colors);
    let global = &cli.global;
    let result = match &cli.command {
        Command::Init(args) => init::run(global, args),
        Command::Import(args) => import::run(global, args),
        Command::Serve(args) => serve::run(global, args),
        Command::Shutdown(args) => daemon::shutdown(global, args),
        Command::Validate(args) => validate::run(global, args),
        Command::Diff(args) => diff::run(global, args),
        Command::Apply(args) => apply::run(global, args),
        Command::Spawn(args) => instance::spawn(global, args),
        Command::Stop(args) => bulk::stop(global, args),
        Command::Start(args) => bulk::start(global, args),
        Command::Rm(args) => instance::remove(global, args),
        Command::Restart(args) => bulk::restart(global, args),
        Command::Ps(args) => ps::run(global, args),
        Command::Health(args) => health::run(global, args),
        Command::Logs(args) => logs::run(global, args),
        Command::Events(args) => events::run(global, args),
        Command::Certs(args) => certs::run(global, args),
        Command::Weight(args) => traffic::weight(global, args),
        Command::Deploy(args) => traffic::deploy(global, args),
        Command::Route(args) => traffic::route(global, args),
        Command::TokenGen(args) => token::run(global, args),
        Command::Config(args) => config_cmd::run(global, args),
        Command::Install(args) => install::install(global, args),
        Command::Uninstall(args) => install::uninstall(global, args),
        Command::Caddy(args) => caddy::run(global, args),
        Command::Export(args) => export::run(global, args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        // Asked for JSON, errors are JSON too (on stdout, where the answer was expected).
        Err(error) if cli.command.json() => {
            let _ = print_stdout(&error.to_json());
            ExitCode::from(exit::ERROR)
        }
        Err(error) => {
            let style = stderr_style();
            if !error.diagnostics.is_empty() {
                print_stderr(&crate::render::render_each(
                    &error.diagnostics,
                    std::path::Path::new(""),
                    style,
                ));
            }
            let mut text = format!("{} {}\n", style.red("error:"), error.message);
            if let Some(hint) = error.hint {
                text.push_str(&format!("{} {hint}\n", style.bold("hint:")));
            }
            print_stderr(&text);
            ExitCode::from(exit::ERROR)
        }
    }
}

/// Logs go to stderr; `TEN_LOG` (e.g. `debug`, `ten=trace`) sets the filter. The server
/// logs what it does (info); other commands only warnings. The ACME client's steps (of
/// every order) are debug: ten's own events say what each order came to.
fn init_tracing(server: bool, colors: bool) {
    let default = if server {
        "info,rustls_acme=warn"
    } else {
        "warn"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("TEN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colors && stderr_style().color)
        .with_target(false)
        // A closed stderr (`ten serve 2>&1 | head`) must not stop ten: by default the
        // subscriber reports a failed write with `eprintln!`, which panics then.
        .log_internal_errors(false)
        .try_init();
}
