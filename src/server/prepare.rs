//! What startup does on a blocking thread before anything is served ([`prepare`]): the files
//! loaded, the data directory taken, the ports bound ([`Listening`]), the runtime, the API
//! token and what the last ten left set up. Must not import `run`, which serves what it
//! prepares.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::sync::{Semaphore, mpsc};

use super::lock::{lock_data_dir, ten_dir};
use super::options::{ServeError, ServeOptions, io};
use super::{http, https, listen};
use crate::api::auth::Auth;
use crate::config::Diagnostic;
use crate::desired::reload;
use crate::events::EventLog;
use crate::runtime::logs::LogHub;
use crate::runtime::ports::{PortAllocator, ephemeral_range};
use crate::runtime::reaper::Reaper;
use crate::runtime::{OsRuntime, Runtime};
use crate::supervisor::admission::Admission;
use crate::supervisor::launch::BaseEnv;
use crate::supervisor::task::Shared;

/// Proxy workers: one per core.
fn proxy_workers() -> usize {
    std::thread::available_parallelism().map_or(2, |cores| cores.get())
}

/// Startup permits: how many instances may be starting at once.
fn startup_permits() -> usize {
    std::thread::available_parallelism().map_or(2, |cores| cores.get()) * 8
}

/// What startup prepares on a blocking thread before anything is served.
pub(super) struct Prepared {
    pub(super) desired: crate::desired::DesiredState,
    pub(super) files: BTreeMap<crate::names::InstanceKey, crate::config::InstanceFile>,
    pub(super) diagnostics: Vec<Diagnostic>,
    pub(super) data_dir: PathBuf,
    /// Held while the server runs: no second server on this data directory.
    pub(super) lock: nix::fcntl::Flock<std::fs::File>,
    pub(super) listeners: http::Listeners,
    pub(super) listening: Listening,
    pub(super) domain: String,
    pub(super) certificates: Option<Arc<crate::tls::Certificates>>,
    pub(super) logs: Arc<LogHub>,
    pub(super) auth: Auth,
    pub(super) shared: Arc<Shared<OsRuntime>>,
    pub(super) changed: mpsc::UnboundedReceiver<crate::names::InstanceKey>,
    pub(super) inheritance: crate::reconcile::Inheritance,
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
pub(super) fn prepare(
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
            "port_range [{}, {}] overlaps the kernel's ephemeral ports [{low}, {high}]: outgoing connections may take a tenant's port (ten checks each port is free before handing it out); set port_range in [settings] below {low}, e.g. [20000, {}], to keep them apart",
            settings.port_range.0,
            settings.port_range.1,
            low.saturating_sub(1).min(29_999)
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
