//! ten's own heap: jemalloc, with at most two arenas, freed pages given back within a
//! second, and at once after work that allocated much for a short time (a burst of
//! connections, a whole reconcile pass over thousands of instances).
//!
//! ten keeps a few dozen small records per instance for as long as the instance is declared,
//! made among the short-lived allocations of the reload and the pass that declared them. With
//! glibc's allocator the holes those left stayed resident: 10,000 instances asleep took 47.5 MB
//! of which the live heap was 24 MB; with jemalloc's size classes and decay, 39.9 MB (and
//! 43.9 MB with glibc held to one arena; bench/README.md, Density).
//!
//! The threads that make those records (rayon's readers, the control plane's runtime) take
//! from the arenas with no cache of their own; the proxy's keep theirs.
//!
//! Each thread that allocates while another holds an arena would get an arena of its own, each
//! keeping its own high-water mark: two arenas, one per core of this class of machine, bound
//! that. Must not import anything of ten's.

/// The heap of every thread of ten, its tests and its benchmarks.
#[global_allocator]
static HEAP: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read at its first allocation (before `main`), as jemalloc's own
/// `malloc_conf` symbol (prefixed, as the crate builds it): two arenas (more only spread the
/// same memory over more high-water marks); dirty pages
/// given back after a second instead of ten, and no second, "muzzy" stage (pages freed with
/// `MADV_FREE` still count in the RSS until the kernel needs them).
#[allow(non_upper_case_globals)]
#[unsafe(export_name = "_rjem_malloc_conf")]
static malloc_conf: &[u8; 47] = b"narenas:2,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

/// jemalloc's name for every arena at once (`MALLCTL_ARENAS_ALL`).
const ALL_ARENAS: u32 = 4096;

/// Returns the allocator's free pages to the system now, on a thread of its own (it walks
/// every arena: a few milliseconds no worker should spend).
pub(crate) fn give_back() {
    let spawned = std::thread::Builder::new()
        .name("ten-trim".into())
        .spawn(purge);
    if let Err(error) = spawned {
        tracing::debug!(%error, "cannot start a thread to give memory back");
    }
}

/// Makes the calling thread allocate from its arena directly, with no cache of its own.
///
/// For the threads of ten's control plane (the reload, the reconcile pass, the supervisor):
/// they make the records that live as long as their instances. A thread's cache hands back
/// what the thread freed last, wherever it lies, so records made among a pass's short-lived
/// allocations spread over many half-full pages; straight from the arena each takes the
/// lowest free place, and they pack. 10,000 instances asleep: 36.5–36.9 MB resident instead
/// of 39.5 (bench/README.md, Density). The proxy's threads keep their caches: a request makes
/// and frees dozens of blocks, and none outlives it.
pub(crate) fn without_thread_cache() {
    let name = b"thread.tcache.enabled\0";
    let mut off = false;
    // SAFETY: `thread.tcache.enabled` is a boolean jemalloc reads through `newp` (a `bool`
    // of C's size, as Rust's is) with `newlen` its size; nothing is read back (null `oldp`
    // and `oldlenp`). The name is NUL-terminated.
    let failed = unsafe {
        tikv_jemalloc_sys::mallctl(
            name.as_ptr().cast(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            (&raw mut off).cast(),
            std::mem::size_of::<bool>(),
        )
    };
    if failed != 0 {
        tracing::debug!(errno = failed, "cannot turn the thread's heap cache off");
    }
}

fn purge() {
    let name = format!("arena.{ALL_ARENAS}.purge\0");
    let (no_value, no_size) = (std::ptr::null_mut(), std::ptr::null_mut());
    // SAFETY: `arena.<i>.purge` takes and returns nothing (both pointers null, as it requires);
    // the name is NUL-terminated.
    let failed =
        unsafe { tikv_jemalloc_sys::mallctl(name.as_ptr().cast(), no_value, no_size, no_value, 0) };
    if failed != 0 {
        tracing::debug!(errno = failed, "cannot give memory back");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_heap_runs_with_ten_s_options() {
        let arenas: u32 = tikv_jemalloc_ctl::opt::narenas::read().unwrap();
        assert_eq!(arenas, 2);
        // SAFETY: a read of a jemalloc option, by its NUL-terminated name.
        let decay: isize =
            unsafe { tikv_jemalloc_ctl::raw::read(b"opt.dirty_decay_ms\0") }.unwrap();
        assert_eq!(decay, 1000);
        // SAFETY: as above.
        let muzzy: isize =
            unsafe { tikv_jemalloc_ctl::raw::read(b"opt.muzzy_decay_ms\0") }.unwrap();
        assert_eq!(muzzy, 0);
    }

    #[test]
    fn a_thread_without_its_cache_allocates_from_the_arena() {
        let enabled = || {
            // SAFETY: a read of the calling thread's boolean, by its NUL-terminated name.
            unsafe { tikv_jemalloc_ctl::raw::read::<bool>(b"thread.tcache.enabled\0") }.unwrap()
        };
        let other = std::thread::spawn(move || {
            let before = enabled();
            without_thread_cache();
            let boxed = Box::new([7u8; 100]);
            (before, enabled(), boxed[99])
        });
        assert_eq!(other.join().unwrap(), (true, false, 7));
        assert!(enabled(), "only the thread that asked loses its cache");
    }

    #[test]
    fn memory_freed_is_given_back_when_asked() {
        let resident = || {
            let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
            let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
            pages * 4096
        };
        // The process's resident size is shared with the tests running beside this one, which
        // may grow it between the two readings: the drop must be seen in one of three tries.
        let mut seen = Vec::new();
        for _ in 0..3 {
            // Blocks of the size of many small records, not one mapping of its own.
            let blocks: Vec<Vec<u8>> = (0..16_384).map(|_| vec![1u8; 4096]).collect();
            let full = resident();
            drop(blocks);
            purge();
            let after = resident();
            if after + 32 * 1024 * 1024 < full {
                return;
            }
            seen.push((full, after));
        }
        panic!("resident (bytes with 64 MB allocated, after they were freed and purged): {seen:?}");
    }
}
