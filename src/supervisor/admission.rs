//! Admission of wakes under `memory_limit_total`: what the proxy asks before it wakes a
//! sleeping instance, and what the reconciler keeps up to date and is asked for (room).
//!
//! The tenants' total is measured when asked (one read of their parent cgroup), so wakes in
//! quick succession each see what the ones before them use. Without cgroups it is the sum of
//! the instances' last usage samples, kept by the reconciler. Imports nothing else of
//! `supervisor`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::sync::Notify;

use crate::names::InstanceKey;
use crate::runtime::memory::MemoryFiles;

/// Shared by the reconciler and every gate.
#[derive(Debug, Default)]
pub struct Admission {
    /// `memory_limit_total` in bytes; 0: no limit.
    limit: AtomicU64,
    /// The tenants' parent cgroup, when ten has cgroups.
    files: Option<MemoryFiles>,
    /// Without cgroups: the sum of the last usage samples.
    summed: AtomicU64,
    /// Whether some idle on-demand instance could be put to sleep (the reconciler's last
    /// look).
    evictable: AtomicBool,
    /// The most bytes a waiting wake lacks; taken by the reconciler.
    wanted: AtomicU64,
    room: Notify,
    /// Wakes refused since the reconciler's last look, by instance (the last reason): each
    /// becomes an event, so the operator sees what the clients were answered.
    refused: Mutex<BTreeMap<InstanceKey, String>>,
}

impl Admission {
    pub fn new(files: Option<MemoryFiles>) -> Admission {
        Admission {
            files,
            ..Admission::default()
        }
    }

    pub fn set_limit(&self, bytes: Option<u64>) {
        self.limit.store(bytes.unwrap_or(0), Ordering::Release);
    }

    pub fn limit(&self) -> Option<u64> {
        Some(self.limit.load(Ordering::Acquire)).filter(|bytes| *bytes > 0)
    }

    /// What the tenants use together now.
    pub fn used(&self) -> u64 {
        self.files
            .as_ref()
            .and_then(MemoryFiles::working_set)
            .unwrap_or_else(|| self.summed.load(Ordering::Acquire))
    }

    /// Whether the total is measured from the cgroups (else summed from samples).
    pub fn measured(&self) -> bool {
        self.files.is_some()
    }

    pub fn set_summed(&self, bytes: u64) {
        self.summed.store(bytes, Ordering::Release);
    }

    pub fn set_evictable(&self, evictable: bool) {
        self.evictable.store(evictable, Ordering::Release);
    }

    pub fn evictable(&self) -> bool {
        self.evictable.load(Ordering::Acquire)
    }

    /// A wake lacks `bytes`: the reconciler is asked to put idle instances to sleep.
    pub fn ask_room(&self, bytes: u64) {
        self.wanted.fetch_max(bytes, Ordering::AcqRel);
        self.room.notify_one();
    }

    /// Waits until a wake asks for room.
    pub async fn room_asked(&self) {
        self.room.notified().await;
    }

    /// A wake of `instance` was refused for want of room, because `why`.
    pub fn refused(&self, instance: &InstanceKey, why: String) {
        let mut refused = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        refused.insert(instance.clone(), why);
    }

    /// The wakes refused since the last look.
    pub fn take_refused(&self) -> BTreeMap<InstanceKey, String> {
        std::mem::take(&mut *self.refused.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The room asked for since the last look (0: none).
    pub fn take_wanted(&self) -> u64 {
        self.wanted.swap(0, Ordering::AcqRel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_cgroups_the_summed_samples_count() {
        let admission = Admission::new(None);
        assert_eq!(admission.limit(), None);
        admission.set_limit(Some(100));
        admission.set_summed(40);
        assert_eq!((admission.limit(), admission.used()), (Some(100), 40));
        admission.ask_room(10);
        admission.ask_room(30);
        admission.ask_room(20);
        assert_eq!(admission.take_wanted(), 30, "the most any wake lacks");
        assert_eq!(admission.take_wanted(), 0);
    }
}
