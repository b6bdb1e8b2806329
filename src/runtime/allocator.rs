//! ten's own heap, as glibc's allocator keeps it: at most [`ARENAS`] arenas, and free pages
//! given back after work that allocated much for a short time (a burst of connections, a
//! whole reconcile pass over thousands of instances).
//!
//! glibc gives each thread that allocates while another holds an arena an arena of its own, up
//! to eight per core, and keeps what is freed in it. ten's threads (the runtime's workers,
//! blocking threads that read thousands of instance files, rayon's) each left their own
//! arena holding the high-water mark of what they once did: with 10,000 instances asleep,
//! 167 MB after the second pass against 130 MB with two arenas (`bench/density.rs`).
//! Must not import anything of ten's.

/// The most arenas glibc may make for ten: one per core of this 2-core class of machine; more
/// only spread the same memory over more high-water marks.
const ARENAS: i32 = 2;

/// Caps the allocator's arenas. Call before any thread is started.
pub(crate) fn limit_arenas() {
    // SAFETY: mallopt only sets a parameter of the allocator; called while ten has one thread.
    unsafe {
        nix::libc::mallopt(nix::libc::M_ARENA_MAX, ARENAS);
    }
}

/// Returns the allocator's free pages to the system, on a thread of its own (it walks every
/// arena: a few milliseconds no worker should spend).
pub(crate) fn give_back() {
    let spawned = std::thread::Builder::new()
        .name("ten-trim".into())
        .spawn(|| {
            // SAFETY: malloc_trim only walks the allocator's own free lists.
            unsafe {
                nix::libc::malloc_trim(0);
            }
        });
    if let Err(error) = spawned {
        tracing::debug!(%error, "cannot start a thread to give memory back");
    }
}
