//! Watching the desired-state files: notify events, debounced into one "files changed"
//! signal. No parsing here; the reconciler reloads.
//!
//! Watches tenement.toml's directory (not the file: editors save by writing a temporary file
//! and renaming it over the old one, which replaces the inode) and the instances directory
//! recursively, including service directories created, deleted or renamed later, and the
//! instances directory itself appearing after start. Events are debounced
//! ([`QUIET`], at most [`MAX_DELAY`] under a stream of writes), so a save in several steps
//! (truncate, then write) is read once it is complete.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::desired::scan::is_ignored;

/// Quiet time after the last event before a reload.
pub const QUIET: Duration = Duration::from_millis(100);
/// Longest delay of a reload under a continuous stream of events.
pub const MAX_DELAY: Duration = Duration::from_secs(1);

/// Keeps the watch alive; dropping it stops watching.
pub struct FileWatcher {
    _watcher: Arc<Mutex<RecommendedWatcher>>,
}

/// Watches the files of `config_path` and `instances_dir`; calls `on_change` (on a tokio
/// task) after each debounced burst of relevant events.
pub fn watch_files(
    config_path: &Path,
    instances_dir: &Path,
    on_change: impl Fn() + Send + 'static,
) -> notify::Result<FileWatcher> {
    let config_dir = config_path.parent().unwrap_or(Path::new("/")).to_path_buf();
    let (events, mut received) = mpsc::unbounded_channel::<()>();
    let relevant = Relevance {
        config_path: config_path.to_path_buf(),
        instances_dir: instances_dir.to_path_buf(),
    };
    let instances_watched = Arc::new(Mutex::new(None));
    let watcher =
        notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
            Ok(event) => {
                if event.need_rescan()
                    || event
                        .paths
                        .iter()
                        .any(|path| relevant.matters(&event.kind, path))
                {
                    let _ = events.send(());
                }
            }
            Err(error) => {
                tracing::warn!(%error, "file watcher error; reloading");
                let _ = events.send(());
            }
        })?;
    let watcher = Arc::new(Mutex::new(watcher));
    watcher
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .watch(&config_dir, RecursiveMode::NonRecursive)?;
    if let Some(parent) = instances_dir.parent()
        && parent != config_dir
        && parent.exists()
    {
        // To see the instances directory appear when it is elsewhere.
        let _ = watcher
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .watch(parent, RecursiveMode::NonRecursive);
    }
    ensure_instances_watch(&watcher, instances_dir, &instances_watched);

    let task_watcher = Arc::clone(&watcher);
    let instances_dir = instances_dir.to_path_buf();
    tokio::spawn(async move {
        while received.recv().await.is_some() {
            let first = Instant::now();
            loop {
                let remaining = MAX_DELAY.saturating_sub(first.elapsed());
                match tokio::time::timeout(QUIET.min(remaining), received.recv()).await {
                    Ok(Some(())) if !remaining.is_zero() => continue,
                    Ok(None) => return,
                    _ => break,
                }
            }
            ensure_instances_watch(&task_watcher, &instances_dir, &instances_watched);
            on_change();
        }
    });
    Ok(FileWatcher { _watcher: watcher })
}

/// Watches the instances directory recursively once it exists, and again when the path now
/// names another directory (replaced by a rename, as `git checkout` may do): a watch follows
/// the directory it was put on, not its path.
fn ensure_instances_watch(
    watcher: &Mutex<RecommendedWatcher>,
    instances_dir: &Path,
    watched: &Mutex<Option<(u64, u64)>>,
) {
    use std::os::unix::fs::MetadataExt;
    let mut watched = watched.lock().unwrap_or_else(|p| p.into_inner());
    let current = std::fs::metadata(instances_dir)
        .ok()
        .filter(|metadata| metadata.is_dir())
        .map(|metadata| (metadata.dev(), metadata.ino()));
    if current == *watched {
        return;
    }
    let mut watcher = watcher.lock().unwrap_or_else(|p| p.into_inner());
    if watched.is_some() {
        let _ = watcher.unwatch(instances_dir);
    }
    *watched = None;
    if current.is_some() {
        match watcher.watch(instances_dir, RecursiveMode::Recursive) {
            Ok(()) => *watched = current,
            Err(error) => {
                tracing::warn!(%error, dir = %instances_dir.display(), "cannot watch the instances directory")
            }
        }
    }
}

struct Relevance {
    config_path: PathBuf,
    instances_dir: PathBuf,
}

impl Relevance {
    /// Events about tenement.toml or anything in the instances directory (editor
    /// temporaries aside); reads (access events) never matter.
    fn matters(&self, kind: &EventKind, path: &Path) -> bool {
        if matches!(kind, EventKind::Access(_)) {
            return false;
        }
        if path == self.config_path {
            return true;
        }
        if !path.starts_with(&self.instances_dir) {
            return false;
        }
        path.file_name()
            .and_then(|name| name.to_str())
            .is_none_or(|name| !is_ignored(name) || path == self.instances_dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{AccessKind, CreateKind, ModifyKind};

    #[test]
    fn only_the_desired_state_files_matter() {
        let relevance = Relevance {
            config_path: "/srv/app/tenement.toml".into(),
            instances_dir: "/srv/app/instances".into(),
        };
        let create = EventKind::Create(CreateKind::File);
        let modify = EventKind::Modify(ModifyKind::Any);
        assert!(relevance.matters(&modify, Path::new("/srv/app/tenement.toml")));
        assert!(relevance.matters(&create, Path::new("/srv/app/instances/notes/carol.toml")));
        assert!(relevance.matters(&create, Path::new("/srv/app/instances")));
        assert!(relevance.matters(&create, Path::new("/srv/app/instances/notes")));
        assert!(!relevance.matters(
            &create,
            Path::new("/srv/app/instances/notes/.carol.toml.swp")
        ));
        assert!(!relevance.matters(&modify, Path::new("/srv/app/tenement-data/state.json")));
        assert!(!relevance.matters(&modify, Path::new("/srv/app/.tenement.toml.swp")));
        assert!(!relevance.matters(
            &EventKind::Access(AccessKind::Any),
            Path::new("/srv/app/tenement.toml")
        ));
    }

    #[tokio::test]
    async fn a_burst_of_changes_is_one_signal_and_new_directories_are_watched() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("tenement.toml");
        std::fs::write(&config, "").unwrap();
        let instances = dir.path().join("instances");
        let (signals, mut received) = mpsc::unbounded_channel();
        let _watcher = watch_files(&config, &instances, move || {
            let _ = signals.send(());
        })
        .unwrap();
        // The instances directory does not exist yet.
        std::fs::create_dir_all(instances.join("notes")).unwrap();
        let wait = Duration::from_secs(5);
        tokio::time::timeout(wait, received.recv())
            .await
            .expect("creating the instances directory is seen");
        for id in 0..20 {
            std::fs::write(instances.join(format!("notes/t{id}.toml")), "").unwrap();
        }
        tokio::time::timeout(wait, received.recv())
            .await
            .expect("the burst is seen");
        assert!(
            tokio::time::timeout(QUIET * 3, received.recv())
                .await
                .is_err(),
            "a burst is one signal"
        );
        std::fs::write(&config, "[settings]\n").unwrap();
        tokio::time::timeout(wait, received.recv())
            .await
            .expect("tenement.toml changes are seen");
    }
}
