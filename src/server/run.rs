//! Running the server ([`serve`]): the reconciler, the file watcher and the proxy workers
//! started on what `prepare` made, where it listens said (`serve.json`, an event), and the
//! shutdown at SIGTERM or SIGINT. Must not import `lock`: the data directory is taken by
//! `prepare`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, oneshot};

use super::info::{ServeInfo, config_id, write_serve_info};
use super::options::{ServeError, ServeOptions, io};
use super::prepare::{Listening, prepare};
use super::{connection, http};
use crate::api::state::ApiState;
use crate::config::Diagnostic;
use crate::events::EventLog;
use crate::proxy::Proxy;
use crate::proxy::routes::RouteTable;
use crate::proxy::timers::Timers;
use crate::reconcile::{Message, Reconciler, ReconcilerParts};

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
    // Blocking (a watch per attached instance; its end joins the thread after its batch):
    // made and dropped on blocking threads.
    let log_watch = {
        let logs = Arc::clone(&prepared.logs);
        tokio::task::spawn_blocking(move || logs.watch())
            .await
            .map_err(std::io::Error::other)
            .and_then(|watched| watched)
            .map_err(|source| ServeError::Io {
                context: "cannot watch tenant output".into(),
                source,
            })?
    };

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
        drop(log_watch);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_of_the_tls_settings_while_serving_is_said_once() {
        let events = EventLog::default();
        let started = crate::config::model::Settings::defaults(Path::new("/etc/ten")).tls;
        let check = tls_change_warning(started.clone(), events.clone());
        check(&started);
        assert!(events.recent(&Default::default(), 10).is_empty());
        let moved = crate::config::model::TlsSettings {
            https_port: 8443,
            ..started.clone()
        };
        check(&moved);
        check(&moved);
        let said: Vec<String> = events
            .recent(&Default::default(), 10)
            .into_iter()
            .map(|event| event.message.into())
            .collect();
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(said[0].contains("takes effect when ten serve restarts"));
        check(&started);
        assert!(
            events.recent(&Default::default(), 10)[1]
                .message
                .contains("back to")
        );
    }
}
