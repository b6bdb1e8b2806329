//! A value one writer publishes and many read, who may wait for it to change: an instance's
//! status, written by its task and read by the reconciler, the proxy and the API.
//!
//! What `tokio::sync::watch` does, for the calls ten makes of it, in less memory: a watch
//! channel spreads its readers over eight notifiers (about 470 bytes with the status in it);
//! this cell has one (about 200 bytes). Every declared instance has a status, asleep or not:
//! with 10,000 that is 2.7 MB less. Readers of a status are few (a settle of the API, the
//! proxy's wait for a wake), so one notifier is enough. A mutex rather than a reader-writer
//! lock, and the writer's end in the version's low bit, keep it in 192 bytes of heap instead
//! of 224 (jemalloc's size classes): readers hold the value only for a look, and never
//! borrow it twice at once.
//!
//! Imports nothing of ten.

use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

/// The writer is gone: the value will not change again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the writer of this value is gone")]
pub struct Closed;

struct Cell<T> {
    value: Mutex<T>,
    /// Twice the number of changes (each bumps it by [`CHANGE`], while the value is locked),
    /// plus [`CLOSED`] once the writer is gone.
    version: AtomicU64,
    changed: Notify,
}

/// What a change adds to the version.
const CHANGE: u64 = 2;
/// The version's bit that says the writer is gone.
const CLOSED: u64 = 1;

/// The writer; the cell closes when it is dropped.
pub struct Sender<T>(Arc<Cell<T>>);

/// A reader: it remembers which version it saw last.
pub struct Receiver<T> {
    cell: Arc<Cell<T>>,
    seen: u64,
}

/// A cell holding `value`, its writer and a reader that has seen it.
pub fn channel<T>(value: T) -> (Sender<T>, Receiver<T>) {
    let cell = Arc::new(Cell {
        value: Mutex::new(value),
        version: AtomicU64::new(0),
        changed: Notify::new(),
    });
    let receiver = Receiver {
        cell: Arc::clone(&cell),
        seen: 0,
    };
    (Sender(cell), receiver)
}

impl<T> Sender<T> {
    /// Lets `modify` change the value; readers hear of it only when it says it did.
    pub fn send_if_modified(&self, modify: impl FnOnce(&mut T) -> bool) -> bool {
        let mut value = self.0.value.lock().unwrap_or_else(PoisonError::into_inner);
        let modified = modify(&mut value);
        if modified {
            self.0.version.fetch_add(CHANGE, Ordering::Release);
            drop(value);
            self.0.changed.notify_waiters();
        }
        modified
    }

    /// Replaces the value, telling readers; returns the one before.
    pub fn send_replace(&self, new: T) -> T {
        let mut value = self.0.value.lock().unwrap_or_else(PoisonError::into_inner);
        let old = std::mem::replace(&mut *value, new);
        self.0.version.fetch_add(CHANGE, Ordering::Release);
        drop(value);
        self.0.changed.notify_waiters();
        old
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.0.version.fetch_or(CLOSED, Ordering::Release);
        self.0.changed.notify_waiters();
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("value", &*self.borrow())
            .field("seen", &self.seen)
            .finish()
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        Self {
            cell: Arc::clone(&self.cell),
            seen: self.seen,
        }
    }
}

impl<T> Receiver<T> {
    /// The value now. Held briefly: the writer waits while it is held.
    pub fn borrow(&self) -> MutexGuard<'_, T> {
        self.cell
            .value
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The value now, marked seen.
    pub fn borrow_and_update(&mut self) -> MutexGuard<'_, T> {
        let value = self
            .cell
            .value
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Read under the lock: the version is the one of this value.
        self.seen = self.cell.version.load(Ordering::Acquire) & !CLOSED;
        value
    }

    /// Waits until the value changes from the one last seen, and marks the new one seen;
    /// [`Closed`] when the writer is gone and nothing new was written.
    pub async fn changed(&mut self) -> Result<(), Closed> {
        loop {
            // Listening before looking: a change made between the look and the wait is heard.
            let mut notified = pin!(self.cell.changed.notified());
            notified.as_mut().enable();
            let version = self.cell.version.load(Ordering::Acquire);
            if version & !CLOSED != self.seen {
                self.seen = version & !CLOSED;
                return Ok(());
            }
            if version & CLOSED != 0 {
                return Err(Closed);
            }
            notified.await;
        }
    }

    /// Waits until the value satisfies `check` (it may already), and returns a copy of it.
    pub async fn wait_for(&mut self, check: impl Fn(&T) -> bool) -> Result<T, Closed>
    where
        T: Clone,
    {
        loop {
            {
                let value = self.borrow_and_update();
                if check(&value) {
                    return Ok(value.clone());
                }
            }
            self.changed().await?;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_reader_hears_each_change_once_and_the_writer_s_end() {
        let (sender, mut receiver) = channel(1);
        let mut other = receiver.clone();
        assert_eq!(*receiver.borrow(), 1);
        assert!(sender.send_if_modified(|value| {
            *value = 2;
            true
        }));
        receiver.changed().await.unwrap();
        assert_eq!(*receiver.borrow_and_update(), 2);
        // Seen: no change is pending.
        let pending = tokio::time::timeout(Duration::from_millis(20), receiver.changed()).await;
        assert!(pending.is_err(), "no change was written");
        // A modification that says it changed nothing is not heard.
        assert!(!sender.send_if_modified(|_| false));
        let pending = tokio::time::timeout(Duration::from_millis(20), receiver.changed()).await;
        assert!(pending.is_err(), "an unmodified value is not a change");
        // The other reader has not seen 2 yet.
        other.changed().await.unwrap();
        assert_eq!(sender.send_replace(3), 2);
        drop(sender);
        // A change written before the end is heard first, then the end.
        assert_eq!(receiver.changed().await, Ok(()));
        assert_eq!(*receiver.borrow(), 3);
        assert_eq!(receiver.changed().await, Err(Closed));
    }

    #[tokio::test]
    async fn a_waiting_reader_is_woken_by_a_change_made_on_another_task() {
        let (sender, mut receiver) = channel(0u32);
        let writer = tokio::spawn(async move {
            for n in 1..=50 {
                sender.send_replace(n);
                tokio::task::yield_now().await;
            }
        });
        let found = tokio::time::timeout(Duration::from_secs(10), receiver.wait_for(|n| *n == 50))
            .await
            .expect("the last value is seen");
        assert_eq!(found, Ok(50));
        writer.await.unwrap();
        assert_eq!(receiver.wait_for(|n| *n == 7).await, Err(Closed));
    }
}
