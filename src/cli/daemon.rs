//! `ten serve --daemon`: the server in the background, `ten serve --stop` and `ten shutdown`:
//! its end. The daemon holds its pidfile (default `{data_dir}/ten.pid`) locked while it runs
//! and writes its output to its log file (default `{data_dir}/ten.log`); the command that
//! started it returns once it listens, or fails with what the daemon said.

use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use crate::runtime::daemon::{self, Forked, Outcome};
use crate::runtime::pidfile::{self, Pidfile, PidfileError};

use super::context::find_config_path;
use super::serve::{Detached, ServeArgs, serve_until_signal};
use super::{CliError, GlobalArgs, exit, print_stderr};

/// The pidfile and the log of a daemon, in its data directory unless given.
pub(super) const PIDFILE: &str = "ten.pid";
pub(super) const LOG_FILE: &str = "ten.log";

/// How long the started command waits for the daemon to listen.
const START_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Args)]
pub struct ShutdownArgs {
    /// The pidfile of the server to stop [default: {data_dir}/ten.pid]
    #[arg(long, value_name = "PATH")]
    pub pidfile: Option<PathBuf>,

    /// Seconds to wait until the server has stopped its tenants and exited
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    pub timeout: u64,
}

/// `ten shutdown`: `ten serve --stop`.
pub(super) fn shutdown(global: &GlobalArgs, args: &ShutdownArgs) -> Result<u8, CliError> {
    stop(global, args.pidfile.as_deref(), args.timeout)
}

/// `path` from the working directory: the daemon works in `/`.
fn absolute(path: &Path) -> PathBuf {
    std::env::current_dir().map_or_else(|_| path.to_path_buf(), |cwd| cwd.join(path))
}

/// `--data-dir`, else `data_dir` of tenement.toml (read alone: instance files do not matter).
fn data_dir(global: &GlobalArgs, config_path: &Path) -> Result<PathBuf, CliError> {
    if let Some(dir) = &global.data_dir {
        return Ok(absolute(dir));
    }
    let mut diagnostics = Vec::new();
    match crate::desired::read_config(config_path, &mut diagnostics).config {
        Some(config) => Ok(config.settings.data_dir),
        None => Err(
            CliError::new("the files have errors; ten serve did not start")
                .hint("fix them (`ten validate` shows every problem) and start again")
                .diagnostics(diagnostics),
        ),
    }
}

/// `--pidfile`, else `{data_dir}/ten.pid` (which needs the config).
fn pidfile_path(global: &GlobalArgs, given: Option<&Path>) -> Result<PathBuf, CliError> {
    match given {
        Some(path) => Ok(absolute(path)),
        None => {
            let config_path = find_config_path(global)
                .map_err(|error| error.hint("pass the server's --pidfile PATH, or its --config"))?;
            Ok(data_dir(global, &config_path)?.join(PIDFILE))
        }
    }
}

/// Takes the pidfile for this server, or says which server holds it.
pub(super) fn take_pidfile(path: &Path) -> Result<Pidfile, CliError> {
    Pidfile::acquire(path).map_err(|error| take_pidfile_error(error, path))
}

fn take_pidfile_error(error: PidfileError, path: &Path) -> CliError {
    let hint = match &error {
        PidfileError::Held { .. } => format!(
            "use that server, stop it first (`ten serve --stop --pidfile {}`), or give this one another --pidfile",
            path.display()
        ),
        _ => "pick another --pidfile".to_string(),
    };
    CliError::new(error.to_string()).hint(hint)
}

/// `ten serve --daemon`.
pub(super) fn start(global: &GlobalArgs, args: &ServeArgs) -> Result<u8, CliError> {
    let config_path = find_config_path(global)?;
    let data_dir = data_dir(global, &config_path)?;
    let pidfile = args
        .pidfile
        .as_deref()
        .map_or_else(|| data_dir.join(PIDFILE), absolute);
    let log_path = args
        .log_file
        .as_deref()
        .map_or_else(|| data_dir.join(LOG_FILE), absolute);
    // Said at once rather than by a daemon that then stops (the daemon takes it for good).
    if let Ok(pid) = pidfile::holder(&pidfile) {
        return Err(take_pidfile_error(
            PidfileError::Held {
                path: pidfile.clone(),
                pid: Some(pid),
            },
            &pidfile,
        ));
    }
    let log = open_log(&log_path)?;
    // Where this start's output begins, to show it if the daemon fails.
    let start_of_output = log.metadata().map(|metadata| metadata.len()).unwrap_or(0);
    let forked = daemon::daemonize()
        .map_err(|error| CliError::new(format!("cannot start the daemon: {error}")))?;
    let mut ready = match forked {
        Forked::Parent(report) => {
            return said_by_daemon(report.wait(START_TIMEOUT), &log_path, start_of_output);
        }
        Forked::Daemon(ready) => ready,
    };
    // The daemon. From here on, what it says goes to the log.
    daemon::detach_streams(&log)
        .map_err(|error| CliError::new(format!("cannot detach from the terminal: {error}")))?;
    let _pidfile = take_pidfile(&pidfile)?;
    let pidfile_flag = match &args.pidfile {
        Some(_) => format!(" --pidfile {}", pidfile.display()),
        None => String::new(),
    };
    let said = format!(
        "; in the background as pid {}, log in {}; `ten serve --stop{pidfile_flag}` stops it",
        std::process::id(),
        log_path.display(),
    );
    serve_until_signal(
        args,
        config_path,
        global.data_dir.as_deref().map(absolute),
        Some(Detached {
            pipe: &mut ready,
            said,
        }),
    )
}

fn open_log(path: &Path) -> Result<std::fs::File, CliError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|error| CliError::new(format!("cannot create {}: {error}", dir.display())))?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o644)
        .open(path)
        .map_err(|error| {
            CliError::new(format!(
                "cannot open the log file {}: {error}",
                path.display()
            ))
            .hint("pick another --log-file")
        })
}

/// What the started command says of the daemon's start.
fn said_by_daemon(outcome: Outcome, log_path: &Path, start_of_output: u64) -> Result<u8, CliError> {
    match outcome {
        Outcome::Ready { message, .. } => {
            print_stderr(&message);
            Ok(exit::OK)
        }
        Outcome::Failed { pid } => {
            // The daemon's own words (its error, with a hint), from its log. Its pipe may
            // close before it has written them: they are all there once it has exited.
            if let Some(pid) = pid {
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
                while daemon::alive(pid) && std::time::Instant::now() < deadline {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
            }
            let mut said = String::new();
            if let Ok(mut log) = std::fs::File::open(log_path) {
                let _ = log.seek(SeekFrom::Start(start_of_output));
                let _ = log.read_to_string(&mut said);
            }
            if said.contains("error:") {
                print_stderr(&said);
                return Ok(exit::ERROR);
            }
            let pid = pid.map(|pid| format!(" (pid {pid})")).unwrap_or_default();
            Err(
                CliError::new(format!("the daemon{pid} ended before it listened"))
                    .hint(format!("see {}", log_path.display())),
            )
        }
        Outcome::Silent { pid } => {
            let (pid_text, hint) = match pid {
                Some(pid) if daemon::alive(pid) => (
                    format!(" (pid {pid})"),
                    format!(
                        "it may still be starting: see {}; `ten serve --stop` stops it",
                        log_path.display()
                    ),
                ),
                _ => (String::new(), format!("see {}", log_path.display())),
            };
            Err(CliError::new(format!(
                "the daemon{pid_text} did not say it listens within {} s",
                START_TIMEOUT.as_secs()
            ))
            .hint(hint))
        }
    }
}

/// `ten serve --stop`: SIGTERM to the server holding the pidfile, then wait until it is gone.
pub(super) fn stop(
    global: &GlobalArgs,
    given: Option<&Path>,
    timeout: u64,
) -> Result<u8, CliError> {
    let path = pidfile_path(global, given)?;
    let not_running = |error: PidfileError| {
        let hint = match &error {
            PidfileError::Missing { .. } | PidfileError::Stale { .. } => {
                "nothing to stop; `ten serve --daemon` starts a server in the background".into()
            }
            PidfileError::NotHolder { .. } => {
                "check the path: the --pidfile the server was started with".into()
            }
            PidfileError::Timeout { pid, .. } => format!(
                "it may still be stopping its tenants: see its log (--log-file, {{data_dir}}/{LOG_FILE} by default); `kill -KILL {pid}` ends it at once, leaving its tenants running for the next ten serve to adopt"
            ),
            _ => String::new(),
        };
        let error_text = error.to_string();
        match hint.is_empty() {
            true => CliError::new(error_text),
            false => CliError::new(error_text).hint(hint),
        }
    };
    let pid = match pidfile::holder(&path) {
        Ok(pid) => pid,
        Err(error @ (PidfileError::Missing { .. } | PidfileError::Stale { .. })) => {
            return Err(match foreground_server(given, &path) {
                Some(pid) => CliError::new(format!(
                    "ten serve (pid {pid}) runs for this config, but not as the daemon of the pidfile {}",
                    path.display()
                ))
                .hint(format!(
                    "stop it where it runs (Ctrl-C in its terminal) or with `kill {pid}`; it stops its tenants first"
                )),
                None => not_running(error),
            });
        }
        Err(error) => return Err(not_running(error)),
    };
    print_stderr(&format!(
        "stopping ten serve (pid {pid}) and its tenants...\n"
    ));
    let pid = pidfile::stop(&path, Duration::from_secs(timeout)).map_err(not_running)?;
    print_stderr(&format!("ten serve (pid {pid}) has stopped\n"));
    Ok(exit::OK)
}

/// The server that runs for this config without its daemon's pidfile (in the foreground, as
/// a second `ten serve` is told): the one holding the data directory of the default pidfile.
/// Its pid, to say how to stop it: a server the user started is theirs to stop.
fn foreground_server(given: Option<&Path>, pidfile: &Path) -> Option<u32> {
    match given {
        Some(_) => None,
        None => pidfile.parent().and_then(crate::server::data_dir_server),
    }
}
