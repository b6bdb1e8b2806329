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
    fn memory_freed_is_given_back_when_asked() {
        let resident = || {
            let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
            let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
            pages * 4096
        };
        // Blocks of the size of many small records, not one mapping of its own.
        let blocks: Vec<Vec<u8>> = (0..16_384).map(|_| vec![1u8; 4096]).collect();
        let full = resident();
        drop(blocks);
        purge();
        let after = resident();
        assert!(
            after + 32 * 1024 * 1024 < full,
            "resident {full} bytes with 64 MB allocated, {after} after they were freed and purged"
        );
    }
}
