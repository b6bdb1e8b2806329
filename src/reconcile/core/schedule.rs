//! When the core wants time: the throttled pass, the resync (rarer when reloads take long),
//! the record's flush, and what a tick does when one is due. Must not read a clock (time
//! comes in as `now`), touch a file or a process, or import tokio beyond its `Instant`.

use std::time::Duration;

use tokio::time::Instant;

use super::{Core, Effect};

/// A full reload and pass at least this often, whatever happens.
pub const RESYNC: Duration = Duration::from_secs(30);
/// The resync's reload takes at most one part in this many of the time between two (with
/// 10,000 instance files a reload takes about 0.2 s: then every 200 s instead of 30). The
/// reload reads files on every core and the pass, the record and the memory given back come
/// after it: a resync of 10,000 sleeping instances cost about 0.4 s of CPU, 0.5 % of a core
/// when it came every 80 s (`bench/density.rs`). The watcher sees changes as they happen; the
/// resync is only the net under it.
pub const RESYNC_SHARE: u32 = 1000;
/// The longest time between two resyncs, however long a reload took.
pub const RESYNC_MAX: Duration = Duration::from_secs(300);
/// Passes caused by instance state changes run at most this often.
pub const PASS_THROTTLE: Duration = Duration::from_millis(100);

/// The record is written at most this often while things change.
pub const FLUSH_DELAY: Duration = Duration::from_millis(250);

impl Core {
    /// When [`Event::Tick`](super::Event::Tick) is next due (at once when it is in the past).
    pub fn deadline(&self) -> Option<Instant> {
        if self.exit.is_some() {
            return self.stops.deadline();
        }
        let pass = if self.files_changed {
            // Files that changed are read at once.
            Some(self.last_resync)
        } else if self.pass_due {
            // Passes for status changes are throttled.
            Some(
                self.last_pass
                    .map_or(self.last_resync, |last| last + PASS_THROTTLE),
            )
        } else {
            None
        };
        let flush = self.dirty_since.map(|since| since + FLUSH_DELAY);
        [
            pass,
            flush,
            self.stops.deadline(),
            Some(self.last_resync + self.resync_every),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub(super) fn tick(&mut self, now: Instant, effects: &mut Vec<Effect>) {
        if now >= self.last_resync + self.resync_every {
            self.last_resync = now;
            self.files_changed = true;
        }
        if self.files_changed {
            self.files_changed = false;
            self.last_pass = Some(now);
            self.reload_started = Some(now);
            effects.push(Effect::Reload);
        } else if self.pass_due
            && self
                .last_pass
                .is_none_or(|last| now >= last + PASS_THROTTLE)
        {
            self.pass(now, effects);
        }
        if let Some(since) = self.dirty_since
            && now >= since + FLUSH_DELAY
        {
            self.dirty_since = None;
            effects.push(Effect::WriteRecord(Box::new(self.observed.clone())));
        }
    }

    /// The observed state changed: a new generation, and the record is due.
    pub(super) fn bump(&mut self, now: Instant) {
        self.observed.generation += 1;
        self.dirty_since.get_or_insert(now);
    }
}
