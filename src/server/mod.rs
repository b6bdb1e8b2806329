//! `ten serve`: assembles the server (reconciler, instance tasks, file watcher, log capture,
//! HTTP front) and runs it until SIGTERM or SIGINT.

pub(crate) mod connection;
pub(crate) mod http;
pub(crate) mod https;
pub(crate) mod listen;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::api::auth::Auth;
use crate::api::state::ApiState;
use crate::config::Diagnostic;
use crate::desired::reload;
use crate::events::EventLog;
use crate::proxy::Proxy;
use crate::proxy::routes::RouteTable;
use crate::proxy::timers::Timers;
use crate::reconcile::{Message, Reconciler, ReconcilerParts};
use crate::runtime::logs::LogHub;
use crate::runtime::ports::{PortAllocator, ephemeral_range};
use crate::runtime::reaper::Reaper;
use crate::runtime::{OsRuntime, Runtime};
use crate::supervisor::admission::Admission;
use crate::supervisor::launch::BaseEnv;
use crate::supervisor::task::Shared;
use arc_swap::ArcSwap;

/// What `ten serve` was asked.
#[derive(Debug, Clone)]
pub(crate) struct ServeOptions {
    pub config_path: PathBuf,
    /// `--data-dir`, overriding `settings.data_dir`.
    pub data_dir: Option<PathBuf>,
    pub bind: IpAddr,
    /// 0 picks a free port.
    pub port: u16,
    /// `--domain`, overriding `[settings.tls] domain`; `localhost` when neither says.
    pub domain: Option<String>,
    pub tls: https::TlsFlags,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ServeError {
    #[error("the files have errors; fix them and start again")]
    Invalid(Vec<Diagnostic>),
    #[error("another ten serve{} already runs with the data directory {data_dir}{}", pid.map(|pid| format!(" (pid {pid})")).unwrap_or_default(), held_by.as_ref().map(|holders| format!(": its lock is held by {holders}")).unwrap_or_default())]
    AlreadyRunning {
        data_dir: PathBuf,
        pid: Option<u32>,
        /// The processes that hold the lock, when no live server is recorded: a process
        /// that inherited the lock outlives the server that took it.
        held_by: Option<String>,
    },
    #[error(transparent)]
    Listen(#[from] listen::ListenError),
    #[error(transparent)]
    Https(#[from] https::HttpsError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error(
        "the data directory {} is not valid UTF-8, and ten hands paths in it to tenants as text",
        .0.display()
    )]
    DataDirNotUtf8(PathBuf),
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ServeError {
    let context = context.into();
    move |source| ServeError::Io { context, source }
}

/// Where a running server can be reached, for the CLI: written to `{data_dir}/serve.json`
/// and to a per-user registry keyed by the config path (found even when the config does not
/// parse, so `ten diff` can show a broken config's errors).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ServeInfo {
    pub pid: u32,
    /// Plain HTTP: the CLI's way in (on 127.0.0.1 when ten serves HTTPS).
    pub url: String,
    /// Where HTTPS is served, when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub https: Option<String>,
    pub config: String,
    pub data_dir: String,
}

pub(crate) const SERVE_INFO_FILE: &str = "serve.json";

/// ten's own files in the data directory: `.ten/` (a tenant's directory is a DNS label, so
/// it can never be called that). `lock`: held by the running server; `processes/`: the
/// process table; `capture/` and `logs/`: tenant output.
pub(crate) fn ten_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(".ten")
}

/// Holds `{data_dir}/.ten/lock` while the server runs, so two servers never supervise the
/// same tenants. Released by the kernel however ten ends (even kill -9).
fn lock_data_dir(data_dir: &Path) -> Result<nix::fcntl::Flock<std::fs::File>, ServeError> {
    use nix::fcntl::{Flock, FlockArg};
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let dir = ten_dir(data_dir);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .and_then(|()| std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)))
        .map_err(io(format!("cannot create {}", dir.display())))?;
    let path = dir.join("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io(format!("cannot open {}", path.display())))?;
    Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(file, errno)| {
        if errno == nix::errno::Errno::EWOULDBLOCK {
            let pid = read_serve_info(data_dir).map(|info| info.pid);
            ServeError::AlreadyRunning {
                data_dir: data_dir.to_path_buf(),
                pid,
                held_by: pid.is_none().then(|| lock_holders(&file)).flatten(),
            }
        } else {
            ServeError::Io {
                context: format!("cannot lock {}", path.display()),
                source: std::io::Error::from(errno),
            }
        }
    })
}

/// The processes that hold `file` open besides this one, as `pid N (command line)`,
/// comma-separated: who holds the data directory's lock when no live server is recorded.
fn lock_holders(file: &std::fs::File) -> Option<String> {
    let holders: Vec<String> = crate::runtime::proc::processes_holding(file)
        .into_iter()
        .map(|(pid, command)| format!("pid {pid} ({command})"))
        .collect();
    (!holders.is_empty()).then(|| holders.join(", "))
}

/// What this host offers for starting tenants: cgroups (as root), runsc, ten's own binary
/// as the init of namespaces.
fn spawn_env(data_dir: &Path) -> crate::runtime::SpawnEnv {
    use crate::runtime::cgroup::Cgroups;
    use sha2::{Digest, Sha256};
    let canonical = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
    let digest = Sha256::digest(canonical.as_os_str().as_encoded_bytes());
    let owner: String = digest[..4]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    let (cgroups, cgroups_missing) = if nix::unistd::geteuid().is_root() {
        match Cgroups::detect(&owner) {
            Ok(cgroups) => (Some(cgroups), None),
            Err(error) => {
                tracing::warn!(%error, "tenants run without cgroups: no limits, and processes that leave their group are not tracked");
                (None, Some(error.to_string()))
            }
        }
    } else {
        (None, Some("ten does not run as root".to_string()))
    };
    crate::runtime::SpawnEnv {
        table: Some(ten_dir(data_dir).join("processes")),
        cgroups,
        cgroups_missing,
        sandbox: crate::runtime::sandbox::Sandbox::find(&ten_dir(data_dir)),
        init_program: std::env::current_exe().ok(),
    }
}

/// What the previous ten left: its last record (a corrupt or missing one is reported and
/// taken as empty) and the process table.
fn inheritance(data_dir: &Path) -> crate::reconcile::Inheritance {
    let record = match crate::observed::read_record(data_dir) {
        Ok(record) => record.map(|record| record.observed),
        Err(error) => {
            tracing::warn!(%error, "starting without the previous record: no tenant is signalled; running ones are found through the process table");
            None
        }
    };
    let table = ten_dir(data_dir).join("processes");
    let (mut entries, problems) = crate::runtime::table::scan(&table);
    for problem in problems {
        tracing::warn!("ignoring a process table entry: {problem}");
    }
    // An entry is written before its process becomes the tenant; one whose process is still
    // ten's spare or spawner child never finished: that process is stopped, never adopted.
    entries.retain(|entry| {
        let alive = crate::runtime::proc::process_alive(entry.pid, Some(entry.start_time));
        if !alive || !crate::runtime::proc::is_unfinished_start(entry.pid) {
            return true;
        }
        tracing::warn!(instance = %entry.instance, pid = entry.pid, "stopping a start the last ten did not finish");
        crate::runtime::signal::kill_now(entry.pid);
        crate::runtime::table::remove_entry(&table, &entry.instance, entry.pid);
        false
    });
    crate::reconcile::inherit(
        record.as_ref(),
        entries,
        crate::runtime::proc::boot_id(),
        |pid, start_time| crate::runtime::proc::process_alive(pid, Some(start_time)),
    )
}

/// The per-user directory of running servers: `$XDG_RUNTIME_DIR/ten`, else a private
/// directory in the temporary directory.
pub(crate) fn registry_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir).join("ten"),
        _ => std::env::temp_dir().join(format!("ten-{}", nix::unistd::getuid())),
    }
}

/// Which config a server serves, for `/health`: 16 hex digits of the SHA-256 of its path (the
/// path itself is nobody's business).
pub(crate) fn config_id(config_path: &Path) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(config_path.as_os_str().as_encoded_bytes());
    digest[..8]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn registry_entry(config_path: &Path) -> PathBuf {
    registry_dir().join(format!("{}.json", config_id(config_path)))
}

fn write_serve_info(info: &ServeInfo, data_dir: &Path, config_path: &Path) -> Vec<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let bytes = serde_json::to_vec_pretty(info).unwrap_or_default();
    let registry = registry_entry(config_path);
    if let Some(dir) = registry.parent() {
        let _ = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir);
    }
    let paths = vec![data_dir.join(SERVE_INFO_FILE), registry];
    for path in &paths {
        if let Err(error) = crate::files::write_atomically(path, &bytes, 0o644) {
            tracing::warn!(%error, file = %path.display(), "cannot write where the CLI finds this server");
        }
    }
    paths
}

/// A running server (of any config of this user) that listens on `port`.
pub(crate) fn server_on_port(port: u16) -> Option<ServeInfo> {
    let suffix = format!(":{port}");
    std::fs::read_dir(registry_dir())
        .ok()?
        .filter_map(|entry| read_info(&entry.ok()?.path()))
        .find(|info| info.url.ends_with(&suffix))
}

/// The running server of `config_path`, if any.
pub(crate) fn find_server(config_path: &Path) -> Option<ServeInfo> {
    read_info(&registry_entry(config_path))
}

fn read_info(path: &Path) -> Option<ServeInfo> {
    let text = std::fs::read(path).ok()?;
    let info: ServeInfo = serde_json::from_slice(&text).ok()?;
    crate::runtime::proc::process_alive(info.pid, None).then_some(info)
}

/// Proxy workers: one per core.
fn proxy_workers() -> usize {
    std::thread::available_parallelism().map_or(2, |cores| cores.get())
}

/// Startup permits: how many instances may be starting at once.
fn startup_permits() -> usize {
    std::thread::available_parallelism().map_or(2, |cores| cores.get()) * 8
}

/// What startup prepares on a blocking thread before anything is served.
struct Prepared {
    desired: crate::desired::DesiredState,
    files: BTreeMap<crate::names::InstanceKey, crate::config::InstanceFile>,
    diagnostics: Vec<Diagnostic>,
    data_dir: PathBuf,
    /// Held while the server runs: no second server on this data directory.
    lock: nix::fcntl::Flock<std::fs::File>,
    listeners: http::Listeners,
    listening: Listening,
    domain: String,
    certificates: Option<Arc<crate::tls::Certificates>>,
    logs: Arc<LogHub>,
    auth: Auth,
    shared: Arc<Shared<OsRuntime>>,
    changed: mpsc::UnboundedReceiver<crate::names::InstanceKey>,
    inheritance: crate::reconcile::Inheritance,
}

/// Where a server listens.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Listening {
    /// Plain HTTP (`--port`).
    pub plain: SocketAddr,
    /// HTTPS, and the plain port that redirects to it.
    pub https: Option<(SocketAddr, SocketAddr)>,
}

/// Binds the ports: `--port` (on 127.0.0.1 when HTTPS is served: it is the CLI's), and with
/// HTTPS its port and the redirecting one, on the bind address; a socket per worker each.
fn bind(
    options: &ServeOptions,
    https: Option<&https::Https>,
) -> Result<(http::Listeners, Listening), ServeError> {
    let workers = proxy_workers();
    let bind =
        |address: SocketAddr| -> Result<(Vec<std::net::TcpListener>, SocketAddr), ServeError> {
            let listeners = listen::bind_listeners(address, workers)?;
            let local = listeners[0]
                .local_addr()
                .map_err(io("cannot read the listening address"))?;
            Ok((listeners, local))
        };
    let plain_ip = match https {
        Some(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
        None => options.bind,
    };
    let (plain, plain_local) = bind(SocketAddr::new(plain_ip, options.port))?;
    let mut listeners = http::Listeners {
        plain,
        https: Vec::new(),
        redirect: Vec::new(),
    };
    let mut listening = Listening {
        plain: plain_local,
        https: None,
    };
    if let Some(https) = https {
        let (secure, secure_local) = bind(SocketAddr::new(options.bind, https.https_port))?;
        let (redirect, redirect_local) = bind(SocketAddr::new(options.bind, https.http_port))?;
        listeners.https = secure;
        listeners.redirect = redirect;
        listening.https = Some((secure_local, redirect_local));
    }
    Ok((listeners, listening))
}

/// Loads the files, takes the data directory, binds the ports and sets up what the tenants
/// need, in that order; blocking (files, locks, sockets, cgroups, the certificate store).
fn prepare(
    options: &ServeOptions,
    runtime: tokio::runtime::Handle,
) -> Result<Prepared, ServeError> {
    let loaded = reload(&options.config_path, &BTreeMap::new());
    let Some(desired) = loaded.desired else {
        return Err(ServeError::Invalid(loaded.diagnostics));
    };
    let settings = desired.config.settings.clone();
    let data_dir = options
        .data_dir
        .clone()
        .unwrap_or_else(|| settings.data_dir.clone());
    // Tenants get their data directories as text (environment, templates), and `serve.json`
    // names it for the CLI: a lossy copy would name another directory.
    if data_dir.to_str().is_none() {
        return Err(ServeError::DataDirNotUtf8(data_dir));
    }
    std::fs::create_dir_all(&data_dir).map_err(io(format!(
        "cannot create the data directory {}",
        data_dir.display()
    )))?;
    let lock = lock_data_dir(&data_dir)?;
    Reaper::become_subreaper();
    if let Some((low, high)) = ephemeral_range()
        && settings.port_range.0 <= high
        && low <= settings.port_range.1
    {
        tracing::warn!(
            "port_range [{}, {}] overlaps the kernel's ephemeral ports [{low}, {high}]: outgoing connections may take a tenant's port; ten checks each port is free before handing it out",
            settings.port_range.0,
            settings.port_range.1
        );
    }
    let domain = options
        .domain
        .clone()
        .or_else(|| settings.tls.domain.clone())
        .unwrap_or_else(|| "localhost".into())
        .to_ascii_lowercase();
    let https = https::https_settings(&settings.tls, &options.tls, &domain, &data_dir)?;
    let (listeners, listening) = bind(options, https.as_ref())?;
    let logs = LogHub::new(ten_dir(&data_dir));
    logs.set_retention(settings.log_retention);
    let (changed_sender, changed) = mpsc::unbounded_channel();
    let os_runtime = Arc::new(OsRuntime::new(spawn_env(&data_dir)));
    let admission = Arc::new(Admission::new(os_runtime.tenants_memory()));
    let shared = Arc::new(Shared {
        runtime: os_runtime,
        logs: Arc::clone(&logs),
        events: EventLog::default(),
        ports: Arc::new(Mutex::new(PortAllocator::new(settings.port_range))),
        base_env: BaseEnv::from_process(),
        startup_permits: Arc::new(Semaphore::new(startup_permits())),
        changed: changed_sender,
        admission,
        tasks: tokio::runtime::Handle::current(),
    });
    let (auth, created) =
        Auth::load_or_create(&data_dir).map_err(io("cannot create the API token"))?;
    if created {
        tracing::info!(file = %crate::api::auth::token_path(&data_dir).display(), "created the admin API token");
    }
    let inheritance = inheritance(&data_dir);
    let adopted_cgroups = inheritance
        .processes
        .iter()
        .filter_map(|process| process.adoption.name.clone())
        .collect();
    shared.runtime.stop_unclaimed_cgroups(&adopted_cgroups);
    shared.runtime.prepare_spares();
    // Raised only now: the spawner (started with the runtime) and the spares it made keep the
    // limit ten was started with, and so do the tenants they fork.
    raise_open_files_limit();
    let certificates = https
        .map(|https| {
            crate::tls::Certificates::open(https.acme, shared.events.clone(), runtime.clone())
                .map_err(io("cannot serve HTTPS"))
        })
        .transpose()?;
    Ok(Prepared {
        desired,
        files: loaded.files,
        diagnostics: loaded.diagnostics,
        data_dir,
        lock,
        listeners,
        listening,
        domain,
        certificates,
        logs,
        auth,
        shared,
        changed,
        inheritance,
    })
}

/// Runs the server until SIGTERM/SIGINT. `ready` hears the address once it listens, and the
/// problems found in the files at startup (errors in instance files, which leave those
/// instances out; warnings).
pub(crate) async fn serve(
    options: ServeOptions,
    ready: impl FnOnce(&Listening, &Path, &[Diagnostic]),
) -> Result<(), ServeError> {
    let prepared = {
        let options = options.clone();
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || prepare(&options, runtime))
            .await
            .map_err(|error| ServeError::Io {
                context: "starting".into(),
                source: std::io::Error::other(error.to_string()),
            })??
    };
    let _lock = prepared.lock;
    let (listening, data_dir) = (prepared.listening, prepared.data_dir.clone());
    let settings = prepared.desired.config.settings.clone();
    let startup_problems = prepared.diagnostics.clone();
    let shared = Arc::clone(&prepared.shared);
    let events = shared.events.clone();
    let _log_watch = prepared.logs.watch().map_err(|error| ServeError::Io {
        context: "cannot watch tenant output".into(),
        source: std::io::Error::other(error.to_string()),
    })?;

    let (messages, receiver) = mpsc::channel(256);
    let routes = Arc::new(ArcSwap::from_pointee(RouteTable::default()));
    let domain = prepared.domain.clone();
    let published = Arc::clone(&routes);
    let certificates = prepared.certificates.clone();
    let log_hub = Arc::clone(&prepared.logs);
    let log_sweep = tokio::spawn(Arc::clone(&prepared.logs).sweep_forever());
    let tls_changed = tls_change_warning(settings.tls.clone(), events.clone());
    let unread = crate::watch::Unread::default();
    let mut reconciler = Reconciler::new(ReconcilerParts {
        publish: Box::new(move |desired, gate| {
            published.store(Arc::new(RouteTable::build(&domain, desired, gate)));
            if let Some(certificates) = &certificates {
                certificates.declare(&crate::tls::names::certificate_names(&domain, desired));
            }
            tls_changed(&desired.config.settings.tls);
            log_hub.set_retention(desired.config.settings.log_retention);
        }),
        config_path: options.config_path.clone(),
        data_dir: data_dir.clone(),
        shared: Arc::clone(&shared),
        desired: prepared.desired,
        files: prepared.files,
        diagnostics: prepared.diagnostics,
        changed: prepared.changed,
        unread: unread.clone(),
    });
    reconciler.take_over(prepared.inheritance).await;
    let reconciling = tokio::spawn(reconciler.run(receiver));

    let watcher_messages = messages.clone();
    let _file_watch = crate::watch::watch_files(
        &options.config_path,
        &settings.instances_dir,
        unread,
        move || {
            // Noted here, not by the reconciler: a reconciler that is stuck shows as lag.
            crate::metrics::global().lag().files_changed();
            let messages = watcher_messages.clone();
            // Told once until the reconciler begins its next reload (`watch::Unread`), so
            // this waits for room in the queue rather than drop the news.
            async move {
                let _ = messages.send(Message::FilesChanged).await;
            }
        },
    )
    .map_err(|error| ServeError::Io {
        context: "cannot watch the files".into(),
        source: std::io::Error::other(error.to_string()),
    })?;

    let api = Arc::new(ApiState {
        config_id: config_id(&options.config_path),
        reconciler: messages.clone(),
        logs: prepared.logs,
        events: events.clone(),
        auth: prepared.auth,
        certificates: prepared.certificates.clone(),
    });
    let timers = Timers::start().map_err(io("cannot start the proxy's timer thread"))?;
    let tls = prepared
        .certificates
        .as_ref()
        .zip(listening.https)
        .map(|(certificates, (https, _))| (certificates.server_config(), https.port()));
    let dashboard = Arc::new(crate::dashboard::Dashboard::new(Arc::clone(&api)));
    let caps = Arc::new(connection::Caps::default());
    http::spawn_workers(prepared.listeners, tls, || http::Router {
        proxy: Proxy::new(Arc::clone(&routes), timers.clone()),
        api: Arc::clone(&api),
        dashboard: Arc::clone(&dashboard),
        caps: Arc::clone(&caps),
        control: tokio::runtime::Handle::current(),
    })
    .map_err(io("cannot start the proxy workers"))?;

    let info_paths = announce(&options, &listening, &prepared.domain, &data_dir, &events).await;
    ready(&listening, &data_dir, &startup_problems);

    wait_for_exit_signal().await;
    log_sweep.abort();
    let (done, finished) = oneshot::channel();
    if messages.send(Message::Shutdown { done }).await.is_ok() {
        let _ = finished.await;
    }
    let _ = reconciling.await;
    let runtime = Arc::clone(&shared.runtime);
    let _ = tokio::task::spawn_blocking(move || {
        runtime.remove_cgroup_parent();
        for path in info_paths {
            let _ = std::fs::remove_file(path);
        }
    })
    .await;
    Ok(())
}

/// A check of `[settings.tls]` as the files say it now against what ten started with: HTTPS
/// (its ports, its ACME account, its domain) is set up at start, so a change is said once,
/// as a warning, rather than seemingly applied.
fn tls_change_warning(
    started: crate::config::model::TlsSettings,
    events: EventLog,
) -> impl Fn(&crate::config::model::TlsSettings) + Send + Sync {
    let warned = Mutex::new(started.clone());
    move |now| {
        let mut warned = warned.lock().unwrap_or_else(|e| e.into_inner());
        if *now != *warned {
            *warned = now.clone();
            let message = if *now == started {
                "[settings.tls] is back to what ten serve started with"
            } else {
                "[settings.tls] changed: it takes effect when ten serve restarts (HTTPS ports, ACME account and domain are set up at start)"
            };
            events.warn(None, "config", message, None);
        }
    }
}

/// Says where this server listens: `serve.json` for the CLI (on a blocking thread), and an
/// event. The files written, to remove at exit.
async fn announce(
    options: &ServeOptions,
    listening: &Listening,
    domain: &str,
    data_dir: &Path,
    events: &EventLog,
) -> Vec<PathBuf> {
    let local = listening.plain;
    let url_host = if local.ip().is_unspecified() {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        local.ip()
    };
    let https = listening.https.map(|(https, _)| match https.port() {
        443 => format!("https://{domain}"),
        port => format!("https://{domain}:{port}"),
    });
    let info = ServeInfo {
        pid: std::process::id(),
        url: format!("http://{}", SocketAddr::new(url_host, local.port())),
        https,
        config: options.config_path.display().to_string(),
        data_dir: data_dir.display().to_string(),
    };
    let (dir, config) = (data_dir.to_path_buf(), options.config_path.clone());
    let written = tokio::task::spawn_blocking(move || write_serve_info(&info, &dir, &config))
        .await
        .unwrap_or_default();
    events.record(
        None,
        "serve",
        format!(
            "ten {} serving {} on {}{} (domain {domain})",
            env!("CARGO_PKG_VERSION"),
            options.config_path.display(),
            local,
            listening
                .https
                .map(|(https, redirect)| format!(
                    ", HTTPS on {https} (HTTP on {redirect} redirects)"
                ))
                .unwrap_or_default(),
        ),
        None,
    );
    written
}

async fn wait_for_exit_signal() {
    let (Ok(mut terminate), Ok(mut interrupt)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = terminate.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = interrupt.recv() => tracing::info!("SIGINT: shutting down"),
    }
}

/// Raises ten's own soft limit on open files to its hard limit: every client connection,
/// backend connection, probe and captured stream takes a descriptor. Tenants keep the limit
/// ten was started with (see `prepare`): a program that uses `select` breaks on descriptors
/// past 1024, which is why the soft limit is low by default, and a tenant is owed the limit
/// it would have had without ten.
fn raise_open_files_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => tracing::debug!(from = soft, to = hard, "raised the open files limit"),
            Err(error) => tracing::warn!(%error, soft, hard, "cannot raise the open files limit"),
        },
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "cannot read the open files limit"),
    }
}

/// The server whose data directory is `data_dir`, if one runs.
pub(crate) fn read_serve_info(data_dir: &Path) -> Option<ServeInfo> {
    read_info(&data_dir.join(SERVE_INFO_FILE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_held_without_a_live_server_names_its_holder() {
        let dir = tempfile::tempdir().unwrap();
        let lock = ten_dir(dir.path()).join("lock");
        std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
        std::fs::write(&lock, "").unwrap();
        // A process that is no ten serve holds the lock (as a child that inherited it would).
        use std::os::unix::process::CommandExt;
        // `--close`: only flock holds it, not the sleep it runs; a group of their own, so
        // both are killed together.
        let holder = std::process::Command::new("flock")
            .args(["--exclusive", "--close"])
            .arg(&lock)
            .args(["sleep", "30"])
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = holder.id();
        /// Kills the holder's group and reaps it, even when an assertion fails first.
        struct Holder(std::process::Child);
        impl Drop for Holder {
            fn drop(&mut self) {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(self.0.id() as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
                let _ = self.0.wait();
            }
        }
        let holder = Holder(holder);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let refused = loop {
            match lock_data_dir(dir.path()) {
                Err(error) => break error.to_string(),
                Ok(taken) => {
                    drop(taken);
                    assert!(
                        std::time::Instant::now() < deadline,
                        "flock never took the lock"
                    );
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
            }
        };
        drop(holder);
        assert!(refused.contains("already runs"), "{refused}");
        assert!(
            refused.contains(&format!(
                "its lock is held by pid {pid} (flock --exclusive --close"
            )),
            "{refused}"
        );
        assert!(
            lock_data_dir(dir.path()).is_ok(),
            "the lock is free once its holder is gone"
        );
    }

    #[test]
    fn a_change_of_the_tls_settings_while_serving_is_said_once() {
        let events = EventLog::default();
        let started = crate::config::model::Settings::defaults(Path::new("/etc/ten")).tls;
        let check = tls_change_warning(started.clone(), events.clone());
        check(&started);
        assert!(events.recent(None, 10).is_empty());
        let moved = crate::config::model::TlsSettings {
            https_port: 8443,
            ..started.clone()
        };
        check(&moved);
        check(&moved);
        let said: Vec<String> = events
            .recent(None, 10)
            .into_iter()
            .map(|event| event.message.into())
            .collect();
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(said[0].contains("takes effect when ten serve restarts"));
        check(&started);
        assert!(events.recent(None, 10)[1].message.contains("back to"));
    }
}
