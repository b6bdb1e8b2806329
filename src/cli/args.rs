//! The clap definitions: `Cli`, the global options and `Command`, one variant per
//! subcommand, whose doc comments are the `--help` text. Must not run a command or print:
//! `dispatch` does.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use super::{
    apply, bulk, caddy, certs, config_cmd, daemon, diff, events, export, health, import, init,
    install, instance, logs, ps, serve, token, traffic, validate,
};

const ABOUT: &str =
    "Run many small, mostly idle HTTP services on one Linux server, kept exactly as files declare";

const LONG_ABOUT: &str = "\
ten runs one process per tenant, made from a service template in tenement.toml, and keeps
the running processes equal to what the files declare:

  tenement.toml                 service templates and settings
  instances/<service>/<id>.toml one file per tenant (an empty file is enough)

`ten serve` keeps them so: a file dropped into instances/ starts a tenant, a file deleted
stops it, an edit of tenement.toml restarts exactly the tenants it affects. `ten diff` shows
what would change, terraform-style; `ten validate` checks the files.";

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

    /// URL of the ten server [default: the one serving this config, else http://localhost:8080]
    #[arg(long, global = true, env = "TENEMENT_SERVER", value_name = "URL")]
    pub server: Option<String>,

    /// API token [default: {data_dir}/api_token]
    #[arg(
        long,
        global = true,
        env = "TENEMENT_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Make a new project here: a tenement.toml guessed from the project (Procfile, Python,
    /// Node, Go, Rust) and an instances/ directory with an example instance
    Init(init::InitArgs),
    /// Make ten's files from supervisord's (or Supervice's) INI, a Procfile, process-compose
    /// YAML or pm2's ecosystem JSON
    ///
    /// Each program becomes a service: workers (listen = "none") unless the source says they
    /// serve HTTP on $PORT; numprocs, replicas and instances become process sets, groups and
    /// namespaces groups. Whatever has no equivalent in ten is listed in a report and kept as a
    /// `# not imported:` comment at its service. Without --output or --yes, the files are only
    /// shown (as a diff against what is there); nothing is written.
    Import(import::ImportArgs),
    /// Run the server: keeps processes equal to the files, supervises them, serves the API
    Serve(serve::ServeArgs),
    /// Stop the server started with `ten serve --daemon` (as `ten serve --stop`): its
    /// tenants stop first
    Shutdown(daemon::ShutdownArgs),
    /// Check tenement.toml and instances/: every problem with file:line:col; exit 1 if any
    Validate(validate::ValidateArgs),
    /// Show what would change to make running instances match the files
    Diff(diff::DiffArgs),
    /// Show the plan, confirm, and apply it through the server
    Apply(apply::ApplyArgs),
    /// Declare an instance (writes instances/S/ID.toml) and start it
    Spawn(instance::SpawnArgs),
    /// Set state = "stopped" in the instance files (comments kept) and stop them, lowest stop_order first
    Stop(bulk::TargetArgs),
    /// Set state = "running" in the instance files (comments kept) and start them
    Start(bulk::TargetArgs),
    /// Undeclare an instance (deletes its file) and stop it; its data is kept unless storage_persist = false
    Rm(instance::InstanceArgs),
    /// Restart instances now (also retries failed ones); --force kills instead of stopping
    Restart(bulk::RestartArgs),
    /// List every declared instance with its state, port, uptime and health
    #[command(visible_alias = "ls")]
    Ps(ps::PsArgs),
    /// Run a health check of an instance now
    Health(health::HealthArgs),
    /// Show captured output of instances
    Logs(logs::LogsArgs),
    /// Show reconcile actions and lifecycle transitions
    Events(events::EventsArgs),
    /// List the HTTPS certificates: each declared name, its issuer, expiry and last error
    Certs(certs::CertsArgs),
    /// Set an instance's share of its service's traffic (stored in its file)
    Weight(traffic::WeightArgs),
    /// Declare SERVICE:VERSION, wait until it is healthy, then give it traffic
    Deploy(traffic::DeployArgs),
    /// Move a service's traffic from one instance to another at once
    Route(traffic::RouteArgs),
    /// Make a new admin API token (rotating the running server's), or with --tenant S:ID one for a single instance
    TokenGen(token::TokenArgs),
    /// Show the effective configuration: defaults filled in, instances merged
    Config(config_cmd::ConfigArgs),
    /// Write a systemd unit that runs `ten serve` for this config, then enable and start it
    Install(install::InstallArgs),
    /// Stop and remove the systemd unit that `ten install` wrote
    Uninstall(install::UninstallArgs),
    /// Print a Caddyfile for running ten behind Caddy, with wildcard HTTPS certificates
    ///
    /// Caddy gets certificates for DOMAIN, *.DOMAIN and *.SERVICE.DOMAIN of every service
    /// (wildcards, through the ACME DNS-01 challenge: Caddy must be built with your DNS
    /// provider's module, which the file leaves for you to name) and passes every request to
    /// ten on 127.0.0.1:PORT, with its Host and X-Forwarded-For, -Proto and -Host. On-demand TLS,
    /// without a DNS module, is in the file as a commented alternative.
    ///
    /// The domain and email come from [settings.tls] (`domain`, `acme_email`) unless given.
    /// Run ten with `ten serve --domain DOMAIN --port PORT --bind 127.0.0.1`, and set
    /// `trusted_proxies = ["127.0.0.1"]` in [settings] so that ten believes Caddy's
    /// X-Forwarded-* headers. Only the Caddyfile goes to stdout; check it with
    /// `caddy validate --config FILE --adapter caddyfile`.
    Caddy(caddy::CaddyArgs),
    /// Write the declared services and instances as Kubernetes objects or Nomad jobs, for
    /// moving tenants that outgrow one machine to a cluster (read offline: no server needed)
    ///
    /// What cannot be mapped (sleeping without Knative, pids_limit, stop_order, ...) is
    /// listed as a warning with the reason. The output is deterministic, so exports kept in
    /// git diff cleanly.
    Export(export::ExportArgs),
}

impl Command {
    /// Whether the command was asked for JSON (`--json`): its errors are JSON then too.
    pub(super) fn json(&self) -> bool {
        match self {
            Command::Validate(args) => args.json,
            Command::Diff(args) => args.json,
            Command::Apply(args) => args.json,
            Command::Spawn(args) => args.json,
            Command::Stop(args) | Command::Start(args) => args.json,
            Command::Rm(args) => args.json,
            Command::Restart(args) => args.target.json,
            Command::Ps(args) => args.json,
            Command::Health(args) => args.json,
            Command::Logs(args) => args.json,
            Command::Events(args) => args.json,
            Command::Certs(args) => args.json,
            Command::Weight(args) => args.json,
            Command::Deploy(args) => args.json,
            Command::Route(args) => args.json,
            Command::TokenGen(args) => args.json,
            Command::Config(args) => args.json,
            Command::Import(args) => args.json,
            Command::Install(args) => args.json,
            Command::Uninstall(args) => args.json,
            Command::Init(args) => args.json,
            Command::Export(args) => args.json(),
            Command::Serve(_) | Command::Shutdown(_) | Command::Caddy(_) => false,
        }
    }
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
