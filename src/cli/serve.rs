//! `ten serve`: run the server in the foreground until SIGTERM or SIGINT.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use clap::Args;

use crate::server::https::TlsFlags;
use crate::server::listen::ListenError;
use crate::server::{Listening, ServeError, ServeOptions, serve, server_on_port};

use super::context::find_config_path;
use super::daemon;
use super::{CliError, GlobalArgs, exit, print_stderr, stderr_style};
use crate::config::other_files_with_errors;
use crate::render::{render_diagnostics, render_each};

use super::ps::files_with_errors;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Port for the proxy and the API, plain HTTP (0 picks a free one). With HTTPS it is
    /// the CLI's, on 127.0.0.1 only
    #[arg(long, default_value_t = 8080, env = "TENEMENT_PORT")]
    pub port: u16,

    /// Address to listen on (with HTTPS: for the HTTPS and HTTP ports)
    #[arg(long, default_value = "0.0.0.0", value_name = "ADDRESS")]
    pub bind: IpAddr,

    /// The root domain: ID.SERVICE.DOMAIN routes to instances, DOMAIN serves the API
    /// [default: `domain` in [settings.tls], else localhost]
    #[arg(long)]
    pub domain: Option<String>,

    /// Serve HTTPS, with a certificate from Let's Encrypt (ACME) for every declared name
    /// under the domain; plain HTTP then redirects to it
    #[arg(long)]
    pub tls: bool,

    /// Contact address for the ACME account (with --tls)
    #[arg(long, value_name = "EMAIL")]
    pub email: Option<String>,

    /// Use Let's Encrypt's staging environment (with --tls): certificates browsers do not
    /// trust, under far higher rate limits, for trying things out
    #[arg(long)]
    pub staging: bool,

    /// Port for HTTPS [default: `https_port` in [settings.tls], else 443]
    #[arg(long, value_name = "PORT")]
    pub https_port: Option<u16>,

    /// Port for plain HTTP, which redirects to HTTPS [default: `http_port` in
    /// [settings.tls], else 80]
    #[arg(long, value_name = "PORT")]
    pub http_port: Option<u16>,

    /// Run in the background: detached from the terminal, output to --log-file, pid in
    /// --pidfile. Returns once the server listens (exit 1 with its error if it cannot start)
    #[arg(long, conflicts_with = "stop")]
    pub daemon: bool,

    /// A file with the server's pid, locked while it runs (a second server with the same
    /// pidfile is refused) [default with --daemon and --stop: {data_dir}/ten.pid]
    #[arg(long, value_name = "PATH")]
    pub pidfile: Option<PathBuf>,

    /// Where the daemon's output goes (appended) [default: {data_dir}/ten.log]
    #[arg(long, value_name = "PATH", requires = "daemon")]
    pub log_file: Option<PathBuf>,

    /// Stop the server that holds the pidfile (SIGTERM: it stops its tenants, as on Ctrl-C)
    /// and wait until it has exited; `ten shutdown` does the same
    #[arg(long)]
    pub stop: bool,

    /// With --stop: seconds to wait for the server to exit
    #[arg(long, default_value_t = 60, value_name = "SECONDS", requires = "stop")]
    pub timeout: u64,
}

/// What a detached server (`--daemon`) does differently when it listens: it tells the command
/// that started it, which then exits, and says where it runs.
pub(super) struct Detached<'a> {
    pub pipe: &'a mut crate::runtime::daemon::ReadyPipe,
    /// Said after "listening on ...": its pid, log and how to stop it.
    pub said: String,
}

pub(super) fn run(global: &GlobalArgs, args: &ServeArgs) -> Result<u8, CliError> {
    if args.stop {
        return daemon::stop(global, args.pidfile.as_deref(), args.timeout);
    }
    if args.daemon {
        return daemon::start(global, args);
    }
    let config_path = find_config_path(global)?;
    let _pidfile = args
        .pidfile
        .as_deref()
        .map(daemon::take_pidfile)
        .transpose()?;
    serve_until_signal(args, config_path, global.data_dir.clone(), None)
}

/// Runs the server in this process until SIGTERM or SIGINT.
pub(super) fn serve_until_signal(
    args: &ServeArgs,
    config_path: PathBuf,
    data_dir: Option<PathBuf>,
    mut detached: Option<Detached<'_>>,
) -> Result<u8, CliError> {
    let options = ServeOptions {
        config_path: config_path.clone(),
        data_dir,
        bind: args.bind,
        port: args.port,
        domain: args.domain.clone(),
        tls: TlsFlags {
            enabled: args.tls,
            email: args.email.clone(),
            staging: args.staging,
            https_port: args.https_port,
            http_port: args.http_port,
        },
    };
    let config_file = PathBuf::from(config_path.file_name().unwrap_or_default());
    // The threads that read instance files and make instances' records allocate without a
    // cache of their own (see `allocator::without_thread_cache`): rayon's, the runtime's
    // and this one.
    let pool = rayon::ThreadPoolBuilder::new()
        .thread_name(|index| format!("ten-read-{index}"))
        .start_handler(|_| crate::runtime::allocator::without_thread_cache())
        .build_global();
    if let Err(error) = pool {
        tracing::debug!(%error, "rayon's threads were started before the server's");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("ten")
        .on_thread_start(crate::runtime::allocator::without_thread_cache)
        .build()
        .map_err(|error| CliError::new(format!("cannot start the runtime: {error}")))?;
    // `block_on` runs the server's own future on this thread.
    crate::runtime::allocator::without_thread_cache();
    let result = runtime.block_on(serve(options, |listening, data_dir, problems| {
        let style = stderr_style();
        // What the command that started a daemon shows: the problems and where it listens.
        let mut text = String::new();
        if !problems.is_empty() {
            // As `ten validate` shows them; instances whose files have errors are left out.
            text = render_each(problems, Path::new(""), style);
            let broken = other_files_with_errors(problems, &config_file);
            if !broken.is_empty() {
                text.push_str(&format!(
                    "{} {}; their instances are left out until the files are fixed (`ten validate` checks them)\n",
                    style.yellow("!"),
                    files_with_errors(&broken)
                ));
            }
            print_stderr(&text);
        }
        let listening = format!(
            "{} listening on {} (data in {})",
            style.bold("ten serve:"),
            addresses(listening),
            data_dir.display()
        );
        match detached.as_mut() {
            None => print_stderr(&format!("{listening}; Ctrl-C stops\n")),
            Some(detached) => {
                let said = format!("{listening}{}\n", detached.said);
                print_stderr(&said);
                text.push_str(&said);
                detached.pipe.ready(&text);
            }
        }
    }));
    match result {
        Ok(()) => Ok(exit::OK),
        Err(ServeError::Invalid(diagnostics)) => {
            print_stderr(&render_diagnostics(
                &diagnostics,
                std::path::Path::new(""),
                stderr_style(),
            ));
            Err(
                CliError::new("the files have errors; ten serve did not start")
                    .hint("fix them (`ten validate` shows every problem) and start again"),
            )
        }
        Err(ServeError::Listen(error)) => {
            let hint = match &error {
                ListenError::InUse { address } => match server_on_port(address.port()) {
                    Some(other) => format!(
                        "another ten serve (pid {}, serving {}) listens there: use it (`ten --config {} ps`), stop it, or pick another --port",
                        other.pid, other.config, other.config
                    ),
                    None => "another program listens there: pick another --port, or stop it".into(),
                },
                ListenError::Other { address, source }
                    if address.port() < 1024
                        && source.kind() == std::io::ErrorKind::PermissionDenied =>
                {
                    "ports below 1024 need root or CAP_NET_BIND_SERVICE (`setcap cap_net_bind_service=+ep $(command -v ten)`, or AmbientCapabilities= in a systemd unit); or pick ports above 1023 (--port, --https-port, --http-port)".into()
                }
                ListenError::Other { .. } => "pick another --port or --bind address".into(),
            };
            Err(CliError::new(error.to_string()).hint(hint))
        }
        Err(ServeError::Https(error)) => Err(CliError::new(error.message).hint(error.hint)),
        Err(
            error @ ServeError::AlreadyRunning {
                pid: None,
                held_by: Some(_),
                ..
            },
        ) => Err(CliError::new(error.to_string()).hint(
            "no live ten serve is recorded there: the lock outlived the server that took it; \
                 start again once those processes are gone, or stop them",
        )),
        Err(
            error @ ServeError::AlreadyRunning {
                pid: None,
                held_by: None,
                ..
            },
        ) => Err(CliError::new(error.to_string()).hint(
            "no live ten serve is recorded there, and no process was found holding its lock \
                 (it may have been released since): start again",
        )),
        Err(error @ ServeError::AlreadyRunning { .. }) => Err(CliError::new(error.to_string())
            .hint(
                "use that server (`ten ps`), stop it first, or give this one its own --data-dir",
            )),
        Err(error @ ServeError::DataDirNotUtf8(_)) => Err(CliError::new(error.to_string())
            .hint("give a --data-dir (or TENEMENT_DATA_DIR) whose path is UTF-8")),
        Err(error) => Err(CliError::new(error.to_string())),
    }
}

/// Where the server listens, as `ten serve` says it.
fn addresses(listening: &Listening) -> String {
    match listening.https {
        None => format!("http://{}", listening.plain),
        Some((https, redirect)) => format!(
            "http://{} (the CLI's port), HTTPS on https://{https} (http://{redirect} redirects to it)",
            listening.plain
        ),
    }
}
