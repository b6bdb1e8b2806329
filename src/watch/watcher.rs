//! The notify side of the watcher: the watches, and the task that asks [`Settle`] when to
//! tell the reader. Events are taken in on notify's thread (most of them are ten's own
//! reads, counted there and dropped); the task wakes only when a decision may have changed.

use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use super::Unread;
use super::relevance::{Relevance, seen};
use super::settle::{Next, Seen, Settle};

/// Keeps the watch alive; dropping it stops watching (and its task).
pub struct FileWatcher {
    _watcher: Arc<Mutex<RecommendedWatcher>>,
}

/// Watches the files of `config_path` and `instances_dir`. When they changed and nothing
/// is known to be incomplete (see [`Settle`]), notes it in `unread` and, if that was the
/// first change since the reader last began to read, awaits `on_change` (on a tokio task).
pub fn watch_files<F, Fut>(
    config_path: &Path,
    instances_dir: &Path,
    unread: Unread,
    mut on_change: F,
) -> notify::Result<FileWatcher>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let config_dir = config_path.parent().unwrap_or(Path::new("/")).to_path_buf();
    let (wakes, mut woken) = mpsc::unbounded_channel::<()>();
    let relevance = Relevance {
        config_path: config_path.to_path_buf(),
        instances_dir: instances_dir.to_path_buf(),
    };
    let settle = Arc::new(Mutex::new(Settle::default()));
    let observed = Arc::clone(&settle);
    // Links below the instances directory are not followed (the scan refuses them): a link to
    // `/` would otherwise have notify walk and watch the whole file system.
    let config = notify::Config::default().with_follow_symlinks(false);
    let handler = move |event: notify::Result<notify::Event>| {
        let now = std::time::Instant::now();
        let mut settle = observed.lock().unwrap_or_else(|p| p.into_inner());
        let look_again = match event {
            Ok(event) if event.need_rescan() => {
                settle.observe(Seen::Rescan, &relevance.instances_dir, now)
            }
            Ok(event) => {
                let mut look_again = false;
                if let Some(what) = seen(&event.kind) {
                    for path in event.paths.iter().filter(|p| relevance.matters(what, p)) {
                        look_again |= settle.observe(what, path, now);
                    }
                }
                look_again
            }
            Err(error) => {
                tracing::warn!(%error, "file watcher error; reading the files again");
                settle.observe(Seen::Rescan, &relevance.instances_dir, now)
            }
        };
        drop(settle);
        if look_again {
            let _ = wakes.send(());
        }
    };
    let watcher = RecommendedWatcher::new(handler, config)?;
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
    let instances_watched = Mutex::new(None);
    ensure_instances_watch(&watcher, instances_dir, &instances_watched);

    let task_watcher = Arc::downgrade(&watcher);
    let instances_dir = instances_dir.to_path_buf();
    tokio::spawn(async move {
        loop {
            let next = settle
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .next(std::time::Instant::now());
            let woke = match next {
                Next::Read => {
                    let Some(watcher) = Weak::upgrade(&task_watcher) else {
                        return;
                    };
                    ensure_instances_watch(&watcher, &instances_dir, &instances_watched);
                    drop(watcher);
                    if unread.note() {
                        on_change().await;
                    }
                    continue;
                }
                Next::WaitUntil(at) => {
                    let at = tokio::time::Instant::from_std(at);
                    tokio::select! {
                        woke = woken.recv() => woke,
                        () = tokio::time::sleep_until(at) => Some(()),
                    }
                }
                Next::Idle => woken.recv().await,
            };
            if woke.is_none() {
                return;
            }
            // One look for every event that came meanwhile.
            while woken.try_recv().is_ok() {}
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::time::Duration;

    /// A watcher whose reader lowers the flag as soon as it is told, like the reconciler
    /// does when it begins a reload.
    fn watched(
        config: &Path,
        instances: &Path,
    ) -> (FileWatcher, mpsc::UnboundedReceiver<std::time::Instant>) {
        let (told, received) = mpsc::unbounded_channel();
        let unread = Unread::default();
        let reader = unread.clone();
        let watcher = watch_files(config, instances, unread, move || {
            reader.reading();
            let _ = told.send(std::time::Instant::now());
            async {}
        })
        .unwrap();
        (watcher, received)
    }

    async fn told(received: &mut mpsc::UnboundedReceiver<std::time::Instant>, what: &str) {
        tokio::time::timeout(Duration::from_secs(5), received.recv())
            .await
            .unwrap_or_else(|_| panic!("{what} is not seen"));
    }

    async fn nothing_more(received: &mut mpsc::UnboundedReceiver<std::time::Instant>, what: &str) {
        let more = tokio::time::timeout(Duration::from_millis(300), received.recv()).await;
        assert!(more.is_err(), "{what}");
    }

    #[tokio::test]
    async fn changes_are_seen_and_new_directories_watched() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("tenement.toml");
        std::fs::write(&config, "").unwrap();
        let instances = dir.path().join("instances");
        let (_watcher, mut received) = watched(&config, &instances);
        // The instances directory does not exist yet.
        std::fs::create_dir_all(instances.join("notes")).unwrap();
        told(&mut received, "creating the instances directory").await;
        std::fs::write(instances.join("notes/a.toml"), "").unwrap();
        told(&mut received, "a file in the new directory").await;
        std::fs::write(&config, "[settings]\n").unwrap();
        told(&mut received, "tenement.toml's change").await;
        // Reads change nothing.
        let _ = std::fs::read_to_string(&config).unwrap();
        let _ = std::fs::read_dir(instances.join("notes")).unwrap().count();
        nothing_more(&mut received, "reads are not changes").await;
    }

    #[tokio::test]
    async fn a_file_held_open_by_its_writer_is_told_once_after_its_close() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("tenement.toml");
        std::fs::write(&config, "").unwrap();
        let instances = dir.path().join("instances");
        std::fs::create_dir_all(instances.join("notes")).unwrap();
        let (_watcher, mut received) = watched(&config, &instances);
        let mut file = std::fs::File::create(instances.join("notes/a.toml")).unwrap();
        file.write_all(b"[env]\nFIRST = \"o").unwrap();
        nothing_more(&mut received, "a half-written file is not told").await;
        file.write_all(b"ne\"\n").unwrap();
        drop(file);
        told(&mut received, "the file closed").await;
        nothing_more(&mut received, "one file, one change").await;
    }

    #[tokio::test]
    async fn changes_while_the_reader_reads_make_one_more_read() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("tenement.toml");
        std::fs::write(&config, "").unwrap();
        let instances = dir.path().join("instances");
        std::fs::create_dir_all(instances.join("notes")).unwrap();
        let unread = Unread::default();
        let (told, mut received) = mpsc::unbounded_channel();
        let _watcher = watch_files(&config, &instances, unread.clone(), move || {
            let _ = told.send(());
            async {}
        })
        .unwrap();
        std::fs::write(instances.join("notes/first.toml"), "").unwrap();
        tokio::time::timeout(Duration::from_secs(5), received.recv())
            .await
            .expect("the first file is told");
        // The reader has not begun to read: later files are in its read.
        for id in 0..20 {
            std::fs::write(instances.join(format!("notes/t{id}.toml")), "").unwrap();
        }
        let more = tokio::time::timeout(Duration::from_millis(300), received.recv()).await;
        assert!(more.is_err(), "changes before the read are in it");
        // It reads now; changes during its read make one more.
        unread.reading();
        for id in 20..40 {
            std::fs::write(instances.join(format!("notes/t{id}.toml")), "").unwrap();
        }
        tokio::time::timeout(Duration::from_secs(5), received.recv())
            .await
            .expect("one more read");
        let more = tokio::time::timeout(Duration::from_millis(300), received.recv()).await;
        assert!(more.is_err(), "only one");
    }
}
